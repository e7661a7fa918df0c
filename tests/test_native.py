"""Issue 3 groundwork: web_search_options through grounding, citations normalized.

The fake providers answer with accents, CJK and non-BMP emoji before and
inside the cited spans (and a span at offset 0), so byte-for-character and
dropped-offset-0 mistakes fail here.
"""
from __future__ import annotations

import pytest
from openai.types.chat import ChatCompletion as OpenAIChatCompletion

import grounding
from tests.fakes.native import FakeNative

MODELS = {
    "openai": "openai/gpt-4o-search-preview",
    "anthropic": "anthropic/claude-sonnet-4-5-20250929",
    "gemini": "gemini/gemini-2.5-flash",
    "perplexity": "perplexity/sonar",
    "xai": "xai/grok-4-fast",
}
QUESTION = [{"role": "user", "content": "Café crème, Tokyo et Berlin ?"}]


@pytest.fixture(scope="module")
def _native():
    with FakeNative() as server:
        yield server


@pytest.fixture
def fake_native(_native, monkeypatch):
    _native.reset()
    for name, value in _native.env().items():
        monkeypatch.setenv(name, value)
    return _native


def answer(fake, provider, stream):
    result = grounding.completion(model=MODELS[provider], api_base=fake.api_base(provider), api_key="fake-key",
                                  messages=QUESTION, web_search_options={"search_context_size": "low"},
                                  stream=stream)
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
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "perplexity", "xai"])
def test_native_citations_become_character_offset_annotations(fake_native, provider, stream):
    content, annotations, meta, tool_calls = answer(fake_native, provider, stream)
    layout = fake_native.layout(provider)
    assert content == layout.content
    found = spans(content, annotations, fake_native)
    if provider == "openai" or (provider == "xai" and not stream):  # the provider's own spans: its links
        expected = [(m.text, m.source) for m in layout.markers]
        assert sorted(found, key=str) == sorted(expected, key=str)
    elif provider in ("anthropic", "gemini"):  # the claim itself, located in the text
        expected = [(c.text.strip(), c.source) for c in layout.claims]
        assert sorted(found, key=str) == sorted(expected, key=str)
    else:  # [n] markers (perplexity) or links left in the text (streamed xai), read like the tool
        # loop's citations: the span is the sentence of the claim, through its markers
        assert len(found) == len(layout.claims)
        for claim in layout.claims:
            assert any(claim.text.strip() in text and text.endswith(("]", ")")) and src == claim.source
                       for text, src in found)
    assert meta.mode == "native" and meta.provider == provider
    assert {s.url for s in meta.sources} == {a["url_citation"]["url"] for a in annotations}
    assert not tool_calls  # Anthropic's server-side search call is never handed over


def test_search_requests_and_queries_are_reported(fake_native):
    _, _, meta, _ = answer(fake_native, "anthropic", False)
    assert meta.web_search_requests == 1 and meta.queries
    _, _, meta, _ = answer(fake_native, "gemini", False)
    assert meta.web_search_requests == 1 and meta.queries


def test_model_without_native_search_is_a_clear_error(fake_native):
    with pytest.raises(grounding.InvalidRequestError) as err:
        grounding.completion(model="openai/gpt-4o", messages=QUESTION, web_search_options={})
    assert "gpt-4o" in err.value.message and "web_search" in err.value.message
    assert err.value.param == "web_search_options"
    assert not fake_native.requests  # refused before any call
