"""Overhead benchmark: wall time of one grounded answer against its critical path.

Usage::

    python -m benchmarks.overhead [--runs N] [--out DIR] [--shapes a,b] [--modes both|plain|stream]
                                  [--fakes subprocess|inprocess] [--limit N] [--seed S]
    python -m benchmarks.overhead --grid [--steps 1,2,3,4,5] [--results 3,5,10,20] [--runs N]
                                  [--engine tavily] [--limit N] [...]

Two modes. The default runs a few request shapes (``--shapes``) and writes
``overhead.json``, ``overhead.md`` and ``overhead-ratio.png``. ``--grid`` runs
every cell of search steps (1-5) x results per step (3, 5, 10, 20), each step
searching a new query whose results are all new pages (up to 20 x 5 = 100
page fetches per request), and writes ``overhead-grid.json``,
``overhead-grid.md`` and ``overhead-grid-{ratio,cpu,added}.png`` (see
:func:`run_grid`).

One ``grounding.completion`` call with ``web_search`` runs against the fake
upstreams of ``tests/fakes`` (real HTTP servers on 127.0.0.1) at fixed
latencies:

* the model (``FakeLLM``): ``--model-ms`` (300) per turn;
* the search API (``FakeSearch``, engine ``searxng``, with ``--grid``
  ``--engine`` (``tavily``: the fake searxng stops at 10 results), reached
  through ``litellm.asearch``): ``--search-ms`` (200) per query;
* the pages (``FakeWeb``, real WCXB pages): spread evenly from ``--page-min-ms``
  (50) to ``--page-max-ms`` (800) over the distinct result pages of the shape's
  queries (with ``--grid``: over each step's), in rank order (the first result
  is the fastest, the last the slowest).

The **critical path** is what the request cannot beat with these latencies:
the model latency times the number of model turns, plus, for each search step,
the search latency (if the step searched) and the latency of the slowest page
fetched in that step. A step that only finds pages already fetched (the
``searcher:N`` policy repeats its query) has no page on its path. Ratio =
wall / critical path. ``critical_capped_ms`` is the same path with the
fetcher's concurrency cap (the ``concurrency`` the loop opened its
``Fetcher`` with, recorded per request; pages started in rank order) applied:
with more pages than slots, the last pages wait for a slot.

Where the rest goes (``breakdown``) comes from ``response.metadata`` timings
and a timeline recorded by thin wrappers (microseconds each) around
``grounding.llm.acompletion`` (when each model call starts),
``Fetcher.fetch`` and ``grounding.gather.extract``:

``pre``          before the first model call: validation, model resolution
``turns``        model turns beyond the model latency (litellm + HTTP + parsing;
                 when streaming, also handing each chunk to the caller)
per search step, along the page that finished last (fetched, then extracted):
``search``       from the end of the turn to that page's fetch call, beyond the
                 search latency (the search, then scheduling)
``fetch_wait``   waiting for a free slot of the fetcher
``fetch``        its fetch beyond the step's slowest page latency
``extract``      its extraction, and waiting for a worker thread
``step_rest``    from there to the next model call (sources into prompts);
                 a step with nothing new to fetch is ``search`` + ``step_rest``
``post``         after the last model turn: citations, response building

These add up exactly to wall - critical path. CPU time is the process CPU
time (``time.process_time``) spent during the call in the benchmark process
plus the CPU the extraction worker processes report for its pages
(``extract_workers_cpu_ms``); with ``--fakes subprocess`` (the default) the
fake servers run in a child process, so it is the library's own CPU (their
CPU is reported apart). Requests are sent with ``web_search.cache = false``:
each run searches, fetches and extracts (``python -m benchmarks cache``
measures the cache).

Every (shape, mode) is run ``--runs`` times (median and p90, nearest rank);
one warm-up request per mode is run first and discarded (the first one pays
litellm's import). ``--limit N`` keeps the first N shapes (grid cells) and at
most N runs of each, for a quick check. Results go to ``--out``; a progress
bar goes to stderr. Nothing here is random; the seed (``--seed``) is recorded
with the environment (versions, git commit, load average).
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import math
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

DEFAULT_OUT = Path(__file__).resolve().parent / "out"
QUESTION = "nutrition trends for fall"
ENGINE = "searxng"  # litellm's SearXNG client; the fake answers with 10 results per query
#: The grid's engine: its fake answers with up to 20 results (SearXNG's stops at 10).
GRID_ENGINE = "tavily"
GRID_STEPS = (1, 2, 3, 4, 5)
GRID_RESULTS = (3, 5, 10, 20)
#: What the stepped policy searches in steps 2, 3, ... (step 1 searches the question).
#: Their top 20 results in the fake's index are disjoint from each other and from
#: the question's, so every step fetches ``max_results`` new pages.
STEP_TOPICS = ("python programming tutorial", "football match report", "mortgage interest rates",
               "smartphone camera review")
#: The fake model's policy for the grid (registered by :func:`register_policy`).
STEPPED_POLICY = "bench-steps"


# -- settings ------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """One request shape: the fake model's policy and the ``web_search`` settings."""

    name: str
    policy: str  # FakeLLM model name after "fake-": "searcher", "searcher:3", "parallel", "bench-steps:3"
    max_results: int = 3
    max_steps: int = 1
    #: Query suffixes the policy sends per step ("" = the question itself).
    variants: tuple[str, ...] = ("",)
    #: Each step searches a new query (the question, then :data:`STEP_TOPICS`), so each
    #: step fetches new pages; their latencies are spread per step (policy ``bench-steps``).
    stepped: bool = False
    engine: str = ENGINE

    def queries(self, question: str) -> list[str]:
        return [f"{question} {v}".strip() if v else question for v in self.variants]

    def step_queries(self, question: str) -> list[list[str]]:
        """The queries of each search step (a policy that repeats its query: one entry)."""
        if not self.stepped:
            return [self.queries(question)]
        return [[question if k == 0 else STEP_TOPICS[(k - 1) % len(STEP_TOPICS)]] for k in range(self.max_steps)]


def grid_shape(steps: int, results: int, engine: str = GRID_ENGINE) -> Shape:
    """The grid cell with ``steps`` search steps of ``results`` results each."""
    return Shape(f"s{steps}r{results}", f"{STEPPED_POLICY}:{steps}", max_results=results, max_steps=steps,
                 stepped=True, engine=engine)


