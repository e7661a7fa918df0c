"""The fault matrix: every upstream (the model in three wire formats, two search
engines, the pages) x every fault x streamed or not -> the status or warning
a client gets, through ``grounding serve`` over real HTTP.

Faults are the fakes' own switches (``tests/fakes/base.py``: 429 with
Retry-After, 500, 503, a hang, a connection cut halfway, garbage, HTML instead
of JSON or SSE, an empty body, an error that quotes the API key; the model
fakes also answer with nothing in them). Deadlines are short here (a request's
``timeout`` for the model, ``GROUNDING_SEARCH_TIMEOUT`` and
``GROUNDING_PAGE_TIMEOUT`` for the rest); how long each one takes is measured
by ``python -m benchmarks hardening``, never asserted here.
"""
from __future__ import annotations

import json
import logging

import httpx
import pytest

from grounding.config import Config, set_config
from grounding.response import Metadata
from grounding.server import create_app
from grounding.server.store import MemoryRouterStore, install
from tests.fakes.base import FAULTS
from tests.fakes.live_server import LiveServer
from tests.fakes.native import FakeNative

QUESTION = [{"role": "user", "content": "nutrition trends for fall"}]
OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY = "sk-alpha-5be0c7d1a2", "sk-ant-9d8e7f6a5b4c", "gm-key-0a1b2c3d4e5f"
MODELS = {"openai": "alpha/fake-searcher", "anthropic": "anth/fake-searcher", "gemini": "gem/gemini-2.5-flash"}
MODEL_DEADLINE = 1.5  # the request's own timeout: the deadline of each model call


@pytest.fixture(scope="module")
def native():
    with FakeNative() as server:
        yield server


@pytest.fixture(scope="module")
def server(_fake_llm_server, native):
    config = {
        "providers": {
            "alpha": {"litellm_provider": "openai", "api_base": f"{_fake_llm_server.url}/v1", "api_key": OPENAI_KEY},
            "anth": {"litellm_provider": "anthropic", "api_base": _fake_llm_server.url, "api_key": ANTHROPIC_KEY},
            "gem": {"litellm_provider": "gemini", "api_base": native.api_base("gemini"), "api_key": GEMINI_KEY},
        },
    }
    app = create_app(Config.model_validate(config), store=MemoryRouterStore())
    with LiveServer(app) as live:
        yield live
    install(None)
    set_config({})


@pytest.fixture
def http(server, fake_llm, fake_search, fake_web, native, monkeypatch):
    native.reset()
    monkeypatch.setenv("GROUNDING_SEARCH_TIMEOUT", "1")
    monkeypatch.setenv("GROUNDING_PAGE_TIMEOUT", "1")
    monkeypatch.setenv("GROUNDING_STREAM_IDLE_TIMEOUT", "2")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client
    for fake in (fake_llm, fake_search, fake_web, native):
        fake.reset()  # release anything still hanging


def ask(http: httpx.Client, model: str, *, stream: bool, web: dict | None = None, **extra) -> httpx.Response:
    body = {"model": model, "messages": QUESTION, "stream": stream, "timeout": 20, **extra}
    if web is not None:
        body["web_search"] = web
    return http.post("/v1/chat/completions", json=body)


def outcome(response: httpx.Response) -> tuple[int, dict | None, dict | None]:
    """``(status, error body, metadata)``: a JSON error, a completion, or a stream (which
    must end with ``[DONE]`` or with exactly one error event)."""
    assert "Traceback" not in response.text
    if response.headers["content-type"].startswith("application/json"):
        data = response.json()
        if response.status_code != 200:
            assert set(data) == {"error"} and set(data["error"]) == {"message", "type", "param", "code"}
            return response.status_code, data["error"], None
        Metadata.model_validate(data["metadata"])
        return 200, None, data["metadata"]
    events = [e[len("data: "):] for e in response.text.split("\n\n") if e]
    if events[-1] != "[DONE]":  # a failure after the stream started
        error = json.loads(events[-1])
        assert set(error) == {"error"}
        return 200, error["error"], None
    metadata = json.loads(events[-2]).get("metadata")
    Metadata.model_validate(metadata)
    return 200, None, metadata


# --------------------------------------------------------------------------- the model

#: fault -> the status a client gets when the only model misbehaves so (before the answer starts).
MODEL_STATUS = {"429": 429, "500": 502, "503": 502, "hang": 504, "cut": 502, "garbage": 502, "html": 502,
                "empty": 502, "echo_key": 502, "empty_answer": 502}
#: status -> the error type of the same failure, as an error event in a stream that has begun.
ERROR_TYPE = {429: "rate_limit_error", 502: "upstream_error", 504: "timeout_error"}


