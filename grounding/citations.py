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
import json
from dataclasses import dataclass, field
from typing import Iterator, Sequence
from urllib.parse import urlsplit

__all__ = ["SourceRef", "Cited", "CitationResult", "annotate", "url_citation", "sentence_bounds",
           "json_string_spans"]


@dataclass(frozen=True)
class SourceRef:
    """A source the model was shown in this request."""

    id: int  # the number the model saw, 1-based
    url: str
    title: str
    text: str = ""  # the source text the model was given (for inferred citations)
    aliases: tuple[str, ...] = ()  # other URLs of the same page (where its redirects ended)


@dataclass(frozen=True)
class Cited:
    """One source cited for one span of the answer."""

    start: int
    end: int
    source_id: int
    kind: str  # "marker" ([n], footnotes), "link" (a link to the source's URL) or "inferred"


@dataclass
class CitationResult:
    """The annotations for one answer, and what could not be resolved."""

    annotations: list[dict]  # url_citation dicts, sorted by start_index then source id
    cited_ids: list[int]  # source ids cited, in first-citation order, unique
    unmatched: list[str]  # markers/links pointing at nothing fetched, as written
    inferred: int  # how many annotations were inferred from lexical support
    cited: list[Cited] = field(default_factory=list)  # one per annotation, in the same order
    #: Citations that got no annotation because no claim comes with them
    #: (``{"start", "end", "text", "reason"}``): a bare marker, "see [1]", an echo of "claim [1]".
    dropped: list[dict] = field(default_factory=list)


