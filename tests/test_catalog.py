"""The model catalog: litellm's map, the scores file, config overrides, keys."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grounding.config import load_config, set_config
from grounding.errors import InvalidRequestError
from grounding.llm import litellm
from grounding.routing import catalog as catalog_mod
from grounding.routing.catalog import Catalog, get_catalog, load_scores, plain_id, provider_key_status

KEY_VARS = {var for rules in catalog_mod._PROVIDER_KEYS.values() for alt in rules for var in alt}


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider key from the machine running the tests leaks in."""
    for var in list(os.environ):
        if var in KEY_VARS or var.endswith(("_API_KEY", "_API_TOKEN")) or var in {"ALPHA_KEY", "GROUNDING_CONFIG"}:
            monkeypatch.delenv(var, raising=False)


def per_million(key: str, field: str) -> float:
    return litellm().model_cost[key][field] * 1_000_000


def chat_entries(plain: str) -> dict[str, str]:
    """{provider: map key} of the chat entries whose plain id is ``plain``, read straight from the map."""
    out: dict[str, str] = {}
    for key, entry in litellm().model_cost.items():
        if isinstance(entry, dict) and entry.get("mode") in ("chat", "responses") and key.split("/")[-1] == plain:
            out.setdefault(entry["litellm_provider"], key)
    return out


CONFIG = """\
providers:
  alpha: {litellm_provider: openai, api_base: "http://127.0.0.1:9/v1", api_key_env: ALPHA_KEY}
  beta: {litellm_provider: anthropic, api_key: "sk-beta"}
  local: {litellm_provider: openai, api_base: "http://127.0.0.1:11434/v1"}
models:
  - {id: fake-searcher, provider: alpha, input_price: 0.2, output_price: 0.8, context_window: 32768,
     capabilities: {tools: true, vision: false, json_schema: true}, scores: {intelligence: 40, coding: 30}}
  - {id: gpt-4.1-mini, provider: openai, input_price: 0.05, capabilities: {vision: false}}
  - {id: gpt-oss-120b, scores: {intelligence: 99}}
  - {id: claude-sonnet-4-5, provider: beta}
  - {id: tiny, provider: local}
"""


@pytest.fixture
def config_catalog(tmp_path: Path) -> Catalog:
    path = tmp_path / "grounding.yaml"
    path.write_text(CONFIG)
    return Catalog(load_config(path))


# ---------------------------------------------------------------- litellm's map


def test_provider_prefixed_id_reads_prices_and_capabilities_from_the_map() -> None:
    [info] = Catalog().resolve("openai/gpt-4.1-mini")
    entry = litellm().model_cost["gpt-4.1-mini"]
    assert (info.model, info.provider, info.litellm_model) == ("gpt-4.1-mini", "openai", "openai/gpt-4.1-mini")
    assert info.input_price == pytest.approx(per_million("gpt-4.1-mini", "input_cost_per_token"))
    assert info.output_price == pytest.approx(per_million("gpt-4.1-mini", "output_cost_per_token"))
    assert info.context_window == entry["max_input_tokens"]
    assert info.tools is bool(entry.get("supports_function_calling"))
    assert info.vision is bool(entry.get("supports_vision"))
    assert info.native_search is bool(entry.get("supports_web_search"))
    assert info.json_schema is bool(entry.get("supports_response_schema"))
    assert info.api_base is None and info.api_key is None


def test_plain_id_lists_every_provider_serving_it() -> None:
    expected = chat_entries("gpt-oss-120b")
    assert {"groq", "cerebras"} <= set(expected)
    infos = Catalog().resolve("gpt-oss-120b")
    providers = {i.provider for i in infos}
    assert providers == {catalog_mod._map_provider(p) for p in expected}
    assert all(i.model == "gpt-oss-120b" for i in infos)
    assert len({i.id for i in infos}) == len(infos)
    groq = next(i for i in infos if i.provider == "groq")
    assert groq.litellm_model == "groq/openai/gpt-oss-120b"
    assert groq.input_price == pytest.approx(per_million("groq/openai/gpt-oss-120b", "input_cost_per_token"))
    assert groq.id == "groq/gpt-oss-120b"


