"""Tests for grounding.citations: markers, links, non-citations, spans, inference, fuzz."""
from __future__ import annotations

import random

import pytest

from grounding.citations import CitationResult, SourceRef, annotate

SOURCES = [
    SourceRef(1, "https://en.wikipedia.org/wiki/Paris", "Paris - Wikipedia",
              "Paris is the capital and most populous city of France, with an estimated "
              "population of 2,102,650 residents in January 2023."),
    SourceRef(2, "https://www.example.com/berlin/", "",
              "Berlin is the capital and largest city of Germany, by both area and population."),
    SourceRef(3, "http://news.example.org/article?id=7#top", "News",
              "The Eiffel Tower was completed in 1889 for the World's Fair in Paris."),
]


def cites(content: str, sources=SOURCES, **kw) -> list[tuple[str, int]]:
    """(cited text, source id) for each annotation, in annotation order."""
    result = annotate(content, sources, **kw)
    check_invariants(content, result)
    by_url = {s.url: s.id for s in sources}
    return [(content[a["url_citation"]["start_index"]:a["url_citation"]["end_index"]],
             by_url[a["url_citation"]["url"]]) for a in result.annotations]


def check_invariants(content: str, result: CitationResult) -> None:
    for a in result.annotations:
        assert a["type"] == "url_citation"
        u = a["url_citation"]
        assert set(u) == {"url", "title", "start_index", "end_index"}
        start, end = u["start_index"], u["end_index"]
        assert 0 <= start < end <= len(content)
        span = content[start:end]
        assert span == span.strip()
    keys = [(a["url_citation"]["start_index"], a["url_citation"]["url"]) for a in result.annotations]
    assert [k[0] for k in keys] == sorted(k[0] for k in keys)


# 1. Numbered markers -------------------------------------------------------------------

@pytest.mark.parametrize("content, expected", [
    ("Paris is the capital [1][3].", [("Paris is the capital [1][3]", 1), ("Paris is the capital [1][3]", 3)]),
    ("Paris is the capital [1] [3].", [("Paris is the capital [1] [3]", 1), ("Paris is the capital [1] [3]", 3)]),
    ("Paris is the capital [1, 2].", [("Paris is the capital [1, 2]", 1), ("Paris is the capital [1, 2]", 2)]),
    ("Paris is big [1,2,3].", [("Paris is big [1,2,3]", 1), ("Paris is big [1,2,3]", 2), ("Paris is big [1,2,3]", 3)]),
    ("Paris is big [1-3].", [("Paris is big [1-3]", 1), ("Paris is big [1-3]", 2), ("Paris is big [1-3]", 3)]),
    ("Paris is big [2–3].", [("Paris is big [2–3]", 2), ("Paris is big [2–3]", 3)]),
    ("Paris is big 【1】.", [("Paris is big 【1】", 1)]),
    ("Paris is big 【2†source】.", [("Paris is big 【2†source】", 2)]),
    ("Paris is big [^1].", [("Paris is big [^1]", 1)]),
    ("Berlin is big [source 2].", [("Berlin is big [source 2]", 2)]),
    ("Berlin is big [Source 2].", [("Berlin is big [Source 2]", 2)]),
    ("Berlin is big [Sources: 1, 2].", [("Berlin is big [Sources: 1, 2]", 1), ("Berlin is big [Sources: 1, 2]", 2)]),
    ("Same source twice [1][1].", [("Same source twice [1][1]", 1)]),
])
def test_numbered_markers(content, expected):
    assert cites(content) == expected


def test_unknown_ids_are_unmatched_once_per_occurrence():
    content = "Paris is the capital [9]. Berlin too [1, 9]. Again [9]."
    result = annotate(content, SOURCES)
    assert result.unmatched == ["[9]", "[1, 9]", "[9]"]
    assert cites(content) == [("Berlin too [1, 9]", 1)]
    assert result.inferred == 0


