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
        ({"model": []}, "model"),
        ({"model": {}}, "model"),
        ({"model": "   "}, "model"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages[0].content[0].image_url"),
        ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": 5}}]}]},
         "messages[0].content[0].input_audio.data"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"messages": [{"content": "x"}]}, "messages[0].role"),
        ({"messages": ["hi"]}, "messages[0]"),
        ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]}]},
         "messages[0].tool_calls[0].function.arguments"),
        ({"stop": ["a", 5]}, "stop[1]"),
        ({"stream": "true"}, "stream"),
        ({"max_tokens": "5"}, "max_tokens"),
        ({"temperature": float("nan")}, "temperature"),
        ({"tool_choice": "bogus"}, "tool_choice"),
        ({"tools": [{"type": "function", "function": {"name": "f", "description": 5}}]},
         "tools[0].function.description"),
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


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"messages": [{"role": "user", "content": "a\ud800b"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "\udfff"}]}]}, "messages[0].content[0].text"),
    ({"stop": "\ud800"}, "stop"),
    ({"tools": [{"type": "function", "function": {"name": "f", "description": "\udc00"}}]},
     "tools[0].function.description"),
    ({"user": "\ud83d"}, "user"),
    ({"metadata": {"k": "\ud800"}}, "metadata.k"),
    ({"extra_body": {"anything": ["\ud800"]}}, "extra_body.anything[0]"),
])
def test_lone_surrogates_anywhere_are_refused(kwargs, param):
    """Every string of every field, including fields no validator knows about."""
    with pytest.raises(InvalidRequestError) as err:
        parse(**kwargs)
    assert err.value.param == param
    assert "lone surrogate" in err.value.message


def test_error_messages_are_one_sentence_without_pydantic_noise():
    for kwargs in ({"temperature": "hot"}, {"web_search": {"max_results": 0}}, {"fallback": {"ttft_timeout": "1ms"}},
                   {"stop": 5}, {"messages": [{"role": "robot", "content": "x"}]}):
        with pytest.raises(InvalidRequestError) as err:
            parse(**kwargs)
        message = err.value.message
        assert "Value error" not in message and "Input should" not in message and "pydantic" not in message
        assert message.endswith(".") and message.count(". ") == 0, message
        assert f"'{err.value.param}'" in message


def test_deep_nesting_is_refused_by_the_library_too():
    deep: list = []
    node = deep
    for _ in range(200):
        node.append([])
        node = node[0]
    with pytest.raises(InvalidRequestError) as err:
        parse(extra_body={"x": deep})
    assert "nested too deeply" in err.value.message
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(InvalidRequestError):
        parse(extra_body={"x": cyclic})


def test_decode_body_turns_every_bad_body_into_a_400():
    from grounding.request import decode_body

    for raw in (b"[" * 100_000, b'{"a":' * 70 + b"1" + b"}" * 70, b'{"model": NaN}', b"\xff\xfe\x00",
                b'"text"', b"", b" ", b'{"a": 1e999}', b'{"a": "\\ud800"}', b'{"a": 1' + b"0" * 5000 + b"}"):
        with pytest.raises(InvalidRequestError) as err:
            decode_body(raw)
        assert err.value.status_code == 400


def test_model_given_as_null_takes_the_default_but_falsy_values_do_not():
    assert parse_request({"model": None, "messages": USER}, default_model="openai/d").model == "openai/d"
    for bad in ("", [], {}, 0, False):
        with pytest.raises(InvalidRequestError) as err:
            parse_request({"model": bad, "messages": USER}, default_model="openai/d")
        assert err.value.param == "model"


def test_messages_stay_the_callers_json_and_pydantic_messages_are_accepted():
    from grounding.response import Message

    history = [{"role": "user", "content": "q"}, Message(content="an answer"), {"role": "user", "content": "more"}]
    req = parse(messages=history)
    assert req.messages[1] == {"role": "assistant", "content": "an answer"}
    assert all(isinstance(m, dict) for m in req.messages)
