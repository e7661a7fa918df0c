"""Point 2: the request is validated, and bad input names the field."""
from __future__ import annotations

import pytest

import grounding
from grounding.errors import InvalidRequestError
from grounding.request import parse_request

USER = [{"role": "user", "content": "hi"}]


def parse(**kw):
    kw.setdefault("model", "openai/m")
    kw.setdefault("messages", USER)
    return parse_request(kw)


def test_defaults_and_extra_body():
    req = parse(extra_body={"web_search": {"engine": "exa"}, "top_k": 5})
    assert req.web_search.engine == "exa_ai"  # alias resolved
    assert (req.web_search.max_results, req.web_search.max_steps) == (3, 1)
    assert req.extra_body == {"top_k": 5}  # unknown extra_body keys go to the provider


def test_web_search_top_level_and_in_extra_body_agree():
    ws = {"engine": "tavily", "max_results": 5}
    assert parse(web_search=ws, extra_body={"web_search": ws}).web_search.max_results == 5
    with pytest.raises(InvalidRequestError) as err:
        parse(web_search=ws, extra_body={"web_search": {"engine": "brave"}})
    assert err.value.param == "web_search"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"web_search": {"max_results": 0}}, "web_search.max_results"),
        ({"web_search": {"max_results": 21}}, "web_search.max_results"),
        ({"web_search": {"max_steps": 6}}, "web_search.max_steps"),
        ({"web_search": {"engine": "altavista"}}, "web_search.engine"),
        ({"web_search": {"depth": 2}}, "web_search.depth"),
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"presence_penalty": -3}, "presence_penalty"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"logit_bias": {"50256": 101}}, "logit_bias"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"n": 2}, "n"),
        ({"frobnicate": True}, "frobnicate"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]}, "messages[0].content[0].type"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools[0].function.name"),
        ({"response_format": {"type": "json_schema"}}, "response_format"),
        ({"web_search": {}, "web_search_options": {}}, "web_search"),
        ({"extra_body": "nope"}, "extra_body"),
        ({"model": ""}, "model"),
    ],
)
def test_bad_input_raises_typed_error_naming_the_field(kwargs, param):
    with pytest.raises(InvalidRequestError) as err:
        parse(**kwargs)
    assert err.value.param == param
    assert err.value.status_code == 400
    assert err.value.to_dict()["error"]["param"] == param
    assert param.split(".")[0].split("[")[0] in err.value.message


def test_missing_model_without_default():
    with pytest.raises(InvalidRequestError) as err:
        parse_request({"messages": USER})
    assert err.value.param == "model"


def test_public_api_rejects_bad_input_before_any_network():
    with pytest.raises(grounding.InvalidRequestError):
        grounding.completion(model="openai/x", messages=USER, web_search={"max_steps": 0})


def test_openai_fields_accepted():
    req = parse(
        temperature=0.2, top_p=0.9, max_tokens=100, seed=1, stop="\n", user="u1", logprobs=False,
        tools=[{"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        stream=True, stream_options={"include_usage": True}, reasoning_effort="low",
        messages=[{"role": "system", "content": "s"},
                  {"role": "user", "content": [{"type": "text", "text": "q"},
                                               {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}],
    )
    assert req.sampling()["temperature"] == 0.2
    assert req.caller_tool_names == {"get_time"}
