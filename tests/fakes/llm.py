"""FakeLLM: a chat model server speaking OpenAI chat completions and Anthropic messages.

- ``POST /v1/chat/completions`` (litellm: ``model="openai/<name>", api_base=f"{url}/v1"``)
- ``POST /v1/messages`` (litellm: ``model="anthropic/<name>", api_base=url``)
- ``GET /v1/models``

Both accept streaming and non-streaming requests and return realistic
``usage``. What the model does is a policy picked by the model name (see
``tests.fakes.policies``); a writer per wire format renders its
:class:`~tests.fakes.policies.Action`. Like the real APIs, a request whose
tool calls and tool results do not pair up is rejected with 400.

Image output (OpenAI wire): ``modalities`` with ``"image"`` goes only to the
``fake-painter`` model (and ``fake-painter-direct``, which never searches), which answers with OpenRouter's shape, the one litellm
reads: ``message.images`` (``delta.images`` in one chunk when streaming) as
``[{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}]``,
a real PNG sized by the top-level ``image_config.aspect_ratio``, and
``usage.completion_tokens_details.image_tokens``. Any other model answers
such a request 400, as OpenAI's text models do.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

from tests.fakes.base import FakeServer, RecordedRequest, Response
from tests.fakes.media import IMAGE_TOKENS, data_uri
from tests.fakes.policies import POLICIES, Action, Conversation, ToolCall, Turn, choose

__all__ = ["FakeLLM", "InvalidRequestError", "anthropic_conversation", "openai_conversation"]

_SSE = "text/event-stream; charset=utf-8"
_ERRORS = {
    400: ("invalid_request_error", "invalid_request_error"),
    401: ("invalid_request_error", "authentication_error"),
    404: ("invalid_request_error", "not_found_error"),
    429: ("requests", "rate_limit_error"),
    500: ("server_error", "api_error"),
    502: ("server_error", "api_error"),
    503: ("server_error", "overloaded_error"),
}  # status -> (OpenAI error type, Anthropic error type)


class InvalidRequestError(ValueError):
    """The request breaks the provider's rules; answered with 400."""


def _text(content: Any) -> str:
    """Text of a message content: a string or a list of parts/blocks (non-text parts skipped)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") if isinstance(part, dict) and part.get("type") == "text" else ""
            for part in content
        )
    return ""


def _tokens(value: Any) -> int:
    """A token estimate: about four characters per token."""
    text = value if isinstance(value, str) else json.dumps(value)
    return max(1, len(text) // 4)


def _words(text: str) -> list[str]:
    """Streaming deltas of text: a word each (with its leading space)."""
    return re.findall(r"\s*\S+", text) or [text]


def _fragments(arguments: str, size: int = 8) -> list[str]:
    """Streaming deltas of tool-call arguments."""
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def _check_pairing(turns: list[Turn]) -> None:
    """Every tool call is answered by a tool result right after it, and every result answers a call."""
    pending: set[str] = set()
    for turn in turns:
        if turn.role == "tool":
            if turn.tool_call_id not in pending:
                raise InvalidRequestError(
                    f"tool result for unknown or already answered tool call {turn.tool_call_id!r}"
                )
            pending.discard(turn.tool_call_id)
            continue
        if pending:
            raise InvalidRequestError(f"tool calls without results: {sorted(pending)}")
        pending = {c.id for c in turn.tool_calls} if turn.role == "assistant" else set()
    if pending:
        raise InvalidRequestError(f"tool calls without results: {sorted(pending)}")


def _named(turns: list[Turn]) -> list[Turn]:
    """Fill in each tool result's ``tool_name`` from the call it answers."""
    names = {c.id: c.name for t in turns for c in t.tool_calls}
    for turn in turns:
        if turn.role == "tool":
            turn.tool_name = names.get(turn.tool_call_id or "")
    return turns


# -- OpenAI chat completions ---------------------------------------------------


