"""Citation truth: precision and recall of the emitted annotations with ``verify`` off, flag and repair,
and the judges' own precision and recall, on a labelled set of misbehaving answers over real pages.

Usage::

    python -m benchmarks citations [--limit N] [--split dev|test|both] [--verifier MODEL]
                                   [--judge-limit N] [--out DIR] [--name NAME] [--seed S]

**The labelled set.** Real pages of ``../shared/data`` are grouped in threes:
the *dev* split from the scrapinghub news articles (used to set the lexical
judge's thresholds), the *test* split from WCXB development pages in English
(never used for tuning). For each group, a fake model (``fake-mixed``,
``tests/fakes/claims.py``) searches once, is shown the three pages as the
library extracted them, and answers with one claim of each kind: correct,
paraphrased (synonyms, dropped openers, contractions spelled out), cited by a
link, introduced by "According to [title](url)", misattributed (a sentence of
page j cited as page k), a number changed by one digit, negated, a name
swapped, made up, cited by a link to a URL never fetched, and an echo of
"claim [n]". The fake records, for each claim, which pages really support it.

**End to end.** Every question goes through ``grounding.completion`` over
real HTTP on 127.0.0.1 (FakeWeb serving the pages, the fake model speaking
OpenAI's wire format through litellm) once per ``verify`` mode. Then:

* *precision*: emitted annotations whose cited page supports the claim the
  span covers, over all emitted annotations;
* *recall*: correct citations the model wrote (correct, paraphrase, link,
  leading) still emitted, to the same page, over all of them;
* *repaired*: misattributed citations emitted to the page that says it;
* per kind: how many claims end up cited right, cited wrong, or uncited.

**The judges.** Every (claim, cited page) pair, and (claim, true page) for
misattributed claims, judged on its own; a verdict of supported or partial
counts as "supports". Precision and recall of that against the labels, and
the time per pair and per answer. ``--verifier MODEL`` also measures a model
judge (``local``: the embedded model, slow: use ``--judge-limit``).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from benchmarks.common import DEFAULT_OUT, SEED, environment, new_figure, progress, seed_everything, write_outputs

MODES = ("off", "flag", "repair")
GOOD_KINDS = ("correct", "paraphrase", "link", "leading")
_STOP = frozenset("the of and to in a is that for it on was with as are by be this at from have has".split())


@dataclass(frozen=True)
class Group:
    """Three pages asked about together, and the question that names them."""

    split: str
    question: str
    pages: tuple[str, ...]  # "scrapinghub/<id>" / "wcxb/NNNN"


def _english(text: str) -> bool:
    words = re.findall(r"[a-z]+", text.lower())
    return len(words) >= 150 and sum(w in _STOP for w in words) / len(words) >= 0.18


def groups(split: str, seed: int) -> list[Group]:
    """The page groups of a split (deterministic for ``seed``)."""
    import random

    from tests.fakes.web import gold, scrapinghub_ids, wcxb_ids

    if split == "dev":
        pages = [f"scrapinghub/{i}" for i in scrapinghub_ids()]
    else:
        meta = json.loads((Path(os.environ.get("GROUNDING_TEST_DATA") or _data_dir()) / "wcxb" / "metadata.json")
                          .read_text("utf-8"))["files"]
        pages = [f"wcxb/{i}" for i in wcxb_ids()
                 if meta.get(i, {}).get("page_type") in ("article", "documentation", "service", "forum")
                 and _english(gold(f"wcxb/{i}").text)]
    rng = random.Random(f"{seed}:{split}")
    rng.shuffle(pages)
    out = []
    for n in range(len(pages) // 3):
        trio = tuple(pages[3 * n:3 * n + 3])
        out.append(Group(split, f"[{split} {n:03d}] what do these pages say?", trio))
    return out


def _data_dir() -> str:
    from tests.fakes.web import DATA_DIR

    return str(DATA_DIR)


class LabelledEngine:
    """The search engine of the run: each question's three pages, on the fake web."""

    name = "labelled"

    def __init__(self, base: str, groups: Sequence[Group]) -> None:
        self.base = base
        self.by_question = {g.question: g.pages for g in groups}

    async def search(self, query: str, max_results: int):
        from providers.search import SearchHit

        return [SearchHit(url=f"{self.base}/{p}", title="") for p in self.by_question.get(query, ())][:max_results]


