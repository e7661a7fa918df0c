"""Input media (images, audio, files in the messages), checked and fetched safely.

Left alone, litellm fetches an ``http(s)`` image URL itself for providers
that need the bytes (Gemini, Vertex AI, Bedrock, Ollama, Anthropic for plain
``http``; ``file`` parts whose ``file_id`` is a URL for OpenAI too), from this
process, past the private-network guard, the byte cap and the content-type
check that protect page fetches. So before any model call:

- every ``image_url``, ``input_audio`` and ``file`` part is checked: a URL
  must be ``http(s)`` or a ``data:`` URI; inline data must be valid base64 of
  an accepted type (``image/png``, ``jpeg``, ``gif``, ``webp``, ``heic``,
  ``heif`` for images; ``audio/*`` for audio; those and ``application/pdf``
  for files) and within the byte cap;
- the URLs some target cannot take as URLs are fetched once, concurrently,
  through :class:`providers.fetch.Fetcher` (guard checked after DNS and on
  every redirect, byte cap, ``image/*`` / ``audio/*`` / PDF only), and sent
  to those targets as base64 data URIs;
- providers whose own API fetches image URLs (OpenAI, Azure OpenAI, xAI,
  Groq, Mistral, OpenRouter; Anthropic for ``https``) get the URL as it was,
  when the call goes to the provider's own endpoint (no custom ``api_base``:
  a self-hosted server would fetch the URL from inside its own network).

A part that is refused, too large, of the wrong type, or unreachable is a
400 (:class:`~grounding.errors.InvalidRequestError`) whose ``param`` names it:
``messages[i].content[j]``. ``input_audio`` takes base64 (OpenAI's shape) or,
as an extension, an ``http(s)`` URL of an audio file, fetched the same way.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from providers.fetch import Fetcher, type_accepted

from .errors import InvalidRequestError

if TYPE_CHECKING:  # pragma: no cover
    from .target import Target

__all__ = ["MEDIA_MAX_BYTES_ENV", "media_max_bytes", "InputMedia", "collect_parts", "prepare_media",
           "takes_image_urls"]

MEDIA_MAX_BYTES_ENV = "GROUNDING_MEDIA_MAX_BYTES"
_DEFAULT_MAX_BYTES = 10_000_000

IMAGE_TYPES = ("image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp", "image/heic", "image/heif")
AUDIO_TYPES = ("audio/*",)
FILE_TYPES = IMAGE_TYPES + AUDIO_TYPES + ("application/pdf",)
#: ``input_audio.format`` values (OpenAI takes wav and mp3; litellm maps the rest for Gemini).
AUDIO_FORMATS = ("wav", "mp3", "flac", "ogg", "aac", "aiff", "m4a", "webm", "opus")
_AUDIO_FORMAT_OF = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/mpeg": "mp3",
                    "audio/mp3": "mp3", "audio/flac": "flac", "audio/x-flac": "flac", "audio/ogg": "ogg",
                    "audio/aac": "aac", "audio/aiff": "aiff", "audio/x-aiff": "aiff", "audio/mp4": "m4a",
                    "audio/x-m4a": "m4a", "audio/webm": "webm", "audio/opus": "opus"}
#: Providers whose API fetches an image URL itself (litellm passes it on unchanged).
_URL_PROVIDERS = frozenset({"openai", "azure", "xai", "groq", "mistral", "openrouter"})
_DATA_URI = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)(?P<params>(?:;[^;,]*)*?);base64,(?P<data>.*)$", re.S)


def media_max_bytes() -> int:
    """The byte cap of one input image, audio clip or file (``GROUNDING_MEDIA_MAX_BYTES``, default 10 MB)."""
    value = os.environ.get(MEDIA_MAX_BYTES_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else _DEFAULT_MAX_BYTES


def takes_image_urls(target: "Target", url: str) -> bool:
    """Whether ``target``'s provider fetches ``url`` itself (so it can be sent as it is)."""
    if target.api_base or target.provider == "local":
        return False
    provider = target.litellm_model.split("/", 1)[0].lower() if "/" in target.litellm_model else ""
    if provider == "anthropic":
        return url.startswith("https://")
    return provider in _URL_PROVIDERS


