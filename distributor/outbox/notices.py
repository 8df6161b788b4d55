"""Notices about a release sent earlier: a short email telling those who received it that
it was corrected (``releases correct --notify``) or withdrawn (``releases withdraw
--notify``), with a link to its page; and telling those who received its embargoed advance
copy that its embargo moved (always) or lifted (if they chose to know). Sent only to
subscribers whose delivery of the release was sent and who are still confirmed.

The ledger works as the delivery ledger does (:mod:`distributor.outbox.ledger`): one row per
(release, subscriber, kind, change), unique, so planning twice plans nothing twice; workers
claim rows with a lease in a transaction and record each outcome as the server answers, so
a task run twice or a worker that dies mid-batch never resends a notice recorded as sent.
Statuses, backoff and giving up are the deliveries' own.

Each kind is one entry of :data:`KINDS`: the state the release must be in for its notices
to go out, which change a notice is about, and its email (rendered once per batch and
personalised as release emails are: :mod:`distributor.mail.correction`,
:mod:`distributor.mail.withdrawal`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, bindparam, func, or_, select, text, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from distributor.core.config import Settings
from distributor.core.db import read_scope, session_scope
from distributor.core.identity import Identity
from distributor.core.models import (
    CorrectionNotice,
    DeliveryStatus,
    NoticeKind,
    Release,
    ReleaseState,
    Subscriber,
    SubscriberStatus,
    UTCDateTime,
    utcnow,
)
from distributor.mail.compose import RenderedRelease
from distributor.mail.correction import render_notice
from distributor.mail.embargo import render_embargo_lifted, render_embargo_moved
from distributor.mail.withdrawal import render_withdrawal
from distributor.office.identity import identity
from distributor.outbox import retention
from distributor.outbox.ledger import (
    OPEN_STATUSES,
    Batch,
    Leased,
    RowRecorder,
    ToSubscribers,
    addressees,
    bounce_on_refusal,
    lease,
)

NOT_WANTED = "not sent: subscriber no longer confirmed, release changed state, or superseded"


@dataclass(frozen=True)
class Kind:
    """One kind of notice: its notices go out while the release is in one of ``states``;
    ``change`` is the time of the change a notice is about (None: there was none);
    ``render`` its email, for the change made at a time; ``recipients`` (SQL on the sent
    delivery ``d``) which of those who received the release are told."""

    states: tuple[ReleaseState, ...]
    change: Callable[[Release], datetime | None]
    render: Callable[[Release, Settings, Identity, datetime], RenderedRelease]
    recipients: str = "true"


# Those who received an embargoed advance copy; and, of them, those who asked to be told
# when an embargo lifts (their accreditation's choice, read when the notice is planned).
ADVANCE_COPIES = "d.advance"
LIFT_WANTED = (
    "d.advance AND EXISTS (SELECT 1 FROM accreditations a "
    "WHERE a.subscriber_id = d.subscriber_id AND a.lift_notice)"
)

KINDS: dict[str, Kind] = {
    NoticeKind.CORRECTION: Kind((ReleaseState.PUBLISHED,), lambda r: r.corrected_at, render_notice),
    NoticeKind.WITHDRAWAL: Kind(
        (ReleaseState.WITHDRAWN,), lambda r: r.withdrawn_at, render_withdrawal
    ),
    # Moved later or earlier (scheduled), postponed (a draft again), or published early.
    NoticeKind.EMBARGO_MOVED: Kind(
        (ReleaseState.SCHEDULED, ReleaseState.DRAFT, ReleaseState.PUBLISHED),
        lambda r: r.embargo_moved_at,
        render_embargo_moved,
        ADVANCE_COPIES,
    ),
    NoticeKind.EMBARGO_LIFTED: Kind(
        (ReleaseState.PUBLISHED,), lambda r: r.published_at, render_embargo_lifted, LIFT_WANTED
    ),
}


def _release_as_kind_wants() -> ColumnElement[bool]:
    # A notice may go out only while its release is in one of its kind's states.
    return or_(
        *(
            and_(CorrectionNotice.kind == name, Release.state.in_(kind.states))
            for name, kind in KINDS.items()
        )
    )


# The ledger -----------------------------------------------------------------------------


def plan(session: Session, release: Release, kind: str = NoticeKind.CORRECTION) -> int:
    """Add a pending notice of the release's latest change of ``kind`` (its latest
    correction, its withdrawal) for every subscriber whose delivery of it was sent and who
    is still confirmed; returns how many were added.

    Idempotent (existing rows are kept). Notices of earlier changes of the kind not sent
    yet are cancelled: people are told once, of the latest text. The caller commits."""
    corrected_at = KINDS[kind].change(release)
    if corrected_at is None:
        return 0
    session.execute(
        update(CorrectionNotice)
        .where(
            CorrectionNotice.release_id == release.id,
            CorrectionNotice.kind == kind,
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
        f"""
        INSERT INTO correction_notices
            (release_id, subscriber_id, delivery_id, kind, corrected_at, status, attempts,
             next_attempt_at, last_error, created_at)
        SELECT d.release_id, d.subscriber_id, d.id, :kind, :corrected_at, 'pending', 0, :now,
               '', :now
        FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
        WHERE d.release_id = :release_id AND d.status = 'sent' AND s.status = 'confirmed'
          AND ({KINDS[kind].recipients})
        ON CONFLICT (release_id, subscriber_id, kind, corrected_at) DO NOTHING
        """
    ).bindparams(bindparam("now", type_=UTCDateTime), bindparam("corrected_at", type_=UTCDateTime))
    params = {"release_id": release.id, "kind": str(kind), "corrected_at": corrected_at}
    params["now"] = utcnow()
    result = session.execute(stmt, params)
    return int(getattr(result, "rowcount", 0) or 0)


def planned(
    session: Session, release_id: int, corrected_at: datetime, kind: str = NoticeKind.CORRECTION
) -> int:
    """How many notices of the change of ``kind`` made at ``corrected_at`` the ledger holds."""
    return int(
        session.scalar(
            select(func.count()).where(
                CorrectionNotice.release_id == release_id,
                CorrectionNotice.kind == kind,
                CorrectionNotice.corrected_at == corrected_at,
            )
        )
        or 0
    )


def counts(session: Session, release_id: int) -> dict[str, int]:
    """The number of the release's notices in each status (every status present), those
    folded after the retention period (outbox/retention.py) included."""
    query = (
        select(CorrectionNotice.status, func.count())
        .where(CorrectionNotice.release_id == release_id)
        .group_by(CorrectionNotice.status)
    )
    found = {str(status): int(n) for status, n in session.execute(query)}
    gone = retention.folded_by_status(session, [release_id], retention.NOTICES)
    gone_here = gone.get(release_id, {})
    return {s.value: found.get(s.value, 0) + gone_here.get(s.value, 0) for s in DeliveryStatus}


def _due_filter(now: datetime) -> tuple[ColumnElement[bool], ...]:
    # The rows a worker may claim now: open, due, not leased, to someone still confirmed,
    # about a release in the state its kind wants.
    return (
        CorrectionNotice.status.in_(OPEN_STATUSES),
        CorrectionNotice.next_attempt_at <= now,
        (CorrectionNotice.lease_until.is_(None)) | (CorrectionNotice.lease_until < now),
        Subscriber.status == SubscriberStatus.CONFIRMED,
        _release_as_kind_wants(),
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
    longer confirmed, or of a kind whose release is no longer in the state it wants (a
    correction of a withdrawn release). Returns how many."""
    release_state = session.scalar(select(Release.state).where(Release.id == release_id))
    cancelled = 0
    gone = select(Subscriber.id).where(Subscriber.status != SubscriberStatus.CONFIRMED)
    for name, kind in KINDS.items():
        query = update(CorrectionNotice).where(
            CorrectionNotice.release_id == release_id,
            CorrectionNotice.kind == name,
            CorrectionNotice.status.in_(OPEN_STATUSES),
        )
        reason = f"release {release_state}"
        if release_state in kind.states:
            query = query.where(CorrectionNotice.subscriber_id.in_(gone))
            reason = "subscriber no longer confirmed"
        result = session.execute(
            query.values(status=DeliveryStatus.CANCELLED, last_error=reason, lease_token=None)
        )
        cancelled += int(getattr(result, "rowcount", 0) or 0)
    return cancelled


