"""Ledger retention (DISTRIBUTOR_LEDGER_RETENTION_DAYS): the rows of a release whose sending
ended long ago are folded into counts, and every reader of counts — the status, the report,
the statistics, the dashboard, /metrics — says the same before and after. On SQLite and
PostgreSQL, with real crashes (a failpoint's SIGKILL) and real concurrent folds."""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, inspect, select

from distributor.actions.audience import erase
from distributor.core.config import FOLD_SECONDS, Settings
from distributor.core.db import alembic_config, get_engine, session_scope, upgrade
from distributor.core.models import (
    CorrectionNotice,
    Delivery,
    FoldedCount,
    Release,
    Subscriber,
    Topic,
    utcnow,
)
from distributor.core.queue import TaskQueue, celery_config
from distributor.outbox import notices, retention, sending
from distributor.reporting.dashboard import release_progress, releases_overview
from distributor.reporting.report import delivery_lines
from distributor.reporting.statistics import release_statistics
from distributor.reporting.status import release_status
from distributor.web import create_app
from tests.helpers import new_token, scrape
from tests.processes import NO_BROKER, invoke_cli, run_cli, settings_env

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Ledgers:
    old: int  # published 40 days ago, every row final: folded
    recent: int  # published 2 days ago, every row final: kept (within retention)
    open_: int  # published 40 days ago, one row still deferred: kept
    noticed: int  # published 40 days ago, a correction notice still pending: kept


def _published_release(slug: str, published: datetime, **kw: Any) -> Release:
    return Release(slug=slug, title=f"Release {slug}", language="en", body_html="<p>x</p>",
                   body_text="x", date=published, state="published", published_at=published,
                   planned_at=published, **kw)  # fmt: skip


def build(settings: Settings) -> Ledgers:
    """Four releases and their rows, in every final status, with bounces, advance copies,
    unsubscriptions within and after the statistics' window, and notices."""
    now = utcnow().replace(microsecond=0)
    long_ago, lately = now - 40 * DAY, now - 2 * DAY
    with session_scope(settings) as session:
        people = [
            Subscriber(email=f"p{i}@example.com", language="en", status="confirmed")
            for i in range(10)
        ]
        people[7].status, people[7].unsubscribed_at = "unsubscribed", long_ago + 3 * DAY
        people[8].status, people[8].unsubscribed_at = "unsubscribed", long_ago + 20 * DAY
        old = _published_release("old", long_ago, advance_at=long_ago - DAY)
        recent, open_ = _published_release("recent", lately), _published_release("open", long_ago)
        noticed = _published_release("noticed", long_ago, corrected_at=long_ago + DAY)
        session.add_all([*people, old, recent, open_, noticed])
        session.flush()

        def row(release: Release, who: int, status: str, at: datetime, **kw: Any) -> Delivery:
            sent = at if status == "sent" else None
            return Delivery(release_id=release.id, subscriber_id=people[who].id, status=status,
                            attempts=1, created_at=at - timedelta(minutes=1),
                            next_attempt_at=at - timedelta(minutes=1), sent_at=sent,
                            smtp_code=250 if sent else 550, **kw)  # fmt: skip

        t = long_ago + timedelta(seconds=5)
        rows = [
            row(old, 0, "sent", t - DAY, advance=True),  # an advance copy, a day early
            row(old, 1, "sent", t),
            row(old, 2, "sent", t + timedelta(seconds=30), bounce="hard", bounced_at=t + DAY),
            row(old, 3, "sent", t + timedelta(seconds=40), bounce="soft", bounced_at=t + DAY),
            row(old, 4, "failed", t + timedelta(seconds=50)),
            row(old, 5, "cancelled", t, advance=True),
            row(old, 7, "sent", t + timedelta(seconds=60)),  # left 3 days later
            row(old, 8, "sent", t + timedelta(seconds=70)),  # left 20 days later
            row(recent, 1, "sent", lately + timedelta(seconds=5)),
            row(recent, 2, "failed", lately + timedelta(seconds=9)),
            row(open_, 1, "sent", t),
            row(open_, 2, "deferred", t),
            row(noticed, 1, "sent", t),
            row(noticed, 2, "sent", t),
        ]
        session.add_all(rows)
        session.flush()
        by = {(d.release_id, d.subscriber_id): d for d in rows}

        def notice(release: Release, who: int, status: str) -> CorrectionNotice:
            d, at = by[(release.id, people[who].id)], long_ago + DAY
            return CorrectionNotice(release_id=release.id, subscriber_id=people[who].id,
                                    delivery_id=d.id, corrected_at=at, status=status,
                                    created_at=at, next_attempt_at=at,
                                    sent_at=at if status == "sent" else None)  # fmt: skip

        session.add_all([notice(old, 1, "sent"), notice(old, 2, "failed")])
        session.add_all([notice(noticed, 1, "sent"), notice(noticed, 2, "pending")])
    return Ledgers(old.id, recent.id, open_.id, noticed.id)


