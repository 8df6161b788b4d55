"""Send limits across workers (distributor/throttle.py) on the real test Redis: the global
token bucket shared by several senders, the per-domain concurrency across processes, slots
of a dead holder expiring, no Redis call without limits, send_batch giving back rows over a
domain's limit, and per-process pacing while Redis is down."""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select

from distributor import dispatch, throttle
from distributor.config import Settings
from distributor.db import session_scope
from distributor.delivery import counts
from distributor.models import Delivery, Subscriber, utcnow
from distributor.throttle import Limits, Throttle, TokenBucket
from tests.helpers import published
from tests.processes import NO_BROKER
from tests.smtp_server import SMTPServer


def _namespace() -> str:
    return f"test:throttle:{uuid.uuid4().hex[:8]}"


def test_a_bucket_reserves_ahead_one_interval_apart(redis_url: str) -> None:
    bucket = TokenBucket(redis.Redis.from_url(redis_url), _namespace(), rate=10)  # burst 1
    assert bucket.acquire(5) <= 0  # the first of five is due now, the fifth 0.4 s later
    assert bucket.acquire() == pytest.approx(0.5, abs=0.05)  # so the next is due in 0.5 s
    assert bucket.acquire(2) == pytest.approx(0.6, abs=0.05)


def test_three_senders_share_one_global_rate(redis_url: str) -> None:
    rate, seconds, namespace = 50.0, 1.5, _namespace()
    sent = [0, 0, 0]

    def sender(i: int) -> None:
        pacer = Throttle(Limits(rate=rate), lambda: redis_url, namespace=namespace)
        end = time.monotonic() + seconds
        while True:
            pacer.wait()
            if time.monotonic() > end:
                return
            sent[i] += 1

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total, expected = sum(sent), rate * seconds  # 75, plus a burst of 5 at most
    assert 0.85 * expected <= total <= expected + throttle.burst_for(rate) + 2, sent
    assert min(sent) >= total / 6, sent  # they interleave: no sender starves


def _hold_slots(url: str, namespace: str, seconds: float) -> tuple[int, int]:
    """In a process of its own, once all three are ready: for ``seconds``, admit messages to
    one domain, mark each in flight for 10 ms in a Redis counter (recording the count
    seen), then finish it. Returns (admitted, held back)."""
    client = redis.Redis.from_url(url)
    pacer = Throttle(Limits(domain_concurrency=2), lambda: url, namespace=namespace)
    admitted = held = 0
    client.incr(f"{namespace}:ready")  # start together, however long each took to start
    deadline = time.monotonic() + 20
    while int(client.get(f"{namespace}:ready") or 0) < 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pacer.admit("someone@Example.ORG"):
            held += 1
            time.sleep(0.002)
            continue
        admitted += 1
        client.rpush(f"{namespace}:seen", client.incr(f"{namespace}:in-flight"))
        time.sleep(0.01)
        client.decr(f"{namespace}:in-flight")
        pacer.done("someone@example.org")
    pacer.close()
    return admitted, held


def test_domain_concurrency_holds_across_processes(redis_url: str) -> None:
    namespace = _namespace()
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.starmap(_hold_slots, [(redis_url, namespace, 0.6)] * 3)
    seen = [int(n) for n in redis.Redis.from_url(redis_url).lrange(f"{namespace}:seen", 0, -1)]
    assert max(seen) == 2  # never more than two in flight, and the limit was reached
    assert sum(admitted for admitted, _ in results) > 20, results
    assert sum(held for _, held in results) > 0, results


def _admit_and_die(url: str, namespace: str) -> None:
    pacer = Throttle(Limits(domain_concurrency=1), lambda: url, namespace=namespace,
                     slot_seconds=0.5)  # fmt: skip
    assert pacer.admit("a@dead.example") == 0.0
    os._exit(0)  # dies holding its slot: no done(), no close()


def test_a_dead_holders_slot_expires(redis_url: str) -> None:
    namespace = _namespace()
    holder = multiprocessing.get_context("spawn").Process(
        target=_admit_and_die, args=(redis_url, namespace)
    )
    holder.start()
    holder.join(timeout=30)
    died = time.monotonic()
    pacer = Throttle(Limits(domain_concurrency=1), lambda: redis_url, namespace=namespace)
    assert pacer.admit("b@dead.example") >= throttle.HOLD_SECONDS  # the dead one holds it
    time.sleep(max(0.0, died + 0.6 - time.monotonic()))
    assert pacer.admit("b@dead.example") == 0.0  # its slot expired
    pacer.close()


