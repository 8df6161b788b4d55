"""Release ingest: what is accepted, what is refused (with a message naming file and field),
and that nothing is stored on refusal."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from distributor.core.apitokens import create_token
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import Conflict, ReleaseInputError
from distributor.core.models import Release, ReleaseState
from distributor.releases.lifecycle import create_release, mark_published
from distributor.releases.source import parse_release
from distributor.web import create_app
from tests.helpers import add_topics, make_release, release_text
from tests.processes import NO_BROKER


def release_count(settings: Settings) -> int:
    with session_scope(settings) as session:
        return int(session.scalar(select(func.count()).select_from(Release)) or 0)


def test_markdown_release_is_stored_with_lead_body_and_contacts(settings: Settings) -> None:
    add_topics(settings, "climate")
    release = make_release(settings)
    with session_scope(settings) as session:
        stored = session.get(Release, release.id)
        assert stored is not None
        assert stored.title == "Agency signs agreement"
        assert stored.lead.startswith("The Agency today signed")
        assert "<strong>details</strong>" in stored.body_html
        assert "<blockquote>" in stored.body_html
        assert stored.contacts[0]["name"] == "Jane Doe"
        assert [t.slug for t in stored.topics] == ["climate"]
        assert stored.state == ReleaseState.DRAFT
        assert stored.date.isoformat() == "2026-11-20T08:00:00+00:00"


def test_hostile_html_is_sanitised_and_control_characters_removed(settings: Settings) -> None:
    add_topics(settings, "climate")
    text = release_text().replace(
        "A second paragraph",
        'Hi <script>alert(1)</script><img src=x onerror="alert(2)"> '
        '<a href="javascript:alert(3)">click</a> bell\x07 A second paragraph',
    )
    draft = parse_release(text, "hostile.md", settings)
    for bad in ("<script", "onerror", "javascript:", "\x07"):
        assert bad not in draft.body_html
    assert "A second paragraph" in draft.body_html


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no front matter at all", "hostile.md: no front matter"),
        ("---\ntitle: [unclosed\n---\nbody", "front matter is not valid YAML"),
        (release_text().replace("title: Agency signs agreement\n", ""), "field 'title'"),
        (release_text().replace("+01:00", ""), "field 'date'"),
        (release_text().replace("2026-11-20T09:00:00+01:00", "2026-11-20"), "field 'date'"),
        (release_text().replace("lang: en", "lang: de"), "field 'lang'"),
        (release_text().replace("dateline: PARIS", "colour: red"), "field 'colour'"),
    ],
)
def test_bad_release_files_are_refused_with_file_and_field(
    settings: Settings, text: str, message: str
) -> None:
    """A bad release file is refused naming the file and the field, and posting it to the
    API, the path that stores a release (parse, then create in one request), stores nothing:
    the same path stores the good file, so the count would see a release stored."""
    add_topics(settings, "climate")
    with pytest.raises(ReleaseInputError) as info:
        parse_release(text, "hostile.md", settings)
    assert message in str(info.value)
    assert "hostile.md" in str(info.value)
    s = settings.model_copy(update={"broker_url": NO_BROKER})
    with session_scope(s) as session:
        token = create_token(session, "desk", ["releases"])
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/markdown"}
    with TestClient(create_app(s)) as client:
        refused = client.post("/api/releases", content=text.encode(), headers=headers)
        assert refused.status_code == 422, refused.text
        assert message.removeprefix("hostile.md: ") in refused.json()["error"]
        assert release_count(s) == 0
        stored = client.post("/api/releases", content=release_text().encode(), headers=headers)
        assert stored.status_code == 201, stored.text
        assert release_count(s) == 1


def test_unknown_topic_is_refused_and_nothing_stored(settings: Settings) -> None:
    add_topics(settings, "climate")
    draft = parse_release(release_text(topics="climate, nuclear"), "r.md", settings)
    with pytest.raises(
        ReleaseInputError, match=r"r.md: field 'topics': unknown topic\(s\) nuclear"
    ):
        with session_scope(settings) as session:
            create_release(session, settings, draft)
    assert release_count(settings) == 0


def test_duplicate_slug_is_a_conflict(settings: Settings) -> None:
    add_topics(settings, "climate")
    make_release(settings)
    with pytest.raises(Conflict, match="already exists"):
        make_release(settings)
    assert release_count(settings) == 1


def test_publish_with_future_time_schedules(settings: Settings) -> None:
    from datetime import timedelta

    from distributor.core.models import utcnow

    add_topics(settings, "climate")
    release = make_release(settings)
    with session_scope(settings) as session:
        later = mark_published(session, release.id, utcnow() + timedelta(hours=1))
        assert later.state == ReleaseState.SCHEDULED
    with pytest.raises(ReleaseInputError, match="time zone"):
        with session_scope(settings) as session:
            mark_published(session, release.id, utcnow().replace(tzinfo=None))
