"""Router stores: where routers created over HTTP live, shared by every replica.

A store keeps routers in their :meth:`Router.to_dict() <grounding.routing.routers.Router.to_dict>`
form, keyed by name, and a version number that changes whenever any router
changes, in any process sharing the store::

    store = open_store(config)          # config.server.router_store, else Redis, else SQLite
    store.put({"name": "support", "default_route": {"variants": [{"id": "a", "model": "gpt-4.1"}]}})
    store.get("support"); store.list(); store.delete("support"); store.version(); store.status()
    install(store)                      # get_routers() = the config's routers + the stored ones

Backends
========

``sqlite:///abs/path.db`` / ``sqlite://relative.db`` (:class:`SQLiteRouterStore`)
    The default (at ``$GROUNDING_CACHE_DIR/routers.db``, default
    ``~/.cache/grounding/routers.db``) when neither ``server.router_store`` nor
    a Redis URL is configured. WAL mode; every write is one ``BEGIN IMMEDIATE``
    transaction that also bumps a counter row, so processes on one host
    (``uvicorn --workers N``, or separate servers on one disk) share it safely.
    Not for network file systems.
``redis://``, ``rediss://``, ``unix://`` (:class:`RedisRouterStore`)
    The default when the config's ``redis_url`` (or ``$GROUNDING_REDIS_URL``)
    is set: replicas behind a load balancer share it. The hash
    ``grounding:routers`` (name -> JSON) and the counter
    ``grounding:routers:version``, written in one ``MULTI`` (a delete is one
    Lua script, bumping the counter only when it removed something). Redis
    must persist (AOF or RDB): a Redis that restarts empty forgets the routers.
``memory://`` (:class:`MemoryRouterStore`)
    In this process only: tests and library use.

Another backend (Postgres, say) is a class with the methods of
:class:`RouterStore` (``snapshot()`` too, if it can read the version and the
routers in one transaction), registered with
``register_backend("postgresql", lambda url, config: PostgresRouterStore(url))``.
For Postgres: a table ``routers(name text primary key, body jsonb)`` and a
one-row counter updated in the same transaction; LISTEN/NOTIFY could replace
polling. Unknown schemes are an :class:`InvalidRequestError` naming the scheme.

Errors
======

- :meth:`~RouterStore.put` validates with ``Router.from_dict`` exactly like a
  router file (an :class:`InvalidRequestError`, 400, naming the route, the
  variant and the field) and returns the stored (normalised) mapping;
- a name that a config router (``routers:`` or ``router_files:``) already has
  is refused: :class:`RouterConflictError` (an InvalidRequestError with status
  409, code ``router_conflict``) naming the file. Names in the config belong to
  the config; change them there;
- a store that cannot be reached (Redis down, an unwritable SQLite file) is a
  :class:`StoreUnavailableError` (a :class:`GroundingError`, status 503, code
  ``router_store_unavailable``) with one line saying which store and why; never
  a stack trace, and never a password (URLs are shown redacted). Redis gets
  short socket timeouts (0.25 s, one retry) so a dead Redis fails fast.

Serving requests from a store (:func:`install`)
===============================================

``install(store)`` makes :func:`grounding.routing.routers.get_routers` return
the config's routers plus the store's, rebuilt only when ``store.version()``
changes (unchanged routers are not recompiled). When a change is seen:

- SQLite and memory: the version is read on every ``get_routers()`` call (a
  few microseconds), so a change applies to the very next request in every
  process.
- Redis: the version is read (one ``GET``, ~0.1–0.3 ms on a LAN) on every
  ``get_routers()`` call by default, so a change applies to the next request
  on every replica; ``refresh_s`` > 0 trades that for fewer round trips (a
  change then reaches the other replicas within ``refresh_s``).

If the store stops answering, requests keep the routers last read from it (a
warning is logged once) and the store is asked again after ``retry_s`` (1 s),
then after twice as long each time, up to every 10 s (a Redis that does not
answer costs at most two 0.25 s timeouts per attempt, on one thread; other
threads keep serving); meanwhile a router that is not among them is a 503
(:class:`StoreUnavailableError`) rather than a 404, since it may exist in the
store. If a stored router has the name of a config router (the config changed
after it was stored), the config's wins and a warning names it
(:func:`install_status` lists it under ``shadowed``); a stored router that no
longer validates is skipped with a warning (``invalid``). ``install(None)``
restores the config's routers alone.

The variant a user gets depends only on the router, route and user
(:meth:`Route.pick <grounding.routing.routers.Route.pick>` hashes them), so
every replica reading the same stored router picks the same variant (for up
to ``refresh_s`` after a change, replicas that have not read it yet still use
the old weights).

``get_routers()`` runs in the request path (on the event loop in the server):
with Redis that is one ``GET`` round trip per call (at most one every
``refresh_s`` when that is set), and a ``MULTI`` read of every router when the version changed. The
CRUD methods block on I/O; call them from a worker thread in async code.
"""
from __future__ import annotations

