"""The extraction pool: pages extracted in worker processes, a CPU deadline per page, a bounded
queue, workers replaced when they fail, and none left behind."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from providers.extract import extract
from providers.extract_pool import ExtractionError, ExtractPool, PoolSettings, pool_settings
from tests.fakes.extractors import TRIGGER
from tests.fakes.web import page_html, small_page, spin_page, wcxb_ids

ROOT = Path(__file__).resolve().parents[1]
PAGES = [page_html(f"wcxb/{i}") for i in wcxb_ids()[:4]]
BAD = f"<html><body><p>{TRIGGER}</p></body></html>".encode()


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


@pytest.fixture
def make_pool():
    pools: list[ExtractPool] = []

    def make(workers: int = 2, *, max_pending: int = 64, deadline: float = 5.0,
             function: str = "providers.extract:extract") -> ExtractPool:
        pool = ExtractPool(PoolSettings(workers=workers, max_pending=max_pending, cpu_deadline_s=deadline,
                                        function=function))
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pids = pool.pids()
        pool.close()
        assert wait_gone(pids) == [], "workers left behind"


def test_the_pool_extracts_what_extract_does(make_pool):
    pool = make_pool(2)

    async def go():
        return await asyncio.gather(*(pool.extract(p, "https://example.org/a") for p in PAGES))

    got = asyncio.run(go())
    assert got == [extract(p, "https://example.org/a") for p in PAGES]
    assert all(g.text for g in got)
    pids = pool.pids()
    assert len(pids) == 2 and os.getpid() not in pids


def test_a_page_that_spins_fails_alone_and_its_worker_is_replaced(make_pool):
    pool = make_pool(2, deadline=1.0)
    first = pool.submit(PAGES[0]).result(timeout=120)  # both workers up
    assert first.text

    async def go():
        spin = pool.extract(spin_page(), "https://farm.example/")
        others = [pool.extract(p, "https://example.org/") for p in PAGES * 2]
        return await asyncio.gather(spin, *others, return_exceptions=True)

    spin, *others = asyncio.run(go())
    assert isinstance(spin, ExtractionError)
    assert "1 s of CPU" in str(spin) and "too heavy" in str(spin)
    assert [o.text for o in others] == [extract(p, "https://example.org/").text for p in PAGES * 2]
    # the pool goes on, with a fresh worker in place of the one that ran the page
    assert pool.submit(PAGES[1]).result(timeout=120).text
    status = pool.status()
    assert status["deadline"] == 1 and status["failed"] == 1 and status["replaced"] == 1
    deadline = time.monotonic() + 60
    while len(pool.pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(pool.pids()) == 2


def test_a_worker_stuck_in_c_code_is_ended_by_the_kernel(make_pool):
    pool = make_pool(2, deadline=0.5, function="tests.fakes.extractors:stuck_in_c")
    pool.submit(PAGES[0]).result(timeout=120)
    before = set(pool.pids())

    async def go():
        return await asyncio.gather(pool.extract(BAD), *(pool.extract(p) for p in PAGES),
                                    return_exceptions=True)

    stuck, *others = asyncio.run(go())
    assert isinstance(stuck, ExtractionError) and "its worker was ended" in str(stuck)
    assert all(o.text for o in others)
    assert pool.submit(PAGES[2]).result(timeout=120).text
    assert pool.status()["deadline"] == 1
    assert before - set(pool.pids()), "the stuck worker should have been replaced"


def test_a_worker_that_dies_fails_its_page_only(make_pool):
    pool = make_pool(1, function="tests.fakes.extractors:crashes")
    with pytest.raises(ExtractionError, match="exited"):
        pool.submit(BAD).result(timeout=120)
    assert pool.submit(PAGES[0]).result(timeout=120).text  # a new worker took over


def test_an_extractor_error_fails_the_page_and_keeps_the_worker(make_pool):
    pool = make_pool(1, function="tests.fakes.extractors:raises")
    assert pool.submit(PAGES[0]).result(timeout=120).text
    pids = pool.pids()
    with pytest.raises(ExtractionError, match="ValueError: this page broke the extractor"):
        pool.submit(BAD).result(timeout=120)
    assert pool.submit(PAGES[1]).result(timeout=120).text
    assert pool.pids() == pids


def test_the_queue_is_bounded(make_pool):
    pool = make_pool(1, max_pending=2, function="tests.fakes.extractors:slow_wall")
    pool.submit(PAGES[0]).result(timeout=120)  # the worker is up
    running = pool.submit(PAGES[0])
    deadline = time.monotonic() + 10
    while pool.status()["pending"] and time.monotonic() < deadline:  # the worker has taken it
        time.sleep(0.01)
    waiting = [pool.submit(PAGES[0]) for _ in range(2)]
    refused = pool.submit(PAGES[0])
    with pytest.raises(ExtractionError, match="queue is full"):
        refused.result(timeout=1)
    assert running.result(timeout=60).text and all(w.result(timeout=60).text for w in waiting)
    assert pool.status()["rejected"] == 1


def test_a_page_given_up_on_while_queued_is_not_extracted(make_pool):
    pool = make_pool(1, function="tests.fakes.extractors:slow_wall")
    pool.submit(PAGES[0]).result(timeout=120)
    pages_before = pool.status()["pages"]

    async def go():
        busy = asyncio.ensure_future(pool.extract(PAGES[0]))
        queued = asyncio.ensure_future(pool.extract(PAGES[1]))
        await asyncio.sleep(0.2)
        queued.cancel()  # its caller went away (a client disconnected)
        await busy
        return queued

    queued = asyncio.run(go())
    assert queued.cancelled()
    time.sleep(0.3)
    assert pool.status()["pages"] == pages_before + 1


def test_close_ends_every_worker_and_fails_what_waits(make_pool):
    pool = make_pool(1, function="tests.fakes.extractors:slow_wall")
    pool.submit(PAGES[0]).result(timeout=120)
    pids = pool.pids()
    busy = pool.submit(PAGES[0])
    waiting = pool.submit(PAGES[1])
    time.sleep(0.2)
    pool.close(timeout=0.5)
    assert wait_gone(pids) == []
    with pytest.raises(ExtractionError, match="shut down"):
        waiting.result(timeout=10)
    busy.exception(timeout=10)  # settled one way or the other (it may have finished in time), not left hanging


def test_in_process_mode_needs_no_workers(make_pool):
    pool = make_pool(0)
    assert pool.in_process
    assert asyncio.run(pool.extract(PAGES[0])).text == extract(PAGES[0]).text
    assert pool.pids() == [] and pool.status()["mode"] == "in process"


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("GROUNDING_EXTRACT_WORKERS", "3")
    monkeypatch.setenv("GROUNDING_EXTRACT_QUEUE", "7")
    monkeypatch.setenv("GROUNDING_EXTRACT_DEADLINE", "2.5")
    assert pool_settings() == PoolSettings(workers=3, max_pending=7, cpu_deadline_s=2.5)
    monkeypatch.setenv("GROUNDING_EXTRACT_WORKERS", "0")
    monkeypatch.delenv("GROUNDING_EXTRACT_QUEUE")
    assert pool_settings().workers == 0 and pool_settings().max_pending == 64


def _run_python(code: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "GROUNDING_EXTRACT_WORKERS": "2"})


def test_importing_the_library_starts_no_pool():
    out = _run_python("""
        import grounding, grounding.api, grounding.cli, grounding.gather
        import providers.extract_pool as p
        print(p._pool is None)
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_workers_do_not_outlive_a_script_that_exits():
    out = _run_python("""
        from providers.extract_pool import get_pool
        pool = get_pool()
        assert pool.submit("<html><body><p>" + "words " * 50 + "</p></body></html>").result(timeout=120)
        assert pool.wait_ready(120)
        print(*pool.pids())
    """)  # no close(): the atexit hook ends them
    assert out.returncode == 0, out.stderr
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2
    assert wait_gone(pids) == []


