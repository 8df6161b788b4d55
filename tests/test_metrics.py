"""`/metrics`: the Prometheus text computed from the shared record (the ledger built by
tests.test_report, the subscribers, the real Redis queue), served to this machine only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from distributor.core.config import Settings
from distributor.core.queue import QUEUE, TaskQueue
from distributor.reporting.metrics import LATENCY_BUCKETS, from_this_machine
from distributor.web import create_app
from tests.helpers import Samples, scrape
from tests.ledger_samples import build_ledger

UNREACHABLE = "redis://127.0.0.1:1/0"  # nothing listens on port 1: connection refused


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis]:
    """The test Redis, with the task queue emptied before and after."""
    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE)
    yield client
    client.delete(QUEUE)
    client.close()


def test_the_metrics_are_those_of_the_record(
    settings: Settings, redis_url: str, broker: redis.Redis
) -> None:
    s = settings.model_copy(update={"broker_url": redis_url})
    build_ledger(s)
    queue = TaskQueue(s)
    try:
        assert queue.send("sweep") and queue.send("regenerate_site")
    finally:
        queue.close()
    samples = scrape(s)

    messages = {"sent": 3, "failed": 1, "deferred": 1, "cancelled": 1, "pending": 1}
    for status, n in messages.items():
        assert value(samples, "distributor_messages_total", status=status) == n
    assert value(samples, "distributor_bounces_total", kind="hard") == 1
    assert value(samples, "distributor_bounces_total", kind="soft") == 1
    assert value(samples, "distributor_queue_depth") == 2 == broker.llen(QUEUE)

    subscribers = {("confirmed", "en"): 5, ("bounced", "fr"): 1, ("unsubscribed", "fr"): 1,
                   ("pending", "en"): 1, ("confirmed", "fr"): 0}  # fmt: skip
    for (status, lang), n in subscribers.items():
        assert value(samples, "distributor_subscribers", status=status, language=lang) == n

    # Sent 4 s and 90 s after publication; the release published 3 days ago is out.
    name = "distributor_send_latency_seconds"
    assert value(samples, name + "_count") == 2
    assert value(samples, name + "_sum") == pytest.approx(94, abs=0.01)
    for le in LATENCY_BUCKETS:
        expected = 0 if le < 4 else 1 if le < 90 else 2
        assert value(samples, name + "_bucket", le=str(float(le))) == expected, le
    assert value(samples, name + "_bucket", le="+Inf") == 2


def test_an_unreachable_broker_leaves_out_only_the_queue_depth(sqlite_settings: Settings) -> None:
    s = sqlite_settings.model_copy(update={"broker_url": UNREACHABLE})
    samples = scrape(s)
    assert not any(name == "distributor_queue_depth" for name, _ in samples)
    assert value(samples, "distributor_messages_total", status="sent") == 0
    assert value(samples, "distributor_send_latency_seconds_count") == 0


def test_only_this_machine_may_read_them(sqlite_settings: Settings) -> None:
    app = create_app(sqlite_settings.model_copy(update={"broker_url": UNREACHABLE}))
    for host, status in [("127.0.0.1", 200), ("127.9.9.9", 200), ("::1", 200),
                         ("testclient", 403), ("10.0.0.7", 403), ("2001:db8::1", 403)]:  # fmt: skip
        assert TestClient(app, client=(host, 40000)).get("/metrics").status_code == status, host
    local = TestClient(app, client=("127.0.0.1", 40000))
    # Passed on by a reverse proxy: whatever the address, not this machine's own request.
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        assert local.get("/metrics", headers={header: "127.0.0.1"}).status_code == 403, header


def test_from_this_machine() -> None:
    assert from_this_machine("::ffff:127.0.0.1", {})
    assert not from_this_machine("::ffff:10.0.0.1", {})
    assert not from_this_machine(None, {})
    assert not from_this_machine("localhost", {})  # a name, not an address
