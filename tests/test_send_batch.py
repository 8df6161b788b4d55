"""send_batch in this process against a real SMTP server: planning in ranges, and an
unsubscribe that lands in the middle of a batch (honoured within the promised 50 ms)."""

from __future__ import annotations

import time
from itertools import pairwise

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


# The README's promise (Guarantees): "an unsubscribe stops a running batch within 50 ms",
# stated here as a figure, not as the setting that is meant to keep it.
PROMISED_BOUND = 0.05


def test_an_unsubscribe_mid_batch_stops_the_rest_of_the_batch_within_50_ms(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    """No message to someone who unsubscribed starts later than 0.05 s after the unsubscribe
    committed, and the batch goes on for the others.

    Every other recipient from the 6th on unsubscribes while the server holds its reply to
    the 5th message. A message starts before the server sees its RCPT, and after the server
    answered the previous message's envelope (the transport reads those replies before it
    takes the next message from the batch): so a message to a leaver that follows a reply
    given past the bound started past it. The server holds that reply until the bound has
    passed, which makes every later message start past it: none may reach a leaver, however
    loaded the machine."""
    s = settings.model_copy(update={"smtp_url": smtp_server.url, "batch_size": 100})
    add_topics(s, "climate")
    add_subscribers(s, [(f"p{i:03}@example.com", "P", "en", "climate") for i in range(40)])
    release = make_release(s)
    with session_scope(s) as session:
        mark_published(session, release.id)
    dispatch.distribute_release(s, CountingQueue(), release.id)  # type: ignore[arg-type]
    leaving = {f"p{i:03}@example.com" for i in range(5, 40, 2)}
    answered: list[tuple[str, float]] = []  # each RCPT, in order, and when it was answered
    committed: list[float] = []

    def reply(address: str) -> None:
        if len(answered) == 4:  # the 5th: they unsubscribe while the batch is being sent
            with session_scope(s) as session:
                for sub in session.scalars(select(Subscriber).where(Subscriber.email.in_(leaving))):
                    unsubscribe(session, sub.id)
            committed.append(time.monotonic())
            # A slow reply: the batch cannot take its next message before the bound.
            while (left := committed[0] + PROMISED_BOUND - time.monotonic()) >= 0:
                time.sleep(left + 0.001)
        answered.append((address, time.monotonic()))
        return None

    smtp_server.handler.rcpt_reply = reply
    report = dispatch.send_batch(s, release.id)
    (unsubscribed_at,) = committed
    late = [
        (rcpt, round(previous_answer - unsubscribed_at, 3))
        for (_, previous_answer), (rcpt, _) in pairwise(answered)
        if rcpt in leaving and previous_answer > unsubscribed_at + PROMISED_BOUND
    ]
    assert late == [], f"started over {PROMISED_BOUND} s after the unsubscribe (s): {late}"
    received = smtp_server.handler.by_rcpt()
    assert not set(received) & leaving
    assert len(received) == 40 - len(leaving) and report.skipped == len(leaving) == 18
    assert all(len(copies) == 1 for copies in received.values())
    with session_scope(s) as session:
        c = counts(session, release.id)
    assert c["sent"] == 22 and c["cancelled"] == 18
