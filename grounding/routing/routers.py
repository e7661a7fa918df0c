"""Routers: named, reusable configurations a request selects with ``model="router/<name>"``.

A router holds defaults (message templates and generation settings), ordered
routes (each a CEL condition and weighted variants) and a default route. A
request to ``router/support`` (or ``inworld/support``; the ``router`` prefix is
``router_prefix`` in the config file) is matched against the routes in order,
gets a variant of the first route whose condition holds (sticky per ``user``),
and is rewritten with that variant's model, settings and templates. The
response metadata then names ``router``, ``route_id`` and ``variant_id``.

File format
===========

Routers come from the config file (``routers:``, a list of inline routers)
and from ``router_files:`` (files ending ``.yaml``, ``.yml`` or ``.json``, or
folders of them, read in name order, not recursively). A file holds one router
mapping, a list of them, or ``{routers: [...]}``. Names are unique across all
sources. Every mapping rejects unknown keys. A complete example::

    name: support                      # [A-Za-z0-9_.-]+, unique
    description: Customer support      # optional
    defaults:                          # optional
      messages:                        # templates put before the request's messages
        - {role: system, content: "You are the support assistant of {{metadata.product}}."}
      generation: {temperature: 0.3, max_tokens: 800}
    routes:                            # tried in order; the first whose condition holds wins
      - id: code                       # [A-Za-z0-9_.-]+, unique in the router
        condition: 'messages.exists(m, m.role == "user" && m.content.contains("code"))'
        variants:
          - {id: coder, model: gpt-4.1}            # a lone variant's weight defaults to 100
      - id: pro
        condition: 'has(metadata.tier) && metadata.tier == "pro"'
        variants:                      # integer weights 1..100 summing to exactly 100
          - id: a
            weight: 50
            model: anthropic/claude-sonnet-4-5
            web_search: {engine: exa, max_results: 5}
          - id: b
            weight: 50
            model: auto                # "auto" picks from `models` (or the whole catalog)
            models: [gpt-4.1, gemini-2.5-flash]
            sort: [intelligence, latency]
            generation: {reasoning_effort: low}
    default_route:                     # optional; no condition; id defaults to "default"
      variants:
        - id: cheap
          models: [gpt-4.1-mini, gemini-2.5-flash-lite]   # a fallback chain
          ignore: [groq]
          provider: {order: [openai, azure], allow_fallbacks: true}
          messages:
            - {role: system, content: "Answer briefly."}

A variant takes:

- ``id`` and ``weight`` (see above);
- the model, in one of three forms (exactly one is required):
  ``model: <id>`` (one model, provider-prefixed or not);
  ``models: [a, b, c]`` without ``model``: a fallback chain, sent as
  ``model: a, models: [b, c]`` (try ``a``, then ``b``, then ``c``);
  ``model: auto`` with an optional ``models`` pool: automatic selection
  (sent as ``model: auto, models: [...]``). ``model: x`` (not ``auto``)
  together with ``models`` is an error. A variant cannot name a router;
- ``sort`` (a key or a list of keys of ``price``, ``latency``, ``throughput``,
  ``intelligence``, ``math``, ``coding``), ``ignore`` (providers or
  ``provider/model`` ids) and ``provider: {order: [...], allow_fallbacks}``:
  passed on as the request fields of the same names;
- ``generation``: request fields, limited to :data:`GENERATION_FIELDS`
  (``temperature``, ``top_p``, ``max_tokens``, ``max_completion_tokens``,
  ``presence_penalty``, ``frequency_penalty``, ``seed``, ``stop``,
  ``logit_bias``, ``logprobs``, ``top_logprobs``, ``reasoning_effort``,
  ``response_format``, ``tool_choice``, ``parallel_tool_calls``,
  ``modalities``, ``service_tier``, ``store``); values are checked as the
  request checks them; an unknown key is an error naming it;
- ``messages``: more templates (after the router's default templates);
- ``web_search: {engine, max_results, max_steps}`` (the search tool loop) or
  ``web_search_options: {search_context_size, user_location}`` (the model's own
  search), not both.

Everything is checked when the router is loaded (a bad router is an
:class:`~grounding.errors.InvalidRequestError` naming the file, the router,
the route and the variant): weights, unique ids, the model form, generation
keys and values, template messages, and the CEL conditions (compiled once).

Conditions (CEL)
================

A condition is a `CEL <https://cel.dev>`_ expression (the
``common-expression-language`` package) that sees:

- ``metadata``: the request's ``metadata``, a map of string to string
  (``{}`` when absent);
- ``messages``: the request's messages as a list of ``{role, content}`` where
  ``content`` is the text (the text parts of a list content, joined by
  newlines; ``""`` for none);
- ``user``: the request's ``user`` (``""`` when absent).

Idioms::

    has(metadata.tier) && metadata.tier == "pro"          # a key that may be missing
    "tier" in metadata && metadata["tier"] in ["pro", "team"]
    messages.exists(m, m.role == "user" && m.content.contains("code"))
    messages.exists(m, m.content.matches("(?i)\\\\b(python|rust)\\\\b"))   # RE2 syntax
    size(messages) > 4
    messages[size(messages) - 1].content.size() > 2000    # the last message is long
    user.startsWith("staff-")
    int(metadata.seats) >= 50                             # metadata values are strings
    metadata.region.lowerAscii() == "eu"                  # cel.stdlib string functions work too

``metadata.tier`` on a request without ``tier`` is an error, not false: guard
it with ``has(...)``. A condition that fails to evaluate (a missing key, a bad
conversion) or returns something other than a bool counts as false, and the
selection carries a warning naming the route and the error. An unknown
variable is caught when the router is loaded; an unknown function is only
caught when the condition runs (the same warning).

Choosing a route and a variant
==============================

The first route whose condition is true wins; else the default route; else
the request fails (``router 'x': no route matched and there is no default
route``, code ``no_route``). Within the route the variant is chosen by
hashing, with no random state: ``bucket = int(sha256(router + "\\0" + route_id
+ "\\0" + user).hexdigest()[:16], 16) % 10000``, and the variants own
consecutive ranges of ``weight * 100`` buckets in declared order. The same
``user`` thus gets the same variant in every process and after restarts (as
long as the router and route names and the weights stay the same; changing a
weight moves only the users whose bucket changes hands). A request without
``user`` hashes its request id instead, so anonymous traffic spreads by weight.

Applying a variant
==================

:meth:`Router.apply` returns new request keyword arguments:

- ``model`` (and ``models``, ``sort``, ``ignore``, ``provider``) from the
  variant, each unless the request sets it (``model`` itself, the router
  reference, is always replaced);
- generation: the router's defaults, then the variant's, and any field the
  request sets itself wins;
- messages: the templates (the router's, then the variant's; system and
  developer templates first, others keep their order), then the request's;
- ``web_search`` / ``web_search_options`` from the variant, unless the request
  sets either one (at the top level or in ``extra_body``).

Templates may say ``{{user}}`` and ``{{metadata.KEY}}`` (spaces inside the
braces are allowed). This is plain text substitution, never code. Any other
``{{...}}`` is an error when the router is loaded or saved (a typo such as
``{{metadta.team}}`` would otherwise reach the model as written), and a
request that lacks a variable its templates use (no ``metadata.team``, no
``user``) is an error naming it (code ``missing_template_variable``), never an
empty string in the prompt.

Where routers live
==================

:func:`get_routers` returns the process's :class:`RouterSet`, loaded once from
:func:`grounding.config.get_config`; :func:`reset` drops it (``set_config``
does). A :class:`RouterSet` can also be changed at run time
(:meth:`RouterSet.put`, :meth:`RouterSet.delete`).

Routers created over HTTP live in a router store
(:mod:`grounding.server.store`): its ``install`` registers a source with
:func:`set_router_source`, and :func:`get_routers` then returns
``source(file_routers())``, the config's routers plus the stored ones.
:func:`reset` keeps the source (it only drops the config's routers).
"""
from __future__ import annotations

