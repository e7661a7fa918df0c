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

from .text import Number, Terms, clean_claim, numbers_match, sentences, stems_and_numbers, terms
from .types import Evidence, Judgement, SourceText, Verdict

__all__ = ["LexicalJudge", "Corpus", "SourceIndex"]

_NAME_WEIGHT = 1.5
_MAX_WINDOW = 3
#: Stems at least this long match loosely (one a prefix of the other): SourceIndex.near().
_NEAR = 6


@dataclass
class SourceIndex:
    """A source split into sentences, each read into :class:`Terms`, with an index of where each stem occurs."""

    source: SourceText
    spans: list[tuple[int, int]] = field(default_factory=list)
    sentence_terms: list[Terms | None] = field(default_factory=list)  # read lazily: terms_at()
    sentence_stems: list[frozenset[str]] = field(default_factory=list)
    where: dict[str, list[int]] = field(default_factory=dict)  # stem -> sentence indexes
    title_stems: set[str] = field(default_factory=set)
    all_stems: set[str] = field(default_factory=set)
    all_numbers: list[Number] = field(default_factory=list)
    number_where: list[tuple[Number, int]] = field(default_factory=list)  # (number, sentence index)
    sentence_numbers: list[list[Number]] = field(default_factory=list)  # each sentence's numbers, in order
    _by_prefix: dict[str, list[str]] | None = field(default=None, repr=False)  # near()'s index, built when first asked

    @classmethod
    def build(cls, source: SourceText) -> "SourceIndex":
        index = cls(source)
        where: dict[str, list[int]] = defaultdict(list)
        for i, (a, b) in enumerate(sentences(source.text)):
            found, numbers = stems_and_numbers(source.text[a:b])
            index.spans.append((a, b))
            stems = frozenset(found)
            index.sentence_stems.append(stems)
            for s in stems:
                where[s].append(i)
            index.sentence_numbers.append(numbers)
            index.all_numbers.extend(numbers)
            index.number_where.extend((n, i) for n in numbers)
        index.sentence_terms = [None] * len(index.spans)
        index.where = dict(where)
        index.all_stems = set(where)
        index.title_stems = terms(source.title).distinct if source.title else set()
        return index

    def terms_at(self, first: int, last: int) -> list[Terms]:
        """The full :class:`Terms` of sentences ``first..last``, read when first asked for."""
        out = []
        for i in range(first, last + 1):
            t = self.sentence_terms[i]
            if t is None:
                a, b = self.spans[i]
                t = self.sentence_terms[i] = terms(self.source.text[a:b])
            out.append(t)
        return out

    def near(self, stem: str) -> set[str]:
        """The source's stems a long claim stem loosely matches (one a prefix of the other)."""
        if len(stem) < _NEAR or stem in self.where:
            return set()
        if self._by_prefix is None:  # both are >= _NEAR long, so they share their first _NEAR letters
            by_prefix: dict[str, list[str]] = defaultdict(list)
            for s in self.all_stems:
                if len(s) >= _NEAR:
                    by_prefix[s[:_NEAR]].append(s)
            self._by_prefix = dict(by_prefix)
        return {s for s in self._by_prefix.get(stem[:_NEAR], ()) if s.startswith(stem) or stem.startswith(s)}


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
    number_weight: float
    total: float


