"""Issue 10: every annotation checked against its source, repaired or removed, with the evidence quote.

A scripted misbehaving model (``fake-mixed``, ``tests/fakes/claims.py``) answers over
real pages of ../shared/data with correct, paraphrased, misattributed, made-up and
altered claims, citations of unfetched URLs, link-before-claim phrasing and an echo
of "claim [n]", and records which pages really support each claim. Everything runs
over real HTTP on 127.0.0.1: litellm talks to the fake model, the fetcher to the
fake web, through the Python API, the CLI and the server.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import openai
import pytest
from openai.types.chat import ChatCompletion as OpenAIChatCompletion
from openai.types.chat import ChatCompletionChunk as OpenAIChunk

import grounding
from grounding.config import Config, set_config
from grounding.response import Metadata
from grounding.server import create_app
from grounding.server.store import MemoryRouterStore, install
from providers.extract import extract
from tests.fakes.live_server import LiveServer
from tests.fakes.policies import SCRIPTED
from tests.fakes.web import page_html

QUESTION = "nutrition trends for fall"
BAD_KINDS = ("number", "negated", "swapped", "fabricated")
GOOD_KINDS = ("correct", "paraphrase", "link", "leading")


def ask(fake_llm, policy="mixed", verify="repair", question=QUESTION, **kw):
    kw.setdefault("messages", [{"role": "user", "content": question}])
    kw.setdefault("web_search", {"engine": "searxng", "max_results": 3})
    if verify is not None:
        kw.setdefault("citations", {"verify": verify})
    return grounding.completion(model=f"openai/fake-{policy}", api_base=f"{fake_llm.url}/v1", api_key="sk-test",
                                **kw)


def page_text(url: str, fake_web) -> str:
    """The page's whole text as the library extracts it."""
    return extract(page_html(url[len(fake_web.url):]), url).text


def annotations_of(result) -> list[dict]:
    return [a.to_dict() for a in result.choices[0].message.annotations or []]


def by_claim(question: str, annotations: list[dict]):
    """[(claim, [urls cited over it])] for the scripted answer to ``question``."""
    scripted, shown = SCRIPTED[question]
    urls = [u for u, _, _ in shown]
    out = []
    for claim, (a, b) in zip(scripted.claims, scripted.positions):
        cited = [x["url_citation"]["url"] for x in annotations
                 if x["url_citation"]["start_index"] < b and x["url_citation"]["end_index"] > a]
        out.append((claim, cited))
    return out, urls


def strict_openai(result) -> dict:
    data = result.to_dict()
    metadata = data.pop("metadata")
    OpenAIChatCompletion.model_validate(data)
    Metadata.model_validate(metadata)
    return data


# --- points 1 and 2: every annotation checked; repair ---------------------------------------


def test_repair_keeps_what_is_supported_moves_what_is_misattributed_removes_the_rest(fake_llm, fake_search, fake_web):
    r = ask(fake_llm, verify="repair")
    strict_openai(r)
    content = r.choices[0].message.content
    annotations = annotations_of(r)
    claims, urls = by_claim(QUESTION, annotations)
    kinds = {c.kind for c, _ in claims}
    assert {"correct", "misattrib", "fabricated", "echo", "unfetched"} <= kinds and len(kinds & set(BAD_KINDS)) >= 3
    for claim, cited in claims:
        truth = {urls[k] for k in claim.supported_by}
        if claim.kind in GOOD_KINDS:
            assert cited == [urls[claim.cited]], (claim, cited)
        elif claim.kind == "misattrib":  # moved to the page that says it
            assert cited and set(cited) <= truth, (claim, cited)
        else:  # altered, made up, unfetched, echoed: nothing a page supports is claimed
            assert cited == [], (claim, cited)
    meta = r.metadata.citations
    assert meta.verify == "repair" and meta.judge == "lexical"
    assert meta.annotations == len(annotations) and meta.moved >= 1 and meta.removed >= len(
        [c for c, _ in claims if c.kind in BAD_KINDS])
    moved = [c for c in meta.checks if c.action == "moved"]
    assert all(c.moved_from and c.moved_from.url != c.url and c.verdict == "supported" for c in moved)
    removed = [c for c in meta.checks if c.action == "removed"]
    assert all(c.reason and "does not support" in c.reason for c in removed)
    assert any("moved" in w and "removed" in w for w in r.metadata.warnings)
    # Nothing silently dropped: the unfetched link and the echoed marker are reported.
    assert any(u.startswith("https://not-fetched.example/") for u in meta.unmatched)
    assert [d.text for d in meta.dropped] and all(content[d.start:d.end] == d.text for d in meta.dropped)
    # Sources are "cited" only by what was emitted.
    cited_urls = {a["url_citation"]["url"] for a in annotations}
    assert {s.url for s in r.metadata.sources if s.cited} == cited_urls


