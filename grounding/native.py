"""Native search (``web_search_options``): which models have it, and reading
back what each provider returned, streaming or not.

litellm sends ``web_search_options`` to each provider's own search; what comes
back differs per provider and is partly lost or bent by litellm (see
``tests/test_fakes_native.py`` for the exact shapes). :class:`NativeResult`
collects the raw pieces from a response or from stream chunks, and turns them
into character-offset annotations with :mod:`grounding.native_citations`.
"""
from __future__ import annotations

import re
from typing import Any

from .citations import SourceRef, annotate, url_citation
from .errors import InvalidRequestError
from .response import ScopeInfo
from .native_citations import (anthropic_annotations, field, gemini_annotations, groq_annotations, groq_queries,
                               openai_annotations, perplexity_annotations, xai_annotations)

__all__ = ["NATIVE_PROVIDERS", "DOMAIN_FILTER_PROVIDERS", "provider_of", "supports_native_search", "check_native",
           "native_search_params", "native_scope", "NativeResult"]

#: Providers whose own search litellm reaches through ``web_search_options``.
NATIVE_PROVIDERS = ("openai", "anthropic", "gemini", "vertex_ai", "groq", "xai", "perplexity")


#: Providers whose own search takes domain filters (Anthropic's web_search tool:
#: ``allowed_domains`` / ``blocked_domains``). Elsewhere ``web_search.engine="native"``
#: with domain filters runs the tool loop, which enforces them.
DOMAIN_FILTER_PROVIDERS = ("anthropic",)

_OPENAI_SEARCH_MODEL = re.compile(r"(^|/)gpt-[\w.-]*-search(-|$)")


def provider_of(model: str) -> str:
    """The provider part of a litellm model id (``openai/gpt-4o`` -> ``openai``)."""
    if "/" in model:
        return model.split("/", 1)[0].lower()
    from .llm import litellm

    try:
        return litellm().get_llm_provider(model)[1]
    except Exception:
        return ""


def supports_native_search(model: str) -> bool:
    """Whether ``model`` can search by itself through ``web_search_options``.

    OpenAI: only its search models (``*search*``). Groq: what litellm maps,
    its compound systems (``groq/compound``, ``groq/compound-mini``: they
    always search) and the models it gives the ``browser_search`` tool
    (``openai/gpt-oss-20b``, ``-120b``, ``-safeguard-20b``); litellm refuses
    the rest. Vertex AI: its Gemini models (``googleSearch``). Anthropic,
    Gemini, xAI and Perplexity: their chat models.
    """
    provider = provider_of(model)
    if provider == "openai":  # gpt-4o-search-preview, gpt-4o-mini-search-preview, gpt-5-search-api
        return _OPENAI_SEARCH_MODEL.search(model.lower()) is not None
    if provider == "groq":
        return _litellm_maps_web_search(model.split("/", 1)[1] if model.lower().startswith("groq/") else model)
    if provider == "vertex_ai":  # Claude or Llama on Vertex would answer in another shape
        return "gemini" in model.lower()
    return provider in NATIVE_PROVIDERS


def _litellm_maps_web_search(groq_model: str) -> bool:
    from .llm import litellm

    try:
        params = litellm().get_supported_openai_params(model=groq_model, custom_llm_provider="groq")
    except Exception:
        return False
    return "web_search_options" in (params or [])


def check_native(model: str) -> None:
    """Raise a clear error when ``model`` has no native search."""
    if not supports_native_search(model):
        raise InvalidRequestError(
            f"model {model!r} has no native web search, so web_search_options cannot be used with it; "
            "use web_search={'engine': ...} (the search tool loop, which works with any model that can "
            "call tools) instead",
            param="web_search_options",
        )


def native_search_params(model: str, options: dict[str, Any], scope: Any = None) -> dict[str, Any]:
    """The completion arguments that switch on ``model``'s own search.

    ``web_search_options`` (litellm maps it per provider), except for Anthropic
    when ``scope`` (the request's ``web_search``) has domain filters: litellm's
    mapping has no place for them, so the hosted ``web_search`` tool is sent as
    litellm would build it, plus ``allowed_domains`` / ``blocked_domains``
    (litellm passes hosted tools through as they are).
    """
    allowed = list(getattr(scope, "allowed_domains", None) or [])
    blocked = list(getattr(scope, "excluded_domains", None) or [])
    if not (allowed or blocked) or provider_of(model) != "anthropic":
        return {"web_search_options": options}
    from .llm import litellm

    tool = dict(litellm().AnthropicConfig().map_web_search_tool(options))
    if allowed:
        tool["allowed_domains"] = allowed
    if blocked:
        tool["blocked_domains"] = blocked
    return {"tools": [tool]}


