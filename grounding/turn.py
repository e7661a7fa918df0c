"""One model call of a request: sent through the request's attempts
(fallbacks), streamed or not, read back into a :class:`TurnResult`.

Streamed text is yielded as :class:`~grounding.events.ContentDelta` events
when the turn is ``live``; with ``hold`` > 0 it is held back until it passes
``hold`` characters without a tool call (a preamble before a tool call, "Let
me search...", is dropped).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator

from . import cost as costs
from . import llm
from .errors import GroundingError
from .events import ContentDelta
from .leaks import TagScrubber, scrub
from .response import TurnInfo

if TYPE_CHECKING:  # pragma: no cover
    from .loop import Session

__all__ = ["Call", "TurnResult", "model_turn"]


@dataclass
class Call:
    """A tool call the model made."""

    id: str
    name: str
    arguments: str


@dataclass
class TurnResult:
    """What one model turn produced."""

    content: str = ""
    calls: list[Call] = field(default_factory=list)
    finish_reason: str | None = None
    streamed: str = ""  # what of `content` was already yielded to the caller
    annotations: list[dict] = field(default_factory=list)  # the provider's own, if any
    images: list[dict] = field(default_factory=list)  # images the model wrote (data URIs)


async def model_turn(session: "Session", params: dict[str, Any], out: TurnResult, *, step: int, kind: str,
                     live: bool, hold: int = 0) -> AsyncIterator[ContentDelta]:
    """Run one model call for ``session``, filling ``out``; yield content as it streams when ``live``."""
    started = time.perf_counter()
    info = TurnInfo(step=step, kind=kind, model=session.target.name)
    session.meta.turns.append(info)
    if not session.req.stream:
        response = await session.attempts.complete(params)
        info.model = session.target.name
        choice = response.choices[0]
        message = choice.message
        out.content = message.content or ""
        if session.req.web_search is not None:
            out.content, removed = scrub(out.content)
            _say_removed(session, removed)
        out.finish_reason = choice.finish_reason
        out.calls = [Call(tc.id or f"call_{i}", tc.function.name or "", tc.function.arguments or "")
                     for i, tc in enumerate(message.tool_calls or [])]
        out.annotations = provider_annotations(message)
        out.images = image_parts(getattr(message, "images", None))
        if session.native is not None:
            session.native.on_response(response)
        session.add_cost(costs.turn_cost(response))
        usage = getattr(response, "usage", None)
    else:
        usage = None
        pieces: list[str] = []
        length = 0  # characters received so far (where a streamed citation points)
        held = ""
        # The tool loop's source tags, if the model copies one into its text, never reach the caller.
        scrubber = TagScrubber() if session.req.web_search is not None else None
        calls: dict[int, dict[str, str]] = {}
        chunks: list[Any] = []  # for pricing the turn afterwards
        stream = await session.attempts.stream(params)
        info.model = session.target.name
        writing = kind in ("answer", "completion") and live  # say when the answer's first token comes
        try:
            async for chunk in stream:
                chunks.append(chunk)
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                _prompt_progress(session, chunk, kind)
                _timings(info, chunk)
                if session.native is not None:
                    session.native.on_chunk(chunk, length)
                for choice in chunk.choices or []:
                    delta = choice.delta
                    if info.time_to_first_token_ms is None and (delta.content or delta.tool_calls):
                        info.time_to_first_token_ms = round((time.perf_counter() - started) * 1000, 1)
                    for tc in delta.tool_calls or []:
                        merge_tool_delta(calls, tc)
                    if delta.content:
                        pieces.append(delta.content)
                        length += len(delta.content)
                        if not live or (hold and calls and not out.streamed):
                            continue  # a search turn's text beside its tool call: a preamble
                        if hold and not out.streamed and len(held) + len(delta.content) < hold:
                            held += delta.content
                            continue
                        text, held = held + delta.content, ""
                        if scrubber is not None:
                            text = scrubber.feed(text)
                            if not text:
                                continue
                        if writing:
                            writing = False
                            session.emit("writing", "writing the answer")
                        out.streamed += text
                        yield ContentDelta(text)
                    if getattr(delta, "annotations", None):
                        out.annotations.extend(plain(a) for a in delta.annotations)
                    if getattr(delta, "images", None):
                        out.images.extend(image_parts(delta.images))
                    if choice.finish_reason:
                        out.finish_reason = choice.finish_reason
        except GroundingError:
            raise
        except Exception as exc:
            raise llm.to_grounding_error(exc, model=session.target.name, secrets=[session.target.api_key or ""]) from exc
        finally:
            await stream.aclose()
        if stream.cut_short:
            session.warn(f"the stream from {session.target.name} ended without a finish reason: "
                         "the answer may be cut short")
        out.content = "".join(pieces)
        session.add_cost(costs.stream_cost(session.target.litellm_model, chunks))
        out.calls = [Call(c["id"] or f"call_{i}", c["name"], c["arguments"]) for i, c in sorted(calls.items())]
        if scrubber is not None:
            out.content, removed = scrub(out.content)
            _say_removed(session, removed)
            tail = scrubber.flush()
            if tail and live and (out.streamed or not out.calls):
                out.streamed += tail
                yield ContentDelta(tail)
        if live and held and not out.calls:
            held = scrub(held)[0] if scrubber is not None else held
            if held:
                out.streamed += held
                yield ContentDelta(held)
    if not out.content and not out.calls and not out.images:
        session.warn(f"{session.target.name} returned an empty answer (finish_reason: {out.finish_reason})")
    session.usage.add(usage)
    if usage is not None:
        info.prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        info.completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        cached = getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", None)
        if isinstance(cached, int) and info.cached_prompt_tokens is None:
            info.cached_prompt_tokens = cached  # OpenAI's field; llama.cpp fills it too
    info.finish_reason = out.finish_reason
    info.tool_calls = [c.name for c in out.calls]
    info.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    session.attempts.turn_done(duration_ms=info.duration_ms, ttft_ms=info.time_to_first_token_ms,
                               output_tokens=info.completion_tokens or None)


def _say_removed(session: "Session", removed: int) -> None:
    if removed:
        session.warn(f"the model copied {removed} source tag(s) of its prompt (<source ...>) into its text; "
                     "they were removed")


def _prompt_progress(session: "Session", chunk: Any, kind: str) -> None:
    """llama.cpp's ``prompt_progress`` (streams with ``return_progress``): the prompt read so far."""
    pp = getattr(chunk, "prompt_progress", None)
    if not isinstance(pp, dict) or not pp.get("total"):
        return
    total, done, cached = int(pp["total"]), int(pp.get("processed") or 0), int(pp.get("cache") or 0)
    what = "the sources" if kind == "answer" else "the question" if kind == "search" else "the prompt"
    if done <= cached:  # the first report (often the only one litellm passes on): how much there is to read
        message = f"reading {what}: {total - cached:,} tokens" + (f" ({cached:,} more from cache)" if cached else "")
    else:
        message = f"reading {what}: {done:,} of {total:,} tokens"
    session.emit("reading", message, done=done, total=total)


