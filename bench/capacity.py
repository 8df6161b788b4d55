"""The capacity model's figures (issue 16): what one message costs each shared component, at
1, 2 and 4 worker processes, measured end to end with bench/pipeline.py's real path.

    .venv/bin/python bench/capacity.py [--subscribers 50000] [--procs 1,2,4] [--db postgresql]

For each ledger and number of worker processes (``distributor worker -c P``, one host, into
Postfix's ``smtp-sink``): messages/s end to end and per process, worker CPU per message,
database transactions committed per message (PostgreSQL's ``pg_stat_database.xact_commit`` of
the run's own database: outcomes, claims, lease checks and renewals, give-backs), Redis
commands per message (``INFO commandstats``, server-wide: run it with nothing else using the
Redis server) and the bytes of one message on the SMTP wire (the DATA, dot-stuffed, and its
envelope). The README's capacity table and its predictions come from these.
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import _baselines
import redis
from _fixture import _pg_admin, broker_url, fresh_database, populate, settings_for
from _report import code_state, say, table
from _run import Worker, measure
from _sinks import SmtpSink
from sqlalchemy import create_engine, text

from distributor.core.config import Settings

ENVELOPE = b"MAIL FROM:<bounces+d123456-0123456789abcdef@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n"
REPLIES = 4 * len(b"250 2.0.0 Ok\r\n")  # MAIL, RCPT, DATA (354), the final 250


def commits(settings: Settings) -> int:
    """Transactions committed so far in the run's PostgreSQL database."""
    name = str(settings.database_url).rsplit("/", 1)[1]
    engine = create_engine(str(settings.database_url))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            return int(
                conn.execute(
                    text("SELECT xact_commit FROM pg_stat_database WHERE datname = :n"), {"n": name}
                ).scalar_one()
            )
    finally:
        engine.dispose()


def redis_commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(int(v["calls"]) for v in stats.values())


def wire_bytes() -> int:
    settings = settings_for(Path(tempfile.gettempdir()), None, "smtp://127.0.0.1:25")
    rcpt, data = _baselines.prebuilt_messages(settings, 1, body_copies=1)[0]
    return len(data) + len(ENVELOPE % rcpt.encode()) + REPLIES


def one_run(backend: str, procs: int, subscribers: int, sink: SmtpSink, logs: Path) -> list[float]:
    with fresh_database(backend, sink.url, f"capacity{procs}") as settings:
        dataset = populate(settings, subscribers)
        worker = Worker(dataset, procs, logs / f"{backend}-{procs}.log")
        client = redis.Redis.from_url(broker_url())
        try:
            time.sleep(1.0)  # PostgreSQL's statistics lag by up to a second
            db_before = commits(settings) if backend == "postgresql" else 0
            redis_before = redis_commands(client)
            result = measure(f"{backend}/{procs}", dataset, worker, sink)
            redis_after = redis_commands(client)
            time.sleep(1.5)
            db_after = commits(settings) if backend == "postgresql" else 0
        finally:
            worker.stop()
    assert result.complete and not result.duplicates, result
    sent = result.sent
    return [
        result.rate,
        result.rate / procs,
        result.worker_cpu_per_1k,
        (db_after - db_before) / sent if backend == "postgresql" else float("nan"),
        (redis_after - redis_before) / sent,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=50_000)
    parser.add_argument("--procs", default="1,2,4")
    parser.add_argument("--db", default="postgresql", help="postgresql, sqlite or both")
    parser.add_argument("--runs", type=int, default=1, help="runs of each, alternating")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    procs = [int(p) for p in args.procs.split(",")]
    _pg_admin("SELECT 1")
    print(f"code under test: {code_state()}", flush=True)
    sink = SmtpSink()
    logs = Path(tempfile.mkdtemp(prefix="distributor-bench-capacity-"))
    figures: dict[tuple[str, int], list[list[float]]] = {}
    try:
        for _ in range(args.runs):
            for backend in backends:
                for p in procs:
                    say(f"{backend}, worker -c {p}, {args.subscribers:,} subscribers")
                    figures.setdefault((backend, p), []).append(
                        one_run(backend, p, args.subscribers, sink, logs)
                    )
    finally:
        sink.stop()

    def cell(values: list[float], digits: int) -> str:
        if any(v != v for v in values):
            return "–"
        med = statistics.median(values)
        if len(values) == 1:
            return f"{med:,.{digits}f}"
        return f"{med:,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"

    rows = []
    for (backend, p), runs in figures.items():
        columns = list(zip(*runs, strict=True))
        rows.append(
            [
                backend,
                str(p),
                cell(list(columns[0]), 0),
                cell(list(columns[1]), 0),
                cell(list(columns[2]), 3),
                cell(list(columns[3]), 3),
                cell(list(columns[4]), 3),
            ]
        )
    print(
        table(
            [
                "ledger",
                "worker processes",
                "msgs/s",
                "msgs/s per process",
                "worker CPU s/1k",
                "DB commits/msg",
                "Redis cmds/msg",
            ],
            rows,
        )
    )
    print(f"bytes of one message on the SMTP wire (DATA, envelope, replies): {wire_bytes():,}")


if __name__ == "__main__":
    main()
