"""Tests for providers.fetch against real HTTP servers on 127.0.0.1."""
from __future__ import annotations

import asyncio
import gzip
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
import zlib
from collections import Counter
from collections.abc import Coroutine, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from providers import fetch as fetch_mod
from providers.fetch import (
    ALLOW_PRIVATE_ENV,
    DEFAULT_USER_AGENT,
    FetchResult,
    Fetcher,
    private_networks_allowed,
)

PAGE = "<!doctype html><html><head><title>Café</title></head><body><p>Grüße</p></body></html>"
BOMB = gzip.compress(b"\0" * 20_000_000, compresslevel=9)  # ~20 KB that inflates to 20 MB


class _State:
    """What the server saw: hits per path, and how many requests ran at once.

    In-flight requests are counted per generation (``reset`` starts a new one),
    so a request left over from an earlier test (a slow page whose client gave
    up) cannot skew this test's count."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: Counter[str] = Counter()
        self.generation = 0
        self.in_flight: Counter[int] = Counter()
        self.max_in_flight = 0
        self.headers: dict[str, dict[str, str]] = {}
        self.barrier = threading.Barrier(1)

    def reset(self) -> None:
        with self.lock:
            self.hits.clear()
            self.generation += 1
            self.max_in_flight = 0
            self.headers.clear()


STATE = _State()


class Handler(BaseHTTPRequestHandler):
    """Routes by path; query parameters tune the behaviour. Speaks HTTP/1.0."""

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
             content_length: bool = True) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if content_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        with STATE.lock:
            STATE.hits[path] += 1
            hits = STATE.hits[path]
            STATE.headers[path] = dict(self.headers.items())
            generation = STATE.generation
            STATE.in_flight[generation] += 1
            STATE.max_in_flight = max(STATE.max_in_flight, STATE.in_flight[generation])
        try:
            self.route(path, query, hits)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as the test meant it to
        finally:
            with STATE.lock:
                STATE.in_flight[generation] -= 1

    def route(self, path: str, query: dict[str, str], hits: int) -> None:
        html = {"Content-Type": "text/html; charset=utf-8"}
        if path == "/page":
            self.send(200, PAGE.encode("iso-8859-1"), {"Content-Type": 'text/html; Charset="ISO-8859-1"'})
        elif path.startswith("/status/"):
            self.send(int(path.rsplit("/", 1)[1]), b"<html>no</html>", html)
        elif path == "/slow":
            time.sleep(float(query.get("s", "1")))
            self.send(200, f"<html>slow {query.get('id', '')}</html>".encode(), html)
        elif path == "/together":  # answers only once all the barrier's parties are in
            try:
                STATE.barrier.wait()
            except threading.BrokenBarrierError:
                self.send(500, b"alone", html)
            else:
                self.send(200, b"<html>together</html>", html)
        elif path == "/trickle":  # each byte in time, the whole page too late
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            for _ in range(40):
                self.wfile.write(b"<p>x</p>")
                self.wfile.flush()
                time.sleep(0.05)
        elif path == "/redirect":
            self.send(int(query.get("code", "302")), headers={"Location": query["to"]})
        elif path.startswith("/chain/"):  # /chain/3 -> /chain/2 -> ... -> /chain/0 (a page)
            n = int(path.rsplit("/", 1)[1])
            if n == 0:
                self.send(200, PAGE.encode(), html)
            else:
                self.send(301, headers={"Location": f"{n - 1}"})  # relative to /chain/
        elif path == "/loop/a":
            self.send(302, headers={"Location": "/loop/b"})
        elif path == "/loop/b":
            self.send(302, headers={"Location": "/loop/a"})
        elif path == "/big-declared":
            self.send(200, b"<html>" + b"x" * 2000 + b"</html>", html)
        elif path == "/big-streamed":  # no Content-Length: the body ends when the connection does
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            for _ in range(int(query.get("kb", "2000"))):
                self.wfile.write(b"y" * 1000)
        elif path == "/bomb":
            self.send(200, BOMB, {**html, "Content-Encoding": "gzip"})
        elif path == "/gzip":
            self.send(200, gzip.compress(PAGE.encode()), {**html, "Content-Encoding": "gzip"})
        elif path == "/deflate":
            data = zlib.compress(PAGE.encode())
            if query.get("raw"):
                data = data[2:-4]  # strip the zlib wrapper: raw deflate
            self.send(200, data, {**html, "Content-Encoding": "deflate"})
        elif path == "/encoded":
            self.send(200, b"not really encoded", {**html, "Content-Encoding": query["ce"]})
        elif path == "/pdf":
            self.send(200, b"%PDF-1.4 ...", {"Content-Type": "application/pdf"})
        elif path == "/text":
            self.send(200, b"just text", {"Content-Type": "text/plain"})
        elif path == "/untyped":
            self.send(200, PAGE.encode() if query.get("html") else b"\x00\x01binary")
        elif path == "/reset-once":  # drop the first connection without answering
            if hits == 1:
                self.close_connection = True
                return
            self.send(200, b"<html>second try</html>", html)
        elif path == "/503-once":
            self.send(503 if hits == 1 else 200, b"<html>ok</html>", html)
        elif path == "/botwall":
            self.send(503, b"<html>challenge</html>", {**html, "cf-mitigated": "challenge"})
        elif path == "/429":
            self.send(429, b"slow down", html)
        else:
            self.send(404, b"not found", html)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str, list[str]]]:
    """An HTTPS server on 127.0.0.1 whose certificate names only ``pinned.test``.

    Yields its port, the certificate's path (to trust it) and the SNI names it saw.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=pinned.test",
         "-addext", "subjectAltName=DNS:pinned.test"],
        check=True, capture_output=True,
    )
    sni: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment,misc]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], cert, sni
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def base(server: str) -> str:
    STATE.reset()
    return server


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Private networks not allowed (conftest allows them for the other tests)."""
    monkeypatch.delenv(ALLOW_PRIVATE_ENV, raising=False)


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


async def fetch_one(url: str, **options: Any) -> FetchResult:
    options.setdefault("allow_private", True)
    async with Fetcher(**options) as fetcher:
        return await fetcher.fetch(url)


def get(url: str, **options: Any) -> FetchResult:
    return run(fetch_one(url, **options))


# --- success and HTTP errors -------------------------------------------------


def test_success_with_charset(base: str) -> None:
    r = get(f"{base}/page")
    assert r.ok and r.error is None
    assert r.status == 200
    assert r.url == r.final_url == f"{base}/page"
    assert r.content_type == "text/html"
    assert r.encoding == "iso-8859-1"
    assert r.body == PAGE.encode("iso-8859-1")
    assert r.bytes_read == len(PAGE)
    assert r.duration_ms > 0


def test_default_headers(base: str) -> None:
    assert get(f"{base}/page").ok
    sent = {k.lower(): v for k, v in STATE.headers["/page"].items()}
    assert sent["user-agent"] == DEFAULT_USER_AGENT == "grounding/0.1 (+https://github.com/grounding)"
    assert sent["accept"].startswith("text/html,application/xhtml+xml")
    assert sent["accept-language"].startswith("en")
    assert sent["accept-encoding"] == "gzip, deflate"


def test_http_404(base: str) -> None:
    r = get(f"{base}/status/404")
    assert not r.ok and r.error == "HTTP 404" and r.status == 404 and r.body is None


def test_bot_walls_named(base: str) -> None:
    assert get(f"{base}/status/403").error == "HTTP 403 (blocked by the site)"
    assert get(f"{base}/429").error == "HTTP 429 (rate limited by the site)"
    r = get(f"{base}/botwall")
    assert r.error == "HTTP 503 (blocked by the site)"
    assert STATE.hits["/botwall"] == 1  # a challenge page is not retried


def test_unsupported_scheme_and_invalid_urls() -> None:
    assert get("ftp://example.com/file").error == "unsupported URL scheme 'ftp'"
    assert get("javascript:alert(1)").error == "unsupported URL scheme 'javascript'"
    assert get("example.com/page").error == "unsupported URL scheme '(none)'"
    assert get("http:///path").error == "invalid URL: no host"


def test_connection_refused(base: str) -> None:
    with socket.socket() as s:  # bind and close: a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = get(f"http://127.0.0.1:{port}/")
    assert not r.ok and r.status is None and r.error.startswith("connection failed: ")


def test_unresolvable_host() -> None:
    r = get("http://no-such-host.invalid/")
    assert r.error.startswith("connection failed: cannot resolve no-such-host.invalid")
    r = get(f"http://{'a' * 70}.com/")  # a label over 63 characters
    assert r.error.startswith("connection failed: cannot resolve aaa") and r.error.endswith("(invalid host name)")


# --- timeouts and retries ----------------------------------------------------


def test_slow_page_times_out(base: str) -> None:
    r = get(f"{base}/slow?s=2", timeout=0.2)
    assert r.error == "timed out after 0.2 s" and not r.ok and r.body is None


def test_total_deadline_covers_a_trickling_body(base: str) -> None:
    # Every byte arrives within the read timeout; the page as a whole does not.
    r = get(f"{base}/trickle", timeout=0.5)
    assert r.error == "timed out after 0.5 s"
    assert 0 < r.bytes_read < 40 * 8  # cut off part-way through the body


def test_retry_after_connection_reset(base: str) -> None:
    r = get(f"{base}/reset-once")
    assert r.ok and r.body == b"<html>second try</html>"
    assert STATE.hits["/reset-once"] == 2


def test_retry_after_503(base: str) -> None:
    r = get(f"{base}/503-once")
    assert r.ok and STATE.hits["/503-once"] == 2


def test_at_most_one_retry(base: str) -> None:
    r = get(f"{base}/status/502")
    assert r.error == "HTTP 502" and STATE.hits["/status/502"] == 2


# --- redirects ---------------------------------------------------------------


def test_relative_redirect_chain(base: str) -> None:
    r = get(f"{base}/chain/3")
    assert r.ok and r.final_url == f"{base}/chain/0" and r.body == PAGE.encode()
    assert r.url == f"{base}/chain/3"


def test_absolute_redirect_and_303(base: str) -> None:
    r = get(f"{base}/redirect?code=303&to={base}/text")
    assert r.ok and r.final_url == f"{base}/text" and r.body == b"just text"


def test_max_redirects_is_inclusive(base: str) -> None:
    assert get(f"{base}/chain/5", max_redirects=5).ok
    r = get(f"{base}/chain/6", max_redirects=5)
    assert r.error == "too many redirects (over 5)"
    assert r.status == 301 and r.final_url == f"{base}/chain/1"


def test_redirect_loop(base: str) -> None:
    r = get(f"{base}/loop/a", max_redirects=3)
    assert r.error == "too many redirects (over 3)"
    assert STATE.hits["/loop/a"] + STATE.hits["/loop/b"] == 4


def test_redirect_to_unsupported_scheme(base: str) -> None:
    r = get(f"{base}/redirect?to=file:///etc/passwd")
    assert r.error == "unsupported URL scheme 'file'" and r.status == 302


# --- the private-network guard -----------------------------------------------


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://10.0.0.5/", "blocked: 10.0.0.5 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "blocked: 169.254.169.254 is a cloud metadata address"),
        ("http://[::1]:8080/", "blocked: ::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "blocked: ::ffff:127.0.0.1 is a loopback address"),
        ("http://[::ffff:a9fe:a9fe]/", "blocked: ::ffff:a9fe:a9fe is a cloud metadata address"),
        ("http://[fd00:ec2::254]/", "blocked: fd00:ec2::254 is a cloud metadata address"),
        ("http://100.64.1.1/", "blocked: 100.64.1.1 is a shared (CGNAT) address"),
        ("http://0.0.0.0/", "blocked: 0.0.0.0 is a unspecified address"),
        ("http://metadata.google.internal/computeMetadata/v1/", "blocked: metadata.google.internal is a cloud metadata host"),
        ("http://METADATA.google.internal./", "blocked: metadata.google.internal is a cloud metadata host"),
    ],
)
def test_guard_refuses_private_literals_and_metadata(guarded: None, url: str, error: str) -> None:
    r = run(fetch_one(url, allow_private=None))
    assert (r.ok, r.error, r.status) == (False, error, None)


def test_guard_refuses_loopback_server_without_contacting_it(guarded: None, base: str) -> None:
    r = run(fetch_one(f"{base}/page", allow_private=None))
    assert r.error == "blocked: 127.0.0.1 is a loopback address"
    assert STATE.hits["/page"] == 0


def test_guard_refuses_hostname_resolving_to_loopback(guarded: None, base: str) -> None:
    port = base.rsplit(":", 1)[1]
    r = run(fetch_one(f"http://localhost:{port}/page", allow_private=None))
    assert r.error.startswith("blocked: localhost resolves to a loopback address (")
    assert STATE.hits["/page"] == 0


def test_guard_refuses_if_any_address_is_private(
    guarded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def fake_resolve(host: str) -> list[Any]:
        return [ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.1.2.3")]

    monkeypatch.setattr(fetch_mod, "_resolve", fake_resolve)
    r = run(fetch_one("https://mixed.example/", allow_private=None))
    assert r.error == "blocked: mixed.example resolves to a private address (10.1.2.3)"


def test_connection_goes_to_the_checked_address(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend connects to the IP it resolved, so the check and the socket agree."""
    port = base.rsplit(":", 1)[1]
    seen: list[str] = []

    async def fake_resolve(host: str) -> list[Any]:
        seen.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(fetch_mod, "_resolve", fake_resolve)
    r = get(f"http://pinned.test:{port}/page")  # .test never resolves for real
    assert r.ok and seen == ["pinned.test"]
    assert STATE.headers["/page"]["Host"] == f"pinned.test:{port}"


