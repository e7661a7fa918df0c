"""Observed latency, throughput and failures of each deployment.

Every finished attempt is recorded (:meth:`Stats.record`) under its deployment
id (``provider/model``); routing reads back:

* :meth:`Stats.latency_ms`: the median time to first token of the last
  ``samples`` (50) successful requests (a request without a first-token time,
  i.e. not streamed, counts its whole duration);
* :meth:`Stats.throughput`: the median output tokens per second after the
  first token (without a first-token time: over the whole duration, a lower
  bound);
* :meth:`Stats.cooling_down`: ``failures`` (3) consecutive failures within
  ``window_s`` (30 s) cool the deployment down for ``cooldown_s`` (30 s), as
  litellm's Router does; a success clears the failure count.

:func:`get_stats` gives the process's instance: in memory, or shared through
Redis when the config's ``redis_url`` (or ``$GROUNDING_REDIS_URL``) is set.
The Redis keys are ``grounding:stats:<deployment>:ok`` (a list of the last
``samples`` successes, ``"<latency ms>|<tokens/s>"``, newest first),
``...:fail`` (recent failure times) and ``...:cool`` (set, with an expiry,
while cooling down); every key expires (``ttl_s``, 1 hour, after its last
write). Reads are cached for ``cache_s`` (1 s) per deployment.

Nothing here raises into a request: if Redis cannot be reached, the instance
falls back to its in-memory copy (every sample is also kept there), records
why in :attr:`RedisStats.degraded`, and tries Redis again after 30 s.
"""
from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..config import get_config
from ..redact import get_logger, redact_url

__all__ = ["Stats", "RedisStats", "get_stats", "reset", "KEY_PREFIX"]

log = get_logger(__name__)

#: Namespace of every Redis key this module writes.
KEY_PREFIX = "grounding:stats:"


def _sample(ok: bool, ttft_ms: float | None, duration_ms: float,
            output_tokens: int | None) -> tuple[float, float | None] | None:
    """(latency ms, tokens per second or None) for a success, None for a failure or nonsense."""
    if not ok or duration_ms is None or duration_ms < 0:
        return None
    latency = float(ttft_ms) if ttft_ms is not None and ttft_ms >= 0 else float(duration_ms)
    tps = None
    if output_tokens and output_tokens > 0:
        generating_ms = duration_ms - ttft_ms if ttft_ms is not None else duration_ms
        if generating_ms >= 1:
            tps = output_tokens / (generating_ms / 1000)
    return latency, tps


@dataclass
class _Entry:
    lat: deque[float]
    tps: deque[float]
    fails: deque[float]
    cooled_until: float = 0.0
    lat_est: float | None = None
    tps_est: float | None = None
    fresh: bool = True


