"""Fetching result pages safely: concurrent, bounded, and never into private networks.

:class:`Fetcher` turns URLs into :class:`FetchResult` objects. A page that
cannot be fetched is never fatal: every network, HTTP or policy problem comes
back as ``ok=False`` with a short human ``error``; only programming errors
raise.

What a fetch does, per page:

* **URLs**: only ``http`` and ``https``; anything else is refused.
* **Redirects** are followed by hand (at most ``max_redirects``), so every hop
  goes through the same scheme check and private-network guard as the first.
* **Private-network guard** (off when ``allow_private`` is true or the
  ``GROUNDING_ALLOW_PRIVATE_NETWORKS`` environment variable is ``1``/``true``/
  ``yes``): a host is refused if *any* address it resolves to is loopback,
  private (RFC 1918, ``fc00::/7``), link-local (``169.254/16`` including the
  cloud metadata address, ``fe80::/10``), unspecified, multicast, reserved,
  CGNAT (``100.64/10``) or otherwise not globally routable, judging IPv6 forms
  that embed an IPv4 address (mapped, 6to4, NAT64) by that address. Known
  metadata host names are refused by name. IP literals are checked without DNS.
* **DNS rebinding.** A check that resolves the name and then lets the HTTP
  client resolve it again can be fooled by a DNS server that answers with a
  public address first and a private one second. So the default transport is
  an httpcore connection pool with its own network backend
  (:class:`_GuardedBackend`): it resolves the host itself, checks the
  addresses, and connects to the checked IP. TLS still verifies and sends SNI
  for the host name, because httpcore passes ``server_hostname`` to
  ``start_tls`` separately. This uses only public httpx and httpcore API
  (``httpx.AsyncBaseTransport``, ``httpcore.AsyncConnectionPool(network_backend=)``);
  the cost is :class:`_PinnedTransport`, a small adapter from httpx to that
  pool. (``httpx.AsyncHTTPTransport`` does the same internally but accepts no
  network backend; swapping its private ``_pool`` would be shorter, and would
  break silently on an httpx upgrade.) A ``transport`` passed in by the caller
  cannot be pinned, so for it each hop's host is checked before the request
  instead (which leaves the rebinding gap open for that transport).
* **Timeouts**: httpx's per-operation timeouts, plus a total deadline per page
  (``asyncio.timeout``) covering redirects, the retry and the body.
* **Retries**: at most one, after a short pause, for a connection reset
  before the response arrived or a 502/503/504 that is not a bot wall. It
  shares the page's deadline, so it never makes a page slower than
  ``timeout``; connection refusals, DNS failures and timeouts are not retried
  because a second try rarely changes them.
* **Size cap**: ``max_bytes`` bounds the decoded body. A ``Content-Length``
  over the cap is refused before reading; otherwise the raw body is streamed
  and inflated here (``gzip``/``deflate``, the only codings requested) with
  ``zlib``'s ``max_length``, so a decompression bomb never produces more than
  the cap plus one byte in memory, even within one network chunk.
* **Content types**: HTML, XHTML, plain text and Markdown by default. A
  response without a content type is accepted only if its body looks like
  HTML. ``accept`` (per fetcher or per fetch) takes other media types and
  ``type/*`` patterns (input images and audio: ``image/*``, ``audio/*``); a
  body without a content type is then identified by its first bytes (PNG,
  JPEG, GIF, WebP, WAV, MP3, FLAC, Ogg, PDF).

* **Proxies** (for networks that reach the web only through one): ``proxy``
  (default: the config's ``fetch.proxy``, else ``$GROUNDING_PROXY``, else the
  standard ``$HTTPS_PROXY`` / ``$HTTP_PROXY`` / ``$ALL_PROXY``, lower case
  too) is used through httpx's own proxy transport (``http://`` and
  ``https://`` proxies, ``user:password@`` in the URL for basic auth;
  ``socks5://`` with the ``socksio`` package). Hosts in ``$NO_PROXY`` (and the
  config's ``fetch.no_proxy``: names, ``.domain`` suffixes, IP addresses,
  CIDR ranges, ``*`` for all) are fetched directly. ``"none"`` turns proxies
  off. Through a proxy the guard still checks what it can: the URL's host is
  resolved here and refused if any address is private, before the request
  goes to the proxy, on every redirect too. What it cannot check: the proxy
  resolves the name again and connects itself (so a DNS answer that changes
  between the two lookups, or a name that resolves differently at the proxy,
  is beyond it), and a name this machine cannot resolve at all is refused
  (the proxy might resolve it to anything); block private destinations in
  the proxy's own rules too. Proxy credentials never appear in errors.

Other environment settings are not used (``trust_env=False``). The fetcher is
asyncio-only.
"""
from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import ipaddress
import os
import re
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

