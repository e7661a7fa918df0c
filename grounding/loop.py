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
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable
from urllib.parse import urldefrag

from providers.extract import extract, extract_plain
from providers.fetch import Fetcher
from providers.search import NATIVE, SearchEngineError, SearchHit, default_engine_name, get_engine

from . import cost as costs
from . import llm
from .citations import SourceRef, annotate
from .errors import GroundingError
from .native import NativeResult, check_native, provider_of, supports_native_search
from .prompts import (
    CHARS_PER_TOKEN,
    SEARCH_TOOL_NAME,
    PromptSource,
    allocate,
    format_results,
    search_tool,
    system_prompt,
    trim_text,
)
from .request import SEARCH_TURN_FIELDS, ChatRequest, WebSearchOptions
from .response import (
    Annotation,
    ChatCompletion,
    Choice,
    FunctionCall,
    Message,
    Metadata,
    SearchInfo,
    SourceInfo,
    ToolCall,
    TurnInfo,
    Usage,
    new_id,
)
from .routing.attempts import Attempts
from .routing.plan import plan_request
from .routing.stats import get_stats
from .target import Target

__all__ = ["run", "Started", "ContentDelta", "Done"]

Progress = Callable[[str], None]

#: Text a search turn writes before this many characters is held back: if a
#: tool call follows, it was a preamble ("Let me search...") and is dropped.
_PREAMBLE_CHARS = 200


@dataclass
class Started:
    """The model is resolved; streaming can begin."""

    id: str
    model: str
    created: int


@dataclass
class ContentDelta:
    text: str


@dataclass
class Done:
    completion: ChatCompletion


@dataclass
class _Call:
    id: str
    name: str
    arguments: str


@dataclass
class _TurnResult:
    content: str = ""
    calls: list[_Call] = field(default_factory=list)
    finish_reason: str | None = None
    streamed: str = ""  # what of `content` was already yielded to the caller
    annotations: list[dict] = field(default_factory=list)  # the provider's own, if any


@dataclass
class _Source:
    id: int
    url: str
    title: str
    text: str


async def run(req: ChatRequest, *, progress: Progress | None = None) -> AsyncIterator[Started | ContentDelta | Done]:
    """Answer ``req``: route it, then the tool loop when ``req.web_search`` is set, else one plain turn."""
    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    generation_id = new_id()
    plan = await plan_request(req, request_id=generation_id, progress=say)
    attempts = Attempts(plan.targets, ttft_timeout=plan.req.fallback.ttft_timeout if plan.req.fallback else None,
                        effort=plan.req.effort, stats=get_stats())
    req, reason = _resolve_native(plan.req, attempts.current)
    session = _Session(req, attempts, say, t0, generation_id)
    session.meta.mode_reason = reason
    session.meta.router, session.meta.route_id, session.meta.variant_id = plan.router, plan.route_id, plan.variant_id
    session.meta.auto = plan.auto
    for warning in plan.warnings:
        session._warn(warning)
    yield Started(session.id, attempts.current.name, session.created)
    try:
        async for event in session.events():
            yield event
    except GroundingError as exc:
        # What was searched and fetched before the failure, for the caller's logs.
        session.meta.total_duration_ms = round((time.perf_counter() - t0) * 1000, 1)
        session.sync_routing()
        exc.metadata = session.meta.to_dict()
        raise


def _resolve_native(req: ChatRequest, target: Target) -> tuple[ChatRequest, str | None]:
    """``web_search.engine = "native"``: the model's own search where it has one,
    else the tool loop with the default engine. Returns the request to run and why."""
    ws = req.web_search
    if ws is None or ws.engine != NATIVE:
        return req, None
    if supports_native_search(target.litellm_model):
        return (req.model_copy(update={"web_search": None, "web_search_options": WebSearchOptions()}),
                f"engine 'native': {target.name} searches with its provider's own search")
    fallback = default_engine_name()
    return (req.model_copy(update={"web_search": ws.model_copy(update={"engine": fallback})}),
            f"engine 'native': {target.name} has no native search, so the tool loop ran with engine {fallback!r}")


