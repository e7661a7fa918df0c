"""Prompt tags a model copies into its answer (``<source id="1" url=...>``), removed as it streams.

The tool loop shows sources to the model inside ``<source ...>`` tags; a small
model sometimes writes one back. :class:`TagScrubber` takes the answer in
pieces and returns it without them, holding back only a trailing fragment that
could still become a tag (``<sou``), so the text a client sees streamed is the
same text the citations are computed on. ``removed`` counts what it took out.
"""
from __future__ import annotations

import re

__all__ = ["TagScrubber", "scrub"]

#: A whole tag of the prompt's source markup: <source ...>, </source>, <sources>, </sources>.
_TAG = re.compile(r"</?sources?\b[^<>]*>", re.I)
#: The end of a text that may be the start of such a tag (held back until it is decided).
_PARTIAL = re.compile(r"<(/?(s(o(u(r(c(e(s)?)?)?)?)?)?)?)?$|</?sources?\s[^<>]*$", re.I)
_MAX_HOLD = 400


class TagScrubber:
    """Streaming removal of source tags: ``feed(piece) -> text to emit``, then ``flush()``."""

    def __init__(self) -> None:
        self.removed = 0
        self._held = ""

    def feed(self, text: str) -> str:
        text = self._held + text
        self._held = ""
        text = self._strip(text)
        start = text.rfind("<")
        if start != -1 and len(text) - start <= _MAX_HOLD and _PARTIAL.match(text, start):
            text, self._held = text[:start], text[start:]
        return text

    def flush(self) -> str:
        """What is still held: a fragment that never became a tag is text; one that looks like an
        unfinished source tag (``<source id="2"`` at the very end) is dropped."""
        held, self._held = self._held, ""
        if re.match(r"</?sources?\b", held, re.I):
            self.removed += 1
            return ""
        return self._strip(held)

    def _strip(self, text: str) -> str:
        cleaned, n = _TAG.subn("", text)
        self.removed += n
        return cleaned


def scrub(text: str) -> tuple[str, int]:
    """``text`` without source tags, and how many were removed."""
    s = TagScrubber()
    out = s.feed(text) + s.flush()
    return out, s.removed
