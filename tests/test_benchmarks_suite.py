"""The benchmark suite's runner (``python -m benchmarks``) and the overhead grid, on tiny settings."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import overhead
from benchmarks.__main__ import BENCHMARKS, Bench, bench_main

ROOT = Path(__file__).resolve().parents[1]
TINY = overhead.Latencies(model_ms=10, search_ms=10, page_min_ms=10, page_max_ms=30)
TINY_ARGS = ["--model-ms", "10", "--search-ms", "10", "--page-min-ms", "10", "--page-max-ms", "30"]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def restore_environ():
    """The benchmarks point litellm's search providers at their fakes through os.environ."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_list_and_help_name_every_benchmark():
    listed = _run("list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == list(BENCHMARKS)
    assert {"search-modes", "extraction", "overhead", "routing", "startup", "offline"} <= set(BENCHMARKS)
    helped = _run("--help")
    assert helped.returncode == 0
    for name in [*BENCHMARKS, "list", "all"]:
        assert f"  {name} " in helped.stdout


def test_unknown_and_missing_benchmarks_fail_with_one_line(capsys, monkeypatch):
    assert bench_main(["nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err
    monkeypatch.setitem(BENCHMARKS, "ghost", Bench("ghost", "benchmarks.no_such_module", "nothing", ("--limit", "1")))
    assert bench_main(["ghost"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not available" in err and "benchmarks.no_such_module" in err


def test_dispatch_runs_routing_with_a_limit(tmp_path):
    from grounding.config import set_config

    try:
        assert bench_main(["routing", "--limit", "40", "--out", str(tmp_path)]) == 0
    finally:
        set_config({})
    report = json.loads((tmp_path / "routing.json").read_text())
    assert report["settings"]["requests"] == 40 and report["users"] == 40
    assert report["seed"] == 20261122 and report["environment"]["python"]
    assert all(case["n"] == 40 for case in report["decision"].values())
    for name in ("routing-ab.png", "routing-decision.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG)
    assert "A/B shares" in (tmp_path / "routing.md").read_text()


def test_dispatch_passes_exit_codes_of_argparse(capsys):
    assert bench_main(["routing", "--help"]) == 0
    assert "--limit" in capsys.readouterr().out
    assert bench_main(["routing", "--limit", "0"]) == 2


def test_all_runs_each_benchmark_in_its_own_process(tmp_path):
    done = _run("all", "--only", "routing", "--limit", "20", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "all.json").read_text())
    assert [r["benchmark"] for r in summary["results"]] == ["routing"]
    assert summary["results"][0]["status"] == "ok"
    assert json.loads((tmp_path / "routing.json").read_text())["users"] == 20
    assert (tmp_path / "all.md").exists()


def test_stepped_shape_fetches_new_pages_every_step(fake_llm, fake_search, fake_web):
    fakes = overhead.InProcessFakes(fake_web, fake_search, fake_llm)
    shape = overhead.grid_shape(2, 3)
    pages = overhead.configure(fakes, shape, TINY)
    assert sorted(pages.values()) == [10, 10, 20, 20, 30, 30]  # spread over each step's 3 pages

    r = overhead.measure_once(fakes, shape, TINY, stream=False, pages=pages)

    assert [t["kind"] for t in r["turns"]] == ["search", "search", "answer"]
    assert [s["pages_fetched"] for s in r["steps"]] == [3, 3]
    assert r["sources_fetched"] == 6 and r["sources_failed"] == 0
    assert r["critical_ms"] == 3 * 10 + 2 * (10 + 30)
    assert r["fetcher_concurrency"] == 8  # what the loop opened its fetcher with, recorded
    assert r["engine"] == overhead.GRID_ENGINE and r["ratio"] >= 1
    assert sum(r["breakdown"].values()) == pytest.approx(r["overhead_ms"], abs=1.0)


def test_grid_with_a_limit_writes_json_markdown_and_plots(tmp_path, restore_environ):
    argv = ["--grid", "--steps", "1,2", "--results", "3", "--runs", "3", "--limit", "2", "--fakes", "inprocess",
            *TINY_ARGS, "--out", str(tmp_path)]
    assert overhead.main(argv) == 0

    report = json.loads((tmp_path / "overhead-grid.json").read_text())
    assert report["seed"] == 20261122 and report["environment"]["python"]
    assert report["settings"]["runs"] == 2  # --limit 2 caps the runs too
    cells = report["cells"]
    assert [(c["max_steps"], c["max_results"], c["stream"]) for c in cells] == [
        (1, 3, False), (1, 3, True), (2, 3, False), (2, 3, True)]
    assert len(report["runs"]) == 4 * 2
    for c in cells:
        assert c["pages_fetched"] == 3 * c["max_steps"]
        assert c["critical_ms"] == 10 * (c["max_steps"] + 1) + c["max_steps"] * (10 + 30)
        assert c["ratio_median"] >= 1 and c["ratio_p90"] >= c["ratio_median"]
        assert c["added_ms_median"] > 0
        assert c["cpu_ms_median"] > 0 and c["cpu_ms_per_page"] > 0
    text = (tmp_path / "overhead-grid.md").read_text()
    assert "**Ratio, median** (not streamed / streamed)" in text
    assert "| 2 | 3 | yes | 6 |" in text
    for name in ("ratio", "cpu", "added"):
        assert (tmp_path / f"overhead-grid-{name}.png").read_bytes().startswith(PNG)


def test_overhead_default_mode_with_a_limit_writes_its_plot(tmp_path, restore_environ):
    assert overhead.main(["--limit", "1", "--modes", "plain", "--fakes", "inprocess", *TINY_ARGS,
                          "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "overhead.json").read_text())
    assert [row["shape"] for row in report["summary"]] == ["default"]
    assert report["summary"][0]["ratio"]["median"] >= 1 and report["seed"] == 20261122
    assert "| default | no |" in (tmp_path / "overhead.md").read_text()
    assert (tmp_path / "overhead-ratio.png").read_bytes().startswith(PNG)


def test_startup_and_offline_plots_from_their_reports(tmp_path):
    """Their runs take minutes (subprocesses importing litellm; the local model): the reporting, on made-up rows."""
    from benchmarks import offline, startup
    from benchmarks.common import write_outputs

    row = {"label": "python -c pass", "argv": ["python", "-c", "pass"], "runs_ms": [40.0, 44.0],
           "median_ms": 42.0, "p90_ms": 44.0, "min_ms": 40.0, "max_ms": 44.0, "heavy_loaded": [],
           "imports": {"total_ms": 1.0, "top": [{"module": "site", "cumulative_ms": 1.0}]}}
    report = {"command": "test", "date": "today", "seed": 1, "environment": overhead.versions(),
              "loadavg_before": None, "loadavg_after": None, "settings": {"runs": 2}, "results": [row]}
    paths = write_outputs(tmp_path, "startup", report, startup.markdown(report),
                          {"medians": startup.medians_figure(report)})
    assert "| `python -c pass` | 42 |" in paths[1].read_text()
    assert (tmp_path / "startup-medians.png").read_bytes().startswith(PNG)

    run = {"question": "q?", "seconds_to_first_token": 30.0, "seconds_to_whole_answer": 33.0, "model_calls": 1,
           "prompt_tokens": 900, "answer_prompt_tokens": 900, "answer_cached_prompt_tokens": 250,
           "prompt_tokens_per_s": 40.0, "output_tokens_per_s": 9.5, "completion_tokens": 60,
           "turns": [{"kind": "answer", "duration_s": 30.0}]}
    result = {"date": "today", "command": "python -m benchmarks.offline", "model_startup_seconds": 4.0, "seed": 1,
              "load_average": {"before": (0.1, 0.1, 0.1), "after": (0.1, 0.1, 0.1)}, "runs": [run, run],
              **offline.summarize([run, run])}
    write_outputs(tmp_path, "offline", result, offline.markdown(result), {"runs": offline.runs_figure(result)})
    text = (tmp_path / "offline.md").read_text()
    assert "| 2 | q? | 30.0 | 33.0 | 1 | 900 (900, 250) | 40.0 | 9.5 |" in text
    assert "Median: first token 30.0 s, whole answer 33.0 s, 900 prompt tokens." in text
    ablation = {"date": "today", "command": "python -m benchmarks.offline --ablation", "settings": {"runs": 2},
                "configurations": [{"label": label, "load_average": result["load_average"], **result}
                                   for label, _ in offline.ABLATION]}
    write_outputs(tmp_path, "offline-ablation", ablation, offline.ablation_markdown(ablation),
                  {"changes": offline.ablation_figure(ablation)})
    assert "| + 700 source tokens | 30.0 | 33.0 | 1 | 900 | 900 (250) | 40.0 | 9.5 | 0.1 |" in (
        tmp_path / "offline-ablation.md").read_text()
    assert (tmp_path / "offline-ablation-changes.png").read_bytes().startswith(PNG)
    assert (tmp_path / "offline-runs.png").read_bytes().startswith(PNG)
