"""Routing end to end: fallbacks, provider order, auto, routers, reasoning, metadata.

Two fake providers on loopback, ``alpha`` (OpenAI wire) and ``beta``
(Anthropic wire), serve the same fake models, so every fallback crosses a real
litellm translation. The config file is written to disk and loaded the way a
user's is (``grounding.set_config(path)``).
"""
from __future__ import annotations

import json

import pytest
import yaml

import grounding
from grounding.config import set_config
from tests.fakes.llm import FakeLLM

QUESTION = [{"role": "user", "content": "nutrition trends for fall"}]


@pytest.fixture(scope="module")
def _servers():
    with FakeLLM() as alpha, FakeLLM() as beta:
        yield alpha, beta


@pytest.fixture
def providers(_servers):
    for server in _servers:
        server.reset()
    return _servers


def write_config(tmp_path, alpha, beta, **extra):
    config = {
        "providers": {
            "alpha": {"litellm_provider": "openai", "api_base": f"{alpha.url}/v1", "api_key": "key-a"},
            "beta": {"litellm_provider": "anthropic", "api_base": beta.url, "api_key_env": "BETA_TEST_KEY"},
        },
        "models": [
            {"id": "fake-searcher", "provider": "alpha", "input_price": 2.0, "output_price": 8.0,
             "capabilities": {"tools": True}, "scores": {"intelligence": 60, "coding": 40}},
            {"id": "fake-searcher", "provider": "beta", "input_price": 3.0, "output_price": 15.0,
             "capabilities": {"tools": True}, "scores": {"intelligence": 70, "coding": 40}},
            {"id": "fake-direct", "provider": "alpha", "input_price": 0.1, "output_price": 0.4,
             "capabilities": {"tools": False}, "scores": {"intelligence": 30}},
            {"id": "fake-multi", "provider": "beta", "input_price": 0.5, "output_price": 2.0,
             "capabilities": {"tools": True, "reasoning": True}, "scores": {"intelligence": 50, "coding": 90}},
        ],
        **extra,
    }
    path = tmp_path / "grounding.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path, providers, monkeypatch):
    monkeypatch.setenv("BETA_TEST_KEY", "key-b")
    alpha, beta = providers

    def use(**extra):
        return set_config(write_config(tmp_path, alpha, beta, **extra))

    use()
    yield use
    set_config({})


def ask(**kw):
    kw.setdefault("messages", QUESTION)
    return grounding.completion(**kw)


def attempts(result):
    return [(a.model, a.success, a.status) for a in result.metadata.attempts]


# -- fallbacks -----------------------------------------------------------------

@pytest.mark.parametrize("status", [429, 500, 503])
def test_retryable_failure_moves_to_the_next_model(config, providers, status):
    alpha, beta = providers
    alpha.error_status = status
    result = ask(model="alpha/fake-searcher", models=["beta/fake-searcher"])
    assert result.choices[0].message.content
    assert attempts(result) == [("alpha/fake-searcher", False, status), ("beta/fake-searcher", True, None)]
    assert result.model == "beta/fake-searcher" and result.metadata.model == "beta/fake-searcher"
    # max_retries=0 for all but the last target: one request, not three.
    assert len(alpha.chat_requests()) == 1
    assert len(beta.chat_requests()) == 1


@pytest.mark.parametrize("status,error", [(400, grounding.InvalidRequestError),
                                          (401, grounding.AuthenticationError)])
def test_non_retryable_failure_is_returned_not_retried(config, providers, status, error):
    alpha, beta = providers
    alpha.error_status = status
    with pytest.raises(error) as info:
        ask(model="alpha/fake-searcher", models=["beta/fake-searcher"])
    assert beta.chat_requests() == []
    assert info.value.metadata["attempts"][0]["success"] is False


def test_every_target_failing_raises_the_last_error_with_all_attempts(config, providers):
    alpha, beta = providers
    alpha.error_status, beta.error_status = 500, 429
    with pytest.raises(grounding.RateLimitError) as info:
        ask(model="alpha/fake-searcher", models=["beta/fake-searcher"])
    tried = [(a["model"], a["status"]) for a in info.value.metadata["attempts"]]
    assert tried == [("alpha/fake-searcher", 500), ("beta/fake-searcher", 429)]


