"""Choosing deployments: ``model="auto"``, ``ignore`` and provider order.

* :func:`needs_of`: the capabilities a request needs (tools for ``web_search``
  or caller tools, vision for image input, audio input, image output, JSON schema for
  ``response_format: json_schema``, native search for ``web_search_options``);
* :func:`apply_ignore`: drop ignored providers (``groq``), deployments
  (``groq/llama-3.3-70b-versatile``) or models (``gpt-4o``, every provider);
* :func:`order_providers`: the providers serving one model id, in the order
  to try them (``provider.order`` first, then observed latency);
* :func:`choose_auto`: rank a pool by ``sort`` criteria, skipping what cannot
  serve the request, with a one-sentence reason.

``sort`` criteria and their direction: ``price`` (blended USD per million
tokens, 3 input : 1 output) and ``latency`` (observed time to first token)
ascending; ``throughput`` (observed tokens per second), ``intelligence``,
``math`` and ``coding`` (the scores file) descending. The first criterion
decides, the next ones break ties; an unknown value sorts after every known
one; the last tie-break is the deployment id, so the order is deterministic.
Without ``sort``, :data:`DEFAULT_SORT` applies: the most capable model by the
scores, the cheaper of equals, then the faster (equal intelligence is common
when one model is served by several providers, so this picks the cheapest
provider of the best model).

Deployments cooling down after repeated failures (:meth:`.stats.Stats.cooling_down`)
stay eligible but go last. ``stats`` may be None: nothing observed.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import InvalidRequestError
from .catalog import canonical_provider, plain_id
from .types import SORT_KEYS, ModelInfo, Needs

__all__ = ["AutoDecision", "DEFAULT_SORT", "needs_of", "apply_ignore", "order_providers", "choose_auto",
           "check_sort"]

#: ``sort`` when a request gives none.
DEFAULT_SORT: tuple[str, ...] = ("intelligence", "price", "latency")

#: Criteria where higher is better.
_DESCENDING = frozenset({"throughput", "intelligence", "math", "coding"})
_SCORES = ("intelligence", "math", "coding")
_PHRASE = {"price": "cheapest", "latency": "fastest to first token", "throughput": "highest throughput",
           "intelligence": "most intelligent", "math": "best at math", "coding": "best at coding"}


class StatsLike(Protocol):
    def latency_ms(self, deployment_id: str) -> float | None: ...
    def throughput(self, deployment_id: str) -> float | None: ...
    def cooling_down(self, deployment_id: str) -> bool: ...


@dataclass
class AutoDecision:
    """What ``model="auto"`` chose and why."""

    #: Eligible deployments, best first (the fallback order).
    ranked: list[ModelInfo]
    #: Every pool entry: ``{"model": "provider/model", "eligible", "reason", "values": {criterion: value}}``
    #: (plus ``"cooling_down": True`` for deployments tried last after failures).
    considered: list[dict[str, Any]]
    #: One sentence: why the first of ``ranked`` won.
    why: str
    #: The criteria applied (the request's, or :data:`DEFAULT_SORT`).
    sort: list[str] = field(default_factory=list)

    @property
    def winner(self) -> ModelInfo:
        return self.ranked[0]


def needs_of(req: Any) -> Needs:
    """The capabilities a :class:`~grounding.request.ChatRequest` needs from its model."""
    tools = bool(getattr(req, "tools", None)) or getattr(req, "web_search", None) is not None
    parts = {p.get("type") for msg in getattr(req, "messages", None) or [] if isinstance(msg, dict)
             and isinstance(msg.get("content"), list) for p in msg["content"] if isinstance(p, dict)}
    fmt = getattr(req, "response_format", None)
    fmt_type = fmt.get("type") if isinstance(fmt, dict) else getattr(fmt, "type", None)
    return Needs(tools=tools, vision="image_url" in parts, json_schema=fmt_type == "json_schema",
                 native_search=getattr(req, "web_search_options", None) is not None,
                 image_output="image" in (getattr(req, "modalities", None) or []),
                 audio_input="input_audio" in parts)


def check_sort(sort: str | Iterable[str] | None) -> list[str]:
    """``sort`` validated (a name or a list), duplicates dropped; :data:`DEFAULT_SORT` when empty."""
    keys = [sort] if isinstance(sort, str) else list(sort or [])
    for key in keys:
        if key not in SORT_KEYS:
            raise InvalidRequestError(f"unknown sort criterion {key!r}; use {', '.join(SORT_KEYS)}", param="sort")
    return list(dict.fromkeys(keys)) or list(DEFAULT_SORT)


def _ignored_by(info: ModelInfo, ignore: Iterable[str]) -> str | None:
    """The ``ignore`` entry that matches ``info``, if any."""
    for raw in ignore:
        entry = raw.strip()
        if not entry:
            continue
        if entry in (info.provider, info.id, info.litellm_model, info.model) \
                or canonical_provider(entry) == info.provider:
            return entry
        head, _, rest = entry.partition("/")
        if rest and canonical_provider(head) == info.provider and plain_id(rest) == info.model:
            return entry
    return None


def apply_ignore(infos: list[ModelInfo], ignore: Iterable[str] | None) -> tuple[list[ModelInfo], list[ModelInfo]]:
    """Split ``infos`` into (kept, dropped) by ``ignore``.

    An entry matches a provider (``groq``, aliases accepted), a deployment
    (``groq/llama-3.3-70b-versatile``, or what litellm is given:
    ``groq/openai/gpt-oss-120b``) or a plain model id on every provider
    (``gpt-oss-120b``).
    """
    entries = [e for e in (ignore or []) if isinstance(e, str) and e.strip()]
    if not entries:
        return list(infos), []
    kept: list[ModelInfo] = []
    dropped: list[ModelInfo] = []
    for info in infos:
        (dropped if _ignored_by(info, entries) else kept).append(info)
    return kept, dropped


def _prefetch(stats: Any, infos: Iterable[ModelInfo]) -> None:
    prefetch = getattr(stats, "prefetch", None)
    if prefetch is not None:
        prefetch([i.id for i in infos])


def order_providers(deployments: list[ModelInfo], *, order: list[str] | None,
                    stats: StatsLike | None) -> list[ModelInfo]:
    """The deployments of one model in the order to try them.

    Providers (or deployment ids) named in ``order`` first, in that order;
    then the others by observed latency, fastest first (never observed: last,
    in their given order); deployments cooling down after failures at the end.
    """
    wanted = [canonical_provider(o.strip()) for o in order or [] if isinstance(o, str) and o.strip()]
    if stats is not None:
        _prefetch(stats, deployments)

    def rank(item: tuple[int, ModelInfo]) -> tuple[Any, ...]:
        i, info = item
        cooling = bool(stats is not None and stats.cooling_down(info.id))
        for pos, name in enumerate(wanted):
            if name in (info.provider, info.id):
                return (cooling, 0, pos, 0.0, i)
        latency = stats.latency_ms(info.id) if stats is not None else None
        return (cooling, 1, 1 if latency is None else 0, latency or 0.0, i)

    return [info for _, info in sorted(enumerate(deployments), key=rank)]


def _value(info: ModelInfo, dep: str, key: str, stats: StatsLike | None) -> float | None:
    """A deployment's value for a criterion (rounded: it is reported in metadata)."""
    if key == "price":
        price = info.price
        return None if price is None else round(price, 6)
    if key == "latency" or key == "throughput":
        if stats is None:
            return None
        value = stats.latency_ms(dep) if key == "latency" else stats.throughput(dep)
        return None if value is None else round(value, 1)
    return getattr(info, key)


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "unknown"
    if key == "price":
        return f"${value:.2f}/M" if value >= 0.01 or value == 0 else f"${value:.4f}/M"
    if key == "latency":
        return f"{value:.0f} ms"
    if key == "throughput":
        return f"{value:.0f} tok/s"
    return f"{value:g}"


