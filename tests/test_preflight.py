"""Configuration problems are found before any model call, and named: the library (a typed
error), the server (a 4xx with an OpenAI error body, streamed or not) and the CLI (one line,
exit 1). An upstream's own error is never reported with a status that was not received.
"""
from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

import grounding
from grounding.config import Config, set_config
from grounding.server import create_app
from grounding.server.store import MemoryRouterStore, install
from tests.fakes.live_server import LiveServer

QUESTION = [{"role": "user", "content": "nutrition trends for fall"}]
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "GROQ_API_KEY", "AZURE_API_KEY",
        "AZURE_API_BASE", "OPENROUTER_API_KEY", "TAVILY_API_KEY", "EXA_API_KEY", "BRAVE_API_KEY", "SERPER_API_KEY",
        "GROUNDING_ENGINE", "GROUNDING_MODEL", "GROUNDING_CORPUS", "GROUNDING_CONFIG")


@pytest.fixture
def bare(monkeypatch):
    """No provider or engine key at all (the fakes' env is added back per test where needed)."""
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)
    set_config({})
    yield monkeypatch
    set_config({})


def _no_model_call(fake_llm):
    assert fake_llm.chat_requests() == [], "a model was called before the configuration was checked"


# --------------------------------------------------------------------------- the library


def test_an_engine_without_its_key_is_named_before_any_model_call(bare, fake_llm):
    with pytest.raises(grounding.ConfigurationError) as err:
        grounding.completion(model="openai/fake-searcher", api_base=f"{fake_llm.url}/v1", api_key="sk-test",
                             messages=QUESTION, web_search={"engine": "tavily"})
    e = err.value
    assert e.settings == ["TAVILY_API_KEY"] and e.param == "web_search.engine" and e.status_code == 400
    assert "TAVILY_API_KEY" in e.message and "local" in e.message  # and what is ready instead
    _no_model_call(fake_llm)


def test_the_default_engine_from_the_environment_is_checked_too(bare, fake_llm):
    bare.setenv("GROUNDING_ENGINE", "exa")
    with pytest.raises(grounding.ConfigurationError, match="GROUNDING_ENGINE: the 'exa_ai' search engine needs "
                                                           "EXA_API_KEY"):
        grounding.completion(model="openai/fake-searcher", api_base=f"{fake_llm.url}/v1", api_key="sk-test",
                             messages=QUESTION, web_search={})


def test_a_corpus_that_is_not_a_folder_is_named(bare, fake_llm, tmp_path):
    bare.setenv("GROUNDING_CORPUS", str(tmp_path / "nowhere"))
    with pytest.raises(grounding.ConfigurationError) as err:
        grounding.completion(model="openai/fake-searcher", api_base=f"{fake_llm.url}/v1", api_key="sk-test",
                             messages=QUESTION, web_search={"engine": "local"})
    assert err.value.settings == ["GROUNDING_CORPUS"]


@pytest.mark.parametrize("model, setting", [
    ("openai/gpt-4.1-mini", "OPENAI_API_KEY"),
    ("anthropic/claude-sonnet-4-5", "ANTHROPIC_API_KEY"),
    ("gemini/gemini-2.5-flash", "GEMINI_API_KEY"),
])
def test_a_model_whose_provider_has_no_key_is_named(bare, model, setting):
    for stream in (False, True):  # a stream fails before it is returned, like the rest
        with pytest.raises(grounding.ConfigurationError) as err:
            grounding.completion(model=model, messages=QUESTION, stream=stream)
        assert err.value.settings[0] == setting and f"model {model} needs {setting}" in err.value.message


def test_ignore_never_falls_through_to_a_provider_without_a_key(bare, fake_llm):
    bare.setenv("OPENAI_API_KEY", "sk-test")
    with pytest.raises(grounding.ConfigurationError) as err:
        grounding.completion(model="gpt-4.1-mini", ignore=["openai"], messages=QUESTION)
    message = err.value.message
    assert "no provider that could serve this request has its key set" in message
    assert "AZURE_API_KEY" in message and "Connection error" not in message
    assert "AZURE_API_KEY" in err.value.settings


def test_provider_order_without_fallbacks_names_the_missing_key(bare):
    bare.setenv("OPENAI_API_KEY", "sk-test")
    with pytest.raises(grounding.ConfigurationError) as err:
        grounding.completion(model="gpt-4.1-mini", provider={"order": ["azure"], "allow_fallbacks": False},
                             messages=QUESTION)
    assert err.value.settings == ["AZURE_API_KEY", "AZURE_API_BASE"]


