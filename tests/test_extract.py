"""providers.extract: the recall fallback on real pages, and the basics around it."""
from __future__ import annotations

import gzip
import json
import re
import threading
from pathlib import Path

import pytest

from providers import extract as ex

WCXB = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "wcxb" / "dev"
needs_data = pytest.mark.skipif(not (WCXB / "ground-truth").is_dir(), reason="shared/data/wcxb is not here")


def _fold(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def _page(page_id: str) -> tuple[bytes, dict]:
    gt = json.loads((WCXB / "ground-truth" / f"{page_id}.json").read_text(encoding="utf-8"))
    with gzip.open(WCXB / "html" / f"{page_id}.html.gz", "rb") as f:
        return f.read(), gt


def _word_f1(pred: str, gold: str) -> float:
    from collections import Counter

    p, g = Counter(_fold(pred).split()), Counter(_fold(gold).split())
    tp = sum((p & g).values())
    return 2 * tp / (sum(p.values()) + sum(g.values())) if tp else 0.0


def _main_pass_only(html: bytes, url: str) -> str:
    from trafilatura import load_html

    return ex._run_trafilatura(load_html(html), url, ex._MAIN_OPTIONS)


@needs_data
@pytest.mark.parametrize(
    "page_id",
    [
        "0556",  # a Simple Machines forum thread: balanced mode keeps the first post only
        "0274",  # an electrician's coupon listing: balanced mode keeps one coupon
    ],
)
def test_recall_fallback_recovers_what_the_balanced_pass_drops(page_id):
    html, gt = _page(page_id)
    url, gold = gt["url"], gt["ground_truth"]
    snippets = gold["with"]

    main_only = _main_pass_only(html, url)
    text = ex.extract(html, url).text

    # The balanced pass alone keeps under half of the page's words and misses most snippets...
    from trafilatura import load_html

    assert ex._words(main_only) < ex._RECALL_PAGE_SHARE * ex._page_words(load_html(html))
    assert sum(_fold(s) in _fold(main_only) for s in snippets) <= 1
    # ...the fallback finds them all, without the page's boilerplate.
    assert all(_fold(s) in _fold(text) for s in snippets), [s for s in snippets if _fold(s) not in _fold(text)]
    assert not any(_fold(s) in _fold(text) for s in gold["without"])
    assert _word_f1(text, gold["main_content"]) > 0.9 > 0.5 > _word_f1(main_only, gold["main_content"])


@needs_data
def test_article_keeps_the_balanced_pass():
    # A plain article: the balanced pass keeps most of the page, no second pass.
    html, gt = _page("0001")
    text = ex.extract(html, gt["url"]).text
    assert text == ex._tidy(_main_pass_only(html, gt["url"]))
    assert all(_fold(s) in _fold(text) for s in gt["ground_truth"]["with"])


def test_recall_pass_is_kept_only_when_clearly_longer(monkeypatch):
    calls: list[bool] = []
    recall_text = "a b c d e f g"

    def fake(tree, url, options):
        calls.append(options["favor_recall"])
        return recall_text if options["favor_recall"] else "a b c d e f"

    monkeypatch.setattr(ex, "_run_trafilatura", fake)
    page = "<html><body><p>" + "word " * 100 + "</p></body></html>"
    # 6 words of a 100-word page: the recall pass runs, but 7 < 1.2 x 6 words: not kept.
    assert ex.extract(page).text == "a b c d e f"
    assert calls == [False, True]
    recall_text = "a b c d e f g h"  # 8 >= 7.2: kept
    assert ex.extract(page).text == recall_text


def test_recall_pass_replaces_an_empty_main_pass(monkeypatch):
    monkeypatch.setattr(ex, "_run_trafilatura", lambda tree, url, o: "found it" if o["favor_recall"] else "")
    assert ex.extract("<html><body><p>found it</p><p>other</p></body></html>").text == "found it"


def test_no_recall_pass_when_the_main_pass_covers_the_page(monkeypatch):
    calls: list[bool] = []

    def fake(tree, url, options):
        calls.append(options["favor_recall"])
        return "alpha beta gamma"

    monkeypatch.setattr(ex, "_run_trafilatura", fake)
    assert ex.extract("<html><body><p>alpha beta gamma</p><p>delta</p></body></html>").text == "alpha beta gamma"
    assert calls == [False]


def test_page_words_skip_scripts_and_styles():
    from trafilatura import load_html

    tree = load_html(
        "<html><head><title>t</title></head><body><script>var a = 1;</script><style>p{x:y}</style>"
        "<p>one two</p><div>three</div></body></html>"
    )
    assert ex._page_words(tree) == 3


def test_empty_and_broken_input_never_raise():
    assert ex.extract(b"").text == ""
    assert ex.extract("   ").text == ""
    assert ex.extract(b"\x00\xff\xfe").text == ""
    got = ex.extract("<html><head><title>Only a title</title></head><body></body></html>")
    assert got.title == "Only a title" and got.text == ""


def test_extraction_is_serialized_behind_the_lock(monkeypatch):
    # trafilatura/lxml once crashed with two threads parsing at once: extract holds a lock.
    assert isinstance(ex._PARSE_LOCK, type(threading.Lock()))
    seen: list[bool] = []
    real = ex._extract

    def spy(html, url):
        seen.append(ex._PARSE_LOCK.locked())
        return real(html, url)

    monkeypatch.setattr(ex, "_extract", spy)
    ex.extract("<html><body><p>hello there, world</p></body></html>")
    assert seen == [True]
