"""A release's per-delivery report: every ledger row of the release, one line each, streamed
in pages, and its CSV form (safe to open in a spreadsheet).

``distributor releases report ID --csv`` writes it; the summary without ``--csv`` is
:func:`distributor.reporting.status.release_status`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from sqlalchemy import exists, select

from distributor.core.config import Settings
from distributor.core.db import is_sqlite, read_scope, session_scope
from distributor.core.models import Delivery, Subscriber
from distributor.core.spreadsheet import defuse
from distributor.outbox.retention import folded
from distributor.releases.lifecycle import get_release

# Ledger rows read per query and transaction. Each page sorts the release's rows anew:
# 100,000 rows took 4.4 s with pages of 1,000 and 3.3 s with 5,000 (PostgreSQL).
PAGE: Final = 5000

CSV_COLUMNS: Final = (
    "email",
    "language",
    "status",
    "attempts",
    "smtp_code",
    "last_error",
    "created_at",
    "sent_at",
    "bounce",
    "bounced_at",
)


@dataclass(frozen=True, slots=True)
class DeliveryLine:
    """One ledger row of a release, as the report shows it."""

    email: str  # "" when the subscriber no longer exists (erased)
    language: str  # the subscriber's; "" likewise
    status: str
    attempts: int
    smtp_code: int | None
    last_error: str  # on one line: every run of white space made one space
    created_at: datetime
    sent_at: datetime | None
    bounce: str | None  # "hard", "soft" or None
    bounced_at: datetime | None

    def cells(self) -> tuple[object, ...]:
        """The values in the order of ``CSV_COLUMNS``."""
        return (
            self.email,
            self.language,
            self.status,
            self.attempts,
            self.smtp_code,
            self.last_error,
            self.created_at,
            self.sent_at,
            self.bounce,
            self.bounced_at,
        )


_COLUMNS = (
    Delivery.id,
    Delivery.status,
    Delivery.attempts,
    Delivery.smtp_code,
    Delivery.last_error,
    Delivery.created_at,
    Delivery.sent_at,
    Delivery.bounce,
    Delivery.bounced_at,
)


def delivery_lines(settings: Settings, release_id: int, page: int = PAGE) -> Iterator[DeliveryLine]:
    """Every delivery of the release still in the ledger, ordered by the subscriber's email
    (the database's collation), then any row whose subscriber is gone (by row id). Rows
    folded after the retention period are not (:func:`fold_note` says so).

    Raises NotFound at once — not on the first ``next()`` — when there is no such release.
    The rows come from one read, streamed ``page`` at a time (a server-side cursor on
    PostgreSQL): memory stays bounded whatever the size of the ledger, each row appears
    once and as it was when the report began, while the workers go on writing. The read
    takes no write lock (``db.read_scope``), so a slow reader (a pipe into a pager) holds
    up no worker. It was a query per page, keyed on the email, each joining the release's
    rows again: 106 s for 1,000,000 rows on PostgreSQL (bench/at_scale.py).
    """
    with session_scope(settings) as session:
        get_release(session, release_id)
    return _lines(settings, release_id, page)


def describe_fold(rows: int, folded_at: datetime | None) -> str | None:
    """The line saying that ``rows`` per-recipient rows of a release were folded into counts
    (last on ``folded_at``) after the retention period; None when none were."""
    if not rows or folded_at is None:
        return None
    return (
        f"per-recipient rows of {rows} deliveries were folded on {folded_at:%Y-%m-%d} after "
        "the retention period (DISTRIBUTOR_LEDGER_RETENTION_DAYS): the totals count them, "
        "the rows listed are only those kept"
    )


def fold_note(settings: Settings, release_id: int) -> str | None:
    """:func:`describe_fold` for release ``release_id``: what its per-recipient report
    (``delivery_lines``) no longer lists."""
    with session_scope(settings) as session:
        gone = folded(session, release_id)
    return describe_fold(gone.rows, gone.folded_at)


def _lines(settings: Settings, release_id: int, page: int) -> Iterator[DeliveryLine]:
    yield from _with_subscriber(settings, release_id, page)
    yield from rows_without_subscriber(settings, release_id, page)


def _with_subscriber(settings: Settings, release_id: int, page: int) -> Iterator[DeliveryLine]:
    with read_scope(settings) as session:
        # By code point: SQLite's own order; PostgreSQL's is its collation's unless told.
        by = Subscriber.email if is_sqlite(session.get_bind()) else Subscriber.email.collate("C")
        query = (
            select(Subscriber.email, Subscriber.language, *_COLUMNS)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.release_id == release_id)
            .order_by(by)
            .execution_options(yield_per=page)
        )
        for row in session.execute(query):
            yield _line(row[0], row[1], row[2:])


def rows_without_subscriber(
    settings: Settings, release_id: int, page: int = PAGE
) -> Iterator[DeliveryLine]:
    """The lines of :func:`delivery_lines` whose subscriber is gone, last in the report (by
    row id)."""
    # Erasure deletes a person's ledger rows today, so no row outlives its subscriber;
    # should that change (rows kept, anonymised), they are still reported, without email.
    gone = ~exists().where(Subscriber.id == Delivery.subscriber_id)
    last_id = 0
    while True:
        query = (
            select(*_COLUMNS)
            .where(Delivery.release_id == release_id, gone, Delivery.id > last_id)
            .order_by(Delivery.id)
            .limit(page)
        )
        with session_scope(settings) as session:
            rows = session.execute(query).all()
        for row in rows:
            yield _line("", "", row)
        if len(rows) < page:
            return
        last_id = rows[-1][0]


def _line(email: str, language: str, values: Sequence[Any]) -> DeliveryLine:
    # By position: a Row's attribute access costs more than the rest of the line.
    _id, status, attempts, code, error, created, sent, bounce, bounced = values
    return DeliveryLine(
        email,
        language,
        status,
        attempts,
        code,
        " ".join((error or "").split()),
        created,
        sent,
        bounce,
        bounced,
    )


def iso_utc(when: datetime) -> str:
    """``when`` in UTC as ISO 8601 with milliseconds and a ``Z``: 2026-11-20T08:00:01.250Z."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def csv_cell(value: object) -> str:
    """The text of one CSV cell: "" for None, ISO 8601 UTC for a time, else ``str(value)``
    — defused (see ``spreadsheet``): the subscriber's own address
    (``=HYPERLINK(...)@example.com`` is a valid one) and the remote mail server's error
    reply are outsiders' text. Every cell of the report passes through here, so no column
    can be forgotten.
    """
    if value is None:
        return ""
    text = iso_utc(value) if isinstance(value, datetime) else str(value)
    return defuse(text)


def write_csv(lines: Iterable[DeliveryLine], stream: TextIO, header: bool = True) -> int:
    """Write a header row (``CSV_COLUMNS``; not with ``header`` False) and one row per line
    to ``stream`` (opened with ``newline=""``); returns the number of rows, header not
    counted."""
    writer = csv.writer(stream)
    if header:
        writer.writerow(CSV_COLUMNS)
    n = 0
    for line in lines:
        writer.writerow([csv_cell(value) for value in line.cells()])
        n += 1
    return n
