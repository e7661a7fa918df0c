"""Providers' own web search through litellm 1.104.5, against :class:`~tests.fakes.native.FakeNative`.

Every call below is ``litellm.acompletion(..., web_search_options={"search_context_size":
"low"})`` against the fake speaking the provider's real wire format, so litellm's
real translation runs. This docstring is the reference the library's native-search
normalizers are written against; every claim is asserted by a test below.
Offsets are Python ``str`` indices (code points) unless said otherwise; the
answer holds accents, CJK and non-BMP emoji before and inside cited spans, and
its first cited span starts at offset 0.

What litellm SENDS
------------------
- openai (``openai/gpt-4o-search-preview``): ``web_search_options`` passed through
  unchanged. A model without "search" in its name gets it too and OpenAI's 400
  comes back as ``litellm.BadRequestError``.
- anthropic: ``tools: [{"type": "web_search_20250305", "name": "web_search",
  "max_uses": N}]`` with N = 1 / 5 / 10 for low / medium / high;
  ``user_location.approximate`` flattened into ``{"type": "approximate", country,
  city, region, timezone}``.
- gemini: ``tools: [{"googleSearch": {}}]``; ``search_context_size`` and
  ``user_location`` are dropped. URL ``{api_base}/models/{m}:generateContent`` or
  ``:streamGenerateContent?alt=sse``; key in the ``x-goog-api-key`` header.
- perplexity: ``web_search_options`` passed through unchanged to
  ``{api_base}/chat/completions`` (no ``stream_options`` when streaming).
- xai: rerouted to ``POST {api_base}/responses`` with ``tools: [{"type":
  "web_search"}]`` (``search_context_size`` and ``user_location`` dropped).
- groq (``groq/openai/gpt-oss-120b``): ``POST {api_base}/chat/completions`` (default
  api_base ``https://api.groq.com/openai/v1``) with ``tools: [{"type": "browser_search"}]``
  and no ``web_search_options`` (every option dropped). Compound systems
  (``groq/groq/compound``, sent as ``model: "groq/compound"``; ``groq/compound``
  is sent as ``compound``) get neither: they always search. Any other model
  (``groq/llama-3.3-70b-versatile``) raises ``litellm.UnsupportedParamsError``
  before any request.
- vertex_ai (``vertex_ai/gemini-2.5-flash``): first google-auth's service-account
  flow: ``POST {token_uri}`` (form: ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``,
  ``assertion`` = an RS256 JWT, ``kid`` = ``private_key_id``, ``iss`` = ``client_email``,
  ``aud`` = ``https://oauth2.googleapis.com/token`` whatever ``token_uri`` says,
  ``scope`` = cloud-platform); the token is cached (one grant for many calls).
  Then Gemini's body (``tools: [{"googleSearch": {}}]``) to
  ``{api_base}/v1/projects/{project}/locations/{location}/publishers/google/models/{m}:generateContent``
  (an ``api_base`` with an empty path gets Vertex's whole path grafted on;
  ``:streamGenerateContent?alt=sse`` when streaming) with ``Authorization: Bearer
  <token>``; ``api_key`` is ignored. Credentials, project and location come from
  ``vertex_credentials`` / ``vertex_project`` / ``vertex_location`` or
  ``VERTEXAI_CREDENTIALS`` (the key file's JSON or its path), ``VERTEXAI_PROJECT``,
  ``VERTEXAI_LOCATION``; ``VERTEXAI_API_BASE`` sets the base. Needs ``google-auth``
  (and ``cryptography`` to sign), which litellm does not install.
- Env alone works: ``OPENAI_BASE_URL``, ``ANTHROPIC_API_BASE``, ``GEMINI_API_BASE``,
  ``PERPLEXITY_API_BASE``, ``XAI_API_BASE``, ``GROQ_API_BASE``, ``VERTEXAI_*`` (+ keys)
  reach the fake without ``api_base``.

What litellm RETURNS
--------------------
Read ``message.annotations`` with ``getattr(message, "annotations", None)``: when a
provider gives none, litellm leaves the attribute OUT (AttributeError), it is not None.
openai, non-streaming: ``message.annotations`` = OpenAI's nested ``url_citation`` s
  unchanged (character offsets; the span is the `` ([domain](url?utm_source=chatgpt.com))``
  link the model wrote after the claim, not the claim; URL carries ``utm_source``).
  No search-count field in usage.
openai, streaming: the chunk after the last text carries ``delta.annotations``
  (same list, no content), then the ``finish_reason`` chunk; ``stream_chunk_builder``
  keeps them on ``message.annotations``.

anthropic, non-streaming: ``message.content`` = the text blocks joined (no markers);
  no ``message.annotations`` (attribute absent).
  ``message.provider_specific_fields["citations"]`` = one list per CITED text block
  (uncited blocks skipped), each citation the raw ``web_search_result_location``
  plus ``supported_text`` = that block's text (no offsets: find the block by its
  text). ``provider_specific_fields["web_search_results"]`` = the raw
  ``web_search_tool_result`` blocks; ``["web_search_calls"]`` = a LIST of openai
  ``ResponseFunctionWebSearch`` OBJECTS (attribute access: ``.id == "ws_<srvtoolu
  id>"``, ``.type == "web_search_call"``, ``.status == "completed"``,
  ``.action.query``, ``.action.sources[i].url``). The server tool call is ALSO in
  ``message.tool_calls``: ``[{id: "srvtoolu_...", type: "function", function:
  {name: "web_search", arguments: '{"query": ...}'}}]`` while ``finish_reason ==
  "stop"`` (never execute it). ``usage.server_tool_use.web_search_requests == 1``.
anthropic, streaming: chunk 1 starts the ``web_search`` tool call (id ``srvtoolu_...``,
  arguments then streamed) and carries ``delta.provider_specific_fields["web_search_calls"]``
  (a dict by tool id of plain dicts, status "in_progress"); one chunk carries
  ``["web_search_results"]``;
  each citation arrives ALONE as ``delta.provider_specific_fields["citation"]``
  (no ``supported_text``) with ``content == ""``, immediately BEFORE the text of
  the block it cites, so the content length at that moment is the claim's start;
  the block's end is not signalled. ``stream_chunk_builder`` flattens all citations
  into ONE inner list (which block each cited is lost), drops ``supported_text``,
  and gives ``web_search_calls`` as a dict by id of dicts (status "completed");
  ``tool_calls`` keeps the ``web_search`` call; no annotations.
  ``usage.server_tool_use.web_search_requests == 1``.

gemini, non-streaming: ``message.annotations`` built from groundingSupports with
  UTF-8 BYTE offsets copied as they are (wrong as ``str`` indices once non-ASCII
  text precedes them), a support whose ``startIndex`` is omitted (offset 0) is
  DROPPED, and only the FIRST ``groundingChunkIndices`` entry becomes an annotation
  (a second source of the same span is lost); ``url`` is the redirect link,
  ``title`` the domain. The raw metadata is ``response.vertex_ai_grounding_metadata``
  (a list, one per candidate). Usage: ``prompt_tokens_details.web_search_requests
  == 1`` (distinct ``webSearchQueries``), ``prompt_tokens_details.tool_use_tokens``
  = ``toolUsePromptTokenCount``, NOT in ``prompt_tokens``, but in ``total_tokens``
  (so total != prompt + completion).
gemini, streaming: the chunk carrying the LAST text also carries ``delta.annotations``
  (same byte offsets, same drops, over the WHOLE text) and the full metadata in
  ``chunk.vertex_ai_grounding_metadata``; the text chunks before it carry ``[{}]``
  there (Gemini sends empty metadata until the end); ``stream_chunk_builder`` keeps
  the annotations. Usage: ``web_search_requests == 1`` and ``tool_use_tokens``, but
  ``total_tokens == prompt + completion``. If the metadata comes in a final
  chunk without content (``gemini_metadata="separate"``) litellm loses it all:
  no annotations anywhere, every ``vertex_ai_grounding_metadata`` empty
  (``web_search_requests`` still 1).

perplexity, non-streaming: content keeps the ``[n]`` markers; ``message.annotations``
  absent (litellm's marker-to-annotation code does not run on this path);
  ``response.citations`` (URLs, ``[n]`` = ``citations[n-1]``) and
  ``response.search_results`` (title, url, date, last_updated, snippet, source)
  are top-level attributes; ``response.model == "perplexity/sonar"``; usage has no
  search count and ``usage.cost`` is Perplexity's dict (``request_cost`` etc.).
perplexity, streaming: every content chunk has ``.citations`` and ``.search_results``;
  ``stream_chunk_builder`` drops both (lost); no annotations.

xai, non-streaming: ``message.annotations`` are FLAT ``{type: "url_citation", url,
  title, start_index, end_index}`` (not nested under ``url_citation``), character
  offsets spanning the ``[[n]](url)`` link written after the claim, ``title`` = "n".
  Usage: ``usage.server_side_tool_usage_details.web_search_calls == 1`` and
  ``usage.num_server_side_tools_used == 1``; no ``prompt_tokens_details.web_search_requests``.
xai, streaming: annotations LOST (no chunk carries them; not on the built
  message); content intact (the links stay in the text); usage without
  ``server_side_tool_usage_details``.

groq, non-streaming: ``message.executed_tools`` kept as an attribute (a list of
  dicts as Groq sent them: ``{index, type: "browser.search", arguments: '{"query": ...}',
  output, search_results: {results: [{title, url, content, score}]}}``), and
  ``message.reasoning`` (NOT ``reasoning_content``); nothing in
  ``provider_specific_fields``; no annotations. Content keeps gpt-oss's
  ``【cursor†Lx-Ly】`` markers. ``usage.server_tool_use.web_search_requests`` counts
  the ``browser.search`` (or ``browser_search``) executions (``browser_open_requests``
  the ``browser.open`` ones); compound's ``type: "search"`` executions are NOT
  counted (no ``server_tool_use``). ``response.model`` is Groq's
  ``openai/gpt-oss-120b``, so ``litellm.completion_cost(completion_response=r)``
  alone fails (it looks the model up as OpenAI's); priced as groq (the call's
  ``_hidden_params["litellm_model_name"]``) it includes $0.005 per search.
groq, streaming: ``executed_tools`` LOST (Groq streams them in ``delta.executed_tools``;
  litellm's stream wrapper drops the field), so the markers in the text cannot be
  resolved and the search count is gone from usage (its cost: tokens only);
  ``delta.reasoning`` becomes ``delta.reasoning_content``; content intact.

vertex_ai: exactly gemini's shapes (annotations with byte offsets and the same
  drops, ``vertex_ai_grounding_metadata``, ``prompt_tokens_details.web_search_requests``),
  priced with the $0.035 per grounded request of litellm's ``gemini-2.5-flash``.

Without ``web_search_options`` the fake answers plain text: anthropic gets no
tools, returns no tool call, no citations and no ``usage.server_tool_use``
attribute; gemini gets no tools and returns no metadata; xai stays on
``/v1/chat/completions`` (no Responses API); groq gets no tools and returns no
executed tools.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import litellm  # tests/conftest.py sets LITELLM_LOCAL_MODEL_COST_MAP before this import
import pytest

from tests.fakes.loop import module_loop
from tests.fakes.native import DEFAULT_SCENARIO, MODELS, PROVIDERS, FakeNative, Scenario, Segment, Source, utf8_offset

litellm.suppress_debug_info = True

pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")

MESSAGES = [{"role": "user", "content": "Café crème, Tokyo et Berlin ?"}]
LOW = {"search_context_size": "low"}
HIGH_IN_FRANCE = {
    "search_context_size": "high",
    "user_location": {"type": "approximate", "approximate": {"country": "FR"}},
}

_LOOP, _close_loop = module_loop()  # one loop: litellm keeps loop-bound clients between calls
run = _LOOP.run


@pytest.fixture(scope="module", autouse=True)
def _close_loop() -> Iterator[None]:
    yield
    _LOOP.close()


async def _call(fake: FakeNative, provider: str, *, stream: bool = False, **kw: Any) -> Any:
    kw.setdefault("web_search_options", LOW)
    if kw["web_search_options"] is None:  # "no search": leave the parameter out
        del kw["web_search_options"]
    args: dict[str, Any] = {
        "model": MODELS[provider],
        "messages": MESSAGES,
        "api_base": fake.api_base(provider),
        "api_key": "fake-key",
        **kw,
    }
    if not stream:
        return await litellm.acompletion(**args)
    response = await litellm.acompletion(stream=True, stream_options={"include_usage": True}, **args)
    return [chunk async for chunk in response]


def complete(fake: FakeNative, provider: str, **kw: Any) -> Any:
    return run(_call(fake, provider, **kw))


def stream(fake: FakeNative, provider: str, **kw: Any) -> list[Any]:
    return run(_call(fake, provider, stream=True, **kw))


def text_of(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def built(chunks: list[Any]) -> Any:
    return litellm.stream_chunk_builder(chunks, messages=MESSAGES)


def annotations(message: Any) -> Any:
    """``message.annotations``: litellm leaves the attribute out (AttributeError) when there are none."""
    return getattr(message, "annotations", None)


def delta_annotations(chunk: Any) -> Any:
    return getattr(chunk.choices[0].delta, "annotations", None) if chunk.choices else None


def psf(chunk: Any) -> dict[str, Any]:
    return (chunk.choices[0].delta.provider_specific_fields or {}) if chunk.choices else {}


def body(fake: FakeNative, provider: str) -> dict[str, Any]:
    requests = fake.requests_for(provider)
    assert requests, f"no request reached {provider}"
    return requests[-1].json


# -- the fake itself --------------------------------------------------------------------


def test_layouts_are_exact_ground_truth() -> None:
    sc = DEFAULT_SCENARIO
    for provider in PROVIDERS:
        lay = sc.layout(provider)
        for span in (*lay.claims, *lay.markers):
            assert lay.content[span.start : span.end] == span.text
        assert [c.text for c in lay.claims] == [s.text for s in sc.segments for _ in s.sources]
        assert lay.claims[0].start == 0  # Gemini omits startIndex for this one
    assert sc.layout("anthropic").content == sc.layout("gemini").content == sc.text
    assert not sc.layout("anthropic").markers and not sc.layout("gemini").markers
    assert [m.text for m in sc.layout("perplexity").markers] == ["[1]", "[2]", "[3]", "[1]"]
    xai = sc.layout("xai")
    assert [m.text for m in xai.markers] == [
        f"[[{n}]]({sc.sources[i].url})" for n, i in ((1, 0), (2, 1), (3, 2), (1, 0))
    ]
    openai = sc.layout("openai")
    link = "([cafe-histoire.example](https://cafe-histoire.example/creme?utm_source=chatgpt.com))"
    assert openai.markers[0].text == link
    assert openai.content[openai.markers[0].start - 1] == " "
    # the text before the cited spans is multi-byte, and a non-BMP emoji sits inside them
    text = sc.text
    assert utf8_offset(text, 40) != 40 and any(ord(ch) > 0xFFFF for ch in sc.segments[2].text)
    assert utf8_offset(text, len(text)) == len(text.encode())
    with pytest.raises(ValueError):
        Scenario("q", (Segment("x", (3,)),), (Source("https://a.example", "A", "a"),))


def test_switches_keys_and_redirects(fake_native: FakeNative) -> None:
    url = fake_native.url
    post = {"model": "sonar", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(timeout=10) as http:
        r = http.post(f"{url}/chat/completions", json=post)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        fake_native.require_key = False
        assert http.post(f"{url}/chat/completions", json=post).status_code == 200

        fake_native.fail = {"anthropic": 529, "gemini": 429}
        r = http.post(f"{url}/v1/messages", json={"model": "m", "max_tokens": 5, "messages": []})
        assert r.status_code == 529 and r.json()["type"] == "error"
        r = http.post(f"{url}/v1beta/models/g:generateContent", json={"contents": []})
        assert r.status_code == 429 and r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"

        src = fake_native.scenario.sources[1]
        fake_native.redirect_base = f"{url}/grounding-api-redirect/"
        r = http.get(src.redirect_uri(fake_native.redirect_base))
        assert r.status_code == 302 and r.headers["location"] == src.url
        assert fake_native.source_for_url(src.redirect_uri(fake_native.redirect_base)) == 1
        assert http.get(f"{url}/grounding-api-redirect/nope").status_code == 404
        assert http.post(f"{url}/v2/unknown", json={}).status_code == 404
    fake_native.reset()
    assert fake_native.fail == {} and fake_native.require_key and not fake_native.requests


@pytest.mark.parametrize("provider", PROVIDERS)
def test_env_alone_reaches_the_fake(provider: str, fake_native: FakeNative) -> None:
    response = run(litellm.acompletion(model=MODELS[provider], messages=MESSAGES, web_search_options=LOW))
    assert response.choices[0].message.content == fake_native.layout(provider).content
    assert len(fake_native.requests_for(provider)) == 1


# -- openai -------------------------------------------------------------------------------


def expected_openai(fake: FakeNative) -> list[dict[str, Any]]:
    lay = fake.layout("openai")
    return [
        {
            "type": "url_citation",
            "url_citation": {
                "end_index": m.end,
                "start_index": m.start,
                "title": fake.scenario.sources[m.source].title,
                "url": fake.scenario.sources[m.source].url + "?utm_source=chatgpt.com",
            },
        }
        for m in lay.markers
    ]


def test_openai(fake_native: FakeNative) -> None:
    lay = fake_native.layout("openai")
    r = complete(fake_native, "openai")
    assert body(fake_native, "openai")["web_search_options"] == LOW
    message = r.choices[0].message
    assert message.content == lay.content
    assert message.annotations == expected_openai(fake_native)
    first = message.annotations[0]["url_citation"]
    link = "([cafe-histoire.example](https://cafe-histoire.example/creme?utm_source=chatgpt.com))"
    assert message.content[first["start_index"] : first["end_index"]] == link
    assert not getattr(r.usage.prompt_tokens_details, "web_search_requests", None)
    assert r.choices[0].finish_reason == "stop"

    chunks = stream(fake_native, "openai")
    assert text_of(chunks) == lay.content
    with_annotations = [i for i, c in enumerate(chunks) if delta_annotations(c)]
    assert len(with_annotations) == 1
    i = with_annotations[0]
    assert delta_annotations(chunks[i]) == expected_openai(fake_native)
    assert not chunks[i].choices[0].delta.content
    assert chunks[i + 1].choices[0].finish_reason == "stop"
    assert built(chunks).choices[0].message.annotations == expected_openai(fake_native)


def test_openai_non_search_model_is_refused(fake_native: FakeNative) -> None:
    with pytest.raises(litellm.BadRequestError, match="Web search options not supported"):
        run(
            litellm.acompletion(
                model="openai/gpt-4o",
                messages=MESSAGES,
                web_search_options=LOW,
                api_base=fake_native.api_base("openai"),
                api_key="k",
                num_retries=0,
            )
        )
    assert body(fake_native, "openai")["web_search_options"] == LOW


# -- anthropic ------------------------------------------------------------------------------


def test_anthropic_request_mapping(fake_native: FakeNative) -> None:
    place = {"country": "FR", "city": "Paris", "region": "IDF", "timezone": "Europe/Paris"}
    location = {"type": "approximate", "approximate": place}
    for size, uses in (("low", 1), ("medium", 5), ("high", 10)):
        options = {"search_context_size": size, "user_location": location}
        complete(fake_native, "anthropic", web_search_options=options)
        assert body(fake_native, "anthropic")["tools"] == [
            {
                "type": "web_search_20250305",
                "name": "web_search",
                "user_location": {"type": "approximate", **place},
                "max_uses": uses,
            }
        ]


def test_anthropic(fake_native: FakeNative) -> None:
    sc = fake_native.scenario
    r = complete(fake_native, "anthropic")
    tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 1}
    assert body(fake_native, "anthropic")["tools"] == [tool]
    message = r.choices[0].message
    assert message.content == sc.text
    with pytest.raises(AttributeError):  # not None: the attribute is absent
        message.annotations  # noqa: B018
    fields = message.provider_specific_fields
    cited = [seg for seg in sc.segments if seg.sources]
    blocks = fields["citations"]
    urls = [[sc.sources[i].url for i in seg.sources] for seg in cited]
    assert [[c["url"] for c in block] for block in blocks] == urls
    assert [{c["supported_text"] for c in block} for block in blocks] == [{seg.text} for seg in cited]
    first = fields["citations"][0][0]
    assert first["type"] == "web_search_result_location" and first["title"] == sc.sources[0].title
    assert first["cited_text"] == sc.sources[0].snippet and first["encrypted_index"]
    assert "start_index" not in first and "end_char_index" not in first
    [result] = fields["web_search_results"]
    assert result["type"] == "web_search_tool_result" and result["tool_use_id"].startswith("srvtoolu_")
    assert [(x["url"], x["page_age"]) for x in result["content"]] == [(s.url, s.page_age) for s in sc.sources]
    [call] = fields["web_search_calls"]  # an openai ResponseFunctionWebSearch object, not a dict
    assert type(call).__name__ == "ResponseFunctionWebSearch"
    assert call.id == f"ws_{result['tool_use_id']}" and call.status == "completed"
    assert call.type == "web_search_call" and call.action.query == sc.query
    assert [s.url for s in call.action.sources] == [s.url for s in sc.sources]
    [tool_call] = message.tool_calls
    assert tool_call.id == result["tool_use_id"] and tool_call.function.name == "web_search"
    assert json.loads(tool_call.function.arguments) == {"query": sc.query}
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.server_tool_use.web_search_requests == 1


def test_anthropic_stream(fake_native: FakeNative) -> None:
    sc = fake_native.scenario
    lay = fake_native.layout("anthropic")
    chunks = stream(fake_native, "anthropic")
    assert text_of(chunks) == sc.text

    first = chunks[0].choices[0].delta
    assert first.tool_calls[0].id.startswith("srvtoolu_")
    assert first.tool_calls[0].function.name == "web_search"
    tool_id = first.tool_calls[0].id
    assert psf(chunks[0])["web_search_calls"][tool_id]["status"] == "in_progress"
    calls = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    args = "".join(call.function.arguments or "" for call in calls)
    assert json.loads(args) == {"query": sc.query}
    assert sum("web_search_results" in psf(c) for c in chunks) == 1

    seen: list[tuple[int, str]] = []
    pos = 0
    for c in chunks:
        fields = psf(c)
        if "citation" in fields:
            assert not c.choices[0].delta.content and "supported_text" not in fields["citation"]
            seen.append((pos, fields["citation"]["url"]))
        pos += len(c.choices[0].delta.content or "") if c.choices else 0
    assert seen == [(claim.start, sc.sources[claim.source].url) for claim in lay.claims]

    final = built(chunks)
    message = final.choices[0].message
    citations = message.provider_specific_fields["citations"]
    assert len(citations) == 1
    assert [c["url"] for c in citations[0]] == [sc.sources[claim.source].url for claim in lay.claims]
    assert all("supported_text" not in c for c in citations[0])
    assert message.provider_specific_fields["web_search_calls"][tool_id]["status"] == "completed"
    assert message.tool_calls[0].function.name == "web_search" and annotations(message) is None
    assert final.usage.server_tool_use.web_search_requests == 1


def test_anthropic_without_search(fake_native: FakeNative) -> None:
    r = complete(fake_native, "anthropic", web_search_options=None)
    assert "tools" not in body(fake_native, "anthropic")
    message = r.choices[0].message
    assert message.content == fake_native.scenario.text and not message.tool_calls
    assert not (message.provider_specific_fields or {}).get("citations")
    assert getattr(r.usage, "server_tool_use", None) is None


# -- gemini ---------------------------------------------------------------------------------


def expected_gemini(fake: FakeNative) -> list[dict[str, Any]]:
    """What litellm builds: byte offsets, offset-0 supports dropped, first source of a span only."""
    sc, lay = fake.scenario, fake.layout("gemini")
    out = []
    for claim in lay.claims:
        seg = next(s for s in sc.segments if s.text == claim.text)
        if claim.start == 0 or claim.source != seg.sources[0]:
            continue
        source = sc.sources[claim.source]
        out.append(
            {
                "type": "url_citation",
                "url_citation": {
                    "end_index": utf8_offset(lay.content, claim.end),
                    "start_index": utf8_offset(lay.content, claim.start),
                    "title": source.domain,
                    "url": source.redirect_uri(),
                },
            }
        )
    return out


def test_gemini(fake_native: FakeNative) -> None:
    sc = fake_native.scenario
    r = complete(fake_native, "gemini", web_search_options=HIGH_IN_FRANCE)
    request = fake_native.requests_for("gemini")[-1]
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == "fake-key"
    assert request.json["tools"] == [{"googleSearch": {}}]
    message = r.choices[0].message
    assert message.content == sc.text
    found = message.annotations
    assert found == expected_gemini(fake_native)
    assert len(found) == 2  # 4 (segment, source) pairs: the one at 0 and the second source of a span are gone
    a = found[0]["url_citation"]
    assert message.content[a["start_index"] : a["end_index"]] != sc.segments[2].text  # bytes, not characters
    assert message.content.encode()[a["start_index"] : a["end_index"]].decode() == sc.segments[2].text
    [metadata] = r.vertex_ai_grounding_metadata
    assert "startIndex" not in metadata["groundingSupports"][0]["segment"]
    assert metadata["groundingSupports"][2]["groundingChunkIndices"] == [2, 0]
    assert metadata["webSearchQueries"] == [sc.query]
    web = {"uri": sc.sources[0].redirect_uri(), "title": "cafe-histoire.example"}
    assert metadata["groundingChunks"][0]["web"] == web
    details = r.usage.prompt_tokens_details
    assert details.web_search_requests == 1 and details.tool_use_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens + details.tool_use_tokens


def test_gemini_stream(fake_native: FakeNative) -> None:
    chunks = stream(fake_native, "gemini")
    request = fake_native.requests_for("gemini")[-1]
    assert request.path.endswith(":streamGenerateContent") and request.query == {"alt": "sse"}
    assert text_of(chunks) == fake_native.scenario.text
    annotated = [c for c in chunks if delta_annotations(c)]
    with_text = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(annotated) == 1 and annotated[0] is with_text[-1]  # on the last text chunk
    assert all(c.vertex_ai_grounding_metadata == [{}] for c in with_text[:-1])
    assert delta_annotations(annotated[0]) == expected_gemini(fake_native)
    assert annotated[0].vertex_ai_grounding_metadata[0]["groundingSupports"]
    assert chunks[0].vertex_ai_grounding_metadata == [{}]
    assert built(chunks).choices[0].message.annotations == expected_gemini(fake_native)
    usage = chunks[-1].usage
    details = usage.prompt_tokens_details
    assert details.web_search_requests == 1 and details.tool_use_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    fake_native.gemini_metadata = "separate"
    chunks = stream(fake_native, "gemini")
    assert text_of(chunks) == fake_native.scenario.text
    assert not any(delta_annotations(c) for c in chunks)
    assert all(not any(getattr(c, "vertex_ai_grounding_metadata", None) or [{}]) for c in chunks)
    assert not annotations(built(chunks).choices[0].message)
    assert chunks[-1].usage.prompt_tokens_details.web_search_requests == 1


def test_gemini_without_search(fake_native: FakeNative) -> None:
    r = complete(fake_native, "gemini", web_search_options=None)
    assert "tools" not in body(fake_native, "gemini")
    assert r.choices[0].message.content == fake_native.scenario.text and not annotations(r.choices[0].message)
    assert not r.vertex_ai_grounding_metadata


# -- perplexity -------------------------------------------------------------------------------


def test_perplexity(fake_native: FakeNative) -> None:
    sc = fake_native.scenario
    lay = fake_native.layout("perplexity")
    r = complete(fake_native, "perplexity")
    assert body(fake_native, "perplexity")["web_search_options"] == LOW
    message = r.choices[0].message
    assert message.content == lay.content and "[3][1]" in message.content
    assert annotations(message) is None
    assert r.citations == [s.url for s in sc.sources]
    found = [(x["title"], x["url"], x["date"], x["snippet"]) for x in r.search_results]
    assert found == [(s.title, s.url, s.date, s.snippet) for s in sc.sources]
    assert r.model == "perplexity/sonar"
    assert r.usage.prompt_tokens_details is None or not r.usage.prompt_tokens_details.web_search_requests
    assert r.usage.cost["request_cost"] == 0.005 and r.usage.search_context_size == "low"
    for marker in lay.markers:  # [n] -> citations[n-1]
        assert r.citations[int(marker.text[1:-1]) - 1] == sc.sources[marker.source].url

    chunks = stream(fake_native, "perplexity")
    assert "stream_options" not in body(fake_native, "perplexity")
    assert text_of(chunks) == lay.content
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert all(c.citations == r.citations and len(c.search_results) == 3 for c in content_chunks)
    assert not any(delta_annotations(c) for c in chunks)
    final = built(chunks)
    assert getattr(final, "citations", None) is None and getattr(final, "search_results", None) is None


# -- xai --------------------------------------------------------------------------------------


def test_xai(fake_native: FakeNative) -> None:
    sc = fake_native.scenario
    lay = fake_native.layout("xai")
    r = complete(fake_native, "xai", web_search_options=HIGH_IN_FRANCE)
    sent = body(fake_native, "xai")
    assert fake_native.requests_for("xai")[-1].path == "/v1/responses"
    assert sent["tools"] == [{"type": "web_search"}] and "web_search_options" not in sent
    message = r.choices[0].message
    assert message.content == lay.content
    assert message.annotations == [
        {
            "type": "url_citation",
            "end_index": m.end,
            "start_index": m.start,
            "title": str(lay.numbers[m.source]),
            "url": sc.sources[m.source].url,
        }
        for m in lay.markers
    ]
    a = message.annotations[1]
    assert message.content[a["start_index"] : a["end_index"]] == f"[[2]]({sc.sources[1].url})"
    assert r.usage.server_side_tool_usage_details["web_search_calls"] == 1
    assert r.usage.num_server_side_tools_used == 1
    assert not getattr(r.usage.prompt_tokens_details, "web_search_requests", None)

    chunks = stream(fake_native, "xai")
    assert text_of(chunks) == lay.content
    assert not any(delta_annotations(c) for c in chunks)
    assert not annotations(built(chunks).choices[0].message)
    assert getattr(chunks[-1].usage, "server_side_tool_usage_details", None) is None


def test_xai_without_search(fake_native: FakeNative) -> None:
    r = complete(fake_native, "xai", web_search_options=None)
    assert fake_native.requests_for("xai") == []  # without web_search_options xAI stays on chat completions
    assert fake_native.requests[-1].path == "/v1/chat/completions"
    assert r.choices[0].message.content == fake_native.scenario.text and not annotations(r.choices[0].message)


# -- groq -------------------------------------------------------------------------------------


def token_cost(info: dict[str, Any], usage: Any) -> float:
    """Tokens at the prices of litellm's cost-map entry ``info``."""
    return usage.prompt_tokens * info["input_cost_per_token"] + usage.completion_tokens * info["output_cost_per_token"]


