"""The pipeline the workers run: publish → distribute (plan the ledger, wake batches) →
send_batch (claim, render, send, record) — and the sweep that repairs lost wake-ups.

Each function takes ids, reads the database, and is safe to run twice or concurrently.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime

from distributor.core import audit
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Release, ReleaseState
from distributor.core.queue import TaskQueue
from distributor.outbox import notices
from distributor.outbox.ledger import (
    cancel_release,
)
from distributor.releases.lifecycle import correct_release, get_release, mark_published
from distributor.releases.lifecycle import withdraw as withdraw_release
from distributor.releases.source import ReleaseDraft

log = logging.getLogger(__name__)


def publish(
    settings: Settings,
    queue: TaskQueue,
    release_id: int,
    at: datetime | None = None,
    by: str = "system",
) -> Release:
    """Publish (or schedule) a release, commit, and only then wake the workers. ``by`` is
    recorded in the audit trail when the state changes."""
    with session_scope(settings) as session:
        before = get_release(session, release_id).state
        release = mark_published(session, release_id, at)
        if release.state != before or at is not None:
            published = release.state == ReleaseState.PUBLISHED
            when = release.scheduled_at.isoformat() if release.scheduled_at else None
            action = "publish" if published else "schedule"
            audit.record(session, by, action, f"release {release_id}", at=when)
    if release.state == ReleaseState.PUBLISHED:
        queue.send("distribute_release", release.id)
        queue.send("regenerate_site")
    return release


def correct(
    settings: Settings,
    queue: TaskQueue,
    release_id: int,
    draft: ReleaseDraft,
    by: str = "system",
    notify: bool = False,
) -> Release:
    """Correct a published release (see ``releases.correct_release``), commit, then
    regenerate the site: its page and feed items change, under the same ids.

    No email unless ``notify``: then a correction notice is planned, in the same
    transaction, for everyone who received the release and is still confirmed
    (``notices.plan``; count them with ``notices.planned``), and after the commit enough
    ``send_correction_notices`` tasks are enqueued to send them."""
    planned = 0
    with session_scope(settings) as session:
        release = correct_release(session, release_id, draft)
        if notify:
            planned = notices.plan(session, release)
        audit.record(session, by, "correct", f"release {release_id}", source=draft.source,
                     notify=notify, notices=planned)  # fmt: skip
    queue.send("regenerate_site")
    for _ in range(math.ceil(planned / settings.batch_size)):
        queue.send("send_correction_notices", release_id)
    return release


def withdraw(
    settings: Settings, queue: TaskQueue, release_id: int, by: str, reason: str = ""
) -> int:
    """Withdraw the release and cancel every delivery and correction notice not sent yet, in
    one transaction; then regenerate the site (its page becomes a 410 notice, with
    ``reason`` when one is given). Returns the number of deliveries cancelled."""
    with session_scope(settings) as session:
        release = withdraw_release(session, release_id, by, reason=reason)
        cancelled = cancel_release(
            session, release_id, f"release withdrawn by {release.withdrawn_by}"
        )
        notices.cancel_unwanted(session, release_id)  # its correction notices too
        details: dict[str, object] = {"cancelled": cancelled}
        if release.withdrawn_reason:
            details["reason"] = release.withdrawn_reason
        audit.record(session, release.withdrawn_by, "withdraw", f"release {release_id}", **details)
    queue.send("regenerate_site")
    return cancelled
