"""The offline default, timed: the embedded model answering from the embedded index.

    python -m benchmarks.offline [--question Q] [--runs N] [--out DIR]

For each run: seconds to the first answer token and to the whole answer, as a
user of ``grounding.completion(stream=True)`` sees them, plus the model's
start-up (once per process) and each turn's own timing from ``metadata``.
Writes ``offline.json`` and ``offline.md`` into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--question", default=DEFAULT_QUESTION)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/out")
    args = parser.parse_args(argv)
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROUNDING_MODEL", "GROUNDING_ENGINE", "GROUNDING_CORPUS"):
        os.environ.pop(key, None)

    from grounding.local_model import get_local_server

    t0 = time.perf_counter()
    get_local_server(progress=lambda m: print(f"  {m}", file=sys.stderr))
    startup = round(time.perf_counter() - t0, 2)
    runs = []
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs}: {args.question!r}", file=sys.stderr)
        runs.append(one_answer(args.question))
        print(f"  first token {runs[-1]['seconds_to_first_token']} s, "
              f"whole answer {runs[-1]['seconds_to_whole_answer']} s", file=sys.stderr)

    result = {
        "question": args.question,
        "model_startup_seconds": startup,
        "runs": runs,
        "median_seconds_to_first_token": statistics.median(r["seconds_to_first_token"] for r in runs),
        "median_seconds_to_whole_answer": statistics.median(r["seconds_to_whole_answer"] for r in runs),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "offline.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"# Offline default ({result['date']})", "",
        f"Question: {args.question!r}; model start-up {startup} s (weights joined and cached beforehand).", "",
        "| run | first token (s) | whole answer (s) | prompt tokens | completion tokens | turns (s) |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(runs, 1):
        turns = ", ".join(f"{t['kind']} {t['duration_s']}" for t in r["turns"])
        lines.append(f"| {i} | {r['seconds_to_first_token']} | {r['seconds_to_whole_answer']} | "
                     f"{r['prompt_tokens']} | {r['completion_tokens']} | {turns} |")
    (out / "offline.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
