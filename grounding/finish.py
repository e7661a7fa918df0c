"""The end of a request: the answer's citations become annotations, are checked
against their sources (``citations={"verify": ...}``), and the completion
(message, usage, metadata) is assembled."""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Sequence

from .citations import SourceRef, annotate
from .gather import url_key
from .structured import source_urls
from .native import provider_of
from .response import (Annotation, ChatCompletion, CitationCheck, Choice, EvidenceInfo, FunctionCall, ImageOutput,
                       Message, MovedFrom, SourceInfo, SpanInfo, ToolCall)
from .verify import Citation, CheckResult, SourceText, check_citations, judge_for, resolve_settings

if TYPE_CHECKING:  # pragma: no cover
    from .loop import Session
    from .turn import TurnResult

__all__ = ["finish"]

#: Native search: how long fetching the cited pages (to check them) may take in all.
NATIVE_FETCH_DEADLINE_S = 8.0


async def finish(session: "Session", content: str, turn: "TurnResult") -> ChatCompletion:
    """The completion for ``content``, the answer the last ``turn`` wrote."""
    s = session
    annotations: list[Annotation] = []
    if s.req.web_search is not None and content:
        annotations = await _loop_annotations(s, content)
    elif s.native is not None:
        s.native.provider = s.meta.provider = provider_of(s.target.litellm_model)
        annotations = await _native_annotations(s, content, _in_scope(s, s.native.to_annotations(content)))
        # The provider's own search call (Anthropic's srvtoolu_*) was run by the
        # provider: never execute it, never hand it to the caller as theirs.
        turn.calls = [c for c in turn.calls if c.name in s.req.caller_tool_names]
    elif turn.annotations:
        annotations = [Annotation.model_validate(a) for a in turn.annotations if a.get("type") == "url_citation"]
    if s.output_data is not None and s.meta.structured_output is not None:
        _unknown_sources(s)
    tool_calls = [ToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments)) for c in turn.calls]
    reason = "tool_calls" if tool_calls else (turn.finish_reason or "stop")
    if reason not in {"stop", "length", "content_filter"} and not tool_calls:
        reason = "stop"  # e.g. tool calls that were ignored
    images = [ImageOutput.model_validate(i) for i in turn.images] if not tool_calls else []
    if "image" in (s.req.modalities or []) and not tool_calls and not images:
        s.warn(f"{s.target.name} was asked for an image and returned none")
    message = Message(content=content if (content or not tool_calls) else None,
                      tool_calls=tool_calls or None, annotations=annotations or None, images=images or None)
    s.meta.total_duration_ms = round((time.perf_counter() - s.t0) * 1000, 1)
    s.sync_routing()
    return ChatCompletion(id=s.id, created=s.created, model=s.target.name,
                          choices=[Choice(message=message, finish_reason=reason)],
                          usage=s.usage, metadata=s.meta)


# -- the tool loop ---------------------------------------------------------------------

async def _loop_annotations(s: "Session", content: str) -> list[Annotation]:
    """The tool loop's citations ([n] markers, links, inferred), checked against the pages."""
    refs = [SourceRef(x.id, x.url, x.title, x.text, aliases=x.aliases) for x in s.sources.values()]
    found = annotate(content, refs)
    s.meta.citations.unmatched = list(found.unmatched)
    s.meta.citations.inferred = found.inferred
    s.meta.citations.dropped = [SpanInfo(start=d["start"], end=d["end"], text=d["text"], reason=d["reason"])
                                for d in found.dropped]
    if found.unmatched:
        s.warn(f"{len(found.unmatched)} citation(s) pointed at nothing fetched in this request "
               "and were left without an annotation")
    if found.dropped:
        s.warn(f"{len(found.dropped)} citation(s) came with no claim and were left without an annotation")
    if s.meta.steps and not s.sources:
        s.warn("no page could be used as a source; the answer is not grounded")
    sources = [SourceText(x.id, x.url, x.title, x.full_text or x.text) for x in s.sources.values()]
    citations = [Citation(c.start, c.end, c.source_id, c.kind) for c in found.cited]
    result = await _check(s, content, citations, sources)
    cited = result.cited_ids if result.checks else set(found.cited_ids)
    for info in s.meta.sources:
        info.cited = info.id in cited
    return [Annotation.model_validate(a) for a in result.annotations]


