"""Issue 3 groundwork: web_search_options through grounding, citations normalized.

The fake providers answer with accents, CJK and non-BMP emoji before and
inside the cited spans (and a span at offset 0), so byte-for-character and
dropped-offset-0 mistakes fail here.
"""
from __future__ import annotations

import pytest
from openai.types.chat import ChatCompletion as OpenAIChatCompletion

import grounding
from tests.fakes.native import MODELS

QUESTION = [{"role": "user", "content": "Café crème, Tokyo et Berlin ?"}]


def answer(fake, provider, stream, verify="flag"):
    """The provider's citations, normalized; ``flag`` keeps them all (checked, not repaired)."""
    result = grounding.completion(model=MODELS[provider], api_base=fake.api_base(provider), api_key="fake-key",
                                  messages=QUESTION, web_search_options={"search_context_size": "low"},
                                  stream=stream, citations={"verify": verify})
    if not stream:
        data = result.to_dict()
        data.pop("metadata")
        OpenAIChatCompletion.model_validate(data)
        msg = result.choices[0].message
        return msg.content, [a.to_dict() for a in msg.annotations or []], result.metadata, msg.tool_calls
    chunks = list(result)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    return content, [a.to_dict() for a in last.choices[0].delta.annotations or []], chunks[-1].metadata, \
        last.choices[0].delta.tool_calls


def spans(content, annotations, fake):
    return [(content[a["url_citation"]["start_index"]:a["url_citation"]["end_index"]],
             fake.source_for_url(a["url_citation"]["url"])) for a in annotations]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "vertex_ai", "perplexity", "xai", "groq"])
def test_native_citations_become_character_offset_annotations(fake_native, provider, stream):
    content, annotations, meta, tool_calls = answer(fake_native, provider, stream)
    layout = fake_native.layout(provider)
    assert content == layout.content
    found = spans(content, annotations, fake_native)
    if provider == "groq" and stream:  # litellm drops streamed executed_tools: nothing to resolve 【0†L2-L3】 with
        assert found == [] and any("no citations" in w for w in meta.warnings)
    elif provider in ("anthropic", "gemini", "vertex_ai"):  # the claim itself, located in the text
        expected = [(c.text.strip(), c.source) for c in layout.claims]
        assert sorted(found, key=str) == sorted(expected, key=str)
    else:  # [n] markers (perplexity), 【0†Lx-Ly】 markers resolved through the search page (groq),
        # links left in the text (streamed xai), and OpenAI's and xAI's own spans, which cover only
        # the link after the claim, widened to the claim: read like the tool loop's citations, the
        # span is the sentence of the claim, through its markers
        assert len(found) == len(layout.claims)
        for claim in layout.claims:
            assert any(claim.text.strip() in text and text.endswith(("]", ")", "】")) and src == claim.source
                       for text, src in found)
    assert meta.mode == "native" and meta.provider == provider
    assert {s.url for s in meta.sources} == {a["url_citation"]["url"] for a in annotations}
    assert not tool_calls  # Anthropic's server-side search call is never handed over


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "vertex_ai", "xai", "groq"])
def test_search_requests_queries_and_cost_are_reported(fake_native, provider):
    r = grounding.completion(model=MODELS[provider], api_base=fake_native.api_base(provider), api_key="k",
                             messages=QUESTION, web_search_options={"search_context_size": "low"})
    assert r.metadata.web_search_requests == 1 == r.usage.web_search_requests
    if provider != "xai":
        assert r.metadata.queries == [fake_native.scenario.query]
    if provider in ("anthropic", "gemini", "vertex_ai"):  # models litellm can price
        assert r.metadata.cost_usd and r.metadata.cost_usd > 0


@pytest.mark.parametrize("style", ["links", "none"])
def test_groq_compound_searches_without_a_tool(fake_native, style):
    fake_native.groq_citations = style
    r = grounding.completion(model="groq/groq/compound", api_base=fake_native.api_base("groq"), api_key="k",
                             messages=QUESTION, web_search_options={})
    sent = fake_native.requests_for("groq")[-1].json
    assert sent["model"] == "groq/compound" and "tools" not in sent
    meta = r.metadata
    assert meta.mode == "native" and meta.provider == "groq"
    assert meta.queries == [fake_native.scenario.query]
    assert meta.web_search_requests == 1  # counted from executed_tools: litellm counts browser.search only
    content = r.choices[0].message.content
    found = spans(content, [a.to_dict() for a in r.choices[0].message.annotations or []], fake_native)
    if style == "links":  # every link the model wrote is cited, its span ending with the link
        links = fake_native.layout("groq").markers
        assert sorted({src for _, src in found}) == sorted({m.source for m in links})
        assert all(text.endswith(")") for text, _ in found)
    else:  # no citation in the text: none is invented from the search results
        assert found == [] and any("no citations" in w for w in meta.warnings)


@pytest.mark.parametrize("model", ["groq/llama-3.3-70b-versatile", "groq/qwen/qwen3-32b",
                                   "vertex_ai/claude-sonnet-4-5"])
def test_groq_and_vertex_models_without_native_search_are_a_clear_error(fake_native, model):
    with pytest.raises(grounding.InvalidRequestError) as err:
        grounding.completion(model=model, messages=QUESTION, web_search_options={})
    assert err.value.param == "web_search_options" and "web_search" in err.value.message
    assert not fake_native.requests


def test_model_without_native_search_is_a_clear_error(fake_native):
    with pytest.raises(grounding.InvalidRequestError) as err:
        grounding.completion(model="openai/gpt-4o", messages=QUESTION, web_search_options={})
    assert "gpt-4o" in err.value.message and "web_search" in err.value.message
    assert err.value.param == "web_search_options"
    assert not fake_native.requests  # refused before any call


def test_engine_native_uses_the_providers_search_where_it_has_one(fake_native):
    r = grounding.completion(model=MODELS["gemini"], api_base=fake_native.api_base("gemini"), api_key="k",
                             messages=QUESTION, web_search={"engine": "native"})
    assert r.metadata.mode == "native" and "own search" in r.metadata.mode_reason
    assert r.choices[0].message.annotations
    assert "googleSearch" in str(fake_native.requests[-1].json["tools"])


def test_engine_native_falls_back_to_the_tool_loop(fake_llm, fake_search, fake_web, monkeypatch):
    monkeypatch.setenv("GROUNDING_ENGINE", "searxng")
    r = grounding.completion(model="openai/fake-searcher", api_base=f"{fake_llm.url}/v1", api_key="k",
                             messages=[{"role": "user", "content": "nutrition trends for fall"}],
                             web_search={"engine": "native"})
    assert r.metadata.mode == "tool_loop" and r.metadata.engine == "searxng"
    assert "no native search" in r.metadata.mode_reason
    assert r.choices[0].message.annotations


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_streamed_native_turn_is_priced_like_the_plain_one(fake_native, provider):
    """The search fee and tokens of a streamed call reach metadata.cost_usd too."""
    costs = []
    for stream in (False, True):
        _, _, meta, _ = answer(fake_native, provider, stream)
        costs.append(meta.cost_usd)
    assert costs[0] and costs[1] == pytest.approx(costs[0], rel=0.02)
