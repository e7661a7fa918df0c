"""FakeNative: providers' OWN web search, in each provider's real wire format.

One server answers seven providers' native-search APIs, non-streaming and
streaming, so litellm's real translation of ``web_search_options`` runs
(provider: path the fake answers -> what litellm is given):

- ``openai`` (search models, ``gpt-4o-search-preview``): ``POST /v1/chat/completions``
  -> ``model="openai/<m>", api_base=f"{url}/v1"``; Bearer key;
- ``anthropic`` (server tool ``web_search_20250305``): ``POST /v1/messages``
  -> ``model="anthropic/<m>", api_base=url``; ``x-api-key``;
- ``gemini`` (tool ``googleSearch``): ``POST /v1beta/models/{m}:generateContent`` and
  ``:streamGenerateContent?alt=sse`` -> ``model="gemini/<m>", api_base=f"{url}/v1beta"``;
  ``x-goog-api-key``;
- ``perplexity`` (sonar models search on every request): ``POST /chat/completions``
  -> ``model="perplexity/<m>", api_base=url`` (or ``PERPLEXITY_API_BASE``); Bearer key;
- ``xai`` (litellm reroutes ``web_search_options`` to the Responses API with a
  ``web_search`` tool): ``POST /v1/responses`` -> ``model="xai/<m>", api_base=f"{url}/v1"``
  (or ``XAI_API_BASE``); Bearer key;
- ``groq`` (gpt-oss with the ``browser_search`` tool, or a compound system, which
  searches without one): ``POST /openai/v1/chat/completions`` ->
  ``model="groq/<m>", api_base=f"{url}/openai/v1"`` (or ``GROQ_API_BASE``); Bearer key;
- ``vertex_ai`` (Gemini on Vertex, tool ``googleSearch``): ``POST
  /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:generateContent`` (and
  ``:streamGenerateContent?alt=sse``; ``/v1beta1/`` too) -> ``model="vertex_ai/<m>",
  api_base=url``; a Bearer token that this fake issued at ``POST /token``, Google's
  OAuth token endpoint: a JWT-bearer grant (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``)
  whose RS256 signature, ``kid``, ``iss``, ``aud`` (Google's token URL, as google-auth
  addresses it), scope and lifetime are checked against :meth:`FakeNative.service_account`,
  a service-account key file whose ``token_uri`` is this fake and whose RSA key
  is made at run time (``cryptography``); litellm needs ``google-auth`` for it.

:meth:`FakeNative.env` gives the API-base and dummy-key environment variables
for all seven (``VERTEXAI_CREDENTIALS`` holds the key file's JSON,
``VERTEXAI_PROJECT`` / ``VERTEXAI_LOCATION`` the fake's); :meth:`FakeNative.api_base`
the ``api_base`` for one.

What the model answers is a :class:`Scenario`: text segments, some cited to
:class:`Source` s. The default one (:data:`DEFAULT_SCENARIO`) puts accents,
CJK and emoji (inside and outside the BMP) before and inside cited spans, and
starts with a cited span at offset 0, so byte/character/UTF-16 offset
mistakes and Gemini's omitted ``startIndex`` show. Each provider gets the
scenario rendered in its own citation convention (:meth:`Scenario.layout`
gives the exact content and the ground-truth spans, in characters):

- ``openai``: after each cited segment, one `` ([domain](url?utm_source=chatgpt.com))``
  link per source (as search models write them); ``message.annotations`` are
  nested ``url_citation`` s whose character span is that parenthesised link
  (OpenAI's spans cover the link, not the claim), URL with ``utm_source``.
  Streaming: text deltas, then one delta carrying only ``annotations``, then
  the ``finish_reason`` chunk (as OpenAI sends them).
- ``anthropic``: ``server_tool_use`` (``srvtoolu_...``, ``web_search``, ``{query}``),
  ``web_search_tool_result`` (``web_search_result`` s with ``encrypted_content``
  and ``page_age``), then one ``text`` block per segment; cited blocks carry
  ``citations: [{type: "web_search_result_location", url, title, cited_text,
  encrypted_index}]`` (no offsets: the block is the span). ``usage.server_tool_use
  = {web_search_requests: 1, web_fetch_requests: 0}``. Streaming: the event
  sequence of the real API (``content_block_start`` of ``server_tool_use`` with
  ``input: {}`` then ``input_json_delta`` s; the result block whole in its
  ``content_block_start``; cited text blocks start with ``citations: []`` and
  get one ``citations_delta`` each before their ``text_delta`` s; usage with
  ``server_tool_use`` in ``message_delta``).
- ``gemini``: plain text; ``candidates[0].groundingMetadata`` with
  ``webSearchQueries``, ``searchEntryPoint``, ``groundingChunks: [{web: {uri:
  redirect link, title: domain}}]`` and ``groundingSupports`` whose segment
  offsets are UTF-8 BYTE offsets into the candidate's text, ``startIndex``
  omitted when 0. ``usageMetadata`` as Gemini 2.5 reports a grounded answer
  (``toolUsePromptTokenCount`` / ``toolUsePromptTokensDetails`` counted in
  ``totalTokenCount``). Streaming: every chunk carries ``groundingMetadata:
  {}`` and the last one (last text, ``finishReason``) the whole metadata; with
  ``gemini_metadata="separate"`` the metadata comes in a final chunk with no
  ``content`` (litellm's code mentions such metadata-only chunks with web
  search + reasoning).
- ``perplexity``: ``[n]`` markers right after cited segments (``n`` = 1-based
  index into ``citations``), top-level ``citations: [url...]`` and
  ``search_results: [{title, url, date, last_updated, snippet, source}]``.
  Streaming ("full" stream mode): every chunk carries ``citations``,
  ``search_results``, ``usage`` and the aggregated ``message`` beside the delta;
  no ``[DONE]``.
- ``xai``: ``[[n]](url)`` markdown links right after cited segments (``n`` in
  order of first citation); the message's ``output_text`` carries flat
  ``{type: "url_citation", url, title: "n", start_index, end_index}`` whose
  character span is the link (xAI puts the citation number in ``title``);
  a ``web_search_call`` output item comes first; usage has
  ``num_server_side_tools_used`` and ``server_side_tool_usage_details.web_search_calls``.
  Streaming: ``response.created`` ... ``response.output_text.delta``,
  ``response.output_text.annotation.added`` (right after the delta that
  completes the link), ... ``response.completed`` (with the whole response).

- ``groq``: Groq's chat completion with ``message.executed_tools`` (one search:
  ``{index: 0, type: "browser.search" (compound: "search"), arguments: '{"query": ...}',
  output, search_results: {results: [{title, url, content, score}]}}``, the shape of
  Groq's SDK types) and ``message.reasoning``; ``usage`` with Groq's timings,
  ``x_groq.id``, ``service_tier: "on_demand"``. gpt-oss cites as its browser tool
  instructs (``【{cursor}†L{line}-L{line}】``, the cursor being the page's place in the
  browsing session, i.e. the executed tool's ``index``): the ``output`` is the
  search page rendered as gpt-oss's reference browser renders one (``[0] query``,
  a scrollbar, ``L<n>: `` numbered lines, each result a ``【i†title†domain】`` link line
  followed by its snippet line, see :meth:`Scenario.groq_page`), and each cited
  segment is followed by one marker per source: the result's link and snippet
  lines the first time, its snippet line alone after that. ``groq_citations``
  switches to `` ([domain](url))`` links (the form gpt-oss's reference code rewrites
  its markers to) or to no citations at all. Compound output lists the results
  as ``Title: / URL: / Content: / Score:`` blocks. Streaming: ``delta.reasoning``
  pieces, then ``delta.executed_tools`` twice (the tool as it starts, without
  ``output``; then with its results), then the content, then a ``finish_reason``
  chunk with ``x_groq.usage`` (and ``usage`` with ``include_usage``), ``[DONE]``.
  Which of these Groq details are documented: the ``executed_tools`` fields and
  ``delta.executed_tools`` (Groq's SDK types), the marker syntax (gpt-oss's browser
  tool). Assumed: the exact page rendering in ``output`` and the two-step
  streaming of a tool. Groq answers 400 to ``web_search_options`` (litellm never
  sends it) and to ``browser_search`` on a model other than gpt-oss.
- ``vertex_ai``: exactly ``gemini``'s bodies, plus ``createTime`` and
  ``usageMetadata.trafficType``.

Anthropic's ``web_search`` tool takes ``allowed_domains`` or ``blocked_domains``
(both: 400, as the real API answers): its results and citations then keep only
the sources on (or off) those domains and their subdomains. Gemini and Vertex
image models (a model name with ``image``) answer ``generationConfig.responseModalities``
with ``IMAGE`` with a real PNG as an ``inlineData`` part after the text (in the
last chunk when streaming), sized by ``imageConfig.aspectRatio`` (or its proto
name, ``image_config.aspect_ratio``), and report it as ``candidatesTokensDetails``
``IMAGE`` tokens (1290, Gemini 2.5 Flash Image's count) inside ``candidatesTokenCount``;
other models answer such a request 400, and ``imageConfig`` without ``IMAGE``
is a 400 too.

Without the provider's search switched on (a model without ``search`` in its
name on ``/v1/chat/completions``, no web search tool for Anthropic / Gemini /
Vertex / xAI, no ``browser_search`` for a Groq model that is not compound,
``disable_search`` for Perplexity) the model answers the scenario's text
with no markers, citations or search usage; ``/v1/chat/completions`` thus also
serves plain OpenAI-compatible chat (e.g. xAI without ``web_search_options``).
An OpenAI model without ``search`` in its name answers 400 to
``web_search_options``, as OpenAI does. Every request is recorded
(``.requests``; :meth:`FakeNative.requests_for`).

Switches: ``fail[provider] = status`` answers that provider with its error body;
``require_key`` (on by default) answers 401 without the provider's key header
(for Vertex: without a token this fake issued);
``chunk_ms`` spaces streamed chunks; ``latency_ms`` delays answers.
``groq_citations`` sets how Groq's model cites (``markers``, ``links``, ``none``).
``GET /grounding-api-redirect/<token>`` answers 302 to the source's URL, so
setting ``redirect_base = f"{url}/grounding-api-redirect/"`` makes Gemini's
redirect links resolvable locally.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from tests.fakes.base import FakeServer, RecordedRequest, Response
from tests.fakes.media import IMAGE_TOKENS, png_for_aspect

__all__ = [
    "MODELS",
    "DEFAULT_SCENARIO",
    "PROVIDERS",
    "REDIRECT_BASE",
    "FakeNative",
    "Layout",
    "Scenario",
    "Segment",
    "Source",
    "Span",
    "utf8_offset",
]

PROVIDERS = ("openai", "anthropic", "gemini", "perplexity", "xai", "groq", "vertex_ai")
"""The providers whose native search the fake speaks."""

Provider = Literal["openai", "anthropic", "gemini", "perplexity", "xai", "groq", "vertex_ai"]

GroqStyle = Literal["markers", "links", "none"]
"""How the Groq fake's model cites: gpt-oss's ``【cursor†Lx-Ly】`` markers, markdown links, or not at all."""

GROQ_COMPOUND_MODELS = frozenset({"compound", "compound-mini", "groq/compound", "groq/compound-mini"})
"""Groq's compound systems (search on their own, no tool needed; litellm strips one ``groq/``)."""

