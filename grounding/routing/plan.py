"""From a request to an ordered list of targets, with the routing metadata.

    router/<name> -> route (CEL) -> variant (sticky by user) -> the request, rewritten
    model="auto"  -> candidates by capability, ``ignore`` and ``sort``   -> ranked targets
    model id      -> the providers serving it (``provider.order``, else observed latency)
    + ``models``  -> the fallback chain after it

The result is a :class:`Plan`: the request to run and the targets to try in
order (see :mod:`.attempts`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from providers.models import is_local_model, profile_for

from ..config import get_config
from ..errors import InvalidRequestError, NotFoundError
from ..request import ChatRequest, parse_request
from ..response import AutoInfo
from ..target import Target, resolve_target
from .types import ModelInfo

__all__ = ["Plan", "plan_request"]


@dataclass
class Plan:
    req: ChatRequest
    targets: list[Target]
    router: str | None = None
    route_id: str | None = None
    variant_id: str | None = None
    auto: AutoInfo | None = None
    warnings: list[str] = field(default_factory=list)


async def plan_request(req: ChatRequest, *, request_id: str,
                       progress: Callable[[str], None] | None = None) -> Plan:
    """Route ``req``: apply a router, pick ``auto``'s candidates, order providers.

    Nothing is called or started: the embedded model's target is resolved (and
    checked as installed) but started by :func:`grounding.target.start_local`.
    ``progress`` is unused (kept for callers of the earlier signature).
    """
    plan = Plan(req=req, targets=[])
    _apply_router(plan, request_id)
    req = plan.req
    from .catalog import get_catalog
    from .stats import get_stats

    catalog, stats = get_catalog(), get_stats()
    ignore = req.ignore or []
    order = req.provider.order if req.provider else None
    allow_fallbacks = req.provider.allow_fallbacks if req.provider else True

    if req.model == "auto":
        from .select import choose_auto, needs_of

        pool: list[ModelInfo] = []
        for ref in req.models or []:
            found = catalog.resolve(ref)
            if not found:
                raise NotFoundError(f"models: the model {ref!r} in the pool for model='auto' does not exist",
                                    param="models", code="model_not_found")
            pool.extend(found)
        if not req.models:
            pool = catalog.pool()
            if not pool:
                return await _auto_offline(plan, req, ignore)
        sort = req.sort or []
        decision = choose_auto(pool, sort=sort, ignore=ignore, needs=needs_of(req), stats=stats)
        plan.auto = AutoInfo(sort=list(sort) or list(getattr(decision, "sort", []) or []),
                             winner=decision.ranked[0].id, why=decision.why, candidates=list(decision.considered))
        infos = decision.ranked if allow_fallbacks else decision.ranked[:1]
        plan.targets = [_target(info, req) for info in infos]
        return plan

    chain = [req.model] + [m for m in (req.models or []) if m != req.model]
    for ref in chain:
        if is_local_model(ref):
            plan.targets.append(await resolve_target(req, model=ref))
            continue
        from .select import apply_ignore, order_providers

        found = catalog.resolve(ref)
        if not found:  # not in the catalog: hand it to litellm as given, if litellm can place it
            _check_known(ref, catalog)
            plan.targets.append(await resolve_target(req, model=ref))
            continue
        kept, dropped = apply_ignore(found, ignore)
        if not kept:
            if ref == req.model and len(chain) == 1:
                raise InvalidRequestError(f"every provider of {ref!r} is ignored ({', '.join(i.id for i in dropped)})",
                                          param="ignore")
            continue
        ordered = order_providers(kept, order=order, stats=stats)
        if not allow_fallbacks:
            # Exactly the provider asked for (the first of provider.order), keyed or not:
            # a missing key is then an error naming it, never a silent switch to another provider.
            wanted = [i for i in ordered if order and i.provider in order]
            ordered = (wanted or ordered)[:1]
        else:
            # Providers with their keys first; the keyless ones are dropped (with a warning) by the
            # preflight when any other can serve, or named in its error when none can.
            ordered = [i for i in ordered if i.available] + [i for i in ordered if not i.available]
        plan.targets.extend(_target(info, req) for info in ordered)
    if not plan.targets:
        raise InvalidRequestError("no model left to try after applying ignore", param="ignore")
    return plan


async def _auto_offline(plan: Plan, req: ChatRequest, ignore: list[str]) -> Plan:
    """``model="auto"`` with no hosted model configured: the embedded ``local`` model, when it is
    installed and the request lets it serve; else an error saying what to configure."""
    from ..errors import LocalModelUnavailable
    from ..local_model import LOCAL_MODEL_ALIAS, check_installed
    from .select import needs_of

    hint = ("model='auto' has no candidates: no configured model has its API key set, and the embedded "
            "local model {why}; set a provider's key (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...) or give models=[...]")
    try:
        check_installed()
    except LocalModelUnavailable as exc:
        raise InvalidRequestError(hint.format(why=f"is not available ({exc.message})"), param="model",
                                  code="no_eligible_model") from None
    needs = needs_of(req)
    lacks = [name for name, needed in (("vision", needs.vision), ("native search", needs.native_search),
                                      ("JSON schema output", needs.json_schema)) if needed]
    ignored = [e for e in ignore if e.strip() in ("local", f"local/{LOCAL_MODEL_ALIAS}")]
    why = f"lacks {', '.join(lacks)}" if lacks else f"is ignored ({ignored[0]})" if ignored else None
    candidate = {"model": f"local/{LOCAL_MODEL_ALIAS}", "eligible": why is None, "reason": why, "values": {}}
    if why is not None:
        raise InvalidRequestError(hint.format(why=why), param="model", code="no_eligible_model")
    target = await resolve_target(req, model="local")
    plan.targets = [target]
    plan.auto = AutoInfo(sort=list(req.sort or []), winner=target.name,
                         why=f"{target.name}, the embedded model, is the only model available: no hosted "
                             "model has its API key set", candidates=[candidate])
    return plan


def _check_known(ref: str, catalog: object) -> None:
    """A model the catalog does not list must at least name a provider litellm knows (else 404 now,
    not after a round trip)."""
    from ..llm import litellm, unknown_model

    head, _, rest = ref.partition("/")
    if rest and getattr(catalog, "is_provider")(head):
        return
    try:
        litellm().get_llm_provider(ref)
    except Exception:
        raise unknown_model(ref) from None


def _target(info: ModelInfo, req: ChatRequest) -> Target:
    name = info.litellm_model if info.litellm_model.split("/", 1)[0] == info.provider else info.id
    return Target(
        name=name,
        litellm_model=info.litellm_model,
        profile=profile_for(info.litellm_model),
        api_base=info.api_base or req.api_base,
        api_key=info.api_key or req.api_key,
        provider=info.provider,
        reasoning=info.reasoning or None,
        deployment=info.id,
        capabilities=tuple((c, info.has(c)) for c in sorted(info.known)),
        missing=() if info.available or req.api_key else tuple((info.key_env or f"the {info.provider} API key")
                                                                 .split(" + ")),
    )


def _apply_router(plan: Plan, request_id: str) -> None:
    from .routers import get_routers, parse_router_ref

    req = plan.req
    name = parse_router_ref(req.model, get_config().router_prefix)
    if name is None:
        return
    router = get_routers().get(name)
    selection = router.select(metadata=req.metadata, messages=req.messages, user=req.user, request_id=request_id)
    plan.router, plan.route_id, plan.variant_id = router.name, selection.route_id, selection.variant_id
    plan.warnings.extend(selection.warnings)
    given = req.model_dump(exclude_unset=True, exclude_none=True, mode="json")
    applied: dict[str, Any] = router.apply(selection, given)
    plan.req = parse_request(applied)