class _Session:
    """One request's state: messages so far, sources, usage, metadata."""

    def __init__(self, req: ChatRequest, attempts: Attempts, progress: Progress, t0: float,
                 generation_id: str) -> None:
        self.req = req
        self.attempts = attempts
        self.say = progress
        self.t0 = t0
        self.id = generation_id
        self.created = int(time.time())
        self.usage = Usage()
        target = attempts.current
        mode = "tool_loop" if req.web_search else ("native" if req.web_search_options else "none")
        self.meta = Metadata(mode=mode, model=target.name, generation_id=generation_id)
        self.native: NativeResult | None = None
        if mode == "native":
            for t in attempts.targets:
                check_native(t.litellm_model)
            self.meta.provider = provider_of(target.litellm_model)
            self.native = NativeResult(self.meta.provider)
        self.sources: dict[str, _Source] = {}  # normalized url -> source
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
            self._warn(self.meta.reasoning.reason)

    # -- the loop ----------------------------------------------------------

    async def events(self) -> AsyncIterator[ContentDelta | Done]:
        ws = self.req.web_search
        if ws is None:
            turn = _TurnResult()
            async for delta in self._model_turn(self._plain_params(), turn, step=0, kind="completion", live=True):
                yield delta
            yield Done(self._finish(turn.streamed if self.req.stream else turn.content, turn))
            return

        self.meta.engine = ws.engine or default_engine_name()
        engine = get_engine(self.meta.engine)
        emitted = ""
        # Room for every page of a step (several queries' worth) without queueing.
        async with Fetcher(concurrency=max(8, 2 * ws.max_results)) as fetcher:
            steps = 0
            while True:
                answer_turn = steps >= ws.max_steps
                params = self._answer_params() if answer_turn else self._search_params()
                turn = _TurnResult()
                self.say("writing the answer" if answer_turn else "thinking")
                # Search-turn text streams live (after a preamble hold) unless it may be
                # discarded: with response_format, or when the profile forces a tool call.
                live_ok = answer_turn or (self.req.response_format is None and not self.target.profile.forces_search)
                turn_start = True
                async for delta in self._model_turn(params, turn, step=steps if answer_turn else steps + 1,
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
                    turn.calls = [_Call(f"call_forced_{steps + 1}", SEARCH_TOOL_NAME,
                                        json.dumps({"query": _last_user_text(self.messages)}))]
                    turn.content = ""
                    self._warn("the model did not call the search tool; the question itself was searched")
                search_calls = [c for c in turn.calls if c.name not in self.req.caller_tool_names]
                caller_calls = [c for c in turn.calls if c.name in self.req.caller_tool_names]
                if caller_calls:
                    if search_calls:
                        self._warn(f"the model called {len(search_calls)} search tool(s) together with your tool; "
                                   "only your tool call is returned")
                    turn.calls = caller_calls
                    turn.finish_reason = "tool_calls"
                    break
                if turn.calls and not answer_turn:
                    steps += 1
                    self.meta.steps = steps
                    self.messages.append(_assistant_message(turn))
                    self.messages.extend(await self._search_step(steps, turn.calls, fetcher, engine))
                    continue
                if turn.calls:  # tool calls on the answer turn, despite tool_choice
                    self._warn("the model kept calling tools after max_steps; its calls were ignored")
                    turn.calls = []
                    turn.finish_reason = "stop"
                    if not turn.content.strip():
                        async for delta in self._fallback_answer(turn, steps):
                            emitted += delta.text
                            yield delta
                    break
                if not answer_turn and self.req.response_format is not None:
                    # Answered before searching, without the caller's response_format: ask properly.
                    steps = ws.max_steps
                    continue
                break

        content = emitted if self.req.stream else turn.content
        if self.req.stream and turn.content and not turn.streamed:
            # Held-back text of the final turn (a search turn that answered directly).
            content = emitted + turn.content
            yield ContentDelta(turn.content)
        yield Done(self._finish(content, turn))

    # -- model turns -------------------------------------------------------

    def _base_params(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"messages": self.messages}  # the model and its endpoint: per attempt
        if self.req.timeout:
            kw["timeout"] = self.req.timeout
        if self.req.extra_headers:
            kw["extra_headers"] = self.req.extra_headers
        if self.req.extra_body:
            kw["extra_body"] = self.req.extra_body
        return kw

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
            kw["web_search_options"] = self.req.web_search_options.model_dump(exclude_none=True)
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
        elif any(m.get("tool_calls") for m in self.messages if m.get("role") == "assistant"):
            # The history has tool calls; some providers require the tool to stay declared.
            kw["tools"] = [search_tool()]
            kw["tool_choice"] = self.target.profile.answer_tool_choice
        if self.req.response_format is not None:
            kw["response_format"] = self.req.response_format.model_dump(exclude_none=True)
        return kw

    async def _model_turn(self, params: dict[str, Any], out: _TurnResult, *, step: int, kind: str,
                          live: bool, hold: int = 0) -> AsyncIterator[ContentDelta]:
        """Run one model call, filling ``out``; yield content as it streams when ``live``.

        With ``hold`` > 0, text is held back until it passes ``hold`` characters
        without a tool call (a preamble before a tool call is dropped).
        """
        started = time.perf_counter()
        info = TurnInfo(step=step, kind=kind, model=self.target.name)
        self.meta.turns.append(info)
        if not self.req.stream:
            response = await self.attempts.complete(params)
            info.model = self.target.name
            choice = response.choices[0]
            message = choice.message
            out.content = message.content or ""
            out.finish_reason = choice.finish_reason
            out.calls = [_Call(tc.id or f"call_{i}", tc.function.name or "", tc.function.arguments or "")
                         for i, tc in enumerate(message.tool_calls or [])]
            out.annotations = _provider_annotations(message)
            if self.native is not None:
                self.native.on_response(response)
            self._add_cost(costs.turn_cost(response))
            usage = getattr(response, "usage", None)
        else:
            usage = None
            pieces: list[str] = []
            length = 0  # characters received so far (where a streamed citation points)
            held = ""
            calls: dict[int, dict[str, str]] = {}
            chunks: list[Any] = []  # for pricing the turn afterwards
            stream = await self.attempts.stream(params)
            info.model = self.target.name
            try:
                async for chunk in stream:
                    chunks.append(chunk)
                    if getattr(chunk, "usage", None):
                        usage = chunk.usage
                    if self.native is not None:
                        self.native.on_chunk(chunk, length)
                    for choice in chunk.choices or []:
                        delta = choice.delta
                        if info.time_to_first_token_ms is None and (delta.content or delta.tool_calls):
                            info.time_to_first_token_ms = round((time.perf_counter() - started) * 1000, 1)
                        for tc in delta.tool_calls or []:
                            _merge_tool_delta(calls, tc)
                        if delta.content:
                            pieces.append(delta.content)
                            length += len(delta.content)
                            if not live or (hold and calls and not out.streamed):
                                continue  # a search turn's text beside its tool call: a preamble
                            if hold and not out.streamed and len(held) + len(delta.content) < hold:
                                held += delta.content
                                continue
                            text, held = held + delta.content, ""
                            out.streamed += text
                            yield ContentDelta(text)
                        if getattr(delta, "annotations", None):
                            out.annotations.extend(_plain(a) for a in delta.annotations)
                        if choice.finish_reason:
                            out.finish_reason = choice.finish_reason
            except GroundingError:
                raise
            except Exception as exc:
                raise llm.to_grounding_error(exc, model=self.target.name) from exc
            out.content = "".join(pieces)
            self._add_cost(costs.stream_cost(self.target.litellm_model, chunks))
            out.calls = [_Call(c["id"] or f"call_{i}", c["name"], c["arguments"]) for i, c in sorted(calls.items())]
            if live and held and not out.calls:
                out.streamed += held
                yield ContentDelta(held)
        self.usage.add(usage)
        if usage is not None:
            info.prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            info.completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        info.finish_reason = out.finish_reason
        info.tool_calls = [c.name for c in out.calls]
        info.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        self.attempts.turn_done(duration_ms=info.duration_ms, ttft_ms=info.time_to_first_token_ms,
                                output_tokens=info.completion_tokens or None)

    async def _fallback_answer(self, turn: _TurnResult, steps: int) -> AsyncIterator[ContentDelta]:
        """Ask once more with no tools at all, the search history flattened to text."""
        params = self._base_params() | self.req.sampling()
        params["messages"] = _flatten_tool_history(self.messages)
        async for delta in self._model_turn(params, turn, step=steps, kind="answer", live=True):
            yield delta
        turn.calls = []

    # -- a search step -----------------------------------------------------

    async def _search_step(self, step: int, calls: list[_Call], fetcher: Fetcher, engine) -> list[dict[str, Any]]:
        """Run the step's searches and fetches; return one tool message per call."""
        ws = self.req.web_search
        assert ws is not None
        replies: dict[str, str] = {}
        queries: dict[str, str] = {}
        for call in calls:
            if call.name != SEARCH_TOOL_NAME:
                self._warn(f"the model called an unknown tool {call.name!r}; it was told so")
                replies[call.id] = f"Error: there is no tool named {call.name!r}. The only tool is {SEARCH_TOOL_NAME}."
                continue
            query = _query_from_arguments(call.arguments)
            if query is None:
                self._warn(f"the model sent malformed {SEARCH_TOOL_NAME} arguments: {call.arguments[:100]!r}")
                replies[call.id] = ('Error: the arguments must be a JSON object like {"query": "..."}. '
                                    "Call the tool again with a valid query.")
                continue
            queries[call.id] = query
            self.meta.queries.append(query)

        pages: dict[str, asyncio.Task] = {}
        outcomes = await asyncio.gather(*(self._search_and_fetch(q, step, engine, fetcher, pages, ws.max_results)
                                          for q in queries.values()))
        recorded: set[str] = set()
        # Number new sources in call order, then rank order; trim them to the step's budget.
        new_sources: list[tuple[str, SourceInfo, str]] = []  # (call id, info, text)
        per_call: dict[str, tuple[list[_Source], list[_Source], int]] = {}
        for call_id, (hits, error) in zip(queries, outcomes):
            fresh, repeated, failed = [], [], 0
            if error is not None:
                replies[call_id] = (f'Search for "{queries[call_id]}" failed ({error}). Answer from what you '
                                    "know, and say that the search failed.")
                continue
            for hit in hits:
                key = _url_key(hit.url)
                if key in self.sources:
                    repeated.append(self.sources[key])
                    continue
                info, text = await pages[key]
                if info.status == "failed":
                    failed += 1
                    if key not in recorded:
                        recorded.add(key)
                        self.meta.sources.append(info)
                    continue
                src = _Source(len(self.sources) + 1, info.url, info.title, text)
                self.sources[key] = src
                info.id = src.id
                self.meta.sources.append(info)
                new_sources.append((call_id, info, text))
                fresh.append(src)
            per_call[call_id] = (fresh, repeated, failed)

        budget = self.target.profile.source_token_budget * CHARS_PER_TOKEN
        limits = allocate([len(t) for _, _, t in new_sources], budget)
        for (call_id, info, text), limit in zip(new_sources, limits):
            src = self.sources[_url_key(info.url)]
            src.text = trim_text(text, queries[call_id], limit)
            info.chars = len(src.text)
        for call_id, (fresh, repeated, failed) in per_call.items():
            prompt_sources = [PromptSource(s.id, s.url, s.title, s.text) for s in fresh]
            prompt_repeated = [PromptSource(s.id, s.url, s.title, "") for s in repeated]
            replies[call_id] = format_results(queries[call_id], prompt_sources, failed=failed, repeated=prompt_repeated)
        return [{"role": "tool", "tool_call_id": c.id, "content": replies[c.id]} for c in calls]

    async def _search_and_fetch(self, query: str, step: int, engine, fetcher: Fetcher,
                                pages: dict[str, asyncio.Task], max_results: int) -> tuple[list[SearchHit], str | None]:
        """Search, then start fetching each new result at once (shared across the step's queries)."""
        self.say(f"searching: {query}")
        info = SearchInfo(query=query, engine=engine.name, step=step)
        self.meta.searches.append(info)
        started = time.perf_counter()
        try:
            hits = await engine.search(query, max_results)
        except SearchEngineError as exc:
            info.error = str(exc)
            self._warn(f"search failed: {exc}")
            return [], str(exc)
        except GroundingError:
            raise
        except Exception as exc:  # an engine of the user's own raised something else
            info.error = f"{type(exc).__name__}: {exc}"
            self._warn(f"search failed: {info.error}")
            return [], info.error
        finally:
            info.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        self._add_cost(costs.search_cost(engine.name, 1, max_results=max_results))
        hits = hits[:max_results]
        info.results = len(hits)
        new = [h for h in hits if _url_key(h.url) not in self.sources and _url_key(h.url) not in pages]
        if new and any(h.content is None for h in new):
            self.say(f"fetching {sum(h.content is None for h in new)} pages")
        for hit in new:
            pages[_url_key(hit.url)] = asyncio.ensure_future(self._page(hit, query, step, fetcher))
        return hits, None

    async def _page(self, hit: SearchHit, query: str, step: int, fetcher: Fetcher) -> tuple[SourceInfo, str]:
        """Fetch and extract one result page (or take the engine's own text)."""
        info = SourceInfo(url=hit.url, title=hit.title, query=query, step=step)
        if hit.content is not None:
            info.status = "indexed"
            info.duration_ms = 0.0
            if not hit.content.strip():
                info.status, info.error = "failed", "the index has no text for it"
            return info, hit.content
        result = await fetcher.fetch(hit.url)
        info.duration_ms = round(result.duration_ms, 1)
        if not result.ok:
            info.status, info.error = "failed", result.error
            return info, ""
        ctype = result.content_type or "text/html"
        if "html" in ctype:
            page = await asyncio.to_thread(extract, result.body or b"", result.final_url or hit.url)
        else:
            page = extract_plain((result.body or b"").decode(result.encoding or "utf-8", "replace"))
        if not page.text.strip():
            info.status, info.error = "failed", "no readable text on the page"
            return info, ""
        info.title = page.title or hit.title or hit.url
        return info, page.text

    # -- the end -----------------------------------------------------------

    def _finish(self, content: str, turn: _TurnResult) -> ChatCompletion:
        annotations: list[Annotation] = []
        if self.req.web_search is not None and content:
            refs = [SourceRef(s.id, s.url, s.title, s.text) for s in self.sources.values()]
            cited = annotate(content, refs)
            annotations = [Annotation.model_validate(a) for a in cited.annotations]
            self.meta.citations.annotations = len(annotations)
            self.meta.citations.unmatched = list(cited.unmatched)
            self.meta.citations.inferred = cited.inferred
            for info in self.meta.sources:
                info.cited = info.id in cited.cited_ids
            if cited.unmatched:
                self._warn(f"{len(cited.unmatched)} citation(s) pointed at nothing fetched in this request "
                           "and were left without an annotation")
            if self.meta.steps and not self.sources:
                self._warn("no page could be used as a source; the answer is not grounded")
        elif self.native is not None:
            self.native.provider = self.meta.provider = provider_of(self.target.litellm_model)
            annotations = [Annotation.model_validate(a) for a in self.native.to_annotations(content)]
            self._native_metadata(annotations)
            # The provider's own search call (Anthropic's srvtoolu_*) was run by the
            # provider: never execute it, never hand it to the caller as theirs.
            turn.calls = [c for c in turn.calls if c.name in self.req.caller_tool_names]
        elif turn.annotations:
            annotations = [Annotation.model_validate(a) for a in turn.annotations if a.get("type") == "url_citation"]
        tool_calls = [ToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments)) for c in turn.calls]
        finish = "tool_calls" if tool_calls else (turn.finish_reason or "stop")
        if finish not in {"stop", "length", "content_filter"} and not tool_calls:
            finish = "stop"  # e.g. tool calls that were ignored
        message = Message(content=content if (content or not tool_calls) else None,
                          tool_calls=tool_calls or None, annotations=annotations or None)
        self.meta.total_duration_ms = round((time.perf_counter() - self.t0) * 1000, 1)
        self.sync_routing()
        return ChatCompletion(id=self.id, created=self.created, model=self.target.name,
                              choices=[Choice(message=message, finish_reason=finish)],
                              usage=self.usage, metadata=self.meta)

    def _add_cost(self, value: float | None) -> None:
        """Add a priced part (a model turn, a search's fee); None: litellm cannot price it."""
        if value:
            self.meta.cost_usd = round((self.meta.cost_usd or 0.0) + value, 8)

    def _native_metadata(self, annotations: list[Annotation]) -> None:
        assert self.native is not None
        self.meta.queries = list(self.native.queries)
        self.meta.web_search_requests = self.native.web_search_requests or None
        self.usage.web_search_requests = self.meta.web_search_requests
        seen: dict[str, SourceInfo] = {}
        for a in annotations:
            url = a.url_citation.url
            if url not in seen:
                seen[url] = SourceInfo(id=len(seen) + 1, url=url, title=a.url_citation.title,
                                       status="native", cited=True)
        self.meta.sources = list(seen.values())
        self.meta.citations.annotations = len(annotations)
        if not annotations:
            self._warn(f"{self.meta.provider} returned no citations this library could place in the answer")

    def _must_search(self, steps: int) -> bool:
        """Whether this search turn had to call a tool: the profile forces it
        (``tool_choice="required"``) and nothing has been searched yet."""
        return self.target.profile.forces_search and steps == 0 and bool(_last_user_text(self.messages))

    def _warn(self, text: str) -> None:
        if text not in self.meta.warnings:
            self.meta.warnings.append(text)


