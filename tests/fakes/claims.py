"""Labelled claims about real pages: what a misbehaving model writes, and the truth about it.

From the texts of the sources a model was shown, :func:`script` writes an
answer that mixes citations a careful reader would accept with the usual
failures, and records for every claim which sources really support it:

========== ========================================================= ============
kind       what the model writes                                     supported by
========== ========================================================= ============
correct    a sentence of source k, cited [k]                          k
paraphrase a sentence of source k in other words, cited [k]           k
link       a sentence of source k, then a markdown link to k          k
leading    "According to [title of k](url of k), <sentence of k>."   k
misattrib  a sentence of source j, cited [k] (k != j)                 j
number     a sentence of source k with one digit changed, cited [k]  none
negated    a sentence of source k negated, cited [k]                  none
swapped    a sentence of source k naming someone else, cited [k]      none
fabricated a made-up sentence, cited [k]                              none
unfetched  a sentence of source j, linked as [k](a URL never fetched) j (no annotation is right)
echo       "claim [k]." (the instructions' example, echoed)           none (no annotation is right)
========== ========================================================= ============

"supported by" also holds any other source that contains the very sentence.
Everything is deterministic for a given seed (the fake model seeds it with
the question), so a benchmark can replay and score what the library emitted.
"""
from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import dataclass, field

__all__ = ["Claim", "Scripted", "script", "render", "candidate_sentences", "paraphrase", "change_number", "negate",
           "swap_name", "FABRICATED", "KINDS", "UNFETCHED_BASE"]

UNFETCHED_BASE = "https://not-fetched.example/page-"

KINDS = ("correct", "paraphrase", "link", "leading", "misattrib", "number", "negated", "swapped", "fabricated",
         "unfetched", "echo")

#: Made-up facts in the shape of real ones: nothing in shared/data says them.
FABRICATED = (
    "The committee approved the plan unanimously after a vote held in Reykjavik in 1987.",
    "Researchers at the Lisbon Institute of Marine Acoustics measured the effect over eleven winters.",
    "The original prototype was assembled in a converted bakery in northern Tasmania.",
    "Sales of the product tripled in Paraguay during the first quarter of 2004.",
    "The founder later said the idea came to him while restoring a lighthouse in Nova Scotia.",
    "A 2013 survey of 4,812 beekeepers in Slovenia reported the same pattern.",
    "The building's facade was designed by the Uruguayan architect Mateo Ferreyra Quiroga.",
    "The festival moved to Tallinn after the harbour authority banned open-air concerts.",
    "Engineers in Osaka later reduced the weight of the frame by 37 percent.",
    "The treaty was signed aboard a hospital ship anchored off the coast of Madagascar.",
    "The species was first described by a Norwegian botanist who collected it in Patagonia.",
    "Its annual budget reached 96 million euros in 2011, most of it from private donors.",
    "The rule was introduced after a ferry accident on Lake Titicaca in 1999.",
    "The first edition sold out within four hours at a bookshop in Antwerp.",
    "Volunteers in Manitoba planted roughly 18,000 oak saplings along the riverbank.",
    "The discovery was announced at a press conference in Ulaanbaatar the following spring.",
    "A court in Valparaiso ordered the company to pay damages to three former employees.",
    "The recipe was adapted from a monastery cookbook found in the Carpathian mountains.",
    "The team used a retired weather balloon from the Antarctic station at Halley Bay.",
    "Its largest warehouse, in the Kenyan port of Mombasa, closed in 2016.",
)