def test_ttft_timeout_abandons_a_silent_stream(config, providers):
    alpha, beta = providers
    alpha.latency_ms = 20_000  # no first byte for 20 s: far beyond any scheduling delay
    chunks = list(ask(model="alpha/fake-searcher", models=["beta/fake-searcher"], stream=True,
                      fallback={"ttft_timeout": "300ms"}))
    meta = chunks[-1].metadata
    assert [(a.model, a.success) for a in meta.attempts] == [("alpha/fake-searcher", False),
                                                             ("beta/fake-searcher", True)]
    assert "no first token within 300 ms" in meta.attempts[0].error
    # abandoned, not waited out: the attempt ended long before alpha could have answered
    assert meta.attempts[0].duration_ms < alpha.latency_ms
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.mark.parametrize("value", ["100ms", "0.2s", "fast", -1])
def test_ttft_timeout_below_300ms_or_malformed_is_rejected(config, value):
    with pytest.raises(grounding.InvalidRequestError, match="ttft_timeout"):
        ask(model="alpha/fake-searcher", fallback={"ttft_timeout": value})


def test_tool_loop_falls_back_and_keeps_citations(config, providers, fake_search, fake_web):
    alpha, beta = providers
    alpha.error_status = 500
    result = ask(model="alpha/fake-searcher", models=["beta/fake-searcher"], web_search={"engine": "searxng"})
    msg = result.choices[0].message
    assert msg.annotations, "the fallback model's answer is cited"
    assert result.metadata.steps == 1
    assert all(t.model == "beta/fake-searcher" for t in result.metadata.turns)


# -- providers for a plain model id ------------------------------------------

def test_provider_order_decides_who_serves_a_model_id(config, providers):
    alpha, beta = providers
    result = ask(model="fake-searcher", provider={"order": ["beta", "alpha"]})
    assert result.metadata.attempts[0].provider == "beta"
    assert len(beta.chat_requests()) == 1 and alpha.chat_requests() == []


def test_observed_latency_decides_without_an_order(config, providers):
    alpha, beta = providers
    alpha.latency_ms = 400
    ask(model="alpha/fake-searcher")  # observed: alpha slow
    ask(model="beta/fake-searcher")   # observed: beta fast
    alpha.reset(), beta.reset()
    result = ask(model="fake-searcher")
    assert result.metadata.attempts[0].provider == "beta"


def test_allow_fallbacks_false_stops_at_the_ordered_provider(config, providers):
    alpha, beta = providers
    alpha.error_status = 503
    with pytest.raises(grounding.UpstreamError):
        ask(model="fake-searcher", provider={"order": ["alpha"], "allow_fallbacks": False})
    assert beta.chat_requests() == []


def test_ignore_skips_a_provider(config, providers):
    alpha, beta = providers
    result = ask(model="fake-searcher", ignore=["alpha"])
    assert [a.provider for a in result.metadata.attempts] == ["beta"]
    with pytest.raises(grounding.InvalidRequestError, match="ignore"):
        ask(model="fake-searcher", ignore=["alpha", "beta"])


# -- auto --------------------------------------------------------------------

def test_auto_picks_by_sort_and_says_why(config, providers):
    result = ask(model="auto", sort="price")
    auto = result.metadata.auto
    assert auto.winner == "alpha/fake-direct"  # the cheapest
    assert auto.why and len(auto.candidates) == 4
    result = ask(model="auto", sort=["coding", "price"])
    assert result.metadata.auto.winner == "beta/fake-multi"


def test_auto_skips_models_lacking_a_needed_capability(config, providers, fake_search, fake_web):
    result = ask(model="auto", sort="price", web_search={"engine": "searxng"})
    auto = result.metadata.auto
    assert auto.winner != "alpha/fake-direct"  # it cannot call tools
    excluded = {c["model"]: c for c in auto.candidates}["alpha/fake-direct"]
    assert excluded["eligible"] is False and "tools" in excluded["reason"]
    assert result.choices[0].message.annotations


def test_auto_pool_from_models_and_ignore(config, providers):
    result = ask(model="auto", models=["fake-searcher"], sort="price", ignore=["alpha/fake-searcher"])
    assert result.metadata.auto.winner == "beta/fake-searcher"


def test_auto_with_no_eligible_model_is_a_clear_error(config):
    with pytest.raises(grounding.InvalidRequestError):
        ask(model="auto", models=["fake-direct"], web_search={"engine": "searxng"})


def test_unknown_sort_key_is_rejected(config):
    with pytest.raises(grounding.InvalidRequestError, match="sort"):
        ask(model="auto", sort="cheapness")


# -- reasoning -----------------------------------------------------------------

