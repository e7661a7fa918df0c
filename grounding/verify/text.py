"""Reading claims and sources for the citation judges: terms, numbers, names, negation.

Everything here is lexical and deterministic. A text becomes :class:`Terms`:

* **stems**: content words, lowercased and stemmed (Snowball English), stop
  words dropped, so "reduced" meets "reduces" and "organization" meets
  "organizing";
* **numbers**: every number written in digits or words, as a value
  (``5,000`` = ``5000`` = "five thousand"; ``3.5 million`` = ``3500000``;
  ``40%`` = ``40``), with how many significant digits it was written with,
  so a rounded claim ("about 3.5 million") can meet a precise source
  ("3,512,000") while a changed digit cannot;
* **names**: capitalized words that do not start a sentence, and acronyms;
* **seq**: the stems and the negations ("not", "never", "n't", "no",
  "without", "fails to"...) in order, so a judge can count the negations
  around the words a claim and a passage share.

Markdown (links, emphasis, headings, list bullets, tables) and citation
markers are removed from claims by :func:`clean_claim`; sources are read as
the extractor wrote them (``\\w+`` words ignore the markup).
"""
from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field

__all__ = ["Terms", "terms", "clean_claim", "sentences", "stem", "numbers_match", "STOP_WORDS"]

STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are aren as at be because been before being
    below between both but by can could did do does doing down during each either else etc even ever every few
    for from further had has have having he her here hers herself him himself his how however i if in into is it
    its itself just let like may me might more most much must my myself nor now of off on once one only onto or
    other others otherwise our ours ourselves out over own per perhaps quite rather same shall she should so
    some such than that the their theirs them themselves then there these they this those though through thus
    to too under until up upon us use used using very via was we well were what whatever when where whereas
    whether which while who whom whose why will with within would yet you your yours yourself yourselves
    s t d ll m re ve according said says say according accordingly however nevertheless nonetheless moreover
    furthermore additionally therefore hence meanwhile instead indeed also likewise still""".split()
)

_WORD_RE = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)
_NUMBER_RE = re.compile(
    r"(?<![\w.])(?P<body>\d{1,3}(?:[,\u202f\u00a0]\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?)(?![\d])"
    r"(?:(?P<glued>k|mn|m|bn|b)\b|\s*(?P<scale>thousand|million|billion|trillion)\b)?",
    re.IGNORECASE,
)
_GROUPED_RE = re.compile(r"\d{1,3}(?:[,\u202f\u00a0]\d{3})+(?:\.\d+)?")
_SEPARATOR_RE = re.compile(r"[,\u202f\u00a0]")
_SCALES = {"thousand": 1e3, "k": 1e3, "million": 1e6, "mn": 1e6, "m": 1e6, "billion": 1e9, "bn": 1e9, "b": 1e9,
           "trillion": 1e12}
_YEARS = (1000.0, 2200.0)
_NUMBER_WORDS = {
    "zero": 0, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "dozen": 12,
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "twice": 2, "half": 0.5, "double": 2, "triple": 3,
}
_MONTHS = {m[:3]: m for m in ("january february march april may june july august september october "
                                "november december").split()}
_NEGATIONS = frozenset(
    "not no never none nobody nothing neither nor without cannot cant can't won't isn't aren't wasn't weren't "
    "doesn't don't didn't hasn't haven't hadn't shouldn't wouldn't couldn't mustn't".split()
)
# Words that negate what follows and say something themselves (kept as content words too).
_NEGATING_VERBS = frozenset(
    "lack lacks lacked lacking fail fails failed failing unable refuse refused refuses deny denied denies "
    "absent".split()
)
# An approximate number: "about 20", "nearly 3 million", "more than 450,000".
_APPROX_RE = re.compile(r"(?:about|around|roughly|nearly|almost|approximately|some|over|under|more\s+than|"
                        r"less\s+than|fewer\s+than|up\s+to|at\s+least|close\s+to|~|≈)\s*[$€£]?\s*$", re.IGNORECASE)

# Citation markers and links in an answer's span (what grounding.citations reads).
_MARKER_RE = re.compile(r"\[\s*\^?(?:(?:sources?|src|ref)\s*[:#]?\s*)?\d{1,6}(?:\s*[-–—,;]\s*\d{1,6})*\s*\]"
                        r"|【[^】\n]*】", re.IGNORECASE)
_LINK_RE = re.compile(r"!?\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\([^)\n]*\)")
_AUTOLINK_RE = re.compile(r"<https?://[^>\s]+>|\(\s*https?://[^)\s]+\s*\)|https?://\S+")
_MARKUP_RE = re.compile(r"(?m)^[ \t]*(?:#{1,6}|[-*+•]|\d{1,3}[.)]|>)[ \t]+|\*\*|__|`+|~~|\|")
_SPACE_RE = re.compile(r"\s+")
# Scripts written without spaces between words: read as overlapping character pairs.
_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+|(?<=[。！？])[」』）”’]*\s*|\n+")


@functools.lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball stem of a lowercased word; abbreviated months become the month ("sept" -> "septemb")."""
    word = word.replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    month = _MONTHS.get(word[:3])
    if month is not None and (len(word) == 3 or word == "sept"):
        word = month
    return _stemmer().stemWord(word)