def _timings(info: TurnInfo, chunk: Any) -> None:
    """llama.cpp's ``timings`` on the last chunk: prompt tokens taken from its cache, and speeds."""
    t = getattr(chunk, "timings", None)
    if not isinstance(t, dict):
        return
    if isinstance(t.get("cache_n"), int):
        info.cached_prompt_tokens = t["cache_n"]
    if isinstance(t.get("prompt_per_second"), (int, float)):
        info.prompt_tokens_per_s = round(float(t["prompt_per_second"]), 2)
    if isinstance(t.get("predicted_per_second"), (int, float)):
        info.output_tokens_per_s = round(float(t["predicted_per_second"]), 2)


def merge_tool_delta(calls: dict[int, dict[str, str]], tc: Any) -> None:
    """Add one streamed tool-call fragment to ``calls`` (by index)."""
    index = getattr(tc, "index", None)
    if index is None:
        index = len(calls)
    fn = getattr(tc, "function", None)
    tc_id = getattr(tc, "id", None)
    slot = calls.get(index)
    if slot is not None and tc_id and slot["id"] and tc_id != slot["id"]:
        index = max(calls) + 1  # a new call reusing index 0 (some servers do)
        slot = None
    if slot is None:
        slot = calls[index] = {"id": "", "name": "", "arguments": ""}
    if tc_id:
        slot["id"] = tc_id
    if fn is not None:
        if getattr(fn, "name", None):
            slot["name"] = fn.name
        if getattr(fn, "arguments", None):
            slot["arguments"] += fn.arguments


def plain(obj: Any) -> dict:
    """A dict of a pydantic object or a mapping."""
    if isinstance(obj, dict):
        return obj
    dump = getattr(obj, "model_dump", None)
    return dump() if dump else dict(obj)


def image_parts(images: Any) -> list[dict]:
    """litellm's ``images`` (``{image_url: {url, detail}, index, type}``) as OpenAI-style
    ``{"type": "image_url", "image_url": {"url": ...}}`` parts."""
    out = []
    for item in images or []:
        image_url = plain(item).get("image_url")
        url = image_url.get("url") if isinstance(image_url, dict) else getattr(image_url, "url", image_url)
        if isinstance(url, str) and url:
            out.append({"type": "image_url", "image_url": {"url": url}})
    return out


def provider_annotations(message: Any) -> list[dict]:
    """The annotations a provider put on its message, as dicts."""
    return [plain(a) for a in getattr(message, "annotations", None) or []]