import httpcore
import httpx

__all__ = [
    "DEFAULT_USER_AGENT",
    "ALLOW_PRIVATE_ENV",
    "PROXY_ENV",
    "FetchResult",
    "Fetcher",
    "PAGE_TYPES",
    "ProxySettings",
    "proxy_settings",
    "private_networks_allowed",
    "sniff_media_type",
    "type_accepted",
]

DEFAULT_USER_AGENT = "grounding/0.1 (+https://github.com/grounding)"
ALLOW_PRIVATE_ENV = "GROUNDING_ALLOW_PRIVATE_NETWORKS"

_DEFAULT_HEADERS = {
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Language": "en-US,en;q=0.9",
    # Only codings this module inflates itself, under the size cap.
    "Accept-Encoding": "gzip, deflate",
}
#: What a page may be (the default ``accept``).
PAGE_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "text/markdown", "text/x-markdown")
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_RETRY_STATUSES = frozenset({502, 503, 504})
_RETRY_ERRORS = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)
_RETRY_DELAY = 0.25  # seconds
# Response headers that bot-protection services add to their challenge pages.
_BOT_WALL_HEADERS = ("cf-mitigated", "x-datadome", "x-amzn-waf-action")
_HTTP2 = importlib.util.find_spec("h2") is not None

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
_METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


PROXY_ENV = "GROUNDING_PROXY"


@dataclass(frozen=True)
class ProxySettings:
    """Which proxy each scheme uses (None: direct), and the hosts always fetched directly."""

    http: str | None = None
    https: str | None = None
    no_proxy: tuple[str, ...] = ()

    def for_url(self, url: httpx.URL) -> str | None:
        """The proxy for ``url``, or None to fetch it directly."""
        proxy = self.https if url.scheme == "https" else self.http
        if proxy is None or _bypassed(url.host, self.no_proxy):
            return None
        return proxy


def _env(*names: str) -> str | None:
    for name in names:
        for variant in (name, name.lower()):
            value = os.environ.get(variant, "").strip()
            if value:
                return value
    return None


def _bypassed(host: str, entries: Iterable[str]) -> bool:
    """Whether ``host`` matches a ``NO_PROXY`` entry: ``*``, a name (and its subdomains),
    ``.domain``/``*.domain``, an IP address or a CIDR range (``host:port`` entries match the host)."""
    host = host.lower().rstrip(".").strip("[]")
    ip = _ip_literal(host)
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if ip is not None:
            try:
                if ip in ipaddress.ip_network(entry.strip("[]"), strict=False):
                    return True
            except ValueError:
                pass
            continue
        if entry.count(":") == 1:  # host:port
            entry = entry.split(":")[0]
        entry = entry.lstrip("*").lstrip(".").rstrip(".")
        if entry and (host == entry or host.endswith("." + entry)):
            return True
    return False


def _proxy_error(where: str, why: str) -> Exception:
    """A misconfigured proxy: an InvalidRequestError (a ValueError) naming where it came from."""
    from grounding.errors import InvalidRequestError

    return InvalidRequestError(f"page fetching is misconfigured: {where}: {why}", param="fetch.proxy",
                               code="invalid_proxy")


