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
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Callable

from .. import llm
from ..errors import GroundingError, RateLimitError, UpstreamError
from ..response import Attempt, ReasoningInfo
from ..target import Target

__all__ = ["Attempts", "is_retryable"]


def is_retryable(exc: GroundingError) -> bool:
    """429, 5xx, timeouts and connection errors: worth trying elsewhere."""
    return isinstance(exc, (RateLimitError, UpstreamError))


def _has_token(chunk: Any) -> bool:
    for choice in getattr(chunk, "choices", None) or []:
        delta = getattr(choice, "delta", None)
        if delta is not None and (getattr(delta, "content", None) or getattr(delta, "tool_calls", None)
                                  or getattr(delta, "reasoning_content", None) or getattr(delta, "images", None)):
            return True
        if getattr(choice, "finish_reason", None):
            return True
    return False


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
        """A non-streamed call; returns litellm's response."""
        for i, target, last in self._order():
            started = time.perf_counter()
            try:
                response = await llm.acompletion(**self._kwargs(target, params, last))
            except GroundingError as exc:
                self._failed(target, exc, started)
                if last or not is_retryable(exc):
                    raise
                continue
            self._succeeded(i, target, started, ttft=None)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def stream(self, params: dict[str, Any]) -> AsyncIterator[Any]:
        """A streamed call; returns an iterator of chunks whose first token
        has already arrived (so a fallback is still possible until then)."""
        for i, target, last in self._order():
            started = time.perf_counter()
            kw = self._kwargs(target, params, last) | {"stream": True, "stream_options": {"include_usage": True}}
            limit = None if last else self.ttft_timeout
            buffered: list[Any] = []
            stream: Any = None
            iterator: Any = None
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
                await _close(stream)
                ms = round((limit or 0) * 1000)
                self._failed(target, UpstreamError(f"no first token within {ms} ms", code="ttft_timeout"), started,
                             status=504)
                continue
            except GroundingError as exc:
                await _close(stream)
                self._failed(target, exc, started)
                if last or not is_retryable(exc):
                    raise
                continue
            except Exception as exc:  # raised while reading the stream
                await _close(stream)
                error = llm.to_grounding_error(exc, model=target.name)
                self._failed(target, error, started)
                if last or not is_retryable(error):
                    raise error from exc
                continue
            ttft = round((time.perf_counter() - started) * 1000, 1)
            self._succeeded(i, target, started, ttft=ttft)
            return _replay(buffered, iterator, target)
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

    def _kwargs(self, target: Target, params: dict[str, Any], last: bool) -> dict[str, Any]:
        kw = dict(params) | target.litellm_kwargs()
        if self.adapt is not None:
            kw = self.adapt(target, kw)
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


async def _replay(buffered: list[Any], iterator: Any, target: Target) -> AsyncIterator[Any]:
    for chunk in buffered:
        yield chunk
    if iterator is None:
        return
    try:
        async for chunk in iterator:
            yield chunk
    except GroundingError:
        raise
    except Exception as exc:
        raise llm.to_grounding_error(exc, model=target.name) from exc


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
