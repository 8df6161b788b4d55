"""The per-delivery report as CSV (``releases report ID --csv``, the API's ``/report``): on
PostgreSQL written by the database itself, on SQLite by Python's csv module.

The same bytes either way: the lines :func:`distributor.reporting.report.write_csv` writes
from :func:`~distributor.reporting.report.delivery_lines` — the same order, cells, formula
defusing (core/spreadsheet.py), quoting and ``\\r\\n`` line ends (tests/test_report_csv.py
compares both on awkward data). On PostgreSQL each line is made in SQL and read as one text
value: Python only passes the lines on. Making a ``DeliveryLine`` and a csv row per
delivery in Python took 23 s for 1,000,000 rows (bench/at_scale.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TextIO

from sqlalchemy.orm import Session

from distributor.core.config import Settings
from distributor.core.db import is_sqlite, read_scope, session_scope
from distributor.core.spreadsheet import formula_start_regex
from distributor.releases.lifecycle import get_release
from distributor.reporting.report import delivery_lines, rows_without_subscriber, write_csv

# What str.split() takes for white space (the report puts an error reply on one line with
# " ".join(text.split())): tests/test_report_csv.py checks it against str.isspace.
WHITESPACE: Final = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
FETCH: Final = 5000  # lines read per round trip (a server-side cursor)

# A text cell: defused, its quotes doubled, quoted when it holds a quote, a comma or a line
# break (the csv module's QUOTE_MINIMAL); NULL is an empty cell. One test first: most
# cells need none of it (one regular expression a cell, not three).
_TEXT = (
    "coalesce(CASE WHEN {expr} ~ %(awkward)s THEN regexp_replace(replace(regexp_replace("
    "{expr}, %(formula)s, '''\\1'), '\"', '\"\"'), %(quoted)s, '\"\\1\"') ELSE {expr} END, '')"
)
# A number: only a negative one starts like a formula; none needs quotes.
_NUMBER = "coalesce(CASE WHEN {expr} < 0 THEN '''' ELSE '' END || {expr}::text, '')"
# A time as report.iso_utc writes it: UTC (stored naive UTC), milliseconds, a "Z".
_TIME = "coalesce(to_char({expr}, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), '')"
# The error reply on one line (report.py: " ".join(text.split())); none, for most rows.
_ONE_LINE = (
    "(CASE WHEN d.last_error = '' THEN '' "
    "ELSE btrim(regexp_replace(d.last_error, %(spaces)s, ' ', 'g'), ' ') END)"
)

_CELLS = (  # in the order of report.CSV_COLUMNS
    _TEXT.format(expr="s.email"),
    _TEXT.format(expr="s.language"),
    _TEXT.format(expr="d.status"),
    _NUMBER.format(expr="d.attempts"),
    _NUMBER.format(expr="d.smtp_code"),
    _TEXT.format(expr=_ONE_LINE),
    _TIME.format(expr="d.created_at"),
    _TIME.format(expr="d.sent_at"),
    _TEXT.format(expr="d.bounce"),
    _TIME.format(expr="d.bounced_at"),
)
# The rows whose subscriber exists, by email (report._with_subscriber's order).
_LINES = (
    "SELECT "
    + " || ',' || ".join(_CELLS)
    + " || chr(13) || chr(10)"
    + """
FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
WHERE d.release_id = %(release_id)s
ORDER BY s.email
"""
)
_PARAMS: Final = {
    "formula": formula_start_regex(),
    "quoted": '^(.*[",\r\n].*)$',  # "." takes line breaks too: PostgreSQL's default
    "awkward": formula_start_regex() + '|[",\r\n]',  # a cell either of them changes
    "spaces": f"[{WHITESPACE}]+",
}


def report_csv(settings: Settings, release_id: int) -> Callable[[TextIO], int]:
    """What writes the CSV of release ``release_id`` (a header row, then one row per
    delivery still in the ledger) to a stream opened with ``newline=""``, returning the
    number of rows, header not counted. Raises NotFound at once — before the caller opens
    a file — when there is no such release."""
    with session_scope(settings) as session:
        get_release(session, release_id)
        sqlite = is_sqlite(session.get_bind())
    if sqlite:
        return lambda stream: write_csv(delivery_lines(settings, release_id), stream)
    return lambda stream: _write_from_sql(settings, release_id, stream)


def _write_from_sql(settings: Settings, release_id: int, stream: TextIO) -> int:
    n = write_csv((), stream)  # the header, as the csv module writes it
    with read_scope(settings) as session:
        n += _copy_lines(session, release_id, stream)
    # Rows whose subscriber is gone (none today: erasure deletes them), as report.py
    # writes them: no line of the header again.
    return n + write_csv(rows_without_subscriber(settings, release_id), stream, header=False)


def _copy_lines(session: Session, release_id: int, stream: TextIO) -> int:
    """Write the finished lines PostgreSQL makes, read through a server-side cursor (memory
    bounded whatever the size of the release)."""
    raw: Any = session.connection().connection.driver_connection
    n = 0
    # Every line is read: the plan for the whole result, not for its first rows (a cursor's
    # default: an index walk in email order, a lookup per row).
    raw.execute("SET LOCAL cursor_tuple_fraction = 1")
    with raw.cursor(name="distributor_report_csv") as cursor:
        cursor.itersize = FETCH
        cursor.execute(_LINES, {**_PARAMS, "release_id": release_id})
        while rows := cursor.fetchmany(FETCH):
            stream.writelines(row[0] for row in rows)
            n += len(rows)
    return n
