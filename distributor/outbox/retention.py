"""Ledger retention: the rows of a release whose sending ended long ago, folded into counts.

With ``DISTRIBUTOR_LEDGER_RETENTION_DAYS`` = N (0, the default: every row kept forever), a
release's delivery rows — and the correction, withdrawal and embargo notices sent about it,
which hang on them — are folded once its sending ended more than N days ago: each row is
counted into ``folded_counts`` (per release, ledger, notice kind, status, advance flag, with
what the reports read of it: bounces, unsubscriptions since, first and last sending time)
and deleted. Every reader of counts (the status, the report, the dashboard, ``/metrics``,
the statistics) adds the folded counts to the live rows'.

Only rows nothing can touch again are folded: a release fully planned, its publication,
correction, withdrawal and every row's last activity (planned, due, sent, bounced, leased)
older than the cutoff, with no row or notice still open (pending, deferred, leased or in
doubt: the send loop, the sweep and reconciliation only look at those). A row is folded in
a chunk of ``FOLD_CHUNK``, one transaction each: its counts are added and the row deleted
together, so a crash between chunks loses nothing and counts nothing twice. The rows are
deleted ``RETURNING`` what is counted, so a row two concurrent folds both picked is counted
by the one whose delete took it (PostgreSQL also skips rows another fold has locked;
SQLite's writers queue). Running it again folds what is left: idempotent.

Beat runs it every ``FOLD_SECONDS`` (core/config.py; the task ``ledger_fold``);
``distributor ledger fold [--dry-run]`` runs it by hand.

After a fold, the recipients of a folded release are no longer on record: a correction or
withdrawal notice planned later has nobody to go to, a late bounce report finds no row, and
an erasure has no row of theirs to delete there (the counts name nobody).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    Integer,
    Row,
    any_,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from distributor.core import failpoints
from distributor.core.config import FOLD_SECONDS as FOLD_SECONDS  # beat's period
from distributor.core.config import Settings
from distributor.core.db import get_engine, is_sqlite, read_scope
from distributor.core.models import (
    CorrectionNotice,
    Delivery,
    DeliveryStatus,
    FoldedCount,
    Release,
    Subscriber,
    utcnow,
)

log = logging.getLogger(__name__)

FOLD_CHUNK: Final = 5000  # rows per transaction
# The statistics' window after publication (reporting/statistics.py reads it from here): a
# folded row's unsubscription is counted in it or not once, when it is folded.
WINDOW_DAYS: Final = 7
FINAL_STATUSES: Final = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.CANCELLED)
OPEN_STATUSES: Final = (DeliveryStatus.PENDING, DeliveryStatus.DEFERRED)
DELIVERIES: Final = "deliveries"
NOTICES: Final = "correction_notices"
FAILPOINT: Final = "fold-chunk"  # inside a chunk's transaction, before it commits


@dataclass
class FoldReport:
    """What one fold did (or, with ``dry_run``, would do): rows per release and ledger."""

    cutoff: datetime | None  # None: retention is off, nothing was looked at
    dry_run: bool = False
    deliveries: dict[int, int] = field(default_factory=dict)  # release id → rows folded
    notices: dict[int, int] = field(default_factory=dict)
    skipped: list[int] = field(default_factory=list)  # a notice became open meanwhile

    @property
    def rows(self) -> int:
        return sum(self.deliveries.values()) + sum(self.notices.values())


# The fold ----------------------------------------------------------------------------------


def _touched_since(table: type[Delivery] | type[CorrectionNotice], cutoff: datetime) -> Any:
    """SQL: a row of ``table`` still open, or active at or after ``cutoff``."""
    recent = [
        table.created_at >= cutoff,
        table.next_attempt_at >= cutoff,
        table.sent_at >= cutoff,
        table.lease_until >= cutoff,
        table.status.in_(OPEN_STATUSES),
    ]
    if table is Delivery:
        recent.append(Delivery.bounced_at >= cutoff)
    return or_(*recent)


def foldable(session: Session, cutoff: datetime) -> list[int]:
    """The releases with rows to fold at ``cutoff`` (see the module's docstring), by id."""
    before = [
        Release.planned_at.is_not(None),
        Release.planned_at < cutoff,
        or_(Release.published_at.is_(None), Release.published_at < cutoff),
        or_(Release.corrected_at.is_(None), Release.corrected_at < cutoff),
        or_(Release.withdrawn_at.is_(None), Release.withdrawn_at < cutoff),
    ]
    query = (
        select(Release.id)
        .where(
            *before,
            exists().where(Delivery.release_id == Release.id),
            ~exists().where(Delivery.release_id == Release.id, _touched_since(Delivery, cutoff)),
            ~exists().where(
                CorrectionNotice.release_id == Release.id,
                _touched_since(CorrectionNotice, cutoff),
            ),
        )
        .order_by(Release.id)
    )
    return [int(rid) for rid in session.scalars(query)]


def fold(
    settings: Settings,
    now: datetime | None = None,
    dry_run: bool = False,
    chunk: int = FOLD_CHUNK,
) -> FoldReport:
    """Fold the rows of every release whose sending ended more than
    ``settings.ledger_retention_days`` before ``now`` (nothing when that is 0), ``chunk``
    rows a transaction. With ``dry_run``, only count what would be folded. Returns what was
    (would be) folded."""
    if settings.ledger_retention_days <= 0:
        return FoldReport(cutoff=None, dry_run=dry_run)
    cutoff = (now or utcnow()) - timedelta(days=settings.ledger_retention_days)
    report = FoldReport(cutoff=cutoff, dry_run=dry_run)
    with read_scope(settings) as session:
        releases = foldable(session, cutoff)
        if dry_run:
            for ledger, found in (
                (Delivery, report.deliveries),
                (CorrectionNotice, report.notices),
            ):
                rows = session.execute(
                    select(ledger.release_id, func.count())
                    .where(ledger.release_id.in_(releases), ledger.status.in_(FINAL_STATUSES))
                    .group_by(ledger.release_id)
                )
                found.update({int(rid): int(n) for rid, n in rows})
            return report
        query = select(Release.id, Release.published_at).where(Release.id.in_(releases))
        published = {int(rid): at for rid, at in session.execute(query)}
    for release_id in releases:
        _fold_release(settings, release_id, published.get(release_id), chunk, report)
    if report.rows:
        log.info(
            "folded %d delivery and %d notice row(s) of %d release(s) ended before %s",
            sum(report.deliveries.values()),
            sum(report.notices.values()),
            len(report.deliveries),
            cutoff.isoformat(),
        )
    return report


class _NoticeOpen(Exception):
    """A notice about the release was planned since it was found foldable: it waits."""


def _fold_release(
    settings: Settings,
    release_id: int,
    published_at: datetime | None,
    chunk: int,
    report: FoldReport,
) -> None:
    """Fold the release's rows a chunk at a time until none is left, adding to ``report``;
    stop (the release in ``report.skipped``) if a notice about it is open."""
    engine = get_engine(settings)
    while True:
        try:
            with engine.begin() as conn:  # BEGIN IMMEDIATE on SQLite (db.py)
                done = _fold_chunk(conn, release_id, published_at, chunk)
                if done is None:
                    return
                failpoints.hit(FAILPOINT)
        except _NoticeOpen:
            report.skipped.append(release_id)
            return
        deliveries, notices = done
        report.deliveries[release_id] = report.deliveries.get(release_id, 0) + deliveries
        if notices:
            report.notices[release_id] = report.notices.get(release_id, 0) + notices


def _among(conn: Connection, column: Any, ids: Sequence[int]) -> ColumnElement[bool]:
    """SQL: ``column`` is one of ``ids``. On PostgreSQL one array parameter (``= ANY``):
    an IN of 5,000 parameters took a quarter of a second to plan, each statement."""
    if is_sqlite(conn):
        return cast(ColumnElement[bool], column.in_(ids))
    return cast(ColumnElement[bool], column == any_(literal(list(ids), ARRAY(Integer))))


def _fold_chunk(
    conn: Connection, release_id: int, published_at: datetime | None, chunk: int
) -> tuple[int, int] | None:
    """Fold up to ``chunk`` final delivery rows of the release, and the notices that hang on
    them (first: deleting a delivery deletes its notices), in the caller's transaction.
    Returns (deliveries, notices) folded, or None when the release has none left."""
    pick = (
        select(Delivery.id)
        .where(Delivery.release_id == release_id, Delivery.status.in_(FINAL_STATUSES))
        .order_by(Delivery.id)
        .limit(chunk)
    )
    if not is_sqlite(conn):  # a concurrent fold takes other rows, never waits for these
        pick = pick.with_for_update(skip_locked=True)
    ids = list(conn.scalars(pick))
    if not ids:
        return None
    waiting = conn.scalar(
        select(func.count()).where(
            _among(conn, CorrectionNotice.delivery_id, ids),
            CorrectionNotice.status.in_(OPEN_STATUSES),
        )
    )
    if waiting:
        raise _NoticeOpen
    notices = _fold_rows(
        conn, NOTICES, release_id, published_at, _among(conn, CorrectionNotice.delivery_id, ids)
    )
    deliveries = _fold_rows(
        conn, DELIVERIES, release_id, published_at, _among(conn, Delivery.id, ids)
    )
    return deliveries, notices


def _fold_rows(
    conn: Connection,
    ledger: str,
    release_id: int,
    published_at: datetime | None,
    where: ColumnElement[bool],
) -> int:
    """Delete the final rows of ``ledger`` matching ``where`` (all of release
    ``release_id``) and add them to its folded counts; returns how many."""
    table = Delivery if ledger == DELIVERIES else CorrectionNotice
    columns: list[Any] = [table.status, table.sent_at, table.subscriber_id]
    if table is Delivery:
        columns += [Delivery.advance, Delivery.bounce]
    else:
        columns += [CorrectionNotice.kind]
    deleted = conn.execute(
        delete(table).where(where, table.status.in_(FINAL_STATUSES)).returning(*columns)
    ).all()
    if not deleted:
        return 0
    unsubscribed = _unsubscribed(conn, deleted)
    window_end = published_at + timedelta(days=WINDOW_DAYS) if published_at else None
    groups: dict[tuple[str, str, bool], _Group] = defaultdict(_Group)
    for row in deleted:
        values = row._mapping
        kind = "" if table is Delivery else str(values["kind"])
        advance = bool(values["advance"]) if table is Delivery else False
        group = groups[(kind, str(values["status"]), advance)]
        group.add(
            values["sent_at"],
            values["bounce"] if table is Delivery else None,
            unsubscribed.get(int(values["subscriber_id"])),
            str(values["status"]) == DeliveryStatus.SENT,
            window_end,
        )
    now = utcnow()
    for (kind, status, advance), group in sorted(groups.items()):  # one lock order: no deadlock
        _add(conn, release_id, ledger, kind, status, advance, group, now)
    return len(deleted)


@dataclass
class _Group:
    """The counts of the rows of one group deleted by one chunk."""

    count: int = 0
    hard: int = 0
    soft: int = 0
    unsubscribed: int = 0
    in_window: int = 0
    first: datetime | None = None
    last: datetime | None = None

    def add(
        self,
        sent_at: datetime | None,
        bounce: str | None,
        unsubscribed_at: datetime | None,
        sent: bool,
        window_end: datetime | None,
    ) -> None:
        # As the live reads count: reporting/status.py and reporting/statistics.py.
        self.count += 1
        self.hard += bounce == "hard"
        self.soft += bounce == "soft"
        if sent_at is not None:
            self.first = sent_at if self.first is None else min(self.first, sent_at)
            self.last = sent_at if self.last is None else max(self.last, sent_at)
        if sent and sent_at is not None and unsubscribed_at is not None:
            if unsubscribed_at >= sent_at:
                self.unsubscribed += 1
                if window_end is not None and unsubscribed_at < window_end:
                    self.in_window += 1


def _unsubscribed(conn: Connection, rows: Sequence[Row[Any]]) -> dict[int, datetime]:
    """When the subscribers of ``rows`` unsubscribed, for those who did, by id."""
    ids = sorted({int(r._mapping["subscriber_id"]) for r in rows})
    query = select(Subscriber.id, Subscriber.unsubscribed_at).where(
        _among(conn, Subscriber.id, ids), Subscriber.unsubscribed_at.is_not(None)
    )
    return {int(sid): at for sid, at in conn.execute(query) if at is not None}


def _earlier(old: Any, new: Any) -> Any:
    return case((old.is_(None), new), (new.is_(None), old), (new < old, new), else_=old)


def _later(old: Any, new: Any) -> Any:
    return case((old.is_(None), new), (new.is_(None), old), (new > old, new), else_=old)


def _add(
    conn: Connection,
    release_id: int,
    ledger: str,
    kind: str,
    status: str,
    advance: bool,
    group: _Group,
    now: datetime,
) -> None:
    """Add one group's counts to its ``folded_counts`` row (made if missing), atomically."""
    dialect = sqlite if is_sqlite(conn) else postgresql
    stmt = dialect.insert(FoldedCount).values(
        release_id=release_id,
        ledger=ledger,
        kind=kind,
        status=status,
        advance=advance,
        count=group.count,
        hard_bounces=group.hard,
        soft_bounces=group.soft,
        unsubscribed=group.unsubscribed,
        unsubscribed_in_window=group.in_window,
        first_sent_at=group.first,
        last_sent_at=group.last,
        folded_at=now,
    )
    new = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["release_id", "ledger", "kind", "status", "advance"],
        set_={
            "count": FoldedCount.count + new.count,
            "hard_bounces": FoldedCount.hard_bounces + new.hard_bounces,
            "soft_bounces": FoldedCount.soft_bounces + new.soft_bounces,
            "unsubscribed": FoldedCount.unsubscribed + new.unsubscribed,
            "unsubscribed_in_window": FoldedCount.unsubscribed_in_window
            + new.unsubscribed_in_window,
            "first_sent_at": _earlier(FoldedCount.first_sent_at, new.first_sent_at),
            "last_sent_at": _later(FoldedCount.last_sent_at, new.last_sent_at),
            "folded_at": new.folded_at,
        },
    )
    conn.execute(stmt)


