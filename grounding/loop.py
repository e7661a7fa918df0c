"""The search tool loop, top to bottom.

    model turn ─┬─ answer (text) ───────────────────────────────┐
                ├─ caller's tool call ─> returned to the caller  │
                └─ web_search calls ─> searches (parallel)       │
                       ─> pages fetched + extracted (concurrent) │
                       ─> numbered sources ─> next model turn    │
    citations ([n], links) ─> url_citation annotations <─────────┘

:func:`run` yields :class:`ContentDelta` events as the answer is written
(when streaming) and one :class:`Done` with the finished completion.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from providers.fetch import Fetcher
from providers.search import NATIVE, default_engine_name, get_engine

from .capabilities import check_request, check_targets
from .deadlines import deadlines
from .errors import GroundingError, OutputValidationError
from .events import ContentDelta, Done, Started
from .finish import finish
from .gather import Gatherer, Source
from .media import prepare_media
from .native import (DOMAIN_FILTER_PROVIDERS, NativeResult, check_native, native_search_params, provider_of,
                     supports_native_search)
from .native import native_scope as native_scope_info
from .preflight import check_plan
from .preflight import check_request as check_settings
from .progress import Emitter
from .prompts import SEARCH_TOOL_NAME, search_tool, system_prompt
from .redact import scrub, scrub_model
from .request import SEARCH_TURN_FIELDS, ChatRequest, WebSearch, WebSearchOptions
from .response import Metadata, StructuredInfo, Usage, new_id
from .routing.attempts import Attempts
from .routing.plan import Plan, plan_request
from .routing.stats import get_stats
from .structured import OutputCheck, repair_message
from .target import Target, start_local
from .turn import Call, TurnResult, model_turn

__all__ = ["prepare", "run", "Prepared", "Session", "Started", "ContentDelta", "Done"]

#: Text a search turn writes before this many characters is held back: if a
#: tool call follows, it was a preamble ("Let me search...") and is dropped.
_PREAMBLE_CHARS = 200


@dataclass
class Prepared:
    """A request checked and routed, before any model call: what :func:`run` runs."""

    req: ChatRequest
    plan: Plan
    generation_id: str
    t0: float
    emit: Emitter
    #: Input media checked (and fetched where a target cannot take URLs).
    media: Any = None


async def prepare(req: ChatRequest, *, emit: Emitter | None = None) -> Prepared:
    """Check the request and route it, without calling a model or starting one.

    Everything a caller should hear about before a response starts fails here:
    a missing key or base URL (:class:`~grounding.errors.ConfigurationError`),
    an unknown model or router, what the chosen model cannot do, bad input
    media, a local model that is not installed.
    """
    t0 = time.perf_counter()
    emit = emit or Emitter()
    generation_id = new_id()
    check_settings(req)  # settings named on the request itself: no catalog, no litellm import
    check_request(req)  # what no model (or the embedded one) can do
    plan = await plan_request(req, request_id=generation_id)
    check_plan(plan)  # what routing chose (auto, providers of a model id, fallbacks): keys
    plan.targets, dropped = check_targets(plan.req, plan.targets)  # ...and capabilities
    plan.warnings.extend(dropped)
    # Input media: checked, and fetched safely for the targets that cannot take URLs (400s come here).
    media = await prepare_media(plan.req.messages, plan.targets)
    return Prepared(plan.req, plan, generation_id, t0, emit, media)


async def run(prepared: Prepared) -> AsyncIterator[Started | ContentDelta | Done]:
    """Answer a prepared request: the tool loop when ``web_search`` is set, else one plain turn.

    Progress goes to ``prepared.emit``; run it in a context where
    :func:`grounding.progress.use` made that emitter current (see
    :func:`grounding.api.acompletion`), so deep code (the local model's start,
    index builds) reports to it too.
    """
    plan, t0, generation_id = prepared.plan, prepared.t0, prepared.generation_id
    emit = prepared.emit
    emit("resolving", f"model: {plan.targets[0].name}" + (f" (then {len(plan.targets) - 1} fallback(s))"
                                                          if len(plan.targets) > 1 else ""))
    warming = _warm_engine(plan.req)  # an index to build can build while a model loads
    try:
        targets = await start_local(plan.targets)
    except BaseException:
        if warming is not None:
            warming.cancel()
        raise
    attempts = Attempts(targets, ttft_timeout=plan.req.fallback.ttft_timeout if plan.req.fallback else None,
                        effort=plan.req.effort, stats=get_stats())
    req, reason, scope = _resolve_native(plan.req, attempts.current)
    session = Session(req, attempts, emit, t0, generation_id, native_scope=scope)
    session.meta.mode_reason = reason
    session.meta.router, session.meta.route_id, session.meta.variant_id = plan.router, plan.route_id, plan.variant_id
    session.meta.auto = plan.auto
    for warning in plan.warnings:
        session.warn(warning)
    if prepared.media is not None:
        attempts.adapt = prepared.media.adapt
    yield Started(session.id, attempts.current.name, session.created)
    secrets = [req.api_key, *(req.extra_headers or {}).values()]
    try:
        async for event in session.events():
            if isinstance(event, Done):  # what leaves the library: no configured secret in it
                scrub_model(event.completion.metadata, secrets)
            yield event
    except GroundingError as exc:
        # What was searched and fetched before the failure, for the caller's logs.
        session.meta.total_duration_ms = round((time.perf_counter() - t0) * 1000, 1)
        session.sync_routing()
        exc.metadata = scrub(session.meta.to_dict(), secrets)
        raise


def _warm_engine(req: ChatRequest) -> "asyncio.Task[None] | None":
    """Start the request's engine's ``warm()`` (the local index opens or builds) in the background."""
    ws = req.web_search
    if ws is None or ws.engine == NATIVE:
        return None
    try:
        engine = get_engine(ws.engine or default_engine_name())
    except GroundingError:
        return None
    warm = getattr(engine, "warm", None)
    return asyncio.ensure_future(warm()) if warm is not None else None


def _resolve_native(req: ChatRequest, target: Target) -> tuple[ChatRequest, str | None, WebSearch | None]:
    """``web_search.engine = "native"``: the model's own search where it has one (and,
    with domain filters, where it takes them), else the tool loop with the default
    engine. Returns the request to run, why, and the ``web_search`` whose scope the
    native search carries."""
    ws = req.web_search
    if ws is None or ws.engine != NATIVE:
        return req, None, None
    fallback = default_engine_name()
    loop_req = req.model_copy(update={"web_search": ws.model_copy(update={"engine": fallback})})
    if not supports_native_search(target.litellm_model):
        return (loop_req, f"engine 'native': {target.name} has no native search, so the tool loop ran with "
                          f"engine {fallback!r}", None)
    provider = provider_of(target.litellm_model)
    if (ws.allowed_domains or ws.excluded_domains) and provider not in DOMAIN_FILTER_PROVIDERS:
        return (loop_req, f"engine 'native': {provider}'s own search cannot be limited to domains, so the tool "
                          f"loop ran with engine {fallback!r}, which enforces them", None)
    options = WebSearchOptions(search_context_size=ws.search_context_size, user_location=ws.user_location)
    return (req.model_copy(update={"web_search": None, "web_search_options": options}),
            f"engine 'native': {target.name} searches with its provider's own search", ws)


class Session:
    """One request's state: messages so far, sources, usage, metadata."""

    def __init__(self, req: ChatRequest, attempts: Attempts, emit: Emitter, t0: float,
                 generation_id: str, *, native_scope: WebSearch | None = None) -> None:
        self.req = req
        #: ``web_search`` scope (domains...) carried into native search (engine "native").
        self.native_scope = native_scope
        self.attempts = attempts
        #: Progress: ``emit(stage, message, **counts)`` (see :mod:`grounding.progress`).
        self.emit = emit
        self.t0 = t0
        self.id = generation_id
        self.created = int(time.time())
        self.usage = Usage()
        target = attempts.current
        mode = "tool_loop" if req.web_search else ("native" if req.web_search_options else "none")
        self.meta = Metadata(mode=mode, model=target.name, generation_id=generation_id)
        kept, dropped = check_targets(req, attempts.targets)
        attempts.targets[:] = kept
        self.meta.warnings.extend(dropped)
        self.native: NativeResult | None = None
        if mode == "native":
            for t in attempts.targets:
                check_native(t.litellm_model)
            self.meta.provider = provider_of(target.litellm_model)
            self.native = NativeResult(self.meta.provider)
            if native_scope is not None:
                self.meta.search_options = native_scope_info(native_scope, self.meta.provider)
        self.sources: dict[str, Source] = {}  # normalized url -> source
        #: response_format's promise, kept for grounded answers (see grounding.structured).
        grounded = req.web_search is not None or req.web_search_options is not None
        self.output_check = OutputCheck.of(self._response_format()) if grounded else None
        self.output_data: Any = None  # the answer's parsed JSON, once checked
        self.messages: list[dict[str, Any]] = list(req.messages)
        if req.web_search:
            self.messages.insert(0, {"role": "system", "content": system_prompt()})

    @property
    def target(self) -> Target:
        """The model answering now (a fallback changes it)."""
        return self.attempts.current

    def sync_routing(self) -> None:
        """Copy the attempts (and what became of the reasoning effort) into the metadata."""
        self.meta.attempts = list(self.attempts.record)
        self.meta.reasoning = self.attempts.reasoning
        self.meta.model = self.target.name
        if self.meta.reasoning is not None and not self.meta.reasoning.applied and self.meta.reasoning.reason:
            self.warn(self.meta.reasoning.reason)

    # -- the loop ----------------------------------------------------------

    async def events(self) -> AsyncIterator[ContentDelta | Done]:
        ws = self.req.web_search
        if ws is None:
            turn = TurnResult()
            checked = self.output_check is not None  # the answer is held back until it is valid
            async for delta in model_turn(self, self._plain_params(), turn, step=0, kind="completion",
                                          live=not checked):
                yield delta
            if checked and not turn.calls:
                await self._enforce_output(turn, self._plain_params)
                if self.req.stream:
                    turn.streamed = turn.content
                    yield ContentDelta(turn.content)
            yield Done(await finish(self, turn.streamed if self.req.stream else turn.content, turn))
            return

        self.meta.engine = ws.engine or default_engine_name()
        engine = get_engine(self.meta.engine)
        emitted = ""
        # Room for every page of a step (several queries' worth) without queueing.
        # (A malformed proxy in the environment is an InvalidRequestError naming it.)
        async with Fetcher(concurrency=max(8, 2 * ws.max_results), timeout=deadlines().page) as fetcher:
            gatherer = Gatherer(self, engine, fetcher)
            steps = 0
            while True:
                answer_turn = steps >= ws.max_steps
                if not answer_turn and steps == 0 and self._question_first():
                    # The profile searches the question itself: no search turn (a model call saved).
                    call = Call("call_question_1", SEARCH_TOOL_NAME, json.dumps({"query": _last_user_text(self.messages)}))
                    steps = self.meta.steps = 1
                    self.messages.append(_assistant_message(TurnResult(calls=[call])))
                    self.messages.extend(await gatherer.step(steps, [call]))
                    continue
                params = self._answer_params() if answer_turn else self._search_params()
                turn = TurnResult()
                if answer_turn:
                    shown = len(self.sources)
                    self.emit("reading", f"reading {shown} source{'s' if shown != 1 else ''}" if shown
                              else "writing without sources", total=shown)
                else:
                    self.emit("thinking", "thinking about what to search")
                # Search-turn text streams live (after a preamble hold) unless it may be
                # discarded: with response_format, or when the profile forces a tool call.
                # An answer whose JSON is checked is held back until it is valid.
                live_ok = (answer_turn and self.output_check is None) or (
                    not answer_turn and not self._needs_answer_turn() and not self.target.profile.forces_search)
                turn_start = True
                async for delta in model_turn(self, params, turn, step=steps if answer_turn else steps + 1,
                                                    kind="answer" if answer_turn else "search", live=live_ok,
                                                    hold=0 if answer_turn else _PREAMBLE_CHARS):
                    if turn_start and emitted and not emitted.endswith("\n"):
                        emitted += "\n\n"  # this turn's text after an earlier turn's
                        yield ContentDelta("\n\n")
                    turn_start = False
                    emitted += delta.text
                    yield delta

                if not turn.calls and not answer_turn and self._must_search(steps):
                    # A small model told to call the tool wrote prose instead:
                    # search the question itself rather than answer ungrounded.
                    turn.calls = [Call(f"call_forced_{steps + 1}", SEARCH_TOOL_NAME,
                                        json.dumps({"query": _last_user_text(self.messages)}))]
                    turn.content = ""
                    self.warn("the model did not call the search tool; the question itself was searched")
                search_calls = [c for c in turn.calls if c.name not in self.req.caller_tool_names]
                caller_calls = [c for c in turn.calls if c.name in self.req.caller_tool_names]
                if caller_calls:
                    if search_calls:
                        self.warn(f"the model called {len(search_calls)} search tool(s) together with your tool; "
                                   "only your tool call is returned")
                    turn.calls = caller_calls
                    turn.finish_reason = "tool_calls"
                    break
                if turn.calls and not answer_turn:
                    steps += 1
                    self.meta.steps = steps
                    self.messages.append(_assistant_message(turn))
                    self.messages.extend(await gatherer.step(steps, turn.calls))
                    continue
                if turn.calls:  # tool calls on the answer turn, despite tool_choice
                    self.warn("the model kept calling tools after max_steps; its calls were ignored")
                    turn.calls = []
                    turn.finish_reason = "stop"
                    if not turn.content.strip():
                        async for delta in self._fallback_answer(turn, steps):
                            emitted += delta.text
                            yield delta
                    break
                if not answer_turn and self._needs_answer_turn():
                    # Answered before searching, without the caller's response_format or
                    # modalities (search turns carry neither): ask properly.
                    steps = ws.max_steps
                    continue
                break

        if self.output_check is not None and turn.finish_reason != "tool_calls":
            await self._enforce_output(turn, self._answer_params)
        content = emitted if self.req.stream else turn.content
        if self.req.stream and turn.content and not turn.streamed:
            # Held-back text of the final turn (a search turn that answered directly).
            content = emitted + turn.content
            yield ContentDelta(turn.content)
        yield Done(await finish(self, content, turn))

    # -- model turns -------------------------------------------------------

    def _base_params(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"messages": self.messages}  # the model and its endpoint: per attempt
        if self.req.timeout:
            kw["timeout"] = self.req.timeout
        if self.req.extra_headers:
            kw["extra_headers"] = self.req.extra_headers
        extra = dict(self.req.extra_body or {})
        if self.target.profile.prompt_progress and self.req.stream:
            extra.setdefault("return_progress", True)  # llama.cpp: how far it has read the prompt
        if extra:
            kw["extra_body"] = extra
        return kw

    def _question_first(self) -> bool:
        """The profile searches the user's question itself first (no search turn), and nothing in the
        request needs the model to choose: no tools of the caller's, no response format."""
        return (self.target.profile.first_query == "question" and not self.req.tools
                and self.req.response_format is None and bool(_last_user_text(self.messages)))

    def _caller_tools(self) -> list[dict[str, Any]]:
        return [t.model_dump(exclude_none=True) for t in self.req.tools or []]

    def _plain_params(self) -> dict[str, Any]:
        kw = self._base_params() | self.req.sampling()
        if self.req.tools:
            kw["tools"] = self._caller_tools()
        for name in ("tool_choice", "parallel_tool_calls"):
            if getattr(self.req, name) is not None:
                kw[name] = getattr(self.req, name)
        if self.req.response_format is not None:
            kw["response_format"] = self.req.response_format.model_dump(exclude_none=True)
        if self.req.web_search_options is not None:
            native = native_search_params(self.target.litellm_model,
                                          self.req.web_search_options.model_dump(exclude_none=True), self.native_scope)
            kw["tools"] = kw.get("tools", []) + native.pop("tools", [])
            kw.update(native)
            if not kw["tools"]:
                del kw["tools"]
        return kw

    def _search_params(self) -> dict[str, Any]:
        profile = self.target.profile
        kw = self._base_params() | self.req.sampling(SEARCH_TURN_FIELDS)
        tools = [search_tool()]
        if self.req.tool_choice != "none":
            tools += self._caller_tools()
        kw["tools"] = tools
        kw["tool_choice"] = profile.search_tool_choice
        parallel = profile.parallel_tool_calls if profile.parallel_tool_calls is not None else self.req.parallel_tool_calls
        if parallel is not None:
            kw["parallel_tool_calls"] = parallel
        return kw

    def _answer_params(self) -> dict[str, Any]:
        kw = self._base_params() | self.req.sampling()
        if self.req.tools:
            kw["tools"] = self._caller_tools()
            kw["tool_choice"] = self.req.tool_choice or "auto"
            if self.req.parallel_tool_calls is not None:
                kw["parallel_tool_calls"] = self.req.parallel_tool_calls
        elif self.target.profile.answer_tools and any(m.get("tool_calls") for m in self.messages
                                                      if m.get("role") == "assistant"):
            # The history has tool calls; some providers require the tool to stay declared.
            kw["tools"] = [search_tool()]
            if not self._json_mode_is_a_tool():
                kw["tool_choice"] = self.target.profile.answer_tool_choice
        if self.req.response_format is not None:
            kw["response_format"] = self.req.response_format.model_dump(exclude_none=True)
        return kw

    async def _fallback_answer(self, turn: TurnResult, steps: int) -> AsyncIterator[ContentDelta]:
        """Ask once more with no tools at all, the search history flattened to text."""
        params = self._base_params() | self.req.sampling()
        params["messages"] = _flatten_tool_history(self.messages)
        async for delta in model_turn(self, params, turn, step=steps, kind="answer", live=True):
            yield delta
        turn.calls = []

    # -- the end -----------------------------------------------------------

    def add_cost(self, value: float | None) -> None:
        """Add a priced part (a model turn, a search's fee); None: litellm cannot price it."""
        if value:
            self.meta.cost_usd = round((self.meta.cost_usd or 0.0) + value, 8)

    def _response_format(self) -> dict[str, Any] | None:
        rf = self.req.response_format
        return rf.model_dump(exclude_none=True) if rf is not None else None

    async def _enforce_output(self, turn: TurnResult, params: Callable[[], dict[str, Any]]) -> None:
        """Check the final answer against response_format; one repair turn if it fails; then
        the valid answer replaces ``turn.content``, or :class:`OutputValidationError`."""
        check = self.output_check
        assert check is not None
        verdict = check.check(turn.content)
        info = StructuredInfo(type=check.kind, valid=verdict.ok, errors=verdict.errors)
        self.meta.structured_output = info
        if not verdict.ok:
            self.emit("repairing", "the answer is not valid JSON for response_format: asking for a correction")
            self.messages.append({"role": "assistant", "content": turn.content})
            self.messages.append({"role": "user", "content": repair_message(check, verdict)})
            if self.native is not None:  # the repair turn's citations replace the first one's
                self.native = NativeResult(self.native.provider)
            repair = TurnResult()
            async for _ in model_turn(self, params(), repair, step=self.meta.steps, kind="repair", live=False):
                pass
            verdict = check.check(repair.content)
            info.valid = info.repaired = verdict.ok
            if not verdict.ok:
                raise OutputValidationError(
                    f"model {self.target.name}'s answer is not {check.describe()}, even after a repair turn: "
                    + "; ".join(verdict.errors), code=check.code, content=repair.content)
            turn.finish_reason, turn.images, turn.annotations = repair.finish_reason, repair.images, repair.annotations
        turn.content = verdict.content
        self.output_data = verdict.data

    def _json_mode_is_a_tool(self) -> bool:
        """litellm makes a json_schema ``response_format`` for Anthropic a forced ``json_tool_call``;
        a ``tool_choice`` of ours would override it (and the answer would come back as prose)."""
        rf = self.req.response_format
        return rf is not None and rf.type == "json_schema" and provider_of(self.target.litellm_model) == "anthropic"

    def _needs_answer_turn(self) -> bool:
        """The answer must come from an answer turn: it has a response_format or asks for images."""
        return self.req.response_format is not None or "image" in (self.req.modalities or [])

    def _must_search(self, steps: int) -> bool:
        """Whether this search turn had to call a tool: the profile forces it
        (``tool_choice="required"``) and nothing has been searched yet."""
        return self.target.profile.forces_search and steps == 0 and bool(_last_user_text(self.messages))

    def warn(self, text: str) -> None:
        if text not in self.meta.warnings:
            self.meta.warnings.append(text)


# -- helpers -----------------------------------------------------------------

def _assistant_message(turn: TurnResult) -> dict[str, Any]:
    """The model's tool-calling turn, for the history. Malformed arguments are
    replaced by ``{}``: some providers (Anthropic via litellm) refuse a history
    whose tool-call arguments are not a JSON object."""
    return {
        "role": "assistant",
        "content": turn.content or None,
        "tool_calls": [{"id": c.id, "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments if _is_json_object(c.arguments) else "{}"}}
                       for c in turn.calls],
    }


def _is_json_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except (json.JSONDecodeError, TypeError):
        return False


def _flatten_tool_history(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls and results rewritten as plain turns, for a call with no tools."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.get("role") == "assistant" and m.get("tool_calls"):
            asked = "; ".join(tc["function"]["arguments"] for tc in m["tool_calls"])
            out.append({"role": "assistant", "content": (m.get("content") or "") + f"(searched: {asked})"})
        elif m.get("role") == "tool":
            out.append({"role": "user", "content": f"Search results:\n{m.get('content') or ''}"})
        else:
            out.append(m)
    out.append({"role": "user", "content": "Now answer the question from these results, citing sources as [n]."})
    return out


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return (content or "").strip()[:500]
    return ""
