"""A release's statistics, and the newsroom's: counts only, no one in them.

Delivered, deferred and bounced are read from the delivery ledger, and unsubscribed from
the subscribers' records, when asked (nothing is copied), plus, for rows folded after the
retention period, the counts the fold kept of them (``outbox.retention``). Page views,
feed fetches and downloads are the hourly counts of ``release_stats``
(``reporting.counting``): a release's are those of its page (``releases/SLUG.html``, 200
or 304) and of its full-size images and documents (``media/…``). A feed lists many
releases, so its fetches are no release's own: a release is shown the fetches of the
feeds in its language during the ``WINDOW_DAYS`` after it was published, when readers
picked it up.

``GET /api/releases/ID/stats``, ``distributor releases report ID``, the dashboard and the
workspace's release page show these.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.core.models import (
    Delivery,
    DeliveryStatus,
    PublicStat,
    Release,
    Subscriber,
    utcnow,
)
from distributor.core.urls import release_relpath
from distributor.outbox import retention
from distributor.releases.lifecycle import get_release
from distributor.reporting.counting import DOCUMENT, FEED_200, FEED_304, IMAGE, PAGE

# Unsubscriptions and feed fetches counted after publication; the ledger's fold counts a
# folded row's unsubscription in this window once (outbox/retention.py).
WINDOW_DAYS: Final = retention.WINDOW_DAYS
DAYS_SHOWN: Final = 31  # the per-day series: at most the last this many days


class Day(BaseModel):
    """The counts of one day (in DISTRIBUTOR_TIMEZONE)."""

    day: date
    page_views: int
    feed_fetches: int = Field(description="Feeds sent whole (200)")
    feed_not_modified: int = Field(description="Feed polls answered 'not modified' (304)")
    image_downloads: int
    document_downloads: int


class ReleaseStatistics(BaseModel):
    """A release's statistics: aggregates only, never about a person."""

    release_id: int
    published_at: datetime | None
    delivered: int = Field(description="Emails the mail server accepted")
    deferred: int = Field(description="Emails refused for now, to be tried again")
    bounced: int = Field(description="Emails reported back as undeliverable (hard or soft)")
    unsubscribed: int = Field(
        description=f"Recipients who unsubscribed in the {WINDOW_DAYS} days after publication"
    )
    page_views: int = Field(description="Views of its page on the newsroom")
    image_downloads: int = Field(description="Downloads of its full-size images")
    document_downloads: int
    feed_fetches: int = Field(
        description=f"Fetches (200) of the feeds in its language in the {WINDOW_DAYS} days "
        "after publication: a feed lists many releases"
    )
    feed_not_modified: int = Field(description="Likewise, polls answered 304")
    days: list[Day] = Field(
        description=f"Per day, the last {DAYS_SHOWN} days at most, first to last with counts"
    )


class SiteStatistics(BaseModel):
    """The whole newsroom's fetch counts per day."""

    days: list[Day]


def release_subjects(release: Release) -> list[str]:
    """The paths below ``public/`` whose fetches are the release's own: its page, its
    full-size images and its documents."""
    subjects = [release_relpath(release.slug)]
    for item in [*release.images, *release.attachments]:
        href = item.get("href")
        if isinstance(href, str) and href.startswith("/media/"):
            subjects.append(href[1:])
    return subjects


def release_statistics(session: Session, release_id: int, timezone: str) -> ReleaseStatistics:
    """The statistics of one release, days in ``timezone``; raises NotFound."""
    release = get_release(session, release_id)
    statuses = dict(
        session.execute(
            select(Delivery.status, func.count())
            .where(Delivery.release_id == release_id)
            .group_by(Delivery.status)
        ).all()
    )
    bounced = session.scalar(
        select(func.count()).where(
            Delivery.release_id == release_id, Delivery.bounced_at.is_not(None)
        )
    )
    gone = retention.folded(session, release_id)
    start = release.published_at
    unsubscribed = feeds = not_modified = 0
    if start is not None:
        end = start + timedelta(days=WINDOW_DAYS)
        unsubscribed = (
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(
                    Delivery.release_id == release_id,
                    Delivery.status == DeliveryStatus.SENT,
                    Subscriber.unsubscribed_at >= Delivery.sent_at,
                    Subscriber.unsubscribed_at < end,
                )
            )
            or 0
        )
        fetched = dict(
            session.execute(
                select(PublicStat.kind, func.sum(PublicStat.count))
                .where(
                    PublicStat.subject.startswith(f"feeds/{release.language}/", autoescape=True),
                    PublicStat.kind.in_((FEED_200, FEED_304)),
                    PublicStat.hour >= start.replace(minute=0, second=0, microsecond=0),
                    PublicStat.hour < end,
                )
                .group_by(PublicStat.kind)
            ).all()
        )
        feeds, not_modified = int(fetched.get(FEED_200) or 0), int(fetched.get(FEED_304) or 0)
    hourly = session.execute(
        select(PublicStat.hour, PublicStat.kind, func.sum(PublicStat.count))
        .where(PublicStat.subject.in_(release_subjects(release)))
        .group_by(PublicStat.hour, PublicStat.kind)
    ).all()
    totals: dict[str, int] = defaultdict(int)
    for _hour, kind, n in hourly:
        totals[kind] += int(n)
    return ReleaseStatistics(
        release_id=release.id,
        published_at=release.published_at,
        delivered=int(statuses.get(DeliveryStatus.SENT, 0)) + gone.counts[DeliveryStatus.SENT],
        deferred=int(statuses.get(DeliveryStatus.DEFERRED, 0)),  # never folded
        bounced=int(bounced or 0) + gone.hard_bounces + gone.soft_bounces,
        unsubscribed=int(unsubscribed) + gone.unsubscribed_in_window,
        page_views=totals[PAGE],
        image_downloads=totals[IMAGE],
        document_downloads=totals[DOCUMENT],
        feed_fetches=feeds,
        feed_not_modified=not_modified,
        days=_days(((h, k, int(n)) for h, k, n in hourly), ZoneInfo(timezone)),
    )


def site_statistics(session: Session, timezone: str, days: int = 14) -> SiteStatistics:
    """Every public file's fetch counts per day, the last ``days`` days (in ``timezone``)."""
    since = utcnow() - timedelta(days=days)
    hourly = session.execute(
        select(PublicStat.hour, PublicStat.kind, func.sum(PublicStat.count))
        .where(PublicStat.hour >= since)
        .group_by(PublicStat.hour, PublicStat.kind)
    ).all()
    return SiteStatistics(
        days=_days(((h, k, int(n)) for h, k, n in hourly), ZoneInfo(timezone), days)
    )


def _days(
    hourly: Iterable[tuple[datetime, str, int]], zone: ZoneInfo, shown: int = DAYS_SHOWN
) -> list[Day]:
    """Per day (in ``zone``), every day from the first with counts to the last (no gap),
    at most the last ``shown``."""
    per_day: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for hour, kind, n in hourly:
        per_day[hour.astimezone(zone).date()][kind] += n
    if not per_day:
        return []
    last = max(per_day)
    first = max(min(per_day), last - timedelta(days=shown - 1))
    out = []
    day = first
    while day <= last:
        counts = per_day.get(day, {})
        out.append(
            Day(
                day=day,
                page_views=counts.get(PAGE, 0),
                feed_fetches=counts.get(FEED_200, 0),
                feed_not_modified=counts.get(FEED_304, 0),
                image_downloads=counts.get(IMAGE, 0),
                document_downloads=counts.get(DOCUMENT, 0),
            )
        )
        day += timedelta(days=1)
    return out
