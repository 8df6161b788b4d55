"""The delivery ledger: one row per (release, subscriber), the record of what was sent.

plan → claim (with a lease) → record each outcome as soon as the SMTP server answers.
A claimed row is invisible to other workers until its lease expires; a worker that dies
leaves rows whose lease runs out and which the sweep hands to another worker. Every outcome
is committed on its own, so nothing recorded as sent is ever sent again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from sqlalchemy import Engine, TextClause, bindparam, func, select, text, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from distributor.core.config import Settings
from distributor.core.db import is_sqlite, read_scope, session_scope
from distributor.core.identity import Identity
from distributor.core.models import (
    ConfirmationEmail,
    CorrectionNotice,
    Delivery,
    DeliveryStatus,
    Digest,
    InvitationEmail,
    Release,
    ReleaseState,
    Subscriber,
    SubscriberStatus,
    UTCDateTime,
    utcnow,
)
from distributor.core.urls import advance_url, preferences_url, unsubscribe_url
from distributor.outbox.retention import folded

if TYPE_CHECKING:  # imported where a message is made: counting rows (`releases status`) skips
    # Jinja2 and the logo's imaging, ~0.2 s of a command's start
    from distributor.mail.compose import Recipient, RenderedRelease

log = logging.getLogger(__name__)

Outcome = Literal["sent", "deferred", "failed"]
OPEN_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.DEFERRED)


@dataclass(frozen=True)
class Claimed:
    """A ledger row leased to this worker: who to send to, and how often it was tried."""

    delivery_id: int
    subscriber_id: int
    email: str
    name: str
    link_nonce: str | None  # the subscriber's, for the links in the message (tokens.py)
    attempts: int
    created_at: datetime
    in_doubt: bool = False  # an earlier lease ran out with no outcome: maybe already sent

    @property
    def row_id(self) -> int:
        """The ledger row (:class:`ClaimedRow`): the delivery."""
        return self.delivery_id


@dataclass(frozen=True)
class Claim:
    """A batch of rows leased under one token until ``lease_until``."""

    release_id: int
    token: str
    lease_until: datetime
    rows: list[Claimed]


PLAN_CHUNK = 20_000  # subscriber ids per planning statement
# Who a release goes to (:func:`plan`, :func:`audience_count`): the confirmed subscribers of
# its language, with ids in [:low, :high), who follow one of its topics and take releases at
# once rather than in a digest.
_AUDIENCE = """
        FROM subscribers s JOIN subscriptions su ON su.subscriber_id = s.id
        WHERE s.status = 'confirmed' AND s.language = :lang AND s.id >= :low AND s.id < :high
          AND s.digest = 'immediate'
          AND su.topic_id IN (SELECT topic_id FROM release_topics WHERE release_id = :release_id)
"""


def audience_count(session: Session, release: Release) -> int:
    """How many subscribers :func:`plan` would give the release a row (advance copies
    already planned included): what publishing it now would send."""
    query = text("SELECT count(DISTINCT s.id) " + _AUDIENCE)
    params = {"release_id": release.id, "lang": release.language, "low": 0, "high": 2**62}
    return int(session.execute(query, params).scalar_one())


def plan(session: Session, release: Release, ids: tuple[int, int] | None = None) -> int:
    """Add a pending row for every confirmed subscriber of the release's language who follows
    one of its topics and receives releases at once, not in a digest (only those with
    ``ids[0] <= id < ids[1]`` when given). Idempotent: existing rows are kept — an advance
    copy's row is its recipient's one copy — except an advance copy cancelled before it
    surely went (never tried, or refused with a code: its recipient left or lost their
    accreditation, the release was unscheduled), which becomes their public row. Returns the
    number of rows to send. The caller marks the release planned (``planned_at``) once every
    range is done. A release whose rows were folded after the retention period
    (outbox/retention.py) gets none: who received it is no longer known, and planning it
    again would send it to them all a second time."""
    now = utcnow()
    low, high = ids if ids is not None else (0, 2**62)
    stmt = text(
        """
        INSERT INTO deliveries
            (release_id, subscriber_id, status, attempts, next_attempt_at, last_error, created_at)
        SELECT DISTINCT :release_id, s.id, 'pending', 0, :now, '', :now
        """
        + _AUDIENCE
        + """
          AND NOT EXISTS (SELECT 1 FROM folded_counts f
                          WHERE f.release_id = :release_id AND f.ledger = 'deliveries')
        ORDER BY s.id
        ON CONFLICT (release_id, subscriber_id) DO UPDATE
            SET status = 'pending', advance = false, attempts = 0, next_attempt_at = :now,
                last_error = '', smtp_code = NULL, lease_until = NULL, lease_token = NULL
            WHERE deliveries.advance AND deliveries.status = 'cancelled'
              AND (deliveries.attempts = 0 OR deliveries.smtp_code IS NOT NULL)
        """
    ).bindparams(bindparam("now", type_=UTCDateTime))
    params = {"release_id": release.id, "now": now, "lang": release.language}
    result = session.execute(stmt, {**params, "low": low, "high": high})
    return int(getattr(result, "rowcount", 0) or 0)


def subscriber_id_ranges(session: Session, size: int | None = None) -> list[tuple[int, int]]:
    """Half-open ranges of ``size`` (default PLAN_CHUNK) subscriber ids covering every
    subscriber."""
    size = size or PLAN_CHUNK
    low, high = session.execute(select(func.min(Subscriber.id), func.max(Subscriber.id))).one()
    if low is None:
        return []
    return [(start, start + size) for start in range(int(low), int(high) + 1, size)]


# Two statements in one transaction: which rows, with what their messages need (and whether
# an earlier lease of theirs ran out with no outcome written — the worker died: "in doubt"),
# then the lease.
_PICK = """
SELECT d.id, d.lease_until IS NOT NULL AS in_doubt, d.subscriber_id, d.attempts, d.created_at,
       s.email, s.name, s.link_nonce
FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
WHERE d.release_id = :release_id AND d.status IN ('pending', 'deferred')
  AND d.next_attempt_at <= :now AND (d.lease_until IS NULL OR d.lease_until < :now)
  AND s.status = 'confirmed'
LIMIT :limit {lock}
"""
_LEASE = """
UPDATE deliveries SET lease_until = :lease_until, lease_token = :token, attempts = attempts + 1
WHERE {among_ids}
"""


def among_ids(sqlite: bool, column: str = "id") -> str:
    """SQL true when ``column`` is one of the ids bound as ``:ids`` (:func:`ids_param`): one
    parameter however many ids, so SQLAlchemy compiles the statement once. An expanding
    ``IN`` is rendered again for every list: a claim's 250 ids cost a fifth of a send's CPU."""
    return f"{column} IN (SELECT value FROM json_each(:ids))" if sqlite else f"{column} = ANY(:ids)"


def ids_param(sqlite: bool, ids: Sequence[int]) -> object:
    """The value of ``:ids`` for :func:`among_ids`: a JSON array on SQLite, an array on
    PostgreSQL."""
    return json.dumps(list(ids)) if sqlite else list(ids)


def one_of(session: Session | Connection, column: str, ids: Sequence[int]) -> TextClause:
    """A WHERE clause for ORM statements: ``column`` (SQL, e.g. ``"digests.id"``) is one of
    ``ids``, bound as one parameter (:func:`among_ids`), not an ``IN`` list rendered anew
    for each list."""
    bind = session if isinstance(session, Connection) else session.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    return text(among_ids(sqlite, column)).bindparams(ids=ids_param(sqlite, ids))


def claim(engine: Engine, settings: Settings, release_id: int, limit: int) -> Claim:
    """Lease up to ``limit`` due rows of the release to a new token, committed at once.

    Rows of subscribers no longer confirmed are never claimed. On PostgreSQL concurrent
    claimers skip each other's rows (FOR UPDATE SKIP LOCKED); on SQLite the claim runs in an
    immediate transaction, which serialises claimers. A row whose earlier lease ran out with
    no outcome, or whose last attempt was uncertain, is marked ``in_doubt`` (see
    :mod:`distributor.mail.reconcile`).
    """
    now = utcnow()
    lease_until = now + timedelta(seconds=settings.lease_seconds)
    token = uuid.uuid4().hex
    sqlite = is_sqlite(engine)
    lock = "" if sqlite else "FOR UPDATE OF d SKIP LOCKED"
    pick = (
        text(_PICK.format(lock=lock))
        .bindparams(bindparam("now", type_=UTCDateTime))
        .columns(created_at=UTCDateTime)
    )
    lease = text(_LEASE.format(among_ids=among_ids(sqlite))).bindparams(
        bindparam("lease_until", type_=UTCDateTime)
    )
    with engine.connect() as conn:
        with conn.begin():  # BEGIN IMMEDIATE on SQLite (db.py)
            picked = conn.execute(
                pick, {"now": now, "release_id": release_id, "limit": limit}
            ).all()
            if picked:
                ids = ids_param(sqlite, [r.id for r in picked])
                conn.execute(lease, {"lease_until": lease_until, "token": token, "ids": ids})
    rows = [
        Claimed(
            r.id, r.subscriber_id, r.email, r.name, r.link_nonce, r.attempts + 1, r.created_at,
            in_doubt=bool(r.in_doubt),
        )
        for r in sorted(picked, key=lambda r: r.id)
    ]  # fmt: skip
    return Claim(release_id, token, lease_until, rows)


def addressees(
    conn: Connection | Session, leased: Sequence[Row[Any]], *more: Any
) -> dict[int, Row[Any]]:
    """What the messages of ``leased`` rows (each with a ``subscriber_id``) need of their
    subscribers, read in the claim's transaction, by subscriber id: a row of ``email``,
    ``name``, ``link_nonce`` and the ``more`` columns of ``subscribers``."""
    ids = [r.subscriber_id for r in leased]
    if not ids:
        return {}
    who = select(
        Subscriber.id, Subscriber.email, Subscriber.name, Subscriber.link_nonce, *more
    ).where(one_of(conn, "subscribers.id", ids))
    return {int(r.id): r for r in conn.execute(who)}


def backoff(settings: Settings, attempts: int) -> timedelta:
    """How long to wait before attempt ``attempts + 1``: exponential, capped."""
    seconds = settings.retry_base_seconds * (2 ** max(attempts - 1, 0))
    return timedelta(seconds=min(seconds, settings.retry_max_seconds))


# The note a row in doubt gets when the relay's record shows its message accepted
# (distributor/mail/reconcile.py): sent, and not sent again.
RECONCILED = "accepted before its worker died (found in the relay's record); not sent again"
# How long an outcome the server gave is kept while the database is unreachable.
OUTCOME_PATIENCE = 600.0
# The longest an outcome waits for its group (OutcomeWriter) while answers keep coming.
OUTCOME_GROUP_SECONDS = 0.05
T = TypeVar("T")
_DONE = "smtp_code = :code, lease_until = NULL, lease_token = NULL"
_MINE = "WHERE id = :id AND lease_token = :token"
# A row cancelled (unsubscribe, withdrawal) while its message was already on the wire
# has lost its token; the server took the message, so the ledger says so: a cancelled row
# is never claimed again, and a row taken over has another worker's token, not none.
_MINE_OR_CANCELLED_IN_FLIGHT = (
    "WHERE id = :id AND (lease_token = :token OR (status = 'cancelled' AND lease_token IS NULL"
    " AND sent_at IS NULL))"
)
# {table}: the ledger's table (deliveries, digests: OutcomeWriter).
_RECORD_SQL = {
    DeliveryStatus.SENT: "UPDATE {table} SET status = 'sent', sent_at = :now, "
    f"last_error = :error, {_DONE} {_MINE_OR_CANCELLED_IN_FLIGHT}",
    # A deferred row whose message may have reached the server (SendResult.uncertain) keeps
    # a lease that ends with its backoff, held by nobody: claimed again, it is in doubt.
    DeliveryStatus.DEFERRED: "UPDATE {table} SET status = 'deferred', "
    "next_attempt_at = :retry_at, last_error = :error, smtp_code = :code, "
    f"lease_until = :doubt_until, lease_token = NULL {_MINE}",
    DeliveryStatus.FAILED: "UPDATE {table} SET status = 'failed', last_error = :error, "
    f"{_DONE} {_MINE}",
}
_BOUNCE_SQL = (
    "UPDATE subscribers SET status = 'bounced', bounced_at = :now "
    "WHERE id = :subscriber_id AND status = 'confirmed'"
)


def patiently(
    write: Callable[[], T],
    settings: Settings,
    what: str,
    errors: tuple[type[BaseException], ...],
    reconnect: Callable[[], None] = lambda: None,
) -> T:
    """``write()``, done again every second or so (after ``reconnect()``) while it raises one
    of ``errors`` — the database is unreachable — for up to ``OUTCOME_PATIENCE`` (or the
    lease, if longer); then the error is raised.

    For the outcome of a message the server has answered: kept rather than lost, which would
    send the message again once the lease expired. Nobody can take the row over while the
    database is down, and this write comes within a second of its return, before a sweep
    can re-enqueue the row."""
    patience = max(settings.lease_seconds, OUTCOME_PATIENCE)
    deadline, delay = time.monotonic() + patience, 0.2
    while True:
        try:
            return write()
        except errors as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning(
                "the database is unreachable; keeping the outcome of %s to write it "
                "again in %.1f s: %s",
                what,
                delay,
                str(exc).splitlines()[0] if str(exc) else exc,
            )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
            reconnect()


class OutcomeWriter:
    """Records outcomes, committed in small groups as they are known.

    The hot path of a send: it holds one raw DBAPI connection in autocommit and writes
    through the driver. Outcomes wait in a group of up to ``outcome_group``
    (``DISTRIBUTOR_OUTCOME_GROUP``, 32) and are committed together, at the latest when an
    outcome comes ``OUTCOME_GROUP_SECONDS`` after the group's first, and whenever the batch
    ends (:meth:`flush`, :meth:`close`). One commit per message (an fsync on PostgreSQL)
    bounded a worker process at about 2,000 messages/s there. The price: a worker killed
    between the relay's acceptance and the group's commit leaves up to a group of rows in
    doubt, which reconciliation finds in the relay's record (or, without one, sends again).
    A refusal that bounces the subscriber is written at once, in its own transaction.
    ``table`` is the ledger's: ``deliveries``, or ``digests`` (rows sent to a subscriber,
    with the same columns); ``one`` names one of its rows in the log.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        table: str = "deliveries",
        one: str = "delivery",
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._sqlite = is_sqlite(engine)
        self._errors = _connection_errors(engine)
        self._connect()
        self._one = one
        self._sql = {
            status: self._dialect(sql.format(table=table)) for status, sql in _RECORD_SQL.items()
        }
        self._bounce = self._dialect(_BOUNCE_SQL)
        # SQLite: take the write lock at the start, as every transaction here does (db.py).
        self._begin = "BEGIN IMMEDIATE" if self._sqlite else "BEGIN"
        self._group: list[tuple[DeliveryStatus, dict[str, object], SubscriberRow]] = []
        self._group_started = 0.0
        self._lost: list[SubscriberRow] = []

    def _connect(self) -> None:
        self._raw = self._engine.raw_connection()
        if not self._sqlite:  # psycopg; SQLite connections already autocommit (db.py)
            self._raw.driver_connection.autocommit = True  # type: ignore[union-attr]
        self._cursor = self._raw.cursor()

    def _dialect(self, sql: str) -> str:
        # sqlite3 takes :name as written; psycopg wants %(name)s.
        return sql if self._sqlite else re.sub(r":(\w+)", r"%(\1)s", sql)

    def _time(self, when: datetime) -> object:
        naive = when.astimezone(UTC).replace(tzinfo=None)
        # The text form SQLAlchemy stores on SQLite, so comparisons stay consistent.
        return naive.isoformat(" ", "microseconds") if self._sqlite else naive

    def record(
        self,
        claim_token: str,
        row: SubscriberRow,
        outcome: Outcome,
        code: int,
        message: str,
        uncertain: bool = False,
        answered_at: datetime | None = None,
    ) -> bool:
        """Record the outcome of one attempt, the server's answer at ``answered_at`` (now if
        not given): committed with its group (see the class), or at once for a bounce.
        Returns False if the row's lease is known lost (another worker took it over), in
        which case nothing is changed; a lease found lost when a group is committed is
        reported by :meth:`flush`.

        sent → done; failed → done, and a 5xx reply marks the subscriber bounced; deferred
        → tried again after the backoff, or failed once ``give_up_after_seconds`` have
        passed since planning; ``uncertain`` (deferred with no reply after the data went
        out): claimed again, the row is in doubt and reconciled first.

        If the database cannot be reached, the outcomes are kept and written again on a new
        connection (:func:`patiently`)."""
        now = answered_at or utcnow()
        params: dict[str, object] = {
            "now": self._time(now),
            "code": code,
            "error": message[:1000],
            "id": row.row_id,
            "token": claim_token,
            "subscriber_id": row.subscriber_id,
        }
        status = DeliveryStatus.SENT if outcome == "sent" else DeliveryStatus.FAILED
        if outcome == "sent" and message != RECONCILED:
            params["error"] = ""  # a sent row keeps no note, but for one found by reconciling
        if outcome == "deferred":
            retry_at = now + backoff(self._settings, row.attempts)
            if (retry_at - row.created_at).total_seconds() > self._settings.give_up_after_seconds:
                params["error"] = f"gave up: {message}"[:1000]
            else:
                status, params["retry_at"] = DeliveryStatus.DEFERRED, self._time(retry_at)
                params["doubt_until"] = self._time(retry_at) if uncertain else None
        if outcome == "failed" and code >= 500:  # bounces the subscriber: written at once
            return patiently(
                lambda: self._write(status, params, bounce=True),
                self._settings,
                f"{self._one} {row.row_id}",
                self._errors,
                self._reopen,
            )
        if not self._group:
            self._group_started = time.monotonic()
        self._group.append((status, params, row))
        if (
            len(self._group) >= self._settings.outcome_group
            or time.monotonic() - self._group_started > OUTCOME_GROUP_SECONDS
        ):
            self._lost += self._commit_group()
        return True

    def flush(self) -> list[SubscriberRow]:
        """Commit the outcomes waiting in the group; returns the rows whose lease was found
        lost since the last call (their outcomes changed nothing)."""
        if self._group:
            self._lost += self._commit_group()
        lost, self._lost = self._lost, []
        return lost

    def _commit_group(self) -> list[SubscriberRow]:
        group, self._group = self._group, []
        lost = patiently(
            lambda: self._write_group(group),
            self._settings,
            f"{self._one} {', '.join(str(row.row_id) for _, _, row in group)}",
            self._errors,
            self._reopen,
        )
        return lost

    def _write_group(
        self, group: list[tuple[DeliveryStatus, dict[str, object], SubscriberRow]]
    ) -> list[SubscriberRow]:
        """One transaction for the group, one statement per status in it. When fewer rows
        changed than the group holds (a lease lost: rare), it is written again row by row
        to find which."""
        by_status: dict[DeliveryStatus, list[dict[str, object]]] = {}
        for status, params, _ in group:
            by_status.setdefault(status, []).append(params)
        cursor = self._cursor
        cursor.execute(self._begin)
        try:
            changed = 0
            for status, rows in by_status.items():
                cursor.executemany(self._sql[status], rows)
                changed += cursor.rowcount
            if changed == len(group):
                cursor.execute("COMMIT")
                return []
            cursor.execute("ROLLBACK")
        except BaseException:
            with contextlib.suppress(Exception):  # a broken connection: reopened by patiently
                cursor.execute("ROLLBACK")
            raise
        return [row for status, params, row in group if not self._write(status, params, False)]

    def _reopen(self) -> None:
        """Throw the broken connection away and take a new one, if the database answers."""
        with contextlib.suppress(Exception):  # broken already: only a new one matters
            self._raw.invalidate()
        try:
            self._connect()
        except self._errors:
            pass  # still down: the next attempt fails at once and waits again

    def _write(self, status: DeliveryStatus, params: dict[str, object], bounce: bool) -> bool:
        """One attempt at the write; with ``bounce``, the subscriber is marked bounced in the
        same transaction."""
        if not bounce:
            self._cursor.execute(self._sql[status], params)
            return bool(self._cursor.rowcount)
        self._cursor.execute("BEGIN")
        try:
            self._cursor.execute(self._sql[status], params)
            changed = bool(self._cursor.rowcount)
            if changed:
                self._cursor.execute(self._bounce, params)
            self._cursor.execute("COMMIT")
        except BaseException:
            self._cursor.execute("ROLLBACK")
            raise
        return changed

    def drop(self, claim_token: str, row: SubscriberRow) -> None:
        """Nothing to note: a row is made unwanted by cancelling it (an unsubscribe, a
        withdrawal), which is how the batch saw it."""

    def close(self) -> None:
        """Commit the group waiting (whatever ended the batch), then give the connection back
        to the pool as it was lent."""
        if self._group:
            self._lost += self._commit_group()
        with contextlib.suppress(Exception):  # a connection the database dropped
            self._cursor.close()
            if not self._sqlite and self._raw.driver_connection is not None:
                self._raw.driver_connection.autocommit = False
        self._raw.close()

    def __enter__(self) -> OutcomeWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _connection_errors(engine: Engine) -> tuple[type[BaseException], ...]:
    """The DBAPI errors of ``engine``'s driver that mean the connection or server failed
    (worth a new connection and another try), and SQLAlchemy's wrapper of them."""
    dbapi = engine.dialect.loaded_dbapi
    return (dbapi.OperationalError, dbapi.InterfaceError, DBAPIError)


