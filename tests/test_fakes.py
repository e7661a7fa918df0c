"""The fake upstreams speak their real wire formats (checked through litellm's real clients)."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import litellm  # tests/conftest.py sets LITELLM_LOCAL_MODEL_COST_MAP before this import
import pytest

from tests.fakes.loop import module_loop
from tests.fakes.llm import FakeLLM
from tests.fakes.policies import POLICIES, Conversation, ToolCall, Turn, choose, first_sentence
from tests.fakes.search_apis import ENGINES, FakeSearch
from tests.fakes.web import BIG_BYTES, DATA_DIR, INJECTION, FakeWeb, gold, scrapinghub_ids

litellm.suppress_debug_info = True  # no "Provider List" banner on every error

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": "Search the web.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}
SOURCES = (
    "Search results:\n"
    '<source id="1" url="https://example.com/a" title="Example &amp; title">\n'
    "Sea otters hold hands while sleeping. They float in kelp.\n</source>\n"
    '<source id="2" url="https://example.com/b" title="B">\nKelp grows fast! Really fast.\n</source>\n'
    '<source id="3" url="https://example.com/c" title="C">\nNo sentence end here\nsecond line\n</source>\n'
    '<source id="4" url="https://example.com/d" title="D">\nFourth is never cited.\n</source>'
)
EXPECTED_ANSWER = "Sea otters hold hands while sleeping. [1] Kelp grows fast! [2] No sentence end here [3]"


_LOOP, _close_loop = module_loop()  # one loop: litellm keeps loop-bound clients between calls
run = _LOOP.run


_HTTP = httpx.Client(timeout=10)  # thread-safe; one SSL context for all tests


@pytest.fixture(scope="module", autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    _HTTP.close()
    _LOOP.close()


def _get(url: str, **kw: Any) -> httpx.Response:
    return _HTTP.get(url, **kw)


# -- FakeWeb -------------------------------------------------------------------------


def test_web_serves_real_pages_and_gold(fake_web: FakeWeb) -> None:
    r = _get(f"{fake_web.url}/wcxb/0001")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.content == gzip.decompress((DATA_DIR / "wcxb" / "dev" / "html" / "0001.html.gz").read_bytes())
    assert gold("wcxb/0001").title.startswith("Top Nutrition Trends for Fall 2025")
    assert gold(f"{fake_web.url}/wcxb/0001").text.startswith("Fall isn't just pumpkin spice season")

    sid = scrapinghub_ids()[0]
    r = _get(fake_web.page_url(f"scrapinghub/{sid}"))
    assert r.status_code == 200 and b"<html" in r.content[:2000].lower()
    assert gold(f"scrapinghub/{sid}").text.startswith("Gaming used to be so simple.")
    assert "Stadia" in gold(f"scrapinghub/{sid}").title
    assert _get(f"{fake_web.url}/wcxb/9999").status_code == 404
    assert fake_web.requests[0].path == "/wcxb/0001"


def test_web_failure_pages(fake_web: FakeWeb) -> None:
    base = fake_web.url
    assert _get(f"{base}/status/503").status_code == 503
    assert _get(f"{base}/status/403").status_code == 403

    r = _get(f"{base}/redirect/3", follow_redirects=True)
    assert r.status_code == 200 and r.url.path == "/article" and len(r.history) == 3
    with pytest.raises(httpx.TooManyRedirects):
        _get(f"{base}/redirect-loop", follow_redirects=True)
    r = _get(f"{base}/redirect-to", params={"url": f"{base}/plain", "status": "301"})
    assert r.status_code == 301 and r.headers["location"] == f"{base}/plain"

    with _HTTP.stream("GET", f"{base}/huge") as r:
        assert int(r.headers["content-length"]) > 10 * 1024 * 1024
    with _HTTP.stream("GET", f"{base}/huge", params={"chunked": "1"}) as r:
        assert "content-length" not in r.headers
        assert sum(len(piece) for piece in r.iter_raw()) > 10 * 1024 * 1024
    with _HTTP.stream("GET", f"{base}/gzip-bomb") as r:
        assert r.headers["content-encoding"] == "gzip"
        assert sum(len(piece) for piece in r.iter_raw()) < 100_000
    assert len(_get(f"{base}/gzip-bomb").content) >= BIG_BYTES

    assert _get(f"{base}/pdf").headers["content-type"] == "application/pdf"
    assert _get(f"{base}/plain").headers["content-type"].startswith("text/plain")
    r = _get(f"{base}/empty")
    assert r.status_code == 200 and r.content == b""
    assert INJECTION in _get(f"{base}/injection").text


def test_web_latency_and_concurrency(fake_web: FakeWeb) -> None:
    fake_web.page_latency_ms = {"/wcxb/0002": 200}
    # Injected latency is a floor, never a ceiling: only lower bounds are checked (a busy machine
    # makes anything slower, so an upper bound would be a flaky timing assertion).
    assert _get(f"{fake_web.url}/wcxb/0003").status_code == 200
    start = time.monotonic()
    assert _get(f"{fake_web.url}/wcxb/0002").status_code == 200
    assert time.monotonic() - start >= 0.2

    # Served concurrently: eight requests all wait at one barrier, which only opens when all are in.
    barrier = threading.Barrier(8, timeout=30)
    fake_web.page_latency_ms = lambda path: (barrier.wait(), 0)[1] if path.startswith("/slow") else 0
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: _get(f"{fake_web.url}/slow/100").status_code, range(8)))
    assert codes == [200] * 8 and not barrier.broken


def test_servers_start_and_stop() -> None:
    with FakeWeb() as web:
        url = web.url
        assert _get(f"{url}/article").status_code == 200
    with pytest.raises(httpx.ConnectError):
        _get(f"{url}/article")


# -- FakeSearch ---------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_litellm_asearch_reaches_each_engine(engine: str, fake_search: FakeSearch, fake_web: FakeWeb) -> None:
    response = run(litellm.asearch(query="climate change agriculture", search_provider=engine, max_results=3))
    assert response.results
    assert len(response.results) <= (10 if engine == "searxng" else 3)  # litellm sends no limit to SearXNG
    for result in response.results:
        assert result.url.startswith(f"{fake_web.url}/wcxb/") and result.title
        assert _get(result.url).status_code == 200
    assert "Climate" in response.results[0].title or "climate" in response.results[0].snippet.lower()
    assert fake_search.queries(engine) == ["climate change agriculture"]


def test_search_wire_details(fake_search: FakeSearch) -> None:
    run(litellm.asearch(query="privacy vpn", search_provider="brave", max_results=2))
    sent = fake_search.requests[-1]
    assert sent.method == "GET" and sent.path == "/brave/res/v1/web/search"
    assert sent.query == {"q": "privacy vpn", "include_fetch_metadata": "True", "count": "2"}
    assert sent.headers["x-subscription-token"] == "fake-brave-key"

    run(litellm.asearch(query="privacy vpn", search_provider="tavily", max_results=2))
    assert fake_search.requests[-1].json == {"query": "privacy vpn", "max_results": 2}
    assert fake_search.requests[-1].headers["authorization"] == "Bearer fake-tavily-key"

    r = run(litellm.asearch(query="privacy vpn", search_provider="exa_ai", max_results=2))
    assert fake_search.requests[-1].json == {
        "query": "privacy vpn",
        "numResults": 2,
        "contents": {"text": True},
    }
    assert r.results[0].snippet == gold(r.results[0].url).text  # Exa returns the whole text

    r = run(
        litellm.asearch(
            query="privacy", search_provider="exa_ai", api_base=fake_search.api_base("exa_ai"), api_key="k"
        )
    )
    assert len(r.results) == 10


def test_search_failure_switches(fake_search: FakeSearch) -> None:
    fake_search.engines["tavily"].status = 429
    with pytest.raises(litellm.RateLimitError):
        run(litellm.asearch(query="climate", search_provider="tavily"))
    fake_search.engines["brave"].status = 500
    with pytest.raises(litellm.InternalServerError):
        run(litellm.asearch(query="climate", search_provider="brave"))

    fake_search.engines["exa_ai"].empty = True
    assert run(litellm.asearch(query="climate", search_provider="exa_ai")).results == []

    fake_search.engines["serper"].latency_ms = 200
    start = time.monotonic()
    run(litellm.asearch(query="climate", search_provider="serper"))
    assert time.monotonic() - start >= 0.2

    fake_search.reset()
    base = fake_search.url
    assert _HTTP.post(f"{base}/tavily/search", json={"query": "x"}).status_code == 401
    assert _HTTP.post(f"{base}/exa/search", json={"query": "x"}).status_code == 401
    assert (
        _HTTP.get(f"{base}/searxng/search", params={"q": "climate"}).status_code == 403
    )  # format=json missing
    assert _HTTP.get(f"{base}/searxng/search", params={"q": "climate", "format": "json"}).json()["results"]


# -- FakeLLM through litellm --------------------------------------------------------------


def _target(llm: FakeLLM, provider: str) -> dict[str, str]:
    base = f"{llm.url}/v1" if provider == "openai" else llm.url
    return {"api_base": base, "api_key": "test-key"}


async def _complete(
    llm: FakeLLM, provider: str, model: str, messages: list[dict[str, Any]], stream: bool, **kw: Any
) -> tuple[Any, int]:
    response = await litellm.acompletion(
        model=f"{provider}/{model}",
        messages=messages,
        stream=stream,
        max_retries=0,
        **_target(llm, provider),
        **kw,
    )
    if not stream:
        return response, 1
    chunks = [chunk async for chunk in response]
    return litellm.stream_chunk_builder(chunks, messages=messages), len(chunks)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_searcher_calls_the_tool_then_cites(provider: str, stream: bool, fake_llm: FakeLLM) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Do sea otters sleep?"}]
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if stream else {}
    first, chunks = run(
        _complete(fake_llm, provider, "fake-searcher", messages, stream, tools=[SEARCH_TOOL], **options)
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "web_search"
    assert json.loads(call.function.arguments) == {"query": "Do sea otters sleep?"}
    assert first.usage.prompt_tokens > 10 and first.usage.completion_tokens > 0
    if stream:
        assert chunks > 4  # arguments arrive in fragments

    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "web_search", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": SOURCES},
    ]
    second, chunks = run(
        _complete(fake_llm, provider, "fake-searcher", messages, stream, tools=[SEARCH_TOOL], **options)
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == EXPECTED_ANSWER
    assert second.usage.prompt_tokens > first.usage.prompt_tokens
    if stream:
        assert chunks > 10  # text arrives a word at a time

    sent = fake_llm.requests[-1]
    if provider == "openai":
        assert sent.path == "/v1/chat/completions" and sent.json["messages"][-1]["role"] == "tool"
        assert sent.headers["authorization"] == "Bearer test-key"
    else:
        assert sent.path == "/v1/messages" and sent.headers["x-api-key"] == "test-key"
        assert sent.json["messages"][-1]["content"][0]["type"] == "tool_result"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_parallel_calls_and_tool_choice_none(provider: str, stream: bool, fake_llm: FakeLLM) -> None:
    messages = [{"role": "user", "content": "kelp"}]
    response, _ = run(_complete(fake_llm, provider, "fake-parallel", messages, stream, tools=[SEARCH_TOOL]))
    queries = [json.loads(c.function.arguments)["query"] for c in response.choices[0].message.tool_calls]
    assert queries == ["kelp", "kelp background"]

    response, _ = run(
        _complete(
            fake_llm, provider, "fake-searcher", messages, stream, tools=[SEARCH_TOOL], tool_choice="none"
        )
    )
    assert not response.choices[0].message.tool_calls
    assert response.choices[0].message.content == "I could not find any sources about that."


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_errors_use_the_provider_error_shape(provider: str, fake_llm: FakeLLM) -> None:
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(litellm.InternalServerError):
        run(_complete(fake_llm, provider, "fake-fail", messages, False))
    with pytest.raises(litellm.RateLimitError):
        run(_complete(fake_llm, provider, "fake-ratelimit", messages, False))
    with pytest.raises(litellm.NotFoundError):
        run(_complete(fake_llm, provider, "fake-notfound", messages, False))
    assert len(fake_llm.requests) == 3  # max_retries=0: no hidden retries


def test_anthropic_json_mode_is_a_forced_tool(fake_llm: FakeLLM) -> None:
    schema = {
        "type": "json_schema",
        "json_schema": {
            "name": "a",
            "schema": {"type": "object", "properties": {"answer": {"type": "string"}}},
        },
    }
    messages = [{"role": "user", "content": "say it"}]
    response, _ = run(
        _complete(fake_llm, "anthropic", "fake-echo-json", messages, False, response_format=schema)
    )
    assert json.loads(response.choices[0].message.content)["question"] == "say it"
    assert fake_llm.requests[-1].json["tool_choice"] == {"name": "json_tool_call", "type": "tool"}


# -- FakeLLM wire rules and streaming events (raw HTTP) -----------------------------------


def test_invalid_requests_are_rejected(fake_llm: FakeLLM) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "web_search", "arguments": "{}"}}
    body = {
        "model": "fake-searcher",
        "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}],
    }
    r = _HTTP.post(f"{fake_llm.url}/v1/chat/completions", json=body)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    body["messages"] = [
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "call_9", "content": "?"},
    ]
    assert _HTTP.post(f"{fake_llm.url}/v1/chat/completions", json=body).status_code == 400
    r = _HTTP.post(f"{fake_llm.url}/v1/messages", json={"model": "fake-searcher", "messages": []})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"  # max_tokens missing
    use = {"type": "tool_use", "id": "toolu_1", "name": "web_search", "input": '{"query": "x'}
    result = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "?"}
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": [result]},
    ]
    r = _HTTP.post(
        f"{fake_llm.url}/v1/messages", json={"model": "fake-searcher", "max_tokens": 9, "messages": messages}
    )
    assert r.status_code == 400  # tool_use input must be an object


def test_anthropic_stream_event_sequence(fake_llm: FakeLLM) -> None:
    body = {
        "model": "fake-searcher",
        "max_tokens": 100,
        "stream": True,
        "tools": [{"name": "web_search", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "kelp"}],
    }
    r = _HTTP.post(f"{fake_llm.url}/v1/messages", json=body)
    events = [line.removeprefix("event: ") for line in r.text.splitlines() if line.startswith("event: ")]
    assert events[:3] == ["message_start", "ping", "content_block_start"]
    assert events[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    data = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: ")]
    assert data[2]["content_block"]["type"] == "tool_use"
    args = "".join(d["delta"]["partial_json"] for d in data if d["type"] == "content_block_delta")
    assert json.loads(args) == {"query": "kelp"}
    assert data[-2]["delta"]["stop_reason"] == "tool_use" and data[-2]["usage"]["output_tokens"] > 0


def test_model_latency(fake_llm: FakeLLM) -> None:
    fake_llm.model_latency_ms = {"fake-direct": 200}
    body = {"model": "fake-direct", "messages": [{"role": "user", "content": "x"}]}
    start = time.monotonic()
    r = _HTTP.post(f"{fake_llm.url}/v1/chat/completions", json=body)
    assert r.json()["choices"][0]["message"]["content"] == "I know this."
    assert time.monotonic() - start >= 0.2


# -- policies (wire-neutral) ---------------------------------------------------------------


def _conv(*turns: Turn, tools: tuple[str, ...] = ("web_search",), choice: str = "auto") -> Conversation:
    return Conversation(list(turns), list(tools), choice)


def _after_search(text: str = SOURCES, tools: tuple[str, ...] = ("web_search",)) -> Conversation:
    return _conv(
        Turn("user", "otters?"),
        Turn("assistant", tool_calls=[ToolCall("web_search", '{"query": "otters?"}', "c1")]),
        Turn("tool", text, tool_call_id="c1", tool_name="web_search"),
        tools=tools,
    )


def test_policy_answers() -> None:
    done = _after_search()
    assert POLICIES["links"](done).text.startswith(
        "Sea otters hold hands while sleeping. [Example & title](https://example.com/a) Kelp grows fast! [B]"
    )
    assert POLICIES["multi"](done).text == (
        "Sea otters hold hands while sleeping. [1][2] Kelp grows fast! [1, 2] No sentence end here [3]"
    )
    phantom = POLICIES["phantom"](done).text
    assert "[1]" in phantom and "[9]" in phantom and "](https://not-fetched.example/x)" in phantom
    assert POLICIES["nocite"](done).text == "Sea otters hold hands while sleeping."
    assert POLICIES["direct"](_conv(Turn("user", "x"))).text == "I know this."
    assert POLICIES["loop"](_after_search()).tool_calls[0].name == "web_search"
    assert json.loads(POLICIES["echo-json"](done).text)["sources"][0] == "https://example.com/a"


def test_policy_rounds_and_bad_calls() -> None:
    question = Turn("user", "otters?")
    policy, rounds = choose("fake-searcher:2")
    assert (
        rounds == 2 and policy(Conversation(_after_search().turns, ["web_search"], max_rounds=2)).tool_calls
    )
    assert choose("gpt-4o")[0] is POLICIES["searcher"]

    first = POLICIES["malformed"](_conv(question)).tool_calls[0]
    assert first.name == "web_search" and first.args() is None
    bad = Turn("assistant", tool_calls=[ToolCall("web_search", first.arguments, "c1")])
    retry = POLICIES["malformed"](_conv(question, bad, Turn("tool", "error", tool_call_id="c1")))
    assert retry.tool_calls[0].args() == {"query": "otters?"}

    assert POLICIES["unknown-tool"](_conv(question)).tool_calls[0].name == "browse"

    caller = POLICIES["caller-tool"]
    assert caller(_conv(question, tools=("web_search", "get_weather"))).tool_calls == (
        ToolCall("get_weather", "{}"),
    )
    answered = _conv(
        question,
        Turn("assistant", tool_calls=[ToolCall("get_weather", "{}", "w1")]),
        Turn("tool", "sunny", tool_call_id="w1", tool_name="get_weather"),
        tools=("web_search", "get_weather"),
    )
    assert caller(answered).text == "The tool said: sunny"


def test_first_sentence_is_verbatim() -> None:
    assert first_sentence("\n  Hello there. Bye.") == "Hello there."
    assert first_sentence("v1.2 is out! Yes") == "v1.2 is out!"
    assert first_sentence("no end\nnext") == "no end"
    assert first_sentence("") == ""
