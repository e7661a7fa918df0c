"""Pytest fixtures for the fake upstreams (load with ``pytest_plugins = ["tests.fakes.fixtures"]``).

Each server starts once per session; each test gets it with its recorded
requests cleared and every failure switch and latency reset.

- ``fake_web``: :class:`~tests.fakes.web.FakeWeb`;
- ``fake_search``: :class:`~tests.fakes.search_apis.FakeSearch` whose results
  point at ``fake_web``; it also sets its ``env()`` (API bases and dummy keys)
  for the test, so ``litellm.asearch`` reaches it;
- ``fake_llm``: :class:`~tests.fakes.llm.FakeLLM`;
- ``fake_native``: :class:`~tests.fakes.native.FakeNative` (providers' own search), with
  its ``env()`` (API bases and dummy keys) set for the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.llm import FakeLLM
from tests.fakes.native import FakeNative
from tests.fakes.search_apis import FakeSearch
from tests.fakes.web import FakeWeb


@pytest.fixture(scope="session")
def _fake_web_server() -> Iterator[FakeWeb]:
    with FakeWeb() as server:
        yield server


@pytest.fixture(scope="session")
def _fake_search_server(_fake_web_server: FakeWeb) -> Iterator[FakeSearch]:
    with FakeSearch(_fake_web_server.url) as server:
        yield server


@pytest.fixture(scope="session")
def _fake_llm_server() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def fake_web(_fake_web_server: FakeWeb) -> FakeWeb:
    """The local web of real pages and failure pages, reset for this test."""
    _fake_web_server.reset()
    return _fake_web_server


@pytest.fixture
def fake_search(
    _fake_search_server: FakeSearch, fake_web: FakeWeb, monkeypatch: pytest.MonkeyPatch
) -> FakeSearch:
    """The search APIs (searxng, tavily, brave, exa_ai, serper), reset, with their env vars set."""
    _fake_search_server.reset()
    _fake_search_server.web_url = fake_web.url
    for name, value in _fake_search_server.env().items():
        monkeypatch.setenv(name, value)
    return _fake_search_server


@pytest.fixture
def fake_llm(_fake_llm_server: FakeLLM) -> FakeLLM:
    """The chat model server (OpenAI and Anthropic wire formats), reset for this test."""
    _fake_llm_server.reset()
    return _fake_llm_server


@pytest.fixture(scope="session")
def _fake_native_server() -> Iterator[FakeNative]:
    with FakeNative() as server:
        yield server


@pytest.fixture
def fake_native(_fake_native_server: FakeNative, monkeypatch: pytest.MonkeyPatch) -> FakeNative:
    """The native-search fake, reset, with its env (API bases and dummy keys) set for the test."""
    _fake_native_server.reset()
    for name, value in _fake_native_server.env().items():
        monkeypatch.setenv(name, value)
    return _fake_native_server
