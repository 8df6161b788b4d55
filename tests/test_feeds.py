"""Feeds as a feed reader sees them: releases stored through the ORM (SQLite and PostgreSQL),
the site built, every RSS and Atom file parsed with feedparser (bozo 0), JSON Feed read as
JSON and checked against the 1.1 spec's fields."""

from __future__ import annotations

import html
import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from sqlalchemy import select

from distributor.core import urls
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Release, Topic
from distributor.site.builder import build_site
from distributor.site.feeds import FeedPage, build_feed, render_feed
from tests.feed_samples import BASE, add_feed_topics, add_release
from tests.fuzzing import assert_plain_text, assert_plain_xml, live_tags

FORMATS: tuple[urls.FeedFormat, ...] = ("rss", "atom")


def regenerate(settings: Settings) -> list[Path]:
    """Build the site; every feed file there, sorted."""
    build_site(settings)
    return sorted(p for p in (settings.public_dir / "feeds").rglob("*") if p.is_file())


def feed_path(
    settings: Settings,
    lang: str,
    fmt: urls.FeedFormat,
    topic: str | None = None,
    archive: int | None = None,
) -> Path:
    return settings.public_dir / urls.feed_relpath(lang, fmt, topic, archive)


def parse(
    settings: Settings,
    lang: str,
    fmt: urls.FeedFormat,
    topic: str | None = None,
    archive: int | None = None,
) -> Any:
    """The feed as feedparser reads it; fails unless it is well-formed."""
    parsed = feedparser.parse(feed_path(settings, lang, fmt, topic, archive).read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    expected = "rss20" if fmt == "rss" else "atom10"
    assert parsed.version == expected
    return parsed


def read_json(settings: Settings, lang: str, topic: str | None = None) -> Any:
    """A JSON Feed, checked for what the 1.1 spec requires of every feed and item."""
    doc = json.loads(feed_path(settings, lang, "json", topic).read_bytes())
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert isinstance(doc["title"], str) and isinstance(doc["items"], list)
    for item in doc["items"]:
        assert isinstance(item["id"], str) and item["id"]
        assert isinstance(item.get("content_html") or item.get("content_text"), str)
    return doc


def titles(parsed: Any) -> list[str]:
    return [entry.title for entry in parsed.entries]


def test_every_feed_is_written_and_describes_itself(settings: Settings) -> None:
    add_feed_topics(settings)
    add_release(settings, 1)
    paths = regenerate(settings)

    expected = {
        feed_path(settings, lang, fmt, topic)
        for lang in ("en", "fr")
        for topic in (None, "climate", "space")
        for fmt in ("rss", "atom", "json")
    }
    # Exactly these (one release: no archive pages), and no temporary file left behind.
    assert set(paths) == expected and len(paths) == len(expected)
    assert not [p for p in settings.public_dir.rglob("*.tmp")]
    for lang, topic, title in [
        ("en", None, "Press Office"),
        ("en", "climate", "Press Office — Climate"),
        ("fr", "space", "Service de presse — Espace"),  # the default name, translated
    ]:
        for fmt in FORMATS:
            feed = parse(settings, lang, fmt, topic).feed
            assert feed.title == title
            assert feed.language == lang
            self_links = [link.href for link in feed.links if link.rel == "self"]
            assert self_links == [urls.feed_url(settings, lang, fmt, topic)]
            assert feed.link == urls.listing_url(settings, lang, topic)
            assert not [link for link in feed.links if link.rel == "hub"]  # none configured
        doc = read_json(settings, lang, topic)
        assert doc["title"] == title and doc["language"] == lang
        assert doc["feed_url"] == urls.feed_url(settings, lang, "json", topic)
        assert doc["home_page_url"] == urls.listing_url(settings, lang, topic)
        assert "hubs" not in doc


def test_entries_carry_ids_links_dates_full_content_and_categories(settings: Settings) -> None:
    add_feed_topics(settings)
    add_release(settings, 1, topics=("climate", "space"))
    second = add_release(
        settings,
        2,
        topics=("space",),
        body_html='<p>Photo: <img src="/media/p.jpg" alt="P"></p>',
        images=[{"src": "/media/hd.jpg", "alt": "Launch", "credit": "© ESA", "href": ""}],
    )
    media = settings.public_dir / "media" / "hd.jpg"  # a site file: its size is measured
    media.parent.mkdir(parents=True)
    media.write_bytes(b"\xff\xd8" + b"x" * 1234)
    regenerate(settings)

    for fmt in FORMATS:
        parsed = parse(settings, "en", fmt)
        assert titles(parsed) == ["Release 2", "Release 1"]  # newest first
        newest, oldest = parsed.entries
        assert newest.id == f"tag:news.example.org,2026-11-19:release/{second}"
        assert newest.link == "https://news.example.org/releases/en-release-2"
        assert newest.published_parsed[:5] == (2026, 11, 20, 11, 0)
        assert newest.updated_parsed[:5] == (2026, 11, 20, 11, 0)  # atom:updated in RSS
        (enclosure,) = newest.enclosures  # the lead image, with type and length
        assert enclosure.href == "https://news.example.org/media/hd.jpg"
        assert (enclosure.type, enclosure.length) == ("image/jpeg", "1236")
        assert oldest.get("enclosures") == []
        assert newest.summary == "Lead of release 2."
        assert newest.author == "Press Office"
        content = newest.content[0]
        assert content.type == "text/html"
        assert "<p>Lead of release 2.</p>" in content.value
        assert 'src="https://news.example.org/media/p.jpg"' in content.value
        assert 'src="https://news.example.org/media/hd.jpg"' in content.value
        assert "© ESA" in content.value
        assert 'href="https://news.example.org/files/r1.pdf"' in oldest.content[0].value
        if fmt == "rss":
            assert not newest.guidislink  # isPermaLink="false"
            assert sorted(t.term for t in oldest.tags) == ["Climate", "Space"]
        else:
            assert sorted((t.term, t.label) for t in oldest.tags) == [
                ("climate", "Climate"),
                ("space", "Space"),
            ]
    french = parse(settings, "fr", "atom")
    assert french.entries == []
    with session_scope(settings) as session:  # an empty feed is as old as the first topic
        first_topic = min(session.scalars(select(Topic.created_at)))
    assert french.feed.updated_parsed[:6] == first_topic.utctimetuple()[:6]
    # Raw Atom: feedgen 1.0 drops these attributes on entry links; ours keeps them.
    atom = feed_path(settings, "en", "atom").read_text()
    assert (
        '<link href="https://news.example.org/media/hd.jpg" rel="enclosure" type="image/jpeg" '
        'length="1236"/>'
    ) in atom
    assert (
        '<link href="https://news.example.org/releases/en-release-2" rel="alternate" '
        'type="text/html" hreflang="en"/>'
    ) in atom
    rss = feed_path(settings, "en", "rss").read_text()
    assert (
        '<enclosure url="https://news.example.org/media/hd.jpg" length="1236" type="image/jpeg"/>'
    ) in rss
    doc = read_json(settings, "en")
    item = doc["items"][0]
    assert item["id"] == newest.id and item["url"] == newest.link
    assert item["date_published"] == "2026-11-20T11:00:00Z"
    assert item["date_modified"] == "2026-11-20T11:00:00Z"
    assert item["summary"] == "Lead of release 2." and "© ESA" in item["content_html"]
    assert item["image"] == "https://news.example.org/media/hd.jpg"
    assert item["attachments"] == [
        {"url": "https://news.example.org/media/hd.jpg", "mime_type": "image/jpeg",
         "size_in_bytes": 1236}
    ]  # fmt: skip
    assert doc["items"][1]["tags"] == ["Climate", "Space"]


def test_images_and_documents_say_their_type_and_length_in_every_format(
    settings: Settings,
) -> None:
    """The lead image's enclosure is its high-resolution file, linked from the picture in
    the content; each document says its type (declared, else from its name, else JSON
    Feed's "application/octet-stream") and its length (declared, else the site file's size,
    else none: unknown, as RSS allows)."""
    add_feed_topics(settings)
    add_release(
        settings,
        1,
        images=[
            {"src": "/media/small.jpg", "href": "/media/hd.jpg", "credit": "© ESA"},
            {"src": "//evil.example/x.jpg", "alt": "not a link: left out"},
        ],
        attachments=[
            {"href": "/files/report.pdf", "title": "Report", "length": 0},  # measured
            {"href": "/files/../../outside.bin", "title": "Out"},  # never measured
            {"href": "/files/notes.zzz", "title": "Notes"},  # unknown kind, not on the site
            {"href": "https://cdn.example.org/v.mp4", "title": "Video", "type": "video/mp4",
             "length": 4567},  # declared
        ],
    )  # fmt: skip
    settings.public_dir.mkdir(parents=True, exist_ok=True)
    (settings.public_dir.parent / "outside.bin").write_bytes(b"secret" * 100)
    for name, size in (("media/hd.jpg", 2345), ("media/small.jpg", 99), ("files/report.pdf", 678)):
        (settings.public_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (settings.public_dir / name).write_bytes(b"x" * size)
    regenerate(settings)
    site = "https://news.example.org"

    atom = feed_path(settings, "en", "atom").read_text()
    assert (
        f'<link href="{site}/media/hd.jpg" rel="enclosure" type="image/jpeg" length="2345"/>'
        in atom
    )
    page = f'<link href="{site}/releases/en-release-1" rel="alternate" type="text/html" '
    assert atom.count(f'<link href="{site}/releases/en-release-1"') == 1 and page in atom  # once
    assert (
        f'<link href="{site}/files/report.pdf" rel="related" title="Report" '
        'type="application/pdf" length="678"/>'
    ) in atom
    assert f'<link href="{site}/files/notes.zzz" rel="related" title="Notes"/>' in atom
    assert (
        '<link href="https://cdn.example.org/v.mp4" rel="related" title="Video" '
        'type="video/mp4" length="4567"/>'
    ) in atom
    rss = feed_path(settings, "en", "rss").read_text()
    assert f'<enclosure url="{site}/media/hd.jpg" length="2345" type="image/jpeg"/>' in rss
    item = read_json(settings, "en")["items"][0]
    assert item["attachments"] == [
        {"url": f"{site}/media/hd.jpg", "mime_type": "image/jpeg", "size_in_bytes": 2345},
        {"url": f"{site}/files/report.pdf", "mime_type": "application/pdf", "title": "Report",
         "size_in_bytes": 678},
        {"url": f"{site}/files/../../outside.bin", "mime_type": "application/octet-stream",
         "title": "Out"},  # a path out of the site: its file's size is nobody's business
        {"url": f"{site}/files/notes.zzz", "mime_type": "application/octet-stream",
         "title": "Notes"},
        {"url": "https://cdn.example.org/v.mp4", "mime_type": "video/mp4", "title": "Video",
         "size_in_bytes": 4567},
    ]  # fmt: skip
    figure = (
        f'<figure><a href="{site}/media/hd.jpg" rel="noopener noreferrer">'
        f'<img src="{site}/media/small.jpg" alt="">'
        "</a><figcaption>© ESA</figcaption></figure>"
    )
    assert figure in item["content_html"]  # the picture leads to the high-resolution file
    assert "evil.example" not in item["content_html"] and "<figure></figure>" not in item[
        "content_html"]  # fmt: skip


def test_ids_survive_an_edit_while_the_updated_date_moves(settings: Settings) -> None:
    add_feed_topics(settings)
    edited = add_release(settings, 1)
    add_release(settings, 2)
    regenerate(settings)
    before = {fmt: parse(settings, "en", fmt) for fmt in FORMATS}

    with session_scope(settings) as session:
        release = session.get_one(Release, edited)
        release.title = "Release 1 (corrected)"
        release.body_html = "<p>Corrected body.</p>"
        release.updated_at = BASE + timedelta(days=3)
    regenerate(settings)

    for fmt in FORMATS:
        after = parse(settings, "en", fmt)
        assert [e.id for e in after.entries] == [e.id for e in before[fmt].entries]
        assert all(e.id.startswith("tag:news.example.org,") for e in after.entries)
        old, new = before[fmt].entries[1], after.entries[1]
        assert new.title == "Release 1 (corrected)"
        assert "Corrected body." in new.content[0].value
        assert new.published_parsed == old.published_parsed
        assert new.updated_parsed[:3] == (2026, 11, 23) != old.updated_parsed[:3]
        assert after.feed.updated_parsed[:3] == (2026, 11, 23)
    item = read_json(settings, "en")["items"][1]
    assert item["id"] == before["atom"].entries[1].id
    assert item["date_modified"] == "2026-11-23T09:00:00Z"
    assert item["date_published"] == "2026-11-20T10:00:00Z"


def test_topic_feeds_hold_only_their_topic(settings: Settings) -> None:
    add_feed_topics(settings)
    add_release(settings, 1, topics=("climate",))
    add_release(settings, 2, topics=("space",))
    add_release(settings, 3, topics=("climate", "space"))
    add_release(settings, 4, topics=())
    regenerate(settings)

    for fmt in FORMATS:
        assert titles(parse(settings, "en", fmt)) == [f"Release {n}" for n in (4, 3, 2, 1)]
        assert titles(parse(settings, "en", fmt, "climate")) == ["Release 3", "Release 1"]
        assert titles(parse(settings, "en", fmt, "space")) == ["Release 3", "Release 2"]


def test_only_published_releases_in_the_feeds_language(settings: Settings) -> None:
    add_feed_topics(settings)
    add_release(settings, 1)
    add_release(settings, 2, state="draft")
    add_release(settings, 3, state="withdrawn")
    add_release(settings, 4, state="scheduled")
    add_release(settings, 5, lang="fr", title="Communiqué 5")
    regenerate(settings)

    for fmt in FORMATS:
        assert titles(parse(settings, "en", fmt)) == ["Release 1"]
        assert titles(parse(settings, "en", fmt, "climate")) == ["Release 1"]
        french = parse(settings, "fr", fmt, "climate")
        assert french.feed.language == "fr"
        assert french.feed.title == "Service de presse — Climat"
        assert titles(french) == ["Communiqué 5"]


def test_a_feed_keeps_the_newest_fifty(settings: Settings) -> None:
    add_feed_topics(settings)
    for n in random.Random(7).sample(range(1, 61), 60):  # stored in no particular order
        add_release(settings, n)
    regenerate(settings)

    newest_fifty = [f"Release {n}" for n in range(60, 10, -1)]
    for fmt in FORMATS:
        assert titles(parse(settings, "en", fmt)) == newest_fifty
        assert titles(parse(settings, "en", fmt, "climate")) == newest_fifty


def test_same_releases_same_bytes_and_untouched_files(settings: Settings) -> None:
    add_feed_topics(settings)
    add_release(settings, 1, topics=("climate", "space"))
    add_release(settings, 2, topics=("space",))
    add_release(settings, 3, lang="fr")
    first = regenerate(settings)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino) for p in first}
    assert build_site(settings, force=True).written == []  # same data: not one file rewritten

    second = regenerate(settings)
    assert second == first
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino) for p in second} == before

    # Input order does not matter either.
    with session_scope(settings) as session:
        releases = list(session.scalars(select(Release).where(Release.language == "en")))
        forward = build_feed(releases, settings, lang="en", fmt="atom")
        backward = build_feed(releases[::-1], settings, lang="en", fmt="atom")
    assert forward == backward == feed_path(settings, "en", "atom").read_bytes()

    # An edit rewrites the feeds it appears in, and only those.
    add_release(settings, 4, topics=("climate",))
    regenerate(settings)
    changed = {p for p, (data, _, ino) in before.items() if p.stat().st_ino != ino}
    assert changed == {
        feed_path(settings, "en", fmt, topic)
        for fmt in ("rss", "atom", "json")
        for topic in (None, "climate")
    }
    for path in changed:
        assert path.read_bytes() != before[path][0]