# -- native search ---------------------------------------------------------------------

async def _native_annotations(s: "Session", content: str, found: Sequence[dict]) -> list[Annotation]:
    """A provider's own citations, checked against the text it quoted (Anthropic's
    ``cited_text``) or, when it quoted nothing, against the cited pages fetched now."""
    urls: dict[str, int] = {}
    quoted: dict[str, list[str]] = {}
    titles: dict[str, str] = {}
    citations: list[Citation] = []
    for a in found:
        c = a["url_citation"]
        sid = urls.setdefault(c["url"], len(urls) + 1)
        titles.setdefault(c["url"], c.get("title") or "")
        if c.get("cited_text"):
            texts = quoted.setdefault(c["url"], [])
            if c["cited_text"] not in texts:
                texts.append(c["cited_text"])
        citations.append(Citation(c["start_index"], c["end_index"], sid, "native", url=c["url"],
                                  title=c.get("title") or ""))
    mode, _, fetch = resolve_settings(s.req.citations)
    sources = [SourceText(sid, url, titles[url], "\n\n".join(quoted[url])) for url, sid in urls.items()
               if url in quoted]
    unchecked: dict[int, str] = {}
    pages: dict[str, SourceInfo] = {}
    missing = [url for url in urls if url not in quoted]
    if missing and mode != "off":
        if fetch:
            s.emit("fetching", f"fetching {len(missing)} cited page(s) to check the citations", total=len(missing))
            for url, page in zip(missing, await _read_pages(missing)):
                pages[url] = SourceInfo(url=url, title=page.title or titles[url], status="native",
                                        duration_ms=page.duration_ms, final_url=page.final_url,
                                        cached=page.cached, cache_age_s=page.cache_age_s)
                if page.error is not None:
                    unchecked[urls[url]] = f"the page could not be fetched ({page.error})"
                    pages[url].error = page.error
                else:
                    sources.append(SourceText(urls[url], url, titles[url] or page.title or "", page.text))
                    pages[url].chars = len(page.text)
        else:
            for url in missing:
                unchecked[urls[url]] = "the provider quoted no text and fetching cited pages is off"
    result = await _check(s, content, citations, sources, unchecked=unchecked)
    annotations = [Annotation.model_validate(a) for a in result.annotations]
    _native_metadata(s, annotations, pages)
    return annotations


async def _read_pages(urls: list[str]):
    from providers.fetch import Fetcher

    from .gather import PageText, cached_page

    async with Fetcher(concurrency=max(4, len(urls))) as fetcher:
        tasks = [asyncio.ensure_future(cached_page(fetcher, u)) for u in urls]
        done, pending = await asyncio.wait(tasks, timeout=NATIVE_FETCH_DEADLINE_S)
        for t in pending:
            t.cancel()
        out = []
        for url, t in zip(urls, tasks):
            if t in done and t.exception() is None:
                out.append(t.result())
            else:
                reason = (f"no answer within {NATIVE_FETCH_DEADLINE_S:g} s" if t in pending
                          else f"{type(t.exception()).__name__}")
                out.append(PageText(url, error=reason))
        return out


def _unknown_sources(s: "Session") -> None:
    """URLs in the JSON's ``sources`` fields that this request never had as a source."""
    assert s.meta.structured_output is not None
    known = {url_key(x.url) for x in s.meta.sources if x.status != "failed"}
    unknown = [u for u in dict.fromkeys(source_urls(s.output_data)) if url_key(u) not in known]
    s.meta.structured_output.unknown_sources = unknown
    if unknown:
        s.warn(f"{len(unknown)} URL(s) in the JSON's sources fields are not among this request's sources")


