"""``grounding serve``: the OpenAI-compatible HTTP server, over real HTTP on 127.0.0.1.

One server for the module (uvicorn in a thread, :class:`tests.fakes.live_server.LiveServer`)
in front of the fakes: ``alpha`` is the session's FakeLLM, ``beta`` a FakeLLM
that records how each stream ended (and can drop one on purpose). Clients are
the official ``openai`` SDK (every response checked against its types) and
raw ``httpx`` for errors and SSE framing.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest
from openai.types import Model as OpenAIModel
from openai.types.chat import ChatCompletion as OpenAIChatCompletion
from openai.types.chat import ChatCompletionChunk as OpenAIChunk

from grounding.config import Config, set_config
from grounding.response import Metadata
from grounding.server import create_app
from grounding.server.auth import KeyRing, check_bind, check_open_request, is_loopback_host
from grounding.server.store import MemoryRouterStore, install
from tests.fakes.live_server import LiveServer, ServeProcess
from tests.fakes.llm import FakeLLM

QUESTION = [{"role": "user", "content": "nutrition trends for fall"}]
ADMIN, READER, TINY = "sk-admin-4d1b9f0e77c2", "sk-reader-90aa51c3e6b8", "sk-tiny-3f6e2a1d0c55"
UPSTREAM_KEY = "sk-upstream-7c3e11aa09f4"
MAX_BODY = 64 * 1024
WEB = {"web_search": {"engine": "searxng", "max_results": 2}}

ROUTER = {
    "name": "support",
    "defaults": {"messages": [{"role": "system", "content": "You help {{metadata.team}} customers."}]},
    "routes": [{"id": "pro", "condition": 'has(metadata.tier) && metadata.tier == "pro"',
                "variants": [{"id": "a", "weight": 100, "model": "alpha/fake-searcher"}]}],
    "default_route": {"id": "basic", "variants": [{"id": "only", "weight": 100, "model": "alpha/fake-direct"}]},
}


class RecordingLLM(FakeLLM):
    """A FakeLLM recording how each streamed answer ended (``completed``,
    ``aborted`` by the client, or ``broken`` on purpose after ``break_after`` writes)."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: list[str] = []
        self.break_after: int | None = None

    def reset(self) -> None:
        super().reset()
        self.outcomes = []
        self.break_after = None

    def handle(self, request, response) -> None:
        if not (isinstance(request.json, dict) and request.json.get("stream")):
            super().handle(request, response)
            return
        writes = 0
        write = response.write

        def counted(data: bytes) -> None:
            nonlocal writes
            if self.break_after is not None and writes >= self.break_after:
                raise RuntimeError("stream dropped on purpose")  # the base server closes the connection
            writes += 1
            write(data)

        response.write = counted
        try:
            super().handle(request, response)
        except (BrokenPipeError, ConnectionResetError):
            self.outcomes.append("aborted")
            raise
        except RuntimeError:
            self.outcomes.append("broken")
            raise
        self.outcomes.append("completed")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def beta_llm():
    with RecordingLLM() as server:
        yield server


def server_config(alpha: FakeLLM, beta: FakeLLM) -> dict:
    return {
        "providers": {
            "alpha": {"litellm_provider": "openai", "api_base": f"{alpha.url}/v1", "api_key": UPSTREAM_KEY},
            "beta": {"litellm_provider": "openai", "api_base": f"{beta.url}/v1", "api_key": "sk-beta-key-1"},
        },
        "models": [
            {"id": "fake-searcher", "provider": "alpha", "input_price": 2.0, "output_price": 8.0,
             "capabilities": {"tools": True, "vision": True, "json_schema": True}},
            {"id": "fake-direct", "provider": "alpha", "input_price": 0.1, "output_price": 0.4,
             "capabilities": {"tools": True}},
            {"id": "fake-searcher", "provider": "beta", "capabilities": {"tools": True}},
        ],
        "routers": [ROUTER],
        "server": {
            "api_keys": [{"key": ADMIN, "name": "admin", "write": True},
                         {"key": READER, "name": "reader"},
                         {"key": TINY, "name": "tiny", "max_concurrent": 1}],
            "max_body_bytes": MAX_BODY,
            # A loaded machine must not turn "a failure before the first token keeps its status"
            # into an error event; the early start and its comments are tests/test_progress.py's.
            "stream_first_byte_s": 30,
        },
    }


@pytest.fixture(scope="module")
def store():
    return MemoryRouterStore()