def test_an_empty_feed_is_dated_from_the_catalogue_not_1970_nor_now(settings: Settings) -> None:
    # Issue 11: an empty feed was dated 1970-01-01, which the W3C validator calls implausible.
    add_feed_topics(settings)
    with session_scope(settings) as session:
        for topic in session.scalars(select(Topic)):
            topic.created_at = {"climate": BASE - timedelta(days=30),
                                "space": BASE - timedelta(days=20)}[topic.slug]  # fmt: skip
    withdrawn_at = BASE + timedelta(days=5)
    add_release(settings, 1, state="withdrawn", withdrawn_at=withdrawn_at)
    regenerate(settings)

    def dates(lang: str, topic: str | None = None) -> dict[str, Any]:
        rss, atom = parse(settings, lang, "rss", topic), parse(settings, lang, "atom", topic)
        assert rss.entries == atom.entries == []
        return {"rss": rss.feed.get("updated_parsed"), "atom": atom.feed.updated_parsed}

    def utc(moment: datetime) -> Any:
        return moment.astimezone(UTC).utctimetuple()

    # The withdrawal that emptied them: the English feed and the climate feed.
    assert dates("en") == dates("en", "climate") == {"rss": utc(withdrawn_at),
                                                      "atom": utc(withdrawn_at)}  # fmt: skip
    # Never held a release: as old as its topic; a language's feed, as the first topic.
    assert dates("en", "space")["atom"] == utc(BASE - timedelta(days=20))
    assert dates("fr") == {"rss": utc(BASE - timedelta(days=30)),
                           "atom": utc(BASE - timedelta(days=30))}  # fmt: skip
    # Deterministic: building again writes nothing.
    assert build_site(settings, force=True).written == []

    # Without any topic nothing can be published: RSS leaves its optional date out, Atom
    # has a fixed one; the same bytes each time, whatever the clock says.
    lone = [build_feed([], settings, lang="en", fmt=fmt) for fmt in ("rss", "atom", "rss")]
    assert lone[0] == lone[2] and b"lastBuildDate" not in lone[0]
    assert feedparser.parse(lone[1]).feed.updated == "2000-01-01T00:00:00+00:00"


