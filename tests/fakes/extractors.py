"""Extractors that misbehave, for the extraction pool's tests (run inside its worker processes).

Plug one in with ``PoolSettings(function="tests.fakes.extractors:NAME")``. Each
behaves like :func:`providers.extract.extract` on ordinary pages, and misbehaves
only on a page whose HTML contains its trigger word, so a pool running it can
serve good and bad pages side by side.
"""
from __future__ import annotations

import os
import signal
import time

from providers.extract import Extracted, extract

__all__ = ["stuck_in_c", "crashes", "raises", "slow_wall", "TRIGGER"]

#: A page containing this is the one that misbehaves.
TRIGGER = "MISBEHAVE"


def _triggered(html: str | bytes) -> bool:
    return (TRIGGER.encode() if isinstance(html, bytes) else TRIGGER) in html


def stuck_in_c(html: str | bytes, url: str | None = None) -> Extracted:
    """Spins with SIGPROF blocked, as a C loop that never returns to Python would: only the
    kernel's CPU limit can end it."""
    if not _triggered(html):
        return extract(html, url)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGPROF})
    while True:
        pass


def crashes(html: str | bytes, url: str | None = None) -> Extracted:
    """The worker process dies (as on a segfault in a C library)."""
    if not _triggered(html):
        return extract(html, url)
    os._exit(3)


def raises(html: str | bytes, url: str | None = None) -> Extracted:
    """Raises an ordinary exception (the worker survives)."""
    if not _triggered(html):
        return extract(html, url)
    raise ValueError("this page broke the extractor")


def slow_wall(html: str | bytes, url: str | None = None) -> Extracted:
    """Takes a second of wall time and almost no CPU (so pages queue up behind it)."""
    time.sleep(1.0)
    return extract(html, url)
