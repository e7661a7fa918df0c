"""Which model a request runs on, and how litellm reaches it."""
from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass, replace
from typing import Any, Callable

from providers.models import ModelProfile, is_local_model, profile_for

from .request import ChatRequest

__all__ = ["Target", "resolve_target", "start_local", "default_model", "LOCAL_CAPABILITIES"]

#: The embedded model (a text-only coder model): no images out, no audio or images in.
LOCAL_CAPABILITIES: tuple[tuple[str, bool], ...] = (("audio_input", False), ("image_output", False),
                                                     ("vision", False))

#: Env vars that make a hosted model the default, in order of preference.
_DEFAULT_MODELS = (
    ("OPENAI_API_KEY", "openai/gpt-4.1-mini"),
    ("ANTHROPIC_API_KEY", "anthropic/claude-sonnet-4-5"),
    ("GEMINI_API_KEY", "gemini/gemini-2.5-flash"),
    ("GROQ_API_KEY", "groq/openai/gpt-oss-120b"),
)


@dataclass(frozen=True)
class Target:
    """A resolved model: its name in responses, litellm's arguments, its profile."""

    name: str
    litellm_model: str
    profile: ModelProfile
    api_base: str | None = None
    api_key: str | None = None
    #: The provider serving it (``openai``, or a config provider's name).
    provider: str | None = None
    #: Whether it takes ``reasoning_effort``; None: ask litellm's model map.
    reasoning: bool | None = None
    #: ``provider/model`` in the catalog (what statistics are kept under).
    deployment: str | None = None
    #: What is known of its capabilities (``(name, has)``: litellm's map or the config);
    #: a capability not listed is unknown.
    capabilities: tuple[tuple[str, bool], ...] = ()

    #: Settings the catalog found missing for this deployment (its key's env var), if any.
    missing: tuple[str, ...] = ()

    def can(self, capability: str) -> bool | None:
        """Whether it has ``capability`` (``image_output``, ``audio_input``...); None: unknown."""
        return dict(self.capabilities).get(capability)

    @property
    def stats_key(self) -> str:
        return self.deployment or self.name

    def litellm_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"model": self.litellm_model}
        if self.api_base:
            kw["api_base"] = self.api_base
        if self.api_key:
            kw["api_key"] = self.api_key
        return kw


def default_model() -> str:
    """``$GROUNDING_MODEL``, else a hosted model whose key is set, else ``local``."""
    configured = os.environ.get("GROUNDING_MODEL")
    if configured:
        return configured
    for env, model in _DEFAULT_MODELS:
        if os.environ.get(env):
            return model
    return "local"


async def resolve_target(req: ChatRequest, progress: Callable[[str], None] | None = None,
                         model: str | None = None) -> Target:
    """Resolve ``model`` (default ``req.model``) as given, with the request's
    ``api_base``/``api_key``. ``local`` is the embedded model: checked as
    installed here, started by :func:`start_local` (``progress`` is unused and
    kept for callers of the earlier signature)."""
    model = model or req.model
    if is_local_model(model):
        from .local_model import LOCAL_MODEL_ALIAS, check_installed, local_profile

        check_installed()
        return Target(
            name=f"local/{LOCAL_MODEL_ALIAS}",
            litellm_model=f"openai/{LOCAL_MODEL_ALIAS}",
            profile=profile_for(model, local_profile()),
            api_base=None,
            api_key="local",
            provider="local",
            reasoning=False,
            capabilities=LOCAL_CAPABILITIES,
        )
    return Target(
        name=model,
        litellm_model=model,
        profile=profile_for(model),
        api_base=req.api_base,
        api_key=req.api_key,
        provider=model.split("/", 1)[0] if "/" in model else None,
    )


async def start_local(targets: list[Target]) -> list[Target]:
    """``targets`` with the embedded model's server started (once per process) and its
    address filled in; progress (``loading_model``) goes to the current request."""
    if not any(t.provider == "local" and t.api_base is None for t in targets):
        return targets
    from .local_model import get_local_server
    from .progress import report

    def say(message: str) -> None:
        done, total = _counts(message)
        # Loading the weights holds the interpreter (xllamacpp's constructor keeps the GIL):
        # wait until "loading model" has been said before it starts.
        report("loading_model", message, done=done, total=total, wait=1.0 if message == "loading model" else 0.0)

    server = await asyncio.to_thread(get_local_server, say)
    return [replace(t, api_base=server.api_base) if t.provider == "local" and t.api_base is None else t
            for t in targets]


def _counts(message: str) -> tuple[int | None, int | None]:
    """``"joining model weights (3/22)"`` -> ``(3, 22)``."""
    m = re.search(r"\((\d+)/(\d+)\)\s*$", message)
    return (int(m.group(1)), int(m.group(2))) if m else (None, None)
