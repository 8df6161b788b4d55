"""Untrusted text and HTML made safe: Markdown → HTML, HTML sanitised with nh3, characters
that XML forbids removed, relative URLs made absolute."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import nh3
from markdown_it import MarkdownIt

# Characters XML 1.0 does not allow (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "dl", "dt",
    "em", "figcaption", "figure", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol",
    "p", "pre", "q", "s", "small", "strong", "sub", "sup", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "hreflang"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "blockquote": {"cite"},
    "q": {"cite"},
}
URL_SCHEMES = {"http", "https", "mailto", "tel"}

_markdown = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})
_markdown.enable("table")
_markdown.enable("strikethrough")

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_URL_ATTR = re.compile(r'(\s(?:href|src|cite)=")([^"]*)(")')


def strip_xml_invalid(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids (so feeds and pages always parse)."""
    return _XML_INVALID.sub("", text)


def clean_html(html: str) -> str:
    """Sanitised HTML: no script, no event handler, no style, no ``javascript:`` URL."""
    return nh3.clean(
        strip_xml_invalid(html),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
    )


def markdown_to_html(source: str) -> str:
    """Markdown (CommonMark + tables) rendered to sanitised HTML."""
    return clean_html(_markdown.render(strip_xml_invalid(source)))


def absolute_urls(html: str, base: str) -> str:
    """``html`` (as produced by :func:`clean_html`) with relative href/src/cite made absolute
    against ``base`` (the site URL); absolute and ``mailto:``/``tel:`` URLs are unchanged."""
    base = base.rstrip("/") + "/"

    def fix(match: re.Match[str]) -> str:
        url = str(match.group(2))
        if not url or _SCHEME.match(url) or url.startswith("#"):
            return str(match.group(0))
        if url.startswith("/") and not url.startswith("//"):
            absolute = base + url[1:]
        else:
            absolute = urljoin(base, url)
        return f"{match.group(1)}{absolute}{match.group(3)}"

    return _URL_ATTR.sub(fix, html)
