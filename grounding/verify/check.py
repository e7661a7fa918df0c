"""Checking an answer's citations against their sources, and acting on the verdicts.

:func:`check_citations` takes the answer, its citations (a span and the source
id it cites) and the sources' texts, and returns the annotations to emit and a
record of what was decided for each citation:

* every citation gets a **verdict** from the judge (``supported``, ``partial``,
  ``unsupported``; ``unchecked`` when its source's text is not known), a
  **score**, and the **evidence**: the shortest passage of the source that
  supports the span, with its offsets into the source's text;
* ``flag``: citations stay as written; the verdicts are reported;
* ``repair``: an unsupported citation **moves** to the source that clearly
  supports the span (the judge says ``supported`` there), or is **removed**;
  a partial one moves only when another source is clearly better. A citation
  moved onto a source the span already cites is removed as a duplicate;
* each emitted annotation carries ``cited_text``: the evidence, verbatim;
* sentences that state something checkable yet end up with no supported
  citation are listed (``unverified``), so a client can mark them.
"""
from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from typing import Literal, Sequence

from ..citations import json_string_spans, sentence_bounds, url_citation
from .lexical import Corpus, LexicalJudge
from .model_judge import JudgeFailed
from .text import clean_claim, terms
from .types import Evidence, Judge, Judgement, SourceText

__all__ = ["Mode", "MODES", "Citation", "Checked", "CheckResult", "check_citations", "claim_text"]

Mode = Literal["repair", "flag", "off"]
MODES: tuple[str, ...] = ("repair", "flag", "off")

#: Repair: how much better (lexical score) another source must be to take a partial citation.
_PARTIAL_MOVE_MARGIN = 0.2
#: Repair: how much better another source must be to take an unsupported citation.
_MOVE_MARGIN = 0.1


@dataclass(frozen=True)
class Citation:
    """A span of the answer and the source it cites."""

    start: int
    end: int
    source_id: int
    kind: str = "marker"  # marker | link | inferred | native
    url: str = ""  # the source's URL and title when its text is not among the sources (unchecked)
    title: str = ""


@dataclass
class Checked:
    """What the checker found and did for one citation."""

    start: int
    end: int
    url: str
    title: str
    source_id: int
    kind: str
    verdict: str  # supported | partial | unsupported | unchecked
    score: float | None
    evidence: Evidence | None
    action: str  # kept | flagged | moved | removed
    reason: str = ""
    moved_from_id: int | None = None
    moved_from_url: str | None = None


@dataclass
class CheckResult:
    annotations: list[dict]
    checks: list[Checked] = field(default_factory=list)
    unverified: list[tuple[int, int]] = field(default_factory=list)
    judge: str = "lexical"
    judge_error: str | None = None
    duration_ms: float = 0.0

    @property
    def moved(self) -> int:
        return sum(c.action == "moved" for c in self.checks)

    @property
    def removed(self) -> int:
        return sum(c.action == "removed" for c in self.checks)

    @property
    def flagged(self) -> int:
        return sum(c.action == "flagged" for c in self.checks)

    @property
    def cited_ids(self) -> set[int]:
        return {c.source_id for c in self.checks if c.action in ("kept", "flagged", "moved")}


_LINK = r"\[(?:[^\[\]\n]|\[[^\[\]\n]*\])*\]\([^)\n]*\)"
# The citation itself, where a span ends with it: markers, links, autolinks, in brackets or not.
_TRAILING_CITE_RE = re.compile(
    rf"(?:\s*[(\[]?\s*(?:{_LINK}|\[\s*\^?(?:(?:sources?|src|ref)\s*[:#]?\s*)?\d[\d,;\s\-–—]*\]|【[^】\n]*】|"
    r"<https?://[^>\s]*>|\(\s*https?://[^)\s]*\s*\))\s*[)\]]?[.,;:!?]?)+\s*$", re.IGNORECASE)
# An opening attribution: "According to [Title](url), ...", "[Title](url) reports that ...".
_LEADING_CITE_RE = re.compile(
    rf"^\s*(?:(?:according\s+to|as\s+(?:\w+\s+)?(?:reported|noted|stated|described|explained|shown|documented|"
    rf"written|listed|mentioned)\s+(?:by|in|on|at)|per)\s+(?:the\s+)?{_LINK}\s*[,:]?\s*|{_LINK}\s*[,:]?\s*"
    r"(?:(?:says|said|states|stated|reports|reported|notes|noted|writes|wrote|explains|explained|finds|found|"
    r"shows|showed|confirms|confirmed)\s+(?:that\s+)?)?)", re.IGNORECASE)
_ATTRIBUTION_RE = re.compile(
    r"^\s*(?:according\s+to|as\s+(?:\w+\s+)?(?:reported|noted|stated|described|explained|shown|documented|"
    r"written|listed|mentioned)\s+(?:by|in|on|at)|per)\b[^,]{0,80},\s*", re.IGNORECASE)


