"""Self-service subscription: request (double opt-in), confirm, change preferences.

A request to subscribe (web form or API) is recorded as a :class:`SubscriptionRequest`,
apart from any subscriber, and a worker is woken for it — the same work and the same answer
whatever state the address is in, so neither the answer nor its timing tells who is
subscribed. The worker decides whether a confirmation email goes out: not to a confirmed or
bounced subscriber, and at most one per mailbox (:func:`subscribers.mailbox_key`) per
``CONFIRMATION_INTERVAL``, taken atomically so 100 parallel requests send one email.

The link in that email names the request (its id and nonce); confirming applies exactly
that request's choices and consent record, creating or updating the subscriber. A confirmed
subscriber is never changed by a request: their own preferences link does that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.orm import Session

from distributor.audience.addresses import normalise_email
from distributor.audience.privacy import suppression_hash
from distributor.audience.subscribers import (
    change_digest,
    check_digest,
    check_language,
    check_name,
    mailbox_key,
    resolve_topics,
)
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import NotFound, SubscriberInputError
from distributor.core.models import (
    ConfirmationEmail,
    ConfirmationLimit,
    Subscriber,
    SubscriberStatus,
    SubscriptionRequest,
    Suppression,
    Topic,
    UTCDateTime,
    utcnow,
)
from distributor.core.queue import TaskQueue

CONFIRMATION_INTERVAL = timedelta(hours=24)
FORM_VERSION = "web-2026-12"
# The task a request wakes (its id as the argument); the name predates requests.
CONFIRMATION_TASK = "send_confirmation"
# A request not decided this long after it was made lost its wake-up: the sweep wakes again.
LOST_WAKE_UP = timedelta(seconds=60)


@dataclass(frozen=True)
class Consent:
    """Where a subscription request came from (kept as the GDPR consent record)."""

    ip: str
    user_agent: str
    form_version: str = FORM_VERSION
    source: str = "web form"


def record_request(
    session: Session,
    settings: Settings,
    *,
    email: str,
    name: str,
    language: str,
    topics: Iterable[str],
    consent: Consent,
) -> SubscriptionRequest:
    """Check and store a request to subscribe; returns it (flushed: it has its id).

    Raises SubscriberInputError for an invalid address, name, language or topic. Reads
    nothing about the address — whether it is subscribed, pending, unsubscribed, bounced or
    erased — so the statements run are the same whatever its state."""
    address = normalise_email(email)
    request = SubscriptionRequest(
        email=address,
        mailbox=mailbox_key(address),
        name=check_name(name),
        language=check_language(settings, language),
        topics=sorted(t.slug for t in resolve_topics(session, topics)),
        consent_source=consent.source[:200],
        consent_ip=consent.ip[:64],
        consent_user_agent=consent.user_agent[:500],
        consent_form_version=consent.form_version[:32],
        created_at=utcnow(),
    )
    session.add(request)
    session.flush()
    return request


def request_subscription(
    settings: Settings,
    queue: TaskQueue,
    *,
    email: str,
    name: str,
    language: str,
    topics: Iterable[str],
    consent: Consent,
) -> SubscriptionRequest:
    """Record a request (:func:`record_request`), commit, then wake a worker to decide on
    its confirmation email — always, whatever the address's state. Returns the request."""
    with session_scope(settings) as session:
        request = record_request(
            session,
            settings,
            email=email,
            name=name,
            language=language,
            topics=topics,
            consent=consent,
        )
    queue.send(CONFIRMATION_TASK, request.id)  # lost: the sweep wakes one (LOST_WAKE_UP)
    return request


def _mailbox_hash(mailbox: str) -> str:
    return hashlib.sha256(mailbox.encode("utf-8")).hexdigest()


# Taken by at most one of any number of concurrent callers per mailbox and interval: the
# row is inserted, or updated only if older than the interval; RETURNING says who won.
_TAKE_LIMIT = text(
    """
    INSERT INTO confirmation_limits (mailbox_hash, sent_at) VALUES (:mailbox_hash, :now)
    ON CONFLICT (mailbox_hash) DO UPDATE SET sent_at = excluded.sent_at
    WHERE confirmation_limits.sent_at < :cutoff
    RETURNING mailbox_hash
    """
).bindparams(bindparam("now", type_=UTCDateTime), bindparam("cutoff", type_=UTCDateTime))


def take_confirmation(session: Session, request_id: int) -> SubscriptionRequest | None:
    """Decide whether the request's confirmation email goes out now: the request if it does
    (its ``confirmation_sent_at`` set, and a row for the email added to the outbox's ledger
    of confirmations: sent once committed), else None.

    None when the address belongs to a confirmed or bounced subscriber, or its mailbox was
    sent a confirmation in the last ``CONFIRMATION_INTERVAL`` — and the request deleted if
    no email was ever sent for it, as nothing can confirm it; None, changing nothing, when
    the request is gone, confirmed, or already decided (a task run twice)."""
    now = utcnow()
    decided = session.execute(
        update(SubscriptionRequest)
        .where(
            SubscriptionRequest.id == request_id,
            SubscriptionRequest.decided_at.is_(None),
            SubscriptionRequest.confirmed_at.is_(None),
        )
        .values(decided_at=now)
    )
    if not getattr(decided, "rowcount", 0):
        return None
    request = session.get_one(SubscriptionRequest, request_id)
    if not _take_day(session, request, now):
        if request.confirmation_sent_at is None:  # no link names it: nothing to keep
            session.delete(request)
        return None
    request.confirmation_sent_at = now
    session.add(ConfirmationEmail(request_id=request.id, created_at=now, next_attempt_at=now))
    return request