def groq_tool(fake: FakeNative, kind: str = "browser.search") -> dict[str, Any]:
    """The executed tool the fake's Groq reports for the current scenario."""
    sc = fake.scenario
    results = [{"title": s.title, "url": s.url, "content": s.snippet, "score": round(0.9 - 0.1 * i, 4)}
               for i, s in enumerate(sc.sources)]
    return {"index": 0, "type": kind, "arguments": json.dumps({"query": sc.query}, ensure_ascii=False),
            "output": fake.groq_page(), "search_results": {"results": results}}


def test_groq_page_and_markers_agree() -> None:
    sc = DEFAULT_SCENARIO
    page, lines = sc.groq_page()
    numbered = dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "") for line in
                    page.split("\n") if line.startswith("L"))
    for i, (link, snippet) in lines.items():
        assert numbered[f"L{link}"] == f"  * 【{i}†{sc.sources[i].title}†{sc.sources[i].domain}】"
        assert numbered[f"L{snippet}"] == sc.sources[i].snippet
    lay = sc.layout("groq")
    assert [m.text for m in lay.markers] == ["【0†L2-L3】", "【0†L5-L6】", "【0†L8-L9】", "【0†L3】"]
    assert sc.layout("groq", groq_style="none").content == sc.text
    links = sc.layout("groq", groq_style="links").markers
    assert links[0].text == f"([cafe-histoire.example]({sc.sources[0].url}))"


