"""With Redis up, the domain limits are kept in Redis, where every worker sees them: each
admitted message holds a slot there until it is done, and nothing falls back to the
per-process limits. (Found by ``make mutate``: the Redis path could be broken outright, and
the silent fallback to per-process limits, N times the limit with N workers, kept every
test green.)"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from distributor.outbox import throttle
from distributor.outbox.throttle import HOLD_SECONDS, Limits, Throttle
from tests.processes import NO_BROKER


def test_domain_slots_are_held_in_redis_and_freed_there(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    namespace = f"distributor:test:{uuid.uuid4().hex}"
    slots = f"{namespace}:domain:busy.example:slots"
    client = redis.Redis.from_url(redis_url)
    pacer = Throttle(Limits(domain_concurrency=2), lambda: redis_url, namespace=namespace)
    with caplog.at_level(logging.INFO, logger="distributor.outbox.throttle"):
        assert pacer.admit("a@busy.example") == 0.0
        assert pacer.admit("b@busy.example") == 0.0
        assert client.zcard(slots) == 2
        assert pacer.admit("c@busy.example") == HOLD_SECONDS
        pacer.done("a@busy.example")
        assert pacer.admit("c@busy.example") == 0.0  # a's slot freed in the same round trip
        assert client.zcard(slots) == 2
        pacer.close()
        assert client.zcard(slots) == 0
    assert caplog.records == []  # never "Redis unreachable"
    client.close()


@pytest.fixture
def asked(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The domain questions a Throttle asks Redis (its admit script's calls), by a client
    of the real Redis that counts them; a fresh namespace (``Throttle(namespace=…)``)."""
    calls: list[str] = []
    real = throttle.connect

    def counting(url: str) -> redis.Redis:
        client = real(url)
        evalsha = client.evalsha

        def counted(sha: str, *args: object) -> object:
            calls.append(sha)
            return evalsha(sha, *args)

        client.evalsha = counted  # type: ignore[method-assign]
        return client

    monkeypatch.setattr(throttle, "connect", counting)
    yield calls


