"""Hardening: bad inputs and misbehaving upstreams against one ``grounding serve``.

Usage::

    python -m benchmarks hardening [--runs 3] [--model-deadline 4] [--search-deadline 2] [--page-deadline 2]
                                   [--limit N] [--out DIR]

Set-up: the fakes in a child process (``FakeLLM`` speaking OpenAI's and
Anthropic's wire formats, ``FakeSearch``, ``FakeWeb``, each with the fault
switches of ``tests/fakes/base.py``) and the real ``python -m grounding.cli
serve`` with an API key and the deadlines given (``GROUNDING_SEARCH_TIMEOUT``,
``GROUNDING_PAGE_TIMEOUT``, ``GROUNDING_STREAM_IDLE_TIMEOUT``; the model's is
each request's own ``timeout`` where a model fault is tested, so the valid
requests of the sweep keep the default 120 s on a loaded machine). Three parts:

1. **Bad-input sweep.** Every value of a valid grounded request (every key and
   index, nested ones too) and every field of ``ChatRequest``'s JSON schema
   is replaced in turn by each of a set of bad values (null, booleans,
   negative, huge and fractional numbers, empty, 20,000-character and
   lone-surrogate strings, arrays, objects, 80-deep nesting), or removed; then
   raw bodies (50,000-deep nesting, ``NaN``, invalid UTF-8, truncated, empty,
   not an object, 11 MB, a 5,000-digit number, a UTF-8 BOM) and connection-level
   abuse (hanging up mid-upload, a malformed chunked body, leaving before the
   first token). Counted: inputs tried, statuses, **5xx seen** (goal 0), error
   bodies not OpenAI-shaped, and tracebacks in the server's log.
2. **Fault sweep.** Each upstream (the model over OpenAI's and Anthropic's
   wire, the engines ``searxng`` (GET) and ``tavily`` (POST), the pages) x
   each fault (429 with Retry-After, 500, 503, a hang, a cut connection,
   garbage, HTML, an empty body, a key quoted back, an empty answer) x streamed
   or not. *Handled cleanly*: a model fault is a documented status (429, 502,
   504) or a stream's error event, an engine or page fault a 200 whose
   ``metadata.warnings`` says so; never a 500, a traceback or a key.
3. **What a silent upstream costs.** A model, an engine or the pages that
   never answer: the request's time until it is given up, ``--runs`` times
   each, against the deadline (goal: the deadline, not a multiple of it).

Outputs: ``hardening.json``, ``hardening.md``, ``hardening-silent.png``.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.overhead import DEFAULT_OUT, InProcessFakes, SubprocessFakes, loadavg, serve_commands

NAME = "hardening"
MODEL = "fake/fake-searcher"
ANTHROPIC_MODEL = "anth/fake-searcher"
QUESTION = "nutrition trends for fall"
FAULTS = ("429", "500", "503", "hang", "cut", "garbage", "html", "empty", "echo_key")
MODEL_FAULTS = FAULTS + ("empty_answer",)
PAGE_FAULTS = tuple(f for f in FAULTS if f != "html")  # an HTML error page is still a page


# -- the fakes, with their fault switches, in a child process ----------------------------------------------


def _serve_fault_fakes(conn: Any) -> None:
    """Child process: the fakes; ``("fault", (which, fault))`` switches one, ``("reset", ())`` all."""
    fakes = InProcessFakes()
    servers = {"llm": fakes.llm, "search": fakes.search, "web": fakes.web}

    def fault(which: str, fault: str | None) -> None:
        servers[which].fault = fault

    def reset() -> None:
        for server in servers.values():
            server.reset()
            with server._lock:
                server.requests.clear()

    serve_commands(conn, fakes, {"fault": fault, "reset": reset})


class FaultFakes(SubprocessFakes):
    serve = staticmethod(_serve_fault_fakes)
    process_name = "grounding-bench-fault-fakes"

    def fault(self, which: str, fault: str | None) -> None:
        self._ask("fault", which, fault)

    def reset(self) -> None:
        self._ask("reset")


def server_config(llm_url: str, folder: Path, key: str) -> Path:
    import yaml

    config = {
        "providers": {"fake": {"litellm_provider": "openai", "api_base": f"{llm_url}/v1", "api_key": "sk-hard-openai-1"},
                      "anth": {"litellm_provider": "anthropic", "api_base": llm_url, "api_key": "sk-hard-anthropic-1"}},
        "server": {"api_keys": [{"key": key, "name": "bench", "write": True}], "max_body_bytes": 10 * 1024 * 1024,
                   "router_store": f"sqlite:///{folder / 'routers.db'}"},
    }
    path = folder / "grounding.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


# -- 1. bad inputs -----------------------------------------------------------------------------------------

def _nested(levels: int) -> Any:
    value: Any = "deep"
    for _ in range(levels):
        value = [value]
    return value


BAD_VALUES: dict[str, Any] = {
    "null": None, "true": True, "false": False, "-1": -1, "0": 0, "2**70": 2**70, "1.5": 1.5, "-1e308": -1e308,
    "empty string": "", "20k string": "x" * 20_000, "lone surrogate": "\ud800", "embedded surrogate": "a\udc00b",
    "empty array": [], "[null]": [None], "empty object": {}, "surrogate key": {"\ud800": 1}, "80-deep": _nested(80),
}


def base_request() -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
        "web_search": {"engine": "searxng", "max_results": 2, "max_steps": 1},
        "tools": [{"type": "function", "function": {"name": "get_time", "description": "the time",
                                                     "parameters": {"type": "object", "properties": {}}}}],
        "tool_choice": "auto", "stop": ["\n\n\n"], "temperature": 0.5, "max_tokens": 300,
        "metadata": {"team": "bench"}, "response_format": {"type": "text"}, "stream": False, "user": "bench-user",
    }


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, prefix + (i,))
    return out


def _set(data: Any, path: tuple[Any, ...], value: Any, *, delete: bool = False) -> Any:
    data = copy.deepcopy(data)
    node = data
    for part in path[:-1]:
        node = node[part]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def _dotted(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def mutated_requests(limit: int | None = None) -> list[tuple[str, bytes]]:
    """``(description, body)`` of every mutation of :func:`base_request` (see the module's docstring)."""
    from grounding.request import ChatRequest

    base = base_request()
    paths = _paths(base)
    fields = [(name,) for name in ChatRequest.model_json_schema()["properties"] if name not in base]
    values = list(BAD_VALUES.items())[:limit] if limit else list(BAD_VALUES.items())
    out: list[tuple[str, bytes]] = []
    for path in paths + fields:
        for label, value in values:
            out.append((f"{_dotted(path)} = {label}", json.dumps(_set(base, path, value)).encode()))
        if path in paths:
            out.append((f"{_dotted(path)} removed", json.dumps(_set(base, path, None, delete=True)).encode()))
    return out


def raw_bodies() -> list[tuple[str, bytes]]:
    valid = json.dumps(base_request()).encode()
    return [
        ("50,000-deep nesting", b'{"model": "fake/fake-searcher", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
        ("NaN", valid.replace(b'"temperature": 0.5', b'"temperature": NaN')),
        ("Infinity", valid.replace(b'"temperature": 0.5', b'"temperature": Infinity')),
        ("invalid UTF-8", valid.replace(QUESTION.encode(), b"\xff\xfe\xfd")),
        ("truncated", valid[: len(valid) // 2]),
        ("empty", b""), ("whitespace", b"  \n"), ("null", b"null"), ("array", b"[1, 2]"), ("string", b'"hi"'),
        ("11 MB", b'{"model": "fake/fake-searcher", "pad": "' + b"x" * (11 * 1024 * 1024) + b'"}'),
        ("5,000-digit number", valid.replace(b'"max_tokens": 300', b'"max_tokens": 1' + b"0" * 5000)),
        ("UTF-8 BOM", b"\xef\xbb\xbf" + valid),
        ("duplicate keys", valid.replace(b'"stream": false', b'"stream": false, "stream": "yes"')),
    ]


def _is_openai_error(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False
    return isinstance(data, dict) and set(data) == {"error"} and set(data["error"]) == {"message", "type", "param", "code"}


def _raw_exchange(host: str, port: int, data: bytes, *, read: bool = False, wait: float = 0.3) -> bytes:
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(data)
        if not read:
            time.sleep(wait)
            return b""
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def connection_abuse(host: str, port: int, key: str) -> list[tuple[str, bytes]]:
    """Requests cut short at the connection: what the server answered (usually nothing)."""
    body = json.dumps({**base_request(), "web_search": None}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\n").encode()
    stream = json.dumps({**base_request(), "stream": True}).encode()
    cases = [
        ("hang up mid-upload", head + b"Content-Length: 5000\r\n\r\n" + body[:100], False),
        ("malformed chunked body", head + b"Transfer-Encoding: chunked\r\n\r\n5\r\n{\"mod\r\nzz\r\n", True),
        ("leave before the first token", head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body, False),
        ("leave a stream before its first token",
         head + f"Content-Length: {len(stream)}\r\n\r\n".encode() + stream, False),
        ("not HTTP at all", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64), True),
    ]
    return [(label, _raw_exchange(host, port, data, read=read, wait=0.05)) for label, data, read in cases]


def sweep(url: str, key: str, inputs: list[tuple[str, bytes]]) -> dict[str, Any]:
    import httpx

    from benchmarks.common import progress

    statuses: dict[str, int] = {}
    fivexx: list[str] = []
    not_openai: list[str] = []
    with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {key}",
                                            "Content-Type": "application/json"}) as client:
        for label, body in progress(inputs, total=len(inputs), desc="bad inputs", unit="req"):
            response = client.post(url, content=body)
            statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
            if response.status_code >= 500:
                fivexx.append(f"{label}: {response.status_code} {response.text[:200]}")
            if response.status_code >= 400 and not _is_openai_error(response.content):
                not_openai.append(f"{label}: {response.text[:200]}")
    return {"tried": len(inputs), "statuses": dict(sorted(statuses.items())), "5xx": len(fivexx),
            "5xx_inputs": fivexx[:50], "not_openai_shaped": not_openai[:50]}


# -- 2 and 3. faults -----------------------------------------------------------------------------------------

def _ask(client: Any, url: str, body: dict[str, Any]) -> tuple[int, dict | None, dict | None, float]:
    """``(status, error, metadata, seconds)`` of one request, streamed or not."""
    t0 = time.perf_counter()
    if body.get("stream"):
        with client.stream("POST", url, json=body) as response:
            raw = response.read()
    else:
        response = client.post(url, json=body)
        raw = response.content
    seconds = time.perf_counter() - t0
    if response.headers.get("content-type", "").startswith("application/json"):
        data = json.loads(raw)
        if response.status_code != 200:
            return response.status_code, data.get("error"), None, seconds
        return 200, None, data.get("metadata"), seconds
    events = [e[len(b"data: "):] for e in raw.split(b"\n\n") if e.startswith(b"data: ")]
    if not events or events[-1] != b"[DONE]":
        last = json.loads(events[-1]) if events else {}
        return 200, last.get("error") or {"message": "stream without [DONE]"}, None, seconds
    return 200, None, json.loads(events[-2]).get("metadata"), seconds


def _clean(which: str, status: int, error: dict | None, metadata: dict | None, text: str) -> tuple[bool, str]:
    """Whether the outcome of a fault is a clean one, and what it was."""
    leaked = any(k in text for k in ("sk-hard-openai-1", "sk-hard-anthropic-1", "fake-tavily-key"))
    if leaked:
        return False, "a key leaked"
    if which in ("openai", "anthropic"):
        if error is None:
            return False, f"{status} with an answer"
        ok = status in (429, 502, 504) or (status == 200 and error is not None)
        return ok, f"{status} {error.get('code')}"
    if status != 200 or metadata is None:
        return False, f"{status} {error and error.get('code')}"
    warned = [w for w in metadata.get("warnings", []) if w.startswith(("search failed", "page "))]
    return bool(warned), f"200, warning: {warned[0][:70] if warned else 'none'}"


def fault_sweep(fakes: FaultFakes, url: str, key: str, model_deadline: float, *,
                limit: int | None = None) -> list[dict[str, Any]]:
    import httpx

    from benchmarks.common import progress

    cases: list[tuple[str, str, str, bool]] = []  # (upstream, fake, fault, stream)
    for upstream, fake, faults in (("openai", "llm", MODEL_FAULTS), ("anthropic", "llm", MODEL_FAULTS),
                                   ("searxng", "search", FAULTS), ("tavily", "search", FAULTS),
                                   ("page", "web", PAGE_FAULTS)):
        for fault in faults[:limit] if limit else faults:
            for stream in (False, True):
                cases.append((upstream, fake, fault, stream))
    rows = []
    with httpx.Client(timeout=120, headers={"Authorization": f"Bearer {key}"}) as client:
        for upstream, fake, fault, stream in progress(cases, total=len(cases), desc="faults", unit="case"):
            body: dict[str, Any] = {"model": ANTHROPIC_MODEL if upstream == "anthropic" else MODEL, "stream": stream,
                                    "messages": [{"role": "user", "content": QUESTION}]}
            if fake != "llm":
                body["web_search"] = {"engine": "tavily" if upstream == "tavily" else "searxng", "max_results": 2}
            else:
                body["timeout"] = model_deadline
            fakes.reset()
            fakes.fault(fake, fault)
            try:
                status, error, metadata, seconds = _ask(client, url, body)
                text = json.dumps([error, metadata])
            except Exception as exc:  # noqa: BLE001 (recorded as unclean)
                status, error, metadata, seconds, text = 0, {"message": repr(exc)}, None, 0.0, ""
            ok, what = _clean(upstream, status, error, metadata, text)
            rows.append({"upstream": upstream, "fault": fault, "stream": stream, "status": status, "clean": ok,
                         "outcome": what, "seconds": round(seconds, 2)})
    fakes.reset()
    return rows


def silent_costs(fakes: FaultFakes, url: str, key: str, deadlines: dict[str, float], runs: int) -> list[dict[str, Any]]:
    import httpx

    from benchmarks.common import progress

    model = {"timeout": deadlines["model"]}
    cases = [
        ("model, not streamed", "llm", {"stream": False, **model}, deadlines["model"]),
        ("model, streamed (first token)", "llm", {"stream": True, **model}, deadlines["model"]),
        ("search engine searxng (GET)", "search", {"web_search": {"engine": "searxng"}}, deadlines["search"]),
        ("search engine tavily (POST)", "search", {"web_search": {"engine": "tavily"}}, deadlines["search"]),
        ("every page", "web", {"web_search": {"engine": "searxng", "max_results": 3}}, deadlines["page"]),
    ]
    rows = []
    with httpx.Client(timeout=600, headers={"Authorization": f"Bearer {key}"}) as client:
        for label, fake, extra, deadline in progress(cases, total=len(cases), desc="silent upstreams", unit="case"):
            times, baseline, outcome = [], [], ""
            for _ in range(runs):
                body = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}], "stream": False, **extra}
                fakes.reset()
                baseline.append(_ask(client, url, body)[3])  # the same request, nothing silent
                fakes.fault(fake, "hang")
                status, error, metadata, seconds = _ask(client, url, body)
                times.append(seconds)
                outcome = f"{status} {error.get('code') if error else ''}".strip()
                if metadata is not None:
                    outcome += "; " + "; ".join(w for w in metadata.get("warnings", [])[:1])
            fakes.reset()
            median, base = statistics.median(times), statistics.median(baseline)
            rows.append({"case": label, "deadline_s": deadline, "runs": runs, "median_s": round(median, 2),
                         "max_s": round(max(times), 2), "unaffected_request_s": round(base, 2),
                         "time_over_deadline": round(median / deadline, 2), "outcome": outcome[:160]})
    return rows


