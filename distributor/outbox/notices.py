"""Correction notices: a short email telling those who received a release that it was
corrected, with a link to the corrected page. Sent only when asked (``releases correct
--notify``), and only to subscribers whose delivery of the release was sent and who are
still confirmed.

The ledger works as the delivery ledger does (:mod:`distributor.outbox.ledger`): one row per
(release, subscriber, correction), unique, so planning twice plans nothing twice; workers
claim rows with a lease in a transaction and record each outcome as the server answers, so
a task run twice or a worker that dies mid-batch never resends a notice recorded as sent.
Statuses, backoff and giving up are the deliveries' own.

The email is rendered once per batch and personalised as release emails are
(:mod:`distributor.mail.correction`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, bindparam, func, select, text, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import (
    CorrectionNotice,
    DeliveryStatus,
    Release,
    ReleaseState,
    Subscriber,
    SubscriberStatus,
    UTCDateTime,
    utcnow,
)
from distributor.mail.compose import RenderedRelease
from distributor.mail.correction import render_notice
from distributor.outbox.ledger import (
    OPEN_STATUSES,
    RECONCILED,
    Batch,
    Leased,
    Outcome,
    backoff,
    patiently,
)

NOT_WANTED = "not sent: subscriber no longer confirmed, release withdrawn, or superseded"


# The ledger -----------------------------------------------------------------------------


def plan(session: Session, release: Release) -> int:
    """Add a pending notice of the release's latest correction for every subscriber whose
    delivery of it was sent and who is still confirmed; returns how many were added.

    Idempotent (existing rows are kept). Notices of earlier corrections not sent yet are
    cancelled: people are told once, of the latest text. The caller commits."""
    if release.corrected_at is None:
        return 0
    corrected_at = release.corrected_at
    session.execute(
        update(CorrectionNotice)
        .where(
            CorrectionNotice.release_id == release.id,
            CorrectionNotice.corrected_at < corrected_at,
            CorrectionNotice.status.in_(OPEN_STATUSES),
        )
        .values(
            status=DeliveryStatus.CANCELLED,
            last_error="superseded by a later correction",
            lease_token=None,
            lease_until=None,
        )
    )
    stmt = text(
        """
        INSERT INTO correction_notices
            (release_id, subscriber_id, delivery_id, corrected_at, status, attempts,
             next_attempt_at, last_error, created_at)
        SELECT d.release_id, d.subscriber_id, d.id, :corrected_at, 'pending', 0, :now, '', :now
        FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
        WHERE d.release_id = :release_id AND d.status = 'sent' AND s.status = 'confirmed'
        ON CONFLICT (release_id, subscriber_id, corrected_at) DO NOTHING
        """
    ).bindparams(bindparam("now", type_=UTCDateTime), bindparam("corrected_at", type_=UTCDateTime))
    params = {"release_id": release.id, "corrected_at": corrected_at, "now": utcnow()}
    result = session.execute(stmt, params)
    return int(getattr(result, "rowcount", 0) or 0)


def planned(session: Session, release_id: int, corrected_at: datetime) -> int:
    """How many notices of the correction made at ``corrected_at`` the ledger holds."""
    return int(
        session.scalar(
            select(func.count()).where(
                CorrectionNotice.release_id == release_id,
                CorrectionNotice.corrected_at == corrected_at,
            )
        )
        or 0
    )


def counts(session: Session, release_id: int) -> dict[str, int]:
    """The number of the release's notices in each status (every status present)."""
    query = (
        select(CorrectionNotice.status, func.count())
        .where(CorrectionNotice.release_id == release_id)
        .group_by(CorrectionNotice.status)
    )
    found = {str(status): int(n) for status, n in session.execute(query)}
    return {status.value: found.get(status.value, 0) for status in DeliveryStatus}


def _due_filter(now: datetime) -> tuple[ColumnElement[bool], ...]:
    # The rows a worker may claim now: open, due, not leased, to someone still confirmed,
    # about a release still published.
    return (
        CorrectionNotice.status.in_(OPEN_STATUSES),
        CorrectionNotice.next_attempt_at <= now,
        (CorrectionNotice.lease_until.is_(None)) | (CorrectionNotice.lease_until < now),
        Subscriber.status == SubscriberStatus.CONFIRMED,
        Release.state == ReleaseState.PUBLISHED,
    )


def due(session: Session) -> dict[int, int]:
    """For each release with notices ready to be claimed now, how many there are."""
    rows = session.execute(
        select(CorrectionNotice.release_id, func.count())
        .join(Subscriber, Subscriber.id == CorrectionNotice.subscriber_id)
        .join(Release, Release.id == CorrectionNotice.release_id)
        .where(*_due_filter(utcnow()))
        .group_by(CorrectionNotice.release_id)
    )
    return {int(rid): int(n) for rid, n in rows}


