"""The shapes the routing modules pass between them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelInfo", "CAPABILITIES", "SORT_KEYS", "Needs"]

#: Capabilities a request can need.
CAPABILITIES = ("tools", "vision", "native_search", "json_schema", "reasoning", "image_output", "audio_input")
#: ``sort`` criteria; the first decides, the rest break ties.
SORT_KEYS = ("price", "latency", "throughput", "intelligence", "math", "coding")


@dataclass(frozen=True)
class ModelInfo:
    """One model as served by one provider (a deployment), with what is known of it.

    ``model`` is the id users write without a provider (``gpt-4.1-mini``);
    ``provider`` the provider's name (``openai``, or one from the config file);
    ``litellm_model`` what litellm is given (``openai/gpt-4.1-mini``).
    Prices are USD per million tokens; ``None`` means unknown.
    """

    model: str
    provider: str
    litellm_model: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    input_price: float | None = None
    output_price: float | None = None
    context_window: int | None = None
    tools: bool = False
    vision: bool = False
    native_search: bool = False
    json_schema: bool = False
    reasoning: bool = False
    #: Writes images (``modalities: ["image", "text"]``): litellm's ``supported_output_modalities``.
    image_output: bool = False
    #: Takes ``input_audio`` parts: litellm's ``supports_audio_input``.
    audio_input: bool = False
    #: The capabilities known for this deployment (litellm's map knows the model, or the
    #: config says); the others are guesses (``tools`` assumed, the rest ``False``).
    known: frozenset[str] = frozenset()
    intelligence: float | None = None
    coding: float | None = None
    math: float | None = None
    #: The provider's key is present (or none is needed).
    available: bool = True
    #: Where the key is looked for (an env var name), to say what is missing.
    key_env: str | None = None

    @property
    def id(self) -> str:
        """``provider/model``: how metadata and ``ignore`` name this deployment."""
        return f"{self.provider}/{self.model}"

    @property
    def price(self) -> float | None:
        """A blended price (USD per million tokens, 3 input : 1 output), for sorting."""
        if self.input_price is None and self.output_price is None:
            return None
        return (3 * (self.input_price or 0.0) + (self.output_price or 0.0)) / 4

    def has(self, capability: str) -> bool:
        return bool(getattr(self, capability))

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "provider": self.provider, "price": self.price,
                "intelligence": self.intelligence, "coding": self.coding, "math": self.math}


@dataclass(frozen=True)
class Needs:
    """Capabilities a request needs from its model."""

    tools: bool = False
    vision: bool = False
    native_search: bool = False
    json_schema: bool = False
    image_output: bool = False
    audio_input: bool = False

    def missing(self, info: ModelInfo) -> list[str]:
        return [c for c in ("tools", "vision", "native_search", "json_schema", "image_output", "audio_input")
                if getattr(self, c) and not info.has(c)]

    def __bool__(self) -> bool:
        return any((self.tools, self.vision, self.native_search, self.json_schema, self.image_output,
                    self.audio_input))