def test_tls_verifies_the_host_name_not_the_pinned_ip(
    tls_server: tuple[int, str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, cert, sni = tls_server

    async def fake_resolve(host: str) -> list[Any]:
        return [ipaddress.ip_address("127.0.0.1")]

    monkeypatch.setattr(fetch_mod, "_resolve", fake_resolve)
    monkeypatch.setattr(fetch_mod, "_ssl_context", lambda: ssl.create_default_context(cafile=cert))
    r = get(f"https://pinned.test:{port}/text")
    assert r.ok and r.body == b"just text"
    assert sni[-1] == "pinned.test"
    # Same address, another name: the certificate does not cover it.
    r = get(f"https://other.test:{port}/text")
    assert r.error.startswith("connection failed: ") and "certificate verify failed" in r.error, r.error
    assert sni[-1] == "other.test"


def test_redirect_to_private_address_refused(
    guarded: None, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend the test server's 127.0.0.1 is public so that the first hop is allowed.
    real_kind = fetch_mod._forbidden_kind
    public = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(fetch_mod, "_forbidden_kind", lambda ip: None if ip == public else real_kind(ip))
    assert run(fetch_one(f"{base}/page", allow_private=None)).ok

    for target, error in [
        ("http://169.254.169.254/latest/", "blocked: 169.254.169.254 is a cloud metadata address"),
        ("http://10.0.0.5/admin", "blocked: 10.0.0.5 is a private address"),
        ("http://[::1]/", "blocked: ::1 is a loopback address"),
    ]:
        r = run(fetch_one(f"{base}/redirect?to={target}", allow_private=None))
        assert (r.ok, r.error, r.status, r.final_url) == (False, error, 302, f"{base}/redirect?to={target}")


def test_env_var_allows_private(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "TRUE")
    assert run(fetch_one(f"{base}/page", allow_private=None)).ok
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, "0")
    assert run(fetch_one(f"{base}/page", allow_private=None)).error.startswith("blocked: ")


def test_allow_private_argument_overrides_env(guarded: None, base: str) -> None:
    assert run(fetch_one(f"{base}/page", allow_private=True)).ok


@pytest.mark.parametrize(
    ("value", "allowed"),
    [("1", True), ("true", True), ("Yes", True), (" TRUE ", True), ("0", False), ("no", False), ("", False)],
)
def test_private_networks_allowed(monkeypatch: pytest.MonkeyPatch, value: str, allowed: bool) -> None:
    monkeypatch.setenv(ALLOW_PRIVATE_ENV, value)
    assert private_networks_allowed() is allowed


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("169.254.1.1", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("100.100.100.200", "shared (CGNAT)"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "private"),  # reserved, which Python also files under private
        ("192.0.2.1", "private"),  # documentation
        ("fc00::1", "private"),
        ("fe80::1", "link-local"),
        ("::", "unspecified"),
        ("ff02::1", "multicast"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 for 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),  # NAT64 for 169.254.169.254
        ("2001:db8::1", "private"),
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
    ],
)
def test_forbidden_kind(address: str, kind: str | None) -> None:
    assert fetch_mod._forbidden_kind(ipaddress.ip_address(address)) == kind


# --- size cap and content encoding -------------------------------------------


def test_size_cap_by_content_length(base: str) -> None:
    r = get(f"{base}/big-declared", max_bytes=1000)
    assert r.error == "too large: over 1,000 bytes" and r.bytes_read == 0 and r.status == 200


def test_size_cap_while_streaming(base: str) -> None:
    r = get(f"{base}/big-streamed", max_bytes=5000)  # 2 MB on offer
    assert r.error == "too large: over 5,000 bytes"
    assert 5000 < r.bytes_read < 200_000  # stopped after a chunk or so
    assert get(f"{base}/big-streamed?kb=20", max_bytes=20_000).body == b"y" * 20_000


def test_gzip_bomb_stopped(base: str) -> None:
    r = get(f"{base}/bomb", max_bytes=100_000)
    assert r.error == "too large: over 100,000 bytes"
    assert r.bytes_read <= len(BOMB)


def test_capped_body_never_inflates_past_the_cap() -> None:
    body = fetch_mod._CappedBody("gzip", limit=1000)
    with pytest.raises(fetch_mod._PageError, match="too large"):
        body.feed(BOMB)  # one chunk that would inflate to 20 MB
    assert body._size == 1001  # zlib stopped one byte past the cap


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/deflate?raw=1"])
def test_compressed_pages_decoded(base: str, path: str) -> None:
    r = get(f"{base}{path}")
    assert r.ok and r.body == PAGE.encode()
    assert r.bytes_read < len(PAGE.encode()) + 30


def test_unsupported_content_encoding(base: str) -> None:
    assert get(f"{base}/encoded?ce=br").error == "unsupported content encoding br"
    assert get(f"{base}/encoded?ce=gzip,%20gzip").error == "unsupported content encoding gzip, gzip"
    assert get(f"{base}/encoded?ce=gzip").error.startswith("undecodable gzip body")


# --- content types -----------------------------------------------------------


def test_pdf_refused(base: str) -> None:
    r = get(f"{base}/pdf")
    assert r.error == "unsupported content type application/pdf"
    assert r.content_type == "application/pdf" and r.body is None and r.bytes_read == 0


def test_text_plain_accepted(base: str) -> None:
    r = get(f"  {base}/text\n")  # stray whitespace around a URL is dropped
    assert r.ok and r.content_type == "text/plain" and r.encoding is None and r.body == b"just text"


def test_missing_content_type_sniffed(base: str) -> None:
    r = get(f"{base}/untyped?html=1")
    assert r.ok and r.content_type == "text/html"
    r = get(f"{base}/untyped")
    assert not r.ok and r.error.startswith("unsupported content type (none given")


# --- concurrency -------------------------------------------------------------


def test_fetch_many_preserves_order(base: str) -> None:
    delays = [0.3, 0.2, 0.1, 0.0]  # slowest first
    urls = [f"{base}/slow?s={d}&id={i}" for i, d in enumerate(delays)]

    async def go() -> list[FetchResult]:
        async with Fetcher(allow_private=True) as fetcher:
            return await fetcher.fetch_many(urls)

    results = run(go())
    assert [r.url for r in results] == urls
    assert [r.body for r in results] == [f"<html>slow {i}</html>".encode() for i in range(len(urls))]


def test_fetch_many_is_concurrent(base: str) -> None:
    # Each page is answered only once all six requests are in at the same time,
    # so fetching them one by one would fail (after the barrier's 2 s).
    STATE.barrier = threading.Barrier(6, timeout=2.0)
    urls = [f"{base}/together?id={i}" for i in range(6)]

    async def go() -> list[FetchResult]:
        async with Fetcher(allow_private=True, concurrency=8) as fetcher:
            return await fetcher.fetch_many(urls)

    results = run(go())
    assert [r.error for r in results] == [None] * 6
    assert STATE.max_in_flight == 6


def test_concurrency_is_bounded(base: str) -> None:
    urls = [f"{base}/slow?s=0.2&id={i}" for i in range(6)]

    async def go() -> list[FetchResult]:
        async with Fetcher(allow_private=True, concurrency=2) as fetcher:
            return await fetcher.fetch_many(urls)

    assert all(r.ok for r in run(go()))
    assert STATE.max_in_flight == 2


def test_fetch_many_of_nothing() -> None:
    async def go() -> list[FetchResult]:
        async with Fetcher() as fetcher:
            return await fetcher.fetch_many([])

    assert run(go()) == []


# --- a transport passed in ---------------------------------------------------


def test_transport_passed_in_is_used() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"Content-Type": "text/html"}, content=b"<html>mock</html>")

    r = get("https://example.com/x", transport=httpx.MockTransport(handler))
    assert r.ok and r.body == b"<html>mock</html>"
    assert [str(q.url) for q in seen] == ["https://example.com/x"]
    assert seen[0].headers["user-agent"] == DEFAULT_USER_AGENT


def test_transport_bodies_already_in_memory_are_capped() -> None:
    # httpx.Response(content=...) arrives already read; the cap still applies.
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Type": "text/plain"}, content=b"z" * 2000)

    r = get("https://example.com/", transport=httpx.MockTransport(handler), max_bytes=1000)
    assert r.error == "too large: over 1,000 bytes"


def test_transport_passed_in_is_guarded_hop_by_hop(guarded: None) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.host == "93.184.216.34":
            return httpx.Response(302, headers={"Location": "http://10.0.0.5/secret"})
        return httpx.Response(200, headers={"Content-Type": "text/html"}, content=b"<html>secret</html>")

    transport = httpx.MockTransport(handler)
    assert run(fetch_one("http://10.0.0.5/", allow_private=None, transport=transport)).error == (
        "blocked: 10.0.0.5 is a private address"
    )
    r = run(fetch_one("http://93.184.216.34/", allow_private=None, transport=transport))
    assert r.error == "blocked: 10.0.0.5 is a private address" and r.status == 302
    assert seen == ["http://93.184.216.34/"]


def test_fetcher_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        Fetcher(concurrency=0)
