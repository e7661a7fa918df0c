"""Each provider's native citations -> character-offset url_citation annotations.

Text with accents, CJK and emoji before and inside the cited spans, so that
a byte-for-character mistake fails.
"""
from __future__ import annotations

import json

from grounding.native_citations import (anthropic_annotations, byte_to_char_offsets, gemini_annotations,
                                        groq_annotations, groq_queries, locate, openai_annotations,
                                        perplexity_annotations, xai_annotations)

CONTENT = "Le café crème est né à Paris ☕. 東京は日本の首都です。 Emoji 🎉 end."
CAFE = "Le café crème est né à Paris ☕."
TOKYO = "東京は日本の首都です。"


def cited(content, annotations):
    return [(content[a["url_citation"]["start_index"]:a["url_citation"]["end_index"]], a["url_citation"]["url"])
            for a in annotations]


def byte_span(text, part):
    start = text.encode().index(part.encode())
    return start, start + len(part.encode())


def test_byte_to_char_table():
    table = byte_to_char_offsets("é☕a")
    assert table == [0, 0, 1, 1, 1, 2, 3]


def test_gemini_bytes_and_missing_start_index():
    s2, e2 = byte_span(CONTENT, TOKYO)
    metadata = {
        "groundingChunks": [{"web": {"uri": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AAA",
                                     "title": "example.fr"}},
                            {"web": {"uri": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/BBB",
                                     "title": "example.jp"}}],
        "groundingSupports": [
            {"segment": {"endIndex": len(CAFE.encode()), "text": CAFE}, "groundingChunkIndices": [0]},  # start 0 omitted
            {"segment": {"startIndex": s2, "endIndex": e2, "text": TOKYO}, "groundingChunkIndices": [1, 0]},
        ],
    }
    found = cited(CONTENT, gemini_annotations(CONTENT, metadata))
    assert found == [(CAFE, metadata["groundingChunks"][0]["web"]["uri"]),
                     (TOKYO, metadata["groundingChunks"][1]["web"]["uri"]),
                     (TOKYO, metadata["groundingChunks"][0]["web"]["uri"])]
    titles = [a["url_citation"]["title"] for a in gemini_annotations(CONTENT, metadata)]
    assert titles == ["example.fr", "example.jp", "example.fr"]


def test_gemini_character_offsets_are_recovered_by_text():
    start = CONTENT.index(TOKYO)  # a provider counting characters, not bytes
    metadata = {"groundingChunks": [{"web": {"uri": "https://x.example/", "title": "x.example"}}],
                "groundingSupports": [{"segment": {"startIndex": start, "endIndex": start + len(TOKYO),
                                                   "text": TOKYO}, "groundingChunkIndices": [0]}]}
    assert cited(CONTENT, gemini_annotations(CONTENT, metadata)) == [(TOKYO, "https://x.example/")]


def test_gemini_bad_indices_are_skipped():
    metadata = {"groundingChunks": [], "groundingSupports": [{"segment": {"endIndex": 5}, "groundingChunkIndices": [3]}]}
    assert gemini_annotations(CONTENT, metadata) == []
    assert gemini_annotations(CONTENT, None) == []


def test_anthropic_cited_text_is_located():
    citations = [{"type": "web_search_result_location", "url": "https://a.example/cafe", "title": "Café",
                  "cited_text": "café crème est né à Paris"},
                 {"type": "web_search_result_location", "url": "https://b.example/tokyo", "title": "",
                  "cited_text": "東京は日本の首都です"}]
    found = cited(CONTENT, anthropic_annotations(CONTENT, citations))
    assert found == [("café crème est né à Paris", "https://a.example/cafe"),
                     ("東京は日本の首都です", "https://b.example/tokyo")]
    assert anthropic_annotations(CONTENT, citations)[1]["url_citation"]["title"] == "b.example"


def test_anthropic_block_text_wins_and_unlocatable_is_dropped():
    citations = [[{"url": "https://a.example/", "cited_text": "source wording not in the answer",
                   "block_text": TOKYO}],
                 [{"url": "https://c.example/", "cited_text": "nowhere to be found"}]]
    assert cited(CONTENT, anthropic_annotations(CONTENT, citations)) == [(TOKYO, "https://a.example/")]


def test_xai_flat_annotations_are_nested():
    start = CONTENT.index("Emoji 🎉")
    flat = [{"type": "url_citation", "url": "https://x.ai/e", "title": "E", "start_index": start,
             "end_index": start + len("Emoji 🎉")},
            {"type": "url_citation", "url": "https://x.ai/bad", "start_index": 500, "end_index": 600}]
    assert cited(CONTENT, xai_annotations(CONTENT, flat)) == [("Emoji 🎉", "https://x.ai/e")]


def test_openai_annotations_kept_when_they_fit():
    ann = [{"type": "url_citation", "url_citation": {"url": "https://o.example/", "title": "O",
                                                     "start_index": 0, "end_index": len(CAFE)}},
           {"type": "url_citation", "url_citation": {"url": "https://o.example/2", "title": "O",
                                                     "start_index": 10, "end_index": 10}}]
    assert cited(CONTENT, openai_annotations(CONTENT, ann)) == [(CAFE, "https://o.example/")]