import copy
import hashlib
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal

import cel
from cel.stdlib import STDLIB_FUNCTIONS
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from ..config import read_data_file
from ..errors import InvalidRequestError, NotFoundError
from ..validation import describe
from .types import SORT_KEYS

if TYPE_CHECKING:
    from ..config import Config

__all__ = [
    "GENERATION_FIELDS",
    "Defaults",
    "ProviderPrefs",
    "Variant",
    "Route",
    "Router",
    "RouterSet",
    "Selection",
    "load_routers",
    "get_routers",
    "file_routers",
    "set_router_source",
    "reset",
    "parse_router_ref",
]

#: The request fields a router may set in ``generation``.
GENERATION_FIELDS = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "presence_penalty",
    "frequency_penalty", "seed", "stop", "logit_bias", "logprobs", "top_logprobs",
    "reasoning_effort", "response_format", "tool_choice", "parallel_tool_calls",
    "modalities", "service_tier", "store",
)
#: Request fields a variant passes on besides generation and the model.
_SELECTION_FIELDS = ("models", "sort", "ignore", "provider")
_SEARCH_FIELDS = ("web_search", "web_search_options")
_NAME = r"^[A-Za-z0-9_.-]+$"
_ALWAYS_PREFIX = "inworld"
#: Buckets per route: weights are percentages, so 100 buckets per point.
_BUCKETS = 10_000
#: What a condition may name besides comprehension variables.
_CEL_VARIABLES = frozenset({"metadata", "messages", "user"})
_CEL_TYPE_NAMES = frozenset({"int", "uint", "double", "bool", "string", "bytes", "list", "map",
                             "null_type", "type", "dyn"})