def openai_conversation(body: dict[str, Any]) -> Conversation:
    """Read an OpenAI chat completions request."""
    turns = []
    for m in body.get("messages") or []:
        role = m.get("role")
        if role in ("system", "developer"):
            turns.append(Turn("system", _text(m.get("content"))))
        elif role == "user":
            turns.append(Turn("user", _text(m.get("content"))))
        elif role == "assistant":
            calls = [
                ToolCall(c["function"]["name"], c["function"].get("arguments") or "", c.get("id", ""))
                for c in m.get("tool_calls") or []
            ]
            turns.append(Turn("assistant", _text(m.get("content")), calls))
        elif role == "tool":
            turns.append(Turn("tool", _text(m.get("content")), tool_call_id=m.get("tool_call_id")))
        else:
            raise InvalidRequestError(
                f"Invalid value: {role!r}. Supported values are: 'system', 'assistant', 'user', 'tool'"
            )
    _check_pairing(turns)
    choice = body.get("tool_choice") or "auto"
    if isinstance(choice, dict):
        choice = choice.get("function", {}).get("name", "auto")
    tools = [t["function"]["name"] for t in body.get("tools") or [] if t.get("type") == "function"]
    modalities = body.get("modalities") or ["text"]
    if not isinstance(modalities, list) or not set(modalities) <= {"text", "audio", "image"}:
        raise InvalidRequestError(f"Invalid value for 'modalities': {modalities!r}")
    image_config = body.get("image_config") or {}
    if not isinstance(image_config, dict):
        raise InvalidRequestError("Invalid type for 'image_config': expected an object")
    response_format = body.get("response_format") if isinstance(body.get("response_format"), dict) else None
    return Conversation(_named(turns), tools, choice, modalities=tuple(modalities), image_config=image_config,
                        response_format=response_format)


