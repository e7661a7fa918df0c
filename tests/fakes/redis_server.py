"""A real ``redis-server`` on 127.0.0.1 for tests (no persistence, a free port).

    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)

Pytest fixtures (import them into a test module, or list this module in
``pytest_plugins``):

- ``redis_server``: one server per session; skips when ``redis-server`` is not
  installed, but fails when ``$CI`` is set (CI installs it);
- ``redis_url``: its URL, with the database flushed for this test.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Self

import pytest

__all__ = ["RedisServer", "require_redis_server", "redis_server", "redis_url"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _command(port: int, text: str, timeout: float = 0.5) -> bytes:
    """Send one inline command to the server and return the first reply bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(text.encode() + b"\r\n")
        return sock.recv(1024)


class RedisServer:
    """``redis-server --port N --save '' --appendonly no`` in a temporary directory.

    ``url`` is ``redis://127.0.0.1:N/0`` once started (``port``: a fixed N, e.g. to bring a
    stopped server back at the same address). :meth:`flush` empties it;
    :meth:`stop` (and leaving the ``with`` block) ends the process.
    """

    def __init__(self, binary: str | None = None, *, start_timeout: float = 10.0, port: int | None = None) -> None:
        self.binary = binary or shutil.which("redis-server") or "redis-server"
        self.start_timeout = start_timeout
        #: A fixed port (to restart a server at the same address); None picks a free one.
        self.wanted_port = port
        self.port: int | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @staticmethod
    def available() -> bool:
        """``redis-server`` is on the PATH."""
        return shutil.which("redis-server") is not None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the redis server is not running")
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        self._dir = tempfile.TemporaryDirectory(prefix="grounding-redis-")
        last = "did not start"
        for _ in range(5):  # the free port can be taken between probing and binding
            port = self.wanted_port or _free_port()
            process = subprocess.Popen(
                [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", self._dir.name, "--daemonize", "no", "--loglevel", "warning",
                 "--logfile", os.path.join(self._dir.name, "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + self.start_timeout
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    if _command(port, "PING").startswith(b"+PONG"):
                        self.port, self.process = port, process
                        return self
                except OSError:
                    time.sleep(0.02)
            if process.poll() is None:
                process.kill()
            try:
                err = process.communicate(timeout=5)[1] or b""
            except subprocess.TimeoutExpired:
                err = b""
            log_path = os.path.join(self._dir.name, "redis.log")
            if os.path.exists(log_path):
                with open(log_path, "rb") as fh:
                    err += fh.read()
            last = err.decode(errors="replace").strip()[-500:] or f"exit code {process.returncode}"
        self._cleanup()
        raise RuntimeError(f"redis-server did not start: {last}")

    def flush(self) -> None:
        """Delete every key."""
        if self.port is not None:
            _command(self.port, "FLUSHALL")

    def stop(self) -> None:
        process, self.process, self.port = self.process, None, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if process is not None and process.stderr is not None:
            process.stderr.close()
        self._cleanup()

    def _cleanup(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def require_redis_server() -> None:
    """Skip the calling test when ``redis-server`` is missing; fail instead when ``$CI`` is set."""
    if not RedisServer.available():
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must install it")
        pytest.skip(message)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server for the session (skipped without the binary, unless ``$CI`` is set: then it fails)."""
    require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session redis-server's URL, emptied for this test."""
    redis_server.flush()
    return redis_server.url
