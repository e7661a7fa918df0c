"""``grounding serve``: an OpenAI-compatible HTTP server over :func:`grounding.acompletion`.

- :func:`create_app` builds the ASGI app (:mod:`.app`): chat completions
  (streamed as OpenAI's SSE, :mod:`.sse`), models, routers over HTTP, health;
- :func:`serve` runs it with uvicorn;
- :mod:`.auth` (API keys), :mod:`.limits` (body size, concurrency per key),
  :mod:`.store` (where routers created over HTTP are kept).

Names load lazily, so importing ``grounding.server.store`` does not import
starlette or uvicorn.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["create_app", "serve"]

if TYPE_CHECKING:  # pragma: no cover
    from .app import create_app
    from .app import serve


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "serve":
        from .app import serve

        return serve
    raise AttributeError(f"module 'grounding.server' has no attribute {name!r}")
