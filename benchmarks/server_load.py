"""Server load benchmark: how many concurrent grounded streams one ``grounding serve`` process holds.

Usage::

    python -m benchmarks.server_load [--levels 1,2,5,10,...] [--rounds N] [--targets grounded,plain,litellm]
                                     [--limit N] [--out DIR] [--seed S]

Three processes (four with litellm's proxy), so each one's CPU and memory are its own:

* **the fakes** (a child process, as ``benchmarks.overhead``'s ``SubprocessFakes``):
  ``FakeLLM`` answers each model turn after ``--model-ms`` (300) and then streams
  one chunk every ``--chunk-ms`` (20; a chunk per word); ``FakeSearch`` (engine
  ``searxng``) answers after ``--search-ms`` (200); ``FakeWeb`` serves the 3 real
  WCXB result pages of the question after 50, 425 and 800 ms (``--page-min-ms`` to
  ``--page-max-ms``, spread in rank order);
* **the server under test**: the real ``python -m grounding.cli serve --config FILE``
  (``tests.fakes.live_server.ServeProcess``), its one provider pointing at the fake
  model, ``GROUNDING_ALLOW_PRIVATE_NETWORKS=1`` (the pages are on 127.0.0.1), the
  search engine's base URL pointing at the fake search, no API keys (loopback only)
  and ``max_concurrent_per_key`` high enough not to refuse anything. One server
  process per target, so the memory of one target is not the history of another;
  both servers check an API key (a random one, sent by the client), as deployed ones do;
* **the load generator** (this process): an ``httpx.AsyncClient`` with enough
  connections runs N workers, each opening streams back to back (a closed loop:
  N streams open at all times). Workers start spread over one unloaded request's
  duration (seeded), so the streams are not in lock-step; each worker's first and
  last stream (ramp up and down) are run but not counted.

Targets (``--targets``):

``grounded``  ``POST /v1/chat/completions`` with ``stream: true`` and
              ``web_search: {engine: searxng, max_results: 3, cache: false}``, model
              ``fake/fake-searcher``: a tool-call turn, a search, 3 page fetches and
              extractions, then the streamed answer (3 cited sentences). Every stream
              asks the same question, so the cache is bypassed (``--cache on``
              measures cached streams instead). Variants of the server:
              ``grounded@N`` runs ``grounding serve --workers N`` (N processes on the
              port, sharing a redis-server this benchmark starts); ``grounded-thread``
              extracts in a thread of the server process (``GROUNDING_EXTRACT_WORKERS=0``:
              the code path before the extraction pool), e.g.
              ``--targets grounded-thread,grounded-thread@2,grounded,grounded@2`` for
              before and after, with one process and with one per core.
``plain``     the same server (a fresh process), a plain streamed completion
              (no ``web_search``, model ``fake/fake-bench-prose``: one turn of ~60 words).
``litellm``   the same plain streamed completion through litellm's own proxy
              (``litellm --config FILE --num_workers 1``, one process), run from a
              separate virtualenv (``--litellm-venv``, default ``/tmp/litellm-proxy-venv``;
              ``python -m venv /tmp/litellm-proxy-venv && /tmp/litellm-proxy-venv/bin/pip
              install 'litellm[proxy]==1.104.5'``). Skipped, with the reason recorded,
              when it is not installed or does not start.

All the targets' servers run at once (an idle one costs nothing) and take turns:
the unloaded streams alternate between targets, and each level is run for every
target before the next level, so a change in the machine's other load falls on
all of them alike.

Per stream: time to the response headers (TTFB), to the first content token
(TTFT) and to the end of the stream (total). Per target, first a few warm-up
streams (discarded) and ``--baseline-runs`` unloaded streams one at a time: the
**baseline** is their median. **Added latency** = a stream's time minus the
baseline median (for total and for first token): what concurrency adds. The
**critical path** (what the fakes' latencies alone impose, counted from the
chunks the fake model actually sent: per model turn ``model_ms + (chunks - 1)
x chunk_ms``, the time its ``[DONE]`` goes out, plus the search and the slowest
page for a grounded stream) is reported too, with each level's time over it.

Each level runs ``--rounds`` measured streams per worker (more at low levels, so
that every level has at least ``--min-samples`` streams). Per level: p50/p95/p99
(nearest rank) of the added latencies, errors (a non-200 status, an error event,
a stream without ``[DONE]``, a timeout), the server's CPU (``/proc/<pid>/stat``:
cores busy and ms per stream), its memory (``/proc/<pid>/status``: ``VmHWM``, the
peak, reset through ``/proc/<pid>/clear_refs`` before each level, and ``VmRSS``
after it), the fakes' and the load generator's CPU, the CPU everything else on
the machine used meanwhile (``/proc/stat`` minus those three: other work shares
the 2 cores) and the load average.

Levels are stepped up until one has errors or its p99 added total latency is over
``--stop-ms`` (default 4 x the 50 ms threshold). The headline per target: the
largest level whose p99 added latency (total and first token) is under
``--threshold-ms`` with no error, counting up from the lowest level (a level
passing after a failing one is not counted).

``--limit N``: the first N levels, at most N rounds, N baseline runs, one warm-up.
Outputs (``--out``): ``server-load.json``, ``server-load.md``,
``server-load-p99.png`` (p99 added latency against concurrency, with the
threshold) and ``server-load-rss.png`` (peak RSS against concurrency).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.overhead import DEFAULT_OUT, QUESTION, SubprocessFakes, loadavg, spread

NAME = "server-load"
ENGINE = "searxng"
MAX_RESULTS = 3
DEFAULT_LEVELS = (1, 2, 5, 10, 15, 20, 30, 50, 75, 100, 150, 200)
THRESHOLD_MS = 50.0
#: The fake model's policy for the plain streams (registered in the fakes' process).
PROSE_POLICY = "bench-prose"
#: What ``fake-bench-prose`` answers: 31 words (35 chunks with the role, finish and [DONE] ones),
#: about as long as the grounded answer (36 chunks).
PROSE = (
    "Autumn menus lean on seasonal produce such as squash, apples, pears and root vegetables, "
    "often paired with legumes and whole grains. Warm soups and roasted dishes return as the "
    "weather cools."
)
GROUNDED_MODEL = "fake/fake-searcher"
PLAIN_MODEL = "fake/fake-" + PROSE_POLICY
LITELLM_MODEL = "fake-" + PROSE_POLICY
DEFAULT_LITELLM_VENV = Path("/tmp/litellm-proxy-venv")
TARGETS = ("grounded", "plain", "litellm")
#: ``grounded``, ``grounded@N`` (N server processes), ``grounded-thread[@N]`` (extraction in the server process).
_GROUNDED_RE = re.compile(r"grounded(?P<thread>-thread)?(?:@(?P<workers>[1-9]\d*))?")


def grounded_variant(name: str) -> tuple[bool, int] | None:
    """``(extraction in a thread, server processes)`` of a grounded target name, None if it is not one."""
    m = _GROUNDED_RE.fullmatch(name)
    return (bool(m["thread"]), int(m["workers"] or 1)) if m else None


@dataclass(frozen=True)
class Latencies:
    model_ms: float = 300
    chunk_ms: float = 20
    search_ms: float = 200
    page_min_ms: float = 50
    page_max_ms: float = 800


# -- the fakes (a child process) -----------------------------------------------------------------


def _prose_policy(c: Any) -> Any:
    from tests.fakes.policies import Action

    return Action(text=PROSE)


def _counting_llm(base: type) -> type:
    """A FakeLLM that records, per streamed answer, the model and how many chunks it wrote."""

    class CountingLLM(base):  # type: ignore[misc, valid-type]
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.turns: collections.deque[tuple[str, int]] = collections.deque(maxlen=10_000)

        def handle(self, request: Any, response: Any) -> None:
            writes = 0
            real_write = response.write

            def write(data: bytes) -> None:
                nonlocal writes
                writes += 1
                real_write(data)

            response.write = write
            try:
                super().handle(request, response)
            finally:
                body = request.json if isinstance(request.json, dict) else {}
                if body.get("stream") and writes:
                    self.turns.append((str(body.get("model", "")), writes))

    return CountingLLM


def _serve_load_fakes(conn: Any) -> None:
    """Child process: the three fakes (the model counting its chunks); obey the parent until told to stop."""
    from benchmarks.overhead import InProcessFakes, serve_commands
    from tests.fakes import policies
    from tests.fakes.llm import FakeLLM

    policies.POLICIES.setdefault(PROSE_POLICY, _prose_policy)
    llm = _counting_llm(FakeLLM)().start()
    fakes = InProcessFakes(llm=llm)
    fakes._owned = True  # stop the model too

    def configure(model_ms: float, chunk_ms: float, search_ms: float, pages: dict[str, float]) -> None:
        fakes.configure(model_ms, search_ms, pages)
        llm.chunk_ms = chunk_ms

    def turns() -> list[tuple[str, int]]:  # the streamed turns since the last call
        out = list(llm.turns)
        llm.turns.clear()
        for server in (fakes.web, fakes.search, fakes.llm):  # keep the request logs small
            with server._lock:
                server.requests.clear()
        return out

    serve_commands(conn, fakes, {"configure": configure, "hits": fakes.hits, "turns": turns}, pid=os.getpid())


class LoadFakes(SubprocessFakes):
    """The fakes in a spawned child process (their CPU and threads stay out of the others),
    with chunk pacing and a count of the model's turns; safe to ask from several threads."""

    serve = staticmethod(_serve_load_fakes)
    process_name = "grounding-bench-load-fakes"

    def __init__(self) -> None:
        super().__init__()
        self.pid: int = self.hello["pid"]
        self._lock = threading.Lock()

    def _ask(self, cmd: str, *args: Any) -> Any:
        with self._lock:
            return super()._ask(cmd, *args)

    def configure(self, lat: Latencies, pages: dict[str, float]) -> None:  # type: ignore[override]
        self._ask("configure", lat.model_ms, lat.chunk_ms, lat.search_ms, dict(pages))

    def turns(self) -> list[tuple[str, int]]:
        return [tuple(t) for t in self._ask("turns")]  # type: ignore[misc]


