"""Embargo access: a confirmed subscriber asks for it on their preferences page, naming the
outlet they write for and their role there; the press office grants or refuses the request,
or revokes a grant (the CLI, the API, the workspace; ``actions.audience`` puts each decision
in the audit trail). Only an accredited subscriber who is confirmed receives embargoed
advance copies; a refused or revoked journalist may ask again.

States (``AccreditationStatus``)::

    (none) ──ask──▶ requested ──grant──▶ granted ──revoke──▶ revoked ──ask──▶ requested
                        └──refuse──▶ refused ──ask──▶ requested
    (none), refused, revoked ──grant──▶ granted   (the office may accredit without a request)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from distributor.audience.subscribers import check_line
from distributor.core.errors import Conflict, NotFound, SubscriberInputError
from distributor.core.models import (
    Accreditation,
    AccreditationStatus,
    Subscriber,
    SubscriberStatus,
    utcnow,
)

MAX_REASON = 500


class Decision(enum.StrEnum):
    """What the press office decides about a subscriber's embargo access."""

    GRANT = "grant"
    REFUSE = "refuse"
    REVOKE = "revoke"


@dataclass(frozen=True)
class AccreditationView:
    """A subscriber's embargo access as the press office sees it."""

    subscriber_id: int
    email: str
    name: str
    subscriber_status: str
    outlet: str
    role: str
    status: str
    requested_at: datetime | None
    decided_at: datetime | None
    decided_by: str
    reason: str

    @property
    def receives_advance_copies(self) -> bool:
        """Granted, and a confirmed subscriber: advance copies reach them."""
        return receives_advance_copies(self.subscriber_status, self.status)


def receives_advance_copies(subscriber_status: str, accreditation_status: str | None) -> bool:
    """Whether advance copies reach a subscriber in ``subscriber_status`` whose accreditation
    is in ``accreditation_status`` (None: never asked): granted, and confirmed."""
    return (
        accreditation_status == AccreditationStatus.GRANTED
        and subscriber_status == SubscriberStatus.CONFIRMED
    )


def _subscriber(session: Session, subscriber_id: int) -> Subscriber:
    sub = session.get(Subscriber, subscriber_id)
    if sub is None:
        raise NotFound(f"no subscriber with id {subscriber_id}")
    return sub


def accreditation_of(session: Session, subscriber_id: int) -> Accreditation | None:
    """Subscriber ``subscriber_id``'s accreditation row, or None if they never asked and
    were never granted one."""
    return session.scalar(select(Accreditation).where(Accreditation.subscriber_id == subscriber_id))


def _must_be_confirmed(sub: Subscriber, who: str) -> None:
    if sub.status != SubscriberStatus.CONFIRMED:
        raise Conflict(
            f"{who} not a confirmed subscriber ({sub.status}): only confirmed subscribers "
            "receive embargoed advance copies"
        )


def ask(session: Session, subscriber_id: int, outlet: str, role: str) -> Accreditation:
    """Subscriber ``subscriber_id`` asks for embargo access as ``role`` at ``outlet`` (both
    required, one line of at most 200 characters each). A first request, a request after a
    refusal or a revocation, or new details for a request still waiting: the row is
    ``requested`` now, and the office decides.

    Raises SubscriberInputError (field ``outlet`` or ``role``) for a missing or unfit
    value, NotFound for no such subscriber, Conflict when they are not confirmed or are
    already accredited. Nothing is changed when it raises."""
    outlet, role = check_line("outlet", outlet), check_line("role", role)
    for field, value in (("outlet", outlet), ("role", role)):
        if not value:
            raise SubscriberInputError(f"{field}: required", field=field)
    sub = _subscriber(session, subscriber_id)
    _must_be_confirmed(sub, "you are")
    row = accreditation_of(session, subscriber_id)
    if row is not None and row.status == AccreditationStatus.GRANTED:
        raise Conflict("you are already accredited: advance copies reach you")
    if row is None:
        row = Accreditation(subscriber_id=subscriber_id, lift_notice=False)
        session.add(row)
    row.outlet, row.role, row.status = outlet, role, AccreditationStatus.REQUESTED
    row.requested_at, row.decided_at, row.decided_by, row.reason = utcnow(), None, "", ""
    session.flush()
    return row


