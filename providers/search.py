"""Search engines behind one small interface, and the registry that names them.

A :class:`SearchEngine` turns a query into :class:`SearchHit` s. The web
engines are litellm's own search clients (``litellm.asearch``), configured by
litellm's env vars (``TAVILY_API_KEY``, ``TAVILY_API_BASE``, ...); ``local`` is
the embedded index of :mod:`providers.local_index`, which needs no network.
Add an engine with :func:`register_engine`.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import os
from dataclasses import asdict, dataclass
from typing import Any, Callable, Protocol, runtime_checkable

from grounding.errors import InvalidRequestError

from .domains import url_in_domains

__all__ = [
    "SearchHit",
    "SearchOptions",
    "SearchEngine",
    "run_search",
    "engine_applies",
    "SearchEngineError",
    "LitellmSearchEngine",
    "LocalSearchEngine",
    "register_engine",
    "get_engine",
    "engine_names",
    "canonical_engine_name",
    "default_engine_name",
    "run_search",
    "secret_env_vars",
    "missing_engine_settings",
    "ready_engine_names",
]


@dataclass(frozen=True)
class SearchHit:
    """One search result. ``content`` is the full text when the engine has it
    (the local index does), in which case the page is not fetched."""

    url: str
    title: str
    snippet: str = ""
    content: str | None = None


@dataclass(frozen=True)
class SearchOptions:
    """How a search is scoped, passed to engines as the ``options`` keyword.

    ``allowed_domains`` / ``excluded_domains`` hold normalized host names
    (:func:`providers.domains.normalize_domain`; a name matches its
    subdomains); at most one of them is non-empty. ``country`` is an ISO
    3166-1 alpha-2 code (upper case); ``region``, ``city`` and ``timezone``
    come from the request's ``user_location``. An engine applies what it can
    and says which in :attr:`SearchEngine.search_options`; the library
    enforces the domain filters on every engine's results anyway.
    """

    allowed_domains: tuple[str, ...] = ()
    excluded_domains: tuple[str, ...] = ()
    country: str | None = None
    region: str | None = None
    city: str | None = None
    timezone: str | None = None

    def key(self) -> str:
        """A stable text key of the options that are set (for caches): equal options, equal keys."""
        data = {k: (sorted(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if v}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def __bool__(self) -> bool:
        return any(asdict(self).values())

    def set_fields(self) -> list[str]:
        """The names of the options that are set, in declaration order."""
        return [k for k, v in asdict(self).items() if v]

    def allows(self, url: str) -> bool:
        """Whether ``url`` passes the domain filters."""
        if self.allowed_domains and not url_in_domains(url, self.allowed_domains):
            return False
        return not (self.excluded_domains and url_in_domains(url, self.excluded_domains))


@runtime_checkable
class SearchEngine(Protocol):
    """What an engine must do: answer a query with at most ``max_results`` hits.

    ``search`` may also take ``options`` (a :class:`SearchOptions`, keyword
    only); engines written for the two-argument form keep working and get
    their results filtered here. An engine that applies some options itself
    lists their names (``"allowed_domains"``, ``"excluded_domains"``,
    ``"country"``...) in an optional ``search_options`` attribute or returns
    them from a ``search_options_for(options)`` method.

    Optional attributes: ``cacheable = False`` keeps its results out of the cache
    (:mod:`grounding.cache`); ``cache_id`` (default: ``name``) tells apart two
    instances with one name that answer differently (another index, another endpoint).
    """

    name: str

    async def search(self, query: str, max_results: int) -> list[SearchHit]: ...


_TAKES_OPTIONS: dict[type, bool] = {}


def _takes_options(engine: Any) -> bool:
    kind = type(engine)
    if kind not in _TAKES_OPTIONS:
        try:
            params = inspect.signature(engine.search).parameters
        except (TypeError, ValueError):
            params = {}
        _TAKES_OPTIONS[kind] = "options" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return _TAKES_OPTIONS[kind]


def engine_applies(engine: Any, options: SearchOptions) -> frozenset[str]:
    """The set options that ``engine`` applies itself (sent to its API or its index)."""
    if not options or not _takes_options(engine):
        return frozenset()
    method = getattr(engine, "search_options_for", None)
    declared = method(options) if callable(method) else getattr(engine, "search_options", ())
    return frozenset(declared or ()) & frozenset(options.set_fields())


class SearchEngineError(Exception):
    """A search failed; the message says why in a few words (shown to users).

    Every configured secret (:mod:`grounding.redact`), and ``secrets``, is
    removed from the message: an API's error text may quote its key."""

    def __init__(self, message: str, *, secrets: tuple[str | None, ...] = ()) -> None:
        from grounding.redact import redact

        super().__init__(redact(message, secrets))