def configure(fakes: LoadFakes, lat: Latencies, question: str = QUESTION) -> dict[str, float]:
    """Set the fakes' latencies; the question's result pages spread over page_min..page_max ms."""
    pages = spread(fakes.hits(question, MAX_RESULTS), _Spread(lat.page_min_ms, lat.page_max_ms))
    fakes.configure(lat, pages)
    return pages


@dataclass(frozen=True)
class _Spread:  # what overhead.spread reads
    page_min_ms: float
    page_max_ms: float


# -- processes: CPU and memory from /proc ----------------------------------------------------------


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _children(pid: int) -> list[int]:
    """``pid`` and its descendants (from ``/proc/*/stat``)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def cpu_seconds(pids: list[int], *, reaped: bool = False) -> float:
    """User + system CPU seconds of ``pids`` (each process's own threads); with ``reaped``,
    of the children they have waited for instead (``cutime + cstime``: where a recycled
    worker's CPU goes when it exits)."""
    first = 13 if reaped else 11
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[first]) + int(fields[first + 1])
    return total / _TICK


def machine_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine, all CPUs (``/proc/stat``)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already in user
    return total - idle, total


def memory_kib(pids: list[int]) -> dict[str, int]:
    """Summed ``VmRSS`` and ``VmHWM`` (peak RSS) of ``pids``, KiB."""
    out = {"rss_kib": 0, "hwm_kib": 0}
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    out["rss_kib"] += int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    out["hwm_kib"] += int(line.split()[1])
    return out


def reset_peak(pids: list[int]) -> bool:
    """Reset ``VmHWM`` to the current RSS (``echo 5 > /proc/PID/clear_refs``); whether it worked."""
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


class ProxyProcess:
    """litellm's proxy (``litellm --config FILE``) in a subprocess; waits for ``/health/liveliness``."""

    def __init__(self, executable: Path, config: Path, *, env: dict[str, str] | None = None,
                 start_timeout: float = 180.0) -> None:
        from tests.fakes.live_server import free_port

        self.executable = executable
        self.config = config
        self.env = env or {}
        self.port = free_port()
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.output = ""
        self.returncode: int | None = None
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ProxyProcess:
        import httpx

        self._log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [str(self.executable), "--config", str(self.config), "--host", "127.0.0.1", "--port", str(self.port),
             "--num_workers", "1"],
            env={**os.environ, **self.env}, stdout=self._log, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir())
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/health/liveliness", timeout=2.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"litellm's proxy did not start (exit {self.returncode}):\n{self.output[-3000:]}")

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=timeout)
            self.returncode = process.returncode
        if self._log is not None:
            self._log.seek(0)
            self.output = self._log.read().decode(errors="replace")
            self._log.close()
            self._log = None


