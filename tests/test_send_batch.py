"""send_batch in this process against a real SMTP server: planning in ranges, and an
unsubscribe that lands in the middle of a batch (honoured within the promised 50 ms)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import pairwise

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from distributor.audience.subscribers import unsubscribe
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Delivery, Release, Subscriber
from distributor.outbox import ledger, sending
from distributor.outbox.ledger import counts, still_leased
from distributor.releases.lifecycle import mark_published
from tests.helpers import (
    CountingQueue,
    add_subscribers,
    add_topics,
    make_release,
    published_unplanned,
)
from tests.smtp_server import SMTPServer


def test_planning_in_ranges_wakes_enough_batches_and_is_idempotent(settings: Settings) -> None:
    s = settings.model_copy(update={"batch_size": 7})
    release_id = published_unplanned(s, 50)
    queue = CountingQueue()
    import distributor.outbox.ledger as delivery

    original, delivery.PLAN_CHUNK = delivery.PLAN_CHUNK, 9  # several ranges of ids
    try:
        with session_scope(s) as session:
            assert len(delivery.subscriber_id_ranges(session)) == 6
        assert sending.distribute_release(s, queue, release_id) == 8  # type: ignore[arg-type]
        again = sending.distribute_release(s, queue, release_id)  # type: ignore[arg-type]
    finally:
        delivery.PLAN_CHUNK = original
    with session_scope(s) as session:
        assert counts(session, release_id)["pending"] == 50
    assert again == 8  # nothing new planned; the unclaimed rows get their batches again
    assert queue.sent == [("send_batch", (release_id,))] * 16


def test_planning_wakes_each_batch_as_soon_as_its_rows_are_planned(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a release is planned range by range, a batch is woken for every full batch's
    worth of rows as soon as they are planned (the first messages leave while the rest is
    being planned), never ahead of them, and a range that leaves exactly a batch's worth
    wakes it then; the last range's few rows get the last batch; rows that fill exactly 10
    batches get 10 wake-ups, not an empty 11th."""
    s = settings.model_copy(update={"batch_size": 7})
    release_id = published_unplanned(s, 70)
    queue = CountingQueue()
    planned: list[int] = []  # the new rows of each range, in order
    before: list[tuple[int, int]] = []  # before each range: rows planned, batches woken
    plan = sending.plan

    def plan_one_range(session: Session, release: Release, ids: tuple[int, int]) -> int:
        before.append((sum(planned), len(queue.sent)))
        planned.append(plan(session, release, ids))
        return planned[-1]

    monkeypatch.setattr(sending, "plan", plan_one_range)
    monkeypatch.setattr(ledger, "PLAN_CHUNK", 9)  # 70 ids: eight ranges, the 7th leaves 7
    monkeypatch.setattr(sending, "PLAN_CONNECTIONS", 1)  # one range at a time, in order
    assert sending.distribute_release(s, queue, release_id) == 10  # type: ignore[arg-type]
    assert planned == [9, 9, 9, 9, 9, 9, 9, 7]
    assert queue.sent == [("send_batch", (release_id,))] * 10
    unwoken = [rows - woken * 7 for rows, woken in before]  # rows planned without a batch
    assert all(0 <= n < 7 for n in unwoken), f"rows waiting for a batch, by range: {unwoken}"


