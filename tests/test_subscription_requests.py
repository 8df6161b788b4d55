"""Subscription requests on SQLite and PostgreSQL: one confirmation email per mailbox a day
however many workers decide at once, wake-ups that were lost are sent again by the sweep,
expired requests are purged, an erasure removes requests made in the address's name, and
someone erased who confirms themselves is back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from distributor.audience.privacy import erase_person, export_person, is_suppressed
from distributor.audience.subscription import (
    Consent,
    confirm_request,
    record_request,
    request_subscription,
)
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import NotFound
from distributor.core.models import (
    ConfirmationLimit,
    Subscriber,
    SubscriberStatus,
    SubscriptionRequest,
    utcnow,
)
from distributor.outbox import sending, sweep
from tests.helpers import CountingQueue, add_subscribers, add_topics

CONSENT = Consent("192.0.2.7", "Mozilla/5.0 (test)")


def ask(settings: Settings, email: str, **fields: object) -> int:
    values: dict[str, object] = {"name": "", "language": "en", "topics": ["climate"]}
    values.update(fields)
    with session_scope(settings) as session:
        return record_request(session, settings, email=email, consent=CONSENT, **values).id  # type: ignore[arg-type]


def sent(settings: Settings) -> list[str]:
    folder = settings.outbox_dir / "new"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_parallel_workers_send_one_email_per_mailbox(settings: Settings) -> None:
    add_topics(settings, "climate")
    variants = ["bomb@example.org", "b.omb@example.org", "bomb+1@example.org", "BOMB@example.org"]
    ids = [ask(settings, variants[i % len(variants)]) for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda i: sending.send_confirmation(settings, i), ids))
    assert outcomes.count("sent") == 1 and len(sent(settings)) == 1
    with session_scope(settings) as session:  # only the request that was sent is kept
        assert len(session.scalars(select(SubscriptionRequest)).all()) == 1


def test_no_email_to_a_confirmed_or_bounced_subscriber(settings: Settings) -> None:
    add_topics(settings, "climate")
    add_subscribers(settings, [("cat@example.com", "Cat", "en", "climate"),
                               ("bad@example.com", "Bad", "en", "climate")])  # fmt: skip
    with session_scope(settings) as session:
        session.execute(update(Subscriber).where(Subscriber.email == "bad@example.com")
                        .values(status=SubscriberStatus.BOUNCED))  # fmt: skip
    for email in ("cat@example.com", "bad@example.com"):
        assert sending.send_confirmation(settings, ask(settings, email)) == "skipped"
    assert sent(settings) == []


def test_a_lost_wake_up_is_sent_again_by_the_sweep(settings: Settings) -> None:
    add_topics(settings, "climate")
    queue = CountingQueue()
    request = request_subscription(settings, queue, email="ann@example.com", name="Ann",  # type: ignore[arg-type]
                                   language="en", topics=["climate"], consent=CONSENT)  # fmt: skip
    assert queue.sent == [("send_confirmation", (request.id,))]
    queue.sent.clear()  # as if Redis had lost it
    sweep.sweep(settings, queue, now=utcnow())  # type: ignore[arg-type]
    assert ("send_confirmation", (request.id,)) not in queue.sent  # too early to tell
    sweep.sweep(settings, queue, now=utcnow() + timedelta(minutes=2))  # type: ignore[arg-type]
    assert ("send_confirmation", (request.id,)) in queue.sent
    assert sending.send_confirmation(settings, request.id) == "sent"
    queue.sent.clear()
    sweep.sweep(settings, queue, now=utcnow() + timedelta(minutes=4))  # type: ignore[arg-type]
    assert ("send_confirmation", (request.id,)) not in queue.sent  # decided: not again
    assert sending.send_confirmation(settings, request.id) == "skipped"  # a duplicate task


def test_the_sweep_purges_requests_whose_links_expired(settings: Settings) -> None:
    add_topics(settings, "climate")
    old, fresh = ask(settings, "old@example.com"), ask(settings, "new@example.com")
    for request_id in (old, fresh):
        sending.send_confirmation(settings, request_id)
    with session_scope(settings) as session:
        session.execute(update(SubscriptionRequest).where(SubscriptionRequest.id == old)
                        .values(confirmation_sent_at=utcnow() - timedelta(days=8)))  # fmt: skip
        session.execute(update(ConfirmationLimit)
                        .values(sent_at=utcnow() - timedelta(hours=25)))  # fmt: skip
    sweep.sweep(settings, CountingQueue())  # type: ignore[arg-type]
    with session_scope(settings) as session:
        assert list(session.scalars(select(SubscriptionRequest.id))) == [fresh]
        assert session.scalars(select(ConfirmationLimit)).all() == []


def test_erasure_removes_requests_and_an_erased_person_can_confirm_again(
    settings: Settings,
) -> None:
    add_topics(settings, "climate")
    first = ask(settings, "ann@example.com", name="Ann")
    with session_scope(settings) as session:
        data = export_person(session, "ann@example.com")  # a request only: exported too
    assert data["subscription_requests"][0]["consent"]["ip"] == "192.0.2.7"
    with session_scope(settings) as session:
        erase_person(session, settings, "ann@example.com")
    with session_scope(settings) as session:
        assert session.scalars(select(SubscriptionRequest)).all() == []
        assert is_suppressed(session, "ann@example.com")
        with pytest.raises(NotFound):
            confirm_request(session, first)  # her old link confirms nothing
    again = ask(settings, "ann@example.com", name="Ann", language="fr")
    with session_scope(settings) as session:
        sub = confirm_request(session, again)  # she confirms herself: back
        assert (sub.status, sub.language, sub.consent_ip) == ("confirmed", "fr", "192.0.2.7")
        assert not is_suppressed(session, "ann@example.com")


def test_confirming_brings_back_someone_who_left_with_the_new_choices(
    settings: Settings,
) -> None:
    add_topics(settings, "climate", "science")
    add_subscribers(settings, [("ann@example.com", "Ann", "en", "climate")])
    with session_scope(settings) as session:
        session.execute(update(Subscriber).values(status=SubscriberStatus.UNSUBSCRIBED,
                                                  unsubscribed_at=utcnow()))  # fmt: skip
        before = session.scalars(select(Subscriber)).one()
    request_id = ask(settings, "ann@example.com", language="fr", topics=["science"])
    with session_scope(settings) as session:
        sub = confirm_request(session, request_id)
        assert (sub.id, sub.status, sub.name, sub.language) == (
            before.id, "confirmed", "Ann", "fr")  # fmt: skip
        assert [t.slug for t in sub.topics] == ["science"] and sub.unsubscribed_at is None
        assert sub.link_nonce == before.link_nonce  # her old links keep working


def test_a_confirmation_that_could_not_go_out_gives_the_days_right_back(
    settings: Settings,
) -> None:
    add_topics(settings, "climate")
    down = settings.model_copy(update={"smtp_url": "smtp://127.0.0.1:1"})  # refused
    assert sending.send_confirmation(down, ask(settings, "ann@example.com")) != "sent"
    # Asking again at once works: the failed attempt did not use up the day.
    assert sending.send_confirmation(settings, ask(settings, "a.nn@example.com")) == "sent"
    assert sending.send_confirmation(settings, ask(settings, "ann@example.com")) == "skipped"
