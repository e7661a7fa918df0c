"""Server-sent events exactly as OpenAI sends them, and what a client disconnect does.

A streamed completion is ``data: <chat.completion.chunk JSON>\\n\\n`` per
chunk, then ``data: [DONE]\\n\\n``. Nothing else: no ``event:`` lines, no
comments.

When the response starts. The first chunk the library yields (the
assistant role, empty content) comes as soon as the model is resolved, before
any model call; it is held back until the next chunk (the first token of the
answer) arrives. So a failure before the answer starts (a bad request, an
unknown model or router, every fallback failing, an upstream 429) is an
ordinary JSON error response with its own status, not a ``200`` stream.

A failure after the stream started ends it with one error event,
``data: {"error": {"message", "type", "param", "code"}}\\n\\n`` (what OpenAI
sends, and what the ``openai`` SDK raises as ``APIError``), then the response
ends: no ``[DONE]``, so a client cannot take a cut-short answer for a whole
one.

Disconnects. While a request runs, a watcher waits for the ASGI
``http.disconnect`` message. If the client goes away first, the task running
the generation is cancelled: the cancellation reaches whatever it is waiting
on (a model call, a search, page fetches), their connections are closed and
no further step starts.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, TypeVar

from ..redact import get_logger

__all__ = ["DONE", "encode", "chunk_event", "error_event", "ChunkStream", "ClientDisconnected",
           "wait_for_disconnect", "run_until_disconnect", "SSE_HEADERS"]

log = get_logger("grounding.server")

T = TypeVar("T")
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
]


def encode(payload: Any) -> bytes:
    """Compact UTF-8 JSON. Text holding a lone surrogate (an upstream may send
    one as a ``\\ud800`` escape) cannot be UTF-8: it is then sent escaped (ASCII JSON)."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def event(payload: Any) -> bytes:
    """One SSE event: ``data: <json>`` and a blank line."""
    return b"data: " + encode(payload) + b"\n\n"


def chunk_event(chunk: Any) -> bytes:
    """A ``chat.completion.chunk`` (ours, or a dict) as an SSE event."""
    return event(chunk.to_dict() if hasattr(chunk, "to_dict") else chunk)


def error_event(body: dict[str, Any]) -> bytes:
    """The error event that ends a failed stream (``body`` is OpenAI's ``{"error": {...}}``)."""
    return event(body)


class ClientDisconnected(Exception):
    """The client went away before the answer was ready."""


async def wait_for_disconnect(receive: Receive) -> None:
    """Return when the ASGI server reports ``http.disconnect`` (call once the body has been read)."""
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return


async def _cancel(task: asyncio.Task[Any]) -> None:
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


async def run_until_disconnect(work: Awaitable[T], receive: Receive) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise :class:`ClientDisconnected`."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(wait_for_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the server itself is shutting the request down
        await _cancel(task)
        await _cancel(watcher)
        raise
    if task.done():
        await _cancel(watcher)
        return task.result()
    await _cancel(task)
    raise ClientDisconnected()


ErrorRenderer = Callable[[BaseException], tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]]


class ChunkStream:
    """An ASGI response streaming ``chat.completion.chunk`` s as OpenAI's SSE.

    ``render_error(exc)`` gives ``(status, body, headers)`` for a failure:
    sent as a JSON response before the stream starts, as an error event after.
    ``info`` (a dict) receives ``outcome``: ``"done"``, ``"error:<type>"`` or
    ``"client_disconnected"``.
    """

    def __init__(self, chunks: AsyncIterator[Any], *, render_error: ErrorRenderer,
                 headers: list[tuple[bytes, bytes]] | None = None, info: dict[str, Any] | None = None) -> None:
        self.chunks = chunks
        self.render_error = render_error
        self.headers = list(headers or [])
        self.info = info if info is not None else {}
        self.started = False

    async def __call__(self, scope: Any, receive: Receive, send: Send) -> None:
        pump = asyncio.ensure_future(self._pump(send))
        watcher = asyncio.ensure_future(wait_for_disconnect(receive))
        try:
            await asyncio.wait({pump, watcher}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _cancel(pump)
            await _cancel(watcher)
            raise
        if pump.done():
            await _cancel(watcher)
            pump.result()
            return
        self.info["outcome"] = "client_disconnected"
        await _cancel(pump)

    async def _start(self, send: Send) -> None:
        self.started = True
        await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + self.headers})

    async def _pump(self, send: Send) -> None:
        agen = self.chunks
        held: bytes | None = None
        try:
            try:
                async for chunk in agen:
                    data = chunk_event(chunk)
                    if not self.started:
                        if held is None:  # the role chunk: wait for the answer's first token
                            held = data
                            continue
                        await self._start(send)
                        await send({"type": "http.response.body", "body": held, "more_body": True})
                        held = None
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            except Exception as exc:  # noqa: BLE001 (every failure ends the stream cleanly)
                await self._fail(send, exc)
                return
            if not self.started:
                await self._start(send)
                if held is not None:
                    await send({"type": "http.response.body", "body": held, "more_body": True})
            await send({"type": "http.response.body", "body": DONE, "more_body": False})
            self.info.setdefault("outcome", "done")
        finally:
            with contextlib.suppress(Exception):
                await agen.aclose()  # type: ignore[attr-defined]

    async def _fail(self, send: Send, exc: BaseException) -> None:
        status, body, headers = self.render_error(exc)
        kind = body.get("error", {}).get("type", "api_error")
        self.info["outcome"] = f"error:{kind}"
        if not self.started:
            payload = encode(body)
            self.started = True
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(payload)).encode()), *headers, *self.headers]})
            await send({"type": "http.response.body", "body": payload, "more_body": False})
            return
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": error_event(body), "more_body": False})
