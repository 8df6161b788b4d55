"""The release editor, live (web/editor_live.py), as the server answers it: the preview of
what is typed — the newsroom page and the email as subscribers get them, who it would reach
— without saving anything; autosave with the same checks and the same version check as
Save; CSRF and roles on each."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import AuditEvent, Release
from distributor.office.accounts import create_user
from distributor.web import create_app
from tests.clients import browser_logged_in
from tests.helpers import add_subscribers, add_topics, csrf_of, make_release

PASSWORD = "a long enough password"
TYPED = {
    "title": "Agency opens a climate data portal",
    "lang": "en",
    "date": "2026-11-20T09:00",
    "dateline": "LYON",
    "lead": "Eleven years of measurements, open to everyone.",
    "body": "The portal opens **today**.\n\n> A milestone, says the director.",
    "contacts": "Ann Lee; Spokesperson; +33 1 23 45 67 89; ann.lee@example.org",
    "embargo": "",
    "topics": ["climate"],
}


@pytest.fixture
def live_settings(settings: Settings, redis_url: str) -> Settings:
    s = settings.model_copy(update={"broker_url": redis_url, "languages": ["en", "fr"]})
    add_topics(s, "climate", "energy")
    add_subscribers(
        s,
        [
            ("a@example.org", "A", "en", "climate"),
            ("b@example.org", "B", "en", "climate;energy"),
            ("c@example.org", "C", "en", "energy"),
            ("d@example.org", "D", "fr", "climate"),
        ],
    )
    return s


def login_client(s: Settings, email: str, role: str = "writer") -> TestClient:
    with session_scope(s) as session:
        create_user(session, email, role, PASSWORD, name=email.split("@")[0])
    return browser_logged_in(s, email, PASSWORD)


@pytest.fixture
def ann(live_settings: Settings) -> Iterator[TestClient]:
    client = login_client(live_settings, "ann@example.org")
    yield client
    client.close()


def posted(client: TestClient, path: str, **changes: object) -> dict[str, object]:
    """The editor form at ``path`` as typed (TYPED with ``changes``), with its CSRF value
    and version."""
    page = client.get(path)
    version = page.text.split('name="version" value="', 1)[1].split('"', 1)[0]
    return {**TYPED, "csrf": csrf_of(page.text), "version": version, **changes}


def count_releases(s: Settings) -> int:
    with session_scope(s) as session:
        return session.scalar(select(func.count()).select_from(Release)) or 0


def test_the_preview_shows_the_unsaved_text_as_the_page_and_the_email(
    live_settings: Settings, ann: TestClient
) -> None:
    data = posted(ann, "/admin/releases/new")
    page = ann.post("/admin/releases/new/preview", data={**data, "view": "page"})
    assert page.status_code == 200
    assert "Agency opens a climate data portal" in page.text
    assert "<strong>today</strong>" in page.text and "LYON" in page.text
    assert 'rel="alternate"' in page.text  # the newsroom's page template, not the editor's
    # Its own policy: the email's and the page's inline styles show, no script, sandboxed.
    policy = page.headers["content-security-policy"]
    assert "style-src 'unsafe-inline'" in policy and "sandbox" in policy
    assert "script-src" not in policy and page.headers["x-frame-options"] == "SAMEORIGIN"
    email = ann.post("/admin/releases/new/preview", data={**data, "view": "email"})
    assert email.status_code == 200 and 'style="' in email.text  # CSS inlined, as sent
    assert "Eleven years of measurements" in email.text and "unsubscribe" in email.text.lower()
    assert count_releases(live_settings) == 0  # nothing saved
    with session_scope(live_settings) as session:
        assert session.scalars(select(AuditEvent)).all() == []


def test_the_preview_of_a_draft_shows_the_typed_text_not_the_stored_one(
    live_settings: Settings, ann: TestClient
) -> None:
    release = make_release(live_settings, title="The stored title")
    data = posted(ann, f"/admin/releases/{release.id}/edit", title="A title typed just now")
    page = ann.post(f"/admin/releases/{release.id}/preview", data=data)
    assert "A title typed just now" in page.text and "The stored title" not in page.text
    with session_scope(live_settings) as session:
        assert session.get_one(Release, release.id).title == "The stored title"


def test_the_reach_follows_the_chosen_topics_and_language(
    live_settings: Settings, ann: TestClient
) -> None:
    data = posted(ann, "/admin/releases/new")
    one = ann.post("/admin/releases/new/preview.json", data=data).json()
    assert one["people"] == 2 and one["by_language"] == {"en": 2}  # a and b
    assert "climate 2" in one["reach_html"] and "1 in fr" in one["reach_html"]
    both = ann.post(
        "/admin/releases/new/preview.json", data={**data, "topics": ["climate", "energy"]}
    ).json()
    assert both["people"] == 3  # b once, though they follow both
    french = ann.post("/admin/releases/new/preview.json", data={**data, "lang": "fr"}).json()
    assert french["people"] == 1 and french["subject"] == TYPED["title"]


def test_a_form_error_is_shown_in_the_preview_not_a_crash(
    live_settings: Settings, ann: TestClient
) -> None:
    data = posted(ann, "/admin/releases/new", title="", topics=[])
    frame = ann.post("/admin/releases/new/preview", data=data)
    assert frame.status_code == 422 and "Cannot preview yet" in frame.text
    assert "title" in frame.text
    assert "style-src 'unsafe-inline'" in frame.headers["content-security-policy"]
    summary = ann.post("/admin/releases/new/preview.json", data=data)
    assert summary.status_code == 422 and summary.json()["field"] in ("title", "topics")
    bad_date = ann.post("/admin/releases/new/preview.json", data={**data, "title": "T",
                        "topics": ["climate"], "date": "20/11/2026"})  # fmt: skip
    assert bad_date.status_code == 422 and "is not a date" in bad_date.json()["error"]


def test_the_first_autosave_creates_the_draft_and_later_ones_update_it(
    live_settings: Settings, ann: TestClient
) -> None:
    data = posted(ann, "/admin/releases/new", title="Agency opens")
    made = ann.post("/admin/releases/new/autosave.json", data=data)
    assert made.status_code == 201
    answer = made.json()
    assert answer["edit_url"] == f"/admin/releases/{answer['id']}/edit"
    assert len(answer["saved_at"]) == 8  # HH:MM:SS
    more = {**data, "title": TYPED["title"], "version": answer["version"]}
    again = ann.post(f"/admin/releases/{answer['id']}/autosave.json", data=more)
    assert again.status_code == 200 and again.json()["version"] != answer["version"]
    with session_scope(live_settings) as session:
        [release] = session.scalars(select(Release)).all()
        # The address follows the finished title, not the first half-typed one.
        assert (release.title, release.slug) == (
            TYPED["title"],
            "agency-opens-a-climate-data-portal",
        )
        actions = [e.action for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions == ["create", "update"]  # in the audit trail like Save


def test_invalid_input_is_not_autosaved_and_the_answer_says_why(
    live_settings: Settings, ann: TestClient
) -> None:
    data = posted(ann, "/admin/releases/new", topics=[])
    refused = ann.post("/admin/releases/new/autosave.json", data=data)
    assert refused.status_code == 422
    assert refused.json()["field"] == "topics" and "topics" in refused.json()["error"]
    assert count_releases(live_settings) == 0
    release = make_release(live_settings, title="Kept as it was")
    edit = posted(ann, f"/admin/releases/{release.id}/edit", title="")
    refused = ann.post(f"/admin/releases/{release.id}/autosave.json", data=edit)
    assert refused.status_code == 422 and refused.json()["field"] == "title"
    with session_scope(live_settings) as session:
        assert session.get_one(Release, release.id).title == "Kept as it was"


def test_an_autosave_after_someone_else_saved_overwrites_nothing(
    live_settings: Settings, ann: TestClient
) -> None:
    release = make_release(live_settings, title="First title")
    edit = f"/admin/releases/{release.id}/edit"
    anns = posted(ann, edit, title="Ann's title")
    bob = login_client(live_settings, "bob@example.org")
    bobs = posted(bob, edit, title="Bob's title", body="Bob's body")
    assert bob.post(f"/admin/releases/{release.id}/autosave.json", data=bobs).status_code == 200
    clash = ann.post(f"/admin/releases/{release.id}/autosave.json", data=anns)
    assert clash.status_code == 409
    answer = clash.json()
    assert "saved by someone else since you opened it" in answer["error"]
    assert "nothing was overwritten" in answer["error"]
    assert answer["theirs"]["title"] == "Bob's title" and answer["theirs"]["body"] == "Bob's body"
    with session_scope(live_settings) as session:
        assert session.get_one(Release, release.id).title == "Bob's title"
    # Saving again with their version replaces theirs, knowingly.
    knowingly = ann.post(
        f"/admin/releases/{release.id}/autosave.json", data={**anns, "version": answer["version"]}
    )
    assert knowingly.status_code == 200
    with session_scope(live_settings) as session:
        assert session.get_one(Release, release.id).title == "Ann's title"
    bob.close()


def test_the_live_routes_refuse_a_missing_csrf_value_and_a_logged_out_browser(
    live_settings: Settings, ann: TestClient
) -> None:
    data = posted(ann, "/admin/releases/new")
    forged = {**data, "csrf": "forged"}
    for path in ("/admin/releases/new/autosave.json", "/admin/releases/new/preview.json"):
        refused = ann.post(path, data=forged)
        assert refused.status_code == 403 and "expired" in refused.json()["error"]
    assert ann.post("/admin/releases/new/preview", data=forged).status_code == 403
    assert count_releases(live_settings) == 0
    with TestClient(create_app(live_settings), base_url="https://testserver") as nobody:
        gone = nobody.post("/admin/releases/new/autosave.json", data=data)
        assert gone.status_code == 401 and gone.json() == {"error": "log in again"}
        frame = nobody.post("/admin/releases/new/preview", data=data, follow_redirects=False)
        assert frame.status_code == 303
    assert count_releases(live_settings) == 0


def test_a_release_no_longer_a_draft_is_neither_previewed_as_one_nor_autosaved(
    live_settings: Settings, ann: TestClient
) -> None:
    release = make_release(live_settings)
    data = posted(ann, f"/admin/releases/{release.id}/edit")
    with session_scope(live_settings) as session:
        session.get_one(Release, release.id).state = "published"
    saved = ann.post(f"/admin/releases/{release.id}/autosave.json", data=data)
    assert saved.status_code == 409 and "only a draft is edited" in saved.json()["error"]
    frame = ann.post(f"/admin/releases/{release.id}/preview", data=data)
    assert frame.status_code == 409 and "only a draft is edited" in frame.text
    missing = ann.post("/admin/releases/999999/autosave.json", data=data)
    assert missing.status_code == 404 and "no release with id 999999" in missing.json()["error"]


# The form parser's limit, not the database's: once, on SQLite (a long body is slow to render).
@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_a_body_over_a_mebibyte_is_autosaved_and_previewed(
    live_settings: Settings, ann: TestClient
) -> None:
    """A release's body may be 2 MB (a release file's limit): the live routes take a field
    that long, as Save does (the form parser's default is 1 MiB a field)."""
    long_body = "\n\n".join(["A paragraph of the annex, with its figures."] * 24_000)
    assert 1024 * 1024 < len(long_body) < 2 * 1000 * 1000
    data = {**posted(ann, "/admin/releases/new", title="Agency opens"), "body": long_body}
    made = ann.post("/admin/releases/new/autosave.json", data=data)
    assert made.status_code == 201, made.text[:300]
    draft = made.json()
    shown = ann.post(f"/admin/releases/{draft['id']}/preview",
                     data={**data, "version": draft["version"], "view": "page"})  # fmt: skip
    assert shown.status_code == 200 and "A paragraph of the annex" in shown.text