SHAPES: dict[str, Shape] = {s.name: s for s in (
    Shape("default", "searcher"),
    Shape("results10", "searcher", max_results=10),
    Shape("steps2", "searcher:2", max_steps=2),
    Shape("steps3", "searcher:3", max_steps=3),
    Shape("parallel2", "parallel", variants=("", "background")),
)}


@dataclass(frozen=True)
class Latencies:
    model_ms: float = 300
    search_ms: float = 200
    page_min_ms: float = 50
    page_max_ms: float = 800


def spread(paths: list[str], lat: Latencies) -> dict[str, float]:
    """Page latencies from ``page_min_ms`` to ``page_max_ms``, evenly, in the order given."""
    n = len(paths)
    if n == 1:
        return {paths[0]: lat.page_max_ms}
    step = (lat.page_max_ms - lat.page_min_ms) / (n - 1) if n > 1 else 0
    return {p: round(lat.page_min_ms + i * step, 1) for i, p in enumerate(paths)}


# -- the fakes -------------------------------------------------------------------


def _stepped_policy(c: Any) -> Any:
    """Search the question, then one topic of :data:`STEP_TOPICS` per further round; then answer
    as ``searcher`` does (one cited sentence per source, up to 3)."""
    from tests.fakes.policies import POLICIES, SEARCH_TOOL, Action, ToolCall

    if not c.wants_search():
        return POLICIES["searcher"](c)
    k = c.search_rounds()
    query = c.question() if k == 0 else STEP_TOPICS[(k - 1) % len(STEP_TOPICS)]
    return Action(tool_calls=(ToolCall(SEARCH_TOOL, json.dumps({"query": query})),))


def register_policy() -> None:
    """Make the fake model answer ``fake-bench-steps[:N]`` (in the process that runs it)."""
    from tests.fakes import policies

    policies.POLICIES.setdefault(STEPPED_POLICY, _stepped_policy)


class InProcessFakes:
    """The three fakes as the tests run them: servers in this process.

    Pass running servers (e.g. the pytest fixtures), or none to start new ones
    (then :meth:`close` stops them).
    """

    def __init__(self, web: Any = None, search: Any = None, llm: Any = None) -> None:
        from tests.fakes.llm import FakeLLM
        from tests.fakes.search_apis import FakeSearch
        from tests.fakes.web import FakeWeb

        register_policy()
        self._owned = web is None
        self.web = web or FakeWeb().start()
        self.search = search or FakeSearch(self.web.url).start()
        self.llm = llm or FakeLLM().start()
        self.llm_url = self.llm.url
        self.env = self.search.env()

    def hits(self, query: str, n: int) -> list[str]:
        """Paths (``/wcxb/NNNN``) of the top ``n`` results the fake search gives for ``query``."""
        from tests.fakes.search_apis import wcxb_gold_index

        index, _pages = wcxb_gold_index()
        return ["/" + h.url for h in index.search(query, n)]

    def configure(self, model_ms: float, search_ms: float, pages: dict[str, float]) -> None:
        self.llm.latency_ms = model_ms
        self.llm.model_latency_ms = {}
        for switches in self.search.engines.values():  # every engine: the grid uses another one
            switches.latency_ms = search_ms
        self.web.latency_ms = 0
        self.web.page_latency_ms = dict(pages)

    def cpu_seconds(self) -> float | None:
        return None  # they share this process's CPU time

    def close(self) -> None:
        if self._owned:
            self.llm.stop()
            self.search.stop()
            self.web.stop()


def _quiet_resets(fake: Any) -> None:
    """Keep socketserver from printing a traceback when a client resets an idle connection."""
    server = getattr(fake, "_server", None)
    if server is None:
        return
    report = server.handle_error

    def handle_error(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            report(request, client_address)

    server.handle_error = handle_error


def serve_commands(conn: Any, fakes: InProcessFakes, handlers: dict[str, Callable[..., Any]], **hello: Any) -> None:
    """A child process's life with ``fakes``: say hello (``llm_url``, ``env`` and ``hello``), then
    answer each ``(command, args)`` from the parent with ``handlers[command](*args)`` until
    ``stop``; the fakes are closed at the end. ``cpu`` (this process's CPU seconds) is built in."""
    for server in (fakes.web, fakes.search, fakes.llm):  # a client dropping a kept-alive connection is no error
        _quiet_resets(server)
    handlers = {"cpu": time.process_time, **handlers}
    conn.send({"llm_url": fakes.llm_url, "env": fakes.env, **hello})
    try:
        while True:
            cmd, args = conn.recv()
            if cmd == "stop":
                break
            conn.send(handlers[cmd](*args))
    finally:
        fakes.close()


def _serve_fakes(conn: Any) -> None:
    """Child process: run the fakes, obey commands from the parent until told to stop."""
    fakes = InProcessFakes()
    serve_commands(conn, fakes, {"configure": fakes.configure, "hits": fakes.hits})


class SubprocessFakes:
    """The same fakes, started in a child process (spawned), so their CPU time
    and their threads stay out of the measured process.

    Subclasses serve other fakes by overriding :attr:`serve` (a module-level
    function taking the pipe, answering ``(command, args)`` messages, whose
    first message is a ``hello`` dict with ``llm_url`` and ``env``).
    """

    serve = staticmethod(_serve_fakes)
    process_name = "grounding-bench-fakes"

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=self.serve, args=(child,), name=self.process_name, daemon=True)
        self._proc.start()
        if not self._conn.poll(120):
            self._proc.kill()
            raise RuntimeError("the fake servers did not start")
        self.hello: dict[str, Any] = self._conn.recv()
        self.llm_url: str = self.hello["llm_url"]
        self.env: dict[str, str] = self.hello["env"]

    def _ask(self, cmd: str, *args: Any) -> Any:
        self._conn.send((cmd, args))
        return self._conn.recv()

    def hits(self, query: str, n: int) -> list[str]:
        return self._ask("hits", query, n)

    def configure(self, model_ms: float, search_ms: float, pages: dict[str, float]) -> None:
        self._ask("configure", model_ms, search_ms, dict(pages))

    def cpu_seconds(self) -> float | None:
        return self._ask("cpu")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.send(("stop", ()))
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)


# -- one measured request -----------------------------------------------------------


@dataclass
class _Trace:
    turn_starts: list[float] = field(default_factory=list)
    fetches: list[tuple[str, float, float, float]] = field(default_factory=list)  # url, called, returned, duration ms
    extracts: list[tuple[str | None, float, float]] = field(default_factory=list)  # url, start, end
    concurrency: int | None = None  # what the loop opened its Fetcher with


