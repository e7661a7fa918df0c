"""The capacity and cache benchmarks: quick runs that write sane reports (not figures: those are
measured on a quiet machine, never asserted)."""
from __future__ import annotations

import json

from benchmarks import cache as cache_bench
from benchmarks import capacity


def test_capacity_measures_the_limit_and_the_rate_in_one_run(tmp_path):
    code = capacity.main(["--limit", "3", "--levels", "2", "--targets", "grounded", "--out", str(tmp_path)])
    assert code == 0
    for name in ("capacity.json", "capacity.md", "capacity-rps.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    report = json.loads((tmp_path / "capacity.json").read_text())
    cal = report["extraction"]
    assert cal["pages"] >= 3 and cal["pages_per_cpu_s"] > 0 and len(cal["page_bytes"]) == 3
    assert report["limit_rps"] == round(report["cores"] * cal["pages_per_cpu_s"] / 3, 2)
    (target,) = report["targets"]
    assert target["name"] == "grounded" and [r["level"] for r in target["levels"]] == [2]
    best = target["best"]
    # every client finishes at least the request it started (inside the measured window or not)
    assert best["finished_all"] >= 2 and best["failed_all"] == 0
    assert best["rps"] == round(best["completed"] / 3.0, 3)
    assert best["extraction_workers_cores"] > 0  # the pages were extracted in the worker processes
    # extraction timed before and after the target; the target is held to their mean
    before, after = report["calibrations"]
    assert before == cal and after["pages"] >= 3 and after["pages_per_cpu_s"] > 0
    limit = round(report["cores"] * (before["pages_per_cpu_s"] + after["pages_per_cpu_s"]) / 2 / 3, 2)
    assert target["limit_rps"] == limit
    assert target["of_limit"] == round(best["rps"] / limit, 3)
    assert target["extraction_share_of_cores"] == round(best["extraction_workers_cores"] / report["cores"], 3)
    # litellm's own CPU for the request's calls, and the ceiling it sets
    floor = report["litellm_floor"]
    assert floor["rounds"] == 10 and floor["cpu_ms_per_request"] > 0
    extraction_ms = 3 * 1000 / cal["pages_per_cpu_s"]
    assert floor["ceiling"] == round(extraction_ms / (extraction_ms + floor["cpu_ms_per_request"]), 3) < 1
    text = (tmp_path / "capacity.md").read_text()
    assert "extraction-bound limit" in text.lower() and "litellm's floor" in text


def test_cache_benchmark_times_both_kinds_and_weighs_the_pages(tmp_path):
    assert cache_bench.main(["--limit", "1", "--model-ms", "5", "--search-ms", "5", "--page-min-ms", "1",
                             "--page-max-ms", "5", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "cache.json").read_text())
    wall, mem = report["wall"], report["memory"]
    assert wall["runs"] == 1 and wall["cached_runs_all_hits"] == 1
    assert wall["uncached_ms"]["median"] > 0 and wall["cached_ms"]["median"] > 0
    assert 10 <= mem["pages"] <= 20 and mem["text_bytes"] > 0
    per = mem["per_1000_pages_mib"]
    assert 0 < per["stored_values"] <= per["memory_backend_accounted"]
    assert per["memory_backend_traced"] > 0
    assert "MiB per 1,000 pages" in (tmp_path / "cache.md").read_text()
