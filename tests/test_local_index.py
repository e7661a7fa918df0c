"""The embedded FTS5 index behind the ``local`` engine."""

from __future__ import annotations

import gzip
import json
import os
import pathlib
import threading

import pytest

from providers.extract import html_title
from providers.local_index import (
    IndexHit,
    LocalIndex,
    canonical_url,
    default_index_path,
    open_corpus,
)
from tests.fakes.web import DATA_DIR, page_html, scrapinghub_ids


def _page(title: str, body: str, head: str = "") -> str:
    return (
        f"<!doctype html><html><head><title>{title}</title>{head}</head><body>"
        f"<nav>Home | About | Contact</nav><article><h1>{title}</h1>"
        + "".join(f"<p>{p}</p>" for p in body.split("\n\n"))
        + "</article><footer>Copyright 2024</footer></body></html>"
    )


@pytest.fixture
def index() -> LocalIndex:
    ix = LocalIndex()
    ix.add(
        "https://a.example/otters",
        "Sea otters",
        "Sea otters use stones to crack open shellfish. They live in kelp forests.",
    )
    ix.add(
        "https://b.example/kelp",
        "Kelp forests",
        "Kelp forests grow along cold coasts and shelter many animals, sea otters among them.",
    )
    ix.add(
        "https://c.example/running",
        "Marathon training",
        "A runner runs long distances; running every day builds endurance.",
    )
    return ix


@pytest.fixture
def cache_dir(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("GROUNDING_CACHE_DIR", str(cache))
    return cache


def _touch(path: pathlib.Path, text: str, mtime: int) -> None:
    path.write_text(text, "utf-8")
    os.utime(path, (mtime, mtime))


# -- documents and search --------------------------------------------------------


def test_search_ranks_best_first_and_weights_titles(index: LocalIndex) -> None:
    hits = index.search("kelp forests")
    assert [h.url for h in hits[:2]] == ["https://b.example/kelp", "https://a.example/otters"]
    assert all(isinstance(h, IndexHit) for h in hits)
    assert hits[0].score > hits[1].score
    assert hits[0].title == "Kelp forests" and hits[0].text.startswith("Kelp forests grow")


def test_search_stems_and_drops_stop_words(index: LocalIndex) -> None:
    assert index.search("runners ran")[0].url == "https://c.example/running"
    assert [h.url for h in index.search("what is the marathon")] == ["https://c.example/running"]
    assert index.search("they them")  # only stop words: searched as they are


def test_and_first_then_or_fills_up_to_limit(index: LocalIndex) -> None:
    assert [h.url for h in index.search("otters stones", limit=1)] == ["https://a.example/otters"]
    hits = index.search("otters stones", limit=5)
    assert hits[0].url == "https://a.example/otters"  # has both terms
    assert {h.url for h in hits[1:]} == {"https://b.example/kelp"}  # has one
    assert index.search("otters", limit=0) == []


def test_snippet_is_short_one_line_text(index: LocalIndex) -> None:
    long_text = "Filler words here. " * 200 + "The zebra crossing appears once.\n\n" + "More filler. " * 200
    index.add("https://d.example/zebra", "Road markings", long_text)
    hit = index.search("zebra")[0]
    assert "zebra" in hit.snippet and "\n" not in hit.snippet
    assert len(hit.snippet.split()) <= 35
    assert hit.text == long_text


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   ",
        "!!!",
        '"',
        '"unbalanced',
        "(((",
        "NOT",
        "AND OR NOT",
        "NEAR(otters kelp)",
        "otter*",
        "title:otters",
        "a:b:c",
        "-kelp",
        "^sea",
        "{title text}: kelp",
        "it's",
        "kelp AND NOT otters",
        "sea\x00otters",
        "ünïcödé ✓",
    ],
)
def test_free_text_queries_never_break(index: LocalIndex, query: str) -> None:
    hits = index.search(query)
    assert isinstance(hits, list)
    if not any(c.isalnum() for c in query):
        assert hits == []


def test_operators_are_plain_words(index: LocalIndex) -> None:
    assert index.search("title:otters")[0].url == "https://a.example/otters"
    assert {h.url for h in index.search("kelp AND NOT otters")} >= {"https://b.example/kelp"}


def test_add_upserts_by_url(index: LocalIndex) -> None:
    index.add("https://a.example/otters", "Sea otters", "Now about walruses only.")
    assert len(index) == 3
    assert index.search("walruses")[0].url == "https://a.example/otters"
    assert all(h.url != "https://a.example/otters" for h in index.search("shellfish"))


def test_diacritics_fold(index: LocalIndex) -> None:
    index.add("https://e.example/cafe", "Café culture", "The café on the corner.")
    assert index.search("cafe")[0].url == "https://e.example/cafe"


def test_concurrent_searches_share_one_index(index: LocalIndex) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(50):
                assert index.search("otters")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- canonical URLs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        ('<link rel="canonical" href="https://x.example/a?b=1&amp;c=2">', "https://x.example/a?b=1&c=2"),
        ("<link href='https://x.example/b' rel='canonical'>", "https://x.example/b"),
        ('<meta property="og:url" content="http://x.example/c" />', "http://x.example/c"),
        (
            '<link rel="canonical" href="/relative"><meta property="og:url" content="https://x.example/d">',
            "https://x.example/d",
        ),
        ('<link rel="canonical" href="ftp://x.example/e">', None),
        ('<link rel="stylesheet" href="https://x.example/s.css">', None),
        ("", None),
    ],
)
def test_canonical_url(head: str, expected: str | None) -> None:
    assert canonical_url(_page("T", "text", head).encode()) == expected


