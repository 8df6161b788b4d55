"""A release and its unsent language versions published or scheduled together (issue 14,
"Translations"): one action sets them all to the same time, in one transaction, each
checked and audited as on its own; the sweep then sends each subscriber one email in their
language. A version that may not go refuses the whole, naming it. The workspace offers a
ticked checkbox per unsent version and warns about a version left behind; the CLI has
``--with-versions`` and the API ``"with_versions": true``."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor import actions
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import Conflict, ReleaseInputError
from distributor.core.models import AuditEvent, Release, utcnow
from distributor.core.queue import TaskQueue
from distributor.outbox import sending, sweep
from distributor.web import create_app
from tests.clients import logged_in_as
from tests.helpers import (
    CountingQueue,
    add_subscribers,
    add_topics,
    csrf_of,
    make_release,
    new_token,
)
from tests.processes import NO_BROKER, invoke_cli
from tests.smtp_server import SMTPServer

ENGLISH = [(f"en{i}@example.com", f"E {i}", "en", "climate") for i in range(3)]
FRENCH = [(f"fr{i}@example.com", f"F {i}", "fr", "climate") for i in range(2)]
BY = "user:cam@example.org"


def pair(s: Settings) -> tuple[int, int]:
    """Topic climate, English and French subscribers, and a draft with its French version
    ("Add French version"), its title in French: the two ids."""
    add_topics(s, "climate")
    add_subscribers(s, ENGLISH + FRENCH)
    english = make_release(s)
    french = actions.duplicate(s, english.id, "cli:writer", "fr")
    with session_scope(s) as session:
        session.get_one(Release, french.id).title = "L'Agence signe un accord"
    return english.id, french.id


def states(s: Settings, *ids: int) -> list[tuple[str, object]]:
    """Each release's state and scheduled time."""
    with session_scope(s) as session:
        return [(r.state, r.scheduled_at) for r in (session.get_one(Release, i) for i in ids)]


def audited(s: Settings, action: str) -> list[tuple[str, str]]:
    """The audit records of ``action``: subject and actor."""
    with session_scope(s) as session:
        found = session.scalars(select(AuditEvent).where(AuditEvent.action == action))
        return sorted((e.subject, e.actor) for e in found)