def test_cited_ids_in_first_citation_order_and_annotations_sorted():
    content = "Eiffel [3]. Paris [2][1]. Eiffel again [3]."
    result = annotate(content, SOURCES)
    assert result.cited_ids == [3, 2, 1]
    assert cites(content) == [("Eiffel [3]", 3), ("Paris [2][1]", 1), ("Paris [2][1]", 2),
                              ("Eiffel again [3]", 3)]


def test_title_falls_back_to_host():
    result = annotate("Berlin is big [2]. Paris is big [1].", SOURCES)
    titles = [a["url_citation"]["title"] for a in result.annotations]
    assert titles == ["www.example.com", "Paris - Wikipedia"]


# 2. Links ------------------------------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://en.wikipedia.org/wiki/Paris",
    "http://en.wikipedia.org/wiki/Paris",
    "https://en.wikipedia.org/wiki/Paris/",
    "https://EN.Wikipedia.ORG/wiki/Paris#History",
    "https://www.en.wikipedia.org/wiki/Paris",
])
def test_markdown_link_matches_leniently(url):
    content = f"Paris is the capital of [France]({url}). Next sentence."
    assert cites(content) == [(f"Paris is the capital of [France]({url})", 1)]


def test_link_path_and_query_are_exact():
    content = ("Paris [a](https://en.wikipedia.org/wiki/paris). "
               "News [b](https://news.example.org/article?id=8). "
               "News [c](https://news.example.org/article?id=7).")
    result = annotate(content, SOURCES)
    assert result.unmatched == ["https://en.wikipedia.org/wiki/paris", "https://news.example.org/article?id=8"]
    assert cites(content) == [("News [c](https://news.example.org/article?id=7)", 3)]


def test_autolink_and_bare_parenthesised_url():
    content = "Berlin is in Germany (https://example.com/berlin). The tower is old <https://news.example.org/article?id=7>."
    assert cites(content) == [("Berlin is in Germany (https://example.com/berlin)", 2),
                              ("The tower is old <https://news.example.org/article?id=7>", 3)]


def test_link_with_marker_text_counts_once():
    content = "Paris is the capital [1](https://en.wikipedia.org/wiki/Paris). Berlin [[2]](https://example.com/berlin)."
    result = annotate(content, SOURCES)
    assert cites(content) == [("Paris is the capital [1](https://en.wikipedia.org/wiki/Paris)", 1),
                              ("Berlin [[2]](https://example.com/berlin)", 2)]
    assert result.unmatched == []


def test_unfetched_link_is_unmatched():
    content = "Paris is nice [blog](https://not-fetched.example/x). Berlin is big [2]."
    result = annotate(content, SOURCES)
    assert result.unmatched == ["https://not-fetched.example/x"]
    assert cites(content) == [("Berlin is big [2]", 2)]


def test_url_with_parentheses():
    sources = [SourceRef(1, "https://en.wikipedia.org/wiki/Python_(programming_language)", "Python")]
    content = "Python is a language ([wiki](https://en.wikipedia.org/wiki/Python_(programming_language)))."
    assert cites(content, sources) == [
        ("Python is a language ([wiki](https://en.wikipedia.org/wiki/Python_(programming_language))", 1)]


def test_link_followed_by_marker_shares_span():
    content = "Paris is old, [Paris](https://en.wikipedia.org/wiki/Paris) [3]."
    assert cites(content) == [("Paris is old, [Paris](https://en.wikipedia.org/wiki/Paris) [3]", 1),
                              ("Paris is old, [Paris](https://en.wikipedia.org/wiki/Paris) [3]", 3)]


def test_a_pointer_is_not_a_claim():
    content = "See [Paris](https://en.wikipedia.org/wiki/Paris) [3]."
    result = annotate(content, SOURCES)
    assert result.annotations == [] and len(result.dropped) == 1
    assert result.dropped[0]["text"] == "[Paris](https://en.wikipedia.org/wiki/Paris) [3]"


# 3. Things that are not citations ------------------------------------------------------

