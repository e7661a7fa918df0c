"""Extraction benchmark: the library's extractor on WCXB (dev) and scrapinghub.

Usage::

    python -m benchmarks.extraction [--limit N] [--out DIR] [--dataset wcxb|scrapinghub|all]
                                    [--extractor NAME] [--save-text] [--seed N]
    python -m benchmarks.extraction --compare [--extractors A,B,...] [--limit N] [--out DIR]

``--extractor`` picks what is measured (default: ``default``, the library's
``providers.extract.extract``):

``default``
    ``providers.extract.extract(html_bytes, url)``, the library's extractor.
``trafilatura``
    plain ``trafilatura.extract(html, include_comments=False)``, the call the
    published figures were made with.
``traf:KEY=VAL,...``
    ``trafilatura.extract`` with those options (e.g.
    ``traf:favor_recall=1,include_tables=0,output_format=markdown``).
``trafilatura-defaults``
    ``trafilatura.extract(html, url=url)`` with every option at its default
    (comments included).
``readability``, ``justext``, ``html-text``
    readability-lxml, jusText and html-text, called as their published
    evaluations call them (see :mod:`benchmarks.extractors`).
``rs-trafilatura``
    the rs-trafilatura crate through the ``trafipy`` bindings, when installed
    (wheels for Python >= 3.12 only; rs-trafilatura's own PyPI package is an
    sdist that needs crates.io to build).
``MODULE:FUNC``
    any function ``FUNC(html_bytes, url)`` returning an object with ``text``
    (and ``title``) or a string.

``--compare`` runs each extractor of ``--extractors`` (default: ``default``,
``trafilatura-defaults``, ``readability``, ``justext``, ``html-text``) as
``python -m benchmarks.extraction --extractor NAME`` in a fresh process, so
that each one's peak RSS is its own, keeps their reports in
``<out>/extraction-compare-runs/`` and writes ``extraction-compare.json``,
``extraction-compare.md`` (a table per dataset: F1, P, R, F1 per WCXB page
type, pages/s wall and per CPU-second, peak RSS, published figures) and two
plots: ``extraction-compare-wcxb_by_type.png`` (F1 by page type, a bar per
extractor) and ``extraction-compare-f1_vs_speed.png`` (F1 against pages per
CPU-second, both datasets). An entry may be ``NAME=VALUE`` to show VALUE
under NAME, e.g. ``previous=old_extract:extract`` for a copy of an older
``providers/extract.py`` on ``PYTHONPATH``; separate entries by ``;`` when
one has commas (``traf:favor_recall=1,include_tables=0``).

What is reported, per dataset, into ``--out`` (``benchmarks/out/`` by default)
as ``extraction-<label>.json`` (summary, per-page scores, versions, seed),
``extraction-<label>.md`` and ``extraction-<label>-wcxb_by_type.png``:

* WCXB dev: mean word-level F1 (and P, R) overall and per page type, with the
  benchmark's own rule for pages whose gold ``main_content`` is empty (1.0 if
  the extraction is empty too, else 0.0). Page types come from each
  ground-truth file's ``_internal.page_type.primary`` (their counts match the
  WCXB README; ``metadata.json`` is from another version of the split).
* scrapinghub: shingle F1 / P / R with the benchmark's definition (see
  :mod:`benchmarks.scoring`), ± bootstrap standard deviations.
* speed: pages/s of the extraction calls alone, in one process, with every
  page read and decompressed beforehand and one warm-up call before timing;
  both wall clock and per CPU-second of the process (the latter moves less
  when other work shares the machine, but still ~10-20 % on 2 busy cores:
  compare extractors run back to back, and see the load averages recorded).
* memory: peak RSS (VmHWM, reset before each dataset where the kernel allows)
  and its growth over the RSS with all pages loaded.
* titles (WCXB): how often the extracted title equals the annotated one
  (case and whitespace folded) and their mean word F1.
"""
from __future__ import annotations

import argparse
import gc
import gzip
import importlib
import json
import os
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from benchmarks import scoring

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_OUT = Path(__file__).resolve().parent / "out"

# (title, text) from (html bytes, url)
ExtractFn = Callable[[bytes, "str | None"], "tuple[str | None, str]"]


# ---------------------------------------------------------------- extractors


def _as_pair(result: Any) -> tuple[str | None, str]:
    if result is None:
        return None, ""
    if isinstance(result, str):
        return None, result
    if isinstance(result, tuple):
        return result[0], result[1] or ""
    return getattr(result, "title", None), getattr(result, "text", None) or ""


def _parse_value(v: str) -> Any:
    low = v.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    return v