REDIRECT_BASE = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/"
"""Where Gemini's grounding links point (the real host; override per server with ``redirect_base``)."""

_SSE = "text/event-stream; charset=utf-8"
_OPENAI_UTM = "utm_source=chatgpt.com"


def utf8_offset(text: str, char_offset: int) -> int:
    """The UTF-8 byte offset of character ``char_offset`` in ``text``."""
    return len(text[:char_offset].encode("utf-8"))


def _tokens(value: Any) -> int:
    """A token estimate: about four characters per token."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return max(1, len(text) // 4)


def _pieces(text: str, size: int = 7) -> list[str]:
    """Streaming deltas of text: ``size`` characters each (never splits a character)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _opaque(*parts: str, length: int = 96) -> str:
    """A deterministic base64 blob, like the providers' encrypted fields."""
    digest = b"".join(hashlib.sha256(f"{i}|{'|'.join(parts)}".encode()).digest() for i in range(4))
    return base64.b64encode(digest).decode()[:length]


# -- scenarios ----------------------------------------------------------------------


#: A model id per provider that litellm routes to each provider's native search.
MODELS = {
    "openai": "openai/gpt-4o-search-preview",
    "anthropic": "anthropic/claude-sonnet-4-5-20250929",
    "gemini": "gemini/gemini-2.5-flash",
    "perplexity": "perplexity/sonar",
    "xai": "xai/grok-4-fast",
    "groq": "groq/openai/gpt-oss-120b",
    "vertex_ai": "vertex_ai/gemini-2.5-flash",
}


@dataclass(frozen=True)
class Source:
    """A web page the provider's search found."""

    url: str
    title: str
    snippet: str
    page_age: str | None = None
    """Anthropic's ``page_age`` (free text, e.g. ``"2 days ago"``)."""
    date: str | None = None
    """Perplexity's ``date`` (``YYYY-MM-DD``)."""

    @property
    def domain(self) -> str:
        """Host without ``www.`` (Gemini's ``title``, OpenAI's link text)."""
        host = urlsplit(self.url).hostname or ""
        return host.removeprefix("www.")

    @property
    def redirect_token(self) -> str:
        """The opaque tail of Gemini's redirect link for this source."""
        return "AUZIYQ" + base64.urlsafe_b64encode(self.url.encode()).decode().rstrip("=")

    def redirect_uri(self, base: str = REDIRECT_BASE) -> str:
        """Gemini's ``groundingChunks[].web.uri`` for this source."""
        return base + self.redirect_token


@dataclass(frozen=True)
class Segment:
    """A piece of the answer; cited to ``sources`` (indices into the scenario's sources) if any."""

    text: str
    sources: tuple[int, ...] = ()


@dataclass(frozen=True)
class Span:
    """A character span of a provider's ``message.content`` tied to a source.

    In :attr:`Layout.claims` it is a cited segment's text; in
    :attr:`Layout.markers` the marker or link the provider wrote for it.
    """

    start: int
    end: int
    text: str
    source: int


@dataclass(frozen=True)
class Layout:
    """A scenario as one provider's ``message.content`` (what litellm hands back), with ground truth."""

    content: str
    claims: tuple[Span, ...]
    """One per (cited segment, source), in order; character offsets into ``content``."""
    markers: tuple[Span, ...]
    """One per (cited segment, source): the ``[n]`` / ``[[n]](url)`` / ``([domain](url))``
    the provider wrote after the segment (empty for Anthropic and Gemini)."""
    numbers: dict[int, int] = field(default_factory=dict)
    """Source index -> citation number shown in the text (Perplexity, xAI)."""


