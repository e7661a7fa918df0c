"""FakeSearch: one server speaking the wire formats of real search APIs.

Each engine has its own base URL on the server, and answers as litellm
1.104.5's search provider for it sends and parses (engine: base URL that
``env()`` sets -> the request litellm makes; the key header):

- searxng: ``{url}/searxng`` -> ``GET /searxng/search?q=&format=json``; no key
  (403 without ``format=json``, as SearXNG does);
- tavily: ``{url}/tavily`` -> ``POST /tavily/search``; ``Authorization: Bearer``;
- brave: ``{url}/brave/res/v1/web/search`` (litellm takes it as the whole
  endpoint) -> ``GET`` it with ``q, count, include_fetch_metadata``; ``X-Subscription-Token``;
- exa_ai: ``{url}/exa`` -> ``POST /exa/search``; ``x-api-key``;
- serper: ``{url}/serper`` -> ``POST /serper/search``; ``X-API-KEY``.

Results come from a real full-text index (:class:`providers.local_index.LocalIndex`)
over the ground-truth title and main text of the WCXB pages, and point at
a FakeWeb: ``{web_url}/wcxb/NNNN``. Per-engine switches
(:class:`EngineSwitches`) force an HTTP status, add latency, empty the
results or waive the API key check.

Domain filters are honoured as each API documents them, against the host of
each result URL: Tavily's ``include_domains`` / ``exclude_domains``, Exa's
``includeDomains`` / ``excludeDomains``, and the ``site:`` clauses litellm
appends to Brave's and Serper's ``q`` (``(q) AND (site:a OR site:b)``,
``(q) (site:a OR site:b)``). With ``mixed_hosts`` on, results alternate
between two host names of the same FakeWeb, ``127.0.0.1`` (even page
numbers) and ``localhost`` (odd ones), so there are two domains to filter.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

from providers.local_index import LocalIndex
from tests.fakes.base import FakeServer, RecordedRequest, Response
from tests.fakes.web import DATA_DIR

__all__ = ["ENGINES", "EngineSwitches", "FakeSearch", "GoldPage", "wcxb_gold_index"]

ENGINES = ("searxng", "tavily", "brave", "exa_ai", "serper")
"""litellm ``search_provider`` names the fake speaks."""

_PREFIX = {"searxng": "searxng", "tavily": "tavily", "brave": "brave", "exa_ai": "exa", "serper": "serper"}
_BASE_SUFFIX = {"brave": "/res/v1/web/search"}  # litellm uses BRAVE_API_BASE as the full endpoint
_ENDPOINT = {
    "searxng": ("GET", "/searxng/search"),
    "tavily": ("POST", "/tavily/search"),
    "brave": ("GET", "/brave/res/v1/web/search"),
    "exa_ai": ("POST", "/exa/search"),
    "serper": ("POST", "/serper/search"),
}
_ENV = {"searxng": "SEARXNG", "tavily": "TAVILY", "brave": "BRAVE", "exa_ai": "EXA", "serper": "SERPER"}


@dataclass
class EngineSwitches:
    """Failure switches of one engine (all off by default)."""

    status: int | None = None
    """Answer every request with this HTTP status and the engine's error body."""
    latency_ms: float = 0
    empty: bool = False
    """Answer with no results."""
    require_key: bool = True
    """Answer 401 when the engine's API key header is missing (searxng takes no key)."""


@dataclass(frozen=True)
class _Doc:
    url: str
    title: str
    snippet: str
    text: str
    score: float
    date: str | None


@dataclass(frozen=True)
class GoldPage:
    """A WCXB page's ground truth, as the fake search engines know it."""

    title: str
    text: str
    date: str | None


_INDEXED_CHARS = 4000  # index the start of each page: a fast build, and what a search snippet shows anyway


