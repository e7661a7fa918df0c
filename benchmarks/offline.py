"""The offline default, timed: the embedded model answering from the embedded index.

    python -m benchmarks.offline [--questions N] [--runs N] [--limit N] [--ablation] [--seed S] [--out DIR]
                                 [--source-tokens N] [--query question|model] [--threads N]

Each run asks one question (the README's first, then everyday questions of
``benchmarks/questions/python_docs.jsonl``, each a different prompt, so the
prompt cache helps only with what questions share) through
``grounding.completion(model="local", web_search={"engine": "local"},
stream=True)`` and records what a user sees, seconds to the first answer token
and to the whole answer, and what does not depend on how busy the machine is:
model calls, prompt tokens (and how many llama.cpp took from its prompt cache),
completion tokens, and llama.cpp's own prompt and generation speeds in tokens
per second. The model's start-up is timed once per process, before the runs.

``--source-tokens``, ``--query`` and ``--threads`` set ``GROUNDING_SOURCE_TOKENS``,
``GROUNDING_LOCAL_QUERY`` and ``GROUNDING_LOCAL_THREADS`` for the run.
``--ablation`` runs, each in a fresh process (a fresh model server): the
earlier profile (the model writes the query, 1,500 source tokens), then each
change of the current default added in turn, then the default with two
generation threads, and reports what each change buys.

Writes ``offline.json``, ``offline.md`` and ``offline-runs.png`` (per run:
first token and whole answer), or ``offline-ablation.*``, into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_OUT, SEED, environment, new_figure, progress, seed_everything, write_outputs
from benchmarks.overhead import loadavg

DEFAULT_QUESTION = "What does the nonlocal statement do?"
QUESTIONS = Path(__file__).resolve().parent / "questions" / "python_docs.jsonl"

#: ``--ablation``: (label, environment) of each configuration, in the order the changes were made.
ABLATION = (
    ("earlier profile: model writes the query, 1,500 source tokens",
     {"GROUNDING_LOCAL_QUERY": "model", "GROUNDING_SOURCE_TOKENS": "1500"}),
    ("+ 700 source tokens", {"GROUNDING_LOCAL_QUERY": "model", "GROUNDING_SOURCE_TOKENS": "700"}),
    ("+ the question is the first query", {"GROUNDING_SOURCE_TOKENS": "700"}),
    ("+ 600 source tokens (the default)", {}),
    ("default, 2 generation threads", {"GROUNDING_LOCAL_THREADS": "2"}),
)


def questions(n: int) -> list[str]:
    """The README's question, then the first ``n - 1`` questions of the python-docs set."""
    out = [DEFAULT_QUESTION]
    for line in QUESTIONS.read_text(encoding="utf-8").splitlines():
        if len(out) >= n:
            break
        if line.strip():
            out.append(json.loads(line)["question"])
    return out[:n]


def one_answer(question: str) -> dict:
    """Stream one grounded answer from the local model; return its timings and token counts."""
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
    answer_turn = next((t for t in reversed(meta.turns) if t.kind == "answer"), meta.turns[-1])
    return {
        "question": question,
        "seconds_to_first_token": round(first, 2),
        "seconds_to_whole_answer": round(total, 2),
        "answer_words": len("".join(text).split()),
        "model_calls": len(meta.turns),
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "answer_prompt_tokens": answer_turn.prompt_tokens,
        "answer_cached_prompt_tokens": answer_turn.cached_prompt_tokens,
        # llama.cpp's own speeds when it reports them, else observed: the prompt tokens it had to read
        # over the answer turn's time to first token, the tokens it wrote over the rest of the turn.
        "prompt_tokens_per_s": answer_turn.prompt_tokens_per_s or _rate(
            answer_turn.prompt_tokens - (answer_turn.cached_prompt_tokens or 0), answer_turn.time_to_first_token_ms),
        "output_tokens_per_s": answer_turn.output_tokens_per_s or _rate(
            answer_turn.completion_tokens, (answer_turn.duration_ms or 0) - (answer_turn.time_to_first_token_ms or 0)),
        "turns": [{"kind": t.kind, "duration_s": round(t.duration_ms / 1000, 2),
                   "ttft_s": round((t.time_to_first_token_ms or 0) / 1000, 2),
                   "prompt_tokens": t.prompt_tokens, "cached_prompt_tokens": t.cached_prompt_tokens,
                   "completion_tokens": t.completion_tokens, "prompt_tokens_per_s": t.prompt_tokens_per_s,
                   "output_tokens_per_s": t.output_tokens_per_s} for t in meta.turns],
        "sources": len([s for s in meta.sources if s.id]),
        "queries": list(meta.queries),
        "annotations": meta.citations.annotations,
        "inferred_citations": meta.citations.inferred,
    }


