"""What :func:`grounding.loop.run` yields while it answers."""
from __future__ import annotations

from dataclasses import dataclass

from .response import ChatCompletion

__all__ = ["Started", "ContentDelta", "Done"]


@dataclass
class Started:
    """The model is resolved; streaming can begin."""

    id: str
    model: str
    created: int


@dataclass
class ContentDelta:
    """A piece of the answer, as the model writes it."""

    text: str


@dataclass
class Done:
    """The finished completion (annotations, usage and metadata included)."""

    completion: ChatCompletion
