"""The built-in corpus: Python's documentation as the running CPython renders it offline.

The reference topics and every documented standard-library module that imports
here, each under its real docs.python.org page and anchor; built once (in child
interpreters, so imports never touch this process) and cached.
"""
from __future__ import annotations

import pathlib
import sqlite3
import sys
from collections import Counter

import pytest

from benchmarks.search_modes import PYTHON_DOCS_QUESTIONS, contains_match, load_questions
from providers import python_docs
from providers.local_index import BUILTIN_CORPUS, open_corpus
from providers.python_docs import DOCS, TOPIC_PAGES, documented_modules, module_documents, page_of


@pytest.fixture
def corpus(python_docs_cache, monkeypatch):
    monkeypatch.setenv("GROUNDING_CACHE_DIR", python_docs_cache)
    with open_corpus(BUILTIN_CORPUS) as index:
        yield index


def _rows(index) -> list[tuple[str, str, str]]:
    with index._lock:
        return index._conn.execute("SELECT url, title, text FROM docs").fetchall()


def test_every_reference_topic_has_its_real_page():
    from pydoc_data.topics import topics

    unknown = sorted(set(topics) - set(TOPIC_PAGES))
    assert not unknown, f"pydoc_data topics with no page in TOPIC_PAGES: {unknown}"
    docs = list(python_docs.topic_documents())
    assert all(url.startswith(DOCS + "reference/") or url.startswith(DOCS + "library/") for url, _, _ in docs)
    urls = {url for url, _, _ in docs}
    assert f"{DOCS}reference/simple_stmts.html#nonlocal" in urls
    assert f"{DOCS}reference/compound_stmts.html#if" in urls
    assert f"{DOCS}reference/compound_stmts.html#the-with-statement" in urls  # a section of 'compound'
    assert f"{DOCS}library/stdtypes.html#typesseq-mutable" in urls
    assert not any("search.html" in u for u in urls)


def test_modules_render_under_their_pages_and_anchors():
    docs = {url: (title, text) for url, title, text in module_documents("shutil")}
    assert docs[f"{DOCS}library/shutil.html"][0].startswith("shutil — ")
    title, text = docs[f"{DOCS}library/shutil.html#shutil.copyfile"]
    assert title == "shutil.copyfile" and "copyfile(src, dst" in text
    assert " at 0x" not in "".join(t for _, t in docs.values())  # no memory addresses: the same every build
    assert module_documents("no_such_module_anywhere") == []


@pytest.mark.parametrize("module, member, url", [
    ("builtins", "reversed", "library/functions.html#reversed"),
    ("builtins", "list", "library/stdtypes.html#list"),
    ("builtins", "ValueError", "library/exceptions.html#ValueError"),
    ("asyncio", "gather", "library/asyncio-task.html#asyncio.gather"),
    ("asyncio", "run", "library/asyncio-runner.html#asyncio.run"),
    ("xml.etree.ElementTree", "parse", "library/xml.etree.elementtree.html#xml.etree.ElementTree.parse"),
    ("os.path", None, "library/os.path.html"),
])
def test_pages_follow_the_documentations_layout(module, member, url):
    obj = getattr(__import__("builtins"), member) if module == "builtins" else None
    assert page_of(module, member, obj) == DOCS + url


def test_the_corpus_holds_the_standard_library(corpus):
    rows = _rows(corpus)
    urls = [u for u, _, _ in rows]
    assert len(urls) == len(set(urls)) > 2500
    pages = Counter(u.split("#")[0] for u in urls)
    for name in ("shutil", "copy", "threading", "pickle", "shelve", "json", "os.path", "collections", "asyncio-task",
                 "functions", "stdtypes", "inspect", "subprocess", "argparse"):
        assert pages[f"{DOCS}library/{name}.html"] > 0, name
    assert all(u.startswith(DOCS) for u in urls)
    importable = [n for n in documented_modules() if n not in ("tkinter", "turtle") and not n.startswith("tkinter.")]
    assert sum(pages[page_of(n)] > 0 for n in importable) > 0.9 * len(importable)


@pytest.mark.parametrize("query, page", [
    ("deep copy an object", "library/copy.html"),
    ("copy directory tree", "library/shutil.html"),
    ("Thread start join", "library/threading.html"),
    ("persistent dictionary shelf", "library/shelve.html"),
    ("nonlocal statement", "reference/simple_stmts.html"),
    ("read a JSON document from a file", "library/json.html"),
])
def test_everyday_questions_find_their_page(corpus, query, page):
    hits = corpus.search(query, 3)
    assert any(h.url.startswith(DOCS + page) for h in hits), [h.url for h in hits]


def test_built_once_then_opened_from_the_cache(python_docs_cache, monkeypatch):
    monkeypatch.setenv("GROUNDING_CACHE_DIR", python_docs_cache)
    (cached,) = pathlib.Path(python_docs_cache, "index").glob("python-docs-v*.sqlite3")
    before = cached.stat().st_mtime_ns
    calls = []
    with open_corpus(BUILTIN_CORPUS, lambda done, total: calls.append((done, total))) as index:
        assert len(index) > 2500
    assert calls == [(1, 1)] and cached.stat().st_mtime_ns == before
    assert not list(cached.parent.glob(".*building*"))  # no leftovers of the build


def test_building_reports_progress_and_keeps_imports_out_of_this_process(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(python_docs, "documented_modules", lambda: ["shutil", "colorsys", "no_such_module_xyz", "this"])
    before = set(sys.modules)
    calls = []
    docs = list(python_docs.build(lambda done, total: calls.append((done, total)), workers=2))
    assert calls[0] == (0, 4) and calls[-1] == (4, 4)
    urls = {u for u, _, _ in docs}
    assert f"{DOCS}library/colorsys.html#colorsys.rgb_to_hsv" in urls
    assert "colorsys" not in set(sys.modules) - before and "this" not in sys.modules
    out, err = capfd.readouterr()
    assert "Zen of Python" not in out + err  # `import this` printed in a child, and nowhere


def test_the_question_set_is_answerable_from_the_corpus(corpus):
    text_of: dict[str, list[str]] = {}
    for url, _, text in _rows(corpus):
        text_of.setdefault(url.split("#")[0], []).append(text)
    questions = load_questions(PYTHON_DOCS_QUESTIONS)
    assert len(questions) >= 40
    for q in questions:
        assert q.gold_urls and all(u in text_of for u in q.gold_urls), q.id
        assert any(contains_match("\n".join(text_of[u]), q.answers) for u in q.gold_urls), q.id
        assert not any(contains_match(q.question, [a]) for a in q.answers), f"{q.id}: the question gives it away"


def test_the_cache_is_an_sqlite_index_of_the_version_and_python(python_docs_cache):
    (cached,) = pathlib.Path(python_docs_cache, "index").glob("python-docs-v*.sqlite3")
    assert f"-v{python_docs.CORPUS_VERSION}-" in cached.name and cached.name.endswith(
        ".".join(map(str, sys.version_info[:3])) + ".sqlite3")
    with sqlite3.connect(cached) as conn:
        assert conn.execute("SELECT count(*) FROM docs").fetchone()[0] > 2500