def _rate(tokens: int | None, ms: float | None) -> float | None:
    """Tokens per second over ``ms`` milliseconds (None when either is missing)."""
    return round(tokens / (ms / 1000), 1) if tokens and ms and ms > 0 else None


def _median(rows: list[dict], key: str) -> float | int | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    if not values:
        return None
    value = round(statistics.median(values), 2)
    return int(value) if float(value).is_integer() and all(isinstance(v, int) for v in values) else value


def summarize(runs: list[dict]) -> dict[str, Any]:
    keys = ("seconds_to_first_token", "seconds_to_whole_answer", "model_calls", "prompt_tokens",
            "answer_prompt_tokens", "answer_cached_prompt_tokens", "prompt_tokens_per_s", "output_tokens_per_s",
            "completion_tokens")
    return {f"median_{k}": _median(runs, k) for k in keys}


def measure(n: int, *, say: Any = None) -> dict[str, Any]:
    """Start the model (timed), then answer ``n`` questions; the process's environment decides the settings."""
    from grounding.local_model import get_local_server

    say = say or (lambda m: print(f"  {m}", file=sys.stderr))
    t0 = time.perf_counter()
    get_local_server(progress=say)
    startup = round(time.perf_counter() - t0, 2)
    load_before = loadavg()
    runs = [one_answer(q) for q in progress(questions(n), total=n, desc="offline", unit="answer")]
    return {"model_startup_seconds": startup, "runs": runs, **summarize(runs),
            "load_average": {"before": load_before, "after": loadavg()},
            "settings": {k: os.environ.get(k) for k in ("GROUNDING_SOURCE_TOKENS", "GROUNDING_LOCAL_QUERY",
                                                        "GROUNDING_LOCAL_THREADS", "GROUNDING_LOCAL_CTX")}}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Offline default ({result['date']})", "",
        f"Command: `{result['command']}`; model start-up {result['model_startup_seconds']} s (weights joined and "
        f"cached beforehand); seed {result.get('seed')}; load average {result['load_average']} "
        f"(2 cores{', shared with other work' if (result['load_average']['before'] or [0])[0] > 1 else ''}).", "",
        "| run | question | first token (s) | whole answer (s) | model calls | prompt tokens (answer turn, cached) | "
        "prompt tok/s | output tok/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(result["runs"], 1):
        lines.append(f"| {i} | {r['question']} | {r['seconds_to_first_token']} | {r['seconds_to_whole_answer']} | "
                     f"{r['model_calls']} | {r['prompt_tokens']} ({r['answer_prompt_tokens']}, "
                     f"{r['answer_cached_prompt_tokens']}) | {r['prompt_tokens_per_s']} | {r['output_tokens_per_s']} |")
    lines += ["", f"Median: first token {result['median_seconds_to_first_token']} s, whole answer "
                  f"{result['median_seconds_to_whole_answer']} s, {result['median_prompt_tokens']} prompt tokens."]
    return "\n".join(lines) + "\n"


def ablation_markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Offline default: what each change buys ({result['date']})", "",
        f"Command: `{result['command']}`. Each configuration in a fresh process (model start-up excluded), "
        f"{result['settings']['runs']} questions each, medians. Wall times depend on the machine's load "
        "(load averages below); the token counts do not.", "",
        "| configuration | first token (s) | whole answer (s) | model calls | prompt tokens | answer-turn prompt "
        "(cached) | prompt tok/s | output tok/s | load avg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in result["configurations"]:
        lines.append(f"| {c['label']} | {c['median_seconds_to_first_token']} | {c['median_seconds_to_whole_answer']} "
                     f"| {c['median_model_calls']} | {c['median_prompt_tokens']} | {c['median_answer_prompt_tokens']} "
                     f"({c['median_answer_cached_prompt_tokens']}) | {c['median_prompt_tokens_per_s']} | "
                     f"{c['median_output_tokens_per_s']} | {c['load_average']['before'][0] if c['load_average']['before'] else '?'} |")
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


