"""Trying a request's targets in order: fallbacks and the first-token timeout.

Every model call of a request (the tool loop makes several) goes through one
:class:`Attempts`. It starts with the target that last succeeded (the first
one at the start), and on a *retryable* failure (429, 5xx, timeout, connection
error, or for streams no first token within ``ttft_timeout``) moves on to the
next target. Bad requests, authentication and not-found errors are raised at
once: another provider would not fix them. Each try is recorded as an
:class:`~grounding.response.Attempt` in the response's metadata.

The last target has nothing to fall back to, so it keeps litellm's own
retries and has no first-token limit; earlier ones get ``max_retries=0`` so a
429 moves on at once instead of being retried in place.

Every try has one deadline (:mod:`grounding.deadlines`: the whole call, or a
stream's first token, then each gap between chunks), enforced here with
``asyncio.timeout`` whatever litellm does, litellm's retries included. Every
answer is checked for shape before use (:func:`check_response`,
:func:`check_stream_start`): no choices, or an empty answer that no finish
reason explains, is a failed try (retryable), never an ``IndexError`` or a
silent empty answer.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Callable

from .. import llm
from ..deadlines import deadlines
from ..errors import GroundingError, RateLimitError, UpstreamError, UpstreamTimeoutError
from ..response import Attempt, ReasoningInfo
from ..target import Target

__all__ = ["Attempts", "ReplayStream", "is_retryable", "check_response", "check_stream_start"]


def is_retryable(exc: GroundingError) -> bool:
    """429, 5xx, timeouts and connection errors: worth trying elsewhere."""
    return isinstance(exc, (RateLimitError, UpstreamError))


def _has_token(chunk: Any) -> bool:
    """Content, a tool call, reasoning, an image, or the end (a finish reason)."""
    return _has_content(chunk) or any(getattr(c, "finish_reason", None) for c in getattr(chunk, "choices", None) or [])


class Attempts:
    """The ordered targets of one request, and the record of every try."""

    def __init__(self, targets: list[Target], *, ttft_timeout: float | None = None, effort: str | None = None,
                 stats: Any = None) -> None:
        if not targets:
            raise ValueError("no targets")
        self.targets = targets
        self.ttft_timeout = ttft_timeout
        self.effort = effort
        self.stats = stats
        self.record: list[Attempt] = []
        self.reasoning: ReasoningInfo | None = None
        #: Last say on each target's arguments (e.g. input media inlined for providers that need it).
        self.adapt: Callable[[Target, dict[str, Any]], dict[str, Any]] | None = None
        self._index = 0

    @property
    def current(self) -> Target:
        """The target that answered last (the first one before any call)."""
        return self.targets[self._index]

    # -- one call ------------------------------------------------------------

    async def complete(self, params: dict[str, Any]) -> Any:
        """A non-streamed call; returns litellm's response, checked for shape.

        Each try has one deadline (:mod:`grounding.deadlines`), enforced here
        whatever litellm does; a response with no choice, or an empty answer
        that does not say why, counts as a failed try."""
        for i, target, last in self._order():
            started = time.perf_counter()
            kw = self._kwargs(target, params, last)
            limit = self._deadline(target, params)
            try:
                try:
                    async with asyncio.timeout(limit):
                        response = await llm.acompletion(**kw)
                except TimeoutError:
                    raise UpstreamTimeoutError(f"model {target.name}: no answer within {limit:g} s",
                                               code="timeout") from None
                check_response(response, target.name)
            except GroundingError as exc:
                self._failed(target, exc, started)
                if last or not is_retryable(exc):
                    raise
                continue
            self._succeeded(i, target, started, ttft=None)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def stream(self, params: dict[str, Any]) -> "ReplayStream":
        """A streamed call; returns an iterator of chunks whose first token
        has already arrived (so a fallback is still possible until then).

        The first token must come within the model's deadline (and, on a
        target with a fallback after it, within ``ttft_timeout``); a stream
        that ends with nothing in it (HTML or an empty body instead of
        server-sent events) counts as a failed try."""
        for i, target, last in self._order():
            started = time.perf_counter()
            kw = self._kwargs(target, params, last) | {"stream": True, "stream_options": {"include_usage": True}}
            deadline = self._deadline(target, params)
            ttft = None if last else self.ttft_timeout
            limit = min(deadline, ttft) if ttft else deadline
            buffered: list[Any] = []
            stream: Any = None
            iterator: Any = None
            try:
                try:
                    async with asyncio.timeout(limit):
                        stream = await llm.acompletion(**kw)
                        iterator = stream.__aiter__()
                        while True:
                            try:
                                chunk = await iterator.__anext__()
                            except StopAsyncIteration:
                                iterator = None
                                break
                            buffered.append(chunk)
                            if _has_token(chunk):
                                break
                except TimeoutError:
                    ms = round(limit * 1000)
                    if ttft and limit == ttft:
                        raise UpstreamTimeoutError(f"no first token within {ms} ms", code="ttft_timeout") from None
                    raise UpstreamTimeoutError(f"model {target.name}: no first token within {limit:g} s",
                                               code="timeout") from None
                except GroundingError:
                    raise
                except Exception as exc:  # raised while reading the stream
                    raise llm.to_grounding_error(exc, model=target.name, secrets=llm.call_secrets(kw)) from exc
                check_stream_start(buffered, stream, target.name)
            except GroundingError as exc:
                await _close(stream)
                self._failed(target, exc, started)
                if last or not is_retryable(exc):
                    raise
                continue
            ttft_ms = round((time.perf_counter() - started) * 1000, 1)
            self._succeeded(i, target, started, ttft=ttft_ms)
            return ReplayStream(buffered, iterator, stream, target, idle=deadlines().stream_idle,
                                secrets=llm.call_secrets(kw))
        raise AssertionError("unreachable")  # pragma: no cover

    def turn_done(self, *, duration_ms: float, ttft_ms: float | None, output_tokens: int | None) -> None:
        """Feed a finished turn's timings to the latency statistics."""
        if self.stats is not None:
            self.stats.record(self.current.stats_key, ok=True, ttft_ms=ttft_ms, duration_ms=duration_ms,
                              output_tokens=output_tokens)

    # -- helpers -------------------------------------------------------------

    def _order(self) -> list[tuple[int, Target, bool]]:
        order = list(range(self._index, len(self.targets)))
        return [(i, self.targets[i], i == order[-1]) for i in order]

    @staticmethod
    def _deadline(target: Target, params: dict[str, Any]) -> float:
        return deadlines().for_model(target.provider, params.get("timeout"))

    def _kwargs(self, target: Target, params: dict[str, Any], last: bool) -> dict[str, Any]:
        kw = dict(params) | target.litellm_kwargs()
        if self.adapt is not None:
            kw = self.adapt(target, kw)
        # litellm's HTTP client gives up at the same time as the deadline, not later.
        kw["timeout"] = self._deadline(target, params)
        if not last:
            kw["max_retries"] = 0  # a 429 moves on to the next target instead of waiting here
        if self.effort is not None and _supports_reasoning(target):
            kw["reasoning_effort"] = self.effort
            if target.reasoning:  # the config says so, whatever litellm's map says
                kw["allowed_openai_params"] = ["reasoning_effort"]
        return kw

    def _succeeded(self, index: int, target: Target, started: float, *, ttft: float | None) -> None:
        self._index = index
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        self.record.append(Attempt(model=target.name, provider=target.provider, success=True,
                                   time_to_first_token_ms=ttft if ttft is not None else elapsed, duration_ms=elapsed))
        if self.effort is not None:
            ok = _supports_reasoning(target)
            self.reasoning = ReasoningInfo(
                effort=self.effort, applied=ok,
                reason=None if ok else f"{target.name} does not take a reasoning effort; it was not sent")

    def _failed(self, target: Target, exc: GroundingError, started: float, *, status: int | None = None) -> None:
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        self.record.append(Attempt(model=target.name, provider=target.provider, success=False,
                                   error=str(exc)[:300], status=status or exc.upstream_status or exc.status_code, duration_ms=elapsed))
        if self.stats is not None and is_retryable(exc):
            self.stats.record(target.stats_key, ok=False, ttft_ms=None, duration_ms=elapsed)