# -- scoring ------------------------------------------------------------------------------


def claim_spans(content: str, scripted: Any) -> list[tuple[int, int] | None]:
    """Where each claim (its sentence and citation) stands in the answer: the fake model
    recorded it; the answer is checked to be the text it wrote."""
    if content != scripted.text:
        return [None] * len(scripted.claims)
    return list(scripted.positions)


def score_answer(content: str, annotations: Sequence[dict], scripted: Any, urls: Sequence[str]) -> dict:
    """Per-annotation correctness and per-claim outcomes of one answer."""
    claims = scripted.claims
    index = {u: k for k, u in enumerate(urls)}
    spans = claim_spans(content, scripted)
    cited: dict[int, set[int]] = defaultdict(set)
    emitted = correct = 0
    stray = 0
    for a in annotations:
        c = a["url_citation"]
        emitted += 1
        k = index.get(c["url"])
        s, e = c["start_index"], c["end_index"]
        hits = [i for i, sp in enumerate(spans) if sp and sp[0] < e and sp[1] > s]
        if not hits:
            stray += 1
            continue
        i = max(hits, key=lambda i: min(e, spans[i][1]) - max(s, spans[i][0]))
        if k is not None:
            cited[i].add(k)
            if k in claims[i].supported_by:
                correct += 1
    kinds: dict[str, Counter] = defaultdict(Counter)
    good_written = good_kept = misattrib = repaired = 0
    for i, claim in enumerate(claims):
        got = cited.get(i, set())
        if not got:
            outcome = "uncited"
        elif got <= set(claim.supported_by):
            outcome = "cited right"
        else:
            outcome = "cited wrong"
        kinds[claim.kind][outcome] += 1
        if claim.kind in GOOD_KINDS:
            good_written += 1
            good_kept += claim.cited in got
        if claim.kind == "misattrib":
            misattrib += 1
            repaired += bool(got) and got <= set(claim.supported_by)
    return {"emitted": emitted, "correct": correct, "stray": stray, "good_written": good_written,
            "good_kept": good_kept, "misattrib": misattrib, "repaired": repaired,
            "kinds": {k: dict(v) for k, v in kinds.items()}}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def summarize(rows: Sequence[dict]) -> dict:
    total = Counter()
    kinds: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        for key in ("emitted", "correct", "stray", "good_written", "good_kept", "misattrib", "repaired"):
            total[key] += r[key]
        for kind, outcomes in r["kinds"].items():
            kinds[kind].update(outcomes)
    return {"answers": len(rows), **dict(total),
            "precision": _ratio(total["correct"], total["emitted"]),
            "recall": _ratio(total["good_kept"], total["good_written"]),
            "repaired": _ratio(total["repaired"], total["misattrib"]),
            "kinds": {k: dict(v) for k, v in sorted(kinds.items())}}


# -- the judges on their own --------------------------------------------------------------


def judge_pairs(claims: Sequence[Any], urls: Sequence[str]) -> list[tuple[str, int, bool, str]]:
    """(claim text, source index, truth, kind) for each claim's cited source, and its true one."""
    out = []
    for c in claims:
        if c.kind in ("echo", "unfetched"):
            continue
        if c.cited is not None:
            out.append((c.text, c.cited, c.cited in c.supported_by, c.kind))
        if c.kind == "misattrib" and c.origin is not None:
            out.append((c.text, c.origin, True, c.kind))
    return out