def native_scope(scope: Any, provider: str) -> dict[str, ScopeInfo]:
    """How each set ``web_search`` scope option applies to ``provider``'s own search
    (for ``metadata.search_options``)."""
    out: dict[str, ScopeInfo] = {}
    for name in ("allowed_domains", "excluded_domains"):
        value = getattr(scope, name, None)
        if value:
            out[name] = ScopeInfo(value=value, applied=["sent_to_provider", "filtered_locally"], removed=0)
    if getattr(scope, "max_total_results", None) is not None:
        out["max_total_results"] = ScopeInfo(value=scope.max_total_results, applied=["not_applicable"],
                                             note=f"{provider} runs its own searches and reports no result count")
    if getattr(scope, "search_context_size", None) is not None:
        out["search_context_size"] = ScopeInfo(value=scope.search_context_size, applied=["sent_to_provider"])
    if getattr(scope, "user_location", None) is not None:
        out["user_location"] = ScopeInfo(value=scope.user_location.model_dump(exclude_none=True),
                                         applied=["sent_to_provider"])
    return out


_LINK = re.compile(r"\]\((https?://[^)\s]+)\)")
# Groq's executed tools that are web searches (gpt-oss: browser.search; compound: search).
# litellm counts only browser.search into usage.server_tool_use.
_GROQ_SEARCHES = frozenset({"search", "web_search", "browser.search", "browser_search"})
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|[。！？]")


