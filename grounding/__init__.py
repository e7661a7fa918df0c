"""grounding: any chat model, answering with the web behind it, with citations.

The public API::

    import grounding
    r = grounding.completion(model=..., messages=[...], web_search={"engine": "local"})
    r.choices[0].message.content        # the answer
    r.choices[0].message.annotations    # url_citation annotations (character offsets)
    r.metadata                          # queries, sources, turns, timings, warnings

Names are imported lazily, so ``import grounding`` stays fast (litellm is only
imported when a completion runs).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "completion": "grounding.api",
    "acompletion": "grounding.api",
    "ChatCompletion": "grounding.response",
    "ChatCompletionChunk": "grounding.response",
    "Metadata": "grounding.response",
    "WebSearch": "grounding.request",
    "CitationOptions": "grounding.request",
    "check_citations": "grounding.verify",
    "Judge": "grounding.verify",
    "LexicalJudge": "grounding.verify",
    "ModelJudge": "grounding.verify",
    "Config": "grounding.config",
    "load_config": "grounding.config",
    "set_config": "grounding.config",
    "register_engine": "providers.search",
    "SearchEngine": "providers.search",
    "SearchHit": "providers.search",
    "SearchOptions": "providers.search",
    "LocalSearchEngine": "providers.search",
    "Cache": "grounding.cache",
    "MemoryBackend": "grounding.cache",
    "RedisBackend": "grounding.cache",
    "get_cache": "grounding.cache",
    "set_cache": "grounding.cache",
    "GroundingError": "grounding.errors",
    "InvalidRequestError": "grounding.errors",
    "ConfigurationError": "grounding.errors",
    "ProgressEvent": "grounding.progress",
    "AuthenticationError": "grounding.errors",
    "NotFoundError": "grounding.errors",
    "RateLimitError": "grounding.errors",
    "UpstreamError": "grounding.errors",
    "UpstreamTimeoutError": "grounding.errors",
    "OutputValidationError": "grounding.errors",
    "LocalModelError": "grounding.errors",
    "LocalModelUnavailable": "grounding.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from providers.search import LocalSearchEngine, SearchEngine, SearchHit, SearchOptions, register_engine

    from .api import acompletion, completion
    from .cache import Cache, MemoryBackend, RedisBackend, get_cache, set_cache
    from .errors import (AuthenticationError, ConfigurationError, GroundingError, InvalidRequestError, LocalModelError,
                         LocalModelUnavailable, NotFoundError, OutputValidationError, RateLimitError, UpstreamError,
                         UpstreamTimeoutError)
    from .progress import ProgressEvent
    from .config import Config, load_config, set_config
    from .request import CitationOptions, WebSearch
    from .verify import Judge, LexicalJudge, ModelJudge, check_citations
    from .response import ChatCompletion, ChatCompletionChunk, Metadata


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'grounding' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
