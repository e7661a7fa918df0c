"""The one module that imports litellm, lazily, and maps its errors to ours.

litellm costs seconds to import, so nothing imports it until a completion or
a search actually runs.
"""
from __future__ import annotations

import gc
import json
import logging
import os
import threading
from types import ModuleType
from typing import Any

from .errors import (
    AuthenticationError,
    GroundingError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    UpstreamError,
    UpstreamTimeoutError,
)
from .redact import install_filter, redact

__all__ = ["litellm", "acompletion", "to_grounding_error", "unreadable_answer"]

_lock = threading.Lock()
_module: ModuleType | None = None


def litellm() -> ModuleType:
    """Import litellm once, offline-safe (no cost-map download, no telemetry)."""
    global _module
    if _module is None:
        with _lock:
            if _module is None:
                os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                os.environ.setdefault("LITELLM_TELEMETRY", "False")
                import litellm as lm

                lm.telemetry = False
                lm.suppress_debug_info = True
                # litellm logs through its own handlers: scrub secrets there too.
                install_filter(*(logging.getLogger(n) for n in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")))
                # litellm leaves ~300k objects behind; move them out of the GC's
                # way, or an early request pays a ~250 ms full collection.
                gc.freeze()
                _module = lm
    return _module


async def acompletion(**kwargs: Any) -> Any:
    """``litellm.acompletion`` with its exceptions turned into :mod:`grounding.errors`."""
    lm = litellm()
    try:
        return await lm.acompletion(**kwargs)
    except GroundingError:
        raise
    except Exception as exc:
        raise to_grounding_error(exc, model=kwargs.get("model"), secrets=call_secrets(kwargs)) from exc


def call_secrets(kwargs: dict[str, Any]) -> list[str]:
    """The secrets one call carries (its ``api_key``, its extra headers' values), for redaction."""
    headers = kwargs.get("extra_headers") or {}
    return [v for v in (kwargs.get("api_key"), *headers.values()) if isinstance(v, str)]


def to_grounding_error(exc: BaseException, *, model: str | None = None,
                       secrets: list[str] | None = None) -> GroundingError:
    """Map a litellm (or transport) exception to the matching typed error
    (the upstream's own HTTP status is kept as ``.upstream_status``); every
    configured secret, and ``secrets``, redacted from its message."""
    error = _map_error(exc, model=model)
    if secrets:
        error.message = redact(error.message, secrets)
        error.args = (error.message,)
    status = getattr(exc, "status_code", None)
    # litellm gives timeouts and connection errors made-up statuses (408, 500):
    # only a status an upstream actually answered with is kept.
    answered = error.code not in ("timeout", "connection_error")
    error.upstream_status = status if isinstance(status, int) and answered else None
    return error


#: What litellm says when an upstream's answer was not what its wire format promises (not JSON, HTML...).
_UNREADABLE = ("Error converting to valid response", "Empty or invalid response from LLM endpoint",
               "Unable to get json response", "Invalid response object")


def unreadable_answer(exc: BaseException, text: str) -> bool:
    """Whether ``exc`` means the upstream answered something that is not its wire format."""
    if any(marker in text for marker in _UNREADABLE):
        return True
    seen: BaseException | None = exc
    for _ in range(5):  # the causes litellm chains
        seen = seen.__cause__ or seen.__context__ if seen is not None else None
        if isinstance(seen, json.JSONDecodeError):
            return True
    return False


def _map_error(exc: BaseException, *, model: str | None = None) -> GroundingError:
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    text = str(getattr(exc, "message", "") or exc).strip()
    text = text.replace("litellm.", "").splitlines()[0][:500] if text else name
    who = f"model {model}: " if model else ""
    if "Please ensure all" in text and "valid OpenAI chat completion messages" in text:  # litellm's own check
        return InvalidRequestError(f"{who}{text}", param="messages", code="invalid_messages")
    if unreadable_answer(exc, text):  # litellm reports these with made-up 400/422 statuses
        return UpstreamError(f"{who}the answer could not be read: {text}", code="bad_response")
    if name in {"Timeout", "TimeoutError"} or isinstance(exc, TimeoutError) or status == 408:
        return UpstreamTimeoutError(f"{who}timed out: {text}", code="timeout")
    if name == "AuthenticationError" or status == 401:
        return AuthenticationError(f"{who}authentication failed: {text}", code="invalid_api_key")
    if name == "NotFoundError" or status == 404:
        return NotFoundError(f"{who}not found: {text}", param="model", code="model_not_found")
    if name == "RateLimitError" or status == 429:
        return RateLimitError(f"{who}rate limited: {text}", code="rate_limit_exceeded")
    if name in {"BadRequestError", "UnsupportedParamsError", "ContextWindowExceededError",
                "ContentPolicyViolationError", "UnprocessableEntityError"} or status in (400, 422):
        if "LLM Provider NOT provided" in text or "provider" in text.lower() and "not provided" in text.lower():
            return InvalidRequestError(f"unknown model {model!r}: give a provider prefix like 'openai/...'",
                                       param="model", code="model_not_found")
        return InvalidRequestError(f"{who}{text}", code="bad_request")
    if name in {"APIConnectionError", "ConnectError", "ConnectionError"}:
        return UpstreamError(f"{who}could not connect: {text}", code="connection_error")
    return UpstreamError(f"{who}{text}", code="upstream_error")