@pytest.fixture(scope="module")
def server(_fake_llm_server, beta_llm, store):
    app = create_app(Config.model_validate(server_config(_fake_llm_server, beta_llm)), store=store)
    with LiveServer(app) as live:
        yield live
    install(None)
    set_config({})


@pytest.fixture
def fakes(server, fake_llm, fake_search, fake_web, beta_llm, store):
    """Everything reset for one test: the fakes, the stored routers."""
    beta_llm.reset()
    for router in store.list():
        store.delete(router["name"])
    return fake_llm, beta_llm


@pytest.fixture
def client(server, fakes):
    with openai.OpenAI(base_url=server.base_url, api_key=ADMIN, max_retries=0, timeout=60) as c:
        yield c


@pytest.fixture
def http(server, fakes):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def auth(key: str = ADMIN) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post(http: httpx.Client, body: object, key: str = ADMIN, **kw) -> httpx.Response:
    return http.post("/v1/chat/completions", json=body, headers=auth(key), **kw)


def error_of(response: httpx.Response, status: int) -> dict:
    """The OpenAI error body of ``response``, which must have ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in response.text
    return body["error"]


def check_completion(data: dict) -> dict:
    """Strict check against the openai package's own type (metadata is nested: checked on its own)."""
    data = dict(data)
    metadata = data.pop("metadata")
    OpenAIChatCompletion.model_validate(data)
    Metadata.model_validate(metadata)
    return metadata


def check_chunk(data: dict) -> dict | None:
    data = dict(data)
    metadata = data.pop("metadata", None)
    OpenAIChunk.model_validate(data)
    if metadata is not None:
        Metadata.model_validate(metadata)
    return metadata


def sse_events(body: bytes) -> list[bytes]:
    """The ``data:`` payloads of an SSE body that must be framed exactly as OpenAI frames it
    (plus ``: ...`` comments while a slow answer starts, which every SSE client ignores)."""
    assert re.fullmatch(rb"((data: |: )[^\n]+\n\n)+", body), body[:500]
    return [part[len(b"data: "):] for part in body.split(b"\n\n")[:-1] if part.startswith(b"data: ")]