# The ledgers whose rows are leased the same way: release emails, notices, confirmations.
Leased = (
    type[Delivery]
    | type[CorrectionNotice]
    | type[ConfirmationEmail]
    | type[InvitationEmail]
    | type[Digest]
)


def lease(
    session: Session,
    settings: Settings,
    table: Leased,
    row_ids: Sequence[int],
    token: str,
    *returning: Any,
) -> Sequence[Row[Any]]:
    """Lease the rows ``row_ids`` of ``table`` (picked in the caller's claim transaction)
    to ``token`` for ``lease_seconds`` and count an attempt; returns the ``returning``
    columns of each."""
    until = utcnow() + timedelta(seconds=settings.lease_seconds)
    return session.execute(
        update(table)
        .where(one_of(session, f"{table.__tablename__}.id", row_ids))
        .values(lease_until=until, lease_token=token, attempts=table.attempts + 1)
        .returning(*returning)
    ).all()


def renew_leases(
    conn: Connection,
    settings: Settings,
    claim_token: str,
    row_ids: Sequence[int],
    ledger: Leased = Delivery,
) -> None:
    """Extend the lease of the rows of a batch still being sent, so that a batch slowed by
    a send rate or a slow server is never taken over (and sent twice) while its worker
    lives; a dead worker's rows are free again ``lease_seconds`` after its last renewal."""
    if not row_ids:
        return
    with conn.begin():
        conn.execute(
            update(ledger)
            .where(ledger.id.in_(list(row_ids)), ledger.lease_token == claim_token)
            .values(lease_until=utcnow() + timedelta(seconds=settings.lease_seconds))
        )


