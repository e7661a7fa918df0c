"""The shapes the citation checker and its judges share."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from .lexical import Corpus

__all__ = ["Verdict", "VERDICTS", "SourceText", "Evidence", "Judgement", "Judge"]

Verdict = Literal["supported", "partial", "unsupported"]
VERDICTS: tuple[Verdict, ...] = ("supported", "partial", "unsupported")


@dataclass(frozen=True)
class SourceText:
    """A source as the checker reads it: the page's whole extracted text (or the
    passage a provider quoted), under the id the answer cites it by."""

    id: int
    url: str
    title: str
    text: str


@dataclass(frozen=True)
class Evidence:
    """The shortest passage of a source that supports a claim: its text, verbatim,
    and its character offsets into the source's text."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Judgement:
    """Whether a source supports a claim, how strongly (0..1), the passage that does,
    and why, in a few words."""

    verdict: Verdict
    score: float
    evidence: Evidence | None
    reason: str = ""
    #: The source contradicts the claim outright (another number, a name it never
    #: mentions, the opposite): no other judge overturns this.
    contradicted: bool = False


@runtime_checkable
class Judge(Protocol):
    """Decides, for each ``(claim, source id)`` pair, whether the source supports the claim.

    ``claims`` are plain text (markers and markup removed); ``corpus`` holds every
    source of the request. One call per answer: a model judge batches all pairs.
    """

    name: str

    async def judge(self, corpus: "Corpus", pairs: Sequence[tuple[str, int]]) -> list[Judgement]: ...