def _check_proxy_url(value: str, where: str) -> str:
    try:
        url = httpx.URL(value if "://" in value else f"http://{value}")
    except httpx.InvalidURL as exc:
        raise _proxy_error(where, f"not a proxy URL ({_redact_userinfo(str(exc))})") from None
    if url.scheme not in ("http", "https", "socks5", "socks5h") or not url.host:
        raise _proxy_error(where, f"a proxy URL is http://host:port (or https://, socks5://), "
                                  f"not {_redact_userinfo(value)!r}")
    if url.scheme.startswith("socks") and importlib.util.find_spec("socksio") is None:
        raise _proxy_error(where, "a SOCKS proxy needs the socksio package (pip install socksio)")
    return str(url)


def proxy_settings(proxy: str | None = None, no_proxy: Iterable[str] = ()) -> ProxySettings:
    """Proxies from ``proxy`` (one for every scheme; ``"none"``: no proxy), else the config's
    ``fetch`` section, else ``$GROUNDING_PROXY``, else ``$HTTPS_PROXY``/``$HTTP_PROXY``/``$ALL_PROXY``;
    ``no_proxy`` plus the config's ``fetch.no_proxy`` plus ``$NO_PROXY``. A malformed proxy URL is
    an :class:`~grounding.errors.InvalidRequestError` (a ValueError, ``param="fetch.proxy"``) naming
    where it came from, never its credentials."""
    configured_no: list[str] = []
    if proxy is None:
        try:
            from grounding.config import get_config

            section = get_config().fetch
            proxy, configured_no = section.proxy, list(section.no_proxy)
            where = "config fetch.proxy"
        except ImportError:  # pragma: no cover (providers used without grounding)
            pass
    else:
        where = "proxy"
    if proxy is None and os.environ.get(PROXY_ENV, "").strip():
        proxy, where = os.environ[PROXY_ENV].strip(), PROXY_ENV
    bypass = tuple(no_proxy) + tuple(configured_no) + tuple((_env("NO_PROXY") or "").split(","))
    if proxy is not None:
        if proxy.strip().lower() in ("none", "off", "direct", ""):
            return ProxySettings()
        one = _check_proxy_url(proxy, where)
        return ProxySettings(http=one, https=one, no_proxy=bypass)
    every = _env("ALL_PROXY")
    https, http = _env("HTTPS_PROXY") or every, _env("HTTP_PROXY") or every
    return ProxySettings(http=_check_proxy_url(http, "HTTP_PROXY") if http else None,
                         https=_check_proxy_url(https, "HTTPS_PROXY") if https else None, no_proxy=bypass)


_USERINFO_RE = re.compile(r"(?<=://)[^/@\s]+@")


def _redact_userinfo(text: str) -> str:
    """``http://user:secret@proxy`` -> ``http://***@proxy``, anywhere in ``text``."""
    return _USERINFO_RE.sub("***@", text)


def private_networks_allowed() -> bool:
    """Whether ``GROUNDING_ALLOW_PRIVATE_NETWORKS`` is ``1``, ``true`` or ``yes``."""
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in {"1", "true", "yes"}


@dataclass
class FetchResult:
    """The outcome of fetching one URL.

    ``final_url``, ``status``, ``content_type`` and ``encoding`` describe the
    last response received (after redirects), so they are set on some failures
    too (``HTTP 404``, a refused redirect) and ``None`` when no response came.
    ``bytes_read`` counts body bytes read off the wire (before decompression).
    ``duration_ms`` is the time spent fetching, excluding any wait for a free
    slot under the fetcher's ``concurrency``.
    """

    url: str
    final_url: str | None
    ok: bool
    status: int | None
    content_type: str | None
    body: bytes | None
    encoding: str | None
    error: str | None
    duration_ms: float
    bytes_read: int


