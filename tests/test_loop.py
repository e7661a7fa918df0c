"""Points 3, 4, 6 and 7: the tool loop end to end, over real HTTP on 127.0.0.1.

litellm talks to the fake model server (OpenAI and Anthropic wire formats),
litellm.asearch to the fake search APIs, and the fetcher to a local web of
real pages from ../shared/data.
"""
from __future__ import annotations

import asyncio
import json

import pytest
from openai.types.chat import ChatCompletion as OpenAIChatCompletion
from openai.types.chat import ChatCompletionChunk as OpenAIChunk

import grounding
from grounding.response import Metadata
from providers.models import ModelProfile, register_profile
from providers.search import SearchHit, register_engine

QUESTION = "nutrition trends for fall"


def ask(fake_llm, policy="searcher", *, provider="openai", engine="searxng", **kw):
    base = f"{fake_llm.url}/v1" if provider == "openai" else fake_llm.url
    kw.setdefault("messages", [{"role": "user", "content": QUESTION}])
    kw.setdefault("web_search", {"engine": engine})
    return grounding.completion(model=f"{provider}/fake-{policy}", api_base=base, api_key="sk-test", **kw)


def chat_requests(fake_llm):
    return [r.json for r in fake_llm.requests if r.path in ("/v1/chat/completions", "/v1/messages")]


def check_openai_shape(result):
    data = result.to_dict()
    metadata = data.pop("metadata")
    OpenAIChatCompletion.model_validate(data)  # strict: the openai package's own type
    Metadata.model_validate(metadata)
    return data


def spans(result):
    msg = result.choices[0].message
    return [(msg.content[a.url_citation.start_index:a.url_citation.end_index], a.url_citation.url)
            for a in msg.annotations or []]


class ListEngine:
    """An engine of our own (the registry seam) returning fixed URLs."""

    def __init__(self, name, urls):
        self.name = name
        self.urls = urls

    async def search(self, query, max_results):
        return [SearchHit(url=u, title=f"page {i}") for i, u in enumerate(self.urls[:max_results])]


# --- point 3: the loop ------------------------------------------------------

@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_search_fetch_extract_cite(fake_llm, fake_search, fake_web, provider):
    result = ask(fake_llm, provider=provider)
    data = check_openai_shape(result)
    msg = result.choices[0].message
    assert result.choices[0].finish_reason == "stop"
    assert fake_search.queries("searxng") == [QUESTION]
    fetched = [s for s in result.metadata.sources if s.status == "fetched"]
    assert len(fetched) == 3 and [s.id for s in fetched] == [1, 2, 3]
    assert all(s.url.startswith(fake_web.url) for s in fetched)
    # The model was handed the extracted page text as numbered, delimited sources.
    tool_text = json.dumps(chat_requests(fake_llm)[-1])
    assert '<source id=\\"1\\"' in tool_text and "untrusted" in tool_text
    # Each claim carries an annotation whose span is the cited sentence and marker.
    assert msg.annotations and data["choices"][0]["message"]["annotations"][0]["type"] == "url_citation"
    for text, url in spans(result):
        assert text.endswith("]") and url in {s.url for s in fetched}
    assert result.metadata.citations.annotations == len(msg.annotations)
    assert any(s.cited for s in fetched)


def test_tool_choice_and_sampling_go_to_the_right_turns(fake_llm, fake_search, fake_web):
    ask(fake_llm, "echo-json", temperature=0.3, max_tokens=300, seed=7,
        response_format={"type": "json_object"})
    search_turn, answer_turn = chat_requests(fake_llm)
    assert [t["function"]["name"] for t in search_turn["tools"]] == ["web_search"]
    assert search_turn["tool_choice"] == "auto"
    assert search_turn["temperature"] == 0.3 and search_turn["seed"] == 7
    assert "max_tokens" not in search_turn and "response_format" not in search_turn
    assert answer_turn["response_format"] == {"type": "json_object"}
    assert answer_turn["max_tokens"] == 300 and answer_turn["tool_choice"] == "none"


def test_parallel_searches_in_one_step(fake_llm, fake_search, fake_web):
    result = ask(fake_llm, "parallel", web_search={"engine": "tavily", "max_results": 2})
    assert len(result.metadata.queries) == 2
    assert sorted(fake_search.queries("tavily")) == sorted(result.metadata.queries)
    assert result.metadata.steps == 1
    ids = [s.id for s in result.metadata.sources if s.id]
    assert ids == list(range(1, len(ids) + 1))  # numbered once across both queries, no duplicates


def test_max_steps_runs_several_rounds(fake_llm, fake_search, fake_web):
    result = ask(fake_llm, "searcher:3", web_search={"engine": "searxng", "max_steps": 3})
    assert result.metadata.steps == 3
    assert [t.kind for t in result.metadata.turns] == ["search", "search", "search", "answer"]


