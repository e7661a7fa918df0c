"""A search step of the tool loop: the model's search calls become numbered sources.

    web_search calls ─> searches (parallel) ─> each result page fetched as soon
    as its search returns (shared across the step's queries) ─> main text
    extracted ─> sources numbered in call order, then rank order ─> trimmed to
    the step's token budget ─> one tool message per call

A failed search or page never fails the request: it is recorded in the
metadata (``searches[].error``, ``sources[].error``) and in ``warnings``.

Searches and pages go through the process's cache (:mod:`grounding.cache`:
reused results, concurrent identical lookups sharing one upstream call), and
HTML pages are extracted in the extraction worker processes
(:mod:`providers.extract_pool`), off the event loop and off this process's GIL.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urldefrag

from providers.extract import extract_plain
from providers.extract_pool import ExtractionError, get_pool
from providers.fetch import Fetcher
from providers.search import SearchEngineError, SearchHit, engine_applies, run_search

from . import cost as costs
from .cache import Lookup, engine_id, get_cache, page_key, search_key
from .errors import GroundingError
from .prompts import (CHARS_PER_TOKEN, SEARCH_TOOL_NAME, PromptSource, allocate, format_results, source_budget,
                      trim_text)
from .response import ScopeInfo, SearchInfo, SourceInfo

if TYPE_CHECKING:  # pragma: no cover
    from .loop import Session
    from .turn import Call

__all__ = ["Source", "Gatherer", "PageText", "read_page", "cached_page", "hit_key", "url_key", "query_from_arguments"]


@dataclass
class Source:
    """A numbered source: what the model was shown as ``<source id=...>``."""

    id: int
    url: str
    title: str
    text: str  # what the model was shown (trimmed to the step's budget)
    full_text: str = ""  # the page's whole extracted text (what citations are checked against)
    aliases: tuple[str, ...] = ()  # where the page's redirects ended


class Gatherer:
    """Runs a request's search steps with one engine and one fetcher."""

    def __init__(self, session: "Session", engine: Any, fetcher: Fetcher) -> None:
        self.session = session
        self.engine = engine
        self.fetcher = fetcher
        ws = session.req.web_search
        assert ws is not None
        self.options = ws.search_options()
        #: Result pages taken so far (``web_search.max_total_results`` caps it).
        self.taken = 0
        self.cap = ws.max_total_results
        self._scope = describe_scope(session, engine)
        self.cache = get_cache()
        #: ``web_search.cache = false``: search and fetch afresh (and store what came back).
        self.bypass = not ws.cache
        #: Pages of the current step: started, finished (for "fetched 2 of 5").
        self._pages_total = 0
        self._pages_done = 0

    def _room(self) -> int | None:
        """Result pages left under ``max_total_results`` (None: no cap)."""
        return None if self.cap is None else max(self.cap - self.taken, 0)

    async def step(self, step: int, calls: list["Call"]) -> list[dict[str, Any]]:
        """Run the step's searches and fetches; return one tool message per call."""
        s = self.session
        ws = s.req.web_search
        assert ws is not None
        replies: dict[str, str] = {}
        queries: dict[str, str] = {}
        for call in calls:
            if call.name != SEARCH_TOOL_NAME:
                s.warn(f"the model called an unknown tool {call.name!r}; it was told so")
                replies[call.id] = f"Error: there is no tool named {call.name!r}. The only tool is {SEARCH_TOOL_NAME}."
                continue
            query = query_from_arguments(call.arguments)
            if query is None:
                s.warn(f"the model sent malformed {SEARCH_TOOL_NAME} arguments: {call.arguments[:100]!r}")
                replies[call.id] = ('Error: the arguments must be a JSON object like {"query": "..."}. '
                                    "Call the tool again with a valid query.")
                continue
            if self._room() == 0:
                replies[call.id] = (f"Not searched: this request's result budget (max_total_results={self.cap}) "
                                    "is used up. Answer from the sources you already have.")
                s.warn(f"max_total_results={self.cap} reached; a further search was not run")
                continue
            queries[call.id] = query
            s.meta.queries.append(query)

        pages: dict[str, asyncio.Task] = {}
        self._pages_total = self._pages_done = 0
        outcomes = await asyncio.gather(*(self._search_and_fetch(q, step, pages, ws.max_results)
                                          for q in queries.values()))
        recorded: set[str] = set()
        # Number new sources in call order, then rank order; trim them to the step's budget.
        new_sources: list[tuple[str, SourceInfo, str, str]] = []  # (call id, info, text, key)
        per_call: dict[str, tuple[list[Source], list[Source], int]] = {}
        for call_id, (hits, error) in zip(queries, outcomes):
            fresh, repeated, failed = [], [], 0
            if error is not None:
                replies[call_id] = (f'Search for "{queries[call_id]}" failed ({error}). Answer from what you '
                                    "know, and say that the search failed.")
                continue
            for hit in hits:
                key = hit_key(hit)
                if key in s.sources:
                    repeated.append(s.sources[key])
                    continue
                info, text = await pages[key]
                if info.status == "failed":
                    failed += 1
                    if key not in recorded:
                        recorded.add(key)
                        s.meta.sources.append(info)
                        s.warn(f"page {info.url} could not be read: {info.error}")
                    continue
                src = Source(len(s.sources) + 1, info.url, info.title, text, full_text=text,
                             aliases=(info.final_url,) if info.final_url and info.final_url != info.url else ())
                s.sources[key] = src
                info.id = src.id
                s.meta.sources.append(info)
                new_sources.append((call_id, info, text, key))
                fresh.append(src)
            per_call[call_id] = (fresh, repeated, failed)

        profile = s.target.profile
        budget = source_budget(profile.source_token_budget, ws.search_context_size,
                               profile.context_tokens) * CHARS_PER_TOKEN
        limits = allocate([len(t) for _, _, t, _ in new_sources], budget)
        for (call_id, info, text, key), limit in zip(new_sources, limits):
            src = s.sources[key]
            src.text = trim_text(text, queries[call_id], limit)
            info.chars = len(src.text)
        for call_id, (fresh, repeated, failed) in per_call.items():
            prompt_sources = [PromptSource(x.id, x.url, x.title, x.text) for x in fresh]
            prompt_repeated = [PromptSource(x.id, x.url, x.title, "") for x in repeated]
            replies[call_id] = format_results(queries[call_id], prompt_sources, failed=failed, repeated=prompt_repeated)
        return [{"role": "tool", "tool_call_id": c.id, "content": replies[c.id]} for c in calls]

    async def _search_and_fetch(self, query: str, step: int, pages: dict[str, asyncio.Task],
                                max_results: int) -> tuple[list[SearchHit], str | None]:
        """Search, then start fetching each new result at once (shared across the step's queries)."""
        s = self.session
        engine = self.engine
        s.emit("searching", f"searching: {query}", query=query)
        info = SearchInfo(query=query, engine=engine.name, step=step)
        s.meta.searches.append(info)
        started = time.perf_counter()
        room = self._room()
        wanted = max_results if room is None else max(min(max_results, room), 1)
        try:
            found = await self._search(query, wanted)
            hits = found.value
        except SearchEngineError as exc:
            info.error = str(exc)
            s.warn(f"search failed: {exc}")
            return [], str(exc)
        except GroundingError:
            raise
        except Exception as exc:  # an engine of the user's own raised something else
            info.error = f"{type(exc).__name__}: {exc}"
            s.warn(f"search failed: {info.error}")
            return [], info.error
        finally:
            info.duration_ms = round((time.perf_counter() - started) * 1000, 1)
        info.cached, info.cache_age_s = found.cached, found.age_s
        if not found.cached:  # a search taken from the cache costs no fee
            s.add_cost(costs.search_cost(engine.name, 1, max_results=wanted))
        hits = self._in_scope(hits[:wanted], query)
        new = [h for h in hits if hit_key(h) not in s.sources and hit_key(h) not in pages]
        new = list({hit_key(h): h for h in new}.values())
        room = self._room()
        if room is not None and len(new) > room:  # max_total_results: keep the best-ranked ones
            dropped = {hit_key(h) for h in new[room:]}
            new = new[:room]
            hits = [h for h in hits if hit_key(h) not in dropped]
        self.taken += len(new)
        info.results = len(hits)
        to_fetch = sum(h.content is None for h in new)
        if to_fetch:
            self._pages_total += to_fetch
            s.emit("fetching", f"fetching {to_fetch} page{'s' if to_fetch != 1 else ''}", total=self._pages_total,
                   query=query)
            get_pool().start()  # extraction workers start while the pages download (once per process)
        for hit in new:
            pages[hit_key(hit)] = asyncio.ensure_future(self._page(hit, query, step))
        return hits, None

    async def _search(self, query: str, max_results: int) -> Lookup[list[SearchHit]]:
        """The engine's hits for ``query`` with this request's search options, through the cache
        (unless the engine sets ``cacheable = False``); the options are part of the cache key."""
        engine, options = self.engine, self.options

        async def upstream() -> list[dict[str, Any]]:
            return [_hit_data(h) for h in await run_search(engine, query, max_results, options)]

        if getattr(engine, "cacheable", True) is False:
            found = Lookup(await upstream())
        else:
            key = search_key(engine_id(engine), query, max_results, options)
            found = await self.cache.through(key, self.cache.search_ttl_s, upstream, bypass=self.bypass)
        return Lookup([_hit(h) for h in found.value], found.cached, found.age_s)

    def _in_scope(self, hits: list[SearchHit], query: str) -> list[SearchHit]:
        """The hits that pass the domain filters (whatever the engine did); the rest are counted."""
        if not (self.options.allowed_domains or self.options.excluded_domains):
            return hits
        kept = [h for h in hits if self.options.allows(h.url)]
        if len(kept) < len(hits):
            name = "allowed_domains" if self.options.allowed_domains else "excluded_domains"
            scope = self._scope[name]
            scope.removed = (scope.removed or 0) + len(hits) - len(kept)
            if not kept:
                self.session.warn(f"every result for {query!r} was outside web_search.{name}")
        return kept

    async def _page(self, hit: SearchHit, query: str, step: int) -> tuple[SourceInfo, str]:
        """Fetch and extract one result page, through the cache (or take the engine's own text)."""
        info = SourceInfo(url=hit.url, title=hit.title, query=query, step=step)
        if hit.content is not None:
            info.status = "indexed"
            info.duration_ms = 0.0
            if not hit.content.strip():
                info.status, info.error = "failed", "the index has no text for it"
            return info, hit.content
        page = await cached_page(self.fetcher, hit.url, bypass=self.bypass)
        info.duration_ms = page.duration_ms
        info.cached, info.cache_age_s = page.cached, page.cache_age_s
        if page.final_url and page.final_url != hit.url:
            info.final_url = page.final_url
        self._pages_done += 1
        done, total = self._pages_done, max(self._pages_total, self._pages_done)
        if page.error is not None:
            info.status, info.error = "failed", page.error
            if page.limited:  # this server's own limits, not the site: say so
                self.session.warn(f"{hit.url} could not be read: {page.error}")
            self.session.emit("fetched", f"fetched {done} of {total}: skipped {hit.url} ({page.error})",
                              done=done, total=total, url=hit.url)
            return info, ""
        info.title = page.title or hit.title or hit.url
        self.session.emit("fetched", f"fetched {done} of {total}: {hit.url}", done=done, total=total, url=hit.url)
        return info, page.text


