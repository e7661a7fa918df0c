"""The server load benchmark: its statistics, and a quick run against a real ``grounding serve``."""
from __future__ import annotations

import json

import pytest

from benchmarks import server_load as sl
from benchmarks.common import SEED


def _row(level: int, total_p99: float, first_p99: float, errors: int = 0) -> dict:
    return {"level": level, "errors": errors, "added_total_ms": {"p99": total_p99}, "added_first_ms": {"p99": first_p99},
            "peak_rss_mib": 300.0 + level, "rss_after_mib": 290.0, "server_cores": 0.5}


def test_percentiles_are_nearest_rank():
    values = list(range(1, 101))
    assert sl.pct(values, 50) == 50 and sl.pct(values, 99) == 99 and sl.pct(values, 100) == 100
    assert sl.pct([7.0], 99) == 7.0 and sl.pct([], 50) is None
    assert sl.pct([1, 2, 3], 99) == 3  # under 100 samples, p99 is the maximum


def test_the_headline_is_the_largest_level_passing_counting_up():
    rows = [_row(1, 10, 5), _row(5, 30, 20), _row(10, 60, 20), _row(20, 40, 30)]
    assert sl.headline(rows, 50)["level"] == 5  # 20 passes after 10 failed: not counted
    assert sl.headline([_row(1, 10, 70)], 50) is None  # the first token counts too
    assert sl.headline([_row(1, 10, 5), _row(2, 10, 5, errors=1)], 50)["level"] == 1
    assert sl.headline([], 50) is None


def test_low_levels_get_more_rounds_and_concurrency_is_measured():
    assert sl.per_worker_rounds(1, 5, 20) == 20 and sl.per_worker_rounds(3, 5, 20) == 7
    assert sl.per_worker_rounds(50, 5, 20) == 5
    # two workers, each with two back-to-back streams of 1 s, the second starting 0.5 s later
    results = [{"worker": 0, "start": 0.0, "end": 1.0}, {"worker": 0, "start": 1.0, "end": 2.0},
               {"worker": 1, "start": 0.5, "end": 1.5}, {"worker": 1, "start": 1.5, "end": 2.5}]
    assert sl._steady_concurrency(results, 2) == 2.0


def test_proc_readings_of_this_process():
    import os

    mem = sl.memory_kib([os.getpid()])
    assert mem["rss_kib"] > 1000 and mem["hwm_kib"] >= mem["rss_kib"]
    assert sl.cpu_seconds([os.getpid()]) > 0
    busy, total = sl.machine_jiffies()
    assert 0 <= busy <= total


def test_a_quick_run_writes_sane_results(tmp_path):
    code = sl.main(["--limit", "2", "--levels", "1,2", "--targets", "grounded", "--out", str(tmp_path),
                    "--model-ms", "5", "--chunk-ms", "1", "--search-ms", "5", "--page-min-ms", "1",
                    "--page-max-ms", "5", "--timeout", "30", "--stop-ms", "1000000"])  # both levels, however loaded
    assert code == 0
    for name in ("server-load.json", "server-load.md", "server-load-p99.png", "server-load-rss.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    report = json.loads((tmp_path / "server-load.json").read_text())
    assert report["seed"] == SEED
    assert report["environment"]["cpus"] and report["loadavg_before"] is not None
    (target,) = report["targets"]
    assert target["target"] == "grounded"
    # the fake model streamed a tool-call turn, then the answer
    assert len(target["turns"]) == 2 and all(t["chunks_written"] > 2 for t in target["turns"])
    assert 0 < target["critical_first_ms"] < target["critical_total_ms"]
    base = target["baseline"]
    assert base["errors"] == 0 and base["runs"] == 2
    assert target["critical_total_ms"] <= base["total_ms"]["p50"]
    assert [r["level"] for r in target["levels"]] == [1, 2]
    for row in target["levels"]:
        assert row["errors"] == 0 and row["measured"] == row["level"] * 2
        assert row["ttft_ms"]["p50"] <= row["total_ms"]["p50"]
        assert row["server_cpu_s"] > 0 and 0 < row["server_cores"] <= 2.5
        assert 50 < row["peak_rss_mib"] < 4000 and 50 < row["rss_after_mib"] <= row["peak_rss_mib"] + 1
        assert row["added_total_ms"]["p50"] == pytest.approx(row["total_ms"]["p50"] - base["total_ms"]["p50"], abs=0.2)
        assert row["loadavg_after"] is not None
    assert target["levels"][1]["steady_concurrency"] > 1.2
    assert "grounded (web_search)" in (tmp_path / "server-load.md").read_text()


def test_first_byte_benchmark_shows_the_early_start(tmp_path):
    from benchmarks import first_byte

    assert first_byte.main(["--limit", "1", "--model-ms", "1500", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "first-byte.json").read_text())
    default, held = report["settings"]
    d, h = default["median_s"], held["median_s"]
    # Two model turns of 1.5 s each: the default start sends a comment and progress long before the
    # first token; the held stream sends nothing before it (the server's earlier behaviour).
    assert d["first_comment"] is not None and d["first_byte"] <= d["first_progress"] < d["first_token"] <= d["done"]
    assert h["first_comment"] is None and 3.0 <= h["first_byte"] <= h["first_token"]  # after both model waits
    assert default["rows"][0]["stages"][:3] == ["resolving", "thinking", "searching"]
    assert "| default (stream_first_byte_s 0.5) |" in (tmp_path / "first-byte.md").read_text()
    assert (tmp_path / "first-byte-timeline.png").stat().st_size > 0