def test_hostile_content_still_parses(settings: Settings) -> None:
    add_feed_topics(settings)
    with session_scope(settings) as session:
        session.add(Topic(slug="odd", names={"en": "Odd\x01 topic\x0b"}))
    add_release(
        settings,
        1,
        topics=("odd",),
        title="Bad\x01 title\x0b <b>&",
        lead="Lead\x0c with ]]> and\x1f more",
        body_html='<p>x\x01y\x0bz</p><script>alert("x")</script><p onclick="evil()">ok</p>'
        "<p>]]&gt; end\x7f</p>",
    )
    hostile = settings.model_copy(update={"organisation": "Agency\x1b Office"})
    regenerate(hostile)

    for fmt in FORMATS:
        parsed = parse(hostile, "en", fmt)
        assert parsed.feed.title == "Agency Office"
        (entry,) = parsed.entries
        assert entry.title == "Bad title &"  # markup is not text a title carries (issue 11)
        content = entry.content[0].value
        assert "xyz" in content and "ok" in content and "end" in content
        assert "script" not in content and "alert" not in content and "onclick" not in content
        assert entry.summary == "Lead with ]]> and more"
        topic_feed = parse(hostile, "en", fmt, "odd")
        assert topic_feed.feed.title == "Agency Office — Odd topic"
        assert titles(topic_feed) == ["Bad title &"]


