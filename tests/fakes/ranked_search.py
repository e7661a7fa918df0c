"""A fake web search over *every* page of ``shared/data``, ranked by the query.

:class:`~tests.fakes.search_apis.FakeSearch` indexes the first 4,000
characters of the WCXB pages only. :class:`SharedDataSearch` speaks the same
five wire formats (searxng, tavily, brave, exa_ai, serper; same switches, same
``env()``) but answers from a full-text index (SQLite FTS5, bm25, title
weighted above text: :class:`providers.local_index.LocalIndex`) of the whole
ground-truth text of all WCXB pages *and* all scrapinghub articles, so the
results of a question depend on its words and the page a question was written
from can be found. Results point at a FakeWeb: ``{web_url}/wcxb/NNNN`` and
``{web_url}/scrapinghub/<sha256>``.

:func:`shared_pages` gives every page's real URL, title and gold text (keys
``wcxb/NNNN`` and ``scrapinghub/<sha256>``), and :func:`native_scenario`
scripts the fake native-search provider (:class:`tests.fakes.native.FakeNative`)
for one question: its "search" is this index, its answer the best sentence of
the top hits (:func:`tests.fakes.reader.best_sentence`), cited to the hit's
real URL.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Self

from providers.local_index import LocalIndex
from tests.fakes.base import FakeServer
from tests.fakes.search_apis import FakeSearch, _Doc
from tests.fakes.web import DATA_DIR, gold, scrapinghub_ids

__all__ = ["SharedDataSearch", "SharedPage", "native_scenario", "shared_index", "shared_pages"]


@dataclass(frozen=True)
class SharedPage:
    """One page of shared/data: its key, real URL, gold title, gold main text and date."""

    key: str
    url: str
    title: str
    text: str
    date: str | None = None


@functools.lru_cache(maxsize=1)
def shared_pages() -> dict[str, SharedPage]:
    """Every WCXB dev page and scrapinghub article with a non-empty gold text, by key."""
    pages: dict[str, SharedPage] = {}
    for path in sorted((DATA_DIR / "wcxb" / "dev" / "ground-truth").glob("*.json")):
        data = json.loads(path.read_text("utf-8"))
        truth = data.get("ground_truth") or {}
        if truth.get("main_content") and data.get("url"):
            key = f"wcxb/{path.stem}"
            pages[key] = SharedPage(key, data["url"], truth.get("title") or "", truth["main_content"],
                                    truth.get("publish_date"))
    truth = json.loads((DATA_DIR / "scrapinghub" / "ground-truth.json").read_text("utf-8"))
    for ident in scrapinghub_ids():
        entry = truth.get(ident) or {}
        if entry.get("articleBody"):
            key = f"scrapinghub/{ident}"
            pages[key] = SharedPage(key, entry["url"], gold(key).title, entry["articleBody"])
    return pages


@functools.lru_cache(maxsize=1)
def shared_index() -> LocalIndex:
    """An in-memory full-text index of :func:`shared_pages` (urls are the page keys)."""
    index = LocalIndex()
    index.add_many((p.key, p.title, p.text) for p in shared_pages().values())
    return index


class SharedDataSearch(FakeSearch):
    """FakeSearch whose results come from the full text of every shared page (see the module doc)."""

    def start(self) -> Self:
        shared_index()  # build before the first request
        return FakeServer.start(self)

    def _hits(self, query: str, limit: int, empty: bool) -> list[_Doc]:
        if empty or limit <= 0:
            return []
        pages = shared_pages()
        return [
            _Doc(f"{self.web_url}/{h.url}", h.title, h.snippet, pages[h.url].text, round(h.score, 4),
                 pages[h.url].date)
            for h in shared_index().search(query, limit)
        ]


def native_scenario(question: str, k: int = 3):
    """A :class:`tests.fakes.native.Scenario` answering ``question`` from the top ``k`` pages
    of :func:`shared_index`: the best sentence among them, cited to its page's real URL."""
    from tests.fakes.native import Scenario, Segment, Source
    from tests.fakes.policies import Source as PolicySource
    from tests.fakes.reader import best_sentence

    pages = shared_pages()
    hits = [pages[h.url] for h in shared_index().search(question, k)]
    sources = tuple(Source(p.url, p.title or p.url, p.text[:200].replace("\n", " ")) for p in hits)
    if not hits:
        return Scenario(question, (Segment("I found nothing about that."),), ())
    found = best_sentence(question, [PolicySource(str(i + 1), p.url, p.title, p.text) for i, p in enumerate(hits)])
    if found is None:
        return Scenario(question, (Segment("I found nothing about that."),), sources)
    sentence, i, _ = found
    return Scenario(question, (Segment(sentence, (i,)),), sources)