def test_groq(fake_native: FakeNative) -> None:
    lay = fake_native.layout("groq")
    r = complete(fake_native, "groq", web_search_options=HIGH_IN_FRANCE)
    request = fake_native.requests_for("groq")[-1]
    assert request.path == "/openai/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer fake-key"
    assert request.json["tools"] == [{"type": "browser_search"}] and "web_search_options" not in request.json
    assert request.json["model"] == "openai/gpt-oss-120b"
    message = r.choices[0].message
    assert message.content == lay.content and "【0†L8-L9】【0†L3】" in message.content
    assert message.executed_tools == [groq_tool(fake_native)]  # plain dicts, as Groq sent them
    assert message.reasoning and getattr(message, "reasoning_content", None) is None
    assert not message.provider_specific_fields and annotations(message) is None
    assert r.usage.server_tool_use.web_search_requests == 1
    assert r.model == "openai/gpt-oss-120b" and r._hidden_params["litellm_model_name"] == MODELS["groq"]
    with pytest.raises(Exception, match="isn't mapped"):  # looked up as an OpenAI model
        litellm.completion_cost(completion_response=r)
    info = litellm.model_cost[MODELS["groq"]]
    tokens = token_cost(info, r.usage)
    fee = info["search_context_cost_per_query"]["search_context_size_medium"]
    cost = litellm.completion_cost(completion_response=r, custom_llm_provider="groq")
    assert cost == pytest.approx(tokens + fee) and fee > 0


