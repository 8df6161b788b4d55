"""The ledger: planning is idempotent and matches language and topics; claims never
overlap; outcomes are recorded once; deferred rows back off (doubling, capped) and give up;
leases expire; unsubscribing cancels."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text, update

from distributor import actions
from distributor.audience.subscribers import unsubscribe
from distributor.core.config import Settings, load_settings
from distributor.core.db import dispose_engines, get_engine, session_scope
from distributor.core.models import (
    CorrectionNotice,
    Delivery,
    DeliveryStatus,
    Release,
    Subscriber,
    SubscriberStatus,
    utcnow,
)
from distributor.outbox import notices
from distributor.outbox.ledger import OutcomeWriter, backoff, claim, counts, due, plan
from distributor.releases.lifecycle import mark_published
from distributor.releases.source import parse_release
from distributor.reporting.status import release_status
from tests.conftest import truncate_pg
from tests.helpers import (
    TEST_SECRET_KEY,
    CountingQueue,
    add_subscribers,
    add_topics,
    make_release,
    published,
    release_text,
)

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


def test_backoff_doubles_from_the_base_and_stops_at_the_cap() -> None:
    """The wait before attempt n + 1 is base·2^(n-1), never more than the cap."""
    s = load_settings(retry_base_seconds=60.0, retry_max_seconds=1000.0)
    waits = [backoff(s, attempts).total_seconds() for attempts in range(1, 9)]
    assert waits == [60, 120, 240, 480, 960, 1000, 1000, 1000]


def test_deferred_rows_wait_for_their_backoff(settings: Settings) -> None:
    """Each deferral puts the row off by the doubling backoff, counted from the server's
    answer (given to the ledger: an injected clock, nothing sleeps), up to the cap: 60,
    120, 240, then 300 s; the row is not claimed before."""
    s = settings.model_copy(update={"retry_base_seconds": 60.0, "retry_max_seconds": 300.0})
    rid = planned_release(s)
    engine = get_engine(s)
    for attempt, wait in enumerate([60, 120, 240, 300, 300], start=1):
        batch = claim(engine, s, rid, 5)
        assert len(batch.rows) == 2 and all(r.attempts == attempt for r in batch.rows)
        answered = utcnow()
        with OutcomeWriter(engine, s) as ledger:
            for row in batch.rows:
                ledger.record(batch.token, row, "deferred", 451, "try later", answered_at=answered)
        assert claim(engine, s, rid, 5).rows == []  # not before the backoff
        with session_scope(s) as session:
            due_at = set(session.scalars(select(Delivery.next_attempt_at)))
            assert due_at == {answered + timedelta(seconds=wait)}, attempt
            # The backoff has passed.
            session.execute(
                update(Delivery).values(next_attempt_at=utcnow() - timedelta(seconds=1))
            )


def test_a_row_deferred_past_give_up_after_fails_with_its_reason(settings: Settings) -> None:
    """A deferral whose retry would come later than ``give_up_after_seconds`` after planning
    ends the row ``failed``, "gave up: " and the server's reason; one whose retry comes at
    that time exactly is still deferred. Times are the server's answers (injected)."""
    s = settings.model_copy(
        update={"retry_base_seconds": 60.0, "retry_max_seconds": 60.0,
                "give_up_after_seconds": 3600.0}
    )  # fmt: skip
    rid = planned_release(s)
    engine = get_engine(s)
    batch = claim(engine, s, rid, 5)
    kept, dropped = batch.rows
    last_chance = kept.created_at + timedelta(seconds=3600 - 60)  # its retry: 1 h after
    with OutcomeWriter(engine, s) as ledger:
        ledger.record(batch.token, kept, "deferred", 451, "4.7.1 busy", answered_at=last_chance)
        too_late = dropped.created_at + timedelta(seconds=3600 - 60, milliseconds=1)
        ledger.record(batch.token, dropped, "deferred", 451, "4.7.1 busy", answered_at=too_late)
    with session_scope(s) as session:
        rows = {r.id: r for r in session.scalars(select(Delivery))}
        assert rows[kept.delivery_id].status == "deferred"
        gave_up = rows[dropped.delivery_id]
        assert (gave_up.status, gave_up.last_error) == ("failed", "gave up: 4.7.1 busy")
        assert gave_up.smtp_code == 451 and gave_up.lease_token is None
        assert counts(session, rid)["failed"] == 1


