"""Self-service subscription: request (double opt-in), confirm, change preferences.

Whatever state an address is in, a request answers the same to the person who made it;
what differs is only whether a confirmation email goes out — at most one per address per
``CONFIRMATION_INTERVAL``, decided atomically so 100 parallel requests send one email.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from .config import Settings
from .db import session_scope
from .errors import NotFound, SubscriberInputError
from .models import Subscriber, SubscriberStatus, Suppression, utcnow
from .privacy import suppression_hash
from .queue import TaskQueue
from .subscribers import check_language, check_name, normalise_email, resolve_topics

CONFIRMATION_INTERVAL = timedelta(hours=24)
FORM_VERSION = "web-2026-11"


@dataclass(frozen=True)
class Consent:
    """Where a subscription request came from (kept as the GDPR consent record)."""

    ip: str
    user_agent: str
    form_version: str = FORM_VERSION
    source: str = "web form"


def request_subscription(
    session: Session,
    settings: Settings,
    *,
    email: str,
    name: str,
    language: str,
    topics: Iterable[str],
    consent: Consent,
) -> int | None:
    """Record a request to subscribe; return the subscriber id a confirmation email should
    go to, or None when none should (already confirmed, or a bounced address).

    Raises SubscriberInputError for an invalid address, name, language or topic. A new,
    pending or unsubscribed address becomes pending with the requested language, topics
    and consent record; a confirmed one is left untouched (its owner uses the preferences
    link), so a stranger cannot change someone else's subscription.
    """
    address = normalise_email(email)
    name = check_name(name)
    language = check_language(settings, language)
    chosen = resolve_topics(session, topics)
    sub = session.scalar(select(Subscriber).where(Subscriber.email == address))
    if sub is not None and sub.status in (SubscriberStatus.CONFIRMED, SubscriberStatus.BOUNCED):
        return None
    now = utcnow()
    if sub is None:
        sub = Subscriber(email=address, created_at=now)
        session.add(sub)
    sub.name, sub.language, sub.topics = name, language, chosen
    sub.status = SubscriberStatus.PENDING
    sub.consent_source = consent.source
    sub.consent_at, sub.consent_ip = now, consent.ip[:64]
    sub.consent_user_agent = consent.user_agent[:500]
    sub.consent_form_version = consent.form_version[:32]
    session.flush()
    return sub.id


def claim_confirmation(session: Session, subscriber_id: int) -> bool:
    """Atomically take the right to send a confirmation email now: True at most once per
    ``CONFIRMATION_INTERVAL`` per pending subscriber (the caller then sends it)."""
    now = utcnow()
    result = session.execute(
        update(Subscriber)
        .where(
            Subscriber.id == subscriber_id,
            Subscriber.status == SubscriberStatus.PENDING,
            or_(
                Subscriber.confirmation_sent_at.is_(None),
                Subscriber.confirmation_sent_at < now - CONFIRMATION_INTERVAL,
            ),
        )
        .values(confirmation_sent_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


def confirm(session: Session, subscriber_id: int) -> Subscriber:
    """Confirm a pending subscription (idempotent for a confirmed one); raises NotFound, or
    SubscriberInputError when the address left or bounced since the link was sent."""
    sub = session.get(Subscriber, subscriber_id)
    if sub is None:
        raise NotFound("this subscription no longer exists")
    if sub.status == SubscriberStatus.CONFIRMED:
        return sub
    if sub.status != SubscriberStatus.PENDING:
        raise SubscriberInputError(f"this address is {sub.status}; subscribe again to return")
    sub.status, sub.confirmed_at = SubscriberStatus.CONFIRMED, utcnow()
    # Someone erased earlier who now confirms themselves through double opt-in is back.
    session.execute(
        delete(Suppression).where(Suppression.email_hash == suppression_hash(sub.email))
    )
    return sub


def update_preferences(
    session: Session,
    settings: Settings,
    subscriber_id: int,
    *,
    language: str,
    topics: Iterable[str],
) -> Subscriber:
    """Change a subscriber's language and topics (at least one topic)."""
    sub = session.get(Subscriber, subscriber_id)
    if sub is None:
        raise NotFound("this subscription no longer exists")
    language, chosen = check_language(settings, language), resolve_topics(session, topics)
    sub.language, sub.topics = language, chosen
    return sub


def release_confirmation(session: Session, subscriber_id: int) -> None:
    """Give back the right taken by :func:`claim_confirmation` (the email did not go out),
    so the person can ask again at once rather than a day later."""
    session.execute(
        update(Subscriber).where(Subscriber.id == subscriber_id).values(confirmation_sent_at=None)
    )


def wake_confirmation(settings: Settings, queue: TaskQueue, subscriber_id: int) -> bool:
    """Take the once-a-day right and, after that commit, enqueue the confirmation email;
    the right is given back if the broker refuses. True if an email was enqueued."""
    with session_scope(settings) as session:
        allowed = claim_confirmation(session, subscriber_id)
    if not allowed:
        return False
    if queue.send("send_confirmation", subscriber_id):
        return True
    with session_scope(settings) as session:
        release_confirmation(session, subscriber_id)
    return False
