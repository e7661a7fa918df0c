"""Observed latency, throughput and cooldowns: in process, and shared through a real Redis."""
from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

from grounding.config import set_config
from grounding.routing import stats as stats_mod
from grounding.routing.stats import KEY_PREFIX, RedisStats, Stats, get_stats
from tests.fakes.redis_server import RedisServer, require_redis_server  # noqa: F401


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------- in process


def test_latency_is_the_median_time_to_first_token() -> None:
    stats = Stats()
    assert stats.latency_ms("groq/x") is None and stats.throughput("groq/x") is None
    for ttft in (100, 300, 200, 5000):
        stats.record("groq/x", ok=True, ttft_ms=ttft, duration_ms=6000)
    assert stats.latency_ms("groq/x") == 250  # the median shrugs off the 5 s outlier
    stats.record("groq/x", ok=False, ttft_ms=None, duration_ms=1)  # failures are not latency samples
    assert stats.latency_ms("groq/x") == 250
    stats.record("groq/y", ok=True, ttft_ms=None, duration_ms=900)  # not streamed: the whole duration
    assert stats.latency_ms("groq/y") == 900


def test_throughput_counts_tokens_after_the_first() -> None:
    stats = Stats()
    stats.record("p/m", ok=True, ttft_ms=200, duration_ms=1200, output_tokens=100)  # 100 tokens in 1.0 s
    stats.record("p/m", ok=True, ttft_ms=200, duration_ms=700, output_tokens=100)  # 100 tokens in 0.5 s
    stats.record("p/m", ok=True, ttft_ms=200, duration_ms=450, output_tokens=100)  # 100 tokens in 0.25 s
    assert stats.throughput("p/m") == pytest.approx(200)
    stats.record("p/n", ok=True, ttft_ms=None, duration_ms=2000, output_tokens=50)  # no TTFT: over the whole
    assert stats.throughput("p/n") == pytest.approx(25)
    stats.record("p/o", ok=True, ttft_ms=300, duration_ms=300, output_tokens=1)  # nothing after the first
    stats.record("p/o", ok=True, ttft_ms=300, duration_ms=900, output_tokens=0)
    assert stats.throughput("p/o") is None and stats.latency_ms("p/o") == 300


def test_samples_are_bounded() -> None:
    stats = Stats(samples=5)
    for ttft in [10_000] * 5 + [100] * 5:
        stats.record("p/m", ok=True, ttft_ms=ttft, duration_ms=20_000)
    assert stats.latency_ms("p/m") == 100  # the old slow samples fell out
    assert stats.snapshot("p/m")["samples"] == 5


def test_consecutive_failures_cool_a_deployment_down() -> None:
    clock = Clock()
    stats = Stats(failures=3, window_s=30, cooldown_s=30, clock=clock)
    fail = lambda: stats.record("p/m", ok=False, ttft_ms=None, duration_ms=10)  # noqa: E731
    fail(), fail()
    assert not stats.cooling_down("p/m")
    fail()
    assert stats.cooling_down("p/m")
    clock.now += 29
    assert stats.cooling_down("p/m")
    clock.now += 2
    assert not stats.cooling_down("p/m")

    fail(), fail()  # a success in between resets the count
    stats.record("p/m", ok=True, ttft_ms=100, duration_ms=200)
    fail()
    assert not stats.cooling_down("p/m")

    fail()
    clock.now += 31  # failures spread over more than the window do not count together
    fail()
    assert not stats.cooling_down("p/m")
    assert not stats.cooling_down("never/seen")


def test_record_never_raises() -> None:
    stats = Stats()
    stats.record("p/m", ok=True, ttft_ms=None, duration_ms=None)  # type: ignore[arg-type]
    stats.record("p/m", ok=True, ttft_ms="fast", duration_ms=10)  # type: ignore[arg-type]
    stats.record("p/m", ok=True, ttft_ms=-5, duration_ms=-1)
    assert stats.latency_ms("p/m") is None


def test_in_process_statistics_keep_a_bounded_window() -> None:
    """Many records keep only the last 50 per deployment (how fast: the routing benchmark)."""
    stats = Stats()
    for _ in range(40):
        stats.record("p/m", ok=True, ttft_ms=1000, duration_ms=2000, output_tokens=80)
    for _ in range(50):  # the last 50 samples push the slow ones out entirely
        stats.record("p/m", ok=True, ttft_ms=10, duration_ms=900, output_tokens=80)
    assert stats.latency_ms("p/m") == 10 and not stats.cooling_down("p/m")


# ---------------------------------------------------------------- Redis


def test_two_processes_share_statistics_through_redis(redis_url: str) -> None:
    a = RedisStats(redis_url, cache_s=0)
    b = RedisStats(redis_url, cache_s=0)
    assert a.degraded is None and b.degraded is None
    for ttft in (100, 200, 300):
        a.record("groq/gpt-oss-120b", ok=True, ttft_ms=ttft, duration_ms=1200, output_tokens=100)
    assert b.latency_ms("groq/gpt-oss-120b") == 200
    assert b.throughput("groq/gpt-oss-120b") == pytest.approx(100 / 1.0)
    b.record("groq/gpt-oss-120b", ok=True, ttft_ms=1000, duration_ms=1100)
    assert a.latency_ms("groq/gpt-oss-120b") == 250  # median of 100, 200, 300, 1000
    assert b.snapshot("groq/gpt-oss-120b")["samples"] == 4
    assert a.latency_ms("cerebras/gpt-oss-120b") is None
    a.close(), b.close()


