"""The embedded search index behind the ``local`` engine.

An SQLite FTS5 index (porter stemming over unicode61 tokens, bm25 ranking with
the title weighted above the text) of documents that come from a folder of
HTML, Markdown and text files, or from Python's own reference documentation.
Folder indexes are persistent and incremental: a sync re-extracts only the
files whose size or modification time changed and forgets the files that went
away.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import os
import pathlib
import re
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from providers.extract import extract, extract_plain

__all__ = [
    "BUILTIN_CORPUS",
    "IndexHit",
    "LocalIndex",
    "canonical_url",
    "default_index_path",
    "open_corpus",
]

BUILTIN_CORPUS = "python-docs"
"""Name of the built-in corpus: Python's documentation as the running CPython renders it
(the language reference topics and every documented standard-library module; see
:mod:`providers.python_docs`)."""

Progress = Callable[[int, int], None]

_HTML_SUFFIXES = (".html", ".htm", ".html.gz", ".htm.gz")
_TEXT_SUFFIXES = (".md", ".markdown", ".txt")
_MAX_FILE_BYTES = 20 * 1024 * 1024  # bigger files are not pages; skip them
_POOL_MIN_FILES = 64  # below this a process pool costs more than it saves
_TITLE_WEIGHT, _TEXT_WEIGHT = 5.0, 1.0
_SNIPPET_TOKENS = 30
#: A query term in more documents than this share of the index is not required to match.
_COMMON_SHARE = 0.2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS docs_fts USING fts5(
    title, text, content='docs', content_rowid='id',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS docs_ai AFTER INSERT ON docs BEGIN
    INSERT INTO docs_fts(rowid, title, text) VALUES (new.id, new.title, new.text);
END;
CREATE TRIGGER IF NOT EXISTS docs_ad AFTER DELETE ON docs BEGIN
    INSERT INTO docs_fts(docs_fts, rowid, title, text)
    VALUES ('delete', old.id, old.title, old.text);
END;
CREATE TRIGGER IF NOT EXISTS docs_au AFTER UPDATE ON docs BEGIN
    INSERT INTO docs_fts(docs_fts, rowid, title, text)
    VALUES ('delete', old.id, old.title, old.text);
    INSERT INTO docs_fts(rowid, title, text) VALUES (new.id, new.title, new.text);
END;
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY,
    mtime_ns INTEGER NOT NULL,
    size INTEGER NOT NULL,
    url TEXT
);
"""

_STOP_WORDS = frozenset(
    """a an and are as at be but by can could did do does for from had has have
    how i if in into is it its me my no not of on or our so such than that the
    their them then there these they this to was we were what when where which
    who whom why will with would you your""".split()
)
_WORD_RE = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class IndexHit:
    """One search result: the document, a one-line snippet of its text, its bm25 score (higher is better)."""

    url: str
    title: str
    snippet: str
    text: str
    score: float