def make_extractor(name: str) -> tuple[ExtractFn, dict[str, Any]]:
    """The extraction function called ``name`` and a description of its settings."""
    if name == "default":
        from providers import extract as mod

        settings = {"function": "providers.extract.extract", "input": "bytes"}
        settings.update(getattr(mod, "SETTINGS", {}))
        return (lambda html, url: _as_pair(mod.extract(html, url))), settings

    if name == "trafilatura" or name.startswith("traf:"):
        import trafilatura

        opts: dict[str, Any] = {"include_comments": False}
        if name.startswith("traf:"):
            for part in filter(None, name[5:].split(",")):
                k, _, v = part.partition("=")
                opts[k.strip()] = _parse_value(v.strip())

        def run(html: bytes, url: str | None) -> tuple[str | None, str]:
            try:
                return None, trafilatura.extract(html, url=url, **opts) or ""
            except Exception:
                return None, ""

        return run, {"function": "trafilatura.extract", "options": opts, "input": "bytes"}

    from benchmarks.extractors import ADAPTERS

    if name in ADAPTERS:
        adapter = ADAPTERS[name]
        doc = (adapter.__doc__ or "").strip().splitlines()[0]
        return adapter, {"function": f"benchmarks.extractors.{adapter.__name__}", "call": doc, "input": "bytes"}

    if name == "rs-trafilatura":
        # rs-trafilatura itself is an sdist that needs crates.io to build; trafipy
        # (unofficial bindings to the same crate) ships wheels, for Python >= 3.12.
        import trafipy  # type: ignore[import-not-found]

        def run_rs(html: bytes, url: str | None) -> tuple[str | None, str]:
            try:
                res = trafipy.extract(html.decode("utf-8", "replace"), url=url)
            except Exception:
                return None, ""
            return None, res.text or ""

        return run_rs, {"function": "trafipy.extract (rs-trafilatura bindings), defaults", "input": "str (utf-8, replace)"}

    if ":" in name:
        mod_name, _, fn_name = name.partition(":")
        fn = getattr(importlib.import_module(mod_name), fn_name)
        return (lambda html, url: _as_pair(fn(html, url))), {"function": name, "input": "bytes"}

    raise SystemExit(f"unknown extractor {name!r}")


# ------------------------------------------------------------------- datasets


@dataclass
class Page:
    id: str
    url: str | None
    html: bytes
    gold: str
    page_type: str
    gold_title: str | None = None


def load_wcxb(root: Path, limit: int | None) -> list[Page]:
    gt_dir = root / "wcxb" / "dev" / "ground-truth"
    html_dir = root / "wcxb" / "dev" / "html"
    pages = []
    for gt_path in sorted(gt_dir.glob("*.json")):
        if limit is not None and len(pages) >= limit:
            break
        data = json.loads(gt_path.read_text(encoding="utf-8"))
        gt = data.get("ground_truth") or {}
        ptype = ((data.get("_internal") or {}).get("page_type") or {}).get("primary") or "unknown"
        with gzip.open(html_dir / f"{gt_path.stem}.html.gz", "rb") as f:
            html = f.read()
        pages.append(
            Page(
                id=gt_path.stem,
                url=data.get("url"),
                html=html,
                # Two files have no main_content key: empty gold, like the 19 with "".
                gold=gt.get("main_content") or "",
                page_type=ptype,
                gold_title=gt.get("title"),
            )
        )
    return pages


