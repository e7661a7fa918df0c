"""Pydantic validation errors as one plain sentence each.

Pydantic's own messages are written for developers ("Input should be less
than or equal to 2", "Value error, must be ..."); requests, router files and
config files all report them through :func:`describe`, which says the rule in
plain words and the offending value once.
"""
from __future__ import annotations

from typing import Any

__all__ = ["describe", "with_value"]

#: pydantic error type -> the rule, in plain words (``{...}`` from the error's ``ctx``).
_PLAIN = {
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "multiple_of": "must be a multiple of {multiple_of}",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_too_short": "must have at least {min_length} character(s)",
    "string_too_long": "must have at most {max_length} character(s)",
    "string_pattern_mismatch": "must match {pattern}",
    "url_parsing": "must be a URL",
    "none_required": "must be null",
}
#: What pydantic puts before the message of an exception raised in a validator.
_PREFIXES = ("Value error, ", "Assertion failed, ")


def describe(err: dict[str, Any], *, value: bool = True) -> str:
    """The rule an error of ``ValidationError.errors()`` broke, with the value given (once;
    ``value=False``: the rule alone)."""
    ctx = err.get("ctx") or {}
    inner = ctx.get("error")
    if isinstance(inner, Exception) and str(inner):
        message = str(inner)
    elif err.get("type") in _PLAIN:
        try:
            message = _PLAIN[err["type"]].format(**{k: _number(v) for k, v in ctx.items()})
        except (KeyError, IndexError):
            message = str(err.get("msg") or err.get("type"))
    else:
        message = str(err.get("msg") or err.get("type"))
    for prefix in _PREFIXES:
        message = message.removeprefix(prefix)
    return with_value(message, err.get("input")) if value else message


def with_value(message: str, value: Any) -> str:
    """``message (got VALUE)``, unless the value is a structure or the message says it already."""
    if value is None or isinstance(value, (dict, list, tuple, set)):
        return message
    shown = repr(value)
    if len(shown) > 80 or f"got {shown}" in message or f"not {shown}" in message:
        return message
    return f"{message} (got {shown})"


def _number(value: Any) -> Any:
    """``2.0`` -> ``2`` (a bound written as a float reads better without its ``.0``)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value
