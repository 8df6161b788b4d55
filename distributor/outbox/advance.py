"""Embargoed advance copies: at a scheduled release's advance time, plan a ledger row for
every accredited, confirmed subscriber of its language who follows one of its topics, and
wake the send loop. The rows are the release's own ``deliveries`` (``advance`` true): sent,
retried, reconciled and recorded exactly as the public send's, and each is its recipient's
one copy, so the public send at the lift sends them nothing more (``ledger.plan``).

What makes an advance copy different is only how it is written (``mail.compose``: the
embargo in the subject and a banner, a personal link instead of the public page) while the
release is still scheduled: a copy still waiting when the embargo lifts goes out as the
public email."""

from __future__ import annotations

import logging
import math
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Release, ReleaseState, UTCDateTime, utcnow
from distributor.core.queue import TaskQueue
from distributor.outbox.ledger import due
from distributor.releases.lifecycle import get_release

log = logging.getLogger(__name__)

_PLAN = """
INSERT INTO deliveries
    (release_id, subscriber_id, status, attempts, next_attempt_at, last_error, created_at,
     advance)
SELECT DISTINCT :release_id, s.id, 'pending', 0, :now, '', :now, true
FROM subscribers s
JOIN accreditations a ON a.subscriber_id = s.id AND a.status = 'granted'
JOIN subscriptions su ON su.subscriber_id = s.id
WHERE s.status = 'confirmed' AND s.language = :lang
  AND su.topic_id IN (SELECT topic_id FROM release_topics WHERE release_id = :release_id)
ON CONFLICT (release_id, subscriber_id) DO NOTHING
"""


def plan_advance(session: Session, release: Release) -> int:
    """Add an advance-copy row for every accredited, confirmed subscriber of ``release``'s
    language who follows one of its topics; idempotent (a subscriber's row is kept);
    returns the number of new rows. The accredited are few (hundreds): one statement."""
    stmt = text(_PLAN).bindparams(bindparam("now", type_=UTCDateTime))
    params = {"release_id": release.id, "now": utcnow(), "lang": release.language}
    return int(getattr(session.execute(stmt, params), "rowcount", 0) or 0)


def distribute_advance(
    settings: Settings, queue: TaskQueue, release_id: int, now: datetime | None = None
) -> int:
    """Plan release ``release_id``'s advance copies if they are due (it is scheduled, its
    advance time has come, they were not planned yet) and enqueue enough batches to send
    them; returns the number of batches (0 when nothing was due). Safe to run twice or
    concurrently: the rows are planned once, and a batch with nothing to claim does
    nothing. ``now`` is an injectable clock."""
    now = now or utcnow()
    with session_scope(settings) as session:
        release = get_release(session, release_id)
        if (
            release.state != ReleaseState.SCHEDULED
            or release.advance_at is None
            or release.advance_at > now
            or release.advance_planned_at is not None
        ):
            return 0
        planned = plan_advance(session, release)
        release.advance_planned_at = now
        waiting = due(session).get(release_id, 0)
    log.info("release %s: %s advance copies planned", release_id, planned)
    batches = math.ceil(waiting / settings.batch_size)
    for _ in range(batches):
        queue.send("send_batch", release_id)
    return batches