def test_reasoning_effort_goes_only_to_models_that_take_it(config, providers):
    alpha, beta = providers
    result = ask(model="alpha/fake-searcher", reasoning_effort="high")
    assert "reasoning_effort" not in alpha.chat_requests()[-1].json
    assert result.metadata.reasoning.applied is False and "reasoning" in " ".join(result.metadata.warnings)

    result = ask(model="beta/fake-multi", reasoning_effort="low", extra_body={"reasoning": {"effort": "high"}})
    assert result.metadata.reasoning.effort == "high" and result.metadata.reasoning.applied is True
    body = beta.chat_requests()[-1].json
    assert "thinking" in body or "output_config" in body or "reasoning_effort" in body


# -- routers -------------------------------------------------------------------

ROUTER = {
    "name": "support",
    "defaults": {"messages": [{"role": "system", "content": "You help {{metadata.team}} customers."}],
                 "generation": {"temperature": 0.2}},
    "routes": [
        {"id": "pro", "condition": 'has(metadata.tier) && metadata.tier == "pro"',
         "variants": [{"id": "a", "weight": 50, "model": "alpha/fake-searcher"},
                      {"id": "b", "weight": 50, "model": "beta/fake-searcher",
                       "generation": {"temperature": 0.7}}]},
    ],
    "default_route": {"id": "basic", "variants": [{"id": "only", "weight": 100, "model": "alpha/fake-direct"}]},
}


def test_router_route_variant_and_templates(config, providers):
    alpha, beta = providers
    config(routers=[ROUTER])
    result = ask(model="router/support", metadata={"tier": "pro", "team": "Acme"}, user="user-17")
    meta = result.metadata
    assert (meta.router, meta.route_id) == ("support", "pro") and meta.variant_id in {"a", "b"}
    server = alpha if meta.variant_id == "a" else beta
    body = server.chat_requests()[-1].json
    text = json.dumps(body)
    assert "You help Acme customers." in text
    assert body["temperature"] == (0.2 if meta.variant_id == "a" else 0.7)
    # The same user gets the same variant every time; the request's own fields win.
    again = ask(model="inworld/support", metadata={"tier": "pro", "team": "Acme"}, user="user-17", temperature=1.0)
    assert again.metadata.variant_id == meta.variant_id
    assert server.chat_requests()[-1].json["temperature"] == 1.0


def test_router_default_route_and_unknown_router(config, providers):
    config(routers=[ROUTER])
    result = ask(model="router/support", metadata={"tier": "free", "team": "Acme"})
    assert (result.metadata.route_id, result.metadata.variant_id) == ("basic", "only")
    # The router's template says {{metadata.team}}: a request without it is refused, naming it.
    with pytest.raises(grounding.InvalidRequestError, match=r"\{\{metadata.team\}\}") as err:
        ask(model="router/support", metadata={"tier": "free"})
    assert err.value.param == "metadata.team"
    with pytest.raises(grounding.NotFoundError, match="nope"):
        ask(model="router/nope")


def test_variants_spread_over_users_by_weight(config, providers):
    config(routers=[ROUTER])
    seen = {ask(model="router/support", metadata={"tier": "pro", "team": "t"}, user=f"u{i}").metadata.variant_id
            for i in range(12)}
    assert seen == {"a", "b"}


def _closed_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_error_moves_on(config, providers):
    alpha, beta = providers
    port = _closed_port()  # nothing listens there any more
    config(providers={"down": {"litellm_provider": "openai", "api_base": f"http://127.0.0.1:{port}/v1",
                               "api_key": "k"},
                      "beta": {"litellm_provider": "anthropic", "api_base": beta.url, "api_key": "key-b"}},
           models=[{"id": "fake-searcher", "provider": "down"}, {"id": "fake-searcher", "provider": "beta"}])
    result = ask(model="down/fake-searcher", models=["beta/fake-searcher"])
    first, second = result.metadata.attempts
    assert (first.model, first.success) == ("down/fake-searcher", False)
    assert "connect" in first.error.lower()
    assert (second.model, second.success) == ("beta/fake-searcher", True)


def test_request_timeout_moves_on(config, providers):
    alpha, beta = providers
    alpha.latency_ms = 3000
    result = ask(model="alpha/fake-searcher", models=["beta/fake-searcher"], timeout=1)
    first = result.metadata.attempts[0]
    assert (first.success, first.status) == (False, 504)
    assert "no answer within 1 s" in first.error  # the deadline, enforced by the library
    assert result.metadata.attempts[1].success


def test_streamed_chunks_name_the_model_that_answered(config, providers):
    alpha, beta = providers
    alpha.error_status = 503
    chunks = list(ask(model="alpha/fake-searcher", models=["beta/fake-searcher"], stream=True))
    assert chunks[-1].model == "beta/fake-searcher"
    assert chunks[-1].metadata.model == "beta/fake-searcher"
