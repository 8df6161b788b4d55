"""The workspace's list of releases and "Duplicate" (issue 14), on every face: the page
searches by words of the title (any case, accented capitals too, on SQLite as on
PostgreSQL), filters by state, language and topic, counts each state, pages newest first;
"Duplicate" starts a new draft from any release — its text, topics, contacts, images and
documents — under a free SLUG-copy address, recorded in the audit trail; the command line
and the API do the same."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import AuditEvent, Release, ReleaseState
from distributor.web import create_app, release_list
from tests.clients import logged_in_as
from tests.corrections import send_release
from tests.helpers import add_subscribers, add_topics, csrf_of, make_release, new_token
from tests.processes import invoke_cli
from tests.smtp_server import SMTPServer

WRITER = "jo@example.org"
IMAGE = {"src": "/media/ab12cd34ef56.png", "alt": "The signing", "credit": "Agency"}
DOCUMENT = {"src": "/media/0123456789ab.pdf", "title": "The agreement", "type": "application/pdf",
            "length": 12345}  # fmt: skip


@pytest.fixture
def s(settings: Settings) -> Settings:
    settings = settings.model_copy(update={"languages": ("en", "fr")})
    add_topics(settings, "climate", "energy")
    return settings


@pytest.fixture
def jo(s: Settings) -> Iterator[TestClient]:
    """A writer logged in to the workspace."""
    with logged_in_as(s, WRITER, "writer") as client:
        yield client


def release(s: Settings, slug: str, title: str, *, lang: str = "en", topics: str = "climate",
            state: ReleaseState = ReleaseState.DRAFT, days: int = 0) -> int:  # fmt: skip
    """A release stored as given, dated ``days`` after the first (its state set directly:
    the list reads only the column)."""
    made = make_release(s, slug=slug, title=title, lang=lang, topics=topics)
    with session_scope(s) as session:
        row = session.get(Release, made.id)
        assert row is not None
        row.state = state
        row.date = datetime(2026, 11, 1, 9, tzinfo=UTC) + timedelta(days=days)
    return made.id


def ids_listed(page: str) -> list[int]:
    """The release ids of the list page, in their order."""
    return [int(n) for n in re.findall(r'<tr data-id="(\d+)"', page)]


def counted(page: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r'data-state="(\w+)">(\d+)<', page)}


@pytest.fixture
def office(s: Settings) -> dict[str, int]:
    """Five releases over five days, in two languages, states and topics."""
    return {
        "flood": release(s, "flood", "Coastal flood defences agreed", days=0,
                         state=ReleaseState.PUBLISHED),
        "grid": release(s, "grid", "Grid upgrade for the coast", topics="energy", days=1),
        "election": release(s, "election", "Élection du nouveau conseil", lang="fr", days=2,
                            state=ReleaseState.SCHEDULED),
        "solar": release(s, "solar", "Solar farm opens", topics="climate, energy", days=3,
                         state=ReleaseState.WITHDRAWN),
        "budget": release(s, "budget", "ÉLECTION, le budget voté", lang="fr", days=4),
    }  # fmt: skip


def test_the_list_searches_filters_and_counts(
    s: Settings, jo: TestClient, office: dict[str, int]
) -> None:
    every = jo.get("/admin/releases")
    assert every.status_code == 200
    ids = office
    assert ids_listed(every.text) == [ids["budget"], ids["solar"], ids["election"], ids["grid"],
                                  ids["flood"]]  # newest first  # fmt: skip
    assert counted(every.text) == {"all": 5, "draft": 2, "scheduled": 1, "published": 1,
                                   "withdrawn": 1}  # fmt: skip

    # Words anywhere in the title, each of them, whatever their case (É as é).
    coast = jo.get("/admin/releases", params={"q": "coast"}).text
    assert ids_listed(coast) == [ids["grid"], ids["flood"]]
    found = jo.get("/admin/releases", params={"q": "élection"}).text
    assert ids_listed(found) == [ids["budget"], ids["election"]]
    assert counted(found) == {"all": 2, "draft": 1, "scheduled": 1, "published": 0,
                              "withdrawn": 0}  # fmt: skip
    assert ids_listed(jo.get("/admin/releases", params={"q": "budget ÉLECTION"}).text) == [
        ids["budget"]
    ]
    assert ids_listed(jo.get("/admin/releases", params={"q": "100%_"}).text) == []  # not wildcards
    # Filters, together; the counts follow the search, language and topic, not the state.
    assert ids_listed(jo.get("/admin/releases", params={"lang": "fr"}).text) == [
        ids["budget"], ids["election"]
    ]  # fmt: skip
    energy = jo.get("/admin/releases", params={"topic": "energy"}).text
    assert ids_listed(energy) == [ids["solar"], ids["grid"]]
    drafts = jo.get("/admin/releases", params={"topic": "energy", "state": "draft"}).text
    assert ids_listed(drafts) == [ids["grid"]]
    assert counted(drafts)["all"] == 2 and counted(drafts)["withdrawn"] == 1
    assert "1 release found" in drafts
    # A value the form does not offer (an old link) is "any", not an error.
    odd = jo.get("/admin/releases", params={"state": "lost", "lang": "xx", "topic": "nope"})
    assert odd.status_code == 200 and len(ids_listed(odd.text)) == 5
    assert jo.get("/admin/releases", params={"q": "x" * 201}).status_code == 422


def test_edit_and_delete_are_offered_for_drafts_only_and_delete_frees_the_slug(
    s: Settings, jo: TestClient, office: dict[str, int]
) -> None:
    page = jo.get("/admin/releases").text
    for name, rid in office.items():
        row = page.split(f'<tr data-id="{rid}">', 1)[1].split("</tr>", 1)[0]
        is_draft = name in ("grid", "budget")
        assert (f"/releases/{rid}/delete" in row) == is_draft, name
        assert (f"/releases/{rid}/edit" in row) == is_draft, name
        assert f"/releases/{rid}/duplicate" in row  # any release is a starting point
    gone = jo.post(f"/admin/releases/{office['grid']}/delete", data={"csrf": csrf_of(page)},
                   follow_redirects=False)  # fmt: skip
    assert gone.status_code == 303
    assert office["grid"] not in ids_listed(jo.get("/admin/releases").text)
    assert release(s, "grid", "Grid upgrade, take two") > office["budget"]  # the slug is free


def test_duplicate_makes_a_draft_with_everything_but_the_dates_and_address(
    s: Settings, jo: TestClient
) -> None:
    original = release(s, "flood", "Coastal flood defences agreed", topics="climate, energy",
                       state=ReleaseState.PUBLISHED)  # fmt: skip
    with session_scope(s) as session:
        row = session.get(Release, original)
        assert row is not None
        row.images, row.attachments = [IMAGE], [DOCUMENT]
        row.embargo_at = datetime(2026, 11, 1, 8, tzinfo=UTC)
    before = datetime.now(UTC)
    page = jo.get("/admin/releases").text
    made = jo.post(f"/admin/releases/{original}/duplicate", data={"csrf": csrf_of(page)},
                   follow_redirects=False)  # fmt: skip
    assert made.status_code == 303
    copy_id = int(made.headers["location"].split("/releases/")[1].split("/")[0])
    assert made.headers["location"] == f"/admin/releases/{copy_id}/edit?done=duplicated"
    form = jo.get(made.headers["location"])
    assert "A copy, saved as a new draft" in form.text
    assert 'value="Coastal flood defences agreed"' in form.text
    with session_scope(s) as session:
        first = session.get(Release, original)
        copy = session.get(Release, copy_id)
        assert first is not None and copy is not None
        assert copy.state == ReleaseState.DRAFT and copy.slug == "flood-copy"
        assert (copy.title, copy.language, copy.dateline, copy.lead, copy.body_html,
                copy.body_text, copy.contacts) == (first.title, first.language,
                first.dateline, first.lead, first.body_html, first.body_text,
                first.contacts)  # fmt: skip
        assert sorted(t.slug for t in copy.topics) == ["climate", "energy"]
        assert copy.images == [IMAGE] and copy.attachments == [DOCUMENT]
        assert copy.embargo_at is None and copy.published_at is None
        assert copy.date >= before - timedelta(seconds=1)
        assert copy.last_edited_by == "user:" + WRITER
        assert first.state == ReleaseState.PUBLISHED  # the original untouched
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "duplicate"))
        assert event.actor == "user:" + WRITER and event.subject == f"release {copy_id}"
        assert event.details == {"source": original, "slug": "flood-copy"}
    # Again: the next free address.
    again = jo.post(f"/admin/releases/{original}/duplicate", data={"csrf": csrf_of(page)},
                    follow_redirects=False)  # fmt: skip
    with session_scope(s) as session:
        slugs = session.scalars(select(Release.slug).order_by(Release.id)).all()
    assert again.status_code == 303 and slugs == ["flood", "flood-copy", "flood-copy-2"]


def test_duplicate_needs_the_form_and_a_release(s: Settings, jo: TestClient) -> None:
    original = release(s, "flood", "Coastal flood defences agreed")
    refused = jo.post(f"/admin/releases/{original}/duplicate", data={"csrf": "forged"},
                      follow_redirects=False)  # fmt: skip
    assert refused.status_code == 403
    page = jo.get("/admin/releases").text
    missing = jo.post("/admin/releases/999/duplicate", data={"csrf": csrf_of(page)})
    assert missing.status_code == 404 and "no release with id 999" in missing.text
    with session_scope(s) as session:
        assert session.scalars(select(Release.slug)).all() == ["flood"]


def test_a_long_slug_keeps_its_copy_suffix_within_the_limit(s: Settings) -> None:
    from distributor import actions

    long_slug = "a" * 40 + "-" + "b" * 39  # 80 characters, the most a made slug has
    original = release(s, long_slug, "A long one")
    copy = actions.duplicate(s, original, "cli:test")
    assert copy.slug == "a" * 40 + "-" + "b" * 34 + "-copy" and len(copy.slug) == 80


def test_the_list_goes_page_by_page(
    s: Settings, jo: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(release_list, "PAGE_SIZE", 2)
    ids = [release(s, f"r{i}", f"Release {i}", days=i) for i in range(5)]
    first = jo.get("/admin/releases").text
    assert ids_listed(first) == [ids[4], ids[3]] and "page 1 of 3" in first
    assert 'rel="next"' in first and 'rel="prev"' not in first
    last = jo.get("/admin/releases", params={"page": 3}).text
    assert ids_listed(last) == [ids[0]] and 'rel="prev"' in last and 'rel="next"' not in last


def test_the_command_line_and_the_api_search_and_duplicate_alike(
    s: Settings, office: dict[str, int]
) -> None:
    listed_cli = invoke_cli(s, "releases", "list", "--search", "élection", "--topic", "climate")
    assert listed_cli.returncode == 0, listed_cli.stderr
    assert [line.split("\t")[0] for line in listed_cli.stdout.splitlines()[1:]] == [
        str(office["budget"]), str(office["election"])
    ]  # fmt: skip
    made = invoke_cli(s, "releases", "duplicate", str(office["grid"]))
    assert made.returncode == 0, made.stderr
    copy_id = int(made.stdout)
    assert f"release {copy_id} created from release {office['grid']}: /releases/grid-copy" in (
        made.stderr
    )
    missing = invoke_cli(s, "releases", "duplicate", "999")
    assert missing.returncode == 1 and "no release with id 999" in missing.stderr

    token = new_token(s, "desk", ["releases"])
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(s), base_url="https://testserver") as api:
        answer = api.get("/api/releases", params={"search": "COAST", "topic": "energy"},
                         headers=auth)  # fmt: skip
        assert answer.status_code == 200
        assert [r["id"] for r in answer.json()["items"]] == [copy_id, office["grid"]]
        assert answer.json()["items"][0]["topics"] == ["energy"]
        copied = api.post(f"/api/releases/{office['flood']}/duplicate", headers=auth)
        assert copied.status_code == 201
        body = copied.json()
        assert body["slug"] == "flood-copy" and body["state"] == "draft"
        assert body["title"] == "Coastal flood defences agreed"
        assert api.post("/api/releases/999/duplicate", headers=auth).status_code == 404
    with session_scope(s) as session:
        actors = session.scalars(
            select(AuditEvent.actor).where(AuditEvent.action == "duplicate").order_by(AuditEvent.id)
        ).all()
    assert actors[0].startswith("cli:") and actors[1] == "token:desk"


def test_add_french_version_makes_the_linked_draft_to_translate(
    s: Settings, jo: TestClient
) -> None:
    original = release(s, "flood", "Coastal flood defences agreed", topics="climate, energy")
    with session_scope(s) as session:
        row = session.get(Release, original)
        assert row is not None
        row.embargo_at = datetime(2026, 11, 1, 8, tzinfo=UTC)
    page = jo.get(f"/admin/releases/{original}").text
    assert "Add French version" in page and "Add English version" not in page
    asked = {"language": "fr", "csrf": csrf_of(page)}
    made = jo.post(f"/admin/releases/{original}/translate", data=asked, follow_redirects=False)
    assert made.status_code == 303
    french_id = int(made.headers["location"].split("/releases/")[1].split("/")[0])
    assert made.headers["location"] == f"/admin/releases/{french_id}/edit?done=translated"
    assert "translate it, then save" in jo.get(made.headers["location"]).text
    with session_scope(s) as session:
        first, french = session.get(Release, original), session.get(Release, french_id)
        assert first is not None and french is not None
        assert (french.language, french.slug, french.state) == ("fr", "flood-fr", "draft")
        assert french.translation_of_id == original
        assert (french.date, french.embargo_at) == (first.date, first.embargo_at)
        assert (french.title, french.body_text) == (first.title, first.body_text)
        assert sorted(t.slug for t in french.topics) == ["climate", "energy"]
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "translate"))
        assert event.details == {"source": original, "slug": "flood-fr"}
    # Both versions' pages now offer no other language; asking again says which exists.
    for rid in (original, french_id):
        assert "Add French version" not in jo.get(f"/admin/releases/{rid}").text
    again = jo.post(f"/admin/releases/{french_id}/translate",
                    data={"language": "fr", "csrf": csrf_of(page)})  # fmt: skip
    assert again.status_code == 409
    assert f"has a version in fr already: release {french_id} (flood-fr)" in again.text


def test_a_version_is_refused_for_a_withdrawn_release_or_a_language_not_the_sites(
    s: Settings,
) -> None:
    from distributor import actions
    from distributor.core.errors import Conflict, InputError

    gone = release(s, "gone", "Withdrawn one", state=ReleaseState.WITHDRAWN)
    with pytest.raises(Conflict, match="withdrawn: it has no new version"):
        actions.duplicate(s, gone, "cli:test", "fr")
    kept = release(s, "kept", "Kept one")
    with pytest.raises(InputError, match="'de' is not one of the site's languages"):
        actions.duplicate(s, kept, "cli:test", "de")
    with pytest.raises(Conflict, match="has a version in en already"):
        actions.duplicate(s, kept, "cli:test", "en")
    with session_scope(s) as session:
        assert session.scalars(select(Release.slug).order_by(Release.id)).all() == ["gone", "kept"]


def test_the_pair_goes_out_once_to_each_subscriber_in_their_language(
    s: Settings, smtp_server: SMTPServer
) -> None:
    from distributor import actions

    live = s.model_copy(update={"smtp_url": smtp_server.url})
    add_subscribers(live, [("ann@example.com", "Ann", "en", "climate"),
                           ("fra@example.com", "Fra", "fr", "climate")])  # fmt: skip
    english = release(live, "flood", "Coastal flood defences agreed")
    french = actions.duplicate(live, english, "cli:test", "fr")
    with session_scope(live) as session:
        row = session.get(Release, french.id)
        assert row is not None
        row.title = "Accord sur la défense côtière"
    send_release(live, english)
    send_release(live, french.id)
    got = sorted((m.rcpt, str(m.parsed()["Subject"])) for m in smtp_server.handler.messages)
    assert got == [("ann@example.com", "Coastal flood defences agreed"),
                   ("fra@example.com", "Accord sur la défense côtière")]  # fmt: skip


def test_the_command_line_and_the_api_add_a_version(s: Settings) -> None:
    original = release(s, "flood", "Coastal flood defences agreed")
    made = invoke_cli(s, "releases", "translate", str(original), "--lang", "fr")
    assert made.returncode == 0, made.stderr
    assert f"created from release {original}: /releases/flood-fr" in made.stderr
    refused = invoke_cli(s, "releases", "translate", str(original), "--lang", "fr")
    assert refused.returncode == 1 and "has a version in fr already" in refused.stderr

    other = release(s, "grid", "Grid upgrade")
    token = new_token(s, "desk", ["releases"])
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(s), base_url="https://testserver") as api:
        answer = api.post(f"/api/releases/{other}/translations", json={"language": "fr"},
                          headers=auth)  # fmt: skip
        assert answer.status_code == 201, answer.text
        assert answer.json()["translation_of"] == other and answer.json()["slug"] == "grid-fr"
        again = api.post(f"/api/releases/{other}/translations", json={"language": "fr"},
                         headers=auth)  # fmt: skip
        assert again.status_code == 409 and "version in fr already" in again.json()["error"]
        odd = api.post(f"/api/releases/{other}/translations", json={"language": "de"},
                       headers=auth)  # fmt: skip
        assert odd.status_code == 422 and odd.json()["field"] == "language"
