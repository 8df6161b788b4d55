"""Untrusted text and HTML made safe: Markdown → HTML, HTML sanitised with nh3, characters
that XML forbids removed, relative URLs made absolute; the one check of a single-line text
field (a title, a name), and the plain text of a field that readers may take for HTML."""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

import nh3

from distributor.core.errors import InputError

if TYPE_CHECKING:  # the parser loads where Markdown is rendered: the Settings (through the
    # identity's checks of a line) need none of it, and every command loads them
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

# Characters XML 1.0 does not allow (C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

ALLOWED_TAGS = set(
    """a abbr b blockquote br caption cite code dd del dl dt em figcaption figure h2 h3 h4 h5
    h6 hr i img li ol p pre q s small strong sub sup table tbody td tfoot th thead tr u
    ul""".split()
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "hreflang"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "blockquote": {"cite"},
    "q": {"cite"},
}
URL_SCHEMES = {"http", "https", "mailto", "tel"}


@functools.cache
def _markdown() -> MarkdownIt:
    """The one Markdown parser (CommonMark, tables, strikethrough), made on first use."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": True, "linkify": False, "typographer": False})
    return parser.enable("table").enable("strikethrough")


# html5ever (under nh3) takes time quadratic in the depth of nested elements: 100,000 nested
# <div> take 30 s. A press release nests a few levels; Markdown itself stops at 20.
MAX_HTML_DEPTH = 100
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)")
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
# Elements whose start tag closes an open one of the same group (HTML's optional end tags).
_SIBLINGS = {
    tag: group
    for group in (("p",), ("li",), ("dt", "dd"), ("tr",), ("td", "th"), ("option",))
    for tag in group
}

_URL_NOISE = re.compile(r"[\x00-\x20\x7f]")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
# The value of a link attribute (href, src, cite) whose URL is relative: none with a scheme,
# a fragment or empty (kept as they are). It starts with the literal '="', which the regex
# engine finds by a fast scan (8 times faster over a release's body than a pattern starting
# with the white space before the name, tried at every space).
_URL_ATTR = re.compile(
    r'="(?:(?<=\shref=")|(?<=\ssrc=")|(?<=\scite="))(?![a-zA-Z][a-zA-Z0-9+.-]*:|#|")([^"]*)"'
)
# A whole tag of clean_html's output, to tell an attribute from prose that reads like one
# (` href="/x"` written in a paragraph): the serializer writes every attribute value in
# double quotes, a '"' in it escaped; in text it escapes '<' and '>' but leaves '"' as it
# is. nh3 escapes '<' and '>' in values too today; HTML's serializing rules long did not,
# so a raw one in a value is allowed for.
_WHOLE_TAG = re.compile(r'<[^"<>]*(?:"[^"]*"[^"<>]*)*>')


# -- single-line text fields -----------------------------------------------------------------

# What a single-line field (a title, a dateline, a name, an alt text) refuses:
# - controls (C0, DEL, C1), the line and paragraph separators, lone surrogates;
# - the bidi embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069): in a subject
#   line, a feed reader's list or a file name they reorder what follows them, past the
#   field's end ("Trojan Source" spoofing). A single line of right-to-left text needs none
#   of them: the marks U+200E, U+200F and U+061C, which stay allowed, do what it needs;
# - invisible format characters nobody types on purpose: the deprecated ones (U+206A-U+206F),
#   invisible maths operators (U+2061-U+2064), a byte order mark (U+FEFF) inside the text,
#   interlinear annotations (U+FFF9-U+FFFB), the language tag (U+E0001);
# - noncharacters (U+FDD0-U+FDEF and the last two code points of every plane).
# Format characters that writing systems need stay allowed: ZWNJ and ZWJ (Persian, Indic
# scripts, emoji sequences), ZWSP and WJ (line breaking in Thai, Khmer…), the soft hyphen,
# the Arabic and Syriac number signs, and the tag characters of emoji flags.
_NONCHARACTERS = "\ufdd0-\ufdef" + "".join(
    chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(17)
)
_INVISIBLE_CLASS = "\u202a-\u202e\u2066-\u206f\u2061-\u2064\ufeff\ufff9-\ufffb\U000e0001"
_REFUSED_IN_LINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff" + _INVISIBLE_CLASS + _NONCHARACTERS + "]"
)
_INVISIBLE = re.compile("[" + _INVISIBLE_CLASS + _NONCHARACTERS + "]")
_FIRST_INVISIBLE = "\u202a"  # the lowest of them: a text whose every character is below has none
# What a body refuses: the overrides, which reverse the order of every letter after them.
# The embeddings, isolates and marks that editors (Word) put into right-to-left text stay
# allowed in a body, where the end of the paragraph ends their effect.
_REFUSED_IN_BODY = re.compile("[\u202d\u202e]")


def line_problem(value: str) -> str | None:
    """Why ``value`` cannot be a single-line text field (a title, a dateline, a name, an
    alt text, a topic name), naming the first character at fault and where it is; None when
    it can. See ``_REFUSED_IN_LINE`` for what is refused and why."""
    match = _REFUSED_IN_LINE.search(value)
    if match is None:
        return None
    char = match.group()
    code = ord(char)
    if code < 0x20 or 0x7F <= code <= 0x9F or char in "\u2028\u2029":
        why = "a single line has no control characters or line breaks"
    elif 0xD800 <= code <= 0xDFFF:
        why = "a lone surrogate is not a character"
    elif 0x202A <= code <= 0x202E or 0x2066 <= code <= 0x2069:
        why = (
            "bidi embeddings, overrides and isolates reorder the text around the field; "
            "use the marks U+200E or U+200F to set a direction"
        )
    elif unicodedata.category(char) == "Cf":
        why = "an invisible format character"
    else:
        why = "a noncharacter is not for text"
    return f"{_describe(char)} at character {match.start() + 1}: {why}"


def single_line(value: str) -> str:
    """``value`` stripped, when it can be a single-line text field; ValueError saying why
    not otherwise (``line_problem``): the form a pydantic field validator takes."""
    problem = line_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value.strip()


def body_problem(value: str) -> str | None:
    """Why ``value`` cannot be a release's body (a bidi override, U+202D or U+202E), naming
    the character and its line; None when it can."""
    match = _REFUSED_IN_BODY.search(value)
    if match is None:
        return None
    line = value.count("\n", 0, match.start()) + 1
    return (
        f"{_describe(match.group())} on line {line} of the body: it reverses the order of "
        "every letter after it; use the marks U+200E or U+200F to set a direction"
    )


def strip_invisible(text: str) -> str:
    """``text`` without the bidi controls, invisible format characters and noncharacters a
    single-line field refuses: for text that may have been stored before they were refused
    (a mail header)."""
    if text.isascii():  # every one of them is outside ASCII; a name in a header, per message
        return text
    if max(text) < _FIRST_INVISIBLE:  # most text in most languages: a C loop, no pattern
        return text
    return _INVISIBLE.sub("", text)


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


# -- plain text, for fields that readers may render as HTML ----------------------------------

_PLAIN_PASSES = 4
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_WHITE = re.compile(r"\s+")


class _TextOnly(HTMLParser):
    """The text of an HTML fragment: character references decoded; tags, comments and the
    content of script and style elements dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skipping = tag in self.CDATA_CONTENT_ELEMENTS

    def handle_endtag(self, tag: str) -> None:
        self._skipping = False

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _text_of(html: str) -> str:
    parser = _TextOnly()
    parser.feed(html)
    parser.close()
    return strip_invisible(strip_xml_invalid("".join(parser.parts)))


