"""Privacy (GDPR): export everything held on one person, erase them, and keep erased
addresses off the list for good.

Erasing deletes the subscriber, their subscriptions, every ledger row about them and every
subscription request made in their address's name, and keeps only a hash of the address on
the suppression list, so that a later CSV import cannot silently add them again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from distributor.audience.addresses import normalise_email
from distributor.core.config import Settings
from distributor.core.errors import NotFound
from distributor.core.models import (
    Accreditation,
    Delivery,
    Release,
    Subscriber,
    SubscriptionRequest,
    Suppression,
    subscriptions,
)


def suppression_hash(email: str) -> str:
    """The suppression-list hash of an address: SHA-256 (hex) of its normalised form.

    A plain hash, not an HMAC: it must keep matching after ``DISTRIBUTOR_SECRET_KEY`` is
    rotated, or erased people would slip back in. The price is that someone who can read
    the table can test a guessed address against it; the list holds nothing else.
    Raises SubscriberInputError for an address that is not valid.
    """
    return _digest(normalise_email(email))


def _digest(normalised: str) -> str:
    # UTF-8: the same bytes as ever for an ASCII address, and an internationalised one too.
    return hashlib.sha256(normalised.encode()).hexdigest()


def suppressed_among(session: Session, normalised: Iterable[str]) -> set[str]:
    """Those of the (already normalised) addresses that are on the suppression list."""
    by_hash = {_digest(e): e for e in normalised}
    found: set[str] = set()
    hashes = list(by_hash)
    for start in range(0, len(hashes), 1000):  # bound the IN list (SQLite variable limit)
        chunk = hashes[start : start + 1000]
        found.update(
            session.scalars(select(Suppression.email_hash).where(Suppression.email_hash.in_(chunk)))
        )
    return {by_hash[h] for h in found}


def _suppression(session: Session, email: str) -> Suppression | None:
    return session.scalar(
        select(Suppression).where(Suppression.email_hash == suppression_hash(email))
    )


def is_suppressed(session: Session, email: str) -> bool:
    """True when ``email`` was erased and is on the suppression list. Raises
    SubscriberInputError for an address that is not valid."""
    return _suppression(session, email) is not None


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def _not_found(session: Session, email: str) -> NotFound:
    entry = _suppression(session, email)
    if entry is None:
        return NotFound(f"no subscriber with the address {email} (not on the suppression list)")
    return NotFound(
        f"no subscriber with the address {email}; it is on the suppression list "
        f"({entry.reason} on {entry.created_at:%Y-%m-%d}), which holds only its hash"
    )


def export_person(session: Session, email: str) -> dict[str, Any]:
    """Everything held on the person with address ``email``, as JSON-able data: the
    subscriber's fields, the consent record, their topics, their embargo access (outlet,
    role, status; ``accreditation``, null if they never asked), every delivery of every
    release to them, and the subscription requests made in that address's name
    (``subscription_requests``; with no subscriber, only ``email``, ``suppressed`` and those).

    Raises SubscriberInputError for an invalid address and NotFound (saying whether the
    address is on the suppression list) when there is no such subscriber and no request.
    """
    address = normalise_email(email)
    sub = session.scalar(select(Subscriber).where(Subscriber.email == address))
    requests = [_request(r) for r in _requests(session, address)]
    if sub is None:
        if not requests:
            raise _not_found(session, address)
        return {
            "email": address,
            "suppressed": is_suppressed(session, address),
            "subscription_requests": requests,
        }
    rows = session.execute(
        select(Delivery, Release.slug, Release.title, Release.language)
        .join(Release, Release.id == Delivery.release_id)
        .where(Delivery.subscriber_id == sub.id)
        .order_by(Delivery.id)
    )
    deliveries = [
        {
            "release": {"id": d.release_id, "slug": slug, "title": title, "language": lang},
            "status": d.status,
            "attempts": d.attempts,
            "planned_at": _iso(d.created_at),
            "sent_at": _iso(d.sent_at),
            "smtp_code": d.smtp_code,
            "last_error": d.last_error,
            "bounce": d.bounce,
            "bounced_at": _iso(d.bounced_at),
        }
        for d, slug, title, lang in rows
    ]
    return {
        "id": sub.id,
        "email": sub.email,
        "name": sub.name,
        "language": sub.language,
        "status": sub.status,
        "topics": sorted(t.slug for t in sub.topics),
        "created_at": _iso(sub.created_at),
        "confirmed_at": _iso(sub.confirmed_at),
        "unsubscribed_at": _iso(sub.unsubscribed_at),
        "consent": {
            "source": sub.consent_source,
            "at": _iso(sub.consent_at),
            "ip": sub.consent_ip,
            "user_agent": sub.consent_user_agent,
            "form_version": sub.consent_form_version,
        },
        "soft_bounces": sub.soft_bounces,
        "bounced_at": _iso(sub.bounced_at),
        "suppressed": is_suppressed(session, address),
        "accreditation": _accreditation(session, sub.id),
        "deliveries": deliveries,
        "subscription_requests": requests,
    }


def _accreditation(session: Session, subscriber_id: int) -> dict[str, Any] | None:
    row = session.scalar(select(Accreditation).where(Accreditation.subscriber_id == subscriber_id))
    if row is None:
        return None
    return {
        "outlet": row.outlet,
        "role": row.role,
        "status": row.status,
        "requested_at": _iso(row.requested_at),
        "decided_at": _iso(row.decided_at),
        "reason": row.reason,
        "lift_notice": row.lift_notice,
    }


def _requests(session: Session, address: str) -> list[SubscriptionRequest]:
    return list(
        session.scalars(
            select(SubscriptionRequest)
            .where(SubscriptionRequest.email == address)
            .order_by(SubscriptionRequest.id)
        )
    )


def _request(r: SubscriptionRequest) -> dict[str, Any]:
    return {
        "name": r.name,
        "language": r.language,
        "topics": r.topics,
        "created_at": _iso(r.created_at),
        "confirmation_sent_at": _iso(r.confirmation_sent_at),
        "confirmed_at": _iso(r.confirmed_at),
        "consent": {
            "source": r.consent_source,
            "ip": r.consent_ip,
            "user_agent": r.consent_user_agent,
            "form_version": r.consent_form_version,
        },
    }


def erase_person(session: Session, settings: Settings, email: str) -> None:
    """Delete the subscriber with address ``email``, their subscriptions, every delivery
    row about them and every subscription request in that address's name (so no link sent
    for one works any more), and put the address's hash on the suppression list
    (:func:`suppression_hash`: a plain SHA-256, so the list survives key rotation).
    Nothing else about them is kept. The ids freed are never given to another row
    (models: AUTOINCREMENT), so nothing left naming them reaches anyone else.

    Raises SubscriberInputError for an invalid address and NotFound (saying whether the
    address is already on the suppression list) when there is no such subscriber or request.
    """
    del settings  # nothing to configure yet; in the signature so callers stay stable
    address = normalise_email(email)
    sub_id = session.scalar(select(Subscriber.id).where(Subscriber.email == address))
    asked = session.execute(delete(SubscriptionRequest).where(SubscriptionRequest.email == address))
    if sub_id is None:
        if not getattr(asked, "rowcount", 0):
            raise _not_found(session, address)
        if not is_suppressed(session, address):
            session.add(Suppression(email_hash=suppression_hash(address), reason="erased"))
        session.flush()
        return
    # Core deletes, and the ORM object forgotten: deleting it through the session as well
    # would try to delete its subscription rows a second time.
    session.execute(delete(Delivery).where(Delivery.subscriber_id == sub_id))
    # Their accreditation goes by its foreign key (ON DELETE CASCADE), with the subscriber.
    session.execute(delete(subscriptions).where(subscriptions.c.subscriber_id == sub_id))
    session.execute(delete(Subscriber).where(Subscriber.id == sub_id))
    loaded = session.get(Subscriber, sub_id)
    if loaded is not None:
        session.expunge(loaded)
    if not is_suppressed(session, address):
        session.add(Suppression(email_hash=suppression_hash(address), reason="erased"))
    session.flush()
