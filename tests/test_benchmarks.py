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
