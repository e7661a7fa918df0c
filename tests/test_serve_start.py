"""``grounding serve`` start-up: a port it cannot have is one clear line and a non-zero exit,
and nothing says "listening" before the port is really held."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.fakes.live_server import ServeProcess


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "grounding.cli", "serve", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_a_busy_port_is_one_line_and_exit_1(family, host):
    with socket.socket(family, socket.SOCK_STREAM) as taken:
        try:
            taken.bind((host, 0))
        except OSError:
            pytest.skip(f"no {host} on this machine")
        taken.listen()
        port = taken.getsockname()[1]
        proc = _serve("--host", host, "--port", str(port))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("grounding: error: port ") and "already in use" in lines[0]
    assert "--port" in lines[0] and "listening" not in proc.stderr and "Traceback" not in proc.stderr


def test_an_address_that_is_not_this_machines_is_one_line():
    proc = _serve("--host", "192.0.2.1", "--port", "8000", env={"GROUNDING_API_KEYS": "sk-test-key-123"})
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "grounding: error: cannot listen on 192.0.2.1:8000: Cannot assign requested address"]


def test_a_free_port_says_listening_and_serves(tmp_path):
    import httpx

    server = ServeProcess(env={"GROUNDING_CACHE_DIR": str(tmp_path)})
    with server:
        assert httpx.get(f"{server.url}/health", timeout=30).json()["status"] == "ok"
        port = server.port
        with socket.socket() as probe:  # the port is really held by the server
            with pytest.raises(OSError):
                probe.bind(("127.0.0.1", port))
    assert f"listening on http://127.0.0.1:{port}" in server.output