def judge_figures(items: Sequence[tuple[list[tuple[str, int, bool, str]], list[tuple[str, str, str]]]],
                  judge: Any, *, limit: int | None = None) -> dict:
    """The judge's precision and recall of "supports" against the labels, and its time."""
    from grounding.verify import Corpus, SourceText

    tp = fp = fn = tn = 0
    strict_tp = strict_fp = 0
    per_kind: dict[str, Counter] = defaultdict(Counter)
    times: list[float] = []
    pairs_done = 0
    errors = 0
    for pairs, shown in items:
        if limit is not None and pairs_done >= limit:
            break
        corpus = Corpus([SourceText(k + 1, url, title, text) for k, (url, title, text) in enumerate(shown)])
        asked = [(text, k + 1) for text, k, _, _ in pairs]
        t0 = time.perf_counter()
        try:
            verdicts = asyncio.run(judge.judge(corpus, asked))
        except Exception as exc:  # a model judge that fails is counted, the run goes on
            errors += 1
            print(f"judge failed: {exc}", file=sys.stderr)
            continue
        times.append((time.perf_counter() - t0) * 1000)
        pairs_done += len(pairs)
        for (_, _, truth, kind), j in zip(pairs, verdicts):
            says = j.verdict in ("supported", "partial")
            per_kind[kind][f"{'supported' if truth else 'unsupported'}->{j.verdict}"] += 1
            if says and truth:
                tp += 1
            elif says:
                fp += 1
            elif truth:
                fn += 1
            else:
                tn += 1
            if j.verdict == "supported":
                strict_tp += truth
                strict_fp += not truth
    return {"judge": judge.name, "pairs": tp + fp + fn + tn, "answers": len(times), "errors": errors,
            "precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
            "strict_precision": _ratio(strict_tp, strict_tp + strict_fp), "strict_recall": _ratio(strict_tp, tp + fn),
            "tp": tp, "fp": fp, "fn": fn, "tn": tn,
            "ms_per_answer": round(statistics.median(times), 2) if times else None,
            "ms_per_pair": round(sum(times) / max(tp + fp + fn + tn, 1), 3) if times else None,
            "per_kind": {k: dict(v) for k, v in sorted(per_kind.items())}}


# -- the run ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ["GROUNDING_ALLOW_PRIVATE_NETWORKS"] = "1"
    import grounding
    from grounding.verify import LexicalJudge, judge_for
    from providers.search import register_engine
    from tests.fakes.llm import FakeLLM
    from tests.fakes.policies import SCRIPTED
    from tests.fakes.web import FakeWeb

    splits = ("dev", "test") if args.split == "both" else (args.split,)
    report: dict[str, Any] = {"splits": {}}
    with FakeWeb() as web, FakeLLM() as llm:
        for split in splits:
            gs = groups(split, args.seed)
            if args.limit is not None:
                gs = gs[:args.limit]
            register_engine("labelled", LabelledEngine(web.url, gs))
            rows: dict[str, list[dict]] = {m: [] for m in MODES}
            judged: list[tuple[list, list]] = []
            check_ms: list[float] = []
            for g in progress(gs, total=len(gs), desc=f"citations {split}", unit="answer"):
                for mode in MODES:
                    r = grounding.completion(
                        model="openai/fake-mixed", api_base=f"{llm.url}/v1", api_key="bench",
                        messages=[{"role": "user", "content": g.question}],
                        web_search={"engine": "labelled", "max_results": 3}, citations={"verify": mode})
                    scripted, shown = SCRIPTED[g.question]
                    msg = r.choices[0].message
                    annotations = [a.to_dict() for a in msg.annotations or []]
                    urls = [u for u, _, _ in shown]
                    row = score_answer(msg.content or "", annotations, scripted, urls)
                    row["question"] = g.question
                    rows[mode].append(row)
                    if mode == "repair":
                        check_ms.append(r.metadata.citations.duration_ms or 0.0)
                        full = {s.url: s for s in r.metadata.sources}
                        texts = _full_texts(urls, web.url)
                        judged.append((judge_pairs(scripted.claims, urls),
                                       [(u, (full[u].title if u in full else ""), texts[u]) for u in urls]))
            lexical = judge_figures(judged, LexicalJudge())
            split_report = {
                "groups": len(gs), "pages": [p for g in gs for p in g.pages],
                "modes": {m: summarize(rows[m]) for m in MODES},
                "check_ms_per_answer": {"p50": round(statistics.median(check_ms), 2) if check_ms else None,
                                        "p95": round(sorted(check_ms)[int(0.95 * (len(check_ms) - 1))], 2)
                                        if check_ms else None},
                "judges": [lexical],
            }
            if args.verifier:
                split_report["judges"].append(judge_figures(judged, judge_for(args.verifier), limit=args.judge_limit))
            report["splits"][split] = split_report
    return report


