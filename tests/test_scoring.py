"""Hand-computed cases for the benchmark scoring functions."""
from __future__ import annotations

import math

import pytest

from benchmarks.scoring import (
    shingle_accuracy,
    shingle_bootstrap_std,
    shingle_metrics,
    shingle_precision,
    shingle_recall,
    shingle_tp_fp_fn,
    shingles,
    wcxb_f1,
    wcxb_prf,
    wcxb_tokens,
)

# ------------------------------------------------------------------ WCXB


def test_wcxb_tokens_lowercase_word_multiset():
    assert wcxb_tokens("The cat, the HAT! it's") == {"the": 2, "cat": 1, "hat": 1, "it": 1, "s": 1}
    assert wcxb_tokens(None) == {}


def test_wcxb_identical_texts_score_one():
    assert wcxb_f1("Hello world", "hello,  WORLD.") == 1.0


def test_wcxb_partial_overlap():
    # pred: a a b c (4 tokens); gold: a b b d e (5 tokens)
    # multiset intersection: a:1, b:1 -> 2
    # P = 2/4, R = 2/5, F1 = 2*0.5*0.4/0.9 = 4/9
    prf = wcxb_prf("a a b c", "a b b d e")
    assert prf.precision == pytest.approx(0.5)
    assert prf.recall == pytest.approx(0.4)
    assert prf.f1 == pytest.approx(4 / 9)


def test_wcxb_repeated_words_count_as_multiset():
    # pred repeats the one gold word three times: overlap 1, P = 1/3, R = 1
    prf = wcxb_prf("spam spam spam", "spam")
    assert prf.precision == pytest.approx(1 / 3)
    assert prf.recall == 1.0
    assert prf.f1 == pytest.approx(0.5)


def test_wcxb_no_overlap_is_zero():
    assert wcxb_f1("foo bar", "baz qux") == 0.0


def test_wcxb_empty_reference():
    # WCXB: empty gold scores 1.0 for an empty prediction, 0.0 otherwise.
    assert wcxb_f1("", "") == 1.0
    assert wcxb_f1("  ... ", "") == 1.0  # no \w token is empty
    assert wcxb_f1(None, None) == 1.0
    assert wcxb_f1("something", "") == 0.0


def test_wcxb_empty_prediction_with_gold_is_zero():
    prf = wcxb_prf("", "some gold text")
    assert (prf.precision, prf.recall, prf.f1) == (0.0, 0.0, 0.0)


def test_wcxb_unicode_words():
    # \w matches letters of any script; casefolding by str.lower
    assert wcxb_f1("Ünïcode ÉTÉ", "ünïcode été") == 1.0


# ----------------------------------------------------------- scrapinghub


def test_shingles_of_four_tokens():
    assert shingles("a b c d e") == {("a", "b", "c", "d"): 1, ("b", "c", "d", "e"): 1}


def test_shingles_short_and_empty_text():
    assert shingles("a b") == {("a", "b"): 1}
    assert shingles("") == {}
    assert shingles(None) == {}


def test_shingles_keep_case():
    assert shingles("A b c d") != shingles("a b c d")


def test_tp_fp_fn_normalised():
    # true: a b c d e f -> abcd, bcde, cdef
    # pred: a b c d e x -> abcd, bcde, cdex
    # tp = 2, fp = 1, fn = 1 -> normalised by 4
    tp, fp, fn = shingle_tp_fp_fn("a b c d e f", "a b c d e x")
    assert (tp, fp, fn) == pytest.approx((0.5, 0.25, 0.25))
    assert shingle_precision(tp, fp, fn) == pytest.approx(2 / 3)
    assert shingle_recall(tp, fp, fn) == pytest.approx(2 / 3)


def test_tp_fp_fn_counts_duplicates():
    # true a b c d -> abcd
    # pred a b c d a b c d -> abcd, bcda, cdab, dabc, abcd: abcd twice
    # tp = min(1, 2) = 1, fp = 1 + 3 = 4, fn = 0 -> normalised by 5
    tp, fp, fn = shingle_tp_fp_fn("a b c d", "a b c d. a b c d")
    assert (tp, fp, fn) == pytest.approx((1 / 5, 4 / 5, 0.0))


def test_precision_recall_edge_rules():
    assert shingle_precision(0.0, 0.0, 0.0) == 1.0  # fp == fn == 0
    assert shingle_recall(1.0, 0.0, 0.0) == 1.0
    assert shingle_precision(0.0, 0.0, 1.0) == 0.0  # nothing predicted
    assert shingle_recall(0.0, 1.0, 0.0) == 0.0  # nothing true


def test_metrics_are_harmonic_mean_of_mean_precision_and_recall():
    docs = [
        shingle_tp_fp_fn("a b c d e f", "a b c d e x"),  # P = R = 2/3
        shingle_tp_fp_fn("a b c d e", "a b c d e"),  # P = R = 1
        shingle_tp_fp_fn("a b c d e", ""),  # empty pred: excluded from P, R = 0
    ]
    m = shingle_metrics(docs)
    p = (2 / 3 + 1) / 2
    r = (2 / 3 + 1 + 0) / 3
    assert m["precision"] == pytest.approx(p)
    assert m["recall"] == pytest.approx(r)
    assert m["f1"] == pytest.approx(2 * p * r / (p + r))


def test_metrics_not_mean_of_f1():
    # doc1: P = 1, R = 1/2 (true has 2 shingles, pred 1 matching)
    # doc2: P = 1/2, R = 1
    d1 = shingle_tp_fp_fn("a b c d e", "a b c d")
    d2 = shingle_tp_fp_fn("a b c d", "a b c d e")
    m = shingle_metrics([d1, d2])
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx(0.75)  # the mean of the two F1s would be 2/3


def test_accuracy_and_bootstrap():
    assert shingle_accuracy("Hello, world", "hello world") == 0.0
    assert shingle_accuracy("Hello, world", "Hello world!") == 1.0
    docs = [shingle_tp_fp_fn("a b c d e", "a b c d e")] * 3
    std = shingle_bootstrap_std(docs, [1.0, 1.0, 1.0], n_bootstrap=20)
    assert std["f1_std"] == 0.0 and std["accuracy_std"] == 0.0
    assert not math.isnan(std["precision_std"])
