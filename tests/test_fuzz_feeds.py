"""Fuzzing feed generation (issue 6): whatever the releases hold — control characters,
characters XML forbids, lone surrogates, ``]]>``, markup, odd URLs — ``render_feed`` writes
RSS and Atom that a strict XML parser and feedparser (bozo 0) read, and JSON Feed that
``json`` reads, with the content sanitised and every other field plain text (issue 11: no
tag in it, even decoded once more). It never refuses: every feed is written. Hypothesis runs
derandomised, without an example database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import feedparser
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from lxml import etree

from distributor.core import urls
from distributor.core.config import Settings, load_settings
from distributor.core.models import Release, Topic
from distributor.site.feeds import FeedPage, ItemCache, render_feed
from tests.fuzzing import assert_plain_text, assert_plain_xml, assert_sanitised, fuzz

FUZZ = fuzz(200)
BASE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
HOSTILE = st.sampled_from(
    ["", " ", "\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\ud800", "\udfff",
     "\ufffe", "\uffff", "\U0001f600", "]]>", "<![CDATA[", "]]]]><![CDATA[>", "<", ">", "&",
     "&amp;", "&#0;", "&#xFFFE;", "'", '"', "\r\n", "\r", "\t", "<script>alert(1)</script>",
     "<img src=x onerror=alert(1)>", "<a href='javascript:alert(1)'>x</a>", "javascript:x",
     "<blockquote cite=javascript:x>q</blockquote>", "</content>", "</item>", "<!--", "-->",
     "<?xml version='1.0'?>", "<!DOCTYPE x [<!ENTITY a 'b'>]>", "&a;", "é", "x" * 300,
     "&lt;script&gt;", "&amp;lt;b&amp;gt;", "&#60;img src=x onerror=alert(1)&#62;", "&#x3C;",
     "<img src=x onerror=alert(1)", '<a href="https://evil.example/">', "</a>", "a < b",
     "\u202e", "\ufdd0"]
)  # fmt: skip
TEXT = st.one_of(
    st.lists(st.one_of(HOSTILE, st.text(max_size=6)), max_size=8).map("".join),
    st.text(max_size=40),
)
URL = st.one_of(
    st.sampled_from(["/media/a.jpg", "https://cdn.example.org/a.png", "//evil.example/x",
                     "javascript:alert(1)", "/files/../../etc/passwd", "/a b.pdf", "", "/\x00.jpg",
                     "data:image/png;base64,AAAA", "/é.pdf", "]]>", "/x?a=1&b=2"]),
    TEXT,
)  # fmt: skip
MEDIA = st.fixed_dictionaries(
    {"src": URL, "alt": TEXT},
    optional={"credit": TEXT, "href": URL, "type": TEXT, "length": st.integers(-5, 2**40)},
)
ATTACHMENT = st.fixed_dictionaries(
    {"href": URL, "title": TEXT}, optional={"type": TEXT, "length": st.integers(-5, 2**40)}
)
TOPIC = st.builds(
    lambda i, slug, names: Topic(id=i, slug=slug, names=names),
    st.integers(1, 5),
    st.one_of(st.sampled_from(["climate", "space"]), TEXT),
    st.dictionaries(st.sampled_from(["en", "fr", "de"]), TEXT, max_size=2),
)
DATES = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(8999, 12, 30),
                     timezones=st.just(UTC))  # fmt: skip


@st.composite
def releases(draw: st.DrawFn, n: int) -> Release:
    date = draw(DATES)
    return Release(
        id=n,
        slug=draw(st.one_of(st.just(f"release-{n}"), TEXT)),
        title=draw(TEXT),
        language=draw(st.sampled_from(["en", "en", "fr"])),
        lead=draw(TEXT),
        body_html=draw(TEXT),
        body_text=draw(TEXT),
        date=date,
        created_at=BASE,
        updated_at=date + timedelta(hours=draw(st.integers(0, 48))),
        corrected_at=draw(st.none() | st.just(BASE)),
        published_at=date,
        state="published",
        topics=draw(st.lists(TOPIC, max_size=2, unique_by=lambda t: t.id)),
        images=draw(st.lists(MEDIA, max_size=2)),
        attachments=draw(st.lists(ATTACHMENT, max_size=2)),
        contacts=[],
    )


@pytest.fixture(scope="module")
def feed_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return load_settings(
        data_dir=tmp_path_factory.mktemp("feeds") / "var",
        site_url="https://news.example.org",
        secret_key="k",
        websub_hub="https://hub.example.org/",
    )


def check_feed(data: bytes, fmt: urls.FeedFormat, releases: list[Release]) -> None:
    if fmt == "json":
        doc = json.loads(data.decode("utf-8"))
        assert len(doc["items"]) == len(releases)
        for item in doc["items"]:
            assert_sanitised(item["content_html"])
        assert_plain_text(doc)
        return
    etree.fromstring(data, parser=etree.XMLParser(recover=False, resolve_entities=False))
    parsed = feedparser.parse(data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert len(parsed.entries) == len(releases)
    for entry in parsed.entries:
        for content in entry.get("content", []):
            assert_sanitised(content.value)
    assert_plain_text({"feed": parsed.feed, "entries": parsed.entries})
    assert_plain_xml(data)


@FUZZ
@given(
    data=st.data(),
    count=st.integers(1, 3),
    topic=st.none() | TOPIC,
    organisation=st.one_of(st.just("Press Office"), TEXT),
)
@example(data=None, count=1, topic=None, organisation="Office ]]> \x00\ud800")
def test_feeds_of_hostile_releases_always_parse(
    feed_settings: Settings,
    data: st.DataObject | None,
    count: int,
    topic: Topic | None,
    organisation: str,
) -> None:
    if data is None:  # the pinned example: every field hostile at once
        # Each was a crash: an image type with a lone surrogate (UnicodeEncodeError), a topic
        # slug with NUL in the category's domain (lxml ValueError), a title and a slug of
        # only characters XML forbids (feedgen: "Required fields not set").
        items = [
            Release(
                id=1, slug="\ud800", title="\x00\x0b", language="en",
                lead="<script>x</script>\x1b", body_html="<q cite=javascript:x>q</q>]]>\ufffe",
                body_text="]]>", date=BASE, created_at=BASE, updated_at=BASE, corrected_at=BASE,
                published_at=BASE, state="published", contacts=[],
                topics=[Topic(id=1, slug="c\x00\ud800", names={"en": "\x00"})],
                images=[{"src": "javascript:x", "alt": "]]>", "credit": "\x00", "type": "\ud800"}],
                attachments=[{"href": "/a\x00.pdf", "title": "\ud800", "type": "\x01"}],
            )
        ]  # fmt: skip
    else:
        items = [data.draw(releases(n)) for n in range(1, count + 1)]
    s = feed_settings.model_copy(update={"organisation": organisation})
    cache = ItemCache()
    # No refusal is accepted: the releases were checked when they were stored, and a feed
    # that refused one odd release would take every other release off it for every reader.
    for fmt in ("rss", "atom", "json"):
        check_feed(render_feed(FeedPage("en", topic, items), fmt, s, cache=cache), fmt, items)
