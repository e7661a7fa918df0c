"""Main-text extraction: HTML in, title and readable text out.

The one place that knows how pages become text. Everything else (the fetcher,
the local index, the benchmarks) calls :func:`extract`, so a better pipeline
only has to land here.

The pipeline (chosen on the WCXB development split and checked on the
scrapinghub articles; ``python -m benchmarks.extraction``, figures in
``benchmarks/RESULTS.md``):

1. parse once with trafilatura's loader (charset sniffing for bytes);
2. title from the page itself: its single ``<h1>`` when that is the headline
   and not the site's logo, else ``og:title`` / ``<title>`` with the site's
   name cut off (``"Headline | Site"`` -> ``"Headline"``);
3. main text: trafilatura in its balanced mode (its own fallbacks to its
   readability/jusText comparison and baseline, and its recall retry on
   short extractions), tables kept, comments, links and images dropped, no
   document-level deduplication; the blocks it keeps are those of its
   plain-text mode, rendered as Markdown (headings, lists, tables and code
   blocks keep their shape, paragraphs are separated by blank lines) without
   trafilatura's backslash escapes;
4. recall fallback: when that keeps less than half of the page's words (or
   nothing), one more pass in ``favor_recall`` mode (``fast``: without the
   readability/jusText comparison the first pass made), kept if it has at
   least 1.2 times the words. On WCXB dev this lifts word F1 from 0.823 to
   0.831 (every page type gains; recall 0.844 -> 0.859, precision 0.859 ->
   0.856; paired 95 % interval of the gain +0.004..+0.011); on scrapinghub
   one article of 181 changes (0.960 -> 0.959). The price: the check and
   the second pass (run on ~37 % of WCXB pages) cost ~20-28 % more CPU.

trafilatura's own metadata pass is not run: its date search (htmldate) cost
more than the text extraction itself and only the title is kept here.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["Extracted", "extract", "extract_plain", "html_title", "SETTINGS"]


@dataclass(frozen=True)
class Extracted:
    """What a page says: its title (``None`` if it has none) and its main text."""

    title: str | None
    text: str


# trafilatura.bare_extraction options of the main pass. The text is extracted
# as for plain-text output (its choices of what to keep scored best; Markdown
# mode keeps slightly different blocks) and then rendered as Markdown.
_MAIN_OPTIONS: dict[str, Any] = {
    "fast": False,
    "favor_precision": False,
    "favor_recall": False,
    "include_comments": False,
    "include_tables": True,
    "include_links": False,
    "include_images": False,
    "include_formatting": False,
    "deduplicate": False,
    "with_metadata": False,
}
# The second pass, only when the main one keeps little of the page (see _extract):
# recall mode without trafilatura's readability/jusText comparison, which the main
# pass has already made (faster, and it scored better as the fallback).
_FALLBACK_OPTIONS: dict[str, Any] = {**_MAIN_OPTIONS, "favor_recall": True, "fast": True}
# The second pass runs when the main one has fewer than this share of the page's words...
_RECALL_PAGE_SHARE = 0.5
# ...and replaces it when it has at least this many times the main pass's words.
_RECALL_MIN_GAIN = 1.2
# The page's words: the text of <body> outside scripts, styles and templates.
_PAGE_TEXT_XPATH = (
    "//body//text()[not(ancestor::script or ancestor::style or ancestor::noscript or ancestor::template)]"
)
_WORD_RE = re.compile(r"\w+")
# trafilatura's own cap (MAX_FILE_SIZE in its settings.cfg).
_MAX_INPUT_BYTES = 20_000_000

#: What :func:`extract` does, for benchmarks and logs.
SETTINGS: dict[str, Any] = {
    "backend": "trafilatura",
    "main_pass": dict(_MAIN_OPTIONS),
    "recall_fallback": {
        "options": dict(_FALLBACK_OPTIONS),
        "runs_when": f"main pass has no words or < {_RECALL_PAGE_SHARE} x the page's words (<body> text, no scripts/styles)",
        "kept_when": f"it has >= {_RECALL_MIN_GAIN} x the main pass's words (and some)",
    },
    "output": "Markdown rendering of the extracted tree (trafilatura.xml.xmltotxt), escapes removed",
    "title": "single <h1> unless it is the site name, else og:title/<title> minus the site name",
}

_TITLE_RE = re.compile(rb"<title[^>]*>(.*?)</title>", re.I | re.S)
_WS_RE = re.compile(r"[ \t\r\f\v\u00a0]+")
# a code fence, also when it opens inside a list item ("- ```")
_FENCE_RE = re.compile(r"^\s*(?:(?:[-*+]|\d+[.)])\s+)?(```|~~~)")
_LIST_ITEM_RE = re.compile(r"^\s+(?:[-*+]|\d+[.)])\s")


def html_title(html: str | bytes) -> str | None:
    """The page's ``<title>``, whitespace folded; a cheap fallback that never parses."""
    try:
        data = html.encode("utf-8", "replace") if isinstance(html, str) else bytes(html)
    except Exception:
        return None
    m = _TITLE_RE.search(data[:200_000])
    if not m:
        return None
    import html as _html

    title = _html.unescape(m.group(1).decode("utf-8", "replace"))
    title = " ".join(title.split())
    return title or None


