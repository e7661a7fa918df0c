"""The end of a request: the answer's citations become annotations, and the
completion (message, usage, metadata) is assembled."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .citations import SourceRef, annotate
from .native import provider_of
from .response import Annotation, ChatCompletion, Choice, FunctionCall, Message, SourceInfo, ToolCall

if TYPE_CHECKING:  # pragma: no cover
    from .loop import Session
    from .turn import TurnResult

__all__ = ["finish"]


def finish(session: "Session", content: str, turn: "TurnResult") -> ChatCompletion:
    """The completion for ``content``, the answer the last ``turn`` wrote."""
    s = session
    annotations: list[Annotation] = []
    if s.req.web_search is not None and content:
        annotations = _loop_annotations(s, content)
    elif s.native is not None:
        s.native.provider = s.meta.provider = provider_of(s.target.litellm_model)
        annotations = [Annotation.model_validate(a) for a in s.native.to_annotations(content)]
        _native_metadata(s, annotations)
        # The provider's own search call (Anthropic's srvtoolu_*) was run by the
        # provider: never execute it, never hand it to the caller as theirs.
        turn.calls = [c for c in turn.calls if c.name in s.req.caller_tool_names]
    elif turn.annotations:
        annotations = [Annotation.model_validate(a) for a in turn.annotations if a.get("type") == "url_citation"]
    tool_calls = [ToolCall(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments)) for c in turn.calls]
    reason = "tool_calls" if tool_calls else (turn.finish_reason or "stop")
    if reason not in {"stop", "length", "content_filter"} and not tool_calls:
        reason = "stop"  # e.g. tool calls that were ignored
    message = Message(content=content if (content or not tool_calls) else None,
                      tool_calls=tool_calls or None, annotations=annotations or None)
    s.meta.total_duration_ms = round((time.perf_counter() - s.t0) * 1000, 1)
    s.sync_routing()
    return ChatCompletion(id=s.id, created=s.created, model=s.target.name,
                          choices=[Choice(message=message, finish_reason=reason)],
                          usage=s.usage, metadata=s.meta)


def _loop_annotations(s: "Session", content: str) -> list[Annotation]:
    """The tool loop's citations ([n] markers, links, inferred) as annotations."""
    refs = [SourceRef(x.id, x.url, x.title, x.text) for x in s.sources.values()]
    cited = annotate(content, refs)
    annotations = [Annotation.model_validate(a) for a in cited.annotations]
    s.meta.citations.annotations = len(annotations)
    s.meta.citations.unmatched = list(cited.unmatched)
    s.meta.citations.inferred = cited.inferred
    for info in s.meta.sources:
        info.cited = info.id in cited.cited_ids
    if cited.unmatched:
        s.warn(f"{len(cited.unmatched)} citation(s) pointed at nothing fetched in this request "
               "and were left without an annotation")
    if s.meta.steps and not s.sources:
        s.warn("no page could be used as a source; the answer is not grounded")
    return annotations


def _native_metadata(s: "Session", annotations: list[Annotation]) -> None:
    assert s.native is not None
    s.meta.queries = list(s.native.queries)
    s.meta.web_search_requests = s.native.web_search_requests or None
    s.usage.web_search_requests = s.meta.web_search_requests
    seen: dict[str, SourceInfo] = {}
    for a in annotations:
        url = a.url_citation.url
        if url not in seen:
            seen[url] = SourceInfo(id=len(seen) + 1, url=url, title=a.url_citation.title,
                                   status="native", cited=True)
    s.meta.sources = list(seen.values())
    s.meta.citations.annotations = len(annotations)
    if not annotations:
        s.warn(f"{s.meta.provider} returned no citations this library could place in the answer")