class Stats:
    """In-process statistics (one per process; see :func:`get_stats`). Thread-safe, never raises.

    ``clock`` (default :func:`time.monotonic`) is injectable for tests.
    """

    backend = "memory"

    def __init__(self, *, samples: int = 50, failures: int = 3, window_s: float = 30.0, cooldown_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.samples = samples
        self.failures = failures
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    # ------------------------------------------------------------------ writing

    def record(self, deployment_id: str, *, ok: bool, ttft_ms: float | None, duration_ms: float,
               output_tokens: int | None = None) -> None:
        """Record one finished request (``ok``) or failed one against ``deployment_id``."""
        try:
            self._record_local(deployment_id, ok=ok, ttft_ms=ttft_ms, duration_ms=duration_ms,
                               output_tokens=output_tokens)
        except Exception:  # statistics must never break a request
            log.debug("stats: could not record %s", deployment_id, exc_info=True)

    def _record_local(self, deployment_id: str, *, ok: bool, ttft_ms: float | None, duration_ms: float,
                      output_tokens: int | None) -> None:
        sample = _sample(ok, ttft_ms, duration_ms, output_tokens)
        with self._lock:
            entry = self._entry(deployment_id)
            if ok:
                entry.fails.clear()
                if sample is not None:
                    entry.lat.append(sample[0])
                    if sample[1] is not None:
                        entry.tps.append(sample[1])
                    entry.fresh = False
                return
            now = self._clock()
            entry.fails.append(now)
            if len(entry.fails) >= self.failures and now - entry.fails[0] <= self.window_s:
                entry.cooled_until = now + self.cooldown_s
                entry.fails.clear()

    def _entry(self, deployment_id: str) -> _Entry:
        entry = self._entries.get(deployment_id)
        if entry is None:
            entry = self._entries[deployment_id] = _Entry(
                lat=deque(maxlen=self.samples), tps=deque(maxlen=self.samples), fails=deque(maxlen=self.failures))
        return entry

    # ------------------------------------------------------------------ reading

    def latency_ms(self, deployment_id: str) -> float | None:
        """Typical time to first token in ms (median of recent successes), None if never observed."""
        entry = self._entries.get(deployment_id)
        if entry is None:
            return None
        self._estimate(entry)
        return entry.lat_est

    def throughput(self, deployment_id: str) -> float | None:
        """Typical output tokens per second after the first token, None if never observed."""
        entry = self._entries.get(deployment_id)
        if entry is None:
            return None
        self._estimate(entry)
        return entry.tps_est

    def cooling_down(self, deployment_id: str) -> bool:
        """The deployment failed ``failures`` times in a row recently: try it last."""
        entry = self._entries.get(deployment_id)
        return entry is not None and self._clock() < entry.cooled_until

    def prefetch(self, deployment_ids: Iterable[str]) -> None:
        """Load several deployments at once (one Redis round trip); a no-op in memory."""

    def snapshot(self, deployment_id: str) -> dict[str, Any]:
        """What is known of a deployment: ``{latency_ms, throughput, cooling_down, samples}``."""
        entry = self._entries.get(deployment_id)
        return {"latency_ms": self.latency_ms(deployment_id), "throughput": self.throughput(deployment_id),
                "cooling_down": self.cooling_down(deployment_id), "samples": len(entry.lat) if entry else 0}

    def close(self) -> None:
        """Release resources (nothing to release in memory)."""

    def _estimate(self, entry: _Entry) -> None:
        if entry.fresh:
            return
        with self._lock:
            entry.lat_est = statistics.median(entry.lat) if entry.lat else None
            entry.tps_est = statistics.median(entry.tps) if entry.tps else None
            entry.fresh = True


class RedisStats(Stats):
    """:class:`Stats` shared between processes through Redis (see the module docs for the keys).

    Every sample is also kept in memory, which answers while Redis is
    unreachable (:attr:`degraded` says why).
    """

    backend = "redis"
    #: Seconds before trying Redis again after it failed.
    retry_s = 30.0

    def __init__(self, url: str, *, samples: int = 50, failures: int = 3, window_s: float = 30.0,
                 cooldown_s: float = 30.0, ttl_s: float = 3600.0, cache_s: float = 1.0, timeout_s: float = 0.1,
                 client: Any = None) -> None:
        super().__init__(samples=samples, failures=failures, window_s=window_s, cooldown_s=cooldown_s)
        self.url = url
        self.ttl_s = ttl_s
        self.cache_s = cache_s
        self.timeout_s = timeout_s
        #: Why Redis is not in use right now (None while it is).
        self.degraded: str | None = None
        self._retry_at = 0.0
        self._cache: dict[str, tuple[float, float | None, float | None, bool, int]] = {}
        self._client = client if client is not None else self._connect()

    def _connect(self) -> Any:
        try:
            import redis

            client = redis.Redis.from_url(self.url, socket_timeout=self.timeout_s,
                                          socket_connect_timeout=self.timeout_s, decode_responses=True)
            client.ping()
            return client
        except Exception as exc:
            self._degrade(exc)
            return None

    def _degrade(self, exc: BaseException) -> None:
        reason = (f"redis at {redact_url(self.url)} unavailable ({type(exc).__name__}: {exc}); "
                  "using in-process statistics")
        if self.degraded is None:
            log.warning("stats: %s", reason)
        self.degraded = reason
        self._retry_at = time.monotonic() + self.retry_s
        self._cache.clear()

    def _redis(self) -> Any:
        """The client if Redis is usable now (reconnecting after ``retry_s``), else None."""
        if self.degraded is None and self._client is not None:
            return self._client
        if time.monotonic() < self._retry_at:
            return None
        client = self._connect()
        if client is not None:
            self._client, self.degraded = client, None
        return client

    @staticmethod
    def _key(deployment_id: str, kind: str) -> str:
        return f"{KEY_PREFIX}{deployment_id}:{kind}"

    # ------------------------------------------------------------------ writing

    def record(self, deployment_id: str, *, ok: bool, ttft_ms: float | None, duration_ms: float,
               output_tokens: int | None = None) -> None:
        """Record in memory and in Redis (one round trip; two when a failure starts a cooldown)."""
        super().record(deployment_id, ok=ok, ttft_ms=ttft_ms, duration_ms=duration_ms, output_tokens=output_tokens)
        client = self._redis()
        if client is None:
            return
        self._cache.pop(deployment_id, None)
        try:
            ttl = max(1, int(self.ttl_s))
            pipe = client.pipeline(transaction=False)
            if ok:
                sample = _sample(ok, ttft_ms, duration_ms, output_tokens)
                if sample is not None:
                    okey = self._key(deployment_id, "ok")
                    value = f"{sample[0]:.1f}|" + (f"{sample[1]:.3f}" if sample[1] is not None else "")
                    pipe.lpush(okey, value).ltrim(okey, 0, self.samples - 1).expire(okey, ttl)
                pipe.delete(self._key(deployment_id, "fail"))
                pipe.execute()
                return
            fkey = self._key(deployment_id, "fail")
            now = time.time()
            pipe.lpush(fkey, f"{now:.3f}").ltrim(fkey, 0, self.failures - 1)
            pipe.expire(fkey, max(1, int(self.window_s) + 1)).lrange(fkey, 0, -1)
            times = [float(t) for t in pipe.execute()[-1]]
            if len(times) >= self.failures and max(times) - min(times) <= self.window_s:
                pipe = client.pipeline(transaction=False)
                pipe.set(self._key(deployment_id, "cool"), "1", px=max(1, int(self.cooldown_s * 1000)))
                pipe.delete(fkey).execute()
        except Exception as exc:  # redis.RedisError, OSError, a bad value: never into the request
            self._degrade(exc)

    # ------------------------------------------------------------------ reading

    def prefetch(self, deployment_ids: Iterable[str]) -> None:
        """Load the deployments not in the read cache, in one pipeline."""
        now = time.monotonic()
        missing = [d for d in dict.fromkeys(deployment_ids) if not self._cached(d, now)]
        if missing:
            self._load(missing, now)

    def _cached(self, deployment_id: str, now: float) -> bool:
        hit = self._cache.get(deployment_id)
        return hit is not None and now - hit[0] < self.cache_s

    def _load(self, deployment_ids: list[str], now: float) -> bool:
        client = self._redis()
        if client is None:
            return False
        try:
            pipe = client.pipeline(transaction=False)
            for dep in deployment_ids:
                pipe.lrange(self._key(dep, "ok"), 0, -1).exists(self._key(dep, "cool"))
            replies = pipe.execute()
        except Exception as exc:
            self._degrade(exc)
            return False
        for i, dep in enumerate(deployment_ids):
            rows, cool = replies[2 * i], replies[2 * i + 1]
            lats, tpss = [], []
            for row in rows:
                lat, _, tps = str(row).partition("|")
                try:
                    lats.append(float(lat))
                    if tps:
                        tpss.append(float(tps))
                except ValueError:
                    continue
            self._cache[dep] = (now, statistics.median(lats) if lats else None,
                                statistics.median(tpss) if tpss else None, bool(cool), len(lats))
        return True

    def _shared(self, deployment_id: str) -> tuple[float, float | None, float | None, bool, int] | None:
        now = time.monotonic()
        if not self._cached(deployment_id, now) and not self._load([deployment_id], now):
            return None
        return self._cache.get(deployment_id)

    def latency_ms(self, deployment_id: str) -> float | None:
        """Median time to first token across every process sharing the Redis."""
        shared = self._shared(deployment_id)
        return shared[1] if shared is not None else super().latency_ms(deployment_id)

    def throughput(self, deployment_id: str) -> float | None:
        """Median output tokens per second across every process sharing the Redis."""
        shared = self._shared(deployment_id)
        return shared[2] if shared is not None else super().throughput(deployment_id)

    def cooling_down(self, deployment_id: str) -> bool:
        """Cooling down according to any process sharing the Redis (or this one)."""
        shared = self._shared(deployment_id)
        return (shared is not None and shared[3]) or super().cooling_down(deployment_id)

    def snapshot(self, deployment_id: str) -> dict[str, Any]:
        out = super().snapshot(deployment_id)
        shared = self._shared(deployment_id)
        if shared is not None:
            out["samples"] = shared[4]
        out["backend"] = "memory (redis degraded)" if self.degraded else "redis"
        return out

    def close(self) -> None:
        """Close the Redis connections."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass


_stats: Stats | None = None
_stats_lock = threading.Lock()


def get_stats() -> Stats:
    """The process's statistics: :class:`RedisStats` when a Redis URL is configured, else :class:`Stats`."""
    global _stats
    if _stats is None:
        with _stats_lock:
            if _stats is None:
                url = get_config().effective_redis_url
                _stats = RedisStats(url) if url else Stats()
    return _stats


def reset() -> None:
    """Forget the process's statistics (closing any Redis connection)."""
    global _stats
    with _stats_lock:
        stats, _stats = _stats, None
    if stats is not None:
        stats.close()