def wait_until(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --------------------------------------------------------------------------- the SDK as client


def test_grounded_answer_through_the_sdk(client, fakes, fake_search):
    fake_llm, _ = fakes
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/fake-searcher", messages=QUESTION, extra_body=WEB)
    data = json.loads(raw.http_response.text)
    metadata = check_completion(data)
    completion = raw.parse()
    msg = completion.choices[0].message
    assert completion.model == "alpha/fake-searcher" and completion.choices[0].finish_reason == "stop"
    annotations = data["choices"][0]["message"]["annotations"]
    assert annotations and all(a["type"] == "url_citation" for a in annotations)
    fetched = {s["url"] for s in metadata["sources"] if s["status"] == "fetched"}
    for a in annotations:
        c = a["url_citation"]
        assert c["url"] in fetched and msg.content[c["start_index"]:c["end_index"]].endswith("]")
    assert metadata["queries"] == [QUESTION[0]["content"]] and fake_search.queries("searxng") == metadata["queries"]
    assert metadata["engine"] == "searxng" and metadata["generation_id"] == completion.id
    # web_search reached the library from extra_body, not the model: the fake saw our search tool.
    assert [t["function"]["name"] for t in fake_llm.chat_requests()[0].json["tools"]] == ["web_search"]
    assert raw.http_response.headers["x-request-id"].startswith("req_")


def test_web_search_at_the_top_level_of_the_body(http, fakes):
    data = post(http, {"model": "alpha/fake-searcher", "messages": QUESTION, **WEB}).json()
    check_completion(data)
    assert data["choices"][0]["message"]["annotations"]


def test_streamed_grounded_answer_through_the_sdk(client, fakes):
    stream = client.chat.completions.create(model="alpha/fake-searcher", messages=QUESTION, stream=True,
                                            stream_options={"include_usage": True}, extra_body=WEB)
    chunks = [c.model_dump(exclude_unset=True) for c in stream]
    metadatas = [check_chunk(c) for c in chunks]
    assert metadatas[-1] is not None and all(m is None for m in metadatas[:-1])
    content_chunks = [c for c in chunks if c["choices"]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in content_chunks)
    last = content_chunks[-1]["choices"][0]
    assert last["finish_reason"] == "stop"
    annotations = last["delta"]["annotations"]  # on the last content chunk, with the finish_reason
    assert annotations and all("annotations" not in c["choices"][0]["delta"] for c in content_chunks[:-1])
    for a in annotations:
        c = a["url_citation"]
        assert text[c["start_index"]:c["end_index"]].endswith("]")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert metadatas[-1]["sources"] and metadatas[-1]["citations"]["annotations"] == len(annotations)
    assert len({c["id"] for c in chunks}) == 1


def test_caller_tools_come_back_as_tool_calls(client, fakes):
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/fake-caller-tool", messages=QUESTION, tools=tools, extra_body=WEB)
    check_completion(json.loads(raw.http_response.text))
    choice = raw.parse().choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [c.function.name for c in choice.message.tool_calls] == ["get_weather"]
    stream = client.chat.completions.create(model="alpha/fake-caller-tool", messages=QUESTION, tools=tools,
                                            stream=True)
    chunks = list(stream)
    for c in chunks:
        check_chunk(c.model_dump(exclude_unset=True))
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [tc.function.name for tc in calls] == ["get_weather"] and chunks[-1].choices[0].finish_reason == "tool_calls"


def test_response_format_reaches_the_model(client, fakes):
    fake_llm, _ = fakes
    raw = client.chat.completions.with_raw_response.create(
        model="alpha/fake-echo-json", messages=QUESTION, response_format={"type": "json_object"}, extra_body=WEB)
    check_completion(json.loads(raw.http_response.text))
    answer = json.loads(raw.parse().choices[0].message.content)
    assert answer["question"] == QUESTION[0]["content"] and answer["sources"]
    assert fake_llm.chat_requests()[-1].json["response_format"] == {"type": "json_object"}


def test_image_and_audio_parts_pass_through(client, fakes):
    fake_llm, _ = fakes
    image = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    audio = base64.b64encode(b"RIFF....WAVEfake").decode()
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture and this sound?"},
        {"type": "image_url", "image_url": {"url": image}},
        {"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}}]}]
    raw = client.chat.completions.with_raw_response.create(model="alpha/fake-direct", messages=messages)
    check_completion(json.loads(raw.http_response.text))
    sent = fake_llm.chat_requests()[-1].json["messages"][-1]["content"]
    assert {"type": "image_url", "image_url": {"url": image}} in sent
    assert any(p.get("type") == "input_audio" and p["input_audio"]["data"] == audio for p in sent)


def test_router_from_the_config(client, fakes):
    fake_llm, _ = fakes
    raw = client.chat.completions.with_raw_response.create(
        model="router/support", messages=QUESTION, metadata={"tier": "pro", "team": "Acme"}, user="u-1",
        extra_body=WEB)
    metadata = check_completion(json.loads(raw.http_response.text))
    assert (metadata["router"], metadata["route_id"], metadata["variant_id"]) == ("support", "pro", "a")
    assert raw.parse().model == "alpha/fake-searcher"
    first = fake_llm.chat_requests()[0].json
    assert any("You help Acme customers." in (m.get("content") or "") for m in first["messages"])


def test_models_lists_auto_routers_and_the_pool(client, http, fakes):
    page = client.models.list()
    ids = [m.id for m in page.data]
    for m in page.data:
        OpenAIModel.model_validate(m.model_dump())
    assert ids[0] == "auto"
    assert {"router/support", "alpha/fake-searcher", "alpha/fake-direct", "beta/fake-searcher"} <= set(ids)
    owners = {m.id: m.owned_by for m in page.data}
    assert owners["router/support"] == "router" and owners["alpha/fake-direct"] == "alpha"
    raw = http.get("/v1/models", headers=auth(READER)).json()
    assert raw["object"] == "list" and all(set(m) == {"id", "object", "created", "owned_by"} for m in raw["data"])
    assert client.models.retrieve("alpha/fake-direct").id == "alpha/fake-direct"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nobody/nothing")


def test_auto_through_the_server(client, fakes):
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=QUESTION,
                                                           extra_body={"sort": "price", **WEB})
    metadata = check_completion(json.loads(raw.http_response.text))
    assert metadata["auto"]["winner"] == "alpha/fake-direct"


def test_health_needs_no_key(http):
    response = http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["store"]["backend"] == "memory" and body["store"]["ok"] is True
    assert body["routers"]["backend"] == "memory" and body["routers"]["degraded"] is None


# --------------------------------------------------------------------------- SSE framing and failures


def test_sse_framing_is_exactly_openais(http, fakes):
    with http.stream("POST", "/v1/chat/completions", headers=auth(),
                     json={"model": "alpha/fake-searcher", "messages": QUESTION, "stream": True, **WEB}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert "content-length" not in r.headers
        body = r.read()
    assert body.endswith(b"\n\ndata: [DONE]\n\n")
    events = sse_events(body)
    assert events[-1] == b"[DONE]" and events.count(b"[DONE]") == 1
    chunks = [json.loads(e) for e in events[:-1]]
    for c in chunks:
        check_chunk(c)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0]["delta"]["annotations"] and "metadata" in chunks[-1]


def test_stream_that_fails_before_its_first_token_is_a_json_error(http, fakes):
    fake_llm, _ = fakes
    fake_llm.error_status = 500
    response = post(http, {"model": "alpha/fake-searcher", "messages": QUESTION, "stream": True,
                           "models": ["alpha/fake-direct"]})
    err = error_of(response, 502)
    assert err["type"] == "upstream_error"
    assert len(fake_llm.chat_requests()) >= 2  # the fallback was tried first


def test_mid_stream_failure_ends_with_an_error_event(http, fakes):
    _, beta = fakes
    beta.break_after = 3  # the role chunk and two words, then the connection drops
    with http.stream("POST", "/v1/chat/completions", headers=auth(),
                     json={"model": "beta/fake-searcher", "messages": QUESTION, "stream": True}) as r:
        assert r.status_code == 200
        body = r.read()  # returns: the server closed the stream
    events = sse_events(body)
    assert b"[DONE]" not in events
    *chunks, last = [json.loads(e) for e in events]
    assert chunks and all("choices" in c for c in chunks)
    assert set(last) == {"error"} and last["error"]["type"] == "upstream_error" and last["error"]["message"]
    assert beta.outcomes == ["broken"]


def test_mid_stream_failure_raises_in_the_sdk(client, fakes):
    _, beta = fakes
    beta.break_after = 3
    stream = client.chat.completions.create(model="beta/fake-searcher", messages=QUESTION, stream=True)
    got = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            got.append(chunk)
    assert got and info.value.body["type"] == "upstream_error"


def test_client_disconnect_mid_stream_closes_the_upstream_stream(http, fakes, caplog):
    caplog.set_level(logging.INFO, logger="grounding.server")
    _, beta = fakes
    beta.chunk_ms = 300  # about 3 s for the whole answer
    with http.stream("POST", "/v1/chat/completions", headers=auth(),
                     json={"model": "beta/fake-searcher", "messages": QUESTION, "stream": True}) as r:
        lines = r.iter_lines()
        first = next(line for line in lines if line.startswith("data: "))
        assert json.loads(first[6:])["choices"][0]["delta"]["role"] == "assistant"
    # Leaving the block closed the connection: the server cancels the generation,
    # which closes its own connection to the model, whose next write fails.
    assert wait_until(lambda: beta.outcomes, timeout=5)
    assert beta.outcomes == ["aborted"]
    assert wait_until(lambda: "client_disconnected" in caplog.text)


@pytest.mark.parametrize("stream", [False, True])
def test_client_disconnect_stops_the_search_loop(server, fakes, fake_web, stream, caplog):
    caplog.set_level(logging.INFO, logger="grounding.server")
    fake_llm, _ = fakes
    fake_web.latency_ms = 1500  # the pages take 1.5 s: the client leaves while they are fetched
    body = json.dumps({"model": "alpha/fake-searcher", "messages": QUESTION, "stream": stream, **WEB}).encode()
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Authorization: Bearer " + ADMIN.encode() + b"\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert wait_until(lambda: fake_web.requests, timeout=10)  # searched; the fetches have started
    assert wait_until(lambda: "client_disconnected" in caplog.text, timeout=5)
    time.sleep(1.8)  # past the pages' latency: an uncancelled loop would now ask for the answer
    assert len(fake_llm.chat_requests()) == 1  # the search turn only; the answer turn never started
    assert "POST /v1/chat/completions 499" in caplog.text


def test_disconnect_releases_the_concurrency_slot(server, fakes, fake_web, http):
    fake_web.latency_ms = 1000
    with httpx.Client(base_url=server.url, timeout=httpx.Timeout(60, read=0.5)) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            post(impatient, {"model": "alpha/fake-searcher", "messages": QUESTION, **WEB}, key=TINY)
    fake_web.latency_ms = 0
    assert wait_until(lambda: post(http, {"model": "alpha/fake-direct", "messages": QUESTION},
                                   key=TINY).status_code == 200, timeout=5)


# --------------------------------------------------------------------------- auth


def test_missing_and_wrong_keys_are_401_and_never_echoed(http, fakes, caplog):
    caplog.set_level(logging.DEBUG)
    body = {"model": "alpha/fake-direct", "messages": QUESTION}
    err = error_of(http.post("/v1/chat/completions", json=body), 401)
    assert err["type"] == "authentication_error" and err["code"] == "missing_api_key"
    wrong = "sk-wrong-5e0c2b7d41aa"
    for header in (f"Bearer {wrong}", f"Basic {wrong}", wrong):
        response = http.post("/v1/chat/completions", json=body, headers={"Authorization": header})
        err = error_of(response, 401)
        assert err["code"] == "invalid_api_key"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert wrong not in response.text and wrong not in str(response.headers)
    assert error_of(http.get("/v1/models", headers=auth(wrong)), 401)
    assert error_of(http.get("/v1/routers"), 401)
    post(http, body)  # a good request too, so the log has its access line
    assert wait_until(lambda: "key=admin" in caplog.text)
    for secret in (wrong, ADMIN, READER, UPSTREAM_KEY):
        assert secret not in caplog.text
    assert "POST /v1/chat/completions 401" in caplog.text


def test_the_sdk_sees_an_authentication_error(server, fakes):
    with openai.OpenAI(base_url=server.base_url, api_key="sk-not-a-key-000000", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as info:
            bad.chat.completions.create(model="alpha/fake-direct", messages=QUESTION)
    assert "sk-not-a-key" not in str(info.value)


def test_upstream_key_rejection_is_not_the_clients_401(http, fakes):
    fake_llm, _ = fakes
    fake_llm.error_status = 401
    err = error_of(post(http, {"model": "alpha/fake-direct", "messages": QUESTION}), 502)
    assert err["code"] == "upstream_authentication_error"
    assert UPSTREAM_KEY not in json.dumps(err)


def test_managing_routers_needs_a_write_key(http, fakes):
    router = {"name": "ro", "default_route": {"variants": [{"id": "a", "model": "alpha/fake-direct"}]}}
    err = error_of(http.post("/v1/routers", json=router, headers=auth(READER)), 403)
    assert err["code"] == "permission_denied"
    assert error_of(http.put("/v1/routers/ro", json=router, headers=auth(READER)), 403)
    assert error_of(http.delete("/v1/routers/support", headers=auth(READER)), 403)
    assert http.get("/v1/routers", headers=auth(READER)).status_code == 200  # reading is fine


def test_keys_from_the_environment():
    ring = KeyRing.from_config(Config(), {"GROUNDING_API_KEYS": "r1-aaaaaa, r2-bbbbbb",
                                          "GROUNDING_ADMIN_KEYS": "w1-cccccc"})
    assert not ring.open
    assert ring.authenticate("Bearer r2-bbbbbb").write is False
    who = ring.authenticate("bearer w1-cccccc")
    assert who.write is True and who.name.startswith("key-") and "cccccc" not in who.name
    cfg = Config.model_validate({"server": {"api_keys": [{"key_env": "MY_SERVER_KEY", "name": "app"}]}})
    assert KeyRing.from_config(cfg, {"MY_SERVER_KEY": "abcdef123"}).authenticate("Bearer abcdef123").name == "app"
    with pytest.raises(Exception, match="MY_SERVER_KEY is not set"):
        KeyRing.from_config(cfg, {})


def test_an_open_server_stays_on_loopback():
    open_ring = KeyRing.from_config(Config(), {})
    assert open_ring.open
    check_bind("127.0.0.1", open_ring)
    check_bind("localhost", open_ring)
    for host in ("0.0.0.0", "::", "10.0.0.5"):
        with pytest.raises(Exception, match="only listens on loopback"):
            check_bind(host, open_ring)
    check_bind("0.0.0.0", KeyRing.from_config(Config(), {"GROUNDING_API_KEYS": "k-123456"}))
    check_open_request("127.0.0.1", "localhost:8000", None)
    check_open_request("::1", "[::1]:8000", "http://127.0.0.1:3000")
    for client, host, origin in (("10.1.2.3", "localhost", None), ("127.0.0.1", "evil.example:8000", None),
                                 ("127.0.0.1", "localhost:8000", "https://evil.example")):
        with pytest.raises(Exception) as info:
            check_open_request(client, host, origin)
        assert info.value.status_code in (401, 403)
    assert is_loopback_host("127.8.9.10") and not is_loopback_host("localhost.evil.com")


def test_serve_refuses_a_public_host_without_keys():
    env = {k: v for k, v in os.environ.items()
           if k not in ("GROUNDING_API_KEYS", "GROUNDING_ADMIN_KEYS", "GROUNDING_CONFIG")}
    proc = subprocess.run([sys.executable, "-m", "grounding.cli", "serve", "--host", "0.0.0.0", "--port", "1"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("grounding: error: no API keys")
    proc = subprocess.run([sys.executable, "-m", "grounding.cli", "serve", "--config", "/nonexistent/g.yaml"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "cannot read it" in proc.stderr


# --------------------------------------------------------------------------- errors


def test_bad_json_and_bad_parameters_are_400(http, fakes):
    err = error_of(http.post("/v1/chat/completions", content=b'{"model": ', headers=auth()), 400)
    assert err["type"] == "invalid_request_error" and "not valid JSON" in err["message"]
    assert error_of(http.post("/v1/chat/completions", content=b"[1, 2]", headers=auth()), 400)
    assert error_of(http.post("/v1/chat/completions", content=b"", headers=auth()), 400)
    err = error_of(post(http, {"model": "alpha/fake-direct", "messages": QUESTION, "temperature": 5}), 400)
    assert err["param"] == "temperature"
    err = error_of(post(http, {"model": "alpha/fake-direct", "messages": QUESTION, "frobnicate": 1}), 400)
    assert err["param"] == "frobnicate" and "unknown parameter" in err["message"]
    err = error_of(post(http, {"model": "alpha/fake-direct", "messages": [{"role": "wizard", "content": "x"}]}), 400)
    assert err["param"] == "messages[0].role"
    err = error_of(post(http, {"model": "alpha/fake-direct", "messages": QUESTION,
                               "web_search": {"max_results": 99}}), 400)
    assert err["param"] == "web_search.max_results"
    err = error_of(post(http, {"model": "alpha/fake-direct", "messages": QUESTION, "stream": True,
                               "web_search": {"max_steps": 9}}), 400)  # before any stream starts
    assert err["param"] == "web_search.max_steps"


@pytest.mark.parametrize("field", ["api_base", "api_key", "extra_headers"])
def test_clients_cannot_point_the_server_elsewhere(http, fakes, field):
    value = {"X-A": "b"} if field == "extra_headers" else "http://169.254.169.254/v1"
    err = error_of(post(http, {"model": "openai/gpt-4.1-mini", "messages": QUESTION, field: value}), 400)
    assert err["param"] == field


def test_unknown_router_model_and_path_are_404(http, fakes):
    err = error_of(post(http, {"model": "router/nope", "messages": QUESTION}), 404)
    assert err["param"] == "model" and err["code"] == "model_not_found"
    err = error_of(post(http, {"model": "router/nope", "messages": QUESTION, "stream": True}), 404)
    assert err["code"] == "model_not_found"
    assert error_of(http.get("/v1/routers/nope", headers=auth()), 404)["code"] == "router_not_found"
    err = error_of(http.get("/v1/nothing-here", headers=auth()), 404)
    assert err["message"] == "Invalid URL (GET /v1/nothing-here)"
    assert error_of(http.post("/v2/chat/completions", headers=auth(), json={}), 404)


def test_upstream_model_not_found_is_404(http, fakes):
    err = error_of(post(http, {"model": "alpha/fake-notfound", "messages": QUESTION}), 404)
    assert err["code"] == "model_not_found"


def test_wrong_method_is_405(http, fakes):
    response = http.delete("/v1/models", headers=auth())
    assert error_of(response, 405)["code"] == "method_not_allowed"
    assert "GET" in response.headers["allow"]
    assert error_of(http.get("/v1/chat/completions", headers=auth()), 405)


def test_too_large_bodies_are_413_with_or_without_content_length(http, fakes):
    big = {"model": "alpha/fake-direct", "messages": [{"role": "user", "content": "x" * (MAX_BODY * 2)}]}
    err = error_of(post(http, big), 413)
    assert err["code"] == "request_too_large"
    payload = json.dumps(big).encode()

    def chunked():  # no Content-Length: Transfer-Encoding: chunked
        for i in range(0, len(payload), 8192):
            yield payload[i:i + 8192]

    response = http.post("/v1/chat/completions", content=chunked(), headers=auth())
    assert "content-length" not in response.request.headers
    assert error_of(response, 413)["code"] == "request_too_large"
    # Under the limit, a chunked body is fine.
    small = json.dumps({"model": "alpha/fake-direct", "messages": QUESTION}).encode()
    assert http.post("/v1/chat/completions", content=iter([small[:10], small[10:]]), headers=auth()).status_code == 200


def test_concurrency_limit_per_key_is_429(http, fakes):
    fake_llm, _ = fakes
    fake_llm.model_latency_ms = {"fake-direct": 1500}
    body = {"model": "alpha/fake-direct", "messages": QUESTION}
    first: list[httpx.Response] = []
    holder = threading.Thread(target=lambda: first.append(post(http, body, key=TINY)))
    holder.start()
    try:
        assert wait_until(lambda: fake_llm.chat_requests())  # the first request is in flight
        response = post(http, body, key=TINY)
        err = error_of(response, 429)
        assert err["type"] == "rate_limit_error" and err["code"] == "concurrency_limit_exceeded"
        assert response.headers["retry-after"] == "1"
        fake_llm.model_latency_ms = {}
        assert post(http, body, key=READER).status_code == 200  # other keys are not affected
    finally:
        holder.join(timeout=30)
    assert first[0].status_code == 200
    assert post(http, body, key=TINY).status_code == 200  # the slot was given back


def test_upstream_rate_limit_after_fallbacks_is_429(http, fakes):
    fake_llm, beta = fakes
    fake_llm.error_status = beta.error_status = 429
    response = post(http, {"model": "alpha/fake-searcher", "messages": QUESTION,
                           "extra_body": {"models": ["beta/fake-searcher"]}})
    err = error_of(response, 429)
    assert err["type"] == "rate_limit_error" and err["code"] == "rate_limit_exceeded"
    assert fake_llm.chat_requests() and beta.chat_requests()


def test_upstream_failure_is_502(http, fakes):
    fake_llm, _ = fakes
    fake_llm.error_status = 500
    err = error_of(post(http, {"model": "alpha/fake-direct", "messages": QUESTION, **WEB}), 502)
    assert err["type"] == "upstream_error"


def test_upstream_timeout_is_504(http, fakes):
    fake_llm, _ = fakes
    fake_llm.latency_ms = 3000
    err = error_of(post(http, {"model": "alpha/fake-direct", "messages": QUESTION, "timeout": 1}), 504)
    assert err["type"] == "timeout_error"


@pytest.fixture
def second_app(server, fakes, store):
    """Build another app (another config or store) for one test; the module's server gets its state back."""

    def make(config: dict, store_=None):
        return create_app(Config.model_validate(config), store=store_ or MemoryRouterStore())

    yield make
    set_config(Config.model_validate(server_config(*fakes)))
    install(store)


def test_internal_errors_are_500_without_a_traceback(second_app, fakes, caplog):
    caplog.set_level(logging.INFO, logger="grounding.server")

    class BrokenStore(MemoryRouterStore):
        def list(self):
            raise RuntimeError(f"the disk is on fire (key {ADMIN})")

        def status(self):
            return {"backend": "broken", "ok": False, "error": "unreachable"}

    with LiveServer(second_app(server_config(*fakes), BrokenStore())) as broken, \
            httpx.Client(base_url=broken.url) as c:
        response = c.get("/v1/routers", headers=auth())
        assert response.status_code == 500
        assert response.json() == {"error": {"message": "internal error", "type": "api_error",
                                             "param": None, "code": None}}
        assert "fire" not in response.text
        health = c.get("/health")  # a store that is down does not take the replica out
        assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert "Traceback" in caplog.text and "the disk is on fire" in caplog.text
    assert ADMIN not in caplog.text


def test_open_server_without_keys_answers_loopback_only(second_app, fakes):
    config = server_config(*fakes)
    del config["server"]["api_keys"]
    with LiveServer(second_app(config)) as open_server, httpx.Client(base_url=open_server.url) as c:
        assert c.get("/health").json()["auth"] == "open (loopback only)"
        response = c.post("/v1/chat/completions", json={"model": "alpha/fake-direct", "messages": QUESTION})
        assert response.status_code == 200, response.text  # no key needed
        assert c.post("/v1/routers", json={"name": "x", "default_route": {"variants": [
            {"id": "a", "model": "alpha/fake-direct"}]}}).status_code == 201  # nor to manage routers
        rebinding = c.get("/v1/models", headers={"Host": "evil.example"})
        assert error_of(rebinding, 403)["code"] == "permission_denied"
        cross_site = c.post("/v1/chat/completions", headers={"Origin": "https://evil.example"},
                            json={"model": "alpha/fake-direct", "messages": QUESTION})
        assert error_of(cross_site, 403)["code"] == "permission_denied"


# --------------------------------------------------------------------------- routers over HTTP


def test_routers_crud_and_use(http, client, fakes):
    router = {"name": "research", "description": "v1",
              "default_route": {"variants": [{"id": "only", "model": "alpha/fake-direct"}]}}
    created = http.post("/v1/routers", json=router, headers=auth())
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "research" and created.json()["source"] == "store"
    assert error_of(http.post("/v1/routers", json=router, headers=auth()), 409)["code"] == "router_exists"
    # The very next request can use it.
    r = client.chat.completions.create(model="router/research", messages=QUESTION)
    assert r.model == "alpha/fake-direct"
    assert "router/research" in {m.id for m in client.models.list().data}
    listed = http.get("/v1/routers", headers=auth(READER)).json()
    assert listed["object"] == "list"
    assert {(r["name"], r["source"]) for r in listed["data"]} == {("research", "store"), ("support", "file")}
    got = http.get("/v1/routers/research", headers=auth(READER)).json()
    assert got["description"] == "v1"
    # Replace (what GET returned, edited, goes back as is).
    got["description"] = "v2"
    got["default_route"]["variants"][0]["model"] = "alpha/fake-searcher"
    replaced = http.put("/v1/routers/research", json=got, headers=auth())
    assert replaced.status_code == 200 and replaced.json()["description"] == "v2"
    assert client.chat.completions.create(model="router/research", messages=QUESTION).model == "alpha/fake-searcher"
    # PUT of a new name creates it; the name in the body must match the URL.
    del router["name"]
    assert http.put("/v1/routers/other", json=router, headers=auth()).status_code == 201
    err = error_of(http.put("/v1/routers/other", json={**router, "name": "else"}, headers=auth()), 400)
    assert err["param"] == "name"
    # Delete.
    deleted = http.delete("/v1/routers/research", headers=auth())
    assert deleted.json() == {"id": "research", "object": "router.deleted", "deleted": True}
    assert error_of(http.delete("/v1/routers/research", headers=auth()), 404)["code"] == "router_not_found"
    assert error_of(post(http, {"model": "router/research", "messages": QUESTION}), 404)
    # The config's routers are read-only over HTTP.
    assert http.get("/v1/routers/support", headers=auth()).json()["source"] == "file"
    assert error_of(http.put("/v1/routers/support", json=ROUTER, headers=auth()), 409)
    assert error_of(http.delete("/v1/routers/support", headers=auth()), 409)


def test_invalid_routers_are_400_naming_the_problem(http, fakes):
    bad_weights = {"name": "bad", "routes": [{"id": "r", "condition": "true", "variants": [
        {"id": "a", "weight": 60, "model": "m"}, {"id": "b", "weight": 60, "model": "m"}]}]}
    err = error_of(http.post("/v1/routers", json=bad_weights, headers=auth()), 400)
    assert "100" in err["message"] and "'r'" in err["message"]
    bad_cel = {"name": "bad", "routes": [{"id": "r", "condition": "nosuchvar == 1",
                                           "variants": [{"id": "a", "model": "m"}]}]}
    assert "nosuchvar" in error_of(http.post("/v1/routers", json=bad_cel, headers=auth()), 400)["message"]
    err = error_of(http.post("/v1/routers", json={"routes": []}, headers=auth()), 400)
    assert err["param"] == "name"
    assert error_of(http.post("/v1/routers", content=b"{oops", headers=auth()), 400)
    assert http.get("/v1/routers", headers=auth()).json()["data"][0]["name"] == "support"  # nothing stored


# --------------------------------------------------------------------------- the real command


def test_grounding_serve_subprocess(tmp_path, fake_llm):
    import yaml

    config = {"providers": {"alpha": {"litellm_provider": "openai", "api_base": f"{fake_llm.url}/v1",
                                      "api_key": UPSTREAM_KEY}},
              "server": {"router_store": f"sqlite:///{tmp_path / 'routers.db'}"}}
    path = tmp_path / "grounding.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with ServeProcess(path, env={"GROUNDING_ADMIN_KEYS": ADMIN, "GROUNDING_API_KEYS": ""}) as proc:
        health = httpx.get(f"{proc.url}/health").json()
        assert health["status"] == "ok" and health["store"]["backend"] == "sqlite"
        with openai.OpenAI(base_url=proc.base_url, api_key=ADMIN, max_retries=0) as c:
            chunks = list(c.chat.completions.create(model="alpha/fake-direct", messages=QUESTION, stream=True))
            assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "I know this."
            with pytest.raises(openai.AuthenticationError):
                openai.OpenAI(base_url=proc.base_url, api_key="sk-nope-123456", max_retries=0).models.list()
    assert "POST /v1/chat/completions 200" in proc.output and "key=key-" in proc.output
    assert ADMIN not in proc.output and "sk-nope-123456" not in proc.output