@dataclass(frozen=True)
class Scenario:
    """What the model answers: a search query, the segments of its answer and the sources."""

    query: str
    segments: tuple[Segment, ...]
    sources: tuple[Source, ...]

    def __post_init__(self) -> None:
        for seg in self.segments:
            if any(not 0 <= i < len(self.sources) for i in seg.sources):
                raise ValueError(f"segment {seg.text!r} cites an unknown source")

    @property
    def text(self) -> str:
        """The answer without markers (Anthropic's and Gemini's content)."""
        return "".join(seg.text for seg in self.segments)

    @property
    def cited(self) -> tuple[int, ...]:
        """Indices of the sources cited at least once, in order of first citation."""
        order: list[int] = []
        for seg in self.segments:
            for i in seg.sources:
                if i not in order:
                    order.append(i)
        return tuple(order)

    def layout(self, provider: str, *, searched: bool = True, groq_style: GroqStyle = "markers") -> Layout:
        """The content ``provider`` returns for this scenario, with claim and marker spans.

        ``searched=False``: the answer given without search (plain text, no spans).
        ``groq_style``: how Groq's model cites (see :data:`GroqStyle`).
        """
        if not searched or (provider == "groq" and groq_style == "none"):
            return Layout(self.text, (), ())
        numbers: dict[int, int] = {}
        if provider == "perplexity":
            numbers = {i: i + 1 for i in range(len(self.sources))}
        elif provider == "xai":
            numbers = {src: n for n, src in enumerate(self.cited, 1)}
        out: list[str] = []
        pos = 0
        claims: list[Span] = []
        markers: list[Span] = []
        seen: set[int] = set()
        lines = self.groq_page()[1]
        for seg in self.segments:
            start = pos
            out.append(seg.text)
            pos += len(seg.text)
            for src in seg.sources:
                claims.append(Span(start, pos, seg.text, src))
            for src in seg.sources:
                if provider == "groq":
                    marker = self._groq_marker(groq_style, src, first=src not in seen, lines=lines)
                    seen.add(src)
                else:
                    marker = self._marker(provider, src, numbers)
                if not marker:
                    continue
                lead = len(marker) - len(marker.lstrip(" "))
                markers.append(Span(pos + lead, pos + len(marker), marker[lead:], src))
                out.append(marker)
                pos += len(marker)
        return Layout("".join(out), tuple(claims), tuple(markers), numbers)

    def _marker(self, provider: str, src: int, numbers: dict[int, int]) -> str:
        source = self.sources[src]
        if provider == "openai":
            return f" ([{source.domain}]({_utm(source.url)}))"
        if provider == "perplexity":
            return f"[{numbers[src]}]"
        if provider == "xai":
            return f"[[{numbers[src]}]]({source.url})"
        return ""

    def _groq_marker(self, style: str, src: int, *, first: bool, lines: dict[int, tuple[int, int]]) -> str:
        if style == "links":
            return f" ([{self.sources[src].domain}]({self.sources[src].url}))"
        link, snippet = lines[src]
        # gpt-oss cites lines of the page at a cursor (the search page is cursor 0): the
        # result's link and snippet lines the first time, its snippet line alone after that.
        return f"【0†L{link}-L{snippet}】" if first else f"【0†L{snippet}】"

    def groq_page(self) -> tuple[str, dict[int, tuple[int, int]]]:
        """Groq's ``browser.search`` output for this scenario, and each source's (link, snippet) line.

        Rendered as gpt-oss's reference browser tool renders a search page: a
        ``[cursor]`` header, a scrollbar, then ``L<n>: `` numbered lines where each
        result is a ``【i†title†domain】`` link (``i`` = its index in
        ``search_results.results``) followed by its snippet.
        """
        body = ["# Search Results", ""]
        lines: dict[int, tuple[int, int]] = {}
        for i, source in enumerate(self.sources):
            lines[i] = (len(body), len(body) + 1)
            body += [f"  * 【{i}†{source.title}†{source.domain}】", source.snippet, ""]
        last = len(body) - 1
        numbered = "\n".join(f"L{n}: {line}" for n, line in enumerate(body))
        return f"[0] {self.query}\n**viewing lines [0 - {last}] of {last}**\n\n{numbered}", lines


