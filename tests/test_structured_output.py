"""Issue 14, point 4: grounded structured outputs that keep their promise.

With ``response_format`` and grounding, the answer is validated (``jsonschema``)
before it is handed over; one repair turn when it is not; then a clear error.
The fake model's ``schema*`` policies answer valid JSON (built from the
request's own schema and the sources it was given), invalid JSON until asked
to repair, never valid JSON, fenced JSON, or JSON citing a URL never fetched.
"""
from __future__ import annotations

import json

import jsonschema
import openai
import pytest
from openai.types.chat import ChatCompletion as OpenAIChatCompletion
from openai.types.chat import ChatCompletionChunk as OpenAIChunk

import grounding
from grounding.errors import InvalidRequestError, OutputValidationError
from grounding.response import Metadata
from tests.fakes.live_server import serve_config
from tests.fakes.native import MODELS
from tests.fakes.policies import PHANTOM_URL, REPAIR_MARK
from tests.test_loop import ask, chat_requests, check_openai_shape

#: The README's recommended shape: each claim with the URLs that support it.
CLAIMS_SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "claims": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "properties": {"claim": {"type": "string"},
                           "sources": {"type": "array", "minItems": 1, "items": {"type": "string"}}},
            "required": ["claim", "sources"], "additionalProperties": False}},
    },
    "required": ["answer", "claims"],
    "additionalProperties": False,
}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "grounded_answer", "strict": True, "schema": CLAIMS_SCHEMA}}


def grounded(fake_llm, policy, *, provider="openai", response_format=SCHEMA, **kw):
    return ask(fake_llm, policy, provider=provider, response_format=response_format, **kw)


def valid(text):
    jsonschema.validate(json.loads(text), CLAIMS_SCHEMA)
    return json.loads(text)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_valid_answer_passes_as_it_is(fake_llm, fake_search, fake_web, provider):
    result = grounded(fake_llm, "schema", provider=provider)
    check_openai_shape(result)
    data = valid(result.choices[0].message.content)
    fetched = {s.url for s in result.metadata.sources if s.status == "fetched"}
    assert data["claims"][0]["sources"][0] in fetched
    so = result.metadata.structured_output
    assert so.type == "json_schema" and so.valid and not so.repaired and so.errors == [] and so.unknown_sources == []
    assert [t.kind for t in result.metadata.turns] == ["search", "answer"]


def test_an_invalid_answer_gets_one_repair_turn(fake_llm, fake_search, fake_web):
    result = grounded(fake_llm, "schema-repair")
    valid(result.choices[0].message.content)
    so = result.metadata.structured_output
    assert so.valid and so.repaired
    assert any("'answer' is a required property" in e for e in so.errors)
    assert [t.kind for t in result.metadata.turns] == ["search", "answer", "repair"]
    repair = chat_requests(fake_llm)[-1]
    last = repair["messages"][-1]
    assert last["role"] == "user" and last["content"].startswith(REPAIR_MARK)
    assert "'answer' is a required property" in last["content"]
    assert repair["response_format"] == SCHEMA  # the repair turn asks with the same format


def test_still_invalid_after_the_repair_is_an_error_not_a_valid_looking_answer(fake_llm, fake_search, fake_web):
    with pytest.raises(OutputValidationError) as err:
        grounded(fake_llm, "schema-never")
    e = err.value
    assert e.status_code == 502 and e.code == "json_schema_mismatch" and e.type == "invalid_response_error"
    assert "even after a repair turn" in e.message and "required property" in e.message
    assert e.content and json.loads(e.content)  # the last (invalid) answer, for the caller's logs
    assert e.metadata["structured_output"]["valid"] is False
    assert len(chat_requests(fake_llm)) == 3  # search, answer, one repair: no more


