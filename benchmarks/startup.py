"""Startup benchmark: how long the command line and ``import grounding`` take.

Usage::

    python -m benchmarks.startup [--runs N] [--limit N] [--seed S] [--out DIR]

Each command runs ``--runs`` times (default 10) as a fresh subprocess with the
venv's executables (the Python running this module and the ``grounding``
script beside it), after one discarded warm-up run; the wall time of each is
measured from spawn to exit. Commands:

* ``python -c pass``: the interpreter alone, for reference;
* ``python -c "import grounding"``: the package (its names load lazily);
* ``grounding --help``: the console script;
* ``python -c "import grounding.api"``: the modules a first completion loads
  before litellm (request, loop, prompts, citations, fetcher, ...);
* ``python -c "import litellm"``: for contrast (what the first completion or
  search pays), with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` as the library sets
  it (without it litellm tries to download its model cost map at import).

For each command one more run under ``-X importtime`` lists the biggest
top-level imports, and one run reports which heavy packages (litellm, openai,
trafilatura, lxml, httpx, pydantic) ended up imported. ``--limit N`` caps
the runs per command at N (a quick run). Results go to ``--out`` as
``startup.json``, ``startup.md`` and ``startup-medians.png`` (median per
command, whisker to the p90), with the seed and the environment; a progress
bar goes to stderr.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_OUT, SEED, environment, new_figure, progress, seed_everything, write_outputs
from benchmarks.overhead import loadavg, p90

HEAVY = ("litellm", "openai", "trafilatura", "lxml", "httpx", "pydantic", "aiohttp")


def commands(python: str, script: str) -> list[dict[str, Any]]:
    """The measured commands: label, argv, and a Python snippet that runs the same thing
    then prints which heavy packages were imported."""
    report = f"import sys; print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    return [
        {"label": "python -c pass", "argv": [python, "-c", "pass"], "probe": report},
        {"label": 'python -c "import grounding"', "argv": [python, "-c", "import grounding"],
         "probe": f"import grounding; {report}"},
        {"label": "grounding --help", "argv": [script, "--help"],
         "probe": "import contextlib, io, sys\nsys.argv = ['grounding', '--help']\nfrom grounding.cli import main\n"
                  "try:\n    with contextlib.redirect_stdout(io.StringIO()):\n        main()\n"
                  f"except SystemExit:\n    pass\n{report}",
         "importtime_argv": [python, "-X", "importtime", script, "--help"]},
        {"label": 'python -c "import grounding.api"', "argv": [python, "-c", "import grounding.api"],
         "probe": f"import grounding.api; {report}"},
        {"label": 'python -c "import litellm"', "argv": [python, "-c", "import litellm"],
         "probe": f"import litellm; {report}"},
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["GROUNDING_ALLOW_PRIVATE_NETWORKS"] = "1"
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    return env


def time_once(argv: list[str], env: dict[str, str]) -> float:
    """Wall time (ms) of one subprocess from spawn to exit; raises if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
    wall = (time.perf_counter() - t0) * 1000
    if proc.returncode != 0:
        raise RuntimeError(f"{argv!r} exited with {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return wall


_IMPORTTIME = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")


def top_imports(argv: list[str], env: dict[str, str], n: int = 8) -> dict[str, Any]:
    """Total import time and the ``n`` biggest top-level imports (cumulative ms), from ``-X importtime``."""
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300)
    top: list[tuple[str, float]] = []
    for line in proc.stderr.splitlines():
        m = _IMPORTTIME.match(line)
        if m and len(m[3]) == 1:  # one space: imported at top level
            top.append((m[4], int(m[2]) / 1000))
    top.sort(key=lambda x: -x[1])
    return {"total_ms": round(sum(ms for _, ms in top), 1),
            "top": [{"module": name, "cumulative_ms": round(ms, 1)} for name, ms in top[:n]]}


def heavy_loaded(python: str, probe: str, env: dict[str, str]) -> list[str]:
    proc = subprocess.run([python, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("HEAVY:")), None)
    if line is None:
        raise RuntimeError(f"the probe printed nothing: {proc.stderr[-500:]}")
    return [m for m in line.removeprefix("HEAVY:").split(",") if m]


def _say(text: str) -> None:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the bench extra
        print(text, file=sys.stderr, flush=True)
    else:
        tqdm.write(text, file=sys.stderr)


