"""The per-delivery report of a release: rows, order, paging, the CSV form and its formula
guard, rows whose subscriber is gone, and `distributor releases report` as a user runs it —
on a ledger built directly with the ORM, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from distributor.audience.privacy import erase_person
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import NotFound
from distributor.core.models import Delivery, Subscriber
from distributor.reporting.report import CSV_COLUMNS, csv_cell, delivery_lines, iso_utc, write_csv
from tests.ledger_samples import HOSTILE_EMAIL, HOSTILE_ERROR, build_ledger, orphan
from tests.processes import NO_BROKER, settings_env


def db_email_order(settings: Settings, release_id: int) -> list[str]:
    """The addresses of the release's deliveries, code point by code point (the report's
    order on either database, whatever its collation: test_report_csv.py)."""
    with session_scope(settings) as session:
        return sorted(
            session.scalars(
                select(Subscriber.email)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.release_id == release_id)
            )
        )


def read_csv(data: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data)))


@pytest.mark.parametrize("page", [2, 1000])
def test_every_delivery_once_in_email_order(settings: Settings, page: int) -> None:
    ledger = build_ledger(settings)
    lines = list(delivery_lines(settings, ledger.release_id, page=page))
    assert [line.email for line in lines] == db_email_order(settings, ledger.release_id)
    assert len(lines) == 6  # the older release's row is not in it
    by_email = {line.email: line for line in lines}
    bob = by_email["bob@example.com"]
    assert (bob.language, bob.status, bob.attempts, bob.smtp_code, bob.bounce) == (
        "fr", "failed", 1, 550, "hard",
    )  # fmt: skip
    assert bob.last_error == "550 5.1.1 <bob@example.com>: user unknown"  # one line
    assert bob.bounced_at == ledger.published_at + timedelta(minutes=5)
    assert bob.created_at == ledger.published_at and bob.sent_at is None
    ann = by_email["ann@example.com"]
    assert ann.sent_at == ledger.published_at + timedelta(seconds=4)
    assert ann.sent_at.tzinfo is not None and ann.smtp_code == 250 and ann.bounce is None


def test_the_csv_has_a_header_and_one_defused_row_per_delivery(settings: Settings) -> None:
    ledger = build_ledger(settings)
    buf = io.StringIO(newline="")
    assert write_csv(delivery_lines(settings, ledger.release_id), buf) == 6
    data = buf.getvalue()
    assert data.splitlines()[0] == ",".join(CSV_COLUMNS)
    rows = read_csv(data)
    assert [r["email"].removeprefix("'") for r in rows] == db_email_order(
        settings, ledger.release_id
    )
    by_email = {r["email"]: r for r in rows}
    # The address and the error a spreadsheet would run as formulas are text now.
    hostile = by_email["'" + HOSTILE_EMAIL]
    assert hostile["last_error"] == "'" + HOSTILE_ERROR and hostile["status"] == "cancelled"
    assert by_email["cat@example.com"]["last_error"] == "'-ERR greylisted, try later"
    for row in rows:
        assert not any(v.startswith(("=", "+", "-", "@")) for v in row.values())
    bob = by_email["bob@example.com"]
    expected = {
        "language": "fr", "status": "failed", "attempts": "1", "smtp_code": "550",
        "last_error": "550 5.1.1 <bob@example.com>: user unknown",
        "created_at": iso_utc(ledger.published_at), "sent_at": "", "bounce": "hard",
        "bounced_at": iso_utc(ledger.published_at + timedelta(minutes=5)),
    }  # fmt: skip
    assert {k: bob[k] for k in expected} == expected
    assert by_email["ann@example.com"]["sent_at"].endswith("Z")
    assert datetime.fromisoformat(by_email["ann@example.com"]["sent_at"]) == (
        ledger.published_at + timedelta(seconds=4)
    )


def test_csv_cell() -> None:
    assert csv_cell(None) == ""
    assert csv_cell(451) == "451"
    assert csv_cell("@SUM(A1:A9)") == "'@SUM(A1:A9)"
    assert csv_cell("\t=1+1") == "'\t=1+1"
    assert csv_cell("a=b") == "a=b"
    when = datetime(2026, 11, 20, 9, 0, 1, 250000, tzinfo=UTC)
    assert csv_cell(when) == "2026-11-20T09:00:01.250Z"


def test_an_erased_person_leaves_no_row(settings: Settings) -> None:
    ledger = build_ledger(settings)
    with session_scope(settings) as session:
        erase_person(session, settings, "bob@example.com")
    emails = [line.email for line in delivery_lines(settings, ledger.release_id)]
    assert "bob@example.com" not in emails and len(emails) == 5


def test_a_row_whose_subscriber_is_gone_has_no_email(settings: Settings) -> None:
    ledger = build_ledger(settings)
    orphan(settings, "cat@example.com")
    lines = list(delivery_lines(settings, ledger.release_id, page=2))
    assert len(lines) == 6
    last = lines[-1]
    assert (last.email, last.language, last.status, last.smtp_code) == ("", "", "deferred", 451)


def test_an_unknown_release_is_refused_at_once(settings: Settings) -> None:
    with pytest.raises(NotFound, match="no release with id 999"):
        delivery_lines(settings, 999)  # not on the first next(): before any output


def test_the_command(sqlite_settings: Settings, tmp_path: Path) -> None:
    ledger = build_ledger(sqlite_settings)
    env = settings_env(sqlite_settings, DISTRIBUTOR_BROKER_URL=NO_BROKER)
    rid, target, refused = str(ledger.release_id), tmp_path / "report.csv", tmp_path / "no.csv"
    commands = {
        "summary": [rid],
        "stdout": [rid, "--csv"],
        "file": [rid, "--out", str(target)],
        "unknown": ["999", "--csv", "--out", str(refused)],
    }
    procs = {  # in parallel: each spends most of its time starting Python
        name: subprocess.Popen(
            [sys.executable, "-m", "distributor.cli", "releases", "report", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in commands.items()
    }
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        done[name] = (proc.returncode, out, err)

    code, summary, errors = done["summary"]
    assert code == 0, errors
    counts = {"sent": 2, "failed": 1, "deferred": 1, "cancelled": 1, "pending": 1, "total": 6}
    for status, n in counts.items():
        assert re.search(rf"^\s*{status}\s+{n}\s*$", summary, re.M), summary
    first, last = (
        ledger.published_at + timedelta(seconds=4),
        ledger.published_at + timedelta(seconds=90),
    )
    assert f"first sent {iso_utc(first)}, last sent {iso_utc(last)} (86.0 s)" in summary
    assert "bounces: 1 hard, 1 soft" in summary

    code, stdout, errors = done["stdout"]
    assert code == 0, errors
    assert len(read_csv(stdout)) == 6

    code, _, errors = done["file"]
    assert code == 0, errors
    assert "6 deliveries written to" in errors
    assert read_csv(target.read_text(encoding="utf-8")) == read_csv(stdout)

    code, _, errors = done["unknown"]
    assert code == 1 and "error: no release with id 999" in errors, errors
    assert not refused.exists()