def test_deployment_forms_name_the_same_deployment() -> None:
    catalog = Catalog()
    assert catalog.resolve("groq/openai/gpt-oss-120b") == catalog.resolve("groq/gpt-oss-120b")
    [gemini] = catalog.resolve("google-ai-studio/gemini-2.5-flash")  # an alias of litellm's "gemini"
    assert gemini.id == "gemini/gemini-2.5-flash"
    assert gemini.input_price == pytest.approx(per_million("gemini/gemini-2.5-flash", "input_cost_per_token"))


def test_first_party_provider_comes_first() -> None:
    catalog = Catalog()
    assert catalog.resolve("gpt-4.1-mini")[0].id == "openai/gpt-4.1-mini"
    assert catalog.resolve("claude-sonnet-4-5")[0].id == "anthropic/claude-sonnet-4-5"
    assert catalog.resolve("gemini-2.5-flash")[0].id == "gemini/gemini-2.5-flash"
    gateways = [i for i in catalog.resolve("gpt-4.1-mini") if i.provider == "openrouter"]
    assert gateways and catalog.resolve("gpt-4.1-mini").index(gateways[0]) > 0


def test_unknown_models() -> None:
    catalog = Catalog()
    assert catalog.resolve("no-such-model-xyz") == []
    assert catalog.resolve("") == []
    assert catalog.resolve("meta-llama/not-a-provider") == []
    [made_up] = catalog.resolve("openai/no-such-model-xyz")
    assert (made_up.provider, made_up.model, made_up.litellm_model) == ("openai", "no-such-model-xyz",
                                                                       "openai/no-such-model-xyz")
    assert made_up.input_price is None and made_up.context_window is None and made_up.price is None
    assert made_up.tools is True  # any litellm chat model may be given tools
    assert not (made_up.vision or made_up.json_schema or made_up.native_search)


def test_plain_id_is_the_last_segment() -> None:
    assert plain_id("fireworks_ai/accounts/fireworks/models/gpt-oss-120b") == "gpt-oss-120b"
    assert plain_id("gpt-4o") == "gpt-4o"


# ---------------------------------------------------------------- config


