"""Configuration checks before any model call: a missing key or base URL is named at once.

Two passes, both before a request's first model call:

* :func:`check_request`, before routing: the search engine's env vars, the
  local corpus folder, and the key of a single provider-prefixed model. It
  reads the environment and the config only (no catalog, no litellm import),
  so ``grounding ask --engine tavily`` without ``TAVILY_API_KEY`` fails in
  well under a second instead of after loading a model.
* :func:`check_plan`, after routing: every target routing chose (a model id's
  providers after ``ignore`` and ``provider.order``, ``auto``'s ranking,
  fallbacks). A target whose key is missing is dropped with a warning while
  another target can serve; when none can, the error names what to set for
  each.

A missing setting is a :class:`~grounding.errors.ConfigurationError` (HTTP 400,
``code="missing_configuration"``, ``settings`` lists the variables). Only
providers whose keys this library knows are judged (see
:func:`grounding.routing.catalog.provider_key_status`); for others, litellm
decides at call time.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING

from providers.models import is_local_model
from providers.search import NATIVE, default_engine_name, missing_engine_settings, ready_engine_names

from .config import get_config
from .errors import ConfigurationError

if TYPE_CHECKING:  # pragma: no cover
    from .request import ChatRequest
    from .routing.plan import Plan
    from .target import Target

__all__ = ["check_request", "check_plan", "missing_settings", "provider_settings"]


def check_request(req: "ChatRequest") -> None:
    """What the request names itself: its engine (and corpus), and a lone provider-prefixed model."""
    ws = req.web_search
    if ws is not None:
        engine = ws.engine or default_engine_name()
        if engine != NATIVE:
            _check_engine(engine, given=ws.engine is not None)
    if req.models or req.api_key or is_local_model(req.model) or "/" not in req.model:
        return  # fallbacks, the request's own key, local, a plain id or auto: judged after routing
    from .routing.routers import parse_router_ref

    if parse_router_ref(req.model, get_config().router_prefix) is not None:
        return
    provider = req.model.split("/", 1)[0]
    missing = provider_settings(provider)
    if missing:
        raise _model_error(req.model, missing)


def check_plan(plan: "Plan") -> None:
    """Drop routed targets whose key is missing (a warning says so); none left is an error."""
    keep: list["Target"] = []
    lacking: list[tuple["Target", list[str]]] = []
    for target in plan.targets:
        missing = missing_settings(target)
        (lacking.append((target, missing)) if missing else keep.append(target))
    if not lacking:
        return
    if not keep:
        if len(lacking) == 1:
            raise _model_error(lacking[0][0].name, lacking[0][1])
        needs = "; ".join(f"{t.name} needs {_join(m)}" for t, m in lacking[:6])
        more = f"; and {len(lacking) - 6} more" if len(lacking) > 6 else ""
        settings = list(dict.fromkeys(v for _, m in lacking for v in m))
        raise ConfigurationError(f"no provider that could serve this request has its key set: {needs}{more}",
                                 settings=settings, param="model")
    for target, missing in lacking:
        plan.warnings.append(f"{target.name} was skipped: {_join(missing)} {_is(missing)} not set")
    plan.targets = keep


def missing_settings(target: "Target") -> list[str]:
    """The settings a routed target lacks (``[]``: ready, keyless, or unknown to this library)."""
    if target.provider == "local" or target.api_key:
        return []
    if target.missing:  # what the catalog found (its table, or the <PROVIDER>_API_KEY convention)
        return list(target.missing)
    cfg = get_config().providers.get(target.provider or "")
    if cfg is not None:
        if cfg.key():
            return []
        if cfg.api_key_env:
            return [cfg.api_key_env]
        if cfg.api_base:
            return []  # a keyless endpoint of the user's (a local server)
        return provider_settings(cfg.litellm_provider)
    head = target.litellm_model.split("/", 1)[0] if "/" in target.litellm_model else (target.provider or "")
    return provider_settings(head)


def provider_settings(provider: str) -> list[str]:
    """The env vars a litellm provider (or a config provider) lacks; ``[]`` when ready or not known."""
    from .routing.catalog import PROVIDER_ALIASES, known_key_rules, provider_key_status

    cfg = get_config().providers.get(provider)
    if cfg is not None:
        if cfg.key() or (cfg.api_base and not cfg.api_key_env):
            return []
        return [cfg.api_key_env] if cfg.api_key_env else provider_settings(cfg.litellm_provider)
    provider = PROVIDER_ALIASES.get(provider, provider)
    if not known_key_rules(provider):
        return []
    ok, env = provider_key_status(provider)
    return [] if ok or not env else env.split(" + ")


def _check_engine(engine: str, *, given: bool) -> None:
    where = "web_search.engine" if given else "GROUNDING_ENGINE"
    missing = missing_engine_settings(engine)
    if missing:
        ready = ", ".join(n for n in ready_engine_names() if n != engine)
        raise ConfigurationError(
            f"{where}: the {engine!r} search engine needs {_join(missing)}, which {_is(missing)} not set; "
            f"set {'it' if len(missing) == 1 else 'them'}, or choose an engine ready here ({ready})",
            settings=missing, param="web_search.engine")
    if engine == "local":
        corpus = os.environ.get("GROUNDING_CORPUS")
        from providers.local_index import BUILTIN_CORPUS
        from providers.search import _registry  # an engine registered in code decides for itself

        if corpus and corpus != BUILTIN_CORPUS and "local" not in _registry and not os.path.isdir(corpus):
            raise ConfigurationError(f"GROUNDING_CORPUS={corpus} is not a folder; point it at a folder of "
                                     f"HTML, Markdown or text files, or unset it for Python's documentation",
                                     settings=["GROUNDING_CORPUS"], param="web_search.engine")


def _model_error(model: str, missing: list[str]) -> ConfigurationError:
    return ConfigurationError(f"model {model} needs {_join(missing)}, which {_is(missing)} not set; set "
                              f"{'it' if len(missing) == 1 else 'them'} (or configure the provider in "
                              "GROUNDING_CONFIG), or choose another model", settings=missing, param="model")


def _join(names: list[str]) -> str:
    return " and ".join(names)


def _is(names: list[str]) -> str:
    return "is" if len(names) == 1 else "are"
