"""Which model a request runs on, and how litellm reaches it."""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any, Callable

from providers.models import ModelProfile, is_local_model, profile_for

from .request import ChatRequest

__all__ = ["Target", "resolve_target", "default_model", "LOCAL_CAPABILITIES"]

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
    ``api_base``/``api_key``; ``local`` starts the embedded model server (once)."""
    model = model or req.model
    if is_local_model(model):
        from .local_model import LOCAL_MODEL_ALIAS, get_local_server

        server = await asyncio.to_thread(get_local_server, progress)
        return Target(
            name=f"local/{LOCAL_MODEL_ALIAS}",
            litellm_model=server.litellm_model,
            profile=profile_for(model, server.profile),
            api_base=server.api_base,
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
