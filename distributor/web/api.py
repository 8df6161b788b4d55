"""The admin API's subscriber operations (under ``/api``).

Every call needs ``Authorization: Bearer <token>`` with the ``subscribers`` scope (tokens
come from ``distributor tokens create NAME``); errors are JSON (see ``apibase``).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

import io
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select

from distributor import actions
from distributor.audience.addresses import normalise_email
from distributor.audience.subscribers import (
    add_subscriber,
    check_language,
    check_name,
    export_csv,
    resolve_topics,
    unsubscribe,
)
from distributor.audience.subscription import Consent, request_subscription
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import Conflict, NotFound, SubscriberInputError
from distributor.core.models import DigestMode, Subscriber, SubscriberStatus, Topic
from distributor.core.roles import Caller, Can
from distributor.web.apibase import (
    MAX_ID,
    PRINTABLE,
    ErrorOut,
    Refused,
    error_responses,
    not_found,
)
from distributor.web.apibase import token_dependency as _token_dependency
from distributor.web.deps import AppQueue, AppSettings
from distributor.web.errors import status_of
from distributor.web.rights import requiring

SCOPE = "subscribers"
_PRINTABLE = PRINTABLE


class SubscriberOut(BaseModel):
    """A subscriber as the press office sees it, with the consent record."""

    id: int
    email: str
    name: str
    language: str
    status: SubscriberStatus
    topics: list[str] = Field(description="Topic slugs, sorted")
    digest: DigestMode = Field(
        description="How they receive releases: each at once, or a daily or weekly digest"
    )
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    bounced_at: datetime | None
    consent_source: str = Field(description="Where consent was given (or the request came from)")
    consent_at: datetime | None
    consent_ip: str
    consent_user_agent: str
    consent_form_version: str


class SubscriberPage(BaseModel):
    """One page of a subscriber search: the number of matches, and this page of them."""

    total: int
    items: list[SubscriberOut]


class SubscriberIn(BaseModel):
    """A subscriber to add. Pending (``confirmed`` false) sends them a confirmation email;
    confirmed needs ``consent_source``, where they gave their consent."""

    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, Field(max_length=320, pattern=_PRINTABLE)]
    name: Annotated[str, Field(max_length=200, pattern=_PRINTABLE)] = ""
    language: Annotated[str, Field(max_length=8, pattern=_PRINTABLE)]
    topics: Annotated[
        list[Annotated[str, Field(max_length=64, pattern=_PRINTABLE)]],
        Field(min_length=1, max_length=100),
    ]
    confirmed: bool = False
    digest: DigestMode | None = Field(
        default=None,
        description="How they receive releases (a confirmed add only; a pending subscriber "
        "chooses on their preferences page): immediate (the default for someone new), daily "
        "or weekly",
    )
    consent_source: Annotated[
        str | None,
        Field(
            max_length=200,
            pattern=_PRINTABLE,
            description="Required when confirmed is true; a pending subscriber's source is "
            "recorded as api:<token name>",
        ),
    ] = None


class SubscriptionRequestOut(BaseModel):
    """A request to subscribe, recorded and waiting for its owner's confirmation: nothing
    of it applies to any subscriber until the link in the confirmation email is used."""

    request_id: int
    email: str
    name: str
    language: str
    topics: list[str] = Field(description="Topic slugs, sorted")
    created_at: datetime
    consent_source: str
    consent_ip: str
    consent_user_agent: str
    consent_form_version: str


def _out(sub: Subscriber) -> SubscriberOut:
    return SubscriberOut(
        id=sub.id,
        email=sub.email,
        name=sub.name,
        language=sub.language,
        status=SubscriberStatus(sub.status),
        topics=sorted(t.slug for t in sub.topics),
        digest=DigestMode(sub.digest),
        created_at=sub.created_at,
        confirmed_at=sub.confirmed_at,
        unsubscribed_at=sub.unsubscribed_at,
        bounced_at=sub.bounced_at,
        consent_source=sub.consent_source,
        consent_at=sub.consent_at,
        consent_ip=sub.consent_ip,
        consent_user_agent=sub.consent_user_agent,
        consent_form_version=sub.consent_form_version,
    )


SubscriberId = Annotated[int, Path(ge=1, le=MAX_ID)]
_NOT_FOUND = not_found("subscriber")


token_caller = _token_dependency(SCOPE)
# Every route manages subscribers: the right is checked for the whole router.
manager = requiring(token_caller, Can.AUDIENCE)
Manager = Annotated[Caller, Depends(manager)]
router = APIRouter(
    tags=["subscribers"],
    responses=error_responses(SCOPE),
    dependencies=[Depends(token_caller), Depends(manager)],
)


@router.get("/subscribers", summary="Search subscribers")
def list_subscribers(
    settings: AppSettings,
    q: Annotated[
        str, Query(max_length=320, pattern=_PRINTABLE, description="Part of address or name")
    ] = "",
    status: SubscriberStatus | None = None,
    language: Annotated[str | None, Query(max_length=8, pattern=_PRINTABLE)] = None,
    topic: Annotated[
        str | None, Query(max_length=64, pattern=_PRINTABLE, description="A topic slug")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
) -> SubscriberPage:
    """Subscribers matching every filter given (``q``: case-insensitive part of the
    address or name), ordered by address: the total and the page asked for."""
    stmt = select(Subscriber)
    if q:
        stmt = stmt.where(
            or_(
                Subscriber.email.icontains(q, autoescape=True),
                Subscriber.name.icontains(q, autoescape=True),
            )
        )
    if status is not None:
        stmt = stmt.where(Subscriber.status == status)
    if language:
        stmt = stmt.where(Subscriber.language == language.lower())
    if topic:
        stmt = stmt.where(Subscriber.topics.any(Topic.slug == topic))
    with session_scope(settings) as session:
        total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
        page = session.scalars(
            stmt.order_by(Subscriber.email, Subscriber.id).limit(limit).offset(offset)
        )
        return SubscriberPage(total=total, items=[_out(s) for s in page])


# Before /subscribers/{subscriber_id}, as a reminder that this name is taken.
@router.get(
    "/subscribers.csv",
    summary="Export subscribers as CSV",
    response_class=Response,
    responses={
        200: {
            "description": "Every subscriber, ordered by address",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
def export_subscribers(settings: AppSettings) -> Response:
    """Every subscriber as CSV (the columns of `distributor subscribers export`;
    re-importable)."""
    buffer = io.StringIO()
    with session_scope(settings) as session:
        export_csv(session, buffer)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="subscribers.csv"'},
    )


@router.get("/subscribers/{subscriber_id}", summary="One subscriber", responses=_NOT_FOUND)
def get_subscriber(subscriber_id: SubscriberId, settings: AppSettings) -> SubscriberOut:
    """The subscriber with its topics, status and consent record."""
    with session_scope(settings) as session:
        sub = session.get(Subscriber, subscriber_id)
        if sub is None:
            raise NotFound(f"no subscriber with id {subscriber_id}")
        return _out(sub)


@router.post(
    "/subscribers",
    status_code=201,
    response_model=SubscriberOut,
    summary="Add a subscriber, or ask someone to subscribe",
    responses={
        202: {
            "model": SubscriptionRequestOut,
            "description": "Pending: a request recorded; its owner is asked to confirm",
        },
        409: {
            "model": ErrorOut,
            "description": "The address left, bounced or was erased: "
            "only its owner can subscribe it again",
        },
    },
)
def add(
    body: SubscriberIn, request: Request, who: Manager, settings: AppSettings, queue: AppQueue
) -> Response | SubscriberOut:
    """Confirmed (with ``consent_source``): the subscriber is added or updated as
    confirmed (201, the subscriber as stored). Pending (the default): a subscription
    request is recorded from this API, as from the web form, and its owner is sent one
    confirmation email (at most one a day per mailbox, however often it is posted; none
    to a confirmed or bounced subscriber); nothing changes until they confirm, and then
    exactly this request's choices apply (202, the request)."""
    if body.confirmed:
        return _add_confirmed(settings, body)
    if body.digest is not None:
        raise SubscriberInputError(
            "digest: only for a confirmed add; a pending subscriber chooses on their "
            "preferences page",
            field="digest",
        )
    consent = Consent(
        ip=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", ""),
        form_version="api",
        source=f"api:{who.token}",
    )
    asked = request_subscription(
        settings,
        queue.get(),
        email=body.email,
        name=body.name,
        language=body.language,
        topics=body.topics,
        consent=consent,
    )
    out = SubscriptionRequestOut(
        request_id=asked.id,
        email=asked.email,
        name=asked.name,
        language=asked.language,
        topics=asked.topics,
        created_at=asked.created_at,
        consent_source=asked.consent_source,
        consent_ip=asked.consent_ip,
        consent_user_agent=asked.consent_user_agent,
        consent_form_version=asked.consent_form_version,
    )
    return JSONResponse(out.model_dump(mode="json"), status_code=202)


