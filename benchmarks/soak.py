"""Soak: thousands of grounded requests through one ``grounding serve`` process;
does its memory or its count of open files grow?

Usage::

    python -m benchmarks soak [--requests 3000] [--concurrency 4] [--warmup 50] [--limit N] [--out DIR]

Set-up (as ``benchmarks.server_load``): the fakes in a child process (the model,
the search engine ``searxng`` and the web of real WCXB pages, all answering at
once), and the real ``python -m grounding.cli serve --config FILE`` in another,
with an API key. The load: ``--concurrency`` workers send ``--requests``
grounded requests back to back (``web_search: {engine: searxng,
max_results: 3}``), streamed and not in turn, over the questions of
``benchmarks/questions/shared_data.jsonl`` (so different pages are fetched and
extracted), after ``--warmup`` requests that are not counted.

Measured on the server process (``/proc``): RSS and open file descriptors
after the warm-up (start), every ``--requests / 30`` requests, and at the end;
the errors (a status other than 200, a stream without ``[DONE]`` or ending in
an error event, a completion without an answer). Outputs: ``soak.json``,
``soak.md``, ``soak-memory.png`` (RSS and descriptors against requests served).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.overhead import DEFAULT_OUT, loadavg
from benchmarks.server_load import (ENGINE, MAX_RESULTS, GROUNDED_MODEL, Latencies, LoadFakes, _children,
                                    cpu_seconds, grounding_config, memory_kib, serve_env)

NAME = "soak"
QUESTIONS = Path(__file__).resolve().parent / "questions" / "shared_data.jsonl"


def open_fds(pids: list[int]) -> int:
    """Open file descriptors of ``pids`` (``/proc/<pid>/fd``)."""
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return total


def questions() -> list[str]:
    return [json.loads(line)["question"] for line in QUESTIONS.read_text("utf-8").splitlines() if line.strip()]


async def one_request(client: Any, url: str, body: dict[str, Any]) -> str | None:
    """Send one request; None if it was a whole answer, else what went wrong."""
    try:
        if body["stream"]:
            async with client.stream("POST", url, json=body) as response:
                raw = b"".join([chunk async for chunk in response.aiter_bytes()])
            if response.status_code != 200:
                return f"HTTP {response.status_code}"
            events = [e for e in raw.split(b"\n\n") if e]
            if not events or events[-1] != b"data: [DONE]":
                return "stream without [DONE]"
            return None
        response = await client.post(url, json=body)
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        data = response.json()
        return None if data.get("choices") and data["choices"][0]["message"].get("content") else "empty answer"
    except Exception as exc:  # noqa: BLE001 (counted as an error of the run)
        return type(exc).__name__


async def run_load(url: str, key: str, bodies: list[dict[str, Any]], concurrency: int, *,
                   on_done: Any = None, timeout: float = 120.0) -> list[str | None]:
    """Send ``bodies`` with ``concurrency`` workers; the outcome of each, in order."""
    import httpx

    outcomes: list[str | None] = [None] * len(bodies)
    queue = iter(enumerate(bodies))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, headers={"Authorization": f"Bearer {key}"}) as client:
        async def worker() -> None:
            for i, body in queue:
                outcomes[i] = await one_request(client, url, body)
                if on_done is not None:
                    on_done()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


def sample(pid: int, served: int, t0: float) -> dict[str, Any]:
    pids = _children(pid)
    mem = memory_kib(pids)
    return {"requests": served, "seconds": round(time.perf_counter() - t0, 1), "rss_mib": round(mem["rss_kib"] / 1024, 1),
            "fds": open_fds(pids), "cpu_s": round(cpu_seconds(pids), 1)}


def markdown(report: dict[str, Any]) -> str:
    r = report["result"]
    start, end = r["start"], r["end"]
    lines = [
        "# Soak: grounded requests through one `grounding serve` process",
        "",
        f"Command: `{report['command']}`  ",
        f"{r['requests']} grounded requests (streamed and not, {report['config']['questions']} questions, "
        f"3 results each), {report['config']['concurrency']} at a time, after {report['config']['warmup']} "
        f"warm-up requests; {r['seconds']:.0f} s, {r['requests'] / max(r['seconds'], 1e-9):.1f} requests/s. "
        f"Load average before/after: {report['load_before']} / {report['load_after']} (2 shared cores: "
        "other engineers' jobs ran meanwhile).",
        "",
        "| | requests | errors | RSS MiB | open fds | server CPU s |",
        "|---|---:|---:|---:|---:|---:|",
        f"| start (after warm-up) | 0 | | {start['rss_mib']} | {start['fds']} | {start['cpu_s']} |",
        f"| end | {r['requests']} | {r['errors']} | {end['rss_mib']} | {end['fds']} | {end['cpu_s']} |",
        f"| growth | | | **{end['rss_mib'] - start['rss_mib']:+.1f}** | **{end['fds'] - start['fds']:+d}** | |",
        "",
        f"RSS peak during the run: {max(s['rss_mib'] for s in r['samples'])} MiB; the second half's growth: "
        f"{r['second_half_rss_growth_mib']:+.1f} MiB. Errors by kind: {r['errors_by_kind'] or 'none'}.",
    ]
    return "\n".join(lines) + "\n"


def figures(report: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.common import new_figure

    samples = report["result"]["samples"]
    fig, ax = new_figure()
    xs = [s["requests"] for s in samples]
    ax.plot(xs, [s["rss_mib"] for s in samples], marker="o", color="tab:blue", label="RSS (MiB)")
    ax.set_xlabel("grounded requests served")
    ax.set_ylabel("RSS (MiB)", color="tab:blue")
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    ax2.plot(xs, [s["fds"] for s in samples], marker="s", color="tab:orange", label="open fds")
    ax2.set_ylabel("open file descriptors", color="tab:orange")
    ax2.set_ylim(bottom=0)
    ax.set_title("grounding serve under a soak: memory and descriptors")
    return {"memory": fig}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import SEED, environment, seed_everything, write_outputs, progress
    from tests.fakes.live_server import ServeProcess

    ap = argparse.ArgumentParser(prog="python -m benchmarks soak", description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=3000, help="grounded requests measured (default 3000)")
    ap.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    ap.add_argument("--warmup", type=int, default=50, help="requests before the start sample (default 50)")
    ap.add_argument("--limit", type=int, default=None, help="quick run: N requests, N/5 warm-up")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    total, warmup = args.requests, args.warmup
    if args.limit is not None:
        total, warmup = max(1, args.limit), max(1, args.limit // 5)
    if total < 1 or args.concurrency < 1 or warmup < 0:
        ap.error("--requests and --concurrency must be at least 1, --warmup at least 0")
    seed_everything(args.seed)
    for name in ("GROUNDING_ENGINE", "GROUNDING_MODEL", "GROUNDING_CONFIG", "GROUNDING_REDIS_URL"):
        os.environ.pop(name, None)
    asked = questions()

    def body(i: int) -> dict[str, Any]:
        return {"model": GROUNDED_MODEL, "messages": [{"role": "user", "content": asked[i % len(asked)]}],
                "stream": i % 2 == 0, "web_search": {"engine": ENGINE, "max_results": MAX_RESULTS}}

    load_before = loadavg()
    folder = Path(tempfile.mkdtemp(prefix="grounding-soak-"))
    print("[soak] starting the fakes and grounding serve ...", file=sys.stderr)
    fakes = LoadFakes()
    try:
        fakes.configure(Latencies(model_ms=0, chunk_ms=0, search_ms=0, page_min_ms=0, page_max_ms=0), {})
        key = "sk-soak-" + secrets.token_hex(16)
        with ServeProcess(grounding_config(fakes.llm_url, folder, key), env=serve_env(fakes),
                          start_timeout=120) as server:
            url = f"{server.base_url}/chat/completions"
            pid = server.process.pid
            warm = asyncio.run(run_load(url, key, [body(i) for i in range(warmup)], args.concurrency))
            t0 = time.perf_counter()
            samples = [sample(pid, 0, t0)]
            every = max(1, total // 30)
            outcomes: list[str | None] = []
            bar = progress(range(total), total=total, desc="soak", unit="req")
            bar_iter = iter(bar)
            for start in range(0, total, every):
                chunk = [body(warmup + i) for i in range(start, min(total, start + every))]
                outcomes += asyncio.run(run_load(url, key, chunk, args.concurrency,
                                                 on_done=lambda: next(bar_iter, None)))
                samples.append(sample(pid, len(outcomes), t0))
                fakes.turns()  # keep the fakes' request logs small
            next(bar_iter, None)
            seconds = time.perf_counter() - t0
        output = server.output
    finally:
        fakes.close()
    errors = [o for o in outcomes if o is not None]
    kinds: dict[str, int] = {}
    for e in errors:
        kinds[e] = kinds.get(e, 0) + 1
    half = samples[len(samples) // 2]
    result = {
        "requests": len(outcomes), "errors": len(errors), "errors_by_kind": kinds,
        "warmup_errors": sum(o is not None for o in warm), "seconds": round(seconds, 1),
        "start": samples[0], "end": samples[-1], "samples": samples,
        "second_half_rss_growth_mib": round(samples[-1]["rss_mib"] - half["rss_mib"], 1),
        "tracebacks_in_server_log": output.count("Traceback"),
    }
    command = "python -m benchmarks soak " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"benchmark": NAME, "command": command.strip(), "seed": args.seed,
              "config": {"requests": total, "concurrency": args.concurrency, "warmup": warmup,
                         "questions": len(asked), "engine": ENGINE, "max_results": MAX_RESULTS},
              "environment": environment(), "load_before": load_before, "load_after": loadavg(), "result": result}
    write_outputs(args.out, NAME, report, markdown(report), figures(report))
    print(f"[soak] {result['requests']} requests, {result['errors']} errors; RSS {samples[0]['rss_mib']} -> "
          f"{samples[-1]['rss_mib']} MiB, fds {samples[0]['fds']} -> {samples[-1]['fds']}", file=sys.stderr)
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
