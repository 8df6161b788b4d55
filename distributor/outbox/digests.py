"""Digests: one email a day or a week gathering the releases a subscriber chose to receive
that way (``subscribers.digest``), sent through the outbox like every other email.

A **period** of a mode ends at its hour (``DISTRIBUTOR_DIGEST_HOUR`` in the press office's
zone; weekly on Mondays) and starts where the mode's last planned period ended, so a sweep
that missed the hour (beat or workers down) plans one period covering everything since:
caught up once, never twice (``digest_periods`` is unique per mode and end).

**Planning** a period adds a ``digests`` row per subscriber (unique per period) and the
releases it holds (``digest_items``): the releases of their language and topics published
— or corrected, marked so — in the period, still published, that they have not received
yet, neither at once (a delivery row not cancelled, the correction made before it was
planned) nor in another digest (an item of the same revision: unique per subscriber, release
and revision, so two periods or two modes never list a release twice). An empty period
sends nothing. Subscribers planned are those in the mode, and those who left it during the
period (``digest_left``): its last digest still brings what it owed them. Immediate
subscribers are planned by the release's own ledger (``ledger.plan``), which leaves the
others out.

**Sending** is the one send loop (:func:`distributor.outbox.sending.send`) over this
ledger: leases, limits, retries, reconciliation and recorded outcomes, exactly-once as for
release emails. Each batch renders once per group of rows holding the same releases in the
same language (:mod:`distributor.mail.digest`) and personalises per subscriber.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, func, select, text, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session

from distributor.core.config import Settings
from distributor.core.db import read_scope, session_scope
from distributor.core.errors import InputError
from distributor.core.models import (
    DeliveryStatus,
    Digest,
    DigestItem,
    DigestMode,
    DigestPeriod,
    Release,
    ReleaseState,
    Subscriber,
    SubscriberStatus,
    UTCDateTime,
    utcnow,
)
from distributor.core.queue import TaskQueue
from distributor.mail.digest import DigestEntry, RenderedDigest, digest_message_id, render_digest
from distributor.office.identity import identity
from distributor.outbox.ledger import (
    OPEN_STATUSES,
    Batch,
    Leased,
    OutcomeWriter,
    addressees,
    lease,
    one_of,
    recipient,
    still_leased,
)

log = logging.getLogger(__name__)

TASK = "send_digests"
MODES = (DigestMode.DAILY, DigestMode.WEEKLY)
NOTHING_LEFT = "not sent: every release it held was withdrawn since"
NOT_CONFIRMED = "not sent: subscriber no longer confirmed"


# Periods ------------------------------------------------------------------------------------


def period_end(settings: Settings, mode: str, now: datetime) -> datetime:
    """The latest time at or before ``now`` when ``mode``'s digest is due (UTC): the digest
    hour of today or yesterday (daily), of this Monday or the last (weekly), in the press
    office's zone (so a summer and a winter digest both go at 08:00 local)."""
    zone = settings.zone
    local = now.astimezone(zone)
    day = local.date()
    if mode == DigestMode.WEEKLY:
        day -= timedelta(days=day.weekday())
    step = timedelta(weeks=1) if mode == DigestMode.WEEKLY else timedelta(days=1)
    end = datetime.combine(day, time(settings.digest_hour), tzinfo=zone)
    if end > local:
        end = datetime.combine(day - step, time(settings.digest_hour), tzinfo=zone)
    return end.astimezone(UTC)


_OPEN_PERIOD = """
INSERT INTO digest_periods (mode, starts_at, ends_at) VALUES (:mode, :starts_at, :ends_at)
ON CONFLICT (mode, ends_at) DO NOTHING
"""


def open_period(
    session: Session, settings: Settings, mode: str, now: datetime
) -> DigestPeriod | None:
    """The period of ``mode`` that ended last at ``now``, added if new (it starts where the
    mode's previous period ended, or one period back for the first); None when it was
    planned already. Concurrent sweeps add it once (unique per mode and end)."""
    end = period_end(settings, mode, now)
    previous = session.scalar(
        select(func.max(DigestPeriod.ends_at)).where(
            DigestPeriod.mode == mode, DigestPeriod.ends_at < end
        )
    )
    start = previous or period_end(settings, mode, end - timedelta(microseconds=1))
    stmt = text(_OPEN_PERIOD).bindparams(
        bindparam("starts_at", type_=UTCDateTime), bindparam("ends_at", type_=UTCDateTime)
    )
    session.execute(stmt, {"mode": str(mode), "starts_at": start, "ends_at": end})
    period = session.scalars(
        select(DigestPeriod).where(DigestPeriod.mode == mode, DigestPeriod.ends_at == end)
    ).one()
    return period if period.planned_at is None else None


