"""The per-delivery report as CSV (``releases report ID --csv``, the API's ``/report``): on
PostgreSQL written by the database itself, on SQLite by Python's csv module.

The same bytes either way: the lines :func:`distributor.reporting.report.write_csv` writes
from :func:`~distributor.reporting.report.delivery_lines` — the same order (by address, code
point by code point, whatever the database's collation), cells, formula defusing
(core/spreadsheet.py), quoting and ``\\r\\n`` line ends (tests/test_report_csv.py compares
both on awkward data). On PostgreSQL each line is made in SQL and the lines come through
``COPY ... TO STDOUT``: Python only passes them on. Making a ``DeliveryLine`` and a csv row
per delivery in Python took 23 s for 1,000,000 rows (bench/at_scale.py); the lines read
through a cursor 4.9 s, through COPY, which may use PostgreSQL's parallel workers where a
cursor may not, ~3 s.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final, TextIO

from sqlalchemy.orm import Session

from distributor.core.config import Settings
from distributor.core.db import is_sqlite, read_scope, session_scope
from distributor.core.spreadsheet import formula_start_regex
from distributor.releases.lifecycle import get_release
from distributor.reporting.report import delivery_lines, write_csv

# What str.split() takes for white space (the report puts an error reply on one line with
# " ".join(text.split())): tests/test_report_csv.py checks it against str.isspace.
WHITESPACE: Final = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
CHUNK: Final = 1 << 19  # bytes of lines passed on to the stream at a time

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

# The cells in the order of report.CSV_COLUMNS: each one's SQL for any row, then for a row
# none of whose text needs defusing or quoting (_PLAIN_ROW).
_CELLS: Final = (
    (_TEXT.format(expr="s.email"), "s.email"),
    (_TEXT.format(expr="s.language"), "s.language"),
    (_TEXT.format(expr="d.status"), "d.status"),
    (_NUMBER.format(expr="d.attempts"),) * 2,
    (_NUMBER.format(expr="d.smtp_code"),) * 2,
    (_TEXT.format(expr=_ONE_LINE), "''"),
    (_TIME.format(expr="d.created_at"),) * 2,
    (_TIME.format(expr="d.sent_at"),) * 2,
    (_TEXT.format(expr="d.bounce"), "coalesce(d.bounce, '')"),
    (_TIME.format(expr="d.bounced_at"),) * 2,
)
# Most rows: no error reply, and no text cell that starts like a formula or holds a quote, a
# comma or a line break, found by one expression over the row's text cells, each after a
# \x01 (%(awkward_row)s), not one per cell. A cell that holds a \x01 itself only sends its
# row the long way, which is right for any row.
_PLAIN_ROW = (
    "d.last_error = '' AND (chr(1) || s.email || chr(1) || s.language || chr(1) || d.status "
    "|| chr(1) || coalesce(d.bounce, '')) !~ %(awkward_row)s"
)
# Every row of the release, by email code point by code point (COLLATE "C", as
# report._with_subscriber asks, and SQLite's and Python's order), then those whose subscriber
# is gone (none today: erasure deletes them) by id, as report.rows_without_subscriber: one
# pass, not a second over the whole release to find none. Each line without its end: COPY
# ends it.
_LINES = f"""
SELECT CASE WHEN {_PLAIN_ROW}
    THEN {" || ',' || ".join(plain for _any, plain in _CELLS)}
    ELSE {" || ',' || ".join(any_row for any_row, _plain in _CELLS)} END
FROM deliveries d LEFT JOIN subscribers s ON s.id = d.subscriber_id
WHERE d.release_id = %(release_id)s
ORDER BY s.email COLLATE "C" NULLS LAST, d.id
"""
_PARAMS: Final = {
    "formula": formula_start_regex(),
    "quoted": '^(.*[",\r\n].*)$',  # "." takes line breaks too: PostgreSQL's default
    "awkward": formula_start_regex() + '|[",\r\n]',  # a cell either of them changes
    "awkward_row": "\x01" + formula_start_regex().removeprefix("^") + '|[",\r\n]',
    "spaces": f"[{WHITESPACE}]+",
}
# COPY's text format escapes a line's backslashes and control characters (\b \f \n \r \t
# \v); only each line's end is sent raw.
_ESCAPED = re.compile(rb"\\(.)", re.DOTALL)
_UNESCAPED: Final = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}


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
        return n + _copy_lines(session, release_id, stream)


def _copy_lines(session: Session, release_id: int, stream: TextIO) -> int:
    """Write the finished lines PostgreSQL makes, read through ``COPY ... TO STDOUT`` (a
    query a cursor reads may not use parallel workers; COPY's may) and passed on ``CHUNK``
    bytes at a time: memory bounded whatever the size of the release."""
    raw: Any = session.connection().connection.driver_connection
    encoding = raw.info.encoding
    n = 0
    chunk = bytearray()
    with raw.cursor() as cursor:
        query = f"COPY ({_LINES}) TO STDOUT"
        with cursor.copy(query, {**_PARAMS, "release_id": release_id}) as copy:
            # A line each, a view of libpq's memory: copied at once, not kept (a list of
            # 5,000 views made the whole read twice as long as the copy loop alone).
            for line in copy:
                chunk += line
                if len(chunk) >= CHUNK:
                    n += _write_lines(bytes(chunk), encoding, stream)
                    chunk.clear()
    return n + _write_lines(bytes(chunk), encoding, stream)


def _write_lines(data: bytes, encoding: str, stream: TextIO) -> int:
    """Write lines as COPY's text format sends them (in the connection's ``encoding``),
    each ended by ``\\r\\n`` (its raw ``\\n``: a cell's own are escaped) and unescaped;
    returns how many."""
    n = data.count(b"\n")
    data = data.replace(b"\n", b"\r\n")
    if b"\\" in data:  # rare: a backslash, a tab or a line break in a cell
        data = _ESCAPED.sub(lambda m: _UNESCAPED.get(m[1], m[1]), data)
    stream.write(data.decode(encoding))
    return n
