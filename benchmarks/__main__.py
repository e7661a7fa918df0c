"""The benchmark suite: ``python -m benchmarks <name> [args...]`` (or ``grounding bench ...``).

    python -m benchmarks list                  # what exists, one line each
    python -m benchmarks overhead --grid       # one benchmark: its own arguments follow its name
    python -m benchmarks routing --help        # that benchmark's arguments
    python -m benchmarks all [--out DIR] [--limit N] [--skip a,b] [--only a,b]
                                               # a quick pass of every benchmark (each with a small
                                               # --limit, in its own process), into DIR

Every benchmark writes ``<name>.json`` (results, command, seed, versions and
load), ``<name>.md`` (a summary) and PNG plots into ``--out``
(``benchmarks/out`` unless said), shows a progress bar on stderr and takes
``--limit`` for a quick run. Benchmark modules are imported only when run, so
one that is missing or broken does not stop the others.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = Path(__file__).resolve().parent / "out"
PROG = "python -m benchmarks"


@dataclass(frozen=True)
class Bench:
    name: str
    module: str
    summary: str
    #: What ``all`` passes for a quick pass (before ``--out``); ``--limit`` is among them.
    #: Nothing in them leaves the machine (search-modes: ``--offline`` with the fake model).
    quick: tuple[str, ...]


BENCHMARKS: dict[str, Bench] = {b.name: b for b in (
    Bench("search-modes", "benchmarks.search_modes",
          "search modes (none, the loop, native) on questions with gold answers: accuracy, citations, latency, cost",
          ("--offline", "--model", "fake-searcher", "--limit", "3")),
    Bench("extraction", "benchmarks.extraction",
          "page extraction: word F1 on WCXB dev and scrapinghub, speed, memory (--compare: the alternatives)",
          ("--limit", "20")),
    Bench("overhead", "benchmarks.overhead",
          "wall time vs critical path with fake upstreams at fixed latencies (--grid: 1-5 steps x 3-20 "
          "results, CPU per request)", ("--limit", "2")),
    Bench("server-load", "benchmarks.server_load",
          "how many concurrent grounded streams one `grounding serve` process holds (CPU, memory, latency)",
          ("--limit", "1")),
    Bench("capacity", "benchmarks.capacity",
          "grounded requests per second at saturation against the extraction-bound limit "
          "(1 and N server processes, extraction pool or in process)", ("--limit", "1")),
    Bench("cache", "benchmarks.cache",
          "a cached answer's wall time against an uncached one; cache memory per 1,000 pages",
          ("--limit", "2")),
    Bench("routing", "benchmarks.routing",
          "routing decision time per request (50 models, 20 routes) and A/B shares against weights",
          ("--limit", "200")),
    Bench("startup", "benchmarks.startup",
          "start-up time of the command line, import grounding, and import litellm", ("--limit", "2")),
    Bench("citations", "benchmarks.citations",
          "citation truth: precision/recall of annotations with verify off, flag and repair on a labelled set of "
          "misbehaving answers over real pages, and the judges' own precision/recall and cost",
          ("--limit", "3")),
    Bench("offline", "benchmarks.offline",
          "the offline default (local model + local index): time to first token and to the whole answer",
          ("--limit", "1")),
    Bench("soak", "benchmarks.soak",
          "thousands of grounded requests through `grounding serve`: errors, RSS and open files start vs end",
          ("--limit", "20")),
    Bench("hardening", "benchmarks.hardening",
          "bad inputs and misbehaving upstreams against `grounding serve`: 5xx seen, faults handled, "
          "what a silent model, engine or page costs", ("--limit", "1")),
    Bench("first-byte", "benchmarks.first_byte",
          "when a grounded stream through `grounding serve` shows life: first byte, comment, progress, token",
          ("--limit", "1", "--model-ms", "1000")),
)}

#: Extra runs ``all`` makes: (label, benchmark, arguments).
EXTRA_QUICK: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("overhead --grid", "overhead", ("--grid", "--limit", "2")),
)


class BenchmarkUnavailable(Exception):
    """A benchmark's module is missing or fails to import."""


def load(name: str):
    """The module of benchmark ``name``, imported now."""
    bench = BENCHMARKS[name]
    try:
        return importlib.import_module(bench.module)
    except ModuleNotFoundError as exc:
        if exc.name == bench.module:
            raise BenchmarkUnavailable(f"benchmark {name!r} is not available: no module {bench.module} "
                                       f"(benchmarks/{bench.module.rsplit('.', 1)[1]}.py)") from exc
        raise BenchmarkUnavailable(f"benchmark {name!r} cannot run: {exc} (install the bench extra: "
                                   "pip install -e '.[bench]')") from exc
    except Exception as exc:  # a syntax error or a failing import inside it
        raise BenchmarkUnavailable(f"benchmark {name!r} failed to import: {type(exc).__name__}: {exc}") from exc


