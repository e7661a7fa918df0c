"""The configuration file: providers, models, routers and shared state.

One YAML or JSON file, named by ``$GROUNDING_CONFIG`` (or ``--config`` on the
command line, or passed to :func:`load_config`). Every section is optional::

    providers:                 # OpenAI- or Anthropic-compatible endpoints of your own
      alpha: {litellm_provider: openai, api_base: "http://127.0.0.1:8001/v1", api_key_env: ALPHA_KEY}
    models:                    # catalog entries and overrides (prices per million tokens)
      - {id: my-model, provider: alpha, input_price: 0.2, output_price: 0.8,
         context_window: 32768, capabilities: {tools: true, vision: false},
         scores: {intelligence: 40}}
    routers:                   # inline routers (see grounding.routing.routers)
      - {name: support, routes: [...], default_route: {...}}
    router_files: [routers/]   # more router files, or folders of them
    router_prefix: router      # model="router/<name>"; "inworld/<name>" is always accepted
    redis_url: redis://127.0.0.1:6379/0   # share latency statistics (and routers) between processes
    scores_file: scores.yaml   # intelligence / coding / math scores (default: the shipped file)
    citations:                 # checking citations against their sources (a request's `citations` wins)
      verify: repair           # repair | flag | off (default: $GROUNDING_CITATIONS_VERIFY, else repair)
      verifier: null           # a model id to judge with (default: $GROUNDING_CITATIONS_VERIFIER, else built in)
      fetch: true              # native search: fetch cited pages to check them
    server:                    # grounding serve
      api_keys: [{key_env: GROUNDING_ADMIN_KEY, name: admin, write: true}, {key_env: APP_KEY, name: app}]
      max_body_bytes: 10485760
      max_concurrent_per_key: 64
      router_store: sqlite:///var/lib/grounding/routers.db   # or redis://...; default: redis_url if set, else SQLite
      workers: 1               # server processes on one port (> 1 needs redis_url)
    cache:                     # searches and extracted pages (see grounding.cache)
      backend: memory          # memory | redis | off; default: redis when redis_url is set, else memory
      search_ttl_s: 300
      page_ttl_s: 600
      max_entries: 10000       # in-process backend bounds
      max_mb: 256
    extraction:                # the extraction worker processes (see providers.extract_pool)
      workers: 4               # default: the machine's CPUs; 0: in a thread of this process
      max_pending: 256         # pages waiting at most (default 64 per worker)
      cpu_deadline_s: 5        # CPU seconds a page may take
    fetch:
      proxy: http://proxy.corp:3128   # default: $GROUNDING_PROXY, else $HTTPS_PROXY / $HTTP_PROXY / $ALL_PROXY
      no_proxy: [intranet.corp]       # hosts reached directly (added to $NO_PROXY)

Relative paths are relative to the config file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InvalidRequestError
from .validation import describe

__all__ = ["Config", "CitationsConfig", "ProviderConfig", "ModelConfig", "ServerConfig", "ApiKeyConfig", "CacheConfig",
           "ExtractionConfig", "FetchConfig", "load_config", "get_config", "set_config", "read_data_file"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderConfig(_Strict):
    """An endpoint: which litellm provider speaks its wire format, where it is, its key."""

    litellm_provider: str = "openai"
    api_base: str | None = None
    api_key: str | None = Field(None, repr=False)
    api_key_env: str | None = None

    def key(self) -> str | None:
        if self.api_key:
            return self.api_key
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ModelConfig(_Strict):
    """A catalog entry, or an override of what litellm's model map says."""

    id: str
    provider: str | None = None
    #: What litellm is given; default ``<litellm_provider>/<id>``.
    litellm_model: str | None = None
    input_price: float | None = Field(None, ge=0, description="USD per million input tokens")
    output_price: float | None = Field(None, ge=0, description="USD per million output tokens")
    context_window: int | None = Field(None, ge=1)
    capabilities: dict[str, bool] = Field(default_factory=dict)
    scores: dict[str, float] = Field(default_factory=dict)