# What the readers of counts add --------------------------------------------------------------


@dataclass(frozen=True)
class Folded:
    """A release's folded delivery rows, as the status and the statistics read them."""

    counts: dict[str, int]  # rows by status (every status present)
    advance_counts: dict[str, int]  # of those, its embargoed advance copies
    hard_bounces: int = 0
    soft_bounces: int = 0
    unsubscribed: int = 0  # sent, and the recipient unsubscribed since (when folded)
    unsubscribed_in_window: int = 0  # likewise, within WINDOW_DAYS of publication
    first_sent_at: datetime | None = None  # of the public send (not advance copies)
    last_sent_at: datetime | None = None
    folded_at: datetime | None = None  # the last fold of its rows; None: none folded

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def _by_status() -> dict[str, int]:
    return {status.value: 0 for status in DeliveryStatus}


def folded(session: Session, release_id: int) -> Folded:
    """What was folded of the release's delivery rows (all zero when nothing was)."""
    groups = session.scalars(
        select(FoldedCount).where(
            FoldedCount.release_id == release_id, FoldedCount.ledger == DELIVERIES
        )
    ).all()
    counts, early = _by_status(), _by_status()
    sums: dict[str, int] = defaultdict(int)
    firsts: list[datetime] = []
    lasts: list[datetime] = []
    when: list[datetime] = []
    for g in groups:
        counts[g.status] = counts.get(g.status, 0) + g.count
        if g.advance:
            early[g.status] = early.get(g.status, 0) + g.count
        else:
            firsts += [g.first_sent_at] if g.first_sent_at else []
            lasts += [g.last_sent_at] if g.last_sent_at else []
        sums["hard"] += g.hard_bounces
        sums["soft"] += g.soft_bounces
        sums["unsubscribed"] += g.unsubscribed
        sums["window"] += g.unsubscribed_in_window
        when.append(g.folded_at)
    return Folded(
        counts=counts,
        advance_counts=early,
        hard_bounces=sums["hard"],
        soft_bounces=sums["soft"],
        unsubscribed=sums["unsubscribed"],
        unsubscribed_in_window=sums["window"],
        first_sent_at=min(firsts, default=None),
        last_sent_at=max(lasts, default=None),
        folded_at=max(when, default=None),
    )


