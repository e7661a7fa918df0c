"""Never a 500, never a hang, never a leaked key: bad input, client disconnects
and secrets, through ``grounding serve`` over real HTTP and through the Python API.

uvicorn runs here without its own logging config, so its error lines reach
the test's log capture too: a traceback anywhere in the log is a failure.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import httpx
import pytest

import grounding
from grounding.config import Config, set_config
from grounding.redact import RedactingFilter, redact, register_secret, scrub
from grounding.server import create_app
from grounding.server.store import MemoryRouterStore, install
from tests.fakes.live_server import LiveServer

QUESTION = [{"role": "user", "content": "nutrition trends for fall"}]
UPSTREAM_KEY = "sk-upstream-31c9a0e4d7b2"
CLIENT_KEY = "sk-client-77aa02c1e5f9"
MODEL = "alpha/fake-direct"


@pytest.fixture(scope="module")
def server(_fake_llm_server):
    config = {
        "providers": {"alpha": {"litellm_provider": "openai", "api_base": f"{_fake_llm_server.url}/v1",
                                "api_key": UPSTREAM_KEY}},
        "server": {"api_keys": [{"key": CLIENT_KEY, "name": "client", "write": True}], "max_body_bytes": 256 * 1024},
    }
    app = create_app(Config.model_validate(config), store=MemoryRouterStore())
    with LiveServer(app, log_config=None) as live:
        yield live
    install(None)
    set_config({})


@pytest.fixture
def http(server, fake_llm, fake_search, fake_web):
    with httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {CLIENT_KEY}"}) as c:
        yield c
    fake_llm.reset()


@pytest.fixture
def log(caplog):
    caplog.set_level(logging.INFO)
    return caplog


def post(http: httpx.Client, body: object) -> httpx.Response:
    return http.post("/v1/chat/completions", json=body)


def error_of(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def no_trouble_in(log) -> None:
    assert "Traceback" not in log.text
    assert "internal error" not in log.text
    ours = [r for r in log.records if r.name.startswith(("grounding", "uvicorn"))]  # (not litellm's exit noise)
    assert not [r for r in ours if r.levelno >= logging.ERROR], [r.getMessage() for r in ours]


# --------------------------------------------------------------------------- bad input over HTTP

def _deep(levels: int) -> bytes:
    return b'{"model": "alpha/fake-direct", "messages": [{"role": "user", "content": "x"}], "extra_body": {"x": ' \
        + b"[" * levels + b"]" * levels + b"}}"


RAW_BODIES = {
    "deeply nested (past the parser's recursion limit)": _deep(50_000),
    "deeply nested (past the request's limit)": _deep(100),
    "lone surrogate in a message": json.dumps({"model": MODEL, "messages": [
        {"role": "user", "content": "a\ud800"}]}).encode(),
    "lone surrogate in a tool description": json.dumps({"model": MODEL, "messages": QUESTION, "tools": [
        {"type": "function", "function": {"name": "f", "description": "\udc00"}}]}).encode(),
    "lone surrogate in stop": json.dumps({"model": MODEL, "messages": QUESTION, "stop": "\ud800"}).encode(),
    "lone surrogate in a key": json.dumps({"model": MODEL, "messages": QUESTION, "metadata": {"\ud800": "x"}}).encode(),
    "NaN": b'{"model": "alpha/fake-direct", "messages": [{"role": "user", "content": "x"}], "temperature": NaN}',
    "invalid UTF-8": b'{"model": "alpha/fake-direct", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
    "model []": json.dumps({"model": [], "messages": QUESTION}).encode(),
    "model {}": json.dumps({"model": {}, "messages": QUESTION}).encode(),
    "model empty": json.dumps({"model": "", "messages": QUESTION}).encode(),
    "image part without its object": json.dumps({"model": MODEL, "messages": [
        {"role": "user", "content": [{"type": "image_url"}]}]}).encode(),
    "content not text nor parts": json.dumps({"model": MODEL, "messages": [{"role": "user", "content": 7}]}).encode(),
    "tool without a function": json.dumps({"model": MODEL, "messages": QUESTION, "tools": [{"type": "function"}]}).encode(),
    "stream as a string": json.dumps({"model": MODEL, "messages": QUESTION, "stream": "yes"}).encode(),
    "a huge integer": b'{"model": "alpha/fake-direct", "messages": [], "seed": 1' + b"0" * 5000 + b"}",
    "not an object": b"[1, 2, 3]",
}


@pytest.mark.parametrize("body", list(RAW_BODIES.values()), ids=list(RAW_BODIES))
def test_bad_bodies_are_400s_naming_the_field(http, log, body):
    response = http.post("/v1/chat/completions", content=body, headers={"Content-Type": "application/json"})
    error = error_of(response, 400)
    assert error["type"] == "invalid_request_error" and error["message"].endswith(".")
    assert "Value error" not in error["message"]
    no_trouble_in(log)


def test_the_error_names_the_field(http):
    body = {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}
    assert error_of(post(http, body), 400)["param"] == "messages[0].content[0].image_url"
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stop": ["ok", "\ud800"]}
    assert error_of(http.post("/v1/chat/completions", content=json.dumps(body).encode()), 400)["param"] == "stop[1]"
    assert error_of(post(http, {"model": {}, "messages": QUESTION}), 400)["param"] == "model"


def test_router_bodies_go_through_the_same_decoder(http):
    response = http.post("/v1/routers", content=b'{"name": "r", "x": ' + b"[" * 100 + b"]" * 100 + b"}")
    assert error_of(response, 400)["code"] == "invalid_json"
    response = http.post("/v1/routers", content=json.dumps({"name": "\ud800"}).encode())
    assert "lone surrogate" in error_of(response, 400)["message"]


# --------------------------------------------------------------------------- client disconnects

def _raw(server, data: bytes, *, then_wait: float = 0.0) -> None:
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(data)
        if then_wait:
            time.sleep(then_wait)


def _wait_for_access_line(log, status: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [r.getMessage() for r in log.records if r.name == "grounding.server.access"]
        found = [line for line in lines if f" {status} " in line]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no access line with {status}: {[r.getMessage() for r in log.records]}")


def _head(length: str, *, chunked: bool = False) -> bytes:
    framing = b"Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {length}\r\n".encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {CLIENT_KEY}\r\n".encode() + framing + b"\r\n")


def test_client_hanging_up_mid_upload_is_an_info_line(server, log):
    _raw(server, _head("5000") + b'{"model": "alpha/fake-direct", "mess')
    line = _wait_for_access_line(log, "499")
    assert "client_disconnected" in line
    no_trouble_in(log)


def test_malformed_chunked_body_is_not_an_internal_error(server, log):
    _raw(server, _head("", chunked=True) + b"5\r\n{\"mod\r\nzz-not-hex\r\nmore\r\n", then_wait=0.5)
    line = _wait_for_access_line(log, "499")
    assert "client_disconnected" in line
    no_trouble_in(log)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_client_leaving_before_the_first_token(server, fake_llm, log, stream):
    fake_llm.latency_ms = 1500
    body = json.dumps({"model": MODEL, "messages": QUESTION, "stream": stream}).encode()
    _raw(server, _head(str(len(body))) + body, then_wait=0.3)
    line = _wait_for_access_line(log, "499")
    assert "client_disconnected" in line
    no_trouble_in(log)


def test_client_leaving_mid_stream(server, fake_llm, log):
    fake_llm.chunk_ms = 200
    with httpx.Client(base_url=server.url, timeout=30) as c, c.stream(
            "POST", "/v1/chat/completions", headers={"Authorization": f"Bearer {CLIENT_KEY}"},
            json={"model": "alpha/fake-searcher", "messages": QUESTION, "stream": True}) as response:
        assert response.status_code == 200
        next(response.iter_bytes())
    line = _wait_for_access_line(log, "200")
    assert "client_disconnected" in line
    no_trouble_in(log)


# --------------------------------------------------------------------------- secrets

def test_search_api_quoting_its_key_reaches_no_response(http, fake_search, log):
    fake_search.fault = "echo_key"
    for stream in (False, True):
        response = post(http, {"model": "alpha/fake-searcher", "messages": QUESTION, "stream": stream,
                               "web_search": {"engine": "tavily"}})
        assert response.status_code == 200
        assert "fake-tavily-key" not in response.text and "***" in response.text
    assert "fake-tavily-key" not in log.text


def test_model_quoting_its_key_reaches_no_response_and_no_log(http, fake_llm, log):
    fake_llm.fault = "echo_key"
    error = error_of(post(http, {"model": MODEL, "messages": QUESTION}), 502)
    assert "***" in error["message"] and UPSTREAM_KEY not in error["message"]
    assert UPSTREAM_KEY not in log.text and CLIENT_KEY not in log.text


def test_python_api_redacts_search_errors(fake_llm, fake_search, monkeypatch):
    """The library redacts by itself, without the server."""
    fake_search.fault = "echo_key"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-from-env-1f2e3d")
    r = grounding.completion(model="openai/fake-searcher", api_base=f"{fake_llm.url}/v1",
                                    messages=QUESTION, web_search={"engine": "exa"})
    text = r.model_dump_json()
    assert "fake-exa-key" not in text and r.metadata.searches[0].error.count("***") >= 1
    assert any("***" in w for w in r.metadata.warnings)


def test_python_api_redacts_the_callers_own_key(fake_llm):
    fake_llm.fault = "echo_key"
    with pytest.raises(grounding.UpstreamError) as err:
        grounding.completion(model="openai/fake-direct", api_base=f"{fake_llm.url}/v1",
                                    api_key="sk-passed-by-the-caller-88", messages=QUESTION)
    assert "sk-passed-by-the-caller-88" not in str(err.value) and "***" in str(err.value)
    assert "sk-passed-by-the-caller-88" not in json.dumps(err.value.metadata)


def test_redaction_covers_env_config_registered_and_encoded_forms(monkeypatch):
    monkeypatch.setenv("TAVILY_API_KEY", "tvly-abc/def+ghi")
    monkeypatch.setenv("DATAFORSEO_LOGIN", "login-name-42")
    monkeypatch.setenv("GROUNDING_ADMIN_KEYS", "admin-one-111,admin-two-222")
    register_secret("registered-secret-9")
    text = ("k=tvly-abc/def+ghi q=tvly-abc%2Fdef%2Bghi login-name-42 admin-two-222 registered-secret-9 "
            "short ok")
    assert redact(text) == "k=*** q=*** *** *** *** short ok"
    assert scrub({"a": [text]}) == {"a": [redact(text)]}
    assert redact("per call: one-off-secret", extra=["one-off-secret"]) == "per call: ***"


def test_log_records_are_redacted_with_their_tracebacks(monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_TOKEN", "tok-1234567890")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed with %s", ("tok-1234567890",), None)
    try:
        raise RuntimeError("key tok-1234567890 refused")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    formatted = logging.Formatter().format(record)
    assert "tok-1234567890" not in formatted and formatted.count("***") >= 2


def test_grounding_errors_never_carry_a_configured_secret(monkeypatch):
    monkeypatch.setenv("EXA_API_KEY", "exa-secret-7777")
    assert "exa-secret-7777" not in grounding.UpstreamError("upstream said: bad key exa-secret-7777").message


# --------------------------------------------------------------------------- deadlines

def test_a_silent_custom_engine_is_given_up_at_its_deadline(fake_llm, monkeypatch):
    class Silent:
        name = "silent"

        async def search(self, query, max_results):
            await asyncio.sleep(3600)

    grounding.register_engine("silent", Silent())
    monkeypatch.setenv("GROUNDING_SEARCH_TIMEOUT", "0.5")
    r = grounding.completion(model="openai/fake-searcher", api_base=f"{fake_llm.url}/v1", api_key="sk-x",
                                    messages=QUESTION, web_search={"engine": "silent"})
    assert r.metadata.searches[0].error == "silent: no answer within 0.5 s"
    assert "search failed: silent: no answer within 0.5 s" in r.metadata.warnings


def test_deadline_variables_are_checked(monkeypatch):
    from grounding.deadlines import deadlines

    monkeypatch.setenv("GROUNDING_PAGE_TIMEOUT", "soon")
    with pytest.raises(grounding.InvalidRequestError) as err:
        deadlines()
    assert err.value.param == "GROUNDING_PAGE_TIMEOUT"
    monkeypatch.setenv("GROUNDING_PAGE_TIMEOUT", "2.5")
    assert deadlines().page == 2.5
    assert deadlines().for_model("local") == 900 and deadlines().for_model("openai") == 120
    assert deadlines().for_model("openai", request_timeout=3) == 3

