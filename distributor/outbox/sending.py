"""What the workers run to send: distribute a published release (plan its ledger, wake the
batches), then the one send loop (:func:`send`) every kind of email goes through — claim a
batch with a lease, render, send, record each outcome — and the confirmation email.

Each function takes ids, reads the database, and is safe to run twice or concurrently."""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar, cast

from sqlalchemy import Engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from distributor.audience.subscription import take_confirmation
from distributor.core import failpoints
from distributor.core.config import Settings
from distributor.core.db import deferred, get_engine, is_sqlite, session_scope
from distributor.core.errors import InputError
from distributor.core.models import Release, ReleaseState, utcnow
from distributor.core.queue import TaskQueue
from distributor.mail import reconcile
from distributor.mail.dkim import load_signer
from distributor.mail.relays import open_transport
from distributor.mail.transport import Outgoing, SendResult
from distributor.outbox import throttle
from distributor.outbox.confirmations import CONFIRMATIONS
from distributor.outbox.digests import DIGESTS
from distributor.outbox.invitations import INVITATIONS
from distributor.outbox.ledger import (
    RECONCILED,
    RELEASE_EMAILS,
    Batch,
    ClaimedRow,
    Leased,
    Ledger,
    Outcome,
    R,
    S,
    due,
    plan,
    postpone,
    release_leases,
    renew_leases,
    subscriber_id_ranges,
)
from distributor.outbox.notices import NOTICES
from distributor.outbox.relay_health import relay_health
from distributor.releases.lifecycle import get_release

log = logging.getLogger(__name__)
A = TypeVar("A")
B = TypeVar("B")
# Ranges of subscriber ids planned at once, each by its own connection (PostgreSQL; SQLite
# has one writer). A row's insert is mostly the server's work — its foreign-key checks
# alone are ~40% of it — so a second connection uses a second core of the database's: on
# the 2-core bench machine 1,000,000 rows were planned in about 0.6 of the time.
PLAN_CONNECTIONS = 2
# How stale a batch's view of its own rows may get: an unsubscribe is honoured by every
# message that starts later than this after it.
LEASE_CHECK_SECONDS = 0.05


def distribute_release(settings: Settings, queue: TaskQueue, release_id: int) -> int:
    """Plan the ledger of a published release and enqueue enough batches to send it.

    Plans a range of subscriber ids at a time and wakes the workers after each, in the
    order of the ranges, so the first messages leave while the rest is being planned
    (planning 100,000 rows in one statement took 1.3 s on PostgreSQL). On PostgreSQL
    ``PLAN_CONNECTIONS`` ranges are planned at once, each in its own transaction. Returns
    the number of batches enqueued (0 for a release that is not published). Running it
    again plans nothing twice; rows left unclaimed by a lost task are the sweep's.
    """
    with session_scope(settings) as session:
        release = get_release(session, release_id)
        if release.state != ReleaseState.PUBLISHED:
            return 0
        ranges = subscriber_id_ranges(session)
        at_once = 1 if is_sqlite(session.get_bind()) else PLAN_CONNECTIONS

    def plan_range(ids: tuple[int, int]) -> int:
        with session_scope(settings) as session:
            return plan(session, release, ids)

    batches, leftover = 0, 0
    for ids, planned in zip(ranges, in_order(plan_range, ranges, at_once), strict=True):
        leftover += planned
        while leftover >= settings.batch_size or (leftover and ids == ranges[-1]):
            queue.send("send_batch", release_id)
            batches, leftover = batches + 1, max(0, leftover - settings.batch_size)
    with session_scope(settings) as session:
        session.get_one(Release, release_id).planned_at = utcnow()
        waiting = due(session).get(release_id, 0)  # left by an earlier, interrupted run
    for _ in range(math.ceil(waiting / settings.batch_size) - batches):
        queue.send("send_batch", release_id)
        batches += 1
    return batches


def in_order(work: Callable[[A], B], items: Sequence[A], at_once: int) -> Iterator[B]:
    """``work(item)`` for each item, the results in the order of ``items``, with up to
    ``at_once`` items worked on at the same time (each in a thread of its own; 1: one after
    the other, in the caller's thread, the next begun only when the caller asks for it).
    An item not begun when one fails, or when the caller stops, is never begun."""
    if at_once <= 1:
        yield from map(work, items)
        return
    with ThreadPoolExecutor(at_once, thread_name_prefix="work") as pool:
        ahead: deque[Future[B]] = deque()
        try:
            for item in items:
                ahead.append(pool.submit(work, item))
                if len(ahead) == at_once:
                    yield ahead.popleft().result()
            while ahead:
                yield ahead.popleft().result()
        finally:
            for future in ahead:
                future.cancel()


