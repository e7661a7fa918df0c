"""Error messages say a thing once, in plain words: requests, router files and config files.

Pydantic's developer phrasing ("Input should be ...", "Value error, ...") never
reaches a user, and the offending value is shown once.
"""
from __future__ import annotations

import re

import pytest

import grounding
from grounding.config import load_config
from grounding.errors import InvalidRequestError
from grounding.request import parse_request
from grounding.routing.routers import Router

USER = [{"role": "user", "content": "hi"}]

BAD_REQUESTS = [
    ({"fallback": {"ttft_timeout": "100ms"}}, "fallback.ttft_timeout", "must be at least 300ms (got '100ms')"),
    ({"fallback": {"ttft_timeout": "soon"}}, "fallback.ttft_timeout", "like '300ms' or '1.5s', not 'soon'"),
    ({"temperature": 5}, "temperature", "must be at most 2 (got 5)"),
    ({"top_p": 0}, "top_p", "must be greater than 0 (got 0)"),
    ({"max_tokens": "lots"}, "max_tokens", "expected an integer, but got a string"),
    ({"web_search": {"max_results": 50}}, "web_search.max_results", "must be at most 20 (got 50)"),
    ({"web_search": {"max_steps": 0}}, "web_search.max_steps", "must be at least 1 (got 0)"),
    ({"reasoning_effort": "max"}, "reasoning_effort", "expected one of 'none', 'minimal'"),
    ({"stream": "yes please"}, "stream", "expected a boolean, but got a string"),
    ({"sort": ["bogus"]}, "sort", "unknown sort criterion 'bogus'"),
    ({"stop": ["a"] * 5}, "stop", "at most 4 stop sequences"),
    ({"messages": []}, "messages", "must have at least 1 item"),
    ({"stop": 5}, "stop", "expected a string or an array, but got an integer"),  # a union: one phrase
    ({"temperature": 5, "top_p": 0}, "temperature", "; also top_p: must be greater than 0"),
]


def _plain(message: str) -> None:
    assert "Value error" not in message and "Input should" not in message, message
    assert "Assertion failed" not in message, message
    for shown in re.findall(r"\(got [^)]*\)", message):
        assert message.count(shown) == 1, message


@pytest.mark.parametrize("fields, param, expected", BAD_REQUESTS)
def test_request_errors_are_plain_and_say_the_value_once(fields, param, expected) -> None:
    with pytest.raises(InvalidRequestError) as err:
        parse_request({"model": "openai/x", "messages": USER, **fields})
    assert err.value.param == param
    assert expected in err.value.message, err.value.message
    _plain(err.value.message)


def test_the_same_words_reach_the_python_api() -> None:
    with pytest.raises(grounding.InvalidRequestError) as err:
        grounding.completion(model="openai/x", messages=USER, fallback={"ttft_timeout": "100ms"})
    assert err.value.message == "Invalid value for 'fallback.ttft_timeout': must be at least 300ms (got '100ms')."


@pytest.mark.parametrize("variant, expected", [
    ({"id": "a", "model": "m", "generation": {"temperature": 9}}, "generation: Invalid value for 'temperature': must be at most 2 (got 9)"),
    ({"id": "a", "model": "m", "weight": 0}, "weight: must be at least 1 (got 0)"),
    ({"id": "a", "model": "m", "fallback": 1}, "unknown key"),
])
def test_router_errors_are_plain(variant, expected) -> None:
    data = {"name": "r", "default_route": {"variants": [variant]}}
    with pytest.raises(InvalidRequestError) as err:
        Router.from_dict(data, source="r.yaml")
    assert expected in err.value.message, err.value.message
    _plain(err.value.message)


@pytest.mark.parametrize("config, expected", [
    ({"server": {"max_body_bytes": "big"}}, "config: server.max_body_bytes: must be a whole number (got 'big')"),
    ({"router_prefix": 3}, "config: router_prefix: must be a string (got 3)"),
    ({"nonsense": 1}, "config: nonsense: unknown key"),
])
def test_config_errors_are_plain(config, expected) -> None:
    with pytest.raises(InvalidRequestError) as err:
        load_config(config)
    assert err.value.message == expected
    _plain(err.value.message)