def _claims_of_links(content: str, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI's and xAI's spans cover the link a search model writes after a claim
    (``claim. ([site](url))``), not the claim: widen each to the claim it cites, read
    the way the tool loop reads links. A span that is more than its link stays as given."""
    if not found:
        return found
    urls = list(dict.fromkeys(a["url_citation"]["url"] for a in found))
    refs = [SourceRef(i + 1, u, "") for i, u in enumerate(urls)]
    claims = annotate(content, refs, infer=False).annotations
    out = []
    for a in found:
        c = a["url_citation"]
        wider = [x["url_citation"] for x in claims if x["url_citation"]["url"] == c["url"]
                 and x["url_citation"]["start_index"] <= c["start_index"] < x["url_citation"]["end_index"]]
        if wider and not _WORDS_OUTSIDE_LINKS.search(_LINKS_AND_MARKERS.sub(" ", content[c["start_index"]:c["end_index"]])):
            c = {**c, "start_index": wider[0]["start_index"], "end_index": max(c["end_index"], wider[0]["end_index"])}
            a = {**a, "url_citation": c}
        out.append(a)
    return out


_LINKS_AND_MARKERS = re.compile(r"\[(?:[^\[\]\n]|\[[^\[\]\n]*\])*\]\([^)\n]*\)|\[\d+\]")
_WORDS_OUTSIDE_LINKS = re.compile(r"\w")


class NativeResult:
    """What a provider's own search returned, gathered from a response or chunks."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.annotations: list[Any] = []       # openai (nested) / xai (flat) / gemini (bent, unused)
        self.anthropic_blocks: list[Any] = []  # non-streaming: one list per cited block
        self.anthropic_stream: list[tuple[int, Any]] = []  # (content position, citation)
        self.gemini_metadata: Any = None
        self.citations: list[str] = []         # perplexity
        self.search_results: list[Any] = []    # perplexity
        self.groq_tools: dict[Any, Any] = {}   # groq: executed tools by index
        self.queries: list[str] = []
        self.web_search_requests = 0

    # -- gathering ----------------------------------------------------------

    def on_response(self, response: Any) -> None:
        message = response.choices[0].message
        self.annotations.extend(getattr(message, "annotations", None) or [])
        fields = getattr(message, "provider_specific_fields", None) or {}
        self.anthropic_blocks.extend(fields.get("citations") or [])
        self._calls(fields.get("web_search_calls"))
        grounding = getattr(response, "vertex_ai_grounding_metadata", None) or []
        self._gemini(grounding[0] if isinstance(grounding, list) and grounding else grounding)
        self.citations = list(getattr(response, "citations", None) or self.citations)
        self.search_results = list(getattr(response, "search_results", None) or self.search_results)
        self._groq(getattr(message, "executed_tools", None) or fields.get("executed_tools"))
        self._usage(getattr(response, "usage", None))

    def on_chunk(self, chunk: Any, position: int) -> None:
        """One stream chunk; ``position`` is the content length before its text."""
        for choice in getattr(chunk, "choices", None) or []:
            delta = choice.delta
            self.annotations.extend(getattr(delta, "annotations", None) or [])
            fields = getattr(delta, "provider_specific_fields", None) or {}
            if fields.get("citation"):
                self.anthropic_stream.append((position, fields["citation"]))
            self._calls(fields.get("web_search_calls"))
            # litellm 1.104.5 drops Groq's streamed executed_tools; read them if a later one keeps them
            self._groq(getattr(delta, "executed_tools", None) or fields.get("executed_tools"))
        grounding = getattr(chunk, "vertex_ai_grounding_metadata", None)
        for item in grounding if isinstance(grounding, list) else [grounding]:
            self._gemini(item)
        self.citations = list(getattr(chunk, "citations", None) or self.citations)
        self.search_results = list(getattr(chunk, "search_results", None) or self.search_results)
        self._usage(getattr(chunk, "usage", None))

    def _gemini(self, metadata: Any) -> None:
        if metadata and (field(metadata, "groundingSupports") or field(metadata, "groundingChunks")):
            self.gemini_metadata = metadata
            for q in field(metadata, "webSearchQueries") or []:
                if q not in self.queries:
                    self.queries.append(q)

    def _groq(self, tools: Any) -> None:
        """Groq's ``executed_tools``; streamed, a tool comes again once it has its results."""
        for pos, tool in enumerate(tools or []):
            key = field(tool, "index", pos)
            old = self.groq_tools.get(key)
            if old is None or field(tool, "output") is not None or field(tool, "search_results") is not None:
                self.groq_tools[key] = tool
        for q in groq_queries(self.groq_tools.values()):
            if q not in self.queries:
                self.queries.append(q)
        searches = sum(str(field(t, "name") or field(t, "type") or "") in _GROQ_SEARCHES
                       for t in self.groq_tools.values())
        self.web_search_requests = max(self.web_search_requests, searches)

    def _calls(self, calls: Any) -> None:
        for call in (calls.values() if isinstance(calls, dict) else calls or []):
            query = field(field(call, "action") or {}, "query")
            if query and query not in self.queries:
                self.queries.append(query)

    def _usage(self, usage: Any) -> None:
        if usage is None:
            return
        counts = [
            field(field(usage, "server_tool_use"), "web_search_requests"),
            field(field(usage, "prompt_tokens_details"), "web_search_requests"),
            field(field(usage, "server_side_tool_usage_details"), "web_search_calls"),
        ]
        found = [int(c) for c in counts if isinstance(c, (int, float)) and c]
        if found:
            self.web_search_requests = max(self.web_search_requests, max(found))

    # -- reading ------------------------------------------------------------

    def to_annotations(self, content: str) -> list[dict[str, Any]]:
        """Character-offset ``url_citation`` annotations for ``content``."""
        p = self.provider
        if p == "anthropic":
            found = anthropic_annotations(content, self.anthropic_blocks) if self.anthropic_blocks else \
                self._anthropic_streamed(content)
        elif p in ("gemini", "vertex_ai") and self.gemini_metadata is not None:
            found = gemini_annotations(content, self.gemini_metadata)
        elif p == "perplexity" and self.citations:
            found = perplexity_annotations(content, self.citations, self.search_results)
        elif p == "xai":
            found = _claims_of_links(content, xai_annotations(content, self.annotations))
        elif p == "groq" and self.groq_tools:
            found = groq_annotations(content, list(self.groq_tools.values()))
        else:
            found = _claims_of_links(content, openai_annotations(content, self.annotations))
        if not found:  # streamed xAI and the like: the links are still in the text
            found = self._from_links(content)
        return sorted(found, key=lambda a: (a["url_citation"]["start_index"], a["url_citation"]["url"]))

    def _anthropic_streamed(self, content: str) -> list[dict[str, Any]]:
        # Each citation came just before the text of the block it cites; the
        # block's end is not signalled, so the span ends at the first sentence
        # end, the end of the line, or the next cited block, whichever is first.
        starts = sorted({pos for pos, _ in self.anthropic_stream})
        out = []
        for pos, cite in self.anthropic_stream:
            later = [s for s in starts if s > pos]
            end = min(later[0] if later else len(content), len(content))
            stop = _SENTENCE_END.search(content, pos, end)
            if stop:
                end = stop.end()
            newline = content.find("\n", pos)
            if 0 <= newline < end:
                end = newline
            while end > pos and content[end - 1].isspace():
                end -= 1
            if end > pos and field(cite, "url"):
                out.append(url_citation(field(cite, "url"), field(cite, "title", ""), pos, end,
                                        cited_text=field(cite, "cited_text") or None))
        return out

    def _from_links(self, content: str) -> list[dict[str, Any]]:
        urls = list(dict.fromkeys(m.group(1) for m in _LINK.finditer(content)))
        refs = [SourceRef(i + 1, u, "") for i, u in enumerate(urls)]
        return annotate(content, refs, infer=False).annotations if refs else []