@dataclass
class _Group:
    """Adjacent citations (``[1][3]``, ``[2](url) [4]``) and the known ids they name."""

    start: int
    end: int
    ids: list[int]
    kind: str = "marker"


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
    When ``content`` is a JSON object or array (``response_format``), only its string
    values are read, so every span lies inside a string value, never on JSON syntax.
    """
    by_id: dict[int, SourceRef] = {}
    by_url: dict[str, SourceRef] = {}
    for src in sources:
        by_id.setdefault(src.id, src)
        for url in (src.url, *src.aliases):
            by_url.setdefault(_norm_url(url), src)
    pieces = json_string_spans(content)
    if pieces is None:
        pieces = [(0, len(content))]
    found: list[tuple[int, int, list[int], str]] = []
    unmatched: list[str] = []
    dropped: list[dict] = []
    explicit = False
    texts: list[tuple[int, str, str]] = []
    for offset, end in pieces:
        text = content[offset:end]
        masked = _mask_code(_json_masked(text) if len(pieces) > 1 or offset else text)
        groups, missed, any_explicit = _find_citations(masked, by_id, by_url)
        unmatched += missed
        explicit = explicit or any_explicit
        for start, stop, ids, kind in _spans(text, masked, groups, dropped, offset):
            found.append((start + offset, stop + offset, ids, kind))
        texts.append((offset, text, masked))
    if not explicit and infer:
        for offset, text, masked in texts:
            found += [(a + offset, b + offset, ids, "inferred") for a, b, ids in _infer(text, masked, sources)]
    cited_spans = sorted((start, sid, end, kind) for start, end, ids, kind in found for sid in ids)
    cited = [Cited(start, end, sid, kind) for start, sid, end, kind in cited_spans]
    annotations = [url_citation(by_id[c.source_id].url, by_id[c.source_id].title, c.start, c.end) for c in cited]
    order = list(dict.fromkeys(sid for _, _, ids, _ in found for sid in ids))
    return CitationResult(annotations, order, unmatched, 0 if explicit else len(annotations), cited, dropped)


def _find_citations(masked: str, by_id: dict[int, SourceRef],
                    by_url: dict[str, SourceRef]) -> tuple[list[_Group], list[str], bool]:
    """Pass 1: the citation groups, the unmatched citations, and whether any citation is explicit.

    A marker glued to a code-like identifier (``arr[1]``, ``x[0]``, ``row_2[1]``, and the
    ``[2]`` of ``m[1][2]``) is indexing, not a citation, while one glued to a plain word
    (``France[1]``, as Perplexity-style models write) is a citation; so is not a marker
    naming 0 or only numbers of 1000 or more (``[2024]``) that are not source ids.
    A link cites the source at its URL, whatever its text says: ``[1](https://elsewhere)``
    to a page that was not fetched is unmatched, not source 1.
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
            kind = "link"
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
            kind = "marker"
            if len(ids) < len(nums):
                unmatched.append(m.group())
            explicit = True
        if groups and _ADJACENT_RE.fullmatch(masked, groups[-1].end, m.start()):
            groups[-1].end = m.end()
            groups[-1].ids += [n for n in ids if n not in groups[-1].ids]
            if kind == "link":
                groups[-1].kind = "link"
        else:
            groups.append(_Group(m.start(), m.end(), ids, kind))
    return groups, unmatched, explicit


# Words that are no claim on their own: what a model echoes from "put [1] after each claim",
# and pointers like "see [1]" or "more details [2]".
_PLACEHOLDER_WORDS = frozenset(
    "claim claims statement statements fact facts sentence sentences source sources citation citations cite "
    "cited reference references ref refs example examples see also here there more details detail information "
    "info read further this that it is are for and or the a an e g i etc link links page pages".split())
# A citation that introduces what follows: "According to [A](url), X." / "[A](url) reports X."
_ATTRIBUTION_BEFORE_RE = re.compile(
    r"(?:according\s+to|as\s+(?:\w+\s+)?(?:reported|noted|stated|described|explained|shown|documented|"
    r"written|listed|mentioned)\s+(?:by|in|on|at)|per|citing|in|on|at|from|via|by)\s*[\"'“(]*\s*$",
    re.IGNORECASE)
_CLAUSE_BREAK_RE = re.compile(r"[;:](?=\s)|,(?=\s+(?:while|whereas|but|although|though|and\s+\w+\s+(?:is|are|was|were)\b))"
                              r"|\s(?:while|whereas|although|though)\s", re.IGNORECASE)
_STOP_RE = re.compile(r"[.!?。！？][\"'”’)\]]*(?=\s)")
_ATTRIBUTION_AFTER_RE = re.compile(
    r"[\"'”)]*\s*[,:]?\s*(?:\w+\s+)?(?:says|said|states|stated|reports|reported|notes|noted|writes|wrote|"
    r"explains|explained|finds|found|shows|showed|shown|claims|claimed|argues|argued|confirms|confirmed|"
    r"estimates|estimated|lists|listed|describes|described|documents|mentions|mentioned|adds|added|"
    r"suggests|suggested|warns|warned|puts it|recommends|recommended)\b",
    re.IGNORECASE)


def _spans(content: str, masked: str, groups: list[_Group], dropped: list[dict],
           offset: int = 0) -> Iterator[tuple[int, int, list[int], str]]:
    """Pass 2: the span each group cites.

    * A group that ends a claim (``X is Y [1].``, ``X is Y. [1]``) cites from its
      sentence's start (or the end of the previous group in that sentence) to the
      group's end.
    * A group that introduces a claim (``According to [A](url), X is Y.``,
      ``[A](url) reports that X.``, or a group opening its sentence) cites its whole
      sentence, up to the next group or the sentence's end.
    * A group with no words of its own since the previous group (``[1]. [2]``)
      shares the previous span; one alone after a finished sentence (``X is Y.\n\n[1]``)
      cites that sentence.
    * A group with no claim at all (a bare ``[2]``, ``- [1]``, ``see [1]``, or an echo
      of the instructions' "claim [1]") gives no annotation; it is listed in ``dropped``.
    """
    starts = _sentence_starts(content, masked)
    prev: tuple[int, int] | None = None  # (span start, group end) of the previous group
    for k, g in enumerate(groups):
        lo = prev[1] if prev else 0
        p = g.start
        while p > lo and content[p - 1] in _CLOSERS:
            p -= 1
        sentence = starts[bisect.bisect_right(starts, p) - 1]
        start = max(sentence, lo)
        if start == 0 or masked[start - 1] == "\n":
            start = _LINE_PREFIX_RE.match(content, start, g.start).end()
        while start < g.start and (content[start].isspace() or content[start] in ",;:)"):
            start += 1
        if not g.ids:  # unmatched: no annotation, but it ends the claim before it all the same
            prev = (start, g.end)
            continue
        next_start = groups[k + 1].start if k + 1 < len(groups) else len(content)
        sentence_end = _sentence_end(content, masked, starts, g.end, next_start)
        words_before = _claim_words(content, start, g.start)
        if not words_before and prev and "\n" not in masked[lo:g.start] and not _WORD_RE.search(masked, lo, g.start):
            yield prev[0], g.end, g.ids, g.kind  # "[1]. [2]", "(link) (link)": the same claim
            prev = (prev[0], g.end)
            continue
        words_after = _WORD_RE.search(masked, g.end, sentence_end) is not None
        leading = words_after and (
            not words_before or _ATTRIBUTION_BEFORE_RE.search(masked, max(start, g.start - 60), g.start) is not None
            or _ATTRIBUTION_AFTER_RE.match(masked, g.end) is not None)
        if leading:
            end = sentence_end
            if next_start < len(content) and end == next_start:
                # Another citation follows before this sentence visibly ends: this claim
                # stops at the last sentence end before it ("... 2020. claim [1]"), else at
                # the last clause break ("X, while Y [1]").
                stops = [b for b in _STOP_RE.finditer(masked, g.end, next_start)
                         if _claim_words(content, g.end, b.start())]
                if stops:
                    end = stops[-1].end()
                else:
                    breaks = [b for b in _CLAUSE_BREAK_RE.finditer(masked, g.end, next_start)
                              if _claim_words(content, g.end, b.start())]
                    if breaks:
                        end = breaks[-1].start()
            while end > g.end and (content[end - 1].isspace() or content[end - 1] in ",;:"):
                end -= 1
            if _claim_words(content, g.end, end):
                prev = (start, end)
                yield start, end, g.ids, g.kind
                continue
        if not words_before:
            # A marker standing alone after a finished sentence cites it; one after
            # placeholder words ("claim [1]", "see [2]") cites nothing.
            alone = not _WORD_RE.search(masked, start, g.start)
            before = _previous_sentence(content, masked, starts, p, lo) if alone else None
            if before is not None:
                prev = (before, g.end)
                yield before, g.end, g.ids, g.kind
                continue
            dropped.append({"start": g.start + offset, "end": g.end + offset, "text": content[g.start:g.end],
                            "reason": "no claim comes before or after this citation"})
            prev = (g.start, g.end)
            continue
        prev = (start, g.end)
        yield start, g.end, g.ids, g.kind


def _claim_words(text: str, start: int, end: int, skip: tuple[int, int] | None = None) -> bool:
    """Whether ``text[start:end]`` (less ``skip``) has a word that can carry a claim
    (not only "claim", "see", "source"...; code counts)."""
    for m in _WORD_RE.finditer(text, start, end):
        if skip and skip[0] <= m.start() < skip[1]:
            continue
        if m.group().lower() not in _PLACEHOLDER_WORDS:
            return True
    return False


def _sentence_end(content: str, masked: str, starts: list[int], pos: int, limit: int) -> int:
    """Where the sentence holding ``pos`` ends (its terminal punctuation included), at most ``limit``."""
    i = bisect.bisect_right(starts, pos)
    end = starts[i] if i < len(starts) else len(content)
    return min(end, limit)


def _previous_sentence(content: str, masked: str, starts: list[int], pos: int, lo: int) -> int | None:
    """The start of the sentence that ends just before ``pos`` (across blank lines), if it
    has a claim and no citation of its own (nothing cited after ``lo``)."""
    i = bisect.bisect_right(starts, pos) - 1
    while i > 0:
        i -= 1
        start = starts[i]
        if start < lo:
            return None
        if start == 0 or masked[start - 1] == "\n":
            start = _LINE_PREFIX_RE.match(content, start, pos).end()
        if _claim_words(content, start, pos):
            while start < pos and content[start].isspace():
                start += 1
            return start
    return None


def sentence_bounds(content: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence (or list item, or table cell) of an answer,
    code left out, surrounding whitespace and list bullets trimmed."""
    masked = _mask_code(content)
    bounds = _sentence_starts(content, masked) + [len(content)]
    out = []
    for a, b in zip(bounds, bounds[1:]):
        if a == 0 or masked[a - 1] == "\n":
            a = _LINE_PREFIX_RE.match(content, a, b).end()
        while a < b and content[a].isspace():
            a += 1
        while b > a and content[b - 1].isspace():
            b -= 1
        if b > a and _WORD_RE.search(masked, a, b):
            out.append((a, b))
    return out


_JSON_STRING_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def json_string_spans(content: str) -> list[tuple[int, int]] | None:
    """The inner spans of the string *values* of a JSON object or array, or None when
    ``content`` is not one (keys are left out: they are names, not claims)."""
    stripped = content.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    if not _has_string(value):
        return None  # "[2]": a bare marker, not structured output
    out = []
    for m in _JSON_STRING_RE.finditer(content):
        after = content[m.end():m.end() + 64].lstrip()
        if after.startswith(":"):
            continue  # a key
        if m.end() - m.start() > 2:
            out.append((m.start() + 1, m.end() - 1))
    return out


def _has_string(value: object) -> bool:
    if isinstance(value, str):
        return True
    if isinstance(value, dict):
        return any(_has_string(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_string(v) for v in value)
    return False


def _json_masked(text: str) -> str:
    """A JSON string literal's inner text with its escapes read for structure:
    ``\\n`` breaks lines, other escapes are blanked (the same length, offsets kept)."""
    return re.sub(r"\\(.)", lambda m: " \n" if m.group(1) in "nr" else "  ", text)


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
    if word.lower() in ("a.m", "p.m"):  # "at 9 a.m. The stock..." ends a sentence; "a.m. on Monday" does not
        return False
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


def url_citation(url: str, title: str, start: int, end: int, *, cited_text: str | None = None) -> dict:
    """One OpenAI ``url_citation`` annotation; the title falls back to the URL's host.
    ``cited_text``: the passage of the source that supports the span (Anthropic's name for it)."""
    cite: dict = {"url": url, "title": title or _host(url), "start_index": start, "end_index": end}
    if cited_text:
        cite["cited_text"] = cited_text
    return {"type": "url_citation", "url_citation": cite}


def _host(url: str) -> str:
    """The host of ``url``, or ``url`` itself when it has none."""
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def _content_words(text: str) -> list[str]:
    """Lowercased ``\\w+`` words of 3+ characters that are not stop words, in order."""
    return [w for w in _WORD_RE.findall(text.lower()) if len(w) >= 3 and w not in _STOP_WORDS]