def _tidy(text: str) -> str:
    """Fold spaces, drop trailing ones, keep one blank line between blocks.

    Lines inside fenced code blocks are kept as they are (less trailing
    spaces), and so is the indentation of nested list items.
    """
    out: list[str] = []
    in_code = False
    for raw in text.splitlines():
        if _FENCE_RE.match(raw):
            in_code = not in_code
            line = raw.strip()
        elif in_code:
            out.append(raw.rstrip())
            continue
        else:
            line = _WS_RE.sub(" ", raw).strip()
            if line and _LIST_ITEM_RE.match(raw):
                indent = len(raw) - len(raw.lstrip(" "))
                line = " " * indent + line
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


# ------------------------------------------------------------------- titles

_TITLE_SEP_RE = re.compile(r"\s+(?:[|\-–—·•»:/]|::)\s+|\s*[|•·»]\s*")
_KEY_RE = re.compile(r"\W+")


def _key(s: str | None) -> str:
    return _KEY_RE.sub("", (s or "").casefold())


def _fold(s: str | None) -> str:
    return " ".join((s or "").split())


def _strip_site(title: str, site: str | None, host: str | None) -> str:
    """``title`` without a leading or trailing part that names the site."""
    parts = [p.strip() for p in _TITLE_SEP_RE.split(title) if p and p.strip()]
    if len(parts) < 2:
        return title
    host_keys: set[str] = set()
    if host:
        h = host.lower().removeprefix("www.")
        labels = h.split(".")
        host_keys = {k for k in (_key(h), _key(labels[0]), _key(".".join(labels[:-1]))) if k}
        if len(labels) > 2:
            host_keys.add(_key(labels[-2]))
    site_key = _key(site)

    def names_site(part: str) -> bool:
        k = _key(part)
        if not k:
            return True
        if site_key and (
            k == site_key
            or (
                len(k) >= 3
                and (k in site_key or site_key in k)
                and abs(len(k) - len(site_key)) <= 12
                and len(part.split()) <= 4
            )
        ):
            return True
        return any(len(k) >= 4 and (k == hk or hk.startswith(k) or k.startswith(hk)) for hk in host_keys)

    kept = list(parts)
    while len(kept) > 1 and names_site(kept[-1]):
        kept.pop()
    while len(kept) > 1 and names_site(kept[0]):
        kept.pop(0)
    if len(kept) == len(parts):
        return title
    start, end = title.find(kept[0]), title.rfind(kept[-1])
    if start < 0 or end < 0:
        return " - ".join(kept)
    return title[start : end + len(kept[-1])]


def _meta(tree: Any, *names: str) -> str | None:
    for name in names:
        for value in tree.xpath(f'//meta[@property="{name}" or @name="{name}"]/@content'):
            value = _fold(str(value))
            if value:
                return value
    return None


def _page_title(tree: Any, url: str | None) -> str | None:
    """The headline of a parsed page (see the module doc), or ``None``."""
    head_title = tree.xpath("//head/title") or tree.xpath("//title")
    title_tag = _fold(head_title[0].text_content()) if head_title else ""
    base = _meta(tree, "og:title", "twitter:title") or title_tag or None
    site = _meta(tree, "og:site_name", "application-name", "apple-mobile-web-app-title")
    host = urlsplit(url).hostname if url else None
    if not host:
        og_url = _meta(tree, "og:url")
        host = urlsplit(og_url).hostname if og_url else None
    stripped = _strip_site(base, site, host) if base else None

    h1s = [h for h in (_fold(e.text_content()) for e in tree.xpath("//h1")) if h]
    if len(h1s) == 1 and 3 <= len(h1s[0]) <= 150:
        h1 = h1s[0]
        h1_is_site = _key(h1) == _key(site) or (
            stripped is not None
            and _key(h1) != _key(stripped)
            and _key(h1) not in _key(stripped)
            and _strip_site(base or "", h1, None) != base
        )
        if not h1_is_site:
            return h1
    return stripped or (h1s[0][:300] if h1s else None)


