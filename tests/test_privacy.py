"""Privacy (GDPR): export everything held on a person; erase them, keeping only a hash on
the suppression list, so that no later import — plain or confirmed — adds them again."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, text

from distributor.audience.privacy import (
    erase_person,
    export_person,
    is_suppressed,
    suppression_hash,
)
from distributor.audience.subscribers import add_subscriber, import_csv
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import Conflict, NotFound
from distributor.core.models import Base, Delivery, Subscriber, Suppression
from distributor.outbox import sending
from distributor.outbox.ledger import plan
from distributor.releases.lifecycle import mark_published
from tests.helpers import add_subscribers, add_topics, make_release
from tests.processes import invoke_cli

PEOPLE = [
    ("ann@example.com", "Ann Martin", "en", "climate;science"),
    ("bob@example.com", "Bob", "en", "climate"),
]
CONSENT_AT = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)


def populate(settings: Settings) -> int:
    """Two subscribers (Ann with a web-form consent record) and one sent release."""
    add_topics(settings, "climate", "science")
    add_subscribers(settings, PEOPLE)
    with session_scope(settings) as session:
        ann = session.scalar(select(Subscriber).where(Subscriber.email == "ann@example.com"))
        assert ann is not None
        ann.consent_at, ann.consent_ip = CONSENT_AT, "203.0.113.7"
        ann.consent_user_agent, ann.consent_form_version = "Mozilla/5.0 (Android)", "2026-11"
    release = make_release(settings)
    with session_scope(settings) as session:
        plan(session, mark_published(session, release.id))
    sending.send_batch(settings, release.id)  # into the Maildir outbox
    return release.id


def import_rows(settings: Settings, csv_text: str, **kwargs: object):  # type: ignore[no-untyped-def]
    with session_scope(settings) as session:
        return import_csv(session, settings, io.StringIO(csv_text), "again.csv", **kwargs)  # type: ignore[arg-type]


def test_export_holds_the_consent_record_topics_and_every_delivery(settings: Settings) -> None:
    release_id = populate(settings)
    with session_scope(settings) as session:
        data = export_person(session, "  ANN@Example.com ")
    json.dumps(data)  # JSON-able as it is
    assert data["email"] == "ann@example.com" and data["name"] == "Ann Martin"
    assert data["status"] == "confirmed" and data["topics"] == ["climate", "science"]
    assert data["consent"] == {
        "source": "test",
        "at": CONSENT_AT.isoformat(),
        "ip": "203.0.113.7",
        "user_agent": "Mozilla/5.0 (Android)",
        "form_version": "2026-11",
    }
    assert data["suppressed"] is False
    [delivery] = data["deliveries"]
    assert delivery["release"] == {
        "id": release_id, "slug": "agency-signs-agreement", "title": "Agency signs agreement",
        "language": "en",
    }  # fmt: skip
    assert delivery["status"] == "sent" and delivery["attempts"] == 1
    assert delivery["smtp_code"] == 250 and delivery["sent_at"] and delivery["bounce"] is None


def test_export_of_an_unknown_address_says_so(settings: Settings) -> None:
    with session_scope(settings) as session, pytest.raises(NotFound) as caught:
        export_person(session, "nobody@example.com")
    assert "nobody@example.com" in str(caught.value)
    assert "not on the suppression list" in str(caught.value)


def test_erase_leaves_nothing_but_the_hash(settings: Settings) -> None:
    populate(settings)
    with session_scope(settings) as session:
        ann_id = session.scalar(select(Subscriber.id).where(Subscriber.email == "ann@example.com"))
        erase_person(session, settings, "Ann@Example.com")
    expected_hash = hashlib.sha256(b"ann@example.com").hexdigest()
    with session_scope(settings) as session:
        assert session.scalar(select(Subscriber).where(Subscriber.id == ann_id)) is None
        assert list(session.scalars(select(Delivery).where(Delivery.subscriber_id == ann_id))) == []
        assert [s.email_hash for s in session.scalars(select(Suppression))] == [expected_hash]
        assert suppression_hash("ANN@example.com") == expected_hash
        assert is_suppressed(session, "ann@example.com")
        assert not is_suppressed(session, "bob@example.com")
        # Nothing anywhere in the database still names her.
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                assert "ann@example.com" not in repr(row).lower(), table.name
        links = session.execute(
            text("SELECT count(*) FROM subscriptions WHERE subscriber_id = :id"), {"id": ann_id}
        ).scalar()
        assert links == 0
        bob = export_person(session, "bob@example.com")  # the others are untouched
        assert len(bob["deliveries"]) == 1
    with session_scope(settings) as session, pytest.raises(NotFound) as caught:
        export_person(session, "ann@example.com")
    assert "on the suppression list" in str(caught.value)
    assert "not on" not in str(caught.value)
    with session_scope(settings) as session, pytest.raises(NotFound):
        erase_person(session, settings, "ann@example.com")


@pytest.mark.parametrize("confirmed", [False, True])
def test_an_erased_address_is_never_imported_again(settings: Settings, confirmed: bool) -> None:
    populate(settings)
    with session_scope(settings) as session:
        erase_person(session, settings, "ann@example.com")
    csv = (
        "email,name,language,topics\n"
        "ANN@example.com,Ann,en,climate\n"
        "bob@example.com,Bob,en,science\n"
        "cy@example.com,Cy,en,climate\n"
    )
    extra = {"confirmed": True, "consent_source": "fair 2026"} if confirmed else {}
    report = import_rows(settings, csv, **extra)
    assert (report.added, report.updated, report.suppressed) == (1, 1, 1)
    with session_scope(settings) as session:
        emails = set(session.scalars(select(Subscriber.email)))
        assert emails == {"bob@example.com", "cy@example.com"}
        with pytest.raises(Conflict, match="suppression list"):
            add_subscriber(session, settings, email="ann@example.com", name="Ann",
                           language="en", topics=["climate"], confirmed=confirmed,
                           consent_source="fair 2026")  # fmt: skip
        assert "ann@example.com" not in set(session.scalars(select(Subscriber.email)))


@pytest.fixture
def run(sqlite_settings: Settings):  # type: ignore[no-untyped-def]
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return invoke_cli(sqlite_settings, *args)

    return run


def test_cli_exports_and_erases_one_person(run, sqlite_settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    populate(sqlite_settings)
    exported = run("subscribers", "export", "--email", "ann@example.com")
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    assert data["consent"]["ip"] == "203.0.113.7" and len(data["deliveries"]) == 1
    assert exported.stdout.startswith('{\n  "id": ')  # indent 2

    assert "ann@example.com,Ann Martin" in run("subscribers", "export").stdout  # CSV as before

    erased = run("subscribers", "erase", "--email", "ann@example.com")
    assert erased.returncode == 0, erased.stderr
    assert "erased ann@example.com" in erased.stdout
    assert "2 topic subscription(s), 1 delivery record(s)" in erased.stdout
    assert "ann@example.com" not in run("subscribers", "export").stdout

    again = run("subscribers", "erase", "--email", "ann@example.com")
    assert again.returncode == 1
    assert "no subscriber with the address ann@example.com" in again.stderr
    assert "suppression list" in again.stderr
    unknown = run("subscribers", "export", "--email", "nobody@example.com")
    assert unknown.returncode == 1 and "nobody@example.com" in unknown.stderr

    csv = tmp_path / "people.csv"
    csv.write_text("email,name,language,topics\nann@example.com,Ann,en,climate\n")
    imported = run("subscribers", "import", str(csv), "--confirmed", "--consent-source", "fair")
    assert imported.returncode == 0, imported.stderr
    assert "0 added" in imported.stdout
    assert "1 not added: erased, on the suppression list" in imported.stdout