async def run_search(engine: Any, query: str, max_results: int, options: SearchOptions | None = None, *,
                     timeout: float | None = None) -> list[SearchHit]:
    """``engine.search``, with ``options`` when the engine takes them (two-argument engines
    get just the query), within one deadline (``timeout``, default
    ``$GROUNDING_SEARCH_TIMEOUT``, 15 s) enforced here whatever the engine's client
    does: :class:`SearchEngineError` when it passes. An engine's ``prepare()``
    (building an index, once) runs before the deadline starts. The hits come back
    as the engine gave them: enforce the domain filters with
    :meth:`SearchOptions.allows` (engines approximate them)."""
    if timeout is None:
        from grounding.deadlines import deadlines

        timeout = deadlines().search
    prepare = getattr(engine, "prepare", None)
    if prepare is not None:
        await prepare()
    try:
        async with asyncio.timeout(timeout):
            if options and _takes_options(engine):
                return list(await engine.search(query, max_results, options=options))
            return list(await engine.search(query, max_results))
    except TimeoutError:
        raise SearchEngineError(f"{engine.name}: no answer within {timeout:g} s") from None


def secret_env_vars() -> tuple[str, ...]:
    """The environment variables holding search engines' credentials (for redaction)."""
    return tuple(sorted({var for needed in _LITELLM_ENGINES.values() for var in needed
                         if not var.endswith(("_API_BASE", "_ENGINE_ID"))}))


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


#: litellm search providers that take the unified ``search_domain_filter`` (an allow list).
_DOMAIN_FILTER = frozenset({"tavily", "exa_ai", "perplexity", "brave", "serper", "linkup", "searchapi", "you_com",
                            "parallel_ai", "google_pse"})
#: How each provider's API excludes domains (litellm passes these keywords through as they are).
_EXCLUDE_PARAM = {"tavily": "exclude_domains", "exa_ai": "excludeDomains", "parallel_ai": "exclude_domains",
                  "you_com": "exclude_domains", "linkup": "excludeDomains"}
#: Providers litellm gives a two-letter ``country`` (Tavily is left out: its API wants country names).
_COUNTRY = frozenset({"exa_ai", "perplexity", "brave", "serper", "google_pse", "searchapi", "you_com",
                      "parallel_ai", "firecrawl", "searxng"})


class LitellmSearchEngine:
    """A web search engine reached through ``litellm.asearch``.

    ``api_key`` and ``api_base`` override litellm's env vars
    (``<PROVIDER>_API_KEY``, ``<PROVIDER>_API_BASE``). One retry on rate limits,
    5xx and connection errors, within the search's one deadline (:func:`run_search`;
    ``timeout`` is the HTTP client's, per operation). :class:`SearchOptions` go
    through litellm's own parameters where the provider has one:
    ``search_domain_filter`` for allowed domains, the provider's own keyword for
    excluded ones (Tavily's ``exclude_domains``, Exa's ``excludeDomains``,
    Perplexity's ``-domain`` entries), ``country``.
    """

    def __init__(self, provider: str, *, api_key: str | None = None, api_base: str | None = None,
                 timeout: float = 15.0, retries: int = 1) -> None:
        self.name = provider
        self.api_key = api_key
        self.api_base = api_base
        self.timeout = timeout
        self.retries = retries
        if api_key:
            from grounding.redact import register_secret

            register_secret(api_key)

    @property
    def cache_id(self) -> str:
        """What the cache keys this engine's results by: the provider, and its endpoint when one is given."""
        return f"{self.name}@{self.api_base}" if self.api_base else self.name

    def search_options_for(self, options: SearchOptions) -> frozenset[str]:
        """The options this provider's API applies (the rest are enforced on its results)."""
        return frozenset(self._option_kwargs(options)[1])

    def _option_kwargs(self, options: SearchOptions) -> tuple[dict[str, Any], list[str]]:
        kw: dict[str, Any] = {}
        applied: list[str] = []
        p = self.name
        allowed, excluded = list(options.allowed_domains), list(options.excluded_domains)
        # Google PSE takes one site; Perplexity at most 20 entries.
        if allowed and p in _DOMAIN_FILTER and (p != "google_pse" or len(allowed) == 1) \
                and (p != "perplexity" or len(allowed) <= 20):
            kw["search_domain_filter"] = allowed
            applied.append("allowed_domains")
        if excluded and p == "perplexity" and len(excluded) <= 20:
            kw["search_domain_filter"] = [f"-{d}" for d in excluded]
            applied.append("excluded_domains")
        elif excluded and p in _EXCLUDE_PARAM:
            kw[_EXCLUDE_PARAM[p]] = excluded
            applied.append("excluded_domains")
        if options.country and p in _COUNTRY:
            kw["country"] = options.country
            applied.append("country")
        return kw, applied

    async def search(self, query: str, max_results: int, *, options: SearchOptions | None = None
                     ) -> list[SearchHit]:
        from grounding.llm import litellm

        kwargs = {"query": query, "search_provider": self.name, "max_results": max_results, "timeout": self.timeout}
        if options:
            kwargs.update(self._option_kwargs(options)[0])
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
                from grounding.llm import received_status

                status = received_status(exc)
                retryable = status in (429, 500, 502, 503, 504) or status is None and _is_connection_error(exc)
                if attempt >= self.retries or not retryable:
                    raise SearchEngineError(_describe(self.name, exc), secrets=(self.api_key,)) from exc
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

    #: The index is local and already fast, and each instance may index another folder: not cached.
    cacheable = False

    def __init__(self, corpus: str | None = None, *, progress: Callable[[int, int], None] | None = None) -> None:
        self.name = "local"
        self.corpus = corpus if corpus is not None else os.environ.get("GROUNDING_CORPUS") or None
        self._progress = progress
        self._index = None
        self._lock = asyncio.Lock()

    async def prepare(self) -> None:
        """Open (on first use, build) the index; outside the search deadline (:func:`run_search`)."""
        await self._open()

    async def _open(self):
        async with self._lock:
            if self._index is None:
                from .local_index import open_corpus

                # Shielded: a request that gives up does not lose a build half done.
                build = asyncio.ensure_future(asyncio.to_thread(open_corpus, self.corpus,
                                                                self._progress or _report_indexing))
                try:
                    self._index = await asyncio.shield(build)
                except FileNotFoundError as exc:
                    raise SearchEngineError(f"local corpus not found: {exc}") from exc
        return self._index

    async def warm(self) -> None:
        """Open (on first use: build) the index now, e.g. while a model loads; errors surface at search."""
        try:
            await self._open()
        except Exception:  # noqa: BLE001 (the search that needs the index reports it)
            pass

    #: Domain filters are applied inside the index search, so ``max_results`` counts kept pages.
    search_options = frozenset({"allowed_domains", "excluded_domains"})

    async def search(self, query: str, max_results: int, *, options: SearchOptions | None = None
                     ) -> list[SearchHit]:
        index = await self._open()
        filtered = bool(options and (options.allowed_domains or options.excluded_domains))
        # Filtering after the index's ranking: look deeper so max_results pages can pass.
        limit = min(max(max_results * 10, 50), 500) if filtered else max_results
        found = await asyncio.to_thread(index.search, query, limit)
        if filtered:
            assert options is not None
            found = [h for h in found if options.allows(h.url)]
        return [SearchHit(url=h.url, title=h.title, snippet=h.snippet, content=h.text) for h in found[:max_results]]


