"""Shared pytest set-up: the --run-slow switch and the fake upstreams."""
from __future__ import annotations

import os

import pytest

pytest_plugins = ["tests.fakes.fixtures", "tests.fakes.redis_server"]

# Tests reach the fake servers on 127.0.0.1: opt in to private networks, and
# keep litellm from trying to download its cost map.
os.environ.setdefault("GROUNDING_ALLOW_PRIVATE_NETWORKS", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Every test starts with an empty search and page cache (it is on by default, and tests
    count the fakes' requests)."""
    from grounding.cache import reset_cache

    reset_cache()
    yield
    reset_cache()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run the tests marked slow (the real local model)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --run-slow to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def python_docs_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A cache folder holding the built-in corpus (Python's documentation), built once per run
    (about half a minute); point ``GROUNDING_CACHE_DIR`` at it to use it."""
    from providers.local_index import open_corpus

    cache = tmp_path_factory.mktemp("python-docs-cache")
    saved = os.environ.get("GROUNDING_CACHE_DIR")
    os.environ["GROUNDING_CACHE_DIR"] = str(cache)
    try:
        open_corpus("python-docs").close()
    finally:
        if saved is None:
            os.environ.pop("GROUNDING_CACHE_DIR", None)
        else:
            os.environ["GROUNDING_CACHE_DIR"] = saved
    return str(cache)