def test_workers_exit_when_their_process_is_killed():
    script = """
        import os, signal, sys
        from providers.extract_pool import get_pool
        pool = get_pool()
        pool.submit("<html><body><p>hello there</p></body></html>").result(timeout=120)
        assert pool.wait_ready(120)
        print(*pool.pids(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)   # no atexit, no cleanup at all
    """
    out = _run_python(script)
    assert out.returncode == -9
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2
    assert wait_gone(pids) == []  # their input pipe closed: they exit by themselves


def test_a_spinning_page_fails_alone_while_other_requests_finish(fake_llm, fake_web):
    import concurrent.futures

    import grounding
    from providers.search import register_engine
    from tests.test_loop import ListEngine

    register_engine("spin-list", ListEngine("spin-list", [f"{fake_web.url}/spin", f"{fake_web.url}/page/calm-a"]))
    register_engine("calm-list", ListEngine("calm-list", [f"{fake_web.url}/page/calm-b", f"{fake_web.url}/article"]))
    grounding.set_config({"extraction": {"cpu_deadline_s": 1.0, "workers": 2}})

    def ask(engine):
        return grounding.completion(model="openai/fake-searcher", api_base=f"{fake_llm.url}/v1", api_key="sk-test",
                                    messages=[{"role": "user", "content": "what do these pages say"}],
                                    web_search={"engine": engine, "max_results": 2, "cache": False})

    try:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            spinning = pool.submit(ask, "spin-list")
            calm = [pool.submit(ask, "calm-list") for _ in range(3)]
            calm_results = [c.result(timeout=300) for c in calm]
            spun = spinning.result(timeout=300)
    finally:
        grounding.set_config({})
    for r in calm_results:
        assert [s.status for s in r.metadata.sources] == ["fetched", "fetched"] and not r.metadata.warnings
    by_url = {s.url.rsplit("/", 1)[1]: s for s in spun.metadata.sources}
    assert by_url["spin"].status == "failed" and "1 s of CPU" in by_url["spin"].error
    assert by_url["calm-a"].status == "fetched" and spun.choices[0].message.content
    assert any("spin could not be read" in w and "CPU" in w for w in spun.metadata.warnings)


def test_a_forked_child_gets_a_pool_of_its_own():
    out = _run_python("""
        import os, sys
        from providers.extract_pool import get_pool
        parent_pool = get_pool()
        page = "<html><body><article><p>" + "Some words to read here. " * 20 + "</p></article></body></html>"
        assert parent_pool.submit(page).result(timeout=120).text
        pid = os.fork()
        if pid == 0:  # the child: the parent's pool has no threads here; a new one must serve it
            pool = get_pool()
            ok = pool is not parent_pool and bool(pool.submit(page).result(timeout=120).text)
            pool.close()
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        assert parent_pool.submit(page).result(timeout=120).text  # the parent's pool is untouched
    """)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"
