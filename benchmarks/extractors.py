"""Other extractors, called the way their published evaluations call them.

Each adapter takes ``(html_bytes, url)`` and returns ``(title, text)``, like
the extractors of :mod:`benchmarks.extraction` (``--extractor readability``,
``justext``, ``html-text``, ``trafilatura-defaults``, or
``benchmarks.extractors:FUNC``). Bytes are decoded the way the library's
extractor decodes them (``providers.extract`` parses with trafilatura's
``load_html``, which calls ``trafilatura.utils.decode_file``: UTF-8 when the
bytes are valid UTF-8, else the charset_normalizer guesses, else UTF-8 with
replacement characters). No adapter raises: a page an extractor cannot handle
gives ``(None, "")`` or its title with empty text.

``readability_lxml``
    ``readability.Document(html, url=url).summary(html_partial=True)`` (the
    article's HTML), turned into text with lxml's ``text_content()`` after a
    blank line is put after every block element (paragraphs, headings, list
    items, table rows, ``<br>``, ...), so paragraphs stay apart. Title:
    ``Document.short_title()``.
``justext_extract``
    ``justext.justext(html, justext.get_stoplist(LANGUAGE))`` with its
    default thresholds; the paragraphs not classified as boilerplate, joined
    by blank lines. LANGUAGE comes from the page's ``<html lang>`` (its
    primary subtag, mapped to jusText's stoplist names), English when the
    page declares none or a language jusText has no stoplist for. jusText
    gives no title (``None``).
``html_text_extract``
    ``html_text.extract_text(html, guess_layout=True)``: all the page's
    visible text (scripts, styles and the like removed), with newlines where
    the layout has them. No boilerplate removal; no title (``None``).
``trafilatura_defaults``
    ``trafilatura.extract(html_bytes, url=url)`` with every option at its
    default (note: that includes comments; ``--extractor trafilatura`` is the
    ``include_comments=False`` call). No title (``None``).
"""
from __future__ import annotations

import re
from typing import Any

__all__ = [
    "decode_html",
    "page_language",
    "readability_lxml",
    "justext_extract",
    "html_text_extract",
    "trafilatura_defaults",
    "ADAPTERS",
]


def decode_html(html: bytes | str) -> str:
    """``html`` as text, decoded as ``providers.extract`` decodes it."""
    if isinstance(html, str):
        return html
    from trafilatura.utils import decode_file

    try:
        return decode_file(bytes(html))
    except Exception:
        return bytes(html).decode("utf-8", "replace")


# ISO 639-1 codes of the languages jusText has a stoplist for.
_JUSTEXT_LANGS = {
    "af": "Afrikaans", "sq": "Albanian", "ar": "Arabic", "an": "Aragonese", "hy": "Armenian",
    "ast": "Asturian", "az": "Azerbaijani", "eu": "Basque", "be": "Belarusian", "bn": "Bengali",
    "bs": "Bosnian", "br": "Breton", "bg": "Bulgarian", "ca": "Catalan", "ceb": "Cebuano",
    "cv": "Chuvash", "hr": "Croatian", "cs": "Czech", "da": "Danish", "nl": "Dutch",
    "en": "English", "eo": "Esperanto", "et": "Estonian", "fi": "Finnish", "fr": "French",
    "gl": "Galician", "ka": "Georgian", "de": "German", "el": "Greek", "gu": "Gujarati",
    "ht": "Haitian", "he": "Hebrew", "iw": "Hebrew", "hi": "Hindi", "hu": "Hungarian",
    "is": "Icelandic", "io": "Ido", "ig": "Igbo", "id": "Indonesian", "in": "Indonesian",
    "ga": "Irish", "it": "Italian", "jv": "Javanese", "kn": "Kannada", "kk": "Kazakh",
    "ko": "Korean", "ku": "Kurdish", "ky": "Kyrgyz", "la": "Latin", "lv": "Latvian",
    "lt": "Lithuanian", "lmo": "Lombard", "nds": "Low_Saxon", "lb": "Luxembourgish",
    "mk": "Macedonian", "ms": "Malay", "ml": "Malayalam", "mt": "Maltese", "mr": "Marathi",
    "nap": "Neapolitan", "ne": "Nepali", "new": "Newar", "nb": "Norwegian_Bokmal",
    "no": "Norwegian_Bokmal", "nn": "Norwegian_Nynorsk", "oc": "Occitan", "fa": "Persian",
    "pms": "Piedmontese", "pl": "Polish", "pt": "Portuguese", "qu": "Quechua", "ro": "Romanian",
    "ru": "Russian", "sr": "Serbian", "sh": "Serbo_Croatian", "scn": "Sicilian", "sk": "Slovak",
    "sl": "Slovenian", "es": "Spanish", "su": "Sundanese", "sw": "Swahili", "sv": "Swedish",
    "tl": "Tagalog", "ta": "Tamil", "te": "Telugu", "tr": "Turkish", "tk": "Turkmen",
    "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese", "vo": "Volapuk",
    "wa": "Walloon", "war": "Waray_Waray", "cy": "Welsh", "fy": "West_Frisian", "pnb": "Western_Panjabi",
    "yo": "Yoruba",
}
_HTML_LANG_RE = re.compile(r"<html\b[^>]*?\blang\s*=\s*[\"']?\s*([A-Za-z]{2,3})\b", re.I)