def _utm(url: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{_OPENAI_UTM}"


DEFAULT_SCENARIO = Scenario(
    query="café crème Paris 東京 首都 Brücke Spree",
    segments=(
        Segment("Le café crème est né à Paris ☕.", (0,)),
        Segment(" "),
        Segment("東京は日本の首都です 🗼。", (1,)),
        Segment(" Außerdem, laut Überlieferung: "),
        Segment("Die Brücke über die Spree ist berühmt 🌉.", (2, 0)),
        Segment(" ¿Más? ¡Sí! 🎉"),
    ),
    sources=(
        Source(
            "https://cafe-histoire.example/creme",
            "Histoire du café crème à Paris ☕",
            "Le café crème est né à Paris au XIXᵉ siècle, dans les cafés du boulevard.",
            page_age="2 days ago",
            date="2025-03-14",
        ),
        Source(
            "https://www.tokyo-guide.example/capital",
            "東京 — 日本の首都",
            "東京は日本の首都であり、最大の都市です。",
            page_age="March 3, 2025",
            date="2025-03-03",
        ),
        Source(
            "https://berlin-bruecken.example/oberbaum",
            "Die Oberbaumbrücke über die Spree",
            "Die Oberbaumbrücke über die Spree ist Berlins berühmteste Brücke 🌉.",
            page_age=None,
            date=None,
        ),
    ),
)
"""Cited span at offset 0; accents, CJK, BMP (☕) and non-BMP (🗼 🌉 🎉) emoji before and
inside cited spans; a segment cited to two sources; uncited text at the end."""


# -- provider errors ------------------------------------------------------------------

_STATUS_TEXT = {
    400: ("invalid_request_error", "INVALID_ARGUMENT"),
    401: ("authentication_error", "UNAUTHENTICATED"),
    404: ("not_found_error", "NOT_FOUND"),
    429: ("rate_limit_error", "RESOURCE_EXHAUSTED"),
    500: ("api_error", "INTERNAL"),
    503: ("api_error", "UNAVAILABLE"),
    529: ("overloaded_error", "UNAVAILABLE"),
}


def _error_body(provider: str, status: int, message: str) -> dict[str, Any]:
    kind, google = _STATUS_TEXT.get(status, ("api_error", "UNKNOWN"))
    if provider == "anthropic":
        return {
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": f"req_{uuid.uuid4().hex[:24]}",
        }
    if provider in ("gemini", "vertex_ai"):
        return {"error": {"code": status, "message": message, "status": google}}
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class _Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- the server ------------------------------------------------------------------------


class FakeNative(FakeServer):
    """The fake native-search providers (see the module docstring).

    ``scenario`` is what every provider answers; ``reset()`` restores the one
    given to the constructor.
    """

    def __init__(
        self, scenario: Scenario = DEFAULT_SCENARIO, *, latency_ms: float = 0, chunk_ms: float = 0
    ) -> None:
        super().__init__(latency_ms=latency_ms)
        self._initial = scenario
        self.scenario = scenario
        self.chunk_ms = chunk_ms
        self.fail: dict[str, int] = {}
        """Provider -> HTTP status to answer every request with (its error body)."""
        self.require_key = True
        """Answer 401 when the provider's key header is missing."""
        self.redirect_base = REDIRECT_BASE
        """Prefix of Gemini's grounding links."""
        self.gemini_metadata: Literal["last", "separate"] = "last"
        """Streaming: groundingMetadata on the last text chunk, or in a content-less final chunk."""
        self.groq_citations: GroqStyle = "markers"
        """How Groq's model cites its search results in the text."""
        self.vertex_project = "fake-project"
        self.vertex_location = "us-central1"
        self.tokens_issued: list[str] = []
        """Access tokens the fake OAuth endpoint gave out (Vertex accepts only these)."""
        self._service_account: dict[str, Any] | None = None
        self._public_key: Any = None

    # -- configuration -------------------------------------------------------------

    def reset(self) -> None:
        super().reset()
        self.scenario = self._initial
        self.chunk_ms = 0
        self.fail = {}
        self.require_key = True
        self.redirect_base = REDIRECT_BASE
        self.gemini_metadata = "last"
        self.groq_citations = "markers"

    def api_base(self, provider: str) -> str:
        """The ``api_base`` to give litellm for ``provider``."""
        return {
            "openai": f"{self.url}/v1",
            "anthropic": self.url,
            "gemini": f"{self.url}/v1beta",
            "perplexity": self.url,
            "xai": f"{self.url}/v1",
            "groq": f"{self.url}/openai/v1",
            "vertex_ai": self.url,
        }[provider]

    def env(self) -> dict[str, str]:
        """Environment variables pointing litellm at this server, with dummy keys."""
        return {
            "OPENAI_BASE_URL": self.api_base("openai"),
            "OPENAI_API_BASE": self.api_base("openai"),
            "OPENAI_API_KEY": "sk-fake-native",
            "ANTHROPIC_API_BASE": self.api_base("anthropic"),
            "ANTHROPIC_API_KEY": "sk-ant-fake-native",
            "GEMINI_API_BASE": self.api_base("gemini"),
            "GEMINI_API_KEY": "fake-gemini-key",
            "PERPLEXITY_API_BASE": self.api_base("perplexity"),
            "PERPLEXITYAI_API_KEY": "pplx-fake-native",
            "XAI_API_BASE": self.api_base("xai"),
            "XAI_API_KEY": "xai-fake-native",
            "GROQ_API_BASE": self.api_base("groq"),
            "GROQ_API_KEY": "gsk_fake_native",
            "VERTEXAI_API_BASE": self.api_base("vertex_ai"),
            "VERTEXAI_PROJECT": self.vertex_project,
            "VERTEXAI_LOCATION": self.vertex_location,
            "VERTEXAI_CREDENTIALS": json.dumps(self.service_account()),
        }

    def service_account(self) -> dict[str, Any]:
        """A Google service-account key file (as a dict) whose ``token_uri`` is this fake.

        Its RSA key is made when first asked for (never stored on disk), so
        google-auth signs real JWTs that the fake's ``POST /token`` verifies.
        """
        if self._service_account is None:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode()
            self._public_key = key.public_key()
            self._service_account = {
                "type": "service_account",
                "project_id": self.vertex_project,
                "private_key_id": _opaque("kid", length=40),
                "private_key": pem,
                "client_email": f"grounding-tests@{self.vertex_project}.iam.gserviceaccount.com",
                "client_id": "100000000000000000001",
                "auth_uri": f"{self.url}/o/oauth2/auth",
                "token_uri": f"{self.url}/token",
                "auth_provider_x509_cert_url": f"{self.url}/oauth2/v1/certs",
                "universe_domain": "googleapis.com",
            }
        return {**self._service_account, "token_uri": f"{self.url}/token"}

    def requests_for(self, provider: str) -> list[RecordedRequest]:
        """The recorded requests that reached ``provider``'s endpoint."""
        with self._lock:
            return [r for r in self.requests if _route(r.path) == provider]

    def layout(self, provider: str, *, searched: bool = True) -> Layout:
        """The current scenario as ``provider``'s content, with ground-truth spans."""
        return self.scenario.layout(provider, searched=searched, groq_style=self.groq_citations)

    def groq_page(self) -> str:
        """The current scenario's ``browser.search`` output (see :meth:`Scenario.groq_page`)."""
        return self.scenario.groq_page()[0]

    def source_for_url(self, url: str) -> int | None:
        """Index of the source whose URL (or OpenAI's utm-tagged URL, or Gemini's redirect) is ``url``."""
        for i, src in enumerate(self.scenario.sources):
            if url in (src.url, _utm(src.url), src.redirect_uri(self.redirect_base), src.redirect_uri()):
                return i
        return None

    # -- dispatch ------------------------------------------------------------------

    def faulty(self, request: RecordedRequest) -> bool:
        """The providers' endpoints (not the OAuth token endpoint nor the redirects)."""
        return request.method == "POST" and _route(request.path) is not None

    def handle(self, request: RecordedRequest, response: Response) -> None:
        if request.method == "GET" and request.path.startswith("/grounding-api-redirect/"):
            self._redirect(request.path.rsplit("/", 1)[-1], response)
            return
        if request.method == "POST" and request.path == "/token":
            self._token(request, response)
            return
        provider = _route(request.path) if request.method == "POST" else None
        if provider is None:
            message = f"Unknown request URL: {request.method} {request.path}"
            response.json(404, {"error": {"message": message}})
            return
        body = request.json if isinstance(request.json, dict) else None
        try:
            if provider in self.fail:
                status = self.fail[provider]
                raise _Rejected(status, f"Forced failure ({status}) of the fake {provider} API.")
            if self.require_key and not _has_key(provider, request, self.tokens_issued):
                raise _Rejected(401, f"Missing API key for the fake {provider} API.")
            if body is None:
                raise _Rejected(400, "The request body is not valid JSON.")
            writer = _WRITERS[provider](self, request, body)
        except _Rejected as exc:
            headers = {"Retry-After": "1"} if exc.status == 429 else {}
            response.json(exc.status, _error_body(provider, exc.status, exc.message), headers)
            return
        if not writer.stream:
            response.json(200, writer.complete())
            return
        response.start(200, _SSE, {"Cache-Control": "no-cache"})
        for data in writer.events():
            response.write(data)
            if self.chunk_ms:
                time.sleep(self.chunk_ms / 1000)
        response.end()

    def _token(self, request: RecordedRequest, response: Response) -> None:
        """Google's OAuth token endpoint: a JWT-bearer grant signed with the service account's key."""
        form = {k: v[-1] for k, v in parse_qs(request.body.decode(errors="replace")).items()}
        problem = None
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            problem = "unsupported_grant_type"
        else:
            problem = self._check_assertion(form.get("assertion", ""))
        if problem:
            response.json(400, {"error": "invalid_grant", "error_description": problem})
            return
        token = f"ya29.fake-{uuid.uuid4().hex}"
        with self._lock:
            self.tokens_issued.append(token)
        response.json(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _check_assertion(self, assertion: str) -> str | None:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        if self._public_key is None or self._service_account is None:
            return "no service account was issued by this fake"
        try:
            head_b64, claims_b64, sig_b64 = assertion.split(".")
            header, claims = json.loads(_b64url(head_b64)), json.loads(_b64url(claims_b64))
            self._public_key.verify(
                _b64url(sig_b64), f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except (ValueError, InvalidSignature):
            return "Invalid JWT Signature."
        now = time.time()
        if header.get("alg") != "RS256" or header.get("kid") != self._service_account["private_key_id"]:
            return "Invalid JWT header."
        # google-auth addresses the grant to Google's token endpoint whatever token_uri says
        if claims.get("iss") != self._service_account["client_email"] or claims.get("aud") != _GOOGLE_TOKEN_AUD:
            return "Invalid JWT: iss or aud."
        if "https://www.googleapis.com/auth/cloud-platform" not in str(claims.get("scope", "")).split():
            return "Invalid JWT: scope."
        if not claims.get("iat", now + 1) <= now + 60 < claims.get("exp", 0) + 60:
            return "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
        return None

    def _redirect(self, token: str, response: Response) -> None:
        for src in self.scenario.sources:
            if src.redirect_token == token:
                response.send(302, b"", headers={"Location": src.url})
                return
        response.send(404, b"unknown grounding redirect", "text/plain; charset=utf-8")


_GEMINI_PATH = re.compile(r"^/v1beta/models/([^/:]+):(generateContent|streamGenerateContent)$")
_VERTEX_PATH = re.compile(
    r"^/v1(?:beta1)?/projects/[^/]+/locations/[^/]+/publishers/google/models/([^/:]+)"
    r":(generateContent|streamGenerateContent)$"
)


_GOOGLE_TOKEN_AUD = "https://oauth2.googleapis.com/token"


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _route(path: str) -> str | None:
    if path == "/v1/chat/completions":
        return "openai"
    if path == "/v1/messages":
        return "anthropic"
    if _GEMINI_PATH.match(path):
        return "gemini"
    if path == "/chat/completions":
        return "perplexity"
    if path == "/v1/responses":
        return "xai"
    if path == "/openai/v1/chat/completions":
        return "groq"
    if _VERTEX_PATH.match(path):
        return "vertex_ai"
    return None


def _has_key(provider: str, request: RecordedRequest, tokens: list[str]) -> bool:
    headers = request.headers
    if provider == "anthropic":
        return bool(headers.get("x-api-key"))
    if provider == "gemini":
        return bool(headers.get("x-goog-api-key") or request.query.get("key"))
    auth = headers.get("authorization", "")
    if provider == "vertex_ai":  # only a token this fake's OAuth endpoint issued
        return auth.removeprefix("Bearer ") in tokens
    return auth.startswith("Bearer ") and len(auth) > len("Bearer ")


def _sse(payload: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


# -- writers ---------------------------------------------------------------------------


class _Writer:
    provider = ""

    def __init__(self, fake: FakeNative, request: RecordedRequest, body: dict[str, Any]) -> None:
        self.fake = fake
        self.request = request
        self.body = body
        self.scenario = fake.scenario
        self.model = str(body.get("model") or "")
        self.stream = bool(body.get("stream"))
        self.searched = self.wants_search()
        self.layout = fake.layout(self.provider, searched=self.searched)
        self.created = int(time.time())
        self.input_tokens = _tokens(body.get("messages") or body.get("contents") or body.get("input") or "")
        self.output_tokens = _tokens(self.layout.content)

    def wants_search(self) -> bool:
        raise NotImplementedError

    def complete(self) -> dict[str, Any]:
        raise NotImplementedError

    def events(self) -> Iterator[bytes]:
        raise NotImplementedError


class _OpenAIWriter(_Writer):
    """Chat completions of OpenAI's search models (``gpt-4o-search-preview``)."""

    provider = "openai"

    def __init__(self, fake: FakeNative, request: RecordedRequest, body: dict[str, Any]) -> None:
        super().__init__(fake, request, body)
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"

    def wants_search(self) -> bool:
        options = self.body.get("web_search_options")
        search_model = "search" in self.model
        if options is not None and not search_model:
            raise _Rejected(400, "Web search options not supported with this model.")
        if options is not None and not isinstance(options, dict):
            raise _Rejected(400, "Invalid type for 'web_search_options': expected an object.")
        return search_model

    def annotations(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "url_citation",
                "url_citation": {
                    "end_index": m.end,
                    "start_index": m.start,
                    "title": self.scenario.sources[m.source].title,
                    "url": _utm(self.scenario.sources[m.source].url),
                },
            }
            for m in self.layout.markers
        ]

    def usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def complete(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": self.layout.content,
                        "refusal": None,
                        "annotations": self.annotations(),
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": self.usage(),
            "service_tier": "default",
            "system_fingerprint": None,
        }

    def events(self) -> Iterator[bytes]:
        include_usage = bool((self.body.get("stream_options") or {}).get("include_usage"))

        head: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": None,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload: dict[str, Any] = {
                **head,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                payload["usage"] = None
            return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"

        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in _pieces(self.layout.content):
            yield chunk({"content": piece})
        annotations = self.annotations()
        if annotations:
            yield chunk({"annotations": annotations})
        yield chunk({}, "stop")
        if include_usage:
            last = {**head, "choices": [], "usage": self.usage()}
            yield b"data: " + json.dumps(last).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"


class _AnthropicWriter(_Writer):
    """Messages with the server ``web_search`` tool."""

    provider = "anthropic"

    def __init__(self, fake: FakeNative, request: RecordedRequest, body: dict[str, Any]) -> None:
        super().__init__(fake, request, body)
        if not isinstance(body.get("max_tokens"), int):
            raise _Rejected(400, "max_tokens: Field required")
        self.id = f"msg_{uuid.uuid4().hex[:24]}"
        self.tool_id = f"srvtoolu_{uuid.uuid4().hex[:24]}"
        self.input_tokens += _tokens(body.get("system") or "")
        self.input_tokens += _tokens(body["tools"]) if body.get("tools") else 0
        if self.searched:
            self.input_tokens += sum(_tokens(s.snippet) * 8 for s in self.scenario.sources)

    def wants_search(self) -> bool:
        tools = self.body.get("tools") or []
        search = [
            t for t in tools if isinstance(t, dict) and str(t.get("type", "")).startswith("web_search_")
        ]
        self.allowed_sources = set(range(len(self.fake.scenario.sources)))
        for tool in search:
            if tool.get("name") != "web_search":
                raise _Rejected(400, "tools.0.web_search_20250305.name: Input should be 'web_search'")
            max_uses = tool.get("max_uses")
            if max_uses is not None and (not isinstance(max_uses, int) or max_uses < 1):
                raise _Rejected(400, "tools.0.web_search_20250305.max_uses: Input should be greater than 0")
            allowed, blocked = tool.get("allowed_domains"), tool.get("blocked_domains")
            if allowed and blocked:
                raise _Rejected(400, "tools.0.web_search_20250305: cannot specify both allowed_domains and "
                                     "blocked_domains")
            for name, value in (("allowed_domains", allowed), ("blocked_domains", blocked)):
                if value is not None and (not isinstance(value, list) or not all(isinstance(d, str) for d in value)):
                    raise _Rejected(400, f"tools.0.web_search_20250305.{name}: Input should be a valid list")
            if allowed or blocked:
                # Like the real tool: results only from allowed domains (subdomains included), none from blocked.
                def hit(i: int, domains: list[str]) -> bool:
                    host = urlsplit(self.fake.scenario.sources[i].url).hostname or ""
                    return any(host == d or host.endswith("." + d) for d in domains)

                self.allowed_sources = {i for i in self.allowed_sources
                                        if (not allowed or hit(i, allowed)) and not (blocked and hit(i, blocked))}
        return bool(search)

    def _server_tool_use(self, input_: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "server_tool_use",
            "id": self.tool_id,
            "name": "web_search",
            "input": input_,
            "caller": {"type": "direct"},
        }

    def _search_result(self) -> dict[str, Any]:
        return {
            "type": "web_search_tool_result",
            "tool_use_id": self.tool_id,
            "content": [
                {
                    "type": "web_search_result",
                    "title": s.title,
                    "url": s.url,
                    "encrypted_content": _opaque("content", s.url, length=160),
                    "page_age": s.page_age,
                }
                for i, s in enumerate(self.scenario.sources)
                if i in self.allowed_sources
            ],
            "caller": {"type": "direct"},
        }

    def _citation(self, src: int) -> dict[str, Any]:
        source = self.scenario.sources[src]
        cited = source.snippet if len(source.snippet) <= 150 else source.snippet[:150] + "..."
        return {
            "type": "web_search_result_location",
            "cited_text": cited,
            "url": source.url,
            "title": source.title,
            "encrypted_index": _opaque("index", source.url, str(src)),
        }

    def _text_blocks(self) -> list[dict[str, Any]]:
        if not self.searched:
            return [{"type": "text", "text": self.scenario.text}]
        blocks = []
        for seg in self.scenario.segments:
            cited = [i for i in seg.sources if i in self.allowed_sources]
            if cited:
                citations = [self._citation(i) for i in cited]
                blocks.append({"citations": citations, "type": "text", "text": seg.text})
            else:
                blocks.append({"type": "text", "text": seg.text})
        return blocks

    def usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
            "output_tokens": self.output_tokens,
            "service_tier": "standard",
        }
        if self.searched:
            usage["server_tool_use"] = {"web_search_requests": 1, "web_fetch_requests": 0}
        return usage

    def _message(
        self, content: list[dict[str, Any]], stop: str | None, usage: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "model": self.model,
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }

    def complete(self) -> dict[str, Any]:
        content = []
        if self.searched:
            content += [self._server_tool_use({"query": self.scenario.query}), self._search_result()]
        content += self._text_blocks()
        return self._message(content, "end_turn", self.usage())

    def events(self) -> Iterator[bytes]:
        def event(kind: str, **data: Any) -> bytes:
            return _sse({"type": kind, **data}, kind)

        usage = self.usage()
        start_usage = {k: v for k, v in usage.items() if k != "server_tool_use"}
        yield event("message_start", message=self._message([], None, {**start_usage, "output_tokens": 1}))
        index = 0
        if self.searched:
            yield event("content_block_start", index=index, content_block=self._server_tool_use({}))
            yield event("ping")
            query = json.dumps({"query": self.scenario.query}, ensure_ascii=False)
            for piece in ["", *_pieces(query, 9)]:
                delta = {"type": "input_json_delta", "partial_json": piece}
                yield event("content_block_delta", index=index, delta=delta)
            yield event("content_block_stop", index=index)
            index += 1
            yield event("content_block_start", index=index, content_block=self._search_result())
            yield event("content_block_stop", index=index)
            index += 1
        else:
            yield event("ping")
        for block in self._text_blocks():
            citations = block.get("citations")
            start: dict[str, Any] = {"citations": []} if citations else {}
            start.update({"type": "text", "text": ""})
            yield event("content_block_start", index=index, content_block=start)
            for citation in citations or []:
                delta = {"type": "citations_delta", "citation": citation}
                yield event("content_block_delta", index=index, delta=delta)
            for piece in _pieces(block["text"]):
                yield event("content_block_delta", index=index, delta={"type": "text_delta", "text": piece})
            yield event("content_block_stop", index=index)
            index += 1
        final = {k: v for k, v in usage.items() if k not in ("cache_creation", "service_tier")}
        yield event(
            "message_delta", delta={"stop_reason": "end_turn", "stop_sequence": None}, usage=final
        )
        yield event("message_stop")


class _GeminiWriter(_Writer):
    """generateContent / streamGenerateContent with the ``googleSearch`` tool."""

    provider = "gemini"
    path = _GEMINI_PATH

    def __init__(self, fake: FakeNative, request: RecordedRequest, body: dict[str, Any]) -> None:
        match = self.path.match(request.path)
        assert match is not None
        body = {**body, "model": match.group(1), "stream": match.group(2) == "streamGenerateContent"}
        if body["stream"] and request.query.get("alt") != "sse":
            raise _Rejected(400, "This fake streams only with alt=sse.")
        super().__init__(fake, request, body)
        if not isinstance(body.get("contents"), list) or not body["contents"]:
            raise _Rejected(400, "* GenerateContentRequest.contents: contents is not specified")
        self.id = _opaque("resp", uuid.uuid4().hex, length=22).replace("+", "-").replace("/", "_")
        self.tool_tokens = sum(_tokens(s.snippet) * 6 for s in self.scenario.sources) if self.searched else 0
        self.image = self._image_output(body.get("generationConfig") or {})

    def _image_output(self, config: dict[str, Any]) -> bytes | None:
        """The PNG to answer with when ``responseModalities`` asks for an image (image models only),
        sized by ``imageConfig.aspectRatio``."""
        modalities = [str(m).upper() for m in config.get("responseModalities") or config.get("response_modalities")
                      or []]
        image_config = config.get("imageConfig") or config.get("image_config")
        if "IMAGE" not in modalities:
            if image_config:
                raise _Rejected(400, "imageConfig is only supported with responseModalities IMAGE.")
            return None
        if "image" not in self.model:
            raise _Rejected(400, "Model does not support the requested response modalities: image")
        image_config = image_config or {}
        if not isinstance(image_config, dict):
            raise _Rejected(400, "Invalid value at 'generation_config.image_config': expected an object")
        unknown = set(image_config) - {"aspectRatio", "aspect_ratio", "imageSize", "image_size"}
        if unknown:
            raise _Rejected(400, f"Unknown name {sorted(unknown)[0]!r} at 'generation_config.image_config'")
        ratio = image_config.get("aspectRatio") or image_config.get("aspect_ratio")
        if ratio is not None and ratio not in ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9",
                                               "21:9"):
            raise _Rejected(400, f"Invalid aspect ratio {ratio!r}")
        return png_for_aspect(ratio)

    def _parts(self, text: str, *, image: bool) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"text": text}] if text else []
        if image and self.image is not None:
            parts.append({"inlineData": {"mimeType": "image/png", "data": base64.b64encode(self.image).decode()}})
        return parts

    def wants_search(self) -> bool:
        tools = self.body.get("tools") or []
        return any(isinstance(t, dict) and ("googleSearch" in t or "google_search" in t) for t in tools)

    def grounding(self) -> dict[str, Any]:
        text = self.layout.content
        used = self.scenario.cited
        chunk_of = {src: n for n, src in enumerate(used)}
        supports = []
        for seg_start, seg in _segment_starts(self.scenario):
            if not seg.sources:
                continue
            segment: dict[str, Any] = {}
            start = utf8_offset(text, seg_start)
            if start:
                segment["startIndex"] = start  # proto3 JSON: a 0 is omitted
            segment["endIndex"] = utf8_offset(text, seg_start + len(seg.text))
            segment["text"] = seg.text
            supports.append(
                {
                    "segment": segment,
                    "groundingChunkIndices": [chunk_of[i] for i in seg.sources],
                    "confidenceScores": [round(0.93 - 0.11 * k, 8) for k in range(len(seg.sources))],
                }
            )
        chips = "".join(
            f'<a class="chip" href="{self.scenario.sources[0].redirect_uri(self.fake.redirect_base)}">{q}</a>'
            for q in [self.scenario.query]
        )
        return {
            "searchEntryPoint": {
                "renderedContent": f'<style>.chip{{}}</style><div class="carousel">{chips}</div>\n'
            },
            "groundingChunks": [
                {
                    "web": {
                        "uri": self.scenario.sources[i].redirect_uri(self.fake.redirect_base),
                        "title": self.scenario.sources[i].domain,
                    }
                }
                for i in used
            ],
            "groundingSupports": supports,
            "retrievalMetadata": {},
            "webSearchQueries": [self.scenario.query],
        }

    def usage(self, *, final: bool = True) -> dict[str, Any]:
        usage: dict[str, Any] = {"promptTokenCount": self.input_tokens}
        image_tokens = IMAGE_TOKENS if self.image is not None else 0
        if final:
            usage["candidatesTokenCount"] = self.output_tokens + image_tokens
        total = self.input_tokens + (self.output_tokens + image_tokens if final else 0)
        if self.tool_tokens and final:
            usage["toolUsePromptTokenCount"] = self.tool_tokens
            total += self.tool_tokens
        usage["totalTokenCount"] = total
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": self.input_tokens}]
        if self.tool_tokens and final:
            usage["toolUsePromptTokensDetails"] = [{"modality": "TEXT", "tokenCount": self.tool_tokens}]
        if image_tokens and final:
            usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": self.output_tokens},
                                                {"modality": "IMAGE", "tokenCount": image_tokens}]
        return usage

    def _response(self, candidate: dict[str, Any], *, final: bool) -> dict[str, Any]:
        return {
            "candidates": [candidate],
            "usageMetadata": self.usage(final=final),
            "modelVersion": self.model,
            "responseId": self.id,
        }

    def complete(self) -> dict[str, Any]:
        candidate: dict[str, Any] = {
            "content": {"parts": self._parts(self.layout.content, image=True), "role": "model"},
            "finishReason": "STOP",
        }
        if self.searched:
            candidate["groundingMetadata"] = self.grounding()
        return self._response(candidate, final=True)

    def events(self) -> Iterator[bytes]:
        pieces = _pieces(self.layout.content, 11)
        separate = self.fake.gemini_metadata == "separate"
        for n, piece in enumerate(pieces):
            last = n == len(pieces) - 1
            candidate: dict[str, Any] = {"content": {"parts": self._parts(piece, image=last), "role": "model"}}
            if last and not separate:
                candidate["finishReason"] = "STOP"
                if self.searched:
                    candidate["groundingMetadata"] = self.grounding()
            elif self.searched:
                candidate["groundingMetadata"] = {}
            yield _sse(self._response(candidate, final=last and not separate))
        if separate:
            candidate = {"finishReason": "STOP"}
            if self.searched:
                candidate["groundingMetadata"] = self.grounding()
            yield _sse(self._response(candidate, final=True))