def test_each_annotation_carries_its_evidence_verbatim_with_offsets(fake_llm, fake_search, fake_web):
    r = ask(fake_llm, verify="repair")
    annotations = annotations_of(r)
    assert annotations
    texts = {}
    for a in annotations:
        c = a["url_citation"]
        text = texts.setdefault(c["url"], page_text(c["url"], fake_web))
        assert c["cited_text"] and c["cited_text"] in text  # quoted verbatim from the page
    for check in r.metadata.citations.checks:
        if check.evidence is None:
            continue
        text = texts.setdefault(check.url, page_text(check.url, fake_web))
        assert text[check.evidence.start:check.evidence.end] == check.evidence.text
        assert 0.0 <= (check.score or 0.0) <= 1.0
    kept = [c for c in r.metadata.citations.checks if c.action in ("kept", "moved")]
    assert all(c.verdict in ("supported", "partial") and c.evidence for c in kept)


def test_flag_keeps_every_annotation_and_reports_the_verdicts(fake_llm, fake_search, fake_web):
    off = ask(fake_llm, verify="off")
    flag = ask(fake_llm, verify="flag")
    assert off.choices[0].message.content == flag.choices[0].message.content
    spans = lambda r: [(a["url_citation"]["start_index"], a["url_citation"]["end_index"], a["url_citation"]["url"])
                       for a in annotations_of(r)]
    assert spans(off) == spans(flag)
    meta = flag.metadata.citations
    assert meta.verify == "flag" and len(meta.checks) == len(spans(flag)) and meta.flagged >= 3
    assert {c.action for c in meta.checks} <= {"kept", "flagged"}
    flagged = {(c.start, c.end, c.url) for c in meta.checks if c.action == "flagged"}
    for a in annotations_of(flag):  # the evidence quote only where the page supports the span
        c = a["url_citation"]
        assert ("cited_text" in c) == ((c["start_index"], c["end_index"], c["url"]) not in flagged)
    assert any("not supported by the page they cite" in w for w in flag.metadata.warnings)


def test_off_is_the_citations_as_written(fake_llm, fake_search, fake_web):
    r = ask(fake_llm, verify="off")
    meta = r.metadata.citations
    assert meta.verify == "off" and meta.checks == [] and meta.judge is None
    assert all("cited_text" not in a["url_citation"] for a in annotations_of(r))
    claims, urls = by_claim(QUESTION, annotations_of(r))
    assert any(cited and not set(cited) <= {urls[k] for k in c.supported_by} for c, cited in claims)


def test_unverified_sentences_are_listed(fake_llm, fake_search, fake_web):
    r = ask(fake_llm, verify="repair")
    content = r.choices[0].message.content
    unverified = r.metadata.citations.unverified
    assert unverified and all(content[u.start:u.end] == u.text for u in unverified)
    scripted, _ = SCRIPTED[QUESTION]
    for claim, (a, b) in zip(scripted.claims, scripted.positions):
        listed = any(u.start < b and u.end > a for u in unverified)
        if claim.kind in ("fabricated", "number", "negated", "swapped"):
            assert listed, claim
        if claim.kind in ("correct", "link"):
            assert not listed, claim