import itertools
import json
import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol, runtime_checkable

from ..errors import GroundingError, InvalidRequestError, NotFoundError
from ..redact import get_logger, redact_url
from ..routing import routers as _routers
from ..routing.routers import Router, RouterSet

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "RouterStore",
    "SQLiteRouterStore",
    "RedisRouterStore",
    "MemoryRouterStore",
    "StoreUnavailableError",
    "RouterConflictError",
    "open_store",
    "register_backend",
    "install",
    "installed",
    "install_status",
]

log = get_logger(__name__)

_PARAM = "server.router_store"


class StoreUnavailableError(GroundingError):
    """The router store cannot be reached or written (Redis down, SQLite file unwritable): 503."""

    status_code = 503
    type = "service_unavailable_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = "router_store_unavailable",
                 metadata: dict[str, Any] | None = None) -> None:
        super().__init__(message, param=param, code=code, metadata=metadata)


class RouterConflictError(InvalidRequestError):
    """A stored router would take the name of a router defined in the config: 409."""

    status_code = 409


@runtime_checkable
class RouterStore(Protocol):
    """What the HTTP router API and :func:`install` use. Routers are ``Router.to_dict()`` mappings."""

    backend: str

    def list(self) -> list[dict[str, Any]]:
        """Every stored router, sorted by name."""
        ...

    def get(self, name: str) -> dict[str, Any] | None:
        """The stored router called ``name``, or None."""
        ...

    def put(self, router: dict[str, Any]) -> dict[str, Any]:
        """Validate (InvalidRequestError), create or replace, and return the stored mapping."""
        ...

    def delete(self, name: str) -> bool:
        """Remove the router; True if there was one."""
        ...

    def version(self) -> int:
        """A number that changes whenever any router changes (in any process sharing the store)."""
        ...

    def status(self) -> dict[str, Any]:
        """``{"backend", "ok", ...}``: reachable or not, and why (no secrets)."""
        ...


# --------------------------------------------------------------------------- shared parts


def _encode(router: Any) -> tuple[str, dict[str, Any], str]:
    """Validate a router: ``(name, its to_dict() form, that as JSON)``."""
    checked = Router.from_dict(router)
    data = checked.to_dict()
    return checked.name, data, json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _decode(name: str, body: str, where: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("not a mapping")
        return data
    except ValueError as exc:
        raise GroundingError(f"{where}: stored router {name!r} is corrupt ({exc}); put it again or delete it",
                             code="router_store_corrupt") from None


def _config_source(name: str) -> str:
    """Where the config defines router ``name`` (a file, or the config's ``routers``)."""
    from ..config import get_config

    config = get_config()
    for i, item in enumerate(config.routers):
        if isinstance(item, dict) and item.get("name") == name:
            return f"the config's routers[{i}]"
    for entry in config.router_files:
        path = config.path(entry)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file()
                           and p.suffix.lower() in _routers._ROUTER_SUFFIXES and not p.name.startswith("."))
        else:
            files = [path]
        for file in files:
            try:
                found = _routers._read_router_file(file)
            except GroundingError:
                continue
            for item, where in found:
                if isinstance(item, dict) and item.get("name") == name:
                    return where
    return "the config"


