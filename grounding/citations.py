"""Turn the citations a model wrote into OpenAI ``url_citation`` annotations.

Models cite in many ways: numbered markers (``[1]``, ``[1][3]``, ``[1, 2]``,
``[1-3]``, ``[^1]``, ``【1】``, ``[source 2]``), markdown links to a source's
URL, ``<url>`` autolinks and bare ``(url)``.  :func:`annotate` works in two
passes over the text, with code masked out:

1. find the citations and group the adjacent ones (``[1][3]`` is one group);
2. give each group a span: from the start of the sentence (or of the clause
   since the previous group) up to the end of the group, marker included.

When the answer cites nothing explicitly, sentences can instead be attributed
to the source that lexically supports them best.  All offsets are Python
``str`` indices (code points) into the content.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Iterator, Sequence
from urllib.parse import urlsplit

__all__ = ["SourceRef", "CitationResult", "annotate"]


@dataclass(frozen=True)
class SourceRef:
    """A source the model was shown in this request."""

    id: int  # the number the model saw, 1-based
    url: str
    title: str
    text: str = ""  # the source text the model was given (for inferred citations)


@dataclass
class CitationResult:
    """The annotations for one answer, and what could not be resolved."""

    annotations: list[dict]  # url_citation dicts, sorted by start_index then source id
    cited_ids: list[int]  # source ids cited, in first-citation order, unique
    unmatched: list[str]  # markers/links pointing at nothing fetched, as written
    inferred: int  # how many annotations were inferred from lexical support


@dataclass
class _Group:
    """Adjacent citations (``[1][3]``, ``[2](url) [4]``) and the known ids they name."""

    start: int
    end: int
    ids: list[int]


_URL = r"https?://[^\s()<>\[\]]+(?:\([^\s()<>]*\)[^\s()<>\[\]]*)*"  # allows wiki-style (parens)
_IDS = r"\d{1,6}(?:[ \t]*[-–—][ \t]*\d{1,6})?(?:[ \t]*[,;][ \t]*\d{1,6}(?:[ \t]*[-–—][ \t]*\d{1,6})?)*"
_LABEL = r"(?:(?:sources?|src|ref)[ \t]*[:#]?[ \t]*)?"
_TOKEN_RE = re.compile(
    r"(?P<image>!\[(?:[^\[\]\n]|\[[^\[\]\n]*\])*\]\([^)\n]*\))"
    rf"|\[(?P<text>(?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\([ \t]*<?(?P<url>{_URL})>?(?:[ \t]+\"[^\"\n]*\")?[ \t]*\)"
    rf"|<(?P<auto>{_URL})>"
    rf"|\([ \t]*(?P<bare>{_URL})[ \t]*\)"
    rf"|\[[ \t]*\^?{_LABEL}(?P<ids>{_IDS})[ \t]*\]"
    rf"|【[ \t]*{_LABEL}(?P<cjk>{_IDS})[ \t]*(?:†[^】\n]*)?】",
    re.IGNORECASE,
)
_MARKER_TEXT_RE = re.compile(rf"\[?\^?{_LABEL}(?P<ids>{_IDS})\]?", re.IGNORECASE)
_PLAIN_NUMBER_RE = re.compile(r"\[[ \t]*\d")  # [1] but not [^1], [source 1]
_ADJACENT_RE = re.compile(r"[ \t,;]*")

_FENCE_RE = re.compile(
    r"^[ \t]{0,3}(?P<f>`{3,}|~{3,})[^\n]*(?:\n.*?(?:\n[ \t]{0,3}(?P=f)[`~]*[ \t]*(?=\n|\Z)|\Z)|\Z)",
    re.MULTILINE | re.DOTALL,
)
_REF_DEF_RE = re.compile(  # [^1]: ...   [1]: ...   [label]: https://...
    r"^[ \t]{0,3}(?:\[\^[^\]\n]+\]:|\[\d+\]:|\[[^\]\n]+\]:[ \t]*<?[a-z][a-z0-9+.-]*:)[^\n]*",
    re.MULTILINE | re.IGNORECASE)
_BACKTICKS_RE = re.compile(r"`+")
_BLANK_LINE_RE = re.compile(r"\n[ \t]*\n")

_TERMINAL_RE = re.compile(r"[.!?]+[\"'”’)»]*(?=\s)|[。！？]+[”’」』）]*|\n|\|")
_NEXT_CHAR_RE = re.compile(r"\s*(\S)")
_LINE_PREFIX_RE = re.compile(r"[ \t]*(?:(?:[-*+•]|\d{1,3}[.)]|#{1,6}|>)[ \t]+)*")
_ABBREVIATIONS = frozenset("mr mrs ms dr prof sr jr st vs cf al fig approx e.g i.e".split())
# Walked back over from a citation to find the claim it ends: spaces, sentence
# ends, closing quotes and brackets, and an opening bracket that wraps the
# citation itself ("France. ([a](url))").
_CLOSERS = frozenset(" \t.!?。！？\"'”’)」』）»(（")
_WORD_RE = re.compile(r"\w+")
_STOP_WORDS = frozenset(
    "the and for are but not you all any can had her was one our out has him his how its may new"
    " now old see two who did get got let say she too use that with have this will your from they"
    " been more when were what which their there than then them these those some such into also"
    " only over very just about after before other would could should where while most many much"
    " each being both does doing here onto upon via per yet because between through during under"
    " again further once same own off above below whom why nor".split()
)


def annotate(content: str, sources: Sequence[SourceRef], *, infer: bool = True) -> CitationResult:
    """Find the citations in ``content`` and return them as ``url_citation`` annotations.

    Explicit citations (markers and links) always win; only when there are none at all
    and ``infer`` is true are sentences attributed to sources by lexical support.
    """
    by_id: dict[int, SourceRef] = {}
    by_url: dict[str, SourceRef] = {}
    for src in sources:
        by_id.setdefault(src.id, src)
        by_url.setdefault(_norm_url(src.url), src)
    masked = _mask_code(content)
    groups, unmatched, explicit = _find_citations(masked, by_id, by_url)
    if explicit:
        spans = list(_spans(content, masked, groups))
    elif infer:
        spans = list(_infer(content, masked, sources))
    else:
        spans = []
    cited = list(dict.fromkeys(sid for _, _, ids in spans for sid in ids))
    annotations = [url_citation(by_id[sid].url, by_id[sid].title, start, end)
                   for start, sid, end in sorted((s, sid, e) for s, e, ids in spans for sid in ids)]
    return CitationResult(annotations, cited, unmatched, 0 if explicit else len(annotations))


def _find_citations(masked: str, by_id: dict[int, SourceRef],
                    by_url: dict[str, SourceRef]) -> tuple[list[_Group], list[str], bool]:
    """Pass 1: the citation groups, the unmatched citations, and whether any citation is explicit.

    A marker glued to a code-like identifier (``arr[1]``, ``x[0]``, ``row_2[1]``, and the
    ``[2]`` of ``m[1][2]``) is indexing, not a citation, while one glued to a plain word
    (``France[1]``, as Perplexity-style models write) is a citation; so is not a marker
    naming 0 or only numbers of 1000 or more (``[2024]``) that are not source ids.
    """
    groups: list[_Group] = []
    unmatched: list[str] = []
    explicit = False
    indexing_end = -1
    for m in _TOKEN_RE.finditer(masked):
        if m["image"] is not None:
            continue
        url = m["url"] or m["auto"] or m["bare"]
        if url is not None:
            src = by_url.get(_norm_url(url))
            ids = [src.id] if src else []
            marker = _MARKER_TEXT_RE.fullmatch(m["text"].strip()) if m["text"] else None
            if not ids and marker:
                ids = [n for n in _parse_ids(marker["ids"]) if n in by_id]
            if not ids:
                unmatched.append(url)
            explicit = explicit or bool(ids)
        else:
            nums = _parse_ids(m["ids"] if m["ids"] is not None else m["cjk"])
            glued = _PLAIN_NUMBER_RE.match(m.group()) is not None and m.start() > 0 and (
                _looks_like_code(masked, m.start()) or m.start() == indexing_end)
            if glued:
                indexing_end = m.end()
            if glued or not _is_citation(nums, by_id):
                continue
            ids = [n for n in nums if n in by_id]
            if len(ids) < len(nums):
                unmatched.append(m.group())
            explicit = True
        if groups and _ADJACENT_RE.fullmatch(masked, groups[-1].end, m.start()):
            groups[-1].end = m.end()
            groups[-1].ids += [n for n in ids if n not in groups[-1].ids]
        else:
            groups.append(_Group(m.start(), m.end(), ids))
    return groups, unmatched, explicit


def _spans(content: str, masked: str, groups: list[_Group]) -> Iterator[tuple[int, int, list[int]]]:
    """Pass 2: the span each group cites, from its sentence or clause start to the group's end.

    A group placed after its sentence's period (``capital. [1]``) cites that sentence; a
    group with no words of its own since the previous one on the line (``[1]. [2]``)
    shares the previous span; a group with no text before it at all spans only itself.
    """
    starts = _sentence_starts(content, masked)
    prev: tuple[int, int] | None = None  # (span start, group end) of the previous group
    for g in groups:
        lo = prev[1] if prev else 0
        p = g.start
        while p > lo and content[p - 1] in _CLOSERS:
            p -= 1
        start = max(starts[bisect.bisect_right(starts, p) - 1], lo)
        if start == 0 or masked[start - 1] == "\n":
            start = _LINE_PREFIX_RE.match(content, start, g.start).end()
        while start < g.start and (content[start].isspace() or content[start] in ",;:)"):
            start += 1
        if not _WORD_RE.search(content, start, g.start):
            start = prev[0] if prev and "\n" not in masked[lo:g.start] else g.start
        prev = (start, g.end)
        yield start, g.end, g.ids


def _infer(content: str, masked: str, sources: Sequence[SourceRef]) -> Iterator[tuple[int, int, list[int]]]:
    """Attribute each sentence to the source that best supports it, if it supports it well.

    Support = share of the sentence's distinct content words found in the source, plus up
    to 0.2 for the share of its content-word bigrams found there; 0.6 is needed.
    """
    index = []
    for src in sources:
        words = _content_words(src.text)
        index.append((src.id, set(words), set(zip(words, words[1:]))))
    bounds = _sentence_starts(content, masked) + [len(masked)]
    for a, b in zip(bounds, bounds[1:]):
        if a == 0 or masked[a - 1] == "\n":
            a = _LINE_PREFIX_RE.match(content, a, b).end()
        words = _content_words(masked[a:b])
        distinct, bigrams = set(words), set(zip(words, words[1:]))
        if len(distinct) < 3:
            continue
        best_id, best = 0, 0.0
        for sid, src_words, src_bigrams in index:
            score = len(distinct & src_words) / len(distinct)
            if bigrams:
                score += 0.2 * len(bigrams & src_bigrams) / len(bigrams)
            if score > best:
                best_id, best = sid, score
        if best >= 0.6:
            text = content[a:b]
            start = a + len(text) - len(text.lstrip())
            yield start, a + len(text.rstrip()), [best_id]


def _sentence_starts(content: str, masked: str) -> list[int]:
    """Sorted positions where a sentence or clause may start (leading whitespace not skipped).

    Starts follow ``.!?`` plus whitespace (unless the next word is lowercase or a digit, or
    the period closes an abbreviation like ``e.g.``, ``U.S.``, ``Dr.``), CJK ``。！？``
    directly, a newline, and a table cell's ``|``.
    """
    starts = [0]
    for m in _TERMINAL_RE.finditer(masked):
        mark = m.group()
        if mark[0] in ".!?":
            nxt = _NEXT_CHAR_RE.match(content, m.end())
            if nxt and (nxt.group(1).islower() or nxt.group(1).isdigit()):
                continue
            if mark == "." and _is_abbreviation(masked, m.start()):
                continue
        starts.append(m.end())
    return starts


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the period at ``dot`` ends an abbreviation or an initial rather than a sentence."""
    i = dot
    while i > 0 and (text[i - 1].isalpha() or text[i - 1] == "."):
        i -= 1
    word = text[i:dot]
    return ((len(word) == 1 and word != "I") or word.lower() in _ABBREVIATIONS
            or re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", word) is not None)


def _mask_code(text: str) -> str:
    """``text`` with fenced/inline code and link reference definitions blanked (newlines kept)."""
    chars = list(text)

    def blank(start: int, end: int) -> None:
        for i in range(start, end):
            if chars[i] != "\n":
                chars[i] = " "

    for m in _FENCE_RE.finditer(text):
        blank(m.start(), m.end())
    for m in _REF_DEF_RE.finditer("".join(chars)):
        blank(m.start(), m.end())
    masked = "".join(chars)
    runs = [(m.start(), m.end()) for m in _BACKTICKS_RE.finditer(masked)]
    blanks = [m.start() for m in _BLANK_LINE_RE.finditer(masked)]
    following: dict[int, int] = {}  # run index -> next run index with the same length
    last_of_len: dict[int, int] = {}
    for k in range(len(runs) - 1, -1, -1):
        length = runs[k][1] - runs[k][0]
        if length in last_of_len:
            following[k] = last_of_len[length]
        last_of_len[length] = k
    k = 0
    while k < len(runs):
        j = following.get(k)
        paragraph_end = bisect.bisect_left(blanks, runs[k][1])
        if j is not None and (paragraph_end == len(blanks) or blanks[paragraph_end] > runs[j][0]):
            blank(runs[k][0], runs[j][1])
            k = j + 1
        else:
            k += 1
    return "".join(chars)


_CODE_WORD_RE = re.compile(r"[A-Za-z0-9_]+$")


def _looks_like_code(text: str, pos: int) -> bool:
    """Whether the word glued before ``pos`` reads as code: short (``arr``, ``x``),
    or with ``_``, digits or inner capitals (``row_2``, ``myList``)."""
    m = _CODE_WORD_RE.search(text, max(0, pos - 64), pos)
    if m is None:
        return False
    word = m.group()
    return len(word) <= 3 or any(c == "_" or c.isdigit() for c in word) or any(c.isupper() for c in word[1:])


def _parse_ids(raw: str) -> list[int]:
    """The distinct numbers of ``"1, 3-5"`` in order; short ascending ranges are expanded."""
    out: dict[int, None] = {}
    for part in re.split(r"[,;]", raw):
        nums = [int(n) for n in re.findall(r"\d+", part)]
        if len(nums) == 2 and 0 <= nums[1] - nums[0] <= 50:
            nums = list(range(nums[0], nums[1] + 1))
        out.update(dict.fromkeys(nums))
    return list(out)


def _is_citation(nums: list[int], by_id: dict[int, SourceRef]) -> bool:
    """Whether a bracketed number list is a citation rather than ``[0, 1]`` or ``[2024]``."""
    if any(n in by_id for n in nums):
        return 0 not in nums or 0 in by_id
    return all(0 < n < 1000 for n in nums)


def _norm_url(url: str) -> str:
    """A URL key that ignores scheme, ``www.``, host case, default port, fragment, trailing slash."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.lower()
    host = parts.netloc.lower().removeprefix("www.").removesuffix(":443").removesuffix(":80")
    return host + parts.path.rstrip("/") + (f"?{parts.query}" if parts.query else "")


def url_citation(url: str, title: str, start: int, end: int) -> dict:
    """One OpenAI ``url_citation`` annotation; the title falls back to the URL's host."""
    return {"type": "url_citation",
            "url_citation": {"url": url, "title": title or _host(url), "start_index": start, "end_index": end}}


def _host(url: str) -> str:
    """The host of ``url``, or ``url`` itself when it has none."""
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def _content_words(text: str) -> list[str]:
    """Lowercased ``\\w+`` words of 3+ characters that are not stop words, in order."""
    return [w for w in _WORD_RE.findall(text.lower()) if len(w) >= 3 and w not in _STOP_WORDS]

