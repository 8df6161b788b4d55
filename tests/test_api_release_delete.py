"""`DELETE /api/releases/ID`, on SQLite and PostgreSQL: a draft goes (204), its slug is
free for the next release, the trail records who deleted what; a published release stays
(409, saying to withdraw it); a release that translated the draft stays, on its own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from distributor.core.audit import recent
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Release
from distributor.releases.lifecycle import mark_published
from distributor.web import create_app
from tests.helpers import add_topics, new_token, release_text

MARKDOWN = {"Content-Type": "text/markdown"}


@pytest.fixture
def desk(settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    add_topics(settings, "climate")
    token = new_token(settings, "desk", ["releases"])
    with TestClient(create_app(settings)) as client:
        yield client, {"Authorization": f"Bearer {token}"}


def created_release(desk: tuple[TestClient, dict[str, str]], text: str) -> int:
    client, auth = desk
    made = client.post("/api/releases", content=text.encode(), headers={**auth, **MARKDOWN})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def test_a_draft_is_deleted_and_its_slug_free(
    settings: Settings, desk: tuple[TestClient, dict[str, str]]
) -> None:
    client, auth = desk
    draft = created_release(desk, release_text(title="Draft to drop"))
    gone = client.delete(f"/api/releases/{draft}", headers=auth)
    assert (gone.status_code, gone.content) == (204, b"")
    assert client.get(f"/api/releases/{draft}", headers=auth).status_code == 404
    assert client.delete(f"/api/releases/{draft}", headers=auth).status_code == 404

    again = created_release(desk, release_text())  # the same slug
    assert again > draft
    with session_scope(settings) as session:
        (event,) = recent(session, 10, "delete")
        assert (event.actor, event.subject) == ("token:desk", f"release {draft}")
        assert event.details == {"title": "Draft to drop", "slug": "agency-signs-agreement"}


def test_a_published_release_is_withdrawn_not_deleted(
    settings: Settings, desk: tuple[TestClient, dict[str, str]]
) -> None:
    client, auth = desk
    rid = created_release(desk, release_text())
    with session_scope(settings) as session:
        mark_published(session, rid, at=datetime.now(UTC) + timedelta(days=1))
    scheduled = client.delete(f"/api/releases/{rid}", headers=auth)
    assert scheduled.status_code == 409
    assert "only a draft is deleted (unschedule it first)" in scheduled.json()["error"]
    with session_scope(settings) as session:
        mark_published(session, rid)  # now, after all
    refused = client.delete(f"/api/releases/{rid}", headers=auth)
    assert refused.status_code == 409
    assert "withdraw a published release instead" in refused.json()["error"]
    assert client.get(f"/api/releases/{rid}", headers=auth).json()["state"] == "published"
    with session_scope(settings) as session:
        assert recent(session, 10, "delete") == []


def test_a_translation_of_the_deleted_draft_stays_on_its_own(
    settings: Settings, desk: tuple[TestClient, dict[str, str]]
) -> None:
    client, auth = desk
    original = created_release(desk, release_text())
    french = created_release(
        desk,
        release_text(lang="fr", slug="accord").replace(
            "slug: accord", "slug: accord\ntranslation_of: agency-signs-agreement"
        ),
    )
    assert client.get(f"/api/releases/{original}", headers=auth).json()["translations"] == [french]
    assert client.delete(f"/api/releases/{original}", headers=auth).status_code == 204
    kept = client.get(f"/api/releases/{french}", headers=auth).json()
    assert (kept["translation_of"], kept["translations"]) == (None, [])
    with session_scope(settings) as session:
        assert session.get(Release, french) is not None
        (event,) = recent(session, 10, "delete")
        assert event.details["unlinked"] == [french]