def _take_day(session: Session, request: SubscriptionRequest, now: datetime) -> bool:
    """Whether a confirmation email for ``request`` may go out at ``now``: True, with its
    mailbox's once-a-day limit taken (atomically, see ``_TAKE_LIMIT``), unless the address
    is a confirmed or bounced subscriber's or the mailbox was sent one in the last
    ``CONFIRMATION_INTERVAL``."""
    status = session.scalar(select(Subscriber.status).where(Subscriber.email == request.email))
    if status in (SubscriberStatus.CONFIRMED, SubscriberStatus.BOUNCED):
        return False
    won = session.scalar(
        _TAKE_LIMIT,
        {
            "mailbox_hash": _mailbox_hash(request.mailbox),
            "now": now,
            "cutoff": now - CONFIRMATION_INTERVAL,
        },
    )
    return won is not None


def retake_confirmation(session: Session, request_id: int) -> bool:
    """Before a confirmation email whose day was given back (:func:`give_back_confirmation`)
    is tried again: take the mailbox's day again, as :func:`take_confirmation` does. True if
    it may go out (the request's ``confirmation_sent_at`` set again); False if not — the
    mailbox was sent another confirmation meanwhile, the address is now a confirmed or
    bounced subscriber's, or the request is gone — so that retries never make more than one
    confirmation a day per mailbox."""
    request = session.get(SubscriptionRequest, request_id)
    if request is None:
        return False
    now = utcnow()
    if not _take_day(session, request, now):
        return False
    request.confirmation_sent_at = now
    return True


def give_back_confirmation(session: Session, request_id: int, sent_at: datetime) -> None:
    """The confirmation taken by :func:`take_confirmation` (or :func:`retake_confirmation`)
    at ``sent_at`` did not go out: give the mailbox's right back, so the person can ask
    again at once rather than a day later. An email still to be retried takes it again
    first."""
    request = session.get(SubscriptionRequest, request_id)
    if request is None:
        return
    session.execute(
        delete(ConfirmationLimit).where(
            ConfirmationLimit.mailbox_hash == _mailbox_hash(request.mailbox),
            ConfirmationLimit.sent_at == sent_at,
        )
    )
    request.confirmation_sent_at = None


def reopen_request(session: Session, request_id: int) -> bool:
    """Let a worker decide again on the request's confirmation email (a new link asked for
    from an expired one); the caller wakes one after committing. False if the request is
    gone or already confirmed."""
    result = session.execute(
        update(SubscriptionRequest)
        .where(SubscriptionRequest.id == request_id, SubscriptionRequest.confirmed_at.is_(None))
        .values(decided_at=None)
    )
    return bool(getattr(result, "rowcount", 0))


