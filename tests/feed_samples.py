"""Releases for the feed and site tests, stored through the ORM with fixed dates: topics
climate and space, and release number ``n`` dated ``n`` hours after BASE."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Release, Topic

BASE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def add_feed_topics(settings: Settings) -> None:
    """Topics climate and space, named in English and French."""
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
