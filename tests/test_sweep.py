"""The sweep, beat's repair round: what it plans and what it leaves alone, what it reports,
the site regeneration it asks for, and what it does when the broker cannot be reached."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from distributor import actions
from distributor.audience.subscription import take_confirmation
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Delivery, DeliveryStatus, Subscriber, SubscriberStatus, utcnow
from distributor.core.queue import TaskQueue
from distributor.office.invitations import invite
from distributor.outbox import sending, sweep
from distributor.releases.lifecycle import mark_published
from distributor.releases.source import parse_release
from tests.helpers import (
    CountingQueue,
    add_subscribers,
    add_topics,
    free_port,
    make_release,
    published,
    release_text,
)
from tests.subscription_requests import new_request


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
    done = make_release(s, slug="done", title="Planned already")
    with session_scope(s) as session:
        mark_published(session, scheduled.id, at=utcnow() + timedelta(days=1))
        mark_published(session, lost.id)  # published, its plan never made (a lost wake-up)
        mark_published(session, done.id)
    sending.distribute_release(s, CountingQueue(), done.id)  # type: ignore[arg-type]
    queue = CountingQueue()
    report = sweep.sweep(s, queue)  # type: ignore[arg-type]
    assert report.planned == [lost.id]  # not the one planned already
    assert (planned_rows(s, lost.id), planned_rows(s, draft.id), planned_rows(s, scheduled.id)) == (
        1,
        0,
        0,
    )
    assert set(queue.tasks("send_batch")) == {(lost.id,), (done.id,)}  # both have rows due


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


def test_a_lost_wake_up_of_a_request_is_sent_again_and_counted(s: Settings) -> None:
    """A subscription request still undecided a few minutes after it was made (its task
    was lost) gets its worker woken; one made seconds ago is left to its own task."""
    add_topics(s, "climate")
    lost = new_request(s, "ann@example.com", age=timedelta(minutes=5))
    new_request(s, "bob@example.com")  # just made: its own wake-up is on its way
    queue = CountingQueue()
    report = sweep.sweep(s, queue)  # type: ignore[arg-type]
    assert report.confirmations == 1
    assert queue.tasks("send_confirmation") == [(lost,)]


def test_correction_notices_due_are_woken_in_batches_and_counted(s: Settings) -> None:
    """Notices planned by a correction with --notify, whose wake-up was lost, get one
    send_correction_notices per batch of them."""
    release_id = published(s, 3)
    with session_scope(s) as session:
        session.execute(update(Delivery).values(status=DeliveryStatus.SENT, sent_at=utcnow()))
    fix = parse_release(release_text(title="Fixed title"), "fix.md", s)
    actions.correct(s, CountingQueue(), release_id, fix, by="cli:test", notify=True)  # type: ignore[arg-type]
    small = s.model_copy(update={"batch_size": 2})
    queue = CountingQueue()
    report = sweep.sweep(small, queue)  # type: ignore[arg-type]
    assert report.notice_batches == 2  # 3 notices, 2 a batch
    assert queue.tasks("send_correction_notices") == [(release_id,), (release_id,)]


def test_every_kind_due_is_woken_and_counted(s: Settings) -> None:
    """An idle sweep wakes a batch per ``batch_size`` rows due of a release, a worker per
    request whose confirmation email is due, and one per invitation whose email is due,
    and its report counts each."""
    small = s.model_copy(update={"batch_size": 2})
    release_id = published(small, 3)
    requests = [new_request(small, f"{who}@example.com") for who in ("ann", "bob")]
    with session_scope(small) as session:
        for request_id in requests:
            take_confirmation(session, request_id)
        invited = [invite(session, f"{who}@example.org", "writer", "cli:root").id
                   for who in ("jo", "sam")]  # fmt: skip
    queue = CountingQueue()
    report = sweep.sweep(small, queue)  # type: ignore[arg-type]
    assert (report.batches, report.confirmation_retries, report.invitation_retries) == (2, 2, 2)
    assert queue.tasks("send_batch") == [(release_id,), (release_id,)]
    assert sorted(queue.tasks("send_confirmation")) == [(r,) for r in requests]
    assert sorted(queue.tasks("send_invitation")) == [(i,) for i in invited]