def test_config_provider_models(config_catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    [info] = config_catalog.resolve("alpha/fake-searcher")
    assert (info.litellm_model, info.api_base) == ("openai/fake-searcher", "http://127.0.0.1:9/v1")
    assert (info.input_price, info.output_price, info.context_window) == (0.2, 0.8, 32768)
    assert info.tools and info.json_schema and not info.vision
    assert (info.intelligence, info.coding, info.math) == (40, 30, None)
    assert info.available is False and info.key_env == "ALPHA_KEY" and info.api_key is None
    assert config_catalog.resolve("fake-searcher") == [info]

    monkeypatch.setenv("ALPHA_KEY", "sk-alpha")  # read live, not when the catalog was built
    [info] = config_catalog.resolve("alpha/fake-searcher")
    assert info.available is True and info.api_key == "sk-alpha"


def test_config_provider_serving_a_known_model_takes_its_map_values(config_catalog: Catalog) -> None:
    [info] = config_catalog.resolve("beta/claude-sonnet-4-5")
    entry = litellm().model_cost["claude-sonnet-4-5"]
    assert info.litellm_model == "anthropic/claude-sonnet-4-5"
    assert info.api_key == "sk-beta" and info.available
    assert info.input_price == pytest.approx(entry["input_cost_per_token"] * 1e6)
    assert info.vision is bool(entry.get("supports_vision"))
    # the plain id lists the config deployment first, then the map's
    ids = [i.id for i in config_catalog.resolve("claude-sonnet-4-5")]
    assert ids[:2] == ["beta/claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"]


def test_keyless_config_provider_is_available(config_catalog: Catalog) -> None:
    [tiny] = config_catalog.resolve("local/tiny")
    assert tiny.available and tiny.tools and tiny.input_price is None


def test_config_overrides_win_over_the_map(config_catalog: Catalog) -> None:
    [mini] = config_catalog.resolve("openai/gpt-4.1-mini")
    assert mini.input_price == 0.05
    assert mini.output_price == pytest.approx(per_million("gpt-4.1-mini", "output_cost_per_token"))
    assert mini.vision is False  # the map says True
    # an entry with a provider overrides that deployment only
    azure = [i for i in config_catalog.resolve("gpt-4.1-mini") if i.provider == "azure"]
    assert azure and azure[0].vision is True and azure[0].input_price != 0.05
    # an entry without a provider applies to every provider of the model
    assert {i.intelligence for i in config_catalog.resolve("gpt-oss-120b")} == {99}


def test_config_errors(tmp_path: Path) -> None:
    bad = [
        ({"models": [{"id": "x", "provider": "nowhere"}]}, "unknown provider"),
        ({"models": [{"id": "no-such-model-xyz"}]}, "set its provider"),
        ({"models": [{"id": "gpt-4o", "provider": "openai", "capabilities": {"telepathy": True}}]}, "telepathy"),
        ({"models": [{"id": "gpt-4o", "provider": "openai", "scores": {"charm": 3}}]}, "charm"),
    ]
    for data, words in bad:
        with pytest.raises(InvalidRequestError, match=words) as info:
            Catalog(load_config(data)).resolve("openai/gpt-4o")
        assert info.value.param == "config"


# ---------------------------------------------------------------- pool


def test_pool_is_the_configured_models_with_keys(config_catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = {i.id for i in config_catalog.pool()}
    assert ids == {"beta/claude-sonnet-4-5", "local/tiny"}  # literal key; keyless
    monkeypatch.setenv("ALPHA_KEY", "k")
    monkeypatch.setenv("GROQ_API_KEY", "k")
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    ids = {i.id for i in config_catalog.pool()}
    # gpt-oss-120b (no provider) counts every provider whose key is set; other groq models do not join
    assert ids == {"beta/claude-sonnet-4-5", "local/tiny", "alpha/fake-searcher", "groq/gpt-oss-120b",
                   "openai/gpt-4.1-mini"}
    assert all(i.available for i in config_catalog.pool())


def test_pool_without_configured_models_comes_from_the_scores_file(monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = Catalog()
    assert catalog.pool() == []
    monkeypatch.setenv("GROQ_API_KEY", "k")
    pool = catalog.pool()
    assert pool and {i.provider for i in pool} == {"groq"}
    assert {i.model for i in pool} <= set(catalog.scores())
    assert "groq/gpt-oss-120b" in {i.id for i in pool}
    assert all(i.intelligence is not None for i in pool)


def test_scores_file_from_config_replaces_the_shipped_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my-scores.yaml").write_text("gpt-4.1-mini: {intelligence: 11, math: 12}\n")
    (tmp_path / "grounding.yaml").write_text("scores_file: my-scores.yaml\n")  # relative to the config file
    catalog = Catalog(load_config(tmp_path / "grounding.yaml"))
    [mini] = catalog.resolve("openai/gpt-4.1-mini")
    assert (mini.intelligence, mini.math, mini.coding) == (11, 12, None)
    [gpt5] = catalog.resolve("openai/gpt-5")
    assert gpt5.intelligence is None
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    assert [i.id for i in catalog.pool()] == ["openai/gpt-4.1-mini"]


def test_shipped_scores_file() -> None:
    scores = load_scores()
    assert len(scores) >= 25
    assert all(0 <= v <= 100 for row in scores.values() for v in row.values())
    assert all(set(row) == {"intelligence", "coding", "math"} for row in scores.values())
    text = (Path(catalog_mod.__file__).parent / "scores.yaml").read_text()
    assert "Artificial Analysis" in text and "2026" in text and "approximat" in text
    catalog = Catalog()
    providers = {i.provider for m in scores for i in catalog.resolve(m)}
    assert {"openai", "anthropic", "gemini", "groq", "mistral", "deepseek", "perplexity", "xai"} <= providers
    assert sum(1 for m in scores if catalog.resolve(m)) >= 25


@pytest.mark.parametrize("text, words", [
    ("- a\n- b\n", "must map"),
    ("m: {intelligence: 150}\n", "0 to 100"),
    ("m: {speed: 3}\n", "unknown score"),
    ("m: [1, 2]\n", "mapping"),
    ("m: {intelligence: [\n", "not valid YAML"),
])
def test_bad_scores_files(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(InvalidRequestError, match=words):
        load_scores(path)
    with pytest.raises(InvalidRequestError, match="cannot read"):
        load_scores(tmp_path / "missing.yaml")


# ---------------------------------------------------------------- keys


def test_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    assert provider_key_status("groq") == (False, "GROQ_API_KEY")
    monkeypatch.setenv("GROQ_API_KEY", "k")
    assert provider_key_status("groq") == (True, "GROQ_API_KEY")
    assert provider_key_status("gemini") == (False, "GEMINI_API_KEY")
    monkeypatch.setenv("GOOGLE_API_KEY", "k")  # the alternative litellm also reads
    assert provider_key_status("gemini") == (True, "GOOGLE_API_KEY")
    assert provider_key_status("azure")[0] is False
    monkeypatch.setenv("AZURE_API_KEY", "k")
    assert provider_key_status("azure")[0] is False  # needs the base too
    monkeypatch.setenv("AZURE_API_BASE", "https://x")
    assert provider_key_status("azure")[0] is True
    assert provider_key_status("crusoe") == (False, "CRUSOE_API_KEY")  # not in the table: the convention
    assert provider_key_status("ollama") == (True, None)
    [groq] = Catalog().resolve("groq/gpt-oss-120b")
    assert groq.available
    monkeypatch.delenv("GROQ_API_KEY")
    [groq] = Catalog().resolve("groq/gpt-oss-120b")
    assert not groq.available and groq.key_env == "GROQ_API_KEY"


# ---------------------------------------------------------------- process state


def test_get_catalog_follows_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        set_config({"providers": {"alpha": {"api_base": "http://127.0.0.1:9/v1", "api_key": "k"}},
                    "models": [{"id": "fake-searcher", "provider": "alpha"}]})
        first = get_catalog()
        assert get_catalog() is first
        assert [i.id for i in first.pool()] == ["alpha/fake-searcher"]
        set_config({})  # resets routing state
        assert get_catalog() is not first
        assert get_catalog().resolve("alpha/fake-searcher") == []
        catalog_mod.reset()
        assert catalog_mod._catalog is None
    finally:
        set_config(None)


def test_importing_routing_does_not_import_litellm() -> None:
    code = textwrap.dedent("""
        import sys
        import grounding.routing.catalog, grounding.routing.select, grounding.routing.stats
        from grounding.routing.catalog import Catalog
        Catalog()
        print("litellm" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"


def test_resolve_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_mod, "_MAX_CACHED", 3)
    catalog = Catalog()
    for i in range(10):
        [made_up] = catalog.resolve(f"openai/made-up-{i}")
        assert made_up.model == f"made-up-{i}"
    assert len(catalog._resolved) <= 3 and len(catalog._deployments) <= 3
    assert catalog.resolve("openai/gpt-4.1-mini")[0].input_price is not None


def test_resolving_is_cached() -> None:
    """A reference is resolved once, then served from the cache (how fast: ``python -m benchmarks.routing``)."""
    catalog = Catalog()
    first = (catalog.resolve("gpt-oss-120b"), catalog.resolve("openai/gpt-4.1-mini"))

    def no_resolving(ref: str):
        raise AssertionError(f"resolved {ref!r} again")

    catalog._resolve = no_resolving  # type: ignore[method-assign]
    for _ in range(3):
        assert (catalog.resolve("gpt-oss-120b"), catalog.resolve("openai/gpt-4.1-mini")) == first
