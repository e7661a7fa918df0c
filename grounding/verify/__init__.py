"""Citation truth: is each cited span supported by the page it cites?

The tool loop and native search hand every annotation to
:func:`~grounding.verify.check.check_citations`, which asks a judge and then
keeps, flags, moves or removes the citation (``citations={"verify": ...}``).

Judges share one small interface (:class:`~grounding.verify.types.Judge`):

* :class:`~grounding.verify.lexical.LexicalJudge`: built in, no model, no
  network, a few milliseconds per answer;
* :class:`~grounding.verify.model_judge.ModelJudge`: any chat model through
  litellm, one batched call per answer (``citations={"verifier": "<model>"}``).
"""
from __future__ import annotations

from .check import MODES, CheckResult, Checked, Citation, Mode, check_citations, claim_text, makes_claim
from .lexical import Corpus, LexicalJudge
from .model_judge import JudgeFailed, ModelJudge
from .types import VERDICTS, Evidence, Judge, Judgement, SourceText, Verdict

__all__ = ["check_citations", "Citation", "Checked", "CheckResult", "Mode", "MODES", "claim_text", "makes_claim",
           "Corpus", "LexicalJudge", "ModelJudge", "JudgeFailed", "Judge", "Judgement", "Evidence", "SourceText",
           "Verdict", "VERDICTS", "judge_for", "resolve_settings"]


def judge_for(verifier: str | None) -> Judge:
    """The judge a request asks for: the lexical one, or a model judge for ``verifier``."""
    if not verifier or verifier == "lexical":
        return LexicalJudge()
    return ModelJudge(verifier)


def resolve_settings(options: object | None) -> tuple[str, str | None, bool]:
    """``(verify mode, verifier model or None, fetch native pages)`` for a request's
    ``citations`` options: the request's, else the config file's, else
    ``$GROUNDING_CITATIONS_VERIFY`` / ``$GROUNDING_CITATIONS_VERIFIER``, else repair,
    the built-in judge, and fetching."""
    import os

    from ..config import get_config
    from ..errors import InvalidRequestError

    cfg = get_config().citations
    mode = getattr(options, "verify", None) or cfg.verify or os.environ.get("GROUNDING_CITATIONS_VERIFY") or "repair"
    mode = mode.strip().lower()
    if mode not in MODES:
        raise InvalidRequestError(f"GROUNDING_CITATIONS_VERIFY must be one of {', '.join(MODES)}, not {mode!r}",
                                  param="citations.verify")
    verifier = (getattr(options, "verifier", None) or cfg.verifier
                or os.environ.get("GROUNDING_CITATIONS_VERIFIER") or None)
    fetch = getattr(options, "fetch", None)
    if fetch is None:
        fetch = cfg.fetch if cfg.fetch is not None else True
    return mode, verifier, bool(fetch)
