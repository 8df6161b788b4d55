"""The delivery report's CSV as PostgreSQL writes it (reporting/report_csv.py) is byte for
byte the csv module's (reporting/report.py), on data with every awkward case: cells a
spreadsheet would run, quotes, commas, line breaks, white space of every kind, non-ASCII
text, NULLs, a negative count, times to the microsecond, folded rows."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import NotFound
from distributor.core.models import Delivery, FoldedCount, Release, Subscriber
from distributor.core.spreadsheet import defuse
from distributor.reporting.report import delivery_lines, write_csv
from distributor.reporting.report_csv import WHITESPACE, report_csv
from tests.ledger_samples import orphan

WHEN = datetime(2026, 11, 20, 8, 0, 1, 999_999, tzinfo=UTC)  # milliseconds cut, not rounded
# (email, language, status, attempts, smtp_code, last_error, sent_at, bounce, bounced_at)
AWKWARD: list[tuple[object, ...]] = [
    ("=cmd|' /C calc'!A0@example.com", "en", "sent", 1, 250, "", WHEN, None, None),
    ("+1@example.com", "fr", "failed", 1, 550, '  =HYPERLINK("x")  ', None, "hard", WHEN),
    ("-x@example.com", "en", "deferred", 2, 451, "-ERR try\r\nlater", None, "soft", WHEN),
    ("@x@example.com", "=1", "cancelled", -1, None, "+1", None, None, None),
    ("\tt@example.com", "en", "pending", 0, None, "\t@SUM(A1)", None, None, None),
    (
        "\rr@example.com",
        "en",
        "pending",
        0,
        None,
        "a\u3000b\xa0c\u2028d\x1ce\x85f",
        None,
        None,
        None,
    ),
    ('"quoted"@example.com', "en", "sent", 1, 250, 'say "no", then "yes"', WHEN, None, None),
    ("comma,in@example.com", "en", "sent", 1, 250, "a, b,c", WHEN, None, None),
    ("line\nbreak@example.com", "en", "sent", 1, 250, "x\ny", WHEN, None, None),
    ("car\rret@example.com", "en", "sent", 1, 250, "", WHEN, None, None),
    ("Jérôme.日本@example.com", "ja", "sent", 1, 250, "«déjà vu» — ok ✓", WHEN, None, None),
    ("'quote-first@example.com", "en", "failed", 3, 554, "'=not a formula twice", None, None, None),
    ("plain@example.com", "en", "sent", 12, 250, "   ", WHEN + timedelta(days=400), None, None),
    # Rows with nothing to defuse or quote (most rows: PostgreSQL's short way), and the
    # backslashes and control characters COPY's text format escapes on the way.
    ("Zed@example.com", "de", "sent", 1, 250, "", WHEN, None, None),
    ("bounced@example.com", "fr", "failed", 1, 550, "", None, "hard", WHEN),
    ("back\\slash@example.com", "en", "failed", 2, 451, "C:\\queue\\full \\n", None, None, None),
    ("x\x01y@example.com", "en", "sent", 1, 250, "", WHEN, None, None),
    ("bell\x07\x08\x0b\x0c@example.com", "en", "pending", 0, None, "", None, None, None),
]


def _awkward_ledger(settings: Settings) -> int:
    """A published release with one delivery per AWKWARD row, another release's row, and a
    group of its rows folded after the retention period."""
    created = WHEN - timedelta(hours=1, microseconds=1)
    with session_scope(settings) as session:
        release, other = (
            Release(slug=slug, title=slug, language="en", body_html="<p>x</p>", body_text="x",
                    date=created, state="published", published_at=created)
            for slug in ("awkward", "other")
        )  # fmt: skip
        session.add_all([release, other])
        session.flush()
        for email, lang, status, attempts, code, error, sent, bounce, bounced in AWKWARD:
            person = Subscriber(email=email, name="", language=lang, status="confirmed")
            session.add(person)
            session.flush()
            session.add(
                Delivery(
                    release_id=release.id, subscriber_id=person.id, status=status,
                    attempts=attempts, smtp_code=code, last_error=error, created_at=created,
                    sent_at=sent, bounce=bounce, bounced_at=bounced,
                )
            )  # fmt: skip
            session.add(Delivery(release_id=other.id, subscriber_id=person.id, status="sent"))
        session.add(
            FoldedCount(
                release_id=release.id, ledger="deliveries", status="sent", count=7,
                folded_at=WHEN,
            )
        )  # fmt: skip
        return release.id


def test_the_csv_is_the_csv_modules_byte_for_byte(settings: Settings) -> None:
    release_id = _awkward_ledger(settings)
    python = io.StringIO(newline="")
    assert write_csv(delivery_lines(settings, release_id), python) == len(AWKWARD)
    written = io.StringIO(newline="")
    assert report_csv(settings, release_id)(written) == len(AWKWARD)
    assert written.getvalue().encode() == python.getvalue().encode()
    # And it is the data: read back, every cell is what was stored, defused (white space
    # runs made one space), each row ended by CRLF as the csv module ends it.
    assert written.getvalue().endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(written.getvalue(), newline="")))
    by_email = {r["email"]: r for r in rows}
    assert set(by_email) == {defuse(str(row[0])) for row in AWKWARD}
    for email, lang, _status, attempts, code, error, sent, _bounce, _bounced in AWKWARD:
        row = by_email[defuse(str(email))]
        assert row["language"] == defuse(str(lang))
        assert row["attempts"] == defuse(str(attempts))
        assert row["smtp_code"] == ("" if code is None else str(code))
        assert row["last_error"] == defuse(" ".join(str(error).split()))
        assert row["sent_at"] == ("" if sent is None else "2026-11-20T08:00:01.999Z"
                                  if sent == WHEN else "2027-12-25T08:00:01.999Z")  # fmt: skip
    for cell in (c for r in rows for c in r.values()):
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_rows_whose_subscriber_is_gone_come_last_as_the_csv_module_writes_them(
    settings: Settings,
) -> None:
    release_id = _awkward_ledger(settings)
    for email in ("Zed@example.com", "back\\slash@example.com", "plain@example.com"):
        orphan(settings, email)
    python = io.StringIO(newline="")
    assert write_csv(delivery_lines(settings, release_id), python) == len(AWKWARD)
    written = io.StringIO(newline="")
    assert report_csv(settings, release_id)(written) == len(AWKWARD)
    assert written.getvalue().encode() == python.getvalue().encode()
    rows = list(csv.DictReader(io.StringIO(written.getvalue(), newline="")))
    # by id (the order they were stored), with neither address nor language
    assert [(r["email"], r["language"], r["last_error"]) for r in rows[-3:]] == [
        ("", "", ""),  # plain@example.com's, whose "   " is none on one line
        ("", "", ""),
        ("", "", "C:\\queue\\full \\n"),
    ]


def test_an_unknown_release_is_refused_before_anything_is_written(settings: Settings) -> None:
    with pytest.raises(NotFound, match="no release with id 999"):
        report_csv(settings, 999)


def test_white_space_is_what_str_split_takes() -> None:
    every = "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())
    assert every == WHITESPACE


@contextmanager
def _collated(settings: Settings, collation: str) -> Iterator[None]:
    """On PostgreSQL, subscribers' addresses sorted by ``collation`` unless a query says
    otherwise (as in a database created with it), put back after; nothing on SQLite."""
    if not settings.effective_database_url.startswith("postgresql"):
        yield
        return
    alter = "ALTER TABLE subscribers ALTER COLUMN email TYPE varchar(320) COLLATE {}"
    with session_scope(settings) as session:
        session.execute(text(alter.format(f'"{collation}"')))
    try:
        yield
    finally:
        with session_scope(settings) as session:
            session.execute(text(alter.format('"default"')))


def test_the_rows_are_in_code_point_order_whatever_the_databases_collation(
    settings: Settings,
) -> None:
    """Two reports compared, or one from SQLite beside one from PostgreSQL: the same order.
    A database created in en_US (Docker's postgres image) sorts "a" before "B" and skips
    punctuation; code points put "B" first, as SQLite and Python do."""
    emails = ["b@example.com", "B@example.com", "a.c@example.com", "ab@example.com",
              "_x@example.com", "é@example.com", "f@example.com", "Z@example.com"]  # fmt: skip
    with session_scope(settings) as session:
        release = Release(slug="order", title="order", language="en", body_html="<p>x</p>",
                          body_text="x", date=WHEN, state="published")  # fmt: skip
        session.add(release)
        session.flush()
        for email in emails:
            person = Subscriber(email=email, name="", language="en", status="confirmed")
            session.add(person)
            session.flush()
            session.add(Delivery(release_id=release.id, subscriber_id=person.id, status="sent"))
        release_id = release.id
    with _collated(settings, "en-US-x-icu"):
        with session_scope(settings) as session:
            stored = session.scalars(text("SELECT email FROM subscribers ORDER BY email"))
            postgresql = settings.effective_database_url.startswith("postgresql")
            assert (list(stored) != sorted(emails)) is postgresql  # the collation took hold
        for write in (
            report_csv(settings, release_id),
            lambda stream: write_csv(delivery_lines(settings, release_id), stream),
        ):
            written = io.StringIO(newline="")
            assert write(written) == len(emails)
            rows = csv.DictReader(io.StringIO(written.getvalue(), newline=""))
            assert [row["email"] for row in rows] == sorted(emails)