def _full_texts(urls: Sequence[str], base: str) -> dict[str, str]:
    """The whole extracted text of each page, as the library extracts it."""
    from providers.extract import extract
    from tests.fakes.web import page_html

    out = {}
    for u in urls:
        html = page_html(u[len(base):])
        out[u] = extract(html or b"", u).text if html else ""
    return out


def markdown(report: dict, command: str) -> str:
    lines = ["# Citation truth", "", f"Command: `{command}`", ""]
    for split, rep in report["splits"].items():
        lines += [f"## {split} split: {rep['groups']} answers over {len(rep['pages'])} pages", "",
                  "| verify | annotations | precision | recall (correct citations kept) | misattributed repaired |",
                  "|---|---:|---:|---:|---:|"]
        for mode, m in rep["modes"].items():
            lines.append(f"| {mode} | {m['emitted']} | {_pct(m['precision'])} | {_pct(m['recall'])} | "
                         f"{_pct(m['repaired'])} |")
        lines += ["", "Per kind of claim (repair): cited right / cited wrong / uncited", "",
                  "| kind | off | repair |", "|---|---|---|"]
        for kind in sorted(rep["modes"]["repair"]["kinds"]):
            def cell(mode: str) -> str:
                k = rep["modes"][mode]["kinds"].get(kind, {})
                return f"{k.get('cited right', 0)} / {k.get('cited wrong', 0)} / {k.get('uncited', 0)}"
            lines.append(f"| {kind} | {cell('off')} | {cell('repair')} |")
        lines += ["", "Judges (\"supports\" = supported or partial; strict = supported only):", "",
                  "| judge | pairs | precision | recall | strict precision | strict recall | ms / answer | ms / pair |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for j in rep["judges"]:
            lines.append(f"| {j['judge']} | {j['pairs']} | {_pct(j['precision'])} | {_pct(j['recall'])} | "
                         f"{_pct(j['strict_precision'])} | {_pct(j['strict_recall'])} | {j['ms_per_answer']} | "
                         f"{j['ms_per_pair']} |")
        c = rep["check_ms_per_answer"]
        lines += ["", f"Checking time per answer inside the library (repair, lexical judge): p50 {c['p50']} ms, "
                  f"p95 {c['p95']} ms.", ""]
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def figures(report: dict) -> dict:
    figs = {}
    fig, ax = new_figure(7, 3.8)
    labels, width = [], 0.38
    for n, (split, rep) in enumerate(report["splits"].items()):
        xs = [i + n * width for i in range(len(MODES))]
        ax.bar(xs, [100 * (rep["modes"][m]["precision"] or 0) for m in MODES], width * 0.48, label=f"{split} precision")
        ax.bar([x + width * 0.5 for x in xs], [100 * (rep["modes"][m]["recall"] or 0) for m in MODES], width * 0.48,
               label=f"{split} recall")
        labels = list(MODES)
    ax.set_xticks([i + 0.3 for i in range(len(MODES))], labels)
    ax.set_ylabel("%")
    ax.set_ylim(0, 105)
    ax.axhline(99, color="grey", lw=0.6, ls="--")
    ax.set_title("Emitted annotations: precision and recall per verify mode")
    ax.legend(fontsize=7, loc="lower left")
    figs["modes"] = fig
    return figs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks citations", description=__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, default=100,
                   help="answers per split (default 100: dev has 60 groups, test is cut to 100 of 353)")
    p.add_argument("--split", choices=("dev", "test", "both"), default="both")
    p.add_argument("--verifier", default=None, help="also measure a model judge (a model id; local works offline)")
    p.add_argument("--judge-limit", type=int, default=None, help="pairs the model judge is measured on")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--name", default="citations")
    p.add_argument("--seed", type=int, default=SEED)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    seed_everything(args.seed)
    t0 = time.perf_counter()
    report = run(args)
    report.update(command="python -m benchmarks citations " + " ".join(argv or sys.argv[1:]),
                  seed=args.seed, environment=environment(("snowballstemmer",)),
                  seconds=round(time.perf_counter() - t0, 1))
    write_outputs(args.out, args.name, report, markdown(report, report["command"]), figures(report))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
