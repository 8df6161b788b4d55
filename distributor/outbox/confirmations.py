"""The ledger of confirmation emails: the double opt-in email of a subscription request,
sent through the outbox like every other email — a row per email a worker decided to send
(``audience.subscription.take_confirmation`` adds it), claimed with a lease, sent by the one
send loop with its limits, retries with backoff, reconciliation and patience, and its
outcome recorded.

An email that does not go out at the first attempt (deferred, or refused) gives the
mailbox's once-a-day right back at once, so the person may ask again without waiting a day;
a deferred one is still tried again after its backoff, taking the day again first: if the
mailbox was sent another confirmation meanwhile, it is cancelled instead (``NOT_AGAIN``), so
retries never make two a day. When it is sent, the request records when its link went out.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from distributor.audience.subscription import give_back_confirmation, retake_confirmation
from distributor.core.config import Settings
from distributor.core.db import read_scope, session_scope
from distributor.core.models import (
    ConfirmationEmail,
    DeliveryStatus,
    SubscriptionRequest,
    Topic,
    utcnow,
)
from distributor.core.urls import confirm_url
from distributor.mail.confirmation import confirmation_message
from distributor.office.identity import identity
from distributor.outbox.ledger import (
    OPEN_STATUSES,
    Batch,
    Leased,
    RowRecorder,
    lease,
    still_leased,
)

# The note of a confirmation email cancelled at its retry (see claim).
NOT_AGAIN = "not sent: its mailbox was sent another confirmation since, or is subscribed"


@dataclass(frozen=True)
class ClaimedConfirmation:
    """A confirmation email leased to this worker."""

    row_id: int
    request_id: int
    email: str
    attempts: int
    created_at: datetime
    in_doubt: bool = False  # an earlier lease ran out with no outcome: maybe already sent


@dataclass(frozen=True)
class ConfirmationClaim:
    """A batch of confirmation emails leased under one token."""

    token: str
    rows: list[ClaimedConfirmation]


@dataclass(frozen=True)
class Request:
    """What a confirmation email is about: the request, and the topics it names."""

    request: SubscriptionRequest
    topics: list[Topic]


def due(session: Session) -> dict[int, int]:
    """For each subscription request with confirmation emails ready to be claimed now (not
    confirmed yet), how many there are."""
    now = utcnow()
    rows = session.execute(
        select(ConfirmationEmail.request_id, func.count())
        .join(SubscriptionRequest, SubscriptionRequest.id == ConfirmationEmail.request_id)
        .where(*_due_filter(now))
        .group_by(ConfirmationEmail.request_id)
    )
    return {int(rid): int(n) for rid, n in rows}


def _due_filter(now: datetime) -> tuple[Any, ...]:
    return (
        ConfirmationEmail.status.in_(OPEN_STATUSES),
        ConfirmationEmail.next_attempt_at <= now,
        (ConfirmationEmail.lease_until.is_(None)) | (ConfirmationEmail.lease_until < now),
        SubscriptionRequest.confirmed_at.is_(None),
    )


def claim(engine: Engine, settings: Settings, request_id: int, limit: int) -> ConfirmationClaim:
    """Lease up to ``limit`` due confirmation emails of the request to a new token, in one
    committed transaction (concurrent claimers skip each other's rows on PostgreSQL; on
    SQLite the transaction is immediate, which serialises them). A row whose earlier lease
    ran out with no outcome is in doubt (:mod:`distributor.mail.reconcile`). Rows whose
    request gave its mailbox's day back and cannot take it again are cancelled, not
    leased."""
    now = utcnow()
    token = uuid.uuid4().hex
    candidates = (
        select(ConfirmationEmail.id, ConfirmationEmail.lease_until.is_not(None))
        .join(SubscriptionRequest, SubscriptionRequest.id == ConfirmationEmail.request_id)
        .where(ConfirmationEmail.request_id == request_id, *_due_filter(now))
        .limit(limit)
        .with_for_update(of=ConfirmationEmail, skip_locked=True)  # nothing on SQLite
    )
    with Session(engine) as session, session.begin():  # BEGIN IMMEDIATE on SQLite (db.py)
        picked = {int(i): bool(doubt) for i, doubt in session.execute(candidates)}
        leased: Sequence[Any] = ()
        address = ""
        if picked and not _day_held(session, request_id):
            # An earlier attempt gave the mailbox's day back and another confirmation has
            # gone to it since (or the address is subscribed now): this one stays unsent,
            # or retries would make more than one a day.
            session.execute(
                update(ConfirmationEmail)
                .where(ConfirmationEmail.id.in_(list(picked)))
                .values(
                    status=DeliveryStatus.CANCELLED,
                    last_error=NOT_AGAIN,
                    lease_until=None,
                    lease_token=None,
                )
            )
            picked = {}
        if picked:
            row = ConfirmationEmail  # its id, attempts and created_at
            returning = (row.id, row.attempts, row.created_at)
            leased = lease(session, settings, row, list(picked), token, *returning)
            address = session.get_one(SubscriptionRequest, request_id).email
    rows = [
        ClaimedConfirmation(r.id, request_id, address, r.attempts, r.created_at, picked[r.id])
        for r in sorted(leased, key=lambda r: r.id)
    ]
    return ConfirmationClaim(token, rows)


def _day_held(session: Session, request_id: int) -> bool:
    """Whether the request holds its mailbox's day, taking it again if an attempt that did
    not go out gave it back (``confirmation_sent_at`` cleared); False if it cannot."""
    request = session.get_one(SubscriptionRequest, request_id)
    if request.confirmation_sent_at is not None:
        return True
    return retake_confirmation(session, request_id)


def _after_outcome(conn: Connection, row: Any, status: str, code: int, now: datetime) -> None:
    # Sent: the request's link went out now. Not sent at this attempt: the mailbox's
    # once-a-day right goes back (the request's decision time names it), so the person may
    # ask again at once; a deferred email is still tried again.
    with Session(bind=conn) as session:
        request = session.get(SubscriptionRequest, row.request_id)
        if request is None:
            return
        if status == DeliveryStatus.SENT:
            request.confirmation_sent_at = now
        elif request.confirmation_sent_at is not None:
            give_back_confirmation(session, request.id, request.confirmation_sent_at)
        session.flush()


class Confirmations:
    """The ledger of confirmation emails (:class:`~distributor.outbox.ledger.Ledger`): one
    row per confirmation email decided for a subscription request."""

    table: Leased = ConfirmationEmail
    what, one, about = "confirmation emails", "confirmation email", "subscription request"

    def subject(self, settings: Settings, subject_id: int) -> Request | None:
        """The request and its topics, unless it is gone or confirmed already."""
        with session_scope(settings) as session:
            request = session.get(SubscriptionRequest, subject_id)
            if request is None or request.confirmed_at is not None:
                return None
            topics = select(Topic).where(Topic.slug.in_(request.topics))
            return Request(request, list(session.scalars(topics)))

    def claim(
        self, engine: Engine, settings: Settings, subject_id: int, limit: int
    ) -> ConfirmationClaim:
        return claim(engine, settings, subject_id, limit)

    def still_wanted(
        self, conn: Connection, batch: Batch[ClaimedConfirmation], row_ids: Sequence[int]
    ) -> set[int]:
        return still_leased(conn, batch.token, row_ids, ConfirmationEmail)

    def recorder(self, engine: Engine, settings: Settings) -> RowRecorder:
        return RowRecorder(
            engine, settings, ConfirmationEmail, _after_outcome, one=lambda row: self.one
        )

    def compose(
        self, settings: Settings, subject: Request, rows: Sequence[ClaimedConfirmation]
    ) -> ConfirmationMessages:
        return ConfirmationMessages(settings, subject)


class ConfirmationMessages:
    """The confirmation email of each row (:class:`~distributor.outbox.ledger.Messages`),
    from the plain sender address, with a Message-ID that names the row."""

    def __init__(self, settings: Settings, subject: Request) -> None:
        self._settings, self._subject = settings, subject
        with read_scope(settings) as session:
            self._identity = identity(session, settings)  # once a batch
        request = subject.request
        self._link = confirm_url(settings, request.id, request.nonce)

    def message_id(self, row: ClaimedConfirmation) -> str:
        return f"<confirm-{row.row_id}@{self._settings.sender_domain}>"

    def message(self, row: ClaimedConfirmation) -> tuple[str, bytes]:
        request, topics = self._subject.request, self._subject.topics
        message = confirmation_message(
            self._settings, self._identity, request, topics, self._link, self.message_id(row)
        )
        return self._settings.sender_address, message


CONFIRMATIONS = Confirmations()
