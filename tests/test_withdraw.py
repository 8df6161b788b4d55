"""Withdrawing a release: nothing more is sent, it leaves the pages and feeds, its URL
answers 410 Gone, and who did it is recorded."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from distributor import actions
from distributor.core.config import Settings
from distributor.core.db import alembic_config, dispose_engines, session_scope, upgrade
from distributor.core.errors import Conflict, ReleaseInputError
from distributor.core.models import AuditEvent, Delivery, DeliveryStatus, Release, ReleaseState
from distributor.core.queue import TaskQueue
from distributor.outbox import sending
from distributor.releases.lifecycle import mark_published
from distributor.site.builder import build_site
from distributor.web import create_app
from tests import clients
from tests.clients import Dash
from tests.helpers import add_subscribers, add_topics, make_release, new_token
from tests.processes import NO_BROKER, invoke_cli
from tests.redis_db import empty
from tests.smtp_server import SMTPServer

PEOPLE = [(f"p{i}@example.com", f"P {i}", "en", "climate") for i in range(6)]
PAGE = "releases/agency-signs-agreement.html"


def statuses(settings: Settings, release_id: int) -> list[str]:
    with session_scope(settings) as session:
        rows = session.scalars(
            select(Delivery.status).where(Delivery.release_id == release_id).order_by(Delivery.id)
        )
        return list(rows)


def test_withdrawal_mid_send_cancels_what_is_not_sent_and_takes_the_page_down(
    settings: Settings, smtp_server: SMTPServer, redis_url: str
) -> None:
    live = settings.model_copy(
        update={"broker_url": redis_url, "smtp_url": smtp_server.url, "batch_size": 2}
    )
    add_topics(live, "climate")
    add_subscribers(live, PEOPLE)
    release = make_release(live)
    queue = TaskQueue(live)
    try:
        actions.publish(live, queue, release.id)
        sending.distribute_release(live, queue, release.id)
        assert sending.send_batch(live, release.id).claimed == 2  # two sent, four to go
        with session_scope(live) as session:  # one of them waiting for a retry
            first_open = session.scalar(
                select(Delivery.id).where(Delivery.status == DeliveryStatus.PENDING).limit(1)
            )
            session.execute(
                update(Delivery).where(Delivery.id == first_open).values(status="deferred")
            )
        build_site(live)
        assert (live.public_dir / PAGE).is_file()

        assert actions.withdraw(live, queue, release.id, "Jane Doe").cancelled == 4
        assert sending.send_batch(live, release.id).claimed == 0  # nothing sent after
        assert sorted(statuses(live, release.id)) == ["cancelled"] * 4 + ["sent"] * 2
        assert len(smtp_server.handler.messages) == 2
        with session_scope(live) as session:
            stored = session.get_one(Release, release.id)
            assert stored.state == ReleaseState.WITHDRAWN
            assert stored.withdrawn_by == "Jane Doe" and stored.withdrawn_at is not None
        with pytest.raises(Conflict, match="already withdrawn"):
            actions.withdraw(live, queue, release.id, "Jane Doe")
    finally:
        queue.close()
        empty(redis_url)

    report = build_site(live)
    assert PAGE in report.removed and not (live.public_dir / PAGE).exists()
    assert "Agency signs agreement" not in (live.public_dir / "feeds/en/releases.atom").read_text()
    assert "Agency signs agreement" not in (live.public_dir / "en/index.html").read_text()
    with TestClient(create_app(live)) as client:
        gone = client.get("/releases/agency-signs-agreement")
        assert gone.status_code == 410
        assert "Release withdrawn" in gone.text and "Agency signs agreement" in gone.text
        assert "quoted statement" not in gone.text  # the notice, not the text
        assert client.get("/releases/agency-signs-agreement.gone.html").status_code == 410


def test_a_draft_withdrawn_leaves_no_notice_and_who_is_required(sqlite_settings: Settings) -> None:
    add_topics(sqlite_settings, "climate")
    release = make_release(sqlite_settings)
    queue = TaskQueue(sqlite_settings.model_copy(update={"broker_url": NO_BROKER}))
    try:
        with pytest.raises(ReleaseInputError, match="withdrawn by"):
            actions.withdraw(sqlite_settings, queue, release.id, "Jane\r\nBcc: x")
        assert actions.withdraw(sqlite_settings, queue, release.id, "Jane").cancelled == 0
    finally:
        queue.close()
    build_site(sqlite_settings)
    assert not (sqlite_settings.public_dir / "releases").exists()


def test_the_cli_withdraws_and_says_how_many_were_cancelled(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    add_topics(sqlite_settings, "climate")
    release = make_release(sqlite_settings)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return invoke_cli(sqlite_settings, *args)

    done = run("releases", "withdraw", str(release.id), "--by", "Jane Doe")
    assert done.returncode == 0, done.stderr
    assert f"release {release.id} withdrawn; 0 deliveries" in done.stdout
    again = run("releases", "withdraw", str(release.id))
    assert again.returncode == 1 and "already withdrawn" in again.stderr


def test_a_reason_given_on_the_command_line_is_shown_on_the_410_page(
    sqlite_settings: Settings,
) -> None:
    add_topics(sqlite_settings, "climate")
    english = make_release(sqlite_settings)
    french = make_release(sqlite_settings, lang="fr", slug="accord-signe", title="Accord signé")
    reasons = [
        (english, "Figures were wrong; a new release follows."),
        (french, "Chiffres erronés ; un nouveau communiqué suit."),
    ]
    for release, reason in reasons:
        with session_scope(sqlite_settings) as session:
            mark_published(session, release.id)
        done = invoke_cli(
            sqlite_settings, "releases", "withdraw", str(release.id), "--reason", reason
        )
        assert done.returncode == 0, done.stderr
    build_site(sqlite_settings)
    with TestClient(create_app(sqlite_settings)) as client:
        gone = client.get("/releases/agency-signs-agreement")
        assert gone.status_code == 410
        assert "Reason: Figures were wrong; a new release follows." in gone.text
        gone_fr = client.get("/releases/accord-signe")
        assert gone_fr.status_code == 410
        assert "Motif\u00a0: Chiffres erronés ; un nouveau communiqué suit." in gone_fr.text
    with session_scope(sqlite_settings) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "withdraw")).first()
        assert event is not None
        assert event.details["reason"] == "Figures were wrong; a new release follows."


def test_without_a_reason_the_410_page_says_none(sqlite_settings: Settings) -> None:
    add_topics(sqlite_settings, "climate")
    release = make_release(sqlite_settings)
    with session_scope(sqlite_settings) as session:
        mark_published(session, release.id)
    queue = TaskQueue(sqlite_settings.model_copy(update={"broker_url": NO_BROKER}))
    try:
        actions.withdraw(sqlite_settings, queue, release.id, "Jane")
    finally:
        queue.close()
    build_site(sqlite_settings)
    page = (sqlite_settings.public_dir / "releases/agency-signs-agreement.gone.html").read_text()
    assert "Release withdrawn" in page and "Reason" not in page


@pytest.mark.parametrize(
    ("reason", "problem"),
    [("Wrong figures\nBcc: someone@example.org", "reason:"), ("x" * 501, "at most 500")],
)
def test_a_reason_of_several_lines_or_too_long_is_refused_and_nothing_changes(
    sqlite_settings: Settings, reason: str, problem: str
) -> None:
    add_topics(sqlite_settings, "climate")
    release = make_release(sqlite_settings)
    with session_scope(sqlite_settings) as session:
        mark_published(session, release.id)
    queue = TaskQueue(sqlite_settings.model_copy(update={"broker_url": NO_BROKER}))
    try:
        with pytest.raises(ReleaseInputError, match=problem):
            actions.withdraw(sqlite_settings, queue, release.id, "Jane", reason)
    finally:
        queue.close()
    with session_scope(sqlite_settings) as session:
        stored = session.get_one(Release, release.id)
        assert stored.state == ReleaseState.PUBLISHED and stored.withdrawn_reason == ""


def test_releases_withdrawn_before_0013_keep_their_page_without_a_reason(
    sqlite_settings: Settings,
) -> None:
    """Migration 0013 adds the reason: a release withdrawn before it has none, and its page
    is the one it had."""
    add_topics(sqlite_settings, "climate")
    release = make_release(sqlite_settings)
    queue = TaskQueue(sqlite_settings.model_copy(update={"broker_url": NO_BROKER}))
    try:
        actions.withdraw(sqlite_settings, queue, release.id, "Jane")
    finally:
        queue.close()
    dispose_engines()
    command.downgrade(alembic_config(sqlite_settings), "0012")  # back to before the reason…
    dispose_engines()
    upgrade(sqlite_settings)  # …and up again
    with session_scope(sqlite_settings) as session:
        stored = session.get_one(Release, release.id)
        assert stored.state == ReleaseState.WITHDRAWN and stored.withdrawn_by == "Jane"
        assert stored.withdrawn_reason == ""


dash = clients.dash  # the dashboard fixture: an app, a logged-out browser, a token


def test_the_dashboard_and_the_api_take_a_reason_too(dash: Dash) -> None:
    first = make_release(dash.settings)
    second = make_release(dash.settings, slug="second-release", title="Second release")
    assert dash.login().status_code == 303
    form = dash.client.get(f"/admin/releases/{first.id}/withdraw")
    assert 'name="reason"' in form.text and 'maxlength="500"' in form.text
    response = dash.post(f"/admin/releases/{first.id}/withdraw", reason="Sent by mistake")
    assert response.status_code == 303, response.text

    auth = {"Authorization": f"Bearer {new_token(dash.settings, 'press-office', ['releases'])}"}
    path = f"/api/releases/{second.id}/withdraw"
    too_long = dash.client.post(path, json={"reason": "x" * 501}, headers=auth)
    assert too_long.status_code == 422 and too_long.json()["field"] == "reason"
    done = dash.client.post(path, json={"reason": "Embargo broken"}, headers=auth)
    assert done.status_code == 200, done.text
    assert done.json()["withdrawn_reason"] == "Embargo broken"
    with session_scope(dash.settings) as session:
        assert session.get_one(Release, first.id).withdrawn_reason == "Sent by mistake"
        assert session.get_one(Release, second.id).withdrawn_reason == "Embargo broken"


def test_a_withdrawal_wakes_the_site_and_only_the_notices_it_planned(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    """What ``actions.withdraw`` does after its transaction, and what it records: the site
    regenerated once; notice batches woken only when notices were asked for and planned
    (one per batch_size); the audit trail says what was cancelled and planned."""
    from tests.corrections import ENGLISH, add_readers, send_release
    from tests.helpers import CountingQueue

    s = settings.model_copy(update={"smtp_url": smtp_server.url, "batch_size": 2})
    add_readers(s)
    quiet, told = make_release(s, slug="quiet"), make_release(s, slug="told")
    send_release(s, quiet.id)
    send_release(s, told.id)
    queue = CountingQueue()
    done = actions.withdraw(s, queue, quiet.id, "cli:jane")  # type: ignore[arg-type]
    assert (done.cancelled, done.notices) == (0, 0)
    assert queue.tasks("regenerate_site") == [()] and queue.tasks("send_correction_notices") == []

    queue = CountingQueue()
    done = actions.withdraw(
        s,
        queue,
        told.id,
        "cli:jane",
        reason="Wrong figures",
        notify=True,  # type: ignore[arg-type]
    )
    readers = len(ENGLISH)  # those who received it: the English readers of climate
    assert done.notices == readers
    assert queue.tasks("regenerate_site") == [()]
    assert queue.tasks("send_correction_notices") == [(told.id,)] * -(-readers // 2)
    with session_scope(s) as session:
        trail = {
            event.subject: event.details
            for event in session.scalars(select(AuditEvent).where(AuditEvent.action == "withdraw"))
        }
    assert trail == {
        f"release {quiet.id}": {"cancelled": 0},
        f"release {told.id}": {"cancelled": 0, "notify": True, "notices": readers,
                               "reason": "Wrong figures"},
    }  # fmt: skip
