"""Writing a release in the workspace's form, as a press officer who has never seen YAML:
create a draft with accents, phones and contacts; a refused form keeps everything typed and
says what is wrong; edit it; two people saving the same draft see a conflict with both texts,
never a silent overwrite; delete a draft and its address is free again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import AuditEvent, Release
from distributor.office.accounts import create_user
from tests.clients import browser_logged_in
from tests.helpers import add_topics, csrf_of

WRITER, PASSWORD = "jo@example.org", "a long enough password"
FORM = {
    "title": "L'Agence signe un accord de coopération climatique",
    "lang": "fr",
    "date": "2026-11-20T09:00",
    "dateline": "PARIS",
    "lead": "L'Agence et ses partenaires s'engagent pour cinq ans.",
    "body": "Le texte complet.\n\n> « Une étape », dit la présidente.",
    "contacts": "Jeanne Dupont; Attachée de presse; +33 (0)1 23 45 67 89; presse@example.org\n"
    "Paul Martin; Porte-parole",
    "embargo": "",
}


@pytest.fixture
def s(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"broker_url": redis_url, "languages": ["en", "fr"]})


def writer(s: Settings, email: str = WRITER) -> TestClient:
    return browser_logged_in(s, email, PASSWORD)


@pytest.fixture
def jo(s: Settings) -> Iterator[TestClient]:
    add_topics(s, "climate", "energy")
    with session_scope(s) as session:
        create_user(session, WRITER, "writer", PASSWORD, name="Jo")
        create_user(session, "sam@example.org", "writer", PASSWORD, name="Sam")
    client = writer(s)
    yield client
    client.close()


def submit(client: TestClient, path: str, **changes: object) -> object:
    page = client.get(path)
    data: dict[str, object] = {**FORM, "topics": ["climate", "energy"], **changes}
    version = page.text.split('name="version" value="', 1)
    if len(version) == 2 and "version" not in changes:
        data["version"] = version[1].split('"', 1)[0]
    data["csrf"] = csrf_of(page.text)
    return client.post(path.replace("/edit", "/edit"), data=data, follow_redirects=False)


def the_release(s: Settings) -> Release:
    with session_scope(s) as session:
        return session.scalars(select(Release)).one()


def test_a_draft_written_in_the_form_is_stored_as_typed(s: Settings, jo: TestClient) -> None:
    made = submit(jo, "/admin/releases/new")
    assert made.status_code == 303  # type: ignore[attr-defined]
    release = the_release(s)
    assert made.headers["location"] == f"/admin/releases/{release.id}?done=created"  # type: ignore[attr-defined]
    assert (release.title, release.language, release.state) == (FORM["title"], "fr", "draft")
    assert release.date == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)  # 09:00 in Paris
    assert release.lead == FORM["lead"] and "« Une étape »" in release.body_html
    assert release.contacts == [
        {"name": "Jeanne Dupont", "role": "Attachée de presse", "phone": "+33 (0)1 23 45 67 89",
         "email": "presse@example.org"},
        {"name": "Paul Martin", "role": "Porte-parole", "phone": "", "email": ""},
    ]  # fmt: skip
    assert sorted(t.slug for t in release.topics) == ["climate", "energy"]
    page = jo.get(f"/admin/releases/{release.id}?done=created")
    assert "Draft created" in page.text and "Edit the draft" in page.text
    with session_scope(s) as session:
        [event] = session.scalars(select(AuditEvent)).all()
        assert (event.actor, event.action) == (f"user:{WRITER}", "create")


def test_a_refused_form_says_what_and_keeps_everything_typed(s: Settings, jo: TestClient) -> None:
    refused = submit(jo, "/admin/releases/new", topics=[])
    assert refused.status_code == 422  # type: ignore[attr-defined]
    text = refused.text  # type: ignore[attr-defined]
    assert "field &#39;topics&#39;" in text
    assert "coopération climatique" in text and "+33 (0)1 23 45 67 89" in text
    bad_date = submit(jo, "/admin/releases/new", date="20/11/2026")
    assert (
        bad_date.status_code == 422 and "date: &#39;20/11/2026&#39; is not a date" in bad_date.text
    )  # type: ignore[attr-defined]
    with session_scope(s) as session:
        assert session.scalars(select(Release)).all() == []


def test_two_people_saving_one_draft_see_both_texts_and_nothing_is_lost(
    s: Settings, jo: TestClient
) -> None:
    submit(jo, "/admin/releases/new")
    release_id = the_release(s).id
    edit = f"/admin/releases/{release_id}/edit"
    sam = writer(s, "sam@example.org")
    sams_page = sam.get(edit)  # Sam opens it before Jo saves
    assert submit(jo, edit, title="Jo's title").status_code == 303  # type: ignore[attr-defined]
    old_version = sams_page.text.split('name="version" value="', 1)[1].split('"', 1)[0]
    clash = submit(sam, edit, title="Sam's title", version=old_version)
    assert clash.status_code == 409  # type: ignore[attr-defined]
    text = clash.text  # type: ignore[attr-defined]
    assert "Someone else saved this draft" in text
    assert "Jo&#39;s title" in text and 'value="Sam&#39;s title"' in text  # both
    assert the_release(s).title == "Jo's title"  # nothing overwritten
    new_version = text.split('name="version" value="', 1)[1].split('"', 1)[0]
    again = submit(sam, edit, title="Sam's title", version=new_version)  # knowingly
    assert again.status_code == 303 and the_release(s).title == "Sam's title"  # type: ignore[attr-defined]
    sam.close()


def test_a_deleted_draft_frees_its_address_and_a_published_release_is_not_deleted(
    s: Settings, jo: TestClient
) -> None:
    submit(jo, "/admin/releases/new")
    release = the_release(s)
    page = jo.get(f"/admin/releases/{release.id}")
    gone = jo.post(f"/admin/releases/{release.id}/delete", data={"csrf": csrf_of(page.text)},
                   follow_redirects=False)  # fmt: skip
    assert (gone.status_code, gone.headers["location"]) == (303, "/admin?done=deleted")
    assert "Draft deleted" in jo.get("/admin?done=deleted").text
    assert submit(jo, "/admin/releases/new").status_code == 303  # type: ignore[attr-defined]
    again = the_release(s)
    assert again.slug == release.slug and again.id > release.id
    with session_scope(s) as session:
        session.get_one(Release, again.id).state = "published"
    page = jo.get(f"/admin/releases/{again.id}")
    assert "Delete the draft" not in page.text and "Edit the draft" not in page.text
    refused = jo.post(f"/admin/releases/{again.id}/delete", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 409 and "only a draft is deleted" in refused.text