class ApiKeyConfig(_Strict):
    """A key clients of ``grounding serve`` send as ``Authorization: Bearer <key>``."""

    key: str | None = Field(None, repr=False)
    key_env: str | None = None
    name: str | None = None
    #: May create, update and delete routers over HTTP.
    write: bool = False
    #: Concurrent requests allowed for this key (None: the server's default).
    max_concurrent: int | None = Field(None, ge=1)

    def value(self) -> str | None:
        return self.key or (os.environ.get(self.key_env) if self.key_env else None)


class ServerConfig(_Strict):
    """``grounding serve``: keys, limits and where routers are stored."""

    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    #: Largest request body accepted (bytes); larger is a 413.
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    #: Concurrent requests per key; more is a 429.
    max_concurrent_per_key: int = Field(64, ge=1)
    #: ``sqlite:///path/routers.db`` (default: in the cache dir), ``redis://...``.
    router_store: str | None = None
    #: Server processes sharing the port (``grounding serve --workers N`` wins); more than 1 needs Redis.
    workers: int | None = Field(None, ge=1)
    #: Streams: seconds to wait for the answer's first token before the 200 and a progress comment
    #: go out anyway (a failure before then keeps its own HTTP status; after, it is an error event).
    stream_first_byte_s: float = Field(0.5, ge=0, le=60)
    #: Streams: seconds of silence before a comment repeats the latest progress line.
    stream_heartbeat_s: float = Field(5.0, gt=0, le=300)


class CacheConfig(_Strict):
    """The cache of search results and extracted pages (:mod:`grounding.cache`).

    Unset fields fall back to the environment (``GROUNDING_CACHE``,
    ``GROUNDING_CACHE_SEARCH_TTL``, ``GROUNDING_CACHE_PAGE_TTL``,
    ``GROUNDING_CACHE_MAX_MB``), then to the defaults.
    """

    #: ``memory``, ``redis`` or ``off``; default: ``redis`` when a Redis URL is configured, else ``memory``.
    backend: str | None = Field(None, pattern="^(memory|redis|off)$")
    #: The Redis of the cache (default: the config's ``redis_url`` / ``$GROUNDING_REDIS_URL``).
    redis_url: str | None = None
    #: Seconds a search result is reused (default 300).
    search_ttl_s: float | None = Field(None, ge=0)
    #: Seconds an extracted page is reused (default 600).
    page_ttl_s: float | None = Field(None, ge=0)
    #: Bounds of the in-process backend (also the fallback of a Redis that is down).
    max_entries: int | None = Field(None, ge=1)
    max_mb: float | None = Field(None, gt=0)


class ExtractionConfig(_Strict):
    """The extraction worker processes (:mod:`providers.extract_pool`); unset fields fall back to
    ``GROUNDING_EXTRACT_WORKERS``, ``GROUNDING_EXTRACT_QUEUE``, ``GROUNDING_EXTRACT_DEADLINE``."""

    #: Worker processes (default: the CPUs this process may use); 0 extracts in a thread of this process.
    workers: int | None = Field(None, ge=0)
    #: Pages waiting for a worker at most; more fail at once (default 64 per worker).
    max_pending: int | None = Field(None, ge=1)
    #: CPU seconds one page may take before it fails (default 5).
    cpu_deadline_s: float | None = Field(None, gt=0)


class FetchConfig(_Strict):
    """How result pages are fetched."""

    #: An HTTP(S) proxy for page fetches (``http://[user:pass@]host:port``); default ``$GROUNDING_PROXY``,
    #: else the standard ``$HTTPS_PROXY`` / ``$HTTP_PROXY`` / ``$ALL_PROXY``. ``"none"``: never a proxy.
    proxy: str | None = None
    #: Hosts (and their subdomains) fetched directly, in addition to ``$NO_PROXY``.
    no_proxy: list[str] = Field(default_factory=list)

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        if value is None or value.strip().lower() in ("none", "off", "direct"):
            return value
        from providers.fetch import _check_proxy_url

        _check_proxy_url(value, "fetch.proxy")  # ValueError -> a config error naming the field
        return value


