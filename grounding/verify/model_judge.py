"""A model as the judge: one batched call per answer, JSON verdicts back.

``citations={"verifier": "<model id>"}`` (any model the request could use:
a provider-prefixed id, a model of the config file, or ``local`` for the
embedded offline model). The built-in lexical judge first finds, in each
cited source, the passage that best matches the claim; the model then reads
every (claim, passage) pair of the answer in one request and answers
``{"verdicts": [{"id": 1, "verdict": "supported" | "partial" | "unsupported"}]}``.

The model decides what words alone cannot (a paraphrase); where the lexical
judge found the page contradicting the claim (another number, a name the page
never mentions, the opposite), that verdict stands whatever the model says. A
pair the model leaves out or answers with something else keeps the lexical
verdict; a failed call (timeout, error, no JSON) falls back to the lexical
verdicts for the whole answer, and the checker says so in the warnings.
"""
from __future__ import annotations

import json
import re
from typing import Any, Sequence

from .lexical import Corpus, LexicalJudge
from .types import VERDICTS, Evidence, Judgement

__all__ = ["ModelJudge", "JudgeFailed"]

#: Characters of source text shown for each pair: the evidence and some context around it.
_CONTEXT_CHARS = 400
#: Seconds the judge's call may take: hosted models, and the embedded one (slow on a small CPU).
TIMEOUT_S, LOCAL_TIMEOUT_S = 60.0, 300.0

_INSTRUCTIONS = (
    "You check citations. For each numbered item, decide whether the PASSAGE supports the CLAIM.\n"
    "- supported: the passage states everything the claim states (different wording is fine).\n"
    "- partial: the passage states part of the claim, and the rest is not contradicted.\n"
    "- unsupported: the passage does not say it, or says something different (another number, "
    "date, name or quantity, or the opposite).\n"
    "Judge only from the passage, not from what you know. Answer with JSON only, in this form: "
    '{"verdicts": [{"id": 1, "verdict": "supported"}, {"id": 2, "verdict": "unsupported"}]}'
)


class JudgeFailed(Exception):
    """The verifier model could not give verdicts (the message says why)."""


class ModelJudge:
    """Judges with a chat model through litellm (and this library's routing)."""

    def __init__(self, model: str, *, timeout: float | None = None, retriever: LexicalJudge | None = None) -> None:
        from providers.models import is_local_model

        self.model = model
        self.timeout = timeout if timeout is not None else LOCAL_TIMEOUT_S if is_local_model(model) else TIMEOUT_S
        self.retriever = retriever or LexicalJudge()
        self.name = f"model:{model}"

    async def judge(self, corpus: Corpus, pairs: Sequence[tuple[str, int]]) -> list[Judgement]:
        lexical = self.retriever.judge_now(corpus, pairs)
        if not pairs:
            return lexical
        items = [(claim, _passage(corpus, sid, lex)) for (claim, sid), lex in zip(pairs, lexical)]
        text = await self._ask(items)
        verdicts = _parse(text, len(items))
        out = []
        for i, lex in enumerate(lexical):
            verdict = verdicts.get(i + 1)
            if verdict is None or lex.contradicted:  # a number, name or negation the page contradicts
                out.append(lex)
                continue
            score = {"supported": 1.0, "partial": 0.6, "unsupported": 0.0}[verdict]
            out.append(Judgement(verdict, score, lex.evidence, f"the verifier model judged it {verdict}"))
        return out

    async def _ask(self, items: list[tuple[str, tuple[str, int]]]) -> str:
        import asyncio

        from ..errors import GroundingError
        from ..request import parse_request
        from ..routing.attempts import Attempts
        from ..routing.plan import plan_request
        from ..response import new_id
        from ..target import start_local

        body = "\n\n".join(f"{i}. CLAIM: {claim}\nPASSAGE: {passage}" for i, (claim, (passage, _)) in
                           enumerate(items, 1))
        messages = [{"role": "system", "content": _INSTRUCTIONS}, {"role": "user", "content": body}]
        try:
            req = parse_request({"model": self.model, "messages": messages, "temperature": 0})
            plan = await plan_request(req, request_id=new_id())
            attempts = Attempts(await start_local(plan.targets))  # the embedded model starts when first used
            params: dict[str, Any] = {"messages": messages, "temperature": 0, "timeout": self.timeout,
                                      "response_format": {"type": "json_object"}, "drop_params": True}
            async with asyncio.timeout(self.timeout):
                response = await attempts.complete(params)
        except GroundingError as exc:
            raise JudgeFailed(exc.message) from exc
        except TimeoutError as exc:
            raise JudgeFailed(f"no answer within {self.timeout:g} s") from exc
        choices = getattr(response, "choices", None) or []
        content = getattr(getattr(choices[0], "message", None), "content", None) if choices else None
        if not content:
            raise JudgeFailed("it answered with no text")
        return content


def _passage(corpus: Corpus, source_id: int, lexical: Judgement) -> tuple[str, int]:
    """The passage shown for a pair: the lexical evidence with some context, or the source's start."""
    source = corpus.sources.get(source_id)
    if source is None:
        return "(the source's text is not known)", 0
    text = source.text
    ev: Evidence | None = lexical.evidence
    if ev is None:
        return " ".join(text[:_CONTEXT_CHARS].split()), 0
    pad = max(0, (_CONTEXT_CHARS - (ev.end - ev.start)) // 2)
    a, b = max(0, ev.start - pad), min(len(text), ev.end + pad)
    return " ".join(text[a:b].split()), a


_OBJECT_RE = re.compile(r"\{.*\}", re.S)


def _parse(text: str, count: int) -> dict[int, str]:
    """``{item id: verdict}`` from the model's JSON (tolerating fences and prose around it)."""
    m = _OBJECT_RE.search(text)
    if not m:
        raise JudgeFailed("its answer holds no JSON object")
    try:
        data = json.loads(m.group(0))
    except ValueError as exc:
        raise JudgeFailed(f"its answer is not valid JSON ({exc.msg})") from None
    rows = data.get("verdicts") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise JudgeFailed('its JSON has no "verdicts" list')
    out: dict[int, str] = {}
    for row in rows:
        if not isinstance(row, dict):
            continue
        verdict = str(row.get("verdict", "")).strip().lower()
        try:
            item = int(row.get("id"))
        except (TypeError, ValueError):
            continue
        if 1 <= item <= count and verdict in VERDICTS:
            out[item] = verdict
    return out