@pytest.mark.parametrize("content", [
    "Use `a[1]` to get the first item.",
    "Like this:\n```python\nx = [1]\nprint(x[1])\n```\n",
    "Like this:\n~~~\n[2]\n~~~",
    "Unclosed fence:\n```\nvalue [1]",
    "Double ``code with ` and [1]`` here.",
    "Read arr[1] and x[0] and m[1][2].",
    "![chart [1]](https://en.wikipedia.org/wiki/Paris)",
    "- [ ] todo\n- [x] done",
    "In [2024] and [1999] things happened.",
    "The interval [0, 1] is closed.",
    "[1]: https://en.wikipedia.org/wiki/Paris",
    "[^1]: Paris - Wikipedia",
    "A link [here](/relative/path) and [there](mailto:a@b.c).",
])
def test_not_citations(content):
    result = annotate(content, SOURCES, infer=False)
    assert result.annotations == [] and result.unmatched == []


def test_year_is_a_citation_when_it_is_a_source_id():
    sources = [SourceRef(2024, "https://y.example/", "Y")]
    assert cites("It happened [2024].", sources) == [("It happened [2024]", 2024)]


def test_glued_marker_after_punctuation_quote_or_paren_is_a_citation():
    assert cites('He said "Paris"[1]. It is old (1889)[3]. Berlin is big,[2] really.') == [
        ('He said "Paris"[1]', 1), ("It is old (1889)[3]", 3), ("Berlin is big,[2]", 2)]


def test_inline_code_does_not_hide_later_markers():
    content = "Call `f(x)` first. Paris is the capital [1]. A stray ` backtick [2]."
    assert cites(content) == [("Paris is the capital [1]", 1), ("A stray ` backtick [2]", 2)]


# 4. Spans ------------------------------------------------------------------------------

def test_multiple_claims_per_sentence():
    content = "A is true [1] and B is false [2]."
    assert cites(content) == [("A is true [1]", 1), ("and B is false [2]", 2)]
    content = "Paris is in France [1], while Berlin is in Germany [2]; both are capitals [1][2]."
    assert cites(content) == [("Paris is in France [1]", 1), ("while Berlin is in Germany [2]", 2),
                              ("both are capitals [1][2]", 1), ("both are capitals [1][2]", 2)]


def test_sentence_boundaries():
    content = "Intro sentence here. Paris is the capital [1]! Is Berlin big? Yes it is [2]. End."
    assert cites(content) == [("Paris is the capital [1]", 1), ("Yes it is [2]", 2)]


@pytest.mark.parametrize("content, span", [
    ("First. Paris is the capital. [1]", "Paris is the capital. [1]"),
    ("First. Paris is the capital.[1]", "Paris is the capital.[1]"),
    ('First. He said "Paris is the capital." [1]', 'He said "Paris is the capital." [1]'),
    ("First. Is Paris the capital? [1] Yes.", "Is Paris the capital? [1]"),
])
def test_marker_after_the_period_cites_that_sentence(content, span):
    assert cites(content) == [(span, 1)]


@pytest.mark.parametrize("content, span", [
    ("Cities, e.g. Paris, are big [1].", "Cities, e.g. Paris, are big [1]"),
    ("Before. The U.S. Army and Dr. Smith agree [1].", "The U.S. Army and Dr. Smith agree [1]"),
    ("Before. J. K. Rowling lived there [1].", "J. K. Rowling lived there [1]"),
    ("Before. Version 3.5 costs 2. 5 dollars [1].", "Version 3.5 costs 2. 5 dollars [1]"),
    ("It grew. by a lot [1].", "It grew. by a lot [1]"),
])
def test_abbreviations_and_decimals_do_not_split(content, span):
    assert cites(content) == [(span, 1)]


