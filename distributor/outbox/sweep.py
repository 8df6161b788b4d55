"""The periodic sweep (beat, every ``DISTRIBUTOR_SWEEP_SECONDS``): it publishes the scheduled
releases that are due and repairs every lost wake-up — releases not planned, rows whose
retry is due or whose lease ran out, subscription requests still undecided — from what the
database records. Safe to run twice or concurrently."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from distributor.audience.subscription import (
    CONFIRMATION_TASK,
    purge_requests,
    undecided_requests,
)
from distributor.core import audit, heartbeat, idempotency
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import NoticeKind, Release, ReleaseState
from distributor.core.queue import TaskQueue
from distributor.outbox import confirmations, digests, invitations, notices
from distributor.outbox.advance import distribute_advance
from distributor.outbox.ledger import (
    cancel_unconfirmed,
    due,
)
from distributor.outbox.sending import distribute_release
from distributor.releases.lifecycle import advance_due, publish_due

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    """What one sweep did."""

    published: list[int] = field(default_factory=list)
    advance: list[int] = field(default_factory=list)  # releases whose advance copies began
    planned: list[int] = field(default_factory=list)
    batches: int = 0
    cancelled: int = 0
    notice_batches: int = 0
    confirmations: int = 0  # subscription requests whose lost wake-up was sent again
    confirmation_retries: int = 0  # requests with confirmation emails due again
    invitation_retries: int = 0  # invitations with their email due (again)
    digests: dict[int, int] = field(default_factory=dict)  # period id → digests planned
    digest_batches: int = 0  # batches of digests due again (retries, lost wake-ups)


def sweep(settings: Settings, queue: TaskQueue, now: datetime | None = None) -> SweepReport:
    """Repair what lost wake-ups and dead workers left behind; run by beat every
    ``settings.sweep_seconds``, and says so (``heartbeat.record``).

    Publishes scheduled releases that are due, plans the advance copies that are due,
    plans published releases never planned, plans the digests whose hour passed,
    cancels rows of subscribers who left, forgets expired idempotency keys and subscription
    requests, wakes a worker for each request whose wake-up was lost, and — when no
    task waits in the queue — enqueues batches for every release with rows or notices due,
    for every digest period with digests due,
    and for every request with a confirmation email due (deferred retries, expired leases,
    lost tasks) and every invitation with its email due, and a site regeneration (which
    writes nothing if the site is current).
    """
    heartbeat.record(settings)  # a sweep runs: the workers, the status and publish see it
    report = SweepReport()
    with session_scope(settings) as session:
        # Before publishing: a release whose advance time and lift both passed while beat
        # was down is published at once, and its accredited readers get the public email.
        early = advance_due(session, now)
        report.published = publish_due(session, now)
        lifted: dict[int, int] = {}
        for release_id in report.published:
            audit.record(session, audit.SCHEDULER, "publish", f"release {release_id}")
            release = session.get_one(Release, release_id)
            if release.advance_planned_at is not None:  # "embargo lifted", to those who chose it
                lifted[release_id] = notices.plan(session, release, NoticeKind.EMBARGO_LIFTED)
        unplanned = session.scalars(
            select(Release.id).where(
                Release.state == ReleaseState.PUBLISHED, Release.planned_at.is_(None)
            )
        )
        report.planned = list(unplanned)
        report.cancelled = cancel_unconfirmed(session)
        idempotency.purge(session, now)
        purge_requests(session, settings, now)
        lost = undecided_requests(session, now)
    for request_id in lost:
        queue.send(CONFIRMATION_TASK, request_id)
    report.confirmations = len(lost)
    report.advance = [rid for rid in early if rid not in report.published]
    for release_id in report.advance:
        distribute_advance(settings, queue, release_id, now)
    for release_id in report.planned:
        distribute_release(settings, queue, release_id)
    # A digest hour that passed (or passed while beat was down: caught up once).
    report.digests = digests.plan_due(settings, queue, now)
    for release_id, count in lifted.items():
        for _ in range(math.ceil(count / settings.batch_size)):
            queue.send("send_correction_notices", release_id)
    if report.published:
        queue.send("regenerate_site")
    try:
        idle = queue.waiting() == 0
    except Exception:
        log.warning("sweep: broker unreachable; retrying at the next sweep")
        return report
    if idle:
        if not report.published:  # a lost regeneration; one catalogue query if none was
            queue.send("regenerate_site")
        with session_scope(settings) as session:
            work = due(session)
            waiting_notices = notices.due(session)
            waiting_confirmations = confirmations.due(session)
            waiting_invitations = invitations.due(session)
            waiting_digests = digests.due(session)
        for release_id, count in work.items():
            for _ in range(math.ceil(count / settings.batch_size)):
                queue.send("send_batch", release_id)
                report.batches += 1
        for release_id, count in waiting_notices.items():
            for _ in range(math.ceil(count / settings.batch_size)):
                queue.send("send_correction_notices", release_id)
                report.notice_batches += 1
        for period_id, count in waiting_digests.items():
            for _ in range(math.ceil(count / settings.batch_size)):
                queue.send(digests.TASK, period_id)
                report.digest_batches += 1
        for request_id in waiting_confirmations:  # a retry due, a lease run out
            queue.send(CONFIRMATION_TASK, request_id)
            report.confirmation_retries += 1
        for invitation_id in waiting_invitations:  # a lost wake-up, a retry due
            queue.send("send_invitation", invitation_id)
            report.invitation_retries += 1
    return report