@dataclass(frozen=True)
class ClaimedNotice:
    """A notice leased to this worker: to whom, about which correction, how often tried."""

    notice_id: int
    subscriber_id: int
    delivery_id: int
    email: str
    name: str
    link_nonce: str | None  # the subscriber's, for the links in the message (tokens.py)
    corrected_at: datetime  # the change it is about (see CorrectionNotice)
    attempts: int
    created_at: datetime
    in_doubt: bool = False  # an earlier lease ran out with no outcome: maybe already sent
    kind: str = NoticeKind.CORRECTION

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
        leased: Sequence[Row[Any]] = ()
        if picked:
            leased = lease(
                session,
                settings,
                CorrectionNotice,
                list(picked),
                token,
                CorrectionNotice.id,
                CorrectionNotice.subscriber_id,
                CorrectionNotice.delivery_id,
                CorrectionNotice.corrected_at,
                CorrectionNotice.attempts,
                CorrectionNotice.created_at,
                CorrectionNotice.kind,
            )
        people = addressees(session, leased)
    rows = [
        ClaimedNotice(
            r.id,
            r.subscriber_id,
            r.delivery_id,
            people[r.subscriber_id].email,
            people[r.subscriber_id].name,
            people[r.subscriber_id].link_nonce,
            r.corrected_at,
            r.attempts,
            r.created_at,
            picked[r.id],
            r.kind,
        )
        for r in sorted(leased, key=lambda r: r.id)
    ]
    return NoticeClaim(release_id, token, rows)


