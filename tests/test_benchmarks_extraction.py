"""The extraction benchmark's adapters and its comparison mode, on real pages."""
from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from benchmarks import extraction, extractors

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
WCXB = DATA / "wcxb" / "dev"

pytestmark = pytest.mark.skipif(not (WCXB / "ground-truth").is_dir(), reason="shared/data/wcxb is not here")
for _dist in ("readability", "justext", "html_text", "matplotlib"):  # the bench extra
    pytest.importorskip(_dist)


def _fold(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def _page(page_id: str) -> tuple[bytes, dict]:
    gt = json.loads((WCXB / "ground-truth" / f"{page_id}.json").read_text(encoding="utf-8"))
    with gzip.open(WCXB / "html" / f"{page_id}.html.gz", "rb") as f:
        return f.read(), gt


# Three articles from different sites (the adapters' common ground; on other
# page types readability-lxml and jusText miss a lot, which is what is measured).
PAGES = ["0001", "0005", "0010"]
ADAPTERS = [
    extractors.readability_lxml,
    extractors.justext_extract,
    extractors.html_text_extract,
    extractors.trafilatura_defaults,
]


@pytest.mark.parametrize("page_id", PAGES)
@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda f: f.__name__)
def test_adapters_find_the_main_text_of_real_pages(adapter, page_id):
    html, gt = _page(page_id)
    title, text = adapter(html, gt["url"])
    assert title is None or isinstance(title, str)
    assert isinstance(text, str) and len(text.split()) > 50
    snippets = gt["ground_truth"]["with"]
    found = [s for s in snippets if _fold(s) in _fold(text)]
    assert found, f"none of the gold snippets of {page_id} in the {adapter.__name__} text"


def test_readability_keeps_paragraph_breaks_and_title():
    html, gt = _page("0001")
    title, text = extractors.readability_lxml(html, gt["url"])
    assert title and "Nutrition Trends" in title
    assert text.count("\n\n") >= 3


def test_adapters_never_raise():
    for adapter in ADAPTERS:
        for html in (b"", b"\xff\xfe garbage", b"<html><body></body></html>"):
            title, text = adapter(html, None)
            assert isinstance(text, str)


def test_justext_language_from_html_lang():
    assert extractors.page_language('<html lang="fr-FR"><body>') == "French"
    assert extractors.page_language("<HTML LANG=de>") == "German"
    assert extractors.page_language('<html lang="ja">') == "English"  # no Japanese stoplist
    assert extractors.page_language("<html><body>") == "English"


def test_decode_html_uses_the_pages_charset():
    text = "<html><head><meta charset='windows-1251'></head><body><p>Привет, мир. " * 20
    assert "Привет" in extractors.decode_html(text.encode("cp1251"))
    assert extractors.decode_html("déjà".encode()) == "déjà"


def test_extractor_names_resolve_to_the_adapters():
    for name in ("readability", "justext", "html-text", "trafilatura-defaults"):
        fn, settings = extraction.make_extractor(name)
        assert settings["function"].startswith("benchmarks.extractors.")


def test_compare_mode_writes_json_markdown_and_plots(tmp_path):
    rc = extraction.main(["--compare", "--limit", "3", "--out", str(tmp_path), "--n-bootstrap", "20"])
    assert rc == 0
    report = json.loads((tmp_path / "extraction-compare.json").read_text(encoding="utf-8"))
    assert list(report["extractors"]) == list(extraction.COMPARE_EXTRACTORS)
    assert report["seed"] == extraction_seed() and report["limit"] == 3
    env = report["environment"]
    for dist in ("trafilatura", "readability-lxml", "justext", "html-text", "matplotlib"):
        assert env.get(dist), dist
    for name, r in report["extractors"].items():
        assert r["wcxb"]["overall"]["pages"] == 3, name
        assert r["scrapinghub"]["summary"]["pages"] == 3, name
        assert r["wcxb"]["speed"]["pages_per_cpu_second"] > 0
        assert r["wcxb"]["memory"]["peak_rss_mib"] > 0
        assert Path(r["report"]).exists()
    md = (tmp_path / "extraction-compare.md").read_text(encoding="utf-8")
    assert "## WCXB dev (3 pages)" in md and "## scrapinghub (3 articles)" in md
    for name in extraction.COMPARE_EXTRACTORS:
        assert f"| `{name}` |" in md
    for fig in ("wcxb_by_type", "f1_vs_speed"):
        png = tmp_path / f"extraction-compare-{fig}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def extraction_seed() -> int:
    from benchmarks.common import SEED

    return SEED