class _Listener:
    """A TCP port that accepts connections and counts them: a "Redis" that records being
    asked anything at all."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.setblocking(False)
        self.url = f"redis://127.0.0.1:{self.sock.getsockname()[1]}/13"

    def connections(self) -> int:
        n = 0
        while True:
            try:
                conn, _ = self.sock.accept()
            except BlockingIOError:
                return n
            conn.close()
            n += 1


def test_without_limits_the_send_path_never_asks_redis(
    sqlite_settings: Settings, smtp_server: SMTPServer
) -> None:
    listener = _Listener()
    s = sqlite_settings.model_copy(update={"smtp_url": smtp_server.url,
                                           "broker_url": listener.url})  # fmt: skip
    assert throttle.pacer(s) is throttle.UNLIMITED
    release_id = published(s, [f"p{i}@example.com" for i in range(20)])
    assert dispatch.send_batch(s, release_id).outcomes["sent"] == 20
    assert listener.connections() == 0
    listener.sock.close()


def test_rows_over_a_domain_limit_are_given_back_and_sent_later(
    settings: Settings, smtp_server: SMTPServer, redis_url: str
) -> None:
    a, b = (f"{name}-{uuid.uuid4().hex[:8]}.example" for name in ("a", "b"))
    s = settings.model_copy(
        update={"smtp_url": smtp_server.url, "broker_url": redis_url, "domain_rate": 1.0}
    )  # one message a second to each domain, one at once after an idle spell
    release_id = published(s, [f"one@{a}", *(f"p{i}@{b}" for i in range(4))])
    before = utcnow()
    report = dispatch.send_batch(s, release_id)
    assert report.claimed == 5 and report.outcomes["sent"] == 2  # one for each domain
    assert report.held == 3 and 0 < report.retry_in <= throttle.HOLD_SECONDS + 1  # the worker
    # task enqueues the next batch for then, so the held rows do not wait for the sweep
    with session_scope(s) as session:
        back = session.execute(
            select(Delivery.status, Delivery.attempts, Delivery.next_attempt_at,
                   Delivery.lease_token)
            .join(Subscriber).where(Subscriber.email.like(f"%@{b}"), Delivery.status != "sent")
        ).all()  # fmt: skip
    assert len(back) == 3
    for status, attempts, next_attempt_at, lease in back:
        assert (status, attempts, lease) == ("pending", 0, None)  # not attempted, not leased
        assert next_attempt_at >= before + timedelta(seconds=throttle.HOLD_SECONDS)
    assert dispatch.send_batch(s, release_id).claimed == 0  # not due yet: nothing to claim
    time.sleep(throttle.HOLD_SECONDS + 0.2)
    faster = s.model_copy(update={"domain_rate": 100.0})
    assert dispatch.send_batch(faster, release_id).outcomes["sent"] == 3  # a later batch
    with session_scope(s) as session:
        assert counts(session, release_id)["sent"] == 5
    received = smtp_server.handler.by_rcpt()
    assert len(received) == 5 and all(len(m) == 1 for m in received.values())


def test_redis_down_falls_back_to_per_process_pacing(caplog: pytest.LogCaptureFixture) -> None:
    pacer = Throttle(
        Limits(rate=40.0, domain_rate=5.0, processes=2), lambda: NO_BROKER, namespace=_namespace()
    )  # nobody listens on NO_BROKER: this process keeps 20/s, and 2.5/s per domain
    sent = 0
    with caplog.at_level(logging.WARNING, logger="distributor.throttle"):
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            pacer.wait()
            sent += 1
        domain = [pacer.admit("x@slow.example") for _ in range(3)]
    assert 18 <= sent <= 20 + throttle.burst_for(20) + 2  # neither stopped nor unthrottled
    assert domain[0] == 0.0 and domain[1] >= throttle.HOLD_SECONDS and domain[2] > 0
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1  # once, not once a message


def test_send_batch_with_a_rate_and_no_redis_still_sends(
    sqlite_settings: Settings, smtp_server: SMTPServer
) -> None:
    s = sqlite_settings.model_copy(
        update={"smtp_url": smtp_server.url, "broker_url": NO_BROKER, "send_rate": 200.0}
    )
    release_id = published(s, [f"p{i}@example.com" for i in range(10)])
    assert dispatch.send_batch(s, release_id).outcomes["sent"] == 10


def test_held_rows_wake_a_batch_within_seconds() -> None:
    """The worker task enqueues the next batch for when the held rows are due (so they do
    not wait for the sweep), never later than 5 s (a countdown task sits in a worker's
    memory) and not at all when nothing was held."""
    sent: list[tuple[str, tuple[object, ...], float]] = []

    class Recorder:
        def send(self, task: str, *args: object, countdown: float = 0.0) -> bool:
            sent.append((task, args, countdown))
            return True

    queue = Recorder()
    dispatch.wake_for_held(queue, "send_batch", 7, dispatch.BatchReport(held=3, retry_in=1.4))  # type: ignore[arg-type]
    dispatch.wake_for_held(queue, "send_batch", 7, dispatch.BatchReport())  # type: ignore[arg-type]
    held = dispatch.BatchReport(held=1, retry_in=60.0)
    dispatch.wake_for_held(queue, "send_correction_notices", 8, held)  # type: ignore[arg-type]
    assert sent == [("send_batch", (7,), 1.4), ("send_correction_notices", (8,), 5.0)]