# --------------------------------------------------------------------- text

# an inline code span (kept as is), or a backslash escape trafilatura put before a
# Markdown special character
_MD_ESCAPE_RE = re.compile(r"(`+)[^`]+?\1|\\([\\*_`~\[\]<>#+\-.)!|])")


def _unescape_markdown(text: str) -> str:
    """Drop the backslashes trafilatura puts before Markdown special characters.

    ``ngx\\_http\\_module`` reads better as ``ngx_http_module`` in a prompt; code
    blocks and inline code spans are left alone.
    """
    if "\\" not in text:
        return text
    out = []
    in_code = False
    for line in text.split("\n"):
        if _FENCE_RE.match(line):
            in_code = not in_code
        elif not in_code and "\\" in line:
            line = _MD_ESCAPE_RE.sub(lambda m: m.group(0) if m.group(1) else m.group(2), line)
        out.append(line)
    return "\n".join(out)


def _words(text: str) -> int:
    return len(_WORD_RE.findall(text))


def _page_words(tree: Any) -> int:
    """How many words the page shows (its ``<body>`` text outside scripts and styles)."""
    try:
        return sum(_words(t) for t in tree.xpath(_PAGE_TEXT_XPATH))
    except Exception:
        return 0


def _run_trafilatura(tree: Any, url: str | None, options: dict[str, Any]) -> str:
    import trafilatura

    try:
        doc = trafilatura.bare_extraction(tree, url=url, **options)
    except Exception:  # lxml and trafilatura raise many things on broken input
        return ""
    if doc is None:
        return ""
    body = getattr(doc, "body", None)
    if body is not None:
        try:
            from trafilatura.xml import xmltotxt

            return _unescape_markdown(xmltotxt(body, True) or "")
        except Exception:
            pass
    return getattr(doc, "text", None) or ""


# trafilatura parses with one module-level lxml parser; two threads in it at
# once aborted the interpreter (SIGABRT in document_fromstring, seen in CI).
# Extraction holds the GIL most of the time anyway, so one at a time costs
# little; callers that want parallelism use processes (see local_index).
_PARSE_LOCK = threading.Lock()


def _extract(html: str | bytes, url: str | None) -> Extracted:
    from trafilatura import load_html

    if not isinstance(html, (str, bytes)):
        html = bytes(html) if isinstance(html, (bytearray, memoryview)) else ""
    if not html.strip():
        return Extracted(title=None, text="")
    try:
        tree = load_html(html, _MAX_INPUT_BYTES)
    except Exception:
        tree = None
    if tree is None:
        return Extracted(title=html_title(html), text="")
    try:
        title = _page_title(tree, url)
    except Exception:
        title = None
    title = title or html_title(html)
    text = _run_trafilatura(tree, url, _MAIN_OPTIONS)
    # Recall fallback: balanced mode sometimes keeps one block of a page whose
    # content is spread over many (listings, forum threads, service pages,
    # long articles cut at a widget). When it kept little of the page, recall
    # mode gets a say, and wins if it finds clearly more. (bare_extraction
    # copies the tree it is given, so the tree is still the whole page here.)
    n = _words(text)
    if n == 0 or n < _RECALL_PAGE_SHARE * _page_words(tree):
        recall = _run_trafilatura(tree, url, _FALLBACK_OPTIONS)
        n_recall = _words(recall)
        if n_recall > 0 and n_recall >= _RECALL_MIN_GAIN * n:
            text = recall
    return Extracted(title=title, text=_tidy(text))


def extract(html: str | bytes, url: str | None = None) -> Extracted:
    """Extract the title and main text (Markdown) of an HTML page.

    ``html`` may be bytes (the charset is sniffed) or text; ``url`` is the
    page's address, used as context only. Never raises: a page that cannot be
    parsed, or has no main text, gives empty text (and the ``<title>`` if it
    has one).
    """
    try:
        with _PARSE_LOCK:
            return _extract(html, url)
    except Exception:
        try:
            return Extracted(title=html_title(html), text="")
        except Exception:
            return Extracted(title=None, text="")


def extract_plain(text: str, name: str | None = None) -> Extracted:
    """Markdown or plain text: the first heading (or ``name``) as title, text as is."""
    title = None
    for line in text.splitlines():
        s = line.strip()
        if s:
            title = s.lstrip("#").strip() if s.startswith("#") else None
            break
    return Extracted(title=title or name, text=_tidy(text))