def claim_text(span: str) -> str:
    """What a cited span claims: the citation itself (trailing markers or links, an
    opening "According to [Title](url),"), markup and URLs removed; a link inside the
    claim keeps its text ("The [Eiffel Tower](url) is 330 m tall")."""
    span = _JSON_ESCAPE_RE.sub(_unescape, span)  # a span inside a JSON string value
    span = _TRAILING_CITE_RE.sub("", span)
    span = _LEADING_CITE_RE.sub("", span, count=1)
    return _ATTRIBUTION_RE.sub("", clean_claim(span))


_JSON_ESCAPE_RE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|[\"\\/bfnrt])")
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "/": "/"}


def _unescape(m: re.Match[str]) -> str:
    code = m.group(0)[1:]
    return chr(int(code[1:], 16)) if code[0] == "u" else _ESCAPES[code]


def _lexical_pass(lexical: LexicalJudge, corpus: Corpus, pairs: list[tuple[str, int]],
                  grid: list[tuple[str, int]]) -> tuple[list[Judgement], list[Judgement]]:
    """The built-in judge's verdicts on the cited pairs and on every (claim, source) of ``grid``."""
    return lexical.judge_now(corpus, pairs), lexical.judge_now(corpus, grid) if grid else []


async def check_citations(content: str, citations: Sequence[Citation], sources: Sequence[SourceText], *,
                          mode: Mode = "repair", judge: Judge | None = None,
                          unchecked: dict[int, str] | None = None) -> CheckResult:
    """Check ``citations`` of ``content`` against ``sources`` and act per ``mode`` (see the module doc).

    ``unchecked`` maps the ids of sources whose text could not be read to why: their
    citations are kept with the verdict ``unchecked``. Never raises for a judge's failure:
    a failing model judge falls back to the lexical one (``judge_error`` says why).
    """
    t0 = time.perf_counter()
    by_id = {s.id: s for s in sources}
    unchecked = dict(unchecked or {})
    lexical = LexicalJudge()
    judge = judge or lexical
    result = CheckResult(annotations=[], judge=judge.name)
    if mode == "off":
        result.annotations = [url_citation(_url(by_id, c), _title(by_id, c), c.start, c.end) for c in citations]
        return result
    corpus = Corpus(sources)
    claims = [claim_text(content[c.start:c.end]) for c in citations]
    checkable = [i for i, c in enumerate(citations) if c.source_id in by_id and c.source_id not in unchecked]

    # The lexical judge reads every (claim, source) pair: the cited verdicts, and for
    # repair, the best other source of each claim.
    others = [sid for sid in by_id if sid not in unchecked]
    lex_cited: dict[int, Judgement] = {}
    best_alt: dict[int, tuple[int, Judgement]] = {}
    pairs = [(claims[i], citations[i].source_id) for i in checkable]
    grid: list[tuple[str, int]] = []
    if mode == "repair":
        distinct = sorted({claims[i] for i in checkable})
        grid = [(claim, sid) for claim in distinct for sid in others]
    # Reading the sources is CPU work (tens of ms for long pages): in a thread, so that the
    # event loop goes on serving other requests' chunks meanwhile.
    cited_verdicts, grid_verdicts = await asyncio.to_thread(_lexical_pass, lexical, corpus, pairs, grid)
    for i, j in zip(checkable, cited_verdicts):
        lex_cited[i] = j
    if mode == "repair":
        table = dict(zip(grid, grid_verdicts))
        for i in checkable:
            cands = [(sid, table[(claims[i], sid)]) for sid in others if sid != citations[i].source_id]
            cands = [(sid, j) for sid, j in cands if j.verdict != "unsupported"]
            if cands:
                best_alt[i] = max(cands, key=lambda x: (x[1].score, -x[0]))

    # The judge decides; a model judge gets every pair it must decide in one call.
    final_cited = dict(lex_cited)
    final_alt = {i: j for i, (_, j) in best_alt.items()}
    if judge is not lexical and checkable:
        asked = [(claims[i], citations[i].source_id) for i in checkable]
        alt_keys = [i for i in checkable if i in best_alt and best_alt[i][1].score > lex_cited[i].score]
        asked += [(claims[i], best_alt[i][0]) for i in alt_keys]
        try:
            verdicts = await judge.judge(corpus, asked)
        except JudgeFailed as exc:
            result.judge_error = str(exc)
            result.judge = f"{lexical.name} (the verifier failed)"
        else:
            for i, j in zip(checkable, verdicts[:len(checkable)]):
                final_cited[i] = j
            for i, j in zip(alt_keys, verdicts[len(checkable):]):
                final_alt[i] = j

    # Act.
    checks: list[Checked] = []
    for i, c in enumerate(citations):
        url, title = _url(by_id, c), _title(by_id, c)
        if i not in final_cited:
            why = unchecked.get(c.source_id) or "the source's text is not known"
            checks.append(Checked(c.start, c.end, url, title, c.source_id, c.kind, "unchecked", None, None,
                                  "kept", f"not checked: {why}"))
            continue
        j = final_cited[i]
        row = Checked(c.start, c.end, url, title, c.source_id, c.kind, j.verdict, j.score, j.evidence, "kept",
                      j.reason)
        if j.verdict != "supported" and mode == "repair":
            alt = best_alt.get(i)
            alt_j = final_alt.get(i)
            if alt is not None and alt_j is not None and alt_j.verdict == "supported" and _clearly_better(
                    lex_cited[i], alt[1], j.verdict):
                target = by_id[alt[0]]
                row = Checked(c.start, c.end, target.url, target.title, target.id, c.kind, alt_j.verdict,
                              alt_j.score, alt_j.evidence, "moved",
                              f"source [{c.source_id}] {'only partly supports' if j.verdict == 'partial' else 'does not support'}"
                              f" this ({j.reason}); source [{target.id}] does",
                              moved_from_id=c.source_id, moved_from_url=url)
            elif j.verdict == "unsupported":
                row.action = "removed"
                row.reason = f"source [{c.source_id}] does not support this ({j.reason}); no other fetched source does"
        elif j.verdict == "unsupported":
            row.action = "flagged"
        checks.append(row)
    _dedupe(checks)
    result.checks = checks

    emitted = [c for c in checks if c.action in ("kept", "flagged", "moved")]
    emitted.sort(key=lambda c: (c.start, c.source_id))
    for c in emitted:
        cited = c.evidence.text if c.evidence is not None and c.verdict in ("supported", "partial") else None
        result.annotations.append(url_citation(c.url, c.title, c.start, c.end, cited_text=cited))
    result.unverified = unverified_sentences(content, emitted)
    result.duration_ms = round((time.perf_counter() - t0) * 1000, 2)
    return result