def test_a_keyless_fallback_is_skipped_and_said(bare, fake_llm):
    # The first model's provider has no key; the second one's is set.
    bare.setenv("OPENAI_API_KEY", "sk-test")
    bare.setenv("OPENAI_API_BASE", f"{fake_llm.url}/v1")
    result = grounding.completion(model="anthropic/claude-sonnet-4-5", models=["openai/fake-direct"],
                                  messages=QUESTION)
    assert result.model == "openai/fake-direct"
    assert [a.model for a in result.metadata.attempts] == ["openai/fake-direct"]
    assert any("anthropic/claude-sonnet-4-5 was skipped: ANTHROPIC_API_KEY is not set" in w
               for w in result.metadata.warnings)


def test_unknown_models_are_404_before_any_call(bare):
    for model in ("no-such-model-xyz", "nosuchprovider/some-model"):
        with pytest.raises(grounding.NotFoundError) as err:
            grounding.completion(model=model, messages=QUESTION, api_key="sk-test")
        assert err.value.status_code == 404 and err.value.code == "model_not_found" and model in err.value.message


# --------------------------------------------------------------------------- the server


@pytest.fixture
def server(bare, _fake_llm_server):
    config = {"providers": {"alpha": {"litellm_provider": "openai", "api_base": f"{_fake_llm_server.url}/v1",
                                      "api_key_env": "ALPHA_TEST_KEY"}},
              "models": [{"id": "fake-searcher", "provider": "alpha", "capabilities": {"tools": True}}]}
    with LiveServer(create_app(Config.model_validate(config), store=MemoryRouterStore())) as live:
        yield live
    install(None)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("body, status, param, setting", [
    ({"model": "local", "web_search": {"engine": "tavily"}}, 400, "web_search.engine", "TAVILY_API_KEY"),
    ({"model": "openai/gpt-4.1-mini"}, 400, "model", "OPENAI_API_KEY"),
    ({"model": "alpha/fake-searcher"}, 400, "model", "ALPHA_TEST_KEY"),  # a config provider's key variable
    ({"model": "no-such-model-xyz"}, 404, "model", None),
])
def test_the_server_answers_a_4xx_naming_the_setting(server, fake_llm, body, status, param, setting, stream):
    r = httpx.post(f"{server.url}/v1/chat/completions", json={"messages": QUESTION, "stream": stream, **body},
                   timeout=60)
    assert r.status_code == status and r.headers["content-type"].startswith("application/json"), r.text
    error = r.json()["error"]
    assert error["param"] == param and error["message"]
    if setting:
        assert error["code"] == "missing_configuration" and setting in error["message"]
    else:
        assert error["code"] == "model_not_found"
    _no_model_call(fake_llm)


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("args, setting", [
    (["--engine", "tavily"], "TAVILY_API_KEY"),
    (["--model", "openai/gpt-4.1-mini", "--engine", "local"], "OPENAI_API_KEY"),
])
def test_the_cli_says_it_in_one_line_and_exits_1(args, setting, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in KEYS}
    env["GROUNDING_CACHE_DIR"] = str(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "grounding.cli", "ask", "What is a list?", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("grounding: error: ") and setting in proc.stderr
    assert proc.stdout == "" and "loading model" not in proc.stderr


# --------------------------------------------------------------------------- offline everywhere


def test_auto_with_nothing_configured_plans_the_embedded_model(bare):
    import asyncio

    from grounding.loop import prepare
    from grounding.request import parse_request

    pytest.importorskip("xllamacpp", reason="needs the [local] extra")
    prepared = asyncio.run(prepare(parse_request({"model": "auto", "messages": QUESTION,
                                                  "web_search": {"engine": "local"}})))
    (target,) = prepared.plan.targets
    assert target.provider == "local" and target.api_base is None  # chosen, not started: that comes later
    assert prepared.plan.auto.winner == target.name and prepared.plan.auto.candidates[0]["eligible"]


@pytest.mark.parametrize("extra, why", [
    ({"ignore": ["local"]}, "is ignored"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                                {"type": "image_url", "image_url": {"url": "https://x.example/a.png"}}]}]},
     "lacks vision"),
])
def test_auto_says_why_the_embedded_model_cannot_serve(bare, extra, why):
    pytest.importorskip("xllamacpp", reason="needs the [local] extra")
    with pytest.raises(grounding.InvalidRequestError) as err:
        grounding.completion(model="auto", **{"messages": QUESTION, **extra})
    assert why in err.value.message and "OPENAI_API_KEY" in err.value.message


def test_auto_without_the_embedded_model_says_how_to_get_one(bare, tmp_path):
    bare.setenv("GROUNDING_LOCAL_MODEL_PATH", str(tmp_path / "missing.gguf"))
    with pytest.raises(grounding.InvalidRequestError, match="missing.gguf is not a file") as err:
        grounding.completion(model="auto", messages=QUESTION)
    assert "is not available" in err.value.message


def test_the_server_lists_local_and_auto_reaches_it_offline(server):
    pytest.importorskip("xllamacpp", reason="needs the [local] extra")
    models = httpx.get(f"{server.url}/v1/models", timeout=60).json()["data"]
    assert {"auto", "local"} <= {m["id"] for m in models}
