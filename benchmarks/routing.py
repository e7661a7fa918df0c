"""Routing benchmark: decision time per request, and A/B shares against weights.

Usage::

    python -m benchmarks.routing [--requests N] [--users N] [--limit N] [--seed S] [--out DIR]

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
``--limit N`` caps both ``--requests`` and ``--users`` at N (a quick run).
Results go to ``--out`` as ``routing.json``, ``routing.md``,
``routing-ab.png`` (shares against weights) and ``routing-decision.png``
(decision time per case); the seed (assignments hash the user id, nothing is
drawn at random) and the environment are recorded.
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

from benchmarks.common import DEFAULT_OUT, SEED, environment, new_figure, progress, seed_everything, write_outputs

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
    for name, make in progress(CASES.items(), total=len(CASES), desc="routing: decision time", unit="case"):
        out[name] = asyncio.run(_time_case(make, n))
    return out


def ab_shares(users: int) -> dict[str, Any]:
    from grounding.routing.routers import get_routers

    router = get_routers().get("bench")
    out = {}
    for name, weights in SPLITS.items():
        counts: dict[str, int] = {}
        for i in progress(range(users), total=users, desc=f"routing: A/B {name}", unit="user"):
            sel = router.select(metadata={"split": name}, messages=[], user=f"user-{i:06d}", request_id=f"g{i}")
            counts[sel.variant_id] = counts.get(sel.variant_id, 0) + 1
        rows = [{"variant": f"v{j}", "weight": w, "share": round(100 * counts.get(f"v{j}", 0) / users, 2)}
                for j, w in enumerate(weights)]
        # The same users again, from a fresh load: sticky means identical assignments.
        out[name] = {"users": users, "variants": rows,
                     "max_abs_diff_points": round(max(abs(r["share"] - r["weight"]) for r in rows), 2)}
    return out


def markdown(report: dict[str, Any]) -> str:
    env = report.get("environment") or report.get("versions") or {}
    lines = ["# Routing benchmark", "", f"Command: `{report['command']}`  ",
             f"Seed: {report.get('seed')}; load average: {env.get('loadavg', report.get('loadavg'))}", "",
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
    lines += ["", f"Versions: {json.dumps({k: v for k, v in env.items() if k != 'loadavg'})}", ""]
    return "\n".join(lines)


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    path.write_text(markdown(report), encoding="utf-8")


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """``ab``: observed share against weight for every variant; ``decision``: time per case."""
    fig, ax = new_figure(7.0, 4.0)
    labels, weights, shares = [], [], []
    for name, split in report["ab"].items():
        for v in split["variants"]:
            labels.append(f"{name}\n{v['variant']}")
            weights.append(v["weight"])
            shares.append(v["share"])
    x = list(range(len(labels)))
    ax.bar([i - 0.2 for i in x], weights, width=0.4, label="weight %", color="#bbbbbb")
    ax.bar([i + 0.2 for i in x], shares, width=0.4, label="observed share %", color="#1f77b4")
    for i, (w, sh) in enumerate(zip(weights, shares)):
        ax.annotate(f"{sh - w:+.1f}", (i + 0.2, sh), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("% of users")
    ax.set_title(f"A/B shares against weights, {report['users']:,} distinct users (labels: observed - weight)",
                 fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    out = {"ab": fig}

    fig, ax = new_figure(7.0, 3.2)
    cases = list(report["decision"])
    rows = [report["decision"][c] for c in cases]
    y = list(range(len(cases)))
    ax.barh(y, [r["median_us"] for r in rows], height=0.6, label="median", color="#1f77b4")
    ax.scatter([r["p90_us"] for r in rows], y, marker="|", s=200, color="black", label="p90", zorder=3)
    ax.scatter([r["p99_us"] for r in rows], y, marker="x", color="#d62728", label="p99", zorder=3)
    ax.set_yticks(y, cases, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")  # the cases differ by 10x and the p99 is far from the median
    ax.set_xlabel("routing decision per request, µs (log scale)")
    n = rows[0]["n"] if rows else 0
    ax.set_title(f"Decision time, 50 models and {ROUTES} routes ({n} requests per case)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    if rows:
        ax.set_xlim(min(r["median_us"] for r in rows) / 2, max(r["p99_us"] for r in rows) * 1.5)
    out["decision"] = fig
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.routing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests timed per case (default 2000)")
    parser.add_argument("--users", type=int, default=10_000, help="distinct users for the A/B shares (default 10000)")
    parser.add_argument("--limit", type=int, default=None, help="quick run: at most N requests per case and N users")
    parser.add_argument("--seed", type=int, default=SEED, help=f"recorded (nothing here is random; default {SEED})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.limit is not None:
        if args.limit < 1:
            parser.error("--limit must be at least 1")
        args.requests, args.users = min(args.requests, args.limit), min(args.users, args.limit)
    if args.requests < 1 or args.users < 1:
        parser.error("--requests and --users must be at least 1")
    from grounding.config import set_config

    seed = seed_everything(args.seed)
    set_config(config_dict())
    report = {"benchmark": "routing",
              "command": " ".join(["python -m benchmarks.routing", *(argv if argv is not None else sys.argv[1:])]),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "seed": seed,
              "settings": {"requests": args.requests, "users": args.users, "limit": args.limit,
                           "models": 50, "routes": ROUTES, "splits": {k: list(v) for k, v in SPLITS.items()}},
              "users": args.users, "decision": decision_times(args.requests), "ab": ab_shares(args.users),
              "environment": environment(("common-expression-language",))}
    text = markdown(report)
    write_outputs(args.out, "routing", report, text, figures(report))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
