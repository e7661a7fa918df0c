"""Router stores: one contract for SQLite, Redis and memory; sharing between
processes and replicas; Redis down; install() serving get_routers()."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

import grounding.config as config_mod
from grounding.config import Config
from grounding.errors import GroundingError, InvalidRequestError, NotFoundError
from grounding.routing import routers as routers_mod
from grounding.routing.routers import Router, get_routers
from grounding.server import store as store_mod
from grounding.server.store import (
    MemoryRouterStore,
    RedisRouterStore,
    RouterConflictError,
    RouterStore,
    SQLiteRouterStore,
    StoreUnavailableError,
    install,
    install_status,
    installed,
    open_store,
    register_backend,
)
from tests.fakes.redis_server import RedisServer, require_redis_server

ROOT = Path(__file__).resolve().parent.parent
USER = [{"role": "user", "content": "hello"}]


def router(name: str = "support", model: str = "gpt-4.1", **extra: Any) -> dict:
    return {"name": name, "default_route": {"variants": [{"id": "a", "model": model}]}, **extra}


def split_router(name: str = "ab") -> dict:
    """Three variants by weight in the default route: what sticky selection spreads over."""
    return {"name": name, "default_route": {"id": "all", "variants": [
        {"id": "v1", "weight": 34, "model": "m1"},
        {"id": "v2", "weight": 33, "model": "m2"},
        {"id": "v3", "weight": 33, "model": "m3"}]}}


def variants(name: str, users: list[str]) -> list[str]:
    rs = get_routers()
    return [rs.get(name).select(metadata={}, messages=USER, user=u, request_id="req").variant_id for u in users]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_py(code: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """Run ``code`` in a new interpreter (this repo importable); its stdout, or fail with its stderr."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture
def child_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GROUNDING_CONFIG", "GROUNDING_REDIS_URL")}
    env["GROUNDING_CACHE_DIR"] = str(tmp_path / "child-cache")
    return env


@pytest.fixture(autouse=True)
def clean_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """An empty config, no cache dir of the user's, no store installed before or after."""
    monkeypatch.setattr(config_mod, "_current", Config())
    monkeypatch.delenv("GROUNDING_REDIS_URL", raising=False)
    monkeypatch.setenv("GROUNDING_CACHE_DIR", str(tmp_path / "cache"))
    install(None)
    routers_mod.reset()
    yield
    install(None)
    routers_mod.reset()


def use_config(monkeypatch: pytest.MonkeyPatch, config: Config) -> None:
    monkeypatch.setattr(config_mod, "_current", config)
    routers_mod.reset()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RouterStore]:
    if request.param == "memory":
        s: Any = MemoryRouterStore()
    elif request.param == "sqlite":
        s = SQLiteRouterStore(tmp_path / "routers.db")
    else:
        s = RedisRouterStore(request.getfixturevalue("redis_url"))
    yield s
    s.close()


# --------------------------------------------------------------------------- the contract


def test_contract_crud_and_versions(store: RouterStore) -> None:
    assert isinstance(store, RouterStore)
    assert store.list() == [] and store.get("support") is None
    v0 = store.version()
    assert store.delete("support") is False and store.version() == v0

    stored = store.put(router())
    assert stored == Router.from_dict(router()).to_dict()
    assert store.get("support") == stored and store.list() == [stored]
    v1 = store.version()
    assert v1 != v0

    replaced = store.put(router(model="gpt-4.1-mini"))
    assert replaced["default_route"]["variants"][0]["model"] == "gpt-4.1-mini"
    assert store.get("support") == replaced
    v2 = store.version()
    assert v2 not in (v0, v1)
    store.put(router(model="gpt-4.1-mini"))  # the same again is still a write
    v3 = store.version()
    assert v3 not in (v0, v1, v2)

    assert store.delete("support") is True
    v4 = store.version()
    assert v4 not in (v0, v1, v2, v3)
    assert store.get("support") is None and store.list() == []
    assert store.delete("support") is False and store.version() == v4


