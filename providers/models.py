"""What each model can do, as far as the tool loop cares.

Most tool-calling models work with ``tool_choice="auto"`` on search turns and
a generous source budget. Small local models need more hand-holding: forced
tool calls, one at a time, and sources that fit a 4k context.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

__all__ = ["ModelProfile", "DEFAULT_PROFILE", "profile_for", "register_profile", "is_local_model"]


@dataclass(frozen=True)
class ModelProfile:
    """How to drive a model through the search loop."""

    search_tool_choice: str = "auto"
    parallel_tool_calls: bool | None = None
    answer_tool_choice: str = "none"
    #: Tokens of source text handed to the model per search step.
    source_token_budget: int = 6000
    #: The context window, when known (the local model's as served).
    context_tokens: int | None = None
    #: The first search's query: ``"model"`` (a search turn: the model writes it) or ``"question"``
    #: (the user's question itself, no search turn: for a small model whose queries are no better,
    #: it saves a whole model call).
    first_query: str = "model"
    #: Ask the server for prompt-processing progress (llama.cpp's ``return_progress``) on streams.
    prompt_progress: bool = False
    #: Keep the search tool declared on the answer turn when the history holds tool calls (some
    #: providers require it); a server of our own (the local model) reads less without it.
    answer_tools: bool = True

    @property
    def forces_search(self) -> bool:
        """Search turns must call a tool (``tool_choice="required"``)."""
        return self.search_tool_choice == "required"


DEFAULT_PROFILE = ModelProfile()


_registered: dict[str, ModelProfile] = {}


def register_profile(model: str, profile: ModelProfile) -> None:
    """Drive ``model`` (an exact id, or a prefix ending in ``/`` or ``*``) with
    ``profile``; e.g. a small self-hosted model that needs forced tool calls."""
    _registered[model.rstrip("*")] = profile


def _lookup(model: str) -> ModelProfile | None:
    if model in _registered:
        return _registered[model]
    prefixes = [p for p in _registered if p != model and model.startswith(p)]
    return _registered[max(prefixes, key=len)] if prefixes else None


def is_local_model(model: str) -> bool:
    """``local`` or ``local/<anything>``: the embedded offline model."""
    return model == "local" or model.startswith("local/")


def profile_for(model: str, base: ModelProfile | None = None) -> ModelProfile:
    """The profile for ``model`` (or ``base``, e.g. a running local server's);
    ``GROUNDING_SOURCE_TOKENS`` overrides the source budget."""
    profile = base or _lookup(model) or DEFAULT_PROFILE
    if base is None and is_local_model(model):
        from grounding.local_model import LOCAL_PROFILE

        profile = LOCAL_PROFILE
    budget = os.environ.get("GROUNDING_SOURCE_TOKENS")
    if budget and budget.isdigit() and int(budget) > 0:
        profile = replace(profile, source_token_budget=int(budget))
    return profile
