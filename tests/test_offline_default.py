"""Point 9: the offline default, end to end with the real local model (slow).

No API keys: the embedded model (llama.cpp in-process) answers from the
embedded index of Python's reference docs. These assert the protocol (a
search happened, sources were given, the answer streamed, offsets are sound),
not the wording.
"""
from __future__ import annotations

import asyncio

import os
import subprocess
import sys

import pytest
from openai.types.chat import ChatCompletionChunk as OpenAIChunk

pytestmark = pytest.mark.slow

QUESTION = "What does the nonlocal statement do?"
_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY", "GROUNDING_MODEL",
         "GROUNDING_ENGINE", "GROUNDING_CORPUS", "EXA_API_KEY", "TAVILY_API_KEY", "BRAVE_API_KEY",
         "SERPER_API_KEY", "GOOGLE_PSE_API_KEY", "PERPLEXITYAI_API_KEY", "SEARXNG_API_BASE")


@pytest.fixture
def no_keys(monkeypatch):
    pytest.importorskip("xllamacpp", reason="needs the [local] extra")
    for key in _KEYS:
        monkeypatch.delenv(key, raising=False)


def test_streaming_grounded_answer_with_the_local_model(no_keys):
    import grounding

    chunks = list(grounding.completion(messages=[{"role": "user", "content": QUESTION}],
                                       web_search={}, stream=True, stream_options={"include_usage": True}))
    for chunk in chunks:
        data = chunk.to_dict()
        data.pop("metadata", None)
        OpenAIChunk.model_validate(data)
    meta = chunks[-1].metadata
    assert meta.model.startswith("local/") and meta.engine == "local"
    # The local profile searches the question itself: one search, no search turn, one model call.
    assert meta.steps == 1 and meta.queries == [QUESTION]
    assert [t.kind for t in meta.turns] == ["answer"]
    sources = [s for s in meta.sources if s.id]
    assert sources and all(s.status == "indexed" and s.url.startswith("https://docs.python.org/3/") for s in sources)
    assert any(s.url == "https://docs.python.org/3/reference/simple_stmts.html#nonlocal" for s in sources)
    assert "<source" not in "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(content.split()) >= 5
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 3  # streamed
    finishing = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishing[0].choices[0].finish_reason in ("stop", "length")
    for a in finishing[0].choices[0].delta.annotations or []:
        cite = a.url_citation
        assert 0 <= cite.start_index < cite.end_index <= len(content)
        assert cite.url in {s.url for s in sources}
    assert chunks[-1].usage.total_tokens > 0
    answer = meta.turns[0]
    assert answer.time_to_first_token_ms is not None and answer.cached_prompt_tokens is not None


def test_the_readme_command_answers_offline(no_keys):
    env = {k: v for k, v in os.environ.items() if k not in _KEYS}
    proc = subprocess.run([sys.executable, "-m", "grounding.cli", "ask", QUESTION], capture_output=True, text=True,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    for stage in ("loading model", "searching: " + QUESTION, "reading the sources: ", "writing the answer"):
        assert stage in proc.stderr, proc.stderr
    assert "Task was destroyed" not in proc.stderr
    answer, _, sources = proc.stdout.partition("\nSources:\n")
    assert answer.strip() and "[1]" in sources and "docs.python.org" in sources


def test_auto_answers_offline_with_the_local_model(no_keys):
    """model='auto' with no hosted model configured: the embedded model, said so in metadata.auto."""
    import grounding

    events = []
    result = grounding.completion(model="auto", messages=[{"role": "user", "content": QUESTION}],
                                  web_search={"engine": "local"}, progress=events.append)
    meta = result.metadata
    assert result.model.startswith("local/") and meta.auto.winner == result.model
    assert "only model available" in meta.auto.why
    assert result.choices[0].message.content.strip()
    assert [e.stage for e in events][:1] == ["resolving"]


def test_serve_can_load_the_model_before_listening(no_keys, tmp_path):
    import httpx

    from tests.fakes.live_server import ServeProcess

    env = {k: v for k, v in os.environ.items() if k not in _KEYS}
    server = ServeProcess(env=env, start_timeout=600, extra_args=["--preload-local"])
    with server:
        models = httpx.get(f"{server.url}/v1/models", timeout=60).json()["data"]
        assert "local" in {m["id"] for m in models}
    loaded, listening = server.output.find("embedded model: ready in"), server.output.find("listening on")
    assert 0 <= loaded < listening, server.output


def test_the_local_model_can_judge_citations(no_keys):
    """``citations={"verifier": "local"}``: the embedded model starts when the judge first needs it, and
    answers one batched call with JSON verdicts (what it judges is measured by the citations benchmark)."""
    from grounding.verify import Corpus, ModelJudge
    from grounding.verify.types import SourceText

    page = ("The nonlocal statement causes the listed identifiers to refer to previously bound variables "
            "in the nearest enclosing function scope, excluding globals.")
    corpus = Corpus([SourceText(1, "https://docs.python.org/3/reference/simple_stmts.html", "nonlocal", page)])
    judge = ModelJudge("local")
    pairs = [("The nonlocal statement makes names refer to variables bound in the nearest enclosing "
              "function scope.", 1),
             ("The nonlocal statement was added in Python 1.2 to speed up loops.", 1)]
    judgements = asyncio.run(judge.judge(corpus, pairs))
    assert len(judgements) == 2
    assert all(j.verdict in ("supported", "partial", "unsupported") for j in judgements)
    # the model answered (a failure would have raised JudgeFailed); the contradicted year stays lexical's call
    assert any(j.reason.startswith("the verifier model judged it") for j in judgements), judgements
