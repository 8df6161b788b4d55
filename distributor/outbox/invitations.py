"""The ledger of invitation emails: one row per invitation to the workspace
(``office.invitations.invite`` adds it), claimed with a lease, sent by the one send loop
with its limits, retries with backoff, reconciliation and patience, and its outcome
recorded. A row whose invitation was replaced, cancelled, accepted or has expired is not
sent (cancelled at its claim)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from distributor.core.config import Settings
from distributor.core.db import read_scope, session_scope
from distributor.core.models import DeliveryStatus, Invitation, InvitationEmail, utcnow
from distributor.core.urls import invitation_url
from distributor.mail.invitation import invitation_message
from distributor.office.identity import identity
from distributor.office.invitations import VALID_FOR
from distributor.outbox.ledger import OPEN_STATUSES, Batch, Leased, RowRecorder, lease, still_leased

NO_LONGER = "not sent: the invitation was replaced, cancelled, accepted or has expired"


@dataclass(frozen=True)
class ClaimedInvitation:
    """An invitation email leased to this worker."""

    row_id: int
    invitation_id: int
    email: str
    attempts: int
    created_at: datetime
    in_doubt: bool = False  # an earlier lease ran out with no outcome: maybe already sent


@dataclass(frozen=True)
class InvitationClaim:
    """The invitation emails leased under one token."""

    token: str
    rows: list[ClaimedInvitation]


def _live(now: datetime) -> tuple[Any, ...]:
    return (
        Invitation.accepted_at.is_(None),
        Invitation.cancelled_at.is_(None),
        Invitation.expires_at > now,
    )


def _is_live(invitation: Invitation, now: datetime) -> bool:
    """:func:`_live` for an invitation already read."""
    return (
        invitation.accepted_at is None
        and invitation.cancelled_at is None
        and invitation.expires_at > now
    )


def _due(now: datetime) -> tuple[Any, ...]:
    return (
        InvitationEmail.status.in_(OPEN_STATUSES),
        InvitationEmail.next_attempt_at <= now,
        (InvitationEmail.lease_until.is_(None)) | (InvitationEmail.lease_until < now),
    )


def due(session: Session) -> dict[int, int]:
    """For each live invitation with emails ready to be claimed now, how many."""
    now = utcnow()
    rows = session.execute(
        select(InvitationEmail.invitation_id, func.count())
        .join(Invitation, Invitation.id == InvitationEmail.invitation_id)
        .where(*_due(now), *_live(now))
        .group_by(InvitationEmail.invitation_id)
    )
    return {int(i): int(n) for i, n in rows}


def claim(engine: Engine, settings: Settings, invitation_id: int, limit: int) -> InvitationClaim:
    """Lease the due emails of the invitation to a new token, in one committed transaction
    (see ``confirmations.claim``); those of an invitation no longer live are cancelled."""
    now = utcnow()
    token = uuid.uuid4().hex
    candidates = (
        select(InvitationEmail.id, InvitationEmail.lease_until.is_not(None))
        .where(InvitationEmail.invitation_id == invitation_id, *_due(now))
        .limit(limit)
        .with_for_update(skip_locked=True)  # nothing on SQLite
    )
    with Session(engine) as session, session.begin():  # BEGIN IMMEDIATE on SQLite (db.py)
        picked = {int(i): bool(doubt) for i, doubt in session.execute(candidates)}
        invitation = session.get(Invitation, invitation_id)
        live = invitation is not None and _is_live(invitation, now)
        leased: Sequence[Any] = ()
        if picked and not live:
            session.execute(
                update(InvitationEmail)
                .where(InvitationEmail.id.in_(list(picked)))
                .values(status=DeliveryStatus.CANCELLED, last_error=NO_LONGER)
            )
        elif picked and invitation is not None:
            row = InvitationEmail
            leased = lease(
                session, settings, row, list(picked), token, row.id, row.attempts, row.created_at
            )
        address = invitation.email if invitation is not None else ""
    rows = [
        ClaimedInvitation(r.id, invitation_id, address, r.attempts, r.created_at, picked[r.id])
        for r in sorted(leased, key=lambda r: r.id)
    ]
    return InvitationClaim(token, rows)


class Invitations:
    """The ledger of invitation emails (:class:`~distributor.outbox.ledger.Ledger`)."""

    table: Leased = InvitationEmail
    what, one, about = "invitation emails", "invitation email", "invitation"

    def subject(self, settings: Settings, subject_id: int) -> Invitation | None:
        """The invitation, unless it is gone, replaced, cancelled or accepted."""
        with session_scope(settings) as session:
            invitation = session.get(Invitation, subject_id)
            if invitation is None or invitation.accepted_at or invitation.cancelled_at:
                return None
            return invitation  # one expired since: its rows are cancelled at their claim

    def claim(
        self, engine: Engine, settings: Settings, subject_id: int, limit: int
    ) -> InvitationClaim:
        return claim(engine, settings, subject_id, limit)

    def still_wanted(
        self, conn: Connection, batch: Batch[ClaimedInvitation], row_ids: Sequence[int]
    ) -> set[int]:
        return still_leased(conn, batch.token, row_ids, InvitationEmail)

    def recorder(self, engine: Engine, settings: Settings) -> RowRecorder:
        return RowRecorder(engine, settings, InvitationEmail, one=lambda row: self.one)

    def compose(
        self, settings: Settings, subject: Invitation, rows: Sequence[ClaimedInvitation]
    ) -> InvitationMessages:
        return InvitationMessages(settings, subject)


class InvitationMessages:
    """The invitation email of each row (:class:`~distributor.outbox.ledger.Messages`),
    with a Message-ID that names the row."""

    def __init__(self, settings: Settings, invitation: Invitation) -> None:
        self._settings, self._invitation = settings, invitation
        with read_scope(settings) as session:
            self._identity = identity(session, settings)  # once a batch
        self._link = invitation_url(settings, invitation.id, invitation.nonce)

    def message_id(self, row: ClaimedInvitation) -> str:
        return f"<invite-{row.row_id}@{self._settings.sender_domain}>"

    def message(self, row: ClaimedInvitation) -> tuple[str, bytes]:
        days = VALID_FOR.days
        body = invitation_message(
            self._settings,
            self._identity,
            self._invitation,
            self._link,
            days,
            self.message_id(row),
        )
        return self._settings.sender_address, body


INVITATIONS = Invitations()