_SYNONYMS = {
    "said": "stated", "says": "states", "big": "large", "large": "big", "small": "little", "buy": "purchase",
    "bought": "purchased", "help": "assist", "helps": "assists", "helped": "assisted", "show": "demonstrate",
    "shows": "demonstrates", "showed": "demonstrated", "start": "begin", "started": "began", "starts": "begins",
    "important": "significant", "many": "numerous", "often": "frequently", "also": "additionally",
    "use": "utilize", "used": "utilized", "uses": "utilizes", "get": "obtain", "gets": "obtains", "got": "obtained",
    "need": "require", "needs": "requires", "needed": "required", "quick": "fast", "quickly": "rapidly",
    "fast": "quick", "end": "conclusion", "ended": "concluded", "make": "create", "makes": "creates",
    "made": "created", "about": "approximately", "around": "roughly", "very": "highly", "almost": "nearly",
    "nearly": "almost", "people": "individuals", "company": "firm", "firm": "company", "job": "position",
    "jobs": "positions", "begin": "start", "began": "started", "answer": "response", "problem": "issue",
    "problems": "issues", "issue": "problem", "city": "town", "car": "vehicle", "cars": "vehicles",
    "children": "kids", "kids": "children", "house": "home", "home": "house", "try": "attempt",
    "tried": "attempted", "keep": "retain", "kept": "retained", "enough": "sufficient", "main": "primary",
    "mostly": "largely", "hard": "difficult", "difficult": "hard", "easy": "simple", "simple": "easy",
    "allow": "permit", "allows": "permits", "allowed": "permitted", "choose": "select", "chose": "selected",
    "however": "nevertheless", "change": "alteration", "changes": "alterations", "buyers": "purchasers",
    "rise": "increase", "rose": "increased", "increase": "rise", "fall": "decline", "fell": "declined",
    "build": "construct", "built": "constructed", "building": "structure", "area": "region", "areas": "regions",
    "idea": "notion", "ideas": "notions", "plan": "scheme", "plans": "schemes", "shop": "store", "shops": "stores",
}
_DISCOURSE = re.compile(r"^(?:However|Moreover|In addition|Additionally|Furthermore|Also|But|And|So|Still|"
                        r"Meanwhile|Indeed|Instead|Nevertheless|Therefore|Thus|Finally|First|Second|Third)\s*,?\s+")
_CONTRACTIONS = {"don't": "do not", "doesn't": "does not", "didn't": "did not", "can't": "cannot",
                 "won't": "will not", "isn't": "is not", "aren't": "are not", "wasn't": "was not",
                 "it's": "it is", "they're": "they are", "we're": "we are", "you're": "you are"}
_AUX = re.compile(r"\b(is|are|was|were|has|have|had|can|could|will|would|should|does|did|do|may|might|must)\b")
_NEG = re.compile(r"\b(?:is|are|was|were|has|have|had|can|could|will|would|should|does|did|do|may|might|must)"
                  r"\s+(not|never)\b|\b(?:isn't|aren't|wasn't|weren't|hasn't|haven't|hadn't|can't|couldn't|won't|"
                  r"wouldn't|shouldn't|doesn't|didn't|don't|cannot)\b", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.,])\d[\d,]*(?:\.\d+)?(?![\w])")
_NAME = re.compile(r"(?<=[a-z,;] )([A-Z][a-z]{2,}(?: [A-Z][a-z]{2,})?)")


@dataclass(frozen=True)
class Claim:
    """One claim of a scripted answer and the truth about it."""

    text: str  # the sentence as the answer states it (no citation)
    kind: str
    cited: int | None  # the source (index) its citation names; None: a URL that was never fetched
    origin: int | None  # the source it was taken from; None: made up
    supported_by: frozenset[int] = frozenset()  # the sources that really say it


@dataclass
class Scripted:
    """A scripted answer: its claims in order, and the answer's text once rendered."""

    claims: list[Claim] = field(default_factory=list)
    text: str = ""
    #: Where each claim's sentence (with its citation) stands in ``text``.
    positions: list[tuple[int, int]] = field(default_factory=list)


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.findall(r"\w+", text))