def undecided_requests(
    session: Session, now: datetime | None = None, limit: int = 1000
) -> list[int]:
    """Requests whose wake-up was lost (undecided ``LOST_WAKE_UP`` after they were made,
    and younger than ``CONFIRMATION_INTERVAL``): the sweep wakes a worker for each."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(SubscriptionRequest.id)
            .where(
                SubscriptionRequest.decided_at.is_(None),
                SubscriptionRequest.confirmed_at.is_(None),
                SubscriptionRequest.created_at < now - LOST_WAKE_UP,
                SubscriptionRequest.created_at > now - CONFIRMATION_INTERVAL,
            )
            .order_by(SubscriptionRequest.id)
            .limit(limit)
        )
    )


def purge_requests(session: Session, settings: Settings, now: datetime | None = None) -> int:
    """Delete the requests whose every link has expired (none sent, or the last one sent
    more than ``DISTRIBUTOR_CONFIRM_MAX_AGE_DAYS`` ago) and the once-a-day limits older than
    a day; returns the number of requests deleted. Run by the sweep."""
    now = now or utcnow()
    cutoff = now - timedelta(days=settings.confirm_max_age_days)
    last_link = func.coalesce(
        SubscriptionRequest.confirmation_sent_at, SubscriptionRequest.created_at
    )
    result = session.execute(delete(SubscriptionRequest).where(last_link < cutoff))
    session.execute(
        delete(ConfirmationLimit).where(ConfirmationLimit.sent_at < now - CONFIRMATION_INTERVAL)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Choices:
    """What confirming a link will apply, as the confirm page shows it."""

    email: str
    name: str
    language: str
    topics: list[Topic]
    done: bool  # already confirmed


def request_choices(session: Session, request_id: int) -> Choices | None:
    """The choices of the request with this id (None if there is none)."""
    request = session.get(SubscriptionRequest, request_id)
    if request is None:
        return None
    topics = list(
        session.scalars(select(Topic).where(Topic.slug.in_(request.topics)).order_by(Topic.slug))
    )
    return Choices(
        request.email, request.name, request.language, topics, request.confirmed_at is not None
    )


def confirm_request(session: Session, request_id: int) -> Subscriber:
    """Apply the request's choices: create the subscriber, or update one that is pending,
    unsubscribed or bounced (the owner of the address confirms they want it back), with
    the request's name (if it gave one), language, topics and consent record; remove the
    address from the suppression list (someone erased who confirms themselves is back).

    A confirmed subscriber is left as it is. Idempotent. Raises NotFound when there is no
    such request (expired and purged, or erased), SubscriberInputError when none of its
    topics exists any more."""
    request = session.get(SubscriptionRequest, request_id)
    if request is None:
        raise NotFound("this subscription request no longer exists")
    sub = session.scalar(select(Subscriber).where(Subscriber.email == request.email))
    now = utcnow()
    if sub is not None and sub.status == SubscriberStatus.CONFIRMED:
        request.confirmed_at = request.confirmed_at or now
        return sub
    topics = list(session.scalars(select(Topic).where(Topic.slug.in_(request.topics))))
    if not topics:
        raise SubscriberInputError("the topics chosen no longer exist; please subscribe again")
    if sub is None:
        sub = Subscriber(
            email=request.email, name=request.name, language=request.language, created_at=now
        )
        session.add(sub)
    sub.name = request.name or sub.name
    sub.language, sub.topics = request.language, topics
    sub.status, sub.confirmed_at = SubscriberStatus.CONFIRMED, now
    sub.unsubscribed_at = sub.bounced_at = None
    sub.soft_bounces = 0
    sub.consent_source, sub.consent_at = request.consent_source, request.created_at
    sub.consent_ip, sub.consent_user_agent = request.consent_ip, request.consent_user_agent
    sub.consent_form_version = request.consent_form_version
    request.confirmed_at = now
    _welcome_back(session, request.email)
    session.flush()
    return sub


def confirm_legacy(session: Session, subscriber_id: int) -> Subscriber:
    """Confirm a pending subscriber through a link sent before requests were kept apart
    (it names the subscriber, who has no link nonce); idempotent for a confirmed one.
    Raises NotFound, or SubscriberInputError when the address left or bounced since."""
    sub = session.get(Subscriber, subscriber_id)
    if sub is None or sub.link_nonce is not None:
        raise NotFound("this subscription no longer exists")
    if sub.status == SubscriberStatus.CONFIRMED:
        return sub
    if sub.status != SubscriberStatus.PENDING:
        raise SubscriberInputError(f"this address is {sub.status}; subscribe again to return")
    sub.status, sub.confirmed_at = SubscriberStatus.CONFIRMED, utcnow()
    _welcome_back(session, sub.email)
    return sub


def resubscribe(session: Session, subscriber_id: int, consent: Consent) -> Subscriber:
    """Subscribe again a subscriber who left (or never confirmed), with the language and
    topics their row keeps, from their own preferences link: that link reached their
    mailbox, which is what a confirmation email would prove, so none is sent. The consent
    record is this request's. Idempotent for a confirmed subscriber.

    Raises NotFound when the subscriber is gone, SubscriberInputError when the address
    bounced (the press office's mail no longer reaches it: never subscribed again from a
    link) or none of its topics exists any more."""
    sub = session.get(Subscriber, subscriber_id)
    if sub is None:
        raise NotFound("this subscription no longer exists")
    if sub.status == SubscriberStatus.CONFIRMED:
        return sub
    if sub.status == SubscriberStatus.BOUNCED:
        raise SubscriberInputError(
            "Our emails to this address could not be delivered, "
            "so we cannot subscribe it again from here."
        )
    if not sub.topics:
        raise SubscriberInputError("Choose at least one topic.")
    now = utcnow()
    sub.status, sub.confirmed_at, sub.unsubscribed_at = SubscriberStatus.CONFIRMED, now, None
    sub.consent_source, sub.consent_at = consent.source, now
    sub.consent_ip, sub.consent_user_agent = consent.ip, consent.user_agent
    sub.consent_form_version = consent.form_version
    _welcome_back(session, sub.email)
    return sub


def _welcome_back(session: Session, email: str) -> None:
    """Take ``email`` off the suppression list: someone erased who confirms themselves
    through double opt-in is back."""
    session.execute(delete(Suppression).where(Suppression.email_hash == suppression_hash(email)))


def update_preferences(
    session: Session,
    settings: Settings,
    subscriber_id: int,
    *,
    language: str,
    topics: Iterable[str],
    digest: str | None = None,
) -> Subscriber:
    """Change a subscriber's language and topics (at least one topic) and, when given, how
    they receive releases (:func:`change_digest`); every value is checked before any is
    changed."""
    sub = session.get(Subscriber, subscriber_id)
    if sub is None:
        raise NotFound("this subscription no longer exists")
    language, chosen = check_language(settings, language), resolve_topics(session, topics)
    mode = check_digest(digest) if digest is not None else None
    sub.language, sub.topics = language, chosen
    if mode is not None:
        change_digest(sub, mode)
    return sub
