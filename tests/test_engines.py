"""Point 5: engines are selected by name, configured by litellm's own env vars."""
from __future__ import annotations

import pytest

from grounding.errors import InvalidRequestError
from providers.search import (LitellmSearchEngine, LocalSearchEngine, canonical_engine_name, default_engine_name,
                              engine_names, get_engine)

REQUIRED = ["tavily", "exa_ai", "brave", "searxng", "serper", "google_pse", "duckduckgo", "perplexity", "local"]


@pytest.mark.parametrize("name", REQUIRED)
def test_required_engines_are_selectable(name):
    assert name in engine_names()
    engine = get_engine(name)
    assert engine.name == name
    assert isinstance(engine, LocalSearchEngine if name == "local" else LitellmSearchEngine)


@pytest.mark.parametrize(("alias", "name"), [("exa", "exa_ai"), ("google", "google_pse"), ("ddg", "duckduckgo"),
                                             ("Tavily", "tavily")])
def test_aliases(alias, name):
    assert canonical_engine_name(alias) == name


def test_unknown_engine_names_the_field():
    with pytest.raises(InvalidRequestError) as err:
        canonical_engine_name("altavista")
    assert err.value.param == "web_search.engine" and "tavily" in err.value.message


def test_default_engine_follows_keys(monkeypatch):
    for var in ("GROUNDING_ENGINE", "EXA_API_KEY", "TAVILY_API_KEY", "BRAVE_API_KEY", "SERPER_API_KEY",
                "GOOGLE_PSE_API_KEY", "PERPLEXITYAI_API_KEY", "SEARXNG_API_BASE"):
        monkeypatch.delenv(var, raising=False)
    assert default_engine_name() == "local"
    monkeypatch.setenv("TAVILY_API_KEY", "k")
    assert default_engine_name() == "tavily"
    monkeypatch.setenv("EXA_API_KEY", "k")
    assert default_engine_name() == "exa_ai"
    monkeypatch.setenv("GROUNDING_ENGINE", "brave")
    assert default_engine_name() == "brave"