def markdown(report: dict[str, Any]) -> str:
    v = report.get("environment") or report["versions"]
    lines = [
        "# Startup",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}  ",
        f"Versions: Python {v['python']}, grounding {v.get('grounding')} (git {str(v['git'].get('commit'))[:10]}"
        f"{', dirty' if v['git'].get('dirty') else ''}), litellm {v.get('litellm')}; {v['cpus']} CPUs, "
        f"{v['platform']}  ",
        f"Load average before/after: {report['loadavg_before']} / {report['loadavg_after']}  ",
        f"{report['settings']['runs']} runs per command after a warm-up, fresh subprocesses, wall time from spawn "
        "to exit; `LITELLM_LOCAL_MODEL_COST_MAP=True`"
        + (f"; seed {report['seed']}" if report.get("seed") is not None else "") + ".",
        "",
        "| command | median ms | p90 ms | min ms | max ms | heavy packages imported | biggest imports (-X importtime) |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in report["results"]:
        top = ", ".join(f"{t['module']} {t['cumulative_ms']:.0f}" for t in row["imports"]["top"][:4]) or "-"
        lines.append(
            f"| `{row['label']}` | {row['median_ms']:.0f} | {row['p90_ms']:.0f} | {row['min_ms']:.0f} "
            f"| {row['max_ms']:.0f} | {', '.join(row['heavy_loaded']) or 'none'} | {top} |"
        )
    lines.append("")
    return "\n".join(lines)


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    path.write_text(markdown(report), encoding="utf-8")


def medians_figure(report: dict[str, Any]) -> Any:
    """Horizontal bars: each command's median wall time, whisker to its p90."""
    rows = report["results"]
    fig, ax = new_figure(7.0, 0.5 * len(rows) + 1.4)
    y = list(range(len(rows)))
    med = [r["median_ms"] for r in rows]
    ax.barh(y, med, height=0.6, color="#1f77b4",
            xerr=[[0] * len(rows), [r["p90_ms"] - r["median_ms"] for r in rows]], capsize=3)
    for yi, m in zip(y, med):
        ax.annotate(f"{m:.0f} ms", (m, yi), xytext=(4, -10), textcoords="offset points", fontsize=8)
    ax.set_yticks(y, [r["label"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"wall time from spawn to exit, ms (median of {report['settings']['runs']}, whisker to p90)")
    ax.set_xlim(0, max((r["p90_ms"] for r in rows), default=1) * 1.15)  # room for the labels
    ax.set_title("Start-up", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10, help="runs per command (default 10)")
    ap.add_argument("--limit", type=int, default=None, help="quick run: at most N runs per command")
    ap.add_argument("--seed", type=int, default=SEED, help=f"recorded (nothing here is random; default {SEED})")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = ap.parse_args(argv)
    if args.limit is not None:
        if args.limit < 1:
            ap.error("--limit must be at least 1")
        args.runs = min(args.runs, args.limit)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    python = sys.executable
    script = str(Path(python).with_name("grounding"))
    if not Path(script).exists():
        ap.error(f"no grounding script beside {python}; install the package (pip install -e .)")
    seed = seed_everything(args.seed)
    env = _env()
    load_before = loadavg()
    cmds = commands(python, script)
    # Per command: a warm-up, the runs, one -X importtime run and one probe.
    jobs = [(cmd, step) for cmd in cmds for step in ["warm-up", *range(args.runs), "imports", "probe"]]
    results = []
    walls: list[float] = []
    imports: dict[str, Any] = {}
    for cmd, step in progress(jobs, total=len(jobs), desc="startup", unit="process"):
        if step == "warm-up":
            walls = []
            time_once(cmd["argv"], env)
        elif step == "imports":
            imports = top_imports(cmd.get("importtime_argv") or [python, "-X", "importtime", *cmd["argv"][1:]], env)
        elif step == "probe":
            heavy = heavy_loaded(python, cmd["probe"], env)
            row = {
                "label": cmd["label"],
                "argv": cmd["argv"],
                "runs_ms": [round(w, 1) for w in walls],
                "median_ms": round(statistics.median(walls), 1),
                "p90_ms": round(p90(walls), 1),
                "min_ms": round(min(walls), 1),
                "max_ms": round(max(walls), 1),
                "heavy_loaded": heavy,
                "imports": imports,
            }
            results.append(row)
            _say(f"{cmd['label']}: median {row['median_ms']:.0f} ms (p90 {row['p90_ms']:.0f}); "
                 f"heavy packages imported: {', '.join(heavy) or 'none'}")
        else:
            walls.append(time_once(cmd["argv"], env))
    report = {
        "benchmark": "startup",
        "command": " ".join(["python -m benchmarks.startup", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seed": seed,
        "environment": environment(),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "settings": {"runs": args.runs, "limit": args.limit, "python": python, "script": script,
                     "env": {k: env.get(k) for k in ("LITELLM_LOCAL_MODEL_COST_MAP", "GROUNDING_ALLOW_PRIVATE_NETWORKS")}},
        "results": results,
    }
    write_outputs(args.out, "startup", report, markdown(report), {"medians": medians_figure(report)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