def load_scrapinghub(root: Path, limit: int | None) -> list[Page]:
    base = root / "scrapinghub"
    gt = json.loads((base / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for key in sorted(gt):
        if limit is not None and len(pages) >= limit:
            break
        with gzip.open(base / "html" / f"{key}.html.gz", "rb") as f:
            html = f.read()
        pages.append(Page(key, gt[key].get("url"), html, gt[key].get("articleBody") or "", "article"))
    return pages


# ------------------------------------------------------------------- running


def _proc_status() -> dict[str, int]:
    """VmRSS and VmHWM in KiB (Linux); empty elsewhere."""
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def _trim_heap() -> None:
    """Hand freed memory back to the OS (glibc), so RSS starts from what is live."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except Exception:
        pass


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _progress(total: int, desc: str):
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, file=sys.stderr, mininterval=1.0, unit="page")
    except ImportError:  # pragma: no cover

        class Counter:
            def __init__(self) -> None:
                self.n = 0

            def update(self, k: int = 1) -> None:
                self.n += k
                if self.n % 50 == 0 or self.n == total:
                    print(f"\r{desc}: {self.n}/{total}", end="", file=sys.stderr, flush=True)

            def close(self) -> None:
                print(file=sys.stderr)

        return Counter()


def run_pages(
    fn: ExtractFn, pages: list[Page], desc: str, use_tracemalloc: bool = False
) -> tuple[list[tuple[str | None, str, float]], dict[str, Any]]:
    """Extract every page; (title, text, seconds) per page and the memory figures."""
    # One warm-up call first: imports and lazy set-up are not the extraction's cost.
    fn(b"<html><head><title>warm</title></head><body><p>warm up</p></body></html>", None)
    _trim_heap()
    reset = _reset_peak_rss()
    before = _proc_status()
    if use_tracemalloc:
        import tracemalloc

        tracemalloc.start()
    per_page_peak = 0
    cpu_total = 0.0
    results = []
    bar = _progress(len(pages), desc)
    for page in pages:
        if use_tracemalloc:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        c0 = time.process_time()
        t0 = time.perf_counter()
        title, text = fn(page.html, page.url)
        dt = time.perf_counter() - t0
        cpu_total += time.process_time() - c0
        if use_tracemalloc:
            per_page_peak = max(per_page_peak, tracemalloc.get_traced_memory()[1] - base)
        results.append((title, text, dt))
        bar.update(1)
    bar.close()
    after = _proc_status()
    mem: dict[str, Any] = {
        "rss_with_pages_loaded_mib": round(before.get("VmRSS", 0) / 1024, 1),
        "peak_rss_mib": round(after.get("VmHWM", 0) / 1024, 1),
        "peak_rss_growth_mib": round((after.get("VmHWM", 0) - before.get("VmRSS", 0)) / 1024, 1),
        "peak_rss_reset_before_run": reset,
        "cpu_seconds": round(cpu_total, 2),
    }
    if use_tracemalloc:
        import tracemalloc

        tracemalloc.stop()
        mem["tracemalloc_max_per_page_mib"] = round(per_page_peak / 2**20, 1)
        mem["note"] = "tracemalloc on: the timing figures of this run are slowed by it"
    return results, mem


def _norm_title(t: str | None) -> str:
    return " ".join((t or "").casefold().split())


def _paragraphs(text: str) -> int:
    return len([p for p in re.split(r"\n\s*\n", text) if p.strip()])


def score_wcxb(pages: list[Page], results) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = []
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for page, (title, text, dt) in zip(pages, results):
        prf = scoring.wcxb_prf(text, page.gold)
        row = {
            "id": page.id,
            "type": page.page_type,
            "f1": round(prf.f1, 5),
            "precision": round(prf.precision, 5),
            "recall": round(prf.recall, 5),
            "seconds": round(dt, 5),
            "pred_words": sum(scoring.wcxb_tokens(text).values()),
            "gold_words": sum(scoring.wcxb_tokens(page.gold).values()),
            "pred_lines": len([ln for ln in text.splitlines() if ln.strip()]),
            "gold_paragraphs": _paragraphs(page.gold),
            "title": title,
            "gold_title": page.gold_title,
        }
        rows.append(row)
        by_type[page.page_type].append(row)

    def agg(rs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "pages": len(rs),
            "f1": round(scoring.mean(r["f1"] for r in rs), 4),
            "precision": round(scoring.mean(r["precision"] for r in rs), 4),
            "recall": round(scoring.mean(r["recall"] for r in rs), 4),
        }

    nonempty = [r for r in rows if r["gold_words"] > 0]
    titled = [r for r in rows if r["gold_title"]]
    multi = [r for r in nonempty if r["gold_paragraphs"] >= 3]
    summary = {
        "overall": agg(rows),
        "by_type": {t: agg(rs) for t, rs in sorted(by_type.items(), key=lambda kv: -len(kv[1]))},
        "gold_empty_pages": len(rows) - len(nonempty),
        "gold_empty_pages_scored_1": sum(1 for r in rows if r["gold_words"] == 0 and r["f1"] == 1.0),
        "f1_on_nonempty_gold": agg(nonempty)["f1"],
        "empty_extractions_on_nonempty_gold": sum(1 for r in nonempty if r["pred_words"] == 0),
        "title_exact_match": round(
            scoring.mean(float(_norm_title(r["title"]) == _norm_title(r["gold_title"])) for r in titled), 4
        ),
        "title_word_f1": round(scoring.mean(scoring.wcxb_f1(r["title"], r["gold_title"]) for r in titled), 4),
        "titled_pages": len(titled),
        "paragraph_breaks_kept": round(scoring.mean(float(r["pred_lines"] >= 3) for r in multi), 4),
        "paragraph_breaks_note": "share of pages whose gold has >= 3 paragraphs where the extraction has >= 3 lines",
    }
    return summary, rows


def score_scrapinghub(
    pages: list[Page], results, n_bootstrap: int, seed: int = 0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    tp_fp_fns = []
    accs = []
    rows = []
    for page, (_title, text, dt) in zip(pages, results):
        x = scoring.shingle_tp_fp_fn(page.gold, text)
        tp_fp_fns.append(x)
        accs.append(scoring.shingle_accuracy(page.gold, text))
        rows.append(
            {
                "id": page.id,
                "tp_fp_fn": [round(v, 5) for v in x],
                "precision": round(scoring.shingle_precision(*x), 5),
                "recall": round(scoring.shingle_recall(*x), 5),
                "seconds": round(dt, 5),
            }
        )
    m = scoring.shingle_metrics(tp_fp_fns)
    m["accuracy"] = scoring.mean(accs)
    m.update(scoring.shingle_bootstrap_std(tp_fp_fns, accs, n_bootstrap=n_bootstrap, seed=seed))
    summary = {k: round(v, 4) for k, v in m.items()}
    summary["pages"] = len(pages)
    summary["n_bootstrap"] = n_bootstrap
    summary["bootstrap_seed"] = seed
    return summary, rows


#: Packages whose versions every report records (besides environment()'s own).
VERSION_PACKAGES = ("readability-lxml", "justext", "html-text", "matplotlib", "tqdm", "htmldate",
                    "charset-normalizer", "trafipy")


def _versions() -> dict[str, Any]:
    from benchmarks.common import environment

    out = environment(VERSION_PACKAGES)
    try:
        from lxml import etree

        out["libxml2"] = ".".join(map(str, etree.LIBXML_VERSION))
    except Exception:
        pass
    return out


def _label(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("_") or "extractor"


def _speed(results, cpu_seconds: float) -> dict[str, float]:
    total = sum(dt for _t, _x, dt in results)
    secs = sorted(dt for _t, _x, dt in results)
    n = len(secs)
    return {
        "extraction_seconds": round(total, 2),
        "pages_per_second": round(n / total, 2) if total > 0 else 0.0,
        "cpu_seconds": round(cpu_seconds, 2),
        "pages_per_cpu_second": round(n / cpu_seconds, 2) if cpu_seconds > 0 else 0.0,
        "median_ms": round(1000 * secs[n // 2], 1) if n else 0.0,
        "p95_ms": round(1000 * secs[min(n - 1, int(n * 0.95))], 1) if n else 0.0,
        "max_ms": round(1000 * secs[-1], 1) if n else 0.0,
    }


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Extraction benchmark: `{report['extractor']}`", ""]
    lines.append(f"Command: `{report['command']}`  ")
    lines.append(f"Date: {report['date']}  ")
    v = report["versions"]
    lines.append(
        f"Versions: Python {v.get('python')}, trafilatura {v.get('trafilatura')}, lxml {v.get('lxml')} "
        f"(libxml2 {v.get('libxml2')}), {v.get('cpus')} CPUs  "
    )
    lines.append(f"Settings: `{json.dumps(report['settings'], sort_keys=True)}`  ")
    lines.append(f"Seed: {report.get('seed')} (scrapinghub bootstrap); limit: {report.get('limit')}")
    lines.append("")
    w = report.get("wcxb")
    if w:
        s = w["summary"]
        lines += [
            f"## WCXB dev ({s['overall']['pages']} pages)",
            "",
            "Word-level F1 (lowercased `\\w+` multisets), mean over pages; a page with empty gold "
            "scores 1 if the extraction is empty, else 0.",
            "",
            "| page type | pages | F1 | precision | recall |",
            "| --- | ---: | ---: | ---: | ---: |",
            "| **all** | {pages} | **{f1:.3f}** | {precision:.3f} | {recall:.3f} |".format(**s["overall"]),
        ]
        for t, a in s["by_type"].items():
            lines.append(f"| {t} | {a['pages']} | {a['f1']:.3f} | {a['precision']:.3f} | {a['recall']:.3f} |")
        sp, mem = w["speed"], w["memory"]
        lines += [
            "",
            f"- F1 on the {s['overall']['pages'] - s['gold_empty_pages']} pages with non-empty gold: "
            f"{s['f1_on_nonempty_gold']:.3f}; empty-gold pages: {s['gold_empty_pages']} "
            f"({s['gold_empty_pages_scored_1']} scored 1); empty extractions on non-empty gold: "
            f"{s['empty_extractions_on_nonempty_gold']}",
            f"- titles: exact match {s['title_exact_match']:.3f}, word F1 {s['title_word_f1']:.3f} "
            f"({s['titled_pages']} pages with a gold title)",
            f"- paragraph breaks kept: {s['paragraph_breaks_kept']:.3f} ({s['paragraph_breaks_note']})",
            f"- speed: {sp['pages_per_second']} pages/s wall clock ({sp['extraction_seconds']} s of extraction; "
            f"median {sp['median_ms']} ms, p95 {sp['p95_ms']} ms, max {sp['max_ms']} ms); "
            f"{sp['pages_per_cpu_second']} pages per CPU-second",
            f"- memory: peak RSS {mem['peak_rss_mib']} MiB, {mem['peak_rss_growth_mib']} MiB over the "
            f"{mem['rss_with_pages_loaded_mib']} MiB with all pages loaded"
            + (f"; tracemalloc max per page {mem['tracemalloc_max_per_page_mib']} MiB" if "tracemalloc_max_per_page_mib" in mem else ""),
            "",
        ]
    sh = report.get("scrapinghub")
    if sh:
        s = sh["summary"]
        sp, mem = sh["speed"], sh["memory"]
        lines += [
            f"## scrapinghub ({s['pages']} articles)",
            "",
            "4-token shingle F1 as the benchmark defines it (harmonic mean of mean precision and mean recall; "
            f"± = std over {s['n_bootstrap']} bootstrap resamples).",
            "",
            "| F1 | precision | recall | accuracy |",
            "| ---: | ---: | ---: | ---: |",
            f"| **{s['f1']:.3f}** ± {s.get('f1_std', 0):.3f} | {s['precision']:.3f} ± {s.get('precision_std', 0):.3f} "
            f"| {s['recall']:.3f} ± {s.get('recall_std', 0):.3f} | {s['accuracy']:.3f} ± {s.get('accuracy_std', 0):.3f} |",
            "",
            f"- speed: {sp['pages_per_second']} pages/s wall clock (median {sp['median_ms']} ms, p95 {sp['p95_ms']} ms); "
            f"{sp['pages_per_cpu_second']} pages per CPU-second",
            f"- memory: peak RSS {mem['peak_rss_mib']} MiB, {mem['peak_rss_growth_mib']} MiB over the "
            f"{mem['rss_with_pages_loaded_mib']} MiB with all pages loaded",
            "",
        ]
    return "\n".join(lines)


# ------------------------------------------------------------------- figures


def single_figures(report: dict[str, Any]) -> dict[str, Any]:
    """One extractor's plots: WCXB F1 / precision / recall by page type."""
    w = report.get("wcxb")
    if not w:
        return {}
    from benchmarks.common import new_figure

    s = w["summary"]
    groups = [("all", s["overall"])] + list(s["by_type"].items())
    fig, ax = new_figure(8.0, 4.0)
    x = list(range(len(groups)))
    for i, (metric, color) in enumerate((("f1", "#1f77b4"), ("precision", "#ff7f0e"), ("recall", "#2ca02c"))):
        ax.bar([xi + (i - 1) * 0.27 for xi in x], [g[metric] for _n, g in groups], width=0.27, label=metric, color=color)
    ax.set_xticks(x, [f"{n}\n({g['pages']})" for n, g in groups], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("word-level score (mean over pages)")
    ax.set_title(f"WCXB dev, {report['extractor']}", fontsize=10)
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    return {"wcxb_by_type": fig}


# ------------------------------------------------------------------- compare

#: What ``--compare`` runs unless ``--extractors`` says otherwise.
COMPARE_EXTRACTORS = ("default", "trafilatura-defaults", "readability", "justext", "html-text")

#: Published figures (shared/data/README.md, shared/data/wcxb/WCXB-README.md) for the
#: systems the compared extractors are, by ``--extractor`` name. WCXB does not say
#: which Readability it ran, nor trafilatura's release or options; scrapinghub's
#: trafilatura figure is its release 2.0.
PUBLISHED: dict[str, dict[str, Any]] = {
    "trafilatura": {"wcxb": 0.791, "scrapinghub": 0.958},
    "trafilatura-defaults": {"wcxb": 0.791, "scrapinghub": 0.958},
    "readability": {"wcxb": 0.675, "scrapinghub": 0.922},
    "justext": {"wcxb": 0.707, "scrapinghub": 0.804},
    "html-text": {"wcxb": None, "scrapinghub": 0.665},
    "rs-trafilatura": {"wcxb": 0.859, "scrapinghub": None},
}


def _compact(report: dict[str, Any], path: Path) -> dict[str, Any]:
    """The figures of one extractor's report that the comparison shows."""
    out: dict[str, Any] = {"settings": report.get("settings"), "report": str(path)}
    w = report.get("wcxb")
    if w:
        s = w["summary"]
        out["wcxb"] = {
            "overall": s["overall"],
            "by_type": s["by_type"],
            "f1_on_nonempty_gold": s["f1_on_nonempty_gold"],
            "empty_extractions_on_nonempty_gold": s["empty_extractions_on_nonempty_gold"],
            "title_exact_match": s["title_exact_match"],
            "speed": w["speed"],
            "memory": w["memory"],
        }
    sh = report.get("scrapinghub")
    if sh:
        out["scrapinghub"] = {"summary": sh["summary"], "speed": sh["speed"], "memory": sh["memory"]}
    return out


def _fmt(v: Any, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def render_compare_markdown(report: dict[str, Any]) -> str:
    v = report["environment"]
    res = report["extractors"]
    lines = [
        "# Extraction: the library's extractor against the others",
        "",
        f"Command: `{report['command']}`  ",
        f"Date: {report['date']}  ",
        f"Versions: Python {v.get('python')}, trafilatura {v.get('trafilatura')}, "
        f"readability-lxml {v.get('readability-lxml')}, justext {v.get('justext')}, html-text {v.get('html-text')}, "
        f"lxml {v.get('lxml')} (libxml2 {v.get('libxml2')}); {v.get('cpus')} CPUs, load average {v.get('loadavg')}  ",
        f"Seed: {report['seed']}; limit: {report['limit']}; each extractor ran in its own process "
        "(so peak RSS is its own); per-extractor reports in "
        f"`{report['runs_dir']}`",
        "",
        "Extractors:",
        "",
    ]
    for n, r in res.items():
        st = r.get("settings") or {}
        what = st.get("call") or st.get("function") or "?"
        if st.get("options"):
            what += f" with `{json.dumps(st['options'], sort_keys=True)}`"
        lines.append(f"- `{n}`: {what.rstrip('.')}")
    lines.append("")
    failed = report.get("failed") or {}
    if failed:
        lines += [f"Failed: {', '.join(f'`{n}` (exit {c})' for n, c in failed.items())}", ""]
    wc = {n: r["wcxb"] for n, r in res.items() if "wcxb" in r}
    if wc:
        types: list[str] = list(next(iter(wc.values()))["by_type"])
        pages = next(iter(wc.values()))["overall"]["pages"]
        lines += [
            f"## WCXB dev ({pages} pages)",
            "",
            "Word-level F1 / precision / recall (lowercased `\\w+` multisets), mean over pages "
            "(empty gold: 1 if the extraction is empty too, else 0); F1 per page type; speed of the "
            "extraction calls only; peak RSS of the extractor's process with all pages loaded "
            "(growth: over the RSS before the first page).",
            "",
            "| extractor | F1 | P | R | " + " | ".join(types) + " | pages/s | pages/CPU-s | peak RSS MiB | growth MiB | published F1 |",
            "| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in types) + " | ---: | ---: | ---: | ---: | ---: |",
        ]
        for n, w in wc.items():
            o = w["overall"]
            per = " | ".join(_fmt(w["by_type"].get(t, {}).get("f1")) for t in types)
            lines.append(
                f"| `{n}` | **{o['f1']:.3f}** | {o['precision']:.3f} | {o['recall']:.3f} | {per} | "
                f"{w['speed']['pages_per_second']:.1f} | {w['speed']['pages_per_cpu_second']:.1f} | "
                f"{w['memory']['peak_rss_mib']:.0f} | {w['memory']['peak_rss_growth_mib']:.0f} | "
                f"{_fmt((PUBLISHED.get(n) or {}).get('wcxb'))} |"
            )
        lines.append("")
    shs = {n: r["scrapinghub"] for n, r in res.items() if "scrapinghub" in r}
    if shs:
        pages = next(iter(shs.values()))["summary"]["pages"]
        lines += [
            f"## scrapinghub ({pages} articles)",
            "",
            "4-token shingle F1 as the benchmark defines it (harmonic mean of mean precision and mean "
            "recall; ± = std over bootstrap resamples of the articles).",
            "",
            "| extractor | F1 | P | R | accuracy | pages/s | pages/CPU-s | peak RSS MiB | growth MiB | published F1 |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for n, r in shs.items():
            s = r["summary"]
            lines.append(
                f"| `{n}` | **{s['f1']:.3f}** ± {s.get('f1_std', 0):.3f} | {s['precision']:.3f} | {s['recall']:.3f} | "
                f"{s['accuracy']:.3f} | {r['speed']['pages_per_second']:.1f} | {r['speed']['pages_per_cpu_second']:.1f} | "
                f"{r['memory']['peak_rss_mib']:.0f} | {r['memory']['peak_rss_growth_mib']:.0f} | "
                f"{_fmt((PUBLISHED.get(n) or {}).get('scrapinghub'))} |"
            )
        lines.append("")
    loads = [
        f"`{n}` {r['loadavg_before_after'][0][0]}→{r['loadavg_before_after'][1][0]}"
        for n, r in res.items()
        if r.get("loadavg_before_after") and all(r["loadavg_before_after"])
    ]
    if loads:
        lines += ["1-minute load average before → after each run (2 cores shared with other work): "
                  + ", ".join(loads) + ".", ""]
    lines += [
        "Published: WCXB dev from `shared/data/wcxb/WCXB-README.md` (Readability's implementation and "
        "trafilatura's release and options not stated; html-text not evaluated there), scrapinghub from "
        "`shared/data/README.md` (trafilatura 2.0, readability-lxml, jusText, html-text).",
        "",
    ]
    return "\n".join(lines)


def compare_figures(report: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.common import new_figure

    res = report["extractors"]
    figs: dict[str, Any] = {}
    wc = {n: r["wcxb"] for n, r in res.items() if "wcxb" in r}
    if wc:
        types = ["all"] + list(next(iter(wc.values()))["by_type"])
        fig, ax = new_figure(10.0, 4.2)
        k = len(wc)
        width = 0.8 / k
        for i, (n, w) in enumerate(wc.items()):
            vals = [w["overall"]["f1"]] + [w["by_type"].get(t, {}).get("f1", 0.0) for t in types[1:]]
            ax.bar([x + (i - (k - 1) / 2) * width for x in range(len(types))], vals, width=width, label=n)
        ax.set_xticks(range(len(types)), types, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel("word-level F1 (mean over pages)")
        ax.set_title("WCXB dev: F1 by page type", fontsize=10)
        ax.legend(fontsize=7, ncol=min(k, 5), loc="lower left")
        ax.grid(axis="y", alpha=0.3)
        figs["wcxb_by_type"] = fig

    fig, ax = new_figure(7.5, 4.8)
    colors = {n: f"C{i % 10}" for i, n in enumerate(res)}
    for dataset, marker, f1_of in (
        ("wcxb", "o", lambda r: r["overall"]["f1"]),
        ("scrapinghub", "^", lambda r: r["summary"]["f1"]),
    ):
        pts = [(n, r[dataset]["speed"]["pages_per_cpu_second"], f1_of(r[dataset])) for n, r in res.items() if dataset in r]
        for n, x, y in pts:
            ax.scatter([x], [y], marker=marker, s=45, color=colors[n])
            ax.annotate(n, (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points", color=colors[n])
    from matplotlib.lines import Line2D

    ax.legend(
        handles=[Line2D([], [], marker="o", ls="", color="gray", label="WCXB dev (word F1)"),
                 Line2D([], [], marker="^", ls="", color="gray", label="scrapinghub (shingle F1)")],
        fontsize=8, loc="upper right",
    )
    ax.set_xscale("log")
    ax.set_xlabel("pages per CPU-second (log scale)")
    ax.set_ylabel("F1 (as each benchmark defines it)")
    ax.set_title("F1 against speed (one colour per extractor)", fontsize=10)
    ax.grid(alpha=0.3)
    figs["f1_vs_speed"] = fig
    return figs


def run_compare(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Every extractor of ``--extractors`` in its own process; one report comparing them."""
    import subprocess

    from benchmarks.common import progress, seed_everything, write_outputs
    from benchmarks.overhead import loadavg

    seed_everything(args.seed)
    specs: dict[str, str] = {}  # shown name -> --extractor value
    for item in filter(None, (n.strip() for n in args.extractors.split(";" if ";" in args.extractors else ","))):
        alias, sep, spec = item.partition("=")
        if sep and ":" not in alias:  # "NAME=SPEC"; "traf:K=V" has its colon first
            specs[alias.strip()] = spec.strip()
        else:
            specs[item] = item
    names = list(specs)
    runs_dir = args.out / "extraction-compare-runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    results: dict[str, Any] = {}
    failed: dict[str, int] = {}
    for name in progress(names, desc="extractors", unit="extractor"):
        label = _label(name)
        json_path = runs_dir / f"extraction-{label}.json"
        json_path.unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "benchmarks.extraction", "--extractor", specs[name], "--label", label,
               "--out", str(runs_dir), "--data", str(args.data), "--dataset", args.dataset,
               "--n-bootstrap", str(args.n_bootstrap), "--seed", str(args.seed)]
        if args.limit is not None:
            cmd += ["--limit", str(args.limit)]
        print(f"\n[compare] {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        load_before = loadavg()
        rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
        if rc != 0 or not json_path.exists():
            failed[name] = rc
            continue
        results[name] = _compact(json.loads(json_path.read_text(encoding="utf-8")), json_path)
        # others' work on the machine moves wall-clock speed (and some of CPU-second speed)
        results[name]["loadavg_before_after"] = [load_before, loadavg()]
        results[name]["extractor"] = specs[name]
    report: dict[str, Any] = {
        "benchmark": "extraction-compare",
        "command": ("python -m benchmarks.extraction " + " ".join(argv if argv is not None else sys.argv[1:])).strip(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "environment": _versions(),
        "seed": args.seed,
        "limit": args.limit,
        "dataset": args.dataset,
        "runs_dir": str(runs_dir),
        "published": PUBLISHED,
        "extractors": results,
        "failed": failed,
    }
    write_outputs(args.out, "extraction-compare", report, render_compare_markdown(report), compare_figures(report))
    for n, r in results.items():
        parts = [n]
        if "wcxb" in r:
            parts.append(f"wcxb F1 {r['wcxb']['overall']['f1']:.3f} ({r['wcxb']['speed']['pages_per_cpu_second']} p/CPU-s)")
        if "scrapinghub" in r:
            parts.append(f"scrapinghub F1 {r['scrapinghub']['summary']['f1']:.3f}")
        print("[compare] " + ", ".join(parts), file=sys.stderr)
    return 1 if failed else 0


# ---------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import SEED, seed_everything, write_outputs

    ap = argparse.ArgumentParser(prog="python -m benchmarks.extraction", description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="only the first N pages of each dataset")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"shared data folder (default {DEFAULT_DATA})")
    ap.add_argument("--dataset", choices=("wcxb", "scrapinghub", "all"), default="all")
    ap.add_argument("--extractor", default="default",
                    help="default | trafilatura | trafilatura-defaults | traf:K=V,... | readability | justext | "
                         "html-text | rs-trafilatura | MODULE:FUNC")
    ap.add_argument("--compare", action="store_true",
                    help="run every extractor of --extractors, each in its own process, and compare them")
    ap.add_argument("--extractors", default=",".join(COMPARE_EXTRACTORS),
                    help="for --compare: --extractor values separated by commas (by semicolons when one "
                         "of them has a comma, like traf:K=V,K=V), each optionally NAME=VALUE to name it "
                         f"in the tables (default {','.join(COMPARE_EXTRACTORS)})")
    ap.add_argument("--label", default=None, help="name of the output files (default: from --extractor)")
    ap.add_argument("--n-bootstrap", type=int, default=1000, help="scrapinghub bootstrap resamples")
    ap.add_argument("--seed", type=int, default=SEED, help=f"seed of the bootstrap resamples (default {SEED})")
    ap.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slows the run)")
    ap.add_argument("--save-text", action="store_true", help="also write every extraction to <label>.texts.jsonl")
    args = ap.parse_args(argv)

    if args.compare:
        return run_compare(args, argv)

    seed_everything(args.seed)
    fn, settings = make_extractor(args.extractor)
    label = args.label or _label(args.extractor)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "extractor": args.extractor,
        "command": ("python -m benchmarks.extraction " + " ".join(argv if argv is not None else sys.argv[1:])).strip(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "versions": _versions(),
        "settings": settings,
        "seed": args.seed,
        "limit": args.limit,
    }
    texts = [] if args.save_text else None

    if args.dataset in ("wcxb", "all"):
        pages = load_wcxb(args.data, args.limit)
        results, mem = run_pages(fn, pages, "wcxb", args.tracemalloc)
        summary, rows = score_wcxb(pages, results)
        report["wcxb"] = {"summary": summary, "speed": _speed(results, mem.pop("cpu_seconds")), "memory": mem, "pages": rows}
        if texts is not None:
            texts += [{"dataset": "wcxb", "id": p.id, "title": r[0], "text": r[1]} for p, r in zip(pages, results)]
        o = summary["overall"]
        print(
            f"wcxb: F1 {o['f1']:.4f} (P {o['precision']:.4f}, R {o['recall']:.4f}) on {o['pages']} pages, "
            f"{report['wcxb']['speed']['pages_per_second']} pages/s "
            f"({report['wcxb']['speed']['pages_per_cpu_second']} per CPU-s), peak RSS {mem['peak_rss_mib']} MiB",
            file=sys.stderr,
        )
        del pages, results
        _trim_heap()

    if args.dataset in ("scrapinghub", "all"):
        pages = load_scrapinghub(args.data, args.limit)
        results, mem = run_pages(fn, pages, "scrapinghub", args.tracemalloc)
        summary, rows = score_scrapinghub(pages, results, args.n_bootstrap, args.seed)
        report["scrapinghub"] = {"summary": summary, "speed": _speed(results, mem.pop("cpu_seconds")), "memory": mem, "pages": rows}
        if texts is not None:
            texts += [{"dataset": "scrapinghub", "id": p.id, "title": r[0], "text": r[1]} for p, r in zip(pages, results)]
        print(
            f"scrapinghub: F1 {summary['f1']:.4f} ± {summary.get('f1_std', 0):.4f} "
            f"(P {summary['precision']:.4f}, R {summary['recall']:.4f}) on {summary['pages']} pages, "
            f"{report['scrapinghub']['speed']['pages_per_second']} pages/s "
            f"({report['scrapinghub']['speed']['pages_per_cpu_second']} per CPU-s)",
            file=sys.stderr,
        )

    write_outputs(args.out, f"extraction-{label}", report, render_markdown(report), single_figures(report))
    if texts is not None:
        with open(args.out / f"extraction-{label}.texts.jsonl", "w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps(t, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
