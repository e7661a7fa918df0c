"""The Redis cache backend: one cache for every process and replica that shares the Redis.

Entries are plain Redis strings under ``grounding:cache:<key>``, written with
``SET ... PX <ttl>`` so Redis expires them itself (and, with an eviction
policy such as ``allkeys-lru``, drops the least used when it is full). The
values are this library's own JSON envelopes, never pickles, so a shared
Redis cannot make a process run code.

**A Redis that goes away degrades, never fails a request** (through
:class:`grounding.redis_link.RedisLink`): each call has short socket timeouts
(0.25 s); on the first failure the backend logs one warning (``cache: redis
at redis://host:port/0 unavailable (...); using the in-process cache until it
answers``), serves from an in-process :class:`MemoryBackend` meanwhile, and
tries Redis again after ``retry_s`` (30 s); when it answers again, one info
line says so and the shared cache is used again.

The client is redis-py's synchronous one, called on a small thread pool of
this backend's own: it works from any event loop (the server's, the sync
API's, ``asyncio.run`` in a script) without tying connections to one.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, Callable

from ..redact import redact_url
from ..redis_link import RedisLink
from .memory import MemoryBackend

__all__ = ["RedisBackend", "KEY_PREFIX"]

#: Namespace of every key the cache writes.
KEY_PREFIX = "grounding:cache:"


class RedisBackend:
    """The cache in Redis at ``url``, with ``fallback`` (in process) while Redis is unreachable."""

    name = "redis"

    def __init__(self, url: str, *, fallback: MemoryBackend | None = None, timeout_s: float = 0.25,
                 retry_s: float = 30.0, threads: int = 8) -> None:
        self.url = url
        self.fallback = fallback or MemoryBackend()
        self.link = RedisLink(url, what="cache", meanwhile="using the in-process cache", timeout_s=timeout_s,
                              retry_s=retry_s)
        self._executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="grounding-cache")

    @property
    def degraded(self) -> str | None:
        """Why Redis is not in use right now (None while it is)."""
        return self.link.degraded

    async def _run(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def get_now(self, key: str) -> bytes | None:
        ok, value = self.link.call(lambda c: c.get(KEY_PREFIX + key))
        return value if ok else self.fallback.get_now(key)

    def set_now(self, key: str, value: bytes, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        ok, _ = self.link.call(lambda c: c.set(KEY_PREFIX + key, value, px=max(1, int(ttl_s * 1000))))
        if not ok:
            self.fallback.set_now(key, value, ttl_s)

    async def get(self, key: str) -> bytes | None:
        return await self._run(lambda: self.get_now(key))

    async def set(self, key: str, value: bytes, ttl_s: float) -> None:
        await self._run(lambda: self.set_now(key, value, ttl_s))

    def clear(self) -> None:
        """Delete this cache's keys in Redis (``SCAN`` + ``UNLINK``) and the fallback's entries."""
        def wipe(c: Any) -> None:
            batch = []
            for name in c.scan_iter(match=KEY_PREFIX + "*", count=500):
                batch.append(name)
                if len(batch) >= 500:
                    c.unlink(*batch)
                    batch = []
            if batch:
                c.unlink(*batch)

        self.link.call(wipe)
        self.fallback.clear()

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.name, "url": redact_url(self.url)}
        if self.degraded:
            out.update(degraded=self.degraded, fallback=self.fallback.status())
        return out

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.link.close()
