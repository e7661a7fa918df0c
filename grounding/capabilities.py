"""What a request needs from its model, checked against each target before any call.

Audio output (``"audio"`` in ``modalities``) is refused outright: the
answer's audio would be lost. Image output (``"image"`` in ``modalities``),
image input (``image_url`` parts), audio input (``input_audio`` parts) and,
for a grounded request that also asks for images, tool calling
(the tool loop's search turns). A target whose capabilities are *known*
(litellm's model map knows the model, or the config file says) and lack one
is refused with a clear 400 when it is the model asked for, and dropped from
the fallbacks (with a warning) otherwise. Unknown models (self-hosted,
unlisted) are let through: their provider answers for itself.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import InvalidRequestError

if TYPE_CHECKING:  # pragma: no cover
    from .request import ChatRequest
    from .target import Target

__all__ = ["check_request", "check_targets", "first_part"]


def first_part(messages: list[dict[str, Any]], kind: str) -> str | None:
    """``messages[i].content[j]`` of the first content part of type ``kind``, if any."""
    for i, msg in enumerate(messages):
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and part.get("type") == kind:
                    return f"messages[{i}].content[{j}]"
    return None


def check_request(req: "ChatRequest") -> None:
    """What can be refused before routing: audio output (for any model), and what the
    embedded ``local`` model cannot do (so it is not started for nothing)."""
    if "audio" in (req.modalities or []):
        raise InvalidRequestError(
            "audio output (modalities with 'audio') is not supported by this library: the answer's audio "
            "would be lost; ask for text (and images) only", param="modalities", code="unsupported_modality")
    from providers.models import DEFAULT_PROFILE, is_local_model

    from .target import LOCAL_CAPABILITIES, Target

    if is_local_model(req.model):
        local = Target(name="local", litellm_model="local", profile=DEFAULT_PROFILE, provider="local",
                       capabilities=LOCAL_CAPABILITIES)
        problem = _problem(req, local)
        if problem is not None:
            raise problem


def _problem(req: "ChatRequest", target: "Target") -> InvalidRequestError | None:
    name = target.name
    if "image" in (req.modalities or []):
        if target.can("image_output") is False:
            return InvalidRequestError(
                f"model {name} cannot output images (litellm's model map lists text output only for it); use "
                "an image model such as gemini/gemini-2.5-flash-image, or leave 'image' out of modalities",
                param="modalities", code="unsupported_modality")
        if req.web_search is not None and target.can("tools") is False:
            return InvalidRequestError(
                f"model {name} writes images but cannot call tools, which web_search (the search tool loop) "
                "needs, so this combination cannot be served: use web_search_options (or web_search.engine "
                "'native') where the model has its own search, or a model that both calls tools and outputs "
                "images", param="web_search", code="unsupported_combination")
    image = first_part(req.messages, "image_url")
    if image is not None and target.can("vision") is False:
        return InvalidRequestError(
            f"model {name} does not take images (litellm's supports_vision is false for it): use a model that "
            "does, such as openai/gpt-4.1-mini or gemini/gemini-2.5-flash", param=image, code="unsupported_modality")
    audio = first_part(req.messages, "input_audio")
    if audio is not None and target.can("audio_input") is False:
        return InvalidRequestError(
            f"model {name} does not take audio input (litellm's supports_audio_input is false for it): use a "
            "model that does, such as gemini/gemini-2.5-flash, or send the audio's transcript as text",
            param=audio, code="unsupported_modality")
    return None


def check_targets(req: "ChatRequest", targets: list["Target"]) -> tuple[list["Target"], list[str]]:
    """The targets that can serve ``req`` and warnings for those dropped; raises
    :class:`InvalidRequestError` when the first (the model asked for) cannot."""
    kept: list[Target] = []
    warnings: list[str] = []
    for i, target in enumerate(targets):
        problem = _problem(req, target)
        if problem is None:
            kept.append(target)
        elif i == 0:
            raise problem
        else:
            warnings.append(f"fallback {target.name} was skipped: {problem.message.split(':')[0].split(' (')[0]}")
    return kept, warnings