class _VertexWriter(_GeminiWriter):
    """Vertex AI's generateContent: Gemini's body and metadata, under a project/location path,
    authorized by a Bearer token from the fake's OAuth endpoint; Vertex adds ``createTime``
    and ``usageMetadata.trafficType``."""

    provider = "vertex_ai"
    path = _VERTEX_PATH

    def _response(self, candidate: dict[str, Any], *, final: bool) -> dict[str, Any]:
        response = super()._response(candidate, final=final)
        response["usageMetadata"]["trafficType"] = "ON_DEMAND"
        response["createTime"] = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(self.created))
        return response


def _segment_starts(scenario: Scenario) -> Iterator[tuple[int, Segment]]:
    pos = 0
    for seg in scenario.segments:
        yield pos, seg
        pos += len(seg.text)


class _PerplexityWriter(_Writer):
    """Sonar chat completions: ``[n]`` markers, ``citations`` and ``search_results``."""

    provider = "perplexity"

    def __init__(self, fake: FakeNative, request: RecordedRequest, body: dict[str, Any]) -> None:
        super().__init__(fake, request, body)
        self.id = str(uuid.uuid4())
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise _Rejected(400, "messages: Field required")
        if body.get("tools"):
            raise _Rejected(400, "Tool calling is not supported for this model.")

    def wants_search(self) -> bool:
        return not self.body.get("disable_search")

    def usage(self) -> dict[str, Any]:
        size = str((self.body.get("web_search_options") or {}).get("search_context_size") or "low")
        request_cost = {"low": 0.005, "medium": 0.008, "high": 0.012}.get(size, 0.005)
        input_cost = round(self.input_tokens * 1e-6, 6)
        output_cost = round(self.output_tokens * 1e-6, 6)
        usage: dict[str, Any] = {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "search_context_size": size,
            "cost": {
                "input_tokens_cost": input_cost,
                "output_tokens_cost": output_cost,
                "request_cost": request_cost,
                "total_cost": round(input_cost + output_cost + request_cost, 6),
            },
        }
        if "pro" in self.model or "deep-research" in self.model:
            usage["num_search_queries"] = 1
        return usage

    def _extras(self) -> dict[str, Any]:
        if not self.searched:
            return {}
        return {
            "citations": [s.url for s in self.scenario.sources],
            "search_results": [
                {
                    "title": s.title,
                    "url": s.url,
                    "date": s.date,
                    "last_updated": s.date,
                    "snippet": s.snippet,
                    "source": "web",
                }
                for s in self.scenario.sources
            ],
        }

    def complete(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "created": self.created,
            "usage": self.usage(),
            **self._extras(),
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": self.layout.content},
                }
            ],
        }

    def events(self) -> Iterator[bytes]:
        so_far = ""
        pieces = _pieces(self.layout.content)
        for n, piece in enumerate([*pieces, ""]):
            so_far += piece
            last = n == len(pieces)
            payload = {
                "id": self.id,
                "model": self.model,
                "created": self.created,
                "usage": self.usage(),
                **self._extras(),
                "object": "chat.completion.chunk",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop" if last else None,
                        "message": {"role": "assistant", "content": so_far},
                        "delta": {"role": "assistant", "content": piece},
                    }
                ],
            }
            yield b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