_CEL_BOUND = re.compile(r"\b(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")
_PLACEHOLDER = re.compile(r"\{\{\s*(user|metadata\.([A-Za-z0-9_.-]+))\s*\}\}")
#: Anything written as a placeholder, known or not.
_ANY_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)
_ROUTER_SUFFIXES = (".yaml", ".yml", ".json")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- checks


def _probe(fields: dict[str, Any]) -> None:
    """Check request fields the way a request is checked (raises ValueError with its message)."""
    from ..request import parse_request

    data = {"model": "router-check", "messages": [{"role": "user", "content": "x"}], **fields}
    try:
        parse_request(data)
    except InvalidRequestError as exc:
        raise ValueError(exc.message) from None


def _check_generation(value: dict[str, Any]) -> dict[str, Any]:
    value = {k: v for k, v in value.items() if v is not None}
    for key in value:
        if key not in GENERATION_FIELDS:
            raise ValueError(f"unknown generation field {key!r}; allowed: {', '.join(GENERATION_FIELDS)}")
    # tool_choice naming a function (or "required") needs the request's tools: check its shape only.
    choice = value.get("tool_choice")
    if choice is not None and choice not in ("none", "auto", "required") and not (
        isinstance(choice, dict) and choice.get("type") == "function"
        and isinstance(choice.get("function"), dict) and choice["function"].get("name")
    ):
        raise ValueError("tool_choice must be 'none', 'auto', 'required' or "
                         "{'type': 'function', 'function': {'name': ...}}")
    rest = {k: v for k, v in value.items() if k != "tool_choice"}
    if rest:
        _probe(rest)
    return value


