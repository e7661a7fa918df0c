"""A model that copies its prompt's source tags into the answer: the tags never reach the caller,
streamed or not, the citations still land, and the metadata says what was removed."""
from __future__ import annotations

import pytest

import grounding
from grounding.leaks import TagScrubber, scrub

QUESTION = [{"role": "user", "content": "nutrition trends for fall"}]


def _pieces(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_tags_split_across_pieces_are_removed_and_the_rest_kept(size):
    text = 'Intro <source id="1" url="https://a.example/x?a=1&b=2" title="A">claim [1]</source> then x < 5 <s'
    scrubber = TagScrubber()
    out = "".join(scrubber.feed(p) for p in _pieces(text, size)) + scrubber.flush()
    assert out == "Intro claim [1] then x < 5 <s" and scrubber.removed == 2


def test_an_unfinished_tag_at_the_end_is_dropped_and_plain_angles_are_text():
    assert scrub('Answer. <source id="2" url="https://b.example/') == ("Answer. ", 1)
    assert scrub("if a<b and b>c: <sources> </sources>") == ("if a<b and b>c:  ", 2)
    assert scrub("<sourcery> stays") == ("<sourcery> stays", 0)


@pytest.mark.parametrize("stream", [False, True])
def test_a_leaky_model_answers_without_tags(fake_llm, fake_search, fake_web, stream):
    result = grounding.completion(model="openai/fake-leaky", api_base=f"{fake_llm.url}/v1", api_key="sk-test",
                                  messages=QUESTION, web_search={"engine": "searxng", "max_results": 2},
                                  stream=stream)
    if stream:
        chunks = list(result)
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
        annotations = final.choices[0].delta.annotations or []
        meta = chunks[-1].metadata
    else:
        content = result.choices[0].message.content
        annotations = result.choices[0].message.annotations or []
        meta = result.metadata
    assert "<source" not in content and "</source>" not in content and "[1]" in content
    assert annotations and all(0 <= a.url_citation.start_index < a.url_citation.end_index <= len(content)
                               for a in annotations)
    assert any("copied 4 source tag(s)" in w for w in meta.warnings), meta.warnings