@pytest.mark.parametrize("content, span", [
    ("Intro:\n- Paris is the capital [1]\n- Other", "Paris is the capital [1]"),
    ("Intro:\n  * Paris is the capital [1]", "Paris is the capital [1]"),
    ("Intro:\n1. Paris is the capital [1]", "Paris is the capital [1]"),
    ("Intro\n## Paris is the capital [1]", "Paris is the capital [1]"),
    ("> Paris is the capital [1]", "Paris is the capital [1]"),
    ("Line one without stop\nParis is the capital [1]", "Paris is the capital [1]"),
    ("| City | Paris is the capital [1] |", "Paris is the capital [1]"),
])
def test_line_starts(content, span):
    assert cites(content) == [(span, 1)]


def test_cjk():
    content = "巴黎是法国的首都。[1]"
    assert cites(content) == [("巴黎是法国的首都。[1]", 1)]
    content = "巴黎是法国的首都[1]。柏林是德国的首都【2】。"
    assert cites(content) == [("巴黎是法国的首都[1]", 1), ("柏林是德国的首都【2】", 2)]


def test_emoji_and_accents_before_the_marker():
    content = "Bonjour 👋🏽! Le café crème à Paris est délicieux 😍🇫🇷 [1]. Ça va ✅ [2]."
    assert cites(content) == [("Le café crème à Paris est délicieux 😍🇫🇷 [1]", 1), ("Ça va ✅ [2]", 2)]
    result = annotate(content, SOURCES)
    first = result.annotations[0]["url_citation"]
    assert (first["start_index"], first["end_index"]) == (content.index("Le café"), content.index("[1]") + 3)


def test_marker_at_very_start_cites_its_sentence():
    assert cites("[1] Paris is the capital. Berlin too [2].") == [("[1] Paris is the capital.", 1),
                                                                   ("Berlin too [2]", 2)]


def test_marker_alone_after_a_sentence_cites_that_sentence():
    assert cites("Paris is the capital.\n\n[1][3]") == [("Paris is the capital.\n\n[1][3]", 1),
                                                          ("Paris is the capital.\n\n[1][3]", 3)]


@pytest.mark.parametrize("content", ["[2]", "- [1]", "— [1]", "claim [1].", "Claim [1][2].", "See [1].",
                                     "Sources: [1], [2]", "(source [2])"])
def test_markers_without_a_claim_give_no_annotation(content):
    result = annotate(content, SOURCES)
    assert result.annotations == [] and result.dropped, result


def test_marker_right_after_previous_group_shares_its_span():
    assert cites("A is true [1]. [2]") == [("A is true [1]", 1), ("A is true [1]. [2]", 2)]


def test_spans_skip_code_periods_but_keep_code_text():
    content = "Intro. `x.y. Z` returns 3 [1]."
    assert cites(content) == [("`x.y. Z` returns 3 [1]", 1)]


# 5. Inference --------------------------------------------------------------------------

INFER_TEXT = ("Paris is the capital of France, with about 2.1 million residents. "
              "The weather there is often grey and quite rainy. Yes it is. "
              "The Eiffel Tower was completed in 1889.")


def test_inference_attributes_supported_sentences_only():
    result = annotate(INFER_TEXT, SOURCES)
    assert cites(INFER_TEXT) == [
        ("Paris is the capital of France, with about 2.1 million residents.", 1),
        ("The Eiffel Tower was completed in 1889.", 3)]
    assert result.inferred == 2
    assert result.cited_ids == [1, 3]


def test_inference_off():
    result = annotate(INFER_TEXT, SOURCES, infer=False)
    assert (result.annotations, result.cited_ids, result.inferred) == ([], [], 0)


def test_inference_needs_three_content_words():
    assert cites("Paris capital.", [SourceRef(1, "https://a.example", "A", "Paris capital")]) == []


def test_no_inference_when_there_are_explicit_citations():
    result = annotate(INFER_TEXT + " Berlin is big [2].", SOURCES)
    assert result.inferred == 0 and result.cited_ids == [2]
    result = annotate(INFER_TEXT + " Berlin is big [9].", SOURCES)
    assert result.annotations == [] and result.unmatched == ["[9]"]