def page_language(html: str) -> str:
    """jusText's stoplist name for the page's ``<html lang>``; ``"English"`` by default."""
    m = _HTML_LANG_RE.search(html[:100_000])
    if m:
        return _JUSTEXT_LANGS.get(m.group(1).lower(), "English")
    return "English"


# Elements after which readability's output gets a paragraph break.
_BLOCK_TAGS = frozenset(
    "p div h1 h2 h3 h4 h5 h6 li ul ol dl dt dd tr table pre blockquote section article "
    "header footer figure figcaption br hr td th".split()
)


def _block_text(root: Any) -> str:
    """The text of an lxml tree with a blank line after every block element."""
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        tag = el.tag.lower()
        if tag in _BLOCK_TAGS:
            sep = "\n" if tag in ("br", "td", "th") else "\n\n"
            el.tail = sep + (el.tail or "")
    text = root.text_content()
    lines = [" ".join(line.split()) for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def readability_lxml(html_bytes: bytes | str, url: str | None = None) -> tuple[str | None, str]:
    """readability-lxml: ``Document(html).summary()`` as text (see the module doc)."""
    try:
        from lxml import html as lxml_html
        from readability import Document

        doc = Document(decode_html(html_bytes), url=url)
        summary = doc.summary(html_partial=True)
        try:
            title = doc.short_title() or None
        except Exception:
            title = None
        if not summary or not summary.strip():
            return title, ""
        return title, _block_text(lxml_html.fromstring(summary))
    except Exception:
        return None, ""


_STOPLISTS: dict[str, frozenset[str]] = {}


def justext_extract(html_bytes: bytes | str, url: str | None = None) -> tuple[str | None, str]:
    """jusText with the page's language (see the module doc); non-boilerplate paragraphs."""
    try:
        import justext

        html = decode_html(html_bytes)
        lang = page_language(html)
        stoplist = _STOPLISTS.get(lang)
        if stoplist is None:
            stoplist = _STOPLISTS[lang] = justext.get_stoplist(lang)
        paragraphs = justext.justext(html, stoplist)
        return None, "\n\n".join(p.text for p in paragraphs if not p.is_boilerplate).strip()
    except Exception:
        return None, ""


def html_text_extract(html_bytes: bytes | str, url: str | None = None) -> tuple[str | None, str]:
    """html-text: ``extract_text(html, guess_layout=True)``, the whole visible text."""
    try:
        import html_text

        return None, (html_text.extract_text(decode_html(html_bytes), guess_layout=True) or "").strip()
    except Exception:
        return None, ""


def trafilatura_defaults(html_bytes: bytes | str, url: str | None = None) -> tuple[str | None, str]:
    """``trafilatura.extract(html, url=url)``, every option at its default."""
    try:
        import trafilatura

        return None, trafilatura.extract(html_bytes, url=url) or ""
    except Exception:
        return None, ""


#: ``--extractor`` names of :mod:`benchmarks.extraction` -> adapter.
ADAPTERS = {
    "readability": readability_lxml,
    "justext": justext_extract,
    "html-text": html_text_extract,
    "trafilatura-defaults": trafilatura_defaults,
}