# -- report --------------------------------------------------------------------------------------------------

def markdown(report: dict[str, Any]) -> str:
    bad, faults, silent = report["bad_inputs"], report["faults"], report["silent"]
    clean = sum(r["clean"] for r in faults)
    lines = [
        "# Hardening: bad inputs and misbehaving upstreams against `grounding serve`",
        "",
        f"Command: `{report['command']}`  ",
        f"Deadlines: model {report['deadlines']['model']:g} s, search {report['deadlines']['search']:g} s, "
        f"page {report['deadlines']['page']:g} s, stream idle {report['deadlines']['stream_idle']:g} s. "
        f"Load average before/after: {report['load_before']} / {report['load_after']} (2 shared cores, "
        "other engineers' jobs running).",
        "",
        "## Bad inputs",
        "",
        f"**{bad['tried']} inputs tried, {bad['5xx']} answered with a 5xx**; statuses {bad['statuses']}; "
        f"error bodies not OpenAI-shaped: {len(bad['not_openai_shaped'])}; connection-level abuse "
        f"({len(report['connection_abuse'])} cases) answered: "
        + ", ".join(f"{c['case']}: {c['answer'] or 'nothing'}" for c in report["connection_abuse"])
        + f". Tracebacks in the server's log: **{report['server_log']['tracebacks']}**, lines at ERROR: "
        f"{report['server_log']['errors']}.",
        "",
        "## Faults",
        "",
        f"**{clean} of {len(faults)} faults handled cleanly.**",
        "",
        "| upstream | fault | plain | streamed |",
        "|---|---|---|---|",
    ]
    by_key: dict[tuple[str, str], dict[bool, dict[str, Any]]] = {}
    for r in faults:
        by_key.setdefault((r["upstream"], r["fault"]), {})[r["stream"]] = r
    for (upstream, fault), pair in by_key.items():
        cells = []
        for stream in (False, True):
            r = pair.get(stream)
            cells.append("-" if r is None else f"{'ok' if r['clean'] else '**NOT CLEAN**'}: {r['outcome']} "
                                               f"({r['seconds']:.1f} s)")
        lines.append(f"| {upstream} | {fault} | {cells[0]} | {cells[1]} |")
    lines += ["", "## What a silent upstream costs a request", "",
              "| silent upstream | deadline | request time (median / max) | same request, nothing silent | "
              "request time ÷ deadline | outcome |", "|---|---:|---:|---:|---:|---|"]
    for r in silent:
        lines.append(f"| {r['case']} | {r['deadline_s']:g} s | {r['median_s']:.2f} / {r['max_s']:.2f} s | "
                     f"{r['unaffected_request_s']:.2f} s | **{r['time_over_deadline']:.2f}** | {r['outcome']} |")
    return "\n".join(lines) + "\n"