def test_markup_in_titles_leads_and_names_reaches_no_reader_as_markup(settings: Settings) -> None:
    # Issue 11, finding 3: the lead went into RSS <description> as escaped markup, which
    # readers render as HTML: a live <a href> and <img> came back in feedparser.
    add_feed_topics(settings)
    with session_scope(settings) as session:
        session.add(Topic(slug="odd", names={"en": 'Energy <b onmouseover="alert(3)">hot</b> '
                                                  "&amp;lt;i&amp;gt;"}))  # fmt: skip
    add_release(
        settings,
        1,
        topics=("odd",),
        title='Deal <a href="https://evil.example/">signed</a> & "ratified" '
        "<img src=x onerror=alert(1)> a < b",
        lead="&lt;script&gt;alert(1)&lt;/script&gt; Lead <a href='https://evil.example/'>here"
        "</a>: AT&T's \"quotes\", a < b &#60;img src=x onerror=alert(2)&#62; and "
        "<img src=x onerror=alert(4)",
        images=[{"src": "/media/a.jpg", "alt": "<img src=x onerror=alert(5)>Minister",
                 "credit": "&lt;b&gt;Photo&lt;/b&gt; © ESA"}],
        attachments=[{"href": "/files/r.pdf", "title": "<a href=//evil.example>Report</a>"}],
    )  # fmt: skip
    hostile = settings.model_copy(update={"organisation": "Agency <script>x()</script> & Co"})
    regenerate(hostile)

    title = 'Deal signed & "ratified" a < b'
    lead = 'Lead here: AT&T\'s "quotes", a < b and img src=x onerror=alert(4)'
    for fmt in FORMATS:
        for topic in (None, "odd"):
            parsed = parse(hostile, "en", fmt, topic)
            assert_plain_text({"feed": parsed.feed, "entries": parsed.entries})
            (entry,) = parsed.entries
            # Ordinary text survives, readable (some fields come back as HTML: decoded).
            assert html.unescape(entry.title) == title
            assert html.unescape(entry.summary) == lead
            assert html.unescape(parsed.feed.title).startswith("Agency & Co")
            assert html.unescape(entry.author) == "Agency & Co"
            labels = {t.get("label") or t.term for t in entry.tags}
            assert labels == {"Energy hot"}
            content = entry.content[0].value  # HTML on purpose: the lead in it as text
            assert "onerror" not in content.replace("onerror=alert(4)", "")
            assert live_tags(lead) == []
        assert_plain_xml(feed_path(hostile, "en", fmt).read_bytes())
    assert parse(hostile, "en", "atom").entries[0].summary_detail.type == "text/plain"
    doc = read_json(hostile, "en")
    assert_plain_text(doc)
    (item,) = doc["items"]
    assert (item["title"], item["summary"]) == (title, lead)
    assert item["tags"] == ["Energy hot"] and doc["title"] == "Agency & Co"
    assert item["attachments"][-1]["title"] == "Report"
    assert 'alt="Minister"' in item["content_html"] and "Photo © ESA" in item["content_html"]


