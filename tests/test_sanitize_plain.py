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
