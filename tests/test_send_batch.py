"""send_batch in this process against a real SMTP server: planning in ranges, and an
unsubscribe that lands in the middle of a batch."""

from __future__ import annotations

import time

from sqlalchemy import select

from distributor import dispatch
from distributor.config import Settings
from distributor.db import session_scope
from distributor.delivery import counts
from distributor.models import Subscriber
from distributor.releases import mark_published
from distributor.subscribers import unsubscribe
from tests.helpers import CountingQueue, add_subscribers, add_topics, make_release
from tests.smtp_server import SMTPServer


def test_planning_in_ranges_wakes_enough_batches_and_is_idempotent(settings: Settings) -> None:
    s = settings.model_copy(update={"batch_size": 7})
    add_topics(s, "climate")
    add_subscribers(s, [(f"p{i}@example.com", "P", "en", "climate") for i in range(50)])
    release = make_release(s)
    with session_scope(s) as session:
        mark_published(session, release.id)
    queue = CountingQueue()
    import distributor.delivery as delivery

    original, delivery.PLAN_CHUNK = delivery.PLAN_CHUNK, 9  # several ranges of ids
    try:
        with session_scope(s) as session:
            assert len(delivery.subscriber_id_ranges(session)) == 6
        assert dispatch.distribute_release(s, queue, release.id) == 8  # type: ignore[arg-type]
        again = dispatch.distribute_release(s, queue, release.id)  # type: ignore[arg-type]
    finally:
        delivery.PLAN_CHUNK = original
    with session_scope(s) as session:
        assert counts(session, release.id)["pending"] == 50
    assert again == 8  # nothing new planned; the unclaimed rows get their batches again
    assert {task for task, _ in queue.sent} == {"send_batch"}


def test_an_unsubscribe_mid_batch_stops_the_rest_of_the_batch(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    s = settings.model_copy(update={"smtp_url": smtp_server.url, "batch_size": 100})
    add_topics(s, "climate")
    add_subscribers(s, [(f"p{i:03}@example.com", "P", "en", "climate") for i in range(40)])
    release = make_release(s)
    with session_scope(s) as session:
        mark_published(session, release.id)
    dispatch.distribute_release(s, CountingQueue(), release.id)  # type: ignore[arg-type]
    leaving = {f"p{i:03}@example.com" for i in range(30, 40)}
    seen: list[str] = []

    def reply(address: str) -> None:
        seen.append(address)
        if len(seen) == 5:  # they unsubscribe while the batch is being sent
            with session_scope(s) as session:
                for sub in session.scalars(select(Subscriber).where(Subscriber.email.in_(leaving))):
                    unsubscribe(session, sub.id)
            time.sleep(dispatch.LEASE_CHECK_SECONDS * 2)
        return None

    smtp_server.handler.rcpt_reply = reply  # type: ignore[assignment]
    report = dispatch.send_batch(s, release.id)
    received = set(smtp_server.handler.by_rcpt())
    assert not received & leaving
    assert len(received) == 30 and report.skipped == 10
    with session_scope(s) as session:
        c = counts(session, release.id)
    assert c["sent"] == 30 and c["cancelled"] == 10