@dataclass
class BatchReport:
    """What one send_batch did."""

    claimed: int = 0
    outcomes: dict[str, int] = field(
        default_factory=lambda: {"sent": 0, "deferred": 0, "failed": 0}
    )
    lost_leases: int = 0
    skipped: int = 0  # cancelled while the batch was being sent (unsubscribed, withdrawn)
    held: int = 0  # given back by a domain limit, to be tried again shortly
    reconciled: int = 0  # in doubt, found accepted by the relay: recorded as sent, not resent
    retry_in: float = 0.0  # seconds until the first of those is due again

    def summary(self) -> dict[str, int]:
        """The counts, as a worker task returns them (Celery's result, the worker log)."""
        return {
            "claimed": self.claimed,
            "held": self.held,
            "reconciled": self.reconciled,
            "skipped": self.skipped,
            **self.outcomes,
        }


def wake_for_held(queue: TaskQueue, task: str, release_id: int, report: BatchReport) -> None:
    """If the batch held rows back (a domain over its limit), enqueue ``task`` for the
    release when the first of them is due — within seconds, so they do not wait for the
    sweep (at least 0.2 s, at most 5 s: a worker keeps a countdown task in memory)."""
    if report.held:
        queue.send(task, release_id, countdown=min(max(report.retry_in, 0.2), 5.0))


def _settle_in_doubt(
    reconciler: reconcile.Reconciler | None, about: str, kind: str, doubtful: dict[str, int]
) -> set[str]:
    """Of the rows in doubt (Message-ID → row id), the Message-IDs the relay already has
    (:mod:`distributor.mail.reconcile`). The others go out again: they are named in the log —
    who may get a second copy — so an operator can tell, and bench/faults.py can count."""
    found = reconcile.already_accepted(reconciler, doubtful)
    if found:
        log.info(
            "%s: %d message(s) in doubt were already accepted, not resent",
            about,
            len(found),
        )
    if again := sorted(row for message_id, row in doubtful.items() if message_id not in found):
        log.warning(
            "%s: %d row(s) in doubt go out again (their worker died holding "
            "them: where it had sent one, a second copy): %s %s",
            about,
            len(again),
            kind,
            ",".join(map(str, again)),
        )
    return found


def _give_back(
    engine: Engine,
    ledger: Leased,
    token: str,
    remaining: list[int],
    held: dict[int, datetime],
    report: BatchReport,
) -> None:
    """End a batch: rows never attempted go back at once, rows held by a limit from their
    time in ``held`` (row id → when), and the report says when the first is due again."""
    try:
        if remaining or held:
            with engine.connect() as conn:
                release_leases(conn, token, remaining, ledger)
                postpone(conn, token, held, ledger)
    except DBAPIError as exc:  # never attempted: their leases expire, nothing is lost
        log.warning(
            "could not give back %d rows now (%s); their leases will expire",
            len(remaining) + len(held),
            str(exc).splitlines()[0],
        )
    if held:
        report.held = len(held)
        report.retry_in = max(0.0, (min(held.values()) - utcnow()).total_seconds())


def send_batch(settings: Settings, release_id: int) -> BatchReport:
    """Claim one batch of the release's due emails, send each, record each outcome: the
    outbox's loop (:func:`send`) over the ledger of release emails."""
    return send(settings, RELEASE_EMAILS, release_id)


def send_correction_notices(settings: Settings, release_id: int) -> BatchReport:
    """Claim one batch of the release's due notices (of its correction or its withdrawal),
    send each, record each outcome: the outbox's loop (:func:`send`) over the ledger of
    notices (see :mod:`distributor.outbox.notices`). Notices no longer wanted — the
    subscriber left or bounced, the release was withdrawn or corrected again — are
    cancelled, even mid-batch."""
    return send(settings, NOTICES, release_id)


def send_digests(settings: Settings, period_id: int) -> BatchReport:
    """Claim one batch of a digest period's due digests, send each, record each outcome: the
    outbox's loop (:func:`send`) over the ledger of digests (see
    :mod:`distributor.outbox.digests`)."""
    return send(settings, DIGESTS, period_id)