def test_ranges_planned_at_once_plan_everyone_once_and_wake_every_batch(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL several ranges are planned at once, each by its own connection: the
    ledger and the wake-ups are those of one range at a time (every subscriber's row once,
    a batch per 7 rows and one for the last few), and running it again plans no row twice."""
    s = settings.model_copy(update={"batch_size": 7})
    release_id = published_unplanned(s, 75)
    monkeypatch.setattr(ledger, "PLAN_CHUNK", 4)  # 19 ranges, planned 3 at a time
    monkeypatch.setattr(sending, "PLAN_CONNECTIONS", 3)
    queue = CountingQueue()
    assert sending.distribute_release(s, queue, release_id) == 11  # type: ignore[arg-type]
    assert queue.sent == [("send_batch", (release_id,))] * 11
    with session_scope(s) as session:
        assert counts(session, release_id)["pending"] == 75
        subscribers = session.scalars(
            select(Delivery.subscriber_id).where(Delivery.release_id == release_id)
        ).all()
    assert len(set(subscribers)) == 75
    sending.distribute_release(s, CountingQueue(), release_id)  # type: ignore[arg-type]
    with session_scope(s) as session:
        assert counts(session, release_id)["pending"] == 75


def test_a_release_nobody_follows_is_planned_once_with_no_wake_up(settings: Settings) -> None:
    """Published on a topic no subscriber follows: planned (the sweep does not plan it again),
    no row, no batch woken (the task that plans it does not fail)."""
    add_topics(settings, "climate", "energy")
    add_subscribers(settings, [("ann@example.com", "Ann", "en", "energy")])
    release = make_release(settings)  # on climate
    with session_scope(settings) as session:
        mark_published(session, release.id)
    queue = CountingQueue()
    assert sending.distribute_release(settings, queue, release.id) == 0  # type: ignore[arg-type]
    assert queue.sent == []
    with session_scope(settings) as session:
        assert counts(session, release.id) == dict.fromkeys(counts(session, release.id), 0)
        assert session.get_one(Release, release.id).planned_at is not None


def test_a_row_stored_before_todays_checks_fails_with_its_reason_and_the_batch_goes_on(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    """A subscriber whose name was stored before the checks that refuse a line break in it
    cannot be written to safely: their row fails at once with the reason, no SMTP code, no
    bounce (the address may be fine), nothing reaches the server for them, and the rest of
    the batch goes out."""
    s = settings.model_copy(update={"smtp_url": smtp_server.url})
    release_id = published_unplanned(s, [f"p{i}@example.com" for i in range(3)])
    with session_scope(s) as session:
        old = session.scalars(select(Subscriber).where(Subscriber.email == "p1@example.com")).one()
        old.name = "Jean\r\nBcc: evil@example.net"  # as an older import let it in
        old_id = old.id
    sending.distribute_release(s, CountingQueue(), release_id)  # type: ignore[arg-type]
    report = sending.send_batch(s, release_id)
    assert report.outcomes == {"sent": 2, "deferred": 0, "failed": 1}
    assert sorted(smtp_server.handler.by_rcpt()) == ["p0@example.com", "p2@example.com"]
    with session_scope(s) as session:
        row = session.scalars(select(Delivery).where(Delivery.subscriber_id == old_id)).one()
        assert (row.status, row.smtp_code) == ("failed", 0)
        assert row.last_error == (
            f"not sent: subscriber {old_id}: name contains a control character (line break?): "
            "'Jean\\r\\nBcc: evil@example.net'"
        )
        assert session.get_one(Subscriber, old_id).status == "confirmed"


# The README's promise (Guarantees): "an unsubscribe stops a running batch within 50 ms",
# stated here as a figure, not as the setting that is meant to keep it.
PROMISED_BOUND = 0.05


def forty_planned(settings: Settings) -> int:
    """A release planned for p000…p039@example.com (in that order of rows), nothing sent."""
    add_topics(settings, "climate")
    add_subscribers(settings, [(f"p{i:03}@example.com", "P", "en", "climate") for i in range(40)])
    release = make_release(settings)
    with session_scope(settings) as session:
        mark_published(session, release.id)
    sending.distribute_release(settings, CountingQueue(), release.id)  # type: ignore[arg-type]
    return release.id


def unsubscribe_all(settings: Settings, emails: set[str]) -> float:
    """Unsubscribe them in one transaction; returns when it committed (``time.monotonic``)."""
    with session_scope(settings) as session:
        for sub in session.scalars(select(Subscriber).where(Subscriber.email.in_(emails))):
            unsubscribe(session, sub.id)
    return time.monotonic()


def wait_past(moment: float) -> None:
    """Return once ``time.monotonic()`` is past ``moment``."""
    while (left := moment - time.monotonic()) >= 0:
        time.sleep(left + 0.001)


def started_late(
    answered: list[tuple[str, float]], leaving: set[str], unsubscribed_at: float
) -> list[tuple[str, float]]:
    """The messages to ``leaving`` that started over PROMISED_BOUND after the unsubscribe,
    with how long after it (s). ``answered``: each RCPT the server saw, in order, and when it
    answered it. A message starts before the server sees its RCPT, and after the server
    answered the previous message's envelope (the transport reads those replies before it
    takes the next message from the batch): one that follows a reply given past the bound
    started past it."""
    return [
        (rcpt, round(previous_answer - unsubscribed_at, 3))
        for (_, previous_answer), (rcpt, _) in pairwise(answered)
        if rcpt in leaving and previous_answer > unsubscribed_at + PROMISED_BOUND
    ]


def test_an_unsubscribe_mid_batch_stops_the_rest_of_the_batch(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    """No message to someone who unsubscribed starts later than 0.05 s after the unsubscribe
    committed, and the batch goes on for the others.

    Every other recipient from the 6th on unsubscribes while the server holds its reply to
    the 5th message; it holds it until the bound has passed, which makes every later message
    start past it: none may reach a leaver, however loaded the machine."""
    s = settings.model_copy(update={"smtp_url": smtp_server.url, "batch_size": 100})
    release_id = forty_planned(s)
    leaving = {f"p{i:03}@example.com" for i in range(5, 40, 2)}
    answered: list[tuple[str, float]] = []  # each RCPT, in order, and when it was answered
    committed: list[float] = []

    def reply(address: str) -> None:
        if len(answered) == 4:  # the 5th: they unsubscribe while the batch is being sent
            committed.append(unsubscribe_all(s, leaving))
            wait_past(committed[0] + PROMISED_BOUND)  # a slow reply
        answered.append((address, time.monotonic()))
        return None

    smtp_server.handler.rcpt_reply = reply
    report = sending.send_batch(s, release_id)
    late = started_late(answered, leaving, *committed)
    assert late == [], f"started over {PROMISED_BOUND} s after the unsubscribe (s): {late}"
    received = smtp_server.handler.by_rcpt()
    assert not set(received) & leaving
    assert len(received) == 40 - len(leaving) and report.skipped == len(leaving) == 18
    assert all(len(copies) == 1 for copies in received.values())
    with session_scope(s) as session:
        c = counts(session, release_id)
    assert c["sent"] == 22 and c["cancelled"] == 18


def test_a_slow_lease_check_does_not_stretch_the_50_ms(
    settings: Settings, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound is counted from when a check reads the ledger, not from when it returns: an
    unsubscribe committed while a slow check (a loaded database: 40 ms here) is finishing is
    missed by it, and honoured by every message that starts 0.05 s after the commit.

    The server holds its first reply past 0.05 s, so the batch checks its leases before the
    second message; that check reads the ledger, then everyone but p000 unsubscribes, then
    it returns 40 ms later. The second message, decided on what it read, may go out; the
    server holds its reply until the bound has passed, so no later one may."""
    s = settings.model_copy(update={"smtp_url": smtp_server.url, "batch_size": 100})
    release_id = forty_planned(s)
    leaving = {f"p{i:03}@example.com" for i in range(1, 40)}
    answered: list[tuple[str, float]] = []
    committed: list[float] = []

    def slow_check(conn: Connection, token: str, ids: Sequence[int]) -> set[int]:
        leased = still_leased(conn, token, ids)  # read before the unsubscribe commits
        if not committed:
            committed.append(unsubscribe_all(s, leaving))
            wait_past(committed[0] + 0.04)  # the rest of a slow check
        return leased

    def reply(address: str) -> None:
        if not answered:  # the batch checks before its next message
            wait_past(time.monotonic() + PROMISED_BOUND)
        elif committed and answered[-1][1] < committed[0]:  # the first after the commit
            wait_past(committed[0] + PROMISED_BOUND)
        answered.append((address, time.monotonic()))
        return None

    monkeypatch.setattr(ledger, "still_leased", slow_check)
    smtp_server.handler.rcpt_reply = reply
    report = sending.send_batch(s, release_id)
    assert committed, "the batch never checked its leases"
    late = started_late(answered, leaving, *committed)
    assert late == [], f"started over {PROMISED_BOUND} s after the unsubscribe (s): {late}"
    assert set(smtp_server.handler.by_rcpt()) == {"p000@example.com", "p001@example.com"}
    assert report.skipped == 38


