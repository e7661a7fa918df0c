"""What a request cost, in US dollars, as litellm prices it.

Three small readers of litellm's own price data (its model cost map, loaded
offline), so the numbers agree with what litellm itself logs:

- :func:`turn_cost`: one non-streamed model turn (tokens, plus the per-search
  fee when the provider searched by itself: Anthropic, Gemini / Vertex AI,
  Groq's ``browser_search``, xAI...);
- :func:`stream_cost`: one streamed turn, from its chunks;
- :func:`search_cost`: the fee of ``litellm.asearch`` calls to a search engine
  (litellm prices those per query from a table, tiered by ``max_results`` for
  some engines); :func:`search_response_cost` reads the price litellm put on
  a search response it returned.

Each returns ``None`` when litellm cannot price the call (a self-hosted or
unlisted model, an unlisted engine), never a guess. litellm is imported
lazily, through :func:`grounding.llm.litellm`.
"""
from __future__ import annotations

from typing import Any, Sequence

from .llm import litellm

__all__ = ["turn_cost", "stream_cost", "search_cost", "search_response_cost"]


def turn_cost(response: Any) -> float | None:
    """What ``litellm.completion_cost`` says a non-streamed response cost.

    The response is priced as the model the call was made with
    (``_hidden_params["litellm_model_name"]``, e.g. ``groq/openai/gpt-oss-120b``)
    when litellm recorded it: the ``model`` a provider echoes back can name
    another provider (Groq answers ``openai/gpt-oss-120b``, which litellm alone
    looks up as an OpenAI model and fails to price). Native search fees come
    from the response's usage (``server_tool_use.web_search_requests``,
    ``prompt_tokens_details.web_search_requests``).
    """
    hidden = getattr(response, "_hidden_params", None) or {}
    called = hidden.get("litellm_model_name") if isinstance(hidden, dict) else None
    attempts = [_priced_as(called)] if isinstance(called, str) and called else []
    return _price(response, [*attempts, {}])


def stream_cost(model: str, chunks: Sequence[Any]) -> float | None:
    """The cost of a streamed turn: its chunks rebuilt with ``litellm.stream_chunk_builder``
    and priced as ``model`` (the litellm model id the call was made with).

    Pass every chunk, with the usage chunk (``stream_options={"include_usage":
    True}``), so the provider's own token counts and search count are used;
    without it litellm estimates tokens. A search fee is included only where
    litellm keeps the search count in streamed usage (Anthropic, Gemini /
    Vertex AI do; for Groq litellm 1.104.5 drops ``executed_tools`` from
    streams, so only tokens are priced).
    """
    if not chunks:
        return None
    lm = litellm()
    try:
        built = lm.stream_chunk_builder(list(chunks))
    except Exception:
        return None
    if built is None:
        return None
    return _price(built, [_priced_as(model), {}])


def search_cost(engine: str, queries: int = 1, *, max_results: int | None = None) -> float | None:
    """The fee litellm knows for ``queries`` calls of ``litellm.asearch`` to ``engine``.

    ``engine`` is a search engine name as this library takes it (``exa`` or
    ``exa_ai``, ``tavily``, ``serper``...). Some engines are priced by tier of
    ``max_results`` (Exa, Firecrawl); litellm assumes 10 when it is not given.
    ``local`` (the embedded index) costs nothing; an engine litellm has no
    price for (``brave``, an engine of your own) gives ``None``.
    """
    if queries < 0:
        raise ValueError("queries must be >= 0")
    name = _engine(engine)
    if name == "local":
        return 0.0
    if name is None:
        return None
    litellm()  # imported offline-safe before its submodule
    from litellm.search import search_provider_cost_per_query

    params = {"max_results": max_results} if max_results is not None else None
    try:
        fee, _ = search_provider_cost_per_query(model=f"{name}/search", custom_llm_provider=name,
                                                number_of_queries=queries, optional_params=params)
    except Exception:  # not in litellm's price table
        return None
    return float(fee)


def search_response_cost(response: Any) -> float | None:
    """The price litellm put on a ``litellm.asearch`` response (``_hidden_params["response_cost"]``)."""
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
    return float(cost) if isinstance(cost, (int, float)) else None


def _priced_as(model: str) -> dict[str, Any]:
    """``completion_cost`` arguments naming ``model`` and its provider explicitly."""
    try:
        name, provider, _, _ = litellm().get_llm_provider(model)
    except Exception:
        return {"model": model}
    return {"model": name, "custom_llm_provider": provider}


def _price(response: Any, attempts: list[dict[str, Any]]) -> float | None:
    lm = litellm()
    for extra in attempts:
        try:
            cost = lm.completion_cost(completion_response=response, **extra)
        except Exception:  # not in litellm's cost map (self-hosted, fakes, new models)
            continue
        return None if cost is None else float(cost)
    return None


def _engine(engine: str) -> str | None:
    from providers.search import canonical_engine_name

    try:
        return canonical_engine_name(engine)
    except Exception:
        return None