def test_citations_inside_extra_body_and_defaults_from_env_and_config(fake_llm, fake_search, fake_web, monkeypatch):
    r = ask(fake_llm, verify=None, extra_body={"citations": {"verify": "flag"}})
    assert r.metadata.citations.verify == "flag"
    monkeypatch.setenv("GROUNDING_CITATIONS_VERIFY", "off")
    assert ask(fake_llm, verify=None).metadata.citations.verify == "off"
    set_config({"citations": {"verify": "flag"}})  # the config file wins over the env var...
    try:
        assert ask(fake_llm, verify=None).metadata.citations.verify == "flag"
        assert ask(fake_llm, verify="repair").metadata.citations.verify == "repair"  # ...the request over both
    finally:
        set_config({})
    monkeypatch.delenv("GROUNDING_CITATIONS_VERIFY")
    assert ask(fake_llm, verify=None).metadata.citations.verify == "repair"  # the default


@pytest.mark.parametrize("citations, param", [
    ({"verify": "maybe"}, "citations.verify"),
    ({"verifier": ""}, "citations.verifier"),
    ({"check": True}, "citations.check"),
    ("repair", "citations"),
])
def test_bad_citation_options_are_a_clear_error(fake_llm, citations, param):
    with pytest.raises(grounding.InvalidRequestError) as err:
        ask(fake_llm, citations=citations)
    assert err.value.param == param
    assert not fake_llm.chat_requests()


def test_a_bad_default_in_the_env_is_a_clear_error(fake_llm, fake_search, monkeypatch):
    monkeypatch.setenv("GROUNDING_CITATIONS_VERIFY", "sometimes")
    with pytest.raises(grounding.InvalidRequestError) as err:
        ask(fake_llm, verify=None)
    assert "GROUNDING_CITATIONS_VERIFY" in err.value.message


# --- point 3 and 6: streamed, the same annotations on the last content chunk ------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_streamed_annotations_are_the_checked_ones_with_cited_text(fake_llm, fake_search, fake_web, provider):
    base = f"{fake_llm.url}/v1" if provider == "openai" else fake_llm.url
    kw = dict(messages=[{"role": "user", "content": QUESTION}], web_search={"engine": "searxng"},
              citations={"verify": "repair"}, api_base=base, api_key="sk-test")
    plain = grounding.completion(model=f"{provider}/fake-mixed", **kw)
    chunks = list(grounding.completion(model=f"{provider}/fake-mixed", stream=True, **kw))
    for c in chunks:
        data = c.to_dict()
        data.pop("metadata", None)
        OpenAIChunk.model_validate(data)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    streamed = [a.to_dict() for a in last.choices[0].delta.annotations or []]
    assert content == plain.choices[0].message.content
    assert streamed == annotations_of(plain) and all(a["url_citation"].get("cited_text") for a in streamed)
    assert chunks[-1].metadata.citations.checks


# --- point 4: the model judge ----------------------------------------------------------------


def test_a_model_judge_gets_one_batched_call_per_answer(fake_llm, fake_search, fake_web, monkeypatch):
    monkeypatch.setenv("OPENAI_API_BASE", f"{fake_llm.url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge")
    r = ask(fake_llm, citations={"verify": "repair", "verifier": "openai/fake-judge"})
    judge_calls = [q for q in fake_llm.chat_requests() if q.json.get("model") == "fake-judge"]
    assert len(judge_calls) == 1
    body = judge_calls[0].json["messages"][-1]["content"]
    assert body.count("CLAIM:") == body.count("PASSAGE:") >= len(r.metadata.citations.checks)
    meta = r.metadata.citations
    assert meta.judge == "model:openai/fake-judge"
    claims, urls = by_claim(QUESTION, annotations_of(r))
    for claim, cited in claims:
        if claim.kind in ("correct", "link"):
            assert cited == [urls[claim.cited]]
        if claim.kind in ("fabricated", "number", "swapped"):
            assert cited == []


def test_a_failing_model_judge_falls_back_to_the_built_in_one(fake_llm, fake_search, fake_web, monkeypatch):
    monkeypatch.setenv("OPENAI_API_BASE", f"{fake_llm.url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge")
    r = ask(fake_llm, citations={"verify": "repair", "verifier": "openai/fake-judge-garbage"})
    assert r.metadata.citations.judge.startswith("lexical")
    assert any("verifier model failed" in w for w in r.metadata.warnings)
    assert r.metadata.citations.removed >= 3  # still checked


# --- native search --------------------------------------------------------------------------