class _OpenAIWriter:
    """Renders actions as OpenAI chat completions (``chat.completion`` / ``chat.completion.chunk``)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.model = body.get("model", "")
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.prompt_tokens = _tokens(body.get("messages")) + (
            _tokens(body["tools"]) if body.get("tools") else 0
        )
        #: llama.cpp's server dialect: ``return_progress`` asks for prompt progress chunks, and the
        #: last chunk then carries ``timings`` (as llama.cpp's server sends them).
        self.llamacpp = bool(body.get("return_progress"))

    def usage(self, action: Action) -> dict[str, Any]:
        image_tokens = IMAGE_TOKENS * len(action.images)
        completion = _tokens(action.text + "".join(c.name + c.arguments for c in action.tool_calls)) + image_tokens
        details: dict[str, int] = {"reasoning_tokens": 0, "audio_tokens": 0}
        if image_tokens:
            details["image_tokens"] = image_tokens
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": details,
        }

    @staticmethod
    def images(action: Action) -> list[dict[str, Any]]:
        """OpenRouter's ``message.images`` / ``delta.images``: data URIs, no index."""
        return [{"type": "image_url", "image_url": {"url": data_uri(png, "image/png")}} for png in action.images]

    @staticmethod
    def error(status: int, message: str) -> dict[str, Any]:
        code = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}.get(status)
        return {"error": {"message": message, "type": _ERRORS[status][0], "param": None, "code": code}}

    def complete(self, action: Action) -> dict[str, Any]:
        calls = [
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for c in action.tool_calls
        ]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": action.text or (None if calls else ""),
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = calls
        if action.images:
            message["images"] = self.images(action)
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if calls else "stop",
                }
            ],
            "usage": self.usage(action),
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    def stream(self, action: Action, include_usage: bool) -> Iterator[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload: dict[str, Any] = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            if include_usage:
                payload["usage"] = None
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        if self.llamacpp:  # what llama.cpp sends while it reads the prompt (in batches)
            total, batch = self.prompt_tokens, max(1, self.prompt_tokens // 2)
            for done in (0, batch, total):
                data = json.loads(chunk({"role": "assistant", "content": None})[6:])
                data["prompt_progress"] = {"total": total, "cache": 0, "processed": done, "time_ms": done}
                yield b"data: " + json.dumps(data).encode() + b"\n\n"
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        if action.text:
            for piece in _words(action.text):
                yield chunk({"content": piece})
        if action.images:
            yield chunk({"images": self.images(action)})
        for i, call in enumerate(action.tool_calls):
            head = {"index": i, "id": f"call_{uuid.uuid4().hex[:24]}", "type": "function"}
            yield chunk({"tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}]})
            for piece in _fragments(call.arguments):
                yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
        if self.llamacpp:
            data = json.loads(chunk({}, "tool_calls" if action.tool_calls else "stop")[6:])
            data["timings"] = {"cache_n": 0, "prompt_n": self.prompt_tokens, "prompt_per_second": 40.0,
                               "predicted_per_second": 10.0}
            yield b"data: " + json.dumps(data).encode() + b"\n\n"
        else:
            yield chunk({}, "tool_calls" if action.tool_calls else "stop")
        if include_usage:
            last = {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "system_fingerprint": "fp_fake",
                "choices": [],
                "usage": self.usage(action),
            }
            yield b"data: " + json.dumps(last).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"


# -- Anthropic messages ----------------------------------------------------------


def anthropic_conversation(body: dict[str, Any]) -> Conversation:
    """Read an Anthropic messages request."""
    if not isinstance(body.get("max_tokens"), int):
        raise InvalidRequestError("max_tokens: Field required")
    turns = [Turn("system", _text(body["system"]))] if body.get("system") else []
    for m in body.get("messages") or []:
        content = m.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
        if m.get("role") == "assistant":
            uses = [b for b in blocks if b.get("type") == "tool_use"]
            if any(not isinstance(b.get("input"), dict) for b in uses):
                raise InvalidRequestError("tool_use.input: Input should be a valid dictionary")
            calls = [ToolCall(b["name"], json.dumps(b["input"]), b["id"]) for b in uses]
            turns.append(Turn("assistant", _text(blocks), calls))
        elif m.get("role") == "user":
            for b in blocks:
                if b.get("type") == "tool_result":
                    turns.append(Turn("tool", _text(b.get("content")), tool_call_id=b.get("tool_use_id")))
            if any(b.get("type") != "tool_result" for b in blocks):
                turns.append(Turn("user", _text(blocks)))
        else:
            raise InvalidRequestError(f"messages: Unexpected role {m.get('role')!r}")
    _check_pairing(turns)
    choice = body.get("tool_choice") or {"type": "auto"}
    kind = str(choice.get("type", "auto"))
    mode = {"auto": "auto", "any": "required", "none": "none"}.get(kind) or str(choice.get("name", "auto"))
    tools = [t["name"] for t in body.get("tools") or [] if "name" in t]
    # litellm's JSON mode for Anthropic: a forced tool, json_tool_call, whose input_schema is the schema.
    json_tool = next((t for t in body.get("tools") or [] if t.get("name") == "json_tool_call"), None)
    response_format = None
    if json_tool is not None and mode == "json_tool_call":
        response_format = {"type": "json_schema", "json_schema": {"name": "json_tool_call",
                                                                  "schema": json_tool.get("input_schema") or {}}}
    return Conversation(_named(turns), tools, mode, response_format=response_format)


class _AnthropicWriter:
    """Renders actions as Anthropic messages (``message`` / the streaming event sequence)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.model = body.get("model", "")
        self.id = f"msg_{uuid.uuid4().hex[:24]}"
        self.input_tokens = (
            _tokens(body.get("messages"))
            + _tokens(body.get("system") or "")
            + (_tokens(body["tools"]) if body.get("tools") else 0)
        )

    def usage(self, action: Action) -> dict[str, Any]:
        output = _tokens(action.text + "".join(c.name + c.arguments for c in action.tool_calls))
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output,
            "service_tier": "standard",
        }

    @staticmethod
    def error(status: int, message: str) -> dict[str, Any]:
        return {
            "type": "error",
            "error": {"type": _ERRORS[status][1], "message": message},
            "request_id": f"req_{uuid.uuid4().hex[:24]}",
        }

    @staticmethod
    def _tool_use(call: ToolCall) -> dict[str, Any]:
        # The real API only sends (and accepts) an object; unparseable arguments
        # (the ``malformed`` policy) go out as a string so the client sees
        # them, and are refused with 400 if sent back unrepaired.
        args = call.args()
        return {
            "type": "tool_use",
            "id": f"toolu_{uuid.uuid4().hex[:24]}",
            "name": call.name,
            "input": call.arguments if args is None else args,
        }

    def _message(
        self, content: list[dict[str, Any]], stop: str | None, usage: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }

    def complete(self, action: Action) -> dict[str, Any]:
        content = [{"type": "text", "text": action.text}] if action.text else []
        content += [self._tool_use(c) for c in action.tool_calls]
        return self._message(content, "tool_use" if action.tool_calls else "end_turn", self.usage(action))

    def stream(self, action: Action, include_usage: bool = True) -> Iterator[bytes]:
        """The event sequence (usage always comes, in message_start and message_delta)."""

        def event(kind: str, **data: Any) -> bytes:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

        usage = self.usage(action)
        yield event("message_start", message=self._message([], None, {**usage, "output_tokens": 1}))
        yield event("ping")
        index = 0
        if action.text:
            yield event("content_block_start", index=index, content_block={"type": "text", "text": ""})
            for piece in _words(action.text):
                yield event("content_block_delta", index=index, delta={"type": "text_delta", "text": piece})
            yield event("content_block_stop", index=index)
            index += 1
        for call in action.tool_calls:
            block = {**self._tool_use(call), "input": {}}
            yield event("content_block_start", index=index, content_block=block)
            for piece in _fragments(call.arguments):
                yield event(
                    "content_block_delta",
                    index=index,
                    delta={"type": "input_json_delta", "partial_json": piece},
                )
            yield event("content_block_stop", index=index)
            index += 1
        stop = "tool_use" if action.tool_calls else "end_turn"
        yield event(
            "message_delta",
            delta={"stop_reason": stop, "stop_sequence": None},
            usage={"output_tokens": usage["output_tokens"]},
        )
        yield event("message_stop")


# -- the server --------------------------------------------------------------------


class FakeLLM(FakeServer):
    """The fake model server.

    ``model_latency_ms`` adds latency per model name (as sent, e.g.
    ``"fake-searcher"``); ``chunk_ms`` spaces out streamed chunks;
    ``error_status`` makes every chat request fail with that HTTP status (a
    provider that is down, rate limited or rejecting the key), whatever the model.
    Besides the generic faults (:data:`tests.fakes.base.FAULTS`), ``fault``
    may be ``"empty_answer"`` (200, no text and no tool call, streamed or not),
    ``"no_choices"`` (OpenAI wire, not streamed: ``choices: []``),
    ``"truncated"`` (a stream whose body ends before its finish reason) or
    ``"surrogate"`` (an answer holding a lone surrogate, sent escaped in its JSON).
    """

    def __init__(self, *, latency_ms: float = 0, chunk_ms: float = 0) -> None:
        super().__init__(latency_ms=latency_ms)
        self.chunk_ms = chunk_ms
        self.model_latency_ms: dict[str, float] = {}
        self.error_status: int | None = None

    def reset(self) -> None:
        super().reset()
        self.chunk_ms = 0
        self.model_latency_ms = {}
        self.error_status = None

    def faulty(self, request: RecordedRequest) -> bool:
        return request.method == "POST" and request.path in ("/v1/chat/completions", "/v1/messages")

    def chat_requests(self) -> list[RecordedRequest]:
        """The chat requests received (OpenAI or Anthropic wire)."""
        return [r for r in self.requests if r.method == "POST" and r.path in ("/v1/chat/completions", "/v1/messages")]

    def delay_ms(self, request: RecordedRequest) -> float:
        model = request.json.get("model") if isinstance(request.json, dict) else None
        return self.latency_ms + self.model_latency_ms.get(str(model), 0)

    def handle(self, request: RecordedRequest, response: Response) -> None:
        if request.method == "GET" and request.path == "/v1/models":
            response.json(200, {"object": "list", "data": []})
            return
        body = request.json if isinstance(request.json, dict) else {}
        if request.method == "POST" and request.path == "/v1/chat/completions":
            self._answer(body, response, openai=True)
        elif request.method == "POST" and request.path == "/v1/messages":
            self._answer(body, response, openai=False)
        else:
            response.json(
                404, {"error": {"message": f"Unknown request URL: {request.method} {request.path}"}}
            )

    def _answer(self, body: dict[str, Any], response: Response, *, openai: bool) -> None:
        writer = _OpenAIWriter(body) if openai else _AnthropicWriter(body)
        model = str(body.get("model", ""))
        try:
            conversation = openai_conversation(body) if openai else anthropic_conversation(body)
        except (InvalidRequestError, KeyError, TypeError, AttributeError) as exc:
            response.json(400, writer.error(400, f"Invalid request: {exc}"))
            return
        policy, conversation.max_rounds = choose(model)
        if "image" in conversation.modalities and policy not in (POLICIES["painter"], POLICIES["painter-direct"]):
            response.json(400, writer.error(400, "Invalid value: 'image'. This model does not support image "
                                                 "output; supported modalities: ['text']."))
            return
        action = Action(error=self.error_status) if self.error_status else policy(conversation)
        if self.fault == "surrogate" and not action.tool_calls:
            action = Action(text="A lone surrogate \ud800 in an upstream's answer.")
        if self.fault in ("empty_answer", "no_choices"):
            action = Action()  # 200, with no text and no tool call
            if self.fault == "no_choices" and openai and not body.get("stream"):
                response.json(200, {**writer.complete(action), "choices": []})
                return
        if action.error is not None:
            message = {
                400: "Invalid request.",
                401: "Incorrect API key provided.",
                404: f"The model `{model}` does not exist or you do not have access to it.",
                429: "Rate limit reached for requests. Please try again in 1s.",
            }.get(action.error, "The server had an error while processing your request. Sorry about that!")
            headers = {"Retry-After": "1"} if action.error == 429 else {}
            response.json(action.error, writer.error(action.error, message), headers)
        elif not body.get("stream"):
            response.json(200, writer.complete(action))
        else:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            response.start(200, _SSE, {"Cache-Control": "no-cache"})
            for data in writer.stream(action, include_usage):
                if self.fault == "truncated" and (b'"finish_reason": "' in data or b"message_delta" in data):
                    break  # the body ends cleanly, but before the finish reason (and [DONE])
                response.write(data)
                if self.chunk_ms:
                    time.sleep(self.chunk_ms / 1000)
            response.end()
