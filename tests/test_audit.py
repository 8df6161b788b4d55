"""The audit trail: who published, scheduled, corrected, withdrew, imported and erased,
recorded with the action itself; an erasure keeps the hash, never the address."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from distributor import actions
from distributor.audience.privacy import suppression_hash
from distributor.core import audit
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import AuditEvent, utcnow
from distributor.core.queue import TaskQueue
from distributor.outbox import sweep
from distributor.releases.source import parse_release
from tests.helpers import add_subscribers, add_topics, make_release, release_text
from tests.processes import NO_BROKER, invoke_cli


def trail(settings: Settings) -> list[tuple[str, str, str]]:
    with session_scope(settings) as session:
        return [(e.actor, e.action, e.subject) for e in reversed(audit.recent(session))]


def test_each_action_on_a_release_is_recorded_with_who(sqlite_settings: Settings) -> None:
    s = sqlite_settings
    add_topics(s, "climate")
    first = make_release(s)
    second = make_release(s, slug="second", title="Second")
    queue = TaskQueue(s.model_copy(update={"broker_url": NO_BROKER}))
    try:
        actions.publish(s, queue, first.id, by="token:desk")
        actions.publish(s, queue, first.id, by="token:desk")  # no change: not recorded
        fix = parse_release(release_text(title="Fixed"), "fix.md", s)
        actions.correct(s, queue, first.id, fix, by="cli:jane")
        at = utcnow().replace(microsecond=0) + timedelta(hours=1)
        actions.publish(s, queue, second.id, at, by="cli:jane")
        sweep.sweep(s, queue, now=utcnow() + timedelta(hours=2))
        actions.withdraw(s, queue, second.id, "Jane Doe")
    finally:
        queue.close()
    assert trail(s) == [
        ("token:desk", "publish", f"release {first.id}"),
        ("cli:jane", "correct", f"release {first.id}"),
        ("cli:jane", "schedule", f"release {second.id}"),
        ("scheduler", "publish", f"release {second.id}"),
        ("Jane Doe", "withdraw", f"release {second.id}"),
    ]
    with session_scope(s) as session:  # a correction names its file and what it planned
        correction = session.scalars(select(AuditEvent).where(AuditEvent.action == "correct"))
        assert correction.one().details == {"source": "fix.md", "notify": False, "notices": 0}
        schedule = session.scalars(select(AuditEvent).where(AuditEvent.action == "schedule"))
        assert datetime.fromisoformat(schedule.one().details["at"]) == at  # when it was for


def test_the_cli_records_imports_and_erasures_and_lists_them(sqlite_settings: Settings) -> None:
    add_topics(sqlite_settings, "climate")
    add_subscribers(sqlite_settings, [("ann@example.com", "Ann", "en", "climate")])

    def run(*args: str) -> str:
        done = invoke_cli(sqlite_settings, *args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("subscribers", "erase", "--email", "ann@example.com")
    listed = run("audit", "--action", "erase")
    assert "erase" in listed and suppression_hash("ann@example.com") in listed
    assert "ann@example.com" not in listed
    ((actor, action, subject),) = trail(sqlite_settings)
    assert actor.startswith("cli:") and action == "erase"
    assert subject == suppression_hash("ann@example.com")
