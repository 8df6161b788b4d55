"""Without beat nothing recovers, so it must not go unnoticed: the sweep keeps a heartbeat
in Redis; a worker logs an error when it is missing; `releases status`, `publish` and the
dashboard say so; `distributor worker --with-beat` runs both on one host."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from distributor.core import broker, heartbeat
from distributor.core.config import Settings
from distributor.core.queue import TaskQueue
from distributor.outbox import sweep
from tests.helpers import TEST_SECRET_KEY, add_topics, make_release
from tests.processes import invoke_cli, running_command, settings_env, wait_until
from tests.redis_db import empty

MISSING = "`distributor beat` is not running"


@pytest.fixture
def fast(sqlite_settings: Settings, redis_url: str) -> Iterator[Settings]:
    """SQLite, the test Redis emptied, and a sweep period of 1 s (the heartbeat: 3 s)."""
    empty(redis_url)
    yield sqlite_settings.model_copy(update={"broker_url": redis_url, "sweep_seconds": 1.0})
    empty(redis_url)


def test_each_sweep_keeps_the_heartbeat_for_three_periods(fast: Settings) -> None:
    before = heartbeat.health(fast)
    assert not before.alive and before.error is None and MISSING in before.describe()
    assert "deferred are never retried" in before.describe()
    queue = TaskQueue(fast)
    try:
        sweep.sweep(fast, queue)
    finally:
        queue.close()
    after = heartbeat.health(fast)
    assert after.alive and "the sweep runs" in after.describe()
    assert after.last is not None and datetime.now(UTC) - after.last < timedelta(seconds=5)
    client = redis.Redis.from_url(fast.broker_url or "")
    assert 0 < client.ttl(heartbeat.KEY) <= 3
    client.delete(heartbeat.KEY)  # what three periods without a sweep leave
    assert not heartbeat.health(fast).alive


def test_redis_out_of_reach_is_said_with_where(fast: Settings) -> None:
    gone = fast.model_copy(update={"broker_url": "redis://:pw-not-shown@127.0.0.1:1/0"})
    found = heartbeat.health(gone)
    assert not found.alive and found.error
    text = found.describe()
    assert "Redis at redis://:***@127.0.0.1:1/0 cannot be reached" in text
    assert "pw-not-shown" not in text


def test_a_worker_without_beat_logs_an_error(fast: Settings, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with running_command(["worker", "-c", "1"], settings_env(fast), log):
        wait_until(lambda: MISSING in log.read_text(), 60, "the worker's error")
        text = log.read_text()
        line = next(line for line in text.splitlines() if MISSING in line)
        assert "ERROR" in line and "no sweep for over 3 s" in line
        assert "start one `distributor beat`" in line
        # Once beat is back, the worker says so.
        with running_command(["beat"], settings_env(fast), tmp_path / "beat.log"):
            wait_until(lambda: "the sweep runs again" in log.read_text(), 60, "recovery")
    assert text.count(MISSING) == 1  # once, then every 10 minutes: not every period


def test_status_and_publish_say_the_sweep_is_missing(fast: Settings) -> None:
    fast = fast.model_copy(update={"sweep_seconds": 30.0})  # outlives a few CLI runs
    add_topics(fast, "climate")
    release = make_release(fast, slug="first")
    published = invoke_cli(fast, "releases", "publish", str(release.id))
    assert published.returncode == 0, published.stderr
    assert f"release {release.id} published, but no sweep for over 90 s" in published.stdout
    assert "the workers are sending it" not in published.stdout
    status = invoke_cli(fast, "releases", "status", str(release.id))
    assert status.returncode == 0 and MISSING in status.stdout
    heartbeat.record(fast, fast.broker_url or "")  # a sweep just ran
    other = make_release(fast, slug="second")
    published = invoke_cli(fast, "releases", "publish", str(other.id))
    assert f"release {other.id} published; the workers are sending it" in published.stdout
    status = invoke_cli(fast, "releases", "status", str(other.id))
    assert "the sweep runs (last" in status.stdout and MISSING not in status.stdout


def test_worker_with_beat_runs_the_sweep_on_the_embedded_redis() -> None:
    """One host: `worker --with-beat` on the embedded Redis (no broker URL) and the prefork
    pool: the sweep runs every period and no worker complains."""
    from distributor.core.config import load_settings
    from distributor.core.db import dispose_engines, upgrade

    root = Path(tempfile.mkdtemp(prefix="dst-", dir="/tmp"))  # a Unix socket path is short
    # A sweep every 2 s (a heartbeat lasting 6 s): often enough to see several quickly, with
    # slack for a loaded machine.
    s = load_settings(data_dir=root / "var", secret_key=TEST_SECRET_KEY, sweep_seconds=2.0)
    try:
        upgrade(s)
        log = root / "worker.log"
        with running_command(["worker", "-c", "2", "--with-beat"], settings_env(s), log):
            wait_until(lambda: "distributor.sweep" in log.read_text() and heartbeat.health(s).alive,
                       60, "a sweep run by the worker's own beat")  # fmt: skip
            wait_until(lambda: log.read_text().count("Task distributor.sweep") >= 5, 60,
                       "sweeps every period")  # fmt: skip
            # Read while it runs: stopping it may log the pool's own complaints.
            text = log.read_text()
        assert MISSING not in text and "Traceback" not in text, text
        # Started with the cyclic collector off, and on again before the pool forked
        # (worker/app.py, distributor.core.collector): without it, the line is not there.
        assert re.search(r"start-up: [\d,]{6,} objects kept out of garbage collection", text), text
    finally:
        broker.stop_embedded(s)
        dispose_engines()
        shutil.rmtree(root, ignore_errors=True)


def test_the_default_lease_and_sweep_recover_within_two_minutes() -> None:
    """A killed worker's rows go out again after the lease plus at most one sweep: the
    defaults keep that within minutes (bench/recovery.py: 86 s median; it was 327-337 s
    with the old 300 s lease)."""
    from distributor.core.config import load_settings

    s = load_settings()
    assert s.lease_seconds + s.sweep_seconds <= 120
    assert s.lease_seconds >= 1.5 * s.smtp_timeout  # renewals between two messages suffice


def test_publish_with_redis_out_of_reach_says_where_and_still_records(fast: Settings) -> None:
    from tests.processes import NO_BROKER

    add_topics(fast, "climate")
    release = make_release(fast, slug="offline")
    result = invoke_cli(fast, "releases", "publish", str(release.id),
                     DISTRIBUTOR_BROKER_URL=NO_BROKER)  # fmt: skip
    assert result.returncode == 0, result.stderr  # published: the sweep sends it later
    assert (
        f"release {release.id} published, but no worker could be woken: Redis at "
        f"{NO_BROKER} cannot be reached" in result.stdout
    )
    assert "it goes out once they can" in result.stdout and "Traceback" not in result.stderr