def test_contract_list_is_sorted_by_name(store: RouterStore) -> None:
    for name in ("beta", "Alpha", "alpha.2", "alpha", "a-b_c"):
        store.put(router(name))
    assert [r["name"] for r in store.list()] == sorted(["beta", "Alpha", "alpha.2", "alpha", "a-b_c"])


def test_contract_put_validates_like_a_router_file(store: RouterStore) -> None:
    store.put(router("keep"))
    before = store.version()
    bad = {"name": "bad", "routes": [{"id": "pro", "condition": "true", "variants": [
        {"id": "a", "weight": 60, "model": "m1"}, {"id": "b", "weight": 30, "model": "m2"}]}]}
    with pytest.raises(InvalidRequestError) as info:
        store.put(bad)
    assert info.value.status_code == 400 and info.value.code == "invalid_router"
    assert "route 'pro'" in info.value.message and "sum to 90" in info.value.message
    with pytest.raises(InvalidRequestError, match="unknown key"):
        store.put(router("bad", surprise=1))
    with pytest.raises(InvalidRequestError, match="unknown variable 'tier'"):
        store.put({"name": "bad", "routes": [{"id": "r", "condition": "tier == 'pro'",
                                              "variants": [{"id": "a", "model": "m"}]}]})
    with pytest.raises(InvalidRequestError, match="must be a mapping"):
        store.put(["not", "a", "router"])  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError):
        store.put(router("no spaces allowed"))
    assert store.get("bad") is None and [r["name"] for r in store.list()] == ["keep"]
    assert store.version() == before