# The releases a subscriber ``s`` is owed in a period: of their language and topics,
# published or corrected in it, still published, and received neither at once (a delivery
# not cancelled covers the release as it was when planned) nor in a digest (same revision).
_OWED = """
SELECT DISTINCT s.id AS sid, r.id AS rid, COALESCE(r.corrected_at, r.published_at) AS revision,
       CASE WHEN r.corrected_at IS NULL THEN 0 ELSE 1 END AS corrected
FROM releases r
JOIN release_topics rt ON rt.release_id = r.id
JOIN subscriptions su ON su.topic_id = rt.topic_id
JOIN subscribers s ON s.id = su.subscriber_id
WHERE r.state = 'published' AND s.language = r.language AND s.status = 'confirmed'
  AND ((r.published_at >= :starts_at AND r.published_at < :ends_at)
       OR (r.corrected_at >= :starts_at AND r.corrected_at < :ends_at))
  AND (s.digest = :mode OR (s.digest_left = :mode AND s.digest_left_at > :starts_at))
  AND NOT EXISTS (
      SELECT 1 FROM digest_items i
      WHERE i.subscriber_id = s.id AND i.release_id = r.id
        AND i.revision_at >= COALESCE(r.corrected_at, r.published_at))
  AND NOT EXISTS (
      SELECT 1 FROM deliveries d
      WHERE d.release_id = r.id AND d.subscriber_id = s.id AND d.status <> 'cancelled'
        AND (r.corrected_at IS NULL OR d.created_at >= r.corrected_at))
"""
_PLAN_DIGESTS = f"""
INSERT INTO digests
    (period_id, subscriber_id, status, attempts, next_attempt_at, last_error, created_at)
SELECT DISTINCT :period_id, o.sid, 'pending', 0, :now, '', :now FROM ({_OWED}) o WHERE true
ON CONFLICT (period_id, subscriber_id) DO NOTHING
"""
# Run once per period (plan_due plans a period not planned yet, in the transaction that
# marks it planned), so every digest it joins is one just planned.
_PLAN_ITEMS = f"""
INSERT INTO digest_items (digest_id, subscriber_id, release_id, revision_at, corrected)
SELECT g.id, o.sid, o.rid, o.revision, o.corrected = 1
FROM ({_OWED}) o JOIN digests g ON g.subscriber_id = o.sid AND g.period_id = :period_id
WHERE true
ON CONFLICT (subscriber_id, release_id, revision_at) DO NOTHING
"""
# A digest whose releases another period took meanwhile (two modes planned at once).
_DROP_EMPTY = """
DELETE FROM digests
WHERE period_id = :period_id AND status = 'pending' AND attempts = 0
  AND NOT EXISTS (SELECT 1 FROM digest_items i WHERE i.digest_id = digests.id)
"""


def plan_period(session: Session, period: DigestPeriod, now: datetime | None = None) -> int:
    """Plan ``period``'s digests (see the module's docstring) and mark it planned (at
    ``now``, the sweep's clock); returns how many digests it holds. Idempotent: planning
    again adds nothing. Its rows are due at once, by the wall clock (the send loop's)."""
    now = now or utcnow()
    times = ("now", "starts_at", "ends_at")
    binds = [bindparam(name, type_=UTCDateTime) for name in times]
    params = {
        "period_id": period.id,
        "mode": period.mode,
        "starts_at": period.starts_at,
        "ends_at": period.ends_at,
        "now": utcnow(),
    }
    for sql in (_PLAN_DIGESTS, _PLAN_ITEMS, _DROP_EMPTY):
        stmt = text(sql).bindparams(*(b for b in binds if f":{b.key}" in sql))
        session.execute(stmt, {k: v for k, v in params.items() if f":{k}" in sql})
    period.planned_at = now
    return int(session.scalar(select(func.count()).where(Digest.period_id == period.id)) or 0)


def plan_due(settings: Settings, queue: TaskQueue, now: datetime | None = None) -> dict[int, int]:
    """Plan every mode's period that ended and was not planned yet, and wake enough
    batches to send each; returns period id → digests planned. Run by the sweep (beat);
    ``now`` is an injectable clock."""
    now = now or utcnow()
    planned: dict[int, int] = {}
    for mode in MODES:
        with session_scope(settings) as session:
            period = open_period(session, settings, mode, now)
            if period is None:
                continue
            planned[period.id] = plan_period(session, period, now)
        log.info("digest period %s (%s): %s digests planned", period.id, mode, planned[period.id])
    for period_id, count in planned.items():
        for _ in range(math.ceil(count / settings.batch_size)):
            queue.send(TASK, period_id)
    return planned


# The ledger ---------------------------------------------------------------------------------