@contextlib.contextmanager
def _traced() -> Iterator[_Trace]:
    """Record when each model call starts, and when each page fetch and extraction runs.

    Thin wrappers around ``grounding.llm.acompletion``, ``Fetcher.fetch`` and
    ``ExtractPool.extract`` (the names the loop looks up at call time); an
    extraction's time includes its wait for a worker and the trip to it.
    """
    import grounding.llm
    from providers.extract_pool import ExtractPool
    from providers.fetch import Fetcher

    trace = _Trace()
    real_acompletion = grounding.llm.acompletion
    real_extract = ExtractPool.extract
    real_fetch = Fetcher.fetch
    real_init = Fetcher.__init__
    init_signature = inspect.signature(real_init)

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = init_signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        trace.concurrency = int(bound.arguments["concurrency"])
        real_init(self, *args, **kwargs)

    async def acompletion(**kwargs: Any) -> Any:
        trace.turn_starts.append(time.perf_counter())
        return await real_acompletion(**kwargs)

    async def fetch(self: Any, url: str) -> Any:
        t = time.perf_counter()
        result = await real_fetch(self, url)
        trace.fetches.append((url, t, time.perf_counter(), result.duration_ms))
        return result

    async def extract(self: Any, html: Any, url: str | None = None) -> Any:
        t = time.perf_counter()
        try:
            return await real_extract(self, html, url)
        finally:
            trace.extracts.append((url, t, time.perf_counter()))

    grounding.llm.acompletion = acompletion
    ExtractPool.extract = extract  # type: ignore[method-assign]
    Fetcher.fetch = fetch  # type: ignore[method-assign]
    Fetcher.__init__ = init  # type: ignore[method-assign]
    try:
        yield trace
    finally:
        grounding.llm.acompletion = real_acompletion
        ExtractPool.extract = real_extract  # type: ignore[method-assign]
        Fetcher.fetch = real_fetch  # type: ignore[method-assign]
        Fetcher.__init__ = real_init  # type: ignore[method-assign]


def configure(fakes: Any, shape: Shape, lat: Latencies, question: str = QUESTION) -> dict[str, float]:
    """Set the fakes' latencies for ``shape``; return the page latency of each path.

    Pages are spread over ``page_min_ms``-``page_max_ms`` in rank order: over all
    the shape's distinct pages, or, for a stepped shape, over each step's new pages
    (so every step's slowest page takes ``page_max_ms``).
    """
    pages: dict[str, float] = {}
    for queries in shape.step_queries(question):
        paths: list[str] = []
        for q in queries:
            for p in fakes.hits(q, shape.max_results):
                if p not in paths and p not in pages:
                    paths.append(p)
        if paths:
            pages.update(spread(paths, lat))
    fakes.configure(lat.model_ms, lat.search_ms, pages)
    return pages


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path


def fetcher_concurrency() -> int:
    from providers.fetch import Fetcher

    return int(inspect.signature(Fetcher.__init__).parameters["concurrency"].default)


def _capped(latencies: list[float], slots: int) -> float:
    """Makespan of fetches started in this order with at most ``slots`` at a time."""
    free = [0.0] * max(1, slots)
    end = 0.0
    for ms in latencies:
        i = min(range(len(free)), key=free.__getitem__)
        free[i] += ms
        end = max(end, free[i])
    return end


