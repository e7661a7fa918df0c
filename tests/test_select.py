"""Choosing deployments: needs, ignore, provider order and model="auto"."""
from __future__ import annotations

from pathlib import Path

import pytest

from grounding.config import load_config
from grounding.errors import InvalidRequestError
from grounding.llm import litellm
from grounding.request import parse_request
from grounding.routing.catalog import Catalog
from grounding.routing.select import DEFAULT_SORT, apply_ignore, check_sort, choose_auto, needs_of, order_providers
from grounding.routing.stats import Stats
from grounding.routing.types import SORT_KEYS, ModelInfo, Needs

USER = [{"role": "user", "content": "hi"}]


def info(provider: str, model: str, **kw) -> ModelInfo:
    kw.setdefault("tools", True)
    return ModelInfo(model=model, provider=provider, litellm_model=f"{provider}/{model}", **kw)


def observed(stats: Stats, deployment: str, ttft_ms: float, *, tps: float | None = None) -> None:
    tokens = int(tps) if tps else None
    stats.record(deployment, ok=True, ttft_ms=ttft_ms, duration_ms=ttft_ms + (1000 if tps else 0),
                 output_tokens=tokens)


# ---------------------------------------------------------------- needs


def test_needs_of_requests() -> None:
    assert needs_of(parse_request({"model": "m", "messages": USER})) == Needs()
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert needs_of(parse_request({"model": "m", "messages": USER, "tools": tools})) == Needs(tools=True)
    assert needs_of(parse_request({"model": "m", "messages": USER, "web_search": {"max_results": 2}})).tools
    image = [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                          {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}]
    assert needs_of(parse_request({"model": "m", "messages": image})) == Needs(vision=True)
    text_parts = [{"role": "user", "content": [{"type": "text", "text": "no image"}]}]
    assert needs_of(parse_request({"model": "m", "messages": text_parts})) == Needs()
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    with_schema = parse_request({"model": "m", "messages": USER, "response_format": schema})
    assert needs_of(with_schema) == Needs(json_schema=True)
    json_object = parse_request({"model": "m", "messages": USER, "response_format": {"type": "json_object"}})
    assert needs_of(json_object) == Needs()
    native = parse_request({"model": "m", "messages": USER, "web_search_options": {"search_context_size": "low"}})
    assert needs_of(native) == Needs(native_search=True)


# ---------------------------------------------------------------- ignore


def test_apply_ignore_matches_providers_deployments_and_models() -> None:
    infos = [info("groq", "gpt-oss-120b"), info("cerebras", "gpt-oss-120b"), info("groq", "llama-3.3-70b-versatile"),
             info("gemini", "gemini-2.5-flash"), info("openai", "gpt-4o")]
    ids = lambda xs: [x.id for x in xs]  # noqa: E731
    kept, dropped = apply_ignore(infos, ["groq"])
    assert ids(dropped) == ["groq/gpt-oss-120b", "groq/llama-3.3-70b-versatile"] and len(kept) == 3
    kept, dropped = apply_ignore(infos, ["groq/llama-3.3-70b-versatile"])
    assert ids(dropped) == ["groq/llama-3.3-70b-versatile"]
    kept, dropped = apply_ignore(infos, ["gpt-oss-120b"])  # a plain id: every provider
    assert ids(dropped) == ["groq/gpt-oss-120b", "cerebras/gpt-oss-120b"]
    kept, dropped = apply_ignore(infos, ["groq/openai/gpt-oss-120b", "google-ai-studio"])  # litellm form; alias
    assert ids(dropped) == ["groq/gpt-oss-120b", "gemini/gemini-2.5-flash"]
    assert apply_ignore(infos, []) == (infos, [])
    assert apply_ignore(infos, ["", "nothing-matches"]) == (infos, [])


# ---------------------------------------------------------------- provider order