def decide(
    session: Session,
    subscriber_id: int,
    decision: Decision,
    by: str,
    *,
    reason: str = "",
    outlet: str = "",
    role: str = "",
) -> tuple[Accreditation, bool]:
    """Apply the press office's ``decision`` (made by ``by``) to subscriber
    ``subscriber_id``'s embargo access; ``reason`` is shown to the journalist on a refusal
    or revocation; ``outlet`` and ``role``, when given, replace what the request said (a
    grant without a request may name them). Returns the row and whether anything changed
    (granting a granted subscriber again changes nothing).

    Raises SubscriberInputError for an unfit reason, outlet or role, NotFound for no such
    subscriber, Conflict for a decision that does not fit: granting a subscriber who is not
    confirmed, refusing where nothing was requested, revoking what was not granted."""
    reason = check_line("reason", reason, MAX_REASON)
    outlet, role = check_line("outlet", outlet), check_line("role", role)
    sub = _subscriber(session, subscriber_id)
    row = accreditation_of(session, subscriber_id)
    status = row.status if row is not None else None
    if decision == Decision.GRANT:
        _must_be_confirmed(sub, f"{sub.email} is")
        if status == AccreditationStatus.GRANTED and not (outlet or role):
            assert row is not None
            return row, False
    elif decision == Decision.REFUSE and status != AccreditationStatus.REQUESTED:
        raise Conflict(f"{sub.email} has no request waiting ({status or 'never asked'})")
    elif decision == Decision.REVOKE and status != AccreditationStatus.GRANTED:
        raise Conflict(f"{sub.email} is not accredited ({status or 'never asked'})")
    if row is None:
        row = Accreditation(subscriber_id=subscriber_id, outlet="", role="", lift_notice=False)
        session.add(row)
    row.status = {
        Decision.GRANT: AccreditationStatus.GRANTED,
        Decision.REFUSE: AccreditationStatus.REFUSED,
        Decision.REVOKE: AccreditationStatus.REVOKED,
    }[decision]
    row.outlet, row.role = outlet or row.outlet, role or row.role
    row.decided_at, row.decided_by, row.reason = utcnow(), by[:200], reason
    session.flush()
    return row, True


def set_lift_notice(session: Session, subscriber_id: int, wanted: bool) -> bool:
    """Whether accredited subscriber ``subscriber_id`` wants a one-line "embargo lifted"
    email after each advance copy; returns whether it changed. Raises NotFound for no such
    subscriber, Conflict when they are not accredited."""
    _subscriber(session, subscriber_id)
    row = accreditation_of(session, subscriber_id)
    if row is None or row.status != AccreditationStatus.GRANTED:
        raise Conflict("only accredited subscribers receive advance copies")
    changed = row.lift_notice != wanted
    row.lift_notice = wanted
    session.flush()
    return changed


def view(session: Session, subscriber_id: int) -> AccreditationView:
    """Subscriber ``subscriber_id``'s accreditation as the office sees it; NotFound when
    the subscriber does not exist or has no accreditation row."""
    found = accreditations(session, subscriber_id=subscriber_id)
    if not found:
        _subscriber(session, subscriber_id)
        raise NotFound(f"subscriber {subscriber_id} never asked for embargo access")
    return found[0]


def accreditations(
    session: Session,
    status: AccreditationStatus | None = None,
    *,
    subscriber_id: int | None = None,
) -> list[AccreditationView]:
    """Every accreditation (of ``status`` only, if given): requests waiting first, oldest
    first (the order to decide them in), then the others, latest decision first."""
    waiting = Accreditation.status == AccreditationStatus.REQUESTED
    query = (
        select(Accreditation, Subscriber.email, Subscriber.name, Subscriber.status)
        .join(Subscriber, Subscriber.id == Accreditation.subscriber_id)
        .order_by(
            case((waiting, 0), else_=1),
            case((waiting, Accreditation.requested_at), else_=None),
            Accreditation.decided_at.desc(),
            Accreditation.id,
        )
    )
    if status is not None:
        query = query.where(Accreditation.status == status)
    if subscriber_id is not None:
        query = query.where(Accreditation.subscriber_id == subscriber_id)
    return [
        AccreditationView(
            subscriber_id=row.subscriber_id,
            email=email,
            name=name,
            subscriber_status=sub_status,
            outlet=row.outlet,
            role=row.role,
            status=row.status,
            requested_at=row.requested_at,
            decided_at=row.decided_at,
            decided_by=row.decided_by,
            reason=row.reason,
        )
        for row, email, name, sub_status in session.execute(query)
    ]