# -- the load generator ------------------------------------------------------------------------------


@dataclass
class Target:
    """What one series of levels sends where."""

    name: str
    label: str
    url: str  # the chat completions endpoint
    body: dict[str, Any]
    pids: list[int]
    headers: dict[str, str] = field(default_factory=dict)
    grounded: bool = False
    critical_total_ms: float = math.nan
    critical_first_ms: float = math.nan
    turns: list[tuple[str, int]] = field(default_factory=list)
    #: What the report says about this target (filled in as it runs).
    out: dict[str, Any] = field(default_factory=dict)


async def one_stream(client: Any, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """Open one stream, read it to the end; its timings (ms from the request) and any error."""
    t0 = time.perf_counter()
    ttfb = ttft = None
    status: int | None = None
    error: str | None = None
    done = False
    chunks = 0
    try:
        async with client.stream("POST", url, json=body) as response:
            status = response.status_code
            ttfb = time.perf_counter()
            if status != 200:
                error = f"HTTP {status}: {(await response.aread())[:200].decode(errors='replace')}"
            else:
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        continue
                    chunks += 1
                    if data.startswith('{"error"'):
                        error = f"error event: {data[:200]}"
                        continue
                    if ttft is None:
                        payload = json.loads(data)
                        if any((c.get("delta") or {}).get("content") for c in payload.get("choices") or []):
                            ttft = time.perf_counter()
                if error is None and not done:
                    error = "the stream ended without [DONE]"
                if error is None and ttft is None:
                    error = "no content"
    except Exception as exc:  # noqa: BLE001 (a failed stream is a result)
        error = f"{type(exc).__name__}: {exc}"[:300]
    t1 = time.perf_counter()

    def ms(t: float | None) -> float | None:
        return None if t is None else round((t - t0) * 1000, 2)

    return {"ok": error is None, "status": status, "error": error, "ttfb_ms": ms(ttfb), "ttft_ms": ms(ttft),
            "total_ms": ms(t1), "chunks": chunks, "start": t0, "end": t1}


def _client(n: int, timeout: float, headers: dict[str, str] | None = None) -> Any:
    import httpx

    limits = httpx.Limits(max_connections=n + 8, max_keepalive_connections=n + 8)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout, connect=30.0), headers=headers)


async def _sequential(url: str, body: dict[str, Any], runs: int, timeout: float, tick: Any = None,
                      headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    async with _client(1, timeout, headers) as client:
        out = []
        for _ in range(runs):
            out.append(await one_stream(client, url, body))
            if tick:
                tick()
        return out


async def _closed_loop(url: str, body: dict[str, Any], n: int, per_worker: int, stagger_s: float,
                       rng: random.Random, timeout: float, pids: list[int], tick: Any = None,
                       headers: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], int]:
    """``n`` workers, each opening ``per_worker`` streams back to back, started over ``stagger_s``;
    (all results with their worker and index, max RSS sampled meanwhile in KiB)."""
    delays = sorted(rng.uniform(0, stagger_s) for _ in range(n)) if n > 1 else [0.0]
    results: list[dict[str, Any]] = []
    max_rss = 0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal max_rss
        while not stop.is_set():
            max_rss = max(max_rss, memory_kib(pids)["rss_kib"])
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.25)

    async with _client(n, timeout, headers) as client:
        async def worker(i: int) -> None:
            await asyncio.sleep(delays[i])
            for k in range(per_worker):
                r = await one_stream(client, url, body)
                r.update(worker=i, index=k)
                results.append(r)
                if tick:
                    tick()

        sampler = asyncio.ensure_future(sample())
        try:
            await asyncio.gather(*(worker(i) for i in range(n)))
        finally:
            stop.set()
            await sampler
    return results, max_rss


def _steady_concurrency(results: list[dict[str, Any]], n: int) -> float | None:
    """Mean number of open streams between the last worker's start and the first worker's end."""
    if n < 2:
        return 1.0 if results else None
    first_start: dict[int, float] = {}
    last_end: dict[int, float] = {}
    for r in results:
        first_start[r["worker"]] = min(first_start.get(r["worker"], math.inf), r["start"])
        last_end[r["worker"]] = max(last_end.get(r["worker"], -math.inf), r["end"])
    a, b = max(first_start.values()), min(last_end.values())
    if b <= a:
        return None
    busy = sum(max(0.0, min(r["end"], b) - max(r["start"], a)) for r in results)
    return round(busy / (b - a), 2)


# -- statistics -----------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100), nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"p50": round(pct(values, 50), 1), "p95": round(pct(values, 95), 1), "p99": round(pct(values, 99), 1),
            "mean": round(statistics.fmean(values), 1), "min": round(min(values), 1), "max": round(max(values), 1)}