def test_order_providers_by_order_then_latency_then_cooldown() -> None:
    stats = Stats()
    deps = [info(p, "gpt-oss-120b") for p in ("groq", "cerebras", "fireworks_ai", "together_ai", "deepinfra")]
    observed(stats, "fireworks_ai/gpt-oss-120b", 300)
    observed(stats, "deepinfra/gpt-oss-120b", 100)
    observed(stats, "cerebras/gpt-oss-120b", 200)
    ids = lambda xs: [x.provider for x in xs]  # noqa: E731
    # by latency; never observed last, in their given order
    assert ids(order_providers(deps, order=None, stats=stats)) == [
        "deepinfra", "cerebras", "fireworks_ai", "groq", "together_ai"]
    # provider.order first, in that order, whatever the latency
    assert ids(order_providers(deps, order=["together_ai", "groq"], stats=stats)) == [
        "together_ai", "groq", "deepinfra", "cerebras", "fireworks_ai"]
    # an alias and a deployment id work in order too
    assert ids(order_providers(deps, order=["together", "fireworks_ai/gpt-oss-120b"], stats=stats))[:2] == [
        "together_ai", "fireworks_ai"]
    for _ in range(3):
        stats.record("deepinfra/gpt-oss-120b", ok=False, ttft_ms=None, duration_ms=5)
        stats.record("together_ai/gpt-oss-120b", ok=False, ttft_ms=None, duration_ms=5)
    # cooling down: last, even when named in order
    assert ids(order_providers(deps, order=["together_ai"], stats=stats)) == [
        "cerebras", "fireworks_ai", "groq", "together_ai", "deepinfra"]
    assert ids(order_providers(deps, order=None, stats=None)) == ids(deps)


# ---------------------------------------------------------------- auto


POOL = [
    info("openai", "gpt-4.1-mini", input_price=0.4, output_price=1.6, intelligence=42, coding=31, math=44,
         vision=True, json_schema=True),
    info("groq", "gpt-oss-120b", input_price=0.15, output_price=0.6, intelligence=61, coding=50, math=93,
         json_schema=True),
    info("cerebras", "gpt-oss-120b", input_price=0.35, output_price=0.75, intelligence=61, coding=50, math=93),
    info("anthropic", "claude-haiku-4-5", input_price=1.0, output_price=5.0, intelligence=55, coding=42, math=84,
         vision=True, json_schema=True),
    info("alpha", "mystery"),  # unknown price and scores
]


def ranked(decision) -> list[str]:
    return [i.id for i in decision.ranked]


def test_sort_by_price_ascending_unknown_last() -> None:
    d = choose_auto(POOL, sort=["price"], ignore=[], needs=Needs(), stats=None)
    assert ranked(d) == ["groq/gpt-oss-120b", "cerebras/gpt-oss-120b", "openai/gpt-4.1-mini",
                         "anthropic/claude-haiku-4-5", "alpha/mystery"]
    assert d.why.startswith("groq/gpt-oss-120b is the cheapest of 5 eligible models at $0.26/M")
    assert d.sort == ["price"]
    row = d.considered[1]
    assert row == {"model": "groq/gpt-oss-120b", "eligible": True, "reason": None, "values": {"price": 0.2625}}


def test_sort_by_scores_descending_with_tie_breaks() -> None:
    d = choose_auto(POOL, sort=["intelligence", "price"], ignore=[], needs=Needs(), stats=None)
    assert ranked(d)[:4] == ["groq/gpt-oss-120b", "cerebras/gpt-oss-120b", "anthropic/claude-haiku-4-5",
                             "openai/gpt-4.1-mini"]
    assert "most intelligent of 5 eligible models with intelligence 61" in d.why
    assert "tie broken by price ($0.26/M)" in d.why
    d = choose_auto(POOL, sort=["math"], ignore=[], needs=Needs(), stats=None)
    assert ranked(d)[:2] == ["cerebras/gpt-oss-120b", "groq/gpt-oss-120b"]  # tied: by id
    assert "first by id" in d.why
    d = choose_auto(POOL, sort="coding", ignore=None, needs=None, stats=None)
    assert ranked(d) == ["cerebras/gpt-oss-120b", "groq/gpt-oss-120b", "anthropic/claude-haiku-4-5",
                         "openai/gpt-4.1-mini", "alpha/mystery"]