def test_scheduling_the_pair_sets_one_time_and_the_sweep_sends_one_email_each(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    s = settings.model_copy(update={"smtp_url": smtp_server.url, "batch_size": 2})
    english, french = pair(s)
    at = (utcnow() + timedelta(hours=1)).replace(microsecond=0)
    queue = CountingQueue()
    actions.publish(s, queue, english, at, by=BY, with_versions=True)  # type: ignore[arg-type]
    assert states(s, english, french) == [("scheduled", at), ("scheduled", at)]
    assert audited(s, "schedule") == [(f"release {english}", BY), (f"release {french}", BY)]
    assert queue.tasks("distribute_release") == []  # nothing goes before its time

    real = TaskQueue(s.model_copy(update={"broker_url": NO_BROKER}))
    try:
        done = sweep.sweep(s, real, now=at + timedelta(seconds=1))
        assert sorted(done.published) == [english, french]
        for release_id in (english, french):
            while sending.send_batch(s, release_id).claimed:
                pass
    finally:
        real.close()
    received = smtp_server.handler.messages
    assert Counter(m.rcpt for m in received) == Counter(e for e, *_ in ENGLISH + FRENCH)
    for message in received:
        subject = str(message.parsed()["Subject"])
        expected = "L'Agence signe un accord" if message.rcpt.startswith("fr") else "Agency"
        assert subject.startswith(expected), (message.rcpt, subject)


def test_publishing_now_with_versions_wakes_the_workers_for_each(settings: Settings) -> None:
    english, french = pair(settings)
    queue = CountingQueue()
    # From the French page: its original goes along.
    actions.publish(settings, queue, french, by=BY, with_versions=True)  # type: ignore[arg-type]
    assert [state for state, _ in states(settings, english, french)] == ["published"] * 2
    assert sorted(queue.tasks("distribute_release")) == [(english,), (french,)]
    assert audited(settings, "publish") == [(f"release {english}", BY), (f"release {french}", BY)]


def test_without_versions_only_the_release_goes(settings: Settings) -> None:
    english, french = pair(settings)
    actions.publish(settings, CountingQueue(), english, by=BY)  # type: ignore[arg-type]
    assert [state for state, _ in states(settings, english, french)] == ["published", "draft"]


def test_a_version_not_approved_refuses_the_whole_naming_it(settings: Settings) -> None:
    s = settings.model_copy(update={"require_approval": True})
    english, french = pair(s)
    actions.approve(s, english, "user:boss@example.org")  # the French one is not
    at = utcnow() + timedelta(hours=1)
    with pytest.raises(Conflict, match=rf"^release {french} \(fr\): release {french} needs"):
        actions.publish(s, CountingQueue(), english, at, by=BY, with_versions=True)  # type: ignore[arg-type]
    assert states(s, english, french) == [("draft", None), ("draft", None)]
    assert audited(s, "schedule") == []


def test_a_version_with_a_later_embargo_refuses_the_whole_naming_it(settings: Settings) -> None:
    english, french = pair(settings)
    later = utcnow() + timedelta(days=2)
    with session_scope(settings) as session:
        session.get_one(Release, french).embargo_at = later
    at = utcnow() + timedelta(hours=1)
    with pytest.raises(ReleaseInputError, match=rf"^release {french} \(fr\): its embargo"):
        actions.publish(settings, CountingQueue(), english, at, by=BY, with_versions=True)  # type: ignore[arg-type]
    assert states(settings, english, french) == [("draft", None), ("draft", None)]
    assert audited(settings, "schedule") == []


@pytest.fixture
def cam(sqlite_settings: Settings, redis_url: str) -> Iterator[TestClient]:
    """A publisher in the workspace, with a broker to wake."""
    s = sqlite_settings.model_copy(update={"broker_url": redis_url})
    with logged_in_as(s, "cam@example.org", "publisher") as client:
        yield client


def test_the_pages_offer_a_ticked_checkbox_per_unsent_version(
    sqlite_settings: Settings, cam: TestClient
) -> None:
    english, french = pair(sqlite_settings)
    alone = make_release(sqlite_settings, slug="alone")  # no version: nothing to offer
    for path in (f"/admin/releases/{alone.id}", f"/admin/releases/{alone.id}/publish"):
        page = cam.get(path).text
        assert 'name="version"' not in page and "Also the" not in page
        assert "is not scheduled with this one" not in page
    box = f'name="version" value="{french}" id="schedule-version-{french}" checked>'
    page = cam.get(f"/admin/releases/{english}").text
    assert box in page and "Also the French version (draft)" in page
    step = cam.get(f"/admin/releases/{english}/publish").text
    assert f'name="version" value="{french}" id="publish-version-{french}" checked' in step

    # The schedule form, ticked as it comes: both scheduled at that time.
    sent = cam.post(
        f"/admin/releases/{english}/publish",
        data={"csrf": csrf_of(page), "at": "2031-01-14T09:00", "version": str(french)},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text
    (_, first), (_, second) = states(sqlite_settings, english, french)
    assert first is not None and first == second
    assert audited(sqlite_settings, "schedule") == [
        (f"release {english}", BY), (f"release {french}", BY)
    ]  # fmt: skip


def test_the_release_page_warns_of_a_version_left_behind(
    sqlite_settings: Settings, cam: TestClient
) -> None:
    english, french = pair(sqlite_settings)
    page = cam.get(f"/admin/releases/{english}").text
    cam.post(f"/admin/releases/{english}/publish",
             data={"csrf": csrf_of(page), "at": "2031-01-14T09:00"})  # fmt: skip
    assert states(sqlite_settings, french) == [("draft", None)]  # not ticked: left behind
    warning = (
        "The French version (draft) is not scheduled with this one: readers in French will "
        "get nothing unless it goes out too."
    )
    assert warning in cam.get(f"/admin/releases/{english}").text
    french_page = cam.get(f"/admin/releases/{french}").text
    assert "The English version (scheduled) is not scheduled with this one" in french_page
    # Scheduled together: no warning any more.
    together = {"csrf": csrf_of(page), "at": "2031-01-14T09:00", "version": str(french)}
    cam.post(f"/admin/releases/{english}/publish", data=together)
    assert "is not scheduled with this one" not in cam.get(f"/admin/releases/{english}").text
    assert "is not scheduled with this one" not in cam.get(f"/admin/releases/{french}").text


def test_the_cli_publishes_with_versions(sqlite_settings: Settings) -> None:
    english, french = pair(sqlite_settings)
    lone = invoke_cli(
        sqlite_settings, "releases", "publish", str(english), "--at", "2031-01-14T09:00+00:00"
    )
    assert lone.returncode == 0, lone.stderr
    assert states(sqlite_settings, french) == [("draft", None)]
    both = invoke_cli(sqlite_settings, "releases", "publish", str(english),
                      "--at", "2031-02-14T09:00+00:00", "--with-versions")  # fmt: skip
    assert both.returncode == 0, both.stderr
    (_, first), (_, second) = states(sqlite_settings, english, french)
    assert first == second and first is not None and first.month == 2


def test_the_api_publishes_with_versions_only_when_asked(
    sqlite_settings: Settings, redis_url: str
) -> None:
    s = sqlite_settings.model_copy(update={"broker_url": redis_url, "require_approval": True})
    english, french = pair(s)
    actions.approve(s, english, "user:boss@example.org")
    auth = {"Authorization": f"Bearer {new_token(s, 'office', ['releases'])}"}
    at = "2031-01-14T09:00:00+00:00"
    with TestClient(create_app(s)) as client:
        url = f"/api/releases/{english}/publish"
        refused = client.post(url, json={"at": at, "with_versions": True}, headers=auth)
        assert refused.status_code == 409, refused.text
        assert f"release {french} (fr)" in json.dumps(refused.json())
        assert states(s, english, french) == [("draft", None), ("draft", None)]
        actions.approve(s, french, "user:boss@example.org")
        alone = client.post(url, json={"at": at}, headers=auth)
        assert alone.status_code == 200 and states(s, french) == [("draft", None)]
        both = client.post(url, json={"at": at, "with_versions": True}, headers=auth)
        assert both.status_code == 200, both.text
    assert [state for state, _ in states(s, english, french)] == ["scheduled"] * 2