# -- folders -----------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: pathlib.Path) -> pathlib.Path:
    root = tmp_path / "site"
    (root / "deep" / "er").mkdir(parents=True)
    _touch(
        root / "otters.html",
        _page(
            "Sea otters",
            "Sea otters float on their backs while they sleep.",
            '<link rel="canonical" href="https://otters.example/facts">',
        ),
        1_000,
    )
    _touch(root / "deep" / "kelp.htm", _page("Kelp", "Giant kelp grows half a metre a day."), 1_000)
    (root / "deep" / "er" / "whales.html.gz").write_bytes(
        gzip.compress(_page("Whales", "Blue whales are the largest animals ever known.").encode())
    )
    _touch(root / "notes.md", "# Walrus notes\n\nWalruses use their tusks to haul out onto ice.\n", 1_000)
    _touch(root / "plain.txt", "Narwhal tusks are long teeth.\n", 1_000)
    _touch(root / "ignored.pdf", "%PDF-1.4 narwhal", 1_000)
    (root / "broken.html.gz").write_bytes(b"not gzip at all")
    return root


def test_sync_folder_indexes_supported_files(folder: pathlib.Path) -> None:
    index = LocalIndex()
    calls: list[tuple[int, int]] = []
    assert index.sync_folder(folder, progress=lambda done, total: calls.append((done, total))) == 5
    assert len(index) == 5
    assert calls[0] == (0, 6) and calls[-1] == (6, 6)  # broken.html.gz is counted, then skipped
    assert index.search("sleep otters")[0].url == "https://otters.example/facts"
    kelp = index.search("giant kelp")[0]
    assert kelp.url == (folder / "deep" / "kelp.htm").resolve().as_uri() and kelp.title == "Kelp"
    assert index.search("blue whales")[0].title == "Whales"
    assert index.search("walruses tusks")[0].title == "Walrus notes"
    assert index.search("narwhal")[0].url.endswith("/plain.txt")
    assert len(index.search("narwhal")) == 1  # the .pdf is not indexed


def test_sync_folder_is_incremental(folder: pathlib.Path) -> None:
    index = LocalIndex()
    index.sync_folder(folder)
    assert index.sync_folder(folder) == 0

    _touch(folder / "notes.md", "# Walrus notes\n\nWalruses can sleep in the water.\n", 2_000)
    (folder / "plain.txt").unlink()
    calls: list[tuple[int, int]] = []
    assert index.sync_folder(folder, progress=lambda d, t: calls.append((d, t))) == 1
    assert calls[-1] == (1, 1)  # the unchanged broken file is not retried
    assert len(index) == 4
    assert index.search("walruses water")[0].title == "Walrus notes"
    assert index.search("haul ice") == []
    assert index.search("narwhal") == []


def test_sync_folder_follows_a_changed_canonical_url(folder: pathlib.Path) -> None:
    index = LocalIndex()
    index.sync_folder(folder)
    _touch(
        folder / "otters.html",
        _page(
            "Sea otters",
            "Sea otters hold hands.",
            '<link rel="canonical" href="https://otters.example/moved">',
        ),
        3_000,
    )
    assert index.sync_folder(folder) == 1
    assert [h.url for h in index.search("sea otters")] == ["https://otters.example/moved"]
    (folder / "otters.html").unlink()
    index.sync_folder(folder)
    assert index.search("sea otters") == []


def test_sync_keeps_documents_added_by_hand(folder: pathlib.Path) -> None:
    index = LocalIndex()
    index.add("https://manual.example/", "Manual", "Added by hand about manatees.")
    index.sync_folder(folder)
    assert index.search("manatees")[0].url == "https://manual.example/"


def test_sync_many_files_in_a_pool(tmp_path: pathlib.Path) -> None:
    for i in range(70):
        _touch(tmp_path / f"doc{i:02}.txt", f"Document number{i} talks about topic{i % 7}.\n", 1_000 + i)
    index = LocalIndex()
    assert index.sync_folder(tmp_path) == 70
    assert index.search("number42")[0].url.endswith("/doc42.txt")
    assert len(index.search("topic3", limit=20)) == 10


def test_real_pages_get_their_canonical_urls(tmp_path: pathlib.Path) -> None:
    truth = json.loads((DATA_DIR / "scrapinghub" / "ground-truth.json").read_text("utf-8"))
    picked = [
        i for i in scrapinghub_ids() if canonical_url(page_html(f"scrapinghub/{i}") or b"") == truth[i]["url"]
    ][:3]
    for i in picked:
        (tmp_path / f"{i}.html.gz").write_bytes(
            (DATA_DIR / "scrapinghub" / "html" / f"{i}.html.gz").read_bytes()
        )
    index = LocalIndex()
    assert index.sync_folder(tmp_path) == 3
    for i in picked:
        title = html_title(page_html(f"scrapinghub/{i}") or b"") or ""
        hits = index.search(title, limit=3)
        assert hits and hits[0].url == truth[i]["url"], title


# -- corpora ---------------------------------------------------------------------------


def test_open_corpus_persists_and_resyncs(folder: pathlib.Path, cache_dir: pathlib.Path) -> None:
    path = default_index_path(str(folder))
    assert path.parent == cache_dir / "index" and path.suffix == ".sqlite3"
    assert default_index_path(str(folder)) == path != default_index_path(str(folder / "deep"))
    with open_corpus(str(folder)) as index:
        assert len(index) == 5
    assert path.is_file()
    (folder / "plain.txt").unlink()
    with open_corpus(str(folder)) as index:
        assert len(index) == 4


def test_open_corpus_missing_folder(tmp_path: pathlib.Path, cache_dir: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError, match="corpus folder not found"):
        open_corpus(str(tmp_path / "nope"))


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.delenv("GROUNDING_CACHE_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_index_path("/some/corpus").parent == tmp_path / ".cache" / "grounding" / "index"


