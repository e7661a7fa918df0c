"""Several replicas behind a load balancer behave as one.

Two real ``grounding serve`` processes share one real redis-server (the
config's ``redis_url``): a router created through one is used by the other on
its next request, the same user gets the same variant from either, the
latency one replica observes orders providers on the other, a search or page
one replica fetched is a cache hit on the other, and a key's concurrency limit
counts the requests of both. When Redis is killed mid-run, both keep
answering (each on its own), with one warning in each log.
"""
from __future__ import annotations

import time

import httpx
import pytest
import yaml

from tests.fakes.live_server import ServeProcess
from tests.fakes.llm import FakeLLM
from tests.fakes.redis_server import RedisServer

ADMIN = "admin-key-for-replicas"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}
LIMITED = "limited-key-for-replicas"  # at most one request in flight, across the replicas
QUESTION = "nutrition trends for fall"
GROUNDED = {"model": "alpha/fake-searcher", "messages": [{"role": "user", "content": QUESTION}],
            "web_search": {"engine": "searxng"}}
ROUTER = {
    "name": "ab",
    "routes": [],
    "default_route": {"id": "all", "variants": [
        {"id": "left", "weight": 50, "model": "alpha/fake-direct"},
        {"id": "right", "weight": 50, "model": "beta/fake-direct"},
    ]},
}


def replica_config(folder, redis_url, alpha, beta):
    config = {
        "providers": {"alpha": {"litellm_provider": "openai", "api_base": f"{alpha.url}/v1", "api_key": "a"},
                      "beta": {"litellm_provider": "openai", "api_base": f"{beta.url}/v1", "api_key": "b"}},
        # fake-direct serves the router test; fake-nocite only the latency test, so the
        # latency observations the router test leaves in Redis cannot tip its comparison.
        "models": [{"id": "fake-direct", "provider": "alpha"}, {"id": "fake-direct", "provider": "beta"},
                   {"id": "fake-nocite", "provider": "alpha"}, {"id": "fake-nocite", "provider": "beta"}],
        "redis_url": redis_url,
        "server": {"api_keys": [{"key": LIMITED, "name": "limited", "max_concurrent": 1}]},
    }
    path = folder / "grounding.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def replica_env(path, search):
    return {"GROUNDING_ADMIN_KEYS": ADMIN, "GROUNDING_API_KEYS": "", "GROUNDING_CACHE_DIR": str(path.parent / "cache"),
            "GROUNDING_ALLOW_PRIVATE_NETWORKS": "1", "GROUNDING_EXTRACT_WORKERS": "1", **search.env()}


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, redis_server, _fake_search_server):
    redis_server.flush()
    with FakeLLM() as alpha, FakeLLM() as beta:
        path = replica_config(tmp_path_factory.mktemp("replicas"), redis_server.url, alpha, beta)
        env = replica_env(path, _fake_search_server)
        with ServeProcess(path, env=env) as one, ServeProcess(path, env=env) as two:
            yield one, two, alpha, beta


