"""The fast paths of core/sanitize.py give what the slow ones give: ``plain_text``'s shortcut for
text without markup, the XML check of long texts, and ``absolute_urls`` changes only links."""

from __future__ import annotations

from urllib.parse import urljoin

import lxml.html
from hypothesis import given, settings
from hypothesis import strategies as st

from distributor.core import sanitize

# Letters, white space of every kind, the characters XML forbids and the invisible ones
# plain_text removes, quotes and ">": everything but what could start markup ("<", "&").
_CHARS = st.characters(blacklist_characters="<&", codec="utf-8") | st.sampled_from(
    list(" \t\r\n\x0b\x0c\x00\x1f\u00a0\u2028\u202e\u2066\ufeff\ufffe\ufdd0>\"'")
)


def _by_the_passes(value: str) -> str:
    """What plain_text gave before the shortcut: the parser's passes alone."""
    text = value
    for _ in range(sanitize._PLAIN_PASSES):
        cleaner = sanitize._plain_pass(text)
        if cleaner == text:
            cleaner = sanitize._TAG_START.sub("", text)
            if cleaner == text:
                return text
        text = cleaner
    return sanitize._plain_pass(text.replace("&", "").replace("<", ""))


@settings(max_examples=500, deadline=None)
@given(st.text(_CHARS, max_size=80))
def test_text_without_markup_comes_out_as_the_passes_make_it(value: str) -> None:
    assert "<" not in value and "&" not in value
    assert sanitize.plain_text(value) == _by_the_passes(value)


def test_the_shortcut_still_cleans_what_it_must() -> None:
    assert sanitize.plain_text("  Agency\u202e  signs\x0b\n agreement\ufeff ") == (
        "Agency signs agreement"
    )
    assert sanitize.plain_text("a > b") == "a > b"
    # With markup, the parser decides as before.
    assert sanitize.plain_text("AT&amp;T <b>wins</b>") == "AT&T wins"
    assert sanitize.plain_text("&lt;b&gt;x") == "x"


def test_relative_links_are_made_absolute_and_nothing_else() -> None:
    html = (
        '<p><a href="/releases/a.html">a</a> <img src="media/p.png" alt=""> '
        '<blockquote cite="/q">q</blockquote> <a href="https://x.example/">x</a> '
        '<a href="#top">top</a> <a href="">empty</a> <a href="mailto:a@b.example">m</a> '
        '<a data-href="/no">no</a> <a title="/no" href="//cdn.example/x">cdn</a>\n'
        '<a\nhref="/line">line</a> alt="/text" href="/text-too"</p>'
        '<p><a title="a > b" href="/after-a-gt">gt</a> <img alt="x<y" src="/after-a-lt"></p>'
    )
    assert sanitize.absolute_urls(html, "https://news.example.org/") == (
        '<p><a href="https://news.example.org/releases/a.html">a</a> '
        '<img src="https://news.example.org/media/p.png" alt=""> '
        '<blockquote cite="https://news.example.org/q">q</blockquote> '
        '<a href="https://x.example/">x</a> '
        '<a href="#top">top</a> <a href="">empty</a> <a href="mailto:a@b.example">m</a> '
        '<a data-href="/no">no</a> <a title="/no" href="https://cdn.example/x">cdn</a>\n'
        '<a\nhref="https://news.example.org/line">line</a> alt="/text" href="/text-too"</p>'
        '<p><a title="a > b" href="https://news.example.org/after-a-gt">gt</a> '
        '<img alt="x<y" src="https://news.example.org/after-a-lt"></p>'
    )


# Long texts (past sanitize._LONG) of ordinary letters with, now and then, a character XML
# forbids: the quick check must find every one the pattern finds.
_XML_CHARS = st.characters(codec="utf-8") | st.sampled_from(
    list("\x00\x01\x08\x0b\x0c\x0e\x1f\t\n\r\ud800\udfff\ufffe\uffff\ufffd\U0001f600é")
)


@settings(max_examples=300, deadline=None)
@given(st.text(_XML_CHARS, max_size=40), st.integers(0, 400))
def test_stripping_what_xml_forbids_is_the_same_for_long_texts(rare: str, padding: int) -> None:
    text = "a" * padding + rare + "é" * (padding // 2)
    assert sanitize.strip_xml_invalid(text) == sanitize._XML_INVALID.sub("", text)


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8") | st.sampled_from(
    list("\u202a\u202e\u2061\u2066\u206f\ufeff\ufff9\ufdd0\U000e0001\U0001fffe\u2029é日")),
    max_size=40))  # fmt: skip
def test_invisible_characters_go_whatever_else_the_text_holds(text: str) -> None:
    assert sanitize.strip_invisible(text) == sanitize._INVISIBLE.sub("", text)


# Bodies a press office might write: links and images with relative and absolute URLs,
# attribute values holding "<", ">" and quotes, and prose that spells out attributes.
_PIECES = st.sampled_from([
    '<a href="/r/a.html">a</a>', '<img src="media/p.png" alt="a > b">', "<p>", "</p>",
    '<blockquote cite="/q">q</blockquote>', '<a href="https://x.example/">x</a>',
    '<a title="x<y" href="../up">up</a>', ' href="/prose"', ' src="/prose" ', "&lt;b&gt;",
    '"', "'", " ", "text", "<", ">", "=", '="/x"', "&", "<b>bold</b>", "\n",
])  # fmt: skip


def _links_and_text(html: str) -> tuple[list[tuple[str, str]], str]:
    """The href/src/cite values of ``html`` (in document order) and its text, as a parser
    reads them."""
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    links = [(name, el.get(name)) for el in root.iter() for name in ("href", "src", "cite")
             if el.get(name) is not None]  # fmt: skip
    return links, root.text_content()


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join))
def test_absolute_urls_changes_links_and_never_the_text(written: str) -> None:
    html = sanitize.clean_html(written)
    base = "https://news.example.org/"
    out = sanitize.absolute_urls(html, base)
    links, text = _links_and_text(html) if html.strip() else ([], "")
    new_links, new_text = _links_and_text(out) if out.strip() else ([], "")
    assert new_text == text
    assert [name for name, _ in new_links] == [name for name, _ in links]
    for (_, old), (_, new) in zip(links, new_links, strict=True):
        relative = old and not old.startswith("#") and not sanitize._SCHEME.match(old)
        assert new == (urljoin(base, old) if relative else old)
