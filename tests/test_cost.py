"""grounding.cost against litellm's own prices, on real calls to the loopback fakes.

Every response and chunk below comes from a real ``litellm.acompletion`` /
``litellm.asearch`` call to a fake speaking the provider's wire format; every
expected number is computed from litellm's model cost map (the prices it
ships), never written down here.
"""
from __future__ import annotations

import subprocess
import sys
from typing import Any

import litellm  # tests/conftest.py sets LITELLM_LOCAL_MODEL_COST_MAP before this import
import pytest

from grounding.cost import search_cost, search_response_cost, stream_cost, turn_cost
from tests.fakes.loop import module_loop
from tests.fakes.native import MODELS, FakeNative

pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")

MESSAGES = [{"role": "user", "content": "Café crème, Tokyo et Berlin ?"}]
_LOOP, _close_loop = module_loop()  # one loop: litellm keeps loop-bound clients between calls
run = _LOOP.run

#: Where litellm's cost map prices each model (the key it looks the model up under).
PRICED_AS = {
    "anthropic": "claude-sonnet-4-5-20250929",
    "gemini": "gemini/gemini-2.5-flash",
    "vertex_ai": "gemini-2.5-flash",
    "groq": "groq/openai/gpt-oss-120b",
}


def call(provider: str, *, stream: bool = False, search: bool = True) -> Any:
    kw: dict[str, Any] = {"model": MODELS[provider], "messages": MESSAGES}
    if search:
        kw["web_search_options"] = {"search_context_size": "low"}

    async def go() -> Any:
        if not stream:
            return await litellm.acompletion(**kw)
        response = await litellm.acompletion(stream=True, stream_options={"include_usage": True}, **kw)
        return [chunk async for chunk in response]

    return run(go())


def searches(usage: Any) -> int:
    tool_use = getattr(usage, "server_tool_use", None)
    details = getattr(usage, "prompt_tokens_details", None)
    return (getattr(tool_use, "web_search_requests", None) or getattr(details, "web_search_requests", None)
            or 0)


def expected(provider: str, usage: Any) -> float:
    """Tokens at the model's prices, plus litellm's fee per native search request."""
    info = litellm.model_cost[PRICED_AS[provider]]
    fee = (info.get("search_context_cost_per_query") or {}).get("search_context_size_medium", 0.0)
    return (usage.prompt_tokens * info["input_cost_per_token"]
            + usage.completion_tokens * info["output_cost_per_token"] + searches(usage) * fee)


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "vertex_ai", "groq"])
def test_turn_cost_includes_the_native_search_fee(fake_native: FakeNative, provider: str) -> None:
    response = call(provider)
    assert searches(response.usage) == 1
    fee = litellm.model_cost[PRICED_AS[provider]]["search_context_cost_per_query"]["search_context_size_medium"]
    cost = turn_cost(response)
    assert cost == pytest.approx(expected(provider, response.usage))
    assert cost > fee > 0
    assert cost == pytest.approx(response._hidden_params["response_cost"])  # what litellm logged for the call


def test_turn_cost_prices_groq_as_groq(fake_native: FakeNative) -> None:
    response = call("groq")
    assert response.model == "openai/gpt-oss-120b"  # as Groq answers: litellm alone reads it as OpenAI's
    with pytest.raises(Exception, match="isn't mapped"):
        litellm.completion_cost(completion_response=response)
    assert turn_cost(response) == pytest.approx(expected("groq", response.usage))


def test_turn_cost_without_search_is_tokens_only(fake_native: FakeNative) -> None:
    response = call("anthropic", search=False)
    assert searches(response.usage) == 0
    assert turn_cost(response) == pytest.approx(expected("anthropic", response.usage))


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "vertex_ai"])
def test_stream_cost_includes_the_native_search_fee(fake_native: FakeNative, provider: str) -> None:
    chunks = call(provider, stream=True)
    usage = chunks[-1].usage
    assert searches(usage) == 1
    assert stream_cost(MODELS[provider], chunks) == pytest.approx(expected(provider, usage))
    assert stream_cost(MODELS[provider], chunks) == pytest.approx(turn_cost(call(provider)))


def test_stream_cost_of_groq_has_no_search_fee(fake_native: FakeNative) -> None:
    # litellm 1.104.5 drops Groq's streamed executed_tools, and with them the search count
    chunks = call("groq", stream=True)
    usage = chunks[-1].usage
    assert searches(usage) == 0 and usage.prompt_tokens
    assert stream_cost(MODELS["groq"], chunks) == pytest.approx(expected("groq", usage))
    assert stream_cost(MODELS["groq"], chunks) < turn_cost(call("groq"))


def test_what_litellm_cannot_price_is_none(fake_native: FakeNative) -> None:
    assert "xai/grok-4-fast" not in litellm.model_cost and "grok-4-fast" not in litellm.model_cost
    assert turn_cost(call("xai")) is None
    assert stream_cost(MODELS["xai"], call("xai", stream=True)) is None
    assert stream_cost(MODELS["anthropic"], []) is None
    assert turn_cost(object()) is None


SEARCH_ENGINES = ["tavily", "exa_ai", "serper", "searxng"]


def table_price(engine: str, max_results: int) -> float:
    info = litellm.model_cost[f"{engine}/search"]
    for tier in info.get("tiered_pricing") or []:
        low, high = tier["max_results_range"]
        if low <= max_results <= high:
            return tier["input_cost_per_query"]
    return info.get("input_cost_per_query") or 0.0


@pytest.mark.parametrize("engine", SEARCH_ENGINES)
def test_search_cost_is_what_litellm_charges_a_search(fake_search: Any, engine: str) -> None:
    response = run(litellm.asearch(query="nutrition trends", search_provider=engine, max_results=3))
    assert response.results
    assert search_response_cost(response) == pytest.approx(table_price(engine, 3))
    assert search_cost(engine, 1, max_results=3) == pytest.approx(search_response_cost(response))
    assert search_cost(engine, 4, max_results=3) == pytest.approx(4 * table_price(engine, 3))


def test_search_cost_names_tiers_and_unknowns(fake_search: Any) -> None:
    assert search_cost("exa", 2, max_results=3) == search_cost("exa_ai", 2, max_results=3)
    assert search_cost("exa", max_results=30) == pytest.approx(table_price("exa_ai", 30))
    assert search_cost("exa", max_results=30) > search_cost("exa", max_results=3) > 0
    assert search_cost("exa") == pytest.approx(table_price("exa_ai", 10))  # litellm's default max_results
    response = run(litellm.asearch(query="nutrition trends", search_provider="brave", max_results=3))
    assert response.results and search_response_cost(response) is None  # litellm has no price for Brave
    assert search_cost("brave") is None
    assert search_cost("no-such-engine") is None
    assert search_cost("local", 5) == 0.0 and search_cost("tavily", 0) == 0.0
    with pytest.raises(ValueError):
        search_cost("tavily", -1)


def test_importing_cost_does_not_import_litellm() -> None:
    code = "import sys, grounding.cost; assert 'litellm' not in sys.modules, 'litellm imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
