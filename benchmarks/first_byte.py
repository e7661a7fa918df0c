"""When a grounded stream through ``grounding serve`` first shows life.

    python -m benchmarks.first_byte [--requests N] [--model-ms MS] [--limit N] [--local] [--seed S] [--out DIR]

A real ``grounding serve`` process (a subprocess, the command users run) in
front of fakes on 127.0.0.1: a model that takes ``--model-ms`` (default 3000)
to start each turn's answer, the fake search APIs and the fake web of real
pages. For each request, a streamed grounded answer with
``stream_options={"include_progress": true}``, read as raw SSE, records the
seconds to the response's first byte, the first SSE comment, the first
progress event, the first answer token and the end, twice: with the server's
default start (``stream_first_byte_s`` 0.5 s) and with the stream held until
the answer's first token (``stream_first_byte_s`` 60: how the server behaved
before, nothing sent before the first token). ``--local``: one request through
the real embedded model and index instead, with the model loaded by the request
(loading holds the process: nothing is sent meanwhile) and preloaded
(``grounding serve --preload-local``).

Writes ``first-byte.json``, ``first-byte.md`` and ``first-byte-timeline.png``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_OUT, SEED, environment, new_figure, progress, seed_everything, write_outputs

QUESTION = "nutrition trends for fall"
LOCAL_QUESTION = "What does the nonlocal statement do?"
EVENTS = ("first_byte", "first_comment", "first_progress", "first_token", "done")


def one_stream(url: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Seconds from sending the request to each first event of its SSE response."""
    import httpx

    seen: dict[str, float] = {}
    started = time.perf_counter()

    def mark(name: str) -> None:
        seen.setdefault(name, round(time.perf_counter() - started, 3))

    stages: list[str] = []
    status = None
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=timeout) as r:
        status = r.status_code
        for raw in r.iter_raw():
            if raw:
                mark("first_byte")
            for line in raw.decode("utf-8", "replace").split("\n"):
                if line.startswith(": "):
                    mark("first_comment")
                elif line.startswith("data: {"):
                    data = json.loads(line[6:])
                    if data.get("progress"):
                        mark("first_progress")
                        stages.append(data["progress"]["stage"])
                    for choice in data.get("choices") or []:
                        if (choice.get("delta") or {}).get("content"):
                            mark("first_token")
    mark("done")
    return {"status": status, **{k: seen.get(k) for k in EVENTS}, "stages": list(dict.fromkeys(stages))}


