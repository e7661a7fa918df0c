"""The search-modes benchmark: its question set, loader, metrics, and a quick offline run."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from benchmarks import search_modes as sm
from tests.fakes.ranked_search import shared_pages
from tests.fakes.web import DATA_DIR

# -- the shipped question set ---------------------------------------------------------------


def test_the_shipped_set_is_40_plus_questions_over_several_page_types():
    questions = sm.load_questions(sm.DEFAULT_QUESTIONS)
    assert len(questions) >= 40
    kinds = Counter(q.source.split("/")[0] for q in questions)
    assert kinds["scrapinghub"] >= 15 and kinds["wcxb"] >= 15
    assert len({q.page_type for q in questions if q.source.startswith("wcxb/")}) >= 6
    assert len({q.source for q in questions}) == len(questions)  # one page per question


def test_every_answer_occurs_in_its_gold_page_and_the_gold_url_is_that_pages():
    pages = shared_pages()
    for q in sm.load_questions(sm.DEFAULT_QUESTIONS):
        page = pages[q.source]
        assert q.gold_urls == (page.url,), q.id
        for answer in q.answers:
            assert sm.contains_match(page.text, [answer]), f"{q.id}: {answer!r} is not in {q.source}'s gold text"
        if q.source.startswith("wcxb/"):
            truth = json.loads((DATA_DIR / "wcxb" / "dev" / "ground-truth" / f"{q.source[5:]}.json").read_text())
            assert q.page_type == truth["_internal"]["page_type"]["primary"]


def test_the_fake_search_finds_question_pages_by_their_words():
    from tests.fakes.ranked_search import shared_index

    questions = sm.load_questions(sm.DEFAULT_QUESTIONS)
    top3 = sum(q.source in [h.url for h in shared_index().search(q.question, 3)] for q in questions)
    assert top3 >= 0.8 * len(questions)
    # and the ranking depends on the query: different questions, different first hits
    firsts = {shared_index().search(q.question, 1)[0].url for q in questions}
    assert len(firsts) >= 0.8 * len(questions)


# -- the loader --------------------------------------------------------------------------------


def _write(tmp_path, *lines):
    path = tmp_path / "q.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = '{"id": "a", "question": "Q?", "answers": ["x"], "gold_urls": ["https://e.example/p"]}'


def test_loader_reads_a_users_file_skipping_blank_lines(tmp_path):
    path = _write(tmp_path, GOOD, "", '{"id": "b", "question": " Who? ", "answers": ["Ann", "Anne"], '
                  '"source": "mine", "page_type": "faq", "meta": {"difficulty": 2}}')
    a, b = sm.load_questions(path)
    assert a == sm.Question("a", "Q?", ("x",), ("https://e.example/p",))
    assert b.question == "Who?" and b.answers == ("Ann", "Anne") and b.gold_urls == ()
    assert b.meta == {"difficulty": 2} and b.page_type == "faq"


@pytest.mark.parametrize("bad, message", [
    ('{"id": "b", "question": "Q?", "answers": ["x"]', "line 2: not valid JSON"),
    ('["a list"]', "line 2: each line must be a JSON object"),
    ('{"id": "b", "question": "Q?"}', "line 2: missing 'answers'"),
    ('{"id": "b", "question": "Q?", "answer": ["x"], "answers": ["x"]}', "line 2: unknown key(s) 'answer'"),
    ('{"id": "b", "question": "Q?", "answers": []}', "line 2: 'answers' must be a non-empty list"),
    ('{"id": "b", "question": "Q?", "answers": "x"}', "line 2: 'answers' must be a non-empty list"),
    ('{"id": "b", "question": "Q?", "answers": ["?!"]}', "line 2: every answer must be a string with a letter"),
    ('{"id": "a", "question": "Q?", "answers": ["x"]}', "line 2: duplicate id 'a' (first on line 1)"),
    ('{"id": "b", "question": "  ", "answers": ["x"]}', "line 2: 'question' must be a non-empty string"),
    ('{"id": "b", "question": "Q?", "answers": ["x"], "gold_urls": ["e.example/p"]}', "line 2: 'gold_urls'"),
    ('{"id": 7, "question": "Q?", "answers": ["x"]}', "line 2: 'id' must be a non-empty string"),
])
def test_loader_errors_name_the_line(tmp_path, bad, message):
    path = _write(tmp_path, GOOD, bad)
    with pytest.raises(sm.QuestionFileError) as err:
        sm.load_questions(path)
    assert f"{path}:{message.split(':', 1)[0].split()[-1]}" in str(err.value)
    assert message.split(": ", 1)[1] in str(err.value)


def test_loader_rejects_missing_and_empty_files(tmp_path):
    with pytest.raises(sm.QuestionFileError, match="no such file"):
        sm.load_questions(tmp_path / "nope.jsonl")
    with pytest.raises(sm.QuestionFileError, match="no questions"):
        sm.load_questions(_write(tmp_path, "", "  "))


def test_main_reports_a_bad_question_file_and_exits_2(tmp_path, capsys):
    path = _write(tmp_path, GOOD, "{oops")
    assert sm.main(["--questions", str(path), "--offline", "--out", str(tmp_path)]) == 2
    assert f"{path}:2" in capsys.readouterr().err


# -- metrics -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("The U-Locks!", "u locks"),
    ("$5,000", "5000"),
    ("3.4 days.", "3.4 days"),
    ("180-day cruise", "180 day cruise"),
    ("Weizsäcker's Schlosspark-Klinik", "weizsacker s schlosspark klinik"),
    ("A police station", "police station"),
    (".github/workflows", "github workflows"),
])
def test_normalize_answer(text, expected):
    assert sm.normalize_answer(text) == expected


def test_contains_match_is_on_whole_tokens_after_normalization():
    assert sm.contains_match("Applicants may get up to $5000 each.", ["$5,000"])
    assert sm.contains_match("It will become a Police Station.", ["police station"])
    assert sm.contains_match("Workflows live in the .github/workflows directory [1].", [".github/workflows"])
    assert sm.contains_match("during 45 flybys", ["x", "45"])  # any gold answer
    assert not sm.contains_match("It was founded in 1945.", ["45"])  # not inside a number
    assert not sm.contains_match("3 4 days", ["3.4"])  # a decimal point is kept
    assert not sm.contains_match("", ["45"])


def test_token_f1_is_squads_best_over_answers():
    assert sm.token_f1("John Shanks", ["John Shanks"]) == 1.0
    # "producer was shanks john s friend" vs "shanks jr": 1 common token, precision 1/6, recall 1/2
    assert sm.token_f1("the producer was Shanks, John's friend", ["Shanks Jr"]) == pytest.approx(
        2 * (1 / 6) * (1 / 2) / (1 / 6 + 1 / 2))
    assert sm.token_f1("eight colors", ["8", "eight"]) == pytest.approx(2 / 3)
    assert sm.token_f1("", ["x"]) == 0.0 and sm.token_f1("nothing here", ["x"]) == 0.0


def test_support_needs_60_percent_of_the_spans_content_words_in_the_page():
    page = "The spacecraft will investigate the thickness of Europa's icy shell during 45 flybys."
    assert sm.supports("Europa Clipper will make 45 flybys of the icy shell [1].", page)  # 5 of 7 words
    assert not sm.supports("Europa has a warm ocean of liquid water with fish [2].", page)  # 1 of 6
    # the marker and the link syntax do not count as words
    assert sm.support_score("[45 flybys](https://x.example/a) [1][2]", sm.content_words(page)) == 1.0
    assert sm.supports("[1]", page) is None  # nothing to check


def test_support_also_needs_every_number_of_the_span_in_the_page():
    page = "Rode NT1 5th Generation Black microphone. Weight: 311 g. Price: $5,000 or 1.5 kg of gold."
    assert sm.supports("The Rode NT1 5th Generation Black microphone weighs 311 g [1].", page)
    # the words match (7 of 8), the number does not: a wrong figure is not supported
    assert not sm.supports("The Rode NT1 5th Generation Black microphone weighs 1.6 kg [1].", page)
    assert sm.supports("It costs 5000 dollars for the Rode NT1 microphone.", page)  # 5,000 == 5000
    # a number restated from the question is no claim of the page's
    span = "In 2019 the Rode NT1 5th Generation Black microphone weighed 311 g."
    assert not sm.supports(span, page)
    assert sm.supports(span, page, question="What did the Rode NT1 weigh in 2019?")
    page_words = sm.PageWords.of(page)
    # words rode nt1 black microphone 1 6 311: all but "6" are on the page; the number 1.6 is not
    assert sm.judge_span("Rode NT1 Black microphone: 1.6 kg, 311 g", page_words) == (False, pytest.approx(6 / 7),
                                                                                       ["1.6"])


def test_citation_spans_are_judged_against_the_cited_pages_text():
    content = "Tokio calls it the driver [1]. Rust was made by aliens [2]."
    annotations = [
        {"type": "url_citation", "url_citation": {"url": "https://a.example", "title": "", "start_index": 0,
                                                  "end_index": 29}},
        {"type": "url_citation", "url_citation": {"url": "https://b.example", "title": "", "start_index": 31,
                                                  "end_index": 59}},
        {"type": "url_citation", "url_citation": {"url": "https://c.example", "title": "", "start_index": 31,
                                                  "end_index": 59}},
    ]
    texts = {"https://a.example": ("An I/O event loop, called the driver [1], in Tokio.", "library"),
             "https://b.example": ("Rust is a programming language.", "gold")}
    judged = sm.citation_spans_supported(content, annotations, lambda u: texts.get(u, (None, None)))
    assert [j["supported"] for j in judged] == [True, False, None]
    assert judged[0]["span"] == "Tokio calls it the driver [1]" and judged[2]["text_origin"] is None


def test_url_key_ignores_scheme_www_slash_fragment_and_tracking():
    assert sm.url_key("https://www.Example.com/a/b/?utm_source=x&id=3#top") == sm.url_key("http://example.com/a/b?id=3")
    assert sm.url_key("https://example.com/p?srsltid=AfmB") == "example.com/p"
    assert sm.url_key("https://example.com/a") != sm.url_key("https://example.com/b")


def test_fake_web_urls_stand_for_the_real_pages_they_serve():
    pages = shared_pages()
    book = sm.Pages(pages, "http://127.0.0.1:5555")
    key = "wcxb/2876"
    assert book.key_of(f"http://127.0.0.1:5555/{key}") == key
    assert book.real_url(f"http://127.0.0.1:5555/{key}") == "https://tailwindcss.com/docs/installation"
    assert book.key_of("https://tailwindcss.com/docs/installation/") == key  # a real URL, slash and all
    assert book.text("https://tailwindcss.com/docs/installation") == (pages[key].text, "gold")
    book.record("https://tailwindcss.com/docs/installation", "extracted text")
    assert book.text("https://tailwindcss.com/docs/installation") == ("extracted text", "library")
    assert book.key_of("http://127.0.0.1:9999/wcxb/2876") is None  # another server


def test_modes_parse_and_the_loop_grid_expands():
    assert sm.parse_mode("loop:tavily:5:2") == sm.Mode("loop", "tavily", 5, 2)
    assert sm.parse_mode("none").label == "none"
    for bad in ("loop:tavily:5", "loop:tavily:0:1", "loop:x:3:9", "search"):
        with pytest.raises(ValueError):
            sm.parse_mode(bad)
    modes = sm.expand_modes(["none", "loop", "loop:local:3:1", "native"], ["searxng", "local"], [3, 5], [1])
    assert [m.label for m in modes] == ["none", "loop:searxng:3:1", "loop:searxng:5:1", "loop:local:3:1",
                                        "loop:local:5:1", "native"]


def test_percentiles_are_nearest_rank():
    assert sm.percentile([5, 1, 3, 2, 4], 50) == 3
    assert sm.percentile(list(range(1, 21)), 95) == 19
    assert sm.percentile([], 50) is None


# -- a quick offline run -----------------------------------------------------------------------


def test_offline_run_with_the_fake_model_writes_json_markdown_and_plots(tmp_path, monkeypatch):
    monkeypatch.setenv("GROUNDING_CACHE_DIR", str(tmp_path / "cache"))
    first = sm.DEFAULT_QUESTIONS.read_text(encoding="utf-8").splitlines()[:3]
    (tmp_path / "q.jsonl").write_text("\n".join(first) + "\n", encoding="utf-8")  # a small corpus to index
    code = sm.main(["--offline", "--model", "fake-reader:3", "--questions", str(tmp_path / "q.jsonl"),
                    "--limit", "2", "--distractors", "3",
                    "--modes", "none,loop:searxng:3:1,loop:local:3:1,native", "--out", str(tmp_path / "out"),
                    "--seed", "7"])
    assert code == 0
    out = tmp_path / "out"
    for name in ("search_modes.json", "search_modes.md", "search_modes-accuracy-latency.png",
                 "search_modes-citations.png", "search_modes-accuracy.png"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "search_modes.json").read_text())
    assert report["seed"] == 7 and report["environment"]["python"] and report["environment"]["litellm"]
    assert report["settings"]["questions_run"] == 2 and report["settings"]["corpus_pages"] == 3 + 3
    assert len(report["rows"]) == 8 and not any(r["error"] for r in report["rows"])
    summary = {m["mode"]: m for m in report["summary"]}
    assert set(summary) == {"none", "loop:searxng:3:1", "loop:local:3:1", "native"}
    assert summary["none"]["accuracy_contains"] == 0 and summary["none"]["annotations"] == 0
    for mode in ("loop:searxng:3:1", "loop:local:3:1"):
        m = summary[mode]
        assert m["gold_retrieved"] == 1.0  # the ranked fake search and the local corpus find both pages
        assert m["answer_reachable"] == 1.0 and m["answer_shown"] == 1.0  # and both answers reach the model
        assert m["citation_recall"] == 1.0 and m["citation_precision"] == 1.0  # quoted sentences, gold cited
        assert m["latency_ms"]["p50"] > 0 and m["prompt_tokens_mean"] > 500
    # the first two questions are answered by a sentence of their page (sd-002: "... during 45 flybys ...")
    rows = {(r["mode"], r["id"]): r for r in report["rows"]}
    assert rows[("loop:searxng:3:1", "sd-002")]["contains"] == 1
    cited = rows[("loop:searxng:3:1", "sd-002")]["annotations"][0]
    assert cited["real_url"].startswith("https://www.sciencealert.com/") and cited["text_origin"] == "library"
    assert summary["native"]["model"] == "perplexity/sonar (FakeNative)"
    assert summary["native"]["cost_usd_total"] > 0  # litellm prices perplexity/sonar, search fee included
    md = (out / "search_modes.md").read_text()
    assert "| fake-reader:3 | `loop:local:3:1` | 2 | 0 |" in md and "FakeNative" in md
    # the process is left as it was: `local` is the built-in engine again
    from providers.search import get_engine

    assert "search_modes-corpus" not in str(get_engine("local").corpus)


def test_online_plan_skips_native_for_models_without_it(monkeypatch):
    for key in ("GROUNDING_ENGINE", "EXA_API_KEY", "TAVILY_API_KEY", "BRAVE_API_KEY", "SERPER_API_KEY",
                "SEARXNG_API_BASE", "GOOGLE_PSE_API_KEY", "PERPLEXITYAI_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    args = sm.build_parser().parse_args(["--model", "openai/gpt-4.1-mini,openai/gpt-4o-search-preview",
                                         "--max-results", "3,5"])
    runs, skipped = sm.plan(args, None)
    labels = [(spec.label, mode.label) for spec, mode in runs]
    assert labels == [
        ("openai/gpt-4.1-mini", "none"), ("openai/gpt-4.1-mini", "loop:local:3:1"),
        ("openai/gpt-4.1-mini", "loop:local:5:1"),
        ("openai/gpt-4o-search-preview", "none"), ("openai/gpt-4o-search-preview", "loop:local:3:1"),
        ("openai/gpt-4o-search-preview", "loop:local:5:1"), ("openai/gpt-4o-search-preview", "native"),
    ]  # no search keys set: the default engine is `local`
    assert len(skipped) == 1 and "openai/gpt-4.1-mini" in skipped[0] and "no native search" in skipped[0]
