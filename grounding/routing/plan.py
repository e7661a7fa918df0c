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
from ..errors import InvalidRequestError
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
    """Route ``req``: apply a router, pick ``auto``'s candidates, order providers."""
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
                raise InvalidRequestError(f"models: unknown model {ref!r} in the pool for model='auto'",
                                          param="models", code="model_not_found")
            pool.extend(found)
        if not req.models:
            pool = catalog.pool()
            if not pool:
                raise InvalidRequestError(
                    "model='auto' has no candidates: no configured model has its API key set; "
                    "give models=[...] or set a provider's key", param="model")
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
            plan.targets.append(await resolve_target(req, progress, model=ref))
            continue
        from .select import apply_ignore, order_providers

        found = catalog.resolve(ref)
        if not found:  # not in the catalog: hand it to litellm as given
            plan.targets.append(await resolve_target(req, progress, model=ref))
            continue
        kept, dropped = apply_ignore(found, ignore)
        if not kept:
            if ref == req.model and len(chain) == 1:
                raise InvalidRequestError(f"every provider of {ref!r} is ignored ({', '.join(i.id for i in dropped)})",
                                          param="ignore")
            continue
        ordered = order_providers(kept, order=order, stats=stats)
        usable = [i for i in ordered if i.available] or ordered  # no key anywhere: let the error say so
        if not allow_fallbacks:
            usable = [i for i in usable if order and i.provider in order][:1] or usable[:1]
        plan.targets.extend(_target(info, req) for info in usable)
    if not plan.targets:
        raise InvalidRequestError("no model left to try after applying ignore", param="ignore")
    return plan


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
