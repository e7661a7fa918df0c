"""The request: OpenAI chat-completion arguments plus ``web_search``, decoded and validated.

One place decides what a request may hold, for the HTTP server and the
Python API alike:

- :func:`decode_body` turns an HTTP body into a JSON object (invalid JSON,
  invalid UTF-8, ``NaN``/``Infinity`` and nesting deeper than the recursion
  limit are 400s, never a ``RecursionError``);
- :func:`check_json` walks the whole decoded value, every string of every
  field (including fields added later): nesting at most :data:`MAX_DEPTH`
  levels, no lone surrogate (``"\\ud800"``) in any string or key, finite
  numbers, JSON types only (a pydantic object becomes its dict);
- :func:`parse_request` then validates every field against the
  :class:`ChatRequest` model (strict types, so ``"5"`` is not an integer;
  messages, content parts, tools and ``tool_choice`` have models of their
  own) and returns it, or raises :class:`~grounding.errors.InvalidRequestError`
  naming the first bad field in ``param`` with one sentence in OpenAI's style
  (``Invalid type for 'messages[0].content': expected a string or an array,
  but got an integer.``).

The server calls :func:`decode_body` then :func:`parse_request`; the Python
API calls :func:`parse_request`, which runs :func:`check_json` itself.
"""
from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Field, PlainSerializer, ValidationError, WrapValidator,
                      field_validator, model_validator)

from .errors import InvalidRequestError
from .validation import _PLAIN as _PLAIN_RULES, describe

if TYPE_CHECKING:  # pragma: no cover
    from providers.search import SearchOptions

__all__ = ["WebSearch", "ChatRequest", "CitationOptions", "parse_request", "decode_body", "decode_json", "check_json",
           "MAX_DEPTH", "SAMPLING_FIELDS", "SEARCH_TURN_FIELDS", "ProviderPrefs", "FallbackPrefs", "Reasoning",
           "parse_duration"]

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: Fields passed through to the model on the answer turn (and on search turns
#: where harmless). Everything else in a request is either ours or structural.
SAMPLING_FIELDS = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "presence_penalty",
    "frequency_penalty", "seed", "stop", "logit_bias", "user",
    "logprobs", "top_logprobs", "modalities", "service_tier", "store", "image_config",
)
#: The subset that also applies to search turns (never lengths, stops or
#: biases, which could cut a tool call short). ``reasoning_effort`` is added per
#: model by the routing layer, only where the model supports it.
SEARCH_TURN_FIELDS = ("temperature", "top_p", "seed", "user", "service_tier", "store")
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


class _Strict(BaseModel):
    """Unknown keys are errors, and types are strict: ``"5"`` is not an integer, ``1`` not a boolean."""

    model_config = ConfigDict(extra="forbid", strict=True)


class _Open(BaseModel):
    """Strict types, unknown keys kept (passed on to the provider)."""

    model_config = ConfigDict(extra="allow", strict=True)


