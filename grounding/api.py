"""``completion`` and ``acompletion``: the Python face of the library.

Both take the OpenAI SDK's ``chat.completions.create`` arguments plus
``web_search`` (also inside ``extra_body``), and return a
:class:`~grounding.response.ChatCompletion`, or with ``stream=True`` an
iterator of :class:`~grounding.response.ChatCompletionChunk`.
"""
from __future__ import annotations

import asyncio
import atexit
import contextvars
import threading
import time
from typing import Any, AsyncIterator, Iterator

from .events import ContentDelta, Done, Started
from .loop import Prepared, prepare, run
from .progress import Emitter, ProgressCallback, ProgressEvent
from .progress import use as use_emitter
from .request import parse_request
from .response import ChatCompletion, ChatCompletionChunk, ChunkChoice, Delta
from .target import default_model

__all__ = ["completion", "acompletion", "stream_chunks", "stream_events"]


async def acompletion(*, progress: ProgressCallback | None = None,
                      **kwargs: Any) -> ChatCompletion | AsyncIterator[ChatCompletionChunk]:
    """Grounded chat completion (async).

    Example::

        r = await grounding.acompletion(
            model="openai/gpt-4.1-mini",
            messages=[{"role": "user", "content": "Who won the 2026 Tour de France?"}],
            web_search={"engine": "exa", "max_results": 3},
        )
        print(r.choices[0].message.content, r.choices[0].message.annotations)

    ``model`` defaults to ``$GROUNDING_MODEL`` (else a hosted model whose key
    is set, else the embedded ``local`` model). ``progress`` is called with a
    :class:`~grounding.progress.ProgressEvent` at each step (``str(event)`` is
    a short line such as "searching: ...", "fetched 2 of 3: https://...",
    "writing the answer"); with ``stream=True`` and
    ``stream_options={"include_progress": True}`` the same events also arrive
    as chunks (``choices: []``, ``progress: {...}``).

    Everything that can be known without a model call is checked before this
    returns, also for streams: bad arguments
    (:class:`~grounding.errors.InvalidRequestError`), a missing key or base URL
    (:class:`~grounding.errors.ConfigurationError`, naming it), an unknown
    model or router (:class:`~grounding.errors.NotFoundError`), a local model
    that is not installed. Upstream failures raise the other
    :mod:`grounding.errors`.
    """
    req = parse_request(kwargs, default_model=default_model())
    emit = Emitter(progress)
    prepared = await prepare(req, emit=emit)
    if req.stream:
        return stream_chunks(prepared)
    done = await _in_request_context(emit, _finish(prepared))
    return done


async def _finish(prepared: Prepared) -> ChatCompletion:
    async for event in run(prepared):
        if isinstance(event, Done):
            return event.completion
    raise AssertionError("the loop ended without a completion")  # pragma: no cover


def _in_request_context(emit: Emitter, coro: Any) -> "asyncio.Task[Any]":
    """A task running ``coro`` with ``emit`` as the current progress emitter (see
    :func:`grounding.progress.report`), so deep code reports to this request."""
    context = contextvars.copy_context()
    context.run(use_emitter, emit)
    return asyncio.get_running_loop().create_task(coro, context=context)


async def stream_events(prepared: Prepared) -> AsyncIterator[ChatCompletionChunk | ProgressEvent]:
    """The answer's chunks and, interleaved as they happen, the request's progress events.

    The request runs in a task of its own (progress can then arrive while it
    waits on a model, a search or a page); closing this iterator cancels it.
    """
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    prepared.emit.add(lambda event: queue.put_nowait(("progress", event)))

    async def produce() -> None:
        try:
            async for chunk in _chunks(prepared):
                queue.put_nowait(("chunk", chunk))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 (handed to the consumer, who raises it)
            queue.put_nowait(("error", exc))
            return
        queue.put_nowait(("end", None))

    task = _in_request_context(prepared.emit, produce())
    try:
        while True:
            kind, item = await queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def stream_chunks(prepared: Prepared) -> AsyncIterator[ChatCompletionChunk]:
    """OpenAI ``chat.completion.chunk`` s for a streaming request.

    Content streams as the model writes it; the last content chunk carries the
    annotations, the images the model wrote (``delta.images``) and the
    ``finish_reason``; the final chunk carries ``metadata`` (and ``usage`` when
    ``stream_options.include_usage`` is set). With
    ``stream_options.include_progress``, progress events come as chunks with
    ``choices: []`` and ``progress`` (the OpenAI SDK passes them through, as it
    does usage chunks).
    """
    opts = prepared.req.stream_options
    include_progress = bool(opts and opts.include_progress)
    model = prepared.plan.targets[0].name
    async for item in stream_events(prepared):
        if isinstance(item, ProgressEvent):
            if include_progress:
                yield ChatCompletionChunk(id=prepared.generation_id, created=int(time.time()), model=model,
                                          choices=[], progress=item.to_dict())
            continue
        model = item.model or model
        yield item