def chat(replica, **body):
    body.setdefault("messages", [{"role": "user", "content": "hello"}])
    r = httpx.post(f"{replica.url}/v1/chat/completions", json=body, headers=HEADERS, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_router_created_on_one_replica_serves_on_the_other(replicas):
    one, two, _, _ = replicas
    r = httpx.put(f"{one.url}/v1/routers/ab", json=ROUTER, headers=HEADERS, timeout=30)
    assert r.status_code in (200, 201), r.text
    listed = httpx.get(f"{two.url}/v1/routers", headers=HEADERS, timeout=30).json()
    assert "ab" in [item["name"] for item in listed["data"]]

    # Sticky variants: the same user, the same variant, whichever replica answers.
    users = [f"user-{i}" for i in range(12)]
    on_one = [chat(one, model="router/ab", user=u)["metadata"]["variant_id"] for u in users]
    on_two = [chat(two, model="router/ab", user=u)["metadata"]["variant_id"] for u in users]
    assert on_one == on_two and set(on_one) == {"left", "right"}

    # A change applies to the next request on every replica.
    changed = {**ROUTER, "default_route": {"id": "all", "variants": [
        {"id": "right", "weight": 100, "model": "beta/fake-direct"}]}}
    assert httpx.put(f"{two.url}/v1/routers/ab", json=changed, headers=HEADERS, timeout=30).status_code == 200
    assert {chat(one, model="router/ab", user=u)["metadata"]["variant_id"] for u in users} == {"right"}

    assert httpx.delete(f"{one.url}/v1/routers/ab", headers=HEADERS, timeout=30).status_code == 200
    r = httpx.post(f"{two.url}/v1/chat/completions", json={"model": "router/ab", "messages": [
        {"role": "user", "content": "hi"}]}, headers=HEADERS, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["message"]


def test_latency_observed_on_one_replica_orders_providers_on_the_other(replicas):
    one, two, alpha, beta = replicas
    alpha.latency_ms = 1500  # far slower than any scheduling delay on a loaded machine
    try:
        for _ in range(2):  # replica one observes: alpha slow, beta fast
            chat(one, model="alpha/fake-nocite")
            chat(one, model="beta/fake-nocite")
        time.sleep(1.2)  # replicas cache what they read from Redis for up to 1 s
        alpha.reset(), beta.reset()
        answer = chat(two, model="fake-nocite")  # replica two has served neither itself
        assert answer["metadata"]["attempts"][0]["provider"] == "beta"
        assert len(beta.chat_requests()) == 1 and alpha.chat_requests() == []
    finally:
        alpha.latency_ms = 0


def test_a_search_or_page_one_replica_fetched_is_a_cache_hit_on_the_other(replicas, fake_search, fake_web):
    one, two, _, _ = replicas
    first = chat(one, **GROUNDED)
    assert fake_search.queries("searxng") == [QUESTION] and len(fake_web.requests) == 3
    second = chat(two, **GROUNDED)
    assert fake_search.queries("searxng") == [QUESTION] and len(fake_web.requests) == 3  # nothing fetched again
    assert not first["metadata"]["searches"][0]["cached"]
    assert second["metadata"]["searches"][0]["cached"]
    assert all(s["cached"] for s in second["metadata"]["sources"])
    assert second["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"]
    health = httpx.get(f"{two.url}/health", timeout=30).json()
    assert health["cache"]["backend"] == "redis" and health["cache"]["hits"] >= 4


def test_a_keys_concurrency_limit_counts_both_replicas(replicas):
    import concurrent.futures

    one, two, alpha, _ = replicas
    limited = {"Authorization": f"Bearer {LIMITED}"}
    body = {"model": "alpha/fake-direct", "messages": [{"role": "user", "content": "hello"}]}
    alpha.latency_ms = 2000
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(httpx.post, f"{one.url}/v1/chat/completions", json=body, headers=limited, timeout=60)
            time.sleep(1.0)  # in flight on replica one
            refused = httpx.post(f"{two.url}/v1/chat/completions", json=body, headers=limited, timeout=60)
            assert refused.status_code == 429 and refused.headers["retry-after"]
            assert refused.json()["error"]["code"] == "concurrency_limit_exceeded"
            assert slow.result(timeout=60).status_code == 200
    finally:
        alpha.latency_ms = 0
    assert httpx.post(f"{two.url}/v1/chat/completions", json=body, headers=limited, timeout=60).status_code == 200


def test_replicas_keep_answering_when_redis_is_killed(tmp_path, _fake_search_server, fake_search, fake_web):
    from tests.fakes.redis_server import require_redis_server

    require_redis_server()
    redis = RedisServer().start()
    try:
        with FakeLLM() as alpha, FakeLLM() as beta:
            path = replica_config(tmp_path, redis.url, alpha, beta)
            env = replica_env(path, _fake_search_server)
            with ServeProcess(path, env=env) as one, ServeProcess(path, env=env) as two:
                chat(one, **GROUNDED)
                redis.stop()  # killed mid-run
                for replica in (one, two, one, two):
                    answer = chat(replica, **GROUNDED)
                    assert len([s for s in answer["metadata"]["sources"] if s["status"] == "fetched"]) == 3
                assert chat(two, **GROUNDED)["metadata"]["searches"][0]["cached"]  # its own cache meanwhile
                health = httpx.get(f"{one.url}/health", timeout=30).json()
                assert health["status"] == "degraded" and health["cache"]["degraded"]
            for replica in (one, two):
                warnings = [line for line in replica.output.splitlines() if "cache: redis at" in line]
                assert len(warnings) == 1 and "unavailable" in warnings[0], replica.output[-3000:]
                assert "Traceback" not in replica.output
    finally:
        redis.stop()