def plain_text(value: str) -> str:
    """``value`` as one line of plain text, for a field that feed readers may render as
    HTML (a title, a summary, a name, a category): tags, comments, characters XML forbids and
    what ``strip_invisible`` removes taken out, character references decoded, white space
    runs made one space.

    What comes out holds no tag and no character reference, so it reads the same whether a
    reader takes it for text or for HTML; whoever writes it escapes it once (the XML writer,
    ``json``). Decoding repeats until nothing changes, so entity-encoded markup
    (``&lt;script&gt;``, ``&amp;lt;…``) is removed as markup, not let through as text that
    one more decoding would bring back to life; a ``<`` that could still open a tag (an
    unclosed ``<img src=x onerror=…`` at the end) is dropped. Ordinary text survives:
    ``a < b``, ``AT&T``, quotes."""
    if "<" not in value and "&" not in value:
        # No tag and no reference to decode (most titles and names): the parser would hand
        # the text back whole, so the passes come to this one. A site build asks ~10 times
        # per release (titles, summaries, topic names in every feed).
        return " ".join(strip_invisible(strip_xml_invalid(value)).split())  # = _WHITE, strip
    text = value
    for _ in range(_PLAIN_PASSES):
        cleaner = _plain_pass(text)
        if cleaner == text:  # no markup left: drop what could still open a tag, if any
            cleaner = _TAG_START.sub("", text)
            if cleaner == text:
                return text
        text = cleaner
    # Markup encoded more often than there are passes: nothing of it may stay markup.
    return _plain_pass(text.replace("&", "").replace("<", ""))


