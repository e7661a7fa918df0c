"""The built-in judge's source index, on real pages: the shortcuts it takes to stay cheap
(numbers read once per sentence, loose matches looked up by prefix) give what the slow,
obvious reading gives, and the verdicts they feed are right."""
from __future__ import annotations

import re

import pytest

from grounding.verify.lexical import Corpus, LexicalJudge, SourceIndex
from grounding.verify.text import sentences, terms
from grounding.verify.types import SourceText
from providers.extract import extract
from tests.fakes.web import page_html

PAGES = ["/wcxb/0001", "/wcxb/0002", "/wcxb/0003"]


@pytest.fixture(scope="module")
def sources() -> list[SourceText]:
    out = []
    for i, path in enumerate(PAGES, 1):
        url = "https://pages.example" + path
        page = extract(page_html(path.strip("/")), url)
        out.append(SourceText(i, url, page.title or "", page.text))
    return out


@pytest.mark.parametrize("n", range(len(PAGES)))
def test_each_sentence_numbers_are_what_a_full_reading_finds(sources, n):
    idx = SourceIndex.build(sources[n])
    assert len(idx.sentence_numbers) == len(idx.spans) > 10
    for (a, b), numbers in zip(idx.spans, idx.sentence_numbers):
        assert numbers == terms(sources[n].text[a:b]).numbers
    assert sum(map(len, idx.sentence_numbers)) == len(idx.all_numbers)


def test_loose_matches_by_prefix_are_those_of_a_scan_of_every_stem(sources):
    indexes = [SourceIndex.build(s) for s in sources]
    # every long stem of every page, cut short or lengthened: prefixes of others, and words the page lacks
    probes = {s for idx in indexes for s in idx.all_stems if len(s) >= 6}
    probes |= {s[:-1] for s in probes if len(s) > 6} | {s + "ing" for s in list(probes)[:300]}
    found = 0
    for idx in indexes:
        for stem in probes:
            want = set() if stem in idx.where else {
                s for s in idx.all_stems if len(s) >= 6 and (s.startswith(stem) or stem.startswith(s))}
            got = idx.near(stem)
            assert got == want, stem
            found += bool(got)
    assert found > 100  # the probes did reach loose matches


def test_verdicts_on_a_real_page(sources):
    page = sources[1]
    spans = sentences(page.text)
    with_number = next(page.text[a:b] for a, b in spans
                       if re.search(r"\b\d{2,4}\b", page.text[a:b]) and len(page.text[a:b].split()) >= 8)
    number = re.search(r"\b\d{2,4}\b", with_number).group(0)
    changed = with_number.replace(number, str(int(number) + 7), 1)
    corpus = Corpus(sources)
    quoted, altered, elsewhere = LexicalJudge().judge_now(corpus, [(with_number, 2), (changed, 2), (with_number, 1)])
    assert quoted.verdict == "supported" and quoted.evidence is not None
    assert with_number in page.text[quoted.evidence.start:quoted.evidence.end]
    assert altered.verdict == "unsupported" and str(int(number) + 7) in altered.reason
    assert elsewhere.verdict != "supported"
