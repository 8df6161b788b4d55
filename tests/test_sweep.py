"""The sweep, beat's repair round: what it plans and what it leaves alone, what it reports,
the site regeneration it asks for, and what it does when the broker cannot be reached."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Delivery, DeliveryStatus, Subscriber, SubscriberStatus, utcnow
from distributor.core.queue import TaskQueue
from distributor.outbox import sweep
from distributor.releases.lifecycle import mark_published
from tests.helpers import (
    CountingQueue,
    add_subscribers,
    add_topics,
    free_port,
    make_release,
    published,
)


@pytest.fixture
def s(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"broker_url": redis_url})


def planned_rows(settings: Settings, release_id: int) -> int:
    with session_scope(settings) as session:
        return int(
            session.scalar(
                select(func.count()).select_from(Delivery).where(Delivery.release_id == release_id)
            )
            or 0
        )


def test_a_lost_plan_is_made_for_a_published_release_only(s: Settings) -> None:
    """A published release whose planning was lost is planned; a draft and a scheduled
    release, never planned either, are left alone (planning them would send them)."""
    add_topics(s, "climate")
    add_subscribers(s, [("ann@example.com", "Ann", "en", "climate")])
    draft = make_release(s, slug="draft", title="Draft")
    scheduled = make_release(s, slug="later", title="Later")
    lost = make_release(s, slug="lost", title="Lost")
    with session_scope(s) as session:
        mark_published(session, scheduled.id, at=utcnow() + timedelta(days=1))
        mark_published(session, lost.id)  # published, its plan never made (a lost wake-up)
    queue = CountingQueue()
    report = sweep.sweep(s, queue)  # type: ignore[arg-type]
    assert report.planned == [lost.id]
    assert (planned_rows(s, lost.id), planned_rows(s, draft.id), planned_rows(s, scheduled.id)) == (
        1,
        0,
        0,
    )
    assert set(queue.tasks("send_batch")) == {(lost.id,)}  # woken for it, and for no other


def test_the_report_counts_the_rows_it_cancelled(s: Settings) -> None:
    """A subscriber who stopped being confirmed by a path that cancelled nothing (a bounce
    recorded elsewhere) has their unsent rows cancelled by the sweep, and counted."""
    release_id = published(s, ["ann@example.com", "bob@example.com"])
    with session_scope(s) as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.email == "bob@example.com")
            .values(status=SubscriberStatus.BOUNCED)
        )
    report = sweep.sweep(s, CountingQueue())  # type: ignore[arg-type]
    assert report.cancelled == 1
    with session_scope(s) as session:
        statuses = dict(
            session.execute(
                select(Subscriber.email, Delivery.status)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.release_id == release_id)
            ).all()
        )
    assert statuses == {
        "ann@example.com": DeliveryStatus.PENDING,
        "bob@example.com": DeliveryStatus.CANCELLED,
    }


def test_a_sweep_asks_for_the_site_once(s: Settings) -> None:
    """An idle sweep asks for a regeneration (a lost one is made good); one that published a
    scheduled release asks once, not twice."""
    idle = CountingQueue()
    sweep.sweep(s, idle)  # type: ignore[arg-type]
    assert idle.tasks("regenerate_site") == [()]
    add_topics(s, "climate")
    release = make_release(s)
    with session_scope(s) as session:
        mark_published(session, release.id, at=utcnow() + timedelta(minutes=5))
    publishing = CountingQueue()
    report = sweep.sweep(s, publishing, now=utcnow() + timedelta(minutes=6))  # type: ignore[arg-type]
    assert report.published == [release.id]
    assert publishing.tasks("regenerate_site") == [()]


def test_a_broker_out_of_reach_is_said_and_the_next_sweep_retries(
    s: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """With the broker out of reach the sweep still does its database work, warns, and
    enqueues nothing more: rows due stay due for the next sweep."""
    release_id = published(s, 3)
    dead = TaskQueue(s.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"}))
    try:
        with caplog.at_level(logging.WARNING, logger="distributor.outbox.sweep"):
            report = sweep.sweep(s, dead)
    finally:
        dead.close()
    assert report.batches == 0
    assert "sweep: broker unreachable; retrying at the next sweep" in caplog.messages
    retry = CountingQueue()
    assert sweep.sweep(s, retry).batches == 1  # type: ignore[arg-type]
    assert retry.tasks("send_batch") == [(release_id,)]