def _check_templates(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if messages:
        _probe({"messages": messages})
    for i, message in enumerate(messages):
        for text in _texts(message.get("content")):
            for m in _ANY_PLACEHOLDER.finditer(text):
                if not _PLACEHOLDER.fullmatch(m.group(0)):
                    raise ValueError(f"messages[{i}]: template {m.group(0)!r} names no variable; "
                                     "use {{user}} or {{metadata.KEY}}")
    return messages


def _texts(content: Any) -> list[str]:
    """The strings of a message content that templates fill in."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"
                and isinstance(p.get("text"), str)]
    return []


# --------------------------------------------------------------------------- models


class ProviderPrefs(_Strict):
    """``provider: {order, allow_fallbacks}``: which providers serve the model, in what order."""

    order: list[str] | None = None
    allow_fallbacks: bool | None = None


class _Templated(_Strict):
    """Message templates and generation settings, checked the same way wherever they appear."""

    messages: list[dict[str, Any]] = Field(default_factory=list)
    generation: dict[str, Any] = Field(default_factory=dict)

    @field_validator("messages")
    @classmethod
    def _templates(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return _check_templates(value)

    @field_validator("generation")
    @classmethod
    def _generation(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_generation(value)


class Defaults(_Templated):
    """What every request through the router gets: templates first, then generation settings."""


class Variant(_Templated):
    """One arm of a route: a model (or a selection block) and what to send it."""

    id: str = Field(pattern=_NAME)
    weight: int = Field(ge=1, le=100, strict=True)
    model: str | None = Field(None, min_length=1)
    models: list[str] | None = Field(None, min_length=1)
    sort: str | list[str] | None = None
    ignore: list[str] | None = None
    provider: ProviderPrefs | None = None
    web_search: dict[str, Any] | None = None
    web_search_options: dict[str, Any] | None = None

    @field_validator("models", "ignore")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not isinstance(v, str) or not v.strip() for v in value):
            raise ValueError("entries must be non-empty strings")
        return value

    @field_validator("sort")
    @classmethod
    def _sort(cls, value: str | list[str] | None) -> str | list[str] | None:
        for key in [value] if isinstance(value, str) else value or []:
            if key not in SORT_KEYS:
                raise ValueError(f"unknown sort key {key!r}; choose from {', '.join(SORT_KEYS)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Variant":
        if self.model is None and self.models is None:
            raise ValueError("a variant needs model (a model id or 'auto') or models (a fallback chain)")
        if self.model is not None and self.model != "auto" and self.models is not None:
            raise ValueError("give model or models, not both (model: auto with models is a candidate pool)")
        for name in [self.model or ""] + (self.models or []):
            if name.startswith(("router/", f"{_ALWAYS_PREFIX}/")):
                raise ValueError(f"a variant cannot name a router ({name!r})")
        if self.web_search is not None and self.web_search_options is not None:
            raise ValueError("set web_search (the search tool loop) or web_search_options "
                             "(the model's own search), not both")
        if self.web_search is not None:
            _probe({"web_search": self.web_search})
        if self.web_search_options is not None:
            _probe({"web_search_options": self.web_search_options})
        return self

    def request_model(self) -> tuple[str, list[str] | None]:
        """The ``model`` and ``models`` this variant sends (see the module docstring)."""
        if self.model is not None:
            return self.model, (list(self.models) if self.models else None)
        assert self.models
        return self.models[0], (list(self.models[1:]) or None)


class Route(_Strict):
    """A CEL condition and the weighted variants of the requests it matches.

    ``condition`` is required in ``routes`` and absent on ``default_route``.
    """

    id: str = Field("default", pattern=_NAME)
    condition: str | None = None
    variants: list[Variant] = Field(min_length=1)

    _program: Any = PrivateAttr(None)
    _needs_messages: bool = PrivateAttr(False)
    _functions: dict[str, Any] = PrivateAttr(default_factory=dict)
    _cumulative: tuple[int, ...] = PrivateAttr(())

    @model_validator(mode="before")
    @classmethod
    def _lone_weight(cls, data: Any) -> Any:
        # A route with one variant need not give its weight.
        if isinstance(data, dict) and isinstance(data.get("variants"), list) and len(data["variants"]) == 1:
            only = data["variants"][0]
            if isinstance(only, dict) and "weight" not in only:
                data = {**data, "variants": [{**only, "weight": 100}]}
        return data

    @model_validator(mode="after")
    def _check(self) -> "Route":
        ids = [v.id for v in self.variants]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"variant id {dupes[0]!r} is used more than once")
        total = sum(v.weight for v in self.variants)
        if total != 100:
            weights = " + ".join(str(v.weight) for v in self.variants)
            raise ValueError(f"variant weights sum to {total} ({weights}), not 100")
        running, cumulative = 0, []
        for v in self.variants:
            running += v.weight * (_BUCKETS // 100)
            cumulative.append(running)
        self._cumulative = tuple(cumulative)
        if self.condition is not None:
            self._compile(self.condition)
        return self

    def _compile(self, source: str) -> None:
        if not source.strip():
            raise ValueError("condition is empty")
        try:
            program = cel.compile(source)
        except Exception as exc:  # the library raises ValueError with the parser's message
            text = str(exc)
            text = text.split("ERROR: ", 1)[1] if "ERROR: " in text else text
            raise ValueError(f"condition does not compile: {text}") from None
        names = set(program.variables())
        functions = set(program.functions())
        bound = set(_CEL_BOUND.findall(source))
        # Namespaced extension functions (math.greatest) show up as a variable plus a function.
        used: dict[str, Any] = {}
        for name, fn in STDLIB_FUNCTIONS.items():
            ns, _, short = name.rpartition(".")
            if (not ns and name in functions) or (ns and ns in names and short in functions):
                used[name] = fn
                names.discard(ns)
        unknown = sorted(names - _CEL_VARIABLES - _CEL_TYPE_NAMES - bound)
        if unknown:
            raise ValueError(f"condition uses unknown variable {unknown[0]!r} "
                             "(conditions see metadata, messages and user)")
        self._program = program
        self._needs_messages = "messages" in names
        self._functions = used

    def pick(self, router: str, key: str) -> Variant:
        """The variant for ``key`` (a user or a request id): deterministic, by weight."""
        digest = hashlib.sha256(f"{router}\x00{self.id}\x00{key}".encode("utf-8")).hexdigest()
        bucket = int(digest[:16], 16) % _BUCKETS
        for variant, upper in zip(self.variants, self._cumulative):
            if bucket < upper:
                return variant
        return self.variants[-1]  # unreachable: weights sum to 100


@dataclass(frozen=True)
class Selection:
    """Which route and variant a request got, and why."""

    router: str
    route_id: str
    variant_id: str
    variant: Variant
    matched: Literal["condition", "default"]
    #: Conditions that failed to evaluate (counted as false), one line each.
    warnings: list[str] = field(default_factory=list)

    def metadata(self) -> dict[str, str]:
        """``{router, route_id, variant_id}`` for the response metadata."""
        return {"router": self.router, "route_id": self.route_id, "variant_id": self.variant_id}


class Router(_Strict):
    """A named configuration: defaults, ordered routes and a default route."""

    name: str = Field(pattern=_NAME)
    description: str | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    routes: list[Route] = Field(default_factory=list)
    default_route: Route | None = None

    _functions: dict[str, Any] = PrivateAttr(default_factory=dict)
    #: ``(route, program, needs_messages)`` per route: plain tuples, read once per selection
    #: (pydantic's private-attribute lookups are too slow for the hot loop).
    _plan: tuple[tuple[Route, Any, bool], ...] = PrivateAttr(())

    @model_validator(mode="after")
    def _check(self) -> "Router":
        if not self.routes and self.default_route is None:
            raise ValueError("a router needs routes or a default_route")
        for route in self.routes:
            if route.condition is None:
                raise ValueError(f"route {route.id!r} has no condition (only default_route goes without one)")
        if self.default_route is not None and self.default_route.condition is not None:
            raise ValueError("default_route takes no condition (it is used when no route matches)")
        ids = [r.id for r in self.routes] + ([self.default_route.id] if self.default_route else [])
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"route id {dupes[0]!r} is used more than once")
        functions: dict[str, Any] = {}
        for route in self.routes:
            functions.update(route._functions)
        self._functions = functions
        self._plan = tuple((r, r._program, r._needs_messages) for r in self.routes)
        return self

    # ------------------------------------------------------------------ building

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> "Router":
        """Validate a router mapping; errors name ``source``, the router, route and variant."""
        if isinstance(data, Router):
            return data
        if not isinstance(data, dict):
            raise InvalidRequestError(f"{source + ': ' if source else ''}a router must be a mapping, "
                                      f"not {type(data).__name__}", param="router", code="invalid_router")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _router_error(exc, data, source) from None

    def to_dict(self) -> dict[str, Any]:
        """The router as a plain mapping (what :meth:`from_dict` and the files take)."""
        return self.model_dump(mode="json", exclude_none=True)

    # ------------------------------------------------------------------ selecting

    def select(self, *, metadata: dict[str, str] | None, messages: list[dict[str, Any]],
               user: str | None, request_id: str) -> Selection:
        """The route and variant for a request (see the module docstring).

        Raises :class:`InvalidRequestError` (code ``no_route``) when nothing
        matches and there is no default route.
        """
        meta = metadata or {}
        if any(not isinstance(v, str) for v in meta.values()):
            meta = {str(k): str(v) for k, v in meta.items()}
        context = cel.Context({"metadata": meta, "user": user or ""}, self._functions or None)
        have_messages = False
        warnings: list[str] = []
        for route, program, needs_messages in self._plan:
            if needs_messages and not have_messages:
                context.add_variable("messages", _message_view(messages))
                have_messages = True
            try:
                result = program.execute(context)
            except Exception as exc:  # a missing key, a bad conversion, an unknown function
                warnings.append(f"route {route.id!r}: condition failed, counted as false: {_cel_error(exc)}")
                continue
            if result is True:
                return self._choose(route, "condition", user, request_id, warnings)
            if result is not False:
                warnings.append(f"route {route.id!r}: condition returned {type(result).__name__} "
                                f"{result!r}, not a bool; counted as false")
        if self.default_route is not None:
            return self._choose(self.default_route, "default", user, request_id, warnings)
        raise InvalidRequestError(f"router {self.name!r}: no route matched and there is no default route",
                                  param="model", code="no_route")

    def _choose(self, route: Route, matched: Literal["condition", "default"], user: str | None,
                request_id: str, warnings: list[str]) -> Selection:
        variant = route.pick(self.name, user if user else request_id)
        return Selection(router=self.name, route_id=route.id, variant_id=variant.id, variant=variant,
                         matched=matched, warnings=warnings)

    # ------------------------------------------------------------------ applying

    def apply(self, selection: Selection, request: dict[str, Any]) -> dict[str, Any]:
        """New request keyword arguments: ``request`` with the variant and the defaults applied.

        ``request`` is not changed. A field the request sets (not ``None``, at
        the top level or in ``extra_body``) is never overridden, except
        ``model``, which names this router and is always replaced.
        """
        variant = selection.variant
        out = dict(request)
        extra = request.get("extra_body") if isinstance(request.get("extra_body"), dict) else {}

        def is_set(key: str) -> bool:
            return request.get(key) is not None or extra.get(key) is not None

        model, models = variant.request_model()
        out["model"] = model
        chosen: dict[str, Any] = {
            "models": models,
            "sort": [variant.sort] if isinstance(variant.sort, str) else variant.sort,
            "ignore": variant.ignore,
            "provider": variant.provider.model_dump(exclude_none=True) if variant.provider else None,
        }
        for key in _SELECTION_FIELDS:
            if chosen[key] is not None and not is_set(key):
                out[key] = copy.deepcopy(chosen[key])
        for key, value in {**self.defaults.generation, **variant.generation}.items():
            if not is_set(key):
                out[key] = copy.deepcopy(value)
        if not any(is_set(k) for k in _SEARCH_FIELDS):
            for key in _SEARCH_FIELDS:
                if getattr(variant, key) is not None:
                    out[key] = copy.deepcopy(getattr(variant, key))
        templates = list(self.defaults.messages) + list(variant.messages)
        if templates:
            metadata = request.get("metadata") if request.get("metadata") is not None else extra.get("metadata")
            user = request.get("user") if request.get("user") is not None else extra.get("user")
            first = [m for m in templates if m.get("role") in ("system", "developer")]
            rest = [m for m in templates if m.get("role") not in ("system", "developer")]
            rendered = [_render(m, metadata or {}, user or None, self.name) for m in first + rest]
            out["messages"] = rendered + list(request.get("messages") or [])
        return out

    def route(self, request: dict[str, Any], *, request_id: str) -> tuple[dict[str, Any], Selection]:
        """:meth:`select` on the request's own metadata, messages and user, then :meth:`apply`."""
        extra = request.get("extra_body") if isinstance(request.get("extra_body"), dict) else {}
        metadata = request.get("metadata") if request.get("metadata") is not None else extra.get("metadata")
        user = request.get("user") if request.get("user") is not None else extra.get("user")
        selection = self.select(metadata=metadata, messages=request.get("messages") or [],
                                user=user, request_id=request_id)
        return self.apply(selection, request), selection


# --------------------------------------------------------------------------- helpers


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text") or "" for p in content
                         if isinstance(p, dict) and p.get("type") == "text")
    return ""


