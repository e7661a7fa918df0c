"""Routing benchmark: decision time per request, and A/B shares against weights.

Usage::

    python -m benchmarks.routing [--requests N] [--users N] [--out DIR]

A config with 50 models (10 on each of 5 providers, prices and scores spread)
and a router with 20 routes (CEL conditions over ``metadata``; every route has
weighted variants) is loaded the way a user's file is. Nothing is sent to a
model: the figure is the routing decision alone (``plan_request``: router
route and variant, ``auto`` ranking, provider order), per request, for

* ``router, last route``: the 20th route matches (19 conditions fail first);
* ``router -> auto over 50``: the matching variant is ``model: auto`` over all 50;
* ``auto over 50``: ``model="auto"`` with ``sort=["price", "latency"]``;
* ``model id, 5 providers``: a plain model id served by 5 providers, ordered by
  observed latency.

A/B shares: 10,000 distinct users (``--users``) through routes weighted 50/50,
10/90 and 20/30/50; the observed share of each variant against its weight.
Results go to ``--out`` as ``routing.json`` and ``routing.md``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.overhead import DEFAULT_OUT, loadavg, versions

PROVIDERS = ("p1", "p2", "p3", "p4", "p5")
ROUTES = 20
SPLITS = {"ab50": (50, 50), "ab10": (10, 90), "abc": (20, 30, 50)}


def ref(i: int) -> str:
    """The deployment id of model ``i`` (models 5-49 live on one provider each)."""
    return f"{PROVIDERS[i % 5]}/model-{i}"


def config_dict() -> dict[str, Any]:
    """50 models on 5 providers, and a router with 20 routes plus the A/B routes."""
    providers = {p: {"litellm_provider": "openai", "api_base": f"http://127.0.0.1:9/{p}/v1", "api_key": "k"}
                 for p in PROVIDERS}
    models = []
    for i in range(50):
        provider = PROVIDERS[i % 5]
        models.append({"id": f"model-{i // 5}" if i < 5 else f"model-{i}", "provider": provider,
                       "input_price": round(0.1 + (i * 37 % 50) / 10, 2), "output_price": round(0.4 + (i * 13 % 50) / 5, 2),
                       "context_window": 32768 + 1024 * i, "capabilities": {"tools": True, "json_schema": i % 3 == 0},
                       "scores": {"intelligence": (i * 7) % 100, "coding": (i * 11) % 100, "math": (i * 17) % 100}})
    routes = [{"id": f"r{i}", "condition": f'has(metadata.segment) && metadata.segment == "s{i}"',
               "variants": [{"id": "a", "weight": 40, "model": ref(7)},
                            {"id": "b", "weight": 60, "model": "auto", "sort": ["price", "latency"]}]}
              for i in range(1, ROUTES + 1)]
    routes += [{"id": name, "condition": f'has(metadata.split) && metadata.split == "{name}"',
                "variants": [{"id": f"v{j}", "weight": w, "model": ref(j + 10)} for j, w in enumerate(weights)]}
               for name, weights in SPLITS.items()]
    router = {"name": "bench", "routes": routes,
              "default_route": {"id": "default", "variants": [{"id": "only", "weight": 100, "model": ref(8)}]}}
    return {"providers": providers, "models": models, "routers": [router]}


def _request(**kw: Any):
    from grounding.request import parse_request

    kw.setdefault("messages", [{"role": "user", "content": "What changed in the tax rules this year?"}])
    return parse_request(kw)


CASES = {
    "router, last route": lambda: _request(model="router/bench", metadata={"segment": f"s{ROUTES}"}, user="u-1"),
    "router -> auto over 50": lambda: _request(model="router/bench", metadata={"segment": f"s{ROUTES}"},
                                                user=_user_for_variant("b")),
    "auto over 50": lambda: _request(model="auto", sort=["price", "latency"]),
    "model id, 5 providers": lambda: _request(model="model-0"),
}


def _user_for_variant(variant: str) -> str:
    from grounding.routing.routers import get_routers

    router = get_routers().get("bench")
    for i in range(1000):
        sel = router.select(metadata={"segment": f"s{ROUTES}"}, messages=[], user=f"user-{i}", request_id="x")
        if sel.variant_id == variant:
            return f"user-{i}"
    raise RuntimeError(f"no user lands on variant {variant}")


async def _time_case(make, n: int) -> dict[str, Any]:
    from grounding.routing.plan import plan_request

    req = make()
    plan = await plan_request(req, request_id="warm-up")  # warm caches (catalog, CEL programs)
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        plan = await plan_request(req, request_id=f"gen-{i}")
        samples.append((time.perf_counter() - t0) * 1e6)
    samples.sort()
    return {"n": n, "median_us": round(statistics.median(samples), 1),
            "p90_us": round(samples[int(0.9 * (n - 1))], 1), "p99_us": round(samples[int(0.99 * (n - 1))], 1),
            "first_target": plan.targets[0].name, "targets": len(plan.targets)}


def decision_times(n: int) -> dict[str, Any]:
    from grounding.routing.stats import get_stats

    stats = get_stats()
    for i, p in enumerate(PROVIDERS):  # observed latencies, so the latency criterion has data
        for _ in range(5):
            stats.record(f"{p}/model-0", ok=True, ttft_ms=100 + 50 * i, duration_ms=400 + 50 * i, output_tokens=100)
    out = {}
    for name, make in CASES.items():
        _say(f"timing {name} ({n} requests)")
        out[name] = asyncio.run(_time_case(make, n))
    return out


def ab_shares(users: int) -> dict[str, Any]:
    from grounding.routing.routers import get_routers

    router = get_routers().get("bench")
    out = {}
    for name, weights in SPLITS.items():
        _say(f"A/B {name}: {users} users")
        counts: dict[str, int] = {}
        for i in range(users):
            sel = router.select(metadata={"split": name}, messages=[], user=f"user-{i:06d}", request_id=f"g{i}")
            counts[sel.variant_id] = counts.get(sel.variant_id, 0) + 1
        rows = [{"variant": f"v{j}", "weight": w, "share": round(100 * counts.get(f"v{j}", 0) / users, 2)}
                for j, w in enumerate(weights)]
        # The same users again, from a fresh load: sticky means identical assignments.
        out[name] = {"users": users, "variants": rows,
                     "max_abs_diff_points": round(max(abs(r["share"] - r["weight"]) for r in rows), 2)}
    return out


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    lines = ["# Routing benchmark", "", f"Command: `{report['command']}`", "",
             "## Decision time per request (50 models, 20 routes)", "",
             "| case | median µs | p90 µs | p99 µs | first target | targets |", "|---|---:|---:|---:|---|---:|"]
    for name, r in report["decision"].items():
        lines.append(f"| {name} | {r['median_us']} | {r['p90_us']} | {r['p99_us']} | {r['first_target']} | "
                     f"{r['targets']} |")
    lines += ["", f"## A/B shares over {report['users']} distinct users", "",
              "| route | weights | observed % | max diff (points) |", "|---|---|---|---:|"]
    for name, r in report["ab"].items():
        lines.append(f"| {name} | {'/'.join(str(v['weight']) for v in r['variants'])} | "
                     f"{'/'.join(str(v['share']) for v in r['variants'])} | {r['max_abs_diff_points']} |")
    lines += ["", f"Versions: {json.dumps(report['versions'])}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def _say(text: str) -> None:
    print(f"[routing] {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests timed per case")
    parser.add_argument("--users", type=int, default=10_000, help="distinct users for the A/B shares")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    from grounding.config import set_config

    set_config(config_dict())
    report = {"command": "python -m benchmarks.routing " + " ".join(argv if argv is not None else sys.argv[1:]),
              "users": args.users, "decision": decision_times(args.requests), "ab": ab_shares(args.users),
              "versions": versions(("grounding", "litellm", "common-expression-language", "pydantic")),
              "loadavg": loadavg()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "routing.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    write_markdown(args.out / "routing.md", report)
    _say(f"wrote {args.out / 'routing.json'} and routing.md")
    print((args.out / "routing.md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
