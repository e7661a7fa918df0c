"""Search modes on a question set with gold answers and gold source pages.

Usage::

    python -m benchmarks.search_modes [--model M[,M...]] [--modes none,loop,native,loop:tavily:5:2]
                                      [--engines searxng,local] [--max-results 3,5] [--max-steps 1,2]
                                      [--questions FILE.jsonl] [--limit N] [--offline] [--out DIR]
                                      [--name NAME] [--seed S] [--native-model M] [--distractors N]
                                      [--temperature T] [--timeout S] [--no-warmup] [--fetch-cited]

Every question of the set is asked through ``grounding.completion`` once per
(model, mode). Modes:

``none``
    no search: a plain completion (the model answers from memory).
``loop:<engine>:<max_results>:<max_steps>``
    the search tool loop, ``web_search={engine, max_results, max_steps}``.
    A bare ``loop`` in ``--modes`` expands to the grid ``--engines`` x
    ``--max-results`` x ``--max-steps``.
``native``
    the provider's own search, ``web_search_options`` (only for models that
    have one; others are skipped with a note in the report).

Default ``--modes none,loop,native``.

**Questions** come from a JSONL file (default: ``benchmarks/questions/shared_data.jsonl``,
47 questions written from real pages of ``../shared/data``), one object per line::

    {"id": "q1", "question": "...", "answers": ["short answer", "variant"],
     "gold_urls": ["https://the.page/that/answers"], "source": "optional label",
     "page_type": "optional label", "meta": {...anything...}}

``id``, ``question`` and ``answers`` (a non-empty list of strings) are required;
``gold_urls`` (http(s) URLs; needed for citation recall), ``source``,
``page_type`` and ``meta`` are optional; any other key is an error (a typo
such as ``"answer"`` would otherwise pass silently). Blank lines are skipped.
:func:`load_questions` reports the file and line of the first problem.

**Metrics** (per answer, then per mode):

* *accuracy (contains)*: some gold answer, normalized, occurs in the
  normalized answer as a whole-token sequence. Normalization
  (:func:`normalize_answer`) is SQuAD's (lowercase, punctuation dropped,
  articles dropped, whitespace collapsed) except that punctuation becomes a
  space (``180-day`` = ``180 day``), accents are folded, thousands
  separators vanish (``$5,000`` = ``5000``) and a decimal point between
  digits stays (``3.4`` is not ``34``).
* *token F1*: SQuAD's token F1 between the normalized answer and each gold
  answer, the best one kept. A correct answer in a long sentence scores low
  on F1 (precision), so read it beside the contains accuracy.
* *citation precision*: the share of ``url_citation`` annotations whose
  cited span the cited page *supports*: at least 60 % of the span's distinct
  content words (``\\w+``, lowercased, not stop words, 3+ characters or a
  number; citation markers and link syntax removed) occur in the page's
  text, the same lexical idea as the library's own inferred citations
  (``grounding/citations.py``), and every number the span states
  (``1.5``, ``5,000``) occurs in the page too, unless the question states it
  (word overlap alone would pass "the microphone weighs 1.5 kg" on a page
  saying 311 g). The page's text is what the library
  extracted (or the index held) for that URL in the run; failing that, the
  gold text of the shared-data page the URL is; failing that (online), the
  page fetched and extracted afterwards (``--fetch-cited``). Spans with no
  content word, or whose page text is unknown, are *unverifiable* and left
  out (counted).
* *citation recall*: the share of questions with gold URLs whose answer
  cites a gold URL (URLs compared without scheme, ``www.``, trailing slash,
  fragment and tracking parameters; fake-web URLs are first mapped to the
  real URL of the page they serve). Where answers get lost (tool loop):
  *gold retrieved* (the gold page was among the sources the model was
  given), *answer reachable* (and its text, as the library extracted or
  indexed it, contains a gold answer), *answer shown* (and so does the text
  the model was shown, after the library trimmed sources to the model's
  budget); then accuracy.
* latency p50/p95 (nearest rank) of ``metadata.total_duration_ms``, prompt
  and completion tokens (``usage``, all turns), ``metadata.cost_usd``
  (litellm's price of the model turns plus the search engine's fee, ``n/a``
  where litellm prices nothing).

**Offline** (``--offline``): nothing leaves the machine. The fakes of
``tests/fakes`` run in this process on 127.0.0.1: ``FakeWeb`` serves the real
pages of ``shared/data``; ``SharedDataSearch`` (``tests/fakes/ranked_search.py``)
is the web engines (``searxng``, ``tavily``, ``brave``, ``exa_ai``,
``serper``), ranking every shared page's gold text against the query (SQLite
FTS5, bm25); the ``local`` engine indexes a folder of the question pages'
HTML (plus ``--distractors`` other shared pages), each tagged with its real
URL as ``<link rel=canonical>``. Models offline: ``local`` (the embedded
model, ~35-45 s an answer on 2 cores: use ``--limit``), or ``fake-<policy>``
on ``FakeLLM`` (``fake-searcher``: first sentence of each source;
``fake-reader[:rounds]``, see ``tests/fakes/reader.py``: the best-matching
sentence, searching again with a refined query when unsure; their accuracy
measures retrieval + extraction + source trimming, not a model). ``native``
offline runs ``--native-model`` (default ``perplexity/sonar``) against
``FakeNative``, scripted per question from the same index
(``native_scenario``): it exercises litellm's native path, the citation
normalization and these metrics; its accuracy is scripted, not measured.
Offline latencies contain no network or model latency for the fakes.

Results: ``<out>/<name>.json`` (settings, environment, seed, per-question rows,
per-mode summaries), ``<name>.md`` and ``<name>-*.png``.
"""
from __future__ import annotations

import argparse
import contextlib
import html
import json
import math
import os
import random
import re
import statistics
import sys
import time
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit

from benchmarks.common import DEFAULT_OUT, SEED, environment, new_figure, progress, seed_everything, write_outputs

__all__ = [
    "DEFAULT_QUESTIONS",
    "Mode",
    "PageWords",
    "Question",
    "QuestionFileError",
    "citation_spans_supported",
    "contains_match",
    "judge_span",
    "load_questions",
    "main",
    "normalize_answer",
    "parse_mode",
    "supports",
    "token_f1",
    "url_key",
]

DEFAULT_QUESTIONS = Path(__file__).resolve().parent / "questions" / "shared_data.jsonl"
#: Everyday Python questions answered by the built-in corpus (``--corpus python-docs``).
PYTHON_DOCS_QUESTIONS = Path(__file__).resolve().parent / "questions" / "python_docs.jsonl"
#: The local engine's built-in corpus, Python's documentation.
BUILTIN = "python-docs"
NAME = "search_modes"
SUPPORT_THRESHOLD = 0.6
OFFLINE_ENGINES = ("searxng", "tavily", "brave", "exa_ai", "serper", "local")


# -- questions -------------------------------------------------------------------


