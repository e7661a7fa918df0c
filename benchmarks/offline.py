"""The offline default, timed: the embedded model answering from the embedded index.

    python -m benchmarks.offline [--question Q] [--runs N] [--limit N] [--seed S] [--out DIR]

For each run: seconds to the first answer token and to the whole answer, as a
user of ``grounding.completion(stream=True)`` sees them, plus the model's
start-up (once per process) and each turn's own timing from ``metadata``.
``--limit N`` caps the runs at N (a quick run). Writes ``offline.json``,
``offline.md`` and ``offline-runs.png`` (per run: first token and whole
answer) into ``--out``, with the seed and the environment.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_OUT, SEED, environment, new_figure, progress, seed_everything, write_outputs
from benchmarks.overhead import loadavg

DEFAULT_QUESTION = "What does the nonlocal statement do?"


def one_answer(question: str) -> dict:
    """Stream one grounded answer from the local model; return its timings."""
    import grounding

    started = time.perf_counter()
    first = None
    text = []
    meta = None
    usage = None
    for chunk in grounding.completion(model="local", messages=[{"role": "user", "content": question}],
                                      web_search={"engine": "local"}, stream=True,
                                      stream_options={"include_usage": True}):
        for choice in chunk.choices:
            if choice.delta.content:
                if first is None:
                    first = time.perf_counter() - started
                text.append(choice.delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.metadata is not None:
            meta = chunk.metadata
    total = time.perf_counter() - started
    assert meta is not None and first is not None, "no answer streamed"
    return {
        "seconds_to_first_token": round(first, 2),
        "seconds_to_whole_answer": round(total, 2),
        "answer_words": len("".join(text).split()),
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "turns": [{"kind": t.kind, "duration_s": round(t.duration_ms / 1000, 2),
                   "ttft_s": round((t.time_to_first_token_ms or 0) / 1000, 2),
                   "prompt_tokens": t.prompt_tokens, "completion_tokens": t.completion_tokens}
                  for t in meta.turns],
        "sources": len([s for s in meta.sources if s.id]),
        "annotations": meta.citations.annotations,
        "inferred_citations": meta.citations.inferred,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Offline default ({result['date']})", "",
        f"Question: {result['question']!r}; model start-up {result['model_startup_seconds']} s "
        "(weights joined and cached beforehand); seed "
        f"{result.get('seed')}; load average {result['machine']['load_average']}.", "",
        "| run | first token (s) | whole answer (s) | prompt tokens | completion tokens | turns (s) |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(result["runs"], 1):
        turns = ", ".join(f"{t['kind']} {t['duration_s']}" for t in r["turns"])
        lines.append(f"| {i} | {r['seconds_to_first_token']} | {r['seconds_to_whole_answer']} | "
                     f"{r['prompt_tokens']} | {r['completion_tokens']} | {turns} |")
    return "\n".join(lines) + "\n"


def runs_figure(result: dict[str, Any]) -> Any:
    """Per run: seconds to the first token and to the whole answer."""
    runs = result["runs"]
    fig, ax = new_figure(max(4.0, 1.2 * len(runs) + 2.5), 3.6)
    x = list(range(1, len(runs) + 1))
    ax.bar([i - 0.2 for i in x], [r["seconds_to_first_token"] for r in runs], width=0.4, label="first token")
    ax.bar([i + 0.2 for i in x], [r["seconds_to_whole_answer"] for r in runs], width=0.4, label="whole answer")
    ax.set_xticks(x, [f"run {i}" for i in x])
    ax.set_ylabel("seconds")
    ax.set_title(f"Offline default, model start-up {result['model_startup_seconds']} s", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.offline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--question", default=DEFAULT_QUESTION)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="quick run: at most N runs")
    parser.add_argument("--seed", type=int, default=SEED, help=f"recorded, and Python's random seeded (default {SEED})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.limit is not None:
        if args.limit < 1:
            parser.error("--limit must be at least 1")
        args.runs = min(args.runs, args.limit)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROUNDING_MODEL", "GROUNDING_ENGINE", "GROUNDING_CORPUS"):
        os.environ.pop(key, None)
    seed = seed_everything(args.seed)

    from grounding.local_model import get_local_server

    t0 = time.perf_counter()
    get_local_server(progress=lambda m: print(f"  {m}", file=sys.stderr))
    startup = round(time.perf_counter() - t0, 2)
    runs = []
    for _ in progress(range(args.runs), total=args.runs, desc="offline", unit="answer"):
        runs.append(one_answer(args.question))

    result = {
        "benchmark": "offline",
        "command": " ".join(["python -m benchmarks.offline", *(argv if argv is not None else sys.argv[1:])]),
        "question": args.question,
        "seed": seed,
        "model_startup_seconds": startup,
        "runs": runs,
        "median_seconds_to_first_token": statistics.median(r["seconds_to_first_token"] for r in runs),
        "median_seconds_to_whole_answer": statistics.median(r["seconds_to_whole_answer"] for r in runs),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average": loadavg()},
        "environment": environment(("xllamacpp",)),
        "settings": {"runs": args.runs, "limit": args.limit},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    text = markdown(result)
    write_outputs(args.out, "offline", result, text, {"runs": runs_figure(result)})
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
