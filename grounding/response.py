"""The response: OpenAI ``ChatCompletion`` / ``chat.completion.chunk`` shapes,
plus this library's ``metadata`` (what was searched, fetched, cited, and how
long each part took).

Everything except ``metadata`` validates against the ``openai`` package's own
types; ``metadata`` is nested (OpenAI types it as a flat string map) and has
its own model here.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "URLCitation", "Annotation", "FunctionCall", "ToolCall", "ImageURL", "ImageOutput", "Message", "Choice", "Usage",
    "SourceInfo", "SearchInfo", "TurnInfo", "CitationInfo", "CitationCheck", "EvidenceInfo", "MovedFrom", "SpanInfo",
    "ScopeInfo", "StructuredInfo", "Attempt", "ReasoningInfo", "AutoInfo", "Metadata",
    "ChatCompletion", "ChatCompletionChunk", "Delta", "ChunkChoice", "new_id",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, unset optional fields left out."""
        return self.model_dump(mode="json", exclude_none=True)


class URLCitation(_Model):
    url: str
    title: str
    start_index: int
    end_index: int
    #: The passage of the source that supports the span, quoted verbatim (set when
    #: citations are checked; Anthropic's name for the same thing).
    cited_text: str | None = None


class Annotation(_Model):
    type: Literal["url_citation"] = "url_citation"
    url_citation: URLCitation


class FunctionCall(_Model):
    name: str
    arguments: str


class ToolCall(_Model):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ImageURL(_Model):
    url: str


class ImageOutput(_Model):
    """An image the model wrote: ``{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}``."""

    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


class Message(_Model):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    annotations: list[Annotation] | None = None
    #: Images the model wrote (``modalities`` with ``"image"``), as data URIs.
    images: list[ImageOutput] | None = None


class Choice(_Model):
    index: int = 0
    message: Message
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter", "function_call"] = "stop"
    logprobs: Any = None


class Usage(_Model):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    #: Searches the provider ran by itself (native search), when it reports them.
    web_search_requests: int | None = None
    #: ``{"image_tokens": n}``: completion tokens spent on images (counted in ``completion_tokens``).
    completion_tokens_details: dict[str, int] | None = None

    def add(self, other: Any) -> None:
        """Add another usage (ours, litellm's object, or a dict)."""
        if other is None:
            return
        get = _reader(other)
        p = int(get("prompt_tokens", 0) or 0)
        c = int(get("completion_tokens", 0) or 0)
        self.prompt_tokens += p
        self.completion_tokens += c
        self.total_tokens += int(get("total_tokens", 0) or 0) or p + c
        details = get("completion_tokens_details", None)
        images = int(_reader(details)("image_tokens", 0) or 0) if details is not None else 0
        if images:
            self.completion_tokens_details = self.completion_tokens_details or {}
            self.completion_tokens_details["image_tokens"] = self.completion_tokens_details.get("image_tokens", 0) \
                + images


def _reader(obj: Any) -> Any:
    """``get(key, default)`` over a dict or an object's attributes."""
    return obj.get if isinstance(obj, dict) else (lambda k, d=None: getattr(obj, k, d))


# --- metadata -------------------------------------------------------------

class SourceInfo(_Model):
    """A page the loop considered: fetched (and numbered) or failed, and why."""

    id: int | None = Field(None, description="the number the model saw; None if not given to it")
    url: str
    #: Where the page's redirects ended, when elsewhere than ``url``.
    final_url: str | None = None
    title: str = ""
    status: Literal["fetched", "failed", "indexed", "native"] = "fetched"
    error: str | None = None
    query: str | None = None
    step: int = 1
    duration_ms: float | None = None
    chars: int | None = None
    cited: bool = False
    #: Not fetched for this request: the cache had it (or an identical request in flight shared it).
    cached: bool = False
    #: How old the cached text was, in seconds (when ``cached``).
    cache_age_s: float | None = None


class SearchInfo(_Model):
    query: str
    engine: str
    step: int
    results: int = 0
    duration_ms: float = 0.0
    error: str | None = None
    #: Not searched for this request: the cache had the results (or an identical search in flight
    #: shared them); no search fee is charged for it.
    cached: bool = False
    #: How old the cached results were, in seconds (when ``cached``).
    cache_age_s: float | None = None


class TurnInfo(_Model):
    step: int
    kind: Literal["search", "answer", "completion", "repair"]
    model: str
    duration_ms: float = 0.0
    time_to_first_token_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    tool_calls: list[str] = Field(default_factory=list)
    #: Prompt tokens the provider took from its prompt cache (``usage.prompt_tokens_details.cached_tokens``).
    cached_prompt_tokens: int | None = None
    #: The server's own speeds, where it reports them (llama.cpp): prompt and output tokens per second.
    prompt_tokens_per_s: float | None = None
    output_tokens_per_s: float | None = None


class EvidenceInfo(_Model):
    """The shortest passage of a source that supports a span, and where it is in the
    source's extracted text (character offsets)."""

    text: str
    start: int
    end: int


class MovedFrom(_Model):
    """Where a repaired citation pointed before it was moved."""

    url: str
    source_id: int | None = None


class CitationCheck(_Model):
    """One citation as the model wrote it (or as it was inferred), its verdict, and what was done."""

    start: int
    end: int
    #: The source it cites now (after a move: the new one).
    url: str
    source_id: int | None = None
    kind: str = "marker"
    verdict: Literal["supported", "partial", "unsupported", "unchecked"]
    score: float | None = None
    evidence: EvidenceInfo | None = None
    action: Literal["kept", "flagged", "moved", "removed"]
    reason: str | None = None
    moved_from: MovedFrom | None = None


