"""Send limits with real workers: does ``DISTRIBUTOR_SEND_RATE`` hold across all worker
processes together, and ``DISTRIBUTOR_DOMAIN_RATE`` for a domain that wants more?

Run: ``.venv/bin/python bench/throttle.py [--rate 500] [--domain-rate 100]`` (about two
minutes). In one run, each with real ``distributor worker`` processes on Redis db 12, a
fresh SQLite ledger and Postfix's ``smtp-sink``:

1. no limit, 2 processes: the baseline; and a per-domain rate so high it is never reached
   (what asking Redis about every message's domain costs);
2. global rate R over 2 and over 4 processes: the achieved aggregate rate against R;
3. a quarter of the subscribers at one domain (``bigmail.example``), the rest spread over
   97 others, with the global rate R and a per-domain rate D: while the other domains
   are being sent, bigmail's achieved rate against D; the rows held back and not yet sent
   when the other domains are done wait for a later batch or the sweep (every 30 s), so
   the run stops following them then and counts them.

Rates come from the ledger's ``sent_at`` (recorded as each SMTP reply arrives); "busiest
second" is the most messages in any one-second window, which a bucket with a burst of a
tenth of a second's worth keeps under 1.1 × the rate. Prints figures; asserts nothing.
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from _fixture import Dataset, fresh_database, populate
from _report import code_state, say, table
from _run import Worker
from _sinks import SmtpSink
from sqlalchemy import func, select, text

from distributor import actions
from distributor.core.db import get_engine, session_scope
from distributor.core.models import Delivery, Subscriber, utcnow
from distributor.core.queue import TaskQueue
from distributor.outbox.ledger import counts

BIG = "bigmail.example"
STALL_SECONDS = 3.0  # the sink got nothing new for this long: the rest waits for the sweep


@dataclass
class Run:
    label: str
    procs: int
    subscribers: int
    sent: list[tuple[datetime, str]]  # (sent_at, domain), in order
    at_sink: int
    pending: int  # rows not sent when the run stopped following (held back, for the sweep)
    retried: int  # of those, rows whose attempts were counted (should be 0: held, not tried)
    published_at: datetime


def _rate(times: list[datetime]) -> float:
    """Messages a second between the first and the last of ``times`` (sorted)."""
    if len(times) < 2:
        return float("nan")
    return (len(times) - 1) / (times[-1] - times[0]).total_seconds()


def _busiest_second(times: list[datetime]) -> int:
    """The most of ``times`` (sorted) in any one-second window."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while (t - times[start]).total_seconds() >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def _make_big_domain(dataset: Dataset) -> None:
    """Move every fourth subscriber to ``BIG`` (set-up only)."""
    with get_engine(dataset.settings).begin() as conn:
        conn.execute(
            text(
                "UPDATE subscribers SET email = 'journalist' || id || '@bigmail.example' "
                "WHERE id % 4 = 0"
            )
        )


def one_run(label: str, procs: int, subscribers: int, limits: dict[str, float],
            sink: SmtpSink, log_dir: Path, big_domain: bool = False) -> Run:  # fmt: skip
    """Publish to ``subscribers`` with ``limits`` (Settings fields) and follow the sends
    until all arrived or nothing arrived for ``STALL_SECONDS``."""
    with fresh_database("sqlite", sink.url, label.replace(" ", "_")) as settings:
        dataset = populate(settings, subscribers)
        if big_domain:
            _make_big_domain(dataset)
        dataset = replace(dataset, settings=settings.model_copy(update=limits))
        worker = Worker(dataset, procs, log_dir / f"{label.replace(' ', '_')}.log")
        try:
            say(f"{label}: {subscribers:,} subscribers, {procs} processes, {limits or 'no limit'}")
            base, queue = sink.count(), TaskQueue(dataset.settings)
            published_at = utcnow()
            actions.publish(dataset.settings, queue, dataset.release_id)
            seen, changed = 0, time.monotonic()
            while seen < subscribers and time.monotonic() - changed < STALL_SECONDS:
                time.sleep(0.1)
                if sink.count() - base != seen:
                    seen, changed = sink.count() - base, time.monotonic()
            queue.close()
        finally:
            worker.stop()
        with session_scope(dataset.settings) as session:
            rows = session.execute(
                select(Delivery.sent_at, Subscriber.email)
                .join(Subscriber)
                .where(Delivery.release_id == dataset.release_id, Delivery.status == "sent")
                .order_by(Delivery.sent_at)
            ).all()
            left = counts(session, dataset.release_id)
            retried = session.scalar(
                select(func.count()).where(Delivery.status != "sent", Delivery.attempts > 0)
            )
    sent = [(at, email.rpartition("@")[2]) for at, email in rows if at is not None]
    return Run(label, procs, subscribers, sent, sink.count() - base,
               left["pending"] + left["deferred"], int(retried or 0), published_at)  # fmt: skip


