"""Page extraction on every core: a pool of worker processes running :func:`providers.extract.extract`.

Extraction is CPU-bound Python (trafilatura over lxml) and holds the GIL, and
trafilatura's shared parser is not safe in two threads at once; in the
process that serves requests it would run one page at a time on one core and
delay every other request's stream. The pool runs it in worker processes::

    pool = get_pool()                          # the process's pool (lazily created)
    page = await pool.extract(html, url)       # an Extracted, or ExtractionError
    future = pool.submit(html, url)            # the same from any thread: a concurrent.futures.Future
    shutdown_pool()                            # at exit (registered with atexit)

What it guarantees:

- **Sized to the machine**: ``workers`` processes (default: the CPUs this
  process may run on), each started with ``python -m providers.extract_worker``
  when the pool is first used (never at ``import grounding`` or ``grounding
  --help``), each warmed up (trafilatura imported) before its first page.
- **A bounded queue**: at most ``max_pending`` pages wait for a worker (default
  64 per worker); a page beyond that fails at once with
  :class:`ExtractionError` ("extraction queue is full") instead of piling up
  memory. The caller records it as a failed page.
- **A CPU deadline per page** (``cpu_deadline_s``, default 5 s of CPU): a
  page that spins fails alone with a clear error; its worker is replaced (a
  worker stuck in C code is ended by the kernel, see
  :mod:`providers.extract_worker`), and the other workers keep going. A wall
  clock limit (``10 x`` the deadline, at least 60 s) catches a worker that
  stops making progress at all.
- **Clean shutdown**: :meth:`ExtractPool.close` ends every worker (closing its
  input, then terminating, then killing it) and waits for it; a worker also
  exits by itself when the process that started it dies (its input pipe
  closes), so none is left behind.
- **Cancellation**: a page whose caller gave up (a client disconnected) is
  dropped from the queue; one already running finishes and is discarded.

Why not :class:`concurrent.futures.ProcessPoolExecutor`: with ``spawn`` or
``forkserver`` (``fork`` is unsafe in a process with threads), every worker
re-imports the caller's ``__main__`` script, so a script calling
``grounding.completion`` without an ``if __name__ == "__main__":`` guard
would break (BrokenProcessPool); and it cannot end one worker without
breaking the whole pool, failing every page in flight. Here each worker is a
plain subprocess owned by one thread of the pool, which knows exactly which
page its worker is running.

``workers=0`` extracts in a thread of this process instead (one page at a
time, no deadline: the behaviour before the pool existed).
"""
from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from .extract import Extracted, extract

__all__ = ["ExtractPool", "ExtractionError", "PoolSettings", "get_pool", "shutdown_pool", "reconfigure",
           "default_workers", "pool_settings"]

log = logging.getLogger("grounding.extraction")

WORKERS_ENV = "GROUNDING_EXTRACT_WORKERS"
QUEUE_ENV = "GROUNDING_EXTRACT_QUEUE"
DEADLINE_ENV = "GROUNDING_EXTRACT_DEADLINE"
#: Pages waiting per worker, by default.
PENDING_PER_WORKER = 64
DEFAULT_DEADLINE_S = 5.0
#: A worker is replaced after this many pages (lxml and trafilatura keep caches that grow).
TASKS_PER_WORKER = 2000
#: Seconds a worker may take to start (import trafilatura) before it counts as failed.
START_TIMEOUT_S = 60.0
#: After this many failed starts in a row the pool gives up and extracts in process.
MAX_START_FAILURES = 3


class ExtractionError(Exception):
    """A page could not be extracted (over its CPU deadline, the queue full, its worker died).

    The message is short and meant for ``metadata.sources[].error``.
    """


def default_workers() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``), else ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class PoolSettings:
    """How the pool runs: ``workers`` processes (0: in a thread of this process),
    ``max_pending`` pages waiting at most, ``cpu_deadline_s`` of CPU per page."""

    workers: int
    max_pending: int
    cpu_deadline_s: float
    #: The extractor the workers run (``module:function``); tests and other extractors plug in here.
    function: str = "providers.extract:extract"