def send(settings: Settings, ledger: Ledger[R, S], subject_id: int) -> BatchReport:
    """Claim one batch of ``ledger``'s due rows about one subject (a release, a subscription
    request), send each message, record each outcome. The one send loop: every kind of email
    goes through it.

    Safe to run twice or concurrently: a row recorded as sent is never claimed again. Rows
    no longer wanted (an unsubscribe, a withdrawal…) are dropped even mid-batch (``skipped``):
    none starts later than ``LEASE_CHECK_SECONDS`` after the change was committed. Rows that
    could not be attempted (an error before sending) are given back at once; rows held back
    by a send limit (``throttle``: the recipient's domain is over its limit) are given back
    for a little later, no attempt counted, while the others go on. Rows in doubt (a worker
    died holding them) whose message the relay's record shows accepted are recorded as sent
    and not sent again (:mod:`distributor.mail.reconcile`). A slow batch renews its leases
    while it lives.
    """
    report = BatchReport()
    subject = ledger.subject(settings, subject_id)
    if subject is None:
        return report
    engine = get_engine(settings)
    batch = ledger.claim(engine, settings, subject_id, settings.batch_size)
    report.claimed = len(batch.rows)
    if batch.rows:
        about = f"{ledger.about} {subject_id}"
        _Batch(settings, ledger, engine, subject, about, batch, report).run()
    return report


class _Batch(Generic[R, S]):
    """One claimed batch on its way out (see :func:`send`)."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger[R, S],
        engine: Engine,
        subject: S,
        about: str,
        batch: Batch[R],
        report: BatchReport,
    ) -> None:
        self.settings, self.ledger, self.engine = settings, ledger, engine
        self.subject, self.about, self.batch, self.report = subject, about, batch, report
        self.finished: set[int] = set()  # row ids done with: sent, failed, skipped, held…
        self.held: dict[int, datetime] = {}  # held back by a limit: row id → when again

    def run(self) -> None:
        """Send the batch; whatever happens, give back the rows it did not get to."""
        pacer = throttle.pacer(self.settings)
        try:
            self.messages = self.ledger.compose(self.settings, self.subject, self.batch.rows)
            self.signer = load_signer(self.settings)
            with (
                self.ledger.recorder(self.engine, self.settings) as self.recorder,
                # Lease checks read; renewals begin with their write: neither need queue
                # for SQLite's write lock behind the other workers' outcomes.
                deferred(self.engine.connect()) as conn,
                open_transport(self.settings, relay_health(self.settings)) as transport,
            ):
                self.settle_in_doubt()
                for item, result in transport.send_stream(self.outgoing(conn, pacer)):
                    row = cast(R, item.key)
                    if result.outcome == "sent":
                        failpoints.hit("after-accept")
                    self.record(row, result.outcome, result)
                    pacer.done(row.email)
                for lost in self.recorder.flush():
                    self.lost(lost)
        finally:
            pacer.close()
            remaining = [r.row_id for r in self.batch.rows if r.row_id not in self.finished]
            token = self.batch.token
            _give_back(self.engine, self.ledger.table, token, remaining, self.held, self.report)

    def record(self, row: R, outcome: Outcome, result: SendResult) -> None:
        """Record the server's answer for ``row`` (a lost lease is counted and logged)."""
        self.finished.add(row.row_id)
        self.report.outcomes[outcome] += 1
        answer = (result.code, result.message, result.uncertain, result.at)
        if not self.recorder.record(self.batch.token, row, outcome, *answer):
            self.lost(row)

    def lost(self, row: ClaimedRow) -> None:
        """Count and log a row whose outcome changed nothing: its lease had been lost."""
        self.report.lost_leases += 1
        log.warning(
            "lease lost on %s %s before its outcome was recorded", self.ledger.one, row.row_id
        )

    def settle_in_doubt(self) -> None:
        """Record as sent, without sending, the rows in doubt the relay already accepted."""
        doubtful = {self.messages.message_id(r): r for r in self.batch.rows if r.in_doubt}
        ids = {message_id: r.row_id for message_id, r in doubtful.items()}
        reconciler = reconcile.open_reconciler(self.settings)
        for message_id in _settle_in_doubt(reconciler, self.about, self.ledger.what, ids):
            row = doubtful[message_id]
            self.finished.add(row.row_id)
            self.report.reconciled += 1
            if not self.recorder.record(self.batch.token, row, "sent", 250, RECONCILED):
                self.lost(row)

    def outgoing(self, conn: Connection, pacer: throttle.Pacer) -> Iterator[Outgoing]:
        """The batch's messages, each built just in time (the transport pulls the next while
        the server works), with the rows no longer wanted dropped on the way."""
        rows = self.batch.rows
        wanted, checked = {r.row_id for r in rows}, time.monotonic()
        renewed = checked
        for position, row in enumerate(rows):
            if time.monotonic() - checked > LEASE_CHECK_SECONDS:
                # Someone who unsubscribed mid-batch must not get the rest of it.
                ahead = [r.row_id for r in rows[position:]]
                try:
                    if time.monotonic() - renewed > self.settings.lease_seconds / 3:
                        # A slow batch (a send rate, a slow server) keeps its rows while it
                        # lives: taken over, a row on its way out would be sent twice.
                        renew_leases(
                            conn, self.settings, self.batch.token, ahead, self.ledger.table
                        )
                        renewed = time.monotonic()
                    # Counted from the read, not its answer: an unsubscribe committed while a
                    # slow check finishes is seen by the next, within the bound of the commit.
                    checked = time.monotonic()
                    wanted = self.ledger.still_wanted(conn, self.batch, ahead)
                except DBAPIError as exc:
                    # Send nothing more, but let the transport collect the answers to the
                    # messages in flight: they are recorded once the database is back.
                    log.warning(
                        "database unreachable: batch stops taking rows (%s)",
                        str(exc).splitlines()[0],
                    )
                    return
            if (message := self.message(row, wanted, pacer)) is not None:
                yield message

    def message(self, row: R, wanted: set[int], pacer: throttle.Pacer) -> Outgoing | None:
        """``row``'s message, or None when it is not to be sent now (done already, no longer
        wanted, never sendable, or held back by a send limit: each noted on the way)."""
        if row.row_id in self.finished:  # reconciled
            return None
        if row.row_id not in wanted:
            self.finished.add(row.row_id)
            self.report.skipped += 1
            self.recorder.drop(self.batch.token, row)
            return None
        try:
            envelope, message = self.messages.message(row)
        except InputError as exc:  # stored before today's checks: never sendable
            self.record(row, "failed", SendResult(0, f"not sent: {exc}"))
            return None
        if hold := pacer.admit(row.email):  # waits for the global rate; 0.0: go
            self.held[row.row_id] = utcnow() + timedelta(seconds=hold)
            self.finished.add(row.row_id)
            return None
        if self.signer is not None:
            message = self.signer.sign(message)
        return Outgoing(row, envelope, row.email, message)


