"""Progress everywhere a user waits: the Python callback, progress chunks in a stream, the
server's SSE comments and opt-in progress events (through the official ``openai`` SDK),
and the CLI streaming the answer while progress goes to stderr.

All over real HTTP on 127.0.0.1: FakeLLM (OpenAI wire), the fake search APIs, the fake web.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk as OpenAIChunk

import grounding
from grounding.config import Config, set_config
from grounding.progress import STAGES, ProgressEvent
from grounding.server import create_app
from grounding.server.store import MemoryRouterStore, install
from tests.fakes.live_server import LiveServer

QUESTION = "nutrition trends for fall"
WEB = {"engine": "searxng", "max_results": 2}


def ask(fake_llm, **kw):
    kw.setdefault("messages", [{"role": "user", "content": QUESTION}])
    kw.setdefault("web_search", WEB)
    return grounding.completion(model="openai/fake-searcher", api_base=f"{fake_llm.url}/v1", api_key="sk-test", **kw)


def stages(events):
    return [e.stage for e in events]


# --------------------------------------------------------------------------- the Python API


def test_the_callback_gets_one_event_type_through_a_streamed_answer(fake_llm, fake_search, fake_web):
    events: list[ProgressEvent] = []
    threads: set[int] = set()

    def on_progress(event):
        events.append(event)
        threads.add(threading.get_ident())

    chunks = list(ask(fake_llm, stream=True, progress=on_progress))
    assert chunks and all(isinstance(e, ProgressEvent) for e in events)
    assert all(e.stage in STAGES for e in events)
    seen = stages(events)
    # In order: the model, the search turn, the search, the pages, reading, writing.
    order = ["resolving", "thinking", "searching", "fetching", "fetched", "reading", "writing"]
    assert [s for s in dict.fromkeys(seen) if s in order] == order, seen
    assert str(events[0]) == "model: openai/fake-searcher"  # str(event) is the human line
    searching = next(e for e in events if e.stage == "searching")
    assert searching.query == QUESTION and str(searching) == f"searching: {QUESTION}"
    fetched = [e for e in events if e.stage == "fetched"]
    assert [e.done for e in fetched] == [1, 2] and {e.total for e in fetched} == {2}
    assert all(e.url and e.url.startswith(fake_web.url) for e in fetched)
    assert next(e for e in events if e.stage == "reading").total == 2  # two sources to read
    # Stamped with the time since the request started, in order; delivered on one thread (the loop's).
    elapsed = [e.elapsed_ms for e in events]
    assert all(x is not None for x in elapsed) and elapsed == sorted(elapsed)
    assert len(threads) == 1
    # "writing" comes when the first token arrives: after it, only the citations' check.
    assert set(seen[seen.index("writing") + 1:]) <= {"checking"}


def test_a_non_streamed_answer_reports_up_to_reading(fake_llm, fake_search, fake_web):
    events: list[ProgressEvent] = []
    result = ask(fake_llm, progress=events.append)
    assert result.choices[0].message.content
    assert "reading" in stages(events) and "writing" not in stages(events)
    assert set(stages(events)[stages(events).index("reading") + 1:]) <= {"checking"}


def test_a_callback_that_raises_never_fails_the_request(fake_llm, fake_search, fake_web):
    def broken(event):
        raise RuntimeError("a bug in the caller's progress bar")

    assert ask(fake_llm, progress=broken).choices[0].message.content


def test_progress_chunks_in_the_stream_say_what_the_callback_says(fake_llm, fake_search, fake_web):
    events: list[ProgressEvent] = []
    chunks = list(ask(fake_llm, stream=True, progress=events.append,
                      stream_options={"include_progress": True, "include_usage": True}))
    progress = [c for c in chunks if c.progress is not None]
    assert [p.progress for p in progress] == [e.to_dict() for e in events]
    for c in progress:
        data = c.to_dict()
        assert data["choices"] == [] and data["object"] == "chat.completion.chunk"
        OpenAIChunk.model_validate(data)  # the openai package's own type takes it (progress is an extra)
    first_content = next(i for i, c in enumerate(chunks) if c.choices and c.choices[0].delta.content)
    # progress, then the answer (only the citations' check comes after its first token)
    assert all(chunks.index(p) < first_content for p in progress if p.progress["stage"] != "checking")
    # Without the option, none.
    assert not [c for c in ask(fake_llm, stream=True) if c.progress is not None]


# --------------------------------------------------------------------------- the server


def _app(fake_llm, **server):
    config = {"providers": {"alpha": {"litellm_provider": "openai", "api_base": f"{fake_llm.url}/v1",
                                      "api_key": "sk-upstream-test-1"}},
              "models": [{"id": "fake-searcher", "provider": "alpha", "capabilities": {"tools": True}}],
              "server": server}
    return create_app(Config.model_validate(config), store=MemoryRouterStore())


@pytest.fixture
def serve(_fake_llm_server):
    servers = []

    def start(**server_settings):
        live = LiveServer(_app(_fake_llm_server, **server_settings)).start()
        servers.append(live)
        return live

    yield start
    for live in servers:
        live.stop()
    install(None)
    set_config({})


def _sse_lines(response):
    return [line for line in response.iter_lines() if line]


def test_a_slow_answer_shows_life_at_once_and_while_waiting(serve, fake_llm, fake_search, fake_web):
    server = serve(stream_first_byte_s=0, stream_heartbeat_s=0.2)
    fake_llm.model_latency_ms = {"fake-searcher": 1200}  # every model turn waits 1.2 s
    body = {"model": "alpha/fake-searcher", "messages": [{"role": "user", "content": QUESTION}],
            "stream": True, "web_search": WEB}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200
        lines = _sse_lines(r)
    comments = [line for line in lines if line.startswith(": ")]
    data = [line for line in lines if line.startswith("data: ")]
    assert lines[0].startswith(": ")  # the first byte is a comment, before any chunk
    assert len(comments) >= 3  # and more while the model was silent
    assert any("searching: " + QUESTION in c for c in comments) or any("thinking" in c for c in comments)
    assert data[-1] == "data: [DONE]"
    answer = "".join(json.loads(d[6:])["choices"][0]["delta"].get("content") or ""
                     for d in data[:-1] if json.loads(d[6:])["choices"])
    assert answer.strip()


def test_the_sdk_takes_progress_events_and_ignores_comments(serve, fake_llm, fake_search, fake_web):
    server = serve(stream_first_byte_s=0)
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="alpha/fake-searcher", messages=[{"role": "user", "content": QUESTION}], stream=True,
        stream_options={"include_progress": True}, extra_body={"web_search": WEB})
    chunks = list(stream)
    progress = [c.model_extra["progress"] for c in chunks if (c.model_extra or {}).get("progress")]
    assert [p["stage"] for p in progress][:3] == ["resolving", "thinking", "searching"]
    assert {"fetched", "reading", "writing"} <= {p["stage"] for p in progress}
    assert all(c.choices == [] for c in chunks if (c.model_extra or {}).get("progress"))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()


def test_the_server_refuses_the_python_only_progress_argument_with_a_hint(serve, fake_llm):
    server = serve()
    r = httpx.post(f"{server.url}/v1/chat/completions", json={
        "model": "alpha/fake-searcher", "messages": [{"role": "user", "content": "hi"}], "progress": True})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "progress" and "include_progress" in error["message"]


def test_a_failure_after_the_stream_started_is_an_error_event_the_sdk_raises(serve, fake_llm, fake_search,
                                                                               fake_web):
    server = serve(stream_first_byte_s=0)
    fake_llm.error_status = 500
    client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
    stream = client.chat.completions.create(model="alpha/fake-searcher",
                                            messages=[{"role": "user", "content": QUESTION}], stream=True,
                                            extra_body={"web_search": WEB})
    with pytest.raises(openai.APIError) as err:
        list(stream)
    assert err.value.body["type"] == "upstream_error"


# --------------------------------------------------------------------------- the CLI


def test_the_cli_streams_the_answer_to_stdout_while_it_is_written(fake_llm, fake_search, tmp_path):
    fake_llm.chunk_ms = 250  # the answer arrives over a few seconds
    env = {**os.environ, **fake_search.env(), "OPENAI_API_BASE": f"{fake_llm.url}/v1", "OPENAI_API_KEY": "sk-test",
           "GROUNDING_CACHE_DIR": str(tmp_path / "cache"), "GROUNDING_ALLOW_PRIVATE_NETWORKS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "grounding.cli", "ask", QUESTION, "--model", "openai/fake-searcher",
                             "--engine", "searxng", "--max-results", "2"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.read(1)  # blocks until the first byte of the answer
        still_writing = proc.poll() is None
        rest, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert first and still_writing  # the answer began on stdout while the model was still writing
    answer, _, sources = (first + rest).partition("\nSources:\n")
    assert answer.strip() and sources
    for line in ("model: openai/fake-searcher", "searching: " + QUESTION, "fetching 2 pages", "reading 2 sources",
                 "writing the answer"):
        assert line in err, err
    assert "Task was destroyed" not in err and "never awaited" not in err


# --------------------------------------------------------------------------- a small model's profile


def test_a_question_first_profile_searches_the_question_and_reports_reading_progress(fake_llm, fake_search,
                                                                                  fake_web):
    from providers.models import ModelProfile, register_profile

    # Driven like the embedded model: the question searched without a search turn, llama.cpp's
    # prompt progress asked for (the fake speaks llama.cpp's dialect when asked: return_progress).
    register_profile("openai/fake-small", ModelProfile(first_query="question", prompt_progress=True,
                                                       source_token_budget=700))
    events: list[ProgressEvent] = []
    chunks = list(grounding.completion(model="openai/fake-small", api_base=f"{fake_llm.url}/v1", api_key="sk-test",
                                       messages=[{"role": "user", "content": QUESTION}], web_search=WEB,
                                       stream=True, progress=events.append))
    meta = chunks[-1].metadata
    assert meta.queries == [QUESTION] and [t.kind for t in meta.turns] == ["answer"]
    (request,) = fake_llm.chat_requests()  # one model call: the answer
    assert request.json.get("return_progress") is True
    assert "thinking" not in stages(events)
    reading = [e for e in events if e.stage == "reading" and e.done is not None]
    # litellm passes the first of llama.cpp's progress chunks on (how much there is to read)
    assert reading and reading[0].done == 0 and str(reading[0]) == f"reading the sources: {reading[0].total:,} tokens"
    turn = meta.turns[0]
    assert turn.prompt_tokens_per_s == 40.0 and turn.output_tokens_per_s == 10.0 and turn.cached_prompt_tokens == 0
    # Not streamed: no progress to ask for, and nothing but the answer turn either.
    fake_llm.reset()
    result = grounding.completion(model="openai/fake-small", api_base=f"{fake_llm.url}/v1", api_key="sk-test",
                                  messages=[{"role": "user", "content": QUESTION}], web_search=WEB)
    assert result.choices[0].message.content and "return_progress" not in fake_llm.chat_requests()[0].json


def test_an_engine_that_can_warm_up_starts_before_the_first_search(fake_llm, fake_web):
    """The local index builds while a model loads: the loop calls an engine's warm() at the start."""
    from providers.search import SearchHit, register_engine

    calls: list[str] = []

    class Warmable:
        name = "warmable"

        async def warm(self):
            calls.append("warm")

        async def search(self, query, max_results):
            calls.append("search")
            return [SearchHit(url=f"{fake_web.url}/wcxb/0001", title="a page")]

    register_engine("warmable", Warmable())
    ask(fake_llm, web_search={"engine": "warmable"})
    assert calls == ["warm", "search"]


def test_an_event_from_a_thread_can_be_said_before_the_thread_goes_on():
    """The local model's load holds the interpreter: "loading model" is delivered before it starts."""
    import asyncio

    from grounding.progress import Emitter

    async def main():
        seen = []
        emit = Emitter(lambda e: seen.append((e.stage, threading.get_ident())))
        loop_thread = threading.get_ident()

        def worker():
            emit("loading_model", "loading model", wait=5.0)
            return list(seen)  # what the loop had delivered when the call returned

        delivered = await asyncio.to_thread(worker)
        return delivered, loop_thread

    delivered, loop_thread = asyncio.run(main())
    assert delivered == [("loading_model", loop_thread)]  # delivered on the loop, before the thread went on