def test_a_correction_notice_deferred_past_give_up_after_fails_with_its_reason(
    settings: Settings,
) -> None:
    """The same for correction notices, whose ledger records outcomes on its own."""
    s = settings.model_copy(
        update={"retry_base_seconds": 60.0, "retry_max_seconds": 60.0,
                "give_up_after_seconds": 3600.0}
    )  # fmt: skip
    rid = planned_release(s)
    engine = get_engine(s)
    with session_scope(s) as session:
        mark_published(session, rid)
    batch = claim(engine, s, rid, 5)
    with OutcomeWriter(engine, s) as ledger:
        for row in batch.rows:
            ledger.record(batch.token, row, "sent", 250, "ok")
    draft = parse_release(release_text(title="Agency signs agreement (corrected)"), "c.md", s)
    actions.correct(s, CountingQueue(), rid, draft, notify=True)  # type: ignore[arg-type]
    claimed = notices.claim(engine, s, rid, 5)
    kept, dropped = claimed.rows
    last_chance = kept.created_at + timedelta(seconds=3600 - 60)
    too_late = dropped.created_at + timedelta(seconds=3600 - 60, milliseconds=1)
    for notice, answered in ((kept, last_chance), (dropped, too_late)):
        assert notices.record(engine, s, claimed.token, notice, "deferred", 451, "4.7.1 busy",
                              answered_at=answered)  # fmt: skip
    with session_scope(s) as session:
        rows = {r.id: r for r in session.scalars(select(CorrectionNotice))}
        assert rows[kept.notice_id].status == "deferred"
        gave_up = rows[dropped.notice_id]
        assert (gave_up.status, gave_up.last_error) == ("failed", "gave up: 4.7.1 busy")
        assert notices.counts(session, rid)["failed"] == 1


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


def test_the_ledger_keeps_utc_on_a_database_server_set_to_local_time(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL server set to local time (Debian's initdb takes the system's zone) does
    not shift the ledger's times: rows planned now read back as now, are due at once and are
    claimed, once, under a lease that ends ``lease_seconds`` from now (a time bound as
    timestamptz would be stored as Tokyo's wall clock, 9 h ahead, and compared as if a
    time stored were Tokyo's: every lease would look run out, every row claimed twice)."""
    s = load_settings(data_dir=tmp_path / "var", secret_key=TEST_SECRET_KEY, database_url=pg_url)
    truncate_pg(s)
    dispose_engines()
    monkeypatch.setenv("PGTZ", "Asia/Tokyo")  # libpq: each new session's TimeZone
    try:
        before = utcnow()
        release_id = published(s, 3)
        with session_scope(s) as session:
            assert session.execute(text("SHOW TimeZone")).scalar() == "Asia/Tokyo"
            rows = session.scalars(select(Delivery)).all()
            assert due(session) == {release_id: 3}
        now = utcnow()
        assert all(before <= r.created_at <= r.next_attempt_at <= now for r in rows)
        assert len(claim(get_engine(s), s, release_id, 10).rows) == 3
        assert claim(get_engine(s), s, release_id, 10).rows == []
        with session_scope(s) as session:
            leases = session.scalars(select(Delivery.lease_until)).all()
        lease = timedelta(seconds=s.lease_seconds)
        assert all(now + lease < until <= utcnow() + lease for until in leases)
    finally:
        dispose_engines()


def test_due_counts_only_the_rows_a_claim_would_take_now(settings: Settings) -> None:
    """What the sweep and planning wake batches for: rows open, due, unleased, of confirmed
    subscribers. A sent row, a deferral not due yet and a subscriber who left count for
    nothing (each would wake an empty batch at every sweep)."""
    add_topics(settings, "climate")
    emails = [f"d{i}@example.com" for i in range(5)]
    add_subscribers(settings, [(e, "D", "en", "climate") for e in emails])
    release = make_release(settings)
    with session_scope(settings) as session:
        plan(session, session.get_one(Release, release.id))
        rows = {
            email: delivery
            for delivery, email in session.execute(
                select(Delivery, Subscriber.email).join(
                    Subscriber, Subscriber.id == Delivery.subscriber_id
                )
            )
        }
        rows["d0@example.com"].status = DeliveryStatus.SENT
        rows["d1@example.com"].status = DeliveryStatus.DEFERRED
        rows["d1@example.com"].next_attempt_at = utcnow() + timedelta(minutes=5)
        rows["d2@example.com"].lease_until = utcnow() + timedelta(minutes=5)  # being sent
        session.get_one(
            Subscriber, rows["d3@example.com"].subscriber_id
        ).status = SubscriberStatus.BOUNCED
    with session_scope(settings) as session:
        assert due(session) == {release.id: 1}  # d4
    assert [r.email for r in claim(get_engine(settings), settings, release.id, 10).rows] == [
        "d4@example.com"
    ]