def figures(report: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.common import new_figure

    rows = report["silent"]
    fig, ax = new_figure(7.5, 3.8)
    ys = range(len(rows))
    ax.barh([y + 0.2 for y in ys], [r["median_s"] for r in rows], height=0.4, label="request time (median)")
    ax.barh([y - 0.2 for y in ys], [r["deadline_s"] for r in rows], height=0.4, label="deadline", color="tab:gray")
    ax.set_yticks(list(ys), [r["case"] for r in rows])
    ax.set_xlabel("seconds")
    ax.set_title("a silent upstream costs its deadline")
    ax.legend()
    return {"silent": fig}


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import SEED, environment, seed_everything, write_outputs
    from tests.fakes.live_server import ServeProcess

    ap = argparse.ArgumentParser(prog="python -m benchmarks hardening", description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per silent upstream (default 3)")
    ap.add_argument("--model-deadline", type=float, default=4.0,
                    help="seconds: the model's deadline (the request's timeout) where a model fault is tested")
    ap.add_argument("--search-deadline", type=float, default=2.0)
    ap.add_argument("--page-deadline", type=float, default=2.0)
    ap.add_argument("--stream-idle", type=float, default=4.0)
    ap.add_argument("--limit", type=int, default=None,
                    help="quick run: the first N bad values and faults, one run per silent upstream")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    runs = min(args.runs, 1) if args.limit else args.runs
    seed_everything(args.seed)
    for name in ("GROUNDING_ENGINE", "GROUNDING_MODEL", "GROUNDING_CONFIG", "GROUNDING_REDIS_URL"):
        os.environ.pop(name, None)
    deadlines = {"model": args.model_deadline, "search": args.search_deadline, "page": args.page_deadline,
                 "stream_idle": args.stream_idle}
    load_before = loadavg()
    folder = Path(tempfile.mkdtemp(prefix="grounding-hardening-"))
    print("[hardening] starting the fakes and grounding serve ...", file=sys.stderr)
    fakes = FaultFakes()
    key = "sk-hardening-" + secrets.token_hex(16)
    # No cache: every fault must reach the request it is meant for, not a cached search or page.
    env = {**fakes.env, "GROUNDING_ALLOW_PRIVATE_NETWORKS": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
           "GROUNDING_CACHE": "off",
           "GROUNDING_API_KEYS": "", "GROUNDING_ADMIN_KEYS": "", "GROUNDING_MODEL": MODEL,
           "GROUNDING_SEARCH_TIMEOUT": str(args.search_deadline),
           "GROUNDING_PAGE_TIMEOUT": str(args.page_deadline), "GROUNDING_STREAM_IDLE_TIMEOUT": str(args.stream_idle)}
    try:
        with ServeProcess(server_config(fakes.llm_url, folder, key), env=env, start_timeout=120) as server:
            url = f"{server.base_url}/chat/completions"
            inputs = mutated_requests(args.limit) + raw_bodies()
            bad = sweep(url, key, inputs)
            abuse = [{"case": label, "answer": answer.split(b"\r\n", 1)[0].decode("latin-1")}
                     for label, answer in connection_abuse(server.host, server.port, key)]
            faults = fault_sweep(fakes, url, key, args.model_deadline, limit=args.limit)
            silent = silent_costs(fakes, url, key, deadlines, runs)
        log = server.output
    finally:
        fakes.close()
    command = "python -m benchmarks hardening " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"benchmark": NAME, "command": command.strip(), "seed": args.seed, "deadlines": deadlines,
              "environment": environment(), "load_before": load_before, "load_after": loadavg(),
              "bad_inputs": bad, "connection_abuse": abuse, "faults": faults, "silent": silent,
              "server_log": {"tracebacks": log.count("Traceback"),
                             "errors": sum(" ERROR " in line for line in log.splitlines()),
                             "keys_leaked": sum(k in log for k in ("sk-hard-openai-1", "sk-hard-anthropic-1", key))}}
    write_outputs(args.out, NAME, report, markdown(report), figures(report))
    if report["server_log"]["tracebacks"] or report["server_log"]["errors"]:
        (Path(args.out) / f"{NAME}-server.log").write_text(log)  # the evidence, for whoever reads the report
        print(f"[hardening] the server logged errors: see {Path(args.out) / (NAME + '-server.log')}", file=sys.stderr)
    clean = sum(r["clean"] for r in faults)
    print(f"[hardening] bad inputs: {bad['tried']} tried, {bad['5xx']} 5xx; faults: {clean}/{len(faults)} clean; "
          f"silent: " + ", ".join(f"{r['case']} {r['median_s']:.1f}s/{r['deadline_s']:g}s" for r in silent),
          file=sys.stderr)
    return 0 if bad["5xx"] == 0 and clean == len(faults) else 1


if __name__ == "__main__":
    sys.exit(main())
