"""A release to 1,000,000 subscribers, read back: how long the planning takes, and whether
what a press office and a monitor ask of it answers in under a second (issue 16).

    .venv/bin/python bench/at_scale.py [--subscribers 1000000] [--runs 3] [--db postgresql]

Set-up (not timed): ``--subscribers`` confirmed followers of the sample release's topic
(bench/_fixture.py's bulk insert) and the release, published. Then, timed:

- **planning**: ``distribute_release`` as a worker runs it (a plan per range of subscriber
  ids, a wake-up per batch, here into a queue that keeps nothing), wall time, and this
  process's peak RSS;
- the ledger is then marked as a send that just ended: every row sent within the last hour,
  one in a hundred refused for good (550) and its subscriber bounced;
- **reads**, each ``--runs`` times, median (min–max): the whole ``distributor releases
  status ID`` and ``releases report ID --csv --out FILE`` processes (the venv's command); and
  in this process the dashboard's queries (``releases_overview``, the subscribers table, the
  chart of the last 24 hours, the site statistics), one release's progress (what the
  dashboard polls during a send), and the ``/metrics`` exposition.

Needs PostgreSQL at 127.0.0.1:5432 with trust auth (creates and drops its own
``distributor_bench_*`` database). Prints figures; asserts only that the data is what it
set up.
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _fixture import broker_url, fresh_database, populate
from _report import code_state
from sqlalchemy import text

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import utcnow
from distributor.outbox import sending
from distributor.releases.lifecycle import mark_published
from distributor.reporting import metrics
from distributor.reporting.dashboard import (
    release_progress,
    releases_overview,
    sends_over_time,
    subscribers_by_topic_language,
)
from distributor.reporting.statistics import site_statistics
from tests.processes import settings_env

GOAL_READ_S = 1.0
GOAL_PLAN_S = 15.0
DISTRIBUTOR = str(Path(sys.executable).with_name("distributor"))


class _NoQueue:
    """A queue that keeps nothing: planning's wake-ups are not what is timed."""

    sent = 0

    def send(self, *_args: object, **_kwargs: object) -> None:
        self.sent += 1


def mark_sent(settings: Settings, release_id: int) -> None:
    """Every row sent within the last hour (by id), one in a hundred refused for good."""
    start = utcnow() - timedelta(hours=1)
    postgresql = settings.effective_database_url.startswith("postgresql")
    spread = "make_interval(secs => id % 3600)" if postgresql else None
    with session_scope(settings) as session:
        if spread is None:  # SQLite: its text timestamps; the same hour, coarser
            session.execute(
                text(
                    "UPDATE deliveries SET status = 'sent', attempts = 1, smtp_code = 250, "
                    "sent_at = :at WHERE release_id = :r"
                ),
                {"at": start.replace(tzinfo=None).isoformat(" "), "r": release_id},
            )
        else:
            session.execute(
                text(
                    "UPDATE deliveries SET status = 'sent', attempts = 1, smtp_code = 250, "
                    f"sent_at = :at + {spread} WHERE release_id = :r"
                ),
                {"at": start, "r": release_id},
            )
        session.execute(
            text(
                "UPDATE deliveries SET status = 'failed', sent_at = NULL, smtp_code = 550, "
                "last_error = '5.1.1 no such user' WHERE release_id = :r AND id % 100 = 0"
            ),
            {"r": release_id},
        )
        session.execute(
            text(
                "UPDATE subscribers SET status = 'bounced' WHERE id IN "
                "(SELECT subscriber_id FROM deliveries WHERE release_id = :r AND status = 'failed')"
            ),
            {"r": release_id},
        )
    if postgresql:
        with session_scope(settings) as session:
            session.execute(text("ANALYZE"))


def timed(runs: int, what: Callable[[], object]) -> list[float]:
    """``what`` run ``runs`` times after one to warm up; the wall seconds of each run."""
    what()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        what()
        seconds.append(time.perf_counter() - started)
    return seconds


def command(settings: Settings, *args: str) -> Callable[[], object]:
    env = settings_env(settings, DISTRIBUTOR_BROKER_URL=broker_url())

    def run() -> object:
        done = subprocess.run([DISTRIBUTOR, *args], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done

    return run


def fmt(seconds: list[float], goal: float | None = None) -> str:
    median = statistics.median(seconds)
    mark = "" if goal is None else (" ✓" if median < goal else " ✗")
    return f"{median:.3f} s ({min(seconds):.3f}–{max(seconds):.3f}){mark}"


def run(backend: str, subscribers: int, runs: int) -> list[str]:
    out: list[str] = []
    with fresh_database(backend, "smtp://127.0.0.1:1", "atscale") as settings:
        data = populate(settings, subscribers)
        with session_scope(settings) as session:
            mark_published(session, data.release_id)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        wall, cpu = time.perf_counter(), time.process_time()
        batches = sending.distribute_release(settings, _NoQueue(), data.release_id)  # type: ignore[arg-type]
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out.append(
            f"{backend}, {subscribers:,} subscribers: planning {wall:.1f} s wall "
            f"({'✓' if wall < GOAL_PLAN_S else '✗'} goal < {GOAL_PLAN_S:.0f} s), {cpu:.1f} s CPU "
            f"in this process, {batches:,} batches woken; peak RSS {rss:.0f} MB "
            f"({rss_before:.0f} MB before)"
        )
        mark_sent(settings, data.release_id)
        rid = str(data.release_id)
        csv = Path(tempfile.mkdtemp(prefix="distributor-bench-scale-")) / "report.csv"
        try:
            reads: list[tuple[str, Callable[[], object]]] = [
                ("distributor releases status ID", command(settings, "releases", "status", rid)),
                (
                    "distributor releases report ID --csv --out FILE",
                    command(settings, "releases", "report", rid, "--csv", "--out", str(csv)),
                ),
            ]

            def dashboard() -> object:
                with session_scope(settings) as session:
                    releases_overview(session, 20)
                    subscribers_by_topic_language(session, settings.languages, "en")
                    sends_over_time(session, utcnow(), 24)
                    return site_statistics(session, settings.timezone, 30)

            def progress() -> object:
                with session_scope(settings) as session:
                    return release_progress(session, data.release_id)

            registry = metrics.registry(settings)
            reads += [
                ("the dashboard's queries (in process)", dashboard),
                ("one release's progress (in process)", progress),
                ("/metrics exposition (in process)", lambda: metrics.exposition(registry)),
            ]
            for label, what in reads:
                out.append(f"  {label}: {fmt(timed(runs, what), GOAL_READ_S)}")
            lines = sum(1 for _ in csv.open()) - 1
            out.append(f"  (the CSV has {lines:,} rows)")
        finally:
            shutil.rmtree(csv.parent, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", default="postgresql", help="postgresql, sqlite, or both")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(f"code under test: {code_state()}", flush=True)
    for backend in backends:
        started = time.perf_counter()
        lines = run(backend, args.subscribers, args.runs)
        print("\n".join(lines))
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"  ({time.perf_counter() - started:.0f} s with the set-up; load average {load})")


if __name__ == "__main__":
    main()
