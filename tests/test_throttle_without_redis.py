"""The send limits while Redis cannot be reached: each process keeps its share of them
(the limit divided by the worker processes, at least one slot), per domain, and a slot
freed is a slot again. And the per-process bucket's burst after an idle spell. The clock is
injected: no test here waits. (Found by ``make mutate``: the fallback's domain concurrency
could be dropped, shared wrongly or never freed, and the bucket could refuse its burst,
with every test green.)"""

from __future__ import annotations

import logging

import pytest

from distributor.outbox import throttle
from distributor.outbox.throttle import HOLD_SECONDS, Limits, LocalBucket, Throttle
from tests.helpers import FakeClock
from tests.processes import NO_BROKER


@pytest.fixture
def clock() -> FakeClock:
    """The clock the throttles of a test read and wait on."""
    return FakeClock()


def down(limits: Limits, clock: FakeClock) -> Throttle:
    """A throttle whose Redis nobody answers: it keeps the limits in this process."""
    return Throttle(limits, lambda: NO_BROKER, namespace="distributor:test:down", clock=clock)


def test_each_process_keeps_its_share_of_a_domains_slots(clock: FakeClock) -> None:
    """Four messages in flight per domain across two processes: this one lets two through
    per domain, holds the third back, lets it go once one is done; other domains apart."""
    pacer = down(Limits(domain_concurrency=4, processes=2), clock)
    assert [pacer.admit(f"p{i}@busy.example") for i in range(2)] == [0.0, 0.0]
    assert pacer.admit("p3@busy.example") == HOLD_SECONDS
    assert pacer.admit("q@quiet.example") == 0.0
    pacer.done("p0@busy.example")
    assert pacer.admit("p3@busy.example") == 0.0
    assert pacer.admit("p4@busy.example") == HOLD_SECONDS
    pacer.close()
    assert pacer.admit("p4@busy.example") == 0.0


def test_a_share_is_whole_slots_and_at_least_one(clock: FakeClock) -> None:
    """One message in flight per domain across four processes: each still sends one. Three
    across two: each sends one (not one and a half), so together they stay within three."""
    for limits in (
        Limits(domain_concurrency=1, processes=4),
        Limits(domain_concurrency=3, processes=2),
    ):
        pacer = down(limits, clock)
        assert pacer.admit("a@one.example") == 0.0
        assert pacer.admit("b@one.example") == HOLD_SECONDS


def test_each_process_keeps_its_share_of_a_domains_rate(clock: FakeClock) -> None:
    """Ten messages a second to a domain across two processes: this one sends five a second,
    one at a time (a burst of a tenth of a second's worth is none), the next 0.2 s later."""
    pacer = down(Limits(domain_rate=10.0, processes=2), clock)
    assert pacer.admit("a@slow.example") == 0.0
    assert pacer.admit("b@slow.example") >= HOLD_SECONDS
    clock.now += 0.2
    assert pacer.admit("b@slow.example") == 0.0


def test_an_idle_bucket_lets_a_tenth_of_a_second_go_at_once(clock: FakeClock) -> None:
    """100 a second, idle: ten tokens are due now, the eleventh one interval later; asked
    for while not due, ``take_now`` says how long to wait and takes nothing."""
    bucket = LocalBucket(100.0, clock)
    assert all(bucket.acquire() <= 0 for _ in range(10))
    assert bucket.acquire() == pytest.approx(0.01)
    other = LocalBucket(100.0, clock)
    assert [other.take_now() for _ in range(10)] == [0.0] * 10
    assert other.take_now() == pytest.approx(0.01)
    assert other.take_now() == pytest.approx(0.01)  # nothing was taken


def test_redis_is_asked_again_only_after_a_pause_and_the_outage_is_told_once(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """While Redis is down a message does not wait for a connection attempt each time: it
    is tried again after ``REDIS_RETRY_SECONDS``; one warning for the whole outage. A broker
    URL that cannot even be had (the embedded Redis failing to start) is an outage too."""
    asked: list[float] = []

    def url() -> str:
        asked.append(clock.now)
        if len(asked) == 1:
            raise RuntimeError("embedded Redis did not start")
        return NO_BROKER

    pacer = Throttle(
        Limits(domain_concurrency=100), url, namespace="distributor:test:down", clock=clock
    )
    with caplog.at_level(logging.WARNING, logger="distributor.outbox.throttle"):
        for _ in range(5):
            assert pacer.admit("a@one.example") == 0.0
        clock.now += throttle.REDIS_RETRY_SECONDS + 0.1
        for _ in range(5):
            assert pacer.admit("a@one.example") == 0.0
    assert len(asked) == 2
    assert len([r for r in caplog.records if "Redis unreachable" in r.getMessage()]) == 1


def test_the_global_rate_holds_without_redis(clock: FakeClock) -> None:
    """100 messages a second, Redis down, one process: 200 messages take two seconds of the
    (injected) clock, less the burst an idle bucket lets go at once."""
    pacer = down(Limits(rate=100.0), clock)
    start = clock.now
    for _ in range(200):
        pacer.wait()
    assert 1.85 <= clock.now - start <= 2.0
