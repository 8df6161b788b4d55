"""``plain_text``'s shortcut for text without markup gives what the full passes give."""

from __future__ import annotations

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
    )
    assert sanitize.absolute_urls(html, "https://news.example.org/") == (
        '<p><a href="https://news.example.org/releases/a.html">a</a> '
        '<img src="https://news.example.org/media/p.png" alt=""> '
        '<blockquote cite="https://news.example.org/q">q</blockquote> '
        '<a href="https://x.example/">x</a> '
        '<a href="#top">top</a> <a href="">empty</a> <a href="mailto:a@b.example">m</a> '
        '<a data-href="/no">no</a> <a title="/no" href="https://cdn.example/x">cdn</a>\n'
        '<a\nhref="https://news.example.org/line">line</a> alt="/text" '
        'href="https://news.example.org/text-too"</p>'
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