class _Store:
    """The parts every backend shares: validation, the config-name check, decoding."""

    backend = "?"
    #: Seconds between version checks by :func:`install` (0: every ``get_routers()`` call).
    refresh_s = 0.0

    def __init__(self, *, protect_config_routers: bool = True) -> None:
        #: Refuse names the config's routers have (see the module docs).
        self.protect_config_routers = protect_config_routers
        #: Writes made through this object (lets :func:`install` see its own writes at once).
        self.local_changes = 0
        self._changes = itertools.count(1)

    # The backend's primitives -----------------------------------------------------------

    def _rows(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def _row(self, name: str) -> str | None:
        raise NotImplementedError

    def _write(self, name: str, body: str) -> None:
        raise NotImplementedError

    def _remove(self, name: str) -> bool:
        raise NotImplementedError

    def version(self) -> int:
        raise NotImplementedError

    def snapshot(self) -> tuple[int, list[tuple[str, str]]]:
        """``(version, [(name, JSON), ...])`` read together (subclasses read both in one transaction)."""
        version = self.version()  # first: a write in between costs one more rebuild, never a stale one
        return version, self._rows()

    def _where(self) -> str:
        return f"router store {self.backend}"

    # The interface ----------------------------------------------------------------------

    def list(self) -> list[dict[str, Any]]:
        out = []
        for name, body in sorted(self._rows()):
            try:
                out.append(_decode(name, body, self._where()))
            except GroundingError as exc:
                log.warning("%s", exc.message)
        return out

    def get(self, name: str) -> dict[str, Any] | None:
        body = self._row(name)
        return None if body is None else _decode(name, body, self._where())

    def put(self, router: dict[str, Any]) -> dict[str, Any]:
        name, data, body = _encode(router)
        if self.protect_config_routers and name in _routers.file_routers():
            raise RouterConflictError(
                f"router {name!r} is defined in {_config_source(name)}; change it there, or store it under "
                "another name", param="name", code="router_conflict")
        self._write(name, body)
        self.local_changes = next(self._changes)
        return data

    def delete(self, name: str) -> bool:
        removed = self._remove(name)
        if removed:
            self.local_changes = next(self._changes)
        return removed

    def close(self) -> None:
        """Release connections (the store reconnects if used again)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._where()}>"


# --------------------------------------------------------------------------- memory


class MemoryRouterStore(_Store):
    """Routers in this process only (tests, library use). Thread-safe."""

    backend = "memory"

    def __init__(self, *, protect_config_routers: bool = True) -> None:
        super().__init__(protect_config_routers=protect_config_routers)
        self._lock = threading.Lock()
        self._data: dict[str, str] = {}
        self._version = 0

    def _rows(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._data.items())

    def _row(self, name: str) -> str | None:
        return self._data.get(name)

    def _write(self, name: str, body: str) -> None:
        with self._lock:
            self._data[name] = body
            self._version += 1

    def _remove(self, name: str) -> bool:
        with self._lock:
            if self._data.pop(name, None) is None:
                return False
            self._version += 1
            return True

    def version(self) -> int:
        return self._version

    def snapshot(self) -> tuple[int, list[tuple[str, str]]]:
        with self._lock:
            return self._version, sorted(self._data.items())

    def status(self) -> dict[str, Any]:
        return {"backend": "memory", "ok": True, "routers": len(self._data), "version": self._version}


# --------------------------------------------------------------------------- SQLite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS routers (name TEXT PRIMARY KEY, body TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('version', 0);
"""


class SQLiteRouterStore(_Store):
    """Routers in a SQLite file (WAL), shared by the processes of one host.

    One connection per process (reopened after a fork), used under a lock.
    Writes are ``BEGIN IMMEDIATE`` transactions that also bump the ``meta``
    row ``version``; readers in other processes see a write once it commits.
    ``timeout_s`` is how long a write waits for another process's write.
    """

    backend = "sqlite"

    def __init__(self, path: str | os.PathLike[str], *, timeout_s: float = 5.0,
                 protect_config_routers: bool = True) -> None:
        super().__init__(protect_config_routers=protect_config_routers)
        self.path = Path(path).expanduser()
        self.timeout_s = timeout_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    def _where(self) -> str:
        return f"router store sqlite {self.path}"

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=self.timeout_s, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _run(self, fn: Callable[[sqlite3.Connection], Any], *, write: bool = False) -> Any:
        with self._lock:
            try:
                conn = self._connection()
            except (sqlite3.Error, OSError) as exc:
                raise StoreUnavailableError(f"{self._where()}: cannot open it: {exc}") from None
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = fn(conn)
                    conn.execute("COMMIT")
                    return result
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise StoreUnavailableError(f"{self._where()}: {exc}") from None

    def _rows(self) -> list[tuple[str, str]]:
        return self._run(lambda c: c.execute("SELECT name, body FROM routers ORDER BY name").fetchall())

    def _row(self, name: str) -> str | None:
        row = self._run(lambda c: c.execute("SELECT body FROM routers WHERE name = ?", (name,)).fetchone())
        return row[0] if row else None

    def _write(self, name: str, body: str) -> None:
        def tx(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO routers (name, body, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) "
                      "DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at", (name, body, time.time()))
            c.execute("UPDATE meta SET value = value + 1 WHERE key = 'version'")

        self._run(tx, write=True)

    def _remove(self, name: str) -> bool:
        def tx(c: sqlite3.Connection) -> bool:
            if c.execute("DELETE FROM routers WHERE name = ?", (name,)).rowcount == 0:
                return False
            c.execute("UPDATE meta SET value = value + 1 WHERE key = 'version'")
            return True

        return self._run(tx, write=True)

    @staticmethod
    def _version(c: sqlite3.Connection) -> int:
        row = c.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        return int(row[0]) if row else 0

    def version(self) -> int:
        with self._lock:  # one statement: its own read transaction, no BEGIN/COMMIT round
            try:
                return self._version(self._connection())
            except (sqlite3.Error, OSError) as exc:
                raise StoreUnavailableError(f"{self._where()}: {exc}") from None

    def snapshot(self) -> tuple[int, list[tuple[str, str]]]:
        return self._run(lambda c: (self._version(c),
                                    c.execute("SELECT name, body FROM routers ORDER BY name").fetchall()))

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": "sqlite", "path": str(self.path)}
        try:
            version, count, mode = self._run(lambda c: (
                self._version(c), c.execute("SELECT count(*) FROM routers").fetchone()[0],
                c.execute("PRAGMA journal_mode").fetchone()[0]))
        except StoreUnavailableError as exc:
            return {**out, "ok": False, "error": exc.message}
        return {**out, "ok": True, "routers": count, "version": version, "journal_mode": mode}

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()


# --------------------------------------------------------------------------- Redis

# Delete a router and bump the version only if it existed (atomic, like MULTI).
_DELETE_SCRIPT = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  redis.call('SET', KEYS[2], ARGV[2], 'NX')
  redis.call('INCR', KEYS[2])
  return 1
end
return 0
"""


def _seed() -> int:
    """Where a new version counter starts: random, so a Redis emptied and refilled
    does not repeat version numbers a replica has cached."""
    return random.randrange(1, 2**40)


class RedisRouterStore(_Store):
    """Routers in Redis, shared by every replica (see the module docs for the keys).

    The connection is made on first use (so a server starts while Redis is
    down; :meth:`status` says so). ``timeout_s`` bounds each connect and
    reply; a command is retried once (a connection broken by a Redis restart).
    """

    backend = "redis"
    refresh_s = 0.0

    def __init__(self, url: str, *, key: str = "grounding:routers", timeout_s: float = 0.25,
                 refresh_s: float | None = None, client: Any = None, protect_config_routers: bool = True) -> None:
        super().__init__(protect_config_routers=protect_config_routers)
        self.url = url
        self.key = key
        self.version_key = f"{key}:version"
        self.timeout_s = timeout_s
        if refresh_s is not None:
            self.refresh_s = refresh_s
        if client is None:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            try:
                client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                              decode_responses=True, retry=Retry(NoBackoff(), 1))
            except ValueError as exc:
                raise InvalidRequestError(f"{_PARAM}: bad Redis URL {redact_url(url)}: {exc}", param=_PARAM) from None
        self._client = client
        self._delete = client.register_script(_DELETE_SCRIPT)

    def _where(self) -> str:
        return f"router store redis {redact_url(self.url)}"

    def _call(self, fn: Callable[[Any], Any]) -> Any:
        import redis

        try:
            return fn(self._client)
        except (redis.RedisError, OSError) as exc:
            text = str(exc).strip() or type(exc).__name__
            raise StoreUnavailableError(f"{self._where()} unavailable ({type(exc).__name__}: {text})") from None

    def _rows(self) -> list[tuple[str, str]]:
        return sorted(self._call(lambda c: c.hgetall(self.key)).items())

    def _row(self, name: str) -> str | None:
        return self._call(lambda c: c.hget(self.key, name))

    def _write(self, name: str, body: str) -> None:
        def tx(c: Any) -> None:
            pipe = c.pipeline(transaction=True)
            pipe.hset(self.key, name, body)
            pipe.set(self.version_key, _seed(), nx=True)
            pipe.incr(self.version_key)
            pipe.execute()

        self._call(tx)

    def _remove(self, name: str) -> bool:
        return bool(self._call(lambda c: self._delete(keys=[self.key, self.version_key], args=[name, _seed()],
                                                      client=c)))

    def version(self) -> int:
        value = self._call(lambda c: c.get(self.version_key))
        return int(value) if value is not None else 0

    def snapshot(self) -> tuple[int, list[tuple[str, str]]]:
        def read(c: Any) -> Any:
            pipe = c.pipeline(transaction=True)
            pipe.get(self.version_key)
            pipe.hgetall(self.key)
            return pipe.execute()

        version, rows = self._call(read)
        return (int(version) if version is not None else 0), sorted(rows.items())

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": "redis", "url": redact_url(self.url), "key": self.key}
        try:
            started = time.perf_counter()
            count, version = self._call(lambda c: c.pipeline(transaction=False).hlen(self.key)
                                        .get(self.version_key).execute())
            latency = (time.perf_counter() - started) * 1000
        except StoreUnavailableError as exc:
            return {**out, "ok": False, "error": exc.message}
        return {**out, "ok": True, "routers": count, "version": int(version) if version is not None else 0,
                "latency_ms": round(latency, 2)}

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:
            pass


# --------------------------------------------------------------------------- opening


def _cache_dir() -> Path:
    configured = os.environ.get("GROUNDING_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "grounding"


def _sqlite(url: str, config: "Config") -> RouterStore:
    rest = url.split("://", 1)[1].split("?", 1)[0]
    if not rest:
        raise InvalidRequestError(f"{_PARAM}: {url!r} names no file (sqlite:///abs/path.db or sqlite://relative.db)",
                                  param=_PARAM)
    path = Path(rest).expanduser()
    return SQLiteRouterStore(path if path.is_absolute() else config.path(rest))


_BACKENDS: dict[str, Callable[[str, "Config"], RouterStore]] = {
    "sqlite": _sqlite,
    "redis": lambda url, config: RedisRouterStore(url),
    "rediss": lambda url, config: RedisRouterStore(url),
    "unix": lambda url, config: RedisRouterStore(url),
    "memory": lambda url, config: MemoryRouterStore(),
}


def register_backend(scheme: str, factory: Callable[[str, "Config"], RouterStore]) -> None:
    """Let ``server.router_store: <scheme>://...`` open ``factory(url, config)``."""
    _BACKENDS[scheme.lower()] = factory


def open_store(config: "Config | None" = None) -> RouterStore:
    """The router store ``config`` names (default: the process's config).

    ``server.router_store`` if set (``sqlite:///abs/path.db``, ``sqlite://relative.db``
    resolved against the config file, ``redis://...``, ``memory://``); else
    Redis at ``config.effective_redis_url`` when set; else SQLite at
    ``$GROUNDING_CACHE_DIR/routers.db`` (default ``~/.cache/grounding/routers.db``).
    Nothing is connected yet: a store that is down shows in :meth:`~RouterStore.status`.
    """
    if config is None:
        from ..config import get_config

        config = get_config()
    url = config.server.router_store
    if not url:
        redis_url = config.effective_redis_url
        return RedisRouterStore(redis_url) if redis_url else SQLiteRouterStore(_cache_dir() / "routers.db")
    scheme, sep, _ = url.partition("://")
    known = ", ".join(sorted(_BACKENDS))
    if not sep:
        raise InvalidRequestError(f"{_PARAM}: {redact_url(url)!r} has no scheme; use one of {known} "
                                  "(sqlite:///path/routers.db, redis://host:6379/0, memory://)", param=_PARAM)
    factory = _BACKENDS.get(scheme.lower())
    if factory is None:
        raise InvalidRequestError(f"{_PARAM}: unknown scheme {scheme!r} in {redact_url(url)!r}; known: {known}",
                                  param=_PARAM)
    return factory(url, config)


# --------------------------------------------------------------------------- serving


class _MergedRouterSet(RouterSet):
    """The config's routers plus the stored ones; a miss is a 503 while the store is unreachable."""

    def __init__(self, routers: list[Router], overlay: "_Overlay") -> None:
        super().__init__(routers)
        self._overlay = overlay

    def get(self, name: str) -> Router:
        try:
            return super().get(name)
        except NotFoundError:
            degraded = self._overlay.degraded
            if degraded is None:
                raise
            raise StoreUnavailableError(f"unknown router {name!r} here, and the router store cannot be "
                                        f"checked: {degraded}", param="model") from None


class _Overlay:
    """The source :func:`install` gives :func:`grounding.routing.routers.set_router_source`."""

    #: Longest wait between attempts while the store is unreachable (the wait doubles from retry_s).
    max_retry_s = 10.0

    def __init__(self, store: RouterStore, refresh_s: float, retry_s: float) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self.retry_s = retry_s
        self._backoff = retry_s
        self.degraded: str | None = None
        self.shadowed: list[str] = []
        self.invalid: dict[str, str] = {}
        self._lock = threading.Lock()
        # (file routers, store version or None if never read, local_changes, merged)
        self._state: tuple[RouterSet, int | None, int, _MergedRouterSet] | None = None
        self._rows: list[tuple[str, str]] = []
        self._compiled: dict[str, tuple[str, Router]] = {}
        self._next_check = 0.0

    def _fresh(self, files: RouterSet, now: float) -> _MergedRouterSet | None:
        state = self._state
        if (state is not None and state[0] is files and now < self._next_check
                and state[2] == getattr(self.store, "local_changes", 0)):
            return state[3]
        return None

    def __call__(self, files: RouterSet) -> RouterSet:
        merged = self._fresh(files, time.monotonic())
        if merged is not None:
            return merged
        state = self._state
        # Only the timer is due (no own write, same config routers) and another thread is asking
        # the store already: keep serving what it read last rather than wait for it.
        timer_only = (state is not None and state[0] is files
                      and state[2] == getattr(self.store, "local_changes", 0))
        if not self._lock.acquire(blocking=not timer_only):
            return state[3]  # type: ignore[index]
        try:
            return self._refresh(files)
        finally:
            self._lock.release()

    def _refresh(self, files: RouterSet) -> RouterSet:
        """Ask the store (under the lock); on failure keep the last routers and back off."""
        now = time.monotonic()
        merged = self._fresh(files, now)
        if merged is not None:
            return merged
        state = self._state
        changes = getattr(self.store, "local_changes", 0)
        try:
            version = self.store.version()
            if state is None or state[0] is not files or state[1] != version:
                snapshot = getattr(self.store, "snapshot", None)
                if snapshot is not None:
                    version, rows = snapshot()
                else:
                    rows = [(r["name"], json.dumps(r)) for r in self.store.list()]
                self._rows = rows
                state = (files, version, changes, self._build(files, rows))
            else:
                state = (files, version, changes, state[3])
        except StoreUnavailableError as exc:
            if self.degraded is None:
                log.warning("routers: %s; serving the routers last read from it (retrying in %gs, "
                            "then less often, up to every %gs)", exc.message, self.retry_s, self.max_retry_s)
                self._backoff = self.retry_s
            else:
                self._backoff = min(self._backoff * 2, max(self.retry_s, self.max_retry_s))
            self.degraded = exc.message
            self._next_check = now + self._backoff
            if state is None or state[0] is not files:
                state = (files, None, changes, self._build(files, self._rows))
            self._state = (state[0], state[1], changes, state[3])
            return state[3]
        if self.degraded is not None:
            log.warning("routers: the router store answers again (%s)", _describe(self.store))
            self.degraded = None
        self._state = state
        self._next_check = now + self.refresh_s
        return state[3]

    def _build(self, files: RouterSet, rows: list[tuple[str, str]]) -> _MergedRouterSet:
        compiled: dict[str, tuple[str, Router]] = {}
        shadowed: list[str] = []
        invalid: dict[str, str] = {}
        for name, body in rows:
            if name in files:
                shadowed.append(name)
                continue
            hit = self._compiled.get(name)
            if hit is not None and hit[0] == body:
                compiled[name] = hit
                continue
            try:
                router = Router.from_dict(json.loads(body), source=f"stored router {name!r}")
                if router.name != name:
                    raise InvalidRequestError(f"stored router {name!r} is named {router.name!r}")
            except (GroundingError, ValueError) as exc:
                message = getattr(exc, "message", None) or str(exc)
                if self.invalid.get(name) != message:
                    log.warning("routers: skipping %s", message)
                invalid[name] = message
                continue
            compiled[name] = (body, router)
        if shadowed and shadowed != self.shadowed:
            log.warning("routers: stored routers %s are shadowed by config routers of the same name; "
                        "the config's are used", ", ".join(repr(n) for n in shadowed))
        self._compiled, self.shadowed, self.invalid = compiled, shadowed, invalid
        return _MergedRouterSet(list(files) + [router for _, router in compiled.values()], self)

    def status(self) -> dict[str, Any]:
        state = self._state
        return {"backend": getattr(self.store, "backend", type(self.store).__name__),
                "version": state[1] if state else None, "refresh_s": self.refresh_s,
                "degraded": self.degraded, "shadowed": list(self.shadowed), "invalid": dict(self.invalid)}


def _describe(store: RouterStore) -> str:
    where = getattr(store, "_where", None)
    return where() if callable(where) else repr(store)


_installed: _Overlay | None = None


def install(store: RouterStore | None, *, refresh_s: float | None = None, retry_s: float = 1.0) -> None:
    """Serve the config's routers plus ``store``'s from :func:`grounding.routing.routers.get_routers`.

    The store's version is checked at most every ``refresh_s`` seconds
    (default: the store's ``refresh_s``: 0 for SQLite, memory and
    Redis), and at once after a write through ``store`` itself; the routers are
    rebuilt only when it changed. While the store is unreachable the last
    routers read from it are kept and it is retried after ``retry_s``, then
    twice as long each time (up to 10 s).
    ``install(None)`` goes back to the config's routers alone.
    """
    global _installed
    if store is None:
        _installed = None
        _routers.set_router_source(None)
        return
    overlay = _Overlay(store, getattr(store, "refresh_s", 0.0) if refresh_s is None else refresh_s, retry_s)
    _installed = overlay
    _routers.set_router_source(overlay)


def installed() -> RouterStore | None:
    """The store :func:`install` put in place, if any."""
    overlay = _installed
    return overlay.store if overlay is not None else None


def install_status() -> dict[str, Any] | None:
    """How the installed store serves requests: ``{backend, version, refresh_s, degraded,
    shadowed, invalid}`` (None when none is installed). No network call."""
    overlay = _installed
    return overlay.status() if overlay is not None else None
