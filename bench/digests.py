"""What a daily digest to N subscribers costs, against the release send to the same N.

Each run: a fresh database (SQLite, or PostgreSQL with --db postgresql), N confirmed
followers of "climate", ``distributor worker -c 2`` into Postfix's smtp-sink. A **release**
run publishes the sample release to them (immediate subscribers) and times publish → last
message recorded. A **digest** run makes them all daily subscribers, publishes the release
and two more inside the last daily period (nobody is sent anything at once), then times the
sweep's planning of the period (``digests.plan_due``) → last digest recorded. Runs alternate
(release, digest, release, …) so both see the same machine; each figure is the median of the
runs with min and max.

    .venv/bin/python bench/digests.py                   # 100,000 subscribers, 3 runs each
    .venv/bin/python bench/digests.py --quick           # 10,000, 3 runs each
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _fixture import Dataset, fresh_database, populate
from _report import code_state, say, table
from _run import Worker
from _sinks import SmtpSink
from sqlalchemy import func, select, text

from distributor import actions
from distributor.core.db import get_engine, session_scope
from distributor.core.models import Delivery, Digest, Release
from distributor.core.queue import TaskQueue
from distributor.outbox import digests
from distributor.releases.lifecycle import create_release, mark_published
from distributor.releases.source import parse_release

STALL_SECONDS = 60.0
MORE = """---
title: {title}
lang: en
topics: [climate]
date: 2026-11-20T09:00:00+01:00
slug: {slug}
contacts:
  - {{name: Jane Doe, role: Press officer, phone: "+33 1 00 00 00 00", email: press@example.org}}
---
{title}: a lead paragraph long enough to look like one, on the agency's climate work.

A second paragraph.
"""


def wait_for(sink: SmtpSink, expected: int, base: int) -> None:
    seen, last = 0, time.monotonic()
    while (count := sink.count() - base) < expected:
        if count != seen:
            seen, last = count, time.monotonic()
        if time.monotonic() - last > STALL_SECONDS:
            raise RuntimeError(f"stalled at {count:,} of {expected:,}")
        time.sleep(0.05)


def release_run(dataset: Dataset, sink: SmtpSink) -> tuple[float, float]:
    """(messages/s from publish to the last recorded, 0: no planning step of its own)."""
    settings = dataset.settings
    queue = TaskQueue(settings)
    base = sink.count()
    started = datetime.now(UTC)
    actions.publish(settings, queue, dataset.release_id)
    wait_for(sink, dataset.subscribers, base)
    queue.close()
    with session_scope(settings) as session:
        last = session.scalar(
            select(func.max(Delivery.sent_at)).where(Delivery.release_id == dataset.release_id)
        )
    assert last is not None
    return dataset.subscribers / (last - started).total_seconds(), 0.0


def digest_run(dataset: Dataset, sink: SmtpSink) -> tuple[float, float]:
    """(digests/s from the sweep's planning to the last recorded, planning seconds)."""
    settings = dataset.settings
    with get_engine(settings).begin() as conn:
        conn.execute(text("UPDATE subscribers SET digest = 'daily'"))
    now = datetime.now(UTC)
    inside = digests.period_end(settings, "daily", now) - timedelta(hours=2)
    ids = [dataset.release_id]
    for n in (1, 2):
        draft = parse_release(MORE.format(title=f"Release {n}", slug=f"more-{n}"), "b", settings)
        with session_scope(settings) as session:
            ids.append(create_release(session, settings, draft).id)
    for offset, release_id in enumerate(ids):
        with session_scope(settings) as session:
            mark_published(session, release_id)
            session.get_one(Release, release_id).published_at = inside + timedelta(minutes=offset)
    queue = TaskQueue(settings)
    base = sink.count()
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    planned = digests.plan_due(settings, queue, now)
    planning = time.perf_counter() - t0
    assert sum(planned.values()) == dataset.subscribers, planned
    wait_for(sink, dataset.subscribers, base)
    queue.close()
    with session_scope(settings) as session:
        last = session.scalar(select(func.max(Digest.sent_at)))
    assert last is not None
    return dataset.subscribers / (last - started).total_seconds(), planning


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, help="per run (default 100,000; quick 10,000)")
    parser.add_argument("--quick", action="store_true", help="10,000 subscribers")
    parser.add_argument("--runs", type=int, default=3, help="of each kind (default 3)")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--procs", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args()
    n = args.subscribers or (10_000 if args.quick else 100_000)
    say(f"code: {code_state()}")
    sink = SmtpSink()
    rates: dict[str, list[float]] = {"release": [], "digest": []}
    planning: list[float] = []
    try:
        for run in range(args.runs):
            for kind, measure in (("release", release_run), ("digest", digest_run)):
                tag = f"{kind}{run}"
                with fresh_database(args.db, sink.url, tag) as settings:
                    say(f"{tag}: {n:,} subscribers: set-up")
                    dataset = populate(settings, n)
                    worker = Worker(dataset, args.procs, Path(f"/tmp/bench-digests-{tag}.log"))
                    try:
                        rate, plan_s = measure(dataset, sink)
                    finally:
                        worker.stop()
                rates[kind].append(rate)
                if kind == "digest":
                    planning.append(plan_s)
                say(f"{tag}: {rate:,.0f}/s" + (f", planned in {plan_s:.2f} s" if plan_s else ""))
    finally:
        sink.stop()

    def spread(values: list[float], digits: int = 0) -> str:
        fmt = f"{{:,.{digits}f}}"
        return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–" + (
            f"{fmt.format(max(values))})"
        )

    ratios = [d / r for d, r in zip(rates["digest"], rates["release"], strict=True)]
    print(f"\n{n:,} subscribers, {args.db}, worker -c {args.procs}, smtp-sink, {args.runs} runs")
    print(
        table(
            ["send", "messages/s median (min–max)"],
            [
                ["release (one release each)", spread(rates["release"])],
                ["daily digest (three releases each)", spread(rates["digest"])],
            ],
        )
    )
    print(f"  digest ÷ release, run by run: {spread(ratios, 2)}")
    print(f"  planning the period (digests.plan_due): {spread(planning, 2)} s")


if __name__ == "__main__":
    main()
