"""What `releases publish` says of the send ahead (reporting/estimate.py): how many it goes
to — exactly whom the planning gives a row — and how long, timed by the installation's
latest large send."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Delivery, DeliveryStatus, utcnow
from distributor.outbox import sending
from distributor.releases.lifecycle import mark_published
from distributor.reporting.estimate import duration, estimate
from tests.helpers import CountingQueue, add_subscribers, make_release, published


def test_a_release_is_timed_by_the_latest_large_send(settings: Settings) -> None:
    first = published(settings, 40)  # planned: 40 rows
    add_subscribers(settings, [(f"q{i:04}@example.com", "Q", "en", "climate") for i in range(1160)])
    again = make_release(settings, slug="again", title="Again").id  # to 1,200 followers
    with session_scope(settings) as session:
        mark_published(session, again)
    sending.distribute_release(settings, CountingQueue(), again)  # type: ignore[arg-type]
    t0 = utcnow() - timedelta(hours=1)
    with session_scope(settings) as session:
        session.execute(  # the 1,200 went out over 12 s: 100 messages/s
            update(Delivery)
            .where(Delivery.release_id == again)
            .values(status=DeliveryStatus.SENT, sent_at=t0)
        )
        last = session.scalar(select(func.max(Delivery.id)).where(Delivery.release_id == again))
        session.execute(
            update(Delivery).where(Delivery.id == last).values(sent_at=t0 + timedelta(seconds=12))
        )
    ahead_id = make_release(settings, slug="another", title="Another").id
    with session_scope(settings) as session:
        ahead = estimate(session, ahead_id)
        timed_by_itself = estimate(session, again)
        too_small = estimate(session, first)  # the latest large send is `again`'s
    assert (ahead.recipients, ahead.measured_on) == (1200, again)
    assert ahead.rate == pytest.approx(100.0)
    assert ahead.describe() == (
        f"1,200 recipients: about 12 s at 100 messages/s (the rate of release {again}'s send)"
    )
    assert timed_by_itself.rate is None  # a release is never timed by its own send
    assert "no earlier send of 1,000 or more to time it by" in timed_by_itself.describe()
    assert too_small.measured_on == again


def test_the_audience_counts_whom_the_planning_would_give_a_row(settings: Settings) -> None:
    release_id = published(settings, 5)
    add_subscribers(settings, [("fr@example.com", "F", "fr", "climate")])  # another language
    with session_scope(settings) as session:
        rows = session.scalar(select(func.count()).where(Delivery.release_id == release_id))
        assert estimate(session, release_id).recipients == rows == 5


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(0.2, "1 s"), (41.4, "41 s"), (400, "7 min"), (4800, "1 h 20 min"), (7200, "2 h")],
)
def test_a_duration_is_said_as_a_person_would(seconds: float, said: str) -> None:
    assert duration(seconds) == said
