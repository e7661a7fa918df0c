"""Cache keys: what makes two searches, or two pages, the same.

- A search: the engine (its name, or its ``cache_id`` when one name can mean
  several indexes), the query normalized (Unicode NFKC, case folded,
  whitespace collapsed), ``max_results``, and any search options (domain
  filters, a user location, ...) serialized stably by :func:`stable_options`:
  whatever object they come in (a pydantic model, a dataclass, a mapping),
  keys sorted, ``None`` and empty values dropped, so ``{"a": 1, "b": None}``
  and ``{"a": 1}`` are one key.
- A page: its URL normalized by :func:`normalize_url` (scheme and host lower
  case, default port and fragment dropped, tracking parameters such as
  ``utm_*`` removed, the query sorted, no trailing slash), plus a short hash
  of the extractor's settings (a changed extractor does not reuse old text).

Keys are ``search:v1:<sha256>`` and ``page:v1:<sha256>``: fixed length, no
user text in them (nothing of a query reaches Redis's key space or a log).
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["normalize_query", "normalize_url", "stable_options", "search_key", "page_key", "engine_id"]

#: Query parameters that only track where a click came from.
TRACKING_PARAMS = frozenset({"fbclid", "gclid", "dclid", "msclkid", "yclid", "mc_cid", "mc_eid", "igshid",
                             "_ga", "_gl", "ref_src"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_query(query: str) -> str:
    """``"  Python  3.13 REPL "`` -> ``"python 3.13 repl"`` (NFKC, case folded, single spaces)."""
    return " ".join(unicodedata.normalize("NFKC", query).casefold().split())


def _plain(value: Any) -> Any:
    """``value`` as JSON-ready data, ``None`` and empty containers dropped (:data:`_ABSENT`)."""
    if value is None:
        return _ABSENT
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "model_dump"):  # pydantic
        return _plain(value.model_dump(mode="json", exclude_none=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if isinstance(value, Mapping):
        out = {str(k): v for k, v in ((k, _plain(v)) for k, v in value.items()) if v is not _ABSENT}
        return out or _ABSENT
    if isinstance(value, (set, frozenset)):
        items = sorted((_plain(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True, default=str))
        items = [v for v in items if v is not _ABSENT]
        return items or _ABSENT
    if isinstance(value, (list, tuple)):
        items = [v for v in (_plain(v) for v in value) if v is not _ABSENT]
        return items or _ABSENT
    if hasattr(value, "__dict__"):
        return _plain({k: v for k, v in vars(value).items() if not k.startswith("_")})
    raise TypeError(f"cannot make a cache key of a {type(value).__name__}")


_ABSENT = object()


def stable_options(options: Any) -> str:
    """Search options as canonical JSON (``""`` when there are none)."""
    data = _plain(options)
    if data is _ABSENT:
        return ""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def engine_id(engine: Any) -> str:
    """What identifies an engine's results: its ``cache_id`` if it has one, else its ``name``."""
    return str(getattr(engine, "cache_id", None) or getattr(engine, "name", None) or type(engine).__name__)


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def search_key(engine: str, query: str, max_results: int, options: Any = None) -> str:
    """The key of one search: ``search:v1:<sha256>``."""
    return "search:v1:" + _digest(engine, normalize_query(query), int(max_results), stable_options(options))


def normalize_url(url: str) -> str:
    """``HTTPS://Example.com:443/a/?utm_source=x&b=2&a=1#top`` -> ``https://example.com/a?a=1&b=2``."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = host
    if parts.username or parts.password:
        netloc = f"{parts.username or ''}{':' + parts.password if parts.password else ''}@{host}"
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not k.lower().startswith("utm_") and k.lower() not in TRACKING_PARAMS]
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query)), ""))


@functools.lru_cache(maxsize=1)
def _extractor_tag() -> str:
    from providers.extract import SETTINGS

    return hashlib.sha256(json.dumps(SETTINGS, sort_keys=True, default=str).encode()).hexdigest()[:8]


def page_key(url: str) -> str:
    """The key of one page's extracted text: ``page:v1:<sha256>``."""
    return "page:v1:" + _digest(_extractor_tag(), normalize_url(url))
