"""Several replicas behind a load balancer behave as one.

Two real ``grounding serve`` processes share one real redis-server (the
config's ``redis_url``): a router created through one is used by the other on
its next request, the same user gets the same variant from either, and the
latency one replica observes orders providers on the other.
"""
from __future__ import annotations

import time

import httpx
import pytest
import yaml

from tests.fakes.live_server import ServeProcess
from tests.fakes.llm import FakeLLM

ADMIN = "admin-key-for-replicas"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}
ROUTER = {
    "name": "ab",
    "routes": [],
    "default_route": {"id": "all", "variants": [
        {"id": "left", "weight": 50, "model": "alpha/fake-direct"},
        {"id": "right", "weight": 50, "model": "beta/fake-direct"},
    ]},
}


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, redis_server):
    redis_server.flush()
    redis_url = redis_server.url
    with FakeLLM() as alpha, FakeLLM() as beta:
        config = {
            "providers": {"alpha": {"litellm_provider": "openai", "api_base": f"{alpha.url}/v1", "api_key": "a"},
                          "beta": {"litellm_provider": "openai", "api_base": f"{beta.url}/v1", "api_key": "b"}},
            # fake-direct serves the router test; fake-nocite only the latency test, so the
            # latency observations the router test leaves in Redis cannot tip its comparison.
            "models": [{"id": "fake-direct", "provider": "alpha"}, {"id": "fake-direct", "provider": "beta"},
                       {"id": "fake-nocite", "provider": "alpha"}, {"id": "fake-nocite", "provider": "beta"}],
            "redis_url": redis_url,
        }
        path = tmp_path_factory.mktemp("replicas") / "grounding.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        env = {"GROUNDING_ADMIN_KEYS": ADMIN, "GROUNDING_API_KEYS": "",
               "GROUNDING_CACHE_DIR": str(path.parent / "cache")}
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
            chat(one, model="alpha/fake-direct")
            chat(one, model="beta/fake-direct")
        time.sleep(1.2)  # replicas cache what they read from Redis for up to 1 s
        alpha.reset(), beta.reset()
        answer = chat(two, model="fake-direct")  # replica two has served neither itself
        assert answer["metadata"]["attempts"][0]["provider"] == "beta"
        assert len(beta.chat_requests()) == 1 and alpha.chat_requests() == []
    finally:
        alpha.latency_ms = 0
