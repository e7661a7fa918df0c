"""API keys of ``grounding serve``: where they come from, how a request is checked.

Keys come from the config file (``server.api_keys``: ``key`` or ``key_env``,
``name``, ``write``, ``max_concurrent``) and from two environment variables:
``GROUNDING_API_KEYS`` (comma-separated, read-only keys) and
``GROUNDING_ADMIN_KEYS`` (comma-separated, keys that may also manage routers).

A request sends ``Authorization: Bearer <key>``. The key is compared, in
constant time, against every configured key (SHA-256 digests compared with
:func:`hmac.compare_digest`, all of them, so neither the position nor the
length of a match shows in the timing). A key is known in logs by its
``name``, else by ``key-<first 8 hex digits of its SHA-256>``; the key itself
is never logged nor echoed in an error.

With no key configured at all the server is *open*, and then only for
loopback: :func:`check_bind` refuses a non-loopback listening host, and every
request must come from a loopback client, name a loopback ``Host`` (no DNS
rebinding) and carry no foreign ``Origin`` (no cross-site browser requests).
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..config import Config
from ..errors import AuthenticationError, GroundingError, InvalidRequestError

__all__ = ["ApiKey", "KeyRing", "PermissionDeniedError", "ClientAuthenticationError", "ANONYMOUS",
           "is_loopback_host", "check_bind", "check_open_request", "ENV_READ_KEYS", "ENV_WRITE_KEYS"]

ENV_READ_KEYS = "GROUNDING_API_KEYS"
ENV_WRITE_KEYS = "GROUNDING_ADMIN_KEYS"


class ClientAuthenticationError(AuthenticationError):
    """The client's key to this server is missing or wrong (401); not an upstream's rejection."""


class PermissionDeniedError(GroundingError):
    """The key is valid but may not do this (e.g. manage routers without ``write``)."""

    status_code = 403
    type = "permission_error"


@dataclass(frozen=True)
class ApiKey:
    """A client of the server, as logs and limits know it (never the key itself)."""

    #: The config's ``name``, else ``key-<short hash>``; ``anonymous`` on an open server.
    name: str
    write: bool = False
    #: Concurrent requests allowed (None: the server's ``max_concurrent_per_key``).
    max_concurrent: int | None = None


#: The identity of every request to an open (keyless, loopback-only) server.
ANONYMOUS = ApiKey(name="anonymous", write=True)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def short_hash(key: str) -> str:
    """``key-1a2b3c4d``: how an unnamed key appears in logs."""
    return "key-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class KeyRing:
    """The configured keys; :meth:`authenticate` checks a request's ``Authorization`` header."""

    def __init__(self, keys: Iterable[tuple[str, ApiKey]] = ()) -> None:
        keys = list(keys)
        merged: dict[bytes, ApiKey] = {}
        for secret, who in keys:
            d = _digest(secret)
            if d in merged:  # the same key listed twice: it keeps the wider permission
                prev = merged[d]
                who = ApiKey(prev.name, prev.write or who.write, prev.max_concurrent or who.max_concurrent)
            merged[d] = who
        self._keys: list[tuple[bytes, ApiKey]] = list(merged.items())
        self._secrets = frozenset(s for s, _ in keys)

    @classmethod
    def from_config(cls, config: Config, environ: Mapping[str, str] | None = None) -> "KeyRing":
        """The keys of ``config.server.api_keys`` plus ``$GROUNDING_API_KEYS`` and ``$GROUNDING_ADMIN_KEYS``.

        A config key whose ``key_env`` is unset is an error (the server would
        otherwise start open, or with fewer keys than meant).
        """
        env = os.environ if environ is None else environ
        keys: list[tuple[str, ApiKey]] = []
        for i, entry in enumerate(config.server.api_keys):
            if entry.key:
                secret = entry.key
            elif entry.key_env:
                secret = env.get(entry.key_env) or ""
                if not secret:
                    raise InvalidRequestError(f"config: server.api_keys[{i}]: environment variable "
                                              f"{entry.key_env} is not set", param="config")
            else:
                raise InvalidRequestError(f"config: server.api_keys[{i}]: give key or key_env", param="config")
            keys.append((secret, ApiKey(entry.name or short_hash(secret), entry.write, entry.max_concurrent)))
        for var, write in ((ENV_READ_KEYS, False), (ENV_WRITE_KEYS, True)):
            for secret in _split(env.get(var)):
                keys.append((secret, ApiKey(short_hash(secret), write)))
        return cls(keys)

    @property
    def open(self) -> bool:
        """No key is configured: the server accepts anyone (on loopback only)."""
        return not self._keys

    @property
    def secrets(self) -> frozenset[str]:
        """The keys themselves (for :mod:`grounding.redact`; never log this)."""
        return self._secrets

    def lookup(self, key: str) -> ApiKey | None:
        """The client ``key`` belongs to, or None; constant time in where (and whether) it matches."""
        d = _digest(key)
        found: ApiKey | None = None
        for digest, who in self._keys:
            if hmac.compare_digest(digest, d) and found is None:
                found = who
        return found

    def authenticate(self, authorization: str | None) -> ApiKey:
        """The client of an ``Authorization`` header value; :class:`AuthenticationError` (401) if none."""
        if self.open:
            return ANONYMOUS
        if not authorization:
            raise ClientAuthenticationError(
                "You didn't provide an API key. Send it in the Authorization header: "
                "'Authorization: Bearer YOUR_KEY'.", code="missing_api_key")
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise ClientAuthenticationError("The Authorization header must be 'Bearer YOUR_KEY'.",
                                            code="invalid_api_key")
        who = self.lookup(value)
        if who is None:
            raise ClientAuthenticationError("Incorrect API key provided.", code="invalid_api_key")
        return who


# --------------------------------------------------------------------------- loopback


def is_loopback_host(host: str | None) -> bool:
    """``localhost``, ``127.x.y.z``, ``::1`` (with or without brackets and a port)."""
    if not host:
        return False
    h = host.strip().lower()
    if h.startswith("["):  # [::1]:8000
        h = h[1:].split("]", 1)[0]
    elif h.count(":") == 1:  # 127.0.0.1:8000, localhost:8000
        h = h.split(":", 1)[0]
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: KeyRing) -> None:
    """Refuse to listen on a non-loopback ``host`` without API keys (an :class:`InvalidRequestError`)."""
    if keys.open and not is_loopback_host(host):
        raise InvalidRequestError(
            f"no API keys are configured, so the server only listens on loopback (not {host}): set "
            f"{ENV_READ_KEYS} / {ENV_WRITE_KEYS} or server.api_keys in the config, or use --host 127.0.0.1",
            param="host")


def _origin_host(origin: str) -> str | None:
    m = re.match(r"^[a-z][a-z0-9+.-]*://([^/]+)", origin.strip().lower())
    return m.group(1) if m else None


def check_open_request(client_host: str | None, host_header: str | None, origin: str | None) -> None:
    """On an open server: only loopback clients, loopback ``Host`` names, no foreign ``Origin``."""
    if client_host is not None and not is_loopback_host(client_host):
        raise ClientAuthenticationError("this server has no API keys configured and only accepts requests "
                                  "from this machine", code="missing_api_key")
    if host_header is not None and not is_loopback_host(host_header):
        raise PermissionDeniedError("this server has no API keys configured and only answers requests "
                                    "addressed to localhost", code="permission_denied")
    if origin and (origin.strip() == "null" or not is_loopback_host(_origin_host(origin))):
        raise PermissionDeniedError("this server has no API keys configured and refuses cross-origin "
                                    "browser requests", code="permission_denied")
