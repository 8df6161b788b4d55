"""With Redis up, the domain limits are kept in Redis, where every worker sees them: each
admitted message holds a slot there until it is done, and nothing falls back to the
per-process limits. (Found by ``make mutate``: the Redis path could be broken outright, and
the silent fallback to per-process limits, N times the limit with N workers, kept every
test green.)"""

from __future__ import annotations

import logging
import uuid

import pytest
import redis

from distributor.outbox.throttle import HOLD_SECONDS, Limits, Throttle


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