def test_another_os_process_sees_the_samples(redis_url: str) -> None:
    code = textwrap.dedent(f"""
        from grounding.routing.stats import RedisStats
        stats = RedisStats({redis_url!r})
        assert stats.degraded is None, stats.degraded
        for ttft in (40, 60, 80):
            stats.record("cerebras/gpt-oss-120b", ok=True, ttft_ms=ttft, duration_ms=500, output_tokens=45)
        print(stats.latency_ms("cerebras/gpt-oss-120b"))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "60.0"
    here = RedisStats(redis_url, cache_s=0)
    assert here.latency_ms("cerebras/gpt-oss-120b") == 60
    assert here.throughput("cerebras/gpt-oss-120b") == pytest.approx(45 / 0.44, rel=0.01)


def test_cooldowns_are_shared(redis_url: str) -> None:
    a = RedisStats(redis_url, cache_s=0, cooldown_s=0.3)
    b = RedisStats(redis_url, cache_s=0, cooldown_s=0.3)
    for _ in range(3):
        a.record("p/m", ok=False, ttft_ms=None, duration_ms=5)
    assert b.cooling_down("p/m")
    time.sleep(0.45)  # the cooldown key expires in Redis
    assert not b.cooling_down("p/m")
    a.record("p/m", ok=False, ttft_ms=None, duration_ms=5)
    b.record("p/m", ok=False, ttft_ms=None, duration_ms=5)
    assert not a.cooling_down("p/m")
    b.record("p/m", ok=False, ttft_ms=None, duration_ms=5)  # the third in a row, across processes
    assert a.cooling_down("p/m")


def test_redis_keys_are_namespaced_bounded_and_expire(redis_url: str) -> None:
    stats = RedisStats(redis_url, samples=50, ttl_s=120)
    for i in range(60):
        stats.record("openai/gpt-4.1-mini", ok=True, ttft_ms=i, duration_ms=100, output_tokens=10)
    stats.record("openai/gpt-4.1-mini", ok=False, ttft_ms=None, duration_ms=5)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    keys = set(client.keys("*"))
    assert keys and all(k.startswith(KEY_PREFIX) for k in keys)
    ok_key = f"{KEY_PREFIX}openai/gpt-4.1-mini:ok"
    assert client.llen(ok_key) == 50
    assert all(0 < client.ttl(k) <= 120 for k in keys)
    assert stats.latency_ms("openai/gpt-4.1-mini") == pytest.approx(34.5)  # median of the last 50 (10..59)
    client.close()


def test_reads_are_cached_briefly(redis_url: str) -> None:
    a = RedisStats(redis_url, cache_s=60)
    b = RedisStats(redis_url, cache_s=60)
    b.prefetch(["p/m"])  # caches "nothing observed"
    a.record("p/m", ok=True, ttft_ms=100, duration_ms=200)
    assert b.latency_ms("p/m") is None  # still cached
    assert a.latency_ms("p/m") == 100  # its own write invalidated its cache
    b._cache.clear()
    assert b.latency_ms("p/m") == 100


def test_unreachable_redis_degrades_to_memory() -> None:
    stats = RedisStats("redis://127.0.0.1:1/0", timeout_s=0.05)
    assert stats.degraded and "127.0.0.1:1" in stats.degraded
    stats.record("p/m", ok=True, ttft_ms=120, duration_ms=400)
    assert stats.latency_ms("p/m") == 120
    assert not stats.cooling_down("p/m")


def test_redis_dying_mid_run_degrades_without_raising() -> None:
    require_redis_server()
    with RedisServer() as server:
        stats = RedisStats(server.url, cache_s=0)
        stats.record("p/m", ok=True, ttft_ms=100, duration_ms=300)
        assert stats.degraded is None
        port = server.port
        server.stop()
        stats.record("p/m", ok=True, ttft_ms=300, duration_ms=500)  # must not raise
        assert stats.degraded and "using in-process statistics" in stats.degraded
        # Something listens on Redis's port again: degraded statistics must not knock on it each call.
        with socket.socket() as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(8)
            listener.setblocking(False)
            assert stats.latency_ms("p/m") == 200  # both samples, kept in memory
            for _ in range(5):
                stats.latency_ms("p/m")
                stats.record("p/m", ok=True, ttft_ms=200, duration_ms=400)
            with pytest.raises(BlockingIOError):
                listener.accept()  # nobody connected


def test_get_stats_follows_the_config(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROUNDING_REDIS_URL", raising=False)
    monkeypatch.delenv("GROUNDING_CONFIG", raising=False)
    try:
        set_config({})
        assert type(get_stats()) is Stats
        assert get_stats() is get_stats()
        set_config({"redis_url": redis_url})
        shared = get_stats()
        assert isinstance(shared, RedisStats) and shared.degraded is None
        monkeypatch.setenv("GROUNDING_REDIS_URL", redis_url)
        set_config({})
        assert isinstance(get_stats(), RedisStats)
        stats_mod.reset()
        assert stats_mod._stats is None
    finally:
        monkeypatch.delenv("GROUNDING_REDIS_URL", raising=False)
        set_config(None)
