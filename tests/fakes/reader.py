"""An extractive "reader" for the fake chat model: answers with the sentence of
its sources that best matches the question.

``fake-searcher`` answers with the *first* sentence of each source, which says
little about whether the answer was in what the model was given. The reader
policy (model name ``fake-reader[:<max_rounds>]`` once :func:`register` has
run) is a crude but honest stand-in for a model that reads: it

1. searches the question (``web_search``), like ``searcher``;
2. picks, over every source it was given, the sentence with the highest
   IDF-weighted overlap with the question's content words;
3. if that sentence covers less than half of the question's weight and it may
   still search (``max_rounds`` allows and the tool is offered), searches again
   with a refined query (the question's names, numbers and rarest words);
4. answers ``"<sentence> [n]"``, ``n`` being the source's id.

Its accuracy thus measures retrieval, extraction, the library's source
trimming and this sentence picker, not a language model. :func:`best_sentence`
is also used to script the fake native-search provider's answers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

from tests.fakes import policies
from tests.fakes.policies import SEARCH_TOOL, Action, Conversation, Source, ToolCall

__all__ = ["best_sentence", "content_words", "refine_query", "register", "sentences"]

_WORD = re.compile(r"\w+")
_STOP = frozenset(
    """a an and are as at be but by can could did do does for from had has have how i if in into is it its
    me my no not of on or our so such than that the their them then there these they this to was we were
    what when where which who whom why will with would you your according many much long large one ones
    per say said says take takes""".split()
)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'”’)]*\s+(?=[A-Z0-9\"“'‘(])")
# A period after these does not end a sentence ("Rep. Ilhan Omar", "on Nov. 5", "U.S. officials").
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sr jr st mt rep sen gov gen col lt sgt rev hon pres inc corp co ltd no vs etc approx
    jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k e.g i.e fig""".split()
)
_MAX_CHARS = 400


def content_words(text: str) -> list[str]:
    """Lowercased words of ``text`` that carry meaning: not stop words, 3+ letters or any number."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP and (len(w) >= 3 or w.isdigit())]


def sentences(text: str) -> list[str]:
    """``text`` cut into sentences (lines first, then sentence ends, not after abbreviations or
    initials), each stripped and non-empty."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line == "[…]":
            continue
        start = 0
        for m in _SENTENCE_END.finditer(line):
            before = line[start : m.start()].rstrip("\"'”’)")
            last = before.rsplit(None, 1)[-1].rstrip(".").lower() if before.split() else ""
            if before.endswith(".") and (last in _ABBREVIATIONS or len(last) == 1):
                continue
            out.append(line[start : m.start()].strip())
            start = m.end()
        out.append(line[start:].strip())
    return [s for s in out if s]


def _clip(sentence: str) -> str:
    if len(sentence) <= _MAX_CHARS:
        return sentence
    return sentence[:_MAX_CHARS].rsplit(" ", 1)[0] + "…"


def best_sentence(question: str, sources: Sequence[Source]) -> tuple[str, int, float] | None:
    """The best sentence for ``question`` among ``sources``: ``(sentence, index into sources, coverage)``.

    Coverage is the share of the question's IDF weight (over all candidate
    sentences) that the sentence contains, in [0, 1]. ``None`` when there is
    no sentence at all. Ties go to the earlier source and sentence.
    """
    candidates = [(i, s) for i, src in enumerate(sources) for s in sentences(src.text)]
    if not candidates:
        return None
    words = [set(content_words(s)) for _, s in candidates]
    wanted = set(content_words(question))
    if not wanted:
        i, s = candidates[0]
        return _clip(s), i, 0.0
    n = len(candidates)
    idf = {w: math.log(1 + n / (1 + sum(w in ws for ws in words))) for w in wanted}
    total = sum(idf.values())
    best = max(range(n), key=lambda k: (sum(idf[w] for w in wanted & words[k]), -k))
    i, s = candidates[best]
    return _clip(s), i, sum(idf[w] for w in wanted & words[best]) / total


def refine_query(question: str) -> str:
    """A second query: the question's names (capitalized words), numbers and longest content words."""
    tokens = _WORD.findall(question)
    names = [t for k, t in enumerate(tokens) if (k > 0 and t[:1].isupper()) or any(ch.isdigit() for ch in t)]
    longest = sorted(dict.fromkeys(content_words(question)), key=len, reverse=True)[:3]
    terms = list(dict.fromkeys([*names, *longest]))
    return " ".join(terms) or question


def _reader(c: Conversation) -> Action:
    question = c.question()
    if c.search_rounds() == 0:
        if c.wants_search():
            return Action(tool_calls=(ToolCall(SEARCH_TOOL, json.dumps({"query": question})),))
        return Action(text="I could not find any sources about that.")
    sources = c.sources()
    found = best_sentence(question, sources)
    if (found is None or found[2] < 0.5) and c.wants_search():
        return Action(tool_calls=(ToolCall(SEARCH_TOOL, json.dumps({"query": refine_query(question)})),))
    if found is None:
        return Action(text="I could not find any sources about that.")
    sentence, i, _ = found
    return Action(text=f"{sentence} [{sources[i].id}]")


def register() -> None:
    """Make ``fake-reader`` a policy of the fake chat model (in this process)."""
    policies.POLICIES.setdefault("reader", _reader)
