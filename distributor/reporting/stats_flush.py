"""Moving the fetch counts from Redis (``reporting.counting``) into ``release_stats``.

Run every ``FLUSH_SECONDS`` (``distributor.flush_statistics``, which beat schedules and a
worker runs). First, with ``DISTRIBUTOR_STATISTICS_LOG``, the new lines of nginx's log are
counted into the hashes (``reporting.stats_log``). Then each hour's hash,
the current one included, is renamed to ``distributor:stats-flushing:YYYYMMDDHH:TOKEN``
(atomic: the web processes' next counts start a new hash, and of two flushes only one
gets it), read, added to the table (``count = count + new``) in the same transaction that
records TOKEN in ``release_stats_batches``, then deleted. A flushing key found at the
start of a run was left by a flush that stopped half way: it is added if its token is not
recorded, else only deleted — so no count is ever added twice, nor lost while Redis keeps
it (``counting.KEEP_SECONDS``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import redis
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from distributor.core.broker import broker_url, redis_client
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import MAX_SUBJECT, PublicStat, StatBatch, utcnow
from distributor.reporting.counting import KEEP_SECONDS, KEY_PREFIX, KINDS
from distributor.reporting.stats_log import read_statistics_log

log = logging.getLogger(__name__)

FLUSH_SECONDS: Final = 60.0
FLUSHING_PREFIX: Final = "distributor:stats-flushing:"  # + YYYYMMDDHH:TOKEN
ROWS_PER_STATEMENT: Final = 500  # 4 bound values a row: under SQLite's limit of variables
REDIS_TIMEOUT: Final = 5.0


def flush_statistics(settings: Settings) -> int:
    """Add every count waiting in Redis to ``release_stats``; returns the fetches added.
    Safe to run twice or concurrently (see the module's docstring)."""
    client = redis_client(broker_url(settings), timeout=REDIS_TIMEOUT)
    added = 0
    try:
        if settings.statistics and settings.statistics_log is not None:
            # nginx's answers first: they join this very flush.
            read_statistics_log(client, settings.statistics_log)
        for key in list(client.scan_iter(match=FLUSHING_PREFIX + "*", count=1000)):
            added += _move(settings, client, key.decode())
        for key in list(client.scan_iter(match=KEY_PREFIX + "*", count=1000)):
            hour = key.decode().removeprefix(KEY_PREFIX)
            target = f"{FLUSHING_PREFIX}{hour}:{uuid.uuid4().hex}"
            try:
                client.rename(key, target)
            except redis.ResponseError:  # gone meanwhile: another flush took it
                continue
            added += _move(settings, client, target)
    finally:
        client.close()
    with session_scope(settings) as session:  # older than any key Redis may still hold
        cutoff = utcnow() - timedelta(seconds=2 * KEEP_SECONDS)
        session.execute(delete(StatBatch).where(StatBatch.flushed_at < cutoff))
    return added


def _move(settings: Settings, client: redis.Redis, key: str) -> int:
    """Add the counts of the flushing ``key`` (unless its batch was added before), then
    delete it; the fetches added."""
    hour_text, _, token = key.removeprefix(FLUSHING_PREFIX).partition(":")
    try:
        hour = datetime.strptime(hour_text, "%Y%m%d%H").replace(tzinfo=UTC)
    except ValueError:  # not one of ours
        log.warning("statistics: ignoring the Redis key %s", key)
        return 0
    rows: list[dict[str, Any]] = []
    for name, n in client.hgetall(key).items():
        text = name if isinstance(name, str) else name.decode("utf-8", "replace")
        kind, _, subject = text.partition(":")
        if kind in KINDS and subject and len(subject) <= MAX_SUBJECT and int(n) > 0:
            rows.append({"subject": subject, "kind": kind, "hour": hour, "count": int(n)})
    added = 0
    try:
        with session_scope(settings) as session:
            if session.get(StatBatch, token) is None:
                session.add(StatBatch(token=token))
                session.flush()  # a concurrent flush of the same batch fails here, or waits
                _add(session, rows)
                added = sum(row["count"] for row in rows)
    except IntegrityError:  # another flush added this batch meanwhile
        added = 0
    client.delete(key)
    return added


def _add(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Add ``rows``' counts to ``release_stats``, creating the rows that do not exist."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        statement = insert(PublicStat).values(list(rows[start : start + ROWS_PER_STATEMENT]))
        statement = statement.on_conflict_do_update(
            index_elements=["subject", "kind", "hour"],
            set_={"count": PublicStat.count + statement.excluded["count"]},
        )
        session.execute(statement)