async def _chunks(prepared: Prepared) -> AsyncIterator[ChatCompletionChunk]:
    """The chunks of one streamed answer, from the loop's events."""
    req = prepared.req
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    head: Started | None = None
    pending: str | None = None  # one delta held back, to become the last content chunk

    model = ""  # the planned model until the answer says which one answered (fallbacks)

    def chunk(delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
        assert head is not None
        return ChatCompletionChunk(id=head.id, created=head.created, model=model,
                                   choices=[ChunkChoice(delta=delta, finish_reason=finish)])

    async for event in run(prepared):
        if isinstance(event, Started):
            head, model = event, event.model
            yield chunk(Delta(role="assistant", content=""))
        elif isinstance(event, ContentDelta):
            if pending is not None:
                yield chunk(Delta(content=pending))
            pending = event.text
        elif isinstance(event, Done):
            done = event.completion
            model = done.model
            choice = done.choices[0]
            msg = choice.message
            if msg.tool_calls:
                if pending is not None:
                    yield chunk(Delta(content=pending))
                    pending = None
                calls = [{"index": i, **tc.to_dict()} for i, tc in enumerate(msg.tool_calls)]
                last = chunk(Delta(tool_calls=calls), choice.finish_reason)
            else:
                last = chunk(Delta(content=pending or "", annotations=msg.annotations, images=msg.images),
                             choice.finish_reason)
            if include_usage:
                yield last
                last = ChatCompletionChunk(id=done.id, created=done.created, model=done.model,
                                           choices=[], usage=done.usage)
            last.metadata = done.metadata
            yield last


class _Portal:
    """One background event loop for the sync API, so litellm's async
    clients live on a single loop for the life of the process."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                from .llm import own_loop

                own_loop(self._loop)
                threading.Thread(target=self._loop.run_forever, name="grounding-loop", daemon=True).start()
                atexit.register(self.close)
                from .llm import at_exit

                at_exit(self.close)  # before litellm's exit handler, which would run leftovers on a throwaway loop
            return self._loop

    def close(self) -> None:
        """Cancel what is still running (litellm's logging worker) and stop the loop."""
        loop, self._loop = self._loop, None
        if loop is None or loop.is_closed():
            return

        async def cancel_all() -> None:
            from .llm import drain_logging

            await drain_logging()  # litellm's pending logging, finished here rather than at exit
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_all(), loop).result(timeout=5)
        except Exception:  # exiting anyway: never let cleanup raise
            pass
        loop.call_soon_threadsafe(loop.stop)

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop()).result()

    def iterate(self, agen: AsyncIterator[Any]) -> Iterator[Any]:
        try:
            while True:
                try:
                    yield self.call(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self.call(agen.aclose())  # type: ignore[attr-defined]


_portal = _Portal()


def completion(*, progress: ProgressCallback | None = None,
               **kwargs: Any) -> ChatCompletion | Iterator[ChatCompletionChunk]:
    """Grounded chat completion (sync); see :func:`acompletion`.

    Example::

        r = grounding.completion(
            model="local",
            messages=[{"role": "user", "content": "What does the nonlocal statement do?"}],
            web_search={"engine": "local"},
        )

    With ``stream=True`` returns an iterator of chunks; breaking out of it
    cancels the remaining work.
    """
    result = _portal.call(acompletion(progress=progress, **kwargs))
    if isinstance(result, ChatCompletion):
        return result
    return _portal.iterate(result)