def test_model_that_keeps_calling_tools_is_stopped(fake_llm, fake_search, fake_web):
    result = ask(fake_llm, "loop", web_search={"engine": "searxng", "max_steps": 2})
    assert result.metadata.steps == 2
    assert result.choices[0].finish_reason == "stop"
    assert result.choices[0].message.content
    assert not result.choices[0].message.tool_calls
    assert any("kept calling tools" in w for w in result.metadata.warnings)


@pytest.mark.parametrize(("policy", "warning", "provider", "stream"), [
    ("malformed", "malformed", "openai", False),
    ("malformed", "malformed", "anthropic", True),  # Anthropic's input is an object except when streamed
    ("unknown-tool", "unknown tool", "openai", False),
    ("unknown-tool", "unknown tool", "anthropic", False),
])
def test_bad_tool_calls_are_answered_not_crashed_on(fake_llm, fake_search, fake_web, policy, warning, provider,
                                                    stream):
    result = ask(fake_llm, f"{policy}:2", provider=provider, stream=stream,
                 web_search={"engine": "searxng", "max_steps": 2})
    if stream:
        chunks = list(result)
        metadata = chunks[-1].metadata
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        metadata, content = result.metadata, result.choices[0].message.content
    assert any(warning in w for w in metadata.warnings)
    assert content
    assert metadata.steps == 2 and metadata.sources
    second = json.dumps(chat_requests(fake_llm)[1]["messages"])
    assert "Error: " in second  # the model was told what was wrong


def test_caller_tools_are_returned_and_the_follow_up_continues(fake_llm, fake_search, fake_web):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    first = ask(fake_llm, "caller-tool", tools=tools)
    check_openai_shape(first)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [c.function.name for c in choice.message.tool_calls] == ["get_weather"]
    offered = chat_requests(fake_llm)[0]["tools"]
    assert {t["function"]["name"] for t in offered} == {"web_search", "get_weather"}
    call = choice.message.tool_calls[0]
    messages = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": None, "tool_calls": [call.to_dict()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
    ]
    second = ask(fake_llm, "caller-tool", tools=tools, messages=messages)
    assert second.choices[0].finish_reason == "stop"
    assert "sunny, 21 C" in second.choices[0].message.content


def test_direct_answer_without_searching(fake_llm, fake_search, fake_web):
    result = ask(fake_llm, "direct")
    assert result.choices[0].message.content == "I know this."
    assert result.metadata.steps == 0 and not result.metadata.sources


@pytest.mark.parametrize("stream", [False, True])
def test_model_that_must_search_but_writes_prose_gets_its_question_searched(fake_llm, fake_search, fake_web,
                                                                             stream):
    # The local model's profile: tool_choice="required", which small models do not always obey.
    register_profile("openai/fake-direct", ModelProfile(search_tool_choice="required", parallel_tool_calls=False))
    result = ask(fake_llm, "direct", stream=stream)
    if stream:
        chunks = list(result)
        meta, content = chunks[-1].metadata, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        meta, content = result.metadata, result.choices[0].message.content
    assert meta.queries == [QUESTION] and meta.steps == 1
    assert any("did not call the search tool" in w for w in meta.warnings)
    assert content == "I know this."  # the prose of the forced turn is not part of the answer twice
    first = chat_requests(fake_llm)[0]
    assert first["tool_choice"] == "required" and first["parallel_tool_calls"] is False


# --- point 4: citations -------------------------------------------------------

def test_markdown_link_citations(fake_llm, fake_search, fake_web):
    result = ask(fake_llm, "links")
    found = spans(result)
    assert found and all(text.endswith(")") for text, _ in found)
    assert {url for _, url in found} <= {s.url for s in result.metadata.sources}


def test_grouped_markers(fake_llm, fake_search, fake_web):
    result = ask(fake_llm, "multi")
    urls = [url for _, url in spans(result)]
    assert len(urls) > len(set(urls)) or len(set(urls)) >= 2  # one span, several sources
    assert result.metadata.citations.unmatched == []


def test_citations_of_unfetched_things_become_no_annotation(fake_llm, fake_search, fake_web):
    result = ask(fake_llm, "phantom")
    assert result.metadata.citations.unmatched == ["[9]", "https://not-fetched.example/x"]
    assert all(url != "https://not-fetched.example/x" for _, url in spans(result))
    assert len(spans(result)) == 1
    assert any("pointed at nothing fetched" in w for w in result.metadata.warnings)


def test_uncited_answer_gets_inferred_citations(fake_llm, fake_search, fake_web):
    result = ask(fake_llm, "nocite")
    assert result.metadata.citations.inferred == 1
    (text, url), = spans(result)
    assert text == result.choices[0].message.content.strip() and url == result.metadata.sources[0].url