def release_leases(
    conn: Connection, claim_token: str, row_ids: Sequence[int], ledger: Leased = Delivery
) -> None:
    """Give back rows claimed but not attempted, so another worker may take them at once."""
    if not row_ids:
        return
    with conn.begin():
        conn.execute(
            update(ledger)
            .where(ledger.id.in_(list(row_ids)), ledger.lease_token == claim_token)
            .values(lease_until=None, lease_token=None, attempts=ledger.attempts - 1)
        )


def postpone(
    conn: Connection,
    claim_token: str,
    until: Mapping[int, datetime],
    ledger: Leased = Delivery,
) -> None:
    """Give back rows claimed but held back before any attempt (a send limit was reached):
    no attempt is counted, and each row may be claimed again from its time in ``until``
    (row id → time). Rows whose lease was lost are left alone."""
    if not until:
        return
    stmt = (
        update(ledger)
        .where(ledger.id == bindparam("row_id"), ledger.lease_token == claim_token)
        .values(
            lease_until=None,
            lease_token=None,
            attempts=ledger.attempts - 1,
            next_attempt_at=bindparam("row_at", type_=UTCDateTime),
        )
    )
    with conn.begin():
        conn.execute(stmt, [{"row_id": k, "row_at": at} for k, at in until.items()])