def _sort_key(values: dict[str, float | None], keys: list[str]) -> tuple[Any, ...]:
    out: list[Any] = []
    for key in keys:
        v = values[key]
        out.append((1, 0.0) if v is None else (0, -v if key in _DESCENDING else v))
    return tuple(out)


def choose_auto(pool: list[ModelInfo], *, sort: str | list[str] | None, ignore: list[str] | None,
                needs: Needs | None, stats: StatsLike | None) -> AutoDecision:
    """Rank ``pool`` for ``model="auto"``.

    Excluded, with the reason recorded in ``considered``: ignored entries
    (:func:`apply_ignore`), deployments whose key is missing, and those lacking
    a capability in ``needs``. The rest are ranked by ``sort`` (see the module
    docs; :data:`DEFAULT_SORT` when empty). Raises
    :class:`~grounding.errors.InvalidRequestError` for an unknown criterion or
    when nothing is eligible (the message lists what was excluded and why).
    """
    keys = check_sort(sort)
    ignore_entries = [e for e in (ignore or []) if isinstance(e, str) and e.strip()]
    needs = needs or Needs()
    by_id: dict[str, ModelInfo] = {}
    for info in pool or []:
        by_id.setdefault(info.id, info)
    unique = list(by_id.items())
    if not unique:
        raise InvalidRequestError("model='auto' has no candidates: give models=[...] or configure models "
                                  "(and their keys)", param="models", code="no_eligible_model")
    if stats is not None and hasattr(stats, "prefetch"):
        stats.prefetch(list(by_id))
    any_need = bool(needs)

    considered: list[dict[str, Any]] = []
    rows: list[tuple[tuple[Any, ...], ModelInfo, dict[str, float | None], bool]] = []
    excluded: list[tuple[str, str]] = []
    for dep, info in unique:
        values = {key: _value(info, dep, key, stats) for key in keys}
        reason = None
        hit = _ignored_by(info, ignore_entries) if ignore_entries else None
        if hit is not None:
            reason = "ignored" if hit == dep else f"ignored ({hit})"
        elif not info.available:
            reason = f"key missing ({info.key_env})" if info.key_env else "key missing"
        elif any_need:
            missing = needs.missing(info)
            if missing:
                reason = "lacks " + ", ".join(missing)
        row: dict[str, Any] = {"model": dep, "eligible": reason is None, "reason": reason, "values": values}
        if reason is None:
            cooling = bool(stats is not None and stats.cooling_down(dep))
            if cooling:
                row["cooling_down"] = True
            rows.append(((cooling,) + _sort_key(values, keys) + (dep,), info, values, cooling))
        else:
            excluded.append((dep, reason))
        considered.append(row)

    if not rows:
        shown = "; ".join(f"{mid} {why}" for mid, why in excluded[:8])
        more = f"; and {len(excluded) - 8} more" if len(excluded) > 8 else ""
        only_ignored = all(why.startswith("ignored") for _, why in excluded)
        raise InvalidRequestError(f"no model in the pool can serve this request: {shown}{more}",
                                  param="ignore" if only_ignored else "model", code="no_eligible_model")

    rows.sort(key=lambda r: r[0])
    ranked = [r[1] for r in rows]
    return AutoDecision(ranked=ranked, considered=considered, why=_why(rows, keys, len(excluded)), sort=keys)