def test_characters_no_database_stores_are_stripped_too() -> None:
    # NUL and lone surrogates cannot reach the database; build_feed is still safe with them.
    settings = Settings(site_url="https://news.example.org")
    topic = Topic(id=1, slug="t", names={"en": "T\x00opic\udc80"})
    release = Release(
        id=1,
        slug="r",
        title="Ti\x00tle\ud800",
        language="en",
        lead="Le\x00ad",
        body_html="<p>bo\x00dy\udfff</p>",
        body_text="",
        date=BASE,
        created_at=BASE,
        updated_at=BASE,
        state="published",
        topics=[topic],
        images=[{"src": "/i\x00.jpg", "alt": "a\x00lt", "credit": "c\ud800"}],
    )
    for fmt in FORMATS:
        parsed = feedparser.parse(build_feed([release], settings, lang="en", fmt=fmt, topic=topic))
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert parsed.feed.title == "Press Office — Topic"
        (entry,) = parsed.entries
        assert (entry.title, entry.summary) == ("Title", "Lead")
        assert "<p>body</p>" in entry.content[0].value
        assert 'src="https://news.example.org/i.jpg"' in entry.content[0].value


def test_older_releases_are_reachable_through_rfc5005_archive_pages(settings: Settings) -> None:
    add_feed_topics(settings)
    for n in range(1, 121):
        add_release(settings, n)
    regenerate(settings)

    live = parse(settings, "en", "atom")
    assert titles(live) == [f"Release {n}" for n in range(120, 70, -1)]
    rels = {link.rel: link.href for link in live.feed.links}
    assert rels["prev-archive"] == urls.feed_url(settings, "en", "atom", archive=2)
    assert "next-archive" not in rels
    assert "fh:archive" not in feed_path(settings, "en", "atom").read_text()

    # Follow prev-archive to the end, as a reader completing its history would.
    seen = [e.id for e in live.entries]
    page, href = 0, rels["prev-archive"]
    while href:
        page = int(href.rsplit("/", 1)[1].removesuffix(".atom"))
        archived = parse(settings, "en", "atom", archive=page)
        raw = feed_path(settings, "en", "atom", archive=page).read_text()
        assert (
            "<fh:archive/>" in raw and 'xmlns:fh="http://purl.org/syndication/history/1.0"' in raw
        )
        links = {link.rel: link.href for link in archived.feed.links}
        assert links["current"] == urls.feed_url(settings, "en", "atom")
        assert links["self"] == urls.feed_url(settings, "en", "atom", archive=page)
        seen += [e.id for e in archived.entries]
        href = links.get("prev-archive", "")
    assert page == 1
    assert titles(parse(settings, "en", "atom", archive=1)) == [
        f"Release {n}" for n in range(50, 0, -1)
    ]  # the oldest fifty, newest first
    assert len(set(seen)) == 120  # every release, the overlap with the live feed aside
    # The same chain per topic.
    topic_live = parse(settings, "en", "atom", "climate")
    assert {link.rel for link in topic_live.feed.links} >= {"prev-archive"}
    assert feed_path(settings, "en", "atom", "climate", archive=2).is_file()
    # RSS and JSON Feed hold the live fifty only.
    assert len(parse(settings, "en", "rss").entries) == 50
    assert len(read_json(settings, "en")["items"]) == 50

    # A full archive page is never rewritten when newer releases arrive.
    first = feed_path(settings, "en", "atom", archive=1)
    stamp = (first.stat().st_ino, first.stat().st_mtime_ns)
    for n in range(121, 131):
        add_release(settings, n)
    regenerate(settings)
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == stamp
    newest_archive = {link.rel: link.href for link in parse(settings, "en", "atom").feed.links}
    assert newest_archive["prev-archive"] == urls.feed_url(settings, "en", "atom", archive=2)
    archive_2 = {
        link.rel: link.href for link in parse(settings, "en", "atom", archive=2).feed.links
    }
    assert archive_2["prev-archive"].endswith("/archive/1.atom")


