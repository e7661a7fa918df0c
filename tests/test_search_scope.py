"""Issue 14, point 3: domain-scoped search, a cap across steps, how much source text, the user's location.

Over real HTTP on 127.0.0.1: litellm.asearch talks to the fake search APIs
(which honour the domain parameters as the real APIs document them), the
fetcher to the local web of real pages, litellm to the fake model server.
With ``mixed_hosts`` the fake engines' results alternate between two host
names of the same local web (``127.0.0.1`` and ``localhost``): two domains
to filter.
"""
from __future__ import annotations

from dataclasses import FrozenInstanceError
from urllib.parse import urlsplit

import openai
import pytest
from openai.types.chat import ChatCompletion as OpenAIChatCompletion

import grounding
from grounding.errors import InvalidRequestError
from grounding.response import Metadata
from providers.search import LocalSearchEngine, SearchHit, SearchOptions, register_engine
from tests.fakes.live_server import serve_config
from tests.fakes.native import MODELS
from tests.test_loop import ask, chat_requests, check_openai_shape


def hosts(result, status=("fetched", "indexed")):
    return {urlsplit(s.url).hostname for s in result.metadata.sources if s.status in status}


def page_requests(fake_web):
    """(host, path) of every page the local web served."""
    return [(r.headers.get("host", "").split(":")[0], r.path) for r in fake_web.requests]


def engine_bodies(fake_search, engine):
    path = {"tavily": "/tavily/search", "exa_ai": "/exa/search"}[engine]
    return [r.json for r in fake_search.requests if r.path == path]


# --- domain filters through litellm's own parameters ---------------------------------

@pytest.mark.parametrize(("engine", "param"), [("tavily", "include_domains"), ("exa_ai", "includeDomains")])
def test_allowed_domains_go_to_the_engine_and_are_enforced(fake_llm, fake_search, fake_web, engine, param):
    fake_search.mixed_hosts = True
    result = ask(fake_llm, engine=engine, web_search={"engine": engine, "allowed_domains": ["LOCALHOST"]})
    check_openai_shape(result)
    assert [b[param] for b in engine_bodies(fake_search, engine)] == [["localhost"]]
    assert hosts(result) == {"localhost"}
    assert {h for h, _ in page_requests(fake_web)} == {"localhost"}
    scope = result.metadata.search_options["allowed_domains"]
    assert scope.value == ["localhost"] and scope.applied == ["sent_to_engine", "filtered_locally"]
    assert scope.removed == 0  # the engine applied it: nothing left to drop here


@pytest.mark.parametrize(("engine", "param"), [("tavily", "exclude_domains"), ("exa_ai", "excludeDomains")])
def test_excluded_domains_go_to_the_engine_in_its_own_words(fake_llm, fake_search, fake_web, engine, param):
    fake_search.mixed_hosts = True
    result = ask(fake_llm, engine=engine, web_search={"engine": engine, "excluded_domains": ["localhost"]})
    assert [b[param] for b in engine_bodies(fake_search, engine)] == [["localhost"]]
    assert hosts(result) == {"127.0.0.1"}
    assert result.metadata.search_options["excluded_domains"].applied == ["sent_to_engine", "filtered_locally"]


def test_brave_gets_site_clauses(fake_llm, fake_search, fake_web):
    fake_search.mixed_hosts = True
    result = ask(fake_llm, engine="brave", web_search={"engine": "brave", "allowed_domains": ["localhost"]})
    [query] = fake_search.queries("brave")
    assert "site:localhost" in query
    assert hosts(result) == {"localhost"}


def test_engines_without_a_domain_parameter_are_filtered_here(fake_llm, fake_search, fake_web):
    fake_search.mixed_hosts = True
    result = ask(fake_llm, engine="searxng", web_search={"engine": "searxng", "allowed_domains": ["localhost"],
                                                         "max_results": 4})
    assert hosts(result) == {"localhost"}
    # the pages outside the filter were never fetched
    assert all(host == "localhost" for host, path in page_requests(fake_web) if path.startswith("/wcxb/"))
    scope = result.metadata.search_options["allowed_domains"]
    assert scope.applied == ["filtered_locally"] and scope.removed and scope.removed > 0
    taken = [s for s in result.metadata.sources if s.status in ("fetched", "failed")]
    assert result.metadata.searches[0].results == len(taken) > 0


