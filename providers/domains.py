"""Domain names for search filters: normalizing what users write, and matching URLs.

A filter entry is a host name (``python.org``, ``docs.python.org``); a URL's
host matches it when it *is* that name or a subdomain of it
(``docs.python.org`` matches ``python.org``, ``notpython.org`` does not), as
Tavily, Exa and Anthropic's ``allowed_domains`` match. Users often paste a URL
or a ``www.`` name: the scheme, a trailing slash, a port and a leading
``www.`` are dropped; a path, a wildcard or anything that is not a host name
is refused with a message saying why.
"""
from __future__ import annotations

import re
from typing import Iterable
from urllib.parse import urlsplit

__all__ = ["normalize_domain", "url_host", "host_matches", "url_in_domains"]

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_domain(value: str) -> str:
    """``"https://www.Python.org/"`` -> ``"python.org"``; raises ``ValueError`` with the reason."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a domain must be a non-empty string like 'python.org'")
    text = value.strip().lower()
    if "://" in text:
        text = urlsplit(text).netloc or ""
    text = text.rstrip("/")
    if "/" in text or "?" in text or "#" in text:
        raise ValueError(f"{value!r}: give a domain like 'python.org', without a path")
    if "*" in text:
        raise ValueError(f"{value!r}: no wildcards; 'example.com' already matches its subdomains")
    text = text.rsplit("@", 1)[-1]
    if text.startswith("[") or text.count(":") > 1:
        raise ValueError(f"{value!r}: give a host name, not an IPv6 address")
    text = text.split(":", 1)[0].rstrip(".")
    if text.startswith("www."):
        text = text[4:]
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{value!r} is not a valid domain name") from None
    labels = text.split(".")
    if not text or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{value!r} is not a valid domain name")
    return text


def url_host(url: str) -> str:
    """The lower-cased host of ``url`` (no port, no trailing dot), ``""`` if it has none."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.rstrip(".").lower()


def host_matches(host: str, domain: str) -> bool:
    """``host`` is ``domain`` or one of its subdomains."""
    return host == domain or host.endswith("." + domain)


def url_in_domains(url: str, domains: Iterable[str]) -> bool:
    """Whether ``url``'s host matches any of ``domains`` (normalized names)."""
    host = url_host(url)
    return bool(host) and any(host_matches(host, d) for d in domains)
