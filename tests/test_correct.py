"""Correcting a published release: same id and address, new text, a visible note, a new
updated date in the feeds, and no email."""

from __future__ import annotations

from pathlib import Path

import feedparser
import pytest
from sqlalchemy import func, select

from distributor import actions
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import Conflict, ReleaseInputError
from distributor.core.models import Delivery, Release
from distributor.core.queue import TaskQueue
from distributor.releases.lifecycle import mark_published
from distributor.releases.source import parse_release
from distributor.site.builder import build_site
from tests.corrections import corrected_text
from tests.helpers import add_subscribers, add_topics, make_release
from tests.processes import NO_BROKER, invoke_cli


def test_a_correction_changes_the_page_and_the_feed_item_but_sends_nothing(
    settings: Settings,
) -> None:
    add_topics(settings, "climate")
    add_subscribers(settings, [("ann@example.com", "Ann", "en", "climate")])
    release = make_release(settings)
    with session_scope(settings) as session:
        mark_published(session, release.id)
    build_site(settings)
    atom = settings.public_dir / "feeds/en/releases.atom"
    before = feedparser.parse(atom.read_bytes()).entries[0]

    queue = TaskQueue(settings.model_copy(update={"broker_url": NO_BROKER}))
    try:
        draft = parse_release(corrected_text(), "fix.md", settings)
        actions.correct(settings, queue, release.id, draft)
    finally:
        queue.close()
    report = build_site(settings)

    assert "releases/agency-signs-agreement.html" in report.written
    page = (settings.public_dir / "releases/agency-signs-agreement.html").read_text()
    assert "Agency signs agreement (corrected)" in page and "Corrected on" in page
    assert "A fixed paragraph" in page
    after = feedparser.parse(atom.read_bytes()).entries[0]
    assert after.id == before.id and after.link == before.link
    assert after.published == before.published and after.updated != before.updated
    assert after.title == "Agency signs agreement (corrected)"
    assert "Corrected on" in after.content[0].value
    with session_scope(settings) as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
        assert session.get_one(Release, release.id).corrected_at is not None


def test_what_a_correction_may_not_change(sqlite_settings: Settings) -> None:
    s = sqlite_settings
    add_topics(s, "climate")
    release = make_release(s)
    queue = TaskQueue(s.model_copy(update={"broker_url": NO_BROKER}))
    try:
        draft = parse_release(corrected_text(), "fix.md", s)
        with pytest.raises(Conflict, match="only a published release"):
            actions.correct(s, queue, release.id, draft)
        with session_scope(s) as session:
            mark_published(session, release.id)
        french = parse_release(corrected_text(lang="fr"), "fr.md", s)
        with pytest.raises(ReleaseInputError, match="keeps the language"):
            actions.correct(s, queue, release.id, french)
        moved = parse_release(corrected_text(slug="elsewhere"), "moved.md", s)
        with pytest.raises(ReleaseInputError, match="keeps the address"):
            actions.correct(s, queue, release.id, moved)
    finally:
        queue.close()


def test_the_cli_corrects_from_a_file(sqlite_settings: Settings, tmp_path: Path) -> None:
    add_topics(sqlite_settings, "climate")
    release = make_release(sqlite_settings)
    with session_scope(sqlite_settings) as session:
        mark_published(session, release.id)
    fix = tmp_path / "fix.md"
    fix.write_text(corrected_text(), encoding="utf-8")
    done = invoke_cli(sqlite_settings, "releases", "correct", str(release.id), str(fix))
    assert done.returncode == 0, done.stderr
    assert "corrected" in done.stdout and "no email" in done.stdout
    with session_scope(sqlite_settings) as session:
        assert session.get_one(Release, release.id).title == "Agency signs agreement (corrected)"