def _summary(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in EVENTS:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[key] = round(statistics.median(values), 3) if values else None
    return out


def run_fakes(requests: int, model_ms: float, timeout: float) -> list[dict[str, Any]]:
    """Both server settings against the fakes; one row per setting."""
    from tests.fakes.live_server import ServeProcess
    from tests.fakes.llm import FakeLLM
    from tests.fakes.search_apis import FakeSearch
    from tests.fakes.web import FakeWeb

    results = []
    with FakeWeb() as web, FakeSearch(web.url) as search, FakeLLM() as llm, tempfile.TemporaryDirectory() as tmp:
        llm.model_latency_ms = {"fake-searcher": model_ms}
        for label, first_byte_s in (("default (stream_first_byte_s 0.5)", 0.5),
                                    ("held until the first token (as before)", 60.0)):
            config = Path(tmp, f"config-{first_byte_s}.json")
            config.write_text(json.dumps({"providers": {"fake": {"litellm_provider": "openai",
                                                                 "api_base": f"{llm.url}/v1", "api_key": "sk-fake"}},
                                          "server": {"stream_first_byte_s": first_byte_s}}))
            env = {**search.env(), "GROUNDING_ALLOW_PRIVATE_NETWORKS": "1", "GROUNDING_CACHE_DIR": tmp}
            body = {"model": "fake/fake-searcher", "messages": [{"role": "user", "content": QUESTION}],
                    "stream": True, "stream_options": {"include_progress": True},
                    "web_search": {"engine": "searxng", "max_results": 3}}
            with ServeProcess(config, env=env) as server:
                one_stream(server.url, body, timeout)  # warm-up: imports, connections
                rows = [one_stream(server.url, body, timeout)
                        for _ in progress(range(requests), total=requests, desc=label[:20], unit="stream")]
            results.append({"setting": label, "stream_first_byte_s": first_byte_s, "rows": rows,
                            "median_s": _summary(rows)})
    return results


def run_local(timeout: float) -> list[dict[str, Any]]:
    """One grounded stream through the embedded model and index: the model loading during the request
    (which holds the process while it loads), then with ``grounding serve --preload-local``."""
    from tests.fakes.live_server import ServeProcess

    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    body = {"model": "local", "messages": [{"role": "user", "content": LOCAL_QUESTION}], "stream": True,
            "stream_options": {"include_progress": True}, "web_search": {"engine": "local"}}
    out = []
    for label, extra in (("embedded model, loaded by the request", []),
                         ("embedded model, serve --preload-local", ["--preload-local"])):
        with ServeProcess(env=env, start_timeout=300, extra_args=extra) as server:
            row = one_stream(server.url, body, timeout)
        out.append({"setting": label, "stream_first_byte_s": 0.5, "rows": [row], "median_s": _summary([row])})
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# First byte of a grounded stream through grounding serve ({report['date']})", "",
             f"Command: `{report['command']}`. {report['note']} Load average {report['environment']['loadavg']}.",
             "", "| setting | first byte (s) | first comment (s) | first progress event (s) | first token (s) | "
             "whole answer (s) | progress stages |", "|---|---|---|---|---|---|---|"]
    for s in report["settings"]:
        m = s["median_s"]
        stages = ", ".join(s["rows"][0]["stages"]) if s["rows"] else ""
        lines.append(f"| {s['setting']} | {m['first_byte']} | {m['first_comment']} | {m['first_progress']} | "
                     f"{m['first_token']} | {m['done']} | {stages} |")
    return "\n".join(lines) + "\n"


def timeline_figure(report: dict[str, Any]) -> Any:
    fig, ax = new_figure(7.5, 2.8)
    colors = {"first_byte": "#4c72b0", "first_progress": "#55a868", "first_token": "#c44e52", "done": "#8172b2"}
    for y, s in enumerate(report["settings"]):
        for key, color in colors.items():
            value = s["median_s"].get(key)
            if value is not None:
                ax.plot([value], [y], "o", color=color, label=key.replace("_", " ") if y == 0 else None)
        ax.hlines(y, 0, s["median_s"].get("done") or 0, color="#cccccc", zorder=0)
    ax.set_yticks(range(len(report["settings"])), [s["setting"][:40] for s in report["settings"]], fontsize=7)
    ax.set_xlabel("seconds after the request (median)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.first_byte", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5, help="measured streams per setting (default 5)")
    parser.add_argument("--model-ms", type=float, default=3000, help="the fake model's wait before each turn")
    parser.add_argument("--local", action="store_true", help="one stream through the embedded model instead")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--limit", type=int, default=None, help="quick run: at most N requests per setting")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.limit is not None:
        args.requests = max(1, min(args.requests, args.limit))
    seed = seed_everything(args.seed)
    with contextlib.chdir(Path(__file__).resolve().parents[1]):  # ServeProcess runs from the repository
        settings = run_local(args.timeout) if args.local else run_fakes(args.requests, args.model_ms, args.timeout)
    note = ("The embedded model and index; nothing faked." if args.local else
            f"Fakes on 127.0.0.1, each model turn starting after {args.model_ms:.0f} ms; {args.requests} streams "
            "per setting after a warm-up, medians.")
    report = {"benchmark": "first-byte", "command": " ".join(["python -m benchmarks.first_byte",
                                                              *(argv if argv is not None else sys.argv[1:])]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seed": seed, "note": note,
              "environment": environment(), "settings": settings}
    text = markdown(report)
    write_outputs(args.out, "first-byte", report, text, {"timeline": timeline_figure(report)})
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