# --- point 5: engines ----------------------------------------------------------

@pytest.mark.parametrize("engine", ["searxng", "tavily", "brave", "exa_ai", "serper"])
def test_each_engine_through_litellm(fake_llm, fake_search, fake_web, engine):
    result = ask(fake_llm, engine=engine)
    assert fake_search.queries(engine) == [QUESTION]
    assert result.metadata.engine == engine
    assert [s.status for s in result.metadata.sources] == ["fetched"] * 3


def test_failing_engine_degrades_the_answer_and_says_so(fake_llm, fake_search, fake_web):
    fake_search.engines["tavily"].status = 500
    result = ask(fake_llm, engine="tavily")
    assert result.choices[0].message.content
    assert result.metadata.searches[0].error and "500" in result.metadata.searches[0].error
    assert any("search failed" in w for w in result.metadata.warnings)
    assert not result.choices[0].message.annotations


def test_rate_limited_engine_is_retried_once(fake_llm, fake_search, fake_web):
    fake_search.engines["brave"].status = 429
    result = ask(fake_llm, engine="brave")
    assert len(fake_search.queries("brave")) == 2
    assert "rate limited" in result.metadata.searches[0].error


def test_local_engine_needs_no_network(fake_llm, tmp_path, monkeypatch):
    monkeypatch.setenv("GROUNDING_CACHE_DIR", str(tmp_path / "cache"))
    corpus = tmp_path / "docs"
    corpus.mkdir()
    (corpus / "tea.md").write_text("Green tea is made from unoxidized leaves of Camellia sinensis.\n\n## Brewing\n\nUse water below boiling.\n")
    (corpus / "coffee.txt").write_text("Coffee is brewed from roasted coffee beans.\n")
    register_engine("mydocs", grounding.LocalSearchEngine(str(corpus)))
    result = ask(fake_llm, engine="mydocs", messages=[{"role": "user", "content": "green tea leaves"}])
    assert result.metadata.sources[0].status == "indexed"
    assert result.metadata.sources[0].url.endswith("tea.md")
    (text, url), = spans(result)
    assert "unoxidized leaves" in text


# --- point 3/10: failing pages ---------------------------------------------------

def test_failing_pages_are_skipped_and_recorded(fake_llm, fake_web):
    urls = [f"{fake_web.url}/status/404", f"{fake_web.url}/pdf", f"{fake_web.url}/huge",
            f"{fake_web.url}/redirect-loop", f"{fake_web.url}/slow/100", fake_web.page_url("wcxb/0001")]
    register_engine("fixed", ListEngine("fixed", urls))
    result = ask(fake_llm, engine="fixed", web_search={"engine": "fixed", "max_results": 6})
    by_url = {s.url: s for s in result.metadata.sources}
    assert by_url[urls[0]].status == "failed" and "404" in by_url[urls[0]].error
    assert "application/pdf" in by_url[urls[1]].error
    assert "too large" in by_url[urls[2]].error
    assert "redirect" in by_url[urls[3]].error
    assert by_url[urls[4]].status == by_url[urls[5]].status == "fetched"
    assert [s.id for s in result.metadata.sources if s.id] == [1, 2]
    assert "4 more results could not be fetched" in json.dumps(chat_requests(fake_llm)[-1])


def test_private_addresses_refused_without_opt_in(fake_llm, fake_web, monkeypatch):
    monkeypatch.delenv("GROUNDING_ALLOW_PRIVATE_NETWORKS")
    register_engine("fixed", ListEngine("fixed", [fake_web.page_url("wcxb/0001")]))
    result = ask(fake_llm, engine="fixed")
    (source,) = result.metadata.sources
    assert source.status == "failed" and "blocked" in source.error and "loopback" in source.error
    assert any("not grounded" in w for w in result.metadata.warnings)


def test_page_text_is_delimited_untrusted_data(fake_llm, fake_web):
    register_engine("fixed", ListEngine("fixed", [f"{fake_web.url}/injection"]))
    ask(fake_llm, engine="fixed")
    tool_message = [m for m in chat_requests(fake_llm)[-1]["messages"] if m["role"] == "tool"][0]["content"]
    body = tool_message.split("<source id=", 1)[1]
    assert "Ignore" in body.split("</source>")[0]  # the injection stays inside the delimiters
    assert "untrusted web content" in tool_message.split("<source id=", 1)[0]


# --- point 6: the response ---------------------------------------------------------