def pool_settings(workers: int | None = None, max_pending: int | None = None,
                  cpu_deadline_s: float | None = None) -> PoolSettings:
    """Settings from the arguments, else the config file's ``extraction`` section, else the
    environment (``GROUNDING_EXTRACT_WORKERS``, ``GROUNDING_EXTRACT_QUEUE``,
    ``GROUNDING_EXTRACT_DEADLINE``), else the defaults."""
    section: Any = None
    try:
        from grounding.config import get_config

        section = get_config().extraction
    except Exception:  # noqa: BLE001 (a bad config is reported where it is loaded; defaults here)
        section = None

    def pick(value: Any, attr: str, env: str, cast: Any) -> Any:
        if value is not None:
            return value
        configured = getattr(section, attr, None) if section is not None else None
        if configured is not None:
            return configured
        raw = os.environ.get(env, "").strip()
        if raw:
            try:
                return cast(raw)
            except ValueError:
                log.warning("ignoring %s=%r: not a number", env, raw)
        return None

    n = pick(workers, "workers", WORKERS_ENV, int)
    n = default_workers() if n is None else max(0, int(n))
    pending = pick(max_pending, "max_pending", QUEUE_ENV, int)
    pending = PENDING_PER_WORKER * max(1, n) if pending is None else max(1, int(pending))
    deadline = pick(cpu_deadline_s, "cpu_deadline_s", DEADLINE_ENV, float)
    deadline = DEFAULT_DEADLINE_S if deadline is None else max(0.01, float(deadline))
    return PoolSettings(workers=n, max_pending=pending, cpu_deadline_s=deadline)


@dataclass
class _Task:
    html: str | bytes
    url: str | None
    future: concurrent.futures.Future


_STOP = object()