def _model_fake(wire: str, fake_llm, native):
    return native if wire == "gemini" else fake_llm


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("fault", list(MODEL_STATUS))
@pytest.mark.parametrize("wire", list(MODELS))
def test_model_faults(http, fake_llm, native, wire, fault, stream, caplog):
    caplog.set_level(logging.INFO)
    if fault == "empty_answer" and wire == "gemini":
        pytest.skip("the Gemini fake has no empty-answer switch")
    fake = _model_fake(wire, fake_llm, native)
    fake.fault = fault
    deadline = MODEL_DEADLINE if fault == "hang" else 20  # a 429 is retried in place (Retry-After: 1) first
    status, error, _ = outcome(ask(http, MODELS[wire], stream=stream, timeout=deadline))
    assert error is not None, "a misbehaving model must not look like an answer"
    if status == 200:
        # the stream had started (a progress comment once the answer is slow to begin, or a cut after the
        # first token): it ends with an error event of the kind the status would have said
        assert stream, "a plain request that failed must not be a 200"
        assert error["type"] == ERROR_TYPE[MODEL_STATUS[fault]] or (fault, error["type"]) in (
            ("empty", "invalid_response_error"), ("html", "invalid_response_error"),
            ("garbage", "invalid_response_error"), ("empty_answer", "invalid_response_error")), error
    else:
        assert status == MODEL_STATUS[fault], error
    for key in (OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY):
        assert key not in json.dumps(error) and key not in caplog.text
    if fault == "echo_key":  # the upstream's words are kept, its key is not (litellm masks some itself)
        assert "***" in error["message"] or "REDACTED" in error["message"]
    if fault == "hang":
        assert error["code"] == "timeout" and f"{MODEL_DEADLINE:g} s" in error["message"]
    if fault in ("html", "empty", "empty_answer") and stream:
        assert error["code"] == "empty_response"


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_a_stream_ending_before_its_finish_reason_is_a_warning(http, fake_llm, wire):
    fake_llm.fault = "truncated"
    status, error, metadata = outcome(ask(http, MODELS[wire].replace("searcher", "direct"), stream=True))
    assert status == 200 and error is None
    assert any("ended without a finish reason" in w for w in metadata["warnings"]), metadata["warnings"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_lone_surrogate_from_upstream_still_makes_valid_json(http, fake_llm, stream):
    fake_llm.fault = "surrogate"
    response = ask(http, "alpha/fake-direct", stream=stream)
    response.content.decode("utf-8")  # valid UTF-8 on the wire (the surrogate is sent escaped)
    status, error, _ = outcome(response)
    assert status == 200 and error is None
    assert "\\ud800" in response.text


def test_no_choices_is_a_clean_502(http, fake_llm):
    fake_llm.fault = "no_choices"
    status, error, _ = outcome(ask(http, MODELS["openai"], stream=False))
    assert status == 502 and error["code"] == "empty_response" and "no choices" in error["message"]


def test_a_stream_that_stalls_after_its_first_token_ends_with_an_error_event(http, fake_llm, monkeypatch):
    monkeypatch.setenv("GROUNDING_STREAM_IDLE_TIMEOUT", "0.5")
    fake_llm.chunk_ms = 1500  # every chunk after the first comes too late
    status, error, _ = outcome(ask(http, "alpha/fake-direct", stream=True, timeout=10))
    # A JSON 504 if it stalls before the first content chunk went out, else the stream's error event.
    assert status in (200, 504) and error["code"] == "stream_stalled" and "0.5 s" in error["message"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_fallback_answers_when_the_first_model_is_silent(http, fake_llm, stream):
    fake_llm.model_latency_ms = {"fake-searcher": 10_000}
    response = ask(http, "alpha/fake-searcher", stream=stream, models=["alpha/fake-searcher", "anth/fake-direct"],
                   timeout=MODEL_DEADLINE)
    status, error, metadata = outcome(response)
    assert status == 200, error
    first, second = metadata["attempts"]
    assert not first["success"] and first["status"] == 504 and second["success"]


# --------------------------------------------------------------------------- search engines

SEARCH_FAULTS = [f for f in FAULTS]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("fault", SEARCH_FAULTS)
@pytest.mark.parametrize("engine", ["searxng", "tavily"])
def test_search_engine_faults_degrade_the_answer_with_a_warning(http, fake_search, engine, fault, stream, caplog):
    caplog.set_level(logging.INFO)
    fake_search.fault = fault
    status, error, metadata = outcome(ask(http, "alpha/fake-searcher", stream=stream,
                                          web={"engine": engine, "max_results": 2}))
    assert status == 200 and error is None
    (search,) = metadata["searches"]
    assert search["error"] and search["results"] == 0
    assert any(w.startswith("search failed") for w in metadata["warnings"]), metadata["warnings"]
    assert not metadata["sources"]
    key = f"fake-{engine}-key" if engine != "searxng" else None
    text = json.dumps(metadata)
    if key:
        assert key not in text and key not in caplog.text
    if fault == "echo_key" and key:
        assert "***" in search["error"]
    if fault == "hang":
        assert "no answer within 1 s" in search["error"]
    if fault == "429":
        assert "rate limited" in search["error"]


# --------------------------------------------------------------------------- pages

PAGE_FAULTS = [f for f in FAULTS if f != "html"] + ["404"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("fault", PAGE_FAULTS)
def test_page_faults_degrade_the_answer_with_a_warning(http, fake_web, fault, stream):
    if fault == "404":
        fake_web.fault = "500"
        fake_web.misbehave = lambda _f, _req, response: response.send(404, b"gone") is None  # type: ignore[method-assign]
    else:
        fake_web.fault = fault
    status, error, metadata = outcome(ask(http, "alpha/fake-searcher", stream=stream,
                                          web={"engine": "searxng", "max_results": 2}))
    assert status == 200 and error is None
    failed = [s for s in metadata["sources"] if s["status"] == "failed"]
    assert len(failed) == 2 and all(s["error"] for s in failed)
    for source in failed:  # each unreadable page is a warning, not only a sources[].error
        assert any(source["url"] in w for w in metadata["warnings"]), metadata["warnings"]
    assert "no page could be used as a source; the answer is not grounded" in metadata["warnings"]
    if fault == "hang":
        assert all("timed out after 1 s" in s["error"] for s in failed)
