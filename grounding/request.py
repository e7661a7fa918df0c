"""The request: OpenAI chat-completion arguments plus ``web_search``, validated.

:func:`parse_request` takes the keyword arguments a caller passes to
``grounding.completion`` (the same as the OpenAI SDK's
``chat.completions.create``, plus ``web_search``, also accepted inside
``extra_body`` as the SDK sends it) and returns a :class:`ChatRequest`, or
raises :class:`~grounding.errors.InvalidRequestError` naming the first bad
field.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import InvalidRequestError

if TYPE_CHECKING:  # pragma: no cover
    from providers.search import SearchOptions

__all__ = ["WebSearch", "ChatRequest", "CitationOptions", "parse_request", "SAMPLING_FIELDS", "SEARCH_TURN_FIELDS",
           "ProviderPrefs", "FallbackPrefs", "Reasoning", "parse_duration"]

_ROLES = {"system", "developer", "user", "assistant", "tool", "function"}
_PART_TYPES = {"text", "image_url", "input_audio", "file", "refusal"}
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
    model_config = ConfigDict(extra="forbid")


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


class Reasoning(BaseModel):
    """``reasoning = {effort}`` (overrides ``reasoning_effort``)."""

    model_config = ConfigDict(extra="allow")
    effort: Effort | None = None
    max_tokens: int | None = Field(None, ge=1)
    exclude: bool | None = None
    enabled: bool | None = None


class FunctionDef(BaseModel):
    model_config = ConfigDict(extra="allow")
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


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool | None = None


class ResponseFormat(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _schema_present(self) -> "ResponseFormat":
        if self.type == "json_schema" and not (self.json_schema and self.json_schema.get("name")):
            raise ValueError("json_schema needs a json_schema object with a name")
        return self

    # -- Issue 14: a schema the answer will be validated against must itself be valid.
    @model_validator(mode="after")
    def _schema_valid(self) -> "ResponseFormat":
        if self.type == "json_schema" and self.json_schema and "schema" in self.json_schema:
            from .structured import check_schema

            check_schema(self.json_schema["schema"])
        return self


class ChatRequest(_Strict):
    """One chat-completion request, validated. Unknown fields are rejected."""

    model: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None
    logit_bias: dict[str, int] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    n: int | None = Field(None, ge=1, le=128)
    reasoning_effort: Effort | None = None
    user: str | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
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
    models: list[str] | None = Field(None, min_length=1, description="fallback chain, or the pool for model='auto'")
    ignore: list[str] | None = None
    sort: list[str] | None = None
    provider: ProviderPrefs | None = None
    fallback: FallbackPrefs | None = None
    reasoning: Reasoning | None = None
    # Not OpenAI fields: where the model is and how to reach it (litellm's names).
    api_base: str | None = None
    api_key: str | None = Field(None, repr=False)
    timeout: float | None = Field(None, gt=0)
    extra_headers: dict[str, str] | None = None
    #: extra_body keys this library does not own, passed to the provider as is.
    extra_body: dict[str, Any] | None = None

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

    @field_validator("messages")
    @classmethod
    def _messages(cls, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, msg in enumerate(messages):
            _check_message(i, msg)
        return messages

    @model_validator(mode="after")
    def _consistent(self) -> "ChatRequest":
        if self.web_search is not None and self.web_search_options is not None:
            raise InvalidRequestError(
                "set either web_search (the search tool loop) or web_search_options "
                "(the provider's own search), not both",
                param="web_search",
            )
        if self.image_config is not None and "image" not in (self.modalities or []):
            raise InvalidRequestError("image_config needs 'image' in modalities, e.g. modalities=['image', 'text']",
                                      param="image_config")
        if (self.n or 1) > 1:
            raise InvalidRequestError("n > 1 is not supported: send n requests instead", param="n")
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


def _check_message(i: int, msg: Any) -> None:
    where = f"messages[{i}]"
    if not isinstance(msg, dict):
        raise InvalidRequestError(f"{where} must be an object with a role", param=where)
    role = msg.get("role")
    if role not in _ROLES:
        raise InvalidRequestError(
            f"{where}.role must be one of {', '.join(sorted(_ROLES))}, not {role!r}", param=f"{where}.role"
        )
    content = msg.get("content")
    if content is None:
        if role in {"user", "system", "developer"}:
            raise InvalidRequestError(f"{where}.content is required for role {role}", param=f"{where}.content")
    elif isinstance(content, list):
        for j, part in enumerate(content):
            ptype = part.get("type") if isinstance(part, dict) else None
            if ptype not in _PART_TYPES:
                raise InvalidRequestError(
                    f"{where}.content[{j}].type must be one of {', '.join(sorted(_PART_TYPES))}",
                    param=f"{where}.content[{j}].type",
                )
    elif not isinstance(content, str):
        raise InvalidRequestError(f"{where}.content must be a string or a list of parts", param=f"{where}.content")
    if role == "tool" and not msg.get("tool_call_id"):
        raise InvalidRequestError(f"{where}.tool_call_id is required for role tool", param=f"{where}.tool_call_id")


def _check_tool_choice(choice: str | dict[str, Any], tools: list[Tool] | None) -> None:
    if isinstance(choice, str):
        if choice == "required" and not tools:
            raise InvalidRequestError("tool_choice 'required' needs tools", param="tool_choice")
        return
    name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else None
    if not name:
        raise InvalidRequestError(
            "tool_choice must be 'none', 'auto', 'required' or {'type': 'function', 'function': {'name': ...}}",
            param="tool_choice",
        )
    if name not in {t.function.name for t in tools or []}:
        raise InvalidRequestError(f"tool_choice names {name!r}, which is not among tools", param="tool_choice")


#: extra_body keys that are this library's own fields (merged into the request).
_OWN_EXTRA_BODY = {"web_search", "web_search_options", "models", "ignore", "sort", "provider", "fallback",
                   "reasoning", "metadata", "citations", "image_config"}


def parse_request(kwargs: dict[str, Any], *, default_model: str | None = None) -> ChatRequest:
    """Validate completion keyword arguments into a :class:`ChatRequest`.

    ``extra_body`` keys this library owns (``web_search``...) are merged into
    the request; the rest stay in ``extra_body`` for the provider. Raises
    :class:`InvalidRequestError` with ``param`` set to the offending field.
    """
    data = dict(kwargs)
    extra = data.pop("extra_body", None)
    if extra is not None and not isinstance(extra, dict):
        raise InvalidRequestError("extra_body must be an object", param="extra_body")
    passthrough: dict[str, Any] = {}
    for key, value in (extra or {}).items():
        if key in _OWN_EXTRA_BODY:
            if key in data and data[key] is not None and data[key] != value:
                raise InvalidRequestError(f"{key} is given both as an argument and in extra_body", param=key)
            data[key] = value
        else:
            passthrough[key] = value
    if passthrough:
        data["extra_body"] = passthrough
    if not data.get("model") and isinstance(data.get("models"), list) and data["models"]:
        data["model"] = data["models"][0]
    if not data.get("model") and default_model:
        data["model"] = default_model
    try:
        return ChatRequest.model_validate(data)
    except InvalidRequestError:
        raise
    except ValidationError as exc:
        raise _from_validation(exc) from None


def _from_validation(exc: ValidationError) -> InvalidRequestError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    inner = (first.get("ctx") or {}).get("error")
    if isinstance(inner, InvalidRequestError):
        return inner
    param = _dotted(first["loc"])
    if first["type"] == "extra_forbidden":
        message = f"unknown parameter {param!r}"
    elif first["type"] == "missing":
        message = f"missing required parameter {param!r}"
    else:
        message = f"{param}: {first['msg']}"
        if "input" in first and not isinstance(first["input"], (dict, list)):
            message += f" (got {first['input']!r})"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return InvalidRequestError(message, param=param)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-", "literal[", "str", "dict[", "list[")):
            out += ("." if out else "") + str(part)
    return out or "request"