class WebSearch(_Strict):
    """``web_search = {engine, max_results, max_steps, cache}``: the search tool loop."""

    engine: str | None = Field(None, description="search engine name; default from GROUNDING_ENGINE or the keys present")
    max_results: int = Field(3, ge=1, le=20, description="results fetched per search")
    max_steps: int = Field(1, ge=1, le=5, description="search rounds before the answer")
    cache: bool = Field(True, description="reuse cached searches and pages (false: search and fetch afresh)")

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from providers.search import canonical_engine_name

        return canonical_engine_name(value)

    # -- Scope of the search (issue 14): domains, a cap on results, source text, location.
    allowed_domains: list[str] | None = Field(
        None, min_length=1, max_length=100,
        description="search only these domains (and their subdomains); not with excluded_domains")
    excluded_domains: list[str] | None = Field(
        None, min_length=1, max_length=100, description="never use results from these domains (or subdomains)")
    max_total_results: int | None = Field(
        None, ge=1, le=100, description="results used across all steps (default: max_results x max_steps)")
    search_context_size: Literal["low", "medium", "high"] | None = Field(
        None, description="how much source text the model gets: low, medium (default) or high")
    user_location: UserLocation | None = Field(
        None, description="{type: 'approximate', approximate: {country, region, city, timezone}}")

    @field_validator("allowed_domains", "excluded_domains")
    @classmethod
    def _domains(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        from providers.domains import normalize_domain

        return list(dict.fromkeys(normalize_domain(v) for v in value))

    @model_validator(mode="after")
    def _one_domain_filter(self) -> "WebSearch":
        if self.allowed_domains and self.excluded_domains:
            raise InvalidRequestError(
                "web_search: set allowed_domains or excluded_domains, not both",
                param="web_search.excluded_domains")
        return self

    def search_options(self) -> "SearchOptions":
        """The engine-facing :class:`~providers.search.SearchOptions` of this request."""
        from providers.search import SearchOptions

        where = self.user_location.approximate if self.user_location else None
        return SearchOptions(allowed_domains=tuple(self.allowed_domains or ()),
                             excluded_domains=tuple(self.excluded_domains or ()),
                             country=where.country if where else None, region=where.region if where else None,
                             city=where.city if where else None, timezone=where.timezone if where else None)


class ApproximateLocation(_Strict):
    """Where the user roughly is (OpenAI's ``user_location.approximate``)."""

    country: str | None = Field(None, description="ISO 3166-1 alpha-2 code, e.g. 'US'")
    region: str | None = None
    city: str | None = None
    timezone: str | None = Field(None, description="IANA name, e.g. 'Europe/Paris'")

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"[A-Za-z]{2}", value.strip()):
            raise ValueError("must be a two-letter ISO 3166-1 country code like 'US'")
        return value.strip().upper()


class UserLocation(_Strict):
    type: Literal["approximate"] = "approximate"
    approximate: ApproximateLocation = Field(default_factory=ApproximateLocation)


WebSearch.model_rebuild()


class WebSearchOptions(_Strict):
    """OpenAI's ``web_search_options``: the provider's own (native) search."""

    search_context_size: Literal["low", "medium", "high"] | None = None
    user_location: UserLocation | None = None


class CitationOptions(_Strict):
    """``citations = {verify, verifier, fetch}``: how the answer's citations are checked.

    ``verify``: ``repair`` (default: an unsupported citation moves to the fetched
    source that supports the span, or is removed), ``flag`` (kept, verdicts
    reported), ``off`` (citations as the model wrote them). Default from the
    config file's ``citations.verify``, else ``$GROUNDING_CITATIONS_VERIFY``.
    ``verifier``: a model id to judge with (one batched call per answer; ``local``
    works offline); default: the built-in lexical judge. ``fetch``: native search:
    fetch the cited pages to check them when the provider gives no cited text
    (default true).
    """

    verify: Literal["repair", "flag", "off"] | None = None
    verifier: str | None = Field(None, min_length=1)
    fetch: bool | None = None