def test_groq_stream(fake_native: FakeNative) -> None:
    lay = fake_native.layout("groq")
    chunks = stream(fake_native, "groq")
    assert body(fake_native, "groq")["tools"] == [{"type": "browser_search"}]
    assert text_of(chunks) == lay.content
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert not any(getattr(d, "executed_tools", None) or (d.provider_specific_fields or {}) for d in deltas)
    assert "".join(getattr(d, "reasoning_content", None) or "" for d in deltas)
    usage = chunks[-1].usage
    assert usage.prompt_tokens and getattr(usage, "server_tool_use", None) is None
    final = built(chunks)
    assert getattr(final.choices[0].message, "executed_tools", None) is None
    info = litellm.model_cost[MODELS["groq"]]
    tokens = token_cost(info, usage)
    assert litellm.completion_cost(completion_response=final, model=MODELS["groq"]) == pytest.approx(tokens)


def test_groq_compound(fake_native: FakeNative) -> None:
    fake_native.groq_citations = "links"
    r = run(litellm.acompletion(model="groq/groq/compound", messages=MESSAGES, web_search_options=LOW,
                                api_base=fake_native.api_base("groq"), api_key="k"))
    sent = body(fake_native, "groq")
    assert sent["model"] == "groq/compound" and "tools" not in sent and "web_search_options" not in sent
    message = r.choices[0].message
    assert message.content == fake_native.layout("groq").content
    [tool] = message.executed_tools
    assert tool["type"] == "search" and tool["search_results"] == groq_tool(fake_native)["search_results"]
    assert getattr(r.usage, "server_tool_use", None) is None  # litellm counts browser.search only
    run(litellm.acompletion(model="groq/compound-mini", messages=MESSAGES, web_search_options=LOW,
                            api_base=fake_native.api_base("groq"), api_key="k"))
    assert body(fake_native, "groq")["model"] == "compound-mini" and "tools" not in body(fake_native, "groq")