class _XAIWriter(_Writer):
    """xAI's Responses API with the ``web_search`` tool."""

    provider = "xai"

    def __init__(self, fake: FakeNative, request: RecordedRequest, body: dict[str, Any]) -> None:
        super().__init__(fake, request, body)
        if body.get("input") in (None, "", []):
            raise _Rejected(400, "input: Field required")
        self.id = str(uuid.uuid4())
        self.search_id = f"ws_{uuid.uuid4().hex[:24]}"
        self.message_id = f"msg_{uuid.uuid4().hex[:24]}"
        self.seq = 0

    def wants_search(self) -> bool:
        tools = self.body.get("tools") or []
        return any(isinstance(t, dict) and t.get("type") == "web_search" for t in tools)

    def annotations(self) -> list[dict[str, Any]]:
        return [
            {
                "type": "url_citation",
                "url": self.scenario.sources[m.source].url,
                "start_index": m.start,
                "end_index": m.end,
                "title": str(self.layout.numbers[m.source]),
            }
            for m in self.layout.markers
        ]

    def _search_call(self, done: bool) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": self.search_id,
            "type": "web_search_call",
            "status": "completed" if done else "in_progress",
        }
        item["action"] = (
            {
                "type": "search",
                "query": self.scenario.query,
                "sources": [{"type": "url", "url": s.url} for s in self.scenario.sources],
            }
            if done
            else {"type": "search"}
        )
        return item

    def _text_part(self, text: str, annotations: list[dict[str, Any]]) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "logprobs": [], "annotations": annotations}

    def _message(self, done: bool) -> dict[str, Any]:
        content = [self._text_part(self.layout.content, self.annotations())] if done else []
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "status": "completed" if done else "in_progress",
            "content": content,
        }

    def usage(self) -> dict[str, Any]:
        calls = 1 if self.searched else 0
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + self.output_tokens,
            "num_sources_used": len(self.scenario.sources) if self.searched else 0,
            "num_server_side_tools_used": calls,
            "server_side_tool_usage_details": {
                "web_search_calls": calls,
                "x_search_calls": 0,
                "code_interpreter_calls": 0,
                "file_search_calls": 0,
                "mcp_calls": 0,
                "document_search_calls": 0,
            },
        }

    def _response(self, done: bool) -> dict[str, Any]:
        output: list[dict[str, Any]] = []
        if done:
            output = ([self._search_call(True)] if self.searched else []) + [self._message(True)]
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": "completed" if done else "in_progress",
            "model": self.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": None,
            "store": self.body.get("store", True),
            "temperature": self.body.get("temperature"),
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": self.body.get("tools") or [],
            "top_p": self.body.get("top_p"),
            "incomplete_details": None,
            "error": None,
            "usage": self.usage() if done else None,
        }

    def complete(self) -> dict[str, Any]:
        return self._response(True)

    def _event(self, kind: str, **data: Any) -> bytes:
        payload = {"type": kind, **data, "sequence_number": self.seq}
        self.seq += 1
        return _sse(payload, kind)

    def events(self) -> Iterator[bytes]:
        e = self._event
        yield e("response.created", response=self._response(False))
        yield e("response.in_progress", response=self._response(False))
        out = 0
        if self.searched:
            yield e("response.output_item.added", item=self._search_call(False), output_index=out)
            for step in ("in_progress", "searching", "completed"):
                yield e(f"response.web_search_call.{step}", item_id=self.search_id, output_index=out)
            yield e("response.output_item.done", item=self._search_call(True), output_index=out)
            out += 1
        ids = {"item_id": self.message_id, "output_index": out}
        yield e("response.output_item.added", item=self._message(False), output_index=out)
        yield e("response.content_part.added", **ids, content_index=0, part=self._text_part("", []))
        annotations = self.annotations()
        pending = sorted(range(len(annotations)), key=lambda k: annotations[k]["end_index"])
        sent = 0
        for piece in _pieces(self.layout.content):
            yield e("response.output_text.delta", **ids, content_index=0, delta=piece, logprobs=[])
            sent += len(piece)
            while pending and annotations[pending[0]]["end_index"] <= sent:
                k = pending.pop(0)
                yield e(
                    "response.output_text.annotation.added",
                    **ids,
                    content_index=0,
                    annotation_index=k,
                    annotation=annotations[k],
                )
        yield e("response.output_text.done", **ids, content_index=0, text=self.layout.content, logprobs=[])
        part = self._text_part(self.layout.content, annotations)
        yield e("response.content_part.done", **ids, content_index=0, part=part)
        yield e("response.output_item.done", item=self._message(True), output_index=out)
        yield e("response.completed", response=self._response(True))