def ablation_figure(result: dict[str, Any]) -> Any:
    """Per configuration: median first token (bars) and prompt tokens per answer (line)."""
    configs = result["configurations"]
    fig, ax = new_figure(8.0, 3.8)
    x = list(range(len(configs)))
    ax.bar(x, [c["median_seconds_to_first_token"] or 0 for c in configs], color="#4c72b0", label="first token (s)")
    ax.set_ylabel("seconds to first token")
    ax.set_xticks(x, [f"{i + 1}" for i in x])
    ax.set_xlabel("; ".join(f"{i + 1}: {c['label']}" for i, c in enumerate(configs)), fontsize=6, wrap=True)
    twin = ax.twinx()
    twin.plot(x, [c["median_prompt_tokens"] or 0 for c in configs], "o-", color="#dd8452", label="prompt tokens")
    twin.set_ylabel("prompt tokens per answer")
    ax.set_title("Offline default: each change", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _child(args: argparse.Namespace) -> int:
    """``--_child``: one configuration, its result as JSON on stdout."""
    result = measure(args.runs, say=lambda m: print(f"  {m}", file=sys.stderr))
    print(json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.offline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="questions answered (default 3, each a different one)")
    parser.add_argument("--limit", type=int, default=None, help="quick run: at most N runs")
    parser.add_argument("--ablation", action="store_true", help="each change of the profile, in a fresh process")
    parser.add_argument("--source-tokens", type=int, default=None, help="GROUNDING_SOURCE_TOKENS for the run")
    parser.add_argument("--query", choices=("question", "model"), default=None, help="GROUNDING_LOCAL_QUERY")
    parser.add_argument("--threads", type=int, default=None, help="GROUNDING_LOCAL_THREADS for the run")
    parser.add_argument("--seed", type=int, default=SEED, help=f"recorded, and Python's random seeded (default {SEED})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.limit is not None:
        if args.limit < 1:
            parser.error("--limit must be at least 1")
        args.runs = min(args.runs, args.limit)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY", "GROUNDING_MODEL",
                "GROUNDING_ENGINE", "GROUNDING_CORPUS"):
        os.environ.pop(key, None)
    for flag, env in ((args.source_tokens, "GROUNDING_SOURCE_TOKENS"), (args.query, "GROUNDING_LOCAL_QUERY"),
                      (args.threads, "GROUNDING_LOCAL_THREADS")):
        if flag is not None:
            os.environ[env] = str(flag)
    if args._child:
        return _child(args)
    seed = seed_everything(args.seed)
    command = " ".join(["python -m benchmarks.offline", *(argv if argv is not None else sys.argv[1:])])
    common = {"command": command, "seed": seed,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
              "environment": environment(("xllamacpp",)),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if args.ablation:
        configurations = []
        for label, env in ABLATION:
            print(f"[offline] {label}", file=sys.stderr)
            child_env = {k: v for k, v in os.environ.items()
                         if k not in ("GROUNDING_SOURCE_TOKENS", "GROUNDING_LOCAL_QUERY", "GROUNDING_LOCAL_THREADS")}
            proc = subprocess.run([sys.executable, "-m", "benchmarks.offline", "--_child", "--runs", str(args.runs)],
                                  env={**child_env, **env}, stdout=subprocess.PIPE, text=True,
                                  cwd=Path(__file__).resolve().parents[1])
            if proc.returncode != 0:
                print(f"[offline] {label}: failed (exit {proc.returncode})", file=sys.stderr)
                continue
            configurations.append({"label": label, "env": env, **json.loads(proc.stdout.strip().splitlines()[-1])})
        result = {"benchmark": "offline-ablation", **common, "configurations": configurations,
                  "settings": {"runs": args.runs}}
        text = ablation_markdown(result)
        write_outputs(args.out, "offline-ablation", result, text, {"changes": ablation_figure(result)})
        print(text, end="")
        return 0
    result = {"benchmark": "offline", **common, **measure(args.runs), "settings_args": {"runs": args.runs,
                                                                                        "limit": args.limit}}
    text = markdown(result)
    write_outputs(args.out, "offline", result, text, {"runs": runs_figure(result)})
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