_REASONING_CACHE: dict[str, bool] = {}


def _supports_reasoning(target: Target) -> bool:
    if target.reasoning is not None:
        return target.reasoning
    model = target.litellm_model
    if model not in _REASONING_CACHE:
        try:
            _REASONING_CACHE[model] = bool(llm.litellm().supports_reasoning(model=model))
        except Exception:
            _REASONING_CACHE[model] = False
    return _REASONING_CACHE[model]


class ReplayStream:
    """The chunks of a stream whose first token has arrived: the buffered ones,
    then the rest, each within ``idle`` seconds of the one before
    (:class:`~grounding.errors.UpstreamTimeoutError` if the stream stalls).

    :attr:`cut_short` says, once it is exhausted, that the provider never sent
    a finish reason (litellm makes one up): the answer may be incomplete."""

    def __init__(self, buffered: list[Any], iterator: Any, stream: Any, target: Target, *, idle: float,
                 secrets: list[str] | None = None) -> None:
        self._buffered = list(buffered)
        self._iterator = iterator
        self._stream = stream
        self._target = target
        self._idle = idle
        self._secrets = secrets
        self.exhausted = False

    def __aiter__(self) -> "ReplayStream":
        return self

    async def __anext__(self) -> Any:
        if self._buffered:
            return self._buffered.pop(0)
        if self._iterator is None:
            self.exhausted = True
            raise StopAsyncIteration
        try:
            async with asyncio.timeout(self._idle):
                return await self._iterator.__anext__()
        except StopAsyncIteration:
            self.exhausted = True
            raise
        except TimeoutError:
            await _close(self._stream)
            raise UpstreamTimeoutError(f"model {self._target.name}: the stream stalled (no chunk for "
                                       f"{self._idle:g} s)", code="stream_stalled") from None
        except GroundingError:
            raise
        except Exception as exc:
            raise llm.to_grounding_error(exc, model=self._target.name, secrets=self._secrets) from exc

    @property
    def cut_short(self) -> bool:
        return self.exhausted and getattr(self._stream, "received_finish_reason", "unknown") is None

    async def aclose(self) -> None:
        await _close(self._stream)