def test_a_redis_that_lost_its_scripts_is_given_them_again(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A Redis restarted since (its scripts gone: SCRIPT FLUSH) is given the script again,
    on either path (a plain question, or one that frees finished slots first): the slots
    stay in Redis, nothing falls back to the per-process limits."""
    namespace = f"distributor:test:{uuid.uuid4().hex}"
    slots = f"{namespace}:domain:busy.example:slots"
    client = redis.Redis.from_url(redis_url)
    pacer = Throttle(Limits(domain_concurrency=2), lambda: redis_url, namespace=namespace)
    with caplog.at_level(logging.INFO, logger="distributor.outbox.throttle"):
        client.script_flush()
        assert pacer.admit("a@busy.example") == 0.0
        client.script_flush()
        assert pacer.admit("b@busy.example") == 0.0
        assert client.zcard(slots) == 2
        assert pacer.admit("c@busy.example") == HOLD_SECONDS
        client.script_flush()
        pacer.done("a@busy.example")
        assert pacer.admit("c@busy.example") == 0.0  # freed, then asked, after the reload
        assert client.zcard(slots) == 2  # one freed, c's taken
        pacer.close()
        assert client.zcard(slots) == 0
    assert caplog.records == []
    client.close()


def test_slots_freed_together_are_freed_before_the_next_question(redis_url: str) -> None:
    namespace = f"distributor:test:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(redis_url)
    pacer = Throttle(Limits(domain_concurrency=2), lambda: redis_url, namespace=namespace)
    assert pacer.admit("a@busy.example") == pacer.admit("b@busy.example") == 0.0
    pacer.done("a@busy.example")
    pacer.done("b@busy.example")
    assert pacer.admit("c@busy.example") == 0.0  # one round trip: two frees, then c's answer
    assert client.zcard(f"{namespace}:domain:busy.example:slots") == 1
    pacer.close()
    client.close()


def test_a_domain_rate_in_redis_spaces_messages_and_a_held_domain_is_not_asked_again(
    redis_url: str, asked: list[str]
) -> None:
    """At one message every 2 s to a domain, the second is held for about 2 s; until then
    that domain is not asked again (the answer is known), while another domain is."""
    namespace = f"distributor:test:{uuid.uuid4().hex}"
    pacer = Throttle(Limits(domain_rate=0.5), lambda: redis_url, namespace=namespace)
    assert pacer.admit("a@slow.example") == 0.0
    held = pacer.admit("b@slow.example")
    assert HOLD_SECONDS < held <= 2.0  # the next token: 2 s after a's, less the time since
    before = len(asked)
    again = pacer.admit("c@slow.example")
    assert HOLD_SECONDS <= again <= held and len(asked) == before  # known blocked: not asked
    assert pacer.admit("d@other.example") == 0.0
    assert len(asked) == before + 1
    pacer.close()
    # A wait shorter than the hold (2 a second: half a second) is not asked again either.
    faster = Throttle(
        Limits(domain_rate=2.0), lambda: redis_url, namespace=f"distributor:test:{uuid.uuid4().hex}"
    )
    assert faster.admit("a@quick.example") == 0.0
    assert faster.admit("b@quick.example") == HOLD_SECONDS
    before = len(asked)
    assert faster.admit("c@quick.example") == HOLD_SECONDS and len(asked) == before
    faster.close()


def test_admit_keeps_the_global_rate_in_redis(redis_url: str) -> None:
    """A sender that admits each message (the send loop's way, with a domain limit on)
    spends one global token a message: at 500 a second (a burst of 50, reserved ahead in
    several tokens at once), the k-th message goes no earlier than (k - burst + 1) / 500 s
    after the first question."""
    rate, namespace = 500.0, f"distributor:test:{uuid.uuid4().hex}"
    pacer = Throttle(
        Limits(rate=rate, domain_concurrency=100), lambda: redis_url, namespace=namespace
    )
    started = time.monotonic()
    went = []
    for k in range(150):
        assert pacer.admit(f"p{k}@d{k}.example") == 0.0
        went.append(time.monotonic() - started)
        pacer.done(f"p{k}@d{k}.example")
    early = throttle.burst_for(rate) - 1
    assert all(at >= (k - early) / rate - 0.005 for k, at in enumerate(went)), went
    pacer.close()


def test_a_process_that_saw_many_held_domains_forgets_the_long_free_ones(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, asked: list[str]
) -> None:
    """Past MAX_REMEMBERED held domains, those free again are forgotten (the memory of one
    process stays bounded) and the ones still held are still not asked."""
    monkeypatch.setattr(throttle, "MAX_REMEMBERED", 2)
    pacer = Throttle(
        Limits(domain_rate=0.5), lambda: redis_url, namespace=f"distributor:test:{uuid.uuid4().hex}"
    )
    for n in range(4):  # each domain: one message goes, the next is held for ~2 s
        assert pacer.admit(f"a@d{n}.example") == 0.0
        assert pacer.admit(f"b@d{n}.example") >= HOLD_SECONDS
    before = len(asked)
    assert all(pacer.admit(f"c@d{n}.example") >= HOLD_SECONDS for n in range(4))
    assert len(asked) == before  # every one still known to be held: none asked
    pacer.close()


def test_without_redis_a_finished_message_frees_one_slot_of_its_domain() -> None:
    """Redis unreachable: this process keeps the domain's concurrency (3 here) itself, and
    each finished message frees exactly one slot."""
    pacer = Throttle(Limits(domain_concurrency=3), lambda: NO_BROKER, namespace="x")
    assert [pacer.admit(f"{n}@busy.example") for n in "abc"] == [0.0, 0.0, 0.0]
    assert pacer.admit("d@busy.example") == HOLD_SECONDS
    pacer.done("a@busy.example")
    assert pacer.admit("d@busy.example") == 0.0
    assert pacer.admit("e@busy.example") == HOLD_SECONDS  # three in flight again
    pacer.close()


def test_a_redis_that_hangs_costs_a_send_half_a_second_then_the_limits_are_local(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Redis that takes the connection and never answers (a hung server, a dead host's
    half-open socket) stalls a sender for REDIS_TIMEOUT at most: then this process keeps
    the limits itself, and says so."""
    with socket.socket() as hung:  # listens, never accepts nor answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"redis://127.0.0.1:{hung.getsockname()[1]}/0"
        pacer = Throttle(Limits(domain_concurrency=2), lambda: url, namespace="x")
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="distributor.outbox.throttle"):
            assert pacer.admit("a@busy.example") == 0.0
        took = time.monotonic() - started
        pacer.close()
    assert took < 3 * throttle.REDIS_TIMEOUT, took  # not a socket's default: for ever
    assert "Redis unreachable" in caplog.text
