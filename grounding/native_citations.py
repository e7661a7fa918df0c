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
- Groq: gpt-oss's ``【cursor†Lx-Ly】`` markers point at lines of a page its
  browser showed (``executed_tools[cursor].output``); the result listed on
  those lines is the source. Markdown links are read as they are.
"""
from __future__ import annotations

import json
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
    "groq_annotations",
    "groq_queries",
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
                out.append(url_citation(url, field(cite, "title", ""), *span,
                                        cited_text=field(cite, "cited_text") or None))
    return out


def perplexity_annotations(content: str, citations: Sequence[str] | None,
                           search_results: Sequence[Any] | None = None) -> list[dict[str, Any]]:
    """Perplexity's ``[n]`` markers against its ``citations`` list (1-based)."""
    titles = {field(r, "url"): field(r, "title", "") for r in search_results or []}
    refs = [SourceRef(i + 1, url, titles.get(url) or "") for i, url in enumerate(citations or []) if url]
    return annotate(content, refs, infer=False).annotations


# gpt-oss cites ``【{cursor}†L{a}(-L{b})?】`` (the browser tool's own instruction); it
# sometimes copies a search page's link ``【{i}†{title}(†{domain})?】`` instead.
_GPT_OSS_CITE = re.compile(r"【(?P<cursor>\d{1,4})†(?P<ref>[^†】\n]+)(?:†[^】\n]*)?】")
_LINE_REF = re.compile(r"L(?P<a>\d{1,5})(?:[ \t]*[-–][ \t]*L?(?P<b>\d{1,5}))?")
_PAGE_LINE = re.compile(r"^L(?P<n>\d+): ?(?P<text>.*)$", re.MULTILINE)
_PAGE_LINK = re.compile(r"【(?P<i>\d+)†(?P<title>[^†】\n]+)(?:†[^】\n]*)?】")
_MD_LINK = re.compile(r"\]\((https?://[^)\s]+)\)")
_SEARCH_TOOLS = frozenset({"search", "web_search", "browser.search", "browser_search"})


def _groq_results(tool: Any) -> list[tuple[str, str]]:
    """(url, title) of a Groq executed tool's search results, else of its opened pages."""
    results = field(field(tool, "search_results") or {}, "results") or []
    out = [(field(r, "url"), field(r, "title") or "") for r in results]
    if not out:
        out = [(field(r, "url"), field(r, "title") or "") for r in field(tool, "browser_results") or []]
    return [(url, title) for url, title in out if url]


def _groq_cited(tool: Any, first: int, last: int) -> list[int]:
    """Indices into :func:`_groq_results` of the results on lines ``first``..``last`` of
    the page the tool showed; a line without a link belongs to the link listed above it.
    A page the tool opened (no search results) is itself the source."""
    results = _groq_results(tool)
    if results and not field(field(tool, "search_results") or {}, "results"):
        return list(range(len(results)))  # an opened page (browser_results): the page itself
    lines = {int(m["n"]): m["text"] for m in _PAGE_LINE.finditer(field(tool, "output") or "")}
    if not results or first not in lines:  # no such page line: only a one-result page is unambiguous
        return [0] if len(results) == 1 and not lines else []
    links: list[re.Match[str]] = []
    for n in range(first, -1, -1):  # the entry the first cited line belongs to
        links = list(_PAGE_LINK.finditer(lines.get(n, "")))[-1:]
        if links:
            break
    for n in range(first + 1, min(last, max(lines)) + 1):
        links += _PAGE_LINK.finditer(lines.get(n, ""))
    titles = {title: i for i, (_, title) in enumerate(results) if title}
    out: list[int] = []
    for link in links:
        i = titles.get(link["title"].strip(), int(link["i"]))
        if 0 <= i < len(results) and i not in out:
            out.append(i)
    return out


def groq_queries(executed_tools: Iterable[Any]) -> list[str]:
    """The search queries of Groq's executed tools (``arguments`` is a JSON string)."""
    out: list[str] = []
    for tool in executed_tools or []:
        kind = str(field(tool, "name") or field(tool, "type") or "")
        args = field(tool, "arguments")
        if kind not in _SEARCH_TOOLS or not isinstance(args, str):
            continue
        try:
            query = json.loads(args).get("query")
        except (ValueError, AttributeError):
            continue
        if isinstance(query, str) and query and query not in out:
            out.append(query)
    return out


def groq_annotations(content: str, executed_tools: Sequence[Any]) -> list[dict[str, Any]]:
    """Groq's citations: gpt-oss's ``【cursor†Lx-Ly】`` markers and markdown links.

    A marker names a page the model's browser showed by its cursor (the
    ``index`` of the executed tool, each search or page open being one page)
    and lines of that page (``output``, ``L<n>: `` numbered). The results listed
    on those lines (``【i†title†domain】`` links, matched to
    ``search_results.results`` by title, else by ``i``) are the sources; a
    cited snippet line belongs to the result listed just above it. A copied
    link ``【i†title】`` is resolved by its title. A marker that resolves to
    nothing is left without an annotation. Spans are read like the tool loop's
    markers: the claim's sentence through its markers.
    """
    by_cursor: dict[int, Any] = {}
    for pos, tool in enumerate(executed_tools or []):
        index = field(tool, "index")
        by_cursor.setdefault(index if isinstance(index, int) else pos, tool)
    refs: dict[str, SourceRef] = {}
    found = [result for tool in by_cursor.values() for result in _groq_results(tool)]
    titles = {url: title for url, title in reversed(found)}
    titled = {title.casefold(): (url, title) for url, title in reversed(found) if title}

    def ref(url: str, title: str) -> int:
        if url not in refs:
            refs[url] = SourceRef(len(refs) + 1, url, title or titles.get(url, ""))
        return refs[url].id

    shadow = list(content)
    for m in _GPT_OSS_CITE.finditer(content):
        ids: list[int] = []
        line = _LINE_REF.fullmatch(m["ref"].strip())
        tool = by_cursor.get(int(m["cursor"]))
        if line and tool is not None:
            first = int(line["a"])
            last = max(first, int(line["b"] or first))
            results = _groq_results(tool)
            ids = [ref(*results[i]) for i in _groq_cited(tool, first, last)]
        elif not line and m["ref"].strip().casefold() in titled:
            ids = [ref(*titled[m["ref"].strip().casefold()])]
        # Same length as the marker, so the spans found in the shadow fit the content.
        room = m.end() - m.start() - 3
        written = ""
        for sid in ids:
            more = f"{written},{sid}" if written else str(sid)
            if len(more) > room:
                break
            written = more
        stand_in = f"【{written}†" + "·" * (room - len(written)) + "】" if written else " " * (m.end() - m.start())
        shadow[m.start():m.end()] = stand_in
    for m in _MD_LINK.finditer(content):  # links the model wrote: cited as they are
        ref(m.group(1), "")
    if not refs:
        return []
    return annotate("".join(shadow), list(refs.values()), infer=False).annotations