class _Worker:
    """One worker process and the two pipes to it."""

    def __init__(self, function: str) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "providers.extract_worker", str(to_child_r), str(from_child_w), function],
                pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, close_fds=True)
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self.inbox = Connection(to_child_w, readable=False)   # what we send
        self.outbox = Connection(from_child_r, writable=False)  # what it replies
        self.pid = self.process.pid
        self.tasks = 0

    def wait_ready(self, timeout: float) -> None:
        if not self.outbox.poll(timeout):
            raise ExtractionError(f"the extraction worker did not start within {timeout:g} s")
        message = self.outbox.recv()
        if not (isinstance(message, tuple) and message and message[0] == "ready"):
            raise ExtractionError(f"the extraction worker said {message!r} instead of ready")

    def stop(self, timeout: float = 2.0) -> None:
        """Close its input (it exits), then terminate, then kill; reap it."""
        for conn in (self.inbox, self.outbox):
            try:
                conn.close()
            except OSError:
                pass
        process = self.process
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class ExtractPool:
    """Extraction in ``settings.workers`` worker processes (see the module's docs).

    Thread-safe and not tied to an event loop: :meth:`submit` works from any
    thread, :meth:`extract` from any loop.
    """

    def __init__(self, settings: PoolSettings | None = None) -> None:
        self.settings = settings or pool_settings()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        self._pending = 0
        self._threads: list[threading.Thread] = []
        self._workers: dict[int, _Worker] = {}  # slot -> its current worker
        self._closed = False
        self._start_failures = 0
        #: Why the pool extracts in process instead (workers could not start), or None.
        self.broken: str | None = None
        self.counts = {"pages": 0, "failed": 0, "deadline": 0, "replaced": 0, "rejected": 0}
        #: CPU seconds the workers spent on pages (as they report it).
        self.cpu_s = 0.0

    # ------------------------------------------------------------------ public

    @property
    def in_process(self) -> bool:
        """Extraction runs in a thread of this process (``workers=0``, or workers could not start)."""
        return self.settings.workers == 0 or self.broken is not None

    def start(self) -> "ExtractPool":
        """Start the workers now (otherwise the first page does). Returns at once."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the extraction pool is closed")
            if self._threads or self.settings.workers == 0:
                return self
            for slot in range(self.settings.workers):
                thread = threading.Thread(target=self._run_slot, args=(slot,), daemon=True,
                                          name=f"grounding-extract-{slot}")
                self._threads.append(thread)
                thread.start()
        return self

    def submit(self, html: str | bytes, url: str | None = None) -> concurrent.futures.Future:
        """Queue one page; the future gives its :class:`Extracted` or raises :class:`ExtractionError`."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        if self.in_process:
            future.set_running_or_notify_cancel()
            try:
                future.set_result(extract(html, url))
            except BaseException as exc:  # noqa: BLE001
                future.set_exception(exc)
            return future
        self.start()
        with self._lock:
            if self._pending >= self.settings.max_pending:
                self.counts["rejected"] += 1  # (under the lock already)
                future.set_exception(ExtractionError(
                    f"extraction queue is full ({self._pending} pages waiting); the server is overloaded"))
                return future
            self._pending += 1
        self._queue.put(_Task(html, url, future))
        return future

    async def extract(self, html: str | bytes, url: str | None = None) -> Extracted:
        """Extract one page without blocking the event loop; raises :class:`ExtractionError`."""
        if self.in_process:
            return await asyncio.to_thread(extract, html, url)
        future = self.submit(html, url)
        return await asyncio.wrap_future(future)  # cancelling drops the page if it has not started

    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        with self._lock:
            return [w.pid for w in self._workers.values() if w.process.poll() is None]

    def status(self) -> dict[str, Any]:
        """What the pool is doing, for ``/health`` and logs."""
        with self._lock:
            alive = sum(w.process.poll() is None for w in self._workers.values())
            return {"mode": "in process" if self.in_process else "processes", "workers": self.settings.workers,
                    "alive": alive, "pending": self._pending, "max_pending": self.settings.max_pending,
                    "cpu_deadline_s": self.settings.cpu_deadline_s, **self.counts, "cpu_s": round(self.cpu_s, 3),
                    **({"broken": self.broken} if self.broken else {})}

    def close(self, timeout: float = 5.0) -> None:
        """Stop every worker and wait for them; queued pages fail. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            threads = list(self._threads)
        self._fail_queued()
        for _ in threads:
            self._queue.put(_STOP)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        with self._lock:
            leftover = list(self._workers.values())
            self._workers.clear()
        for worker in leftover:  # a thread still busy (a page running): end its worker here
            worker.stop(timeout=0.5)
        self._fail_queued()

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> bool:
        """Start the workers if needed and wait until every one is up; whether they all are."""
        self.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.in_process or len(self.pids()) >= self.settings.workers:
                return True
            time.sleep(0.05)
        return False

    def _fail_queued(self) -> None:
        """Fail the pages nobody will take (the pool is closing)."""
        while True:
            try:
                task = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(task, _Task):
                with self._lock:
                    self._pending -= 1
                if task.future.set_running_or_notify_cancel():
                    task.future.set_exception(ExtractionError("the extraction pool was shut down"))

    # ------------------------------------------------------------------ the slots

    def _spawn(self, slot: int) -> _Worker | None:
        """Start the slot's worker (None if it could not start, or the pool closed meanwhile)."""
        while not self._closed:
            try:
                worker = _Worker(self.settings.function)
            except OSError as exc:
                self._start_failed(f"cannot start an extraction worker ({exc})")
                return None
            try:
                worker.wait_ready(START_TIMEOUT_S)
            except (ExtractionError, EOFError, OSError) as exc:
                worker.stop(timeout=0.5)
                code = worker.process.returncode
                self._start_failed(f"an extraction worker failed to start ({exc}; exit code {code})")
                if self.broken is not None:
                    return None
                continue
            with self._lock:
                if self._closed:
                    worker.stop(timeout=0.5)
                    return None
                self._workers[slot] = worker
                self._start_failures = 0
            return worker
        return None

    def _start_failed(self, reason: str) -> None:
        with self._lock:
            self._start_failures += 1
            failures = self._start_failures
        log.warning("%s", reason)
        if failures >= MAX_START_FAILURES and self.broken is None:
            self.broken = f"{reason}; extracting in process instead"
            log.warning("extraction pool: %s", self.broken)

    def _retire(self, slot: int, worker: _Worker) -> None:
        with self._lock:
            if self._workers.get(slot) is worker:
                del self._workers[slot]
        worker.stop(timeout=0.5)

    def _run_slot(self, slot: int) -> None:
        worker = self._spawn(slot)
        while True:
            task = self._queue.get()
            if task is _STOP:
                break
            with self._lock:
                self._pending -= 1
            if not task.future.set_running_or_notify_cancel():
                continue  # its caller gave up while it waited
            if self._closed:
                task.future.set_exception(ExtractionError("the extraction pool was shut down"))
                continue
            if worker is None or worker.process.poll() is not None:
                if worker is not None:
                    self._retire(slot, worker)
                worker = self._spawn(slot) if self.broken is None else None
            if worker is None:
                self._in_process(task)
                continue
            keep = self._run(worker, task)
            if not keep:
                self._count("replaced")
            if not keep or worker.tasks >= TASKS_PER_WORKER:  # a failure, or a routine recycle
                self._retire(slot, worker)
                worker = self._spawn(slot)
        if worker is not None:
            self._retire(slot, worker)

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def _in_process(self, task: _Task) -> None:
        try:
            task.future.set_result(extract(task.html, task.url))
        except BaseException as exc:  # noqa: BLE001
            task.future.set_exception(exc)

    def _run(self, worker: _Worker, task: _Task) -> bool:
        """Run ``task`` on ``worker``; settle its future. Returns whether the worker can be kept."""
        deadline = self.settings.cpu_deadline_s
        wall_limit = max(60.0, 10 * deadline)
        self._count("pages")
        worker.tasks += 1
        try:
            worker.inbox.send((task.html, task.url, deadline))
            if not worker.outbox.poll(wall_limit):
                self._fail(task, f"extraction did not finish within {wall_limit:g} s; its worker was stopped")
                return False
            reply = worker.outbox.recv()
        except (EOFError, OSError):
            code = worker.process.wait()
            self._fail(task, _death(code, deadline))
            if code == -signal.SIGXCPU:
                self._count("deadline")
            return False
        kind = reply[0]
        with self._lock:
            self.cpu_s += float(reply[-1] or 0.0)
        if kind == "ok":
            task.future.set_result(Extracted(title=reply[1], text=reply[2]))
            return True
        if kind == "deadline":
            self._count("deadline")
            self._fail(task, f"extraction stopped after {deadline:g} s of CPU (the page is too heavy to read)")
            return False  # an exception raised at any point inside the parser: start afresh
        self._fail(task, f"extraction failed: {reply[1]}")
        return True

    def _fail(self, task: _Task, message: str) -> None:
        self._count("failed")
        task.future.set_exception(ExtractionError(message))