@dataclass(frozen=True)
class Question:
    """One question: what to ask, the acceptable short answers, the page(s) that answer it."""

    id: str
    question: str
    answers: tuple[str, ...]
    gold_urls: tuple[str, ...] = ()
    source: str | None = None
    page_type: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


class QuestionFileError(ValueError):
    """A question file that cannot be used; the message names the file and line."""


_REQUIRED = ("id", "question", "answers")
_OPTIONAL = ("gold_urls", "source", "page_type", "meta")


def load_questions(path: str | os.PathLike[str]) -> list[Question]:
    """Read and check a JSONL question file (format: this module's docstring)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise QuestionFileError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise QuestionFileError(f"{path}: not UTF-8 text ({exc})") from None
    out: list[Question] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuestionFileError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise QuestionFileError(f"{where}: each line must be a JSON object, got {type(obj).__name__}")
        missing = [k for k in _REQUIRED if k not in obj]
        if missing:
            raise QuestionFileError(f"{where}: missing {', '.join(map(repr, missing))} "
                                    f"(required: {', '.join(_REQUIRED)})")
        unknown = sorted(set(obj) - set(_REQUIRED) - set(_OPTIONAL))
        if unknown:
            raise QuestionFileError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))} "
                                    f"(allowed: {', '.join(_REQUIRED + _OPTIONAL)}; put extras under 'meta')")
        qid, text, answers = obj["id"], obj["question"], obj["answers"]
        if not isinstance(qid, str) or not qid.strip():
            raise QuestionFileError(f"{where}: 'id' must be a non-empty string")
        if qid in seen:
            raise QuestionFileError(f"{where}: duplicate id {qid!r} (first on line {seen[qid]})")
        if not isinstance(text, str) or not text.strip():
            raise QuestionFileError(f"{where}: 'question' must be a non-empty string")
        if not isinstance(answers, list) or not answers:
            raise QuestionFileError(f"{where}: 'answers' must be a non-empty list of strings")
        for a in answers:
            if not isinstance(a, str) or not normalize_answer(a):
                raise QuestionFileError(f"{where}: every answer must be a string with a letter or digit, got {a!r}")
        gold = obj.get("gold_urls", [])
        if not isinstance(gold, list) or any(not isinstance(u, str) or not re.match(r"https?://[^/\s]+", u)
                                             for u in gold):
            raise QuestionFileError(f"{where}: 'gold_urls' must be a list of http(s) URLs")
        for key in ("source", "page_type"):
            if obj.get(key) is not None and not isinstance(obj[key], str):
                raise QuestionFileError(f"{where}: {key!r} must be a string")
        if not isinstance(obj.get("meta", {}), dict):
            raise QuestionFileError(f"{where}: 'meta' must be an object")
        seen[qid] = number
        out.append(Question(qid, text.strip(), tuple(answers), tuple(gold), obj.get("source"),
                            obj.get("page_type"), dict(obj.get("meta", {}))))
    if not out:
        raise QuestionFileError(f"{path}: no questions")
    return out


# -- answers: normalization, contains-match, token F1 -----------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_PUNCT = re.compile(r"((?<=\d)\.(?=\d))|[^\w\s]|_")


def normalize_answer(text: str) -> str:
    """SQuAD-style normalization, punctuation to spaces (see the module docstring)."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower()
    text = _THOUSANDS.sub("", text)
    text = _PUNCT.sub(lambda m: "." if m.group(1) else " ", text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def contains_match(prediction: str, answers: Iterable[str]) -> bool:
    """Whether some normalized answer occurs in the normalized prediction, on token boundaries."""
    pred = f" {normalize_answer(prediction)} "
    return any((norm := normalize_answer(a)) and f" {norm} " in pred for a in answers)


def token_f1(prediction: str, answers: Iterable[str]) -> float:
    """SQuAD token F1 of the prediction against the best-matching answer (0 for an empty prediction)."""
    pred = normalize_answer(prediction).split()
    best = 0.0
    for answer in answers:
        gold = normalize_answer(answer).split()
        if not pred or not gold:
            continue
        common = sum(min(pred.count(w), gold.count(w)) for w in set(pred) & set(gold))
        if common:
            p, r = common / len(pred), common / len(gold)
            best = max(best, 2 * p * r / (p + r))
    return best


# -- citations: support ------------------------------------------------------------------

_STOP_WORDS = frozenset(
    """the and for are but not you all any can had her was one our out has him his how its may new now old see
    two who did get got let say she too use that with have this will your from they been more when were what
    which their there than then them these those some such into also only over very just about after before
    other would could should where while most many much each being both does doing here onto upon via per yet
    because between through during under again further once same own off above below whom why nor""".split()
)
_MARKERS = re.compile(r"\[\^?\s*(?:sources?\s*)?\d+(?:\s*[-–,;]\s*\d+)*\s*\]|【[^】]*】")
_LINKS = re.compile(r"\[([^\]]*)\]\((?:[^()]|\([^)]*\))*\)|<https?://[^>]+>|https?://\S+")
_WORDS = re.compile(r"\w+")


def content_words(text: str) -> set[str]:
    """Distinct lowercased ``\\w+`` words that are not stop words and have 3+ characters or are numbers."""
    words = _WORDS.findall(_THOUSANDS.sub("", text.lower()))
    return {w for w in words if w not in _STOP_WORDS and (len(w) >= 3 or w.isdigit())}


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers(text: str) -> set[str]:
    """The numbers written in ``text`` (``5,000`` -> ``5000``; ``1.5`` stays ``1.5``)."""
    return {_THOUSANDS.sub("", n) for n in _NUMBER.findall(text)}


@dataclass(frozen=True)
class PageWords:
    """What a page offers to check a span against: its content words and its numbers."""

    words: frozenset[str]
    numbers: frozenset[str]

    @classmethod
    def of(cls, text: str) -> PageWords:
        return cls(frozenset(content_words(text)), frozenset(numbers(text)))


def _claim_text(span: str) -> str:
    """A cited span without its citation markers and link syntax (a link's text is kept)."""
    return _LINKS.sub(lambda m: m.group(1) or " ", _MARKERS.sub(" ", span))


def support_score(span: str, page: PageWords | set[str]) -> float | None:
    """Share of the span's content words found in the page (markers and links removed); None if it has none."""
    words = content_words(_claim_text(span))
    if not words:
        return None
    page_words = page.words if isinstance(page, PageWords) else page
    return len(words & page_words) / len(words)


def missing_numbers(span: str, page: PageWords, given: str = "") -> list[str]:
    """Numbers of the span (markers removed) that the page does not contain, except those of ``given``
    (the question: an answer that restates "the 2019 Dubai Air Show" claims nothing new with 2019)."""
    return sorted(numbers(_claim_text(span)) - page.numbers - numbers(given))


def judge_span(span: str, page: PageWords, threshold: float = SUPPORT_THRESHOLD,
               question: str = "") -> tuple[bool | None, float | None, list[str]]:
    """``(supported, share of content words found, numbers not found)``; supported is None when the
    span has no content word. Supported = at least ``threshold`` of its content words *and* every
    number it states (other than the question's) occur in the page."""
    score = support_score(span, page)
    if score is None:
        return None, None, []
    missing = missing_numbers(span, page, question)
    return score >= threshold and not missing, score, missing


def supports(span: str, page_text: str, threshold: float = SUPPORT_THRESHOLD, question: str = "") -> bool | None:
    """Whether ``page_text`` supports ``span`` (see :func:`judge_span`); None: nothing to check."""
    return judge_span(span, PageWords.of(page_text), threshold, question)[0]


def citation_spans_supported(content: str, annotations: Sequence[dict[str, Any]],
                             page_text: Any, question: str = "") -> list[dict[str, Any]]:
    """Judge each ``url_citation`` of ``content``: ``page_text(url) -> (text, origin) | (None, None)``;
    numbers that ``question`` states need not be on the page."""
    judged = []
    cache: dict[str, tuple[PageWords | None, str | None]] = {}
    for a in annotations:
        c = a.get("url_citation", a)
        url, start, end = c["url"], int(c["start_index"]), int(c["end_index"])
        span = content[start:end]
        if url not in cache:
            text, origin = page_text(url)
            cache[url] = (PageWords.of(text) if text else None, origin)
        page, origin = cache[url]
        supported, score, missing = (judge_span(span, page, question=question) if page is not None
                                     else (None, None, []))
        judged.append({"url": url, "start": start, "end": end, "span": span, "text_origin": origin,
                       "support": None if score is None else round(score, 3), "numbers_missing": missing,
                       "supported": supported})
    return judged


# -- URLs -----------------------------------------------------------------------------------

_TRACKING = re.compile(r"^(utm_\w+|srsltid|gclid|fbclid|mc_cid|mc_eid|ref_src)$", re.I)


def url_key(url: str) -> str:
    """A URL for comparison: no scheme, ``www.``, fragment, trailing slash or tracking parameters."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().removeprefix("www.")
    if parts.port and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _TRACKING.match(k)])
    path = parts.path.rstrip("/") or ""
    return f"{host}{path}" + (f"?{query}" if query else "")


_DATA_PATH = re.compile(r"/(wcxb/\d{4}|scrapinghub/[0-9a-f]{64})/?$")


class Pages:
    """What is known about pages: the text the library used per URL, and (offline or for the
    shared set) the shared-data pages by key and by real URL.

    ``web_url`` is the fake web's base: its ``/wcxb/NNNN`` and ``/scrapinghub/<id>``
    URLs stand for the real pages they serve.
    """

    def __init__(self, shared: dict[str, Any] | None = None, web_url: str | None = None) -> None:
        self.shared = shared or {}
        self.web_url = web_url.rstrip("/") if web_url else None
        self.by_url = {url_key(p.url): key for key, p in self.shared.items()}
        self.seen: dict[str, str] = {}  # url_key -> text the library used (extracted or indexed), per page
        self.seen_exact: dict[str, str] = {}  # the URL as given (an index's section, with its #anchor) -> text
        self.shown: dict[str, str] = {}  # url_key -> that text as the model was shown it (trimmed to budget)
        self.fetched: dict[str, str] = {}  # url_key -> text fetched afterwards (--fetch-cited)

    def key_of(self, url: str) -> str | None:
        """The shared-data page a URL is (fake-web URL or real URL), if any."""
        if self.web_url and url.startswith(self.web_url + "/"):
            m = _DATA_PATH.search(urlsplit(url).path)
            if m:
                return m.group(1)
        return self.by_url.get(url_key(url))

    def real_url(self, url: str) -> str:
        """The real URL behind a fake-web URL (else ``url`` itself)."""
        key = self.key_of(url)
        if key and self.web_url and url.startswith(self.web_url + "/"):
            return self.shared[key].url
        return url

    def text(self, url: str) -> tuple[str | None, str | None]:
        """``(text, origin)``: what the library used, else the gold text, else a fetched text."""
        if self.seen_exact.get(url):
            return self.seen_exact[url], "library"
        k = url_key(url)
        if self.seen.get(k):
            return self.seen[k], "library"
        key = self.key_of(url)
        if key and key in self.shared:
            return self.shared[key].text, "gold"
        if self.fetched.get(k):
            return self.fetched[k], "fetched"
        return None, None

    def record(self, url: str, text: str) -> None:
        """Note the text the library used for ``url``: by its exact URL (an index's sections of one
        page are documents apart) and joined per page (what the page as a whole said)."""
        if text:
            self.seen_exact[url] = text
            k = url_key(url)
            self.seen[k] = f"{self.seen[k]}\n\n{text}" if self.seen.get(k) else text

    def record_shown(self, tool_result: str) -> None:
        """Note the sources of one search result as the model read them (``<source ...>`` blocks)."""
        for m in _SOURCE_BLOCK.finditer(tool_result):
            k = url_key(html.unescape(m.group(1)))
            self.shown[k] = self.shown.get(k, "") + m.group(2)

    def clear_request(self) -> None:
        """Forget what the previous request read (each request is judged on its own sources)."""
        self.seen.clear()
        self.seen_exact.clear()
        self.shown.clear()


_SOURCE_BLOCK = re.compile(r'<source id="\d+" url="([^"]*)" title="[^"]*">\n(.*?)\n</source>', re.S)


@contextlib.contextmanager
def capture_page_texts(pages: Pages) -> Iterator[bool]:
    """Record the text of every page the tool loop fetches+extracts or takes from an index.

    Wraps ``grounding.gather.Gatherer._page`` (private; if it is gone, nothing is
    recorded and ``False`` is yielded, so precision falls back to gold texts),
    and ``Gatherer.step`` to see the sources as the model was shown them.
    """
    import grounding.gather as gather

    session = getattr(gather, "Gatherer", None)
    real = getattr(session, "_page", None)
    if real is None:
        yield False
        return

    async def _page(self: Any, hit: Any, *args: Any, **kwargs: Any) -> Any:
        info, text = await real(self, hit, *args, **kwargs)
        pages.record(hit.url, text)
        return info, text

    real_step = getattr(session, "step", None)

    async def _search_step(self: Any, *args: Any, **kwargs: Any) -> Any:
        messages = await real_step(self, *args, **kwargs)
        for m in messages:
            pages.record_shown(m.get("content") or "")
        return messages

    session._page = _page  # type: ignore[union-attr]
    if real_step is not None:
        session.step = _search_step  # type: ignore[union-attr]
    try:
        yield True
    finally:
        session._page = real  # type: ignore[union-attr]
        if real_step is not None:
            session.step = real_step  # type: ignore[union-attr]


def fetch_texts(urls: Iterable[str], pages: Pages) -> None:
    """Fetch and extract pages the run did not read itself (online, native citations)."""
    import asyncio

    from providers.extract import extract
    from providers.fetch import Fetcher

    todo = [u for u in dict.fromkeys(urls) if pages.text(u)[0] is None and url_key(u) not in pages.fetched]
    if not todo:
        return

    async def go() -> None:
        async with Fetcher(concurrency=8) as fetcher:
            results = await asyncio.gather(*(fetcher.fetch(u) for u in todo))
        for url, res in zip(todo, results):
            text = ""
            if res.ok and "html" in (res.content_type or "text/html"):
                text = extract(res.body or b"", res.final_url or url).text
            pages.fetched[url_key(url)] = text

    asyncio.run(go())


# -- modes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    """How a question is asked: ``none``, ``native``, or the tool loop with an engine and its limits."""

    kind: str  # "none" | "loop" | "native"
    engine: str | None = None
    max_results: int | None = None
    max_steps: int | None = None

    @property
    def label(self) -> str:
        if self.kind == "loop":
            return f"loop:{self.engine}:{self.max_results}:{self.max_steps}"
        return self.kind


def parse_mode(spec: str) -> Mode:
    """``none``, ``native`` or ``loop:<engine>:<max_results>:<max_steps>`` (1-20, 1-5)."""
    spec = spec.strip()
    if spec in ("none", "native"):
        return Mode(spec)
    parts = spec.split(":")
    if len(parts) == 4 and parts[0] == "loop" and parts[1] and parts[2].isdigit() and parts[3].isdigit():
        results, steps = int(parts[2]), int(parts[3])
        if not 1 <= results <= 20 or not 1 <= steps <= 5:
            raise ValueError(f"{spec!r}: max_results must be 1-20 and max_steps 1-5")
        return Mode("loop", parts[1], results, steps)
    raise ValueError(f"unknown mode {spec!r}: use none, native, loop, or loop:<engine>:<max_results>:<max_steps>")


def expand_modes(specs: Sequence[str], engines: Sequence[str], max_results: Sequence[int],
                 max_steps: Sequence[int]) -> list[Mode]:
    """The modes to run: ``loop`` expands to engines x max_results x max_steps; duplicates dropped."""
    out: list[Mode] = []
    for spec in specs:
        if spec.strip() == "loop":
            out += [Mode("loop", e, r, s) for e in engines for r in max_results for s in max_steps]
        else:
            out.append(parse_mode(spec))
    for m in out:
        if m.kind == "loop":
            parse_mode(m.label)  # range checks
    return list(dict.fromkeys(out))


# -- models and the offline world ------------------------------------------------------------


@dataclass
class ModelSpec:
    """A model as the benchmark calls it: label in the report, litellm id, extra arguments."""

    label: str
    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    native: bool = False
    scripted_native: bool = False  # FakeNative, scripted per question


class OfflineWorld:
    """The fake web, search, chat model and native provider in this process, and the local corpus."""

    def __init__(self, questions: Sequence[Question], *, corpus_dir: Path, distractors: int, seed: int,
                 say: Any = None, corpus: str | None = None) -> None:
        from tests.fakes.llm import FakeLLM
        from tests.fakes.native import FakeNative
        from tests.fakes.ranked_search import SharedDataSearch, shared_pages
        from tests.fakes.reader import register
        from tests.fakes.web import FakeWeb

        say = say or (lambda m: print(f"[{NAME}] {m}", file=sys.stderr))
        register()
        self.corpus = corpus
        if corpus == BUILTIN:  # Python's documentation: only the local engine and the fake models
            self.shared, self.web, self.search, self.native = {}, None, None, None
            self.llm = FakeLLM().start()
            self.env = {}
            self.corpus_dir = None
            self.corpus_pages = []
            say("opening (on first use: building) the index of Python's documentation ...")
            self._register_local()
            return
        self.shared = shared_pages()
        self.web = FakeWeb().start()
        say("indexing every shared page for the fake search engines ...")
        self.search = SharedDataSearch(self.web.url).start()
        self.llm = FakeLLM().start()
        self.native = FakeNative().start()
        self.env = {**self.native.env(), **self.search.env()}
        self.corpus_dir = corpus_dir
        self.corpus_pages = self._write_corpus(questions, distractors, seed)
        say(f"indexing the local corpus ({len(self.corpus_pages)} pages in {corpus_dir}) ...")
        self._register_local()

    def _write_corpus(self, questions: Sequence[Question], distractors: int, seed: int) -> list[str]:
        """The question pages (and seeded-random other shared pages) as HTML tagged with their real URL."""
        from tests.fakes.web import page_html

        keys = list(dict.fromkeys(q.source for q in questions if q.source in self.shared))
        others = sorted(set(self.shared) - set(keys))
        keys += random.Random(seed).sample(others, min(distractors, len(others)))
        self.corpus_dir.mkdir(parents=True, exist_ok=True)
        wanted = set()
        for key in keys:
            html = page_html(key)
            if html is None:
                continue
            name = key.replace("/", "-") + ".html"
            wanted.add(name)
            data = _with_canonical(html, self.shared[key].url)
            path = self.corpus_dir / name
            if not path.exists() or path.read_bytes() != data:  # unchanged files keep their mtime: no re-index
                path.write_bytes(data)
        for stale in self.corpus_dir.glob("*.html"):
            if stale.name not in wanted:
                stale.unlink()
        return keys

    def _register_local(self) -> None:
        import providers.search as search
        from providers.local_index import open_corpus

        corpus = BUILTIN if self.corpus == BUILTIN else str(self.corpus_dir)
        open_corpus(corpus).close()  # build (or sync) the index before anything is timed
        registry, instances = getattr(search, "_registry", {}), getattr(search, "_instances", {})
        self._saved_local = (registry.get("local"), instances.get("local"))
        search.register_engine("local", search.LocalSearchEngine(corpus=corpus))

    def _unregister_local(self) -> None:
        """Give ``local`` back its built-in meaning (this process may run other things afterwards)."""
        import providers.search as search

        registry, instances = getattr(search, "_registry", {}), getattr(search, "_instances", {})
        factory, instance = getattr(self, "_saved_local", (None, None))
        for table, old in ((registry, factory), (instances, instance)):
            if old is None:
                table.pop("local", None)
            else:
                table["local"] = old

    def model(self, name: str) -> ModelSpec:
        if name == "local" or name.startswith("local/"):
            return ModelSpec(name, name)
        if name.startswith("fake-"):
            return ModelSpec(name, f"openai/{name}", {"api_base": f"{self.llm.url}/v1", "api_key": "sk-fake"})
        raise SystemExit(f"--offline runs the local model or fake-<policy> models, not {name!r}")

    def native_model(self, name: str) -> ModelSpec:
        if self.native is None:
            raise SystemExit("--offline native search needs the shared-data world (not --corpus python-docs)")
        provider = name.split("/", 1)[0]
        return ModelSpec(f"{name} (FakeNative)", name,
                         {"api_base": self.native.api_base(provider), "api_key": "fake-key"},
                         native=True, scripted_native=True)

    def script_native(self, question: Question) -> None:
        from tests.fakes.ranked_search import native_scenario

        self.native.scenario = native_scenario(question.question)

    def close(self) -> None:
        self._unregister_local()
        for server in (self.native, self.llm, self.search, self.web):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()


def _with_canonical(html: bytes, url: str) -> bytes:
    """``html`` with ``<link rel="canonical" href=url>`` first in its head (the local index's URL for it)."""
    from html import escape

    tag = f'<link rel="canonical" href="{escape(url, quote=True)}">'.encode()
    m = re.search(rb"<head\b[^>]*>", html[:200_000], re.I)
    return html[: m.end()] + tag + html[m.end():] if m else tag + html


def default_corpus_dir() -> Path:
    base = os.environ.get("GROUNDING_CACHE_DIR")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "grounding"
    return root / "bench" / "search_modes-corpus"


# -- one question ------------------------------------------------------------------------------


def ask(spec: ModelSpec, mode: Mode, q: Question, *, temperature: float | None, timeout: float | None,
        context_size: str) -> tuple[Any, float, str | None]:
    """Run one completion; return ``(response or None, wall ms, error)``."""
    import grounding

    kw: dict[str, Any] = {"model": spec.model, "messages": [{"role": "user", "content": q.question}], **spec.kwargs}
    if temperature is not None:
        kw["temperature"] = temperature
    if timeout:
        kw["timeout"] = timeout
    if mode.kind == "loop":
        kw["web_search"] = {"engine": mode.engine, "max_results": mode.max_results, "max_steps": mode.max_steps}
    elif mode.kind == "native":
        kw["web_search_options"] = {"search_context_size": context_size}
    t0 = time.perf_counter()
    try:
        r = grounding.completion(**kw)
    except Exception as exc:  # recorded, the run goes on
        return None, (time.perf_counter() - t0) * 1000, f"{type(exc).__name__}: {str(exc)[:300]}"
    return r, (time.perf_counter() - t0) * 1000, None


def score(q: Question, spec: ModelSpec, mode: Mode, response: Any, wall_ms: float, error: str | None,
          pages: Pages) -> dict[str, Any]:
    """One row of the report: the answer, what it cited, and its metrics."""
    row: dict[str, Any] = {
        "model": spec.label, "mode": mode.label, "id": q.id, "question": q.question, "answers": list(q.answers),
        "gold_urls": list(q.gold_urls), "source": q.source, "page_type": q.page_type,
        "error": error, "wall_ms": round(wall_ms, 1),
    }
    if response is None:
        row.update(answer="", contains=0, f1=0.0, annotations=[], citations_checkable=0, citations_supported=0,
                   citations_checkable_before=0, citations_supported_before=0, citations_kept_supported=0,
                   citations_unverifiable=0, gold_cited=False if q.gold_urls else None,
                   gold_retrieved=False if q.gold_urls and mode.kind != "none" else None,
                   total_duration_ms=None, prompt_tokens=None, completion_tokens=None, cost_usd=None)
        return row
    msg = response.choices[0].message
    content = msg.content or ""
    meta = response.metadata
    annotations = [a.model_dump() if hasattr(a, "model_dump") else dict(a) for a in (msg.annotations or [])]
    judged = citation_spans_supported(content, annotations, pages.text, q.question)
    for j in judged:
        j["real_url"] = pages.real_url(j["url"])
    # The citations as the model wrote them, before the library checked them (metadata.citations.checks:
    # a moved one under the URL it had): this benchmark's own judge, over the same answer.
    before = [{"url_citation": {"url": c.moved_from.url if c.moved_from else c.url, "start_index": c.start,
                                "end_index": c.end}} for c in meta.citations.checks] or annotations
    judged_before = citation_spans_supported(content, before, pages.text, q.question)
    emitted = {(j["start"], j["end"], j["url"]) for j in judged}
    gold = {url_key(u) for u in q.gold_urls}
    cited = {url_key(j["real_url"]) for j in judged}
    given = [s for s in meta.sources if s.status != "failed"] if mode.kind != "none" else []
    retrieved = {url_key(pages.real_url(s.url)) for s in given}
    reachable = shown = None  # the gold page was given and its text (as the library had it / as the
    if mode.kind == "loop" and gold:  # model was shown it, trimmed to the source budget) holds an answer
        reachable = shown = False
        for s in given:  # any source from a gold page (an index may give several sections of one)
            if url_key(pages.real_url(s.url)) in gold:
                text, _ = pages.text(s.url)
                reachable = reachable or (bool(text) and contains_match(text, q.answers))
                seen_text = pages.shown.get(url_key(s.url))
                shown = None if not pages.shown else bool(
                    shown or (bool(seen_text) and contains_match(seen_text, q.answers)))
    row.update(
        answer=content,
        contains=int(contains_match(content, q.answers)),
        f1=round(token_f1(content, q.answers), 4),
        annotations=judged,
        citations_checkable=sum(j["supported"] is not None for j in judged),
        citations_supported=sum(bool(j["supported"]) for j in judged),
        citations_unverifiable=sum(j["supported"] is None for j in judged),
        citations_checkable_before=sum(j["supported"] is not None for j in judged_before),
        citations_supported_before=sum(bool(j["supported"]) for j in judged_before),
        citations_kept_supported=sum(bool(j["supported"]) and (j["start"], j["end"], j["url"]) in emitted
                                     for j in judged_before),
        citation_verify=meta.citations.verify,
        gold_cited=bool(gold & cited) if gold else None,
        gold_retrieved=(bool(gold & retrieved) if gold else None) if mode.kind == "loop" else
        (bool(gold & cited) if gold else None) if mode.kind == "native" else None,
        answer_reachable=reachable,
        answer_shown=shown,
        total_duration_ms=meta.total_duration_ms,
        prompt_tokens=response.usage.prompt_tokens,
        completion_tokens=response.usage.completion_tokens,
        cost_usd=meta.cost_usd,
        searches=len(meta.searches),
        queries=list(meta.queries),
        steps=meta.steps,
        turns=len(meta.turns),
        sources=[{"url": s.url, "real_url": pages.real_url(s.url), "status": s.status, "cited": s.cited}
                 for s in meta.sources],
        warnings=list(meta.warnings),
        mode_run=meta.mode,
    )
    return row


# -- summaries -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (``None`` for no values)."""
    xs = sorted(values)
    if not xs:
        return None
    return xs[max(0, math.ceil(p / 100 * len(xs)) - 1)]


def _mean(xs: Sequence[float]) -> float | None:
    return round(statistics.fmean(xs), 4) if xs else None


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per (model, mode) figures over its rows."""
    ok = [r for r in rows if not r["error"]]
    lat = [r["total_duration_ms"] for r in ok if r.get("total_duration_ms") is not None]
    checkable = sum(r["citations_checkable"] for r in rows)
    with_gold = [r for r in rows if r["gold_cited"] is not None]
    retrieved = [r for r in rows if r.get("gold_retrieved") is not None]
    costs = [r["cost_usd"] for r in ok if r.get("cost_usd") is not None]
    reachable = [r["answer_reachable"] for r in rows if r.get("answer_reachable") is not None]
    shown = [r["answer_shown"] for r in rows if r.get("answer_shown") is not None]
    return {
        "model": rows[0]["model"], "mode": rows[0]["mode"], "n": len(rows), "errors": len(rows) - len(ok),
        "accuracy_contains": _mean([r["contains"] for r in rows]),
        "token_f1": _mean([r["f1"] for r in rows]),
        "annotations": sum(len(r["annotations"]) for r in rows),
        "answers_with_citations": sum(bool(r["annotations"]) for r in rows),
        "citation_precision": round(sum(r["citations_supported"] for r in rows) / checkable, 4) if checkable else None,
        "citations_checkable": checkable,
        "citations_unverifiable": sum(r["citations_unverifiable"] for r in rows),
        # Before the library's check (as the model wrote them), and the supported ones the check kept.
        "citation_precision_before": _share(rows, "citations_supported_before", "citations_checkable_before"),
        "citations_kept_of_supported": _share(rows, "citations_kept_supported", "citations_supported_before"),
        "citation_recall": _mean([float(r["gold_cited"]) for r in with_gold]),
        "gold_retrieved": _mean([float(r["gold_retrieved"]) for r in retrieved]),
        "answer_reachable": _mean([float(x) for x in reachable]),
        "answer_shown": _mean([float(x) for x in shown]),
        "latency_ms": {"p50": percentile(lat, 50), "p95": percentile(lat, 95),
                       "mean": round(statistics.fmean(lat), 1) if lat else None},
        "wall_ms_p50": percentile([r["wall_ms"] for r in ok], 50),
        "prompt_tokens_mean": _mean([r["prompt_tokens"] for r in ok if r.get("prompt_tokens") is not None]),
        "completion_tokens_mean": _mean([r["completion_tokens"] for r in ok
                                         if r.get("completion_tokens") is not None]),
        "cost_usd_total": round(sum(costs), 6) if costs else None,
        "cost_usd_priced": len(costs),
    }


# -- report: markdown and figures ---------------------------------------------------------------


def _share(rows: Sequence[dict[str, Any]], part: str, whole: str) -> float | None:
    total = sum(r.get(whole, 0) for r in rows)
    return round(sum(r.get(part, 0) for r in rows) / total, 4) if total else None


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _ms(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x / 1000:.1f} s" if x >= 10_000 else f"{x:.0f} ms"


def _git_label(git: Any) -> str:
    if isinstance(git, dict):
        return f"{str(git.get('commit') or '?')[:7]}{' (uncommitted changes)' if git.get('dirty') else ''}"
    return str(git)


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    env = report["environment"]
    lines = [
        f"# Search modes ({report['date']})", "",
        f"Command: `{report['command']}`", "",
        f"Questions: `{s['questions']}` ({s['questions_run']} of {s['questions_total']} run); "
        f"{'offline (fakes on 127.0.0.1)' if s['offline'] else 'online'}; seed {report['seed']}; "
        f"temperature {s['temperature']}.",
        f"Machine: {env.get('cpus')} CPUs, Python {env.get('python')}, litellm {env.get('litellm')}, "
        f"trafilatura {env.get('trafilatura')}, git {_git_label(env.get('git'))}; load average (1, 5, 15 min) "
        f"{report['loadavg_before']} before, {report['loadavg_after']} after.", "",
        "| model | mode | n | err | accuracy (contains) | token F1 | citation precision (checked) | "
        "precision before the check / supported kept | citation recall | gold retrieved | answer reachable | answer shown | latency p50 | p95 | prompt tok | "
        "completion tok | cost USD |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in report["summary"]:
        cost = ("n/a" if m["cost_usd_total"] is None
                else f"{m['cost_usd_total']:.4f} ({m['cost_usd_priced']}/{m['n']} priced)")
        unverifiable = f", {m['citations_unverifiable']} unverifiable" if m["citations_unverifiable"] else ""
        lines.append(
            f"| {m['model']} | `{m['mode']}` | {m['n']} | {m['errors']} | {_pct(m['accuracy_contains'])} | "
            f"{m['token_f1']:.3f} | {_pct(m['citation_precision'])} ({m['citations_checkable']}{unverifiable}) | "
            f"{_pct(m.get('citation_precision_before'))} / {_pct(m.get('citations_kept_of_supported'))} | "
            f"{_pct(m['citation_recall'])} | {_pct(m['gold_retrieved'])} | {_pct(m['answer_reachable'])} | {_pct(m['answer_shown'])} | "
            f"{_ms(m['latency_ms']['p50'])} | {_ms(m['latency_ms']['p95'])} | "
            f"{m['prompt_tokens_mean'] or 0:.0f} | {m['completion_tokens_mean'] or 0:.0f} | {cost} |")
    if report["skipped"]:
        lines += ["", "Skipped:"] + [f"- {x}" for x in report["skipped"]]
    lines += ["", "Notes:"] + [f"- {x}" for x in report["notes"]]
    by_type = report.get("accuracy_by_page_type")
    if by_type:
        types = sorted({t for v in by_type.values() for t in v})
        lines += ["", "Accuracy (contains) by page type:", "",
                  "| model | mode | " + " | ".join(types) + " |", "| --- | --- |" + " ---: |" * len(types)]
        for label, v in by_type.items():
            model, mode = label.split(" || ")
            lines.append(f"| {model} | `{mode}` | " + " | ".join(
                f"{_pct(v[t]['accuracy'])} ({v[t]['n']})" if t in v else "-" for t in types) + " |")
    return "\n".join(lines) + "\n"


def figures(summary: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy against latency, citation precision/recall bars, accuracy bars."""
    figs: dict[str, Any] = {}
    if not summary:
        return figs
    labels = [f"{m['model']}\n{m['mode']}" for m in summary]
    models = list(dict.fromkeys(m["model"] for m in summary))
    markers = "osD^vP*X"

    fig, ax = new_figure(8, 5)
    for i, model in enumerate(models):
        pts = [m for m in summary if m["model"] == model and m["latency_ms"]["p50"] is not None]
        if not pts:
            continue
        x = [m["latency_ms"]["p50"] / 1000 for m in pts]
        y = [100 * (m["accuracy_contains"] or 0) for m in pts]
        hi = [max(0.0, m["latency_ms"]["p95"] / 1000 - xx) for m, xx in zip(pts, x)]
        ax.errorbar(x, y, xerr=[[0] * len(x), hi], fmt=markers[i % len(markers)], capsize=3, label=model)
        for m, xx, yy in zip(pts, x, y):
            ax.annotate(m["mode"], (xx, yy), textcoords="offset points", xytext=(5, 4), fontsize=7)
    xs = [m["latency_ms"]["p50"] for m in summary if m["latency_ms"]["p50"]]
    if xs and max(xs) / max(min(xs), 1e-9) > 30:
        ax.set_xscale("log")
    ax.set_xlabel("latency p50 (s), bar to p95")
    ax.set_ylabel("accuracy, contains-match (%)")
    ax.set_ylim(-3, 103)
    ax.set_title("Answer accuracy against latency, per mode")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    figs["accuracy-latency"] = fig

    width = max(7.0, 0.9 * len(summary) + 2)
    fig, ax = new_figure(width, 4.5)
    idx = range(len(summary))
    prec = [100 * (m["citation_precision"] or 0) for m in summary]
    rec = [100 * (m["citation_recall"] or 0) for m in summary]
    ax.bar([i - 0.2 for i in idx], prec, width=0.4, label="citation precision (span supported by page)")
    ax.bar([i + 0.2 for i in idx], rec, width=0.4, label="citation recall (gold page cited)")
    for i, m in enumerate(summary):
        if m["citation_precision"] is None:
            ax.text(i - 0.2, 1, "n/a", ha="center", fontsize=7, rotation=90)
    ax.set_xticks(list(idx), labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("%")
    ax.set_ylim(0, 125)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title("Citations per mode")
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    figs["citations"] = fig

    fig, ax = new_figure(width, 4.5)
    acc = [100 * (m["accuracy_contains"] or 0) for m in summary]
    f1 = [100 * (m["token_f1"] or 0) for m in summary]
    ax.bar([i - 0.2 for i in idx], acc, width=0.4, label="accuracy (contains)")
    ax.bar([i + 0.2 for i in idx], f1, width=0.4, label="token F1 (x100)")
    ax.set_xticks(list(idx), labels, fontsize=7, rotation=30, ha="right")
    ax.set_ylabel("%")
    ax.set_ylim(0, 125)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title("Answer accuracy per mode")
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    figs["accuracy"] = fig
    return figs


# -- main ------------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.search_modes", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=_names, default=None,
                    help="model(s), comma-separated (default: grounding's default model; offline: local)")
    ap.add_argument("--modes", type=_names, default=["none", "loop", "native"],
                    help="none, native, loop (the grid below) or loop:<engine>:<max_results>:<max_steps>")
    ap.add_argument("--engines", type=_names, default=None,
                    help="engines of the loop grid (default: the default engine; offline: searxng,local)")
    ap.add_argument("--max-results", type=_ints, default=[3])
    ap.add_argument("--max-steps", type=_ints, default=[1])
    ap.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    ap.add_argument("--limit", type=int, default=None, help="only the first N questions")
    ap.add_argument("--offline", action="store_true", help="fakes on 127.0.0.1 and the local model; no network")
    ap.add_argument("--native-model", default="perplexity/sonar",
                    help="offline: the native-search model FakeNative plays (default perplexity/sonar)")
    ap.add_argument("--search-context-size", default="medium", choices=("low", "medium", "high"))
    ap.add_argument("--distractors", type=int, default=200,
                    help="offline: other shared pages added to the local corpus (default 200)")
    ap.add_argument("--corpus-dir", type=Path, default=None, help="offline: where the local corpus is written")
    ap.add_argument("--corpus", choices=(BUILTIN,), default=None,
                    help="offline: the local engine answers from Python's documentation, the built-in corpus "
                         "(with --questions benchmarks/questions/python_docs.jsonl), instead of shared-data pages")
    ap.add_argument("--temperature", type=float, default=0.0, help="sent to the model (default 0; -1: not sent)")
    ap.add_argument("--timeout", type=float, default=None, help="per model call, seconds")
    ap.add_argument("--fetch-cited", action=argparse.BooleanOptionalAction, default=None,
                    help="fetch cited pages the run did not read, to check native citations (default: on online)")
    ap.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True,
                    help="one discarded request per model first (litellm's import, the local model's start)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--name", default=NAME, help=f"file name stem of the outputs (default {NAME})")
    ap.add_argument("--seed", type=int, default=SEED)
    return ap


def plan(args: argparse.Namespace, world: OfflineWorld | None) -> tuple[list[tuple[ModelSpec, Mode]], list[str]]:
    """The (model, mode) runs, and the notes on what was skipped."""
    from providers.search import default_engine_name

    engines = args.engines or (["local"] if world and world.corpus == BUILTIN else
                               ["searxng", "local"] if world else [default_engine_name()])
    modes = expand_modes(args.modes, engines, args.max_results, args.max_steps)
    runs: list[tuple[ModelSpec, Mode]] = []
    skipped: list[str] = []
    if world is not None:
        bad = [m.engine for m in modes if m.kind == "loop" and m.engine not in OFFLINE_ENGINES]
        if bad:
            raise SystemExit(f"--offline serves the engines {', '.join(OFFLINE_ENGINES)}, not {', '.join(bad)}")
        specs = [world.model(name) for name in (args.model or ["local"])]
        runs += [(spec, m) for spec in specs for m in modes if m.kind != "native"]
        if any(m.kind == "native" for m in modes):
            runs.append((world.native_model(args.native_model), Mode("native")))
        return runs, skipped
    from grounding.native import supports_native_search
    from grounding.target import default_model

    for name in args.model or [default_model()]:
        spec = ModelSpec(name, name, native=supports_native_search(name) if name != "local" else False)
        for m in modes:
            if m.kind == "native" and not spec.native:
                skipped.append(f"`native` for {name}: it has no native search (web_search_options); "
                               "only the tool loop applies")
                continue
            runs.append((spec, m))
    return runs, skipped


def by_page_type(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        if not r.get("page_type"):
            continue
        cell = out.setdefault(f"{r['model']} || {r['mode']}", {}).setdefault(r["page_type"], {"n": 0, "hits": 0})
        cell["n"] += 1
        cell["hits"] += r["contains"]
    for v in out.values():
        for cell in v.values():
            cell["accuracy"] = round(cell["hits"] / cell["n"], 4)
    return out


def main(argv: list[str] | None = None) -> int:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Pydantic serializer warnings")  # litellm's cost dicts
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        questions = load_questions(args.questions)
    except QuestionFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        expand_modes(args.modes, args.engines or ["local"], args.max_results, args.max_steps)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    total = len(questions)
    all_questions = questions  # the local corpus holds every question's page, whatever --limit says
    if args.limit is not None:
        questions = questions[: max(0, args.limit)]
    seed = seed_everything(args.seed)
    temperature = None if args.temperature is not None and args.temperature < 0 else args.temperature
    fetch_cited = (not args.offline) if args.fetch_cited is None else (args.fetch_cited and not args.offline)

    saved_env = dict(os.environ)
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    world: OfflineWorld | None = None
    if args.offline:
        os.environ["GROUNDING_ALLOW_PRIVATE_NETWORKS"] = "1"
        for key in ("GROUNDING_MODEL", "GROUNDING_ENGINE", "GROUNDING_CORPUS"):
            os.environ.pop(key, None)
        world = OfflineWorld(all_questions, corpus_dir=args.corpus_dir or default_corpus_dir(),
                             distractors=args.distractors, seed=seed, corpus=args.corpus,
                             say=lambda m: print(f"[{args.name}] {m}", file=sys.stderr))
        os.environ.update(world.env)
    shared = world.shared if world else _shared_if_available()
    pages = Pages(shared, world.web.url if world and world.web else None)
    load_before = environment()["loadavg"]
    rows: list[dict[str, Any]] = []
    warmup: dict[str, float] = {}
    runs: list[tuple[ModelSpec, Mode]] = []
    skipped: list[str] = []
    capturing = False
    try:
        runs, skipped = plan(args, world)

        def one(spec: ModelSpec, mode: Mode, q: Question) -> tuple[Any, float, str | None]:
            if spec.scripted_native and world is not None:
                world.script_native(q)
            pages.clear_request()  # a request's citations are judged against that request's own sources
            return ask(spec, mode, q, temperature=temperature, timeout=args.timeout,
                       context_size=args.search_context_size)

        with capture_page_texts(pages) as capturing:
            if args.warmup and questions:
                for label in dict.fromkeys(spec.label for spec, _ in runs):
                    spec, mode = _warmup_run([(s, m) for s, m in runs if s.label == label])
                    print(f"[{args.name}] warm-up (discarded): {spec.label} {mode.label}", file=sys.stderr)
                    warmup[f"{spec.label} {mode.label}"] = round(one(spec, mode, questions[0])[1], 1)
            work = [(spec, mode, q) for spec, mode in runs for q in questions]
            for spec, mode, q in progress(work, total=len(work), desc="search modes", unit="answer"):
                response, wall, error = one(spec, mode, q)
                if fetch_cited and response is not None:
                    fetch_texts([a.url_citation.url for a in response.choices[0].message.annotations or []], pages)
                rows.append(score(q, spec, mode, response, wall, error, pages))
    finally:
        if world is not None:
            world.close()
            os.environ.clear()
            os.environ.update(saved_env)

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["mode"]), []).append(r)
    summary = [summarize(g) for g in groups.values()]
    notes = _notes(args, world, capturing)
    report = {
        "command": " ".join(["python -m benchmarks.search_modes", *(argv if argv is not None else sys.argv[1:])]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "seed": seed,
        "environment": environment(("matplotlib", "tqdm", "xllamacpp")),
        "loadavg_before": load_before,
        "loadavg_after": environment()["loadavg"],
        "settings": {
            "questions": str(args.questions), "questions_total": total, "questions_run": len(questions),
            "offline": args.offline, "models": list(dict.fromkeys(s.label for s, _ in runs)),
            "modes": list(dict.fromkeys(m.label for _, m in runs)),
            "temperature": temperature, "timeout": args.timeout, "search_context_size": args.search_context_size,
            "support_threshold": SUPPORT_THRESHOLD, "fetch_cited": fetch_cited,
            "distractors": args.distractors if args.offline else None,
            "corpus": args.corpus,
            "corpus_pages": len(world.corpus_pages) if world else None,
            "corpus_dir": str(world.corpus_dir) if world else None,
            "env": {k: os.environ.get(k) for k in ("GROUNDING_SOURCE_TOKENS", "GROUNDING_CORPUS",
                                                    "LITELLM_LOCAL_MODEL_COST_MAP")},
        },
        "warmup_wall_ms": warmup,
        "skipped": skipped,
        "notes": notes,
        "summary": summary,
        "accuracy_by_page_type": by_page_type(rows),
        "rows": rows,
    }
    write_outputs(args.out, args.name, report, markdown(report), figures(summary))
    for m in summary:
        print(f"{m['model']:>28} {m['mode']:<22} contains {_pct(m['accuracy_contains']):>6}  F1 {m['token_f1']:.3f}  "
              f"cit.P {_pct(m['citation_precision']):>6}  cit.R {_pct(m['citation_recall']):>6}  "
              f"p50 {_ms(m['latency_ms']['p50'])}", file=sys.stderr)
    return 0


def _warmup_run(runs: Sequence[tuple[ModelSpec, Mode]]) -> tuple[ModelSpec, Mode]:
    """What to warm a model up with: its first tool-loop mode (imports litellm, the fetcher,
    trafilatura, the index), or for the slow local model its ``none`` mode (starts its server)."""
    local = runs[0][0].model == "local" or runs[0][0].model.startswith("local/")
    for spec, mode in runs:
        if mode.kind == ("none" if local else "loop"):
            return spec, mode
    return runs[0]


def _shared_if_available() -> dict[str, Any]:
    """The shared-data pages (gold texts of the shipped set's pages), or nothing when the data is absent."""
    try:
        from tests.fakes.ranked_search import shared_pages

        return shared_pages()
    except (ImportError, OSError):
        return {}


def _notes(args: argparse.Namespace, world: OfflineWorld | None, capturing: bool) -> list[str]:
    notes = [
        "accuracy (contains): a gold answer, normalized, occurs in the normalized answer; token F1: SQuAD's, "
        "best gold answer (low for long but correct answers)",
        f"citation precision: annotations whose span has >= {SUPPORT_THRESHOLD:.0%} of its content words, and all "
        "of its numbers not taken from the question, in the cited page's text (the text the library used, else the gold text); spans with no "
        "content word, or whose page text is unknown, are unverifiable and left out",
        "citation recall: questions whose answer cites a gold URL; gold retrieved: the gold page was among the "
        "sources given to the model (native: among the cited pages); answer reachable (tool loop): the gold page "
        "was given and its text, as the library extracted or indexed it, contains a gold answer; answer shown: "
        "the same in the text the model was shown (long sources are trimmed to the model's source budget): "
        "retrieved -> reachable -> shown -> accuracy says where answers are lost",
        "latency: metadata.total_duration_ms, nearest-rank percentiles; cost: metadata.cost_usd (n/a: nothing "
        "litellm could price)",
    ]
    if not capturing:
        notes.append("page texts of the run could not be captured (grounding.gather.Gatherer._page is gone): "
                     "precision used gold texts only")
    if world is not None and world.corpus == BUILTIN:
        notes.append("offline, built-in corpus: `local` is the index of Python's documentation (reference topics "
                     "and every documented standard-library module, rendered by pydoc), as `grounding ask` uses it")
    elif world is not None:
        notes += [
            "offline: FakeWeb serves the shared pages on 127.0.0.1; the web engines are SharedDataSearch "
            "(bm25 over every shared page's gold text); `local` indexes the question pages' HTML plus "
            f"{args.distractors} seeded-random other shared pages; fake servers add no latency, so latencies "
            "are the library's own work (and the local model's, for `local`)",
            "fake-searcher answers with the first sentence of each of its first 3 sources; fake-reader answers "
            "with the best-matching sentence of its sources (tests/fakes/reader.py): their accuracy measures "
            "retrieval + extraction + source trimming, not a language model; `none` gives them nothing to read",
            f"native: {args.native_model} played by FakeNative, its answer scripted per question from the same "
            "index (best sentence of the top 3 pages, cited to its real URL): accuracy is not meaningful, the "
            "row checks litellm's native path, the citation normalization and the metrics",
        ]
    return notes


if __name__ == "__main__":
    sys.exit(main())