def global_table(runs: list[Run], rate: float) -> str:
    rows = []
    for r in runs:
        times = [t for t, _ in r.sent]
        achieved = _rate(times)
        unlimited = r.label.startswith(("no limit", "D set"))
        rows.append(
            [
                r.label,
                str(r.procs),
                f"{len(times):,}",
                f"{r.at_sink:,}",
                f"{(times[-1] - r.published_at).total_seconds():.1f}",
                f"{achieved:,.0f}",
                "—" if unlimited else f"{achieved / rate:.3f}",
                f"{_busiest_second(times):,}",
                "—" if unlimited else f"{_busiest_second(times) / rate:.2f}",
            ]
        )
    return table(
        ["run", "procs", "sent", "at sink", "last s", "msgs/s", "÷ R", "busiest 1 s", "÷ R"],
        rows,
    )


def domain_table(run: Run, rate: float, domain_rate: float) -> str:
    big = [t for t, d in run.sent if d == BIG]
    others = [t for t, d in run.sent if d != BIG]
    end = others[-1]  # the other domains are done: from here only the sweep sends bigmail
    during = [t for t in big if t <= end]
    window = (end - big[0]).total_seconds() if big else float("nan")
    rows = [
        [
            f"{BIG} (¼ of the list)",
            f"{len(big):,}",
            f"{len(during):,}",
            f"{len(during) / window:,.1f}" if window else "–",
            f"{len(during) / window / domain_rate:.3f}" if window else "–",
            f"{_busiest_second(big):,}",
            f"{run.pending:,}",
        ],
        [
            "97 other domains",
            f"{len(others):,}",
            f"{len(others):,}",
            f"{_rate(others):,.1f}",
            "—",
            f"{_busiest_second(others):,}",
            "0",
        ],
    ]
    head = ["recipients", "sent", "sent while others ran", "msgs/s then", "÷ D",
            "busiest 1 s", "held, left for sweep"]  # fmt: skip
    return table(head, rows) + (
        f"\n\n  all domains together: {_rate([t for t, _ in run.sent]):,.0f} msgs/s "
        f"(÷ R = {_rate([t for t, _ in run.sent]) / rate:.3f}); rows held back but "
        f"counted as attempted: {run.retried}; sink {run.at_sink:,} = ledger sent "
        f"{len(run.sent):,}: {'yes' if run.at_sink == len(run.sent) else 'NO'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500.0, help="global rate R (msgs/s)")
    parser.add_argument("--domain-rate", type=float, default=100.0, help="per-domain rate D")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of a rate run")
    args = parser.parse_args()
    rate, domain_rate = args.rate, args.domain_rate
    n = int(rate * args.seconds)
    started, code = time.perf_counter(), code_state()
    log_dir = Path(tempfile.mkdtemp(prefix="distributor-bench-throttle-"))
    sink = SmtpSink()
    try:
        runs = []
        for trial in (1, 2):  # alternated: on a shared machine single figures scatter
            runs.append(one_run(f"no limit #{trial}", 2, 10_000, {}, sink, log_dir))
            # The price of asking Redis about each message's domain (a round trip each):
            runs.append(one_run(f"D set, never reached #{trial}", 2, 10_000,
                                {"domain_rate": 10_000.0}, sink, log_dir))  # fmt: skip
        runs += [
            one_run("R over 2 procs", 2, n, {"send_rate": rate}, sink, log_dir),
            one_run("R over 4 procs", 4, n, {"send_rate": rate}, sink, log_dir),
        ]
        domains = one_run(
            "R and D",
            2,
            int(rate * args.seconds * 1.5),
            {"send_rate": rate, "domain_rate": domain_rate},
            sink,
            log_dir,
            big_domain=True,
        )
    finally:
        sink.stop()
        shutil.rmtree(log_dir, ignore_errors=True)
    print(f"distributor throttle benchmark — {time.perf_counter() - started:.0f} s in all")
    print(f"code under test: {code}")
    print()
    print(f"(1, 2) Global rate R = {rate:,.0f} msgs/s (DISTRIBUTOR_SEND_RATE), SQLite, "
          "smtp-sink; msgs/s between the first and the last message")  # fmt: skip
    print(global_table(runs, rate))
    print()
    print(f"(3) Per-domain rate D = {domain_rate:,.0f} msgs/s (DISTRIBUTOR_DOMAIN_RATE) "
          f"with R = {rate:,.0f}, 2 processes, {domains.subscribers:,} subscribers")  # fmt: skip
    print(domain_table(domains, rate, domain_rate))


if __name__ == "__main__":
    main()
