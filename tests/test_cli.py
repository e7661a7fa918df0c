"""Point 8 (the CLI) and point 1 (import cost): run the real command in a subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletion as OpenAIChatCompletion

QUESTION = "nutrition trends for fall"


def run_cli(*args, env=None, timeout=120):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "grounding.cli", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


@pytest.fixture
def cli_env(fake_llm, fake_search, tmp_path):
    # The same seams a user has: env vars for the model's and the engine's base URLs.
    return {**fake_search.env(), "OPENAI_API_BASE": f"{fake_llm.url}/v1", "OPENAI_API_KEY": "sk-test",
            "GROUNDING_CACHE_DIR": str(tmp_path / "cache"), "GROUNDING_ALLOW_PRIVATE_NETWORKS": "1"}


def test_ask_prints_progress_answer_and_sources(cli_env):
    proc = run_cli("ask", QUESTION, "--model", "openai/fake-searcher", "--engine", "searxng",
                   "--max-results", "2", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "searching: " + QUESTION in proc.stderr
    assert "fetching 2 pages" in proc.stderr and "writing the answer" in proc.stderr
    answer, sources = proc.stdout.split("\nSources:\n")
    assert "[1]" in answer or "[2]" in answer
    assert sources.count("\n[") + sources.startswith("[") == 2
    assert "/wcxb/" in sources


def test_ask_json_prints_the_completion_alone(cli_env):
    proc = run_cli("ask", QUESTION, "--model", "openai/fake-searcher", "--engine", "tavily", "--json", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    metadata = data.pop("metadata")
    OpenAIChatCompletion.model_validate(data)
    assert metadata["queries"] == [QUESTION] and metadata["engine"] == "tavily"


def test_ask_scoped_to_a_domain(cli_env, fake_search):
    fake_search.mixed_hosts = True
    proc = run_cli("ask", QUESTION, "--model", "openai/fake-searcher", "--engine", "tavily", "--domain",
                   "localhost", "--max-total-results", "2", "--context-size", "low", "--country", "gb", "--json",
                   env=cli_env)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(proc.stdout)["metadata"]
    assert len(meta["sources"]) == 2 and all("//localhost:" in s["url"] for s in meta["sources"])
    assert set(meta["search_options"]) == {"allowed_domains", "max_total_results", "search_context_size",
                                           "user_location"}
    bad = run_cli("ask", QUESTION, "--domain", "a.com/path", env=cli_env)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines()[-1].startswith("grounding: error:")


def test_ask_with_a_corpus_folder(cli_env, tmp_path):
    corpus = tmp_path / "notes"
    corpus.mkdir()
    (corpus / "a.txt").write_text("The kettle whistles when the water boils at 100 degrees.\n")
    proc = run_cli("ask", "kettle whistles", "--model", "openai/fake-searcher", "--corpus", str(corpus),
                   "--json", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(proc.stdout)["metadata"]
    assert meta["engine"] == "local" and meta["sources"][0]["url"].endswith("a.txt")
    assert "indexing the corpus" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", "q", "--max-results", "50"], "web_search.max_results"),
        (["ask", "q", "--engine", "altavista"], "unknown search engine"),
        (["ask", "q", "--corpus", "/no/such/folder", "--model", "openai/fake-searcher"], "not found"),
    ],
)
def test_bad_input_is_one_line_on_stderr(cli_env, args, message):
    proc = run_cli(*args, env=cli_env)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("grounding: error")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_failing_model_is_one_line_on_stderr(cli_env):
    proc = run_cli("ask", QUESTION, "--model", "openai/fake-fail", "--engine", "searxng", env=cli_env)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "grounding: error:" in proc.stderr


def test_import_and_help_do_not_import_litellm():
    code = "import sys, grounding; grounding.cli = __import__('grounding.cli'); print('litellm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    code = ("import sys, contextlib, io\nfrom grounding.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: main(['ask', '--help'])\n    except SystemExit: pass\n"
            "print('litellm' in sys.modules, 'httpx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"
    script = Path(sys.executable).with_name("grounding")  # the console script pip installed
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "ask" in proc.stdout


def test_bench_lists_and_runs_the_suite(tmp_path):
    listed = run_cli("bench", "list")
    assert listed.returncode == 0, listed.stderr
    for name in ("search-modes", "extraction", "overhead", "routing", "startup", "offline"):
        assert name in listed.stdout
    unknown = run_cli("bench", "nope")
    assert unknown.returncode == 2 and "unknown benchmark" in unknown.stderr and "Traceback" not in unknown.stderr
    ran = run_cli("bench", "routing", "--limit", "50", "--out", str(tmp_path))
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "routing.json").exists() and (tmp_path / "routing.md").exists()
