"""Running ``grounding serve`` for tests and benchmarks, over real HTTP on 127.0.0.1.

Two ways:

- :class:`LiveServer`: an ASGI app (e.g. ``create_app(config)``) under uvicorn
  in a background thread of this process, on a free port::

      with LiveServer(create_app(config)) as server:
          client = openai.OpenAI(base_url=server.base_url, api_key="k")

  Fast, and the test can look inside the process (logs, the fakes), but the
  app shares this process's globals (config, routers, statistics), so two of
  them are not two independent replicas.

- :class:`ServeProcess`: the real command, ``python -m grounding.cli serve
  --port N [--config FILE]``, in a subprocess with its own environment: what
  a replica behind a load balancer is. It waits for ``GET /health``; its
  output is kept in :attr:`ServeProcess.output` (read it after :meth:`stop`)::

      with ServeProcess(config_path, env={"GROUNDING_ADMIN_KEYS": "k"}) as a, ServeProcess(...) as b:
          httpx.get(f"{a.url}/v1/routers", headers={"Authorization": "Bearer k"})
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Self

import httpx

__all__ = ["LiveServer", "ServeProcess", "free_port", "serve_config"]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Address:
    """Where a started server listens (``host`` and ``port`` set by the subclass)."""

    host: str
    port: int | None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self.port is None:
            raise RuntimeError("the server is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI SDK's ``base_url``: ``{url}/v1``."""
        return f"{self.url}/v1"


class LiveServer(_Address):
    """``app`` served by uvicorn in a daemon thread (its own event loop) on 127.0.0.1.

    The listening socket is bound before the thread starts, so :attr:`url`
    is valid at once and no port race is possible. ``uvicorn_options`` go to
    ``uvicorn.Config`` (``log_level`` defaults to ``warning``; the access log
    is the app's own, through ``logging``).
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1", start_timeout: float = 30.0,
                 **uvicorn_options: Any) -> None:
        self.app = app
        self.host = host
        self.start_timeout = start_timeout
        self.options = {"log_level": "warning", "access_log": False, "lifespan": "on", **uvicorn_options}
        self.port: int | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._error: BaseException | None = None

    def start(self) -> Self:
        import uvicorn

        if self._server is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        sock.listen(256)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, **self.options)
        self._server = server = uvicorn.Server(config)

        def run() -> None:
            try:
                asyncio.run(server.serve(sockets=[sock]))
            except BaseException as exc:  # noqa: BLE001 (reported by start())
                self._error = exc

        self._thread = threading.Thread(target=run, name=f"LiveServer:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the server did not start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start within {self.start_timeout} s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit (open connections are closed) and wait for the thread."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.should_exit = True
        if thread is not None:
            thread.join(timeout=timeout)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout=timeout)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServeProcess(_Address):
    """``grounding serve`` in a subprocess (a replica of its own).

    ``env`` is added to this process's environment (``GROUNDING_*`` keys, provider
    bases...). :meth:`start` waits until ``GET /health`` answers (any status:
    a store that is down still serves health), else raises with the output.
    """

    def __init__(self, config: str | os.PathLike[str] | None = None, *, env: dict[str, str] | None = None,
                 host: str = "127.0.0.1", port: int | None = None, start_timeout: float = 60.0,
                 extra_args: list[str] | None = None) -> None:
        self.config = str(config) if config is not None else None
        self.env = env or {}
        self.host = host
        self.port = port
        self.start_timeout = start_timeout
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen[bytes] | None = None
        self.output = ""
        self._log: Any = None

    def command(self) -> list[str]:
        argv = [sys.executable, "-m", "grounding.cli", "serve", "--host", self.host, "--port", str(self.port)]
        if self.config:
            argv += ["--config", self.config]
        return argv + self.extra_args

    def start(self) -> Self:
        if self.process is not None:
            return self
        for _ in range(3):  # the free port can be taken between probing and binding
            self.port = self.port or free_port()
            self._log = tempfile.TemporaryFile()
            self.process = subprocess.Popen(self.command(), cwd=ROOT, env={**os.environ, **self.env},
                                            stdout=self._log, stderr=subprocess.STDOUT)
            if self._wait_ready():
                return self
            self.stop()
            if "already in use" not in self.output.lower():
                break
            self.port = None
        raise RuntimeError(f"grounding serve did not start:\n{self.output[-3000:]}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                httpx.get(f"{self.url}/health", timeout=1.0)
                return True
            except httpx.HTTPError:
                time.sleep(0.05)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and keep its output in :attr:`output`."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        if self._log is not None:
            self._log.seek(0)
            self.output = self._log.read().decode(errors="replace")
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def serve_config(config: dict[str, Any]) -> Iterator[LiveServer]:
    """``grounding serve``'s app for ``config`` (a config file's content) in a :class:`LiveServer`,
    with an in-memory router store; the process's config and store are reset afterwards."""
    from grounding.config import Config, set_config
    from grounding.server import create_app
    from grounding.server.store import MemoryRouterStore, install

    try:
        with LiveServer(create_app(Config.model_validate(config), store=MemoryRouterStore())) as server:
            yield server
    finally:
        install(None)
        set_config({})