def _why(rows: list[tuple[tuple[Any, ...], ModelInfo, dict[str, float | None], bool]], keys: list[str],
         n_excluded: int) -> str:
    first_key, winner, values, cooling = rows[0]
    ready = [r for r in rows if not r[3]]
    n_cooling = len(rows) - len(ready)
    lead = keys[0]
    if len(rows) == 1:
        text = f"{winner.id} is the only eligible model"
    elif values[lead] is None:
        text = f"{winner.id}: no eligible model has a known {lead}"
    else:
        pool = len(ready) if not cooling else len(rows)
        how = f"with {lead} {_fmt(lead, values[lead])}" if lead in _SCORES else f"at {_fmt(lead, values[lead])}"
        text = f"{winner.id} is the {_PHRASE[lead]} of {pool} eligible models {how}"
    if len(rows) > 1:
        runner = rows[1]
        if runner[3] == cooling:  # same cooling state: find the criterion that separated them
            for j, key in enumerate(keys):
                if first_key[1 + j] != runner[0][1 + j]:
                    if j > 0:
                        text += f"; tie broken by {key} ({_fmt(key, values[key])})"
                    break
            else:
                text += f"; tied on {', '.join(keys)}, first by id"
    if n_cooling:
        text += "; every eligible model is cooling down" if cooling else f"; {n_cooling} cooling down after failures"
    if n_excluded:
        text += f"; {n_excluded} excluded"
    return text