#: Sentences of a source looked at closely per claim: the best matches by weighted words.
_CANDIDATES = 4


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
        return _Claim(text, t, weights, number_weight, total)

    def _one(self, corpus: Corpus, claim: _Claim, source_id: int) -> Judgement:
        if source_id not in corpus.sources:
            return Judgement("unsupported", 0.0, None, "the source's text is not known")
        t = claim.terms
        if not t.distinct and not t.numbers:
            return Judgement("unsupported", 0.0, None, "the span states nothing that can be checked")
        idx = corpus.index(source_id)
        # Each claim stem, and the source stems that loosely match it.
        matches = {s: ({s} if s in idx.where else set()) | idx.near(s) for s in claim.weights}
        score: dict[int, float] = defaultdict(float)
        for s, found in matches.items():
            for f in found:
                for i in idx.where.get(f, ()):
                    score[i] += claim.weights[s]
        for n in t.numbers:
            for m, i in idx.number_where:
                if numbers_match(n, m):
                    score[i] += claim.number_weight
        if not score:
            return Judgement("unsupported", 0.0, None, "the source shares none of the claim's words")
        best = sorted(score, key=lambda i: (-score[i], i))[:_CANDIDATES]
        windows = {(first, last) for i in best
                   for first in range(max(0, i - _MAX_WINDOW + 1), i + 1)
                   for last in range(i, min(len(idx.spans), first + _MAX_WINDOW))}
        # The best cover; among equals, the shortest window, then the earliest.
        coverage, first, last = max(((self._coverage(claim, idx, matches, f, l), f, l) for f, l in windows),
                                    key=lambda w: (round(w[0], 6), w[1] - w[2], -w[1]))
        first, last = self._shrink(claim, idx, matches, first, last)
        coverage = self._coverage(claim, idx, matches, first, last)
        a, b = idx.spans[first][0], idx.spans[last][1]
        evidence = Evidence(idx.source.text[a:b], a, b)
        return self._verdict(claim, idx, matches, first, last, coverage, evidence)

    @staticmethod
    def _stems(idx: SourceIndex, first: int, last: int) -> set[str]:
        out: set[str] = set()
        for stems in idx.sentence_stems[first:last + 1]:
            out |= stems
        return out

    @staticmethod
    def _numbers(idx: SourceIndex, first: int, last: int) -> list[Number]:
        # The index's own reading (the same numbers terms() finds): comparing a claim with a
        # candidate window must not read every candidate sentence in full.
        return [n for numbers in idx.sentence_numbers[first:last + 1] for n in numbers]

    def _word_cover(self, claim: _Claim, idx: SourceIndex, matches: dict[str, set[str]], first: int,
                    last: int) -> float:
        stems = self._stems(idx, first, last)
        return sum(w for s, w in claim.weights.items() if matches[s] & stems)

    def _coverage(self, claim: _Claim, idx: SourceIndex, matches: dict[str, set[str]], first: int,
                  last: int) -> float:
        got = self._word_cover(claim, idx, matches, first, last)
        if claim.terms.numbers:
            numbers = self._numbers(idx, first, last)
            got += claim.number_weight * sum(1 for n in claim.terms.numbers if _any_number([n], numbers))
        return got / claim.total if claim.total else 0.0

    def _shrink(self, claim: _Claim, idx: SourceIndex, matches: dict[str, set[str]], first: int,
                last: int) -> tuple[int, int]:
        """The shortest passage with the same cover of the claim's *words*: an edge sentence
        that only adds a number ("eight" in the sentence before) is dropped, and the numbers
        are then checked against what is left."""
        words = self._word_cover(claim, idx, matches, first, last)
        while first < last and self._word_cover(claim, idx, matches, first + 1, last) >= words - 1e-9:
            first += 1
        while last > first and self._word_cover(claim, idx, matches, first, last - 1) >= words - 1e-9:
            last -= 1
        return first, last

    def _verdict(self, claim: _Claim, idx: SourceIndex, matches: dict[str, set[str]], first: int, last: int,
                 coverage: float, evidence: Evidence) -> Judgement:
        t = claim.terms
        numbers = self._numbers(idx, first, last)
        score = coverage
        cap: Verdict = "supported"
        reasons: list[str] = []
        missing = [n for n in t.numbers if not _any_number([n], numbers)]
        absent = [n for n in missing if not _any_number([n], idx.all_numbers)]
        # Numbers of the passage the claim does not repeat: where a claim's number is missing,
        # the passage saying another number in its place contradicts it.
        others = [n for n in numbers if not _any_number([n], t.numbers)]
        if absent:
            cap = "unsupported"
            reasons.append(f"the source does not state {_show(absent[0])}")
        elif missing and others:
            cap = "unsupported"
            reasons.append(f"the passage gives {_show(others[0])} where the claim says {_show(missing[0])}")
        elif missing:
            cap = _lower(cap, "partial")
            reasons.append(f"{_show(missing[0])} is stated elsewhere in the source, not beside the rest")
        names = [s for s in t.names if not matches.get(s) and s not in idx.title_stems]
        if names:
            cap = "unsupported"
            score *= 0.8
            reasons.append("the claim names someone or something the source never mentions")
        if _negations_differ(t, idx, matches, first, last):
            cap = "unsupported"
            score *= 0.5
            reasons.append("the claim and the passage disagree on a negation (one says not)")
        verdict: Verdict = ("supported" if score >= self.supported_at
                            else "partial" if score >= self.partial_at else "unsupported")
        verdict = _lower(verdict, cap)
        if not reasons:
            reasons.append(f"{round(coverage * 100)}% of the claim's weighted words are in the passage")
        return Judgement(verdict, round(min(score, 1.0), 4), evidence, "; ".join(reasons),
                         contradicted=cap == "unsupported")


def _negations_differ(t: Terms, idx: SourceIndex, matches: dict[str, set[str]], first: int, last: int) -> bool:
    """Whether the claim and the passage disagree on negation: the negations (odd or even)
    in the claim against those in the part of the passage the claim covers (from a few
    words before its first shared word to its last), so "X is Y, but Z is not W" still
    supports "X is Y", and "X was not denied" does not support "X was denied"."""
    wanted = set().union(*matches.values()) if matches else set()
    seq: list[str | None] = [tok for st in idx.terms_at(first, last) for tok in st.seq]
    hits = [i for i, tok in enumerate(seq) if tok is not None and tok in wanted]
    if not hits:
        return False
    lo, hi = max(0, hits[0] - 3), hits[-1]
    in_passage = sum(1 for tok in seq[lo:hi + 1] if tok is None)
    return in_passage % 2 != t.negations % 2


_ORDER = {"supported": 2, "partial": 1, "unsupported": 0}


def _lower(a: Verdict, b: Verdict) -> Verdict:
    return a if _ORDER[a] <= _ORDER[b] else b


def _any_number(claimed: Sequence[Number], found: Sequence[Number]) -> bool:
    return any(numbers_match(c, f) for c in claimed for f in found)


def _show(n: Number) -> str:
    v = n.value
    return str(int(v)) if v == int(v) else f"{v:g}"


def judge_texts(claim: str, source: str) -> Judgement:
    """Judge one claim against one text (a convenience for callers and tests)."""
    corpus = Corpus([SourceText(1, "", "", source)])
    return LexicalJudge().judge_now(corpus, [(claim, 1)])[0]

