"""The admin API's embargo access (under ``/api``): the journalists' requests and the press
office's decisions (grant, refuse, revoke), as ``distributor subscribers accredit`` and
``accreditations`` do.

Every call needs a bearer token with the ``subscribers`` scope and the right to manage the
audience (``Can.AUDIENCE``); each decision is in the audit trail with the token's name.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from distributor import actions
from distributor.audience.accreditation import (
    MAX_REASON,
    AccreditationView,
    Decision,
    accreditations,
    view,
)
from distributor.core.db import session_scope
from distributor.core.models import AccreditationStatus, SubscriberStatus
from distributor.web import api as subscribers_api
from distributor.web.apibase import (
    PRINTABLE,
    conflict,
    error_responses,
    not_found,
)
from distributor.web.deps import AppSettings

SCOPE = subscribers_api.SCOPE
SubscriberId = subscribers_api.SubscriberId


class AccreditationOut(BaseModel):
    """A subscriber's embargo access."""

    subscriber_id: int
    email: str
    name: str
    subscriber_status: SubscriberStatus
    outlet: str = Field(description="The outlet they write for")
    role: str = Field(description="Their role there")
    status: AccreditationStatus
    receives_advance_copies: bool = Field(
        description="Granted and a confirmed subscriber: advance copies reach them"
    )
    requested_at: datetime | None
    decided_at: datetime | None
    decided_by: str
    reason: str = Field(description="Why it was refused or revoked: shown to the journalist")


class DecisionIn(BaseModel):
    """The press office's decision. A grant needs no request (``outlet`` and ``role`` then
    say who they are); a refusal needs a request waiting; a revocation, a grant."""

    model_config = ConfigDict(extra="forbid")
    decision: Decision
    reason: Annotated[str, Field(max_length=MAX_REASON, pattern=PRINTABLE)] = ""
    outlet: Annotated[str, Field(max_length=200, pattern=PRINTABLE)] = ""
    role: Annotated[str, Field(max_length=200, pattern=PRINTABLE)] = ""


def _out(found: AccreditationView) -> AccreditationOut:
    return AccreditationOut(
        subscriber_id=found.subscriber_id,
        email=found.email,
        name=found.name,
        subscriber_status=SubscriberStatus(found.subscriber_status),
        outlet=found.outlet,
        role=found.role,
        status=AccreditationStatus(found.status),
        receives_advance_copies=found.receives_advance_copies,
        requested_at=found.requested_at,
        decided_at=found.decided_at,
        decided_by=found.decided_by,
        reason=found.reason,
    )


# The subscribers' token and right, checked for the whole router as for theirs.
router = APIRouter(
    tags=["subscribers"],
    responses=error_responses(SCOPE),
    dependencies=[Depends(subscribers_api.token_caller), Depends(subscribers_api.manager)],
)
Manager = subscribers_api.Manager


@router.get("/accreditations", summary="Journalists' embargo access")
def list_accreditations(
    settings: AppSettings, status: AccreditationStatus | None = None
) -> list[AccreditationOut]:
    """Every request and decision (of ``status`` only, if given): requests waiting first,
    oldest first, then the decisions, latest first."""
    with session_scope(settings) as session:
        return [_out(a) for a in accreditations(session, status)]


@router.get(
    "/subscribers/{subscriber_id}/accreditation",
    summary="A subscriber's embargo access",
    responses=not_found("subscriber, or no accreditation"),
)
def get_accreditation(subscriber_id: SubscriberId, settings: AppSettings) -> AccreditationOut:
    """The subscriber's request or accreditation; 404 if they never asked and were never
    accredited."""
    with session_scope(settings) as session:
        return _out(view(session, subscriber_id))


@router.post(
    "/subscribers/{subscriber_id}/accreditation",
    summary="Grant, refuse or revoke embargo access",
    responses={
        **not_found("subscriber"),
        **conflict(
            "The decision does not fit: granting a subscriber who is not confirmed, refusing "
            "where nothing is requested, revoking what was not granted"
        ),
    },
)
def decide_accreditation(
    subscriber_id: SubscriberId, body: DecisionIn, who: Manager, settings: AppSettings
) -> AccreditationOut:
    """Apply the decision; granting an accredited subscriber again changes nothing (and
    records nothing). Accredited, confirmed subscribers receive embargoed advance copies
    of the releases on their topics."""
    return _out(
        actions.decide_accreditation(
            settings,
            subscriber_id,
            body.decision,
            who.actor,
            reason=body.reason,
            outlet=body.outlet,
            role=body.role,
        )
    )