def send_confirmations(settings: Settings, request_id: int) -> BatchReport:
    """Decide on a subscription request's confirmation email (``take_confirmation``: one
    per mailbox a day, none to a confirmed or bounced subscriber), then send the request's
    due confirmation emails: the outbox's loop (:func:`send`) over the ledger of
    confirmations (:mod:`distributor.outbox.confirmations`), DKIM-signed like every email
    when DKIM is configured. Safe to run twice: a request is decided once, an email recorded
    as sent is never sent again."""
    with session_scope(settings) as session:
        take_confirmation(session, request_id)
    return send(settings, CONFIRMATIONS, request_id)


def send_confirmation(settings: Settings, request_id: int) -> str:
    """:func:`send_confirmations`, as one :func:`outcome`."""
    return outcome(send_confirmations(settings, request_id))


def send_invitation(settings: Settings, invitation_id: int) -> BatchReport:
    """Send an invitation's email to the workspace (``office.invitations``): the outbox's
    loop (:func:`send`) over the ledger of invitations (:mod:`distributor.outbox.invitations`).
    Safe to run twice: an email recorded as sent is never sent again."""
    return send(settings, INVITATIONS, invitation_id)


def outcome(report: BatchReport) -> str:
    """A batch of one email as one outcome: "sent", "deferred" (to be tried again, or held
    back by a send limit), "failed", or "skipped" when none went out nor was tried (none
    due, or sent already)."""
    if report.outcomes["sent"] or report.reconciled:
        return "sent"
    if report.outcomes["failed"]:
        return "failed"
    if report.outcomes["deferred"] or report.held:
        return "deferred"
    return "skipped"