def _due_filter(now: datetime) -> tuple[Any, ...]:
    return (
        Digest.status.in_(OPEN_STATUSES),
        Digest.next_attempt_at <= now,
        (Digest.lease_until.is_(None)) | (Digest.lease_until < now),
    )


def due(session: Session) -> dict[int, int]:
    """For each period with digests ready to be claimed now (to subscribers still
    confirmed), how many."""
    rows = session.execute(
        select(Digest.period_id, func.count())
        .join(Subscriber, Subscriber.id == Digest.subscriber_id)
        .where(*_due_filter(utcnow()), Subscriber.status == SubscriberStatus.CONFIRMED)
        .group_by(Digest.period_id)
    )
    return {int(pid): int(n) for pid, n in rows}


def counts(session: Session, period_id: int) -> dict[str, int]:
    """The number of the period's digests in each status (every status present)."""
    query = (
        select(Digest.status, func.count())
        .where(Digest.period_id == period_id)
        .group_by(Digest.status)
    )
    found = {str(status): int(n) for status, n in session.execute(query)}
    return {status.value: found.get(status.value, 0) for status in DeliveryStatus}


@dataclass(frozen=True)
class ClaimedDigest:
    """A digest leased to this worker: to whom, in which language, how often tried."""

    digest_id: int
    subscriber_id: int
    email: str
    name: str
    link_nonce: str | None
    language: str
    attempts: int
    created_at: datetime
    in_doubt: bool = False  # an earlier lease ran out with no outcome: maybe already sent
    # No delivery of a release names a digest: its envelope sender is the plain address,
    # and a later bounce report is matched by the recipient's address.
    delivery_id: int | None = None

    @property
    def row_id(self) -> int:
        return self.digest_id


@dataclass(frozen=True)
class DigestClaim:
    """The digests of one period leased under one token."""

    period_id: int
    token: str
    rows: list[ClaimedDigest]


def claim(engine: Engine, settings: Settings, period_id: int, limit: int) -> DigestClaim:
    """Lease up to ``limit`` due digests of the period to a new token, in one committed
    transaction (concurrent claimers skip each other's rows on PostgreSQL; SQLite's
    immediate transaction serialises them). Those picked that are no longer to be sent are
    cancelled instead: their subscriber left, or every release in them was withdrawn."""
    now = utcnow()
    token = uuid.uuid4().hex
    # Read from digests alone, so the period's open rows are found by their index
    # (ix_digests_period_status) however many were sent already: joined with subscribers,
    # PostgreSQL walked the period in subscriber order past every sent row (173 ms a claim
    # with 90,000 of 100,000 sent, against 5 ms at the start).
    candidates = (
        select(Digest.id, Digest.lease_until.is_not(None))
        .where(Digest.period_id == period_id, *_due_filter(now))
        .limit(limit)
        .with_for_update(skip_locked=True)  # nothing on SQLite
    )
    live = (
        select(DigestItem.id)
        .join(Release, Release.id == DigestItem.release_id)
        .where(DigestItem.digest_id == Digest.id, Release.state == ReleaseState.PUBLISHED)
        .exists()
    )
    # Correlated, so only the picked rows' subscribers are looked up (by primary key): as
    # ``NOT IN (SELECT id … confirmed)`` PostgreSQL hashed every confirmed subscriber for each
    # claim (a parallel hash join at 100,000).
    confirmed = (
        select(Subscriber.id)
        .where(
            Subscriber.id == Digest.subscriber_id,
            Subscriber.status == SubscriberStatus.CONFIRMED,
        )
        .exists()
    )
    with Session(engine) as session, session.begin():  # BEGIN IMMEDIATE on SQLite (db.py)
        picked = {int(i): bool(doubt) for i, doubt in session.execute(candidates)}
        # Why a picked row would not be sent now, read for all of them at once: its
        # subscriber left (first: their reason wins), or nothing in it is published still.
        unwanted: dict[str, list[int]] = {NOT_CONFIRMED: [], NOTHING_LEFT: []}
        if picked:
            checks = select(Digest.id, confirmed, live).where(
                one_of(session, "digests.id", list(picked))
            )
            for digest_id, is_confirmed, is_live in session.execute(checks):
                if not is_confirmed:
                    unwanted[NOT_CONFIRMED].append(int(digest_id))
                elif not is_live:
                    unwanted[NOTHING_LEFT].append(int(digest_id))
        for reason, found in unwanted.items():
            if found:
                session.execute(
                    update(Digest)
                    .where(one_of(session, "digests.id", found))
                    .values(status=DeliveryStatus.CANCELLED, last_error=reason)
                )
                dropped = set(found)
                picked = {i: doubt for i, doubt in picked.items() if i not in dropped}
        leased: Sequence[Row[Any]] = ()
        if picked:
            columns = (Digest.id, Digest.subscriber_id, Digest.attempts, Digest.created_at)
            leased = lease(session, settings, Digest, list(picked), token, *columns)
        people = addressees(session, leased, Subscriber.language)
    rows = [
        ClaimedDigest(
            r.id,
            r.subscriber_id,
            who.email,
            who.name,
            who.link_nonce,
            who.language,
            r.attempts,
            r.created_at,
            picked[r.id],
        )
        for r in sorted(leased, key=lambda r: r.id)
        for who in (people[r.subscriber_id],)
    ]
    return DigestClaim(period_id, token, rows)