def _query_terms(query: str) -> list[str]:
    """The words of a free-text query, stop words dropped (unless nothing else is left)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD_RE.findall(query)))
    content = [w for w in words if w not in _STOP_WORDS]
    return content or words


def _fts_query(terms: Iterable[str], operator: str) -> str:
    """An FTS5 MATCH expression with every term quoted, so no user text is read as syntax."""
    return f" {operator} ".join('"' + t.replace('"', '""') + '"' for t in terms)


class LocalIndex:
    """A full-text index of documents in one SQLite file (or in memory).

    Safe to share between threads: every operation holds the index's lock.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is not None:
            pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            ":memory:" if path is None else os.fspath(path),
            timeout=30,
            check_same_thread=False,
        )
        self._lock = threading.RLock()
        with self._lock, self._conn:
            if path is not None:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)

    # -- documents -----------------------------------------------------------

    def add(self, url: str, title: str, text: str) -> None:
        """Add a document, replacing any earlier one with the same ``url``."""
        with self._lock, self._conn:
            self._upsert(url, title, text)

    def add_many(self, docs: Iterable[tuple[str, str, str]]) -> int:
        """Add ``(url, title, text)`` documents in one transaction; return how many."""
        count = 0
        with self._lock, self._conn:
            for url, title, text in docs:
                self._upsert(url, title, text)
                count += 1
        return count

    def _upsert(self, url: str, title: str, text: str) -> None:
        self._conn.execute(
            "INSERT INTO docs(url, title, text) VALUES (?, ?, ?) "
            "ON CONFLICT(url) DO UPDATE SET title = excluded.title, text = excluded.text",
            (url, title, text),
        )

    def __len__(self) -> int:
        with self._lock:
            count: int = self._conn.execute("SELECT count(*) FROM docs").fetchone()[0]
        return count

    def close(self) -> None:
        """Close the database; the index is unusable afterwards."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LocalIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- search --------------------------------------------------------------

    def search(self, query: str, limit: int = 5) -> list[IndexHit]:
        """The best ``limit`` documents for a free-text query, best first.

        All terms must match first, except terms so common in this index
        that they tell documents apart no better than a stop word would (in
        more than a fifth of them, such as "python" in Python's documentation);
        when that finds fewer than ``limit`` documents, documents matching any
        term fill the rest.
        """
        terms = _query_terms(query)
        if not terms or limit <= 0:
            return []
        required = self._discriminating(terms)
        hits = self._match(_fts_query(required, "AND"), limit)
        if len(hits) < limit and len(terms) > 1:
            seen = {h.url for h in hits}
            more = self._match(_fts_query(terms, "OR"), limit)
            hits += [h for h in more if h.url not in seen][: limit - len(hits)]
        return hits

    def _discriminating(self, terms: list[str]) -> list[str]:
        """``terms`` without those found in more than :data:`_COMMON_SHARE` of the documents
        (all of them if every term is that common)."""
        if len(terms) < 2:
            return terms
        with self._lock:
            total = self._conn.execute("SELECT count(*) FROM docs").fetchone()[0]
            if total < 20:
                return terms
            counts = [self._conn.execute("SELECT count(*) FROM docs_fts WHERE docs_fts MATCH ?",
                                         (_fts_query([t], "AND"),)).fetchone()[0] for t in terms]
        rare = [t for t, n in zip(terms, counts) if n <= total * _COMMON_SHARE]
        return rare or terms

    def _match(self, expression: str, limit: int) -> list[IndexHit]:
        sql = (
            "SELECT d.url, d.title, "
            f"snippet(docs_fts, 1, '', '', '…', {_SNIPPET_TOKENS}), d.text, "
            f"bm25(docs_fts, {_TITLE_WEIGHT}, {_TEXT_WEIGHT}) AS rank "
            "FROM docs_fts JOIN docs d ON d.id = docs_fts.rowid "
            "WHERE docs_fts MATCH ? ORDER BY rank LIMIT ?"
        )
        with self._lock:
            rows = self._conn.execute(sql, (expression, limit)).fetchall()
        return [
            IndexHit(url, title, " ".join(snippet.split()), text, -rank)
            for url, title, snippet, text, rank in rows
        ]

    # -- folders -------------------------------------------------------------

    def sync_folder(self, folder: str | os.PathLike[str], progress: Progress | None = None) -> int:
        """Bring the index in line with a folder's pages; return how many were (re)indexed.

        Indexes ``.html``, ``.htm`` (also gzipped), ``.md``, ``.markdown`` and
        ``.txt`` files recursively. Unchanged files (same size and mtime) are
        skipped, vanished ones removed. Unreadable files are skipped.
        ``progress(done, total)`` is called as files are processed.
        """
        root = pathlib.Path(folder).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"corpus folder not found: {root}")
        on_disk = dict(_scan(root))
        with self._lock:
            known = {
                path: (mtime_ns, size)
                for path, mtime_ns, size in self._conn.execute("SELECT path, mtime_ns, size FROM files")
            }
        with self._lock, self._conn:
            for path in known.keys() - on_disk.keys():
                self._forget_file(path)
        todo = sorted(path for path, stat in on_disk.items() if known.get(path) != stat)
        if progress:
            progress(0, len(todo))
        indexed = 0
        for done, (path, doc) in enumerate(_read_all(todo), start=1):
            with self._lock, self._conn:
                indexed += self._store_file(path, on_disk[path], doc)
            if progress:
                progress(done, len(todo))
        return indexed

    def _store_file(self, path: str, stat: tuple[int, int], doc: tuple[str, str, str] | None) -> int:
        """Record one file and its document (``None``: unreadable or empty); 1 if a document was stored."""
        old = self._conn.execute("SELECT url FROM files WHERE path = ?", (path,)).fetchone()
        url = doc[0] if doc else None
        self._conn.execute(
            "INSERT OR REPLACE INTO files(path, mtime_ns, size, url) VALUES (?, ?, ?, ?)",
            (path, *stat, url),
        )
        if old and old[0] and old[0] != url:
            self._drop_orphan(old[0])
        if doc is None:
            return 0
        self._upsert(*doc)
        return 1

    def _forget_file(self, path: str) -> None:
        row = self._conn.execute("SELECT url FROM files WHERE path = ?", (path,)).fetchone()
        self._conn.execute("DELETE FROM files WHERE path = ?", (path,))
        if row and row[0]:
            self._drop_orphan(row[0])

    def _drop_orphan(self, url: str) -> None:
        """Delete a document no file maps to any more (documents added by :meth:`add` have no file)."""
        if not self._conn.execute("SELECT 1 FROM files WHERE url = ?", (url,)).fetchone():
            self._conn.execute("DELETE FROM docs WHERE url = ?", (url,))


# -- reading files -----------------------------------------------------------


def _scan(root: pathlib.Path) -> Iterator[tuple[str, tuple[int, int]]]:
    """``(path, (mtime_ns, size))`` of every indexable file under ``root``."""
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            if not name.lower().endswith(_HTML_SUFFIXES + _TEXT_SUFFIXES):
                continue
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            yield path, (st.st_mtime_ns, st.st_size)


def _read_all(paths: list[str]) -> Iterator[tuple[str, tuple[str, str, str] | None]]:
    """Read and extract files in order; in a process pool when there are many."""
    done = 0
    if len(paths) >= _POOL_MIN_FILES and (os.cpu_count() or 1) > 1:
        pool = ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, 8))
        try:
            for doc in pool.map(_read_file, paths, chunksize=8):
                yield paths[done], doc
                done += 1
        except (BrokenProcessPool, OSError):
            pass  # no usable pool here: do the rest one at a time
        finally:
            pool.shutdown(cancel_futures=True)  # also when the caller stops early
    for path in paths[done:]:
        yield path, _read_file(path)


def _read_file(path: str) -> tuple[str, str, str] | None:
    """``(url, title, text)`` of one file, or ``None`` if it is unreadable or has no text."""
    name = os.path.basename(path)
    lower = name.lower()
    try:
        if os.path.getsize(path) > _MAX_FILE_BYTES:
            return None
        with open(path, "rb") as fh:
            data = fh.read()
        if lower.endswith(".gz"):
            data = gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    file_url = pathlib.Path(path).as_uri()
    if lower.endswith(_HTML_SUFFIXES):
        url = canonical_url(data) or file_url
        page = extract(data, url)
    else:
        url = file_url
        page = extract_plain(data.decode("utf-8", "replace"), name)
    title = page.title or name
    if not page.text.strip() and not page.title:
        return None
    return url, title, page.text


_TAG_RE = re.compile(rb"<(link|meta)\b([^>]*)>", re.I)
_ATTR_RE = re.compile(rb"""([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""")


def canonical_url(page: bytes) -> str | None:
    """The page's absolute http(s) ``<link rel="canonical">`` or ``og:url``, if it declares one."""
    found: dict[str, str] = {}
    for tag in _TAG_RE.finditer(page[:300_000]):
        attrs = {
            m.group(1).lower().decode("ascii", "replace"): (m.group(2) or m.group(3) or m.group(4) or b"")
            .decode("utf-8", "replace")
            .strip()
            for m in _ATTR_RE.finditer(tag.group(2))
        }
        if tag.group(1).lower() == b"link" and "canonical" in attrs.get("rel", "").lower().split():
            found.setdefault("canonical", attrs.get("href", ""))
        elif tag.group(1).lower() == b"meta" and attrs.get("property", "").lower() == "og:url":
            found.setdefault("og", attrs.get("content", ""))
    for key in ("canonical", "og"):
        url = html.unescape(found.get(key, ""))
        if re.match(r"https?://[^/\s]+", url, re.I) and not re.search(r"\s", url):
            return url
    return None


# -- corpora -----------------------------------------------------------------


def _cache_dir() -> pathlib.Path:
    base = os.environ.get("GROUNDING_CACHE_DIR")
    root = pathlib.Path(base).expanduser() if base else pathlib.Path.home() / ".cache" / "grounding"
    return root / "index"


def default_index_path(corpus: str) -> pathlib.Path:
    """Where the persistent index of a corpus folder lives: named by a hash of its absolute path."""
    key = os.path.abspath(os.path.expanduser(corpus))
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return _cache_dir() / f"{digest}.sqlite3"


def open_corpus(corpus: str | None, progress: Progress | None = None) -> LocalIndex:
    """Open the index of a corpus, building or refreshing it first.

    ``corpus`` is a folder (indexed persistently and kept in sync with it), or
    ``None`` / ``"python-docs"`` for the built-in corpus of Python's reference
    documentation.
    """
    if corpus is None or corpus == BUILTIN_CORPUS:
        return _open_python_docs(progress)
    folder = pathlib.Path(corpus).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"corpus folder not found: {corpus!r} (give a folder of .html/.md/.txt pages, "
            f"or {BUILTIN_CORPUS!r} for the built-in corpus)"
        )
    index = LocalIndex(default_index_path(str(folder)))
    try:
        index.sync_folder(folder, progress)
    except BaseException:
        index.close()
        raise
    return index


def _open_python_docs(progress: Progress | None) -> LocalIndex:
    """Python's documentation (:mod:`providers.python_docs`), indexed once per Python version and
    corpus version, then opened from the cache. Built in a temporary file renamed into place, so
    an interrupted build (or another process building it at the same time) leaves no half index."""
    from .python_docs import CORPUS_VERSION, build

    version = ".".join(map(str, sys.version_info[:3]))
    path = _cache_dir() / f"{BUILTIN_CORPUS}-v{CORPUS_VERSION}-{version}.sqlite3"
    if path.exists():
        index = LocalIndex(path)
        if len(index):
            if progress:
                progress(1, 1)
            return index
        index.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".building")
    os.close(fd)
    tmp = pathlib.Path(tmp_name)
    try:
        with LocalIndex(tmp) as building:
            building.add_many(build(progress))
            with building._lock:
                building._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, pathlib.Path(f"{tmp}-wal"), pathlib.Path(f"{tmp}-shm")):
            leftover.unlink(missing_ok=True)
    return LocalIndex(path)