def _report_indexing(done: int, total: int) -> None:
    """Index-building progress, to the request that is waiting for it (see :mod:`grounding.progress`)."""
    from grounding.progress import report

    report("indexing", f"indexing the corpus: {done:,} of {total:,}", done=done, total=total)


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


def missing_engine_settings(name: str) -> list[str]:
    """The env vars engine ``name`` needs that are not set (``[]``: ready, or not ours to judge:
    an engine registered in code, ``local``, ``native``)."""
    key = canonical_engine_name(name)
    if key in _registry or key not in _LITELLM_ENGINES:
        return []
    return [var for var in _LITELLM_ENGINES[key] if not os.environ.get(var)]


def ready_engine_names() -> list[str]:
    """Engines usable as configured now: registered ones, ``local``, and web engines whose env vars are set."""
    names = set(_registry) | {"local"}
    names |= {n for n in _LITELLM_ENGINES if all(os.environ.get(v) for v in _LITELLM_ENGINES[n])}
    return sorted(names)


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
    """A transport failure (worth a retry), not a local one such as a missing key."""
    import httpx

    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, (ValueError, KeyError, TypeError)) and not isinstance(cause, httpx.TransportError):
        return False  # litellm wraps its own configuration errors as connection errors
    return isinstance(exc, (httpx.TransportError, ConnectionError, asyncio.TimeoutError)) or (
        type(exc).__name__ in {"APIConnectionError", "Timeout", "ServiceUnavailableError"}
    )


def _describe(engine: str, exc: Exception) -> str:
    """One line for a failed search; an HTTP status only when the engine really answered with it."""
    from grounding.llm import received_status, unreadable_answer, upstream_text

    status = received_status(exc)
    first = upstream_text(exc)[:200]
    if unreadable_answer(exc, first):  # litellm gives these a made-up status
        return f"{engine}: the answer could not be read ({first})"
    if status == 429:
        return f"{engine}: rate limited (HTTP 429)"
    if status in (401, 403):
        return f"{engine}: rejected the API key (HTTP {status}); check its env vars"
    if status:
        return f"{engine}: HTTP {status}: {first}"
    if _is_connection_error(exc):
        return f"{engine}: could not connect: {first}"
    return f"{engine}: {first}"
