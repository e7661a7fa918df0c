"""The HTTP plumbing every fake upstream shares.

A :class:`FakeServer` is a real HTTP/1.1 server on 127.0.0.1 (a free port),
serving from a background thread, one thread per connection, so concurrent
and streaming requests work. Subclasses implement :meth:`FakeServer.handle`.
Each request is recorded in :attr:`FakeServer.requests` before it is answered.

Every fake can misbehave the same ways (:data:`FAULTS`), switched on with
``fake.fault = "..."`` for the requests :meth:`FakeServer.faulty` selects
(a fake's API endpoints; every page of the web): ``"429"`` (with
``Retry-After: 1``), ``"500"``, ``"503"``, ``"hang"`` (never answers, until
``reset()`` or ``stop()``), ``"cut"`` (the real answer, cut off halfway: the
connection drops), ``"garbage"`` (200, a body that is not JSON), ``"html"``
(200, an HTML page, as a proxy's error page), ``"empty"`` (200, no body),
``"echo_key"`` (500 whose error message quotes the API key the request sent,
as some APIs do). Wire-specific faults (``"empty_answer"``) are the
subclasses' own.
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

__all__ = ["FakeServer", "RecordedRequest", "Response", "FAULTS", "sent_key"]

#: The faults every fake knows (see the module docstring).
FAULTS = ("429", "500", "503", "hang", "cut", "garbage", "html", "empty", "echo_key")
_HANG_S = 300  # a hang ends by itself after this, or at reset() / stop()


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

    def __init__(self, handler: BaseHTTPRequestHandler, *, cut: bool = False) -> None:
        self._h = handler
        self._chunked = False
        self.started = False
        #: Drop the connection halfway: after half a whole body, or after the second streamed piece.
        self.cut = cut
        self._writes = 0

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
            if self.cut:
                self._h.wfile.write(body[: len(body) // 2])
                self._h.wfile.flush()
                raise ConnectionResetError("cut on purpose")
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
        if self.cut and self._writes >= 2:
            raise ConnectionResetError("cut on purpose")
        self._writes += 1
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
        fault = fake.fault if fake.fault is not None and fake.faulty(request) else None
        response = Response(self, cut=fault == "cut")
        try:
            delay = fake.delay_ms(request)
            if delay > 0:
                time.sleep(delay / 1000)
            if fault is not None and fault != "cut" and fake.misbehave(fault, request, response):
                return
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
        #: One of :data:`FAULTS` (or a subclass's own): how to misbehave on :meth:`faulty` requests.
        self.fault: str | None = None
        self._unhang = threading.Event()
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
        self._unhang.set()
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
        self.fault = None
        self._unhang.set()  # release whatever hangs now
        self._unhang = threading.Event()

    def faulty(self, request: RecordedRequest) -> bool:
        """Whether :attr:`fault` applies to ``request`` (subclasses: their API endpoints only)."""
        return True

    def misbehave(self, fault: str, request: RecordedRequest, response: Response) -> bool:
        """Answer ``request`` with ``fault``; False if this fault is not a generic one (``handle`` decides)."""
        if fault in ("429", "500", "503"):
            status = int(fault)
            message = {429: "Rate limit reached.", 503: "The service is overloaded."}.get(status, "Internal error.")
            headers = {"Retry-After": "1"} if status == 429 else {}
            response.json(status, {"error": {"message": message, "type": "server_error", "code": None}}, headers)
        elif fault == "hang":
            self._unhang.wait(_HANG_S)
            raise ConnectionResetError("stopped hanging")
        elif fault == "garbage":
            response.send(200, b'{"id": "x", "choices": [{"index": 0, "mess', "application/json")
        elif fault == "html":
            response.send(200, b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
                               b"</body></html>", "text/html; charset=utf-8")
        elif fault == "empty":
            response.send(200, b"", "application/json")
        elif fault == "echo_key":
            message = f"Invalid request: the key {sent_key(request) or '(none)'} may not call this endpoint."
            response.json(500, {"error": {"message": message, "type": "server_error"}, "message": message,
                                "detail": message})
        else:
            return False
        return True

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


def sent_key(request: RecordedRequest) -> str | None:
    """The API key a request carried: a Bearer token, a key header or a ``key`` query parameter."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for name in ("x-api-key", "x-subscription-token", "x-goog-api-key", "api-key"):
        if request.headers.get(name):
            return request.headers[name]
    return request.query.get("key") or request.query.get("api_key")
