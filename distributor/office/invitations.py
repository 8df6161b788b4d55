"""Invitations to the press office's workspace: an admin names an address and a role; the
person gets an email with a link (signed, naming the invitation and its nonce, valid for
``VALID_FOR``) to a page where they choose their password, which makes their account with
that role. The admin never knows the password.

One pending invitation per address: inviting it again replaces the earlier one (its link
stops working). An address that has an account is not invited. The email itself goes
through the outbox (outbox/invitations.py): a row of ``invitation_emails`` is added with
the invitation, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from distributor.core.config import Settings
from distributor.core.errors import Conflict, InputError, NotFound
from distributor.core.models import Invitation, InvitationEmail, User, utcnow
from distributor.core.roles import parse_role
from distributor.core.tokens import InvalidToken, Purpose, read_link
from distributor.office.accounts import create_user, normalised

VALID_FOR = timedelta(days=7)


def invite(
    session: Session, email: str, role: str, by: str, name: str = "", now: datetime | None = None
) -> Invitation:
    """A new invitation of ``email`` with ``role`` (its email planned in the outbox),
    replacing any pending one. InputError for a bad address or role; Conflict when the
    address has an account already."""
    now = now or utcnow()
    address = normalised(email)
    try:
        chosen = parse_role(role)
    except ValueError as exc:
        raise InputError(str(exc), field="role") from exc
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise Conflict(f"{address} already has an account")
    session.execute(
        update(Invitation)
        .where(Invitation.email == address, *_pending(now))
        .values(cancelled_at=now)
    )
    invitation = Invitation(
        email=address,
        name=name.strip()[:200],
        role=chosen.value,
        invited_by=by[:200],
        created_at=now,
        expires_at=now + VALID_FOR,
    )
    session.add(invitation)
    session.flush()
    session.add(InvitationEmail(invitation_id=invitation.id, created_at=now, next_attempt_at=now))
    return invitation


def pending_invitations(session: Session, now: datetime | None = None) -> Sequence[Invitation]:
    """The invitations not accepted, cancelled or expired, newest first."""
    query = select(Invitation).where(*_pending(now or utcnow())).order_by(Invitation.id.desc())
    return list(session.scalars(query))


def cancel_invitation(session: Session, invitation_id: int) -> Invitation:
    """Cancel a pending invitation: its link stops working. NotFound for no such one;
    Conflict once it was accepted."""
    invitation = session.get(Invitation, invitation_id)
    if invitation is None:
        raise NotFound(f"no invitation {invitation_id}")
    if invitation.accepted_at is not None:
        raise Conflict(f"the invitation of {invitation.email} was accepted already")
    if invitation.cancelled_at is None:
        invitation.cancelled_at = utcnow()
    return invitation


def open_invitation(
    session: Session, settings: Settings, token: str, now: datetime | None = None
) -> Invitation:
    """The pending invitation ``token`` names. InvalidToken for a link that is not ours,
    or names an invitation replaced, cancelled, accepted or past its week."""
    link = read_link(settings, Purpose.INVITE, token, max_age=int(VALID_FOR.total_seconds()))
    invitation = session.get(Invitation, link.id)
    now = now or utcnow()
    if invitation is None or not link.fits(invitation.nonce):
        raise InvalidToken("this invitation link is not valid")
    if invitation.accepted_at is not None:
        raise InvalidToken("this invitation was accepted already: log in instead")
    if invitation.cancelled_at is not None or invitation.expires_at <= now:
        raise InvalidToken("this invitation is no longer valid: ask for a new one")
    return invitation


def accept_invitation(
    session: Session, settings: Settings, token: str, password: str, now: datetime | None = None
) -> User:
    """Make the account ``token``'s invitation names, with ``password`` (the rules of
    ``accounts.check_password_rules``), and mark the invitation accepted."""
    now = now or utcnow()
    invitation = open_invitation(session, settings, token, now)
    user = create_user(session, invitation.email, invitation.role, password, invitation.name)
    invitation.accepted_at = now
    return user


def _pending(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        Invitation.accepted_at.is_(None),
        Invitation.cancelled_at.is_(None),
        Invitation.expires_at > now,
    )
