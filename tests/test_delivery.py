"""The ledger: planning is idempotent and matches language and topics; claims never
overlap; outcomes are recorded once; leases expire; unsubscribing cancels."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from distributor.config import Settings
from distributor.db import get_engine, session_scope
from distributor.delivery import OutcomeWriter, claim, counts, due, plan
from distributor.models import Delivery, Release, Subscriber, SubscriberStatus, utcnow
from distributor.status import release_status
from distributor.subscribers import unsubscribe
from tests.helpers import add_subscribers, add_topics, make_release

PEOPLE = [
    ("en1@example.com", "En One", "en", "climate"),
    ("en2@example.com", "En Two", "en", "climate;science"),
    ("en3@example.com", "En Three", "en", "science"),  # other topic
    ("fr1@example.com", "Fr One", "fr", "climate"),  # other language
]


def planned_release(settings: Settings) -> int:
    add_topics(settings, "climate", "science")
    add_subscribers(settings, PEOPLE)
    add_subscribers(settings, [("pending@example.com", "P", "en", "climate")], confirmed=False)
    release = make_release(settings)
    with session_scope(settings) as session:
        plan(session, session.get(Release, release.id))  # type: ignore[arg-type]
    return release.id


def test_plan_matches_language_topics_and_confirmation_idempotently(settings: Settings) -> None:
    rid = planned_release(settings)
    with session_scope(settings) as session:
        again = plan(session, session.get(Release, rid))  # type: ignore[arg-type]
        emails = set(
            session.scalars(
                select(Subscriber.email)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.release_id == rid)
            )
        )
        status = release_status(session, rid)
    assert again == 0
    assert emails == {"en1@example.com", "en2@example.com"}
    assert status.without_version == {"fr": 1}


def test_claims_never_overlap_and_exhaust_the_batch(settings: Settings) -> None:
    rid = planned_release(settings)
    engine = get_engine(settings)
    first = claim(engine, settings, rid, 1)
    second = claim(engine, settings, rid, 5)
    third = claim(engine, settings, rid, 5)
    assert len(first.rows) == 1 and len(second.rows) == 1 and third.rows == []
    assert first.rows[0].delivery_id != second.rows[0].delivery_id
    assert first.rows[0].attempts == 1


def test_outcomes_are_recorded_and_a_lost_lease_changes_nothing(settings: Settings) -> None:
    rid = planned_release(settings)
    engine = get_engine(settings)
    batch = claim(engine, settings, rid, 5)
    sent, failed = batch.rows
    with OutcomeWriter(engine, settings) as ledger:
        assert ledger.record(batch.token, sent, "sent", 250, "ok")
        assert ledger.record(batch.token, failed, "failed", 550, "no such user")
        assert not ledger.record("stolen", sent, "failed", 550, "late")
    with session_scope(settings) as session:
        c = counts(session, rid)
        bounced = session.get(Subscriber, failed.subscriber_id)
        assert bounced is not None and bounced.status == SubscriberStatus.BOUNCED
    assert c["sent"] == 1 and c["failed"] == 1 and c["pending"] == 0


def test_deferred_rows_wait_for_their_backoff(settings: Settings) -> None:
    rid = planned_release(settings)
    engine = get_engine(settings)
    batch = claim(engine, settings, rid, 5)
    with OutcomeWriter(engine, settings) as ledger:
        for row in batch.rows:
            ledger.record(batch.token, row, "deferred", 451, "try later")
    assert claim(engine, settings, rid, 5).rows == []  # not before the backoff
    with session_scope(settings) as session:
        session.execute(update(Delivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
    again = claim(engine, settings, rid, 5)
    assert len(again.rows) == 2 and all(r.attempts == 2 for r in again.rows)


def test_expired_lease_is_claimed_again(settings: Settings) -> None:
    rid = planned_release(settings)
    engine = get_engine(settings)
    claim(engine, settings, rid, 5)  # a worker that then dies
    with session_scope(settings) as session:
        assert due(session) == {}
        session.execute(update(Delivery).values(lease_until=utcnow() - timedelta(seconds=1)))
    with session_scope(settings) as session:
        assert due(session) == {rid: 2}
    assert len(claim(engine, settings, rid, 5).rows) == 2


def test_unsubscribing_cancels_planned_deliveries(settings: Settings) -> None:
    rid = planned_release(settings)
    with session_scope(settings) as session:
        sub = session.scalar(select(Subscriber).where(Subscriber.email == "en1@example.com"))
        assert sub is not None
        unsubscribe(session, sub.id)
    with session_scope(settings) as session:
        assert counts(session, rid)["cancelled"] == 1
    batch = claim(get_engine(settings), settings, rid, 5)
    assert [r.email for r in batch.rows] == ["en2@example.com"]