def test_a_filter_that_leaves_nothing_says_so(fake_llm, fake_search, fake_web):
    result = ask(fake_llm, engine="searxng", web_search={"engine": "searxng", "allowed_domains": ["python.org"]})
    assert result.metadata.sources == []
    assert result.metadata.search_options["allowed_domains"].removed == 3
    assert any("outside web_search.allowed_domains" in w for w in result.metadata.warnings)
    assert any("not grounded" in w for w in result.metadata.warnings)


# --- the engine interface: SearchOptions, and two-argument engines --------------------

class OldEngine:
    """An engine written before SearchOptions: search(query, max_results) only."""

    def __init__(self, name, urls):
        self.name, self.urls, self.calls = name, urls, []

    async def search(self, query, max_results):
        self.calls.append((query, max_results))
        return [SearchHit(url=u, title=f"page {i}") for i, u in enumerate(self.urls[:max_results])]


class ScopedEngine(OldEngine):
    """An engine that takes options and applies the domain filters itself (and says so)."""

    search_options = frozenset({"allowed_domains", "excluded_domains", "country"})

    async def search(self, query, max_results, *, options: SearchOptions | None = None):
        self.calls.append((query, max_results, options))
        urls = [u for u in self.urls if options is None or options.allows(u)]
        return [SearchHit(url=u, title=f"page {i}") for i, u in enumerate(urls[:max_results])]


def mixed_urls(fake_web):
    port = urlsplit(fake_web.url).port
    return [f"http://localhost:{port}/wcxb/0001", f"http://127.0.0.1:{port}/wcxb/0002",
            f"http://localhost:{port}/wcxb/0003", f"http://127.0.0.1:{port}/wcxb/0004"]


def test_two_argument_engines_keep_working_and_are_filtered(fake_llm, fake_web):
    engine = OldEngine("old-style", mixed_urls(fake_web))
    register_engine("old-style", engine)
    result = ask(fake_llm, web_search={"engine": "old-style", "excluded_domains": ["localhost"], "max_results": 4})
    assert engine.calls == [("nutrition trends for fall", 4)]
    assert hosts(result) == {"127.0.0.1"}
    assert not [p for h, p in page_requests(fake_web) if h == "localhost"]
    scope = result.metadata.search_options["excluded_domains"]
    assert scope.applied == ["filtered_locally"] and scope.removed == 2


def test_engines_that_take_options_get_them(fake_llm, fake_web):
    engine = ScopedEngine("scoped", mixed_urls(fake_web))
    register_engine("scoped", engine)
    result = ask(fake_llm, web_search={"engine": "scoped", "allowed_domains": ["localhost"], "max_results": 4,
                                       "user_location": {"type": "approximate", "approximate": {"country": "de"}}})
    [(_, _, options)] = engine.calls
    assert options == SearchOptions(allowed_domains=("localhost",), country="DE")
    assert hosts(result) == {"localhost"}
    meta = result.metadata.search_options
    assert meta["allowed_domains"].applied == ["sent_to_engine", "filtered_locally"]
    assert meta["user_location"].applied == ["sent_to_engine"] and "country" in meta["user_location"].note


def test_search_options_key_is_stable_and_frozen():
    a = SearchOptions(allowed_domains=("b.org", "a.org"), country="US")
    b = SearchOptions(allowed_domains=("a.org", "b.org"), country="US")
    assert a.key() == b.key() == '{"allowed_domains":["a.org","b.org"],"country":"US"}'
    assert SearchOptions().key() == "{}" and not SearchOptions()
    assert SearchOptions(excluded_domains=("a.org",)).key() != SearchOptions(allowed_domains=("a.org",)).key()
    with pytest.raises(FrozenInstanceError):
        a.country = "FR"  # type: ignore[misc]
    assert a.allows("https://docs.a.org/x") and not a.allows("https://nota.org/") and not a.allows("file:///x")


def test_local_engine_filters_inside_its_index(tmp_path, fake_llm):
    for name, url, text in [
        ("py.html", "https://docs.python.org/3/reference/simple_stmts.html", "The nonlocal statement rebinds."),
        ("blog.html", "https://blog.example.com/nonlocal", "Blog: the nonlocal statement explained at length."),
        ("wiki.html", "https://en.wikipedia.org/wiki/Closure", "Closures and the nonlocal statement in Python."),
    ]:
        (tmp_path / name).write_text(f'<html><head><title>{name}</title><link rel="canonical" href="{url}">'
                                     f"</head><body><article><p>{text} " + "Padding words here. " * 30 +
                                     "</p></article></body></html>")
    register_engine("corpus", LocalSearchEngine(str(tmp_path)))
    result = ask(fake_llm, messages=[{"role": "user", "content": "nonlocal statement"}],
                 web_search={"engine": "corpus", "allowed_domains": ["python.org", "wikipedia.org"]})
    assert hosts(result) == {"docs.python.org", "en.wikipedia.org"}
    assert result.metadata.search_options["allowed_domains"].applied == ["sent_to_engine", "filtered_locally"]