def counts(session: Session, release_id: int, advance: bool | None = None) -> dict[str, int]:
    """The number of ledger rows of the release in each status (every status present), the
    rows folded after the retention period (outbox/retention.py) included: all of them, or
    only its embargoed advance copies (``advance`` True) or the others."""
    query = (
        select(Delivery.status, func.count())
        .where(Delivery.release_id == release_id)
        .group_by(Delivery.status)
    )
    if advance is not None:
        query = query.where(Delivery.advance.is_(advance))
    found = {str(status): int(n) for status, n in session.execute(query)}
    gone = folded(session, release_id)
    if advance is None:
        extra = gone.counts
    elif advance:
        extra = gone.advance_counts
    else:
        extra = {k: n - gone.advance_counts[k] for k, n in gone.counts.items()}
    return {s.value: found.get(s.value, 0) + extra.get(s.value, 0) for s in DeliveryStatus}


def due(session: Session) -> dict[int, int]:
    """For each release with rows ready to be claimed now, how many there are."""
    now = utcnow()
    rows = session.execute(
        select(Delivery.release_id, func.count())
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(
            Delivery.status.in_(OPEN_STATUSES),
            Delivery.next_attempt_at <= now,
            (Delivery.lease_until.is_(None)) | (Delivery.lease_until < now),
            Subscriber.status == SubscriberStatus.CONFIRMED,
        )
        .group_by(Delivery.release_id)
    )
    return {int(rid): int(n) for rid, n in rows}