def test_a_fenced_answer_is_unwrapped(fake_llm, fake_search, fake_web):
    result = grounded(fake_llm, "schema-fenced")
    content = result.choices[0].message.content
    assert not content.startswith("```") and valid(content)
    assert not result.metadata.structured_output.repaired
    for a in result.choices[0].message.annotations or []:  # spans point into the unwrapped text
        assert 0 <= a.url_citation.start_index < a.url_citation.end_index <= len(content)


def test_json_object_is_checked_for_models_that_ignore_it(fake_llm, fake_search, fake_web):
    # litellm drops json_object for Anthropic: the model answers prose, then JSON when asked again.
    result = grounded(fake_llm, "schema-repair", provider="anthropic", response_format={"type": "json_object"})
    assert isinstance(json.loads(result.choices[0].message.content), dict)
    so = result.metadata.structured_output
    assert so.type == "json_object" and so.repaired and so.errors[0].startswith("not valid JSON")


def test_sources_fields_are_checked_against_the_request_sources(fake_llm, fake_search, fake_web):
    result = grounded(fake_llm, "schema-phantom", response_format={"type": "json_object"})
    assert result.metadata.structured_output.unknown_sources == [PHANTOM_URL]
    assert any("not among this request's sources" in w for w in result.metadata.warnings)


def test_streamed_json_arrives_only_once_valid(fake_llm, fake_search, fake_web):
    chunks = list(grounded(fake_llm, "schema-repair", stream=True))
    for c in chunks:
        data = c.to_dict()
        data.pop("metadata", None)
        OpenAIChunk.model_validate(data)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    valid(content)  # nothing of the invalid first answer was streamed
    assert chunks[-1].metadata.structured_output.repaired


def test_ungrounded_requests_are_passed_through(fake_llm):
    # Without grounding the provider enforces its own response_format; nothing is added here.
    result = grounding.completion(model="openai/fake-schema-never", api_base=f"{fake_llm.url}/v1", api_key="k",
                                  messages=[{"role": "user", "content": "x"}], response_format=SCHEMA)
    assert result.metadata.structured_output is None and len(chat_requests(fake_llm)) == 1


def test_an_invalid_schema_is_a_400(fake_llm):
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "required": "answer"}}}
    with pytest.raises(InvalidRequestError) as err:
        grounded(fake_llm, "schema", response_format=bad)
    assert err.value.param == "response_format.json_schema.schema" and "not a valid JSON Schema" in err.value.message
    assert fake_llm.chat_requests() == []


def test_native_search_answers_are_checked_too(fake_native):
    # Perplexity answers prose whatever the format: one repair (it searches again), then the error.
    with pytest.raises(OutputValidationError) as err:
        grounding.completion(model=MODELS["perplexity"], api_base=fake_native.api_base("perplexity"), api_key="k",
                             messages=[{"role": "user", "content": "Café ?"}], web_search_options={},
                             response_format={"type": "json_object"})
    assert err.value.code == "invalid_json"
    assert len([r for r in fake_native.requests if r.path.endswith("/chat/completions")]) == 2


def test_structured_output_through_the_server(fake_llm, fake_search, fake_web):
    config = {"providers": {"alpha": {"litellm_provider": "openai", "api_base": f"{fake_llm.url}/v1",
                                      "api_key": "sk-up"}}}
    web = {"web_search": {"engine": "searxng"}}
    question = [{"role": "user", "content": "nutrition trends for fall"}]
    with serve_config(config) as server, \
            openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=60) as client:
        r = client.chat.completions.create(model="alpha/fake-schema-repair", messages=question,
                                           response_format=SCHEMA, extra_body=web)
        assert isinstance(r, OpenAIChatCompletion)
        valid(r.choices[0].message.content)
        assert Metadata.model_validate(r.metadata).structured_output.repaired
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as err:
                response = client.chat.completions.create(model="alpha/fake-schema-never", messages=question,
                                                          response_format=SCHEMA, extra_body=web, stream=stream)
                list(response) if stream else None
            assert err.value.status_code == 502 and err.value.body["code"] == "json_schema_mismatch"
