"""Property-based fuzzing of ``grounding serve`` from its own ``/openapi.json``
(schemathesis): valid and invalid requests for every operation, over real
HTTP, with the fake model, search engines and web behind it.

Whatever comes in: no 5xx, no traceback in the log, every error body
OpenAI-shaped, every status and every response body as the document says.
schemathesis' coverage phase sends each field's boundary and invalid values
(about 2,000 requests), then hypothesis a fixed number of random examples per
operation, derandomized: the same run on every machine, in about a minute. Half of the generated chat requests get a model the fakes
serve, so they go all the way through the tool loop instead of stopping at
"unknown model".
"""
from __future__ import annotations

import hashlib
import json
import logging
import os

import pytest
import schemathesis
# Loaded now, at collection: compiled late in a long run (after the tests that end in a
# RecursionError), CPython 3.11.7 can fail it with "AST constructor recursion depth mismatch".
import schemathesis.specs.openapi.schemas  # noqa: F401
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                         status_code_conformance)

from grounding.config import Config, set_config
from grounding.server import create_app
from grounding.server.store import MemoryRouterStore, install
from tests.fakes.live_server import LiveServer

ADMIN = "sk-fuzz-admin-5e1f9b3c7a"
MODELS = ("alpha/fake-searcher", "alpha/fake-direct", "router/support")
EXAMPLES = 15

schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture(scope="module")
def fuzz_server(_fake_llm_server):
    previous = os.environ.get("GROUNDING_MODEL")
    os.environ["GROUNDING_MODEL"] = "alpha/fake-direct"  # a request without a model gets this one
    config = {
        "providers": {"alpha": {"litellm_provider": "openai", "api_base": f"{_fake_llm_server.url}/v1",
                                "api_key": "sk-fuzz-upstream-0d9c"}},
        "models": [{"id": "fake-searcher", "provider": "alpha", "capabilities": {"tools": True}}],
        "routers": [{"name": "support", "default_route": {"id": "only", "variants": [
            {"id": "a", "weight": 100, "model": "alpha/fake-searcher"}]}}],
        "server": {"api_keys": [{"key": ADMIN, "name": "admin", "write": True}], "max_body_bytes": 256 * 1024},
    }
    app = create_app(Config.model_validate(config), store=MemoryRouterStore())
    with LiveServer(app, log_config=None) as live:
        yield live
    install(None)
    set_config({})
    if previous is None:
        os.environ.pop("GROUNDING_MODEL", None)
    else:
        os.environ["GROUNDING_MODEL"] = previous


@pytest.fixture
def api_schema(fuzz_server, fake_llm, fake_search, fake_web):
    return schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")


def _steer(case) -> None:
    """Give half of the chat requests (chosen by a hash of the body: deterministic) a served model."""
    body = case.body
    if case.path != "/v1/chat/completions" or not isinstance(body, dict):
        return
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).digest()
    if digest[0] % 2 == 0:
        body["model"] = MODELS[digest[1] % len(MODELS)]
        body.pop("models", None)


@schema.parametrize()
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_api_never_fails_on_any_input(case, caplog):
    caplog.set_level(logging.INFO)
    _steer(case)
    response = case.call(headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                             content_type_conformance, response_schema_conformance])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in caplog.text
    ours = [r for r in caplog.records if r.name.startswith(("grounding", "uvicorn"))]
    assert not [r for r in ours if r.levelno >= logging.ERROR], [r.getMessage() for r in ours]
