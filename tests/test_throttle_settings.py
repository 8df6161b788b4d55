"""The send limits a worker applies are the ones configured: ``DISTRIBUTOR_SEND_RATE``,
``DOMAIN_RATE``, ``DOMAIN_CONCURRENCY``, the worker processes that share them when Redis is
down, and a domain slot that outlives a dead worker by four SMTP timeouts at most. (Found
by ``make mutate``: the send rate could be read as unset, with every test green.)"""

from __future__ import annotations

from pathlib import Path

from distributor.core.config import load_settings
from distributor.outbox import throttle
from distributor.outbox.throttle import Limits, Throttle
from tests.processes import NO_BROKER


def test_the_configured_limits_are_the_ones_applied(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path, broker_url=NO_BROKER, send_rate=5.0, domain_rate=2.0,
        domain_concurrency=3, worker_concurrency=4, smtp_timeout=7.0,
    )  # fmt: skip
    assert Limits.of(settings) == Limits(rate=5.0, domain_rate=2.0, domain_concurrency=3,
                                         processes=4)  # fmt: skip
    pacer = throttle.pacer(settings)
    assert isinstance(pacer, Throttle)
    assert pacer.slot_seconds == 28.0
    assert throttle.pacer(load_settings(data_dir=tmp_path, send_rate=5.0)) is not throttle.UNLIMITED
