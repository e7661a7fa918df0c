"""How long one upstream call may take: one deadline per call, enforced by
this library itself (``asyncio.timeout``), whatever litellm or the HTTP client do.

=================================  ============  ==========================================================
variable                           default       what it bounds
=================================  ============  ==========================================================
``GROUNDING_MODEL_TIMEOUT``        120 s         a non-streamed model call as a whole (litellm's own retries
                                   (local: 900)  included), and a stream until its first token
``GROUNDING_STREAM_IDLE_TIMEOUT``  60 s          the longest silence between two chunks of a stream
``GROUNDING_SEARCH_TIMEOUT``       15 s          one search, its retry included
``GROUNDING_PAGE_TIMEOUT``         10 s          one page: connection, redirects, its retry and the body
=================================  ============  ==========================================================

A request's ``timeout`` (seconds) replaces the model deadline for that
request. A model that misses its deadline is a retryable failure (the next
fallback target is tried; with none left, an
:class:`~grounding.errors.UpstreamTimeoutError`, HTTP 504); a search or a page
that misses it is skipped with a warning, and the answer goes on without it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import InvalidRequestError

__all__ = ["Deadlines", "deadlines", "ENV"]

#: The variables, and their defaults in seconds.
ENV = {
    "model": ("GROUNDING_MODEL_TIMEOUT", 120.0),
    "stream_idle": ("GROUNDING_STREAM_IDLE_TIMEOUT", 60.0),
    "search": ("GROUNDING_SEARCH_TIMEOUT", 15.0),
    "page": ("GROUNDING_PAGE_TIMEOUT", 10.0),
}
#: The embedded local model reads its sources slowly on a CPU: its default model deadline.
LOCAL_MODEL_TIMEOUT = 900.0


@dataclass(frozen=True)
class Deadlines:
    """Seconds allowed per upstream call (see the module's docstring)."""

    model: float = ENV["model"][1]
    stream_idle: float = ENV["stream_idle"][1]
    search: float = ENV["search"][1]
    page: float = ENV["page"][1]
    #: Whether ``model`` came from the environment (else the local model gets its own default).
    model_set: bool = False

    def for_model(self, provider: str | None, request_timeout: float | None = None) -> float:
        """The deadline of one call to a model of ``provider`` (a request's ``timeout`` wins)."""
        if request_timeout:
            return float(request_timeout)
        if provider == "local" and not self.model_set:
            return LOCAL_MODEL_TIMEOUT
        return self.model


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise InvalidRequestError(f"{name} must be a positive number of seconds, not {raw!r}", param=name)
    return value


def deadlines() -> Deadlines:
    """The deadlines in force now (read from the environment on each call, so a change applies at once)."""
    values = {field: _seconds(var, default) for field, (var, default) in ENV.items()}
    return Deadlines(**values, model_set=bool(os.environ.get(ENV["model"][0], "").strip()))
