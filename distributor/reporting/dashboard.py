"""What the press office's dashboard (``/admin``) shows, read from the database: the releases
with their delivery progress, confirmed subscribers per topic and language, messages sent
and failed per hour, and the audit trail of a release.

Plain queries returning plain values (no web imports): the web layer only formats them. A
handful of grouped queries per page, whatever the number of subscribers or deliveries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, literal_column, select
from sqlalchemy.orm import Session

from distributor.core.db import is_sqlite
from distributor.core.models import (
    AuditEvent,
    Delivery,
    DeliveryStatus,
    Release,
    ReleaseState,
    Subscriber,
    SubscriberStatus,
    Topic,
    subscriptions,
)
from distributor.outbox.retention import folded_by_status

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class Progress:
    """A release's ledger rows per delivery status (every status present, 0 when none)."""

    counts: dict[str, int]

    @property
    def planned(self) -> int:
        """Every row planned (one per recipient)."""
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        """Rows that reached an end: sent, failed or cancelled."""
        c = self.counts
        return c["sent"] + c["failed"] + c["cancelled"]

    @property
    def open(self) -> int:
        """Rows still to be sent (pending or deferred)."""
        return self.counts["pending"] + self.counts["deferred"]

    @property
    def percent(self) -> int:
        """``done`` as a whole percentage of ``planned``, rounded down (100 only when every
        row is done); 0 when nothing is planned."""
        return self.done * 100 // self.planned if self.planned else 0


def empty_counts() -> dict[str, int]:
    """A count of 0 for every delivery status."""
    return {status.value: 0 for status in DeliveryStatus}


def is_sending(state: str, planned_at: datetime | None, progress: Progress) -> bool:
    """True while a release is being sent: published, and its ledger not fully planned yet
    or with rows still to send (pending, or deferred for a retry)."""
    return state == ReleaseState.PUBLISHED and (planned_at is None or progress.open > 0)


@dataclass(frozen=True)
class ReleaseRow:
    """One release of the overview: what it is, where it stands, and its deliveries."""

    id: int
    title: str
    language: str
    state: str
    scheduled_at: datetime | None
    published_at: datetime | None
    withdrawn_at: datetime | None
    planned_at: datetime | None
    progress: Progress

    @property
    def sending(self) -> bool:
        """See :func:`is_sending`."""
        return is_sending(self.state, self.planned_at, self.progress)


def releases_overview(session: Session, limit: int = 50) -> list[ReleaseRow]:
    """The ``limit`` newest releases (highest id first), each with its ledger counts (rows
    folded after the retention period included): three queries whatever the number of
    deliveries (the counts come from the (release, status) index)."""
    releases = session.execute(
        select(
            Release.id,
            Release.title,
            Release.language,
            Release.state,
            Release.scheduled_at,
            Release.published_at,
            Release.withdrawn_at,
            Release.planned_at,
        )
        .order_by(Release.id.desc())
        .limit(limit)
    ).all()
    counts: dict[int, dict[str, int]] = {r.id: empty_counts() for r in releases}
    if counts:
        rows = session.execute(
            select(Delivery.release_id, Delivery.status, func.count())
            .where(Delivery.release_id.in_(list(counts)))
            .group_by(Delivery.release_id, Delivery.status)
        )
        for release_id, status, n in rows:
            counts[int(release_id)][str(status)] = int(n)
        for release_id, gone in folded_by_status(session, list(counts)).items():
            for status, n in gone.items():
                counts[release_id][status] += n
    return [
        ReleaseRow(
            id=r.id,
            title=r.title,
            language=r.language,
            state=r.state,
            scheduled_at=r.scheduled_at,
            published_at=r.published_at,
            withdrawn_at=r.withdrawn_at,
            planned_at=r.planned_at,
            progress=Progress(counts[r.id]),
        )
        for r in releases
    ]


@dataclass(frozen=True)
class ReleaseProgress:
    """Where one release's sending stands: its state, whether its ledger is fully planned
    (``planned_at``), and its rows per status."""

    release_id: int
    state: str
    planned_at: datetime | None
    progress: Progress

    @property
    def sending(self) -> bool:
        """See :func:`is_sending`."""
        return is_sending(self.state, self.planned_at, self.progress)


def release_progress(session: Session, release_id: int) -> ReleaseProgress | None:
    """The sending progress of release ``release_id``, or None if there is no such
    release. Three small queries (the counts from the (release, status) index, and the
    rows folded after the retention period): cheap enough to poll every second."""
    found = session.execute(
        select(Release.state, Release.planned_at).where(Release.id == release_id)
    ).one_or_none()
    if found is None:
        return None
    counts = empty_counts()
    rows = session.execute(
        select(Delivery.status, func.count())
        .where(Delivery.release_id == release_id)
        .group_by(Delivery.status)
    )
    for status, n in rows:
        counts[str(status)] = int(n)
    for status, n in folded_by_status(session, [release_id]).get(release_id, {}).items():
        counts[status] += n
    return ReleaseProgress(release_id, str(found.state), found.planned_at, Progress(counts))