def test_contract_refuses_a_config_routers_name(store: RouterStore, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    folder = tmp_path / "routers"
    folder.mkdir()
    (folder / "support.yaml").write_text(json.dumps(router("support")))
    use_config(monkeypatch, Config(routers=[router("inline")], router_files=[str(folder)]))
    with pytest.raises(RouterConflictError) as info:
        store.put(router("support", model="other"))
    assert info.value.status_code == 409 and info.value.code == "router_conflict"
    assert str(folder / "support.yaml") in info.value.message
    with pytest.raises(InvalidRequestError, match=r"the config's routers\[0\]"):
        store.put(router("inline"))
    assert store.list() == []
    assert store.put(router("fresh"))["name"] == "fresh"


def test_contract_status(store: RouterStore) -> None:
    store.put(router())
    status = store.status()
    assert status["ok"] is True and status["backend"] == store.backend
    assert status["routers"] == 1 and status["version"] == store.version()


# --------------------------------------------------------------------------- open_store


def test_open_store_schemes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = open_store(Config(server={"router_store": f"sqlite://{tmp_path}/abs.db"}))
    assert isinstance(absolute, SQLiteRouterStore) and absolute.path == tmp_path / "abs.db"
    relative = open_store(Config(server={"router_store": "sqlite://data/rel.db"}, base_dir=str(tmp_path)))
    assert isinstance(relative, SQLiteRouterStore) and relative.path == tmp_path / "data" / "rel.db"
    relative.put(router())
    assert (tmp_path / "data" / "rel.db").exists()
    assert isinstance(open_store(Config(server={"router_store": "memory://"})), MemoryRouterStore)
    redis_store = open_store(Config(server={"router_store": "redis://127.0.0.1:1/3"}))  # nothing connects yet
    assert isinstance(redis_store, RedisRouterStore)

    with pytest.raises(InvalidRequestError) as info:
        open_store(Config(server={"router_store": "postgres://app:hunter2@db.internal/grounding"}))
    assert "'postgres'" in info.value.message and "hunter2" not in info.value.message
    assert info.value.param == "server.router_store"
    with pytest.raises(InvalidRequestError, match="has no scheme"):
        open_store(Config(server={"router_store": "/var/lib/routers.db"}))
    with pytest.raises(InvalidRequestError, match="names no file"):
        open_store(Config(server={"router_store": "sqlite://"}))

    register_backend("test-mem", lambda url, config: MemoryRouterStore())
    try:
        assert isinstance(open_store(Config(server={"router_store": "test-mem://x"})), MemoryRouterStore)
    finally:
        store_mod._BACKENDS.pop("test-mem")


def test_open_store_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = open_store(Config())
    assert isinstance(default, SQLiteRouterStore) and default.path == tmp_path / "cache" / "routers.db"
    assert isinstance(open_store(Config(redis_url="redis://127.0.0.1:1/0")), RedisRouterStore)
    monkeypatch.setenv("GROUNDING_REDIS_URL", "redis://127.0.0.1:1/0")
    assert isinstance(open_store(Config()), RedisRouterStore)
    # An explicit router_store wins over the Redis URL.
    assert isinstance(open_store(Config(server={"router_store": "memory://"})), MemoryRouterStore)
    use_config(monkeypatch, Config(server={"router_store": "memory://"}))
    assert isinstance(open_store(), MemoryRouterStore)


# --------------------------------------------------------------------------- install()


def test_install_serves_config_and_stored_routers(monkeypatch: pytest.MonkeyPatch) -> None:
    use_config(monkeypatch, Config(routers=[router("filed")]))
    store = MemoryRouterStore()
    install(store)
    assert installed() is store
    assert get_routers().names() == ["filed"]
    store.put(router("stored"))
    assert get_routers().names() == ["filed", "stored"]  # the next call, no delay
    first = get_routers()
    assert get_routers() is first  # cached while nothing changes
    stored_router = first.get("stored")
    store.put(router("other"))
    second = get_routers()
    assert second is not first and second.names() == ["filed", "other", "stored"]
    assert second.get("stored") is stored_router  # unchanged routers are not recompiled
    store.delete("stored")
    with pytest.raises(NotFoundError):
        get_routers().get("stored")

    # reset() (set_config does it) reloads the config's routers and keeps the store.
    use_config(monkeypatch, Config(routers=[router("filed2")]))
    assert get_routers().names() == ["filed2", "other"]
    status = install_status()
    assert status is not None and status["backend"] == "memory" and status["degraded"] is None

    install(None)
    assert installed() is None and install_status() is None
    assert get_routers().names() == ["filed2"]


def test_set_config_keeps_the_installed_store() -> None:
    store = MemoryRouterStore()
    store.put(router("stored"))
    install(store)
    config_mod.set_config({"routers": [router("inline")]})
    assert get_routers().names() == ["inline", "stored"]


def test_a_stored_router_shadowed_by_a_config_router(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryRouterStore(protect_config_routers=False)
    store.put(router("support", model="from-store"))
    store.put(router("extra"))
    use_config(monkeypatch, Config(routers=[router("support", model="from-config")]))
    install(store)
    rs = get_routers()
    assert rs.names() == ["extra", "support"]
    assert rs.get("support").default_route.variants[0].model == "from-config"
    assert install_status()["shadowed"] == ["support"]  # type: ignore[index]


def test_an_invalid_stored_router_is_skipped(tmp_path: Path) -> None:
    store = SQLiteRouterStore(tmp_path / "r.db")
    store.put(router("good"))
    conn = sqlite3.connect(tmp_path / "r.db")
    with conn:
        conn.execute("INSERT INTO routers VALUES ('broken', ?, 0)", (json.dumps(router("broken", surprise=1)),))
        conn.execute("INSERT INTO routers VALUES ('garbled', '{not json', 0)")
        conn.execute("UPDATE meta SET value = value + 1")
    conn.close()
    install(store)
    assert get_routers().names() == ["good"]
    invalid = install_status()["invalid"]  # type: ignore[index]
    assert set(invalid) == {"broken", "garbled"} and "unknown key" in invalid["broken"]
    assert [r["name"] for r in store.list()] == ["broken", "good"]  # list() skips what is not JSON
    with pytest.raises(GroundingError, match="corrupt"):
        store.get("garbled")


class FlakyStore(MemoryRouterStore):
    """A memory store that can be switched off (every call then fails like a dead Redis)."""

    down = False

    def version(self) -> int:
        if self.down:
            raise StoreUnavailableError("router store flaky unavailable (switched off)")
        return super().version()

    def snapshot(self):  # type: ignore[override]
        if self.down:
            raise StoreUnavailableError("router store flaky unavailable (switched off)")
        return super().snapshot()


def test_store_down_keeps_the_last_routers_then_recovers(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    use_config(monkeypatch, Config(routers=[router("filed")]))
    store = FlakyStore()
    store.put(router("stored"))
    install(store, retry_s=0.05)
    assert get_routers().names() == ["filed", "stored"]
    store.down = True
    with caplog.at_level("WARNING"):
        rs = get_routers()
        get_routers()
    assert rs.names() == ["filed", "stored"]  # the last routers read
    assert sum("switched off" in r.message for r in caplog.records) == 1  # logged once
    with pytest.raises(StoreUnavailableError) as info:
        rs.get("missing")  # might be in the store: 503, not 404
    assert info.value.status_code == 503 and info.value.code == "router_store_unavailable"
    assert "switched off" in info.value.message
    assert install_status()["degraded"]  # type: ignore[index]
    store.down = False
    store.put(router("later"))
    deadline = time.monotonic() + 2
    while get_routers().names() != ["filed", "later", "stored"]:
        assert time.monotonic() < deadline, "did not recover"
        time.sleep(0.01)
    assert install_status()["degraded"] is None  # type: ignore[index]
    with pytest.raises(NotFoundError):
        get_routers().get("missing")


def test_store_down_is_retried_less_and_less_often() -> None:
    calls = []

    class Counting(FlakyStore):
        def version(self) -> int:
            calls.append(time.monotonic())
            return super().version()

    store = Counting()
    store.put(router("stored"))
    install(store, retry_s=0.02)
    get_routers()
    store.down = True
    calls.clear()
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        assert "stored" in get_routers()
        time.sleep(0.001)
    # 20 ms, 40, 80, 160 ms between attempts: a handful of tries in 300 ms, not one per call.
    assert 2 <= len(calls) <= 5


def test_many_threads_read_while_another_writes(tmp_path: Path) -> None:
    import threading

    store = SQLiteRouterStore(tmp_path / "r.db")
    install(store)
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            while not stop.is_set():
                rs = get_routers()
                for name in rs.names():
                    rs.get(name)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(8)]
    for t in readers:
        t.start()
    writer = SQLiteRouterStore(tmp_path / "r.db")
    for i in range(30):
        writer.put(router(f"r{i:02d}"))
        if i % 3 == 0:
            store.delete(f"r{i:02d}")
    stop.set()
    for t in readers:
        t.join(timeout=10)
    assert not errors, errors[0]
    expected = [f"r{i:02d}" for i in range(30) if i % 3]
    assert get_routers().names() == expected == [r["name"] for r in store.list()]


def test_store_down_from_the_start_serves_the_config_routers(monkeypatch: pytest.MonkeyPatch) -> None:
    use_config(monkeypatch, Config(routers=[router("filed")]))
    store = FlakyStore()
    store.down = True
    install(store)
    assert get_routers().get("filed").name == "filed"
    with pytest.raises(StoreUnavailableError):
        get_routers().get("stored")


# --------------------------------------------------------------------------- SQLite across processes


def test_sqlite_two_store_objects_share_one_file(tmp_path: Path) -> None:
    a = SQLiteRouterStore(tmp_path / "shared.db")
    b = SQLiteRouterStore(tmp_path / "shared.db")
    install(b)
    assert get_routers().names() == []
    v = b.version()
    a.put(router("from-a"))
    assert b.get("from-a") is not None and b.version() != v
    assert get_routers().names() == ["from-a"]  # the next call sees the other's write
    b.delete("from-a")
    assert a.get("from-a") is None and a.list() == []
    assert get_routers().names() == []


def test_sqlite_a_write_by_another_process_applies_to_the_next_call(tmp_path: Path,
                                                                    child_env: dict[str, str]) -> None:
    path = tmp_path / "shared.db"
    store = SQLiteRouterStore(path)
    store.put(router("mine"))
    install(store)
    assert get_routers().names() == ["mine"]
    run_py(f"""
        from grounding.server.store import SQLiteRouterStore
        SQLiteRouterStore({str(path)!r}).put({router("theirs", model="gpt-4.1-mini")!r})
    """, env=child_env)
    rs = get_routers()
    assert rs.names() == ["mine", "theirs"]
    assert rs.get("theirs").default_route.variants[0].model == "gpt-4.1-mini"


def test_sqlite_concurrent_writers_lose_nothing(tmp_path: Path, child_env: dict[str, str]) -> None:
    path = tmp_path / "shared.db"
    SQLiteRouterStore(path).put(router("seed"))  # create the file before the writers race
    start = SQLiteRouterStore(path).version()
    code = """
        import sys
        from grounding.server.store import SQLiteRouterStore
        store = SQLiteRouterStore(sys.argv[1])
        for i in range(25):
            store.put({{"name": f"{prefix}{{i}}", "default_route": {{"variants": [{{"id": "a", "model": "m"}}]}}}})
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code.format(prefix=p)), str(path)], cwd=ROOT,
                              env=child_env, stderr=subprocess.PIPE, text=True) for p in ("p", "q")]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
    store = SQLiteRouterStore(path)
    assert len(store.list()) == 51
    assert store.version() == start + 50  # the counter is bumped in the same transaction as each write


def test_sqlite_unusable_path_is_a_clear_503(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("x")
    store = SQLiteRouterStore(tmp_path / "plain-file" / "routers.db")
    with pytest.raises(StoreUnavailableError) as info:
        store.put(router())
    assert info.value.status_code == 503 and "plain-file" in info.value.message
    status = store.status()
    assert status["ok"] is False and status["backend"] == "sqlite" and status["error"]


# --------------------------------------------------------------------------- Redis: replicas


def test_redis_two_replicas_share_routers(redis_url: str) -> None:
    replica_a = RedisRouterStore(redis_url)
    replica_b = RedisRouterStore(redis_url)
    assert replica_b.refresh_s == 0.0  # the version is read on every call by default
    install(replica_b)
    assert get_routers().names() == []
    replica_a.put(router("shared"))
    assert "shared" in get_routers()  # the very next request on the other replica
    assert replica_b.get("shared") == replica_a.get("shared")
    replica_a.delete("shared")
    assert "shared" not in get_routers()


def test_redis_refresh_window_and_own_writes(redis_url: str) -> None:
    mine = RedisRouterStore(redis_url, refresh_s=30)
    other = RedisRouterStore(redis_url)
    install(mine)
    assert get_routers().names() == []
    other.put(router("elsewhere"))
    assert get_routers().names() == []  # within the refresh window: not read yet
    mine.put(router("here"))
    assert get_routers().names() == ["elsewhere", "here"]  # a write through this store checks at once
    install(RedisRouterStore(redis_url, refresh_s=0))
    other.put(router("third"))
    assert "third" in get_routers()  # refresh_s=0: every call reads the version


def test_redis_version_is_one_counter_key(redis_url: str) -> None:
    import redis

    store = RedisRouterStore(redis_url)
    store.put(router("a"))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.hkeys("grounding:routers") == ["a"]
    assert int(client.get("grounding:routers:version")) == store.version()
    client.flushall()  # an emptied Redis: the version moves, the routers are gone
    assert store.version() == 0 and store.list() == []


def test_redis_sticky_variants_identical_on_two_replicas(redis_url: str) -> None:
    RedisRouterStore(redis_url).put(split_router())
    users = [f"user-{i}" for i in range(200)]
    install(RedisRouterStore(redis_url))
    first = variants("ab", users)
    install(RedisRouterStore(redis_url))
    second = variants("ab", users)
    assert first == second
    assert set(first) == {"v1", "v2", "v3"}
    assert variants("ab", users[:10]) == first[:10]  # and stable across calls


def test_redis_replicas_in_separate_processes_pick_the_same_variants(redis_url: str,
                                                                    child_env: dict[str, str]) -> None:
    run_py(f"""
        from grounding.server.store import RedisRouterStore
        RedisRouterStore({redis_url!r}).put({split_router()!r})
    """, env=child_env)
    reader = """
        import json, sys
        from grounding.routing.routers import get_routers
        from grounding.server.store import RedisRouterStore, install
        install(RedisRouterStore(sys.argv[1]))
        router = get_routers().get("ab")
        picks = [router.select(metadata={}, messages=[{"role": "user", "content": "hi"}], user=f"user-{i}",
                               request_id=f"req-{i}").variant_id for i in range(50)]
        print(json.dumps(picks))
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(reader), redis_url], cwd=ROOT, env=child_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
        outputs.append(json.loads(out))
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) == 50 and set(outputs[0]) == {"v1", "v2", "v3"}
    install(RedisRouterStore(redis_url))
    assert variants("ab", [f"user-{i}" for i in range(50)]) == outputs[0]  # and this process agrees


