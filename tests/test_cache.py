"""The search and page cache: keys, bounds, TTLs, coalescing, bypass, Redis, and what the fakes see.

End to end, the cache is judged by the fake servers' own request counts: a
repeated request makes no search and no page request, and N concurrent
identical requests make one of each.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
import time

import pytest
from pydantic import BaseModel

import grounding
from grounding.cache import (Cache, MemoryBackend, RedisBackend, cache_settings, engine_id, get_cache,
                             normalize_query, normalize_url, page_key, search_key, set_cache, stable_options)
from grounding.cost import search_cost
from tests.fakes.redis_server import RedisServer, require_redis_server

QUESTION = "nutrition trends for fall"


class Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# --- keys ---------------------------------------------------------------------------------------

def test_queries_that_differ_only_in_case_and_spacing_share_a_key():
    assert normalize_query("  Python   3.13\tREPL ") == "python 3.13 repl"
    assert normalize_query("Ｐｙｔｈｏｎ") == "python"  # NFKC: full-width letters
    assert search_key("tavily", "Python REPL", 3) == search_key("tavily", " python  repl", 3)
    assert search_key("tavily", "python repl", 3) != search_key("exa_ai", "python repl", 3)
    assert search_key("tavily", "python repl", 3) != search_key("tavily", "python repl", 5)
    assert search_key("tavily", "python repl", 3) != search_key("tavily", "python repls", 3)


class Location(BaseModel):
    country: str | None = None
    city: str | None = None


class Options(BaseModel):
    include_domains: list[str] | None = None
    user_location: Location | None = None


@dataclasses.dataclass
class DataOptions:
    include_domains: list[str] | None = None
    user_location: dict | None = None


def test_search_options_of_any_shape_key_stably():
    as_model = Options(include_domains=["python.org"], user_location=Location(country="FR"))
    as_dataclass = DataOptions(include_domains=["python.org"], user_location={"country": "FR", "city": None})
    as_dict = {"user_location": {"country": "FR"}, "include_domains": ["python.org"]}
    keys = {search_key("tavily", "q", 3, o) for o in (as_model, as_dataclass, as_dict)}
    assert len(keys) == 1
    # no options, None, and empty options are the same search
    assert (search_key("tavily", "q", 3) == search_key("tavily", "q", 3, Options())
            == search_key("tavily", "q", 3, {"include_domains": []}))
    assert search_key("tavily", "q", 3) != search_key("tavily", "q", 3, as_dict)
    assert search_key("tavily", "q", 3, as_dict) != search_key("tavily", "q", 3, {**as_dict, "include_domains": ["a.org"]})
    assert stable_options({"b": 1, "a": {2, 1}}) == '{"a":[1,2],"b":1}'
    with pytest.raises(TypeError):
        stable_options(object())  # no stable form: refuse rather than key by id()


def test_urls_normalize_to_one_page_key():
    same = ["HTTPS://Example.COM:443/a/b/?utm_source=x&z=1&a=2#section",
            "https://example.com/a/b?a=2&z=1", "https://example.com/a/b/?a=2&z=1&fbclid=abc"]
    assert {normalize_url(u) for u in same} == {"https://example.com/a/b?a=2&z=1"}
    assert len({page_key(u) for u in same}) == 1
    assert page_key("https://example.com/a") != page_key("https://example.com/b")
    assert page_key("https://example.com/a") != page_key("http://example.com/a")
    assert normalize_url("http://example.com:8080") == "http://example.com:8080/"
    key = page_key("https://example.com/secret-path?q=private")
    assert key.startswith("page:v1:") and len(key) == 72 and "secret" not in key  # no URL text in keys


def test_an_engine_is_keyed_by_its_cache_id():
    from providers.search import LitellmSearchEngine, LocalSearchEngine

    assert engine_id(LitellmSearchEngine("tavily")) == "tavily"
    assert engine_id(LitellmSearchEngine("tavily", api_base="http://a")) != engine_id(LitellmSearchEngine("tavily"))
    assert LocalSearchEngine.cacheable is False


# --- the in-process backend ------------------------------------------------------------------------

def test_memory_backend_evicts_the_least_recently_used():
    b = MemoryBackend(max_entries=2)
    b.set_now("a", b"1", 60)
    b.set_now("b", b"2", 60)
    assert b.get_now("a") == b"1"  # a is now the most recently used
    b.set_now("c", b"3", 60)
    assert (b.get_now("a"), b.get_now("b"), b.get_now("c")) == (b"1", None, b"3")
    assert b.evictions == 1 and len(b) == 2


def test_memory_backend_is_bounded_in_bytes():
    b = MemoryBackend(max_entries=1000, max_bytes=3 * (1 + 1000 + 200))
    for i in range(5):
        b.set_now(str(i), b"x" * 1000, 60)
    assert len(b) == 3 and b.bytes <= b.max_bytes
    assert b.get_now("0") is None and b.get_now("4") is not None
    b.set_now("huge", b"x" * 10_000, 60)  # larger than the whole cache: not kept, nothing evicted for it
    assert b.get_now("huge") is None and len(b) == 3


def test_memory_backend_expires_entries():
    clock = Clock()
    b = MemoryBackend(clock=clock)
    b.set_now("k", b"v", 10)
    clock.t += 9.9
    assert b.get_now("k") == b"v"
    clock.t += 0.2
    assert b.get_now("k") is None and len(b) == 0 and b.bytes == 0


# --- Cache.through: hits, ages, coalescing ------------------------------------------------------------

def test_a_hit_says_how_old_it_is():
    clock = Clock()
    cache = Cache(MemoryBackend(clock=clock), clock=clock)
    calls = []

    async def load():
        calls.append(1)
        return {"n": len(calls)}

    first = asyncio.run(cache.through("k", 60, load))
    clock.t += 12.5
    second = asyncio.run(cache.through("k", 60, load))
    assert (first.value, first.cached, first.age_s) == ({"n": 1}, False, None)
    assert (second.value, second.cached, second.age_s) == ({"n": 1}, True, 12.5)
    clock.t += 50
    third = asyncio.run(cache.through("k", 60, load))
    assert (third.value, third.cached) == ({"n": 2}, False)  # expired: loaded again


def test_concurrent_identical_lookups_share_one_load():
    cache = Cache(MemoryBackend())
    calls = []

    async def load():
        calls.append(1)
        await asyncio.sleep(0.2)
        return ["result"]

    async def go():
        return await asyncio.gather(*(cache.through("k", 60, load) for _ in range(8)))

    results = asyncio.run(go())
    assert len(calls) == 1
    assert all(r.value == ["result"] for r in results)
    assert sorted(r.cached for r in results) == [False] + [True] * 7
    assert cache.counts["shared"] == 7


def test_lookups_from_other_threads_and_loops_share_the_load_too():
    cache = Cache(MemoryBackend())
    calls = []
    started = threading.Event()

    async def load():
        calls.append(1)
        started.set()
        await asyncio.sleep(0.3)
        return "v"

    def in_a_thread():
        return asyncio.run(cache.through("k", 60, load))

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        first = pool.submit(in_a_thread)
        started.wait(5)
        rest = [pool.submit(in_a_thread) for _ in range(3)]
        results = [first.result(10)] + [r.result(10) for r in rest]
    assert len(calls) == 1 and {r.value for r in results} == {"v"}


def test_when_the_loading_caller_is_cancelled_a_waiting_one_takes_over():
    cache = Cache(MemoryBackend())
    calls = []

    async def load():
        calls.append(1)
        await asyncio.sleep(0.3)
        return "v"

    async def go():
        leader = asyncio.ensure_future(cache.through("k", 60, load))
        await asyncio.sleep(0.05)
        follower = asyncio.ensure_future(cache.through("k", 60, load))
        await asyncio.sleep(0.05)
        leader.cancel()  # its client went away
        return await follower

    result = asyncio.run(go())
    assert result.value == "v" and len(calls) == 2


def test_failures_are_shared_but_not_kept():
    cache = Cache(MemoryBackend())
    calls = []

    async def boom():
        calls.append(1)
        await asyncio.sleep(0.1)
        raise RuntimeError("upstream down")

    async def go():
        return await asyncio.gather(*(cache.through("k", 60, boom) for _ in range(3)), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(go())) and len(calls) == 1
    asyncio.run(go())
    assert len(calls) == 2  # nothing was stored

    async def bad_page():
        calls.append(1)
        return {"ok": False}

    for _ in range(2):
        asyncio.run(cache.through("p", 60, bad_page, keep=lambda v: v["ok"]))
    assert len(calls) == 4


def test_bypass_loads_afresh_and_stores_what_it_got():
    cache = Cache(MemoryBackend())
    n = iter(range(100))

    async def load():
        return next(n)

    assert asyncio.run(cache.through("k", 60, load)).value == 0
    fresh = asyncio.run(cache.through("k", 60, load, bypass=True))
    assert (fresh.value, fresh.cached) == (1, False)
    assert asyncio.run(cache.through("k", 60, load)).value == 1


def test_no_backend_means_no_cache_at_all():
    cache = Cache(None)
    n = iter(range(100))

    async def load():
        return next(n)

    assert [asyncio.run(cache.through("k", 60, load)).value for _ in range(3)] == [0, 1, 2]
    assert cache.status() == {"backend": "off"}


# --- settings --------------------------------------------------------------------------------------------

def test_settings_from_the_environment_and_the_config(monkeypatch):
    monkeypatch.delenv("GROUNDING_REDIS_URL", raising=False)
    grounding.set_config({})
    s = cache_settings()
    assert (s.backend, s.search_ttl_s, s.page_ttl_s) == ("memory", 300.0, 600.0)
    monkeypatch.setenv("GROUNDING_CACHE", "off")
    assert cache_settings().backend == "off"
    monkeypatch.setenv("GROUNDING_CACHE", "memory")
    monkeypatch.setenv("GROUNDING_CACHE_SEARCH_TTL", "30")
    monkeypatch.setenv("GROUNDING_CACHE_MAX_MB", "1")
    s = cache_settings()
    assert (s.backend, s.search_ttl_s, s.max_bytes) == ("memory", 30.0, 1024 * 1024)
    monkeypatch.setenv("GROUNDING_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.delenv("GROUNDING_CACHE")
    assert cache_settings().backend == "redis"  # a configured Redis is shared by default
    try:
        grounding.set_config({"cache": {"backend": "memory", "page_ttl_s": 5}})
        s = cache_settings()
        assert (s.backend, s.page_ttl_s) == ("memory", 5)
        with pytest.raises(grounding.InvalidRequestError):
            grounding.set_config({"cache": {"backend": "disk"}})
    finally:
        grounding.set_config({})


# --- end to end: what the fakes see ---------------------------------------------------------------------

def ask(fake_llm, engine="tavily", **web_search):
    return grounding.completion(model="openai/fake-searcher", api_base=f"{fake_llm.url}/v1", api_key="sk-test",
                                messages=[{"role": "user", "content": QUESTION}],
                                web_search={"engine": engine, **web_search})


def page_requests(fake_web):
    return [r.path for r in fake_web.requests]


def test_a_repeated_request_makes_no_search_and_no_page_request(fake_llm, fake_search, fake_web):
    first = ask(fake_llm)
    assert fake_search.queries("tavily") == [QUESTION]
    fetched = page_requests(fake_web)
    assert len(fetched) == 3
    second = ask(fake_llm)
    assert fake_search.queries("tavily") == [QUESTION]  # no second search
    assert page_requests(fake_web) == fetched  # no page fetched again
    assert second.choices[0].message.content == first.choices[0].message.content
    assert [a.url_citation.url for a in second.choices[0].message.annotations] == \
        [a.url_citation.url for a in first.choices[0].message.annotations]

    s1, s2 = first.metadata.searches[0], second.metadata.searches[0]
    assert (s1.cached, s1.cache_age_s) == (False, None)
    assert s2.cached and s2.cache_age_s is not None and s2.cache_age_s >= 0 and s2.results == 3
    assert [s.cached for s in first.metadata.sources] == [False] * 3
    assert all(s.cached and s.cache_age_s >= 0 and s.status == "fetched" for s in second.metadata.sources)
    # the search fee is charged once: the cached search is free
    assert first.metadata.cost_usd == pytest.approx(search_cost("tavily", 1, max_results=3))
    assert not second.metadata.cost_usd


def test_concurrent_identical_requests_make_one_search_and_one_fetch_per_page(fake_llm, fake_search, fake_web):
    fake_search.engines["tavily"].latency_ms = 300  # all of them are in flight at once
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda _: ask(fake_llm), range(5)))
    assert fake_search.queries("tavily") == [QUESTION]
    assert sorted(page_requests(fake_web)) == sorted(set(page_requests(fake_web))) and len(page_requests(fake_web)) == 3
    assert sum(not r.metadata.searches[0].cached for r in results) == 1
    assert all(len([s for s in r.metadata.sources if s.status == "fetched"]) == 3 for r in results)


def test_expired_entries_are_fetched_again(fake_llm, fake_search, fake_web):
    wall, mono = Clock(1_000_000.0), Clock()
    set_cache(Cache(MemoryBackend(clock=mono), search_ttl_s=60, page_ttl_s=600, clock=wall))
    ask(fake_llm)
    wall.t += 61
    mono.t += 61  # searches expired, pages not
    again = ask(fake_llm)
    assert fake_search.queries("tavily") == [QUESTION, QUESTION]
    assert len(page_requests(fake_web)) == 3
    assert not again.metadata.searches[0].cached
    assert all(s.cached and s.cache_age_s == pytest.approx(61) for s in again.metadata.sources)
    wall.t += 600
    mono.t += 600
    ask(fake_llm)
    assert len(page_requests(fake_web)) == 6


def test_cache_false_searches_and_fetches_afresh(fake_llm, fake_search, fake_web):
    ask(fake_llm)
    fresh = ask(fake_llm, cache=False)
    assert fake_search.queries("tavily") == [QUESTION, QUESTION]
    assert len(page_requests(fake_web)) == 6
    assert not fresh.metadata.searches[0].cached and not any(s.cached for s in fresh.metadata.sources)
    assert fresh.metadata.cost_usd == pytest.approx(search_cost("tavily", 1, max_results=3))
    with pytest.raises(grounding.InvalidRequestError, match="web_search.cache"):
        ask(fake_llm, cache="sometimes")


def test_failed_pages_are_not_kept(fake_llm, fake_web):
    from tests.test_loop import ListEngine
    from providers.search import register_engine

    register_engine("cache-list", ListEngine("cache-list", [f"{fake_web.url}/status/503", f"{fake_web.url}/article"]))
    first = ask(fake_llm, engine="cache-list", max_results=2)
    second = ask(fake_llm, engine="cache-list", max_results=2)
    assert [s.status for s in first.metadata.sources] == ["failed", "fetched"]
    assert [(s.status, s.cached) for s in second.metadata.sources] == [("failed", False), ("fetched", True)]
    assert page_requests(fake_web).count("/status/503") == 4  # tried (and retried once) each time
    assert page_requests(fake_web).count("/article") == 1


def test_the_cache_off_changes_nothing_else(fake_llm, fake_search, fake_web, monkeypatch):
    monkeypatch.setenv("GROUNDING_CACHE", "off")
    set_cache(None)
    ask(fake_llm)
    ask(fake_llm)
    assert fake_search.queries("tavily") == [QUESTION, QUESTION] and len(page_requests(fake_web)) == 6


# --- Redis -------------------------------------------------------------------------------------------------

def test_two_caches_share_one_redis(redis_url):
    one, two = Cache(RedisBackend(redis_url)), Cache(RedisBackend(redis_url))
    calls = []

    async def load():
        calls.append(1)
        return {"text": "é" * 2000}

    try:
        assert not asyncio.run(one.through("page:x", 60, load)).cached
        hit = asyncio.run(two.through("page:x", 60, load))
        assert hit.cached and hit.value == {"text": "é" * 2000} and len(calls) == 1
        assert two.status()["backend"] == "redis" and "degraded" not in two.status()
        two.clear()
        assert not asyncio.run(one.through("page:x", 60, load)).cached
    finally:
        one.close(), two.close()


def test_redis_expires_entries_by_their_ttl(redis_url):
    cache = Cache(RedisBackend(redis_url))
    n = iter(range(10))

    async def load():
        return next(n)

    try:
        asyncio.run(cache.through("k", 0.3, load))
        assert asyncio.run(cache.through("k", 0.3, load)).value == 0
        time.sleep(0.5)
        assert asyncio.run(cache.through("k", 0.3, load)).value == 1
    finally:
        cache.close()


def test_a_redis_that_goes_away_degrades_to_the_process_cache_and_comes_back(caplog):
    require_redis_server()
    server = RedisServer().start()
    port = server.port
    backend = RedisBackend(server.url, retry_s=0.5)
    cache = Cache(backend)
    n = iter(range(100))

    async def load():
        return next(n)

    try:
        caplog.set_level(logging.INFO, logger="grounding.cache")
        assert asyncio.run(cache.through("a", 60, load)).value == 0
        server.stop()  # Redis killed mid-run
        got = [asyncio.run(cache.through("b", 60, load)) for _ in range(3)]
        assert [g.value for g in got] == [1, 1, 1] and [g.cached for g in got] == [False, True, True]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
        assert "in-process" in warnings[0].getMessage() and backend.status()["degraded"]
        server = RedisServer(port=port).start()  # back, on the same address
        time.sleep(0.6)
        assert asyncio.run(cache.through("c", 60, load)).value == 2
        assert backend.degraded is None and any("answers again" in r.getMessage() for r in caplog.records)
    finally:
        cache.close()
        server.stop()


def test_a_request_succeeds_when_redis_is_down(fake_llm, fake_search, fake_web, caplog):
    set_cache(Cache(RedisBackend("redis://127.0.0.1:1/0")))
    caplog.set_level(logging.WARNING, logger="grounding.cache")
    first, second = ask(fake_llm), ask(fake_llm)
    assert len([s for s in first.metadata.sources if s.status == "fetched"]) == 3
    assert second.metadata.searches[0].cached  # the in-process fallback still caches
    assert len([r for r in caplog.records if "unavailable" in r.getMessage()]) == 1
    assert get_cache().status()["degraded"]


def test_search_options_are_part_of_the_key(fake_llm, fake_search, fake_web):
    scoped = {"excluded_domains": ["example.org"]}
    first = ask(fake_llm, **scoped)
    again = ask(fake_llm, **scoped)
    assert not first.metadata.searches[0].cached and again.metadata.searches[0].cached
    assert fake_search.queries("tavily") == [QUESTION]
    unscoped = ask(fake_llm)  # the same query without the scope is another search
    assert not unscoped.metadata.searches[0].cached
    assert fake_search.queries("tavily") == [QUESTION, QUESTION]
    assert len(page_requests(fake_web)) == 3  # but the same pages: fetched once