@dataclass(frozen=True)
class SubscriberTable:
    """Confirmed subscribers per topic and language.

    ``topics`` is every topic as (slug, name), by slug; ``languages`` the configured ones
    then any other a subscriber has; ``counts[(slug, language)]`` the confirmed subscribers
    of that topic reading that language (absent when 0). ``people[language]`` counts each
    confirmed subscriber once, whatever the number of topics they follow."""

    topics: list[tuple[str, str]]
    languages: list[str]
    counts: dict[tuple[str, str], int] = field(default_factory=dict)
    people: dict[str, int] = field(default_factory=dict)

    def count(self, slug: str, language: str) -> int:
        """Confirmed subscribers of topic ``slug`` reading ``language``."""
        return self.counts.get((slug, language), 0)

    def topic_total(self, slug: str) -> int:
        """Confirmed subscribers of topic ``slug``, every language."""
        return sum(n for (s, _lang), n in self.counts.items() if s == slug)

    @property
    def total(self) -> int:
        """Confirmed subscribers, each counted once."""
        return sum(self.people.values())


def subscribers_by_topic_language(
    session: Session, languages: Sequence[str] = (), name_language: str = "en"
) -> SubscriberTable:
    """Confirmed subscribers per topic × language (see :class:`SubscriberTable`); topic
    names in ``name_language``. ``languages`` (the configured ones) come first, in their
    order, whether anyone reads them or not. Three grouped queries."""
    topics = list(session.scalars(select(Topic).order_by(Topic.slug)))
    confirmed = Subscriber.status == SubscriberStatus.CONFIRMED
    rows = session.execute(
        select(Topic.slug, Subscriber.language, func.count())
        .select_from(subscriptions)
        .join(Subscriber, Subscriber.id == subscriptions.c.subscriber_id)
        .join(Topic, Topic.id == subscriptions.c.topic_id)
        .where(confirmed)
        .group_by(Topic.slug, Subscriber.language)
    )
    counts = {(str(slug), str(lang)): int(n) for slug, lang, n in rows}
    people = {
        str(lang): int(n)
        for lang, n in session.execute(
            select(Subscriber.language, func.count()).where(confirmed).group_by(Subscriber.language)
        )
    }
    others = sorted(({lang for _slug, lang in counts} | set(people)) - set(languages))
    return SubscriberTable(
        topics=[(t.slug, t.name(name_language)) for t in topics],
        languages=[*languages, *others],
        counts=counts,
        people=people,
    )


@dataclass(frozen=True)
class HourCount:
    """Messages sent and failed in the hour starting at ``start`` (UTC, aware)."""

    start: datetime
    sent: int
    failed: int


def _hour_of(session: Session, column: Any) -> ColumnElement[str]:
    """SQL for the UTC hour of a timestamp column as text ``YYYY-MM-DD HH`` (the columns
    hold naive UTC: text on SQLite, ``timestamp without time zone`` on PostgreSQL)."""
    if is_sqlite(session.get_bind()):
        return func.strftime("%Y-%m-%d %H", column)
    return func.to_char(column, "YYYY-MM-DD HH24")


def _per_hour(
    session: Session, column: Any, status: DeliveryStatus, start: datetime, end: datetime
) -> dict[datetime, int]:
    hour = _hour_of(session, column).label("hour")
    # The status written into the statement, not bound: the planner must see it to use the
    # partial index of the sent rows (ix_deliveries_sent_at: status = 'sent').
    rows = session.execute(
        select(hour, func.count())
        .where(Delivery.status == literal_column(f"'{status.value}'"), column >= start)
        .where(column < end)
        .group_by(hour)
    )
    return {datetime.strptime(str(h), "%Y-%m-%d %H").replace(tzinfo=UTC): int(n) for h, n in rows}


def sends_over_time(session: Session, now: datetime, hours: int = 24) -> list[HourCount]:
    """Messages sent and failed in each of the ``hours`` clock hours (UTC) up to and
    including the one ``now`` is in, oldest first; every hour present, 0 when quiet.

    A message counts as sent in the hour of its ``sent_at``. A failed one counts in the
    hour of its ``next_attempt_at``: the ledger keeps no time of failure, and that is when
    its last attempt became due (its planning time when it failed at the first try); the
    attempt itself follows within a batch's time. The failures are found through the
    (status, next_attempt_at) index, the sends through the sent rows' ``sent_at`` (a
    partial index, migration 0028): the hours asked for, not every row of the ledger.
    """
    if hours < 1:
        raise ValueError("hours must be at least 1")
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start, end = current - (hours - 1) * HOUR, current + HOUR
    sent = _per_hour(session, Delivery.sent_at, DeliveryStatus.SENT, start, end)
    failed = _per_hour(session, Delivery.next_attempt_at, DeliveryStatus.FAILED, start, end)
    slots = [start + i * HOUR for i in range(hours)]
    return [HourCount(t, sent.get(t, 0), failed.get(t, 0)) for t in slots]


def release_history(session: Session, release_id: int, limit: int = 20) -> list[AuditEvent]:
    """The newest ``limit`` audit events about release ``release_id`` (published,
    scheduled, corrected, withdrawn… and by whom), newest first."""
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.subject == f"release {release_id}")
            .order_by(AuditEvent.id.desc())
            .limit(limit)
        )
    )
