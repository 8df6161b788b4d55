"""How long sending a release will take, said before it is sent: its audience, and the rate
this installation reached on its latest large send (the ledger's own record, so it counts
the workers, relay and database this installation really has)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.core.models import Delivery, DeliveryStatus, Release
from distributor.outbox.ledger import audience_count
from distributor.releases.lifecycle import get_release

# A send this small says little about the rate: its first and last message are too close.
MEASURED_AT_LEAST = 1_000
RECENT_RELEASES = 5  # the latest releases looked at for a measured rate


@dataclass(frozen=True)
class SendEstimate:
    """What publishing a release now would send, and in about how long."""

    recipients: int
    rate: float | None = None  # messages/s of the send measured, if any
    measured_on: int | None = None  # the release whose send gave the rate

    @property
    def seconds(self) -> float | None:
        """The expected time from the first message to the last; None without a rate."""
        return self.recipients / self.rate if self.rate else None

    def describe(self) -> str:
        """One line for the press office, e.g. "104,233 recipients: about 41 s at 2,540
        messages/s (the rate of release 11's send)"."""
        who = f"{self.recipients:,} recipient{'s' if self.recipients != 1 else ''}"
        if self.seconds is None or self.rate is None:
            return f"{who}; no earlier send of {MEASURED_AT_LEAST:,} or more to time it by"
        return (
            f"{who}: about {duration(self.seconds)} at {self.rate:,.0f} messages/s "
            f"(the rate of release {self.measured_on}'s send)"
        )


def duration(seconds: float) -> str:
    """``seconds`` rounded for a person: "41 s", "6 min", "1 h 20 min"."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def estimate(session: Session, release_id: int) -> SendEstimate:
    """The release's audience now, and the rate of the latest of the last
    ``RECENT_RELEASES`` sends of at least ``MEASURED_AT_LEAST`` messages (advance copies
    apart): their count over the time from their first message to their last."""
    release = get_release(session, release_id)
    recipients = audience_count(session, release)
    latest = list(
        session.scalars(
            select(Release.id)
            .where(Release.planned_at.is_not(None), Release.id != release_id)
            .order_by(Release.planned_at.desc())
            .limit(RECENT_RELEASES)
        )
    )
    sends = {
        rid: (sent, first, last)
        for rid, sent, first, last in session.execute(
            select(
                Delivery.release_id,
                func.count(),
                func.min(Delivery.sent_at),
                func.max(Delivery.sent_at),
            )
            .where(
                Delivery.release_id.in_(latest),
                Delivery.status == DeliveryStatus.SENT,
                Delivery.advance.is_(False),
            )
            .group_by(Delivery.release_id)
        )
    }
    for rid in latest:  # the latest first
        sent, first, last = sends.get(rid, (0, None, None))
        if sent >= MEASURED_AT_LEAST and first is not None and last is not None and last > first:
            return SendEstimate(recipients, sent / (last - first).total_seconds(), rid)
    return SendEstimate(recipients)