@dataclass
class _Part:
    """One media part of the messages: where it is, what it is, and its URL if it has one."""

    message: dict[str, Any]
    index: int  # into message["content"]
    where: str  # "messages[i].content[j]"
    kind: str  # image_url | input_audio | file
    url: str | None = None  # an http(s) URL to fetch (or to pass on, for images)


@dataclass
class InputMedia:
    """The request's media parts and the data URIs fetched for them; rewrites messages per target."""

    parts: list[_Part] = field(default_factory=list)
    fetched: dict[str, str] = field(default_factory=dict)  # url -> data URI

    def messages_for(self, target: "Target", messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``messages`` as ``target`` should get them: fetched URLs it cannot take replaced by data URIs."""
        by_message: dict[int, list[_Part]] = {}
        for part in self.parts:
            if part.url is not None and part.url in self.fetched and not (
                    part.kind == "image_url" and takes_image_urls(target, part.url)):
                by_message.setdefault(id(part.message), []).append(part)
        if not by_message:
            return messages
        out = []
        for msg in messages:
            parts = by_message.get(id(msg))
            if parts:
                content = list(msg["content"])
                for part in parts:
                    content[part.index] = _inlined(content[part.index], part, self.fetched[part.url or ""])
                msg = {**msg, "content": content}
            out.append(msg)
        return out

    def adapt(self, target: "Target", kwargs: dict[str, Any]) -> dict[str, Any]:
        """The completion arguments for ``target`` (the hook :class:`~grounding.routing.attempts.Attempts` calls)."""
        messages = kwargs.get("messages")
        if isinstance(messages, list):
            kwargs["messages"] = self.messages_for(target, messages)
        return kwargs


def _inlined(part: dict[str, Any], where: _Part, data_uri: str) -> dict[str, Any]:
    if where.kind == "image_url":
        image = part["image_url"]
        return {**part, "image_url": {**image, "url": data_uri} if isinstance(image, dict) else {"url": data_uri}}
    if where.kind == "input_audio":
        media_type, _, data = data_uri[5:].partition(";base64,")
        return {**part, "input_audio": {**part["input_audio"], "data": data,
                                        "format": _AUDIO_FORMAT_OF.get(media_type, media_type.split("/")[-1])}}
    file = {k: v for k, v in part["file"].items() if k != "file_id"}
    file["file_data"] = data_uri
    file.setdefault("filename", where.url.rstrip("/").rsplit("/", 1)[-1] or "file" if where.url else "file")
    return {**part, "file": file}


def _bad(where: str, what: str, reason: str) -> InvalidRequestError:
    return InvalidRequestError(f"{where}: {what} {reason}", param=where, code="invalid_media")


def _check_data(where: str, what: str, data: str, accept: tuple[str, ...], media_type: str | None,
                limit: int) -> None:
    """Inline base64 data: decodable, within the cap, of an accepted type."""
    if media_type is not None and not type_accepted(media_type.lower(), accept):
        raise _bad(where, what, f"has type {media_type}, which is not accepted (use {', '.join(accept)})")
    if len(data) * 3 // 4 > limit + 3:
        raise _bad(where, what, f"is too large: over {limit:,} bytes ({MEDIA_MAX_BYTES_ENV})")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(where, what, "is not valid base64") from None
    if len(raw) > limit:
        raise _bad(where, what, f"is too large: over {limit:,} bytes ({MEDIA_MAX_BYTES_ENV})")
    if not raw:
        raise _bad(where, what, "is empty")


def _check_url(where: str, what: str, url: Any, accept: tuple[str, ...], limit: int) -> str | None:
    """A part's URL: a data URI is checked here (None returned); an http(s) URL is returned to fetch."""
    if not isinstance(url, str) or not url.strip():
        raise _bad(where, what, "needs a URL: an http(s) URL or a data: URI")
    url = url.strip()
    if url.startswith("data:"):
        m = _DATA_URI.match(url)
        if not m:
            raise _bad(where, what, "is not a base64 data URI (data:<type>;base64,<data>)")
        _check_data(where, what, m["data"], accept, m["type"], limit)
        return None
    if not re.match(r"^https?://[^/\s]+", url, re.I):
        raise _bad(where, what, "must be an http(s) URL or a data: URI")
    return url


def collect_parts(messages: list[dict[str, Any]], limit: int) -> list[_Part]:
    """The media parts of ``messages``, each checked (inline data) or with the URL to fetch;
    raises :class:`InvalidRequestError` naming the first bad one."""
    parts: list[_Part] = []
    for i, msg in enumerate(messages):
        content = msg.get("content") if isinstance(msg, dict) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            where = f"messages[{i}].content[{j}]"
            if kind == "image_url":
                image = part.get("image_url")
                url = image.get("url") if isinstance(image, dict) else image
                found = _check_url(where, "the image", url, IMAGE_TYPES, limit)
            elif kind == "input_audio":
                audio = part.get("input_audio")
                if not isinstance(audio, dict):
                    raise _bad(where, "input_audio", "must be an object {data, format}")
                data = audio.get("data")
                if isinstance(data, str) and re.match(r"^https?://", data.strip(), re.I):
                    found = _check_url(where, "the audio", data, AUDIO_TYPES, limit)
                else:
                    if audio.get("format") not in AUDIO_FORMATS:
                        raise _bad(where, "input_audio.format", f"must be one of {', '.join(AUDIO_FORMATS)}")
                    if not isinstance(data, str):
                        raise _bad(where, "input_audio.data", "must be base64 audio (or an http(s) URL)")
                    _check_data(where, "the audio", data, AUDIO_TYPES, None, limit)
                    found = None
            elif kind == "file":
                file = part.get("file")
                if not isinstance(file, dict):
                    raise _bad(where, "file", "must be an object {file_data | file_id, filename}")
                value = file.get("file_data")
                if value is None and re.match(r"^https?://", str(file.get("file_id") or ""), re.I):
                    value = file["file_id"]  # litellm would fetch a URL file_id itself
                elif value is None:
                    continue  # a provider's file id
                found = _check_url(where, "the file", value, FILE_TYPES, limit)
            else:
                continue
            parts.append(_Part(msg, j, where, kind, found))
    return parts


async def prepare_media(messages: list[dict[str, Any]], targets: list["Target"], *,
                        fetcher: Fetcher | None = None) -> InputMedia:
    """Check every media part of ``messages``; fetch the URLs some of ``targets`` cannot
    take as they are. Raises :class:`InvalidRequestError` naming the first bad part."""
    limit = media_max_bytes()
    media = InputMedia(collect_parts(messages, limit))
    wanted: dict[str, tuple[_Part, tuple[str, ...]]] = {}
    for part in media.parts:
        if part.url is None:
            continue
        if part.kind == "image_url" and all(takes_image_urls(t, part.url) for t in targets):
            continue
        accept = {"image_url": IMAGE_TYPES, "input_audio": AUDIO_TYPES}.get(part.kind, FILE_TYPES)
        wanted.setdefault(part.url, (part, accept))
    if not wanted:
        return media
    own = fetcher is None
    fetcher = fetcher or Fetcher(max_bytes=limit, timeout=15.0, concurrency=8)
    try:
        results = await asyncio.gather(*(fetcher.fetch(url, accept=accept) for url, (_, accept) in wanted.items()))
    finally:
        if own:
            await fetcher.aclose()
    for (url, (part, _)), result in zip(wanted.items(), results):
        what = {"image_url": "the image", "input_audio": "the audio"}.get(part.kind, "the file")
        if not result.ok or not result.body:
            reason = result.error or "the response was empty"
            raise _bad(part.where, f"{what} at {url}", f"could not be used: {reason}")
        media_type = result.content_type or "application/octet-stream"
        media.fetched[url] = f"data:{media_type};base64,{base64.b64encode(result.body).decode()}"
    return media