# -- helpers -----------------------------------------------------------------

def _merge_tool_delta(calls: dict[int, dict[str, str]], tc: Any) -> None:
    index = getattr(tc, "index", None)
    if index is None:
        index = len(calls)
    fn = getattr(tc, "function", None)
    tc_id = getattr(tc, "id", None)
    slot = calls.get(index)
    if slot is not None and tc_id and slot["id"] and tc_id != slot["id"]:
        index = max(calls) + 1  # a new call reusing index 0 (some servers do)
        slot = None
    if slot is None:
        slot = calls[index] = {"id": "", "name": "", "arguments": ""}
    if tc_id:
        slot["id"] = tc_id
    if fn is not None:
        if getattr(fn, "name", None):
            slot["name"] = fn.name
        if getattr(fn, "arguments", None):
            slot["arguments"] += fn.arguments


def _query_from_arguments(arguments: str) -> str | None:
    try:
        args = json.loads(arguments) if arguments.strip() else None
    except (json.JSONDecodeError, AttributeError):
        return None
    if isinstance(args, dict):
        value = args.get("query") or args.get("q") or args.get("search_query")
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
    else:
        value = args if isinstance(args, str) else None
    if isinstance(value, str) and value.strip():
        return value.strip()[:500]
    return None


def _assistant_message(turn: _TurnResult) -> dict[str, Any]:
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


def _url_key(url: str) -> str:
    base, _ = urldefrag(url)
    return base.rstrip("/")


def _plain(obj: Any) -> dict:
    if isinstance(obj, dict):
        return obj
    dump = getattr(obj, "model_dump", None)
    return dump() if dump else dict(obj)


def _provider_annotations(message: Any) -> list[dict]:
    return [_plain(a) for a in getattr(message, "annotations", None) or []]