def test_translations_link_each_other_with_hreflang(settings: Settings) -> None:
    add_feed_topics(settings)
    original = add_release(settings, 1)
    with session_scope(settings) as session:
        source = session.get_one(Release, original)
        translation = Release(
            slug="fr-release-1", title="Communiqué 1", language="fr", lead="Chapeau.",
            body_html="<p>Corps.</p>", body_text="Corps.", date=BASE, created_at=BASE,
            updated_at=BASE, published_at=BASE, state="published", translation_of=source,
            topics=list(source.topics),
        )  # fmt: skip
        session.add(translation)
    regenerate(settings)

    for lang, other, href in [
        ("en", "fr", "https://news.example.org/releases/fr-release-1"),
        ("fr", "en", "https://news.example.org/releases/en-release-1"),
    ]:
        for fmt in FORMATS:
            (entry,) = parse(settings, lang, fmt).entries
            alternates = [
                (link.get("hreflang"), link.href)
                for link in entry.links
                if link.rel == "alternate" and link.get("hreflang") == other
            ]
            assert alternates == [(other, href)]
    # As written (feedparser takes a link without rel or type for an alternate HTML page).
    link = '<{tag} href="{href}" rel="alternate" type="text/html" hreflang="fr"/>'
    french = "https://news.example.org/releases/fr-release-1"
    assert link.format(tag="link", href=french) in feed_path(settings, "en", "atom").read_text()
    rss = feed_path(settings, "en", "rss").read_text()
    assert link.format(tag="atom:link", href=french) in rss


