"""Progress while a request works: one event type, said the same way everywhere.

A :class:`ProgressEvent` has a ``stage`` (:data:`STAGES`), a human ``message``
(``str(event)`` is that line, so a callback that prints what it gets keeps
working), counts (``done`` of ``total``), the ``query`` or ``url`` it is
about, and ``elapsed_ms`` since the request started.

Where they go:

* the Python API: ``grounding.completion(..., progress=callback)`` calls
  ``callback(event)`` on the library's event loop (never from a worker thread);
* streams with ``stream_options={"include_progress": True}``: a
  ``chat.completion.chunk`` with ``choices: []`` and ``progress: {...}``
  (:meth:`ProgressEvent.to_dict`) for each event, as OpenAI sends usage chunks;
* ``grounding serve``: an SSE comment (``: searching: ...``) for each event
  and every few seconds while waiting, plus the chunks above when asked;
* ``grounding ask``: one line on stderr per event.

Code deep inside a request (the local model's start, the index build) reports
through :func:`report`, which reaches the request's emitter through a context
variable, so no callback has to be threaded through every layer.
"""
from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

__all__ = ["ProgressEvent", "STAGES", "Emitter", "ProgressCallback", "report", "current"]

log = logging.getLogger("grounding")

#: Every stage, in the order a request usually goes through them.
STAGES = (
    "resolving",      # the model (router, auto, providers) is chosen
    "loading_model",  # the embedded model: weights joined and checked, model loaded
    "indexing",       # the local engine builds or refreshes its index (done/total)
    "thinking",       # a search turn: the model decides what to search
    "searching",      # one query sent to the engine (query)
    "fetching",       # result pages start downloading (total)
    "fetched",        # one page fetched and extracted, or failed (done/total, url)
    "reading",        # the answer turn starts: the model reads the sources (total: sources)
    "writing",        # the answer's first token arrived
    "checking",       # the answer's citations checked against their pages (total: citations)
    "repairing",      # the answer broke its response_format: one correction turn
)

ProgressCallback = Callable[["ProgressEvent"], None]


@dataclass(frozen=True)
class ProgressEvent:
    """One step of a request, for people (``message``) and programs (the rest)."""

    stage: str
    message: str
    done: int | None = None
    total: int | None = None
    query: str | None = None
    url: str | None = None
    #: Milliseconds since the request started (set by the emitter).
    elapsed_ms: float | None = None

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (unset fields left out), as streams carry it under ``progress``."""
        return {k: v for k, v in asdict(self).items() if v is not None}


class Emitter:
    """Stamps events with the request's elapsed time and hands them to its listeners.

    Thread-safe: an event reported from a worker thread is handed over on the
    loop the emitter was made on, so listeners always run on that loop. A
    listener that raises is logged and skipped, never fails the request.
    """

    def __init__(self, *listeners: ProgressCallback | None) -> None:
        self.t0 = time.perf_counter()
        self.listeners = [cb for cb in listeners if cb is not None]
        try:
            self.loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self.loop = None
        self._thread = threading.get_ident()

    def add(self, listener: ProgressCallback) -> None:
        self.listeners.append(listener)

    def __call__(self, stage: str | ProgressEvent, message: str | None = None, *, wait: float = 0.0,
                 **fields: Any) -> None:
        """``emit("searching", "searching: q", query="q")``, or ``emit(event)``.

        From another thread, ``wait`` seconds at most are spent waiting until the
        loop has delivered the event (for a step about to hold the interpreter,
        such as loading the local model, so that it is said before it happens).
        """
        if not self.listeners:
            return
        event = stage if isinstance(stage, ProgressEvent) else ProgressEvent(stage, message or stage, **fields)
        if event.elapsed_ms is None:
            event = ProgressEvent(**{**asdict(event), "elapsed_ms": round((time.perf_counter() - self.t0) * 1000, 1)})
        if self.loop is not None and threading.get_ident() != self._thread:
            if not self.loop.is_closed():
                delivered = threading.Event()

                def deliver() -> None:
                    self._deliver(event)
                    delivered.set()

                self.loop.call_soon_threadsafe(deliver)
                if wait > 0:
                    delivered.wait(wait)
            return
        self._deliver(event)

    def _deliver(self, event: ProgressEvent) -> None:
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # a listener's bug must not fail the request
                log.warning("a progress callback raised; ignored", exc_info=True)


_current: contextvars.ContextVar[Emitter | None] = contextvars.ContextVar("grounding_progress", default=None)


def current() -> Emitter | None:
    """The emitter of the request running in this context, if any."""
    return _current.get()


def use(emitter: Emitter) -> contextvars.Token[Emitter | None]:
    """Make ``emitter`` the current one (for this task and what it starts)."""
    return _current.set(emitter)


def report(stage: str, message: str, *, wait: float = 0.0, **fields: Any) -> None:
    """Report progress to the current request, if there is one (a no-op otherwise); see
    :meth:`Emitter.__call__` for ``wait``."""
    emitter = _current.get()
    if emitter is not None:
        emitter(stage, message, wait=wait, **fields)
