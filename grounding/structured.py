"""Grounded structured outputs that keep their promise.

With ``response_format`` and grounding (``web_search`` or native search), the
final answer is checked before it is handed over:

- ``json_schema``: it must parse as JSON and validate against the schema
  (the ``jsonschema`` package; the draft the schema's ``$schema`` names,
  else 2020-12; ``format`` is not asserted);
- ``json_object``: it must parse as a JSON object (some providers, e.g.
  Anthropic through litellm, drop ``json_object`` silently).

A fenced answer (```` ```json ... ``` ````) is unwrapped first. When the answer
is invalid, the model gets one repair turn (its answer and the validation
errors, asking for the corrected JSON alone); if that is still invalid, the
request fails with :class:`~grounding.errors.OutputValidationError` (HTTP
502, ``code`` ``json_schema_mismatch`` or ``invalid_json``) rather than hand
over invalid JSON as if it were valid. ``metadata.structured_output`` says
what happened.

Per-field sources: give each claim a ``sources`` array of URLs in the schema
(see the README); URLs there that are not among the request's sources are
reported in ``metadata.structured_output.unknown_sources`` and a warning.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import InvalidRequestError

__all__ = ["OutputCheck", "Verdict", "check_schema", "repair_message", "source_urls"]

_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(?P<body>.*?)\n?\s*```\s*$", re.S)
_MAX_ERRORS = 5


def _validator_class(schema: dict[str, Any]) -> Any:
    from jsonschema.validators import Draft202012Validator, validator_for

    return validator_for(schema, default=Draft202012Validator)


def check_schema(schema: Any) -> None:
    """Raise :class:`InvalidRequestError` (``param`` ``response_format.json_schema.schema``)
    when ``schema`` is not a valid JSON Schema."""
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        raise InvalidRequestError("response_format.json_schema.schema must be a JSON Schema object",
                                  param="response_format.json_schema.schema")
    try:
        _validator_class(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        raise InvalidRequestError(f"response_format.json_schema.schema is not a valid JSON Schema"
                                  f"{' at ' + where if where else ''}: {exc.message}",
                                  param="response_format.json_schema.schema") from None


@dataclass
class Verdict:
    """The outcome of checking one answer."""

    content: str  # the answer, unwrapped from a code fence if it was in one
    errors: list[str] = field(default_factory=list)
    data: Any = None

    @property
    def ok(self) -> bool:
        return not self.errors


class OutputCheck:
    """What ``response_format`` promises, and the check of an answer against it."""

    def __init__(self, response_format: dict[str, Any]) -> None:
        self.kind = response_format.get("type")
        spec = response_format.get("json_schema") or {}
        self.name = spec.get("name")
        self.schema = spec.get("schema") if self.kind == "json_schema" else None
        self._validator = _validator_class(self.schema)(self.schema) if isinstance(self.schema, dict) else None

    @classmethod
    def of(cls, response_format: dict[str, Any] | None) -> "OutputCheck | None":
        """The check for a ``response_format`` (None for ``text`` or none)."""
        if not response_format or response_format.get("type") not in ("json_object", "json_schema"):
            return None
        return cls(response_format)

    def check(self, content: str) -> Verdict:
        text = content.strip()
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced["body"].strip()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return Verdict(content, [f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"])
        if self.kind == "json_object" and not isinstance(data, dict):
            return Verdict(text, [f"the answer is a JSON {type(data).__name__}, not an object"], data)
        errors: list[str] = []
        if self._validator is not None:
            found = sorted(self._validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
            errors = [f"{_path(e.absolute_path)}: {e.message}" for e in found[:_MAX_ERRORS]]
            if len(found) > _MAX_ERRORS:
                errors.append(f"... and {len(found) - _MAX_ERRORS} more")
        return Verdict(text, errors, data)

    @property
    def code(self) -> str:
        return "json_schema_mismatch" if self.kind == "json_schema" else "invalid_json"

    def describe(self) -> str:
        return f"the JSON schema {self.name!r}" if self.kind == "json_schema" else "a JSON object"


def _path(parts: Iterable[Any]) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def repair_message(check: OutputCheck, verdict: Verdict) -> str:
    """The user turn asking the model to correct its answer."""
    problems = "\n".join(f"- {e}" for e in verdict.errors)
    return (f"Your answer is not valid: it must be {check.describe()}. Problems:\n{problems}\n"
            "Reply again with only the corrected JSON, no other text, keeping the same facts and their "
            "citations.")


_SOURCE_KEYS = frozenset({"sources", "source", "source_urls", "source_url", "urls", "url"})


def source_urls(data: Any) -> list[str]:
    """The http(s) URLs under ``sources``-like keys anywhere in ``data`` (the per-field sources pattern)."""
    found: list[str] = []

    def walk(value: Any, key: str | None) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k).lower())
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and key in _SOURCE_KEYS and re.match(r"^https?://", value):
            found.append(value)

    walk(data, None)
    return found
