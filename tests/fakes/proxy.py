"""FakeProxy: a small real HTTP forward proxy on 127.0.0.1, as corporate networks have.

- ``GET http://host:port/path`` (absolute-form, as clients send to a proxy): forwarded to the
  target over a new connection, the answer relayed (status, type, encoding, body);
- ``CONNECT host:port`` (what clients send for ``https://`` URLs): a tunnel to the target;
- ``require_auth = ("user", "secret")``: anything without that ``Proxy-Authorization: Basic``
  gets ``407 Proxy Authentication Required``.

:attr:`FakeProxy.targets` lists what it was asked for, oldest first: the absolute URL of each
forwarded request, ``"CONNECT host:port"`` for each tunnel.
"""
from __future__ import annotations

import base64
import http.client
import select
import socket
from urllib.parse import urlsplit

from tests.fakes.base import FakeServer, RecordedRequest, Response, _Handler

__all__ = ["FakeProxy"]

_HOP_HEADERS = {"proxy-authorization", "proxy-connection", "connection", "keep-alive", "te", "trailer",
                "transfer-encoding", "upgrade", "host"}


class _ProxyHandler(_Handler):
    def do_CONNECT(self) -> None:  # noqa: N802 (http.server's naming)
        fake: FakeProxy = self.server.fake  # type: ignore[assignment]
        with fake._lock:
            fake.targets.append(f"CONNECT {self.path}")
        if not fake.authorized(self.headers.get("Proxy-Authorization")):
            self.send_response(407)
            self.send_header("Proxy-Authenticate", 'Basic realm="fake"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        host, _, port = self.path.rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=5)
        except (OSError, ValueError):
            self.send_response(502)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        sockets = [self.connection, upstream]
        try:
            while True:
                ready, _, _ = select.select(sockets, [], [], 5)
                if not ready:
                    break
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is self.connection else self.connection).sendall(data)
        except OSError:
            pass
        finally:
            upstream.close()


class FakeProxy(FakeServer):
    """A forward proxy (see the module docs)."""

    handler_class = _ProxyHandler

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []
        self.require_auth: tuple[str, str] | None = None

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.targets.clear()
        self.require_auth = None

    def authorized(self, header: str | None) -> bool:
        if self.require_auth is None:
            return True
        expected = "Basic " + base64.b64encode(":".join(self.require_auth).encode()).decode()
        return header == expected

    def handle(self, request: RecordedRequest, response: Response) -> None:
        # BaseHTTPRequestHandler keeps the absolute-form target whole: rebuild it from the Host header.
        query = "&".join(f"{k}={v}" for k, v in request.query.items())
        target = f"http://{request.headers.get('host', '')}{request.path}" + (f"?{query}" if query else "")
        with self._lock:
            self.targets.append(target)
        if not self.authorized(request.headers.get("proxy-authorization")):
            response.send(407, b"proxy authentication required", "text/plain",
                          {"Proxy-Authenticate": 'Basic realm="fake"'})
            return
        parts = urlsplit(target)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=10)
        try:
            headers = {k: v for k, v in request.headers.items() if k not in _HOP_HEADERS}
            conn.request(request.method, parts.path + (f"?{parts.query}" if parts.query else ""),
                         body=request.body or None, headers=headers)
            upstream = conn.getresponse()
            body = upstream.read()
            extra = {k: v for k, v in upstream.getheaders()
                     if k.lower() in ("content-encoding", "location", "cf-mitigated")}
            response.send(upstream.status, body, upstream.getheader("Content-Type") or "application/octet-stream",
                          extra)
        except OSError as exc:
            response.send(502, f"proxy could not reach {parts.netloc}: {exc}".encode(), "text/plain")
        finally:
            conn.close()