def folded_by_status(
    session: Session, release_ids: Iterable[int] | None = None, ledger: str = DELIVERIES
) -> dict[int, dict[str, int]]:
    """Folded rows of ``ledger`` per release (those of ``release_ids``, or every release)
    and status: release id → status → rows, only releases with some."""
    query = (
        select(FoldedCount.release_id, FoldedCount.status, func.sum(FoldedCount.count))
        .where(FoldedCount.ledger == ledger)
        .group_by(FoldedCount.release_id, FoldedCount.status)
    )
    if release_ids is not None:
        query = query.where(FoldedCount.release_id.in_(list(release_ids)))
    found: dict[int, dict[str, int]] = {}
    for release_id, status, n in session.execute(query):
        found.setdefault(int(release_id), _by_status())[str(status)] = int(n or 0)
    return found


def folded_totals(session: Session) -> tuple[dict[str, int], dict[str, int]]:
    """Every folded delivery row, by status, and their bounces by kind (hard, soft): what
    ``/metrics`` adds to the live ledger's."""
    statuses = _by_status()
    query = select(FoldedCount.status, func.sum(FoldedCount.count)).where(
        FoldedCount.ledger == DELIVERIES
    )
    for status, n in session.execute(query.group_by(FoldedCount.status)):
        statuses[str(status)] = int(n or 0)
    hard, soft = session.execute(
        select(
            func.coalesce(func.sum(FoldedCount.hard_bounces), 0),
            func.coalesce(func.sum(FoldedCount.soft_bounces), 0),
        ).where(FoldedCount.ledger == DELIVERIES)
    ).one()
    return statuses, {"hard": int(hard), "soft": int(soft)}