def _message_view(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """What conditions see as ``messages``: ``[{role, content}]`` with text content."""
    return [{"role": str(m.get("role") or ""), "content": _text(m.get("content"))}
            for m in messages if isinstance(m, dict)]


def _cel_error(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no key {exc.args[0]!r} (guard it with has(...))"
    text = str(exc).strip() or type(exc).__name__
    return text.split(". Check that", 1)[0]


def _render(message: dict[str, Any], metadata: dict[str, Any], user: str | None, router: str) -> dict[str, Any]:
    """``message`` with its ``{{user}}`` and ``{{metadata.KEY}}`` filled in; a value the
    request does not send is an :class:`InvalidRequestError` naming it."""
    def sub(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            if m.group(1) == "user":
                if user is None:
                    raise InvalidRequestError(
                        f"router {router!r}: its template uses {{{{user}}}}, and this request sends no 'user'",
                        param="user", code="missing_template_variable")
                return str(user)
            value = metadata.get(m.group(2))
            if value is None:
                raise InvalidRequestError(
                    f"router {router!r}: its template uses {{{{metadata.{m.group(2)}}}}}, and this request's "
                    f"metadata has no {m.group(2)!r}", param=f"metadata.{m.group(2)}",
                    code="missing_template_variable")
            return str(value)

        return _PLACEHOLDER.sub(one, text) if "{{" in text else text

    out = copy.deepcopy(message)
    content = out.get("content")
    if isinstance(content, str):
        out["content"] = sub(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                part["text"] = sub(part["text"])
    return out


def _router_error(exc: ValidationError, data: dict[str, Any], source: str | None) -> InvalidRequestError:
    """A ValidationError as one line: where (source, router, route, variant, field) and what."""
    err = exc.errors(include_url=False)[0]
    name = data.get("name")
    parts = [source] if source else []
    parts.append(f"router {name!r}" if isinstance(name, str) else "router")
    where, param = _where(err["loc"], data)
    if where:
        parts.append(where)
    if err["type"] == "extra_forbidden":
        message = "unknown key"
    elif err["type"] == "missing":
        message = "required"
    else:
        message = describe(err)
    return InvalidRequestError(": ".join(parts + [message]), param=param or "router", code="invalid_router")


def _where(loc: tuple[Any, ...], data: Any) -> tuple[str, str]:
    """``('routes', 1, 'variants', 0, 'generation')`` -> ``("route 'pro': variant 'a': generation",
    "routes[1].variants[0].generation")``: ids where the input has them, then the field."""
    labels: list[str] = []
    fields = ""
    path = ""
    node: Any = data
    loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith(("function-", "literal["))))
    i = 0
    while i < len(loc):
        part = loc[i]
        nxt = loc[i + 1] if i + 1 < len(loc) else None
        if not fields and part in ("routes", "variants") and isinstance(nxt, int):
            items = node.get(part) if isinstance(node, dict) else None
            node = items[nxt] if isinstance(items, list) and nxt < len(items) else None
            ident = node.get("id") if isinstance(node, dict) else None
            kind = "route" if part == "routes" else "variant"
            labels.append(f"{kind} {ident!r}" if isinstance(ident, str) else f"{kind} #{nxt + 1}")
            path += f"{'.' if path else ''}{part}[{nxt}]"
            i += 2
            continue
        if not fields and part == "default_route":
            node = node.get(part) if isinstance(node, dict) else None
            ident = node.get("id") if isinstance(node, dict) else None
            labels.append(f"default route {ident!r}" if isinstance(ident, str) else "default route")
        else:
            fields += f"[{part}]" if isinstance(part, int) else f"{'.' if fields else ''}{part}"
        path += f"[{part}]" if isinstance(part, int) else f"{'.' if path else ''}{part}"
        i += 1
    return ": ".join(labels + ([fields] if fields else [])), path


# --------------------------------------------------------------------------- the set


class RouterSet:
    """Routers by name. Safe to read from many threads while one writes."""

    def __init__(self, routers: Iterable[Router | dict[str, Any]] = ()) -> None:
        self._lock = threading.Lock()
        self._routers: dict[str, Router] = {}
        for item in routers:
            router = Router.from_dict(item)
            if router.name in self._routers:
                raise InvalidRequestError(f"router {router.name!r} is defined more than once",
                                          param="router", code="invalid_router")
            self._routers[router.name] = router

    def get(self, name: str) -> Router:
        """The router called ``name``; :class:`NotFoundError` (code ``model_not_found``) if none."""
        router = self._routers.get(name)
        if router is None:
            known = ", ".join(self.names()) or "(none)"
            raise NotFoundError(f"unknown router {name!r}; known: {known}", param="model", code="model_not_found")
        return router

    def names(self) -> list[str]:
        return sorted(self._routers)

    def put(self, router: Router | dict[str, Any]) -> Router:
        """Validate and store a router, replacing one of the same name."""
        checked = Router.from_dict(router)
        with self._lock:
            self._routers = {**self._routers, checked.name: checked}
        return checked

    def delete(self, name: str) -> None:
        """Remove a router; :class:`NotFoundError` if there is none of that name."""
        with self._lock:
            self.get(name)
            self._routers = {k: v for k, v in self._routers.items() if k != name}

    def to_dict(self) -> dict[str, Any]:
        """``{"routers": [...]}`` sorted by name: a listing, and a valid router file."""
        return {"routers": [self._routers[n].to_dict() for n in self.names()]}

    def __contains__(self, name: object) -> bool:
        return name in self._routers

    def __len__(self) -> int:
        return len(self._routers)

    def __iter__(self) -> Iterator[Router]:
        return iter([self._routers[n] for n in self.names()])


# --------------------------------------------------------------------------- loading


def _read_router_file(path: Path) -> list[tuple[Any, str]]:
    """The router mappings in one file, each with where it came from."""
    where = f"router file {path}"
    data = read_data_file(path, where=where, param="router_files", code="invalid_router")
    if data is None:
        return []
    if isinstance(data, dict) and "routers" in data and "name" not in data:
        if set(data) != {"routers"} or not isinstance(data["routers"], list):
            raise InvalidRequestError(f"{where}: expected {{routers: [...]}} and nothing else",
                                      param="router_files", code="invalid_router")
        items = data["routers"]
    elif isinstance(data, dict):
        items = [data]
    elif isinstance(data, list):
        items = data
    else:
        raise InvalidRequestError(f"{where}: expected a router, a list of routers or {{routers: [...]}}",
                                  param="router_files", code="invalid_router")
    return [(item, where if len(items) == 1 else f"{where} (router #{i + 1})") for i, item in enumerate(items)]


def load_routers(config: "Config | None" = None) -> RouterSet:
    """All routers of ``config`` (default: the process's config): inline, then ``router_files``.

    Errors (an :class:`InvalidRequestError`) name the file, the router, the
    route and the problem; a name defined twice is an error naming both places.
    """
    if config is None:
        from ..config import get_config

        config = get_config()
    found: list[tuple[Any, str]] = [(item, f"config routers[{i}]") for i, item in enumerate(config.routers)]
    for entry in config.router_files:
        path = config.path(entry)
        if path.is_dir():
            files = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in _ROUTER_SUFFIXES and not p.name.startswith("."))
            for file in files:
                found.extend(_read_router_file(file))
        elif path.exists():
            found.extend(_read_router_file(path))
        else:
            raise InvalidRequestError(f"router file {path}: no such file or folder",
                                      param="router_files", code="invalid_router")
    routers: dict[str, tuple[Router, str]] = {}
    for item, source in found:
        router = Router.from_dict(item, source=source)
        if router.name in routers:
            raise InvalidRequestError(
                f"router {router.name!r} is defined twice: in {routers[router.name][1]} and in {source}",
                param="router_files", code="invalid_router")
        routers[router.name] = (router, source)
    return RouterSet(r for r, _ in routers.values())


_current: RouterSet | None = None
_current_lock = threading.Lock()
#: What :func:`get_routers` passes the config's routers through (a router store), if set.
_source: Callable[[RouterSet], RouterSet] | None = None


def file_routers() -> RouterSet:
    """The config's routers (inline and ``router_files``), loaded once from :func:`grounding.config.get_config`."""
    global _current
    current = _current
    if current is None:
        with _current_lock:
            if _current is None:
                _current = load_routers()
            current = _current
    return current


def get_routers() -> RouterSet:
    """The process's routers: :func:`file_routers`, through the source of
    :func:`set_router_source` when one is set (a router store adds its routers)."""
    current = file_routers()
    source = _source
    return current if source is None else source(current)


def set_router_source(source: Callable[[RouterSet], RouterSet] | None) -> None:
    """Make :func:`get_routers` return ``source(file_routers())`` (``None``: the file routers alone).

    ``source`` is called on every :func:`get_routers` call and should cache.
    """
    global _source
    _source = source


def reset() -> None:
    """Forget the loaded routers (the next :func:`get_routers` reads the config again)."""
    global _current
    with _current_lock:
        _current = None


def parse_router_ref(model: str, prefix: str | None = None) -> str | None:
    """``"router/<name>"`` (``prefix`` from the config's ``router_prefix``) or
    ``"inworld/<name>"`` -> ``name``; anything else -> ``None``."""
    if not isinstance(model, str):
        return None
    if prefix is None:
        from ..config import get_config

        prefix = get_config().router_prefix
    for p in dict.fromkeys((prefix.rstrip("/"), _ALWAYS_PREFIX)):
        if p and model.startswith(p + "/"):
            return model[len(p) + 1:]
    return None