def _errors(results: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = collections.Counter()
    for r in results:
        if not r["ok"]:
            out[(r["error"] or "?").split(":")[0][:80]] += 1
    return dict(out)


def summarize_level(n: int, results: list[dict[str, Any]], measured: list[dict[str, Any]], baseline: dict[str, Any],
                    target: Target, usage: dict[str, Any]) -> dict[str, Any]:
    ok = [r for r in measured if r["ok"]]
    totals = [r["total_ms"] for r in ok]
    firsts = [r["ttft_ms"] for r in ok if r["ttft_ms"] is not None]
    base_total, base_first = baseline["total_ms"]["p50"], baseline["ttft_ms"]["p50"]
    row: dict[str, Any] = {
        "level": n,
        "streams": len(results),
        "measured": len(measured),
        "errors": sum(not r["ok"] for r in results),
        "error_kinds": _errors(results),
        "steady_concurrency": _steady_concurrency(results, n),
        "ttfb_ms": stats([r["ttfb_ms"] for r in ok if r["ttfb_ms"] is not None]),
        "ttft_ms": stats(firsts),
        "total_ms": stats(totals),
        "added_total_ms": stats([t - base_total for t in totals]),
        "added_first_ms": stats([t - base_first for t in firsts]),
        "over_critical_total_ms": stats([t - target.critical_total_ms for t in totals])
        if math.isfinite(target.critical_total_ms) else None,
        "over_critical_first_ms": stats([t - target.critical_first_ms for t in firsts])
        if math.isfinite(target.critical_first_ms) else None,
        **usage,
    }
    wall = usage["wall_s"]
    row["streams_per_s"] = round(len(results) / wall, 2) if wall else None
    row["server_cpu_ms_per_stream"] = round(usage["server_cpu_s"] * 1000 / len(results), 1) if results else None
    return row


def passes(row: dict[str, Any], threshold_ms: float) -> bool:
    """No error, and p99 added latency (total and first token) under ``threshold_ms``."""
    total, first = row.get("added_total_ms"), row.get("added_first_ms")
    return (row["errors"] == 0 and total is not None and first is not None
            and total["p99"] < threshold_ms and first["p99"] < threshold_ms)


def headline(levels: list[dict[str, Any]], threshold_ms: float) -> dict[str, Any] | None:
    """The largest level passing, counting up from the lowest until the first that fails."""
    best = None
    for row in sorted(levels, key=lambda r: r["level"]):
        if not passes(row, threshold_ms):
            break
        best = row
    if best is None:
        return None
    return {"level": best["level"], "added_total_p99_ms": best["added_total_ms"]["p99"],
            "added_first_p99_ms": best["added_first_ms"]["p99"], "peak_rss_mib": best["peak_rss_mib"],
            "rss_after_mib": best["rss_after_mib"], "server_cores": best["server_cores"]}


# -- running a target ------------------------------------------------------------------------------------


def _say(text: str) -> None:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the bench extra
        print(text, file=sys.stderr, flush=True)
    else:
        tqdm.write(text, file=sys.stderr)


class _Bar:
    """A progress bar (:func:`benchmarks.common.progress`) advanced by hand, one :meth:`tick` per stream."""

    def __init__(self, total: int, desc: str) -> None:
        from benchmarks.common import progress

        self._left = total
        self._it = iter(progress(range(total), total=total, desc=desc, unit="stream"))
        next(self._it, None)  # shows the bar at 0; each later next() counts one item

    def tick(self) -> None:
        if self._left > 0:
            self._left -= 1
            next(self._it, None)

    def close(self) -> None:
        while self._left > 0:
            self.tick()


def per_worker_rounds(n: int, rounds: int, min_samples: int) -> int:
    """Measured streams per worker at level ``n``: ``rounds``, more if ``n * rounds < min_samples``."""
    return max(rounds, math.ceil(min_samples / n))


def prepare(target: Target, fakes: LoadFakes, lat: Latencies, pages: dict[str, float], *, warmup: int,
            timeout: float) -> None:
    """Warm ``target`` up, then find its critical path from one stream alone (into ``target.out``)."""
    out = target.out
    out.update({"target": target.name, "label": target.label, "body": target.body})
    _say(f"[{target.name}] warm-up: {warmup} stream(s) ...")
    warm = asyncio.run(_sequential(target.url, target.body, warmup, timeout, headers=target.headers))
    out["warmup_total_ms"] = [r["total_ms"] for r in warm]
    if not all(r["ok"] for r in warm):
        raise RuntimeError(f"[{target.name}] warm-up failed: {[r['error'] for r in warm if not r['ok']]}")

    # The chunks the fake model sent per turn give the critical path. The fake logs a turn after
    # its last chunk's pause, which can come after the client has its [DONE]: wait that out.
    settle = 0.2 + 3 * lat.chunk_ms / 1000
    time.sleep(settle)
    fakes.turns()
    calib = asyncio.run(_sequential(target.url, target.body, 1, timeout, headers=target.headers))
    time.sleep(settle)
    target.turns = fakes.turns()
    if calib[0]["ok"] and target.turns:
        # A turn's [DONE] is its last write, (chunks - 1) pauses after its first.
        per_turn = [lat.model_ms + (writes - 1) * lat.chunk_ms for _model, writes in target.turns]
        fetch = (lat.search_ms + max(pages.values(), default=0.0)) if target.grounded and len(per_turn) > 1 else 0.0
        target.critical_total_ms = sum(per_turn) + fetch
        # The answer's first word is the fake's second write of the last turn (after the role chunk).
        target.critical_first_ms = sum(per_turn[:-1]) + fetch + lat.model_ms + lat.chunk_ms
    out.update({"turns": [{"model": m, "chunks_written": w} for m, w in target.turns],
                "critical_total_ms": target.critical_total_ms, "critical_first_ms": target.critical_first_ms})


def measure_baselines(targets: list[Target], runs: int, timeout: float) -> None:
    """``runs`` unloaded streams per target, one at a time, the targets taking turns (so a change in
    the machine's other load falls on all of them); each target's baseline into ``target.out``."""
    bar = _Bar(runs * len(targets), "unloaded")
    machine0, load0, t0 = machine_jiffies(), loadavg(), time.perf_counter()

    async def go() -> dict[str, list[dict[str, Any]]]:
        got: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
        clients = {t.name: _client(1, timeout, t.headers) for t in targets}
        try:
            for _ in range(runs):
                for t in targets:
                    got[t.name].append(await one_stream(clients[t.name], t.url, t.body))
                    bar.tick()
        finally:
            for c in clients.values():
                await c.aclose()
        return got

    got = asyncio.run(go())
    bar.close()
    machine1, wall = machine_jiffies(), time.perf_counter() - t0
    busy = (round((os.cpu_count() or 1) * (machine1[0] - machine0[0]) / max(1, machine1[1] - machine0[1]), 2)
            if machine0 and machine1 else None)
    for target in targets:
        base = got[target.name]
        ok = [r for r in base if r["ok"]]
        if not ok:
            raise RuntimeError(f"[{target.name}] every unloaded stream failed: {base[0]['error']}")
        baseline = {"runs": len(base), "errors": len(base) - len(ok),
                    "total_ms": stats([r["total_ms"] for r in ok]),
                    "ttft_ms": stats([r["ttft_ms"] for r in ok]),
                    "ttfb_ms": stats([r["ttfb_ms"] for r in ok if r["ttfb_ms"] is not None]),
                    "loadavg_before": load0, "loadavg_after": loadavg(), "machine_busy_cores": busy,
                    "wall_s": round(wall, 2)}
        if math.isfinite(target.critical_total_ms):
            baseline["over_critical_total_ms"] = stats([r["total_ms"] - target.critical_total_ms for r in ok])
            baseline["over_critical_first_ms"] = stats([r["ttft_ms"] - target.critical_first_ms for r in ok])
        target.out["baseline"] = baseline
        target.out["idle_memory"] = _mib(memory_kib(_children(target.pids[0])))
        _say(f"[{target.name}] unloaded: total p50 {baseline['total_ms']['p50']:.0f} ms (critical path "
             f"{target.critical_total_ms:.0f}), first token p50 {baseline['ttft_ms']['p50']:.0f} ms "
             f"(critical {target.critical_first_ms:.0f}); RSS {target.out['idle_memory']['rss_mib']} MiB")


def run_level(target: Target, fakes: LoadFakes, n: int, *, rounds: int, min_samples: int, timeout: float,
              seed: int) -> dict[str, Any]:
    """``n`` streams open at all times through ``target``; the level's row."""
    baseline = target.out["baseline"]
    stagger_s = baseline["total_ms"]["p50"] / 1000
    per_worker = per_worker_rounds(n, rounds, min_samples)
    edge = 1 if n > 1 else 0
    total = n * (per_worker + 2 * edge)
    rng = random.Random(seed * 1000 + n)
    pids = _children(target.pids[0])
    reset_ok = reset_peak(pids)
    load0 = loadavg()
    fakes_cpu0, server_cpu0, client_cpu0 = fakes.cpu_seconds(), cpu_seconds(pids), time.process_time()
    machine0 = machine_jiffies()
    t0 = time.perf_counter()
    bar = _Bar(total, f"{target.name} x{n}")
    results, max_rss = asyncio.run(_closed_loop(target.url, target.body, n, per_worker + 2 * edge, stagger_s,
                                                rng, timeout, pids, bar.tick, target.headers))
    bar.close()
    wall = time.perf_counter() - t0
    server_cpu = cpu_seconds(pids) - server_cpu0
    client_cpu = time.process_time() - client_cpu0
    fakes_cpu = fakes.cpu_seconds() - fakes_cpu0
    machine1 = machine_jiffies()
    machine_busy = None
    if machine0 and machine1 and machine1[1] > machine0[1]:
        machine_busy = (os.cpu_count() or 1) * (machine1[0] - machine0[0]) / (machine1[1] - machine0[1])
    fakes.turns()  # drop the fakes' logs
    mem = memory_kib(pids)
    usage = {
        "wall_s": round(wall, 2),
        "server_cpu_s": round(server_cpu, 2),
        "server_cores": round(server_cpu / wall, 2),
        "fakes_cores": round(fakes_cpu / wall, 2),
        "client_cores": round(client_cpu / wall, 2),
        # Everything else running on the machine meanwhile (other work; /proc/stat minus ours).
        "other_cores": None if machine_busy is None
        else round(max(0.0, machine_busy - (server_cpu + fakes_cpu + client_cpu) / wall), 2),
        "peak_rss_mib": round((mem["hwm_kib"] if reset_ok else max_rss) / 1024, 1),
        "peak_rss_source": "VmHWM (reset before the level)" if reset_ok else "VmRSS sampled every 0.25 s",
        "sampled_max_rss_mib": round(max_rss / 1024, 1),
        "rss_after_mib": round(mem["rss_kib"] / 1024, 1),
        "loadavg_before": load0,
        "loadavg_after": loadavg(),
    }
    measured = [r for r in results if not edge or 0 < r["index"] < per_worker + 2 * edge - 1]
    row = summarize_level(n, results, measured, baseline, target, usage)
    at, af = row["added_total_ms"], row["added_first_ms"]
    _say(f"[{target.name}] {n:>4} streams: added total p50/p99 "
         f"{_f(at, 'p50')}/{_f(at, 'p99')} ms, first token p99 {_f(af, 'p99')} ms, errors {row['errors']}, "
         f"server {row['server_cores']} cores, others {_n(usage['other_cores'])} cores, "
         f"peak RSS {row['peak_rss_mib']} MiB, load {usage['loadavg_after']}")
    return row


def run_targets(targets: list[Target], fakes: LoadFakes, lat: Latencies, pages: dict[str, float],
                levels: list[int], *, rounds: int, min_samples: int, warmup: int, baseline_runs: int,
                threshold_ms: float, stop_ms: float, timeout: float, seed: int) -> None:
    """Warm up and calibrate each target, measure the baselines, then step the levels up, the
    targets taking turns at each level; a target stops at its first level with errors or with
    p99 added total latency over ``stop_ms``. Results into each ``target.out``."""
    for target in targets:
        prepare(target, fakes, lat, pages, warmup=warmup, timeout=timeout)
    measure_baselines(targets, baseline_runs, timeout)
    active = list(targets)
    for target in targets:
        target.out["levels"] = []
    for n in levels:
        for target in list(active):
            row = run_level(target, fakes, n, rounds=rounds, min_samples=min_samples, timeout=timeout, seed=seed)
            target.out["levels"].append(row)
            at = row["added_total_ms"]
            if row["errors"] or at is None or at["p99"] > stop_ms:
                _say(f"[{target.name}] stopping: {'errors' if row['errors'] else f'p99 over {stop_ms:.0f} ms'}")
                active.remove(target)
        if not active:
            break
    for target in targets:
        target.out["headline"] = headline(target.out["levels"], threshold_ms)


def _mib(mem: dict[str, int]) -> dict[str, float]:
    return {"rss_mib": round(mem["rss_kib"] / 1024, 1), "hwm_mib": round(mem["hwm_kib"] / 1024, 1)}


def _n(value: Any) -> str:
    return "-" if value is None else str(value)


def _f(stat: dict[str, float] | None, key: str, digits: int = 0) -> str:
    return "-" if stat is None else f"{stat[key]:.{digits}f}"


# -- the servers under test -------------------------------------------------------------------------------


def grounding_config(llm_url: str, folder: Path, key: str, redis_url: str | None = None,
                     name: str = "grounding") -> Path:
    import yaml

    config: dict[str, Any] = {
        "providers": {"fake": {"litellm_provider": "openai", "api_base": f"{llm_url}/v1", "api_key": "sk-bench"}},
        "models": [{"id": "fake-searcher", "provider": "fake", "capabilities": {"tools": True}},
                   {"id": f"fake-{PROSE_POLICY}", "provider": "fake", "capabilities": {"tools": True}}],
        "server": {"api_keys": [{"key": key, "name": "bench"}], "max_concurrent_per_key": 100_000,
                   "router_store": f"sqlite:///{folder / (name + '-routers.db')}"},
    }
    if redis_url:  # several server processes: their shared store (statistics, limits, cache)
        config["redis_url"] = redis_url
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def litellm_config(llm_url: str, folder: Path, key: str) -> Path:
    import yaml

    config = {"general_settings": {"master_key": key},
              "model_list": [{"model_name": LITELLM_MODEL,
                              "litellm_params": {"model": f"openai/{LITELLM_MODEL}", "api_base": f"{llm_url}/v1",
                                                 "api_key": "sk-bench"}}]}
    path = folder / "litellm.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def serve_env(fakes: LoadFakes) -> dict[str, str]:
    return {**fakes.env, "GROUNDING_ALLOW_PRIVATE_NETWORKS": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "GROUNDING_API_KEYS": "", "GROUNDING_ADMIN_KEYS": ""}


def _startup_failure(output: str) -> str | None:
    """The line of a server's output that says why it did not start (the last error line)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "Error" in ln and ":" in ln and not ln.startswith(("File ", "^")):
            return ln[:400]
    return lines[-1][:400] if lines else None


def grounded_label(thread: bool, workers: int) -> str:
    where = "extraction in the server process (before the pool)" if thread else "extraction pool"
    return f"grounded (web_search), {where}, {workers} server process{'es' if workers > 1 else ''}"


def wait_for_processes(pid: int, workers: int, thread: bool, timeout: float = 180.0) -> None:
    """Wait until ``grounding serve`` has its ``workers`` processes, each with its extraction worker(s)
    (``/health`` answers as soon as the first one is up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree = _children(pid)
        cmdlines = {}
        for p in tree:
            with contextlib.suppress(OSError):
                cmdlines[p] = Path(f"/proc/{p}/cmdline").read_bytes()
        servers = [p for p, c in cmdlines.items() if b"spawn_main" in c] if workers > 1 else [pid]
        extractors = [p for p, c in cmdlines.items() if b"providers.extract_worker" in c]
        if len(servers) >= workers and (thread or len(extractors) >= len(servers)):
            return
        time.sleep(0.2)
    raise RuntimeError(f"grounding serve (pid {pid}) did not start its {workers} processes in {timeout:.0f} s")


def redis_server_version() -> str | None:
    import shutil as _shutil

    binary = _shutil.which("redis-server")
    if not binary:
        return None
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"v=(\S+)", out)
    return m.group(1) if m else out.strip()[:80]


def litellm_proxy_version(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    proc = subprocess.run([str(python), "-c", "from importlib.metadata import version; print(version('litellm'))"],
                          capture_output=True, text=True, timeout=60)
    return proc.stdout.strip() or None


# -- report -----------------------------------------------------------------------------------------------


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lat = s["latencies"]
    thr = s["threshold_ms"]
    lines = [
        "# Server load: concurrent streams through one `grounding serve` process",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}; seed {report['seed']}; load average before {report['loadavg_before']}, "
        f"after {report['loadavg_after']}; {report['environment'].get('cpus')} CPUs.",
        "",
        f"Fakes (own process): model {lat['model_ms']:.0f} ms to the first chunk, then a chunk every "
        f"{lat['chunk_ms']:.0f} ms; search {lat['search_ms']:.0f} ms; pages {lat['page_min_ms']:.0f}-"
        f"{lat['page_max_ms']:.0f} ms. Closed loop: N streams open at all times; each worker's first and last "
        f"stream not counted. **Added** = a stream's time - the unloaded median (baseline). "
        f"Pass: no error and p99 added (total and first token) < {thr:.0f} ms. Grounded streams "
        + ("use the search and page cache (all but the first are cache hits)." if s.get("cache") == "on"
           else "bypass the cache (`web_search.cache: false`: every stream searches, fetches and extracts).")
        + " Server CPU and memory include every process of the server (its workers, extraction workers).",
        "",
    ]
    heads = []
    for t in report["targets"]:
        h = t.get("headline")
        if t.get("skipped"):
            heads.append(f"- **{t['label']}**: not run: {t['skipped']}")
        elif h:
            heads.append(f"- **{t['label']}**: **{h['level']} concurrent streams** with p99 added "
                         f"{h['added_total_p99_ms']:.0f} ms total / {h['added_first_p99_ms']:.0f} ms first token; "
                         f"peak RSS {h['peak_rss_mib']:.0f} MiB, server {h['server_cores']} cores")
        else:
            heads.append(f"- **{t['label']}**: no level passed")
    lines += ["Headline (largest level passing, counting up):", "", *heads, ""]
    for t in report["targets"]:
        if t.get("skipped"):
            continue
        b = t["baseline"]
        lines += [
            f"## {t['label']}",
            "",
            f"Unloaded ({b['runs']} streams one at a time): total p50 {b['total_ms']['p50']:.0f} ms "
            f"(p99 {b['total_ms']['p99']:.0f}), first token p50 {b['ttft_ms']['p50']:.0f} ms; critical path "
            f"{t['critical_total_ms']:.0f} ms total, {t['critical_first_ms']:.0f} ms to the first token "
            f"(model turns: {', '.join(str(x['chunks_written']) + ' chunks' for x in t['turns'])}); "
            f"idle RSS {t['idle_memory']['rss_mib']:.0f} MiB.",
            "",
            "| streams | measured | errors | open (mean) | added total p50 / p95 / p99 ms | added first token p50 / p95 / p99 ms "
            "| total p50 ms | over critical p99 ms | server cores | server CPU ms/stream | fakes cores | client cores | other cores "
            "| peak RSS MiB | RSS after MiB | load avg after | pass |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        ]
        for r in t["levels"]:
            at, af = r["added_total_ms"], r["added_first_ms"]
            lines.append(
                f"| {r['level']} | {r['measured']} | {r['errors']} | {r['steady_concurrency'] or '-'} "
                f"| {_f(at, 'p50')} / {_f(at, 'p95')} / {_f(at, 'p99')} "
                f"| {_f(af, 'p50')} / {_f(af, 'p95')} / {_f(af, 'p99')} | {_f(r['total_ms'], 'p50')} "
                f"| {_f(r['over_critical_total_ms'], 'p99')} | {r['server_cores']} | {r['server_cpu_ms_per_stream']} "
                f"| {r['fakes_cores']} | {r['client_cores']} | {_n(r.get('other_cores'))} | {r['peak_rss_mib']:.0f} | {r['rss_after_mib']:.0f} "
                f"| {' '.join(str(x) for x in (r['loadavg_after'] or []))} | {'yes' if passes(r, thr) else 'no'} |")
        kinds = {k: v for r in t["levels"] for k, v in r["error_kinds"].items()}
        if kinds:
            lines += ["", "Errors: " + "; ".join(f"{k} ({v})" for k, v in kinds.items()) + "."]
        lines.append("")
    return "\n".join(lines)


def figures(report: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.common import new_figure

    thr = report["settings"]["threshold_ms"]
    ran = [t for t in report["targets"] if not t.get("skipped") and t.get("levels")]
    out: dict[str, Any] = {}
    fig, ax = new_figure(7.0, 4.2)
    floor = 1.0  # a log axis: p99 under 1 ms (or negative: faster than the unloaded median) is drawn at 1

    def p99(stat: dict[str, float] | None) -> float:
        return math.nan if stat is None else max(floor, stat["p99"])

    for t in ran:
        rows = [r for r in t["levels"] if r["added_total_ms"]]
        xs = [r["level"] for r in rows]
        line, = ax.plot(xs, [p99(r["added_total_ms"]) for r in rows], marker="o", label=f"{t['label']}: total")
        ax.plot(xs, [p99(r["added_first_ms"]) for r in rows], marker="x", linestyle="--", color=line.get_color(),
                label=f"{t['label']}: first token")
    ax.axhline(thr, color="red", linewidth=1, label=f"{thr:.0f} ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    levels = sorted({r["level"] for t in ran for r in t["levels"]})
    ax.set_xticks(levels, [str(n) for n in levels])
    ax.minorticks_off()
    ax.set_xlabel("concurrent streams (one server process; the machine has 2 cores)")
    ax.set_ylabel("p99 added latency, ms")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title("p99 added latency (vs the unloaded median; < 1 ms drawn at 1) against concurrency", fontsize=9)
    out["p99"] = fig

    fig, ax = new_figure(7.0, 4.2)
    for t in ran:
        xs = [r["level"] for r in t["levels"]]
        line, = ax.plot(xs, [r["peak_rss_mib"] for r in t["levels"]], marker="o", label=f"{t['label']}: peak")
        ax.plot(xs, [r["rss_after_mib"] for r in t["levels"]], marker="x", linestyle="--", color=line.get_color(),
                label=f"{t['label']}: after the level")
    ax.set_xscale("log")
    levels = sorted({r["level"] for t in ran for r in t["levels"]})
    ax.set_xticks(levels, [str(n) for n in levels])
    ax.minorticks_off()
    ax.set_ylim(bottom=0)
    ax.set_xlabel("concurrent streams")
    ax.set_ylabel("server RSS, MiB")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title("server memory against concurrency", fontsize=10)
    out["rss"] = fig
    return out


# -- main -------------------------------------------------------------------------------------------------


def _ints(text: str, ap: argparse.ArgumentParser) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--levels takes comma-separated integers, not {text!r}")
    if not values or min(values) < 1:
        ap.error("--levels needs positive integers")
    return sorted(set(values))


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import SEED, environment, seed_everything, write_outputs
    from tests.fakes.live_server import ServeProcess

    ap = argparse.ArgumentParser(prog="python -m benchmarks.server_load", description=__doc__.split("\n\n")[0])
    ap.add_argument("--levels", default=",".join(map(str, DEFAULT_LEVELS)),
                    help="concurrent streams to step through (comma-separated)")
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help=f"comma-separated, of: {', '.join(TARGETS)}, grounded@N (N server processes), "
                    "grounded-thread[@N] (extraction in the server process, as before the pool)")
    ap.add_argument("--cache", choices=("off", "on"), default="off",
                    help="grounded streams: bypass the search and page cache (off, the default: every "
                    "stream does the work) or use it (on: after the first, streams are cache hits)")
    ap.add_argument("--rounds", type=int, default=5, help="measured streams per worker (default 5)")
    ap.add_argument("--min-samples", type=int, default=20,
                    help="at least this many measured streams per level (more rounds at low levels)")
    ap.add_argument("--baseline-runs", type=int, default=10, help="unloaded streams, one at a time (default 10)")
    ap.add_argument("--warmup", type=int, default=3, help="discarded streams first (default 3)")
    ap.add_argument("--threshold-ms", type=float, default=THRESHOLD_MS)
    ap.add_argument("--stop-ms", type=float, default=None,
                    help="stop stepping up once p99 added is over this (default 4 x the threshold)")
    ap.add_argument("--timeout", type=float, default=120.0, help="per stream, seconds")
    ap.add_argument("--litellm-venv", type=Path, default=DEFAULT_LITELLM_VENV,
                    help=f"virtualenv with litellm[proxy] (default {DEFAULT_LITELLM_VENV})")
    ap.add_argument("--limit", type=int, default=None,
                    help="quick run: the first N levels, at most N rounds and baseline runs, one warm-up")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--name", default=NAME, help=f"file name of the outputs (default {NAME}: {NAME}.json ...)")
    ap.add_argument("--seed", type=int, default=SEED, help=f"seeds the workers' start times (default {SEED})")
    ap.add_argument("--model-ms", type=float, default=300)
    ap.add_argument("--chunk-ms", type=float, default=20)
    ap.add_argument("--search-ms", type=float, default=200)
    ap.add_argument("--page-min-ms", type=float, default=50)
    ap.add_argument("--page-max-ms", type=float, default=800)
    args = ap.parse_args(argv)
    levels = _ints(args.levels, ap)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if not targets or any(t not in TARGETS and grounded_variant(t) is None for t in targets):
        ap.error(f"--targets: choose from {', '.join(TARGETS)}, grounded@N, grounded-thread[@N]")
    rounds, baseline_runs, warmup, min_samples = args.rounds, args.baseline_runs, args.warmup, args.min_samples
    if min(rounds, baseline_runs) < 1 or warmup < 0 or min_samples < 1:
        ap.error("--rounds, --baseline-runs and --min-samples must be at least 1, --warmup at least 0")
    if args.limit is not None:
        if args.limit < 1:
            ap.error("--limit must be at least 1")
        levels, rounds = levels[:args.limit], min(rounds, args.limit)
        baseline_runs, warmup, min_samples = min(baseline_runs, args.limit), min(warmup, 1), min(min_samples, args.limit)
    stop_ms = args.stop_ms if args.stop_ms is not None else 4 * args.threshold_ms
    lat = Latencies(args.model_ms, args.chunk_ms, args.search_ms, args.page_min_ms, args.page_max_ms)
    seed = seed_everything(args.seed)
    for name in ("GROUNDING_SOURCE_TOKENS", "GROUNDING_ENGINE", "GROUNDING_MODEL", "GROUNDING_CONFIG",
                 "GROUNDING_REDIS_URL", "GROUNDING_EXTRACT_WORKERS", "GROUNDING_CACHE"):
        os.environ.pop(name, None)
    common = dict(rounds=rounds, min_samples=min_samples, warmup=warmup, baseline_runs=baseline_runs,
                  threshold_ms=args.threshold_ms, stop_ms=stop_ms, timeout=args.timeout, seed=seed)

    load_before = loadavg()
    folder = Path(tempfile.mkdtemp(prefix="grounding-server-load-"))
    _say("starting the fakes (own process) ...")
    fakes = LoadFakes()
    results: dict[str, dict[str, Any]] = {}
    proxy_info: dict[str, Any] = {"venv": str(args.litellm_venv)}
    redis_info: dict[str, Any] = {}
    servers: list[tuple[Target, Any]] = []
    try:
        with contextlib.ExitStack() as stack:
            pages = configure(fakes, lat)
            key = "sk-bench-" + secrets.token_hex(24)  # both servers check a key, as deployed ones do
            auth = {"Authorization": f"Bearer {key}"}
            config = grounding_config(fakes.llm_url, folder, key)
            messages = [{"role": "user", "content": QUESTION}]
            redis = None
            if any((grounded_variant(t) or (False, 1))[1] > 1 for t in targets):
                from tests.fakes.redis_server import RedisServer

                _say("starting a redis-server (the processes' shared store) ...")
                redis = stack.enter_context(RedisServer())
                redis_info["version"] = redis_server_version()
            for db, name in enumerate(targets):
                t0 = time.perf_counter()
                variant = grounded_variant(name)
                if variant is not None or name == "plain":
                    grounded = variant is not None
                    thread, workers = variant or (False, 1)
                    body: dict[str, Any] = {"model": GROUNDED_MODEL if grounded else PLAIN_MODEL,
                                            "messages": messages, "stream": True}
                    if grounded:
                        body["web_search"] = {"engine": ENGINE, "max_results": MAX_RESULTS, "cache": args.cache == "on"}
                    label = (grounded_label(thread, workers) if grounded else "plain stream, grounding serve")
                    env = serve_env(fakes)
                    if thread:
                        env["GROUNDING_EXTRACT_WORKERS"] = "0"
                    target_config, extra = config, []
                    if workers > 1:
                        assert redis is not None
                        target_config = grounding_config(fakes.llm_url, folder, key, f"{redis.url[:-2]}/{db % 16}",
                                                         name=f"grounding-{db}")
                        extra = ["--workers", str(workers)]
                    _say(f"[{name}] starting grounding serve{' --workers ' + str(workers) if workers > 1 else ''} ...")
                    server: Any = stack.enter_context(ServeProcess(target_config, env=env, start_timeout=120,
                                                                   extra_args=extra))
                    wait_for_processes(server.process.pid, workers, thread)
                    target = Target(name, label, f"{server.base_url}/chat/completions", body,
                                    [server.process.pid], auth, grounded=grounded)
                else:
                    label = "plain stream, litellm proxy"
                    version = litellm_proxy_version(args.litellm_venv)
                    exe = args.litellm_venv / "bin" / "litellm"
                    proxy_info["litellm_version"] = version
                    if version is None or not exe.exists():
                        reason = (f"no litellm in {args.litellm_venv} (python -m venv {args.litellm_venv} && "
                                  f"{args.litellm_venv}/bin/pip install 'litellm[proxy]==1.104.5')")
                        _say(f"[litellm] skipped: {reason}")
                        results[name] = {"target": name, "label": label, "skipped": reason}
                        continue
                    server = ProxyProcess(exe, litellm_config(fakes.llm_url, folder, key),
                                          env={"LITELLM_LOCAL_MODEL_COST_MAP": "True"})
                    _say(f"[litellm] starting litellm's proxy {version} ...")
                    try:
                        server.start()
                    except RuntimeError as exc:
                        reason = _startup_failure(server.output) or str(exc).splitlines()[0]
                        _say(f"[litellm] skipped: {reason}")
                        results[name] = {"target": name, "label": label, "skipped": reason,
                                         "server_log_tail": server.output[-3000:]}
                        continue
                    stack.callback(server.stop)
                    target = Target(name, label, f"{server.url}/v1/chat/completions",
                                    {"model": LITELLM_MODEL, "messages": messages, "stream": True},
                                    [server.process.pid], auth)
                target.out["startup_s"] = round(time.perf_counter() - t0, 2)
                target.out["processes"] = len(_children(target.pids[0]))
                results[name] = target.out
                servers.append((target, server))
            if servers:
                run_targets([t for t, _ in servers], fakes, lat, pages, levels, **common)
        for target, server in servers:  # stopped now: their output is complete
            target.out["server_log_tail"] = server.output[-1500:]
    finally:
        fakes.close()
        shutil.rmtree(folder, ignore_errors=True)
    results_list = [results[name] for name in targets if name in results]

    command = " ".join(["python -m benchmarks.server_load", *(argv if argv is not None else sys.argv[1:])])
    report: dict[str, Any] = {
        "benchmark": NAME,
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seed": seed,
        "environment": environment(("uvicorn", "starlette")),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "settings": {
            "latencies": asdict(lat), "question": QUESTION, "engine": ENGINE, "max_results": MAX_RESULTS,
            "levels": levels, "targets": targets, "rounds": rounds, "min_samples": min_samples,
            "baseline_runs": baseline_runs, "warmup": warmup, "threshold_ms": args.threshold_ms,
            "stop_ms": stop_ms, "timeout_s": args.timeout, "limit": args.limit, "pages_ms": pages,
            "litellm_proxy": proxy_info, "cache": args.cache, "redis": redis_info or None,
        },
        "headline": {t["target"]: t.get("headline") for t in results_list},
        "targets": results_list,
    }
    write_outputs(args.out, args.name, report, markdown(report), figures(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