@dataclass
class PageText:
    """A page read for its text: its title and main text, or why it could not be read."""

    url: str
    title: str | None = None
    text: str = ""
    error: str | None = None
    final_url: str | None = None
    duration_ms: float = 0.0
    #: Not fetched for this request: from the cache, or shared with an identical load in flight.
    cached: bool = False
    cache_age_s: float | None = None
    #: Failed on this process's own limits (the extraction deadline or queue), not the site's.
    limited: bool = False


async def read_page(fetcher: Fetcher, url: str) -> PageText:
    """Fetch ``url`` safely and extract its main text (HTML, in the extraction workers) or take it
    as it is (text). No cache: see :func:`cached_page`."""
    result = await fetcher.fetch(url)
    page = PageText(url, final_url=result.final_url, duration_ms=round(result.duration_ms, 1))
    if not result.ok:
        page.error = result.error
        return page
    ctype = result.content_type or "text/html"
    if "html" in ctype:
        try:
            extracted = await get_pool().extract(result.body or b"", result.final_url or url)
        except ExtractionError as exc:
            page.error, page.limited = str(exc), True
            return page
    else:
        extracted = extract_plain((result.body or b"").decode(result.encoding or "utf-8", "replace"))
    if not extracted.text.strip():
        page.error = "no readable text on the page"
        return page
    page.title, page.text = extracted.title, extracted.text
    return page