def clean_claim(span: str) -> str:
    """A cited span as plain text: citation markers dropped, a link's text kept
    (unless it is only a number), URLs and markdown markup removed."""
    text = _LINK_RE.sub(lambda m: "" if re.fullmatch(r"\s*\^?\d+\s*", m.group(1)) else m.group(1), span)
    text = _MARKER_RE.sub(" ", text)
    text = _AUTOLINK_RE.sub(" ", text)
    text = _MARKUP_RE.sub(" ", text)
    return _SPACE_RE.sub(" ", text).strip(" \t\n,;:")


@dataclass(frozen=True)
class Number:
    """A number as written: its value, how many significant digits it was given with, and
    whether it was given as approximate ("about 20", "3.5 million")."""

    value: float
    digits: int
    approx: bool = False


def _significant(body: str) -> int:
    """Significant digits of a number as written: ``3.5`` 2, ``3,512,000`` 4, ``5000`` 1, ``2019`` 4."""
    digits = re.sub(r"\D", "", body).lstrip("0")
    if "." not in body:
        digits = digits.rstrip("0") or digits[:1]
    return max(1, len(digits))


def _numbers(text: str) -> list[Number]:
    out: list[Number] = []
    for m in _NUMBER_RE.finditer(text):
        body = m.group("body")
        if _GROUPED_RE.fullmatch(body):
            body = _SEPARATOR_RE.sub("", body)  # thousands separators
        else:
            body = body.replace(",", ".")  # a decimal comma ("3,5")
        try:
            value = float(body)
        except ValueError:  # pragma: no cover (the pattern admits only numbers)
            continue
        scale_word = (m.group("glued") or m.group("scale") or "").lower()
        scale = _SCALES.get(scale_word, 1.0)
        approx = bool(m.group("scale")) or _APPROX_RE.search(text, max(0, m.start() - 16), m.start()) is not None
        out.append(Number(value * scale, _significant(body), approx))
    return out


def numbers_match(claim: Number, source: Number) -> bool:
    """Whether a claimed number is the source's, allowing an approximate claim written
    with fewer significant digits to round the source's value ("3.5 million" for
    3,512,000; "about 5,000" for 4,987), but never a year for another year, and
    never a plain "20" for 24."""
    if math.isclose(claim.value, source.value, rel_tol=1e-9, abs_tol=1e-9):
        return True
    if not claim.approx or claim.value <= 0 or source.value <= 0 or claim.digits >= source.digits \
            or claim.digits > 3:
        return False
    if _YEARS[0] <= claim.value <= _YEARS[1] and _YEARS[0] <= source.value <= _YEARS[1]:
        return False
    magnitude = math.floor(math.log10(source.value))
    rounded = round(source.value, -(magnitude - claim.digits + 1))
    return math.isclose(rounded, claim.value, rel_tol=1e-9)


@dataclass
class Terms:
    """What a text says, lexically."""

    stems: list[str] = field(default_factory=list)  # content stems in order (repeats kept)
    numbers: list[Number] = field(default_factory=list)
    names: set[str] = field(default_factory=set)  # stems of capitalized words and acronyms
    #: The stems and the negations, in order (a negation is ``None``; a negating verb,
    #: "failed", is both): where negations stand relative to the words they negate.
    seq: list[str | None] = field(default_factory=list)

    @property
    def distinct(self) -> set[str]:
        return set(self.stems)

    @property
    def negations(self) -> int:
        return sum(1 for t in self.seq if t is None)