def test_topics_language_author_and_summary_as_each_format_writes_them(
    settings: Settings,
) -> None:
    """What feedparser forgives, written out: each topic's scheme (its newsroom page), the
    item's language and author in JSON Feed, a plain-text summary."""
    add_feed_topics(settings)
    add_release(settings, 1, topics=("climate",))
    regenerate(settings)
    topic = "https://news.example.org/en/topics/climate/"
    atom = feed_path(settings, "en", "atom").read_text()
    assert f'<category term="climate" label="Climate" scheme="{topic}"/>' in atom
    assert '<summary type="text">Lead of release 1.</summary>' in atom
    rss = feed_path(settings, "en", "rss").read_text()
    assert f'<category domain="{topic}">Climate</category>' in rss
    assert "<dc:creator>Press Office</dc:creator>" in rss and "dc:creator" not in atom
    item = read_json(settings, "en")["items"][0]
    assert (item["language"], item["authors"]) == ("en", [{"name": "Press Office"}])


def test_a_release_without_a_lead_is_summed_up_by_its_body_then_its_title(
    settings: Settings,
) -> None:
    """No lead: the summary is the body's first 300 characters, cut at a word with "…"; no
    text in the body either (a picture): the title (a feed reader shows something)."""
    add_feed_topics(settings)
    words = " ".join(f"word{n}" for n in range(100))  # 689 characters
    add_release(settings, 1, lead="", body_text=words)
    add_release(settings, 2, lead="", body_text="", body_html='<p><img src="/m.jpg" alt=""></p>')
    regenerate(settings)
    cut = words[:300].rsplit(" ", 1)[0] + "…"
    for fmt in FORMATS:
        second, first = parse(settings, "en", fmt).entries
        assert (first.summary, second.summary) == (cut, "Release 2")
    summaries = [item["summary"] for item in read_json(settings, "en")["items"]]
    assert summaries == ["Release 2", cut]