def test_groq_model_without_search_is_refused(fake_native: FakeNative) -> None:
    with pytest.raises(litellm.UnsupportedParamsError, match="web_search_options"):
        run(litellm.acompletion(model="groq/llama-3.3-70b-versatile", messages=MESSAGES, web_search_options=LOW,
                                api_base=fake_native.api_base("groq"), api_key="k"))
    assert not fake_native.requests


def test_groq_without_search(fake_native: FakeNative) -> None:
    r = complete(fake_native, "groq", web_search_options=None)
    assert "tools" not in body(fake_native, "groq")
    message = r.choices[0].message
    assert message.content == fake_native.scenario.text and getattr(message, "executed_tools", None) is None
    assert getattr(r.usage, "server_tool_use", None) is None


# -- vertex_ai --------------------------------------------------------------------------------


def jwt_claims(assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
    head, claims, _ = (base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in assertion.split("."))
    return json.loads(head), json.loads(claims)


def test_vertex(fake_native: FakeNative) -> None:
    sc = fake_native.scenario
    # litellm caches a token per credentials: another client_id makes this call fetch its own
    account = {**fake_native.service_account(), "client_id": str(uuid.uuid4().int)[:21]}
    r = complete(fake_native, "vertex_ai", web_search_options=HIGH_IN_FRANCE, vertex_credentials=json.dumps(account))
    complete(fake_native, "vertex_ai", web_search_options=LOW, vertex_credentials=json.dumps(account))
    [grant] = [q for q in fake_native.requests if q.path == "/token"]  # one grant, then the cached token
    assert grant.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(pair.split("=", 1) for pair in grant.body.decode().split("&"))
    assert form["grant_type"] == "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
    head, claims = jwt_claims(form["assertion"])
    assert head["alg"] == "RS256" and head["kid"] == account["private_key_id"]
    assert claims["iss"] == account["client_email"] and claims["aud"] == "https://oauth2.googleapis.com/token"
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    request, again = fake_native.requests_for("vertex_ai")
    assert again.headers["authorization"] == request.headers["authorization"]
    assert request.path == ("/v1/projects/fake-project/locations/us-central1/publishers/google/models/"
                            "gemini-2.5-flash:generateContent")
    assert request.headers["authorization"].removeprefix("Bearer ") in fake_native.tokens_issued
    assert request.json["tools"] == [{"googleSearch": {}}]
    message = r.choices[0].message
    assert message.content == sc.text and message.annotations == expected_gemini(fake_native)
    [metadata] = r.vertex_ai_grounding_metadata
    assert metadata["webSearchQueries"] == [sc.query] and len(metadata["groundingChunks"]) == 3
    assert r.usage.prompt_tokens_details.web_search_requests == 1
    info = litellm.model_cost["gemini-2.5-flash"]
    assert info["litellm_provider"].startswith("vertex_ai")
    tokens = token_cost(info, r.usage)
    fee = info["search_context_cost_per_query"]["search_context_size_medium"]
    assert litellm.completion_cost(completion_response=r) == pytest.approx(tokens + fee)


def test_vertex_stream(fake_native: FakeNative) -> None:
    chunks = stream(fake_native, "vertex_ai")
    request = fake_native.requests_for("vertex_ai")[-1]
    assert request.path.endswith("/models/gemini-2.5-flash:streamGenerateContent") and request.query == {"alt": "sse"}
    assert text_of(chunks) == fake_native.scenario.text
    annotated = [c for c in chunks if delta_annotations(c)]
    assert len(annotated) == 1 and delta_annotations(annotated[0]) == expected_gemini(fake_native)
    assert chunks[-1].usage.prompt_tokens_details.web_search_requests == 1


def test_vertex_token_is_checked(fake_native: FakeNative) -> None:
    url = fake_native.url
    path = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent"
    post = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    fake_native.service_account()
    with httpx.Client(timeout=10) as http:
        r = http.post(url + path, json=post, headers={"Authorization": "Bearer ya29.made-up"})
        assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
        forged = ".".join(base64.urlsafe_b64encode(json.dumps(x).encode()).decode().rstrip("=")
                          for x in ({"alg": "RS256"}, {"iss": "x"})) + ".c2ln"
        data = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": forged}
        r = http.post(f"{url}/token", data=data)
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
