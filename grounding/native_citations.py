"""Providers' own search citations, normalized to OpenAI ``url_citation`` annotations.

Each provider cites its native search results its own way, and litellm passes
several of them on lossy or bent (see ../shared/notes/litellm.md). One small
function per provider turns what it returned into annotations whose
``start_index``/``end_index`` are *character* offsets into the final content:

- OpenAI: already annotations; checked and clamped.
- Anthropic: ``cited_text`` without offsets; located in the answer.
- Gemini / Vertex: ``groundingSupports`` with UTF-8 *byte* offsets and
  ``startIndex`` omitted when 0; converted to characters.
- xAI (Responses API): flat annotations; nested.
- Perplexity: ``[n]`` markers plus a ``citations`` URL list; read like the
  tool loop's markers.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Mapping, Sequence

from .citations import SourceRef, annotate, url_citation

__all__ = [
    "field",
    "byte_to_char_offsets",
    "openai_annotations",
    "anthropic_annotations",
    "gemini_annotations",
    "xai_annotations",
    "perplexity_annotations",
    "locate",
]


def field(obj: Any, key: str, default: Any = None) -> Any:
    """``obj[key]`` for dicts, ``obj.key`` for objects: litellm hands back both."""
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def _valid(content: str, start: Any, end: Any) -> tuple[int, int] | None:
    try:
        s, e = int(start), int(end)
    except (TypeError, ValueError):
        return None
    s, e = max(0, s), min(len(content), e)
    return (s, e) if s < e else None


def openai_annotations(content: str, annotations: Iterable[Any]) -> list[dict[str, Any]]:
    """OpenAI's own annotations, kept when their offsets fit the content."""
    out = []
    for a in annotations or []:
        cite = field(a, "url_citation")
        if field(a, "type") != "url_citation" or cite is None:
            continue
        span = _valid(content, field(cite, "start_index"), field(cite, "end_index"))
        if span and field(cite, "url"):
            out.append(url_citation(field(cite, "url"), field(cite, "title", ""), *span))
    return out


def xai_annotations(content: str, annotations: Iterable[Any]) -> list[dict[str, Any]]:
    """xAI's flat ``{type, url, title, start_index, end_index}`` annotations, nested."""
    out = []
    for a in annotations or []:
        if field(a, "url_citation") is not None:  # already nested
            out.extend(openai_annotations(content, [a]))
            continue
        span = _valid(content, field(a, "start_index"), field(a, "end_index"))
        if span and field(a, "url"):
            out.append(url_citation(field(a, "url"), field(a, "title", ""), *span))
    return out


def byte_to_char_offsets(text: str) -> list[int]:
    """``table[b]`` = the character index at UTF-8 byte offset ``b`` (for every
    byte offset up to and including the end; inside a character, its start)."""
    table: list[int] = []
    for i, ch in enumerate(text):
        table.extend([i] * len(ch.encode("utf-8")))
    table.append(len(text))
    return table


def gemini_annotations(content: str, metadata: Any) -> list[dict[str, Any]]:
    """Gemini/Vertex ``groundingMetadata``: supports' byte offsets -> characters.

    ``startIndex`` is omitted when 0. Chunk ``uri`` s are Google's redirect
    links and chunk titles are domains: both are kept as given (the redirect
    is where the citation leads; the title is honest about what is known).
    When the byte offsets do not fit the content (a provider counting
    characters after all), the segment's ``text`` is located instead.
    """
    if metadata is None:
        return []
    chunks = field(metadata, "groundingChunks") or field(metadata, "grounding_chunks") or []
    supports = field(metadata, "groundingSupports") or field(metadata, "grounding_supports") or []
    table = byte_to_char_offsets(content)
    raw = content.encode("utf-8")
    out = []
    for support in supports:
        segment = field(support, "segment") or {}
        start_b = int(field(segment, "startIndex", field(segment, "start_index", 0)) or 0)
        end_b = field(segment, "endIndex", field(segment, "end_index"))
        text = field(segment, "text") or ""
        span = None
        if end_b is not None and 0 <= start_b < int(end_b) <= len(raw):
            span = (table[start_b], table[int(end_b)])
            if text and content[span[0]:span[1]].strip() != text.strip():
                span = locate(content, text) or span
        elif text:
            span = locate(content, text)
        if not span or span[0] >= span[1]:
            continue
        for idx in field(support, "groundingChunkIndices") or field(support, "grounding_chunk_indices") or []:
            if not 0 <= int(idx) < len(chunks):
                continue
            web = field(chunks[int(idx)], "web") or {}
            uri = field(web, "uri")
            if uri:
                out.append(url_citation(uri, field(web, "title", ""), *span))
    return out


_WS = re.compile(r"\s+")


def locate(content: str, cited: str, start: int = 0) -> tuple[int, int] | None:
    """Where ``cited`` stands in ``content`` (exact, else whitespace- and
    case-insensitive); ``None`` if it is not there."""
    cited = cited.strip()
    if not cited:
        return None
    i = content.find(cited, start)
    if i < 0 and start:
        i = content.find(cited)
    if i >= 0:
        return i, i + len(cited)
    words = [re.escape(w) for w in cited.split()]
    if not words:
        return None
    m = re.compile(r"\s+".join(words), re.I).search(content)
    return (m.start(), m.end()) if m else None


def anthropic_annotations(content: str, citations: Iterable[Any]) -> list[dict[str, Any]]:
    """Anthropic's ``web_search_result_location`` citations, located in the answer.

    Anthropic cites the *source's* text (``cited_text``), attached to the text
    block it supports; litellm flattens the blocks into one string and keeps
    the citations without offsets. The span is where the cited text appears in
    the answer: the text block the citation was attached to (litellm gives it
    as ``supported_text``), else the cited text itself, else nothing.
    """
    out = []
    cursor = 0
    for c in citations or []:
        items = c if isinstance(c, list) else [c]
        for cite in items:
            url = field(cite, "url")
            if not url:
                continue
            block = field(cite, "supported_text") or field(cite, "block_text") or ""
            span = locate(content, block, cursor) or locate(content, field(cite, "cited_text") or "", cursor)
            if span:
                cursor = span[0]
                out.append(url_citation(url, field(cite, "title", ""), *span))
    return out


def perplexity_annotations(content: str, citations: Sequence[str] | None,
                           search_results: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """Perplexity's ``[n]`` markers against its ``citations`` list (1-based)."""
    titles = {field(r, "url"): field(r, "title", "") for r in search_results or []}
    refs = [SourceRef(i + 1, url, titles.get(url) or "") for i, url in enumerate(citations or []) if url]
    return annotate(content, refs, infer=False).annotations
