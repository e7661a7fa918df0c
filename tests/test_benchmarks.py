"""The overhead benchmark's core, once, with tiny latencies (a sanity check, not a benchmark)."""
from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from benchmarks import overhead

TINY = overhead.Latencies(model_ms=10, search_ms=10, page_min_ms=10, page_max_ms=30)


@pytest.mark.parametrize("stream", [False, True])
def test_overhead_core_measures_one_request(fake_llm, fake_search, fake_web, tmp_path, stream):
    fakes = overhead.InProcessFakes(fake_web, fake_search, fake_llm)
    shape = overhead.SHAPES["default"]
    pages = overhead.configure(fakes, shape, TINY)
    assert sorted(pages.values()) == [10, 20, 30]  # spread over the 3 result pages

    r = overhead.measure_once(fakes, shape, TINY, stream=stream, pages=pages)

    assert r["shape"] == "default" and r["stream"] is stream
    assert [t["kind"] for t in r["turns"]] == ["search", "answer"]
    [step] = r["steps"]
    assert step["searches"] == 1 and step["pages_fetched"] == 3
    assert r["sources_fetched"] == 3 and r["annotations"] >= 1
    # Critical path: 2 model turns + 1 search + the slowest page.
    assert r["critical_ms"] == 2 * 10 + 10 + 30
    assert r["wall_ms"] >= r["critical_ms"]
    assert r["ratio"] >= 1.0
    # The latencies reached the fakes: each measured part takes at least its latency.
    assert all(t["duration_ms"] >= 10 for t in r["turns"])
    assert step["search_ms"] >= 10
    assert step["fetch_ms"] >= step["last_page_latency_ms"] > 0
    # The breakdown accounts for the whole overhead.
    assert sum(r["breakdown"].values()) == pytest.approx(r["overhead_ms"], abs=1.0)
    assert r["cpu_ms"] > 0 and r["extract_total_ms"] > 0

    summary = overhead.summarize([r])
    assert summary["wall_ms"]["median"] == summary["wall_ms"]["p90"] == r["wall_ms"]
    report = {
        "command": "test", "date": "today", "versions": overhead.versions(),
        "loadavg_before": None, "loadavg_after": None,
        "settings": {"latencies": asdict(TINY), "engine": overhead.ENGINE,
                     "fakes": "inprocess", "runs": 1, "fetcher_concurrency": overhead.fetcher_concurrency()},
        "warmup_wall_ms": {}, "summary": [summary], "runs": [r],
    }
    json.dumps(report)  # serialisable
    overhead.write_markdown(tmp_path / "overhead.md", report)
    assert "| default |" in (tmp_path / "overhead.md").read_text()


def test_routing_benchmark_runs_and_writes_its_figures(tmp_path):
    from benchmarks import routing
    from grounding.config import set_config

    try:
        assert routing.main(["--requests", "20", "--users", "2000", "--out", str(tmp_path)]) == 0
    finally:
        set_config({})
    report = json.loads((tmp_path / "routing.json").read_text())
    assert set(report["decision"]) == set(routing.CASES)
    assert report["decision"]["router, last route"]["first_target"] == routing.ref(7)
    assert report["decision"]["auto over 50"]["targets"] == 50
    for split in report["ab"].values():
        assert sum(v["share"] for v in split["variants"]) == pytest.approx(100, abs=0.05)
        assert split["max_abs_diff_points"] < 4  # 2,000 users: within sampling noise of the weights
    assert "A/B shares" in (tmp_path / "routing.md").read_text()