def test_inference_still_runs_beside_an_unmatched_link():
    result = annotate(INFER_TEXT + " See [blog](https://other.example/).", SOURCES)
    assert result.inferred == 2 and result.unmatched == ["https://other.example/"]


def test_inference_ignores_code():
    content = "```\nParis is the capital of France with residents\n```"
    assert cites(content) == []


# 7. Never raise ------------------------------------------------------------------------

ALPHABET = list("abc XYZ.,;:!?\n\t[]()<>`~#*-_^|'\"0123456789") + [
    "[1]", "[2, 3]", "[9]", "[1-3]", "【1】", "```", "https://", "en.wikipedia.org/wiki/Paris",
    "](", "é", "巴黎", "。", "😍", "🇫🇷", "\u200b", "[^", "[source ", "e.g.", "!["]


@pytest.mark.parametrize("seed", range(300))
def test_fuzz_never_raises_and_spans_are_sane(seed):
    rng = random.Random(seed)
    content = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 120)))
    for infer in (True, False):
        result = annotate(content, SOURCES, infer=infer)
        check_invariants(content, result)
        for a in result.annotations:
            span = content[a["url_citation"]["start_index"]:a["url_citation"]["end_index"]]
            assert result.inferred or any(ch in span for ch in "]】)>")
        assert set(result.cited_ids) <= {1, 2, 3}


def test_pathological_inputs():
    for content in ["", " ", "[", "]", "[]", "`" * 1000, "[1]" * 500, "a." * 2000,
                    "(" + "https://x" * 100, "http://[::1", "[x](http://[::1)", "\x00[1]\x00"]:
        check_invariants(content, annotate(content, SOURCES))
    sources = [SourceRef(1, "http://[::1", "", "text"), SourceRef(2, "", "", "")]
    check_invariants("x [1] [2] (http://[::1)", annotate("x [1] [2] (http://[::1)", sources))


def test_glued_to_code_is_indexing_but_glued_to_a_word_is_a_citation():
    assert cites("Paris is the capital of France[1][2].") == [
        ("Paris is the capital of France[1][2]", 1), ("Paris is the capital of France[1][2]", 2)]
    assert cites("Use row_2[1] or myList[1] or arr[1].") == []
    assert cites("Paris is the capital[^1].") == [("Paris is the capital[^1]", 1)]
    assert cites("Berlin is big[source 2].") == [("Berlin is big[source 2]", 2)]
    assert cites("Le café[1] est bon.") == [("Le café[1]", 1)]


def test_reference_definition_needs_a_url_or_number_label():
    content = "[Note]: Paris is the capital [1].\n[ref]: https://en.wikipedia.org/wiki/Paris [3]"
    assert cites(content) == [("[Note]: Paris is the capital [1]", 1)]


def test_sentence_end_words_that_are_not_abbreviations():
    assert cites("The answer is no. Paris is the capital [1].") == [("Paris is the capital [1]", 1)]
    assert cites("So do I. Paris is the capital [1].") == [("Paris is the capital [1]", 1)]
    assert cites("Done. `code` [1]") == [("`code` [1]", 1)]


def test_windows_newlines():
    content = "Intro line\r\n- Paris is the capital [1]\r\n"
    assert cites(content) == [("Paris is the capital [1]", 1)]


def test_parenthesized_link_after_the_period_cites_its_own_sentence():
    """gpt-oss (Groq) writes ``Claim. ([site](url))``: each span is its own sentence."""
    text = "Paris is in France. ([a](https://a.example/1)) Tokyo is in Japan. ([b](https://b.example/2))"
    refs = [SourceRef(1, "https://a.example/1", "a", ""), SourceRef(2, "https://b.example/2", "b", "")]
    found = annotate(text, refs, infer=False).annotations
    spans = [text[a["url_citation"]["start_index"]:a["url_citation"]["end_index"]] for a in found]
    assert spans == ["Paris is in France. ([a](https://a.example/1)", "Tokyo is in Japan. ([b](https://b.example/2)"]
