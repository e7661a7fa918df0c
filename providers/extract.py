"""Main-text extraction: HTML in, title and readable text out.

The one place that knows how pages become text. Everything else (the fetcher,
the local index, the benchmarks) calls :func:`extract`, so a better pipeline
only has to land here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Extracted", "extract", "html_title"]


@dataclass(frozen=True)
class Extracted:
    """What a page says: its title (``None`` if it has none) and its main text."""

    title: str | None
    text: str


_TITLE_RE = re.compile(rb"<title[^>]*>(.*?)</title>", re.I | re.S)
_WS_RE = re.compile(r"[ \t\r\f\v]+")


def html_title(html: str | bytes) -> str | None:
    """The page's ``<title>``, whitespace folded; a cheap fallback for trafilatura."""
    data = html.encode("utf-8", "replace") if isinstance(html, str) else html
    m = _TITLE_RE.search(data[:200_000])
    if not m:
        return None
    import html as _html

    title = _html.unescape(m.group(1).decode("utf-8", "replace"))
    title = " ".join(title.split())
    return title or None


def _tidy(text: str) -> str:
    lines = [_WS_RE.sub(" ", line).strip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def extract(html: str | bytes, url: str | None = None) -> Extracted:
    """Extract the main text and title of an HTML page with trafilatura.

    Falls back to trafilatura's most permissive mode when the default finds
    nothing, and to the ``<title>`` tag for the title. Never raises on bad
    HTML: an unparseable page gives empty text.
    """
    import trafilatura

    if isinstance(html, bytes):
        # trafilatura decodes bytes itself (charset sniffing), but an empty
        # document makes lxml raise; guard it here.
        if not html.strip():
            return Extracted(title=None, text="")
    elif not html.strip():
        return Extracted(title=None, text="")

    title: str | None = None
    text = ""
    try:
        doc = trafilatura.bare_extraction(
            html,
            url=url,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            deduplicate=False,
        )
    except Exception:  # lxml and trafilatura raise many things on broken input
        doc = None
    if doc is not None:
        title = getattr(doc, "title", None)
        text = getattr(doc, "text", None) or ""
    if not text.strip():
        try:
            text = trafilatura.extract(html, url=url, favor_recall=True, include_comments=False) or ""
        except Exception:
            text = ""
    return Extracted(title=(title or html_title(html)), text=_tidy(text))


def extract_plain(text: str, name: str | None = None) -> Extracted:
    """Markdown or plain text: the first heading (or ``name``) as title, text as is."""
    title = None
    for line in text.splitlines():
        s = line.strip()
        if s:
            title = s.lstrip("#").strip() if s.startswith("#") else None
            break
    return Extracted(title=title or name, text=_tidy(text))