def test_a_batch_reports_its_counts_as_the_worker_task_returns_them(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    """What a worker logs for each batch (the task's result) is the batch's own counts; a
    one-email batch (a confirmation, an invitation) is named by its one outcome."""
    live = settings.model_copy(update={"smtp_url": smtp_server.url})
    add_topics(live, "climate")
    add_subscribers(live, [(f"r{i}@example.com", "R", "en", "climate") for i in range(3)])
    release = make_release(live)
    with session_scope(live) as session:
        mark_published(session, release.id)
    sending.distribute_release(live, CountingQueue(), release.id)  # type: ignore[arg-type]
    report = sending.send_batch(live, release.id)
    assert report.summary() == {"claimed": 3, "held": 0, "reconciled": 0, "skipped": 0,
                                "sent": 3, "deferred": 0, "failed": 0}  # fmt: skip
    assert sending.send_batch(live, release.id).summary()["claimed"] == 0  # nothing left

    def one(**counts: int) -> str:
        outcomes = {"sent": 0, "deferred": 0, "failed": 0}
        extra = {k: counts.pop(k) for k in ("held", "reconciled") if k in counts}
        return sending.outcome(sending.BatchReport(outcomes={**outcomes, **counts}, **extra))

    assert one(sent=1) == "sent" and one(reconciled=1) == "sent"
    assert one(failed=1) == "failed"
    assert one(deferred=1) == "deferred" and one(held=1) == "deferred"
    assert one() == "skipped"


def unreachable(*args: object) -> set[int]:
    """A read or write of the ledger while the database is gone (psycopg's words)."""
    raise OperationalError("SELECT …", {}, Exception("server closed the connection\nat once"))


def lease_check_unreachable(monkeypatch: pytest.MonkeyPatch, smtp_server: SMTPServer) -> None:
    """The batch's next lease check finds the database gone; each recipient is answered
    only once a lease check is due, so the batch makes that check after its first message."""

    def reply(address: str) -> None:
        wait_past(time.monotonic() + 2 * sending.LEASE_CHECK_SECONDS)

    monkeypatch.setattr(ledger, "still_leased", unreachable)
    smtp_server.handler.rcpt_reply = reply


def test_a_lease_check_without_the_database_stops_the_batch_and_gives_back_the_rest(
    settings: Settings, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """When a lease check cannot read the ledger, the batch sends nothing more (it cannot
    know who left) and says why; the rows it did not get to go back at once, no attempt
    counted, for the next batch."""
    s = settings.model_copy(update={"smtp_url": smtp_server.url, "batch_size": 100})
    release_id = forty_planned(s)
    lease_check_unreachable(monkeypatch, smtp_server)
    report = sending.send_batch(s, release_id)
    assert report.claimed == 40 and report.outcomes["sent"] == 1
    assert list(smtp_server.handler.by_rcpt()) == ["p000@example.com"]
    stopped = [m for m in caplog.messages if m.startswith("database")]
    assert stopped == [
        "database unreachable: batch stops taking rows "
        "((builtins.Exception) server closed the connection)"
    ]
    with session_scope(s) as session:
        rows = session.scalars(select(Delivery).where(Delivery.status == "pending")).all()
        assert len(rows) == 39
        assert {(r.lease_token, r.lease_until, r.attempts) for r in rows} == {(None, None, 0)}
    assert sending.send_batch(s, release_id).claimed == 39


def test_rows_that_cannot_be_given_back_keep_their_lease_until_it_expires(
    settings: Settings, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """If the database is gone when the batch gives back the rows it did not get to, it says
    how many; their leases stay and expire (nothing is lost, nothing sent twice)."""
    s = settings.model_copy(update={"smtp_url": smtp_server.url, "batch_size": 100})
    release_id = forty_planned(s)
    lease_check_unreachable(monkeypatch, smtp_server)
    monkeypatch.setattr(sending, "release_leases", unreachable)
    sending.send_batch(s, release_id)
    given = [m for m in caplog.messages if m.startswith("could not give back")]
    assert given == [
        "could not give back 39 rows now ((builtins.Exception) server closed the connection); "
        "their leases will expire"
    ]
    with session_scope(s) as session:
        rows = session.scalars(select(Delivery).where(Delivery.status == "pending")).all()
        assert len(rows) == 39 and all(r.lease_token and r.attempts == 1 for r in rows)
    assert sending.send_batch(s, release_id).claimed == 0  # leased still