def _plain_pass(text: str) -> str:
    return _WHITE.sub(" ", _text_of(text)).strip()


def strip_xml_invalid(text: str) -> str:
    """``text`` without the characters XML 1.0 forbids (so feeds and pages always parse)."""
    if len(text) > _LONG and _xml_valid(text):
        return text
    return _XML_INVALID.sub("", text)


# Past this many characters, finding that a text has nothing to strip goes faster through its
# UTF-8 bytes (C loops) than through the pattern (~3 ns a character): a release's body is
# checked several times a build.
_LONG = 200
_C0_CONTROLS = bytes(c for c in range(32) if c not in (9, 10, 13))  # all but tab, LF, CR


def _xml_valid(text: str) -> bool:
    """Whether ``text`` holds no character XML 1.0 forbids: no C0 control but tab, line feed
    and carriage return (each its own byte in UTF-8, never inside another character's), no
    lone surrogate (UTF-8 cannot encode one) and neither U+FFFE nor U+FFFF."""
    if "\ufffe" in text or "\uffff" in text:
        return False
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return len(data.translate(None, _C0_CONTROLS)) == len(data)


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
    return _markdown().parse(source, env), env


def markdown_to_html(source: str) -> str:
    """Markdown (CommonMark + tables) rendered to sanitised HTML. Raises InputError for
    raw HTML nested more than MAX_HTML_DEPTH elements deep."""
    html = _markdown().render(strip_xml_invalid(source))
    if html_depth(html) > MAX_HTML_DEPTH:
        raise InputError(
            f"body: HTML elements nested more than {MAX_HTML_DEPTH} levels deep (unclosed tags?)",
            field="body",
        )
    return clean_html(html)


def absolute_urls(html: str, base: str) -> str:
    """``html`` (as produced by :func:`clean_html`) with relative href/src/cite made absolute
    against ``base`` (the site URL); absolute and ``mailto:``/``tel:`` URLs are unchanged,
    and so is the text between the tags, whatever it spells out."""
    base = base.rstrip("/") + "/"
    starts: list[int] = []
    ends: list[int] = []
    scanned = False

    def in_a_tag(at: int) -> bool:
        # A "<" nearer than any ">": in a tag (text holds neither raw). Otherwise text, or a
        # value holding a raw ">" earlier in this tag (title="a > b" href=…, see _WHOLE_TAG):
        # the tags are found, once.
        if html.rfind("<", 0, at) > html.rfind(">", 0, at):
            return True
        nonlocal scanned
        if not scanned:
            for tag in _WHOLE_TAG.finditer(html):
                starts.append(tag.start())
                ends.append(tag.end())
            scanned = True
        i = bisect.bisect_right(starts, at) - 1
        return i >= 0 and at < ends[i]

    def fix(match: re.Match[str]) -> str:
        if not in_a_tag(match.start()):
            return match[0]  # prose
        url = str(match.group(1))  # relative: the pattern leaves the others alone
        if url.startswith("/") and not url.startswith("//"):
            absolute = base + url[1:]
        else:
            absolute = urljoin(base, url)
        return f'="{absolute}"'

    return _URL_ATTR.sub(fix, html)
