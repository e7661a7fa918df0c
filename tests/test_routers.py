"""Routers: loading and validation, CEL routes, sticky weighted variants, applying a variant."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from grounding.config import Config, load_config
from grounding.errors import InvalidRequestError, NotFoundError
from grounding.routing import routers as routers_mod
from grounding.routing.routers import (
    GENERATION_FIELDS,
    Router,
    RouterSet,
    get_routers,
    load_routers,
    parse_router_ref,
    reset,
)

ROOT = Path(__file__).resolve().parent.parent
USER = [{"role": "user", "content": "hello"}]


def router_dict(**overrides) -> dict:
    """A valid router: a messages route, a metadata route with a 50/50 split, a default route."""
    data = {
        "name": "support",
        "defaults": {
            "messages": [{"role": "system", "content": "You help our customers."}],
            "generation": {"temperature": 0.3, "max_tokens": 800},
        },
        "routes": [
            {"id": "code",
             "condition": 'messages.exists(m, m.role == "user" && m.content.contains("code"))',
             "variants": [{"id": "coder", "model": "gpt-4.1"}]},
            {"id": "pro",
             "condition": 'has(metadata.tier) && metadata.tier == "pro"',
             "variants": [
                 {"id": "a", "weight": 50, "model": "claude-sonnet-4-5", "web_search": {"max_results": 5}},
                 {"id": "b", "weight": 50, "model": "auto", "models": ["gpt-4.1", "gemini-2.5-flash"],
                  "sort": ["intelligence", "latency"], "generation": {"reasoning_effort": "low"}},
             ]},
        ],
        "default_route": {"id": "standard", "variants": [{"id": "cheap", "model": "gpt-4.1-mini"}]},
    }
    data.update(overrides)
    return data


def make(**overrides) -> Router:
    return Router.from_dict(router_dict(**overrides))


def split_route(*weights: int, route_id: str = "ab") -> dict:
    return {"id": route_id, "condition": "true",
            "variants": [{"id": f"v{i}", "weight": w, "model": f"m{i}"} for i, w in enumerate(weights)]}


def bad(data: dict, *, source: str | None = None) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        Router.from_dict(data, source=source)
    assert info.value.code == "invalid_router"
    return info.value


# --------------------------------------------------------------------------- loading


def test_load_yaml_json_and_folder(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(router_dict(name="one")))
    (tmp_path / "two.json").write_text(json.dumps([router_dict(name="two"), router_dict(name="three")]))
    sub = tmp_path / "more"
    sub.mkdir()
    (sub / "four.yml").write_text(yaml.safe_dump({"routers": [router_dict(name="four")]}))
    (sub / "notes.txt").write_text("not a router")  # ignored in a folder
    (sub / ".hidden.yaml").write_text("{{{")  # ignored too
    config = Config(router_files=["one.yaml", "two.json", "more"], base_dir=str(tmp_path),
                    routers=[router_dict(name="inline")])
    rs = load_routers(config)
    assert rs.names() == ["four", "inline", "one", "three", "two"]
    assert rs.get("two").routes[1].variants[1].models == ["gpt-4.1", "gemini-2.5-flash"]
    assert rs.get("four").default_route.id == "standard"


def test_load_from_config_file_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "routers").mkdir()
    (tmp_path / "routers" / "r.json").write_text(json.dumps(router_dict(name="rel")))
    cfg = tmp_path / "grounding.yaml"
    cfg.write_text("router_files: [routers/]\n")
    assert load_routers(load_config(cfg)).names() == ["rel"]


def test_duplicate_names_across_files_name_both(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(router_dict()))
    (tmp_path / "b.json").write_text(json.dumps(router_dict()))
    with pytest.raises(InvalidRequestError) as info:
        load_routers(Config(router_files=[str(tmp_path)]))
    assert "'support' is defined twice" in info.value.message
    assert "a.yaml" in info.value.message and "b.json" in info.value.message


@pytest.mark.parametrize("content, expected", [
    ("name: x\nroutes: [\n", "not valid YAML"),
    ("42\n", "expected a router"),
    (yaml.safe_dump({"routers": [router_dict(routes=[split_route(60, 30)])]}), "sum to 90"),
])
def test_file_errors_name_the_file(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(content)
    with pytest.raises(InvalidRequestError) as info:
        load_routers(Config(router_files=[str(path)]))
    assert str(path) in info.value.message and expected in info.value.message


def test_bad_json_and_missing_path(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text("{nope")
    with pytest.raises(InvalidRequestError, match=r"r\.json: not valid JSON"):
        load_routers(Config(router_files=[str(tmp_path / "r.json")]))
    with pytest.raises(InvalidRequestError, match="no such file or folder"):
        load_routers(Config(router_files=[str(tmp_path / "missing")]))


def test_get_routers_cached_until_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    import grounding.config as config_mod

    monkeypatch.setattr(config_mod, "_current", Config(routers=[router_dict(name="first")]))
    reset()
    try:
        rs = get_routers()
        assert rs.names() == ["first"] and get_routers() is rs
        monkeypatch.setattr(config_mod, "_current", Config(routers=[router_dict(name="second")]))
        assert get_routers() is rs
        reset()
        assert get_routers().names() == ["second"]
    finally:
        reset()


def test_set_config_drops_cached_routers(monkeypatch: pytest.MonkeyPatch) -> None:
    import grounding.config as config_mod

    monkeypatch.setattr(config_mod, "_current", None)
    try:
        config_mod.set_config({"routers": [router_dict(name="x1")]})
        assert get_routers().names() == ["x1"]
        config_mod.set_config({"routers": [router_dict(name="x2")]})
        assert get_routers().names() == ["x2"]
    finally:
        reset()


def test_example_router_file_loads_and_routes() -> None:
    rs = load_routers(Config(router_files=[str(ROOT / "examples" / "routers")]))
    r = rs.get("support")
    code = r.select(metadata={"tier": "pro"}, user="u",
                    messages=[{"role": "user", "content": "Why does this raise an Exception?"}], request_id="1")
    assert (code.route_id, code.variant_id) == ("code", "coder")
    pro = {r.select(metadata={"tier": "pro"}, messages=USER, user=f"user-{i}", request_id="1").variant_id
           for i in range(50)}
    assert pro == {"claude-search", "auto-smart"}
    assert any(v.web_search for v in r.routes[1].variants)
    plain = r.select(metadata=None, messages=USER, user="u", request_id="1")
    assert (plain.route_id, plain.matched) == ("standard", "default")


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("weights, total", [((50, 49), 99), ((50, 51), 101), ((60, 30, 11), 101)])
def test_weights_must_sum_to_100(weights: tuple[int, ...], total: int) -> None:
    err = bad(router_dict(routes=[split_route(*weights, route_id="split")]))
    assert "router 'support'" in err.message and "route 'split'" in err.message
    assert f"sum to {total}" in err.message


def test_weight_range_and_type() -> None:
    assert "weight" in bad(router_dict(routes=[split_route(0, 100)])).message
    assert "weight" in bad(router_dict(routes=[split_route(101, -1)])).message
    err = bad(router_dict(routes=[{"id": "r", "condition": "true",
                                   "variants": [{"id": "a", "weight": "50", "model": "m"},
                                                {"id": "b", "weight": 50, "model": "m"}]}]))
    assert "variant 'a'" in err.message and "weight" in err.message
    # Several variants: each needs its weight; a lone variant defaults to 100.
    err = bad(router_dict(routes=[{"id": "r", "condition": "true",
                                   "variants": [{"id": "a", "model": "m"}, {"id": "b", "model": "n"}]}]))
    assert "variant 'a': weight: required" in err.message
    assert make().routes[0].variants[0].weight == 100


def test_bad_cel_names_router_route_and_cel_message() -> None:
    err = bad(router_dict(routes=[{"id": "broken", "condition": 'metadata.tier == "pro" &&',
                                   "variants": [{"id": "a", "model": "m"}]}]))
    assert "router 'support'" in err.message and "route 'broken'" in err.message
    assert "does not compile" in err.message and "Syntax error" in err.message


def test_unknown_cel_variable_is_caught_at_load() -> None:
    err = bad(router_dict(routes=[{"id": "typo", "condition": 'metdata.tier == "pro"',
                                   "variants": [{"id": "a", "model": "m"}]}]))
    assert "route 'typo'" in err.message and "'metdata'" in err.message
    # Comprehension variables and type names are not unknown.
    make(routes=[{"id": "ok", "condition": 'messages.all(x, type(x.content) == string) && '
                                           '[1, 2].map(n, n * 2).size() == 2',
                  "variants": [{"id": "a", "model": "m"}]}])


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["routes"][1]["variants"][1].update(id="a"), "variant id 'a' is used more than once"),
    (lambda d: d["routes"][1].update(id="code"), "route id 'code' is used more than once"),
    (lambda d: d["default_route"].update(id="pro"), "route id 'pro' is used more than once"),
    (lambda d: d["routes"][0]["variants"][0].update(generation={"temprature": 1}),
     "unknown generation field 'temprature'"),
    (lambda d: d["defaults"]["generation"].update(bogus=1), "defaults.generation: unknown generation field 'bogus'"),
    (lambda d: d["defaults"]["generation"].update(temperature=3), "temperature"),
    (lambda d: d["routes"][0]["variants"][0].update(generation={"tool_choice": "sometimes"}), "tool_choice"),
    (lambda d: d["routes"][1]["variants"][0].update(web_search_options={"search_context_size": "low"}),
     "not both"),
    (lambda d: d["routes"][1]["variants"][0].update(web_search={"max_results": 99}), "max_results"),
    (lambda d: d["routes"][1]["variants"][0].update(web_search={"engine": "nope"}), "unknown search engine"),
    (lambda d: d["routes"][0]["variants"][0].pop("model"), "needs model"),
    (lambda d: d["routes"][0]["variants"][0].update(models=["x"]), "not both"),
    (lambda d: d["routes"][0]["variants"][0].update(model="router/other"), "cannot name a router"),
    (lambda d: d["routes"][0]["variants"][0].update(sort="cheapness"), "unknown sort key 'cheapness'"),
    (lambda d: d["routes"][0]["variants"][0].update(provider={"order": ["a"], "fallbacks": True}),
     "provider.fallbacks: unknown key"),
    (lambda d: d["routes"][0]["variants"][0].update(messages=[{"role": "wizard", "content": "x"}]), "role"),
    (lambda d: d["routes"][0].pop("condition"), "route 'code' has no condition"),
    (lambda d: d["default_route"].update(condition="true"), "default_route takes no condition"),
    (lambda d: d.update(routes=[], default_route=None), "needs routes or a default_route"),
    (lambda d: d.update(name="bad name!"), "name"),
    (lambda d: d.update(colour="blue"), "colour: unknown key"),
    (lambda d: d["routes"][0].update(variants=[]), "variants"),
])
def test_validation_errors(mutate, expected: str) -> None:
    data = router_dict()
    mutate(data)
    assert expected in bad(data).message


def test_error_locations_use_ids() -> None:
    data = router_dict()
    data["routes"][1]["variants"][1]["generation"] = {"nope": 1}
    err = bad(data, source="router file x.yaml")
    assert err.message.startswith("router file x.yaml: router 'support': route 'pro': variant 'b': generation: ")
    assert err.param == "routes[1].variants[1].generation"


def test_generation_fields_match_the_request() -> None:
    from grounding.request import ChatRequest

    assert set(GENERATION_FIELDS) <= set(ChatRequest.model_fields)
    assert "user" not in GENERATION_FIELDS and "model" not in GENERATION_FIELDS


# --------------------------------------------------------------------------- selecting


def test_first_matching_route_wins_then_default() -> None:
    r = make()
    both = r.select(metadata={"tier": "pro"}, messages=[{"role": "user", "content": "my code"}],
                    user="u", request_id="1")
    assert (both.route_id, both.matched) == ("code", "condition")
    pro = r.select(metadata={"tier": "pro"}, messages=USER, user="u", request_id="1")
    assert pro.route_id == "pro" and pro.variant_id in {"a", "b"}
    none = r.select(metadata={"tier": "free"}, messages=USER, user="u", request_id="1")
    assert (none.route_id, none.variant_id, none.matched) == ("standard", "cheap", "default")
    assert none.metadata() == {"router": "support", "route_id": "standard", "variant_id": "cheap"}
    assert none.warnings == []


def test_no_match_and_no_default_is_a_clear_error() -> None:
    r = make(default_route=None)
    with pytest.raises(InvalidRequestError) as info:
        r.select(metadata=None, messages=USER, user=None, request_id="1")
    assert info.value.code == "no_route"
    assert info.value.message == "router 'support': no route matched and there is no default route"


def test_cel_over_metadata_messages_and_user() -> None:
    def first(condition: str, **request) -> bool:
        r = make(routes=[{"id": "r", "condition": condition, "variants": [{"id": "v", "model": "m"}]}])
        args = {"metadata": None, "messages": USER, "user": None, "request_id": "1"} | request
        return r.select(**args).matched == "condition"

    assert first('has(metadata.tier) && metadata.tier == "pro"', metadata={"tier": "pro"})
    assert not first('has(metadata.tier) && metadata.tier == "pro"', metadata={})
    assert first('"region" in metadata && metadata["region"] in ["eu", "uk"]', metadata={"region": "uk"})
    assert first("int(metadata.seats) >= 50", metadata={"seats": "64"})
    assert first('metadata.region.lowerAscii() == "eu"', metadata={"region": "EU"})
    assert first("size(messages) > 4", messages=USER * 5)
    assert not first("size(messages) > 4", messages=USER * 4)
    assert first('messages[size(messages) - 1].content == "last"',
                 messages=USER + [{"role": "user", "content": "last"}])
    parts = [{"role": "user", "content": [{"type": "text", "text": "look at"},
                                          {"type": "image_url", "image_url": {"url": "http://x/i.png"}},
                                          {"type": "text", "text": "this code"}]}]
    cond = 'messages.exists(m, m.role == "user" && m.content.contains("code"))'
    assert first(cond, messages=parts)
    assert first('messages[0].content == "look at\\nthis code"', messages=parts)
    assert not first(cond, messages=[{"role": "assistant", "content": "code"}, {"role": "user", "content": None}])
    assert first('messages.exists(m, m.content.matches("(?i)\\\\bpython\\\\b"))',
                 messages=[{"role": "user", "content": "Is Python fast?"}])
    assert first('user.startsWith("staff-")', user="staff-1")
    assert not first('user.startsWith("staff-")', user=None)
    assert first('user == ""', user=None)


def test_failing_condition_counts_as_false_with_a_warning() -> None:
    r = make(routes=[
        {"id": "unguarded", "condition": 'metadata.tier == "pro"', "variants": [{"id": "v", "model": "m"}]},
        {"id": "notbool", "condition": "size(messages)", "variants": [{"id": "v", "model": "m"}]},
        {"id": "nofn", "condition": "nosuchfunction(user)", "variants": [{"id": "v", "model": "m"}]},
        {"id": "fine", "condition": "true", "variants": [{"id": "v", "model": "m"}]},
    ])
    s = r.select(metadata={}, messages=USER, user=None, request_id="1")
    assert s.route_id == "fine"
    assert len(s.warnings) == 3
    assert s.warnings[0].startswith("route 'unguarded': condition failed") and "'tier'" in s.warnings[0]
    assert s.warnings[1].startswith("route 'notbool'") and "not a bool" in s.warnings[1]
    assert s.warnings[2].startswith("route 'nofn'") and "nosuchfunction" in s.warnings[2]


def test_messages_view_is_built_lazily_and_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = routers_mod._message_view
    monkeypatch.setattr(routers_mod, "_message_view", lambda m: calls.append(1) or real(m))
    r = make()
    r.select(metadata={"tier": "pro"}, messages=USER, user="u", request_id="1")
    assert len(calls) == 1  # the "code" route needs messages; built once
    meta_only = make(routes=[router_dict()["routes"][1]])
    calls.clear()
    meta_only.select(metadata={"tier": "pro"}, messages=USER, user="u", request_id="1")
    assert calls == []
    many = make(routes=[{"id": f"r{i}", "condition": f"size(messages) == {100 + i}",
                         "variants": [{"id": "v", "model": "m"}]} for i in range(5)])
    calls.clear()
    many.select(metadata=None, messages=USER, user="u", request_id="1")
    assert len(calls) == 1


def test_twenty_routes_select_without_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """Selection runs the programs compiled at load time (how fast it is, is the routing
    benchmark's figure: ``python -m benchmarks.routing``, never a test's assertion)."""
    routes = [{"id": f"r{i}", "condition": f'has(metadata.tier) && metadata.tier == "t{i}" || '
                                           f'messages.exists(m, m.content.contains("kw{i}"))',
               "variants": [{"id": "a", "weight": 30, "model": "x"}, {"id": "b", "weight": 70, "model": "y"}]}
              for i in range(20)]
    r = make(routes=routes)
    messages = [{"role": "system", "content": "You are helpful. " * 50}] + [
        {"role": "user" if i % 2 else "assistant", "content": f"turn {i} " * 40} for i in range(10)]

    def no_compile(*args, **kwargs):
        raise AssertionError("CEL compiled while selecting")

    monkeypatch.setattr(routers_mod.cel, "compile", no_compile)
    chosen = {r.select(metadata={"tier": "t19"}, messages=messages, user=f"u{i}", request_id="x").route_id
              for i in range(30)}
    assert chosen == {"r19"}
    hit = r.select(metadata={}, messages=messages + [{"role": "user", "content": "about kw7"}], user="u",
                   request_id="x")
    assert hit.route_id == "r7"


# --------------------------------------------------------------------------- sticky variants

_STICKY_ROUTER = {"name": "ab", "routes": [split_route(10, 30, 60)]}
_USERS = [f"user-{i}" for i in range(200)] + ["", "ünïcode", "a\x00b"]


def _variants(r: Router) -> list[str]:
    return [r.select(metadata=None, messages=USER, user=u or None, request_id="fixed").variant_id for u in _USERS]


def test_same_user_same_variant_across_fresh_loads(tmp_path: Path) -> None:
    path = tmp_path / "ab.json"
    path.write_text(json.dumps(_STICKY_ROUTER))
    first = _variants(load_routers(Config(router_files=[str(path)])).get("ab"))
    second = _variants(load_routers(Config(router_files=[str(path)])).get("ab"))
    assert first == second
    assert set(first) == {"v0", "v1", "v2"}
    # Repeated selections in one process agree too.
    r = load_routers(Config(router_files=[str(path)])).get("ab")
    assert _variants(r) == _variants(r) == first


def test_same_user_same_variant_in_a_fresh_process(tmp_path: Path) -> None:
    path = tmp_path / "ab.json"
    path.write_text(json.dumps(_STICKY_ROUTER))
    here = _variants(load_routers(Config(router_files=[str(path)])).get("ab"))
    code = (
        "import json, sys\n"
        "from grounding.config import Config\n"
        "from grounding.routing.routers import load_routers\n"
        "r = load_routers(Config(router_files=[sys.argv[1]])).get('ab')\n"
        "users = json.loads(sys.argv[2])\n"
        "print(json.dumps([r.select(metadata=None, messages=[{'role': 'user', 'content': 'hello'}],\n"
        "                           user=u or None, request_id='fixed').variant_id for u in users]))\n"
    )
    for seed in ("0", "12345"):  # different str hashes in the child: no hash() may leak into the choice
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code, str(path), json.dumps(_USERS)], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=60, check=True)
        assert json.loads(out.stdout) == here


def test_known_bucket_values_are_stable() -> None:
    # Pinned: a change of the hashing scheme would silently reshuffle every user.
    r = Router.from_dict({"name": "ab", "routes": [split_route(50, 50)]})
    picks = [r.select(metadata=None, messages=USER, user=u, request_id="x").variant_id
             for u in ("alice", "bob", "carol", "dave", "erin", "frank")]
    import hashlib

    expected = []
    for u in ("alice", "bob", "carol", "dave", "erin", "frank"):
        bucket = int(hashlib.sha256(f"ab\x00ab\x00{u}".encode()).hexdigest()[:16], 16) % 10000
        expected.append("v0" if bucket < 5000 else "v1")
    assert picks == expected


@pytest.mark.parametrize("weights", [(50, 50), (10, 90), (10, 30, 60)])
def test_shares_follow_weights(weights: tuple[int, ...]) -> None:
    r = Router.from_dict({"name": "shares", "routes": [split_route(*weights)]})
    counts = dict.fromkeys((f"v{i}" for i in range(len(weights))), 0)
    n = 10_000
    for i in range(n):
        counts[r.select(metadata=None, messages=USER, user=f"customer-{i}", request_id="same").variant_id] += 1
    for i, w in enumerate(weights):
        assert abs(100 * counts[f"v{i}"] / n - w) <= 2, counts


def test_anonymous_requests_spread_by_request_id() -> None:
    r = Router.from_dict({"name": "anon", "routes": [split_route(50, 50)]})
    picks = [r.select(metadata=None, messages=USER, user=None, request_id=f"req-{i}").variant_id
             for i in range(2000)]
    assert 0.45 < picks.count("v0") / len(picks) < 0.55
    again = [r.select(metadata=None, messages=USER, user="", request_id=f"req-{i}").variant_id
             for i in range(2000)]
    assert again == picks
    # With a user, the request id does not matter.
    assert len({r.select(metadata=None, messages=USER, user="u1", request_id=f"req-{i}").variant_id
                for i in range(50)}) == 1


# --------------------------------------------------------------------------- applying


def _pro_request(**extra) -> dict:
    return {"model": "router/support", "messages": [{"role": "user", "content": "hi"}],
            "metadata": {"tier": "pro", "product": "Acme"}, **extra}


def _pick(r: Router, variant_id: str, request: dict):
    for i in range(500):
        s = r.select(metadata=request.get("metadata"), messages=request["messages"], user=f"u{i}",
                     request_id="1")
        if s.variant_id == variant_id:
            return s
    raise AssertionError(f"variant {variant_id} never chosen")


def test_apply_generation_precedence_and_selection_fields() -> None:
    r = make()
    request = _pro_request(temperature=0.9, sort="price")
    original = copy.deepcopy(request)
    out = r.apply(_pick(r, "b", request), request)
    assert request == original  # not mutated
    assert out["model"] == "auto" and out["models"] == ["gpt-4.1", "gemini-2.5-flash"]
    assert out["temperature"] == 0.9  # the request wins over the router defaults
    assert out["max_tokens"] == 800  # defaults fill what the request leaves out
    assert out["reasoning_effort"] == "low"  # the variant's generation
    assert out["sort"] == "price"  # the request's own selection field wins
    assert "web_search" not in out


def test_variant_generation_beats_defaults_and_none_means_unset() -> None:
    data = router_dict()
    data["routes"][0]["variants"][0]["generation"] = {"temperature": 0.1}
    r = Router.from_dict(data)
    request = {"model": "router/support", "messages": [{"role": "user", "content": "code"}], "temperature": None}
    s = r.select(metadata=None, messages=request["messages"], user="u", request_id="1")
    out = r.apply(s, request)
    assert out["temperature"] == 0.1 and out["max_tokens"] == 800 and out["model"] == "gpt-4.1"


def test_apply_web_search_unless_the_request_sets_either() -> None:
    r = make()
    s = _pick(r, "a", _pro_request())
    assert r.apply(s, _pro_request())["web_search"] == {"max_results": 5}
    own = r.apply(s, _pro_request(web_search_options={"search_context_size": "low"}))
    assert "web_search" not in own and own["web_search_options"] == {"search_context_size": "low"}
    in_extra = r.apply(s, _pro_request(extra_body={"web_search": {"engine": "local"}}))
    assert "web_search" not in in_extra and in_extra["extra_body"] == {"web_search": {"engine": "local"}}
    in_extra = r.apply(s, _pro_request(extra_body={"models": ["mine"], "temperature": 1.5}))
    assert "models" not in in_extra and "temperature" not in in_extra


def test_fallback_chain_and_provider_block() -> None:
    r = make(default_route={"variants": [{"id": "chain", "models": ["m1", "m2", "m3"], "ignore": ["groq"],
                                          "sort": "price",
                                          "provider": {"order": ["openai"], "allow_fallbacks": False}}]})
    s = r.select(metadata=None, messages=USER, user=None, request_id="1")
    out = r.apply(s, {"model": "router/support", "messages": USER})
    assert out["model"] == "m1" and out["models"] == ["m2", "m3"]
    assert out["ignore"] == ["groq"] and out["provider"] == {"order": ["openai"], "allow_fallbacks": False}
    assert out["sort"] == ["price"]  # one key becomes a list, as the request takes it
    single = make(default_route={"variants": [{"id": "one", "models": ["only"]}]})
    out = single.apply(single.select(metadata=None, messages=USER, user=None, request_id="1"),
                       {"model": "router/support", "messages": USER})
    assert out["model"] == "only" and "models" not in out


def test_templates_order_and_placeholders() -> None:
    data = router_dict()
    data["defaults"]["messages"] = [
        {"role": "user", "content": "Example question from {{ user }}"},
        {"role": "assistant", "content": "Example answer"},
        {"role": "system", "content": "Product: {{metadata.product}}; tier {{metadata.tier}}"},
    ]
    data["routes"][0]["variants"][0]["messages"] = [
        {"role": "developer", "content": [{"type": "text", "text": "Tier {{metadata.tier}}"}]}]
    r = Router.from_dict(data)
    request = {"model": "router/support", "user": "bob", "metadata": {"tier": "pro", "product": "Acme"},
               "messages": [{"role": "system", "content": "caller's {{user}} and {{anything}}"},
                            {"role": "user", "content": "my code"}]}
    out = r.apply(r.select(metadata=request["metadata"], messages=request["messages"], user="bob",
                           request_id="1"), request)
    assert out["messages"] == [
        {"role": "system", "content": "Product: Acme; tier pro"},
        {"role": "developer", "content": [{"type": "text", "text": "Tier pro"}]},
        {"role": "user", "content": "Example question from bob"},
        {"role": "assistant", "content": "Example answer"},
        # the request's messages are never templated
        {"role": "system", "content": "caller's {{user}} and {{anything}}"},
        {"role": "user", "content": "my code"},
    ]
    # The router's own templates are untouched for the next request.
    assert r.defaults.messages[2]["content"].startswith("Product: {{metadata.product}}")


@pytest.mark.parametrize("request_fields, missing", [
    ({"metadata": {"tier": "pro"}}, "metadata.product"),          # a metadata key the template uses
    ({"metadata": {"product": "Acme"}, "user": None}, "user"),     # {{user}} without a user
])
def test_a_request_lacking_a_template_variable_is_an_error_naming_it(request_fields, missing) -> None:
    data = router_dict()
    data["defaults"]["messages"] = [{"role": "system", "content": "Product: {{metadata.product}}, for {{user}}"}]
    r = Router.from_dict(data)
    request = {"model": "router/support", "messages": USER, "user": "bob", **request_fields}
    selection = r.select(metadata=request.get("metadata"), messages=USER, user=request.get("user"), request_id="1")
    with pytest.raises(InvalidRequestError) as err:
        r.apply(selection, request)
    assert err.value.param == missing and err.value.code == "missing_template_variable"
    assert "{{" + missing + "}}" in err.value.message and "support" in err.value.message


@pytest.mark.parametrize("text", ["Hello {{metadta.product}}", "Hi {{ name }}", "{{metadata.}}", "{{}}",
                                  "Dear {{ User }}"])
def test_a_template_naming_no_variable_is_refused_when_the_router_is_loaded(text) -> None:
    data = router_dict()
    data["routes"][0]["variants"][0]["messages"] = [{"role": "system", "content": [{"type": "text", "text": text}]}]
    with pytest.raises(InvalidRequestError) as err:
        Router.from_dict(data, source="routers.yaml")
    message = err.value.message
    assert message.startswith("routers.yaml: router 'support'") and "names no variable" in message
    assert "{{user}} or {{metadata.KEY}}" in message and "Value error" not in message


def test_route_convenience_reads_the_request() -> None:
    r = make()
    out, s = r.route(_pro_request(user="u1", extra_body={"web_search": {"max_results": 2}}), request_id="1")
    assert s.route_id == "pro" and out["model"] in {"claude-sonnet-4-5", "auto"}
    assert "web_search" not in out


# --------------------------------------------------------------------------- the set and references


def test_router_set_get_put_delete_and_listing() -> None:
    rs = RouterSet([router_dict(name="b"), router_dict(name="a")])
    assert rs.names() == ["a", "b"] and "a" in rs and len(rs) == 2
    with pytest.raises(NotFoundError) as info:
        rs.get("x")
    assert info.value.message == "unknown router 'x'; known: a, b"
    assert (info.value.param, info.value.code, info.value.status_code) == ("model", "model_not_found", 404)
    replaced = rs.put(router_dict(name="a", description="new"))
    assert rs.get("a") is replaced and replaced.description == "new"
    with pytest.raises(InvalidRequestError, match="sum to 90"):
        rs.put(router_dict(name="a", routes=[split_route(45, 45)]))
    assert rs.get("a").description == "new"  # a failed put changes nothing
    listing = rs.to_dict()
    assert [r["name"] for r in listing["routers"]] == ["a", "b"]
    json.dumps(listing)
    assert RouterSet(listing["routers"]).to_dict() == listing  # the listing round-trips
    rs.delete("a")
    assert rs.names() == ["b"]
    with pytest.raises(NotFoundError):
        rs.delete("a")
    with pytest.raises(NotFoundError, match=r"known: \(none\)"):
        RouterSet().get("a")
    with pytest.raises(InvalidRequestError, match="more than once"):
        RouterSet([router_dict(), router_dict()])


def test_parse_router_ref(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_router_ref("router/support", "router") == "support"
    assert parse_router_ref("inworld/support", "router") == "support"
    assert parse_router_ref("acme/support", "acme") == "support"
    assert parse_router_ref("inworld/support", "acme") == "support"
    assert parse_router_ref("router/support", "acme") is None
    assert parse_router_ref("openai/gpt-4.1", "router") is None
    assert parse_router_ref("auto", "router") is None
    assert parse_router_ref("routers/x", "router") is None
    import grounding.config as config_mod

    monkeypatch.setattr(config_mod, "_current", Config(router_prefix="team"))
    assert parse_router_ref("team/x") == "x" and parse_router_ref("router/x") is None
