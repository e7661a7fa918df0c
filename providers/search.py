"""Search engines behind one small interface, and the registry that names them.

A :class:`SearchEngine` turns a query into :class:`SearchHit` s. The web
engines are litellm's own search clients (``litellm.asearch``), configured by
litellm's env vars (``TAVILY_API_KEY``, ``TAVILY_API_BASE``, ...); ``local`` is
the embedded index of :mod:`providers.local_index`, which needs no network.
Add an engine with :func:`register_engine`.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

from grounding.errors import InvalidRequestError

__all__ = [
    "SearchHit",
    "SearchEngine",
    "SearchEngineError",
    "LitellmSearchEngine",
    "LocalSearchEngine",
    "register_engine",
    "get_engine",
    "engine_names",
    "canonical_engine_name",
    "default_engine_name",
]


@dataclass(frozen=True)
class SearchHit:
    """One search result. ``content`` is the full text when the engine has it
    (the local index does), in which case the page is not fetched."""

    url: str
    title: str
    snippet: str = ""
    content: str | None = None


@runtime_checkable
class SearchEngine(Protocol):
    """What an engine must do: answer a query with at most ``max_results`` hits."""

    name: str

    async def search(self, query: str, max_results: int) -> list[SearchHit]: ...


class SearchEngineError(Exception):
    """A search failed; the message says why in a few words (shown to users)."""


# litellm's search providers this library exposes, with the env vars that make
# each usable (used to pick a default engine; litellm reads them itself).
_LITELLM_ENGINES: dict[str, tuple[str, ...]] = {
    "tavily": ("TAVILY_API_KEY",),
    "exa_ai": ("EXA_API_KEY",),
    "brave": ("BRAVE_API_KEY",),
    "serper": ("SERPER_API_KEY",),
    "google_pse": ("GOOGLE_PSE_API_KEY", "GOOGLE_PSE_ENGINE_ID"),
    "perplexity": ("PERPLEXITYAI_API_KEY",),
    "searxng": ("SEARXNG_API_BASE",),
    "duckduckgo": (),
    "parallel_ai": ("PARALLEL_AI_API_KEY",),
    "firecrawl": ("FIRECRAWL_API_KEY",),
    "linkup": ("LINKUP_API_KEY",),
    "searchapi": ("SEARCHAPI_API_KEY",),
    "you_com": ("YOUCOM_API_KEY",),
    "dataforseo": ("DATAFORSEO_LOGIN", "DATAFORSEO_PASSWORD"),
}
_ALIASES = {"exa": "exa_ai", "google": "google_pse", "ddg": "duckduckgo", "you": "you_com"}
# Preference order when picking a default engine from the keys present.
_DEFAULT_ORDER = ("exa_ai", "tavily", "brave", "serper", "google_pse", "perplexity", "searxng")


class LitellmSearchEngine:
    """A web search engine reached through ``litellm.asearch``.

    ``api_key`` and ``api_base`` override litellm's env vars
    (``<PROVIDER>_API_KEY``, ``<PROVIDER>_API_BASE``). One retry on rate limits,
    5xx and connection errors.
    """

    def __init__(self, provider: str, *, api_key: str | None = None, api_base: str | None = None,
                 timeout: float = 15.0, retries: int = 1) -> None:
        self.name = provider
        self.api_key = api_key
        self.api_base = api_base
        self.timeout = timeout
        self.retries = retries

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        from grounding.llm import litellm

        kwargs = {"query": query, "search_provider": self.name, "max_results": max_results, "timeout": self.timeout}
        if self.api_key:
            kwargs["api_key"] = self.api_key
        if self.api_base:
            kwargs["api_base"] = self.api_base
        lm = litellm()
        attempt = 0
        while True:
            try:
                response = await lm.asearch(**kwargs)
                break
            except Exception as exc:  # litellm raises its own exception family per status
                status = getattr(exc, "status_code", None)
                retryable = status in (429, 500, 502, 503, 504) or status is None and _is_connection_error(exc)
                if attempt >= self.retries or not retryable:
                    raise SearchEngineError(_describe(self.name, exc)) from exc
                attempt += 1
                await asyncio.sleep(0.3 * attempt)
        hits = []
        for r in getattr(response, "results", None) or []:
            url = getattr(r, "url", None)
            if url:
                hits.append(SearchHit(url=url, title=getattr(r, "title", "") or "", snippet=getattr(r, "snippet", "") or ""))
        return hits[:max_results]


class LocalSearchEngine:
    """The embedded index over a folder of HTML, Markdown and text files.

    ``corpus`` is a folder, or ``None`` / ``"python-docs"`` for the built-in
    corpus (Python's reference documentation, shipped with every CPython).
    Default: ``$GROUNDING_CORPUS``. The index is built on first use and cached.
    """

    def __init__(self, corpus: str | None = None, *, progress: Callable[[int, int], None] | None = None) -> None:
        self.name = "local"
        self.corpus = corpus if corpus is not None else os.environ.get("GROUNDING_CORPUS") or None
        self._progress = progress
        self._index = None
        self._lock = asyncio.Lock()

    async def _open(self):
        async with self._lock:
            if self._index is None:
                from .local_index import open_corpus

                try:
                    self._index = await asyncio.to_thread(open_corpus, self.corpus, self._progress)
                except FileNotFoundError as exc:
                    raise SearchEngineError(f"local corpus not found: {exc}") from exc
        return self._index

    async def search(self, query: str, max_results: int) -> list[SearchHit]:
        index = await self._open()
        found = await asyncio.to_thread(index.search, query, max_results)
        return [SearchHit(url=h.url, title=h.title, snippet=h.snippet, content=h.text) for h in found]


#: Not an engine: "use the model's own search where it has one".
NATIVE = "native"

_registry: dict[str, Callable[[], SearchEngine]] = {}
_instances: dict[str, SearchEngine] = {}


def register_engine(name: str, engine: SearchEngine | Callable[[], SearchEngine]) -> None:
    """Make ``engine`` selectable as ``web_search={"engine": name}``.

    Pass an engine instance, or a factory called once on first use.
    """
    factory = engine if callable(engine) and not isinstance(engine, SearchEngine) else (lambda e=engine: e)
    _registry[name] = factory  # type: ignore[assignment]
    _instances.pop(name, None)


def engine_names() -> list[str]:
    """Every selectable engine name (aliases excluded)."""
    return sorted(set(_registry) | set(_LITELLM_ENGINES) | {"local", NATIVE})


def canonical_engine_name(name: str) -> str:
    """``exa`` -> ``exa_ai`` and so on; raises InvalidRequestError for an unknown name.

    ``native`` is not an engine but a request for the model's own search (the
    tool loop resolves it per model)."""
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key in _registry or key in _LITELLM_ENGINES or key in ("local", NATIVE):
        return key
    raise InvalidRequestError(
        f"web_search.engine: unknown search engine {name!r}; choose one of: {', '.join(engine_names())}",
        param="web_search.engine",
    )


def default_engine_name() -> str:
    """``$GROUNDING_ENGINE``, else the first web engine whose keys are set, else ``local``."""
    configured = os.environ.get("GROUNDING_ENGINE")
    if configured:
        return canonical_engine_name(configured)
    for name in _DEFAULT_ORDER:
        needed = _LITELLM_ENGINES[name]
        if needed and all(os.environ.get(var) for var in needed):
            return name
    return "local"


def get_engine(name: str) -> SearchEngine:
    """The engine registered under ``name`` (created once, then reused)."""
    key = canonical_engine_name(name)
    if key not in _instances:
        if key in _registry:
            _instances[key] = _registry[key]()
        elif key == "local":
            _instances[key] = LocalSearchEngine()
        else:
            _instances[key] = LitellmSearchEngine(key)
    return _instances[key]


def _is_connection_error(exc: Exception) -> bool:
    import httpx

    return isinstance(exc, (httpx.TransportError, ConnectionError, asyncio.TimeoutError)) or (
        type(exc).__name__ in {"APIConnectionError", "Timeout", "ServiceUnavailableError"}
    )


def _describe(engine: str, exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    text = str(getattr(exc, "message", "") or exc).strip().splitlines()
    first = text[0][:200] if text else type(exc).__name__
    if status == 429:
        return f"{engine}: rate limited (HTTP 429)"
    if status in (401, 403):
        return f"{engine}: rejected the API key (HTTP {status}); check its env vars"
    if status:
        return f"{engine}: HTTP {status}: {first}"
    return f"{engine}: {first}"
