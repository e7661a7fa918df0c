"""A Redis connection that degrades instead of failing: what the cache and the limits share.

    link = RedisLink(url, what="cache", meanwhile="using the in-process cache")
    ok, value = link.call(lambda client: client.get("key"))   # (False, None) while Redis is down

Every call has short socket timeouts (0.25 s). The first failure logs one
warning (``cache: redis at redis://host:6379/0 unavailable (ConnectionError:
...); using the in-process cache until it answers``) and marks the link
:attr:`RedisLink.degraded`; calls then return ``(False, None)`` at once
until ``retry_s`` (30 s) have passed, when Redis is tried again; when it
answers, one info line says so. URLs in logs have their password removed.
The client is redis-py's synchronous one: thread-safe, usable from any
thread (callers in async code run calls in a thread pool of their own).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from .redact import redact_url

__all__ = ["RedisLink"]


class RedisLink:
    """A Redis client that says when Redis is gone, and tries again later (see the module docs).

    ``on_connect(client)`` runs after each (re)connection (to register scripts, say). Logs go
    to the ``grounding.<what>`` logger.
    """

    def __init__(self, url: str, *, what: str, meanwhile: str, timeout_s: float = 0.25, retry_s: float = 30.0,
                 on_connect: Callable[[Any], None] | None = None, client: Any = None) -> None:
        self.url = url
        self.what = what
        self.meanwhile = meanwhile
        self.timeout_s = timeout_s
        self.retry_s = retry_s
        self._on_connect = on_connect
        #: Why Redis is not in use right now (None while it is).
        self.degraded: str | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._client = client
        self._log = logging.getLogger(f"grounding.{what}")
        if client is not None and on_connect is not None:
            on_connect(client)

    def client(self) -> Any:
        """The client if Redis should be used now (connecting or reconnecting), else None."""
        with self._lock:
            if self.degraded is None and self._client is not None:
                return self._client
            if self.degraded is not None and time.monotonic() < self._retry_at:
                return None
            stale, self._client = self._client, None
        if stale is not None:
            _close(stale)
        try:
            import redis

            client = redis.Redis.from_url(self.url, socket_timeout=self.timeout_s,
                                          socket_connect_timeout=self.timeout_s)
            client.ping()
            if self._on_connect is not None:
                self._on_connect(client)
        except Exception as exc:  # noqa: BLE001 (redis.RedisError, OSError, a bad URL...)
            self.degrade(exc)
            return None
        with self._lock:
            was, self.degraded, self._client = self.degraded, None, client
        if was is not None:
            self._log.info("%s: redis at %s answers again", self.what, redact_url(self.url))
        return client

    def call(self, op: Callable[[Any], Any]) -> tuple[bool, Any]:
        """``(True, op(client))``, or ``(False, None)`` when Redis is unusable (degrading on an error)."""
        client = self.client()
        if client is None:
            return False, None
        try:
            return True, op(client)
        except Exception as exc:  # noqa: BLE001
            self.degrade(exc)
            return False, None

    def degrade(self, exc: BaseException) -> None:
        """Stop using Redis for ``retry_s``; log it once per outage."""
        reason = f"redis at {redact_url(self.url)} unavailable ({type(exc).__name__}: {str(exc)[:200]})"
        with self._lock:
            first = self.degraded is None
            self.degraded = reason
            self._retry_at = time.monotonic() + self.retry_s
        if first:
            self._log.warning("%s: %s; %s until it answers", self.what, reason, self.meanwhile)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            _close(client)


def _close(client: Any) -> None:
    try:
        client.close()
    except Exception:  # noqa: BLE001
        pass