def test_perplexity_markers_and_citation_list():
    content = "Le café est né à Paris ☕ [1]. 東京は首都です [2][1]."
    found = cited(content, perplexity_annotations(content, ["https://p.example/1", "https://p.example/2"],
                                                  [{"url": "https://p.example/2", "title": "Tokyo"}]))
    assert found[0] == ("Le café est né à Paris ☕ [1]", "https://p.example/1")
    assert ("東京は首都です [2][1]", "https://p.example/2") in found and len(found) == 3


def test_locate_is_whitespace_and_case_tolerant():
    assert locate("A  quick\nbrown fox", "a quick brown") == (0, 14)
    assert locate("abc", "") is None and locate("abc", "zzz") is None


GROQ_RESULTS = [{"title": "Café ☕ history", "url": "https://g.example/cafe", "content": "…", "score": 0.9},
                {"title": "東京", "url": "https://g.example/tokyo", "content": "…", "score": 0.8}]
GROQ_PAGE = ("[0] café tokyo\n**viewing lines [0 - 6] of 6**\n\n"
             "L0: # Search Results\nL1: \nL2:   * 【0†Café ☕ history†g.example】\nL3: Le café est né à Paris.\n"
             "L4:   * 【1†東京†g.example】\nL5: 東京は首都です。\nL6: ")


def groq_tool(**changes):
    tool = {"index": 0, "type": "browser.search", "arguments": json.dumps({"query": "café tokyo"}),
            "output": GROQ_PAGE, "search_results": {"results": GROQ_RESULTS}}
    return {**tool, **changes}


def test_groq_line_markers_resolve_through_the_search_page():
    content = "Le café 🎉 est né à Paris.【0†L2-L3】 東京は首都です 🗼。【0†L5】 Fin【0†L3-L4】."
    found = cited(content, groq_annotations(content, [groq_tool()]))
    assert found == [("Le café 🎉 est né à Paris.【0†L2-L3】", "https://g.example/cafe"),  # link + snippet lines
                     ("東京は首都です 🗼。【0†L5】", "https://g.example/tokyo"),  # a snippet line: the link above it
                     ("Fin【0†L3-L4】", "https://g.example/cafe"),  # a range over two entries: both
                     ("Fin【0†L3-L4】", "https://g.example/tokyo")]
    assert groq_annotations(content, [groq_tool()])[0]["url_citation"]["title"] == "Café ☕ history"


def test_groq_markers_that_resolve_to_nothing_are_dropped():
    content = "Un.【7†L2-L3】 Deux.【0†L60】 Trois.【0†L0】 Quatre.【0†Nowhere†x.example】"
    assert groq_annotations(content, [groq_tool()]) == []
    assert groq_annotations("Un.【0†L2】", []) == []
    no_page = groq_tool(output=None)  # no page to read lines from: several results are ambiguous
    assert groq_annotations("Un.【0†L2】", [no_page]) == []
    single = groq_tool(output=None, search_results={"results": GROQ_RESULTS[:1]})
    assert cited("Un.【0†L2】", groq_annotations("Un.【0†L2】", [single])) == [("Un.【0†L2】", "https://g.example/cafe")]


def test_groq_copied_links_and_markdown_links():
    content = "Tokyo est la capitale 【1†東京†g.example】. Paris aussi ([g.example](https://g.example/cafe))."
    found = cited(content, groq_annotations(content, [groq_tool()]))
    assert ("Tokyo est la capitale 【1†東京†g.example】", "https://g.example/tokyo") in found
    assert any(url == "https://g.example/cafe" and text.endswith("(https://g.example/cafe)") for text, url in found)


def test_groq_cursor_is_the_executed_tool_index():
    opened = {"index": 1, "type": "browser.open", "arguments": json.dumps({"id": 1, "cursor": 0}),
              "output": "[1] 東京 (https://g.example/tokyo)\nL0: 東京は首都です。",
              "browser_results": [{"title": "東京", "url": "https://g.example/tokyo"}]}
    content = "東京は首都です。【1†L0】"
    assert cited(content, groq_annotations(content, [groq_tool(), opened])) == [(content, "https://g.example/tokyo")]
    assert groq_queries([groq_tool(), opened, groq_tool(type="search", arguments="not json")]) == ["café tokyo"]


def test_groq_short_marker_with_many_sources_keeps_what_fits():
    results = [{"title": f"T{i}", "url": f"https://g.example/{i}"} for i in range(12)]
    page = "L0: " + " ".join(f"【{i}†T{i}】" for i in range(12))
    content = "Tout.【0†L0】"
    found = groq_annotations(content, [groq_tool(output=page, search_results={"results": results})])
    assert 1 <= len(found) < 12 and all(a["url_citation"]["end_index"] == len(content) for a in found)
