"""The Redis cache backend: one cache for every process and replica that shares the Redis.

Entries are plain Redis strings under ``grounding:cache:<key>``, written with
``SET ... PX <ttl>`` so Redis expires them itself (and, with an eviction
policy such as ``allkeys-lru``, drops the least used when it is full). The
values are this library's own JSON envelopes, never pickles, so a shared
Redis cannot make a process run code.

**A Redis that goes away degrades, never fails a request.** Each call has
short socket timeouts (0.25 s). On the first failure the backend logs one
warning (``cache: redis at redis://host:port/0 unavailable (...); using the
in-process cache``), serves from an in-process :class:`MemoryBackend`
meanwhile, and tries Redis again after ``retry_s`` (30 s); when it answers
again, one info line says so and the shared cache is used again.

The client is redis-py's synchronous one, called on a small thread pool of
this backend's own: it works from any event loop (the server's, the sync
API's, ``asyncio.run`` in a script) without tying connections to one.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from typing import Any, Callable

from .memory import MemoryBackend

__all__ = ["RedisBackend", "KEY_PREFIX", "redacted_url"]

log = logging.getLogger("grounding.cache")

#: Namespace of every key the cache writes.
KEY_PREFIX = "grounding:cache:"


def redacted_url(url: str) -> str:
    """``url`` without its password."""
    from ..routing.stats import _redacted

    return _redacted(url)


class RedisBackend:
    """The cache in Redis at ``url``, with ``fallback`` (in process) while Redis is unreachable."""

    name = "redis"

    def __init__(self, url: str, *, fallback: MemoryBackend | None = None, timeout_s: float = 0.25,
                 retry_s: float = 30.0, threads: int = 8, client: Any = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self.fallback = fallback or MemoryBackend()
        #: Why Redis is not in use right now (None while it is).
        self.degraded: str | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._client = client
        self._executor = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="grounding-cache")

    # -- connection state --------------------------------------------------------------------

    def _connect(self) -> Any:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=self.timeout_s,
                                      socket_connect_timeout=self.timeout_s)
        client.ping()
        return client

    def _usable(self) -> Any:
        """The client if Redis should be tried now, else None (the fallback answers)."""
        with self._lock:
            if self.degraded is None and self._client is not None:
                return self._client
            if self.degraded is not None and time.monotonic() < self._retry_at:
                return None
        try:
            client = self._client if self._client is not None and self.degraded is None else self._connect()
        except Exception as exc:  # noqa: BLE001 (redis.RedisError, OSError...)
            self._degrade(exc)
            return None
        with self._lock:
            was = self.degraded
            self._client, self.degraded = client, None
        if was is not None:
            log.info("cache: redis at %s is back; using the shared cache again", redacted_url(self.url))
        return client

    def _degrade(self, exc: BaseException) -> None:
        reason = f"redis at {redacted_url(self.url)} unavailable ({type(exc).__name__}: {str(exc)[:200]})"
        with self._lock:
            first = self.degraded is None
            self.degraded = reason
            self._retry_at = time.monotonic() + self.retry_s
        if first:
            log.warning("cache: %s; using the in-process cache until it answers again", reason)

    def _call(self, op: Callable[[Any], Any]) -> tuple[bool, Any]:
        """``(True, op(client))``, or ``(False, None)`` when Redis is not usable (degrading on errors)."""
        client = self._usable()
        if client is None:
            return False, None
        try:
            return True, op(client)
        except Exception as exc:  # noqa: BLE001
            self._degrade(exc)
            return False, None

    async def _run(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # -- the backend interface ---------------------------------------------------------------

    def get_now(self, key: str) -> bytes | None:
        ok, value = self._call(lambda c: c.get(KEY_PREFIX + key))
        return value if ok else self.fallback.get_now(key)

    def set_now(self, key: str, value: bytes, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        ok, _ = self._call(lambda c: c.set(KEY_PREFIX + key, value, px=max(1, int(ttl_s * 1000))))
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

        self._call(wipe)
        self.fallback.clear()

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.name, "url": redacted_url(self.url)}
        if self.degraded:
            out.update(degraded=self.degraded, fallback=self.fallback.status())
        return out

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
