"""Routing: which model (and provider) answers a request, and what to try next.

- :mod:`.catalog`: what each model costs and can do (litellm's model map,
  the config file, the scores file);
- :mod:`.stats`: observed latency and throughput (in process, or Redis);
- :mod:`.select`: ``auto`` and provider ordering;
- :mod:`.routers`: named routers (CEL routes, sticky weighted variants);
- :mod:`.plan`: a request -> an ordered list of targets and routing metadata;
- :mod:`.attempts`: trying the targets in order (fallbacks, TTFT timeout).
"""
from __future__ import annotations

__all__ = ["reset_state"]


def reset_state() -> None:
    """Forget cached catalogs, routers and statistics (after a config change)."""
    import sys

    for name in ("catalog", "routers", "stats"):
        module = sys.modules.get(f"{__name__}.{name}")
        reset = getattr(module, "reset", None)
        if reset is not None:
            reset()
