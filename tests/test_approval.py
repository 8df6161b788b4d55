"""The two-person rule (DISTRIBUTOR_REQUIRE_APPROVAL), as a press office lives it: a
writer's draft waits for a publisher other than its last editor to approve it; nobody
approves their own text, not even through their token; changing the text withdraws the
approval; all of it in the audit trail, from the workspace, the API and the CLI alike."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor import actions
from distributor.core.apitokens import create_token
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import Conflict
from distributor.core.models import AuditEvent, Release
from distributor.office.accounts import create_user
from distributor.releases.source import parse_release
from distributor.web import create_app
from tests.helpers import CountingQueue, add_topics, csrf_of, release_text

PASSWORD = "a long enough password"
JO, SAM, ANA = "user:jo@example.org", "user:sam@example.org", "user:ana@example.org"


@pytest.fixture
def s(sqlite_settings: Settings, redis_url: str) -> Settings:
    # SQLite only: the rule is checked in Python on rows read in one transaction; what the
    # database does (the actions' transactions) is tested on both elsewhere.
    ruled = sqlite_settings.model_copy(update={"broker_url": redis_url, "require_approval": True})
    add_topics(ruled, "climate")
    return ruled


def draft_by(s: Settings, by: str, **fields: str) -> int:
    draft = parse_release(release_text(**fields), "release.md", s)
    made = actions.create_release(s, draft, by, lambda _s, r: {"id": r.id})
    assert isinstance(made, dict)
    return int(made["id"])


def approval_trail(s: Settings) -> list[tuple[str, str]]:
    with session_scope(s) as session:
        return [(e.actor, e.action) for e in session.scalars(select(AuditEvent).order_by("id"))]


def test_a_draft_is_published_only_once_someone_else_approved_it(s: Settings) -> None:
    release_id = draft_by(s, JO)
    queue = CountingQueue()
    with pytest.raises(Conflict, match="needs the approval of someone other than user:jo"):
        actions.publish(s, queue, release_id, by=SAM)  # type: ignore[arg-type]
    actions.request_approval(s, release_id, JO)
    with pytest.raises(Conflict, match="someone else must approve it"):
        actions.approve(s, release_id, JO)
    actions.approve(s, release_id, SAM)
    assert actions.publish(s, queue, release_id, by=SAM).state == "published"  # type: ignore[arg-type]
    assert approval_trail(s) == [
        (JO, "create"), (JO, "approval-request"), (SAM, "approve"), (SAM, "publish"),
    ]  # fmt: skip
    with session_scope(s) as session:  # the approval names whose text it approved
        approval = session.scalars(select(AuditEvent).where(AuditEvent.action == "approve")).one()
    assert approval.details == {"editor": JO}


def test_changing_the_text_withdraws_the_approval(s: Settings) -> None:
    release_id = draft_by(s, JO)
    actions.approve(s, release_id, SAM)
    changed = parse_release(release_text(title="A new title"), "release.md", s)
    actions.update_draft(s, release_id, changed, ANA)
    with session_scope(s) as session:
        release = session.get_one(Release, release_id)
        assert (release.approved_by, release.last_edited_by) == ("", ANA)
    with pytest.raises(Conflict, match=r"other than user:ana@example\.org"):
        actions.publish(s, CountingQueue(), release_id, by=SAM)  # type: ignore[arg-type]
    actions.approve(s, release_id, SAM)  # Sam did not write this version
    actions.publish(s, CountingQueue(), release_id, by=SAM)  # type: ignore[arg-type]


def test_nobody_approves_their_own_text_through_their_token(s: Settings) -> None:
    release_id = draft_by(s, f"{SAM} (token:sam-script)")
    with pytest.raises(Conflict, match="someone else must approve it"):
        actions.approve(s, release_id, SAM)


def test_without_the_rule_nothing_waits_for_an_approval(s: Settings) -> None:
    free = s.model_copy(update={"require_approval": False})
    release_id = draft_by(free, JO)
    assert actions.publish(free, CountingQueue(), release_id, by=JO).state == "published"  # type: ignore[arg-type]


def test_the_workspace_offers_approval_to_another_publisher_only(s: Settings) -> None:
    with session_scope(s) as session:
        create_user(session, "jo@example.org", "publisher", PASSWORD)
        create_user(session, "sam@example.org", "publisher", PASSWORD)
    release_id = draft_by(s, JO)

    def logged_in(email: str) -> TestClient:
        client = TestClient(create_app(s), base_url="https://testserver")
        page = client.get("/admin/login")
        data = {"email": email, "password": PASSWORD, "csrf": csrf_of(page.text)}
        client.post("/admin/login", data=data)
        return client

    jo, sam = logged_in("jo@example.org"), logged_in("sam@example.org")
    page = jo.get(f"/admin/releases/{release_id}")
    assert "Not approved yet" in page.text and ">Approve<" not in page.text  # Jo wrote it
    refused = jo.post(f"/admin/releases/{release_id}/publish", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 409 and "needs the approval" in refused.text
    page = sam.get(f"/admin/releases/{release_id}")
    assert ">Approve<" in page.text
    done = sam.post(f"/admin/releases/{release_id}/approve", data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200 and f"Approved by {SAM}" in done.text
    jo.close()
    sam.close()


def test_the_api_approves_with_a_publishers_token_only(s: Settings) -> None:
    with session_scope(s) as session:
        writer = create_user(session, "jo@example.org", "writer", PASSWORD)
        publisher = create_user(session, "sam@example.org", "publisher", PASSWORD)
        writers = create_token(session, "jo-script", ["releases"], writer.id)
        publishers = create_token(session, "sam-script", ["releases"], publisher.id)
    release_id = draft_by(s, JO)
    with TestClient(create_app(s)) as api:
        ask = api.post(f"/api/releases/{release_id}/approval-request",
                       headers={"Authorization": f"Bearer {writers}"})  # fmt: skip
        assert ask.status_code == 200
        assert ask.json()["approval_requested_by"] == f"{JO} (token:jo-script)"
        mine = api.post(f"/api/releases/{release_id}/approve",
                        headers={"Authorization": f"Bearer {writers}"})  # fmt: skip
        assert mine.status_code == 403
        approved = api.post(f"/api/releases/{release_id}/approve",
                            headers={"Authorization": f"Bearer {publishers}"})  # fmt: skip
        assert approved.status_code == 200
        assert approved.json()["approved_by"] == f"{SAM} (token:sam-script)"