def candidate_sentences(text: str) -> list[str]:
    """Sentences worth citing: 8-45 words, plain prose ending with a period, no URLs or markup."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "|", "```", "-", "*", ">")) or "[…]" in line:
            continue
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"“])", line):
            s = s.strip()
            words = s.split()
            if not 8 <= len(words) <= 45 or not s.endswith(".") or not s[0].isupper():
                continue
            if re.search(r"https?://|www\.|@|[<>{}\[\]|]|\.\.\.|…", s):
                continue
            letters = sum(c.isalpha() for c in s)
            if letters < 0.7 * len(s) or sum(c.isupper() for c in s) > 0.3 * letters:
                continue
            out.append(s)
    return out


def paraphrase(sentence: str, rng: random.Random) -> str | None:
    """The sentence in other words, its meaning kept: a discourse opener dropped,
    contractions spelled out, and up to three words replaced by synonyms."""
    text = _DISCOURSE.sub("", sentence)
    if text != sentence and text:
        text = text[0].upper() + text[1:]
    for short, long in _CONTRACTIONS.items():
        text = re.sub(rf"\b{re.escape(short)}\b", long, text, flags=re.IGNORECASE)
    words = list(re.finditer(r"\b[a-z]+\b", text))
    swappable = [m for m in words if m.group() in _SYNONYMS]
    rng.shuffle(swappable)
    for m in sorted(swappable[:3], key=lambda m: -m.start()):
        text = text[:m.start()] + _SYNONYMS[m.group()] + text[m.end():]
    return text if _norm(text) != _norm(sentence) else None


def change_number(sentence: str, rng: random.Random) -> str | None:
    """The sentence with one digit of one number changed (a year moves by one)."""
    numbers = [m for m in _NUMBER.finditer(sentence) if any(c.isdigit() for c in m.group())]
    if not numbers:
        return None
    m = rng.choice(numbers)
    raw = m.group()
    if re.fullmatch(r"(1[5-9]|20)\d\d", raw):
        new = str(int(raw) + rng.choice((-1, 1)))
    else:
        digits = [i for i, c in enumerate(raw) if c.isdigit()]
        i = digits[-1] if len(digits) == 1 else rng.choice(digits[1:] or digits)
        new_digit = str((int(raw[i]) + rng.randint(1, 8)) % 10)
        if i == digits[0] and new_digit == "0" and len(digits) > 1:
            new_digit = "9"
        new = raw[:i] + new_digit + raw[i + 1:]
    return sentence[:m.start()] + new + sentence[m.end():]


def negate(sentence: str) -> str | None:
    """The sentence saying the opposite: a negation removed, or one added after the first auxiliary."""
    m = _NEG.search(sentence)
    if m:
        if m.group(1):
            return sentence[:m.start(1)].rstrip() + " " + sentence[m.end(1):].lstrip()
        word = m.group(0)
        positive = {"cannot": "can", "won't": "will", "can't": "can"}.get(word.lower()) or word[:-3]
        return sentence[:m.start()] + positive + sentence[m.end():]
    m = _AUX.search(sentence)
    if not m:
        return None
    return sentence[:m.end()] + " not" + sentence[m.end():]


def swap_name(sentence: str, others: list[str], rng: random.Random) -> str | None:
    """The sentence with a name (capitalized words after a lowercase word) replaced by another."""
    names = list(_NAME.finditer(sentence))
    if not names or not others:
        return None
    m = rng.choice(names)
    choices = [o for o in others if _norm(o) != _norm(m.group(1)) and _norm(o) not in _norm(sentence)]
    if not choices:
        return None
    return sentence[:m.start(1)] + rng.choice(choices) + sentence[m.end(1):]


_COMMON_STARTS = frozenset("The A An This These That Those It Its In On At For Many Most Some Several Each Every "
                           "There When While After Before During".split())
_OTHER_NAMES = ("Margarethe Vollmer", "Osaka", "Rafael Quintana", "Brisbane", "Ingrid Solberg", "Nairobi",
                "Tomasz Wieczorek", "Montevideo", "Aiko Tanabe", "Winnipeg")


def script(sources: list[tuple[str, str, str]], seed: int | str) -> Scripted:
    """A scripted answer over ``sources`` (``(url, title, text)`` each, in the order shown).

    Every kind of :data:`KINDS` that the sources allow, once, in a shuffled order.
    """
    rng = random.Random(f"claims:{seed}")
    pools = [candidate_sentences(text) for _, _, text in sources]
    used: set[str] = set()
    n = len(sources)
    texts = [_norm(text) for _, _, text in sources]

    def take(k: int, want=None) -> str | None:
        options = [s for s in pools[k] if s not in used and (want is None or want(s))]
        if not options:
            return None
        s = rng.choice(options[:12])
        used.add(s)
        return s

    def support(sentence: str, origin: int) -> frozenset[int]:
        key = _norm(sentence)
        return frozenset({origin} | {j for j in range(n) if key and key in texts[j]})

    claims: list[Claim] = []
    have = [k for k in range(n) if pools[k]]
    if not have:
        return Scripted()
    order = have * 4
    rng.shuffle(order)
    ks = iter(order)

    def nxt() -> int:
        return next(ks, have[0])

    for kind in KINDS:
        k = nxt()
        if kind in ("correct", "link", "leading"):
            s = take(k)
            if s:
                claims.append(Claim(s, kind, k, k, support(s, k)))
        elif kind == "paraphrase":
            s = take(k, lambda x: paraphrase(x, random.Random(x)) is not None)
            if s:
                claims.append(Claim(paraphrase(s, random.Random(s)) or s, kind, k, k, frozenset({k})))
        elif kind == "misattrib" and n > 1:
            j = next((x for x in have if x != k), None)
            s = take(j) if j is not None else None
            if s:
                claims.append(Claim(s, kind, k, j, support(s, j)))
        elif kind == "number":
            s = take(k, lambda x: change_number(x, random.Random(x)) is not None)
            if s:
                claims.append(Claim(change_number(s, random.Random(s)) or s, kind, k, k, frozenset()))
        elif kind == "negated":
            s = take(k, lambda x: negate(x) is not None)
            if s:
                claims.append(Claim(negate(s) or s, kind, k, k, frozenset()))
        elif kind == "swapped":
            s = take(k, lambda x: swap_name(x, list(_OTHER_NAMES), random.Random(x)) is not None)
            if s:
                claims.append(Claim(swap_name(s, list(_OTHER_NAMES), random.Random(s)) or s, kind, k, k,
                                    frozenset()))
        elif kind == "fabricated":
            claims.append(Claim(rng.choice(FABRICATED), kind, k, None, frozenset()))
        elif kind == "unfetched" and n > 1:
            j = next((x for x in have if x != k), None)
            s = take(j) if j is not None else None
            if s:
                claims.append(Claim(s, kind, k, j, support(s, j)))
        elif kind == "echo":
            claims.append(Claim("claim", kind, k, None, frozenset()))
    rng.shuffle(claims)
    return Scripted(claims)


def render(scripted: Scripted, sources: list[tuple[str, str, str]], ids: list[int]) -> str:
    """The answer's text: each claim with its citation as the model writes it (``ids``: the
    number each source was shown under)."""
    parts = []
    positions = []
    pos = 0
    for i, c in enumerate(scripted.claims):
        k = c.cited if c.cited is not None else 0
        url, title, _ = sources[k]
        body = c.text.rstrip(".")
        if c.kind == "link":
            part = f"{body} ([{title or 'source'}]({url}))."
        elif c.kind == "leading":
            first, _, rest = body.partition(" ")
            if first in _COMMON_STARTS:
                body = first.lower() + " " + rest
            part = f"According to [{title or 'this page'}]({url}), {body}."
        elif c.kind == "unfetched":
            part = f"{body} [{ids[k]}]({UNFETCHED_BASE}{i})."
        else:
            part = f"{body} [{ids[k]}]."
        parts.append(part)
        positions.append((pos, pos + len(part)))
        pos += len(part) + 1
    scripted.text = " ".join(parts)
    scripted.positions = positions
    return scripted.text