class CitationsConfig(_Strict):
    """``citations``: the default for checking citations (a request's ``citations`` wins)."""

    #: repair | flag | off (default: ``$GROUNDING_CITATIONS_VERIFY``, else repair).
    verify: Literal["repair", "flag", "off"] | None = None
    #: A model id to judge with (default: ``$GROUNDING_CITATIONS_VERIFIER``, else the built-in judge).
    verifier: str | None = None
    #: Native search: fetch cited pages to check them (default true).
    fetch: bool | None = None


class Config(_Strict):
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: list[ModelConfig] = Field(default_factory=list)
    routers: list[dict[str, Any]] = Field(default_factory=list)
    router_files: list[str] = Field(default_factory=list)
    router_prefix: str = "router"
    redis_url: str | None = None
    scores_file: str | None = None
    server: ServerConfig = Field(default_factory=ServerConfig)
    citations: CitationsConfig = Field(default_factory=CitationsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    extraction: ExtractionConfig = Field(default_factory=ExtractionConfig)
    fetch: FetchConfig = Field(default_factory=FetchConfig)
    #: Where the file was (relative paths resolve against it).
    base_dir: str | None = None

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() or not self.base_dir else Path(self.base_dir) / p

    @property
    def effective_redis_url(self) -> str | None:
        return self.redis_url or os.environ.get("GROUNDING_REDIS_URL") or None


def read_data_file(path: Path, *, where: str, param: str, code: str | None = None) -> Any:
    """Parse a YAML or JSON file (by its suffix); errors name ``where`` and the parser's first line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidRequestError(f"{where}: cannot read it: {exc.strerror or exc}", param=param, code=code) from None
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        if kind == "JSON":
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidRequestError(f"{where}: not valid {kind}: {first}", param=param, code=code) from None


def _read(path: Path) -> dict[str, Any]:
    data = read_data_file(path, where=f"config file {path}", param="config")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidRequestError(f"config file {path} must hold a mapping at the top", param="config")
    return data


def load_config(source: str | os.PathLike[str] | dict[str, Any] | None = None) -> Config:
    """Load a config from a file path or a dict; ``None`` reads ``$GROUNDING_CONFIG`` (or an empty config)."""
    if source is None:
        source = os.environ.get("GROUNDING_CONFIG") or None
        if source is None:
            return Config()
    base_dir = None
    if isinstance(source, dict):
        data = dict(source)
    else:
        path = Path(source).expanduser()
        data = _read(path)
        base_dir = str(path.resolve().parent)
    data.setdefault("base_dir", base_dir)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        what = "unknown key" if err["type"] == "extra_forbidden" else "required" if err["type"] == "missing" \
            else describe(err)
        raise InvalidRequestError(f"config: {where}: {what}", param="config") from None


_current: Config | None = None


def get_config() -> Config:
    """The process's config (loaded from ``$GROUNDING_CONFIG`` on first use)."""
    global _current
    if _current is None:
        _current = load_config()
    return _current


def set_config(config: Config | str | os.PathLike[str] | dict[str, Any] | None) -> Config:
    """Replace the process's config (a :class:`Config`, a path, a dict, or None to reload from the env)."""
    global _current
    _current = config if isinstance(config, Config) else load_config(config)
    _reset_shared_state()
    return _current


def _reset_shared_state() -> None:
    """After a config change: routing state and the cache are rebuilt on next use; the extraction
    pool is restarted if its settings changed (only what is already loaded is touched)."""
    import sys

    from .routing import reset_state

    reset_state()
    cache = sys.modules.get("grounding.cache")
    if cache is not None:
        cache.reset_cache()
    pool = sys.modules.get("providers.extract_pool")
    if pool is not None:
        pool.reconfigure()