def test_sort_by_observed_latency_and_throughput() -> None:
    stats = Stats()
    observed(stats, "openai/gpt-4.1-mini", 400, tps=80)
    observed(stats, "groq/gpt-oss-120b", 150, tps=500)
    observed(stats, "cerebras/gpt-oss-120b", 90, tps=2000)
    d = choose_auto(POOL, sort=["latency"], ignore=[], needs=Needs(), stats=stats)
    assert ranked(d)[:3] == ["cerebras/gpt-oss-120b", "groq/gpt-oss-120b", "openai/gpt-4.1-mini"]
    assert "fastest to first token of 5 eligible models at 90 ms" in d.why
    d = choose_auto(POOL, sort=["throughput", "price"], ignore=[], needs=Needs(), stats=stats)
    assert ranked(d)[:3] == ["cerebras/gpt-oss-120b", "groq/gpt-oss-120b", "openai/gpt-4.1-mini"]
    assert d.considered[2]["values"] == {"throughput": 2000, "price": 0.45}


def test_default_sort() -> None:
    assert check_sort(None) == list(DEFAULT_SORT) == ["intelligence", "price", "latency"]
    d = choose_auto(POOL, sort=[], ignore=[], needs=Needs(), stats=None)
    assert d.sort == list(DEFAULT_SORT)
    assert ranked(d)[0] == "groq/gpt-oss-120b"  # the smartest; its cheaper provider


def test_invalid_sort_keys() -> None:
    with pytest.raises(InvalidRequestError, match="unknown sort criterion 'speed'") as err:
        choose_auto(POOL, sort=["price", "speed"], ignore=[], needs=Needs(), stats=None)
    assert err.value.param == "sort"
    assert check_sort(["price", "price", "latency"]) == ["price", "latency"]
    assert set(SORT_KEYS) == {"price", "latency", "throughput", "intelligence", "math", "coding"}


def test_exclusions_are_explained() -> None:
    pool = POOL + [info("xai", "grok-code-fast-1", available=False, key_env="XAI_API_KEY", input_price=0.01)]
    d = choose_auto(pool, sort=["price"], ignore=["groq", "cerebras/gpt-oss-120b"],
                    needs=Needs(vision=True, json_schema=True), stats=None)
    assert ranked(d) == ["openai/gpt-4.1-mini", "anthropic/claude-haiku-4-5"]
    reasons = {row["model"]: row["reason"] for row in d.considered}
    assert reasons == {
        "openai/gpt-4.1-mini": None,
        "groq/gpt-oss-120b": "ignored (groq)",
        "cerebras/gpt-oss-120b": "ignored",
        "anthropic/claude-haiku-4-5": None,
        "alpha/mystery": "lacks vision, json_schema",
        "xai/grok-code-fast-1": "key missing (XAI_API_KEY)",
    }
    assert [row["eligible"] for row in d.considered] == [True, False, False, True, False, False]
    assert d.why.endswith("; 4 excluded")


def test_nothing_eligible_is_an_error_naming_why() -> None:
    with pytest.raises(InvalidRequestError) as err:
        choose_auto(POOL, sort=["price"], ignore=["openai", "anthropic", "groq/gpt-oss-120b"],
                    needs=Needs(json_schema=True),
                    stats=None)
    message = err.value.message
    assert message.startswith("no model in the pool can serve this request: ")
    assert "openai/gpt-4.1-mini ignored (openai)" in message
    assert "cerebras/gpt-oss-120b lacks json_schema" in message
    assert "alpha/mystery lacks json_schema" in message
    assert "groq/gpt-oss-120b ignored;" in message
    assert "anthropic/claude-haiku-4-5 ignored (anthropic)" in message
    assert err.value.param == "model"
    with pytest.raises(InvalidRequestError) as err:
        choose_auto(POOL[:1], sort=None, ignore=["openai"], needs=None, stats=None)
    assert err.value.param == "ignore"
    with pytest.raises(InvalidRequestError, match="no candidates"):
        choose_auto([], sort=None, ignore=None, needs=None, stats=None)