@functools.lru_cache(maxsize=1)
def wcxb_gold_index() -> tuple[LocalIndex, dict[str, GoldPage]]:
    """An in-memory index of the WCXB ground truth (urls ``wcxb/NNNN``) and the pages by url."""
    pages: dict[str, GoldPage] = {}
    for path in sorted((DATA_DIR / "wcxb" / "dev" / "ground-truth").glob("*.json")):
        truth = json.loads(path.read_text("utf-8"))["ground_truth"]
        if truth.get("main_content"):
            pages[f"wcxb/{path.stem}"] = GoldPage(
                truth.get("title") or "", truth["main_content"], truth.get("publish_date")
            )
    index = LocalIndex()
    index.add_many((url, page.title, page.text[:_INDEXED_CHARS]) for url, page in pages.items())
    return index, pages


def _decorate(text: str, query: str) -> str:
    """Brave's default ``text_decorations``: query words wrapped in ``<strong>``."""
    words = {w.lower() for w in re.findall(r"\w{3,}", query)}
    if not words:
        return text
    return re.sub(r"\w+", lambda m: f"<strong>{m[0]}</strong>" if m[0].lower() in words else m[0], text)


_SITES = re.compile(r"^\((?P<q>.*)\)(?: AND)? \((?P<sites>site:\S+(?: OR site:\S+)*)\)$")


def _site_clauses(query: str) -> tuple[str, list[str]]:
    """``(q) AND (site:a OR site:b)`` (as litellm writes Brave's and Serper's domain
    filters) -> ``("q", ["a", "b"])``; other queries come back as they are."""
    m = _SITES.match(query.strip())
    if not m:
        return query, []
    return m["q"], [part.removeprefix("site:") for part in m["sites"].split(" OR ")]


def _in(url: str, domains: list[str]) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return any(host == d.lower() or host.endswith("." + d.lower()) for d in domains)


def _int(value: Any, default: int, cap: int) -> int:
    try:
        return max(0, min(int(value), cap))
    except (TypeError, ValueError):
        return default