def _in_scope(s: "Session", found: Sequence[dict]) -> list[dict]:
    """Native citations outside ``web_search``'s domain filters are dropped (and counted)."""
    scope = s.native_scope
    if scope is None or not (scope.allowed_domains or scope.excluded_domains):
        return list(found)
    options = scope.search_options()
    kept = [a for a in found if options.allows(a["url_citation"]["url"])]
    name = "allowed_domains" if scope.allowed_domains else "excluded_domains"
    info = s.meta.search_options.get(name)
    if info is not None:
        info.removed = len(found) - len(kept)
    if len(kept) < len(found):
        s.warn(f"{len(found) - len(kept)} citation(s) of {s.meta.provider}'s own search were outside "
               f"web_search.{name} and were removed")
    return kept


def _native_metadata(s: "Session", annotations: list[Annotation], pages: dict[str, SourceInfo]) -> None:
    assert s.native is not None
    s.meta.queries = list(s.native.queries)
    s.meta.web_search_requests = s.native.web_search_requests or None
    s.usage.web_search_requests = s.meta.web_search_requests
    seen: dict[str, SourceInfo] = {}
    for a in annotations:
        url = a.url_citation.url
        if url not in seen:
            info = pages.get(url) or SourceInfo(url=url, title=a.url_citation.title, status="native")
            info.id, info.cited = len(seen) + 1, True
            seen[url] = info
    s.meta.sources = list(seen.values())
    if not annotations and not s.meta.citations.checks:
        s.warn(f"{s.meta.provider} returned no citations this library could place in the answer")


# -- the check, and what it reports -----------------------------------------------------

async def _check(s: "Session", content: str, citations: list[Citation], sources: list[SourceText], *,
                 unchecked: dict[int, str] | None = None) -> CheckResult:
    mode, verifier, _ = resolve_settings(s.req.citations)
    info = s.meta.citations
    info.verify = mode  # type: ignore[assignment]
    if mode != "off" and citations:
        s.emit("checking", f"checking {len(citations)} citation(s)", total=len(citations))
    result = await check_citations(content, citations, sources, mode=mode,  # type: ignore[arg-type]
                                   judge=judge_for(verifier) if mode != "off" else None, unchecked=unchecked)
    info.annotations = len(result.annotations)
    if mode == "off":
        return result
    info.judge = result.judge
    info.duration_ms = result.duration_ms
    info.checks = [CitationCheck(
        start=c.start, end=c.end, url=c.url, source_id=c.source_id, kind=c.kind, verdict=c.verdict, score=c.score,
        evidence=EvidenceInfo(text=c.evidence.text, start=c.evidence.start, end=c.evidence.end) if c.evidence else None,
        action=c.action, reason=c.reason or None,
        moved_from=MovedFrom(url=c.moved_from_url, source_id=c.moved_from_id) if c.moved_from_url else None,
    ) for c in result.checks]
    info.moved, info.removed, info.flagged = result.moved, result.removed, result.flagged
    info.unverified = [SpanInfo(start=a, end=b, text=content[a:b]) for a, b in result.unverified]
    if result.judge_error:
        s.warn(f"the verifier model failed ({result.judge_error}); the built-in judge checked the citations")
    if result.moved or result.removed:
        parts = []
        if result.moved:
            parts.append(f"{result.moved} moved to the source that supports the sentence")
        if result.removed:
            parts.append(f"{result.removed} removed (no fetched source supports them)")
        s.warn(f"citation check: {', '.join(parts)}; see metadata.citations.checks")
    if result.flagged:
        s.warn(f"citation check: {result.flagged} citation(s) are not supported by the page they cite; "
               "see metadata.citations.checks")
    if result.unverified:
        s.warn(f"{len(result.unverified)} sentence(s) state something no cited source supports; "
               "see metadata.citations.unverified")
    return result
