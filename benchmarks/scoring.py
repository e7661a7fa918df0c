"""Scoring functions of the two extraction benchmarks, as each publishes them.

WCXB (Web Content eXtraction Benchmark)
    Word-level F1 per page: ``\\w+`` tokens of the lowercased texts, compared
    as multisets (precision = |pred ∩ gold| / |pred|, recall = |pred ∩ gold| /
    |gold|, with multiset intersection). A page whose gold ``main_content``
    has no token scores 1.0 if the prediction has none either, else 0.0; a
    page with gold text and an empty prediction scores 0.0. The benchmark's
    figure is the plain mean of the per-page F1 (see ``WCXB-README.md``).

Scrapinghub article-extraction-benchmark
    Per article, the texts are cut into ``\\w+`` tokens (case kept: the
    benchmark's regex has IGNORECASE but never lowercases) and into 4-token
    shingles (one shorter shingle if the text has fewer than 4 tokens, none if
    it has no token); shingles are compared as multisets into TP/FP/FN, which
    are normalised to sum to 1. Precision is the mean of the per-article
    precisions over the articles with TP+FP > 0 (an empty prediction does not
    count against precision), recall the mean over the articles with TP+FN >
    0, and F1 is the harmonic mean of those two means, not a mean of per-article
    F1. A precision or recall whose FP and FN are both 0 is 1. The ± figures
    are standard deviations over 1,000 bootstrap resamples of the articles.
"""
from __future__ import annotations

import random
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "PRF",
    "wcxb_tokens",
    "wcxb_prf",
    "wcxb_f1",
    "shingle_tokens",
    "shingles",
    "shingle_tp_fp_fn",
    "shingle_precision",
    "shingle_recall",
    "shingle_metrics",
    "shingle_bootstrap_std",
    "shingle_accuracy",
]

_WORD_RE = re.compile(r"\w+")


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float


# --------------------------------------------------------------------- WCXB


def wcxb_tokens(text: str | None) -> Counter[str]:
    """The multiset of lowercased ``\\w+`` tokens of ``text``."""
    return Counter(_WORD_RE.findall((text or "").lower()))


def wcxb_prf(predicted: str | None, reference: str | None) -> PRF:
    """Word-level precision, recall and F1 of one page, WCXB's way.

    Empty reference: all three are 1.0 for an empty prediction, else 0.0
    (WCXB defines only the F1 there; precision and recall follow it). Empty
    prediction with a non-empty reference: all three are 0.0.
    """
    pred = wcxb_tokens(predicted)
    ref = wcxb_tokens(reference)
    if not ref:
        v = 1.0 if not pred else 0.0
        return PRF(v, v, v)
    if not pred:
        return PRF(0.0, 0.0, 0.0)
    overlap = sum((pred & ref).values())
    p = overlap / sum(pred.values())
    r = overlap / sum(ref.values())
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return PRF(p, r, f1)


def wcxb_f1(predicted: str | None, reference: str | None) -> float:
    """WCXB's per-page score: word-level multiset F1 (see :func:`wcxb_prf`)."""
    return wcxb_prf(predicted, reference).f1


# -------------------------------------------------------------- scrapinghub

TpFpFn = tuple[float, float, float]


def shingle_tokens(text: str | None) -> list[str]:
    """``\\w+`` tokens, case kept (the scrapinghub benchmark does not lowercase)."""
    return _WORD_RE.findall(text or "")


def shingles(text: str | None, n: int = 4) -> Counter[tuple[str, ...]]:
    """The multiset of ``n``-token shingles of ``text``.

    A text with fewer than ``n`` tokens gives one shorter shingle (all its
    tokens); a text without tokens gives none.
    """
    tokens = shingle_tokens(text)
    out: Counter[tuple[str, ...]] = Counter()
    for i in range(max(1, len(tokens) - n + 1)):
        sh = tuple(tokens[i : i + n])
        if sh:
            out[sh] += 1
    return out


def shingle_tp_fp_fn(true: str | None, pred: str | None, n: int = 4) -> TpFpFn:
    """TP, FP and FN over shingles of one article, normalised to sum to 1.

    (All zero when neither text has a token.)
    """
    t = shingles(true, n)
    p = shingles(pred, n)
    tp = float(sum((t & p).values()))
    fp = float(sum((p - t).values()))
    fn = float(sum((t - p).values()))
    s = tp + fp + fn
    if s > 0:
        return (tp / s, fp / s, fn / s)
    return (tp, fp, fn)


def shingle_precision(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    if tp == fp == 0:
        return 0.0
    return tp / (tp + fp)


def shingle_recall(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    if tp == fn == 0:
        return 0.0
    return tp / (tp + fn)


def shingle_metrics(tp_fp_fns: Sequence[TpFpFn]) -> dict[str, float]:
    """Precision, recall and F1 over articles, the scrapinghub benchmark's way."""
    ps = [shingle_precision(*x) for x in tp_fp_fns if x[0] + x[1] > 0]
    rs = [shingle_recall(*x) for x in tp_fp_fns if x[0] + x[2] > 0]
    precision = statistics.mean(ps) if ps else 0.0
    recall = statistics.mean(rs) if rs else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


def shingle_accuracy(true: str | None, pred: str | None) -> float:
    """1.0 when both texts have exactly the same token sequence."""
    return float(shingle_tokens(true) == shingle_tokens(pred))


def shingle_bootstrap_std(
    tp_fp_fns: Sequence[TpFpFn],
    accuracies: Sequence[float] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Standard deviations of the metrics over bootstrap resamples of the articles."""
    n = len(tp_fp_fns)
    if n == 0 or n_bootstrap < 2:
        return {}
    rng = random.Random(seed)
    values: dict[str, list[float]] = {}
    for _ in range(n_bootstrap):
        idx = [rng.randint(0, n - 1) for _ in range(n)]
        for k, v in shingle_metrics([tp_fp_fns[i] for i in idx]).items():
            values.setdefault(k, []).append(v)
        if accuracies is not None:
            values.setdefault("accuracy", []).append(statistics.mean(accuracies[i] for i in idx))
    return {f"{k}_std": statistics.stdev(v) for k, v in sorted(values.items())}


def mean(values: Iterable[float]) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else 0.0
