"""The scripted behaviours of the fake chat model, chosen by model name.

A policy reads a wire-neutral :class:`Conversation` and returns an
:class:`Action` (tool calls, text, or an HTTP error); ``tests.fakes.llm``
renders it in the OpenAI or Anthropic wire format. The model name
``fake-<policy>[:<max_rounds>]`` picks the policy (any other name gets
``searcher``) and how many search rounds it makes before answering
(default 1).

Sources arrive in tool results as
``<source id="1" url="..." title="...">text</source>`` blocks.
Adding a policy is one entry in :data:`POLICIES`.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from tests.fakes.claims import Scripted

from tests.fakes.media import png_for_aspect

__all__ = [
    "POLICIES",
    "Action",
    "Conversation",
    "Source",
    "ToolCall",
    "Turn",
    "choose",
    "first_sentence",
    "searching",
]

SEARCH_TOOL = "web_search"
PHANTOM_URL = "https://not-fetched.example/x"


@dataclass(frozen=True)
class ToolCall:
    """A tool call: the tool's name and its arguments as JSON text (invalid on purpose for ``malformed``).

    ``id`` is the wire id of a call read from a request; writers give new calls their own.
    """

    name: str
    arguments: str
    id: str = ""

    def args(self) -> dict[str, object] | None:
        """The arguments if they are a JSON object, else ``None``."""
        try:
            value = json.loads(self.arguments)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


@dataclass
class Turn:
    """One message, wire-neutral: ``system``, ``user``, ``assistant`` or ``tool`` (a tool's result)."""

    role: str
    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None  # for tool results: the call it answers
    tool_name: str | None = None  # for tool results: the tool that produced it


@dataclass(frozen=True)
class Source:
    """A numbered source as the library hands it to the model."""

    id: str
    url: str
    title: str
    text: str


@dataclass
class Conversation:
    """What a policy sees: the turns, the offered tools and the tool choice."""

    turns: list[Turn]
    tools: list[str]
    tool_choice: str = "auto"  # "auto", "none", "required", or the name of a forced tool
    max_rounds: int = 1
    modalities: tuple[str, ...] = ("text",)
    image_config: dict[str, object] = field(default_factory=dict)
    response_format: dict[str, object] | None = None

    def recent(self) -> list[Turn]:
        """The turns after the last user message."""
        last = max((i for i, t in enumerate(self.turns) if t.role == "user"), default=-1)
        return self.turns[last + 1 :]

    def question(self) -> str:
        """The text of the last user message."""
        return next((t.text for t in reversed(self.turns) if t.role == "user"), "")

    def sources(self) -> list[Source]:
        """Sources in the tool results after the last user message (else in the whole conversation)."""
        found = _parse_sources(t.text for t in self.recent() if t.role == "tool")
        return found or _parse_sources(t.text for t in self.turns if t.role == "tool")

    def search_rounds(self) -> int:
        """Assistant turns since the last user message that called ``web_search`` with valid arguments."""
        return sum(
            any(c.name == SEARCH_TOOL and c.args() is not None for c in t.tool_calls)
            for t in self.recent()
            if t.role == "assistant"
        )

    def called_any_tool(self) -> bool:
        """Whether the model already called a tool since the last user message."""
        return any(t.tool_calls for t in self.recent() if t.role == "assistant")

    def wants_search(self) -> bool:
        """``web_search`` is offered, allowed, and fewer than ``max_rounds`` searches were made."""
        return (
            SEARCH_TOOL in self.tools
            and self.tool_choice in ("auto", "required", SEARCH_TOOL)
            and self.search_rounds() < self.max_rounds
        )


@dataclass(frozen=True)
class Action:
    """What the model does: call tools, write text, or fail with an HTTP status."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    error: int | None = None
    images: tuple[bytes, ...] = ()  # PNGs the model draws (image models asked for modalities "image")


_SOURCE_RE = re.compile(r"<source\b([^>]*)>(.*?)</source>", re.S)
_ATTR_RE = re.compile(r'([\w-]+)="([^"]*)"')


def _parse_sources(texts: Iterable[str]) -> list[Source]:
    seen: dict[str, Source] = {}
    for text in texts:
        for m in _SOURCE_RE.finditer(text):
            attrs = {k: html.unescape(v) for k, v in _ATTR_RE.findall(m[1])}
            if "id" in attrs and attrs["id"] not in seen:
                seen[attrs["id"]] = Source(
                    attrs["id"], attrs.get("url", ""), attrs.get("title", ""), m[2].strip()
                )
    return list(seen.values())


def first_sentence(text: str) -> str:
    """``text`` up to its first sentence end, within its first line (a verbatim substring)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    m = re.search(r"[.!?](?=\s|$)", line)
    sentence = line[: m.end()] if m else line
    if len(sentence) > 300:
        sentence = sentence[:300].rsplit(" ", 1)[0]
    return sentence


def _claim(source: Source) -> str:
    return first_sentence(source.text) or source.title or source.url


def _search(c: Conversation, *variants: str) -> Action:
    """One ``web_search`` call for the question, plus one per ``variant`` (question + variant)."""
    queries = (c.question(), *(f"{c.question()} {v}" for v in variants))
    return Action(tool_calls=tuple(ToolCall(SEARCH_TOOL, json.dumps({"query": q})) for q in queries))


def _cited(cite: Callable[[Source, int, list[Source]], str]) -> Callable[[Conversation], str]:
    """An answer of one sentence per source (up to 3), each followed by ``cite(source, i, sources)``."""

    def answer(c: Conversation) -> str:
        sources = c.sources()[:3]
        if not sources:
            return "I could not find any sources about that."
        return " ".join(f"{_claim(s)} {cite(s, i, sources)}" for i, s in enumerate(sources))

    return answer


def _numbered(s: Source, i: int, sources: list[Source]) -> str:
    return f"[{s.id}]"


def _multi(s: Source, i: int, sources: list[Source]) -> str:
    """``[1][2]`` after the first sentence, ``[1, 2]`` after the second."""
    ids = [x.id for x in sources[:2]]
    if i == 0:
        return "".join(f"[{n}]" for n in ids)
    if i == 1:
        return f"[{', '.join(ids)}]"
    return f"[{s.id}]"


def _phantom(c: Conversation) -> str:
    sources = c.sources()
    real = f"{_claim(sources[0])} [{sources[0].id}] " if sources else ""
    return f"{real}Experts also agree on this [9]. More at [this page]({PHANTOM_URL})."


def _json_answer(c: Conversation) -> str:
    sources = c.sources()
    return json.dumps(
        {
            "question": c.question(),
            "answer": _claim(sources[0]) if sources else "I know this.",
            "sources": [s.url for s in sources],
        }
    )


Policy = Callable[[Conversation], Action]

REPAIR_MARK = "Your answer is not valid"
"""How the library's repair turn starts (the policies below notice it)."""


def _asked_to_repair(c: Conversation) -> bool:
    return c.question().startswith(REPAIR_MARK)


def _instance(schema: object, sources: list[Source], key: str | None = None) -> object:
    """A value valid for ``schema`` (the subset a response_format uses), filled from ``sources``:
    URLs under ``sources``/``url`` keys, cited claims in other strings."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {k: _instance(v, sources, k) for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        items = schema.get("items") or {}
        if key in ("sources", "urls") and sources:
            return [s.url for s in sources[: max(1, int(schema.get("minItems") or 1))]]
        return [_instance(items, sources, key) for _ in range(max(1, int(schema.get("minItems") or 1)))]
    if kind == "string":
        if key in ("url", "source") or schema.get("format") == "uri":
            return sources[0].url if sources else "https://example.com/"
        return f"{_claim(sources[0])} [{sources[0].id}]" if sources else "I know this."
    if kind == "integer":
        return int(schema.get("minimum") or 1)
    if kind == "number":
        return float(schema.get("minimum") or 1)
    if kind == "boolean":
        return True
    return None


def _json_text(c: Conversation, *, valid: bool = True, fenced: bool = False, phantom: bool = False) -> str:
    """The answer ``response_format`` asks for: valid, broken (a required field missing and a
    wrong type) or prose, fenced or not; ``phantom`` adds a source URL nothing was fetched from."""
    rf = c.response_format or {}
    spec = rf.get("json_schema") if isinstance(rf.get("json_schema"), dict) else {}
    schema = spec.get("schema") if isinstance(spec, dict) else None
    sources = c.sources()
    if rf.get("type") == "json_schema" and isinstance(schema, dict):
        data = _instance(schema, sources)
    else:
        data = json.loads(_json_answer(c))
    if phantom and isinstance(data, dict):
        data["sources"] = [*data.get("sources", []), PHANTOM_URL]
    if not valid:
        if not isinstance(data, dict) or rf.get("type") != "json_schema":
            return "Here is what I found: " + (_claim(sources[0]) if sources else "nothing") + "."
        required = (schema or {}).get("required") or list(data)
        data = {k: v for k, v in data.items() if k not in required[:1]}
        data.update({k: 42 for k in list(data)[:1]})  # and a wrong type
    text = json.dumps(data, ensure_ascii=False)
    return f"```json\n{text}\n```" if fenced else text


def _json_policy(**how: bool) -> Policy:
    """Search, then answer in JSON (as a forced tool call when that is the JSON mode, as
    litellm makes Anthropic's); ``how`` as :func:`_json_text` takes it, ``valid=False``
    until asked to repair when ``repairs``."""
    repairs = how.pop("repairs", False)

    def policy(c: Conversation) -> Action:
        if c.wants_search() and not _asked_to_repair(c):
            return _search(c)
        valid = how.get("valid", True) or (repairs and _asked_to_repair(c))
        text = _json_text(c, **{**how, "valid": valid})
        if c.tool_choice in c.tools and c.tool_choice != SEARCH_TOOL:  # forced tool: Anthropic's JSON mode
            return Action(tool_calls=(ToolCall(c.tool_choice, text),))
        return Action(text=text)

    return policy


def _painting(then: Policy) -> Policy:
    """``then``, plus a PNG sized by ``image_config.aspect_ratio`` on answers when asked for images."""

    def policy(c: Conversation) -> Action:
        action = then(c)
        if "image" not in c.modalities or action.tool_calls or action.error:
            return action
        ratio = c.image_config.get("aspect_ratio")
        return Action(text=action.text, images=(png_for_aspect(ratio if isinstance(ratio, str) else None),))

    return policy


def searching(answer: Callable[[Conversation], str], *variants: str) -> Policy:
    """Search while :meth:`Conversation.wants_search`, then answer with ``answer``."""
    return lambda c: _search(c, *variants) if c.wants_search() else Action(text=answer(c))


def _first_then(call: Callable[[Conversation], ToolCall], then: Policy) -> Policy:
    """Make ``call`` first (once per user message), then behave like ``then``."""
    return lambda c: then(c) if c.called_any_tool() else Action(tool_calls=(call(c),))


_searcher = searching(_cited(_numbered))


def _caller_tool(c: Conversation) -> Action:
    other = next((t for t in c.tools if t != SEARCH_TOOL), None)
    if other is None:
        return _searcher(c)
    result = next((t.text for t in c.recent() if t.role == "tool" and t.tool_name == other), None)
    if result is not None:
        return Action(text=f"The tool said: {result}")
    return Action(tool_calls=(ToolCall(other, "{}"),))


_json_searcher = searching(_json_answer)


def _echo_json(c: Conversation) -> Action:
    if c.tool_choice in c.tools and c.tool_choice != SEARCH_TOOL:  # forced tool: Anthropic's JSON mode
        return Action(tool_calls=(ToolCall(c.tool_choice, _json_answer(c)),))
    return _json_searcher(c)


#: What the ``mixed`` policy wrote for each question: its claims and the truth about them
#: (``tests.fakes.claims``), and the sources it was shown as ``(url, title, text)``.
SCRIPTED: dict[str, tuple["Scripted", list[tuple[str, str, str]]]] = {}


def _mixed(c: Conversation) -> str:
    """A misbehaving model: correct, paraphrased, misattributed, made-up and altered claims,
    each with a citation (see ``tests.fakes.claims``)."""
    from tests.fakes.claims import render, script

    sources = c.sources()
    if not sources:
        return "I could not find any sources about that."
    shown = [(s.url, s.title, s.text) for s in sources]
    scripted = script(shown, c.question())
    text = render(scripted, shown, [int(s.id) for s in sources])
    SCRIPTED[c.question()] = (scripted, shown)
    return text


_ITEM_RE = re.compile(r"^(\d+)\. CLAIM: (.*?)\nPASSAGE: (.*?)(?=\n\n\d+\. CLAIM: |\Z)", re.S | re.M)


def _judge(c: Conversation) -> Action:
    """A citation judge (``grounding.verify.ModelJudge``'s batched request): an item is
    supported when every word of its claim occurs in its passage, else unsupported."""
    verdicts = []
    for m in _ITEM_RE.finditer(c.question()):
        claim = set(re.findall(r"\w+", m[2].lower()))
        passage = set(re.findall(r"\w+", m[3].lower()))
        verdicts.append({"id": int(m[1]), "verdict": "supported" if claim <= passage else "unsupported"})
    return Action(text=json.dumps({"verdicts": verdicts}))


POLICIES: dict[str, Policy] = {
    "searcher": _searcher,
    "links": searching(_cited(lambda s, i, _: f"[{s.title}]({s.url})")),
    "multi": searching(_cited(_multi)),
    "parallel": searching(_cited(_numbered), "background"),
    # Disobeys tool_choice="none": searches whenever web_search is offered at all.
    "loop": lambda c: _search(c) if SEARCH_TOOL in c.tools else _searcher(c),
    "malformed": _first_then(lambda c: ToolCall(SEARCH_TOOL, '{"query": "' + c.question()[:12]), _searcher),
    "unknown-tool": _first_then(
        lambda c: ToolCall("browse", json.dumps({"url": "https://example.com/"})), _searcher
    ),
    "caller-tool": _caller_tool,
    "phantom": searching(_phantom),
    "mixed": searching(_mixed),
    "judge": _judge,
    "judge-garbage": lambda c: Action(text="I think they are all fine."),
    "nocite": searching(lambda c: _claim(c.sources()[0]) if c.sources() else "I know this."),
    # Copies its prompt's source markup into the answer, as small models sometimes do.
    "leaky": searching(lambda c: "".join(f'<source id="{s.id}" url="{s.url}">\n{_claim(s)} [{s.id}]\n</source>\n'
                                        for s in c.sources()[:2]) or "I know this."),
    "direct": lambda c: Action(text="I know this."),
    "echo-json": _echo_json,
    # response_format with grounding: schema-valid JSON; invalid until asked to repair; never valid;
    # fenced in ```json; with a source URL that was never fetched.
    "schema": _json_policy(),
    "schema-repair": _json_policy(valid=False, repairs=True),
    "schema-never": _json_policy(valid=False),
    "schema-fenced": _json_policy(fenced=True),
    "schema-phantom": _json_policy(phantom=True),
    # An image model (OpenRouter-style message.images): searches, cites, and draws when asked.
    "painter": _painting(_searcher),
    "painter-direct": _painting(lambda c: Action(text="I know this.")),
    "fail": lambda c: Action(error=500),
    "ratelimit": lambda c: Action(error=429),
    "notfound": lambda c: Action(error=404),
}


def choose(model: str) -> tuple[Policy, int]:
    """The policy and ``max_rounds`` for a model name (provider prefix already removed)."""
    name, _, rounds = model.partition(":")
    policy = POLICIES.get(name.removeprefix("fake-"), POLICIES["searcher"])
    return policy, int(rounds) if rounds.isdigit() and int(rounds) > 0 else 1