def measure_once(fakes: Any, shape: Shape, lat: Latencies, *, stream: bool,
                 question: str = QUESTION, pages: dict[str, float] | None = None) -> dict[str, Any]:
    """One ``grounding.completion`` call; its wall and CPU time, critical path and breakdown.

    ``fakes`` must be configured for ``shape`` (:func:`configure`, whose
    return value ``pages`` is); it is done here when ``pages`` is None.
    The process environment must point litellm's search at the fakes
    (``fakes.env``) and allow private networks.
    """
    import grounding

    if pages is None:
        pages = configure(fakes, shape, lat, question)
    kwargs = dict(
        model=f"openai/fake-{shape.policy}", api_base=f"{fakes.llm_url}/v1", api_key="sk-bench",
        messages=[{"role": "user", "content": question}],
        # Uncached: every run searches, fetches and extracts (the cache has its own benchmark).
        web_search={"engine": shape.engine, "max_results": shape.max_results, "max_steps": shape.max_steps,
                    "cache": False},
    )
    from providers.extract_pool import get_pool

    pool = get_pool()
    fakes_cpu0 = fakes.cpu_seconds()
    workers_cpu0 = pool.cpu_s
    first_content: float | None = None
    with _traced() as trace:
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        if stream:
            meta = None
            content = []
            for chunk in grounding.completion(stream=True, **kwargs):
                for choice in chunk.choices:
                    if choice.delta.content:
                        if first_content is None:
                            first_content = time.perf_counter()
                        content.append(choice.delta.content)
                if getattr(chunk, "metadata", None) is not None:
                    meta = chunk.metadata
            answer = "".join(content)
        else:
            response = grounding.completion(**kwargs)
            meta = response.metadata
            answer = response.choices[0].message.content or ""
        t1 = time.perf_counter()
        cpu1 = time.process_time()
    fakes_cpu1 = fakes.cpu_seconds()
    workers_cpu = pool.cpu_s - workers_cpu0  # extraction in the worker processes (0 when in process)
    if meta is None:
        raise RuntimeError("the response carried no metadata")

    wall = (t1 - t0) * 1000
    turns = list(meta.turns)
    if len(trace.turn_starts) != len(turns):
        raise RuntimeError(f"{len(trace.turn_starts)} model calls recorded for {len(turns)} turns")

    def ms(t: float) -> float:
        return (t - t0) * 1000

    starts = [ms(s) for s in trace.turn_starts]
    ends = [s + (t.duration_ms or 0.0) for s, t in zip(starts, turns)]
    fetch_at = {_path(u): (ms(a), ms(b), d) for u, a, b, d in trace.fetches}
    extract_at = {_path(u): (ms(a), ms(b)) for u, a, b in trace.extracts if u}

    # The critical path and the request's own timeline, step by step. Step k
    # runs from the end of search turn k to the start of turn k + 1.
    slots = trace.concurrency or fetcher_concurrency()
    steps = []
    for step in range(1, (meta.steps or 0) + 1):
        searches = [s for s in meta.searches if s.step == step]
        fetched = [_path(s.url) for s in meta.sources if s.step == step and s.status != "indexed"]
        begin = ends[step - 1]
        finish = starts[step] if step < len(starts) else begin
        row: dict[str, Any] = {
            "step": step,
            "searches": len(searches),
            "pages_fetched": len(fetched),
            "critical_search_ms": lat.search_ms if searches else 0.0,
            "critical_page_ms": max((pages.get(p, 0.0) for p in fetched), default=0.0),
            "critical_page_capped_ms": _capped([pages[p] for p in pages if p in fetched], slots),
            "gap_ms": finish - begin,
            "search_ms": max((s.duration_ms or 0.0 for s in searches), default=0.0),
        }
        # The page that finished last (fetched, then extracted) is the step's tail.
        done = {p: extract_at[p][1] if p in extract_at else fetch_at[p][1] for p in fetched if p in fetch_at}
        if done:
            last = max(done, key=done.__getitem__)
            called, returned, duration = fetch_at[last]
            ex_start, ex_end = extract_at.get(last, (returned, returned))
            row.update({
                "last_page": last,
                "last_page_latency_ms": pages.get(last, 0.0),
                "to_fetch_ms": called - begin,  # search, then scheduling the fetch
                "fetch_wait_ms": (returned - called) - duration,  # waiting for a free fetch slot
                "fetch_ms": duration,
                "to_extract_ms": ex_start - returned,  # waiting for a worker thread
                "extract_ms": ex_end - ex_start,
                "after_ms": finish - ex_end,  # sources into prompts, the next turn's set-up
            })
        steps.append(row)
    model_path = lat.model_ms * len(turns)
    critical = model_path + sum(s["critical_search_ms"] + s["critical_page_ms"] for s in steps)
    critical_capped = model_path + sum(s["critical_search_ms"] + s["critical_page_capped_ms"] for s in steps)

    # Where wall - critical goes; the parts add up to it exactly.
    b = dict.fromkeys(("pre_ms", "turns_ms", "search_ms", "fetch_wait_ms", "fetch_ms", "extract_ms",
                       "step_rest_ms", "post_ms"), 0.0)
    b["pre_ms"] = starts[0] if starts else 0.0
    b["turns_ms"] = sum(t.duration_ms or 0.0 for t in turns) - model_path
    b["post_ms"] = wall - ends[-1] if ends else wall
    for s in steps:
        if "last_page" in s:
            b["search_ms"] += s["to_fetch_ms"] - s["critical_search_ms"]
            b["fetch_wait_ms"] += s["fetch_wait_ms"]
            b["fetch_ms"] += s["fetch_ms"] - s["critical_page_ms"]
            b["extract_ms"] += s["to_extract_ms"] + s["extract_ms"]
            b["step_rest_ms"] += s["after_ms"]
        else:  # nothing new to fetch: a search, then the results into prompts
            b["search_ms"] += s["search_ms"] - s["critical_search_ms"]
            b["step_rest_ms"] += s["gap_ms"] - s["search_ms"]
    extract_ms = [(e - s) * 1000 for _u, s, e in trace.extracts]
    result = {
        "shape": shape.name,
        "stream": stream,
        "max_results": shape.max_results,
        "max_steps": shape.max_steps,
        "engine": shape.engine,
        "fetcher_concurrency": slots,
        "wall_ms": wall,
        "critical_ms": critical,
        "critical_capped_ms": critical_capped,
        "ratio": wall / critical if critical else math.nan,
        "overhead_ms": wall - critical,
        "cpu_ms": (cpu1 - cpu0 + workers_cpu) * 1000,
        "extract_workers_cpu_ms": workers_cpu * 1000,
        "fakes_cpu_ms": (fakes_cpu1 - fakes_cpu0) * 1000 if fakes_cpu0 is not None and fakes_cpu1 is not None else None,
        "total_duration_ms": meta.total_duration_ms,
        "time_to_first_content_ms": ms(first_content) if first_content is not None else None,
        "turns": [{"kind": t.kind, "step": t.step, "start_ms": s, "duration_ms": t.duration_ms,
                   "time_to_first_token_ms": t.time_to_first_token_ms} for t, s in zip(turns, starts)],
        "steps": steps,
        "sources_fetched": sum(1 for s in meta.sources if s.status == "fetched"),
        "sources_failed": sum(1 for s in meta.sources if s.status == "failed"),
        "extract_total_ms": sum(extract_ms),
        "answer_chars": len(answer),
        "annotations": meta.citations.annotations,
        "warnings": list(meta.warnings),
        "breakdown": b,
    }
    return _rounded(result)


def _rounded(obj: Any, digits: int = 1) -> Any:
    """Floats rounded to ``digits`` (ratios, and the statistics of ratios, to 3)."""
    if isinstance(obj, float):
        return round(obj, digits) if math.isfinite(obj) else obj
    if isinstance(obj, dict):
        return {k: _rounded(v, 3 if k == "ratio" else digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v, digits) for v in obj]
    return obj


# -- statistics and reporting -----------------------------------------------------------


def p90(values: list[float]) -> float:
    """90th percentile, nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and p90 of each figure over ``runs`` of one (shape, mode)."""
    def stat(values: list[float | None]) -> dict[str, float] | None:
        vals = [v for v in values if v is not None]
        if not vals:
            return None
        return {"median": statistics.median(vals), "p90": p90(vals), "min": min(vals), "max": max(vals)}

    first = runs[0]
    out: dict[str, Any] = {
        "shape": first["shape"],
        "stream": first["stream"],
        "runs": len(runs),
        "turns": len(first["turns"]),
        "steps": len(first["steps"]),
        "searches": sum(s["searches"] for s in first["steps"]),
        "pages_fetched": sum(s["pages_fetched"] for s in first["steps"]),
        "critical_ms": first["critical_ms"],
        "critical_capped_ms": first["critical_capped_ms"],
        "max_results": first.get("max_results"),
        "max_steps": first.get("max_steps"),
        "engine": first.get("engine"),
        "fetcher_concurrency": first.get("fetcher_concurrency"),
        "sources_failed_max": max(r.get("sources_failed", 0) for r in runs),
    }
    for key in ("wall_ms", "ratio", "overhead_ms", "cpu_ms", "fakes_cpu_ms", "total_duration_ms",
                "time_to_first_content_ms", "extract_total_ms"):
        out[key] = stat([r[key] for r in runs])
    out["breakdown_mean"] = {k: statistics.fmean(r["breakdown"][k] for r in runs) for k in first["breakdown"]}
    out["breakdown_median"] = {k: statistics.median(r["breakdown"][k] for r in runs) for k in first["breakdown"]}
    return _rounded(out)