def test_a_json_feed_names_the_office_as_it_is_called_in_the_feeds_language(
    settings: Settings,
) -> None:
    add_feed_topics(settings)
    with session_scope(settings) as session:
        releases = list(session.scalars(select(Release)))
    page = FeedPage("fr", None, releases, organisation="Agence de l'espace")
    doc = json.loads(render_feed(page, "json", settings))
    assert doc["title"] == "Agence de l'espace"
    assert doc["authors"] == [{"name": "Agence de l'espace"}]


def test_ids_and_dates_do_not_depend_on_the_servers_time_zone(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server set to another zone than UTC writes the same ids and UTC dates: a release
    created late in the evening UTC is already the next day in Tokyo, and an id that
    changed with the zone would make every reader show it twice."""
    add_feed_topics(settings)
    late = datetime(2026, 11, 18, 20, 30, tzinfo=UTC)
    release_id = add_release(settings, 1, created_at=late)
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        regenerate(settings)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    item = read_json(settings, "en")["items"][0]
    assert item["id"] == f"tag:news.example.org,2026-11-18:release/{release_id}"
    assert item["date_published"] == "2026-11-20T10:00:00Z"


def test_a_configured_hub_is_advertised_in_every_format(settings: Settings) -> None:
    hub = "https://hub.example.net/"
    with_hub = settings.model_copy(update={"websub_hub": hub})
    add_feed_topics(with_hub)
    add_release(with_hub, 1)
    regenerate(with_hub)
    for fmt in FORMATS:
        links = [link.href for link in parse(with_hub, "en", fmt).feed.links if link.rel == "hub"]
        assert links == [hub]
    assert read_json(with_hub, "en")["hubs"] == [{"type": "WebSub", "url": hub}]


def test_a_one_megabyte_body_is_carried_whole(sqlite_settings: Settings) -> None:
    settings = sqlite_settings
    add_feed_topics(settings)
    paragraph = "<p>" + "Word & <b>bold</b> " * 40 + "</p>"
    body = paragraph * (1_000_000 // len(paragraph))
    add_release(settings, 1, body_html=body + "<script>x()</script>")
    regenerate(settings)
    for fmt in FORMATS:
        # Well-formed and whole; feedparser's own sanitiser (seconds on 1 MB) is not the test.
        data = feed_path(settings, "en", fmt).read_bytes()
        parsed = feedparser.parse(data, sanitize_html=False, resolve_relative_uris=False)
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        content = parsed.entries[0].content[0].value
        assert len(content) > 900_000 and "script" not in content
    assert len(read_json(settings, "en")["items"][0]["content_html"]) > 900_000