class _PageError(Exception):
    """A reason a page cannot be had; its message becomes ``FetchResult.error``."""


# --- the private-network guard ----------------------------------------------


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, 6to4 or NAT64 IPv6 address reaches."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _forbidden_kind(ip: IPAddress) -> str | None:
    """What kind of non-public address ``ip`` is ("loopback", ...), or ``None`` if public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return _forbidden_kind(embedded)
    if ip in _METADATA_ADDRESSES:
        return "cloud metadata"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared (CGNAT)"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:  # documentation, benchmarking, IETF protocol ranges...
        return "non-public"
    return None


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def _resolve(host: str) -> list[IPAddress]:
    """The addresses ``host`` stands for, in resolver order, without duplicates."""
    literal = _ip_literal(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:  # UnicodeError: a label over 63 characters
        reason = exc.strerror if isinstance(exc, socket.gaierror) else "invalid host name"
        raise _PageError(f"connection failed: cannot resolve {host} ({reason})") from None
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        ip = ipaddress.ip_address(sockaddr[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


async def _resolve_guarded(host: str, *, guard: bool) -> list[IPAddress]:
    """Resolve ``host``; with ``guard``, refuse it unless every address is public."""
    host = host.lower().rstrip(".")
    if guard and host in _METADATA_HOSTS:
        raise _PageError(f"blocked: {host} is a cloud metadata host")
    addresses = await _resolve(host)
    if guard:
        for ip in addresses:
            kind = _forbidden_kind(ip)
            if kind is None:
                continue
            if _ip_literal(host) is not None:
                raise _PageError(f"blocked: {host} is a {kind} address")
            raise _PageError(f"blocked: {host} resolves to a {kind} address ({ip})")
    return addresses


# --- a transport that connects to the addresses it checked -------------------


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that resolves hosts itself and connects by IP.

    With ``guard`` on, hosts with any non-public address are refused (see
    :func:`_resolve_guarded`) before a socket is opened. Addresses are tried in
    resolver order, each given an equal share of what is left of the connect
    timeout, so one unreachable address cannot use it all up.
    """

    def __init__(self, *, guard: bool) -> None:
        self._guard = guard
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve_guarded(host, guard=self._guard)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        last_error: Exception = httpcore.ConnectError(f"no addresses for {host}")
        for index, ip in enumerate(addresses):
            share = None if deadline is None else (deadline - loop.time()) / (len(addresses) - index)
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout=share, local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        raise last_error

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# httpcore exceptions and their httpx counterparts, most specific first.
_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """Re-raise httpcore exceptions as the httpx ones callers expect."""
    try:
        yield
    except Exception as exc:
        for core_type, httpx_type in _HTTPX_ERRORS:
            if isinstance(exc, core_type):
                raise httpx_type(str(exc)) from exc
        raise


