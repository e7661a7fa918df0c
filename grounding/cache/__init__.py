"""A cache of search results and extracted pages, shared by every request (and replica).

Two identical requests should not search twice or fetch and extract the same
page twice: a chatbot backend answers the same popular questions all day, and
a benchmark compares several modes over the same searches. The tool loop
(:mod:`grounding.gather`) asks :func:`get_cache` for both:

- **searches**, keyed by engine, normalized query, ``max_results`` and any
  search options (:mod:`grounding.cache.keys`), kept ``search_ttl_s``
  (default 300 s);
- **pages**, keyed by normalized URL, kept ``page_ttl_s`` (default 600 s):
  the extracted title and text, never the raw HTML. Failed pages are not kept.

Defaults suit news: minutes, not days. Concurrent identical lookups share one
upstream call (**coalescing**): the first caller searches or fetches, the
others wait for its result, in this process. ``web_search={"cache": false}``
skips the cache for one request (it searches and fetches afresh, and stores
what it got). ``metadata.searches[]`` and ``metadata.sources[]`` say
``cached`` (no upstream call was made for this request: the cache had it, or
an identical request in flight shared its result) and ``cache_age_s``; a
cached search is not charged its engine's fee in ``metadata.cost_usd``.

Backends (:class:`CacheBackend`): :class:`MemoryBackend` (this process, LRU,
bounded by entries and bytes) and :class:`RedisBackend` (every process and
replica sharing the Redis; degrades to its in-process fallback with one
warning when Redis goes away). Which one, and the TTLs: the config file's
``cache`` section, else ``GROUNDING_CACHE`` (``memory``, ``redis``, ``off``),
``GROUNDING_CACHE_SEARCH_TTL``, ``GROUNDING_CACHE_PAGE_TTL``,
``GROUNDING_CACHE_MAX_MB``; by default Redis when ``redis_url`` (or
``GROUNDING_REDIS_URL``) is set, else in process.

    import grounding
    grounding.set_cache(grounding.Cache(grounding.MemoryBackend(max_entries=1000), search_ttl_s=60))
    grounding.get_cache().clear()
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, Protocol, TypeVar, runtime_checkable

from .keys import engine_id, normalize_query, normalize_url, page_key, search_key, stable_options
from .memory import MemoryBackend
from .redis_backend import RedisBackend

__all__ = ["Cache", "CacheBackend", "CacheSettings", "Lookup", "MemoryBackend", "RedisBackend", "cache_settings",
           "get_cache", "set_cache", "reset_cache", "search_key", "page_key", "engine_id", "normalize_query",
           "normalize_url", "stable_options", "DEFAULT_SEARCH_TTL_S", "DEFAULT_PAGE_TTL_S"]

log = logging.getLogger("grounding.cache")

DEFAULT_SEARCH_TTL_S = 300.0
DEFAULT_PAGE_TTL_S = 600.0
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_MB = 256.0

T = TypeVar("T")


@runtime_checkable
class CacheBackend(Protocol):
    """Where entries live: bytes under string keys, each with a time to live (seconds)."""

    name: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_s: float) -> None: ...

    def clear(self) -> None: ...

    def status(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Lookup(Generic[T]):
    """A value and where it came from: ``cached`` (no upstream call made for it here) and its age."""

    value: T
    cached: bool = False
    age_s: float | None = None


class _LeaderGone(Exception):
    """The caller doing the shared lookup was cancelled: the next in line does it."""


# Values are stored as a one-byte format tag and the payload: b"j" JSON, b"z" zlib-compressed JSON.
_COMPRESS_OVER = 512


def _encode(value: Any, stored_at: float) -> bytes:
    raw = json.dumps({"t": stored_at, "v": value}, ensure_ascii=False, separators=(",", ":")).encode()
    if len(raw) > _COMPRESS_OVER:
        return b"z" + zlib.compress(raw, 1)
    return b"j" + raw


def _decode(data: bytes) -> tuple[Any, float] | None:
    try:
        tag, body = data[:1], data[1:]
        if tag == b"z":
            body = zlib.decompress(body)
        elif tag != b"j":
            return None
        envelope = json.loads(body)
        return envelope["v"], float(envelope["t"])
    except (ValueError, KeyError, TypeError, zlib.error):
        return None  # not ours, or damaged: a miss


class Cache:
    """Looks values up in ``backend`` (None: no cache at all), loading and storing misses,
    sharing concurrent identical loads. ``clock`` (wall time, ``time.time``) dates entries."""

    def __init__(self, backend: CacheBackend | None = None, *, search_ttl_s: float = DEFAULT_SEARCH_TTL_S,
                 page_ttl_s: float = DEFAULT_PAGE_TTL_S, clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.search_ttl_s = search_ttl_s
        self.page_ttl_s = page_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._inflight: dict[str, concurrent.futures.Future] = {}
        self.counts = {"hits": 0, "misses": 0, "shared": 0, "bypassed": 0}

    @property
    def enabled(self) -> bool:
        return self.backend is not None

    async def through(self, key: str, ttl_s: float, load: Callable[[], Awaitable[T]], *, bypass: bool = False,
                      keep: Callable[[T], bool] | None = None) -> Lookup[T]:
        """The value under ``key``: from the backend, from an identical load in flight, or from
        ``load()`` (stored for ``ttl_s`` when ``keep(value)``). ``bypass`` loads afresh (and stores).

        Values must be JSON data (dicts, lists, strings, numbers). A failing backend never fails
        this: a read that fails is a miss, a write that fails is skipped.
        """
        if self.backend is None or ttl_s <= 0:
            return Lookup(await load())
        if bypass:
            self._count("bypassed")
            value = await load()
            await self._store(key, value, ttl_s, keep)
            return Lookup(value)
        hit = await self._read(key)
        if hit is not None:
            self._count("hits")
            return Lookup(hit[0], True, round(max(0.0, self._clock() - hit[1]), 3))
        while True:
            with self._lock:
                shared = self._inflight.get(key)
                leader = shared is None
                if leader:
                    shared = concurrent.futures.Future()
                    shared.set_running_or_notify_cancel()  # so a waiter's cancellation cannot cancel it
                    self._inflight[key] = shared
            if leader:
                break
            try:
                value, stored_at = await asyncio.wrap_future(shared)
            except _LeaderGone:
                continue
            self._count("shared")
            return Lookup(value, True, round(max(0.0, self._clock() - stored_at), 3))
        self._count("misses")
        try:
            value = await load()
            stored_at = self._clock()
            await self._store(key, value, ttl_s, keep, stored_at)
        except asyncio.CancelledError:
            shared.set_exception(_LeaderGone())
            raise
        except BaseException as exc:
            shared.set_exception(exc)
            raise
        finally:
            with self._lock:
                if self._inflight.get(key) is shared:
                    del self._inflight[key]
        shared.set_result((value, stored_at))
        return Lookup(value)

    async def _read(self, key: str) -> tuple[Any, float] | None:
        assert self.backend is not None
        try:
            data = await self.backend.get(key)
        except Exception:  # noqa: BLE001 (a backend of the user's own: a miss)
            log.warning("cache: reading %s failed", key, exc_info=True)
            return None
        return _decode(data) if data else None

    async def _store(self, key: str, value: Any, ttl_s: float, keep: Callable[[Any], bool] | None,
                     stored_at: float | None = None) -> None:
        if keep is not None and not keep(value):
            return
        assert self.backend is not None
        try:
            await self.backend.set(key, _encode(value, self._clock() if stored_at is None else stored_at), ttl_s)
        except Exception:  # noqa: BLE001
            log.warning("cache: storing %s failed", key, exc_info=True)

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def clear(self) -> None:
        """Forget every entry (in Redis: every ``grounding:cache:*`` key)."""
        if self.backend is not None:
            self.backend.clear()

    def status(self) -> dict[str, Any]:
        """Backend, TTLs and hit counts (for ``/health``)."""
        if self.backend is None:
            return {"backend": "off"}
        return {**self.backend.status(), "search_ttl_s": self.search_ttl_s, "page_ttl_s": self.page_ttl_s,
                **self.counts}

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


@dataclass(frozen=True)
class CacheSettings:
    """What :func:`get_cache` builds: ``backend`` is ``memory``, ``redis`` or ``off``."""

    backend: str
    redis_url: str | None
    search_ttl_s: float
    page_ttl_s: float
    max_entries: int
    max_bytes: int


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        log.warning("ignoring %s=%r: not a number", name, raw)
        return None


_OFF = {"off", "0", "false", "no", "none", "disabled"}
_ON = {"on", "1", "true", "yes", ""}


def cache_settings() -> CacheSettings:
    """The config file's ``cache`` section, else the environment, else the defaults."""
    from ..config import get_config

    cfg = get_config()
    section = cfg.cache
    redis_url = section.redis_url or cfg.effective_redis_url
    backend = section.backend
    if backend is None:
        raw = os.environ.get("GROUNDING_CACHE", "").strip().lower()
        if raw in _OFF:
            backend = "off"
        elif raw in ("memory", "redis"):
            backend = raw
        elif raw not in _ON:
            log.warning("ignoring GROUNDING_CACHE=%r: use memory, redis or off", raw)
    if backend is None:
        backend = "redis" if redis_url else "memory"
    if backend == "redis" and not redis_url:
        log.warning("cache: backend redis but no redis_url / GROUNDING_REDIS_URL; caching in process")
        backend = "memory"

    def pick(configured: float | None, env: str, default: float) -> float:
        if configured is not None:
            return configured
        value = _env_float(env)
        return default if value is None or value < 0 else value

    max_mb = pick(section.max_mb, "GROUNDING_CACHE_MAX_MB", DEFAULT_MAX_MB)
    return CacheSettings(backend=backend, redis_url=redis_url,
                         search_ttl_s=pick(section.search_ttl_s, "GROUNDING_CACHE_SEARCH_TTL", DEFAULT_SEARCH_TTL_S),
                         page_ttl_s=pick(section.page_ttl_s, "GROUNDING_CACHE_PAGE_TTL", DEFAULT_PAGE_TTL_S),
                         max_entries=section.max_entries or DEFAULT_MAX_ENTRIES,
                         max_bytes=max(1, int(max_mb * 1024 * 1024)))


def build_cache(settings: CacheSettings) -> Cache:
    """A :class:`Cache` as ``settings`` describe it."""
    if settings.backend == "off":
        return Cache(None)
    memory = MemoryBackend(max_entries=settings.max_entries, max_bytes=settings.max_bytes)
    backend: CacheBackend = memory
    if settings.backend == "redis" and settings.redis_url:
        backend = RedisBackend(settings.redis_url, fallback=memory)
    return Cache(backend, search_ttl_s=settings.search_ttl_s, page_ttl_s=settings.page_ttl_s)


_cache: Cache | None = None
_cache_lock = threading.Lock()


def get_cache() -> Cache:
    """The process's cache (built from :func:`cache_settings` on first use)."""
    global _cache
    if _cache is None:
        with _cache_lock:
            if _cache is None:
                _cache = build_cache(cache_settings())
    return _cache


def set_cache(cache: Cache | None) -> None:
    """Use ``cache`` for every request from now on (None: rebuild from the settings on next use)."""
    global _cache
    with _cache_lock:
        old, _cache = _cache, cache
    if old is not None and old is not cache:
        old.close()


def reset_cache() -> None:
    """Forget the process's cache (closing its connections); the next use rebuilds it from the config."""
    set_cache(None)