def test_cooling_down_models_go_last_but_stay_eligible() -> None:
    stats = Stats()
    for _ in range(3):
        stats.record("groq/gpt-oss-120b", ok=False, ttft_ms=None, duration_ms=5)
    d = choose_auto(POOL, sort=["price"], ignore=[], needs=Needs(), stats=stats)
    assert ranked(d)[0] == "cerebras/gpt-oss-120b" and ranked(d)[-1] == "groq/gpt-oss-120b"
    assert d.considered[1]["cooling_down"] is True and d.considered[1]["eligible"] is True
    assert "1 cooling down" in d.why
    assert "cooling_down" not in d.considered[0]


def test_duplicate_pool_entries_count_once() -> None:
    d = choose_auto(POOL + POOL[:2], sort=["price"], ignore=[], needs=Needs(), stats=None)
    assert len(d.ranked) == len(POOL) and len(d.considered) == len(POOL)


def test_auto_over_a_real_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Map values and config overrides flow into the decision."""
    (tmp_path / "c.yaml").write_text(
        "providers:\n  alpha: {litellm_provider: openai, api_base: 'http://127.0.0.1:9/v1', api_key: k}\n"
        "models:\n"
        "  - {id: fake-searcher, provider: alpha, input_price: 0.01, output_price: 0.01}\n"
        "  - {id: gpt-4.1-mini, provider: openai}\n"
        "  - {id: gpt-oss-120b, provider: groq}\n")
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    monkeypatch.setenv("GROQ_API_KEY", "k")
    catalog = Catalog(load_config(tmp_path / "c.yaml"))
    pool = catalog.pool()
    assert {i.id for i in pool} == {"alpha/fake-searcher", "openai/gpt-4.1-mini", "groq/gpt-oss-120b"}
    d = choose_auto(pool, sort=["price"], ignore=[], needs=Needs(), stats=Stats())
    assert ranked(d)[0] == "alpha/fake-searcher"
    # fake-searcher's capabilities are unknown (tools only): a JSON schema request goes elsewhere,
    # to the cheaper of the two map models by litellm's own prices
    cost = litellm().model_cost
    blended = {m: (3 * cost[k]["input_cost_per_token"] + cost[k]["output_cost_per_token"]) * 1e6 / 4
               for m, k in (("openai/gpt-4.1-mini", "gpt-4.1-mini"), ("groq/gpt-oss-120b", "groq/openai/gpt-oss-120b"))}
    d = choose_auto(pool, sort=["price"], ignore=[], needs=Needs(json_schema=True), stats=Stats())
    assert ranked(d) == sorted(blended, key=blended.get)
    assert {row["model"]: row["reason"] for row in d.considered}["alpha/fake-searcher"] == "lacks json_schema"
    assert d.considered[1]["values"]["price"] == pytest.approx(blended["openai/gpt-4.1-mini"])


def test_decision_time_with_fifty_models() -> None:
    stats = Stats()
    pool = [info(f"p{i % 5}", f"model-{i}", input_price=(i * 37 % 50) / 10, output_price=1.0,
                 intelligence=(i * 7) % 100, json_schema=i % 3 == 0) for i in range(50)]
    for i in range(50):
        observed(stats, pool[i].id, 100 + i)
    choose_auto(pool, sort=["price", "latency"], ignore=["p1"], needs=Needs(json_schema=True), stats=stats)
    d = choose_auto(pool, sort=["price", "latency"], ignore=["p1"], needs=Needs(json_schema=True), stats=stats)
    assert len(d.ranked) == 14  # how fast: the routing benchmark's "auto over 50" figure