def cancel_unconfirmed(session: Session) -> int:
    """Cancel open release emails and digests whose subscriber is no longer confirmed;
    returns how many."""
    gone = select(Subscriber.id).where(Subscriber.status != SubscriberStatus.CONFIRMED)
    cancelled = 0
    for table in (Delivery, Digest):
        result = session.execute(
            update(table)
            .where(table.status.in_(OPEN_STATUSES), table.subscriber_id.in_(gone))
            .values(status=DeliveryStatus.CANCELLED, last_error="subscriber no longer confirmed")
        )
        cancelled += int(getattr(result, "rowcount", 0) or 0)
    return cancelled


def cancel_release(session: Session, release_id: int, reason: str) -> int:
    """Cancel the release's rows not sent yet (planned, deferred, or claimed by a worker:
    its lease check drops them before their message starts); returns how many."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.release_id == release_id, Delivery.status.in_(OPEN_STATUSES))
        .values(
            status=DeliveryStatus.CANCELLED, last_error=reason, lease_token=None, lease_until=None
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def still_leased(
    conn: Connection, claim_token: str, delivery_ids: Sequence[int], ledger: Leased = Delivery
) -> set[int]:
    """Which of ``delivery_ids`` (rows of ``ledger``) are still leased under ``claim_token``:
    a row the subscriber cancelled by unsubscribing (or that a withdrawal cancelled) is no
    longer."""
    if not delivery_ids:
        return set()
    # Asked every LEASE_CHECK_SECONDS by every batch: one parameter for the ids (among_ids),
    # and a count first: nearly always every row is still leased, and one number is cheaper
    # to fetch than a few hundred ids.
    sqlite = conn.dialect.name == "sqlite"
    where = f"FROM {ledger.__tablename__} WHERE lease_token = :token AND {among_ids(sqlite)}"
    params = {"token": claim_token, "ids": ids_param(sqlite, delivery_ids)}
    asked = set(delivery_ids)
    if conn.execute(text("SELECT count(*) " + where), params).scalar_one() == len(asked):
        leased = asked
    else:
        leased = {int(r[0]) for r in conn.execute(text("SELECT id " + where), params)}
    conn.rollback()  # end the read transaction at once: the next check must see new commits
    return leased


# One protocol for every kind of email the outbox sends --------------------------------------
# The send loop (outbox/sending.py) sees a ledger only through these: a kind whose rows live
# in another table (notices: outbox/notices.py; confirmations: outbox/confirmations.py)
# implements them there, and gets the same leases, limits, reconciliation, patience and
# failpoints by construction.


class ClaimedRow(Protocol):
    """A row of any ledger, leased to this worker: whom to send to, how often tried."""

    @property
    def row_id(self) -> int: ...
    @property
    def email(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def in_doubt(self) -> bool: ...


R = TypeVar("R", bound=ClaimedRow)
R_co = TypeVar("R_co", bound=ClaimedRow, covariant=True)
R_contra = TypeVar("R_contra", bound=ClaimedRow, contravariant=True)
S = TypeVar("S")  # what a kind's rows are about: a release, a subscription request


class Batch(Protocol[R_co]):
    """Rows leased under one token."""

    @property
    def token(self) -> str: ...
    @property
    def rows(self) -> Sequence[R_co]: ...


class Recorder(Protocol[R_contra]):
    """Records the outcome of each attempt (see :meth:`OutcomeWriter.record`), committed at
    once or with a small group; False when the row's lease is known lost."""

    def record(
        self,
        claim_token: str,
        row: R_contra,
        outcome: Outcome,
        code: int,
        message: str,
        uncertain: bool = False,
        answered_at: datetime | None = None,
    ) -> bool: ...

    def drop(self, claim_token: str, row: R_contra) -> None:
        """Note a claimed row no longer wanted: it is not sent."""
        ...

    def flush(self) -> Sequence[ClaimedRow]:
        """Commit every outcome still waiting; the rows whose lease was found lost since
        the last call (their outcomes changed nothing)."""
        ...


class Messages(Protocol[R_contra]):
    """The messages of a batch's rows: rendered once, personalised per row."""

    def message_id(self, row: R_contra) -> str:
        """The Message-ID ``row``'s message carries, the same every time it is built (the
        relay's record is searched for it: :mod:`distributor.mail.reconcile`)."""
        ...

    def message(self, row: R_contra) -> tuple[str, bytes]:
        """The envelope sender and the complete message for ``row``, ready for SMTP DATA;
        InputError when the row can never be sent (a value stored before today's checks)."""
        ...