def _native_answer(fake, provider, verify, stream=False):
    from tests.fakes.native import MODELS

    r = grounding.completion(model=MODELS[provider], api_base=fake.api_base(provider), api_key="k",
                             messages=[{"role": "user", "content": "Café, Tokyo, Berlin?"}],
                             web_search_options={}, citations={"verify": verify}, stream=stream)
    if stream:
        chunks = list(r)
        last = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return content, [a.to_dict() for a in last.choices[0].delta.annotations or []], chunks[-1].metadata
    return r.choices[0].message.content, annotations_of(r), r.metadata


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_citations_are_checked_against_the_text_it_quoted(fake_native, stream):
    content, annotations, meta = _native_answer(fake_native, "anthropic", "repair", stream)
    layout = fake_native.layout("anthropic")
    # The scenario cites the bridge sentence to the cafe page too: its quote does not say it.
    removed = [c for c in meta.citations.checks if c.action == "removed"]
    assert removed and all("does not support" in c.reason for c in removed)
    for a in annotations:
        c = a["url_citation"]
        assert c["cited_text"]
        source = next(s for s in fake_native.scenario.sources if s.url == c["url"])
        assert c["cited_text"] in source.snippet  # the provider's own quote, verbatim
    assert (len(annotations) + len(removed)) == len(layout.claims)
    assert any("Brücke" in content[c.start:c.end] and "cafe" in c.url for c in removed)


def test_native_citations_without_quotes_are_checked_against_the_fetched_pages(fake_native, fake_web):
    from tests.fakes.claims import candidate_sentences
    from tests.fakes.native import Scenario, Segment, Source

    from tests.fakes.web import scrapinghub_ids

    pages = ["/wcxb/0001", f"/scrapinghub/{scrapinghub_ids()[0]}"]  # nutrition trends; an unrelated news story
    urls = [fake_web.url + p for p in pages]
    texts = [page_text(u, fake_web) for u in urls]
    right, wrong = candidate_sentences(texts[0])[0], candidate_sentences(texts[1])[0]
    fake_native.scenario = Scenario("q", (Segment(right + " ", (0,)), Segment(wrong + " ", (0,))),
                                    (Source(urls[0], "A", "a"), Source(urls[1], "B", "b")))
    content, annotations, meta = _native_answer(fake_native, "openai", "repair")
    checks = meta.citations.checks
    assert len(checks) == 2 and {c.kind for c in checks} == {"native"}
    assert [c.verdict for c in checks] == ["supported", "unsupported"]
    assert [c.action for c in checks] == ["kept", "removed"]
    assert annotations[0]["url_citation"]["cited_text"] in texts[0]
    fetched = [s for s in meta.sources if s.url.startswith(urls[0])]  # OpenAI adds ?utm_source=...
    assert fetched and fetched[0].chars and fetched[0].chars > 0


def test_native_pages_that_cannot_be_fetched_are_kept_unchecked(fake_native):
    content, annotations, meta = _native_answer(fake_native, "openai", "repair")
    assert annotations and len(annotations) == len(meta.citations.checks)
    assert all(c.verdict == "unchecked" and "could not be fetched" in c.reason for c in meta.citations.checks)


# --- the CLI and the server --------------------------------------------------------------------


