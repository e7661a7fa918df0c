"""The built-in judge: no model, no network, a few milliseconds per answer.

For a claim and a source, it finds the window of one to three consecutive
sentences of the source that covers most of the claim, and scores the cover:

* **coverage**: the claim's content words found in the window (stemmed, so
  paraphrases that keep the words' roots meet), each weighted by how rare it
  is among all the request's sources (a fabricated detail is a rare word the
  source lacks; the topic's common words weigh little); names weigh more;
* **numbers** (and dates) are checked one by one: a number the claim states
  that the source does not (a changed digit) makes the claim unsupported; one
  the source states elsewhere than the window makes it partial at most;
* **names** the claim gives that the whole source never mentions make it
  partial (one) or unsupported (two or more);
* **negation**: when the claim negates what the window states, or the window
  negates what the claim states, the claim is unsupported.

``supported`` needs a score of at least ``supported_at`` (0.7), ``partial``
at least ``partial_at`` (0.45); the thresholds were set on one labelled
set and measured on another (``python -m benchmarks citations``).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from .text import Number, Terms, clean_claim, numbers_match, sentences, terms
from .types import Evidence, Judgement, SourceText, Verdict

__all__ = ["LexicalJudge", "Corpus", "SourceIndex"]

_NAME_WEIGHT = 1.5
_MAX_WINDOW = 3


@dataclass
class SourceIndex:
    """A source split into sentences, each read into :class:`Terms`, with an index of where each stem occurs."""

    source: SourceText
    spans: list[tuple[int, int]] = field(default_factory=list)
    sentence_terms: list[Terms] = field(default_factory=list)
    where: dict[str, list[int]] = field(default_factory=dict)  # stem -> sentence indexes
    title_stems: set[str] = field(default_factory=set)
    all_stems: set[str] = field(default_factory=set)
    all_numbers: list[Number] = field(default_factory=list)

    @classmethod
    def build(cls, source: SourceText) -> "SourceIndex":
        index = cls(source)
        where: dict[str, list[int]] = defaultdict(list)
        for i, (a, b) in enumerate(sentences(source.text)):
            t = terms(source.text[a:b])
            index.spans.append((a, b))
            index.sentence_terms.append(t)
            for s in t.distinct:
                where[s].append(i)
            index.all_numbers.extend(t.numbers)
        index.where = dict(where)
        index.all_stems = set(where)
        index.title_stems = terms(source.title).distinct if source.title else set()
        return index


class Corpus:
    """The sources of one request, indexed once; rarity of words is counted across all of them."""

    def __init__(self, sources: Iterable[SourceText]) -> None:
        self.sources: dict[int, SourceText] = {s.id: s for s in sources}
        self._indexes: dict[int, SourceIndex] = {}
        self._df: dict[str, int] | None = None
        self._sentences = 0

    def index(self, source_id: int) -> SourceIndex:
        if source_id not in self._indexes:
            self._indexes[source_id] = SourceIndex.build(self.sources[source_id])
        return self._indexes[source_id]

    def weight(self, stem: str) -> float:
        """Inverse sentence frequency of ``stem`` over every source (rare words weigh more)."""
        if self._df is None:
            df: dict[str, int] = defaultdict(int)
            total = 0
            for sid in self.sources:
                idx = self.index(sid)
                total += len(idx.spans)
                for s, where in idx.where.items():
                    df[s] += len(where)
            self._df, self._sentences = dict(df), total
        n = max(self._sentences, 1)
        return math.log(1.0 + (n + 1) / (1.0 + self._df.get(stem, 0)))


@dataclass
class _Claim:
    text: str
    terms: Terms
    weights: dict[str, float]
    total: float


class LexicalJudge:
    """The built-in judge (see the module's docstring). Deterministic and local."""

    name = "lexical"

    def __init__(self, *, supported_at: float = 0.7, partial_at: float = 0.45) -> None:
        self.supported_at = supported_at
        self.partial_at = partial_at

    async def judge(self, corpus: Corpus, pairs: Sequence[tuple[str, int]]) -> list[Judgement]:
        return self.judge_now(corpus, pairs)

    def judge_now(self, corpus: Corpus, pairs: Sequence[tuple[str, int]]) -> list[Judgement]:
        """:meth:`judge`, synchronously."""
        claims: dict[str, _Claim] = {}
        out = []
        for text, source_id in pairs:
            claim = claims.get(text)
            if claim is None:
                claim = claims[text] = self._claim(corpus, text)
            out.append(self._one(corpus, claim, source_id))
        return out

    # -- one pair -------------------------------------------------------------

    @staticmethod
    def _claim(corpus: Corpus, text: str) -> _Claim:
        t = terms(clean_claim(text))
        weights = {s: corpus.weight(s) * (_NAME_WEIGHT if s in t.names else 1.0) for s in t.distinct}
        number_weight = max(weights.values(), default=1.0)
        total = sum(weights.values()) + number_weight * len(t.numbers)
        return _Claim(text, t, weights, total)

    def _one(self, corpus: Corpus, claim: _Claim, source_id: int) -> Judgement:
        if source_id not in corpus.sources:
            return Judgement("unsupported", 0.0, None, "the source's text is not known")
        t = claim.terms
        if not t.distinct and not t.numbers:
            return Judgement("unsupported", 0.0, None, "the span states nothing that can be checked")
        idx = corpus.index(source_id)
        candidates = sorted({i for s in t.distinct for i in idx.where.get(s, ())}
                            | {i for i, st in enumerate(idx.sentence_terms)
                               if t.numbers and _any_number(t.numbers, st.numbers)})
        if not candidates:
            return Judgement("unsupported", 0.0, None, "the source shares none of the claim's words")
        windows = {(first, last) for i in candidates
                   for first in range(max(0, i - _MAX_WINDOW + 1), i + 1)
                   for last in range(i, min(len(idx.spans), first + _MAX_WINDOW))}
        # The best cover; among equals, the shortest window, then the earliest.
        coverage, first, last = max(((self._coverage(claim, idx, f, l), f, l) for f, l in windows),
                                    key=lambda w: (round(w[0], 6), w[1] - w[2], -w[1]))
        first, last = self._shrink(claim, idx, first, last, coverage)
        a, b = idx.spans[first][0], idx.spans[last][1]
        evidence = Evidence(idx.source.text[a:b], a, b)
        return self._verdict(claim, idx, first, last, coverage, evidence)

    @staticmethod
    def _window(idx: SourceIndex, first: int, last: int) -> tuple[set[str], list[Number], set[str]]:
        stems: set[str] = set()
        numbers: list[Number] = []
        negated: set[str] = set()
        for st in idx.sentence_terms[first:last + 1]:
            stems |= st.distinct
            numbers += st.numbers
            negated |= st.negated
        return stems, numbers, negated

    def _coverage(self, claim: _Claim, idx: SourceIndex, first: int, last: int) -> float:
        stems, numbers, _ = self._window(idx, first, last)
        got = sum(w for s, w in claim.weights.items() if s in stems or _near(s, stems))
        number_weight = max(claim.weights.values(), default=1.0)
        got += number_weight * sum(1 for n in claim.terms.numbers if _any_number([n], numbers))
        return got / claim.total if claim.total else 0.0

    def _shrink(self, claim: _Claim, idx: SourceIndex, first: int, last: int, coverage: float) -> tuple[int, int]:
        """Drop edge sentences that add nothing: the shortest passage with the same cover."""
        while first < last and self._coverage(claim, idx, first + 1, last) >= coverage - 1e-9:
            first += 1
        while last > first and self._coverage(claim, idx, first, last - 1) >= coverage - 1e-9:
            last -= 1
        return first, last

    def _verdict(self, claim: _Claim, idx: SourceIndex, first: int, last: int, coverage: float,
                 evidence: Evidence) -> Judgement:
        t = claim.terms
        stems, numbers, negated = self._window(idx, first, last)
        score = coverage
        cap: Verdict = "supported"
        reasons: list[str] = []
        missing = [n for n in t.numbers if not _any_number([n], numbers)]
        absent = [n for n in missing if not _any_number([n], idx.all_numbers)]
        if absent:
            cap = "unsupported"
            reasons.append(f"the source does not state {_show(absent[0])}")
        elif missing:
            cap = _lower(cap, "partial")
            reasons.append(f"{_show(missing[0])} is stated elsewhere in the source, not beside the rest")
        names = [s for s in t.names if s not in idx.all_stems and s not in idx.title_stems and not _near(s, idx.all_stems)]
        if len(names) >= 2:
            cap = "unsupported"
            reasons.append("names in the claim do not occur in the source")
        elif names:
            cap = _lower(cap, "partial")
            score *= 0.8
            reasons.append("a name in the claim does not occur in the source")
        matched = {s for s in t.distinct if s in stems}
        claim_negates = bool(t.negated & matched) or (t.negation and not (t.distinct - t.negated))
        window_negates = bool(negated & matched)
        if claim_negates != window_negates and matched:
            cap = "unsupported"
            score *= 0.5
            reasons.append("the claim negates what the source states" if claim_negates
                           else "the source negates what the claim states")
        verdict: Verdict = ("supported" if score >= self.supported_at
                            else "partial" if score >= self.partial_at else "unsupported")
        verdict = _lower(verdict, cap)
        if not reasons:
            reasons.append(f"{round(coverage * 100)}% of the claim's weighted words are in the passage")
        return Judgement(verdict, round(min(score, 1.0), 4), evidence, "; ".join(reasons))


_ORDER = {"supported": 2, "partial": 1, "unsupported": 0}


def _lower(a: Verdict, b: Verdict) -> Verdict:
    return a if _ORDER[a] <= _ORDER[b] else b


def _near(stem: str, stems: set[str]) -> bool:
    """A looser match for long words: one stem the prefix of the other (``photograph`` / ``photographi``)."""
    if len(stem) < 6:
        return False
    return any(len(s) >= 6 and (s.startswith(stem) or stem.startswith(s)) for s in stems)


def _any_number(claimed: Sequence[Number], found: Sequence[Number]) -> bool:
    return any(numbers_match(c, f) for c in claimed for f in found)


def _show(n: Number) -> str:
    v = n.value
    return str(int(v)) if v == int(v) else f"{v:g}"


def judge_texts(claim: str, source: str) -> Judgement:
    """Judge one claim against one text (a convenience for callers and tests)."""
    corpus = Corpus([SourceText(1, "", "", source)])
    return LexicalJudge().judge_now(corpus, [(claim, 1)])[0]