#: Finish reasons that explain an empty answer (the provider filtered it, or it ran out of tokens).
_EXPLAINED_EMPTY = frozenset({"length", "content_filter"})


def check_response(response: Any, model: str) -> None:
    """A non-streamed response must have a choice with a message, and an answer
    (text, tool calls or images) unless its finish reason explains why not."""
    choices = getattr(response, "choices", None)
    if not choices:
        raise UpstreamError(f"model {model}: the response has no choices", code="empty_response")
    choice = choices[0]
    message = getattr(choice, "message", None)
    if message is None:
        raise UpstreamError(f"model {model}: the response's choice has no message", code="empty_response")
    if not (getattr(message, "content", None) or getattr(message, "tool_calls", None)
            or getattr(message, "images", None) or getattr(choice, "finish_reason", None) in _EXPLAINED_EMPTY):
        raise UpstreamError(f"model {model}: the answer is empty (no text and no tool call)", code="empty_response")


def check_stream_start(buffered: list[Any], stream: Any, model: str) -> None:
    """The start of a stream must hold content, a tool call or reasoning, or end
    with a finish reason the provider itself sent that explains an empty answer."""
    if any(_has_content(chunk) for chunk in buffered):
        return
    received = getattr(stream, "received_finish_reason", None)
    if received in _EXPLAINED_EMPTY:
        return
    raise UpstreamError(f"model {model}: the stream ended without any content (an empty body, or not "
                        "server-sent events)", code="empty_response")


def _has_content(chunk: Any) -> bool:
    for choice in getattr(chunk, "choices", None) or []:
        delta = getattr(choice, "delta", None)
        if delta is not None and (getattr(delta, "content", None) or getattr(delta, "tool_calls", None)
                                  or getattr(delta, "reasoning_content", None) or getattr(delta, "images", None)):
            return True
    return False


async def _close(stream: Any) -> None:
    """Drop an abandoned stream's connection (best effort)."""
    for obj in (stream, getattr(stream, "completion_stream", None), getattr(stream, "response", None)):
        close = getattr(obj, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:
                pass
            return