def run_cli(*args, env):
    return subprocess.run([sys.executable, "-m", "grounding.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=180)


@pytest.fixture
def cli_env(fake_llm, fake_search, tmp_path):
    return {**fake_search.env(), "OPENAI_API_BASE": f"{fake_llm.url}/v1", "OPENAI_API_KEY": "sk-test",
            "GROUNDING_CACHE_DIR": str(tmp_path / "cache"), "GROUNDING_ALLOW_PRIVATE_NETWORKS": "1"}


def test_cli_repairs_by_default_and_says_so(cli_env):
    proc = run_cli("ask", QUESTION, "--model", "openai/fake-mixed", "--engine", "searxng", "--json", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    meta = data.pop("metadata")
    OpenAIChatCompletion.model_validate(data)
    assert meta["citations"]["verify"] == "repair" and meta["citations"]["removed"] >= 3
    assert all(a["url_citation"]["cited_text"] for a in data["choices"][0]["message"]["annotations"])


def test_cli_verify_option_and_the_check_in_plain_output(cli_env):
    proc = run_cli("ask", QUESTION, "--model", "openai/fake-mixed", "--engine", "searxng", "--verify", "flag",
                   env=cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "not supported by the page they cite" in proc.stderr
    bad = run_cli("ask", QUESTION, "--verify", "sometimes", env=cli_env)
    assert bad.returncode != 0 and "--verify" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def server(_fake_llm_server):
    config = {"providers": {"alpha": {"litellm_provider": "openai", "api_base": f"{_fake_llm_server.url}/v1",
                                      "api_key": "sk-alpha"}},
              "models": [{"id": "fake-mixed", "provider": "alpha", "capabilities": {"tools": True}},
                         {"id": "fake-judge", "provider": "alpha"}]}
    app = create_app(Config.model_validate(config), store=MemoryRouterStore())
    with LiveServer(app) as live:
        yield live
    install(None)
    set_config({})


@pytest.mark.parametrize("stream", [False, True])
def test_server_with_the_openai_sdk(server, fake_llm, fake_search, fake_web, stream):
    with openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60) as client:
        kw = dict(model="alpha/fake-mixed", messages=[{"role": "user", "content": QUESTION}],
                  extra_body={"web_search": {"engine": "searxng"}, "citations": {"verify": "repair"}})
        if not stream:
            r = client.chat.completions.create(**kw)
            annotations = r.choices[0].message.annotations
            meta = r.metadata
        else:
            chunks = list(client.chat.completions.create(stream=True, **kw))
            last = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
            annotations = [OpenAIChatCompletion.model_validate({
                "id": "x", "object": "chat.completion", "created": 0, "model": "m",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "",
                                         "annotations": last.choices[0].delta.annotations}}]}
            ).choices[0].message.annotations][0]
            meta = chunks[-1].metadata
    assert annotations and all(a.url_citation.cited_text for a in annotations)  # typed, with the quote
    assert meta["citations"]["verify"] == "repair" and meta["citations"]["removed"] >= 3


def test_server_rejects_bad_citation_options(server, fake_llm):
    import httpx

    r = httpx.post(f"{server.url}/v1/chat/completions", timeout=30, json={
        "model": "alpha/fake-mixed", "messages": [{"role": "user", "content": "x"}],
        "citations": {"verify": "sometimes"}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "citations.verify"


# --- inferred citations, JSON answers, the prompt -----------------------------------------------


def test_inferred_citations_are_checked_too(fake_llm, fake_search, fake_web):
    r = ask(fake_llm, policy="nocite", verify="repair")  # no markers: the citation is inferred
    meta = r.metadata.citations
    assert meta.inferred >= 1 and meta.checks and {c.kind for c in meta.checks} == {"inferred"}
    assert all(c.verdict == "supported" and c.evidence for c in meta.checks)
    a = annotations_of(r)[0]["url_citation"]
    assert a["cited_text"] in page_text(a["url"], fake_web)


def test_json_answers_are_annotated_inside_string_values_only(fake_llm, fake_search, fake_web):
    from grounding.citations import json_string_spans

    r = ask(fake_llm, policy="echo-json", verify="repair", response_format={"type": "json_object"})
    content = r.choices[0].message.content
    json.loads(content)
    strings = json_string_spans(content)
    annotations = annotations_of(r)
    assert annotations
    for a in annotations:
        c = a["url_citation"]
        assert any(s <= c["start_index"] < c["end_index"] <= e for s, e in strings), content[c["start_index"]:c["end_index"]]


def test_the_instructions_give_no_claim_a_model_could_copy():
    from grounding.citations import SourceRef, annotate
    from grounding.prompts import system_prompt

    prompt = system_prompt()
    examples = [m.group(0) for m in __import__("re").finditer(r"[^.]*\[\d\][^.]*", prompt)]
    assert examples and "claim" not in prompt.lower()
    # What a small model copies from it is markers alone: they cite nothing.
    for echo in ("[2]", "[2][3]", "[2], or [2][3]"):
        assert annotate(echo, [SourceRef(2, "https://a.example", "A"), SourceRef(3, "https://b.example", "B")],
                        infer=False).annotations == []