def test_response_model_usage_and_metadata(fake_llm, fake_search, fake_web):
    result = ask(fake_llm, "searcher:2", web_search={"engine": "searxng", "max_steps": 2})
    check_openai_shape(result)
    assert result.model == "openai/fake-searcher:2"
    turns = result.metadata.turns
    assert len(turns) == 3 and all(t.duration_ms >= 0 for t in turns)
    assert result.usage.prompt_tokens == sum(t.prompt_tokens for t in turns) > 0
    assert result.usage.completion_tokens == sum(t.completion_tokens for t in turns) > 0
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    meta = result.metadata
    assert meta.mode == "tool_loop" and len(meta.queries) == 2 and meta.steps == 2
    assert meta.total_duration_ms >= sum(t.duration_ms for t in turns)
    assert all(s.url and s.title and s.status in {"fetched", "failed"} for s in meta.sources)


def test_plain_completion_without_web_search(fake_llm):
    result = grounding.completion(model="openai/fake-direct", api_base=f"{fake_llm.url}/v1", api_key="k",
                                  messages=[{"role": "user", "content": "hi"}])
    check_openai_shape(result)
    assert result.metadata.mode == "none" and result.choices[0].message.content == "I know this."
    assert "tools" not in chat_requests(fake_llm)[0]


@pytest.mark.parametrize(("policy", "error"), [("fail", grounding.UpstreamError),
                                                ("ratelimit", grounding.RateLimitError)])
def test_model_failure_is_a_typed_error(fake_llm, fake_search, policy, error):
    with pytest.raises(error) as err:
        ask(fake_llm, policy)
    assert err.value.to_dict()["error"]["message"]
    assert err.value.metadata["turns"][0]["kind"] == "search"  # what happened before the failure


# --- point 7: streaming ----------------------------------------------------------------

@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_streaming_chunks(fake_llm, fake_search, fake_web, provider):
    plain = ask(fake_llm, provider=provider)
    chunks = list(ask(fake_llm, provider=provider, stream=True, stream_options={"include_usage": True}))
    for chunk in chunks:
        data = chunk.to_dict()
        data.pop("metadata", None)
        OpenAIChunk.model_validate(data)
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) > 3  # the answer streams as it is written
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finishing) == 1 and finishing[0].choices[0].finish_reason == "stop"
    last_content = content_chunks[-1]
    assert last_content is finishing[0]  # annotations ride on the last content chunk
    annotations = [a.to_dict() for a in last_content.choices[0].delta.annotations]
    assert annotations == [a.to_dict() for a in plain.choices[0].message.annotations]
    assert chunks[-1].usage.total_tokens > 0 and chunks[-1].metadata.steps == 1


def test_streaming_caller_tool_call(fake_llm, fake_search, fake_web):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    chunks = list(ask(fake_llm, "caller-tool", tools=tools, stream=True))
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    assert last.choices[0].finish_reason == "tool_calls"
    assert last.choices[0].delta.tool_calls[0]["function"]["name"] == "get_weather"


# --- point 8: the async face ------------------------------------------------------------

def test_acompletion_and_async_streaming(fake_llm, fake_search, fake_web):
    async def go():
        kw = dict(model="openai/fake-searcher", api_base=f"{fake_llm.url}/v1", api_key="k",
                  messages=[{"role": "user", "content": QUESTION}],
                  extra_body={"web_search": {"engine": "searxng", "max_results": 2}})
        result = await grounding.acompletion(**kw)
        stream = await grounding.acompletion(stream=True, **kw)
        chunks = [c async for c in stream]
        return result, chunks

    result, chunks = asyncio.run(go())
    assert len([s for s in result.metadata.sources if s.id]) == 2
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == result.choices[0].message.content


def test_search_engine_fees_are_added_to_the_cost(fake_llm, fake_search, fake_web):
    """The model here is unpriceable (a fake); the engine's per-query fee still counts."""
    from grounding.cost import search_cost

    result = ask(fake_llm, engine="tavily", web_search={"engine": "tavily", "max_results": 3})
    assert len(result.metadata.searches) == 1
    assert result.metadata.cost_usd == pytest.approx(search_cost("tavily", 1, max_results=3))
    assert result.metadata.cost_usd > 0


def test_an_unreachable_engine_is_not_reported_with_a_status_it_never_sent(fake_llm, fake_search, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TAVILY_API_BASE", f"http://127.0.0.1:{port}")
    result = ask(fake_llm, engine="tavily")
    error = result.metadata.searches[0].error
    assert error.startswith("tavily: could not connect") and "HTTP" not in error, error
    assert any(w.startswith("search failed: tavily: could not connect") for w in result.metadata.warnings)


def test_an_unreachable_model_says_so_once(fake_llm):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(grounding.UpstreamError) as err:
        grounding.completion(model="openai/fake-searcher", api_base=f"http://127.0.0.1:{port}/v1", api_key="sk-test",
                             messages=[{"role": "user", "content": QUESTION}], web_search={"engine": "local"})
    assert err.value.code == "connection_error" and err.value.upstream_status is None
    assert err.value.message == "model openai/fake-searcher: could not connect: Connection error."