def parse_duration(value: str | float | int) -> float:
    """``"300ms"``, ``"1.5s"`` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like '300ms' or '1.5s'")
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s)?\s*", str(value))
    if not m:
        raise ValueError(f"must be a duration like '300ms' or '1.5s', not {value!r}")
    number = float(m.group(1))
    return number / 1000 if m.group(2) == "ms" else number


class ProviderPrefs(_Strict):
    """``provider = {order, allow_fallbacks}``: which providers serve a model id, in what order."""

    order: list[str] | None = Field(None, min_length=1)
    allow_fallbacks: bool = True


class FallbackPrefs(_Strict):
    """``fallback = {ttft_timeout}``: give up on a streaming attempt with no first token in time."""

    ttft_timeout: float | None = Field(None, description="seconds (given as '300ms', '1.5s' or a number)")

    @field_validator("ttft_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        if value is None:
            return None
        seconds = parse_duration(value)
        if seconds < 0.3:
            raise ValueError(f"must be at least 300ms (got {value!r})")
        return seconds


class Reasoning(_Open):
    """``reasoning = {effort}`` (overrides ``reasoning_effort``)."""

    effort: Effort | None = None
    max_tokens: int | None = Field(None, ge=1)
    exclude: bool | None = None
    enabled: bool | None = None



def _keep_input(value: Any, handler: Any) -> Any:
    """Validate ``value`` against the annotated model, but keep the caller's
    JSON as it was (it goes to litellm as given)."""
    handler(value)
    return value


def _as_is(value: Any) -> Any:
    return value


#: Checked against the annotated type, kept (and dumped) as the caller's plain JSON.
_KEEP = (WrapValidator(_keep_input), PlainSerializer(_as_is))


NonEmptyStr = Annotated[str, Field(min_length=1)]


# --------------------------------------------------------------------------- messages


class TextPart(_Strict):
    type: Literal["text"]
    text: str
    cache_control: dict[str, Any] | None = None


# Media parts: their shape here; what they hold (a URL or base64, the type, the size)
# is checked by grounding.media, which names the part.
class ImageURL(_Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None
    format: str | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL
    cache_control: dict[str, Any] | None = None


class InputAudio(_Strict):
    data: str | None = None
    format: str | None = None


class AudioPart(_Strict):
    type: Literal["input_audio"]
    input_audio: InputAudio
    cache_control: dict[str, Any] | None = None


class FileRef(_Strict):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None
    format: str | None = None

    @model_validator(mode="after")
    def _something(self) -> "FileRef":
        if not (self.file_data or self.file_id):
            raise ValueError("give file_data or file_id")
        return self


class FilePart(_Strict):
    type: Literal["file"]
    file: FileRef
    cache_control: dict[str, Any] | None = None


class RefusalPart(_Strict):
    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[Union[TextPart, ImagePart, AudioPart, FilePart], Field(discriminator="type")]
AssistantPart = Annotated[Union[TextPart, RefusalPart], Field(discriminator="type")]


class FunctionCallParam(_Strict):
    name: NonEmptyStr
    arguments: str


class ToolCallParam(_Strict):
    id: NonEmptyStr
    type: Literal["function"] = "function"
    function: FunctionCallParam


class _Message(_Strict):
    name: str | None = None
    cache_control: dict[str, Any] | None = None


class SystemMessage(_Message):
    role: Literal["system", "developer"]
    content: str | list[TextPart]


class UserMessage(_Message):
    role: Literal["user"]
    content: str | list[ContentPart]


class AssistantMessage(_Message):
    role: Literal["assistant"]
    content: str | list[AssistantPart] | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallParam] | None = None
    function_call: FunctionCallParam | None = None
    audio: dict[str, Any] | None = None
    #: What this library's own responses carry, so an answer can be sent back as history.
    annotations: list[dict[str, Any]] | None = None
    reasoning_content: str | None = None
    thinking_blocks: list[dict[str, Any]] | None = None


class ToolMessage(_Message):
    role: Literal["tool"]
    content: str | list[TextPart]
    tool_call_id: NonEmptyStr


class FunctionMessage(_Message):
    role: Literal["function"]
    name: NonEmptyStr
    content: str | None


ChatMessage = Annotated[Union[SystemMessage, UserMessage, AssistantMessage, ToolMessage, FunctionMessage],
                        Field(discriminator="role")]


# --------------------------------------------------------------------------- tools


class FunctionDef(_Strict):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _TOOL_NAME.match(value):
            raise ValueError("must be 1-64 letters, digits, '_' or '-'")
        return value


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Strict):
    name: NonEmptyStr


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(_Open):
    include_usage: bool | None = None
    #: This library's: progress events as chunks with ``choices: []`` and ``progress: {...}``.
    include_progress: bool | None = None


class JSONSchemaFormat(_Open):
    name: NonEmptyStr
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    #: Checked against :class:`JSONSchemaFormat`, kept as the caller's dict (``schema`` and all).
    json_schema: Annotated[JSONSchemaFormat | None, *_KEEP] = None

    @model_validator(mode="after")
    def _schema_present(self) -> "ResponseFormat":
        if self.type == "json_schema" and self.json_schema is None:
            raise ValueError("json_schema needs a json_schema object with a name")
        return self

    # -- Issue 14: a schema the answer will be validated against must itself be valid.
    @model_validator(mode="after")
    def _schema_valid(self) -> "ResponseFormat":
        if self.type == "json_schema" and self.json_schema and "schema" in self.json_schema:
            from .structured import check_schema

            check_schema(self.json_schema["schema"])
        return self


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class ChatRequest(_Strict):
    """One chat-completion request, validated. Unknown fields are rejected.

    ``messages`` and ``tool_choice`` are checked against their models but kept
    as the caller's plain JSON (they go to litellm as given).
    """

    model: str = Field(min_length=1, description="a model id, 'provider/model', 'auto' or 'router/<name>'")
    messages: Annotated[list[ChatMessage], *_KEEP] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = Field(None, ge=-2**63, le=2**63 - 1)
    stop: str | list[str] | None = None
    logit_bias: dict[str, int] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    n: int | None = Field(None, ge=1, le=128)
    reasoning_effort: Effort | None = None
    user: str | None = None
    tools: list[Tool] | None = None
    tool_choice: Annotated[Literal["none", "auto", "required"] | NamedToolChoice | None, *_KEEP] = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    modalities: list[Literal["text", "audio", "image"]] | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    web_search: WebSearch | None = None
    web_search_options: WebSearchOptions | None = None
    #: How citations are checked against their sources (see CitationOptions).
    citations: CitationOptions | None = None
    # -- Image output (issue 14): with modalities ["image", "text"], the image settings
    # (aspect_ratio, image_size, and whatever else the provider takes), passed through litellm.
    image_config: dict[str, Any] | None = Field(
        None, description="e.g. {'aspect_ratio': '16:9', 'image_size': '2K'}; needs 'image' in modalities")

    @field_validator("image_config")
    @classmethod
    def _image_config(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        ratio = value.get("aspect_ratio")
        if ratio is not None and not (isinstance(ratio, str) and re.fullmatch(r"[1-9]\d{0,2}:[1-9]\d{0,2}", ratio)):
            raise ValueError(f"aspect_ratio must look like '16:9', not {ratio!r}")
        size = value.get("image_size")
        if size is not None and size not in ("1K", "2K", "4K"):
            raise ValueError(f"image_size must be '1K', '2K' or '4K', not {size!r}")
        return value

    # Routing (the model router's extensions; also accepted inside extra_body).
    models: list[NonEmptyStr] | None = Field(None, min_length=1, description="fallback chain, or the pool for model='auto'")
    ignore: list[str] | None = None
    sort: list[str] | None = None
    provider: ProviderPrefs | None = None
    fallback: FallbackPrefs | None = None
    reasoning: Reasoning | None = None
    # Not OpenAI fields: where the model is and how to reach it (litellm's names).
    api_base: str | None = None
    api_key: str | None = Field(None, repr=False)
    timeout: float | None = Field(None, ge=1, le=3600, description="seconds: the deadline of each model call "
                                  "(default $GROUNDING_MODEL_TIMEOUT, 120 s)")
    extra_headers: dict[str, str] | None = None
    #: extra_body keys this library does not own, passed to the provider as is.
    extra_body: dict[str, Any] | None = None

    _blank_model = field_validator("model")(_not_blank)

    @field_validator("sort", mode="before")
    @classmethod
    def _sort(cls, value: Any) -> list[str] | None:
        from .routing.types import SORT_KEYS

        if value is None:
            return None
        keys = [value] if isinstance(value, str) else value
        if not isinstance(keys, list) or not keys:
            raise ValueError(f"must be one of {', '.join(SORT_KEYS)} or a list of them")
        for key in keys:
            if key not in SORT_KEYS:
                raise ValueError(f"unknown sort criterion {key!r}; use {', '.join(SORT_KEYS)}")
        return list(keys)

    @field_validator("reasoning", mode="before")
    @classmethod
    def _reasoning(cls, value: Any) -> Any:
        return {"effort": value} if isinstance(value, str) else value

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @field_validator("logit_bias")
    @classmethod
    def _bias(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        for token, bias in (value or {}).items():
            if not -100 <= bias <= 100:
                raise ValueError(f"bias for token {token} must be between -100 and 100")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "ChatRequest":
        if self.web_search is not None and self.web_search_options is not None:
            raise InvalidRequestError(
                "Set either web_search (the search tool loop) or web_search_options "
                "(the provider's own search), not both.",
                param="web_search",
            )
        if self.image_config is not None and "image" not in (self.modalities or []):
            raise InvalidRequestError("image_config needs 'image' in modalities, e.g. modalities=['image', 'text']",
                                      param="image_config")
        if (self.n or 1) > 1:
            raise InvalidRequestError("Invalid value for 'n': n > 1 is not supported, send n requests instead.",
                                      param="n")
        for i, msg in enumerate(self.messages):
            if msg.get("role") in ("system", "developer", "user") and msg.get("content") is None:
                raise InvalidRequestError(f"Missing required parameter: 'messages[{i}].content'.",
                                          param=f"messages[{i}].content")
        if self.tool_choice is not None:
            _check_tool_choice(self.tool_choice, self.tools)
        return self

    @property
    def effort(self) -> str | None:
        """The reasoning effort asked for: ``reasoning.effort`` wins over ``reasoning_effort``."""
        if self.reasoning is not None and self.reasoning.effort is not None:
            return self.reasoning.effort
        if self.reasoning is not None and self.reasoning.enabled is False:
            return "none"
        return self.reasoning_effort

    @property
    def caller_tool_names(self) -> set[str]:
        return {t.function.name for t in self.tools or []}

    def sampling(self, fields: tuple[str, ...] = SAMPLING_FIELDS) -> dict[str, Any]:
        """The sampling parameters the caller set (of ``fields``), for the provider."""
        return {k: getattr(self, k) for k in fields if getattr(self, k) is not None}


def _check_tool_choice(choice: str | dict[str, Any], tools: list[Tool] | None) -> None:
    if isinstance(choice, str):
        if choice == "required" and not tools:
            raise InvalidRequestError("Invalid value for 'tool_choice': 'required' needs tools.", param="tool_choice")
        return
    name = choice["function"]["name"]
    if name not in {t.function.name for t in tools or []}:
        raise InvalidRequestError(f"Invalid value for 'tool_choice': it names {name!r}, which is not among tools.",
                              param="tool_choice")


# --------------------------------------------------------------------------- decoding

#: The deepest nesting of arrays and objects a request may have (the body itself is level 1).
MAX_DEPTH = 64
_SURROGATE = re.compile("[\ud800-\udfff]")


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKETS = re.compile(rb"[\[\]{}]")


def _nesting(raw: bytes | str) -> int:
    """How deep ``[`` and ``{`` nest in JSON text (strings skipped), counted without recursion."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= MAX_DEPTH:
        return 0
    depth = deepest = 0
    for m in _BRACKETS.finditer(_JSON_STRING.sub(b"", data)):
        if m.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def decode_json(raw: bytes | str) -> Any:
    """Parse JSON text (UTF-8, -16 or -32 bytes, or str): :class:`InvalidRequestError` if it is not JSON.

    ``NaN`` and ``Infinity`` are refused; nesting too deep for the parser is
    refused as such, not as a crash."""
    if _nesting(raw) > MAX_DEPTH:
        # Refused before parsing: a parser that recurses 50,000 levels deep ends in a
        # RecursionError, after which CPython 3.11.7 can fail unrelated code later on
        # ("AST constructor recursion depth mismatch").
        raise _too_deep("request")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise _too_deep("request") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, bad UTF-8, a 5,000-digit integer
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise InvalidRequestError(f"The request body is not valid JSON: {first}.", code="invalid_json") from None


def decode_body(raw: bytes) -> dict[str, Any]:
    """An HTTP request body as a checked JSON object (see :func:`check_json`)."""
    if not raw.strip():
        raise InvalidRequestError("The request body is empty: send a JSON object.", code="invalid_json")
    data = decode_json(raw)
    if not isinstance(data, dict):
        raise InvalidRequestError(f"The request body must be a JSON object, not {_noun(data)}.", code="invalid_json")
    return check_json(data)


def check_json(value: Any, where: str = "") -> Any:
    """``value`` as plain JSON, checked everywhere: every string and key valid
    Unicode (no lone surrogate), every number finite, nesting at most
    :data:`MAX_DEPTH` levels, only JSON types (pydantic objects become their
    dicts, tuples lists). Raises :class:`InvalidRequestError` naming the path."""
    return _walk(value, where, 1)


def _walk(value: Any, where: str, depth: int) -> Any:
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise _surrogate(where or "request", value)
        return value
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequestError(f"Invalid value for '{where or 'request'}': numbers must be finite, "
                                      f"not {value}.", param=where or None)
        return value
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json", exclude_none=True, by_alias=True)
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            raise _too_deep(where or "request")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRequestError(f"Invalid type for '{where or 'request'}': object keys must be strings, "
                                          f"not {_noun(key)}.", param=where or None)
            path = f"{where}.{key}" if where else key
            if _SURROGATE.search(key):
                raise _surrogate(where or "request", key, key=True)
            out[key] = _walk(item, path, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        if depth > MAX_DEPTH:
            raise _too_deep(where or "request")
        return [_walk(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise InvalidRequestError(f"Invalid type for '{where or 'request'}': expected a JSON value, "
                              f"but got a {type(value).__name__}.", param=where or None)


def _too_deep(where: str) -> InvalidRequestError:
    if where == "request":
        return InvalidRequestError(f"The request is nested too deeply: at most {MAX_DEPTH} levels of arrays and "
                                   "objects.", code="invalid_json")
    return InvalidRequestError(f"Invalid value for '{where}': it is nested too deeply (at most {MAX_DEPTH} levels "
                               "of arrays and objects in the request).", param=where, code="invalid_json")


def _surrogate(where: str, text: str, *, key: bool = False) -> InvalidRequestError:
    char = _SURROGATE.search(text)
    assert char is not None
    what = "an object key" if key else "the string"
    return InvalidRequestError(f"Invalid value for '{where}': {what} contains a lone surrogate "
                               f"(U+{ord(char.group()):04X}), which is not valid Unicode.",
                               param=None if where == "request" else where)


#: extra_body keys that are this library's own fields (merged into the request).
_OWN_EXTRA_BODY = {"web_search", "web_search_options", "models", "ignore", "sort", "provider", "fallback",
                   "reasoning", "metadata", "citations", "image_config"}


def parse_request(kwargs: dict[str, Any], *, default_model: str | None = None) -> ChatRequest:
    """Validate completion keyword arguments into a :class:`ChatRequest`.

    Every value is checked by :func:`check_json` first. ``extra_body`` keys
    this library owns (``web_search``...) are merged into the request; the
    rest stay in ``extra_body`` for the provider. ``model`` absent or None
    takes ``models[0]``, else ``default_model``. Raises
    :class:`InvalidRequestError` with ``param`` set to the offending field.
    """
    data = check_json(dict(kwargs))
    extra = data.pop("extra_body", None)
    if extra is not None and not isinstance(extra, dict):
        raise InvalidRequestError(f"Invalid type for 'extra_body': expected an object, but got {_noun(extra)}.",
                                  param="extra_body")
    passthrough: dict[str, Any] = {}
    for key, value in (extra or {}).items():
        if key in _OWN_EXTRA_BODY:
            if key in data and data[key] is not None and data[key] != value:
                raise InvalidRequestError(f"Invalid value for '{key}': it is given both as an argument and in extra_body, "
                                          "differently.", param=key)
            data[key] = value
        else:
            passthrough[key] = value
    if passthrough:
        data["extra_body"] = passthrough
    models = data.get("models")
    if data.get("model") is None and isinstance(models, list) and models and isinstance(models[0], str):
        data["model"] = models[0]
    if data.get("model") is None and default_model:
        data["model"] = default_model
    data = {k: v for k, v in data.items() if not (k == "model" and v is None)}
    try:
        return ChatRequest.model_validate(data)
    except InvalidRequestError:
        raise
    except ValidationError as exc:
        raise _from_validation(exc, data) from None


# --------------------------------------------------------------------------- error messages

_TYPE_NOUNS = {
    "string_type": "a string", "int_type": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "bool_type": "a boolean", "list_type": "an array", "tuple_type": "an array",
    "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
    "dataclass_type": "an object", "none_required": "null",
}


def _noun(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _resolve(loc: tuple[Any, ...], data: Any, *, missing: bool) -> tuple[str, list[Any], Any]:
    """The dotted ``param`` of an error's ``loc``, guided by the data itself: a
    segment that is not a key or index of the value at that point is a
    pydantic union-branch label (``'user'``, ``'str'``, ``'list[...]'``) and is
    dropped. A missing field's name (the last segment) is kept."""
    path: list[Any] = []
    node = data
    for i, seg in enumerate(loc):
        if isinstance(seg, int) and isinstance(node, list) and 0 <= seg < len(node):
            path.append(seg)
            node = node[seg]
        elif isinstance(seg, str) and isinstance(node, dict) and seg in node:
            path.append(seg)
            node = node[seg]
        elif missing and i == len(loc) - 1 and isinstance(node, dict):
            path.append(seg)
            node = None
    return _dotted(path), path, node


def _dotted(path: list[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "request"


def _expected(error: dict[str, Any]) -> str | None:
    if error["type"] in _TYPE_NOUNS:
        return _TYPE_NOUNS[error["type"]]
    if error["type"] == "literal_error":
        return "one of " + str(error["ctx"]["expected"]).replace("' or '", "', '")
    return None


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else text + "."


def _top(param: str) -> str:
    """The request's top-level field a dotted parameter is in (``web_search.max_results`` -> ``web_search``)."""
    return param.split(".")[0].split("[")[0]


def _from_validation(exc: ValidationError, data: dict[str, Any]) -> InvalidRequestError:
    errors = exc.errors(include_url=False)
    for error in errors:
        inner = (error.get("ctx") or {}).get("error")
        if isinstance(inner, InvalidRequestError):
            return inner
    # The most specific error wins (the branch of a union the caller meant);
    # errors at the same place are alternatives of one union.
    placed = []
    for error in errors:
        missing = error["type"] in ("missing", "union_tag_not_found")
        param, path, node = _resolve(error["loc"], data, missing=missing)
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            param = _dotted([*path, error["ctx"]["discriminator"].strip("'")])
        placed.append((len(path), param, node, error))
    depth = max(p[0] for p in placed)
    first = next(p for p in placed if p[0] == depth)
    _, param, node, error = first
    group = [p[3] for p in placed if p[1] == param]
    kind = error["type"]
    if kind == "extra_forbidden":
        message = f"This request has an unknown parameter: '{param}'."
    elif kind in ("missing", "union_tag_not_found"):
        message = f"Missing required parameter: '{param}'."
    elif kind == "union_tag_invalid":
        ctx = error["ctx"]
        message = f"Invalid value for '{param}': expected one of {ctx['expected_tags']}, but got {_short(ctx['tag'])}."
    elif all(_expected(e) for e in group):
        wanted = []
        for e in group:
            if _expected(e) not in wanted:
                wanted.append(_expected(e))
        is_type = all(e["type"] in _TYPE_NOUNS for e in group) or isinstance(node, (dict, list))
        got = _noun(node) if is_type else _short(node)
        expected = " or ".join(wanted) if len(wanted) < 3 else ", ".join(wanted[:-1]) + " or " + wanted[-1]
        message = f"Invalid {'type' if is_type else 'value'} for '{param}': expected {expected}, but got {got}."
    elif kind == "value_error":
        message = f"Invalid value for '{param}': {_sentence(str(error['ctx']['error']))}"
    else:
        if kind in _PLAIN_RULES:
            text = describe(error, value=False)
        else:
            text = re.sub(r"^(Input|List|String|Value|Dictionary|Object|Tuple|Set) should", "must", error["msg"])
            text = text.replace(" after validation", "")
        if node is not None and not isinstance(node, (dict, list)) and kind not in ("string_too_long",):
            text += f" (got {_short(node)})"
        message = f"Invalid value for '{param}': {_sentence(text)}"
    # Other top-level fields that are wrong too, so that one round trip finds them all (a union's
    # alternatives share the first field's name, and are not repeated).
    others: list[str] = []
    seen = {_top(param)}
    for _, other, _, err in placed:
        if _top(other) not in seen and len(others) < 3:
            seen.add(_top(other))
            others.append(f"{other}: {describe(err)}")
    if others:
        message = message.rstrip(".") + "; also " + "; ".join(others) + "."
    return InvalidRequestError(message, param=param if param != "request" else None)