@router.post(
    "/subscribers/{subscriber_id}/unsubscribe",
    summary="Unsubscribe from everything",
    responses=_NOT_FOUND,
)
def unsubscribe_subscriber(subscriber_id: SubscriberId, settings: AppSettings) -> SubscriberOut:
    """Unsubscribe from every topic and cancel deliveries not yet sent (idempotent)."""
    with session_scope(settings) as session:
        return _out(unsubscribe(session, subscriber_id))


@router.delete(
    "/subscribers/{subscriber_id}",
    status_code=204,
    summary="Erase a subscriber (GDPR)",
    response_class=Response,
    responses=_NOT_FOUND,
)
def erase_subscriber(subscriber_id: SubscriberId, who: Manager, settings: AppSettings) -> Response:
    """Delete everything held on the subscriber; only a hash of the address stays, on
    the suppression list, so no import adds it again."""
    actions.erase_subscriber(settings, subscriber_id, who.actor)
    return Response(status_code=204)


def _add_confirmed(settings: Settings, body: SubscriberIn) -> SubscriberOut:
    source = (body.consent_source or "").strip()
    if not source:
        raise SubscriberInputError(
            "consent_source: required when confirmed is true", field="consent_source"
        )
    with session_scope(settings) as session:
        # Checked here first so each refusal names its field (an import reports rows).
        address = normalise_email(body.email)
        name = check_name(body.name)
        language = check_language(settings, body.language)
        topics = [t.slug for t in resolve_topics(session, body.topics)]
        existing = session.scalar(select(Subscriber).where(Subscriber.email == address))
        if existing is not None and existing.status in (
            SubscriberStatus.UNSUBSCRIBED,
            SubscriberStatus.BOUNCED,
        ):
            raise Refused(
                409,
                f"email: {address} is {existing.status}; only its owner can subscribe it "
                "again (add it with confirmed false to send them a confirmation)",
                "email",
            )
        try:
            sub = add_subscriber(
                session,
                settings,
                email=address,
                name=name,
                language=language,
                topics=topics,
                confirmed=True,
                consent_source=source,
                digest=body.digest.value if body.digest is not None else "",
            )
        except Conflict as exc:  # erased: on the suppression list
            raise Refused(status_of(exc), str(exc), "email") from exc
        return _out(sub)
