"""End to end on real components: a `distributor worker` subprocess (Celery, prefork) on the
real Redis, a real SMTP server (aiosmtpd), SQLite and PostgreSQL."""

from __future__ import annotations

import random
import time
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from distributor import actions
from distributor.core import heartbeat
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Delivery, Subscriber, SubscriberStatus, utcnow
from distributor.core.queue import QUEUE, TaskQueue
from distributor.reporting.status import release_status
from distributor.web import create_app
from tests.helpers import add_subscribers, add_topics, make_release
from tests.processes import running_worker, wait_until
from tests.smtp_server import SMTPServer

TOPICS = ("climate", "science", "space")


def population(n: int, seed: int = 7) -> list[tuple[str, str, str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topics = ";".join(rng.sample(TOPICS, rng.randint(1, 2)))
        name = rng.choice(["Anne Martin", "Zoë Müller", "Ødegård, Kai", "Li Wei", ""])
        rows.append((f"person{i}@example.com", name, rng.choice(["en", "fr"]), topics))
    return rows


def expected_recipients(settings: Settings, release_lang: str, topic: str) -> set[str]:
    with session_scope(settings) as session:
        return {
            s.email
            for s in session.scalars(select(Subscriber))
            if s.status == SubscriberStatus.CONFIRMED
            and s.language == release_lang
            and topic in {t.slug for t in s.topics}
        }


@pytest.fixture
def live(settings: Settings, smtp_server: SMTPServer, redis_url: str, tmp_path: Path) -> Settings:
    """Settings wired to the test Redis and the test SMTP server, with short retries."""
    return settings.model_copy(
        update={
            "broker_url": redis_url,
            "smtp_url": smtp_server.url,
            "retry_base_seconds": 1.0,
            "batch_size": 100,
        }
    )


def wait_sent(settings: Settings, release_id: int, timeout: float = 120) -> None:
    def finished() -> bool:
        with session_scope(settings) as session:
            st = release_status(session, release_id)
        return st.planned > 0 and st.open == 0

    wait_until(finished, timeout, f"release {release_id} to be sent")


# Tasks are acknowledged late (task_acks_late): one a worker has taken stays in kombu's
# ``unacked`` hash until it has run, so an empty queue and an empty hash mean nothing waits
# and nothing runs.
UNACKED = "unacked"


def wait_idle(settings: Settings, what: str, timeout: float = 120) -> None:
    """Wait until no task waits in the queue and none is being run, on two polls in a row
    (a task moves from the queue to the hash in two steps)."""
    client = redis.Redis.from_url(settings.broker_url or "")
    quiet = [0]

    def idle() -> bool:
        busy = client.llen(QUEUE) or client.hlen(UNACKED)
        quiet[0] = 0 if busy else quiet[0] + 1
        return quiet[0] >= 2

    try:
        wait_until(idle, timeout, what)
    finally:
        client.close()


def leased(settings: Settings, release_id: int) -> int:
    """How many of the release's rows are under a lease not yet expired."""
    with session_scope(settings) as session:
        return (
            session.scalar(
                select(func.count()).where(
                    Delivery.release_id == release_id, Delivery.lease_until >= utcnow()
                )
            )
            or 0
        )


def test_publish_reaches_every_matching_subscriber_exactly_once(
    live: Settings, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    add_topics(live, *TOPICS)
    people = population(1000)
    add_subscribers(live, people[:900])
    add_subscribers(live, people[900:], confirmed=False)  # pending: never mailed
    release = make_release(live, topics="climate")
    expected = expected_recipients(live, "en", "climate")
    assert 150 < len(expected) < 400

    queue = TaskQueue(live)
    with running_worker(live, tmp_path / "logs"):
        actions.publish(live, queue, release.id)
        wait_sent(live, release.id)
        feed = live.public_dir / "feeds" / "en" / "releases.atom"
        wait_until(feed.exists, 30, "the Atom feed")

    received = smtp_server.handler.by_rcpt()
    assert set(received) == expected
    assert all(len(copies) == 1 for copies in received.values())
    with session_scope(live) as session:
        st = release_status(session, release.id)
    assert st.counts["sent"] == len(expected) and st.counts["failed"] == 0

    message_ids = set()
    for rcpt, (copy,) in received.items():
        msg = copy.parsed()
        assert msg["To"].addresses[0].addr_spec == rcpt
        assert msg["Subject"] == "Agency signs agreement"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        for header in ("From", "Date", "Message-ID", "List-Id", "List-Unsubscribe"):
            assert msg[header], header
        message_ids.add(msg["Message-ID"])
        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        assert text is not None and html is not None
        assert "The Agency today signed" in text.get_content()
        assert "Jane Doe" in html.get_content()
    assert len(message_ids) == len(expected)

    # The List-Unsubscribe URL of one message works with a bare one-click POST.
    rcpt, (copy,) = next(iter(received.items()))
    url = copy.parsed()["List-Unsubscribe"].strip("<>")
    assert url.startswith("https://news.example.org/unsubscribe/")
    client = TestClient(create_app(live))
    response = client.post(urlsplit(url).path, data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    with session_scope(live) as session:
        sub = session.scalar(select(Subscriber).where(Subscriber.email == rcpt))
        assert sub is not None and sub.status == SubscriberStatus.UNSUBSCRIBED

    parsed = feedparser.parse(feed.read_bytes())
    assert parsed.bozo == 0
    assert [e.title for e in parsed.entries] == ["Agency signs agreement"]


def test_running_every_task_twice_sends_nothing_twice(
    live: Settings, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    add_topics(live, *TOPICS)
    add_subscribers(live, population(300))
    release = make_release(live, topics="climate")
    expected = expected_recipients(live, "en", "climate")
    queue = TaskQueue(live)
    with running_worker(live, tmp_path / "logs"):
        actions.publish(live, queue, release.id)
        queue.send("distribute_release", release.id)
        for _ in range(4):
            queue.send("send_batch", release.id)
        wait_sent(live, release.id)
        for _ in range(3):
            queue.send("distribute_release", release.id)
            queue.send("send_batch", release.id)
            queue.send("sweep")
        # A duplicate could still come from a task being run, or from a row whose lease
        # runs out and a sweep re-enqueues: count once none of that can happen any more.
        wait_idle(live, "the queue to drain and the tasks taken from it to finish")
        wait_until(lambda: leased(live, release.id) == 0, live.lease_seconds + 30,
                   "every lease to end")  # fmt: skip
        broker = redis.Redis.from_url(live.broker_url or "")
        broker.delete(heartbeat.KEY)  # a sweep sets it: the sign that one has run
        queue.send("sweep")
        wait_until(lambda: bool(broker.exists(heartbeat.KEY)), 60, "a sweep to run")
        broker.close()
        wait_idle(live, "what the sweep enqueued to be run")
    received = smtp_server.handler.by_rcpt()
    assert set(received) == expected
    assert max(len(v) for v in received.values()) == 1


def test_temporary_failures_are_retried_and_permanent_ones_never(
    live: Settings, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    add_topics(live, *TOPICS)
    add_subscribers(live, population(200))
    release = make_release(live, topics="climate")
    expected = sorted(expected_recipients(live, "en", "climate"))
    greylisted, rejected = set(expected[:10]), set(expected[10:15])
    attempts: dict[str, int] = {}

    def reply(address: str) -> str | None:
        attempts[address] = attempts.get(address, 0) + 1
        if address in rejected:
            return "550 5.1.1 No such user"
        if address in greylisted and attempts[address] == 1:
            return "451 4.7.1 Greylisted, try again later"
        return None

    smtp_server.handler.rcpt_reply = reply
    queue = TaskQueue(live)
    with running_worker(live, tmp_path / "logs"):
        actions.publish(live, queue, release.id)

        def all_done() -> bool:
            queue.send("sweep")  # beat's job: re-enqueue deferred rows once they are due
            with session_scope(live) as session:
                st = release_status(session, release.id)
            return st.planned > 0 and st.open == 0

        wait_until(all_done, 60, "retries to finish")
    received = smtp_server.handler.by_rcpt()
    assert set(received) == set(expected) - rejected
    assert all(len(v) == 1 for v in received.values())
    assert all(attempts[a] == 2 for a in greylisted)
    assert all(attempts[a] == 1 for a in rejected)
    with session_scope(live) as session:
        st = release_status(session, release.id)
        bounced = set(
            session.scalars(
                select(Subscriber.email).where(Subscriber.status == SubscriberStatus.BOUNCED)
            )
        )
    assert st.counts["failed"] == len(rejected)
    assert bounced == rejected


def test_a_worker_killed_mid_send_loses_nothing(
    live: Settings, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    import os
    import signal

    live = live.model_copy(update={"lease_seconds": 5, "batch_size": 50})
    add_topics(live, *TOPICS)
    add_subscribers(live, population(600))
    release = make_release(live, topics="climate")
    expected = expected_recipients(live, "en", "climate")

    def slow(_address: str) -> None:
        time.sleep(0.01)  # ~100 messages/s per connection: the kill lands mid-send
        return None

    smtp_server.handler.rcpt_reply = slow  # type: ignore[assignment]
    queue = TaskQueue(live)
    with running_worker(live, tmp_path / "first") as worker:
        actions.publish(live, queue, release.id)
        wait_until(lambda: len(smtp_server.handler.messages) >= 40, 60, "sending to start")
        os.killpg(worker.pid, signal.SIGKILL)  # the whole worker: parent and children
        worker.wait()
    sent_before = len(smtp_server.handler.by_rcpt())
    assert sent_before < len(expected)
    with running_worker(live, tmp_path / "second"):

        def drained() -> bool:
            queue.send("sweep")
            with session_scope(live) as session:
                st = release_status(session, release.id)
            return st.open == 0

        wait_until(drained, 90, "the sweep to finish the release after the kill")
    received = smtp_server.handler.by_rcpt()
    assert set(received) == expected  # lost: none
    duplicated = [r for r, copies in received.items() if len(copies) > 1]
    # Only messages accepted by the server but not yet recorded when the kill landed can
    # go twice: at most one group of outcomes (DISTRIBUTOR_OUTCOME_GROUP) per worker process.
    assert len(duplicated) <= 2 * live.outcome_group