def _git() -> dict[str, Any]:
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return {"commit": head or None, "dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def versions(dists: tuple[str, ...] = ("grounding", "litellm", "httpx", "trafilatura", "lxml", "pydantic", "openai")
             ) -> dict[str, Any]:
    """Python, platform, CPUs, load, the packages that matter and the git commit."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "executable": sys.executable,
    }
    for dist in dists:
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    out["git"] = _git()
    return out


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _fmt(stat: dict[str, float] | None, key: str = "median", digits: int = 0) -> str:
    if stat is None:
        return "-"
    value = stat[key]
    return f"{value:.{digits}f}"


def _versions_line(v: dict[str, Any]) -> str:
    git = v.get("git") or {}
    return (f"Versions: Python {v['python']}, grounding {v.get('grounding')} (git {str(git.get('commit'))[:10]}"
            f"{', dirty' if git.get('dirty') else ''}), litellm {v.get('litellm')}, httpx {v.get('httpx')}, "
            f"trafilatura {v.get('trafilatura')}; {v['cpus']} CPUs, {v['platform']}  ")


def _concurrency_text(rows: list[dict[str, Any]], default: Any) -> str:
    """``8`` or ``8 (default, steps2), 20 (results10)``: the concurrency each shape's fetcher had."""
    seen: dict[Any, list[str]] = {}
    for row in rows:
        names = seen.setdefault(row.get("fetcher_concurrency") or default, [])
        if row["shape"] not in names:
            names.append(row["shape"])
    if len(seen) <= 1:
        return str(next(iter(seen), default))
    return ", ".join(f"{c} ({', '.join(names)})" for c, names in seen.items())


def markdown(report: dict[str, Any]) -> str:
    """The default mode's summary: one row per (shape, mode), then where the overhead goes."""
    v, s = report.get("environment") or report["versions"], report["settings"]
    lat = s["latencies"]
    lines = [
        "# Overhead: wall time of one grounded answer against its critical path",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}  ",
        _versions_line(v),
        f"Load average before/after: {report['loadavg_before']} / {report['loadavg_after']}  ",
        f"Latencies: model {lat['model_ms']:g} ms per turn, search {lat['search_ms']:g} ms, pages "
        f"{lat['page_min_ms']:g}-{lat['page_max_ms']:g} ms spread evenly over the result pages in rank order; "
        f"engine `{s['engine']}`, fakes in {s['fakes']}, {s['runs']} runs per row after a warm-up, "
        f"fetcher concurrency {_concurrency_text(report['summary'], s['fetcher_concurrency'])}"
        + (f"; seed {report['seed']}" if report.get("seed") is not None else "") + ".",
        "",
        f"Warm-up (discarded): {', '.join(f'{k} {w:.0f} ms' for k, w in report['warmup_wall_ms'].items())}.",
        "",
        "Critical path = model latency x turns + per step (search latency + slowest page fetched in the step). "
        "Wall = the whole `grounding.completion` call (for streaming: until the last chunk). "
        "CPU = process CPU time of the request in the benchmark process"
        + (" (the fakes run in a child process; their CPU is the last column)." if s["fakes"] == "subprocess" else
           " (including the in-process fakes)."),
        "",
        "| shape | stream | turns | steps | pages | critical ms | wall median | wall p90 | ratio median | ratio p90 "
        "| overhead median ms | CPU median ms | CPU p90 ms | fakes CPU ms |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["summary"]:
        crit = f"{row['critical_ms']:.0f}"
        if row["critical_capped_ms"] != row["critical_ms"]:
            crit += f" ({row['critical_capped_ms']:.0f} capped)"
        lines.append(
            f"| {row['shape']} | {'yes' if row['stream'] else 'no'} | {row['turns']} | {row['steps']} "
            f"| {row['pages_fetched']} | {crit} | {_fmt(row['wall_ms'])} | {_fmt(row['wall_ms'], 'p90')} "
            f"| {_fmt(row['ratio'], digits=3)} | {_fmt(row['ratio'], 'p90', 3)} | {_fmt(row['overhead_ms'])} "
            f"| {_fmt(row['cpu_ms'])} | {_fmt(row['cpu_ms'], 'p90')} | {_fmt(row['fakes_cpu_ms'])} |"
        )
    lines += ["", _BREAKDOWN_TEXT, "", *_breakdown_table(report["summary"], ("shape", "stream")), ""]
    return "\n".join(lines)


_BREAKDOWN_TEXT = (
    "Where wall - critical goes (means over the runs, ms; they add up to the mean overhead). "
    "`pre`: before the first model call (validation, model resolution). `turns`: model turns beyond "
    "the model latency (litellm, HTTP, parsing; when streaming, also handing each chunk to the caller). "
    "Per search step, along the page that finished last: `search` = search and scheduling beyond the "
    "search latency; `slot wait` = waiting for one of the fetcher's slots; `fetch` = its fetch beyond the "
    "slowest page latency; `extract` = its extraction (and waiting for a worker thread); `rest` = from "
    "there to the next model call (sources into prompts). `post`: after the last turn (citations, "
    "response). `extraction, all pages` = the sum of every page's extraction (in worker threads)."
)


