"""Server-sent events exactly as OpenAI sends them, and what a client disconnect does.

A streamed completion is ``data: <chat.completion.chunk JSON>\\n\\n`` per
chunk, then ``data: [DONE]\\n\\n``; no ``event:`` lines. While the answer
is slow to start, SSE comments (``: searching: ...\\n\\n``, which every SSE
client ignores) show that the request is alive.

When the response starts. The request is validated, its configuration
checked and its model routed before the handler returns a stream, so a bad
request, a missing key, an unknown model or router is an ordinary JSON error
with its 4xx status. Then the first chunks (the assistant role; progress
chunks when asked for) are held back until the answer's first token, or until
``first_byte_s`` (0.5 s) pass without one: a fast failure (every fallback
failing at once, an upstream 429) still answers with its own status, and a
slow answer (a model loading, pages being fetched) starts the ``200`` stream
within a second with a comment saying what it is doing. After that, a comment
every ``heartbeat_s`` (5 s) of silence repeats the latest progress line.

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

__all__ = ["DONE", "encode", "chunk_event", "comment", "error_event", "ChunkStream", "ClientDisconnected",
           "wait_for_disconnect", "run_until_disconnect", "SSE_HEADERS", "FIRST_BYTE_S", "HEARTBEAT_S"]

log = get_logger("grounding.server")

T = TypeVar("T")
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DONE = b"data: [DONE]\n\n"
#: A stream whose answer has not started this long after the request begins anyway (200 and a comment).
FIRST_BYTE_S = 0.5
#: Seconds of silence in a started stream before a comment repeats the latest progress line.
HEARTBEAT_S = 5.0
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


def comment(text: str) -> bytes:
    """An SSE comment line (``: text``): clients ignore it; people and proxies see the stream is alive."""
    return b": " + " ".join(text.split()).encode("utf-8") + b"\n\n"


def _has_answer(chunk: Any) -> bool:
    """Whether a chunk carries the answer itself (content, tool calls, a finish), not just the
    assistant role or a progress event."""
    data = chunk.to_dict() if hasattr(chunk, "to_dict") else chunk
    for choice in (data.get("choices") if isinstance(data, dict) else None) or []:
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or choice.get("finish_reason"):
            return True
    return isinstance(data, dict) and bool(data.get("usage") or data.get("metadata"))


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
                 headers: list[tuple[bytes, bytes]] | None = None, info: dict[str, Any] | None = None,
                 status: Callable[[], str | None] | None = None, first_byte_s: float = FIRST_BYTE_S,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.chunks = chunks
        self.render_error = render_error
        self.headers = list(headers or [])
        self.info = info if info is not None else {}
        self.started = False
        #: The request's latest progress line, for the comments (None: nothing said yet).
        self.status = status or (lambda: None)
        self.first_byte_s = first_byte_s
        self.heartbeat_s = heartbeat_s

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
        loop = asyncio.get_running_loop()
        began = loop.time()
        held: list[bytes] = []  # the role chunk (and progress chunks) until the answer starts
        last_sent = began
        next_item: asyncio.Future[Any] | None = None

        async def start() -> None:
            await self._start(send)
            for data in held:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            held.clear()

        try:
            try:
                while True:
                    if next_item is None:
                        next_item = asyncio.ensure_future(agen.__anext__())
                    due = (began + self.first_byte_s) if not self.started else (last_sent + self.heartbeat_s)
                    done, _ = await asyncio.wait({next_item}, timeout=max(0.0, due - loop.time()))
                    if not done:  # slow to start, or silent for a while: say what it is doing
                        if not self.started:
                            await start()
                        await send({"type": "http.response.body", "body": comment(self._waiting(loop.time() - began)),
                                    "more_body": True})
                        last_sent = loop.time()
                        continue
                    item, next_item = next_item, None
                    try:
                        chunk = item.result()
                    except StopAsyncIteration:
                        break
                    data = chunk_event(chunk)
                    if not self.started:
                        if not _has_answer(chunk):  # the role chunk, a progress chunk: wait for the answer
                            held.append(data)
                            continue
                        await start()
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                    last_sent = loop.time()
            except Exception as exc:  # noqa: BLE001 (every failure ends the stream cleanly)
                await self._fail(send, exc)
                return
            if not self.started:
                await start()
            await send({"type": "http.response.body", "body": DONE, "more_body": False})
            self.info.setdefault("outcome", "done")
        finally:
            if next_item is not None and not next_item.done():
                next_item.cancel()
                with contextlib.suppress(BaseException):
                    await next_item
            with contextlib.suppress(Exception):
                await agen.aclose()  # type: ignore[attr-defined]

    def _waiting(self, elapsed: float) -> str:
        try:
            said = self.status()
        except Exception:  # noqa: BLE001 (a progress line must never cost the answer)
            log.warning("the stream's progress line failed; saying 'working'", exc_info=True)
            said = None
        return f"{said} ({elapsed:.0f} s)" if said else f"working ({elapsed:.0f} s)"

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
