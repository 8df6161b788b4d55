"""Feeds as a feed reader sees them: releases stored through the ORM (SQLite and PostgreSQL),
``write_feeds`` run, every file parsed with feedparser."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
from sqlalchemy import select

from distributor import urls
from distributor.config import Settings
from distributor.db import session_scope
from distributor.feeds import build_feed, write_feeds
from distributor.models import Release, Topic

BASE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
FORMATS: tuple[urls.FeedFormat, ...] = ("rss", "atom")


def add_topics(settings: Settings) -> None:
    with session_scope(settings) as session:
        session.add_all(
            [
                Topic(slug="climate", names={"en": "Climate", "fr": "Climat"}),
                Topic(slug="space", names={"en": "Space", "fr": "Espace"}),
            ]
        )


def add_release(
    settings: Settings,
    n: int,
    *,
    lang: str = "en",
    topics: tuple[str, ...] = ("climate",),
    state: str = "published",
    **fields: Any,
) -> int:
    """Store release number ``n`` (dated ``n`` hours after BASE); returns its id."""
    with session_scope(settings) as session:
        release = Release(
            slug=f"{lang}-release-{n}",
            title=f"Release {n}",
            language=lang,
            lead=f"Lead of release {n}.",
            body_html=f'<p>Body {n}, see <a href="/files/r{n}.pdf">the report</a>.</p>',
            body_text=f"Body {n}, see the report.",
            date=BASE + timedelta(hours=n),
            created_at=BASE - timedelta(days=1),
            updated_at=BASE + timedelta(hours=n),
            published_at=BASE + timedelta(hours=n),
            state=state,
            topics=list(session.scalars(select(Topic).where(Topic.slug.in_(topics)))),
        )
        for name, value in fields.items():
            setattr(release, name, value)
        session.add(release)
        session.flush()
        return release.id


def regenerate(settings: Settings) -> list[Path]:
    with session_scope(settings) as session:
        return write_feeds(session, settings)


def feed_path(
    settings: Settings, lang: str, fmt: urls.FeedFormat, topic: str | None = None
) -> Path:
    return settings.public_dir / urls.feed_relpath(lang, fmt, topic)


def parse(settings: Settings, lang: str, fmt: urls.FeedFormat, topic: str | None = None) -> Any:
    """The feed as feedparser reads it; fails unless it is well-formed."""
    parsed = feedparser.parse(feed_path(settings, lang, fmt, topic).read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    expected = "rss20" if fmt == "rss" else "atom10"
    assert parsed.version == expected
    return parsed


def titles(parsed: Any) -> list[str]:
    return [entry.title for entry in parsed.entries]


def test_every_feed_is_written_and_describes_itself(settings: Settings) -> None:
    add_topics(settings)
    add_release(settings, 1)
    paths = regenerate(settings)

    expected = {
        feed_path(settings, lang, fmt, topic)
        for lang in ("en", "fr")
        for topic in (None, "climate", "space")
        for fmt in FORMATS
    }
    assert set(paths) == expected and len(paths) == len(expected)
    # Nothing else in public/: no temporary file left behind.
    assert {p for p in settings.public_dir.rglob("*") if p.is_file()} == expected
    for lang, topic, title in [
        ("en", None, "Press Office"),
        ("en", "climate", "Press Office — Climate"),
        ("fr", "space", "Press Office — Espace"),
    ]:
        for fmt in FORMATS:
            feed = parse(settings, lang, fmt, topic).feed
            assert feed.title == title
            assert feed.language == lang
            self_links = [link.href for link in feed.links if link.rel == "self"]
            assert self_links == [urls.feed_url(settings, lang, fmt, topic)]
            assert feed.link == "https://news.example.org/"


def test_entries_carry_ids_links_dates_full_content_and_categories(settings: Settings) -> None:
    add_topics(settings)
    add_release(settings, 1, topics=("climate", "space"))
    second = add_release(
        settings,
        2,
        topics=("space",),
        body_html='<p>Photo: <img src="/media/p.jpg" alt="P"></p>',
        images=[{"src": "/media/hd.jpg", "alt": "Launch", "credit": "© ESA", "href": ""}],
    )
    regenerate(settings)

    for fmt in FORMATS:
        parsed = parse(settings, "en", fmt)
        assert titles(parsed) == ["Release 2", "Release 1"]  # newest first
        newest, oldest = parsed.entries
        assert newest.id == f"tag:news.example.org,2026-11-19:release/{second}"
        assert newest.link == "https://news.example.org/releases/en-release-2"
        assert newest.published_parsed[:5] == (2026, 11, 20, 11, 0)
        if fmt == "atom":  # RSS items carry pubDate only
            assert newest.updated_parsed[:5] == (2026, 11, 20, 11, 0)
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
    assert french.feed.updated == "1970-01-01T00:00:00+00:00"


def test_ids_survive_an_edit_while_the_updated_date_moves(settings: Settings) -> None:
    add_topics(settings)
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
        if fmt == "atom":
            assert new.updated_parsed[:3] == (2026, 11, 23) != old.updated_parsed[:3]
            assert after.feed.updated_parsed[:3] == (2026, 11, 23)
        else:
            assert after.feed.updated_parsed[:3] == (2026, 11, 23)


def test_topic_feeds_hold_only_their_topic(settings: Settings) -> None:
    add_topics(settings)
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
    add_topics(settings)
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
        assert french.feed.title == "Press Office — Climat"
        assert titles(french) == ["Communiqué 5"]


def test_a_feed_keeps_the_newest_fifty(settings: Settings) -> None:
    add_topics(settings)
    for n in random.Random(7).sample(range(1, 61), 60):  # stored in no particular order
        add_release(settings, n)
    regenerate(settings)

    newest_fifty = [f"Release {n}" for n in range(60, 10, -1)]
    for fmt in FORMATS:
        assert titles(parse(settings, "en", fmt)) == newest_fifty
        assert titles(parse(settings, "en", fmt, "climate")) == newest_fifty


def test_same_releases_same_bytes_and_untouched_files(settings: Settings) -> None:
    add_topics(settings)
    add_release(settings, 1, topics=("climate", "space"))
    add_release(settings, 2, topics=("space",))
    add_release(settings, 3, lang="fr")
    first = regenerate(settings)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_ino) for p in first}

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
        feed_path(settings, "en", fmt, topic) for fmt in FORMATS for topic in (None, "climate")
    }
    for path in changed:
        assert path.read_bytes() != before[path][0]


def test_hostile_content_still_parses(settings: Settings) -> None:
    add_topics(settings)
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
        assert entry.title == "Bad title <b>&"
        content = entry.content[0].value
        assert "xyz" in content and "ok" in content and "end" in content
        assert "script" not in content and "alert" not in content and "onclick" not in content
        assert entry.summary == "Lead with ]]> and more"
        topic_feed = parse(hostile, "en", fmt, "odd")
        assert topic_feed.feed.title == "Agency Office — Odd topic"
        assert titles(topic_feed) == ["Bad title <b>&"]


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