# --------------------------------------------------------------------------- Redis: down


def test_redis_down_is_a_clear_error() -> None:
    port = closed_port()
    store = RedisRouterStore(f"redis://app:s3cret@127.0.0.1:{port}/0")
    for call in (store.list, lambda: store.get("x"), lambda: store.put(router()), lambda: store.delete("x"),
                 store.version):
        with pytest.raises(StoreUnavailableError) as info:
            call()
        err = info.value
        assert err.status_code == 503 and err.code == "router_store_unavailable"
        assert f"redis://app:***@127.0.0.1:{port}/0" in err.message and "s3cret" not in err.message
        assert err.__cause__ is None and err.__suppress_context__
    status = store.status()
    assert status["ok"] is False and status["backend"] == "redis" and "s3cret" not in json.dumps(status)


def test_redis_bad_url_is_invalid_config() -> None:
    with pytest.raises(InvalidRequestError, match="server.router_store"):
        RedisRouterStore("redis://app:pw@127.0.0.1:notaport/0")


def test_redis_dying_under_a_server_keeps_serving_what_it_read(monkeypatch: pytest.MonkeyPatch) -> None:
    require_redis_server()
    use_config(monkeypatch, Config(routers=[router("filed")]))
    with RedisServer() as server:
        store = RedisRouterStore(server.url)
        store.put(split_router())
        install(store, refresh_s=0, retry_s=60)
        users = [f"u{i}" for i in range(20)]
        before = variants("ab", users)
        port = server.port
        server.stop()
        assert variants("ab", users) == before  # the last routers read, same picks
        assert "unavailable" in install_status()["degraded"]  # type: ignore[index]
        with socket.socket() as listener:  # something on Redis's port: a degraded store must not knock each call
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(8)
            listener.setblocking(False)
            assert variants("ab", users) == before
            assert get_routers().get("filed").name == "filed"
            with pytest.raises(StoreUnavailableError):
                get_routers().get("unknown")
            with pytest.raises(BlockingIOError):
                listener.accept()  # nobody connected: it keeps serving what it read
        assert "unavailable" in install_status()["degraded"]  # type: ignore[index]
        assert store.status()["ok"] is False