def entries(session: Session, digest_ids: Sequence[int]) -> dict[int, list[DigestEntry]]:
    """The releases each digest holds that are still published, newest first."""
    # The items first, then each release they name once: joined, every item's row carried
    # its release's whole body (a batch of 250 digests of 3 releases: 750 bodies read and
    # decoded for 3 releases; on PostgreSQL, over the wire).
    listed = session.execute(
        select(DigestItem.digest_id, DigestItem.corrected, DigestItem.release_id).where(
            one_of(session, "digest_items.digest_id", digest_ids)
        )
    ).all()
    named = {int(release_id) for _, _, release_id in listed}
    releases = {
        release.id: release
        for release in session.scalars(
            select(Release).where(Release.id.in_(named), Release.state == ReleaseState.PUBLISHED)
        )
    }
    held: dict[int, list[DigestEntry]] = defaultdict(list)
    for digest_id, corrected, release_id in listed:
        if (release := releases.get(int(release_id))) is not None:
            held[int(digest_id)].append(DigestEntry(release, bool(corrected)))
    for items in held.values():
        items.sort(
            key=lambda e: (e.release.published_at or e.release.date, e.release.id), reverse=True
        )
    return held


class DigestMessages:
    """Each digest's message (:class:`~distributor.outbox.ledger.Messages`): rendered once
    per group of rows holding the same releases in the same language, then personalised."""

    def __init__(self, settings: Settings, period: DigestPeriod, rows: Sequence[ClaimedDigest]):
        self._settings, self._period_id = settings, period.id
        with read_scope(settings) as session:
            sender = identity(session, settings)
            held = entries(session, [r.digest_id for r in rows])
            groups: dict[tuple[str, tuple[tuple[int, bool], ...]], RenderedDigest] = {}
            self._pick: dict[int, RenderedDigest] = {}
            for row in rows:
                items = held.get(row.digest_id, [])
                if not items:
                    continue
                key = (row.language, tuple((e.release.id, e.corrected) for e in items))
                if key not in groups:
                    groups[key] = render_digest(period, items, row.language, settings, sender)
                self._pick[row.digest_id] = groups[key]

    def message_id(self, row: ClaimedDigest) -> str:
        domain = self._settings.sender_domain
        return digest_message_id(domain, self._period_id, row.subscriber_id)

    def message(self, row: ClaimedDigest) -> tuple[str, bytes]:
        email = self._pick.get(row.digest_id)
        if email is None:
            raise InputError(NOTHING_LEFT.removeprefix("not sent: "))
        rcpt = recipient(self._settings, row)
        return email.envelope_for(rcpt), email.message_for(rcpt)


class Digests:
    """The ledger of digests (:class:`~distributor.outbox.ledger.Ledger`): one row per
    period and subscriber."""

    table: Leased = Digest
    what, one, about = "digests", "digest", "digest period"

    def subject(self, settings: Settings, subject_id: int) -> DigestPeriod | None:
        with session_scope(settings) as session:
            return session.get(DigestPeriod, subject_id)

    def claim(self, engine: Engine, settings: Settings, subject_id: int, limit: int) -> DigestClaim:
        return claim(engine, settings, subject_id, limit)

    def still_wanted(
        self, conn: Connection, batch: Batch[ClaimedDigest], row_ids: Sequence[int]
    ) -> set[int]:
        # As for release emails: a digest whose subscriber left was cancelled, and so lost
        # its lease (audience.subscribers.cancel_pending; the sweep's cancel_unconfirmed).
        return still_leased(conn, batch.token, row_ids, Digest)

    def recorder(self, engine: Engine, settings: Settings) -> OutcomeWriter:
        # The release emails' own writer (one statement an outcome; a 5xx bounces).
        return OutcomeWriter(engine, settings, "digests", "digest")

    def compose(
        self, settings: Settings, subject: DigestPeriod, rows: Sequence[ClaimedDigest]
    ) -> DigestMessages:
        return DigestMessages(settings, subject, rows)


DIGESTS = Digests()