# --- max_total_results, search_context_size, user_location ----------------------------

class FreshEngine(ScopedEngine):
    """Fresh pages on every call (so each step brings new results)."""

    async def search(self, query, max_results, *, options=None):
        self.calls.append((query, max_results, options))
        taken, self.urls = self.urls[:max_results], self.urls[max_results:]
        return [SearchHit(url=u, title=f"page {u[-4:]}") for u in taken]


def test_max_total_results_caps_pages_across_steps(fake_llm, fake_web):
    engine = FreshEngine("fresh", [fake_web.page_url(f"wcxb/{n:04d}") for n in range(1, 30)])
    register_engine("fresh", engine)
    result = ask(fake_llm, "searcher:3", web_search={"engine": "fresh", "max_results": 3, "max_steps": 3,
                                                     "max_total_results": 4})
    taken = [s for s in result.metadata.sources if s.status in ("fetched", "failed")]
    assert len(taken) == 4
    assert [n for _, n, _ in engine.calls] == [3, 1]  # the second search asks only for what is left
    assert result.metadata.search_options["max_total_results"].applied == ["applied_locally"]
    assert result.metadata.queries == ["nutrition trends for fall"] * 2  # the third search was not run
    assert any("max_total_results=4 reached" in w for w in result.metadata.warnings)
    last_tool = [m for m in chat_requests(fake_llm)[-1]["messages"] if m["role"] == "tool"][-1]
    assert "result budget" in last_tool["content"]


def test_search_context_size_sets_how_much_source_text_the_model_gets(fake_llm, fake_search, fake_web):
    sizes = {}
    for size in ("low", "medium", "high"):
        fake_llm.reset()
        result = ask(fake_llm, engine="searxng", web_search={"engine": "searxng", "search_context_size": size})
        tool = [m for m in chat_requests(fake_llm)[-1]["messages"] if m["role"] == "tool"][0]
        sizes[size] = len(tool["content"])
        note = result.metadata.search_options["search_context_size"].note
        assert note == f"{ {'low': 2400, 'medium': 6000, 'high': 12000}[size]} tokens of source text per search step"
    assert sizes["low"] < sizes["medium"] < sizes["high"]


def test_user_location_reaches_engines_that_take_a_country(fake_llm, fake_search, fake_web):
    where = {"type": "approximate", "approximate": {"country": "fr", "city": "Lyon"}}
    result = ask(fake_llm, engine="exa_ai", web_search={"engine": "exa_ai", "user_location": where})
    assert [b["userLocation"] for b in engine_bodies(fake_search, "exa_ai")] == ["FR"]
    scope = result.metadata.search_options["user_location"]
    assert scope.applied == ["sent_to_engine"] and scope.value["approximate"] == {"country": "FR", "city": "Lyon"}
    # An engine with no place for it: said so, nothing sent.
    fake_search.reset()
    register_engine("plain-old", OldEngine("plain-old", mixed_urls(fake_web)))
    result = ask(fake_llm, web_search={"engine": "plain-old", "user_location": where})
    assert result.metadata.search_options["user_location"].applied == ["not_applicable"]


# --- bad input --------------------------------------------------------------------------