@functools.lru_cache(maxsize=131072)
def _word(low: str) -> tuple[str, object]:
    """How one lowercased word reads: ``("neg", None)``, ``("negverb", stem)``, ``("number", value)``,
    ``("skip", None)``, ``("cjk", pairs)`` or ``("word", stem)``."""
    low = low.replace("’", "'")
    if low in _NEGATIONS or low.endswith("n't"):
        return "neg", None
    if low in _NEGATING_VERBS:
        return "negverb", stem(low)
    if low in _NUMBER_WORDS:
        return "number", float(_NUMBER_WORDS[low])
    if low.isdigit() or low in STOP_WORDS or low in _SCALES or low[:1].isdigit():
        return "skip", None  # digits, "million", "3bn": read as numbers
    if _CJK_RE.search(low):
        return "cjk", tuple(_cjk_pairs(low))
    if len(low) < 2 and not low.isalpha():
        return "skip", None
    return "word", stem(low)


_DIGIT_RE = re.compile(r"\d")


def _may_have_numbers(text: str) -> bool:
    """Whether :func:`_numbers` can find anything (it reads digits; number words are read word by word)."""
    return _DIGIT_RE.search(text) is not None


def stems_and_numbers(text: str) -> tuple[list[str], list[Number]]:
    """``terms(text).stems`` and ``.numbers``, read faster (no names, no negations): how a
    source's every sentence is indexed; the full :func:`terms` is read for the few
    sentences a claim is compared with."""
    stems: list[str] = []
    numbers = _numbers(text) if _may_have_numbers(text) else []
    for raw in _WORD_RE.findall(text):
        kind, value = _word(raw.lower())
        if kind == "word" or kind == "negverb":
            stems.append(value)  # type: ignore[arg-type]
        elif kind == "cjk":
            stems.extend(value)  # type: ignore[arg-type]
        elif kind == "number":
            numbers.append(Number(value, 1))  # type: ignore[arg-type]
    return stems, numbers


def terms(text: str) -> Terms:
    """The :class:`Terms` of ``text`` (a claim, or a sentence of a source)."""
    out = Terms()
    if _may_have_numbers(text):
        out.numbers = _numbers(text)
    for m in _WORD_RE.finditer(text):
        raw = m.group(0)
        kind, value = _word(raw.lower())
        if kind == "word":
            out.stems.append(value)  # type: ignore[arg-type]
            out.seq.append(value)  # type: ignore[arg-type]
            if raw[0].isupper() and (len(raw) >= 2 and raw.isupper() and raw.isalpha() or _mid_sentence(text, m.start())):
                out.names.add(value)  # type: ignore[arg-type]
        elif kind == "neg":
            # "not only X but also Y" negates nothing
            if not (raw.lower() == "not" and re.match(r"\s+only\b.*\bbut\b", text[m.end():], re.S | re.I)):
                out.seq.append(None)
        elif kind == "negverb":
            out.seq.append(None)
            out.stems.append(value)  # type: ignore[arg-type]
            out.seq.append(value)  # type: ignore[arg-type]
        elif kind == "number":
            out.numbers.append(Number(value, 1))  # type: ignore[arg-type]
        elif kind == "cjk":
            out.stems.extend(value)  # type: ignore[arg-type]
            out.seq.extend(value)  # type: ignore[arg-type]
    return out


def _mid_sentence(text: str, pos: int) -> bool:
    """Whether the word at ``pos`` does not open a sentence (a capital there marks a name)."""
    i = pos - 1
    while i >= 0 and text[i] in " \t\"'“‘(":
        i -= 1
    return i >= 0 and text[i] not in ".!?\n:;"


def _cjk_pairs(word: str) -> list[str]:
    """Overlapping pairs of characters of a CJK run (a single character alone)."""
    chars = [c for c in word if not c.isdigit()]
    if len(chars) < 2:
        return chars
    return [chars[i] + chars[i + 1] for i in range(len(chars) - 1)]


def sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence of a source text (lines and ``.!?`` ends), blanks skipped."""
    spans: list[tuple[int, int]] = []
    pos = 0
    for m in _SENTENCE_END_RE.finditer(text):
        _add_span(text, pos, m.start(), spans)
        pos = m.end()
    _add_span(text, pos, len(text), spans)
    return spans


def _add_span(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start and _WORD_RE.search(text, start, end):
        spans.append((start, end))