class SpanInfo(_Model):
    """A span of the answer (character offsets), and why it is listed."""

    start: int
    end: int
    text: str = ""
    reason: str | None = None


#: How a ``web_search`` scope option was applied.
Applied = Literal["sent_to_engine", "sent_to_provider", "filtered_locally", "applied_locally", "not_applicable"]


class ScopeInfo(_Model):
    """How one ``web_search`` scope option (``allowed_domains``, ``max_total_results``...) was applied.

    ``applied``: ``sent_to_engine`` (the search engine's own parameter),
    ``sent_to_provider`` (native search), ``filtered_locally`` (results outside
    the filter were dropped here, whatever the engine did), ``applied_locally``
    (a cap or a budget kept here), or ``not_applicable`` (``note`` says why).
    """

    value: Any
    applied: list[Applied] = Field(default_factory=list)
    #: Results (or native citations) this library dropped for the option.
    removed: int | None = None
    note: str | None = None


class StructuredInfo(_Model):
    """``response_format`` with grounding: how the answer was checked (see :mod:`grounding.structured`)."""

    type: Literal["json_object", "json_schema"]
    #: The answer handed over is valid.
    valid: bool
    #: It took the repair turn to get there.
    repaired: bool = False
    #: What was wrong with the first answer (empty when it was valid).
    errors: list[str] = Field(default_factory=list)
    #: URLs in ``sources`` fields of the JSON that are not among this request's sources.
    unknown_sources: list[str] = Field(default_factory=list)


class CitationInfo(_Model):
    annotations: int = 0
    unmatched: list[str] = Field(default_factory=list)
    inferred: int = 0
    #: How the citations were checked: repair, flag or off; and by which judge.
    verify: Literal["repair", "flag", "off"] | None = None
    judge: str | None = None
    #: Every citation checked, in the answer's order, with its verdict and action.
    checks: list[CitationCheck] = Field(default_factory=list)
    moved: int = 0
    removed: int = 0
    flagged: int = 0
    #: Sentences that state something checkable yet have no supported citation.
    unverified: list[SpanInfo] = Field(default_factory=list)
    #: Citations that cite no claim (a bare "[2]", "see [1]"): no annotation.
    dropped: list[SpanInfo] = Field(default_factory=list)
    #: Time the check took.
    duration_ms: float | None = None


class Attempt(_Model):
    """One try of one model call on one deployment (fallbacks add more)."""

    model: str
    provider: str | None = None
    success: bool
    error: str | None = None
    #: The error's HTTP-like status (429, 502, 504...) when it failed.
    status: int | None = None
    time_to_first_token_ms: float | None = None
    duration_ms: float | None = None


class ReasoningInfo(_Model):
    """The reasoning effort asked for, and whether the model got it."""

    effort: str
    applied: bool
    reason: str | None = None


class AutoInfo(_Model):
    """``model="auto"``: what was considered and why the winner won."""

    sort: list[str] = Field(default_factory=list)
    winner: str
    why: str
    candidates: list[dict[str, Any]] = Field(default_factory=list)


class Metadata(_Model):
    """What happened behind the answer. ``warnings`` says what degraded it."""

    #: This generation's id (the same as the completion's ``id``).
    generation_id: str | None = None

    mode: Literal["tool_loop", "native", "none"] = "tool_loop"
    #: Why this mode (set when ``web_search.engine`` was ``"native"``).
    mode_reason: str | None = None
    model: str | None = None
    engine: str | None = None
    #: Native search: the provider that searched, and how many searches it reports.
    provider: str | None = None
    web_search_requests: int | None = None
    #: What litellm prices the request at (USD): model turns (streamed or not),
    #: native search fees, and the search engine's per-query fees; None when
    #: it can price none of it (self-hosted or unlisted models and engines).
    cost_usd: float | None = None
    queries: list[str] = Field(default_factory=list)
    searches: list[SearchInfo] = Field(default_factory=list)
    sources: list[SourceInfo] = Field(default_factory=list)
    steps: int = 0
    turns: list[TurnInfo] = Field(default_factory=list)
    citations: CitationInfo = Field(default_factory=CitationInfo)
    #: ``response_format`` with grounding: the answer's check and repair.
    structured_output: StructuredInfo | None = None
    #: ``web_search`` scope options that were set, and how each was applied.
    search_options: dict[str, ScopeInfo] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    total_duration_ms: float = 0.0
    #: Routing: every model call's tries, in order (a fallback adds one).
    attempts: list[Attempt] = Field(default_factory=list)
    reasoning: ReasoningInfo | None = None
    #: Named routers: which router, route and variant answered.
    router: str | None = None
    route_id: str | None = None
    variant_id: str | None = None
    #: ``model="auto"``: the candidates and the reason for the choice.
    auto: AutoInfo | None = None


class ChatCompletion(_Model):
    """An OpenAI ``chat.completion`` with this library's ``metadata``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage = Field(default_factory=Usage)
    system_fingerprint: str | None = None
    metadata: Metadata = Field(default_factory=Metadata)


class Delta(_Model):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    annotations: list[Annotation] | None = None
    images: list[ImageOutput] | None = None


class ChunkChoice(_Model):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: Any = None


class ChatCompletionChunk(_Model):
    """An OpenAI ``chat.completion.chunk``; the last one carries ``metadata``."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    metadata: Metadata | None = None
    #: With ``stream_options.include_progress``: a progress event (``choices`` is empty), see
    #: :class:`grounding.progress.ProgressEvent`.
    progress: dict[str, Any] | None = None


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]