def everything(settings: Settings, release_ids: list[int]) -> dict[str, Any]:
    """What every reader of counts says about these releases, and the whole record."""
    seen: dict[str, Any] = {}
    with session_scope(settings) as session:
        for rid in release_ids:
            st = release_status(session, rid)
            seen[f"status {rid}"] = (st.counts, st.advance_counts, st.first_sent_at,
                                     st.last_sent_at, st.hard_bounces, st.soft_bounces,
                                     st.unsubscribed_since, st.time_to_send)  # fmt: skip
            stats = release_statistics(session, rid, settings.timezone)
            seen[f"statistics {rid}"] = (stats.delivered, stats.deferred, stats.bounced,
                                         stats.unsubscribed)  # fmt: skip
            progress = release_progress(session, rid)
            assert progress is not None
            seen[f"progress {rid}"] = (progress.progress.counts, progress.sending)
            seen[f"notices {rid}"] = notices.counts(session, rid)
        seen["overview"] = [(r.id, r.progress.counts) for r in releases_overview(session)]
    samples = scrape(settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"}))
    seen["metrics"] = {
        key: n for key, n in samples.items()
        if key[0] in ("distributor_messages_total", "distributor_bounces_total")
    }  # fmt: skip
    return seen


def live_rows(settings: Settings, release_id: int) -> int:
    with session_scope(settings) as session:
        return int(
            session.scalar(select(func.count()).where(Delivery.release_id == release_id)) or 0
        )


def retaining(settings: Settings, days: int = 30) -> Settings:
    return settings.model_copy(update={"ledger_retention_days": days})


def test_folding_keeps_every_count_and_folds_only_what_ended(settings: Settings) -> None:
    ledgers = build(settings)
    ids = [ledgers.old, ledgers.recent, ledgers.open_, ledgers.noticed]
    before = everything(settings, ids)
    # The figures are the rows' (a check of the check: a fold that lost them would show).
    assert before[f"status {ledgers.old}"][0] == {
        "pending": 0, "deferred": 0, "sent": 6, "failed": 1, "cancelled": 1
    }  # fmt: skip
    assert before[f"statistics {ledgers.old}"] == (6, 0, 2, 1)  # one left within 7 days

    report = retention.fold(retaining(settings))

    assert report.deliveries == {ledgers.old: 8}
    assert report.notices == {ledgers.old: 2}
    assert everything(settings, ids) == before
    assert live_rows(settings, ledgers.old) == 0
    # Within the retention period, a row still open, a notice still to send: all kept.
    assert live_rows(settings, ledgers.recent) == 2
    assert live_rows(settings, ledgers.open_) == 2
    assert live_rows(settings, ledgers.noticed) == 2
    # Idempotent: nothing is left to fold, and nothing is counted twice.
    assert retention.fold(retaining(settings)).rows == 0
    assert everything(settings, ids) == before


def test_retention_unset_folds_nothing(settings: Settings) -> None:
    ledgers = build(settings)
    report = retention.fold(settings)  # the default: 0, keep every row
    assert report.cutoff is None and report.rows == 0
    assert live_rows(settings, ledgers.old) == 8
    with session_scope(settings) as session:
        assert session.scalar(select(func.count()).select_from(FoldedCount)) == 0
    done = invoke_cli(settings, "ledger", "fold")
    assert done.returncode == 0, done.stderr
    assert "every ledger row is kept" in done.stdout
    assert live_rows(settings, ledgers.old) == 8


def test_the_dry_run_counts_and_changes_nothing(settings: Settings) -> None:
    ledgers = build(settings)
    done = invoke_cli(
        settings, "ledger", "fold", "--dry-run", DISTRIBUTOR_LEDGER_RETENTION_DAYS="30"
    )
    assert done.returncode == 0, done.stderr
    assert f"release {ledgers.old}: would fold 8 delivery row(s), 2 notice row(s)" in done.stdout
    assert live_rows(settings, ledgers.old) == 8
    done = invoke_cli(settings, "ledger", "fold", DISTRIBUTOR_LEDGER_RETENTION_DAYS="30")
    assert f"release {ledgers.old}: folded 8 delivery row(s), 2 notice row(s)" in done.stdout
    assert live_rows(settings, ledgers.old) == 0


@pytest.mark.parametrize("value", ["-1", "soon", "1.5"])
def test_a_bad_retention_is_a_configuration_error(settings: Settings, value: str) -> None:
    done = invoke_cli(settings, "ledger", "fold", DISTRIBUTOR_LEDGER_RETENTION_DAYS=value)
    assert done.returncode == 78
    assert "DISTRIBUTOR_LEDGER_RETENTION_DAYS must be a whole number of days" in done.stderr
    assert repr(value) in done.stderr


def test_the_report_says_the_rows_were_folded_and_keeps_the_totals(settings: Settings) -> None:
    ledgers = build(settings)
    retention.fold(retaining(settings))
    today = f"{utcnow():%Y-%m-%d}"

    summary = invoke_cli(settings, "releases", "report", str(ledgers.old))
    assert summary.returncode == 0, summary.stderr
    text = " ".join(summary.stdout.split())
    assert f"per-recipient rows of 8 deliveries were folded on {today}" in text
    assert "sent 6" in text and "total 8" in text
    assert "bounces: 1 hard, 1 soft" in text

    csv = invoke_cli(settings, "releases", "report", str(ledgers.old), "--csv")
    assert csv.returncode == 0, csv.stderr
    assert csv.stdout.splitlines() == [csv.stdout.splitlines()[0]]  # the header, no rows
    assert f"folded on {today}" in " ".join(csv.stderr.split())
    assert list(delivery_lines(settings, ledgers.old)) == []

    status = invoke_cli(settings, "releases", "status", str(ledgers.old))
    assert f"8 of these rows were folded into counts on {today}" in status.stdout

    token = new_token(settings, "press-office", ["releases"])
    with TestClient(create_app(settings)) as client:
        answer = client.get(
            f"/api/releases/{ledgers.old}/deliveries.csv",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 200
    assert answer.text.splitlines() == [csv.stdout.splitlines()[0]]
    assert f"folded on {today}" in answer.headers["x-distributor-folded"]


def test_a_crash_between_chunks_neither_loses_nor_double_counts(settings: Settings) -> None:
    """SIGKILL inside the second chunk's transaction (the failpoint): the first chunk is
    folded for good, the second rolled back whole; the next fold finishes the job."""
    ledgers = build(settings)
    extra = retention.FOLD_CHUNK + 500  # enough rows for two chunks
    long_ago = utcnow() - 40 * DAY
    engine = get_engine(settings)
    with engine.begin() as conn:
        first = conn.scalar(select(func.max(Subscriber.id))) or 0
        conn.execute(insert(Subscriber), [
            {"email": f"bulk{i}@example.com", "language": "en", "status": "confirmed",
             "name": "", "link_nonce": None} for i in range(extra)
        ])  # fmt: skip
        conn.execute(insert(Delivery), [
            {"release_id": ledgers.old, "subscriber_id": first + 1 + i, "status": "sent",
             "attempts": 1, "created_at": long_ago, "next_attempt_at": long_ago,
             "sent_at": long_ago, "last_error": ""} for i in range(extra)
        ])  # fmt: skip
    before = everything(settings, [ledgers.old])

    killed = run_cli(retaining(settings), "ledger", "fold", DISTRIBUTOR_FAILPOINTS="fold-chunk@2")
    assert killed.returncode == -9, killed.stderr
    left = live_rows(settings, ledgers.old)
    assert left == extra + 8 - retention.FOLD_CHUNK  # one chunk folded, the next not at all
    assert everything(settings, [ledgers.old]) == before

    done = run_cli(retaining(settings), "ledger", "fold")
    assert done.returncode == 0, done.stderr
    assert live_rows(settings, ledgers.old) == 0
    assert everything(settings, [ledgers.old]) == before


def test_two_concurrent_folds_count_each_row_once(settings: Settings) -> None:
    ledgers = build(settings)
    long_ago = utcnow() - 40 * DAY
    with get_engine(settings).begin() as conn:
        first = conn.scalar(select(func.max(Subscriber.id))) or 0
        conn.execute(insert(Subscriber), [
            {"email": f"bulk{i}@example.com", "language": "en", "status": "confirmed",
             "name": "", "link_nonce": None} for i in range(2000)
        ])  # fmt: skip
        conn.execute(insert(Delivery), [
            {"release_id": ledgers.old, "subscriber_id": first + 1 + i,
             "status": ("sent", "failed", "cancelled")[i % 3], "attempts": 1,
             "created_at": long_ago, "next_attempt_at": long_ago,
             "sent_at": long_ago if i % 3 == 0 else None, "last_error": ""}
            for i in range(2000)
        ])  # fmt: skip
    before = everything(settings, [ledgers.old])
    start = threading.Barrier(2)
    reports: list[retention.FoldReport] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            reports.append(retention.fold(retaining(settings), chunk=100))
        except BaseException as exc:  # shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert sum(r.deliveries.get(ledgers.old, 0) for r in reports) == 2008
    assert live_rows(settings, ledgers.old) == 0
    assert everything(settings, [ledgers.old]) == before


def test_erasure_still_works_once_rows_are_folded(settings: Settings) -> None:
    ledgers = build(settings)
    retention.fold(retaining(settings))
    before = everything(settings, [ledgers.old, ledgers.recent])
    erase(settings, "p1@example.com", "test")  # had rows in the old and the recent release
    with session_scope(settings) as session:
        assert (
            session.scalar(select(Subscriber).where(Subscriber.email == "p1@example.com")) is None
        )
    after = everything(settings, [ledgers.old, ledgers.recent])
    # The folded counts name nobody: they stay; the live rows of the recent release go.
    assert after[f"status {ledgers.old}"] == before[f"status {ledgers.old}"]
    assert after[f"status {ledgers.recent}"][0]["sent"] == 0


def test_a_folded_release_is_never_planned_again(settings: Settings) -> None:
    """Planning finds a release's recipients by their rows: once folded, a wake-up to plan
    it again (a task delivered late, a republication) must not send it to them all again."""
    ledgers = build(settings)
    with session_scope(settings) as session:
        release = session.get_one(Release, ledgers.old)
        release.topics.append(Topic(slug="climate", names={"en": "Climate"}))
        # Those who received it and are still confirmed: planning again finds nobody new.
        received = select(Delivery.subscriber_id).where(Delivery.release_id == ledgers.old)
        confirmed = Subscriber.status == "confirmed"
        for who in session.scalars(
            select(Subscriber).where(confirmed, Subscriber.id.in_(received))
        ):
            who.topics.append(release.topics[0])
    queue = TaskQueue(settings.model_copy(update={"broker_url": NO_BROKER}))
    try:
        assert retention.fold(retaining(settings)).deliveries == {ledgers.old: 8}
        before = everything(settings, [ledgers.old])
        sending.distribute_release(settings, queue, ledgers.old)
    finally:
        queue.close()
    assert live_rows(settings, ledgers.old) == 0
    assert everything(settings, [ledgers.old]) == before


def test_beat_runs_the_workers_fold_every_hour(settings: Settings) -> None:
    """Beat's entry names the worker's task, hourly; the task folds as the command does."""
    quiet = settings.model_copy(update={"broker_url": NO_BROKER})  # no embedded Redis started
    entry = celery_config(quiet)["beat_schedule"]["ledger_fold"]
    assert entry == {"task": "distributor.ledger_fold", "schedule": FOLD_SECONDS}
    assert FOLD_SECONDS == 3600
    ledgers = build(settings)
    env = settings_env(retaining(settings), DISTRIBUTOR_BROKER_URL=NO_BROKER)
    task = "from worker.tasks import ledger_fold; print(ledger_fold())"
    done = subprocess.run(
        [sys.executable, "-c", task], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "10"  # 8 deliveries and their 2 notices
    assert live_rows(settings, ledgers.old) == 0


def test_the_migration_adds_and_removes_the_folded_counts(settings: Settings) -> None:
    """0026 down and up again, on SQLite and PostgreSQL: the table and the index that
    finds a delivery's notices go and come back."""
    config = alembic_config(settings)

    def present() -> tuple[bool, bool]:
        found = inspect(get_engine(settings))
        indexes = {i["name"] for i in found.get_indexes("correction_notices")}
        return (
            "folded_counts" in found.get_table_names(),
            "ix_correction_notices_delivery" in indexes,
        )

    assert present() == (True, True)
    try:
        command.downgrade(config, "0025")
        assert present() == (False, False)
    finally:
        upgrade(settings)
    assert present() == (True, True)
    ledgers = build(settings)
    assert retention.fold(retaining(settings)).deliveries == {ledgers.old: 8}