class Ledger(Protocol[R, S]):
    """What the send loop needs of one kind of email's ledger."""

    table: Leased  # whose leases renew_leases, release_leases and postpone work on
    what: str  # its rows, in the log: "deliveries", "notices"
    one: str  # one of them: "delivery", "notice"
    about: str  # what the rows of one batch are about, in the log: "release"

    def subject(self, settings: Settings, subject_id: int) -> S | None:
        """What this kind's rows are about (a release…), or None when none of them is to be
        sent now (nothing is claimed then)."""
        ...

    def claim(self, engine: Engine, settings: Settings, subject_id: int, limit: int) -> Batch[R]:
        """Lease up to ``limit`` due rows about the subject to a new token, committed."""
        ...

    def still_wanted(self, conn: Connection, batch: Batch[R], row_ids: Sequence[int]) -> set[int]:
        """Which of ``row_ids`` may still be sent (unsubscribed, withdrawn… since the claim:
        not), read in a transaction that ends at once."""
        ...

    def recorder(self, engine: Engine, settings: Settings) -> ContextManager[Recorder[R]]:
        """What records the batch's outcomes, open while it is sent."""
        ...

    def compose(self, settings: Settings, subject: S, rows: Sequence[R]) -> Messages[R]:
        """The messages of ``rows`` (rendered once, personalised per recipient)."""
        ...


class SubscriberRow(ClaimedRow, Protocol):
    """A row sent to a subscriber about a release: their links and the VERP sender."""

    @property
    def subscriber_id(self) -> int: ...
    @property
    def delivery_id(self) -> int | None: ...  # a release email's row: names the VERP sender
    @property
    def name(self) -> str: ...
    @property
    def link_nonce(self) -> str | None: ...


SR_contra = TypeVar("SR_contra", bound=SubscriberRow, contravariant=True)


def recipient(settings: Settings, row: SubscriberRow, page_url: str | None = None) -> Recipient:
    """Who a claimed row's message goes to, with their signed links (naming the subscriber's
    link nonce, fetched with the claim) and their own page, if the email has one;
    InputError for a name or address stored before today's checks."""
    from distributor.mail.compose import Recipient

    return Recipient(
        subscriber_id=row.subscriber_id,
        email=row.email,
        name=row.name,
        unsubscribe_url=unsubscribe_url(settings, row.subscriber_id, row.link_nonce),
        preferences_url=preferences_url(settings, row.subscriber_id, row.link_nonce),
        delivery_id=row.delivery_id,
        page_url=page_url,
    )


class ToSubscribers(Generic[SR_contra]):
    """:class:`Messages` of emails about a release, rendered once (``pick`` says which
    rendering a row gets) and personalised per subscriber."""

    def __init__(
        self,
        settings: Settings,
        pick: Callable[[SR_contra], RenderedRelease],
        page: Callable[[SR_contra], str] | None = None,
    ) -> None:
        # ``page``: each row's own "read online" link, for a rendering whose page is personal.
        self._settings, self._pick, self._page = settings, pick, page

    def message_id(self, row: SR_contra) -> str:
        return self._pick(row).message_id(row.subscriber_id)

    def message(self, row: SR_contra) -> tuple[str, bytes]:
        rcpt = recipient(self._settings, row, self._page(row) if self._page else None)
        email = self._pick(row)
        return email.envelope_for(rcpt), email.message_for(rcpt)