_PAGE_FIELDS = ("url", "title", "text", "error", "final_url", "duration_ms", "limited")


async def cached_page(fetcher: Fetcher, url: str, *, bypass: bool = False) -> PageText:
    """:func:`read_page` through the process's cache (:mod:`grounding.cache`): a page read in the
    last ``page_ttl_s`` (here or, with Redis, on any replica) is not fetched again, and concurrent
    reads of one URL share one fetch. Only readable pages are kept. ``bypass`` reads afresh (and
    stores). ``cached`` and ``cache_age_s`` say where the text came from."""
    cache = get_cache()
    started = time.perf_counter()

    async def load() -> dict[str, Any]:
        page = await read_page(fetcher, url)
        return {name: getattr(page, name) for name in _PAGE_FIELDS}

    found = await cache.through(page_key(url), cache.page_ttl_s, load, bypass=bypass,
                                keep=lambda data: data.get("error") is None)
    page = PageText(**{k: v for k, v in found.value.items() if k in _PAGE_FIELDS})
    page.url = url
    if found.cached:
        page.cached, page.cache_age_s = True, found.age_s
        page.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    return page


def describe_scope(session: "Session", engine: Any) -> dict[str, ScopeInfo]:
    """Record in ``session.meta.search_options`` how each set scope option of the tool
    loop is applied with ``engine``; returns the records (updated as results come)."""
    ws = session.req.web_search
    assert ws is not None
    options = ws.search_options()
    by_engine = engine_applies(engine, options)
    out: dict[str, ScopeInfo] = {}
    for name in ("allowed_domains", "excluded_domains"):
        value = getattr(ws, name)
        if value:
            applied = (["sent_to_engine"] if name in by_engine else []) + ["filtered_locally"]
            out[name] = ScopeInfo(value=value, applied=applied, removed=0)
    if ws.max_total_results is not None:
        out["max_total_results"] = ScopeInfo(value=ws.max_total_results, applied=["applied_locally"])
    if ws.search_context_size is not None:
        profile = session.target.profile
        tokens = source_budget(profile.source_token_budget, ws.search_context_size, profile.context_tokens)
        out["search_context_size"] = ScopeInfo(value=ws.search_context_size, applied=["applied_locally"],
                                               note=f"{tokens} tokens of source text per search step")
    if ws.user_location is not None:
        location = ws.user_location.model_dump(exclude_none=True)
        sent = {"country", "region", "city", "timezone"} & by_engine
        if sent:
            out["user_location"] = ScopeInfo(value=location, applied=["sent_to_engine"],
                                             note=f"{engine.name} was given: {', '.join(sorted(sent))}")
        else:
            out["user_location"] = ScopeInfo(value=location, applied=["not_applicable"],
                                             note=f"engine {engine.name!r} takes no location")
    session.meta.search_options.update(out)
    return out


def query_from_arguments(arguments: str) -> str | None:
    """The query of a ``web_search`` call's arguments (``{"query": ...}`` and common variants)."""
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


_HIT_FIELDS = tuple(f.name for f in dataclasses.fields(SearchHit))


def _hit_data(hit: SearchHit) -> dict[str, Any]:
    """A hit as the cache keeps it (JSON): every field of :class:`SearchHit`."""
    return {name: getattr(hit, name, None) for name in _HIT_FIELDS}


def _hit(data: dict[str, Any]) -> SearchHit:
    """A hit back from the cache (fields another version wrote and this one lacks are dropped)."""
    return SearchHit(**{k: v for k, v in data.items() if k in _HIT_FIELDS})


def hit_key(hit: SearchHit) -> str:
    """A result's key within a request: a web page by its URL without the fragment (the same
    page, fetched once); a document an index hands over with its text by its whole URL (the
    sections of one page, ``shutil.html#shutil.copy`` and ``#shutil.move``, are sources apart)."""
    return hit.url if hit.content is not None else url_key(hit.url)


def url_key(url: str) -> str:
    """A page's key within a request: the URL without its fragment or trailing slash."""
    base, _ = urldefrag(url)
    return base.rstrip("/")
