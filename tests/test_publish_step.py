"""Before anything is sent, the workspace says to whom (issue 14): a draft's page shows, per
language version and topic, how many confirmed subscribers would get it — each person once,
in their language — and who would get nothing for want of a version in their language;
"Publish now…" is a step that names that count before the button that sends."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from distributor import actions
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Release
from distributor.reporting.audience import reach
from tests.clients import logged_in_as
from tests.helpers import add_subscribers, add_topics, csrf_of, make_release

PUBLISHER = "cam@example.org"


@pytest.fixture
def s(settings: Settings, redis_url: str) -> Settings:
    s = settings.model_copy(update={"languages": ("en", "fr", "de"), "broker_url": redis_url})
    add_topics(s, "climate", "energy", "transport")
    add_subscribers(s, [
        ("ann@example.com", "Ann", "en", "climate;energy"),  # two of its topics: once
        ("bob@example.com", "Bob", "en", "energy"),
        ("cy@example.com", "Cy", "en", "transport"),  # none of its topics
        ("fra@example.com", "Fra", "fr", "climate"),
        ("gus@example.com", "Gus", "de", "energy"),  # no German version
    ])  # fmt: skip
    add_subscribers(s, [("new@example.com", "New", "en", "climate")], confirmed=False)
    return s


@pytest.fixture
def cam(s: Settings) -> Iterator[TestClient]:
    """A publisher logged in to the workspace."""
    with logged_in_as(s, PUBLISHER, "publisher") as client:
        yield client


def test_the_reach_counts_each_confirmed_follower_once_per_version(s: Settings) -> None:
    english = make_release(s, slug="flood", topics="climate, energy")
    french = actions.duplicate(s, english.id, "cli:test", "fr")
    with session_scope(s) as session:
        found = reach(session, session.get(Release, french.id))  # type: ignore[arg-type]
    assert [(v.release_id, v.language, v.people, v.by_topic) for v in found.versions] == [
        (english.id, "en", 2, {"climate": 1, "energy": 2}),
        (french.id, "fr", 1, {"climate": 1, "energy": 0}),
    ]
    assert found.people == 3 and found.without_version == {"de": 1}


def test_the_draft_page_and_the_publish_step_name_the_count(s: Settings, cam: TestClient) -> None:
    english = make_release(s, slug="flood", topics="climate, energy")
    page = cam.get(f"/admin/releases/{english.id}").text
    assert "Who will receive it" in page
    assert re.search(r'<td data-label="People" class="people">2</td>', page)
    assert "climate 1, energy 2" in page and "No version for: 1 in de, 1 in fr" in page
    assert "2 people now" in page
    step = cam.get(f"/admin/releases/{english.id}/publish")
    assert step.status_code == 200
    assert "Send “Agency signs agreement” now to 2 people?" in step.text
    assert "Yes, publish and send to 2 people" in step.text
    with session_scope(s) as session:
        assert session.get(Release, english.id).state == "draft"  # type: ignore[union-attr]
    sent = cam.post(f"/admin/releases/{english.id}/publish",
                    data={"csrf": csrf_of(step.text)}, follow_redirects=False)  # fmt: skip
    assert sent.headers["location"] == f"/admin/releases/{english.id}?done=published"
    after = cam.get(f"/admin/releases/{english.id}").text
    assert "Who will receive it" not in after  # sent: the delivery counts say the rest
    gone = cam.get(f"/admin/releases/{english.id}/publish")
    assert "This release is published: it cannot be published now." in gone.text
    assert cam.get("/admin/releases/999/publish").status_code == 404


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)  # a page's field, no query
def test_a_test_send_goes_to_yourself_unless_changed(s: Settings, cam: TestClient) -> None:
    """The release page's test form is filled with the logged-in person's address."""
    release = make_release(s)
    page = cam.get(f"/admin/releases/{release.id}").text
    field = re.search(r'<textarea id="addresses"[^>]*>([^<]*)</textarea>', page)
    assert field is not None and field.group(1) == PUBLISHER
