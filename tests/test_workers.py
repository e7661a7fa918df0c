"""``grounding serve --workers N``: several processes on one port, sharing the cache (and routers,
statistics and limits) through Redis; a clear start-up error without a shared store; and no process
left behind when the server stops or one of its workers dies."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fakes.live_server import ROOT, ServeProcess
from tests.test_extract_pool import alive, wait_gone

QUESTION = "nutrition trends for fall"


def descendants(pid: int) -> dict[int, str]:
    """``pid``'s descendants and their command lines."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out: dict[int, str] = {}
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop()
        try:
            out[p] = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        todo += children.get(p, [])
    return {p: cmd for p, cmd in out.items() if alive(p)}


def server_workers(pid: int) -> list[int]:
    return [p for p, cmd in descendants(pid).items() if "spawn_main" in cmd]


def extraction_workers(pid: int) -> list[int]:
    return [p for p, cmd in descendants(pid).items() if "providers.extract_worker" in cmd]


def ready(pid: int) -> bool:
    """Two server processes, each with its extraction worker(s) up."""
    workers = server_workers(pid)
    return len(workers) == 2 and all(extraction_workers(w) for w in workers)


def test_more_than_one_worker_without_a_shared_store_is_a_clear_startup_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("GROUNDING_REDIS_URL", "GROUNDING_CONFIG")}
    out = subprocess.run([sys.executable, "-m", "grounding.cli", "serve", "--workers", "2", "--port", "1"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert out.stdout == "" and len(out.stderr.strip().splitlines()) == 1
    assert "--workers 2 needs a shared store" in out.stderr and "redis_url" in out.stderr
    config = tmp_path / "g.yaml"
    config.write_text(yaml.safe_dump({"server": {"workers": 3}}))
    out = subprocess.run([sys.executable, "-m", "grounding.cli", "serve", "--config", str(config)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "--workers 3 needs a shared store" in out.stderr


@pytest.fixture(scope="module")
def _two_workers(tmp_path_factory, redis_server, _fake_llm_server, _fake_search_server):
    """One ``grounding serve --workers 2`` for the module (its tests run in order: the last stops it)."""
    tmp_path = tmp_path_factory.mktemp("workers")
    config = tmp_path / "grounding.yaml"
    config.write_text(yaml.safe_dump({
        "providers": {"fake": {"litellm_provider": "openai", "api_base": f"{_fake_llm_server.url}/v1",
                               "api_key": "k"}},
        "redis_url": redis_server.url}))
    env = {"GROUNDING_ALLOW_PRIVATE_NETWORKS": "1", "GROUNDING_CACHE_DIR": str(tmp_path / "cache"),
           "GROUNDING_API_KEYS": "", "GROUNDING_ADMIN_KEYS": "", **_fake_search_server.env()}
    env.pop("GROUNDING_EXTRACT_WORKERS", None)
    server = ServeProcess(config, env=env, extra_args=["--workers", "2"], start_timeout=120).start()
    try:
        deadline = time.monotonic() + 120  # /health answers as soon as one worker is up
        while time.monotonic() < deadline and not ready(server.process.pid):
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


@pytest.fixture
def two_workers(_two_workers, redis_server, fake_llm, fake_search, fake_web):
    redis_server.flush()  # an empty shared cache for each test
    return _two_workers


def ask(server):
    r = httpx.post(f"{server.url}/v1/chat/completions", timeout=120, headers={"Connection": "close"},
                   json={"model": "fake/fake-searcher", "messages": [{"role": "user", "content": QUESTION}],
                         "web_search": {"engine": "searxng"}})
    assert r.status_code == 200, r.text
    return r.json()


def test_two_processes_serve_one_port_and_share_the_cache(two_workers, fake_search, fake_web):
    pid = two_workers.process.pid
    workers = server_workers(pid)
    assert len(workers) == 2
    # each server process has its own, one per core: connections are not balanced between the
    # processes, so one of them may need every core
    from providers.extract_pool import default_workers

    assert [len(extraction_workers(w)) for w in workers] == [default_workers()] * 2
    answers = [ask(two_workers) for _ in range(6)]
    assert fake_search.queries("searxng") == [QUESTION]  # one search, whichever process answered
    assert len(fake_web.requests) == 3
    assert sum(not a["metadata"]["searches"][0]["cached"] for a in answers) == 1
    health = httpx.get(f"{two_workers.url}/health", timeout=30).json()
    assert health["status"] == "ok" and health["cache"]["backend"] == "redis" and health["limits"]["backend"] == "redis"


def test_a_worker_that_dies_takes_its_extraction_workers_with_it_and_is_replaced(two_workers):
    pid = two_workers.process.pid
    victim = server_workers(pid)[0]
    its_extractors = extraction_workers(victim)
    assert its_extractors
    os.kill(victim, signal.SIGKILL)
    assert wait_gone(its_extractors) == []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (len(server_workers(pid)) == 2 and victim not in server_workers(pid)):
        time.sleep(0.2)
    assert len(server_workers(pid)) == 2 and victim not in server_workers(pid)  # uvicorn started another
    ask(two_workers)


def test_stopping_the_server_leaves_no_process_behind(two_workers):
    pid = two_workers.process.pid
    ask(two_workers)
    everything = list(descendants(pid))
    assert len(everything) >= 4  # 2 server processes, their extraction workers (and uvicorn's helpers)
    two_workers.stop()
    assert wait_gone(everything) == []
