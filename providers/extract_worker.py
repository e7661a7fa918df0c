"""One extraction worker process: ``python -m providers.extract_worker READ_FD WRITE_FD [FUNCTION]``.

Started by :class:`providers.extract_pool.ExtractPool`, never by hand. It
reads ``(html, url, cpu_deadline_s)`` tasks from ``READ_FD`` and writes one
reply per task to ``WRITE_FD`` (both :class:`multiprocessing.connection.Connection`
pipes, pickled):

- ``("ok", title, text, cpu_s)``: the page's :class:`~providers.extract.Extracted`;
- ``("deadline", cpu_s)``: the page used up its CPU deadline (see below);
- ``("error", message, cpu_s)``: the extractor raised.

It says ``("ready", pid)`` once the extractor is imported and warmed up, and
exits when its input closes (the pool closed it, or the pool's process died)
or on ``None``.

**The CPU deadline** is enforced twice, both counting this process's CPU time
(not wall time, so a loaded machine does not fail pages):

1. ``setitimer(ITIMER_PROF)``: at the deadline, ``SIGPROF`` raises
   :class:`CpuDeadline` (a ``BaseException``, so the extractor's own
   ``except Exception`` cannot swallow it) as soon as Python code runs again;
2. ``RLIMIT_CPU``: a soft limit a second past the deadline. ``SIGXCPU`` keeps
   its default action, so the kernel ends the process even if it is stuck in C
   code that never returns to Python (the pool sees the pipe close and starts
   a new worker). Core dumps are off (``RLIMIT_CORE`` 0).

``FUNCTION`` (``module:name``, default ``providers.extract:extract``) is the
extractor: any picklable-result function of ``(html, url)`` returning an
object with ``title`` and ``text``.
"""
from __future__ import annotations

import importlib
import math
import os
import resource
import signal
import sys
from multiprocessing.connection import Connection
from typing import Any, Callable

DEFAULT_FUNCTION = "providers.extract:extract"
#: The kernel's hard stop comes this many CPU seconds after the deadline.
HARD_GRACE_S = 1.0
_WARM_PAGE = "<html><head><title>warm</title></head><body><article><p>Warm up the parser.</p></article></body></html>"


class CpuDeadline(BaseException):
    """The page used its CPU time allowance (raised by the SIGPROF handler)."""


def _on_deadline(signum: int, frame: Any) -> None:
    raise CpuDeadline()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _arm(deadline_s: float) -> None:
    signal.setitimer(signal.ITIMER_PROF, max(0.001, deadline_s))
    hard = math.ceil(_cpu() + deadline_s + HARD_GRACE_S)
    _, ceiling = resource.getrlimit(resource.RLIMIT_CPU)
    if ceiling == resource.RLIM_INFINITY or hard <= ceiling:
        resource.setrlimit(resource.RLIMIT_CPU, (hard, ceiling))


def _disarm() -> None:
    signal.setitimer(signal.ITIMER_PROF, 0)
    _, ceiling = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (ceiling, ceiling))


def load_function(spec: str) -> Callable[[Any, Any], Any]:
    """``module:name`` -> the function."""
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name or "extract")


def serve(inbox: Connection, outbox: Connection, function: Callable[[Any, Any], Any]) -> int:
    """Answer tasks until the input closes."""
    while True:
        try:
            task = inbox.recv()
        except (EOFError, OSError):
            return 0
        if task is None:
            return 0
        html, url, deadline_s = task
        start = _cpu()
        try:
            try:
                _arm(deadline_s)
                page = function(html, url)
            finally:
                _disarm()
            reply: tuple[Any, ...] = ("ok", page.title, page.text, _cpu() - start)
        except CpuDeadline:
            reply = ("deadline", _cpu() - start)
        except Exception as exc:  # noqa: BLE001 (a broken extractor fails the page, not the worker)
            reply = ("error", f"{type(exc).__name__}: {exc}"[:300], _cpu() - start)
        try:
            outbox.send(reply)
        except (OSError, EOFError):
            return 0


def main(argv: list[str]) -> int:
    read_fd, write_fd = int(argv[0]), int(argv[1])
    spec = argv[2] if len(argv) > 2 else DEFAULT_FUNCTION
    # The protocol has its own pipes: anything a library prints goes to stderr.
    os.dup2(2, 1)
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    # Ctrl-C in a terminal reaches the whole process group: the pool decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGPROF, _on_deadline)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    function = load_function(spec)
    try:
        function(_WARM_PAGE, None)  # imports trafilatura and builds its parser once, before the first page
    except Exception:  # noqa: BLE001 (a real page will report it)
        pass
    outbox.send(("ready", os.getpid()))
    return serve(inbox, outbox, function)


if __name__ == "__main__":  # pragma: no cover (run as a subprocess)
    sys.exit(main(sys.argv[1:]))
