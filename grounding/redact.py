"""Secrets never leave: the one place that knows every configured secret and scrubs it from text.

The secrets are

- environment variables named like credentials (``*_API_KEY``, ``*_KEY``,
  ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``, ...): every provider key litellm
  reads (``OPENAI_API_KEY``...), every search engine's key (the variables of
  :func:`providers.search.secret_env_vars`: ``TAVILY_API_KEY``,
  ``EXA_API_KEY``, ``DATAFORSEO_LOGIN``...), and the server's
  ``GROUNDING_API_KEYS`` / ``GROUNDING_ADMIN_KEYS`` (comma-separated);
- the config file's provider keys (``api_key``, or the variable ``api_key_env`` names);
- keys registered at run time with :func:`register_secret` (the server's client
  keys, an ``api_key`` given to a search engine);
- per call, ``extra`` (the ``api_key`` a caller passed with one request).

Each is replaced by ``***`` as written and URL-encoded (a key in a query
string), in: every :class:`~grounding.errors.GroundingError` message (at
construction), every warning and error of a response's ``metadata``
(:func:`scrub_model`, applied once when a request ends), the server's error
bodies, and every log line of this library's and litellm's loggers
(:class:`RedactingFilter`). Values shorter than 6 characters are not treated
as secrets (they would garble ordinary text).
"""
from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

__all__ = ["redact", "redact_url", "scrub", "scrub_model", "secrets", "register_secret", "RedactingFilter",
           "get_logger", "install_filter", "MASK"]

MASK = "***"
_MIN_LENGTH = 6
#: Names of environment variables whose values are credentials.
_SECRET_ENV = re.compile(r"(_API_KEY|_API_KEYS|_ADMIN_KEYS|_KEY|_KEYS|_TOKEN|_SECRET|_SECRET_ACCESS_KEY|_PASSWORD"
                         r"|_CREDENTIALS)$")
#: Variables holding comma-separated lists of keys.
_LIST_ENV = ("GROUNDING_API_KEYS", "GROUNDING_ADMIN_KEYS")

_registered: set[str] = set()
_lock = threading.Lock()
_cache: tuple[frozenset[str], re.Pattern[str] | None] = (frozenset(), None)


def register_secret(*values: str | None) -> None:
    """Treat ``values`` as secrets from now on, in this process."""
    with _lock:
        _registered.update(v for v in values if v)


def _engine_vars() -> tuple[str, ...]:
    try:
        from providers.search import secret_env_vars
    except ImportError:  # pragma: no cover (the providers package ships with grounding)
        return ()
    return secret_env_vars()


_reading = threading.local()


def _config_keys() -> list[str]:
    if getattr(_reading, "config", False):  # loading the config raised an error, which is being redacted
        return []
    _reading.config = True
    try:
        from .config import get_config

        config = get_config()
    except Exception:  # a broken config file is reported elsewhere; redaction must never fail
        return []
    finally:
        _reading.config = False
    return [key for provider in config.providers.values() if (key := provider.key())]


def secrets(extra: Iterable[str | None] = ()) -> frozenset[str]:
    """Every secret known now (see the module's docstring), plus ``extra``."""
    found: set[str] = set(_registered)
    engine_vars = set(_engine_vars())
    for name, value in os.environ.items():
        upper = name.upper()
        if upper in _LIST_ENV:
            found.update(part.strip() for part in value.split(","))
        elif upper in engine_vars or _SECRET_ENV.search(upper):
            found.add(value.strip())
    found.update(_config_keys())
    found.update(v for v in extra if v)
    return frozenset(s for s in found if len(s) >= _MIN_LENGTH)


def _pattern(known: frozenset[str]) -> re.Pattern[str] | None:
    global _cache
    cached_for, pattern = _cache
    if cached_for == known:
        return pattern
    forms: set[str] = set()
    for secret in known:
        forms.update({secret, quote(secret, safe=""), quote_plus(secret)})
    pattern = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))) if forms else None
    _cache = (known, pattern)
    return pattern


def redact_url(url: str) -> str:
    """``url`` with its password (if any) shown as ``***``: a Redis or store URL fit for a log or a health check."""
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            host = parts.hostname or ""
            netloc = f"{parts.username or ''}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<url>"
    return url


def redact(text: str, extra: Iterable[str | None] = ()) -> str:
    """``text`` with every secret replaced by ``***``."""
    if not text or not isinstance(text, str):
        return text
    pattern = _pattern(secrets(extra))
    return pattern.sub(MASK, text) if pattern is not None else text


def scrub(value: Any, extra: Iterable[str | None] = ()) -> Any:
    """A JSON-like ``value`` (dicts, lists, strings...) with every string redacted (a new value)."""
    pattern = _pattern(secrets(extra))
    return value if pattern is None else _walk(value, pattern, in_place=False)


def scrub_model(model: Any, extra: Iterable[str | None] = ()) -> Any:
    """Redact every string field of a pydantic object, in place (nested objects and lists too); returns it."""
    pattern = _pattern(secrets(extra))
    return model if pattern is None else _walk(model, pattern, in_place=True)


def _walk(item: Any, pattern: re.Pattern[str], *, in_place: bool) -> Any:
    if isinstance(item, str):
        return pattern.sub(MASK, item)
    if isinstance(item, dict):
        if not in_place:
            return {k: _walk(v, pattern, in_place=False) for k, v in item.items()}
        for k, v in item.items():
            item[k] = _walk(v, pattern, in_place=True)
        return item
    if isinstance(item, (list, tuple)):
        items = [_walk(v, pattern, in_place=in_place) for v in item]
        if in_place and isinstance(item, list):
            item[:] = items
            return item
        return items
    fields = getattr(type(item), "model_fields", None)
    if in_place and fields is not None:  # a pydantic object: its fields and extra keys
        for name in [*fields, *(getattr(item, "__pydantic_extra__", None) or {})]:
            value = getattr(item, name, None)
            new = _walk(value, pattern, in_place=True)
            if new is not value:
                setattr(item, name, new)
    return item


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record's message, arguments, traceback and stack."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def install_filter(*targets: logging.Logger | logging.Handler) -> None:
    """Add the redacting filter to loggers (records logged on them) or handlers (every record they emit)."""
    for target in targets:
        if not any(isinstance(f, RedactingFilter) for f in target.filters):
            target.addFilter(_FILTER)


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with the redacting filter on it: how this library's modules log."""
    logger = logging.getLogger(name)
    install_filter(logger)
    return logger