class RowRecorder:
    """Records the outcomes of a ledger kept through the ORM (:data:`Leased`), each in its
    own transaction (:class:`Recorder`): the statuses, backoff and giving up of
    :meth:`OutcomeWriter.record`, kept through a database outage (:func:`patiently`).

    ``also(conn, row, outcome, code, now)`` runs in the same transaction when the outcome
    was written: what else the outcome means to the kind (a 5xx refusal bounces the
    subscriber; a confirmation that did not go out gives its mailbox's day back).
    ``one(row)`` names one row in the log ("correction notice")."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        table: Leased,
        also: Callable[[Connection, Any, str, int, datetime], None] | None = None,
        not_wanted: str = "not sent: no longer wanted",
        one: Callable[[Any], str] = lambda row: "row",
    ) -> None:
        self._engine, self._settings, self._table = engine, settings, table
        self._also, self._not_wanted, self._one = also, not_wanted, one

    def record(
        self,
        claim_token: str,
        row: ClaimedRow,
        outcome: Outcome | Literal["cancelled"],
        code: int,
        message: str,
        uncertain: bool = False,
        answered_at: datetime | None = None,
    ) -> bool:
        """Commit the outcome of one attempt, the server's answer at ``answered_at`` (now if
        not given). Returns False if the row's lease had been lost (nothing is changed then).

        sent → done; cancelled → done, not sent; failed → done; deferred → tried again after
        the backoff, or failed once ``give_up_after_seconds`` have passed since planning."""
        table, now = self._table, answered_at or utcnow()
        values: dict[str, object] = {
            "smtp_code": code or None,
            "lease_until": None,
            "lease_token": None,
            "last_error": message[:1000],
        }
        status = outcome
        if outcome == "sent":  # no note, but for one found by reconciling
            values["sent_at"] = now
            if message != RECONCILED:
                values["last_error"] = ""
        elif outcome == "cancelled":
            values["attempts"] = table.attempts - 1
        elif outcome == "deferred":
            retry_at = now + backoff(self._settings, row.attempts)
            if (retry_at - row.created_at).total_seconds() > self._settings.give_up_after_seconds:
                status, values["last_error"] = "failed", f"gave up: {message}"[:1000]
            else:
                values["next_attempt_at"] = retry_at
                if uncertain:  # as for deliveries: claimed again, the row is in doubt
                    values["lease_until"] = retry_at
        values["status"] = DeliveryStatus(status)

        def write() -> bool:
            with self._engine.begin() as conn:
                changed = conn.execute(
                    update(table)
                    .where(table.id == row.row_id, table.lease_token == claim_token)
                    .values(**values)
                ).rowcount
                if changed and self._also is not None:
                    self._also(conn, row, str(status), code, now)
            return bool(changed)

        unreachable = (OperationalError, InterfaceError)  # not a refused statement
        what = f"{self._one(row)} {row.row_id}"  # "correction notice 12"
        return patiently(write, self._settings, what, unreachable)

    def drop(self, claim_token: str, row: ClaimedRow) -> None:
        """Cancel the row: made unwanted by a state (the subscriber left, the release was
        withdrawn…), not by a cancelled row."""
        self.record(claim_token, row, "cancelled", 0, self._not_wanted)

    def flush(self) -> list[ClaimedRow]:
        """Nothing waits: each outcome was committed by :meth:`record`."""
        return []

    def __enter__(self) -> RowRecorder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def bounce_on_refusal(conn: Connection, row: Any, status: str, code: int, now: datetime) -> None:
    """A row refused for good with a 5xx reply marks its subscriber bounced (as
    :meth:`OutcomeWriter.record` does for release emails)."""
    if status == DeliveryStatus.FAILED and code >= 500:
        conn.execute(
            update(Subscriber)
            .where(
                Subscriber.id == row.subscriber_id,
                Subscriber.status == SubscriberStatus.CONFIRMED,
            )
            .values(status=SubscriberStatus.BOUNCED, bounced_at=now)
        )


_rendered: dict[tuple[int, datetime, Identity, bool], RenderedRelease] = {}
_subjects: dict[int, Release] = {}  # by id: each release as last read (ReleaseEmails.subject)


class ReleaseEmails:
    """The ledger of release emails (:class:`Ledger`): ``deliveries``, one row per release
    and subscriber."""

    table: Leased = Delivery
    what, one, about = "deliveries", "delivery", "release"

    def subject(self, settings: Settings, subject_id: int) -> Release | None:
        """The release while it is published, or scheduled with its advance copies planned
        (then its only rows are those)."""
        with session_scope(settings) as session:
            # Every batch asks: the release with its topics, versions and media is read
            # again only when it changed (a fifteenth of a send's CPU, batch after batch).
            now = session.execute(
                select(Release.state, Release.updated_at, Release.advance_planned_at).where(
                    Release.id == subject_id
                )
            ).one_or_none()
            if now is None:
                return None
            early = now.state == ReleaseState.SCHEDULED and now.advance_planned_at
            if now.state != ReleaseState.PUBLISHED and not early:
                return None
            kept = _subjects.get(subject_id)
            if kept is None or (kept.state, kept.updated_at, kept.advance_planned_at) != tuple(now):
                if len(_subjects) > 16:
                    _subjects.clear()
                kept = _subjects[subject_id] = session.get_one(Release, subject_id)
            return kept

    def claim(self, engine: Engine, settings: Settings, subject_id: int, limit: int) -> Claim:
        return claim(engine, settings, subject_id, limit)

    def still_wanted(
        self, conn: Connection, batch: Batch[Claimed], row_ids: Sequence[int]
    ) -> set[int]:
        # A row the subscriber left, or a withdrawal cancelled, has lost its lease.
        return still_leased(conn, batch.token, row_ids)

    def recorder(self, engine: Engine, settings: Settings) -> OutcomeWriter:
        return OutcomeWriter(engine, settings)

    def compose(
        self, settings: Settings, subject: Release, rows: Sequence[Claimed]
    ) -> ToSubscribers[Claimed]:
        # Kept between batches of the same release (until it or the identity changes):
        # rendered once. The identity is read once a batch, never per recipient.
        from distributor.mail.compose import render_advance_copy, render_release
        from distributor.office.identity import identity

        with read_scope(settings) as session:
            sender = identity(session, settings)
        # Before the lift an advance copy's row gets the embargoed rendering; one still
        # waiting when the embargo lifts goes out as the public email.
        early = subject.state == ReleaseState.SCHEDULED
        key = (subject.id, subject.updated_at, sender, early)
        if key not in _rendered:
            if len(_rendered) > 16:
                _rendered.clear()
            render = render_advance_copy if early else render_release
            _rendered[key] = render(subject, settings, sender)
        rendered = _rendered[key]
        if not early:
            return ToSubscribers(settings, lambda row: rendered)
        release_id = subject.id
        return ToSubscribers(
            settings,
            lambda row: rendered,
            lambda row: advance_url(settings, release_id, row.subscriber_id, row.link_nonce),
        )


RELEASE_EMAILS = ReleaseEmails()
