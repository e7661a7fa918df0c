"""The HTTP plumbing every fake upstream shares.

A :class:`FakeServer` is a real HTTP/1.1 server on 127.0.0.1 (a free port),
serving from a background thread, one thread per connection, so concurrent
and streaming requests work. Subclasses implement :meth:`FakeServer.handle`.
Each request is recorded in :attr:`FakeServer.requests` before it is answered.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeServer", "RecordedRequest", "Response"]


@dataclass
class RecordedRequest:
    """One request as the fake received it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    received_at: float = field(default_factory=time.monotonic)


class Response:
    """Writes one HTTP response: whole (:meth:`send`, :meth:`json`) or in pieces (:meth:`start`)."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self._h = handler
        self._chunked = False
        self.started = False

    def send(
        self,
        status: int,
        body: bytes = b"",
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send a complete response with a Content-Length (no body for HEAD, 204 and 304)."""
        if status in (204, 304):
            body = b""
        self._head(status, content_type, {**(headers or {}), "Content-Length": str(len(body))})
        if self._h.command != "HEAD":
            self._h.wfile.write(body)

    def json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """Send ``payload`` as ``application/json``."""
        self.send(status, json.dumps(payload).encode(), "application/json", headers)

    def start(
        self,
        status: int,
        content_type: str,
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        """Start a response written piece by piece with :meth:`write`, then :meth:`end`.

        Without ``length`` the body is sent chunked (as streaming APIs do).
        """
        self._chunked = length is None
        framing = {"Transfer-Encoding": "chunked"} if length is None else {"Content-Length": str(length)}
        self._head(status, content_type, {**(headers or {}), **framing})

    def write(self, data: bytes) -> None:
        """Send the next piece of the body, flushed at once."""
        if not data:
            return
        if self._chunked:
            self._h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self._h.wfile.write(data)
        self._h.wfile.flush()

    def end(self) -> None:
        """Finish the body started with :meth:`start`."""
        if self._chunked:
            self._h.wfile.write(b"0\r\n\r\n")
            self._h.wfile.flush()
        self._chunked = False

    def _head(self, status: int, content_type: str, headers: dict[str, str]) -> None:
        self.started = True
        self._h.send_response(status)
        self._h.send_header("Content-Type", content_type)
        for name, value in headers.items():
            self._h.send_header(name, value)
        self._h.end_headers()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET  # noqa: N815 (http.server's naming)

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, add=False)

    def _dispatch(self) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        request = RecordedRequest(
            method=self.command,
            path=split.path,
            query={k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            json=parsed,
        )
        with fake._lock:
            fake.requests.append(request)
        response = Response(self)
        try:
            delay = fake.delay_ms(request)
            if delay > 0:
                time.sleep(delay / 1000)
            fake.handle(request, response)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # a bug in a fake: answer 500 with the traceback
            if response.started:
                self.close_connection = True
            else:
                response.send(500, traceback.format_exc().encode(), "text/plain; charset=utf-8")

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # benchmarks open many connections at once
    fake: FakeServer


class FakeServer:
    """Base of the fakes: start/stop, context manager, request log, latency.

    ``latency_ms`` delays every answer (after the request is recorded).
    """

    #: The request handler class (a subclass may add methods, e.g. CONNECT).
    handler_class: type[BaseHTTPRequestHandler] = _Handler

    def __init__(self, *, latency_ms: float = 0) -> None:
        self.latency_ms = latency_ms
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread."""
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), self.handler_class)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop every open connection."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def reset(self) -> None:
        """Forget recorded requests and switch failures off (subclasses extend)."""
        with self._lock:
            self.requests.clear()
        self.latency_ms = 0

    def delay_ms(self, request: RecordedRequest) -> float:
        """How long to wait before answering ``request``."""
        return self.latency_ms

    def handle(self, request: RecordedRequest, response: Response) -> None:
        """Answer one request."""
        raise NotImplementedError

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
