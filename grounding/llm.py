"""The one module that imports litellm, lazily, and maps its errors to ours.

litellm costs seconds to import, so nothing imports it until a completion or
a search actually runs.
"""
from __future__ import annotations

import asyncio
import atexit
import gc
import json
import logging
import os
import re
import threading
from types import ModuleType
from typing import Any, Callable

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

__all__ = ["litellm", "acompletion", "to_grounding_error", "unreadable_answer", "unknown_model", "upstream_text",
           "received_status", "drain_logging", "own_loop"]

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
                # Registered after litellm's own exit handler, so it runs first (atexit is LIFO).
                atexit.register(_drain_at_exit)
                _quiet_loop_changes()
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
    # litellm gives timeouts, connection errors and missing keys made-up statuses
    # (408, 500): only a status an upstream actually answered with is kept.
    error.upstream_status = received_status(exc)
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
    text = upstream_text(exc)
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
    if "LLM Provider NOT provided" in text or "provider" in text.lower() and "not provided" in text.lower():
        return unknown_model(model)
    if name in {"BadRequestError", "UnsupportedParamsError", "ContextWindowExceededError",
                "ContentPolicyViolationError", "UnprocessableEntityError"} or status in (400, 422):
        return InvalidRequestError(f"{who}{text}", code="bad_request")
    if name in {"APIConnectionError", "ConnectError", "ConnectionError"} or (
            received_status(exc) is None and name in {"InternalServerError", "ServiceUnavailableError"}):
        # No response came back (litellm calls a refused connection an InternalServerError).
        return UpstreamError(f"{who}could not connect: {text}", code="connection_error")
    return UpstreamError(f"{who}{text}", code="upstream_error")


#: litellm's class-name prefixes ("litellm.InternalServerError: InternalServerError: OpenAIException - ").
_PREFIX = re.compile(r"^(?:litellm\.)?[A-Za-z_]*(?:Error|Exception)\s*(?::|-)\s*")


def upstream_text(exc: BaseException) -> str:
    """What an upstream said, once: the first line of the exception without litellm's
    repeated class-name prefixes (the type of error is this library's own error class)."""
    text = str(getattr(exc, "message", "") or exc).strip()
    first = text.splitlines()[0] if text else ""
    while True:
        shorter = _PREFIX.sub("", first, count=1)
        if shorter == first or not shorter.strip():
            break
        first = shorter
    return first.strip()[:500] or type(exc).__name__


def unknown_model(model: str | None) -> NotFoundError:
    """The error for a model no provider serves: 404 ``model_not_found``, as OpenAI answers it."""
    return NotFoundError(f"The model {model!r} does not exist: no provider serves it (give a provider "
                         "prefix such as 'openai/...', or configure it)", param="model", code="model_not_found")


def received_status(exc: BaseException) -> int | None:
    """The HTTP status an upstream really answered with, or None when no response came back.

    litellm gives connection errors, timeouts and local configuration errors (a
    missing key) made-up statuses (500, 408) and even a made-up response; only a
    real response carries the upstream's headers (``litellm_response_headers``).
    """
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or isinstance(status, bool):
        return None
    if hasattr(exc, "litellm_response_headers"):
        return status if exc.litellm_response_headers is not None else None
    response = getattr(exc, "response", None)
    request = getattr(response, "request", None) if response is not None else None
    import httpx

    if isinstance(response, httpx.Response) and response.headers and request is not None:
        return status
    return None


_exit_hooks: list[Callable[[], None]] = []


def at_exit(hook: Callable[[], None]) -> None:
    """Run ``hook`` at interpreter exit, before litellm's own exit handler (e.g. to drain
    litellm's logging on the loop that owns it)."""
    _exit_hooks.append(hook)


def _drain_at_exit() -> None:
    for hook in reversed(_exit_hooks):
        try:
            hook()
        except Exception:  # exiting anyway
            pass
    # Whatever is left (loops the library does not own): finished on a loop that is closed properly.
    try:
        asyncio.run(drain_logging())
    except Exception:
        pass


async def drain_logging(timeout: float = 2.0) -> None:
    """Finish litellm's background logging on the running loop, then stop its worker.

    Call it before a loop this library owns ends (the CLI, the sync API's loop,
    the server). Otherwise litellm's ``atexit`` hook runs the leftovers on a
    throwaway loop it closes with their tasks still pending ("Task was destroyed
    but it is pending!" at exit). A no-op when litellm was never imported.
    """
    if _module is None:
        return
    try:
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER as worker
    except ImportError:  # another litellm layout: nothing to drain
        return
    try:
        await asyncio.wait_for(worker.flush(), timeout)
    except (Exception, asyncio.TimeoutError):  # best effort: exiting anyway
        pass
    try:
        await worker.stop()
    except Exception:
        pass


class _LoopChangeFilter(logging.Filter):
    """Drops litellm's warning that its logging worker moved to another event loop (it moves
    its queued work along; a caller using both the sync and the async API sees it for nothing)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("LoggingWorker: event loop changed")


def _quiet_loop_changes() -> None:
    try:
        from litellm._logging import verbose_logger
    except ImportError:  # another litellm layout
        return
    if not any(isinstance(f, _LoopChangeFilter) for f in verbose_logger.filters):
        verbose_logger.addFilter(_LoopChangeFilter())


def own_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Set up a loop this library owns (the sync API's, the CLI's, the server's) for litellm.

    litellm's logging worker is one process-wide object: when a call runs on
    another loop it starts a new worker task there and drops its reference to
    the old one, which the garbage collector later reports as "Task was
    destroyed but it is pending!" (the task only ever waits on its queue: nothing
    is lost). Those reports, and only those, are dropped on this loop; every
    other exception still reaches the loop's handler.
    """
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        task = context.get("task")
        coro = getattr(task, "get_coro", lambda: None)() if task is not None else None
        if context.get("message") == "Task was destroyed but it is pending!" and \
                getattr(coro, "__qualname__", "").startswith("LoggingWorker."):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