def _breakdown_table(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[str]:
    head = {"shape": "shape", "stream": "stream", "steps": "steps", "results": "results/step"}
    lines = [
        "| " + " | ".join(head[k] for k in keys) + " | pre | turns | search | slot wait | fetch | extract | rest "
        "| post | overhead (mean) | extraction, all pages (median) | first content ms (median) |",
        "| " + " | ".join("---" for _ in keys) + " | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: |",
    ]
    for row in rows:
        b = row["breakdown_mean"]
        cells = {"shape": row["shape"], "stream": "yes" if row["stream"] else "no",
                 "steps": row.get("max_steps"), "results": row.get("max_results")}
        lines.append(
            "| " + " | ".join(str(cells[k]) for k in keys)
            + f" | {b['pre_ms']:.0f} | {b['turns_ms']:.0f} | {b['search_ms']:.0f} | {b['fetch_wait_ms']:.0f} "
            f"| {b['fetch_ms']:.0f} | {b['extract_ms']:.0f} | {b['step_rest_ms']:.0f} | {b['post_ms']:.0f} "
            f"| {sum(b.values()):.0f} | {_fmt(row['extract_total_ms'])} | {_fmt(row['time_to_first_content_ms'])} |"
        )
    return lines


def write_markdown(path: Path, report: dict[str, Any]) -> None:
    path.write_text(markdown(report), encoding="utf-8")


def ratio_figure(summary: list[dict[str, Any]]) -> Any:
    """Bars: median wall / critical path per shape, plain and streamed, with a whisker to the p90."""
    from benchmarks.common import new_figure

    shapes = list(dict.fromkeys(r["shape"] for r in summary))
    modes = list(dict.fromkeys(r["stream"] for r in summary))
    fig, ax = new_figure(7.0, 4.0)
    width = 0.8 / max(1, len(modes))
    for j, stream in enumerate(modes):
        rows = {r["shape"]: r for r in summary if r["stream"] == stream}
        xs = [i + (j - (len(modes) - 1) / 2) * width for i in range(len(shapes))]
        med = [rows[n]["ratio"]["median"] if n in rows else math.nan for n in shapes]
        up = [rows[n]["ratio"]["p90"] - rows[n]["ratio"]["median"] if n in rows else 0 for n in shapes]
        ax.bar(xs, med, width=width, label="streamed" if stream else "not streamed",
               yerr=[[0] * len(up), up], capsize=3)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(shapes)), shapes)
    lo = min((r["ratio"]["min"] for r in summary), default=1.0)
    hi = max((r["ratio"]["p90"] for r in summary), default=1.0)
    ax.set_ylim(min(1.0, lo) - 0.02, hi + 0.05 * max(0.2, hi - 1))
    ax.set_ylabel("wall / critical path (median, whisker to p90)")
    ax.set_title("Overhead per request shape", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


# -- the grid ---------------------------------------------------------------------------


def grid_cells(steps: list[int], results: list[int], engine: str = GRID_ENGINE) -> list[Shape]:
    """Every (steps, results) cell, steps-major."""
    return [grid_shape(st, r, engine) for st in steps for r in results]


def _cell(row: dict[str, Any]) -> dict[str, Any]:
    """A grid row of the JSON: the summary plus the figures the tables and plots read."""
    pages = row["pages_fetched"]
    cpu = row["cpu_ms"]
    return {
        **row,
        "ratio_median": row["ratio"]["median"],
        "ratio_p90": row["ratio"]["p90"],
        "added_ms_median": row["overhead_ms"]["median"],
        "added_ms_p90": row["overhead_ms"]["p90"],
        "cpu_ms_median": cpu["median"],
        "cpu_ms_p90": cpu["p90"],
        "cpu_ms_per_page": round(cpu["median"] / pages, 1) if pages else None,
    }


def grid_markdown(report: dict[str, Any]) -> str:
    v, s = report["environment"], report["settings"]
    lat = s["latencies"]
    cells = report["cells"]
    steps = sorted({c["max_steps"] for c in cells})
    results = sorted({c["max_results"] for c in cells})
    modes = list(dict.fromkeys(c["stream"] for c in cells))
    by = {(c["max_steps"], c["max_results"], c["stream"]): c for c in cells}

    def matrix(title: str, fmt: Any) -> list[str]:
        label = " / ".join("streamed" if m else "not streamed" for m in modes)
        out = [f"**{title}** ({label})", "",
               "| steps \\ results per step | " + " | ".join(str(r) for r in results) + " |",
               "| ---: | " + " | ".join("---:" for _ in results) + " |"]
        for st in steps:
            row = []
            for r in results:
                vals = [fmt(by[(st, r, m)]) if (st, r, m) in by else "-" for m in modes]
                row.append(" / ".join(vals))
            out.append(f"| {st} | " + " | ".join(row) + " |")
        return out + [""]

    lines = [
        "# Overhead grid: wall time against the critical path, by search steps and results per step",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}  ",
        _versions_line(v),
        f"Load average before/after: {report['loadavg_before']} / {report['loadavg_after']}  ",
        f"Latencies: model {lat['model_ms']:g} ms per turn, search {lat['search_ms']:g} ms, pages "
        f"{lat['page_min_ms']:g}-{lat['page_max_ms']:g} ms spread evenly over each step's result pages in rank "
        f"order (so every step's slowest page takes {lat['page_max_ms']:g} ms); engine `{s['engine']}`; "
        f"each step searches a new query whose results are all new pages (step 1: the question, then "
        f"{', '.join(repr(t) for t in s['step_topics'])}); fakes in {s['fakes']}; {s['runs']} runs per cell and "
        f"mode after a warm-up; fetcher concurrency (as the loop opened it, recorded per request): "
        f"{', '.join(str(c) for c in sorted({c['fetcher_concurrency'] for c in cells if c.get('fetcher_concurrency')}))}; "
        f"seed {report['seed']}.",
        "",
        "Critical path = model latency x (steps + 1) turns + steps x (search latency + slowest page). "
        "Ratio = wall / critical path; added = wall - critical path; CPU = process CPU time of the request "
        "in the benchmark process (the library: litellm, HTTP, extraction in worker threads, prompts, citations; "
        "the fakes run in a child process). Medians over the runs unless said.",
        "",
        *matrix("Ratio, median", lambda c: f"{c['ratio_median']:.3f}"),
        *matrix("Added ms, median", lambda c: f"{c['added_ms_median']:.0f}"),
        *matrix("CPU ms per request, median", lambda c: f"{c['cpu_ms_median']:.0f}"),
        "| steps | results/step | stream | pages | critical ms | wall median | wall p90 | ratio median | ratio p90 "
        "| added median ms | added p90 ms | CPU median ms | CPU p90 ms | CPU ms per page | fakes CPU ms |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cells:
        lines.append(
            f"| {c['max_steps']} | {c['max_results']} | {'yes' if c['stream'] else 'no'} | {c['pages_fetched']} "
            f"| {c['critical_ms']:.0f} | {_fmt(c['wall_ms'])} | {_fmt(c['wall_ms'], 'p90')} "
            f"| {c['ratio_median']:.3f} | {c['ratio_p90']:.3f} | {c['added_ms_median']:.0f} | {c['added_ms_p90']:.0f} "
            f"| {c['cpu_ms_median']:.0f} | {c['cpu_ms_p90']:.0f} "
            f"| {'-' if c['cpu_ms_per_page'] is None else format(c['cpu_ms_per_page'], '.1f')} "
            f"| {_fmt(c['fakes_cpu_ms'])} |"
        )
    failed = [c for c in cells if c.get("sources_failed_max")]
    if failed:
        lines += ["", "Pages that failed to fetch or extract (max over runs): "
                  + ", ".join(f"{c['shape']}/{'stream' if c['stream'] else 'plain'} {c['sources_failed_max']}"
                              for c in failed) + "."]
    lines += ["", _BREAKDOWN_TEXT, "", *_breakdown_table(cells, ("steps", "results", "stream")), ""]
    return "\n".join(lines)


def grid_figures(cells: list[dict[str, Any]]) -> dict[str, Any]:
    """Heatmaps of the median ratio (steps x results, one per mode); CPU ms per request and
    added ms against the results per step (one line per number of steps)."""
    from benchmarks.common import new_figure

    steps = sorted({c["max_steps"] for c in cells})
    results = sorted({c["max_results"] for c in cells})
    modes = list(dict.fromkeys(c["stream"] for c in cells))
    by = {(c["max_steps"], c["max_results"], c["stream"]): c for c in cells}
    figures: dict[str, Any] = {}

    fig, ax = new_figure(4.2 * len(modes) + 1.0, 0.55 * len(steps) + 2.2)
    fig.delaxes(ax)
    # A narrow last column for the colour bar (gridspec axes: tight_layout handles them).
    *axes, bar_ax = fig.subplots(1, len(modes) + 1, squeeze=False,
                                 gridspec_kw={"width_ratios": [1] * len(modes) + [0.06]})[0]
    ratios = [c["ratio_median"] for c in cells]
    vmin, vmax = 1.0, max(max(ratios, default=1.0), 1.01)
    image = None
    for ax, stream in zip(axes, modes):
        grid = [[by[(st, r, stream)]["ratio_median"] if (st, r, stream) in by else math.nan for r in results]
                for st in steps]
        image = ax.imshow(grid, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto", origin="lower")
        for i, row in enumerate(grid):
            for j, val in enumerate(row):
                if not math.isnan(val):
                    light = (val - vmin) / (vmax - vmin) < 0.6
                    ax.text(j, i, f"{val:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if light else "black")
        ax.set_xticks(range(len(results)), [str(r) for r in results])
        ax.set_yticks(range(len(steps)), [str(s) for s in steps])
        ax.set_xlabel("results per step")
        ax.set_ylabel("search steps")
        ax.set_title(f"wall / critical path, {'streamed' if stream else 'not streamed'}", fontsize=10)
    if image is not None:
        fig.colorbar(image, cax=bar_ax, label="median ratio")
    figures["ratio"] = fig

    for key, label, name, title in (
            ("cpu_ms_median", "CPU ms per request (median)", "cpu",
             "CPU time per request (benchmark process; the fakes run apart)"),
            ("added_ms_median", "wall - critical path, ms (median)", "added",
             "Added wall time per request (wall - critical path)")):
        fig, ax = new_figure(7.0, 4.2)
        colors = {}
        for st in steps:
            for stream in modes:
                xs = [r for r in results if (st, r, stream) in by]
                ys = [by[(st, r, stream)][key] for r in xs]
                if not xs:
                    continue
                line, = ax.plot(xs, ys, marker="x" if stream else "o", linestyle="--" if stream else "-",
                                color=colors.get(st), label=f"{st} step{'s' if st > 1 else ''}"
                                + (", streamed" if stream else ""))
                colors[st] = line.get_color()
        ax.set_xticks(results, [str(r) for r in results])
        ax.set_xlabel("results per step (pages fetched per step)")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        ax.set_title(title, fontsize=10)
        figures[name] = fig
    return figures


# -- main -----------------------------------------------------------------------------


def _say(text: str) -> None:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is in the bench extra
        print(text, file=sys.stderr, flush=True)
    else:
        tqdm.write(text, file=sys.stderr)  # above a running progress bar


def warm_up(fakes: Any, shape: Shape, lat: Latencies, modes: list[bool], question: str = QUESTION) -> dict[str, float]:
    """One discarded request per mode (the first one imports litellm)."""
    warmup: dict[str, float] = {}
    for stream in modes:
        label = "stream" if stream else "plain"
        _say(f"warm-up ({label}, {shape.name}){' (imports litellm)' if not warmup else ''} ...")
        r = measure_once(fakes, shape, lat, stream=stream, question=question)
        warmup[label] = r["wall_ms"]
        _say(f"  warm-up {label}: {r['wall_ms']:.0f} ms")
    return warmup


def measure_all(fakes: Any, shapes: list[Shape], lat: Latencies, modes: list[bool], runs: int,
                question: str = QUESTION, desc: str = "overhead") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``runs`` measured requests per (shape, mode), under one progress bar; (all runs, summaries)."""
    from benchmarks.common import progress

    jobs = [(shape, stream, i) for shape in shapes for stream in modes for i in range(runs)]
    all_runs: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    current: Shape | None = None
    pages: dict[str, float] = {}
    for shape, stream, i in progress(jobs, total=len(jobs), desc=desc, unit="request"):
        if shape is not current:
            pages = configure(fakes, shape, lat, question)
            current = shape
        r = measure_once(fakes, shape, lat, stream=stream, question=question, pages=pages)
        r["run"] = i + 1
        rows.append(r)
        if i + 1 == runs:
            all_runs += rows
            row = summarize(rows)
            summary.append(row)
            rows = []
            _say(f"[{shape.name}/{'stream' if stream else 'plain'}] {row['pages_fetched']} pages, critical "
                 f"{row['critical_ms']:.0f} ms: median wall {row['wall_ms']['median']:.0f} ms "
                 f"(p90 {row['wall_ms']['p90']:.0f}), ratio {row['ratio']['median']:.3f} "
                 f"(p90 {row['ratio']['p90']:.3f}), cpu {row['cpu_ms']['median']:.0f} ms")
    return all_runs, summary


def run_benchmark(fakes: Any, shapes: list[Shape], lat: Latencies, modes: list[bool], runs: int,
                  question: str = QUESTION) -> tuple[dict[str, float], list[dict[str, Any]], list[dict[str, Any]]]:
    """Warm up once per mode, then ``runs`` measured requests per (shape, mode)."""
    warmup = warm_up(fakes, SHAPES["default"], lat, modes, question)
    all_runs, summary = measure_all(fakes, shapes, lat, modes, runs, question)
    return warmup, all_runs, summary


def run_grid(fakes: Any, cells: list[Shape], lat: Latencies, modes: list[bool], runs: int,
             question: str = QUESTION) -> tuple[dict[str, float], list[dict[str, Any]], list[dict[str, Any]]]:
    """The grid: warm up (on the first cell, so the grid's engine is warm too), then ``runs``
    requests per (cell, mode); (warm-up walls, all runs, one row per cell and mode).

    A cell ``sNrK`` (:func:`grid_shape`) is a request whose fake model searches N times
    (policy ``bench-steps:N``: the question, then :data:`STEP_TOPICS`), K results each
    through ``--engine``, then answers; every step fetches K new pages whose latencies
    are spread from ``page_min_ms`` to ``page_max_ms``. Per cell and mode the row has the
    median and p90 of the ratio (``ratio_median``, ``ratio_p90``), of wall - critical
    (``added_ms_*``) and of the request's CPU time in this process (``cpu_ms_*``; per page
    fetched: ``cpu_ms_per_page``), with :func:`summarize`'s figures and breakdown.
    """
    warmup = warm_up(fakes, cells[0], lat, modes, question)
    all_runs, summary = measure_all(fakes, cells, lat, modes, runs, question, desc="overhead grid")
    return warmup, all_runs, [_cell(row) for row in summary]


def _ints(text: str, what: str, ap: argparse.ArgumentParser) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--{what} takes comma-separated integers, not {text!r}")
    if not values or min(values) < 1:
        ap.error(f"--{what} needs positive integers")
    return values


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import SEED, environment, seed_everything, write_outputs

    ap = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", action="store_true",
                    help="run the grid of search steps x results per step instead of the shapes")
    ap.add_argument("--runs", type=int, default=None,
                    help="measured runs per shape (grid cell) and mode (default 10; with --grid 5)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of: {', '.join(SHAPES)}")
    ap.add_argument("--steps", default=",".join(map(str, GRID_STEPS)),
                    help="with --grid: search steps (comma-separated, default 1,2,3,4,5)")
    ap.add_argument("--results", default=",".join(map(str, GRID_RESULTS)),
                    help="with --grid: results per step (comma-separated, 1-20, default 3,5,10,20)")
    ap.add_argument("--engine", default=GRID_ENGINE,
                    help=f"with --grid: the search engine (default {GRID_ENGINE}; the fake searxng stops at 10 results)")
    ap.add_argument("--modes", choices=("both", "plain", "stream"), default="both")
    ap.add_argument("--fakes", choices=("subprocess", "inprocess"), default="subprocess",
                    help="where the fake servers run (default: a child process, out of the CPU measurement)")
    ap.add_argument("--limit", type=int, default=None,
                    help="quick run: only the first N shapes (grid cells) and at most N runs of each")
    ap.add_argument("--seed", type=int, default=SEED, help=f"recorded (nothing here is random; default {SEED})")
    ap.add_argument("--model-ms", type=float, default=300)
    ap.add_argument("--search-ms", type=float, default=200)
    ap.add_argument("--page-min-ms", type=float, default=50)
    ap.add_argument("--page-max-ms", type=float, default=800)
    args = ap.parse_args(argv)
    runs = args.runs if args.runs is not None else (5 if args.grid else 10)
    if runs < 1:
        ap.error("--runs must be at least 1")
    if args.limit is not None and args.limit < 1:
        ap.error("--limit must be at least 1")
    if args.grid:
        steps, results = _ints(args.steps, "steps", ap), _ints(args.results, "results", ap)
        if max(results) > 20:
            ap.error("--results: web_search takes at most 20 results")
        shapes = grid_cells(steps, results, args.engine)
    else:
        try:
            shapes = [SHAPES[name.strip()] for name in args.shapes.split(",") if name.strip()]
        except KeyError as exc:
            ap.error(f"unknown shape {exc}; choose from {', '.join(SHAPES)}")
    if args.limit is not None:
        shapes, runs = shapes[:args.limit], min(runs, args.limit)
    modes = {"both": [False, True], "plain": [False], "stream": [True]}[args.modes]
    lat = Latencies(args.model_ms, args.search_ms, args.page_min_ms, args.page_max_ms)
    seed = seed_everything(args.seed)

    # The fakes live on 127.0.0.1; litellm must not try to download its cost map.
    os.environ["GROUNDING_ALLOW_PRIVATE_NETWORKS"] = "1"
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    for name in ("GROUNDING_SOURCE_TOKENS", "GROUNDING_ENGINE", "GROUNDING_MODEL"):
        os.environ.pop(name, None)

    load_before = loadavg()
    _say(f"starting the fakes ({args.fakes}) ...")
    fakes = SubprocessFakes() if args.fakes == "subprocess" else InProcessFakes()
    try:
        os.environ.update(fakes.env)
        if args.grid:
            warmup, all_runs, summary = run_grid(fakes, shapes, lat, modes, runs)
        else:
            warmup, all_runs, summary = run_benchmark(fakes, shapes, lat, modes, runs)
    finally:
        fakes.close()
    command = " ".join(["python -m benchmarks.overhead", *(argv if argv is not None else sys.argv[1:])])
    settings: dict[str, Any] = {
        "latencies": asdict(lat),
        "question": QUESTION,
        "modes": ["stream" if m else "plain" for m in modes],
        "runs": runs,
        "limit": args.limit,
        "fakes": args.fakes,
        "fetcher_concurrency": fetcher_concurrency(),  # Fetcher's default; each run records what the loop opened
        "env": {k: os.environ.get(k) for k in ("GROUNDING_ALLOW_PRIVATE_NETWORKS", "LITELLM_LOCAL_MODEL_COST_MAP")},
    }
    report: dict[str, Any] = {
        "benchmark": "overhead-grid" if args.grid else "overhead",
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seed": seed,
        "environment": environment(),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "settings": settings,
        "warmup_wall_ms": {k: round(v, 1) for k, v in warmup.items()},
    }
    if args.grid:
        settings.update({"engine": args.engine, "steps": steps, "results": results,
                         "step_topics": list(STEP_TOPICS),
                         "cells": [s.name for s in shapes]})
        report.update({"cells": summary, "runs": all_runs})
        write_outputs(args.out, "overhead-grid", report, grid_markdown(report), grid_figures(summary))
    else:
        settings.update({"engine": ENGINE, "shapes": [asdict(s) for s in shapes]})
        report.update({"summary": summary, "runs": all_runs})
        write_outputs(args.out, "overhead", report, markdown(report), {"ratio": ratio_figure(summary)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
