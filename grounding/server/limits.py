"""Request limits: body size (413) and concurrent requests per key (429).

The body limit is enforced twice: a ``Content-Length`` over the limit is
refused before a byte is read, and the bytes actually received are counted as
they arrive (:func:`limit_receive`), so a chunked body without a
``Content-Length``, or one that lies about it, is cut off at the limit too.

The concurrency limit is per key: :class:`ConcurrencyLimiter` counts in this
process; :class:`RedisConcurrencyLimiter` counts across every process and
replica sharing a Redis (``grounding serve --workers N``, replicas behind a
load balancer), so a key's limit holds for the whole deployment. There, each
request in flight is a member of the sorted set ``grounding:limits:<key
name>`` scored by the end of its lease (60 s, renewed every 20 s while it
runs), taken and counted in one Lua script: a process that dies without
releasing its slots frees them when their leases run out. A Redis that
cannot be reached degrades to the per-process count (one warning in the log;
Redis is tried again after 30 s): never a failed request.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import threading
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from ..errors import GroundingError, RateLimitError
from ..redact import redact_url
from ..redis_link import RedisLink

__all__ = ["RequestTooLargeError", "ConcurrencyLimitError", "ConcurrencyLimiter", "RedisConcurrencyLimiter",
           "Slot", "open_limiter", "limit_receive", "declared_length", "RETRY_AFTER_S"]

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


@dataclass(frozen=True)
class Slot:
    """A request's place under its key's limit (given back with :meth:`ConcurrencyLimiter.leave`)."""

    key: str
    member: str | None = None  # its member in Redis; None: counted in this process


class ConcurrencyLimiter:
    """Requests in flight per key, in this process. Used from one event loop: no lock needed."""

    backend = "memory"

    def __init__(self, default_limit: int) -> None:
        self.default_limit = default_limit
        self._active: dict[str, int] = {}

    async def enter(self, key: str, limit: int) -> Slot:
        """Take a slot for ``key`` (:class:`ConcurrencyLimitError`, a 429, if it has ``limit``)."""
        self.acquire(key, limit)
        return Slot(key)

    async def leave(self, slot: Slot) -> None:
        self.release(slot.key)

    def status(self) -> dict[str, Any]:
        return {"backend": self.backend}

    def close(self) -> None:
        """Nothing to release in process."""

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


# Take a slot: drop expired leases, count, add this one. KEYS[1] the key's set; ARGV: limit,
# member, lease ms. Redis's own clock (TIME), so replicas' clocks need not agree.
_ENTER = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""
# Renew leases: KEYS the sets, ARGV[1] lease ms, then one member per key.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, 'XX', now + tonumber(ARGV[1]), ARGV[i + 1])
  redis.call('PEXPIRE', key, tonumber(ARGV[1]))
end
return #KEYS
"""


class RedisConcurrencyLimiter(ConcurrencyLimiter):
    """Requests in flight per key across every process sharing the Redis at ``url`` (module docs)."""

    backend = "redis"

    def __init__(self, default_limit: int, url: str, *, lease_s: float = 60.0, timeout_s: float = 0.25,
                 retry_s: float = 30.0, prefix: str = "grounding:limits:") -> None:
        super().__init__(default_limit)
        self.url = url
        self.lease_s = lease_s
        self.prefix = prefix
        self._scripts: dict[str, Any] = {}
        self.link = RedisLink(url, what="limits", meanwhile="counting concurrent requests per process",
                              timeout_s=timeout_s, retry_s=retry_s, on_connect=self._register)
        self._lock = threading.Lock()
        self._held: dict[str, str] = {}  # member -> its set's key, for renewal
        self._ids = itertools.count()
        self._origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._executor = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="grounding-limits")
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew_loop, name="grounding-limits-renew", daemon=True)
        self._renewer.start()

    def _register(self, client: Any) -> None:
        self._scripts = {"enter": client.register_script(_ENTER), "renew": client.register_script(_RENEW)}

    @property
    def degraded(self) -> str | None:
        """Why Redis is not in use right now (None while it is)."""
        return self.link.degraded

    def _enter_now(self, key: str, limit: int) -> Slot | None:
        """A slot in Redis, None when Redis is unusable; :class:`ConcurrencyLimitError` when full."""
        member = f"{self._origin}:{next(self._ids)}"
        name = self.prefix + key
        ok, took = self.link.call(
            lambda c: self._scripts["enter"](keys=[name], args=[limit, member, int(self.lease_s * 1000)]))
        if not ok:
            return None
        if not took:
            raise ConcurrencyLimitError(limit)
        with self._lock:
            self._held[member] = name
        return Slot(key, member)

    async def enter(self, key: str, limit: int) -> Slot:
        loop = asyncio.get_running_loop()
        slot = await loop.run_in_executor(self._executor, self._enter_now, key, limit)
        if slot is None:  # Redis unusable: this process's count
            return await super().enter(key, limit)
        return slot

    def _leave_now(self, slot: Slot) -> None:
        with self._lock:
            name = self._held.pop(slot.member or "", None)
        if name is not None and self.degraded is None:  # else its lease runs out by itself
            self.link.call(lambda c: c.zrem(name, slot.member))

    async def leave(self, slot: Slot) -> None:
        if slot.member is None:
            await super().leave(slot)
            return
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._leave_now, slot)
        except RuntimeError:  # the executor is shut down (closing): the lease runs out
            pass

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            with self._lock:
                held = list(self._held.items())
            if held and self.degraded is None:
                self.link.call(lambda c: self._scripts["renew"](
                    keys=[name for _, name in held], args=[int(self.lease_s * 1000), *[m for m, _ in held]]))

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.backend, "url": redact_url(self.url)}
        if self.degraded:
            out["degraded"] = self.degraded
        return out

    def close(self) -> None:
        self._stop.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.link.close()


def open_limiter(default_limit: int, redis_url: str | None) -> ConcurrencyLimiter:
    """Shared through Redis when ``redis_url`` is set, else per process."""
    return RedisConcurrencyLimiter(default_limit, redis_url) if redis_url else ConcurrencyLimiter(default_limit)