def still_wanted(
    conn: Connection, claim: Batch[ClaimedNotice], notice_ids: Sequence[int]
) -> set[int]:
    """Which of ``notice_ids`` may still be sent: leased under the claim's token (not
    cancelled since), to a confirmed subscriber, about a release in its kind's state."""
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
            _release_as_kind_wants(),
        )
    )
    wanted = {int(r[0]) for r in conn.execute(query)}
    conn.rollback()  # end the read transaction: the next check must see new commits
    return wanted


def recorder(engine: Engine, settings: Settings) -> RowRecorder:
    """What records notice outcomes: a 5xx refusal marks the subscriber bounced, as a
    release email's does."""
    return RowRecorder(
        engine,
        settings,
        CorrectionNotice,
        bounce_on_refusal,
        NOT_WANTED,
        lambda row: f"{row.kind} notice",
    )


def record(
    engine: Engine, settings: Settings, token: str, row: ClaimedNotice, *answer: Any, **more: Any
) -> bool:
    """Commit the outcome of one notice: :meth:`RowRecorder.record`'s ``(outcome, code,
    message, uncertain, answered_at)``; False if its lease had been lost."""
    return recorder(engine, settings).record(token, row, *answer, **more)


# The ledger as the send loop sees it ---------------------------------------------------------


class Notices:
    """The ledger of notices (:class:`~distributor.outbox.ledger.Ledger`): one row per
    release, subscriber, kind and change."""

    table: Leased = CorrectionNotice
    what, one, about = "notices", "notice", "release"

    def subject(self, settings: Settings, subject_id: int) -> Release | None:
        """The release, whatever its state: its notices no longer wanted (superseded, of a
        kind its state no longer wants) are cancelled by the claim."""
        with session_scope(settings) as session:
            return session.get(Release, subject_id)

    def claim(self, engine: Engine, settings: Settings, subject_id: int, limit: int) -> NoticeClaim:
        return claim(engine, settings, subject_id, limit)

    def still_wanted(
        self, conn: Connection, batch: Batch[ClaimedNotice], row_ids: Sequence[int]
    ) -> set[int]:
        return still_wanted(conn, batch, row_ids)

    def recorder(self, engine: Engine, settings: Settings) -> RowRecorder:
        return recorder(engine, settings)

    def compose(
        self, settings: Settings, subject: Release, rows: Sequence[ClaimedNotice]
    ) -> ToSubscribers[ClaimedNotice]:
        # One rendering per kind and change the batch's rows are about.
        changes = {(r.kind, r.corrected_at) for r in rows}
        with read_scope(settings) as session:
            sender = identity(session, settings)
        rendered = {(k, at): KINDS[k].render(subject, settings, sender, at) for k, at in changes}
        return ToSubscribers(settings, lambda row: rendered[(row.kind, row.corrected_at)])


NOTICES = Notices()
CORRECTION_NOTICES = NOTICES  # the name before the withdrawal notice joined
