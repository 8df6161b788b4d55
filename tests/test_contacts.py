"""The press office's address book of press contacts (issue 14): kept from the command line,
the admin API and its workspace page, each refusal naming the field and storing nothing, an
address in the book once whatever its case, every change audited; and the release form,
which offers the book's contacts as checkboxes beside the typed lines of a one-off."""

from __future__ import annotations

import json
import re

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select

from distributor.core import audit
from distributor.core.config import Settings
from distributor.core.db import alembic_config, get_engine, session_scope, upgrade
from distributor.core.errors import InputError
from distributor.core.models import PressContact, Release
from distributor.releases.contact import check_contact
from distributor.web import create_app
from tests.clients import logged_in_as
from tests.helpers import add_topics, csrf_of, new_token
from tests.processes import invoke_cli

ANN = {"name": "Ann Lee", "role": "Spokesperson", "phone": "+33 1 23 45 67 89",
       "email": "ann.lee@example.org"}  # fmt: skip
BOB = {"name": "Bob Roy", "role": "Head of press", "phone": "", "email": ""}
RELEASE = {
    "title": "Agency signs a climate agreement",
    "lang": "en",
    "date": "2026-11-20T09:00",
    "dateline": "PARIS",
    "lead": "The agency and its partners commit for five years.",
    "body": "The full text.",
    "embargo": "",
    "topics": ["climate"],
}


@pytest.fixture
def s(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"broker_url": redis_url})


def book(s: Settings) -> list[dict[str, str]]:
    """The address book as stored, by name."""
    with session_scope(s) as session:
        found = session.scalars(select(PressContact).order_by(PressContact.name)).all()
        return [c.fields() for c in found]


def contact_records(s: Settings) -> list[tuple[str, str, str, dict[str, object]]]:
    """The address book's audit records, oldest first: actor, action, subject, details."""
    with session_scope(s) as session:
        events = [e for e in audit.recent(session, 100) if e.action.startswith("contact-")]
        return [(e.actor, e.action, e.subject, e.details) for e in reversed(events)]


def test_the_command_line_keeps_the_address_book(s: Settings) -> None:
    added = invoke_cli(s, "contacts", "add", "Ann Lee", "--role", "Spokesperson",
                       "--phone", ANN["phone"], "--email", ANN["email"])  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "press contact 1 added (Ann Lee)"
    twice = invoke_cli(s, "contacts", "add", "Someone Else", "--email", "ANN.Lee@example.org")
    assert twice.returncode == 1
    assert twice.stderr.strip() == (
        "error: email: ANN.Lee@example.org is already in the address book, as Ann Lee"
    )
    bad = invoke_cli(s, "contacts", "add", "Bob Roy", "--phone", "call me")
    assert bad.returncode == 1 and bad.stderr.startswith("error: phone: is not a phone number")
    assert invoke_cli(s, "contacts", "add", "Bob Roy", "--role", "Head of press").returncode == 0
    listed = invoke_cli(s, "contacts", "list")
    assert listed.stdout.splitlines() == [
        "id\tname\trole\tphone\temail",
        f"1\tAnn Lee\tSpokesperson\t{ANN['phone']}\t{ANN['email']}",
        "2\tBob Roy\tHead of press\t\t",
    ]
    changed = invoke_cli(s, "contacts", "update", "2", "--email", "bob@example.org")
    assert changed.returncode == 0, changed.stderr
    as_json = json.loads(invoke_cli(s, "contacts", "list", "--json").stdout)
    assert as_json[1] == {"id": 2, "name": "Bob Roy", "role": "Head of press", "phone": "",
                          "email": "bob@example.org"}  # fmt: skip
    taken = invoke_cli(s, "contacts", "update", "2", "--email", ANN["email"])
    assert taken.returncode == 1
    assert taken.stderr.strip() == (
        f"error: email: {ANN['email']} is already in the address book, as Ann Lee"
    )
    assert invoke_cli(s, "contacts", "update", "2").returncode == 1  # nothing to change
    assert invoke_cli(s, "contacts", "delete", "1").returncode == 0
    gone = invoke_cli(s, "contacts", "delete", "1")
    assert gone.returncode == 1
    assert gone.stderr.strip() == "error: no press contact 1 in the address book"
    assert book(s) == [{"name": "Bob Roy", "role": "Head of press", "email": "bob@example.org"}]
    records = contact_records(s)
    assert [(action, subject) for _, action, subject, _ in records] == [
        ("contact-add", "press contact 1"),
        ("contact-add", "press contact 2"),
        ("contact-update", "press contact 2"),
        ("contact-delete", "press contact 1"),
    ]
    assert all(actor.startswith("cli:") for actor, *_ in records)
    assert records[0][3] == ANN and records[3][3] == {"name": "Ann Lee"}


