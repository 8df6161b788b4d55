"""A feed's entries are written once and spliced into every feed that carries them: the
bytes must be those feedgen writes of the whole document, entries and all, in every case a
feed meets (images, documents, translations, corrections, a hub, archive pages, an empty
content, awkward characters)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from distributor.core import urls
from distributor.core.config import Settings
from distributor.core.models import Correction, Release, Topic
from distributor.site import feeds
from distributor.site.feeds import FeedPage, ItemCache, render_feed
from tests.feed_reference import by_feedgen, items_by_feedgen
from tests.feed_samples import BASE

FORMATS: tuple[urls.FeedFormat, ...] = ("rss", "atom")


def _releases() -> list[Release]:
    climate = Topic(id=1, slug="climate", names={"en": "Climate & <weather>", "fr": "Climat"})
    ocean = Topic(id=2, slug="ocean", names={"en": "Ocean"})
    made = []
    bodies = [
        "<p>Plain body.</p>",
        "<p>Line one\r\nline two &amp; three, a &lt;tag&gt;, ]]&gt; and “quotes” — é ü 日本</p>",
        "",  # no body, no lead: an entry whose content is empty
        '<p>A <a href="/releases/other.html">relative link</a> and <img src="/i.png" alt="">'
        "</p>\n<ul>\n<li>one</li>\n</ul>",
    ]
    for n, body in enumerate(bodies, 1):
        release = Release(
            id=n,
            slug=f"release-{n}",
            title=f"Release {n}: a < b & “c”",
            language="en",
            lead="" if n == 3 else f"Lead {n}\r\n with a break",
            body_html=body,
            body_text="",
            date=BASE + timedelta(days=n),
            created_at=BASE,
            updated_at=BASE + timedelta(days=n, hours=n),
            state="published",
            topics=[climate, ocean] if n % 2 else [climate],
            images=[{"src": "/media/photo.jpg", "alt": "A photo", "credit": "© Agency",
                     "href": "/media/photo-large.jpg", "length": 12345}] if n == 1 else [],
            attachments=[{"href": "/media/report.pdf", "title": "Report", "length": 999},
                         {"href": "https://example.org/data.csv", "type": "text/csv"}]
            if n == 2 else [],
        )  # fmt: skip
        if n == 4:
            release.corrections = [
                Correction(corrected_at=BASE + timedelta(days=5), note="Fixed a figure")
            ]
        made.append(release)
    return made


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("hub", [None, "https://hub.example.org/"])
def test_spliced_feeds_are_the_bytes_feedgen_writes(fmt: urls.FeedFormat, hub: str | None) -> None:
    s = Settings(site_url="https://news.example.org", websub_hub=hub)
    releases = _releases()
    french = Release(
        id=9, slug="communique-1", title="Communiqué", language="fr", lead="", body_html="<p>x</p>",
        body_text="", date=BASE, created_at=BASE, updated_at=BASE, state="published", topics=[],
    )  # fmt: skip
    translations = {1: [french]}
    climate = releases[0].topics[0]
    cache = ItemCache()  # shared, as a build shares it: the second feed reuses the entries
    pages = [
        FeedPage("en", None, releases),
        FeedPage("en", climate, releases[:2]),
        FeedPage("en", None, releases[2:], archive=1, prev_archive=None, next_archive=2),
        FeedPage("en", climate, releases, archive=2, prev_archive=1),
        FeedPage("en", None, [], empty_date=BASE),
        FeedPage("en", None, []),
    ]
    for page in pages:
        spliced = render_feed(page, fmt, s, translations, cache)
        assert spliced == by_feedgen(page, fmt, s, translations)
        etree.fromstring(spliced)  # and it parses
    assert cache.entries  # the entries were made once and kept


def test_a_kept_entry_leaves_its_content_out_and_puts_it_back() -> None:
    s = Settings(site_url="https://news.example.org")
    cache = ItemCache()
    page = FeedPage("en", None, _releases())
    render_feed(page, "atom", s, None, cache)
    kept = cache.entries[(2, "en", "atom")]
    assert kept.body is not None and "three" in kept.body
    assert b"three" not in kept.head + kept.tail
    assert b"&lt;p&gt;Line one\nline two &amp;amp; three" in b"".join(kept.parts())
    assert cache.entries[(3, "en", "atom")].body is None  # the entry with an empty content


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]) | st.sampled_from(
    list("\r\n\t&<>\"']")), max_size=60))  # fmt: skip
def test_text_is_escaped_as_libxml2_escapes_it(text: str) -> None:
    element = etree.Element("c")
    element.text = text
    written = etree.tostring(element, encoding="UTF-8").decode("utf-8")
    expected = written.removeprefix("<c>").removesuffix("</c>") if text else ""
    assert feeds.xml_text(text) == expected


# Text XML allows, with what its writers escape (in text and in attributes) well represented.
_VALID = st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]) | st.sampled_from(
    list("&<>\"'\n\r\t ]")
)
_TEXT = st.text(_VALID, min_size=1, max_size=20)


@st.composite
def _items(draw: st.DrawFn) -> feeds._Item:
    when = BASE + timedelta(seconds=draw(st.integers(0, 10**8)), microseconds=draw(
        st.sampled_from([0, 1, 999999])))  # fmt: skip
    enclosure = draw(st.none() | st.builds(feeds.Enclosure, _TEXT, _TEXT, st.integers(0, 10**9)))
    return feeds._Item(
        id=draw(_TEXT), title=draw(_TEXT), url=draw(_TEXT), lang=draw(_TEXT),
        published=when, updated=when + timedelta(hours=draw(st.integers(0, 50))),
        summary=draw(_TEXT), content_html=draw(st.text(_VALID, max_size=30)),
        categories=tuple(draw(st.lists(st.tuples(_TEXT, _TEXT, _TEXT), max_size=2))),
        enclosure=enclosure,
        alternates=tuple(draw(st.lists(st.tuples(_TEXT, _TEXT), max_size=2))),
        attachments=tuple(draw(st.lists(st.tuples(
            _TEXT, _TEXT, st.sampled_from(["", "application/pdf"]), st.sampled_from([0, 7])),
            max_size=2))),
        author=draw(_TEXT),
    )  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(_items(), st.sampled_from(FORMATS))
def test_any_entry_is_written_as_feedgen_writes_it(item: feeds._Item, fmt: urls.FeedFormat) -> None:
    """Every field of an entry, whatever characters it holds (escaped in text, escaped
    differently in attributes), comes out as feedgen writes it."""
    s = Settings(site_url="https://news.example.org")
    page = FeedPage("en", None, [])
    skeleton = feeds._xml_feed(page, fmt, [item], [feeds._Slot()], s)
    written = feeds._spliced(skeleton, [feeds._entry_text(item, fmt)])
    assert written == items_by_feedgen(page, fmt, [item], s)