class FakeSearch(FakeServer):
    """Search APIs backed by the WCXB ground truth. ``web_url`` is the FakeWeb the results point at."""

    def __init__(self, web_url: str, *, latency_ms: float = 0) -> None:
        super().__init__(latency_ms=latency_ms)
        self.web_url = web_url
        self.engines = {engine: EngineSwitches(require_key=engine != "searxng") for engine in ENGINES}
        self.mixed_hosts = False

    def start(self) -> Self:
        wcxb_gold_index()  # build the index before the first request, not during it
        return super().start()

    def reset(self) -> None:
        super().reset()
        self.engines = {engine: EngineSwitches(require_key=engine != "searxng") for engine in ENGINES}
        self.mixed_hosts = False

    def result_url(self, page: str) -> str:
        """Where a result for ``page`` (``wcxb/NNNN``) points: the FakeWeb, under ``localhost``
        for odd page numbers when :attr:`mixed_hosts` is on."""
        base = self.web_url
        number = page.rsplit("/", 1)[-1]
        if self.mixed_hosts and number.isdigit() and int(number) % 2:
            base = base.replace("//127.0.0.1:", "//localhost:")
        return f"{base}/{page}"

    def api_base(self, engine: str) -> str:
        """The base URL litellm should use for ``engine`` (what ``env()`` sets)."""
        return f"{self.url}/{_PREFIX[engine]}{_BASE_SUFFIX.get(engine, '')}"

    def env(self) -> dict[str, str]:
        """Env vars pointing litellm's search providers here: ``<P>_API_BASE`` and dummy ``<P>_API_KEY``."""
        out: dict[str, str] = {}
        for engine in ENGINES:
            out[f"{_ENV[engine]}_API_BASE"] = self.api_base(engine)
            if engine != "searxng":
                out[f"{_ENV[engine]}_API_KEY"] = f"fake-{_PREFIX[engine]}-key"
        return out

    def queries(self, engine: str | None = None) -> list[str]:
        """The queries received (by ``engine``, if given), oldest first."""
        out = []
        for request in list(self.requests):
            found = self._engine_of(request)
            if found and (engine is None or found == engine):
                body = request.json if isinstance(request.json, dict) else {}
                out.append(request.query.get("q") or body.get("query") or body.get("q") or "")
        return out

    # -- serving -------------------------------------------------------------

    @staticmethod
    def _engine_of(request: RecordedRequest) -> str | None:
        for engine, (method, path) in _ENDPOINT.items():
            if request.method == method and request.path.rstrip("/") == path:
                return engine
        return None

    def faulty(self, request: RecordedRequest) -> bool:
        return self._engine_of(request) is not None

    def delay_ms(self, request: RecordedRequest) -> float:
        engine = self._engine_of(request)
        return self.latency_ms + (self.engines[engine].latency_ms if engine else 0)

    def handle(self, request: RecordedRequest, response: Response) -> None:
        engine = self._engine_of(request)
        if engine is None:
            response.json(404, {"error": f"no such endpoint: {request.method} {request.path}"})
            return
        switches = self.engines[engine]
        if switches.status is not None:
            self._error(engine, switches.status, response)
        elif switches.require_key and not self._has_key(engine, request.headers):
            self._error(engine, 401, response)
        elif engine == "searxng" and request.query.get("format") != "json":
            response.send(403, b"<html><body>403 Forbidden</body></html>")
        else:
            params = request.query if request.method == "GET" else (request.json or {})
            response.json(200, _WRITERS[engine](self, params, switches.empty))

    @staticmethod
    def _has_key(engine: str, headers: dict[str, str]) -> bool:
        if engine == "tavily":
            return headers.get("authorization", "").removeprefix("Bearer ").strip() != ""
        name = {"brave": "x-subscription-token", "exa_ai": "x-api-key", "serper": "x-api-key"}.get(engine)
        return name is None or bool(headers.get(name, "").strip())

    def _hits(self, query: str, limit: int, empty: bool, include: Any = None, exclude: Any = None) -> list[_Doc]:
        if empty or limit <= 0:
            return []
        query, sites = _site_clauses(query)
        include = list(include or []) + sites
        exclude = list(exclude or [])
        index, pages = wcxb_gold_index()
        filtered = bool(include or exclude)
        docs = [
            _Doc(
                self.result_url(h.url),
                h.title,
                h.snippet,
                pages[h.url].text,
                round(h.score, 4),
                pages[h.url].date,
            )
            for h in index.search(query, limit * 10 if filtered else limit)
        ]
        if filtered:
            docs = [d for d in docs if (not include or _in(d.url, include)) and not _in(d.url, exclude)]
        return docs[:limit]

    @staticmethod
    def _error(engine: str, status: int, response: Response) -> None:
        message = {401: "Unauthorized: missing or invalid API key.", 429: "Rate limit exceeded."}.get(
            status, "Internal server error."
        )
        headers = {"Retry-After": "1"} if status == 429 else {}
        if engine == "searxng":
            response.send(status, f"<html><body>{status} {message}</body></html>".encode(), headers=headers)
            return
        bodies: dict[str, Any] = {
            "tavily": {"detail": {"error": message}},
            "brave": {
                "type": "ErrorResponse",
                "error": {
                    "id": str(uuid.uuid4()),
                    "status": status,
                    "code": {401: "SUBSCRIPTION_TOKEN_INVALID", 429: "RATE_LIMITED"}.get(
                        status, "INTERNAL_ERROR"
                    ),
                    "detail": message,
                    "meta": {"component": "api"},
                },
                "time": int(time.time()),
            },
            "exa_ai": {"requestId": uuid.uuid4().hex, "error": message},
            "serper": {"message": message, "statusCode": status},
        }
        response.json(status, bodies[engine], headers)

    # -- one writer per wire format -------------------------------------------

    def _searxng(self, params: dict[str, Any], empty: bool) -> dict[str, Any]:
        query = str(params.get("q", ""))
        docs = self._hits(query, 10, empty)
        return {
            "query": query,
            "number_of_results": len(docs),
            "results": [
                {
                    "url": d.url,
                    "title": d.title,
                    "content": d.snippet,
                    "engine": "fake",
                    "engines": ["fake"],
                    "positions": [i],
                    "score": d.score,
                    "category": "general",
                    "publishedDate": f"{d.date}T00:00:00" if d.date else None,
                }
                for i, d in enumerate(docs, start=1)
            ],
            "answers": [],
            "corrections": [],
            "infoboxes": [],
            "suggestions": [],
            "unresponsive_engines": [],
        }

    def _tavily(self, params: dict[str, Any], empty: bool) -> dict[str, Any]:
        query = str(params.get("query", ""))
        docs = self._hits(query, _int(params.get("max_results"), 5, 20), empty,
                          params.get("include_domains"), params.get("exclude_domains"))
        raw = bool(params.get("include_raw_content"))
        return {
            "query": query,
            "follow_up_questions": None,
            "answer": None,
            "images": [],
            "results": [
                {
                    "title": d.title,
                    "url": d.url,
                    "content": d.snippet,
                    "score": d.score,
                    "raw_content": d.text if raw else None,
                }
                for d in docs
            ],
            "response_time": 0.42,
            "request_id": str(uuid.uuid4()),
        }

    def _brave(self, params: dict[str, Any], empty: bool) -> dict[str, Any]:
        query = str(params.get("q", ""))
        count, offset = _int(params.get("count"), 20, 20), _int(params.get("offset"), 0, 9)
        docs = self._hits(query, count * (offset + 1), empty)[count * offset :]
        decorate = str(params.get("text_decorations", "true")).lower() != "false"
        return {
            "type": "search",
            "query": {"original": query, "more_results_available": len(docs) == count},
            "mixed": {
                "type": "mixed",
                "main": [{"type": "web", "index": i, "all": False} for i in range(len(docs))],
            },
            "web": {
                "type": "search",
                "family_friendly": True,
                "results": [
                    {
                        "title": d.title,
                        "url": d.url,
                        "is_source_local": False,
                        "description": _decorate(d.snippet, query) if decorate else d.snippet,
                        "page_age": f"{d.date}T00:00:00" if d.date else None,
                        "language": "en",
                        "profile": {
                            "name": "Fake Web",
                            "url": self.web_url,
                            "long_name": urlsplit(d.url).netloc,
                        },
                        "meta_url": {
                            "scheme": "http",
                            "netloc": urlsplit(d.url).netloc,
                            "path": urlsplit(d.url).path,
                        },
                        "extra_snippets": [p for p in d.text.split("\n\n")[1:4] if p.strip()],
                    }
                    for d in docs
                ],
            },
        }

    def _exa(self, params: dict[str, Any], empty: bool) -> dict[str, Any]:
        query = str(params.get("query", ""))
        docs = self._hits(query, _int(params.get("numResults"), 10, 100), empty,
                          params.get("includeDomains"), params.get("excludeDomains"))
        text_opt = (params.get("contents") or {}).get("text")
        max_chars = text_opt.get("maxCharacters") if isinstance(text_opt, dict) else None
        results = []
        for d in docs:
            result: dict[str, Any] = {
                "id": d.url,
                "url": d.url,
                "title": d.title,
                "publishedDate": f"{d.date}T00:00:00.000Z" if d.date else None,
                "author": None,
                "score": d.score,
            }
            if text_opt:
                result["text"] = d.text[:max_chars] if isinstance(max_chars, int) else d.text
            results.append(result)
        return {
            "requestId": uuid.uuid4().hex,
            "resolvedSearchType": "neural",
            "results": results,
            "searchType": "neural",
            "costDollars": {"total": 0.005},
        }

    def _serper(self, params: dict[str, Any], empty: bool) -> dict[str, Any]:
        query = str(params.get("q", ""))
        num = _int(params.get("num"), 10, 100)
        docs = self._hits(query, num, empty)
        return {
            "searchParameters": {"q": query, "type": "search", "num": num, "engine": "google"},
            "organic": [
                {
                    "title": d.title,
                    "link": d.url,
                    "snippet": d.snippet,
                    "position": i,
                    **({"date": d.date} if d.date else {}),
                }
                for i, d in enumerate(docs, start=1)
            ],
            "credits": 1,
        }


_WRITERS: dict[str, Callable[[FakeSearch, dict[str, Any], bool], dict[str, Any]]] = {
    "searxng": FakeSearch._searxng,
    "tavily": FakeSearch._tavily,
    "brave": FakeSearch._brave,
    "exa_ai": FakeSearch._exa,
    "serper": FakeSearch._serper,
}