def cancel_unwanted(session: Session, release_id: int) -> int:
    """Cancel the release's open notices that must not go out any more: to subscribers no
    longer confirmed, or of a release no longer published. Returns how many."""
    release_state = session.scalar(select(Release.state).where(Release.id == release_id))
    query = update(CorrectionNotice).where(
        CorrectionNotice.release_id == release_id,
        CorrectionNotice.status.in_(OPEN_STATUSES),
    )
    reason = f"release {release_state}"
    if release_state == ReleaseState.PUBLISHED:
        gone = select(Subscriber.id).where(Subscriber.status != SubscriberStatus.CONFIRMED)
        query = query.where(CorrectionNotice.subscriber_id.in_(gone))
        reason = "subscriber no longer confirmed"
    result = session.execute(
        query.values(status=DeliveryStatus.CANCELLED, last_error=reason, lease_token=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class ClaimedNotice:
    """A notice leased to this worker: to whom, about which correction, how often tried."""

    notice_id: int
    subscriber_id: int
    delivery_id: int
    email: str
    name: str
    link_nonce: str | None  # the subscriber's, for the links in the message (tokens.py)
    corrected_at: datetime
    attempts: int
    created_at: datetime
    in_doubt: bool = False  # an earlier lease ran out with no outcome: maybe already sent

    @property
    def row_id(self) -> int:
        """The ledger row (:class:`~distributor.outbox.ledger.ClaimedRow`): the notice."""
        return self.notice_id


@dataclass(frozen=True)
class NoticeClaim:
    """A batch of notices leased under one token."""

    release_id: int
    token: str
    rows: list[ClaimedNotice]


def claim(engine: Engine, settings: Settings, release_id: int, limit: int) -> NoticeClaim:
    """Cancel the release's notices no longer wanted, then lease up to ``limit`` due ones to
    a new token, in one committed transaction (concurrent claimers skip each other's rows on
    PostgreSQL; on SQLite the transaction is immediate, which serialises them)."""
    now = utcnow()
    token = uuid.uuid4().hex
    candidates = (
        select(CorrectionNotice.id, CorrectionNotice.lease_until.is_not(None))
        .join(Subscriber, Subscriber.id == CorrectionNotice.subscriber_id)
        .join(Release, Release.id == CorrectionNotice.release_id)
        .where(CorrectionNotice.release_id == release_id, *_due_filter(now))
        .limit(limit)
        .with_for_update(of=CorrectionNotice, skip_locked=True)  # nothing on SQLite
    )
    with Session(engine) as session, session.begin():  # BEGIN IMMEDIATE on SQLite (db.py)
        cancel_unwanted(session, release_id)
        # Which rows, and whether an earlier lease of theirs ran out with no outcome (its
        # worker died: "in doubt", see distributor/mail/reconcile.py); then the lease.
        picked = {int(i): bool(doubt) for i, doubt in session.execute(candidates)}
        leased: Sequence[Row[int, int, int, datetime, int, datetime]] = ()
        people: dict[int, tuple[str, str, str | None]] = {}
        if picked:
            leased = session.execute(
                update(CorrectionNotice)
                .where(CorrectionNotice.id.in_(list(picked)))
                .values(
                    lease_until=now + timedelta(seconds=settings.lease_seconds),
                    lease_token=token,
                    attempts=CorrectionNotice.attempts + 1,
                )
                .returning(
                    CorrectionNotice.id,
                    CorrectionNotice.subscriber_id,
                    CorrectionNotice.delivery_id,
                    CorrectionNotice.corrected_at,
                    CorrectionNotice.attempts,
                    CorrectionNotice.created_at,
                )
            ).all()
            ids = [r.subscriber_id for r in leased]
            who = select(Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.link_nonce)
            people = {
                r.id: (r.email, r.name, r.link_nonce)
                for r in session.execute(who.where(Subscriber.id.in_(ids)))
            }
    rows = [
        ClaimedNotice(
            r.id,
            r.subscriber_id,
            r.delivery_id,
            *people[r.subscriber_id],
            r.corrected_at,
            r.attempts,
            r.created_at,
            picked[r.id],
        )
        for r in sorted(leased, key=lambda r: r.id)
    ]
    return NoticeClaim(release_id, token, rows)


def still_wanted(
    conn: Connection, claim: Batch[ClaimedNotice], notice_ids: Sequence[int]
) -> set[int]:
    """Which of ``notice_ids`` may still be sent: leased under the claim's token (not
    cancelled since), to a confirmed subscriber, about a published release."""
    if not notice_ids:
        return set()
    query = (
        select(CorrectionNotice.id)
        .join(Subscriber, Subscriber.id == CorrectionNotice.subscriber_id)
        .join(Release, Release.id == CorrectionNotice.release_id)
        .where(
            CorrectionNotice.id.in_(list(notice_ids)),
            CorrectionNotice.lease_token == claim.token,
            Subscriber.status == SubscriberStatus.CONFIRMED,
            Release.state == ReleaseState.PUBLISHED,
        )
    )
    wanted = {int(r[0]) for r in conn.execute(query)}
    conn.rollback()  # end the read transaction: the next check must see new commits
    return wanted


def record(
    engine: Engine,
    settings: Settings,
    token: str,
    row: ClaimedNotice,
    outcome: Outcome | Literal["cancelled"],
    code: int,
    message: str,
    uncertain: bool = False,
    answered_at: datetime | None = None,
) -> bool:
    """Commit the outcome of one notice, the server's answer at ``answered_at`` (now if not
    given). Returns False if its lease had been lost (nothing is changed then).

    sent → done; cancelled → done, not sent; failed → done, and a 5xx reply marks the
    subscriber bounced; deferred → tried again after the deliveries' backoff, or failed
    once ``give_up_after_seconds`` have passed since planning. If the database cannot be
    reached, the outcome is kept and written again (:func:`delivery.patiently`)."""
    now = answered_at or utcnow()
    values: dict[str, object] = {
        "smtp_code": code or None,
        "lease_until": None,
        "lease_token": None,
        "last_error": message[:1000],
    }
    if outcome == "sent":  # no note, but for one found by reconciling
        values.update(status=DeliveryStatus.SENT, sent_at=now)
        if message != RECONCILED:
            values["last_error"] = ""
    elif outcome == "cancelled":
        values.update(status=DeliveryStatus.CANCELLED, attempts=CorrectionNotice.attempts - 1)
    elif outcome == "failed":
        values.update(status=DeliveryStatus.FAILED)
    else:
        retry_at = now + backoff(settings, row.attempts)
        if (retry_at - row.created_at).total_seconds() > settings.give_up_after_seconds:
            values.update(status=DeliveryStatus.FAILED, last_error=f"gave up: {message}"[:1000])
        else:
            values.update(status=DeliveryStatus.DEFERRED, next_attempt_at=retry_at)
            if uncertain:  # as for deliveries: claimed again, the notice is in doubt
                values["lease_until"] = retry_at

    def write() -> bool:
        with engine.begin() as conn:
            changed = conn.execute(
                update(CorrectionNotice)
                .where(CorrectionNotice.id == row.notice_id, CorrectionNotice.lease_token == token)
                .values(**values)
            ).rowcount
            if changed and outcome == "failed" and code >= 500:
                conn.execute(
                    update(Subscriber)
                    .where(
                        Subscriber.id == row.subscriber_id,
                        Subscriber.status == SubscriberStatus.CONFIRMED,
                    )
                    .values(status=SubscriberStatus.BOUNCED, bounced_at=now)
                )
        return bool(changed)

    unreachable = (OperationalError, InterfaceError)  # not a refused statement: the database
    return patiently(write, settings, f"correction notice {row.notice_id}", unreachable)


# The ledger as the send loop sees it ---------------------------------------------------------


class _NoticeRecorder:
    """Records notice outcomes (:func:`record`) for the send loop."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine, self._settings = engine, settings

    def record(
        self,
        claim_token: str,
        row: ClaimedNotice,
        outcome: Outcome,
        code: int,
        message: str,
        uncertain: bool = False,
        answered_at: datetime | None = None,
    ) -> bool:
        return record(
            self._engine,
            self._settings,
            claim_token,
            row,
            outcome,
            code,
            message,
            uncertain,
            answered_at,
        )

    def drop(self, claim_token: str, row: ClaimedNotice) -> None:
        """Cancel the notice: it is made unwanted by a state (the subscriber left, the
        release was withdrawn or corrected again), not by a cancelled row."""
        record(self._engine, self._settings, claim_token, row, "cancelled", 0, NOT_WANTED)

    def __enter__(self) -> _NoticeRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


class CorrectionNotices:
    """The ledger of correction notices (:class:`~distributor.outbox.ledger.Ledger`): one row
    per release, subscriber and correction."""

    table: Leased = CorrectionNotice
    what, one = "correction notices", "correction notice"

    def subject(self, settings: Settings, release_id: int) -> Release | None:
        """The release, whatever its state: its notices no longer wanted (withdrawn,
        superseded) are cancelled by the claim."""
        with session_scope(settings) as session:
            return session.get(Release, release_id)

    def claim(self, engine: Engine, settings: Settings, release_id: int, limit: int) -> NoticeClaim:
        return claim(engine, settings, release_id, limit)

    def still_wanted(
        self, conn: Connection, batch: Batch[ClaimedNotice], row_ids: Sequence[int]
    ) -> set[int]:
        return still_wanted(conn, batch, row_ids)

    def recorder(self, engine: Engine, settings: Settings) -> _NoticeRecorder:
        return _NoticeRecorder(engine, settings)

    def compose(
        self, settings: Settings, release: Release, rows: Sequence[ClaimedNotice]
    ) -> Callable[[ClaimedNotice], RenderedRelease]:
        # One rendering per correction the batch's rows are about.
        rendered = {
            when: render_notice(release, settings, when) for when in {r.corrected_at for r in rows}
        }
        return lambda row: rendered[row.corrected_at]


CORRECTION_NOTICES = CorrectionNotices()