def available(name: str) -> bool:
    """Whether the module of ``name`` exists (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(BENCHMARKS[name].module) is not None


def usage() -> str:
    width = max(len(n) for n in BENCHMARKS) + 2
    lines = [
        f"usage: {PROG} <benchmark> [args...]   (or: grounding bench <benchmark> [args...])",
        f"       {PROG} list | all [--out DIR] [--limit N] [--skip a,b] [--only a,b]",
        "",
        "Runs one benchmark; it writes JSON, markdown and PNG plots into --out (default benchmarks/out),",
        "shows a progress bar and takes --limit N for a quick run. `<benchmark> --help` lists its arguments.",
        "",
        "benchmarks:",
    ]
    lines += [f"  {name:<{width}}{b.summary}" for name, b in BENCHMARKS.items()]
    lines += [
        "",
        "other commands:",
        f"  {'list':<{width}}what exists, one line each",
        f"  {'all':<{width}}a quick pass of every benchmark (small --limit, one process each) into --out",
    ]
    return "\n".join(lines)


def list_benchmarks() -> int:
    width = max(len(n) for n in BENCHMARKS) + 2
    for name, bench in BENCHMARKS.items():
        mark = "" if available(name) else "  [not available: no " + bench.module + "]"
        print(f"{name:<{width}}{bench.summary}{mark}")
    return 0


def run_one(name: str, argv: list[str]) -> int:
    """Run benchmark ``name`` in this process with ``argv``; its exit code."""
    try:
        module = load(name)
    except BenchmarkUnavailable as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    main = getattr(module, "main", None)
    if main is None:
        print(f"{PROG}: benchmark {name!r} has no main(argv) in {BENCHMARKS[name].module}", file=sys.stderr)
        return 2
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's --help and errors
        code = exc.code
    except KeyboardInterrupt:
        print(f"{PROG}: {name} interrupted", file=sys.stderr)
        return 130
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_all(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog=f"{PROG} all", description="A quick pass of every benchmark, each with a "
                                 "small --limit and in its own process, all writing into --out.")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT / "quick",
                    help=f"output folder (default {DEFAULT_OUT / 'quick'})")
    ap.add_argument("--limit", type=int, default=None,
                    help="pass --limit N to every benchmark (default: each one's own small limit)")
    ap.add_argument("--skip", default="", help="comma-separated benchmarks to leave out (e.g. offline)")
    ap.add_argument("--only", default="", help="comma-separated benchmarks to run (default: all)")
    args = ap.parse_args(argv)
    skip = {n.strip() for n in args.skip.split(",") if n.strip()}
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    unknown = (skip | only) - set(BENCHMARKS)
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}")

    plan: list[tuple[str, str, list[str]]] = []
    for name, bench in BENCHMARKS.items():
        plan.append((name, name, list(bench.quick)))
        plan += [(label, bench_name, list(extra)) for label, bench_name, extra in EXTRA_QUICK if bench_name == name]
    plan = [p for p in plan if p[1] not in skip and (not only or p[1] in only)]

    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    results = []
    for i, (label, name, quick) in enumerate(plan, 1):
        if args.limit is not None:
            j = quick.index("--limit")
            quick[j + 1] = str(args.limit)
        cmd = [sys.executable, "-m", "benchmarks", name, *quick, "--out", str(args.out)]
        shown = ["python", *cmd[1:]]
        print(f"[all] ({i}/{len(plan)}) {label}: {' '.join(shown)}", file=sys.stderr, flush=True)
        if not available(name):
            print(f"[all] {label}: not available (no {BENCHMARKS[name].module}); skipped", file=sys.stderr)
            results.append({"benchmark": label, "command": shown, "exit_code": None, "seconds": 0.0,
                            "status": "not available"})
            continue
        t0 = time.perf_counter()
        code = subprocess.run(cmd, cwd=ROOT, env=env).returncode
        seconds = round(time.perf_counter() - t0, 1)
        status = "ok" if code == 0 else f"failed (exit {code})"
        print(f"[all] {label}: {status} in {seconds} s", file=sys.stderr, flush=True)
        results.append({"benchmark": label, "command": shown, "exit_code": code, "seconds": seconds,
                        "status": status})

    lines = ["# Quick pass of every benchmark", "", f"Command: `{PROG} all {' '.join(argv)}`".rstrip() + "  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}", "",
             "| benchmark | status | seconds | command |", "| --- | --- | ---: | --- |"]
    lines += [f"| {r['benchmark']} | {r['status']} | {r['seconds']} | `{' '.join(r['command'])}` |" for r in results]
    (args.out / "all.json").write_text(json.dumps({"command": f"{PROG} all {' '.join(argv)}".strip(),
                                                   "results": results}, indent=2), encoding="utf-8")
    (args.out / "all.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    failed = [r for r in results if r["status"] != "ok"]
    return 1 if failed else 0


def bench_main(argv: list[str]) -> int:
    """``grounding bench ARGS`` and ``python -m benchmarks ARGS``: dispatch to a benchmark's ``main(argv)``."""
    if str(ROOT) not in sys.path:  # benchmarks/ and tests/fakes are not installed with the package
        sys.path.insert(0, str(ROOT))
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], list(argv[1:])
    if name == "list":
        return list_benchmarks()
    if name == "all":
        return run_all(rest)
    name = name.replace("_", "-")
    if name not in BENCHMARKS:
        print(f"{PROG}: unknown benchmark {argv[0]!r}; choose from {', '.join(BENCHMARKS)} (or list, all)",
              file=sys.stderr)
        return 2
    return run_one(name, rest)


if __name__ == "__main__":
    raise SystemExit(bench_main(sys.argv[1:]))
