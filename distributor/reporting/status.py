"""A release's delivery status: ledger counts, timing, and who gets no version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from distributor.core.models import (
    Delivery,
    DeliveryStatus,
    Release,
    Subscriber,
)
from distributor.outbox.retention import folded
from distributor.releases.lifecycle import get_release
from distributor.reporting.audience import without_version


@dataclass(frozen=True)
class ReleaseStatus:
    """Everything `distributor releases status` shows about one release."""

    release_id: int
    slug: str
    title: str
    language: str
    state: str
    counts: dict[str, int]
    first_sent_at: datetime | None  # the public send's (advance copies go before)
    last_sent_at: datetime | None
    without_version: dict[str, int]  # language → confirmed followers with no version in it
    hard_bounces: int = 0  # deliveries a server reported as failed for good (5.x.x)
    soft_bounces: int = 0  # deliveries a server reported as failed for now (4.x.x)
    # Recipients of this release who unsubscribed after it was sent to them.
    unsubscribed_since: int = 0
    published_at: datetime | None = None
    # Embargoed advance copies (outbox/advance.py): when they went (or go), and their rows
    # by status; ``counts`` holds them too (each is its recipient's one copy).
    advance_at: datetime | None = None
    advance_counts: dict[str, int] | None = None
    # Rows folded into counts after the retention period (outbox/retention.py), counted in
    # the figures above; when last (None: none were).
    folded_rows: int = 0
    folded_at: datetime | None = None

    @property
    def planned(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        """Rows that reached an end: sent, failed or cancelled."""
        return self.counts["sent"] + self.counts["failed"] + self.counts["cancelled"]

    @property
    def bounced(self) -> int:
        """Deliveries a bounce report came back for, hard or soft."""
        return self.hard_bounces + self.soft_bounces

    @property
    def time_to_send(self) -> float | None:
        """Seconds from publication to the last message sent, once nothing is left to send
        (None before, or when nothing was sent)."""
        if self.open or self.last_sent_at is None:
            return None
        start = self.published_at or self.first_sent_at or self.last_sent_at
        return max(0.0, (self.last_sent_at - start).total_seconds())

    @property
    def open(self) -> int:
        """Rows still to be sent (pending or deferred)."""
        return self.counts["pending"] + self.counts["deferred"]


def translation_languages(session: Session, release: Release) -> set[str]:
    """The languages of the release and of every release linked to it as a translation."""
    root = release.translation_of_id or release.id
    langs = session.scalars(
        select(Release.language).where(or_(Release.id == root, Release.translation_of_id == root))
    )
    return set(langs) | {release.language}


@dataclass(frozen=True)
class LedgerSummary:
    """What one pass over a release's live ledger rows finds (folded rows not included)."""

    counts: dict[str, int]  # rows by status, every status present
    advance_counts: dict[str, int]  # of those, its embargoed advance copies
    first_sent_at: datetime | None  # of the public send (advance copies go before)
    last_sent_at: datetime | None
    hard_bounces: int
    soft_bounces: int


def ledger_summary(session: Session, release_id: int) -> LedgerSummary:
    """The release's ledger rows by status (all, and its advance copies), the times of its
    first and last public message sent, and its bounces by kind, in one read of its rows.

    One grouped aggregate (by status, advance copy or not, and bounce: a few groups) rather
    than a query per figure: on PostgreSQL each figure was a scan of every row of the release
    (four of a million rows: 1.6 s of the ``releases status`` process, bench/at_scale.py);
    and grouped rather than one FILTER per figure (16 tests a row: 0.25–0.32 s for a million
    rows, grouped 0.16 s)."""
    statuses = [s.value for s in DeliveryStatus]
    counts, advance_counts = dict.fromkeys(statuses, 0), dict.fromkeys(statuses, 0)
    bounces = {"hard": 0, "soft": 0}
    firsts: list[datetime] = []
    lasts: list[datetime] = []
    groups = session.execute(
        select(
            Delivery.status,
            Delivery.advance,
            Delivery.bounce,
            func.count(),
            func.min(Delivery.sent_at),
            func.max(Delivery.sent_at),
        )
        .where(Delivery.release_id == release_id)
        .group_by(Delivery.status, Delivery.advance, Delivery.bounce)
    )
    for status, advance, bounce, n, first, last in groups:
        if status in counts:
            counts[status] += n
            if advance:
                advance_counts[status] += n
        if bounce in bounces:
            bounces[bounce] += n
        if not advance and first is not None and last is not None:  # the public send
            firsts.append(first)
            lasts.append(last)
    return LedgerSummary(
        counts=counts,
        advance_counts=advance_counts,
        first_sent_at=min(firsts, default=None),
        last_sent_at=max(lasts, default=None),
        hard_bounces=bounces["hard"],
        soft_bounces=bounces["soft"],
    )


def release_status(session: Session, release_id: int) -> ReleaseStatus:
    """The delivery status of one release; raises NotFound."""
    release = get_release(session, release_id)
    live = ledger_summary(session, release_id)
    missing = without_version(session, release, translation_languages(session, release))
    # Driven by the few subscribers who left (a partial index, migration 0028), each looked
    # up in the release's rows: not a join of every row of a large release.
    left = session.scalar(
        select(func.count())
        .select_from(Subscriber)
        .join(
            Delivery,
            (Delivery.subscriber_id == Subscriber.id) & (Delivery.release_id == release_id),
        )
        .where(
            Subscriber.unsubscribed_at.is_not(None),
            Delivery.status == DeliveryStatus.SENT,
            Subscriber.unsubscribed_at >= Delivery.sent_at,
        )
    )
    gone = folded(session, release_id)
    firsts = [t for t in (live.first_sent_at, gone.first_sent_at) if t is not None]
    lasts = [t for t in (live.last_sent_at, gone.last_sent_at) if t is not None]
    return ReleaseStatus(
        release_id=release.id,
        slug=release.slug,
        title=release.title,
        language=release.language,
        state=release.state,
        counts=_plus(live.counts, gone.counts),
        first_sent_at=min(firsts, default=None),
        last_sent_at=max(lasts, default=None),
        without_version=missing,
        hard_bounces=live.hard_bounces + gone.hard_bounces,
        soft_bounces=live.soft_bounces + gone.soft_bounces,
        unsubscribed_since=int(left or 0) + gone.unsubscribed,
        published_at=release.published_at,
        advance_at=release.advance_at,
        advance_counts=(
            _plus(live.advance_counts, gone.advance_counts) if release.advance_at else None
        ),
        folded_rows=gone.rows,
        folded_at=gone.folded_at,
    )


def _plus(live: dict[str, int], gone: dict[str, int]) -> dict[str, int]:
    """Rows by status: the live ledger's and the folded ones (every status present)."""
    return {s.value: live.get(s.value, 0) + gone.get(s.value, 0) for s in DeliveryStatus}