def _clearly_better(cited: Judgement, alt: Judgement, verdict: str) -> bool:
    margin = _PARTIAL_MOVE_MARGIN if verdict == "partial" else _MOVE_MARGIN
    return alt.score >= cited.score + margin


def _dedupe(checks: list[Checked]) -> None:
    """A span that ends up citing one source twice (a move onto a source it already
    cites) keeps the first; the other is removed, reported under the source it cited."""
    seen: dict[tuple[int, int, int], Checked] = {}
    for c in checks:
        if c.action not in ("kept", "flagged", "moved"):
            continue
        key = (c.start, c.end, c.source_id)
        if key not in seen:
            seen[key] = c
            continue
        if c.action == "moved" and c.moved_from_url is not None:
            c.reason = f"{c.reason}, and the span already cites it"
            c.url, c.source_id = c.moved_from_url, c.moved_from_id if c.moved_from_id is not None else c.source_id
            c.moved_from_url = c.moved_from_id = None
        else:
            c.reason = f"the span already cites source [{c.source_id}]"
        c.action = "removed"


def _url(by_id: dict[int, SourceText], c: Citation) -> str:
    return by_id[c.source_id].url if c.source_id in by_id else c.url


def _title(by_id: dict[int, SourceText], c: Citation) -> str:
    return by_id[c.source_id].title if c.source_id in by_id else c.title


# -- sentences with no supported citation ----------------------------------------------

_META_RE = re.compile(
    r"^\s*(?:(?:i|we)\s+(?:do\s+not|don't|could\s+not|couldn't|cannot|can't|am\s+not|was\s+unable|did\s+not|"
    r"didn't|found\s+no|have\s+no)|(?:the\s+|these\s+|my\s+)?(?:sources?|results?|search(?:es)?)\s+"
    r"(?:do|does|did|don't|doesn't|didn't|provided|given|found)\b|sorry|unfortunately|here\s+(?:is|are)|"
    r"in\s+summary|to\s+summari[sz]e|let\s+me|if\s+you|feel\s+free|hope\s+this|note:|sources?:|references?:)",
    re.IGNORECASE)


def makes_claim(sentence: str) -> bool:
    """Whether a sentence states something checkable: not a question, not talk about the
    answer itself, and with a number, a name, or three content words."""
    text = clean_claim(sentence)
    if not text or text.rstrip().endswith("?") or _META_RE.match(text):
        return False
    t = terms(text)
    return bool(t.numbers and t.distinct) or bool(t.names and len(t.distinct) >= 2) or len(t.distinct) >= 3


def unverified_sentences(content: str, emitted: Sequence[Checked]) -> list[tuple[int, int]]:
    """``(start, end)`` of the sentences that make a claim yet have no supported or partial
    citation over them."""
    good = [(c.start, c.end) for c in emitted if c.verdict in ("supported", "partial", "unchecked")]
    pieces = json_string_spans(content)
    bounds: list[tuple[int, int]] = []
    if pieces is None:
        bounds = sentence_bounds(content)
    else:
        for a, b in pieces:
            bounds += [(a + x, a + y) for x, y in sentence_bounds(content[a:b])]
    out = []
    for a, b in bounds:
        if any(s < b and e > a for s, e in good):
            continue
        if makes_claim(content[a:b]):
            out.append((a, b))
    return out