def _death(code: int | None, deadline: float) -> str:
    if code == -signal.SIGXCPU:  # the kernel's CPU limit, past the deadline
        return f"extraction stopped after {deadline:g} s of CPU (the page is too heavy to read); its worker was ended"
    if code is not None and code < 0:
        return f"the extraction worker died (signal {-code}) while reading the page"
    return f"the extraction worker exited (code {code}) while reading the page"


_pool: ExtractPool | None = None
_pool_lock = threading.Lock()


def get_pool() -> ExtractPool:
    """The process's pool, created (not yet started) on first call from :func:`pool_settings`."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ExtractPool()
                atexit.register(shutdown_pool)
    return _pool


def _after_fork_in_child() -> None:
    """A forked child (``multiprocessing`` with ``fork``, a pre-forking server) has the parent's pool
    object but none of its threads: forget it (a new one starts on first use), and close the child's
    copies of the pipes, so the parent's workers still see their input close when the parent goes."""
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        for worker in list(pool._workers.values()):
            for conn in (worker.inbox, worker.outbox):
                try:
                    conn.close()
                except OSError:
                    pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def reconfigure() -> None:
    """Stop the process's pool if the settings (config, environment) no longer match it;
    the next :func:`get_pool` starts one with the new settings."""
    pool = _pool
    if pool is not None and pool.settings != pool_settings():
        shutdown_pool()


def shutdown_pool(timeout: float = 5.0) -> None:
    """Stop the process's pool, if any (the next :func:`get_pool` makes a new one)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close(timeout)