class _GroqWriter(_Writer):
    """Groq chat completions: gpt-oss with the ``browser_search`` tool, or a compound system."""

    provider = "groq"

    def __init__(self, fake: FakeNative, request: RecordedRequest, body: dict[str, Any]) -> None:
        if "web_search_options" in body:  # Groq validates its request schema strictly
            raise _Rejected(400, "'web_search_options' : property 'web_search_options' is unsupported")
        super().__init__(fake, request, body)
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise _Rejected(400, "'messages' : minimum number of items is 1")
        self.compound = self.model in GROQ_COMPOUND_MODELS
        self.id = f"chatcmpl-{uuid.uuid4()}"
        self.request_id = f"req_{uuid.uuid4().hex[:26]}"

    def wants_search(self) -> bool:
        tools = self.body.get("tools") or []
        browser = any(isinstance(t, dict) and t.get("type") == "browser_search" for t in tools)
        if browser and not self.model.startswith("openai/gpt-oss"):
            raise _Rejected(400, f"`browser_search` is not supported with model `{self.model}`")
        return browser or self.model in GROQ_COMPOUND_MODELS

    def _tool_type(self) -> str:
        return "search" if self.compound else "browser.search"

    def _output(self) -> str:
        if not self.compound:
            return self.fake.groq_page()
        return "\n\n".join(
            f"Title: {s.title}\nURL: {s.url}\nContent: {s.snippet}\nScore: {0.9 - 0.1 * i:.4f}"
            for i, s in enumerate(self.scenario.sources)
        )

    def executed_tool(self, done: bool = True) -> dict[str, Any]:
        tool: dict[str, Any] = {
            "index": 0,
            "type": self._tool_type(),
            "arguments": json.dumps({"query": self.scenario.query}, ensure_ascii=False),
        }
        if done:
            tool["output"] = self._output()
            tool["search_results"] = {
                "results": [
                    {"title": s.title, "url": s.url, "content": s.snippet, "score": round(0.9 - 0.1 * i, 4)}
                    for i, s in enumerate(self.scenario.sources)
                ]
            }
        return tool

    def reasoning(self) -> str:
        if not self.searched:
            return "Answer from what I know."
        return f"Need to search the web. Search: {self.scenario.query}. Then cite the results."

    def usage(self) -> dict[str, Any]:
        read = sum(_tokens(s.snippet) * 3 for s in self.scenario.sources) if self.searched else 0
        prompt = self.input_tokens + read
        completion = self.output_tokens + _tokens(self.reasoning())
        return {
            "queue_time": 0.021,
            "prompt_tokens": prompt,
            "prompt_time": 0.011,
            "completion_tokens": completion,
            "completion_time": 0.25,
            "total_tokens": prompt + completion,
            "total_time": 0.261,
        }

    def _message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.layout.content, "reasoning": self.reasoning()}
        if self.searched:
            message["executed_tools"] = [self.executed_tool()]
        return message

    def complete(self) -> dict[str, Any]:
        response: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "message": self._message(), "logprobs": None, "finish_reason": "stop"}],
            "usage": self.usage(),
            "usage_breakdown": None,
            "system_fingerprint": "fp_5f1e3a0b2c",
            "x_groq": {"id": self.request_id},
            "service_tier": "on_demand",
        }
        if self.compound:
            response["usage_breakdown"] = {"models": [{"model": "openai/gpt-oss-120b", "usage": self.usage()}]}
        return response

    def events(self) -> Iterator[bytes]:
        include_usage = bool((self.body.get("stream_options") or {}).get("include_usage"))
        head = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_5f1e3a0b2c",
        }

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            payload = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            payload.update(extra)
            return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"

        yield chunk({"role": "assistant", "content": ""}, x_groq={"id": self.request_id})
        for piece in _pieces(self.reasoning(), 16):
            yield chunk({"reasoning": piece})
        if self.searched:  # the tool as it starts, then again with its results
            yield chunk({"executed_tools": [self.executed_tool(done=False)]})
            yield chunk({"executed_tools": [self.executed_tool(done=True)]})
        for piece in _pieces(self.layout.content):
            yield chunk({"content": piece})
        extra: dict[str, Any] = {"x_groq": {"id": self.request_id, "usage": self.usage()}}
        if include_usage:
            extra["usage"] = self.usage()
        yield chunk({}, "stop", **extra)
        yield b"data: [DONE]\n\n"


_WRITERS: dict[str, type[_Writer]] = {
    "openai": _OpenAIWriter,
    "anthropic": _AnthropicWriter,
    "gemini": _GeminiWriter,
    "perplexity": _PerplexityWriter,
    "xai": _XAIWriter,
    "groq": _GroqWriter,
    "vertex_ai": _VertexWriter,
}