def test_the_api_keeps_the_address_book(s: Settings) -> None:
    token = new_token(s, "press-desk", ["releases"])
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(s), headers=auth) as api:
        made = api.post("/api/contacts", json={**ANN, "email": "Ann.Lee@EXAMPLE.org"})
        assert made.status_code == 201, made.text
        ann = made.json()
        assert ann == {"id": 1, **ANN, "email": "Ann.Lee@example.org"}  # domain normalised
        assert api.post("/api/contacts", json={"name": "Bob Roy"}).status_code == 201
        assert [c["name"] for c in api.get("/api/contacts").json()] == ["Ann Lee", "Bob Roy"]
        duplicate = api.post("/api/contacts", json={"name": "X", "email": "ann.lee@example.org"})
        assert duplicate.status_code == 409 and duplicate.json()["field"] is None
        bad = api.post("/api/contacts", json={"name": "Y", "email": "not-an-address"})
        assert bad.status_code == 422 and bad.json()["field"] == "email"
        assert "is not an email address" in bad.json()["error"]
        spaces = api.post("/api/contacts", json={"name": "   "})
        assert spaces.status_code == 422 and spaces.json()["field"] == "name"
        put = api.put("/api/contacts/2", json={"name": "Bob Roy", "phone": "+44 20 7946 0000"})
        assert put.status_code == 200 and put.json()["phone"] == "+44 20 7946 0000"
        assert api.put("/api/contacts/2", json={"name": "Bob", "phone": "?"}).status_code == 422
        assert api.get("/api/contacts/2").json()["name"] == "Bob Roy"  # the refusal stored nothing
        assert api.delete("/api/contacts/1").status_code == 204
        assert api.get("/api/contacts/1").status_code == 404
        assert api.delete("/api/contacts/1").status_code == 404
        audience = new_token(s, "crm-sync", ["subscribers"])
        refused = api.get("/api/contacts", headers={"Authorization": f"Bearer {audience}"})
        assert refused.status_code == 403
    assert book(s) == [{"name": "Bob Roy", "phone": "+44 20 7946 0000"}]
    assert [(actor, action) for actor, action, *_ in contact_records(s)] == [
        ("token:press-desk", "contact-add"),
        ("token:press-desk", "contact-add"),
        ("token:press-desk", "contact-update"),
        ("token:press-desk", "contact-delete"),
    ]


def test_the_workspace_page_keeps_the_address_book(s: Settings) -> None:
    with logged_in_as(s, "jo@example.org", "writer") as browser:
        page = browser.get("/admin/contacts")
        assert page.status_code == 200
        assert 'href="/admin/contacts">Press contacts</a>' in page.text  # the header's link
        assert "No press contact yet" in page.text
        form = {**ANN, "csrf": csrf_of(page.text)}
        added = browser.post("/admin/contacts", data=form, follow_redirects=False)
        assert (added.status_code, added.headers["location"]) == (303, "/admin/contacts?done=added")
        listed = browser.get("/admin/contacts?done=added").text
        assert "Press contact added." in listed and '<td data-label="Email">' in listed
        assert ANN["email"] in listed and ANN["phone"] in listed

        typed = {"name": "Bob Roy", "role": "Head of press", "phone": "", "email": "bob@"}
        refused = browser.post("/admin/contacts", data={**typed, "csrf": form["csrf"]})
        assert refused.status_code == 422
        assert "email: &#39;bob@&#39; is not an email address" in refused.text
        assert re.search(r'name="email"[^>]*value="bob@"[^>]*aria-invalid="true"', refused.text)
        assert 'value="Head of press"' in refused.text  # what was typed is kept
        duplicate = {**typed, "email": "ANN.LEE@example.org", "csrf": form["csrf"]}
        assert browser.post("/admin/contacts", data=duplicate).status_code == 409
        assert browser.post("/admin/contacts", data=typed).status_code == 403  # no CSRF value
        assert book(s) == [ANN]

        editing = browser.get("/admin/contacts/1")
        assert editing.status_code == 200 and 'action="/admin/contacts/1"' in editing.text
        assert f'value="{ANN["phone"]}"' in editing.text
        saved = browser.post("/admin/contacts/1", data={**ANN, "role": "Director",
                                                          "csrf": form["csrf"]})  # fmt: skip
        assert saved.status_code == 200 and "Press contact saved." in saved.text
        bad_edit = browser.post("/admin/contacts/1", data={**ANN, "phone": "x",
                                                             "csrf": form["csrf"]})  # fmt: skip
        assert bad_edit.status_code == 422 and 'action="/admin/contacts/1"' in bad_edit.text
        assert browser.get("/admin/contacts/999").status_code == 404
        assert book(s) == [{**ANN, "role": "Director"}]
        assert browser.post("/admin/contacts/1/delete", data={}).status_code == 403
        deleted = browser.post("/admin/contacts/1/delete", data={"csrf": form["csrf"]})
        assert deleted.status_code == 200 and "Press contact deleted." in deleted.text
    assert book(s) == []
    assert [(actor, action) for actor, action, *_ in contact_records(s)] == [
        ("user:jo@example.org", "contact-add"),
        ("user:jo@example.org", "contact-update"),
        ("user:jo@example.org", "contact-delete"),
    ]


