"""The soak and hardening benchmarks: what they generate, and a quick run of each
against a real ``grounding serve`` subprocess with the fakes in another."""
from __future__ import annotations

import json

from benchmarks import hardening, soak
from benchmarks.common import SEED

PNG = b"\x89PNG\r\n\x1a\n"


def test_the_sweep_mutates_every_value_and_every_schema_field():
    from grounding.request import ChatRequest

    inputs = hardening.mutated_requests()
    labels = {label for label, _ in inputs}
    assert "messages[1].content[0].text = lone surrogate" in labels
    assert "web_search.max_results = 2**70" in labels and "model removed" in labels
    for field in ChatRequest.model_json_schema()["properties"]:  # fields added later are swept by themselves
        assert f"{field} = 80-deep" in labels
    for _, body in inputs:
        json.loads(body)  # every mutation is valid JSON: the server sees a bad value, not bad JSON
    assert len(hardening.mutated_requests(limit=2)) < len(inputs) / 5


def test_a_quick_hardening_run(tmp_path):
    code = hardening.main(["--limit", "1", "--runs", "1", "--model-deadline", "1", "--search-deadline", "1",
                           "--page-deadline", "1", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "hardening.json").read_text())
    assert report["seed"] == SEED and report["deadlines"]["search"] == 1
    bad = report["bad_inputs"]
    assert bad["tried"] > 50 and bad["5xx"] == 0 and not bad["not_openai_shaped"]
    assert {r["upstream"] for r in report["faults"]} == {"openai", "anthropic", "searxng", "tavily", "page"}
    assert all(r["clean"] for r in report["faults"]), [r for r in report["faults"] if not r["clean"]]
    assert report["server_log"] == {"tracebacks": 0, "errors": 0, "keys_leaked": 0}
    # a silent model is a 504, or (streamed: the stream has begun with a progress comment) an error event
    # whose code is timeout; a silent engine or page is a warning naming the deadline
    assert len(report["silent"]) == 5 and all(r["outcome"].startswith(("504", "200 timeout"))
                                              or "within 1 s" in r["outcome"] or "after 1 s" in r["outcome"]
                                              for r in report["silent"])
    assert code == 0
    assert (tmp_path / "hardening-silent.png").read_bytes().startswith(PNG)
    assert "inputs tried" in (tmp_path / "hardening.md").read_text()


def test_a_quick_soak(tmp_path):
    assert soak.main(["--limit", "6", "--concurrency", "2", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "soak.json").read_text())
    result = report["result"]
    assert result["requests"] == 6 and result["errors"] == 0 and result["tracebacks_in_server_log"] == 0
    assert result["start"]["rss_mib"] > 50 and result["start"]["fds"] > 3
    assert result["samples"][-1]["requests"] == 6
    assert (tmp_path / "soak-memory.png").read_bytes().startswith(PNG)
