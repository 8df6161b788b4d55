"""Data sets for bench/pipeline.py: a fresh SQLite data directory or PostgreSQL database per run,
migrated, with two topics, N confirmed English subscribers of one of them, and the English
sample release (a draft, ready to publish).
"""

from __future__ import annotations

import atexit
import functools
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, create_engine, insert, text

from distributor.core.config import Settings, environment_for, load_settings
from distributor.core.db import dispose_engines, get_engine, session_scope, upgrade
from distributor.core.models import DigestMode, Subscriber, SubscriberStatus, new_nonce, utcnow
from distributor.releases.lifecycle import create_release
from distributor.releases.source import parse_release
from distributor.releases.topics import add_topic

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.redis_db
from tests.redis_db import claim_database

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
PG_ADMIN_URL = PG_SERVER + "/postgres"  # the maintenance database, only to create/drop ours
# `distributor worker` and `serve` refuse a weak key: a strong one, new for each run.
BENCH_SECRET_KEY = secrets.token_urlsafe(32)
SAMPLE = (
    Path(__file__).resolve().parent.parent / "distributor" / "samples" / "climate-agreement.en.md"
)


@functools.cache
def broker_url() -> str:
    """This run's own Redis database, claimed on first use and given back at exit (the
    claim of tests/redis_db.py: a test run or another benchmark on this host never uses it,
    and emptying it never touches theirs)."""
    claim = claim_database()
    atexit.register(claim.release)
    return str(claim.url)


@dataclass(frozen=True)
class Dataset:
    settings: Settings
    release_id: int
    subscribers: int


def settings_for(data_dir: Path, database_url: str | None, smtp_url: str) -> Settings:
    return load_settings(
        data_dir=data_dir,
        database_url=database_url,
        broker_url=broker_url(),
        smtp_url=smtp_url,
        site_url="https://news.example.org",
        secret_key=BENCH_SECRET_KEY,
        sender="Agency Press Office <press@example.org>",
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a subprocess the same Settings."""
    return environment_for(settings, os.environ)


def _pg_admin(sql: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()


@contextmanager
def fresh_database(backend: str, smtp_url: str, tag: str) -> Iterator[Settings]:
    """Settings for a new, empty, migrated database (SQLite in a temp data dir, or a new
    PostgreSQL database ``distributor_bench_<pid>_<tag>``), removed on the way out."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"distributor-bench-{tag}-"))
    pg_name = f"distributor_bench_{os.getpid()}_{tag}" if backend == "postgresql" else None
    try:
        url = None
        if pg_name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            _pg_admin(f'CREATE DATABASE "{pg_name}"')
            url = f"{PG_SERVER}/{pg_name}"
        settings = settings_for(data_dir / "var", url, smtp_url)
        upgrade(settings)
        yield settings
    finally:
        dispose_engines()
        if pg_name:
            _pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        shutil.rmtree(data_dir, ignore_errors=True)


def _subscriber_rows(start: int, stop: int) -> Iterator[dict[str, object]]:
    """The bench's confirmed English subscribers ``start`` to ``stop`` (exclusive), every
    column a confirmed CSV import sets; the others keep their defaults."""
    now = utcnow()
    for i in range(start, stop):
        yield {
            "email": f"journalist{i}@newsroom{i % 97}.example.com",
            # one name in ten is not ASCII: an RFC 2047 encoded-word in To
            "name": f"Jérôme Journalist {i}" if i % 10 == 0 else f"Journalist {i}",
            "language": "en",
            "status": SubscriberStatus.CONFIRMED.value,
            "consent_source": "bench",
            "created_at": now,
            "confirmed_at": now,
        }


def _copy_subscribers(conn: Connection, subscribers: int) -> None:
    """:func:`_subscriber_rows` into PostgreSQL with COPY, the columns whose defaults are
    Python's (SQLAlchemy ``default=``) given here, as the ORM would have given them."""
    defaults = {
        "consent_ip": "",
        "consent_user_agent": "",
        "consent_form_version": "",
        "soft_bounces": 0,
        "digest": DigestMode.IMMEDIATE.value,
    }
    columns = [*next(_subscriber_rows(0, 1)), *defaults, "link_nonce"]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY subscribers ({', '.join(columns)}) FROM STDIN") as copy:
        for row in _subscriber_rows(0, subscribers):
            values = [_naive_utc(v) for v in row.values()]
            copy.write_row([*values, *defaults.values(), new_nonce()])


def _naive_utc(value: object) -> object:
    """What UTCDateTime stores for an aware datetime (naive UTC); anything else as it is."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def populate(settings: Settings, subscribers: int) -> Dataset:
    """Two topics, ``subscribers`` confirmed English followers of "climate", and the sample
    release (filed under climate and international) as a draft."""
    with session_scope(settings) as session:
        add_topic(session, "climate", {"en": "Climate", "fr": "Climat"})
        add_topic(session, "international", {"en": "International"})
    # A bulk insert instead of audience.subscribers.import_csv (which validates every address
    # with email-validator and builds ORM objects: minutes for 100,000 rows): COPY on
    # PostgreSQL (1,000,000 rows in seconds), a Core executemany on SQLite. This is benchmark
    # set-up only; the rows are what a confirmed CSV import would store.
    engine = get_engine(settings)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            _copy_subscribers(conn, subscribers)
        else:
            chunk = 10_000
            for start in range(0, subscribers, chunk):
                rows = list(_subscriber_rows(start, min(start + chunk, subscribers)))
                conn.execute(insert(Subscriber), rows)
        conn.execute(
            text(
                "INSERT INTO subscriptions (subscriber_id, topic_id) "
                "SELECT s.id, t.id FROM subscribers s, topics t WHERE t.slug = 'climate'"
            )
        )
    if engine.dialect.name == "postgresql":
        # What autovacuum would have done by the time a real list reached this size.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    draft = parse_release(SAMPLE.read_text(), str(SAMPLE), settings)
    with session_scope(settings) as session:
        release = create_release(session, settings, draft)
    return Dataset(settings, release.id, subscribers)