class _CoreResponseStream(httpx.AsyncByteStream):
    """An httpcore response body as an httpx byte stream."""

    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once: loading the CA bundle takes ~40 ms.

    Sharing it between pools is safe: httpcore only ever sets the same ALPN list on it.
    """
    return httpx.create_ssl_context()


class _PinnedTransport(httpx.AsyncBaseTransport):
    """An httpx transport over an httpcore pool whose connections use :class:`_GuardedBackend`."""

    def __init__(self, *, guard: bool, max_connections: int) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=5.0,
            http1=True,
            http2=_HTTP2,
            network_backend=_GuardedBackend(guard=guard),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            core_response = await self._pool.handle_async_request(core_request)
        assert isinstance(core_response.stream, AsyncIterable)
        return httpx.Response(
            status_code=core_response.status,
            headers=core_response.headers,
            stream=_CoreResponseStream(core_response.stream),
            extensions=core_response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ProxyRouter(httpx.AsyncBaseTransport):
    """Sends each request through the proxy its URL calls for (httpx's own proxy transport),
    or directly through ``direct``."""

    def __init__(self, direct: httpx.AsyncBaseTransport, proxies: ProxySettings, *, max_connections: int) -> None:
        self.direct = direct
        self.settings = proxies
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                              keepalive_expiry=5.0)
        self._through = {url: httpx.AsyncHTTPTransport(proxy=httpx.Proxy(url), verify=_ssl_context(),
                                                       http2=_HTTP2, limits=limits)
                         for url in {proxies.http, proxies.https} if url}

    def proxied(self, url: httpx.URL) -> bool:
        return self.settings.for_url(url) is not None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        proxy = self.settings.for_url(request.url)
        transport = self._through[proxy] if proxy else self.direct
        return await transport.handle_async_request(request)

    async def aclose(self) -> None:
        for transport in (self.direct, *self._through.values()):
            await transport.aclose()


# --- reading a response -----------------------------------------------------


def _too_large(limit: int) -> str:
    return f"too large: over {limit:,} bytes"


class _CappedBody:
    """Collects a response body, undoing its Content-Encoding, refusing to exceed ``limit`` bytes.

    Inflation uses ``max_length`` so that no single network chunk can expand
    past the cap in memory.
    """

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c not in ("", "identity")]
        if len(codings) > 1 or (codings and codings[0] not in ("gzip", "x-gzip", "deflate")):
            raise _PageError(f"unsupported content encoding {', '.join(codings)}")
        self._coding = codings[0] if codings else None
        self._inflater: zlib._Decompress | None = None
        if self._coding in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif self._coding == "deflate":
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS)
        self._limit = limit
        self._started = False
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, raw: bytes) -> None:
        """Add a chunk as read off the wire."""
        if self._inflater is None:
            self._add(raw)
            return
        try:
            self._add(self._inflate(raw, self._limit - self._size + 1))
        except zlib.error as exc:
            raise _PageError(f"undecodable {self._coding} body ({exc})") from None
        self._started = True

    def finish(self) -> bytes:
        """The whole decoded body."""
        if self._inflater is not None:
            self._add(self._inflater.flush())
        return b"".join(self._parts)

    def _inflate(self, raw: bytes, max_length: int) -> bytes:
        assert self._inflater is not None
        try:
            return self._inflater.decompress(raw, max_length)
        except zlib.error:
            # "deflate" is meant to be zlib-wrapped, but some servers send raw deflate.
            if self._coding != "deflate" or self._started:
                raise
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._inflater.decompress(raw, max_length)

    def _add(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise _PageError(_too_large(self._limit))
        self._parts.append(data)


def _parse_content_type(value: str | None) -> tuple[str | None, str | None]:
    """``(media type, charset)`` from a Content-Type header, lowercased."""
    if not value:
        return None, None
    media_type, *params = value.split(";")
    charset = None
    for param in params:
        name, _, param_value = param.partition("=")
        if name.strip().lower() == "charset" and param_value.strip().strip("\"'"):
            charset = param_value.strip().strip("\"'").lower()
    return media_type.strip().lower() or None, charset


def type_accepted(media_type: str, accept: Sequence[str]) -> bool:
    """Whether ``media_type`` matches one of ``accept`` (exact types or ``type/*``)."""
    major = media_type.split("/", 1)[0] + "/*"
    return media_type in accept or major in accept


#: Leading bytes of the media types this module can tell without a Content-Type.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
          (b"GIF89a", "image/gif"), (b"fLaC", "audio/flac"), (b"OggS", "audio/ogg"), (b"ID3", "audio/mpeg"),
          (b"%PDF-", "application/pdf"))


def sniff_media_type(body: bytes) -> str | None:
    """The media type of an image, audio or PDF body, from its first bytes (``None`` if unknown)."""
    for magic, kind in _MAGIC:
        if body.startswith(magic):
            return kind
    if body[:4] == b"RIFF" and body[8:12] in (b"WEBP", b"WAVE"):
        return "image/webp" if body[8:12] == b"WEBP" else "audio/wav"
    if len(body) > 1 and body[0] == 0xFF and body[1] & 0xE0 == 0xE0:  # an MPEG audio frame
        return "audio/mpeg"
    return None


def _looks_like_html(body: bytes) -> bool:
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith(b"<!doctype html") or b"<html" in head


def _is_bot_wall(response: httpx.Response) -> bool:
    return any(name in response.headers for name in _BOT_WALL_HEADERS)


def _status_error(response: httpx.Response) -> str:
    status = response.status_code
    if status == 429:
        return "HTTP 429 (rate limited by the site)"
    if status == 403 or (status == 503 and _is_bot_wall(response)):
        return f"HTTP {status} (blocked by the site)"
    return f"HTTP {status}"


def _parse_url(url: str | httpx.URL) -> httpx.URL:
    """``url`` as an absolute http(s) URL, or :class:`_PageError`."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise _PageError(f"invalid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise _PageError(f"unsupported URL scheme {parsed.scheme or '(none)'!r}")
    if not parsed.host:
        raise _PageError("invalid URL: no host")
    return parsed


# --- the fetcher ------------------------------------------------------------


class Fetcher:
    """Fetches web pages concurrently over one shared HTTP client.

    ``timeout`` is both httpx's per-operation timeout and the total deadline
    for a page (redirects, retry and body included). ``allow_private=None``
    follows ``GROUNDING_ALLOW_PRIVATE_NETWORKS`` (read here, once). A
    ``transport`` replaces the network layer (for tests or custom stacks);
    the fetcher owns it and closes it with the client, and guards it by
    checking each hop's host before the request. ``proxy`` is a proxy URL for
    every page (``"none"``: no proxy); None follows the config and the
    environment (:func:`proxy_settings`, ``NO_PROXY`` included); a malformed
    proxy URL is an InvalidRequestError (a ValueError) with ``param="fetch.proxy"``. Requests sent through a proxy are guarded by
    checking each hop's host before the request, as for a caller's transport.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        max_bytes: int = 5_000_000,
        max_redirects: int = 5,
        concurrency: int = 8,
        allow_private: bool | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        transport: httpx.AsyncBaseTransport | None = None,
        accept: Sequence[str] = PAGE_TYPES,
        proxy: str | None = None,
    ) -> None:
        if timeout <= 0 or max_bytes < 1 or max_redirects < 0 or concurrency < 1:
            raise ValueError("timeout, max_bytes and concurrency must be positive, max_redirects >= 0")
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._accept = tuple(accept)
        self._max_redirects = max_redirects
        self._slots = asyncio.Semaphore(concurrency)
        guard = not (private_networks_allowed() if allow_private is None else allow_private)
        # A caller's transport connects wherever it likes: check hosts up front.
        self._precheck = guard and transport is not None
        self._guard = guard
        base = transport or _PinnedTransport(guard=guard, max_connections=concurrency)
        proxies = proxy_settings(proxy)
        self._router = _ProxyRouter(base, proxies, max_connections=concurrency) if proxies.http or proxies.https else None
        self._client = httpx.AsyncClient(
            transport=self._router or base,
            headers={**_DEFAULT_HEADERS, "User-Agent": user_agent},
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            trust_env=False,
        )

    async def fetch(self, url: str, *, accept: Sequence[str] | None = None) -> FetchResult:
        """Fetch one page; problems come back as ``ok=False`` with an ``error``.

        ``accept`` overrides the fetcher's accepted media types for this URL.
        """
        accept = tuple(accept) if accept is not None else self._accept
        async with self._slots:
            page = FetchResult(
                url=url, final_url=None, ok=False, status=None, content_type=None,
                body=None, encoding=None, error=None, duration_ms=0.0, bytes_read=0,
            )
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._timeout):
                    page.body = await self._follow(page, accept)
                page.ok = True
            except _PageError as exc:
                page.error = str(exc)
            except (TimeoutError, httpx.TimeoutException):
                page.error = f"timed out after {self._timeout:g} s"
            except httpx.ProxyError as exc:
                page.error = _redact_userinfo(f"proxy error: {str(exc) or type(exc).__name__}")
            except httpx.HTTPError as exc:
                page.error = _redact_userinfo(f"connection failed: {str(exc) or type(exc).__name__}")
            page.duration_ms = (time.perf_counter() - started) * 1000
            return page

    async def fetch_many(self, urls: Sequence[str]) -> list[FetchResult]:
        """Fetch ``urls`` concurrently (at most ``concurrency`` at a time), in order."""
        return list(await asyncio.gather(*(self.fetch(url) for url in urls)))

    async def aclose(self) -> None:
        """Close the HTTP client and its connections."""
        await self._client.aclose()

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _follow(self, page: FetchResult, accept: tuple[str, ...]) -> bytes:
        """Follow redirects from ``page.url`` and return the final body, filling in ``page``."""
        url = _parse_url(page.url.strip())
        for _ in range(self._max_redirects + 1):
            if self._precheck or (self._guard and self._router is not None and self._router.proxied(url)):
                await _resolve_guarded(url.raw_host.decode("ascii"), guard=True)
            response = await self._send(url, accept)
            try:
                page.final_url = str(url)
                page.status = response.status_code
                page.content_type, page.encoding = _parse_content_type(
                    response.headers.get("content-type")
                )
                location = response.headers.get("location")
                if response.status_code in _REDIRECT_STATUSES and location:
                    try:
                        url = _parse_url(url.join(location))
                    except httpx.InvalidURL as exc:
                        raise _PageError(f"bad redirect location {location!r} ({exc})") from None
                    continue
                return await self._read(response, page, accept)
            finally:
                await response.aclose()
        raise _PageError(f"too many redirects (over {self._max_redirects})")

    async def _send(self, url: httpx.URL, accept: tuple[str, ...]) -> httpx.Response:
        """GET ``url`` (headers only), retrying once after a reset or a 502/503/504."""
        headers = None if accept == PAGE_TYPES else {"Accept": ", ".join(accept)}
        request = self._client.build_request("GET", url, headers=headers)
        try:
            response = await self._client.send(request, stream=True)
        except _RETRY_ERRORS:
            await asyncio.sleep(_RETRY_DELAY)
            return await self._client.send(request, stream=True)
        if response.status_code in _RETRY_STATUSES and not _is_bot_wall(response):
            await response.aclose()
            await asyncio.sleep(_RETRY_DELAY)
            return await self._client.send(request, stream=True)
        return response

    async def _read(self, response: httpx.Response, page: FetchResult, accept: tuple[str, ...]) -> bytes:
        """Check status, type and size of a final response, then stream its body."""
        if not response.is_success:
            raise _PageError(_status_error(response))
        if page.content_type is not None and not type_accepted(page.content_type, accept):
            raise _PageError(f"unsupported content type {page.content_type}")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            raise _PageError(_too_large(self._max_bytes))
        if response.is_stream_consumed:
            # Some transports (httpx.MockTransport) hand over a body already read and decoded.
            data = response.content
            page.bytes_read = len(data)
            if len(data) > self._max_bytes:
                raise _PageError(_too_large(self._max_bytes))
        else:
            body = _CappedBody(response.headers.get("content-encoding"), self._max_bytes)
            async for raw in response.aiter_raw():
                page.bytes_read += len(raw)
                body.feed(raw)
            data = body.finish()
        if page.content_type is None:
            sniffed = "text/html" if _looks_like_html(data) else sniff_media_type(data)
            if sniffed is None or not type_accepted(sniffed, accept):
                wanted = "HTML" if accept == PAGE_TYPES else " or ".join(accept)
                raise _PageError(f"unsupported content type (none given, and the body is not {wanted})")
            page.content_type = sniffed
        return data
