"""Request limits: body size (413) and concurrent requests per key (429).

The body limit is enforced twice: a ``Content-Length`` over the limit is
refused before a byte is read, and the bytes actually received are counted as
they arrive (:func:`limit_receive`), so a chunked body without a
``Content-Length``, or one that lies about it, is cut off at the limit too.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..errors import GroundingError, RateLimitError

__all__ = ["RequestTooLargeError", "ConcurrencyLimitError", "ConcurrencyLimiter", "limit_receive",
           "declared_length", "RETRY_AFTER_S"]

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]

#: What a 429 for too many concurrent requests tells the client to wait (seconds).
RETRY_AFTER_S = 1


class RequestTooLargeError(GroundingError):
    """The request body is larger than ``server.max_body_bytes``."""

    status_code = 413
    type = "invalid_request_error"

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body too large: the limit is {limit} bytes", code="request_too_large")


class ConcurrencyLimitError(RateLimitError):
    """This key already has as many requests in flight as it may."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"too many concurrent requests for this API key (limit {limit}); "
                         f"retry when one finishes", code="concurrency_limit_exceeded")


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The request's ``Content-Length`` (None if absent or unreadable)."""
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def limit_receive(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`RequestTooLargeError` once more than ``limit`` body bytes arrived."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body") or b"")
            if seen > limit:
                raise RequestTooLargeError(limit)
        return message

    return wrapped


class ConcurrencyLimiter:
    """Requests in flight per key. Used from one event loop: no lock needed."""

    def __init__(self, default_limit: int) -> None:
        self.default_limit = default_limit
        self._active: dict[str, int] = {}

    def limit_for(self, custom: int | None) -> int:
        return custom or self.default_limit

    def acquire(self, key: str, limit: int) -> None:
        """Take a slot for ``key``; :class:`ConcurrencyLimitError` (429) if it has ``limit`` already."""
        active = self._active.get(key, 0)
        if active >= limit:
            raise ConcurrencyLimitError(limit)
        self._active[key] = active + 1

    def release(self, key: str) -> None:
        active = self._active.get(key, 0) - 1
        if active > 0:
            self._active[key] = active
        else:
            self._active.pop(key, None)

    def active(self, key: str) -> int:
        return self._active.get(key, 0)
