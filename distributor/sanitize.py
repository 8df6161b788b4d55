"""Untrusted text and HTML made safe: Markdown → HTML, HTML sanitised with nh3, characters
that XML forbids removed, relative URLs made absolute."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urljoin

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

from .errors import InputError

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

# html5ever (under nh3) takes time quadratic in the depth of nested elements: 100,000 nested
# <div> take 30 s. A press release nests a few levels; Markdown itself stops at 20.
MAX_HTML_DEPTH = 100
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)")
_VOID = frozenset(
    "area base br col embed hr img input link meta param source track wbr".split()
)  # fmt: skip
# Elements whose start tag closes an open one of the same group (HTML's optional end tags).
_SIBLINGS = {tag: group for group in (("p",), ("li",), ("dt", "dd"), ("tr",), ("td", "th"),
                                      ("option",)) for tag in group}  # fmt: skip

_URL_NOISE = re.compile(r"[\x00-\x20\x7f]")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_URL_ATTR = re.compile(r'(\s(?:href|src|cite)=")([^"]*)(")')


def strip_xml_invalid(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids (so feeds and pages always parse)."""
    return _XML_INVALID.sub("", text)


def clean_html(html: str) -> str:
    """Sanitised HTML: no script, no event handler, no style, no ``javascript:`` URL, no
    character XML forbids (a reference such as ``&#11;`` comes out of nh3 as the character:
    stripped after it too)."""
    cleaned = nh3.clean(
        strip_xml_invalid(html),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        attribute_filter=_check_cite,
    )
    return strip_xml_invalid(cleaned)


def _check_cite(tag: str, attribute: str, value: str) -> str | None:
    """``value`` unless it is a ``cite`` URL of a scheme we do not allow: nh3 checks the
    scheme of ``href`` and ``src`` only (``<blockquote cite="javascript:…">`` got through)."""
    if attribute != "cite":
        return value
    scheme = _SCHEME.match(_URL_NOISE.sub("", value))  # what browsers ignore in a URL
    if scheme and scheme.group(0)[:-1].lower() not in URL_SCHEMES:
        return None
    return value


def html_depth(html: str, limit: int = MAX_HTML_DEPTH) -> int:
    """How deep the elements of ``html`` nest at most, as far as a cheap linear scan can tell
    (tags found by a regular expression: one inside a comment or an attribute counts too),
    an unclosed tag staying open; counting stops past ``limit``."""
    open_tags: list[str] = []
    deepest = 0
    for closing, name in _TAG.findall(html):
        tag = name.lower()
        if closing:
            if tag in open_tags:  # closes it and whatever was left open inside it
                del open_tags[len(open_tags) - 1 - open_tags[::-1].index(tag) :]
            continue
        if tag in _VOID:
            continue
        group = _SIBLINGS.get(tag)
        if group and open_tags and open_tags[-1] in group:
            open_tags.pop()
        open_tags.append(tag)
        deepest = max(deepest, len(open_tags))
        if deepest > limit:
            break
    return deepest


def parse_markdown(source: str) -> tuple[list[Token], dict[str, Any]]:
    """The token stream of ``source`` as :func:`markdown_to_html` parses it, and the parse's
    environment (``references``: each reference definition, by normalised label, with its
    ``href`` and ``map``, the lines it spans)."""
    env: dict[str, Any] = {}
    return _markdown.parse(source, env), env


def markdown_to_html(source: str) -> str:
    """Markdown (CommonMark + tables) rendered to sanitised HTML. Raises InputError for
    raw HTML nested more than MAX_HTML_DEPTH elements deep."""
    html = _markdown.render(strip_xml_invalid(source))
    if html_depth(html) > MAX_HTML_DEPTH:
        raise InputError(
            f"body: HTML elements nested more than {MAX_HTML_DEPTH} levels deep (unclosed tags?)"
        )
    return clean_html(html)


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
