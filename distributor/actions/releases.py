"""What the press office does to a release: create, duplicate, update or delete a draft, send
a test, publish (or schedule), unschedule, correct, withdraw. Each action opens its
transaction, does the work, adds its audit record in the same transaction (both commit, or
neither) and, only after the commit, wakes the workers: a worker never sees work that might
still roll back. ``by`` is who acts, as the trail names them (``cli:USER``, ``token:NAME``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from distributor.core import audit, idempotency
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import DistributorError, InputError, ReleaseInputError
from distributor.core.idempotency import KeyClaim as KeyClaim  # where actions finds it
from distributor.core.models import NoticeKind, Release, ReleaseState, utcnow
from distributor.core.queue import TaskQueue
from distributor.mail import preview
from distributor.outbox import notices
from distributor.outbox.ledger import cancel_release
from distributor.releases import approval, lifecycle
from distributor.releases.source import ReleaseDraft


def create_release(
    settings: Settings,
    draft: ReleaseDraft,
    by: str,
    answer: Callable[[Session, Release], dict[str, Any]],
    claim: KeyClaim | None = None,
) -> dict[str, Any] | idempotency.Replay:
    """Store ``draft`` as a draft release created by ``by``, and return ``answer`` for it
    (computed in the same transaction, and recorded with status 201 as ``claim``'s answer).
    When ``claim``'s key was used for this very request before, creates nothing and
    returns the Replay recorded for it. Raises as ``lifecycle.create_release`` and
    ``idempotency.claim`` do."""

    def act() -> dict[str, Any]:
        release = lifecycle.create_release(session, settings, draft)
        approval.edited(release, by)
        audit.record(session, by, "create", f"release {release.id}", slug=release.slug)
        return answer(session, release)

    with session_scope(settings) as session:
        done: dict[str, Any] | idempotency.Replay = idempotency.once(session, claim, 201, act)
    return done


def update_draft(
    settings: Settings,
    release_id: int,
    draft: ReleaseDraft,
    by: str,
    seen: datetime | None = None,
) -> Release:
    """Replace draft ``release_id``'s fields with ``draft``'s, recorded as updated by
    ``by``; returns it. Raises as ``lifecycle.update_draft`` does (Conflict unless a
    draft; StaleEdit when ``seen`` is given and it was saved since)."""
    with session_scope(settings) as session:
        release = lifecycle.update_draft(session, settings, release_id, draft, seen)
        approval.edited(release, by)
        audit.record(session, by, "update", f"release {release_id}")
    return release


def duplicate(settings: Settings, release_id: int, by: str, language: str | None = None) -> Release:
    """A new draft from release ``release_id`` (``lifecycle.duplicate``): a copy, recorded
    as ``duplicate``, or with ``language`` (one of the site's languages) its version in
    that language, recorded as ``translate``; by ``by``, naming the source. Returns it.
    Raises NotFound, Conflict as ``lifecycle.duplicate``, InputError for a language the
    site does not publish in."""
    if language is not None and language not in settings.languages:
        raise InputError(
            f"language {language!r} is not one of the site's languages "
            f"({', '.join(settings.languages)}: DISTRIBUTOR_LANGUAGES)",
            field="language",
        )
    with session_scope(settings) as session:
        copy = lifecycle.duplicate(session, release_id, language)
        approval.edited(copy, by)
        action = "duplicate" if language is None else "translate"
        audit.record(session, by, action, f"release {copy.id}", source=release_id,
                     slug=copy.slug)  # fmt: skip
    return copy


@dataclass(frozen=True)
class Deletion:
    """What deleting a draft did: the ``slug`` now free, and the ``unlinked`` ids of its
    translations (each now its own original)."""

    title: str
    slug: str
    unlinked: list[int]


def delete_draft(settings: Settings, release_id: int, by: str) -> Deletion:
    """Delete draft ``release_id`` (``lifecycle.delete_draft``), recorded as deleted by
    ``by`` with its title and slug (the trail keeps them: the row is gone). Nothing is on
    the site or in the outbox for a draft: there is nothing to regenerate or cancel. Raises
    NotFound, or Conflict unless it is a draft."""
    with session_scope(settings) as session:
        release, unlinked = lifecycle.delete_draft(session, release_id)
        details: dict[str, object] = {"title": release.title, "slug": release.slug}
        if unlinked:
            details["unlinked"] = unlinked
        audit.record(session, by, "delete", f"release {release_id}", **details)
        done = Deletion(release.title, release.slug, unlinked)
    return done


def send_test(
    settings: Settings, release_id: int, addresses: Sequence[str], by: str
) -> list[preview.TestOutcome]:
    """Send the release's email as a test to ``addresses`` only (``preview.send_test``),
    then record that ``by`` sent it, and to which addresses; returns one outcome per
    distinct address. The ledger, the feeds and the release's state are not touched."""
    outcomes = preview.send_test(settings, release_id, addresses)
    with session_scope(settings) as session:
        audit.record(session, by, "test", f"release {release_id}", to=[o.address for o in outcomes])
    return outcomes


def publish(
    settings: Settings,
    queue: TaskQueue,
    release_id: int,
    at: datetime | None = None,
    by: str = "system",
    with_versions: bool | Collection[int] = False,
    advance: datetime | None = None,
) -> Release:
    """Publish (or schedule) a release, commit, and only then wake the workers. ``by`` is
    recorded in the audit trail when the state changes. Returns the release.

    ``advance`` (a scheduled release only; its versions too) is when accredited journalists
    get it before it is public (``lifecycle.set_advance``): at once when it is now, else
    by the sweep at that time.

    ``with_versions`` (True for all, or the ids of some) publishes or schedules its unsent
    language versions (``lifecycle.unsent_versions``) with it, in the same transaction and
    at the same time — the release's own, its embargo included — so that every subscriber
    gets it in their language at once. Each version passes the checks it would pass on its
    own (the two-person rule) and one whose embargo is later than that time is refused;
    a refusal names the version, and then nothing at all has changed. Each version's
    change is audited by ``by`` as its own "publish" or "schedule"."""
    now = utcnow()
    with session_scope(settings) as session:
        release = _publish_one(session, settings, release_id, at, by, now, advance)
        changed = [release]
        told: dict[int, int] = {}
        if with_versions is not False:
            together = release.scheduled_at if release.state == ReleaseState.SCHEDULED else None
            for version in _chosen(session, release, with_versions):
                try:
                    _check_embargo(version, together or now)
                    one = _publish_one(session, settings, version.id, together, by, now, advance)
                    changed.append(one)
                except DistributorError as exc:
                    # Same error, same field, the version named: "release 7 (fr): …"
                    exc.args = (f"release {version.id} ({version.language}): {exc}",)
                    raise
        for one in changed:
            if one.embargo_moved_at == now:  # moved: its advance copies' recipients are told
                told[one.id] = notices.plan(session, one, kind=NoticeKind.EMBARGO_MOVED)
    published = [r.id for r in changed if r.state == ReleaseState.PUBLISHED]
    for published_id in published:
        queue.send("distribute_release", published_id)
    for moved_id, planned in told.items():
        _wake_notices(settings, queue, moved_id, planned)
    for early in changed:  # advance copies due now (their time was now, or has passed)
        if early.advance_at and early.advance_at <= now and not early.advance_planned_at:
            queue.send("distribute_advance", early.id)
    if published:
        queue.send("regenerate_site")
    return release


def _publish_one(
    session: Session,
    settings: Settings,
    release_id: int,
    at: datetime | None,
    by: str,
    now: datetime,
    advance: datetime | None = None,
) -> Release:
    """Publish or schedule one release in ``session`` (``lifecycle.mark_published``) after
    the two-person rule's check, audited when it changes; returns it."""
    current = lifecycle.get_release(session, release_id)
    before = current.state
    if before in (ReleaseState.DRAFT, ReleaseState.SCHEDULED):
        approval.check_publishable(settings, current)
    release = lifecycle.mark_published(session, release_id, at, now, advance)
    if release.state != before or at is not None or advance is not None:
        published = release.state == ReleaseState.PUBLISHED
        when = release.scheduled_at.isoformat() if release.scheduled_at else None
        action = "publish" if published else "schedule"
        early = (
            {"advance": release.advance_at.isoformat()} if advance and release.advance_at else {}
        )
        audit.record(session, by, action, f"release {release_id}", at=when, **early)
    return release


def _chosen(session: Session, release: Release, chosen: bool | Collection[int]) -> list[Release]:
    """The unsent versions of ``release`` to publish with it: all (``True``) or those whose
    ids are ``chosen``; InputError naming an id that is not one of them."""
    versions = lifecycle.unsent_versions(session, release)
    if chosen is True:
        return versions
    ids = set(chosen) if not isinstance(chosen, bool) else set()
    unknown = sorted(ids - {v.id for v in versions})
    if unknown:
        raise InputError(
            f"release {unknown[0]} is not an unsent version (draft or scheduled) of "
            f"release {release.id}: nothing was published or scheduled",
            field="with_versions",
        )
    return [v for v in versions if v.id in ids]


def _check_embargo(version: Release, time: datetime) -> None:
    """Refuse (ReleaseInputError) a version whose embargo is later than ``time``, the time
    its release goes out: it may not go with it."""
    if version.embargo_at is not None and version.embargo_at > time:
        raise ReleaseInputError(
            f"its embargo ({version.embargo_at.isoformat()}) is later than "
            f"{time.isoformat()}, when the release goes out: nothing was published or "
            "scheduled; publish it on its own, or change its embargo",
            field="embargo",
        )


def request_approval(settings: Settings, release_id: int, by: str) -> Release:
    """``by`` asks for draft ``release_id``'s approval (the two-person rule), recorded."""
    with session_scope(settings) as session:
        release = lifecycle.get_release(session, release_id)
        approval.ask(release, by)
        audit.record(session, by, "approval-request", f"release {release_id}")
    return release


def approve(settings: Settings, release_id: int, by: str) -> Release:
    """``by`` approves release ``release_id`` as it is now, recorded. Conflict for its last
    editor (``approval.approve``)."""
    with session_scope(settings) as session:
        release = lifecycle.get_release(session, release_id)
        approval.approve(release, by)
        audit.record(session, by, "approve", f"release {release_id}", editor=release.last_edited_by)
    return release


def unschedule(
    settings: Settings, release_id: int, by: str, queue: TaskQueue | None = None
) -> Release:
    """Cancel a scheduled publication, recorded as done by ``by``: the release is a draft
    again, and its advance copies not sent yet are cancelled (those sent stay the
    recipients' one copy; they are told it is postponed, woken through ``queue``, or a
    queue of its own). Returns it; raises Conflict unless it was scheduled
    (``lifecycle.unschedule``)."""
    now = utcnow()
    with session_scope(settings) as session:
        release = lifecycle.unschedule(session, release_id, now)
        cancel_release(session, release_id, "not sent: the release was unscheduled")
        told = 0
        if release.embargo_moved_at == now:  # postponed: advance recipients are told
            told = notices.plan(session, release, kind=NoticeKind.EMBARGO_MOVED)
        audit.record(session, by, "unschedule", f"release {release_id}")
    if told:
        own = queue or TaskQueue(settings)
        try:
            _wake_notices(settings, own, release_id, told)
        finally:
            if queue is None:
                own.close()
    return release


def correct(
    settings: Settings,
    queue: TaskQueue,
    release_id: int,
    draft: ReleaseDraft,
    by: str = "system",
    notify: bool = False,
    note: str = "",
) -> Release:
    """Correct a published release (see ``releases.correct_release``), recording ``note``
    (what changed: on the page, in the feed item and in the notice; "" for none) with the
    correction and in the audit record, commit, then regenerate the site: its page and feed
    items change, under the same ids.

    No email unless ``notify``: then a correction notice is planned, in the same
    transaction, for everyone who received the release and is still confirmed
    (``notices.plan``; count them with ``notices.planned``), and after the commit enough
    ``send_correction_notices`` tasks are enqueued to send them."""
    planned = 0
    with session_scope(settings) as session:
        release = lifecycle.correct_release(session, release_id, draft, note=note, by=by)
        approval.edited(release, by)
        if notify:
            planned = notices.plan(session, release)
        details = {"source": draft.source, "notify": notify, "notices": planned}
        if release.corrections[-1].note:
            details["note"] = release.corrections[-1].note
        audit.record(session, by, "correct", f"release {release_id}", **details)
    queue.send("regenerate_site")
    _wake_notices(settings, queue, release_id, planned)
    return release


@dataclass(frozen=True)
class Withdrawal:
    """What a withdrawal did: ``cancelled`` deliveries not sent yet, and ``notices``
    withdrawal notices planned (0 unless asked to notify)."""

    cancelled: int
    notices: int


def withdraw(
    settings: Settings,
    queue: TaskQueue,
    release_id: int,
    by: str,
    reason: str = "",
    notify: bool = False,
) -> Withdrawal:
    """Withdraw the release and cancel every delivery and correction notice not sent yet, in
    one transaction; then regenerate the site (its page becomes a 410 notice, with
    ``reason`` when one is given).

    With ``notify``, a withdrawal notice (carrying the reason) is planned in the same
    transaction for everyone who received the release and is still confirmed
    (``notices.plan``), and after the commit enough ``send_correction_notices`` tasks are
    enqueued to send them. Returns how many deliveries were cancelled and notices planned."""
    planned = 0
    with session_scope(settings) as session:
        before = lifecycle.get_release(session, release_id)
        # Withdrawn before it was public: those who got an advance copy are told at once.
        early = before.state != ReleaseState.PUBLISHED and before.advance_planned_at is not None
        release = lifecycle.withdraw(session, release_id, by, reason=reason)
        cancelled = cancel_release(
            session, release_id, f"release withdrawn by {release.withdrawn_by}"
        )
        notices.cancel_unwanted(session, release_id)  # its correction notices too
        if notify or early:
            planned = notices.plan(session, release, kind=NoticeKind.WITHDRAWAL)
        details: dict[str, object] = {"cancelled": cancelled}
        if notify:  # as before the withdrawal notice when not asked for one
            details.update(notify=True, notices=planned)
        if release.withdrawn_reason:
            details["reason"] = release.withdrawn_reason
        audit.record(session, release.withdrawn_by, "withdraw", f"release {release_id}", **details)
    queue.send("regenerate_site")
    _wake_notices(settings, queue, release_id, planned)
    return Withdrawal(cancelled, planned)


def _wake_notices(settings: Settings, queue: TaskQueue, release_id: int, planned: int) -> None:
    """Enqueue enough batches to send the ``planned`` notices of the release, after the
    commit that planned them. The task keeps its first name: it sends every kind of notice
    (outbox/notices.py)."""
    for _ in range(math.ceil(planned / settings.batch_size)):
        queue.send("send_correction_notices", release_id)