@pytest.mark.parametrize(("web_search", "param", "words"), [
    ({"allowed_domains": ["a.com"], "excluded_domains": ["b.com"]}, "web_search.excluded_domains", "not both"),
    ({"allowed_domains": ["example.com/docs"]}, "web_search.allowed_domains", "without a path"),
    ({"allowed_domains": ["*.example.com"]}, "web_search.allowed_domains", "wildcards"),
    ({"excluded_domains": ["exa mple.com"]}, "web_search.excluded_domains", "not a valid domain"),
    ({"allowed_domains": []}, "web_search.allowed_domains", "at least 1"),
    ({"max_total_results": 0}, "web_search.max_total_results", "must be at least 1 (got 0)"),
    ({"search_context_size": "huge"}, "web_search.search_context_size", "low"),
    ({"user_location": {"approximate": {"country": "France"}}}, "web_search.user_location.approximate.country",
     "two-letter"),
    ({"user_location": {"approximate": {"planet": "Mars"}}}, "web_search.user_location.approximate.planet",
     "unknown parameter"),
])
def test_bad_scope_is_a_clear_error(fake_llm, web_search, param, words):
    with pytest.raises(InvalidRequestError) as err:
        ask(fake_llm, web_search={"engine": "searxng", **web_search})
    assert err.value.param == param and words in err.value.message
    assert err.value.status_code == 400
    assert fake_llm.chat_requests() == []


# --- native search: the provider's own domain filters -----------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_native_search_gets_allowed_domains(fake_native, stream):
    result = grounding.completion(
        model=MODELS["anthropic"], api_base=fake_native.api_base("anthropic"), api_key="k", stream=stream,
        messages=[{"role": "user", "content": "Café ?"}],
        web_search={"engine": "native", "allowed_domains": ["tokyo-guide.example", "berlin-bruecken.example"],
                    "search_context_size": "low", "max_total_results": 5})
    if stream:
        chunks = list(result)
        meta = chunks[-1].metadata
        annotations = [a for c in chunks if c.choices for a in c.choices[0].delta.annotations or []]
    else:
        meta, annotations = result.metadata, result.choices[0].message.annotations
    [body] = [r.json for r in fake_native.requests if r.path == "/v1/messages"]
    [tool] = [t for t in body["tools"] if t.get("type") == "web_search_20250305"]
    assert tool["allowed_domains"] == ["tokyo-guide.example", "berlin-bruecken.example"] and tool["max_uses"] == 1
    assert meta.mode == "native"
    assert {urlsplit(a.url_citation.url).hostname for a in annotations} == {"www.tokyo-guide.example",
                                                                            "berlin-bruecken.example"}
    scope = meta.search_options
    assert scope["allowed_domains"].applied == ["sent_to_provider", "filtered_locally"]
    assert scope["allowed_domains"].removed == 0
    assert scope["search_context_size"].applied == ["sent_to_provider"]
    assert scope["max_total_results"].applied == ["not_applicable"]


def test_native_search_without_domain_filters_runs_the_tool_loop_instead(fake_llm, fake_search, fake_web):
    # An OpenAI search model searches by itself, but cannot be limited to domains: the tool loop runs.
    result = grounding.completion(model="openai/gpt-4o-search-preview", api_base=f"{fake_llm.url}/v1", api_key="k",
                                  messages=[{"role": "user", "content": "nutrition trends for fall"}],
                                  web_search={"engine": "native", "excluded_domains": ["localhost"]})
    meta = result.metadata
    assert meta.mode == "tool_loop" and "cannot be limited to domains" in meta.mode_reason
    assert meta.search_options["excluded_domains"].applied[-1] == "filtered_locally"
    assert all(urlsplit(s.url).hostname != "localhost" for s in meta.sources)


# --- through the server, with the official openai SDK ------------------------------------

def test_scope_through_the_server(fake_llm, fake_search, fake_web):
    config = {"providers": {"alpha": {"litellm_provider": "openai", "api_base": f"{fake_llm.url}/v1",
                                      "api_key": "sk-up"}}}
    fake_search.mixed_hosts = True
    with serve_config(config) as server, \
            openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=60) as client:
        r = client.chat.completions.create(
            model="alpha/fake-searcher", messages=[{"role": "user", "content": "nutrition trends for fall"}],
            extra_body={"web_search": {"engine": "tavily", "allowed_domains": ["localhost"], "max_total_results": 2}})
        assert isinstance(r, OpenAIChatCompletion)
        meta = Metadata.model_validate(r.metadata)
        assert {urlsplit(s.url).hostname for s in meta.sources} == {"localhost"} and len(meta.sources) == 2
        assert meta.search_options["allowed_domains"].applied == ["sent_to_engine", "filtered_locally"]
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(
                model="alpha/fake-searcher", messages=[{"role": "user", "content": "x"}],
                extra_body={"web_search": {"allowed_domains": ["a.com"], "excluded_domains": ["b.com"]}})
        assert err.value.status_code == 400
        assert err.value.body["param"] == "web_search.excluded_domains" and "not both" in err.value.body["message"]