def test_the_release_form_offers_the_address_book(s: Settings) -> None:
    add_topics(s, "climate")
    with logged_in_as(s, "jo@example.org", "writer") as browser:
        csrf = csrf_of(browser.get("/admin/contacts").text)
        for person in (ANN, BOB):
            browser.post("/admin/contacts", data={**person, "csrf": csrf})
        new = browser.get("/admin/releases/new").text
        assert "Press contacts from the address book" in new
        assert 'name="book" value="1"' in new and "Ann Lee — Spokesperson — ann.lee" in new
        form = {**RELEASE, "book": ["1", "2"], "contacts": "Cat Doe; Guest speaker", "csrf": csrf}
        made = browser.post("/admin/releases/new", data=form, follow_redirects=False)
        assert made.status_code == 303, made.text
        with session_scope(s) as session:
            release = session.scalars(select(Release)).one()
            stored, release_id = release.contacts, release.id
        assert stored == [{**ANN}, {**BOB}, {"name": "Cat Doe", "role": "Guest speaker",
                                              "phone": "", "email": ""}]  # fmt: skip

        edit = browser.get(f"/admin/releases/{release_id}/edit").text
        assert re.search(r'id="book-1" name="book" value="1" checked', edit)
        assert re.search(r'id="book-2" name="book" value="2" checked', edit)
        assert re.search(r'<textarea id="contacts"[^>]*>Cat Doe; Guest speaker</textarea>', edit)
        version = re.search(r'name="version" value="([^"]+)"', edit)
        assert version
        again = {**form, "book": ["1", "2"], "version": version.group(1)}
        saved = browser.post(f"/admin/releases/{release_id}/edit", data=again)
        assert saved.status_code == 200, saved.text
        with session_scope(s) as session:
            assert len(session.get(Release, release_id).contacts) == 3  # type: ignore[union-attr]

        # The book changes; the draft keeps what it printed, shown as a typed line now.
        browser.post("/admin/contacts/1", data={**ANN, "role": "Director", "csrf": csrf})
        edit = browser.get(f"/admin/releases/{release_id}/edit").text
        assert 'value="1" checked' not in edit and 'value="2" checked' in edit
        assert "Ann Lee; Spokesperson; +33 1 23 45 67 89; ann.lee@example.org" in edit

        for ticked, shown in ((["999"], "press contact 999 is no longer in the address book"),
                              (["x"], "&#39;x&#39; is not a press contact&#39;s id")):  # fmt: skip
            refused = browser.post("/admin/releases/new", data={**form, "book": ticked})
            assert refused.status_code == 422 and shown in refused.text
            assert re.search(
                r'<fieldset aria-invalid="true"[^>]*>\s*<legend>Press contacts', refused.text
            )
            assert "Cat Doe; Guest speaker" in refused.text  # what was typed is kept
    with session_scope(s) as session:
        assert len(session.scalars(select(Release)).all()) == 1  # nothing stored


def test_a_contact_is_checked_by_the_release_rules() -> None:
    """One set of rules for a release's contact and the book's: a name of spaces is no name."""
    with pytest.raises(InputError) as refused:
        check_contact({"name": "   "})
    assert refused.value.field == "name"
    with pytest.raises(InputError) as refused:
        check_contact({"name": "Ann", "role": "Line\nbreak"})
    assert refused.value.field == "role"


def test_the_migration_adds_and_removes_the_address_book(settings: Settings) -> None:
    """0018 down and up again, on SQLite and PostgreSQL: the table goes and comes back,
    with its unique index on the lower-cased address."""
    config = alembic_config(settings)
    try:
        command.downgrade(config, "0017")
        assert "press_contacts" not in inspect(get_engine(settings)).get_table_names()
    finally:
        upgrade(settings)
    assert "press_contacts" in inspect(get_engine(settings)).get_table_names()
    with session_scope(settings) as session:
        session.add(PressContact(name="A", role="", phone="", email="a@example.org"))
    with pytest.raises(Exception, match=r"(?i)unique"), session_scope(settings) as session:
        session.add(PressContact(name="B", role="", phone="", email="A@EXAMPLE.ORG"))
    with session_scope(settings) as session:
        session.add_all([PressContact(name=n, role="", phone="", email=None) for n in "CD"])
