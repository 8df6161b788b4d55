"""Embargo and scheduling, on an injectable clock: nothing visible or sent one second
before the time; published by the first sweep after it (beat runs one every 30 s)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from distributor import actions
from distributor.core.config import SWEEP_SECONDS, Settings, load_settings
from distributor.core.db import session_scope
from distributor.core.errors import Conflict, ReleaseInputError
from distributor.core.models import Delivery, Release, ReleaseState
from distributor.core.queue import TaskQueue, celery_config
from distributor.outbox import sending, sweep
from distributor.releases.lifecycle import create_release, mark_published, unschedule
from distributor.releases.source import parse_release
from distributor.site.builder import build_site
from tests.helpers import add_subscribers, add_topics, make_release, release_text
from tests.processes import NO_BROKER, invoke_cli
from tests.redis_db import empty

EMBARGO = datetime(2031, 3, 2, 8, 0, tzinfo=UTC)  # 09:00 in Paris


def embargoed_release(settings: Settings, embargo: datetime = EMBARGO) -> int:
    text = release_text().replace(
        "dateline: PARIS", f"dateline: PARIS\nembargo: {embargo.isoformat()}"
    )
    draft = parse_release(text, "embargoed.md", settings)
    with session_scope(settings) as session:
        return create_release(session, settings, draft).id


def deliveries(settings: Settings) -> int:
    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(Delivery)) or 0


def state(settings: Settings, release_id: int) -> str:
    with session_scope(settings) as session:
        return session.get_one(Release, release_id).state


def test_an_embargoed_release_stays_invisible_until_its_time(
    settings: Settings, redis_url: str
) -> None:
    live = settings.model_copy(update={"broker_url": redis_url})
    add_topics(live, "climate")
    add_subscribers(live, [("ann@example.com", "Ann", "en", "climate")])
    release_id = embargoed_release(live)
    queue = TaskQueue(live)
    try:
        actions.publish(live, queue, release_id)  # asked now: held for the embargo
        assert state(live, release_id) == ReleaseState.SCHEDULED

        before = sweep.sweep(live, queue, now=EMBARGO - timedelta(seconds=1))
        assert before.published == [] and state(live, release_id) == ReleaseState.SCHEDULED
        assert sending.distribute_release(live, queue, release_id) == 0  # nothing to plan
        build_site(live)
        page = live.public_dir / "releases/agency-signs-agreement.html"
        assert not page.exists()
        assert (
            "Agency signs agreement" not in (live.public_dir / "feeds/en/releases.atom").read_text()
        )
        assert deliveries(live) == 0

        after = sweep.sweep(live, queue, now=EMBARGO)
        assert after.published == [release_id]
        assert state(live, release_id) == ReleaseState.PUBLISHED
        # The sweep plans it itself (nobody else will) and wakes the workers to send it.
        assert after.planned == [release_id] and deliveries(live) == 1
        assert queue.waiting() >= 2  # send_batch and regenerate_site, for the workers
        build_site(live)
        assert page.exists()
    finally:
        queue.close()
        empty(redis_url)
    # "Within 30 seconds after": beat runs the sweep at least that often.
    schedule = celery_config(live)["beat_schedule"]["sweep"]["schedule"]
    assert schedule == SWEEP_SECONDS <= 30


def test_rescheduling_and_cancelling(sqlite_settings: Settings) -> None:
    s = sqlite_settings
    add_topics(s, "climate")
    release_id = embargoed_release(s)
    clock = EMBARGO - timedelta(days=2)
    with session_scope(s) as session:
        with pytest.raises(ReleaseInputError, match="before the release's embargo"):
            mark_published(session, release_id, EMBARGO - timedelta(minutes=1), now=clock)
    with session_scope(s) as session:
        later = mark_published(session, release_id, EMBARGO + timedelta(hours=3), now=clock)
        assert later.scheduled_at == EMBARGO + timedelta(hours=3)
    with session_scope(s) as session:  # moved earlier again, as far as the embargo
        earlier = mark_published(session, release_id, EMBARGO, now=clock)
        assert earlier.state == ReleaseState.SCHEDULED and earlier.scheduled_at == EMBARGO
    with session_scope(s) as session:
        assert unschedule(session, release_id, now=clock).state == ReleaseState.DRAFT
    with session_scope(s) as session:
        with pytest.raises(Conflict, match="not scheduled"):
            unschedule(session, release_id, now=clock)
    queue = TaskQueue(s.model_copy(update={"broker_url": NO_BROKER}))
    try:  # a cancelled release is not published when its time comes
        assert sweep.sweep(s, queue, now=EMBARGO + timedelta(days=1)).published == []
    finally:
        queue.close()
    assert state(s, release_id) == ReleaseState.DRAFT
    with session_scope(s) as session:  # and publishing it now still waits for the embargo
        again = mark_published(session, release_id, now=clock)
        assert (again.state, again.scheduled_at) == (ReleaseState.SCHEDULED, EMBARGO)
    with session_scope(s) as session:
        published = mark_published(session, release_id, now=EMBARGO)
        assert published.state == ReleaseState.PUBLISHED
        with pytest.raises(Conflict, match="already published"):
            mark_published(session, release_id, EMBARGO + timedelta(days=9), now=EMBARGO)


def test_the_cli_shows_times_in_the_press_office_zone(sqlite_settings: Settings) -> None:
    add_topics(sqlite_settings, "climate")
    release_id = embargoed_release(sqlite_settings)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return invoke_cli(sqlite_settings, *args)

    scheduled = run("releases", "publish", str(release_id), "--at", "2031-03-02T10:30:00+01:00")
    assert scheduled.returncode == 0, scheduled.stderr
    assert "scheduled for 2031-03-02 10:30 CET (09:30 UTC)" in scheduled.stdout
    early = run("releases", "publish", str(release_id), "--at", "2031-03-02T08:59:00+01:00")
    assert early.returncode == 1 and "before the release's embargo" in early.stderr
    assert run("releases", "unschedule", str(release_id)).returncode == 0
    assert state(sqlite_settings, release_id) == ReleaseState.DRAFT
    again = run("releases", "unschedule", str(release_id))
    assert again.returncode == 1 and "not scheduled" in again.stderr


def test_page_dates_are_the_press_office_day(sqlite_settings: Settings) -> None:
    add_topics(sqlite_settings, "climate")
    text = release_text().replace("2026-11-20T09:00:00+01:00", "2026-11-20T00:30:00+01:00")
    draft = parse_release(text, "late.md", sqlite_settings)
    with session_scope(sqlite_settings) as session:
        release = create_release(session, sqlite_settings, draft)
        mark_published(session, release.id)
    build_site(sqlite_settings)
    page = (sqlite_settings.public_dir / "releases/agency-signs-agreement.html").read_text()
    assert "20 November 2026" in page  # in UTC it is still the 19th
    with pytest.raises(ValueError, match="DISTRIBUTOR_TIMEZONE"):
        load_settings(timezone="Mars/Olympus")


def test_a_time_in_the_past_is_refused_unless_now_is_said(sqlite_settings: Settings) -> None:
    """A typo in a scheduled time (4 days ago: a wrong day) must never send a release early."""
    s = sqlite_settings
    add_topics(s, "climate")
    clock = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    past = make_release(s, slug="first-release").id
    with session_scope(s) as session:
        with pytest.raises(ReleaseInputError, match=r"field 'at': .* is in the past"):
            mark_published(session, past, clock - timedelta(days=4), now=clock)
    assert state(s, past) == ReleaseState.DRAFT
    with session_scope(s) as session:  # a clock a few seconds apart: that is now
        assert mark_published(session, past, clock - timedelta(seconds=4), now=clock).state == (
            ReleaseState.PUBLISHED
        )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return invoke_cli(s, *args)

    release_id = make_release(s, slug="second-release").id
    ago = (datetime.now(UTC) - timedelta(days=4)).astimezone(s.zone).isoformat(timespec="minutes")
    refused = run("releases", "publish", str(release_id), "--at", ago)
    assert refused.returncode == 1, refused.stderr
    assert f"release {release_id}: field 'at': " in refused.stderr
    assert "is in the past" in refused.stderr and "nothing was published" in refused.stderr
    assert state(s, release_id) == ReleaseState.DRAFT
    now = run("releases", "publish", str(release_id), "--at", "now")
    assert now.returncode == 0, now.stderr
    assert state(s, release_id) == ReleaseState.PUBLISHED

    # Create-and-publish refuses before anything is stored: running it again works.
    source = s.data_dir / "later.md"
    source.write_text(release_text(slug="later-release"), encoding="utf-8")
    with session_scope(s) as session:
        before = session.scalar(select(func.count()).select_from(Release))
    refused = run("publish", str(source), "--at", ago)
    assert refused.returncode == 1 and f"{source}: field 'at': " in refused.stderr
    with session_scope(s) as session:
        assert session.scalar(select(func.count()).select_from(Release)) == before
