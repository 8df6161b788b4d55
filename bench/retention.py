"""Ledger retention (outbox/retention.py): the database's size per 1,000,000 delivery rows
before and after they are folded into counts, and the fold's duration.

    .venv/bin/python bench/retention.py [--rows 1000000] [--runs 3] [--db sqlite,postgresql]

One release, ``--rows`` confirmed subscribers, planned by the ledger's own ``plan`` (one
INSERT … SELECT) and marked sent 40 days ago by one UPDATE (not through the send loop):
this set-up is made once per backend, then copied for each run (SQLite: the file;
PostgreSQL: CREATE DATABASE … TEMPLATE). Each run measures the size, folds with
DISTRIBUTOR_LEDGER_RETENTION_DAYS=30, and measures again: SQLite's file after VACUUM (and
its ledger tables' pages, from dbstat), PostgreSQL's pg_total_relation_size of
``deliveries`` + ``correction_notices`` + ``folded_counts`` after VACUUM FULL (a plain
VACUUM, as autovacuum does, makes the space reusable for new rows but keeps the files).
The fold's wall time and this process's CPU time (time.process_time: on PostgreSQL most
of the work is the server's, not counted there) are printed as median (min–max).
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import functools
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _fixture import PG_SERVER, _pg_admin, populate
from _report import code_state
from sqlalchemy import create_engine, func, select, text, update

from distributor.core.config import Settings, load_settings
from distributor.core.db import dispose_engines, get_engine, session_scope, upgrade
from distributor.core.models import Delivery, Release, utcnow
from distributor.outbox import ledger, retention

NO_BROKER = "redis://127.0.0.1:1/0"  # nothing here enqueues
LEDGER_TABLES = ("deliveries", "correction_notices", "folded_counts")
MB = 1024 * 1024


def _settings(data_dir: Path, url: str | None) -> Settings:
    return load_settings(
        data_dir=data_dir, database_url=url, broker_url=NO_BROKER, ledger_retention_days=30
    )


def build(settings: Settings, rows: int) -> float:
    """The set-up: ``rows`` subscribers, one release planned and sent 40 days ago; returns
    the seconds the plan and the mark-sent took."""
    data = populate(settings, rows)
    sent_at = utcnow() - timedelta(days=40)
    started = time.perf_counter()
    with session_scope(settings) as session:
        release = session.get_one(Release, data.release_id)
        release.state, release.published_at = "published", sent_at
        release.date = sent_at
        session.flush()
        ledger.plan(session, release)
        session.execute(
            update(Delivery)
            .where(Delivery.release_id == release.id)
            .values(
                status="sent",
                attempts=1,
                smtp_code=250,
                sent_at=sent_at,
                created_at=sent_at,
                next_attempt_at=sent_at,
            )
        )
        release.planned_at = sent_at
    seconds = time.perf_counter() - started
    engine = get_engine(settings)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM FULL ANALYZE"))
    dispose_engines()
    return seconds


def sqlite_size(path: Path) -> tuple[int, int]:
    """The file's size after VACUUM, and its ledger tables' and their indexes' (dbstat)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        names = ",".join(f"'{t}'" for t in LEDGER_TABLES)
        tables = conn.execute(
            f"SELECT coalesce(sum(d.pgsize), 0) FROM dbstat d JOIN sqlite_master m "
            f"ON m.name = d.name WHERE m.tbl_name IN ({names})"
        ).fetchone()[0]
    finally:
        conn.close()
    return path.stat().st_size, int(tables)


def pg_size(url: str) -> tuple[int, int]:
    """The database's size and its ledger tables' (with indexes), after VACUUM FULL."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("VACUUM FULL"))
            total = conn.scalar(text("SELECT pg_database_size(current_database())"))
            tables = sum(
                int(conn.scalar(text(f"SELECT pg_total_relation_size('{t}')")) or 0)
                for t in LEDGER_TABLES
            )
    finally:
        engine.dispose()
    return int(total or 0), tables


def run(backend: str, rows: int, runs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="distributor-bench-retention-"))
    template = f"distributor_bench_retention_{os.getpid()}"
    try:
        url = None
        if backend == "postgresql":
            _pg_admin(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
            _pg_admin(f'CREATE DATABASE "{template}"')
            url = f"{PG_SERVER}/{template}"
        base = _settings(tmp / "template", url)
        upgrade(base)
        started = time.perf_counter()
        setup = build(base, rows)
        print(f"{backend}: set-up {time.perf_counter() - started:.0f} s "
              f"(plan + mark sent {setup:.1f} s)", flush=True)  # fmt: skip
        figures: dict[str, list[float]] = {k: [] for k in ("before", "after", "tb", "ta", "w", "c")}
        for n in range(runs):
            if backend == "sqlite":
                copy = tmp / f"run{n}"
                shutil.copytree(tmp / "template", copy)
                s = _settings(copy, None)
                measure: Callable[[], tuple[int, int]] = functools.partial(
                    sqlite_size, copy / "distributor.db"
                )
            else:
                name = f"{template}_{n}"
                _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
                s = _settings(tmp / f"run{n}", f"{PG_SERVER}/{name}")
                measure = functools.partial(pg_size, s.effective_database_url)
            before, tables_before = measure()
            wall, cpu = time.perf_counter(), time.process_time()
            report = retention.fold(s)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert report.deliveries and sum(report.deliveries.values()) == rows, report
            with session_scope(s) as session:
                assert ledger.counts(session, next(iter(report.deliveries)))["sent"] == rows
                assert session.scalar(select(func.count()).select_from(Delivery)) == 0
            dispose_engines()
            after, tables_after = measure()
            print(f"  run {n + 1}: database {before / MB:.1f} -> {after / MB:.1f} MB, ledger "
                  f"tables {tables_before / MB:.1f} -> {tables_after / MB:.3f} MB; fold "
                  f"{wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)  # fmt: skip
            for key, value in zip(
                figures, (before, after, tables_before, tables_after, wall, cpu), strict=True
            ):
                figures[key].append(value)
            if backend == "postgresql":
                _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

        def mmm(key: str, scale: float = 1.0, fmt: str = ".1f") -> str:
            values = [v / scale for v in figures[key]]
            return (f"{statistics.median(values):{fmt}} ({min(values):{fmt}}–"
                    f"{max(values):{fmt}})")  # fmt: skip

        per = 1_000_000 / rows
        print(f"{backend}, {rows:,} rows, median (min–max) of {runs}:")
        print(f"  database per 1,000,000 rows: before {mmm('before', MB / per)} MB, "
              f"after {mmm('after', MB / per)} MB")  # fmt: skip
        print(f"  ledger tables per 1,000,000 rows: before {mmm('tb', MB / per)} MB; "
              f"after (one release's counts) {mmm('ta', 1024, '.0f')} KB")  # fmt: skip
        print(f"  fold: {mmm('w')} s wall, {mmm('c')} s CPU (this process), "
              f"{rows / statistics.median(figures['w']):,.0f} rows/s")  # fmt: skip
    finally:
        dispose_engines()
        if backend == "postgresql":
            _pg_admin(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    print(f"code {code_state()}, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    for backend in args.db.split(","):
        run(backend, args.rows, args.runs)


if __name__ == "__main__":
    main()
