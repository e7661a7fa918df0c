"""Fetching through an HTTP(S) proxy: httpx's own proxy transport, NO_PROXY, the guard, credentials.

The proxy is :class:`tests.fakes.proxy.FakeProxy`, a real forward proxy on 127.0.0.1.
"""
from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import grounding
from providers.fetch import Fetcher, proxy_settings
from tests.fakes.proxy import FakeProxy

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "GROUNDING_PROXY")


@pytest.fixture(scope="module")
def _proxy_server() -> Iterator[FakeProxy]:
    with FakeProxy() as server:
        yield server


@pytest.fixture
def proxy(_proxy_server: FakeProxy, monkeypatch: pytest.MonkeyPatch) -> FakeProxy:
    _proxy_server.reset()
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return _proxy_server


def fetch(url: str, **kw):
    async def go():
        async with Fetcher(**kw) as f:
            return await f.fetch(url)

    return asyncio.run(go())


def test_pages_go_through_the_configured_proxy(proxy, fake_web):
    url = f"{fake_web.url}/article"
    page = fetch(url, proxy=proxy.url, allow_private=True)
    assert page.ok and b"Redirect target" in page.body
    assert proxy.targets == [url]
    assert [r.path for r in fake_web.requests] == ["/article"]  # the proxy fetched it


def test_redirects_are_followed_through_the_proxy(proxy, fake_web):
    page = fetch(f"{fake_web.url}/redirect/2", proxy=proxy.url, allow_private=True)
    assert page.ok and page.final_url == f"{fake_web.url}/article"
    assert proxy.targets == [f"{fake_web.url}/redirect/2", f"{fake_web.url}/redirect/1", f"{fake_web.url}/article"]


def test_the_environment_names_the_proxy(proxy, fake_web, monkeypatch):
    url = f"{fake_web.url}/article"
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    assert fetch(url, allow_private=True).ok and proxy.targets == [url]
    monkeypatch.setenv("NO_PROXY", "example.org, 127.0.0.0/8")  # loopback fetched directly
    assert fetch(url, allow_private=True).ok and len(proxy.targets) == 1
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.setenv("GROUNDING_PROXY", "none")  # this library's own switch wins
    assert fetch(url, allow_private=True).ok and len(proxy.targets) == 1


def test_no_proxy_matching():
    s = proxy_settings("http://proxy.corp:3128", no_proxy=["localhost", ".internal.corp", "*.lab", "10.0.0.0/8",
                                                            "db.example:5432"])
    import httpx

    direct = ["http://localhost/", "https://a.internal.corp/", "https://internal.corp/", "http://x.lab/",
              "http://10.2.3.4/", "http://db.example/"]
    proxied = ["https://example.org/", "http://notinternal.corp/", "http://11.0.0.1/", "http://lab.com/"]
    assert [s.for_url(httpx.URL(u)) for u in direct] == [None] * len(direct)
    assert all(s.for_url(httpx.URL(u)) == "http://proxy.corp:3128" for u in proxied)
    assert proxy_settings("http://p:1", no_proxy=["*"]).for_url(httpx.URL("https://a.com/")) is None


def test_the_guard_checks_the_host_before_asking_the_proxy(proxy, fake_web):
    page = fetch(f"{fake_web.url}/article", proxy=proxy.url, allow_private=False)
    assert not page.ok and "loopback" in page.error
    unresolvable = fetch("http://no-such-host.invalid/page", proxy=proxy.url, allow_private=False)
    assert not unresolvable.ok and "cannot resolve" in unresolvable.error
    assert proxy.targets == []  # refused before anything reached the proxy


def test_https_goes_through_a_connect_tunnel(proxy, fake_web):
    port = fake_web.url.rsplit(":", 1)[1]
    page = fetch(f"https://127.0.0.1:{port}/article", proxy=proxy.url, allow_private=True, timeout=5)
    assert proxy.targets == [f"CONNECT 127.0.0.1:{port}"]
    assert not page.ok and page.error  # the fake web speaks no TLS: the tunnel's handshake fails, clearly


def test_proxy_credentials_are_sent_and_never_shown(proxy, fake_web):
    proxy.require_auth = ("user", "s3cret-pass")
    url = f"{fake_web.url}/article"
    host = proxy.url.removeprefix("http://")
    assert fetch(url, proxy=f"http://user:s3cret-pass@{host}", allow_private=True).ok
    wrong = fetch(url, proxy=f"http://user:wrong-pass@{host}", allow_private=True)
    assert not wrong.ok and "407" in wrong.error and "wrong-pass" not in wrong.error
    https = fetch(f"https://127.0.0.1:1/x", proxy=f"http://user:wrong-pass@{host}", allow_private=True)
    assert not https.ok and "wrong-pass" not in https.error


def test_a_malformed_proxy_is_a_clear_error(monkeypatch, proxy):
    with pytest.raises(ValueError, match="HTTPS_PROXY"):
        monkeypatch.setenv("HTTPS_PROXY", "ftp://user:pw@proxy:21")
        proxy_settings()
    with pytest.raises(ValueError) as err:
        proxy_settings()
    assert "pw@" not in str(err.value)
    with pytest.raises(grounding.InvalidRequestError, match="fetch.proxy"):
        grounding.set_config({"fetch": {"proxy": "gopher://proxy:70"}})
    grounding.set_config({})


def test_a_grounded_answer_fetches_its_pages_through_the_proxy(proxy, fake_llm, fake_search, fake_web):
    grounding.set_config({"fetch": {"proxy": proxy.url}})
    try:
        r = grounding.completion(model="openai/fake-searcher", api_base=f"{fake_llm.url}/v1", api_key="sk-test",
                                 messages=[{"role": "user", "content": "nutrition trends for fall"}],
                                 web_search={"engine": "searxng"})
    finally:
        grounding.set_config({})
    fetched = [s.url for s in r.metadata.sources if s.status == "fetched"]
    assert len(fetched) == 3 and sorted(proxy.targets) == sorted(fetched)


def test_a_malformed_proxy_in_the_environment_fails_the_request_clearly(proxy, fake_llm, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "not a url at all://")
    with pytest.raises(grounding.InvalidRequestError) as err:
        grounding.completion(model="openai/fake-searcher", api_base=f"{fake_llm.url}/v1", api_key="sk-test",
                             messages=[{"role": "user", "content": "hi"}], web_search={"engine": "searxng"})
    assert err.value.param == "fetch.proxy" and "HTTPS_PROXY" in err.value.message
