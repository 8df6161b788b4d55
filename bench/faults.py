"""Nothing lost, nothing sent twice — under faults. Publishes one release to N confirmed
subscribers through the real path (``distributor worker`` subprocesses, a Redis of the
bench's own, the ledger on SQLite and PostgreSQL, a real SMTP server that records every
copy and injects faults), breaks something on the way, and counts per scenario:

- lost: subscribers owed a copy who got none (a 550-refused address is "refused", not lost;
  someone who unsubscribed mid-send is owed nothing);
- duplicated: subscribers who got more than one copy (and how many extra copies);
- ledger mismatches: the ledger says sent and the server has nothing, or the reverse;
- time to drain: publish → no row pending or deferred; attempts per message (ledger).

Scenarios: 0 baseline (no fault), 1 SIGKILL workers 20 times (1r: the same, the workers
reconciling with the relay's log before resending), 6 100 unsubscribes mid-send,
7 Redis visibility timeout 10 s with 30 s batches (7s: the same with a lease shorter than a
batch), 2 kill between the server's 250 and the ledger commit (failpoint; 2r: the same, the
workers reconciling with the relay's log before resending), 3 SMTP faults
(421, 451, 550, cut after the final dot; 3r: the relay kept the messages it was cut from,
and the workers reconcile), 4 Redis restarted mid-send (4b: down when
publishing), 5 PostgreSQL unreachable mid-send (a TCP proxy cut; PostgreSQL only).

With ``--relay postfix`` the workers send through a private instance of Debian's Postfix
(tests/postfix.py, the tests' own: started per scenario on a loopback port, relaying to the
recording server) and the reconciling scenarios read Postfix's real ``maillog_file``; only
the scenarios whose faults are not the relay's own answers run there (0, 1, 1r, 2, 2r, 4,
4b, 5, 6), and a scenario ends once Postfix's queue is empty too (root and Debian's
postfix package needed).

Run: ``.venv/bin/python bench/faults.py [--quick] [--db sqlite|postgresql|both]
[--scenarios 0,1,6,…] [--subscribers N] [--relay aiosmtpd|postfix]``. Needs redis-server on
the PATH (started on a free port; the shared Redis is never touched) and PostgreSQL at
127.0.0.1:5432 with trust auth for ``postgres`` (own ``distributor_bench_<pid>_faults_*``
databases, dropped after each run).
The sweep (beat's job, every 30 s in production) runs in the bench every few seconds, so
recovery is bounded by the lease. Prints figures; asserts nothing; exits 1 if a target was
missed: lost 0, and duplicated 0 except the copies a kill explains — a worker killed between
the server's acceptance and the ledger's commit (scenario 2's failpoint; in scenario 1, a
random kill that lands there), at most one group of outcomes (``DISTRIBUTOR_OUTCOME_GROUP``)
per kill, counted exactly: an extra copy is
explained only if its row was taken over from a dead worker and sent again unreconciled
(the workers log those rows). With reconciliation (1r, 2r) no extra copy is allowed.
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import itertools
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from _fault_workers import WorkerGroup
from _faulty_smtp import DROPPED, Copy, FaultySMTP
from _fixture import Dataset, fresh_database, populate, settings_env
from _proxy import TcpProxy
from _redis import RedisServer
from _report import code_state, say, table
from sqlalchemy import func, select

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.postfix: the tests' private Postfix, for --relay postfix

from distributor import actions  # noqa: E402
from distributor.audience.subscribers import unsubscribe  # noqa: E402
from distributor.core.config import Settings  # noqa: E402
from distributor.core.db import session_scope  # noqa: E402
from distributor.core.models import Delivery, Release, Subscriber  # noqa: E402
from distributor.core.queue import TaskQueue  # noqa: E402
from distributor.outbox import sweep  # noqa: E402
from distributor.outbox.ledger import RECONCILED  # noqa: E402
from tests.postfix import Postfix, running_postfix, unavailable  # noqa: E402

# The outcomes a worker commits together (Settings.outcome_group, the default: the bench's
# workers run with it): a kill leaves at most that many accepted and unrecorded.
GROUP = Settings().outcome_group
SCENARIOS = ["0", "1", "1r", "6", "7", "7s", "2", "2r", "3", "3r", "4", "4b", "5"]
# Scenarios whose fault is not the relay's own answers (421, 451, 550, cuts, slowness): the
# ones that run through a real Postfix, where the recording server's faults would only
# reach Postfix, not the workers.
THROUGH_POSTFIX = ["0", "1", "1r", "6", "2", "2r", "4", "4b", "5"]
TITLES = {
    "0": "baseline, no fault",
    "1": "SIGKILL a worker 20× (pool process, or whole worker + restart)",
    "1r": "as 1, reconciling with the relay's log before resending",
    "6": "100 unsubscribe mid-send",
    "7": "visibility timeout 10 s < batch time, lease 2× batch time",
    "7s": "visibility timeout 10 s < batch time, lease < batch time",
    "2": "SIGKILL between the server's 250 and the ledger commit",
    "2r": "as 2, reconciling with the relay's log before resending",
    "3": "SMTP 421, then 451 to 30 %, 550 to 50, cut after the dot",
    "3r": "as 3, the relay keeping what it was cut from; reconciling with its log",
    "4": "Redis restarted mid-send (queues lost)",
    "4b": "Redis down when publishing",
    "5": "PostgreSQL unreachable mid-send (proxy cut)",
}
PG_HOST = ("127.0.0.1", 5432)
HEADERS = ["db", "scenario", "subscribers", "lost", "duplicated", "ledger mismatches",
           "drain s", "attempts/msg", "max attempts", "target"]  # fmt: skip


@dataclass(frozen=True)
class Options:
    """What the command line asked for, with the --quick defaults applied."""

    subscribers: int
    quick: bool
    lease: int  # seconds
    sweep_every: float  # seconds between two sweeps
    kills: int
    closing_s: float  # scenario 3: how long the server answers 421
    pg_down_s: float  # scenario 5: how long PostgreSQL is unreachable
    redis_down_s: float  # scenario 4/4b
    timeout_s: float  # per scenario, from publishing to drained
    procs: int  # pool processes per worker; two workers
    log_dir: Path
    relay: str = "aiosmtpd"  # or "postfix": a private Postfix in front of the recording server


@dataclass
class Tuning:
    """Settings and processes of one scenario's run."""

    subscribers: int
    lease: int
    batch_size: int = 250
    retry_base: float = 60.0
    retry_max: float = 3600.0
    env: dict[str, str] = field(default_factory=dict)
    app: str | None = None  # a Celery app in bench/ instead of `distributor worker`
    via_proxy: bool = False  # the workers and the sweep reach PostgreSQL through the proxy


@dataclass
class Live:
    """A scenario while it runs: what the fault actions need and what they leave behind."""

    settings: Settings  # as the workers and the sweep have it
    direct: Settings  # the bench's own view (never through the proxy)
    dataset: Dataset
    queue: TaskQueue
    workers: list[WorkerGroup]
    smtp: FaultySMTP
    redis: RedisServer
    proxy: TcpProxy | None
    options: Options
    published_at: float = 0.0
    unsubscribed: dict[str, float] = field(default_factory=dict)  # email → when committed
    kills: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def publish(self) -> None:
        self.published_at = time.time()
        actions.publish(self.settings, self.queue, self.dataset.release_id)


@dataclass
class Row:
    """One line of the results table."""

    db: str
    scenario: str
    subscribers: int
    lost: int = 0
    duplicated: int = 0  # subscribers with more than one copy
    extra_copies: int = 0
    mismatches: int = 0
    drain_s: float = float("nan")
    attempts_mean: float = float("nan")
    attempts_max: int = 0
    refused: int = 0
    notes: list[str] = field(default_factory=list)
    kills: int = 0
    in_window: int = 0  # extra copies explained by a kill between the 250 and the commit

    def verdict(self) -> str:
        """ok, or what missed the target."""
        missed = []
        if self.lost:
            missed.append("LOST")
        if self.extra_copies > self.in_window:
            missed.append("DUPLICATES")
        if self.drain_s != self.drain_s:
            missed.append("NOT DRAINED")
        if missed:
            return ", ".join(missed)
        return f"ok ({self.extra_copies} in the window)" if self.extra_copies else "ok"


# --- running one scenario -----------------------------------------------------------------


class Sweeper:
    """sweep.sweep every ``every`` seconds in a thread (what beat does every 30 s)."""

    def __init__(self, settings: Settings, every: float) -> None:
        self.settings, self.every = settings, every
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        queue = TaskQueue(self.settings)
        try:
            while not self._stop.wait(self.every):
                try:
                    sweep.sweep(self.settings, queue)
                except Exception:  # the database or Redis is down: the next sweep retries
                    self.failures += 1
        finally:
            queue.close()

    def __enter__(self) -> Sweeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def open_rows(settings: Settings, release_id: int) -> int | None:
    """Rows of the release still to be sent (pending or deferred); None before the release
    was planned (a lost wake-up) or when the database cannot be read."""
    try:
        with session_scope(settings) as session:
            planned = session.scalar(select(Release.planned_at).where(Release.id == release_id))
            if planned is None:
                return None
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(
                        Delivery.release_id == release_id,
                        Delivery.status.in_(["pending", "deferred"]),
                    )
                )
                or 0
            )
    except Exception:
        return None


def wait_until(check: Callable[[], bool], timeout: float, poll: float = 0.1) -> bool:
    """Poll ``check`` until it is true (True) or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll)
    return True


def wait_drained(live: Live) -> float:
    """Seconds from publishing until no row is pending or deferred (NaN on time-out)."""
    release_id = live.dataset.release_id
    if not wait_until(lambda: open_rows(live.direct, release_id) == 0, live.options.timeout_s, 0.2):
        live.notes.append(f"not drained after {live.options.timeout_s:.0f} s")
        return float("nan")
    return time.time() - live.published_at


@contextmanager
def running(
    backend: str, tag: str, tuning: Tuning, smtp: FaultySMTP, redis: RedisServer,
    options: Options, relay_url: str,
) -> Iterator[Live]:  # fmt: skip
    """A fresh database with the data set, two workers sending to ``relay_url`` and the
    sweep, for one scenario."""
    smtp.reset()
    redis.flush()
    with ExitStack() as stack:
        base = stack.enter_context(fresh_database(backend, relay_url, f"faults_{tag}"))
        direct = base.model_copy(
            update={
                "broker_url": redis.url,
                "lease_seconds": tuning.lease,
                "batch_size": tuning.batch_size,
                "retry_base_seconds": tuning.retry_base,
                "retry_max_seconds": tuning.retry_max,
            }
        )
        dataset = populate(direct, tuning.subscribers)
        dataset = Dataset(direct, dataset.release_id, dataset.subscribers)
        settings, proxy = direct, None
        if tuning.via_proxy:
            proxy = TcpProxy(PG_HOST).start()
            stack.callback(proxy.stop)
            assert direct.database_url is not None
            url = direct.database_url.replace(":5432/", f":{proxy.port}/")
            settings = direct.model_copy(update={"database_url": url})
        env = {**settings_env(settings), **tuning.env}
        workers = [
            WorkerGroup(
                f"w{i}",
                env,
                options.log_dir / f"{backend}-{tag}-w{i}.log",
                options.procs,
                tuning.app,
            )
            for i in range(2)
        ]
        for worker in workers:
            stack.callback(worker.stop)
            worker.launch()
        for worker in workers:
            worker.wait_ready()
        stack.enter_context(Sweeper(settings, options.sweep_every))
        queue = TaskQueue(settings)
        stack.callback(queue.close)
        yield Live(settings, direct, dataset, queue, workers, smtp, redis, proxy, options)


def delivered_share(live: Live, share: float) -> None:
    """Wait until ``share`` of the subscribers got their copy."""
    target = int(live.dataset.subscribers * share)
    wait_until(lambda: live.smtp.count() >= target, live.options.timeout_s, 0.02)


# --- the faults ---------------------------------------------------------------------------


def act_none(live: Live) -> None:
    live.publish()


def act_kills(live: Live) -> None:
    """Scenario 1: SIGKILL, at random moments during the send, a pool process (Celery starts
    another) or, one time in four, a whole worker, which is started again at once."""
    live.publish()
    wait_until(lambda: live.smtp.count() > 0, live.options.timeout_s, 0.02)
    release_id = live.dataset.release_id
    deadline = time.monotonic() + live.options.timeout_s
    while (n := sum(live.kills.values())) < live.options.kills:
        time.sleep(random.uniform(0.05, 0.35))
        if open_rows(live.direct, release_id) == 0 or time.monotonic() > deadline:
            live.notes.append(f"drained after {n} kills")
            break
        for worker in live.workers:
            if worker.exited():  # died on its own: start it again
                live.notes.append(f"worker {worker.name} exited; started again")
                worker.launch()
        running = [w for w in live.workers if w.ready()]  # not one being restarted
        if not running:
            continue
        worker = random.choice(running)
        if n % 4 == 3:
            worker.kill()
            live.kills["whole worker"] += 1
            worker.launch()  # ready in ~2 s; the kills go on meanwhile
        elif worker.kill_pool_process():
            live.kills["pool process"] += 1


def act_unsubscribe(live: Live, count: int = 100) -> None:
    """Scenario 6: once a fifth is delivered, 100 who have no copy yet unsubscribe."""
    live.publish()
    delivered_share(live, 0.2)
    got = {c.rcpt for c in live.smtp.copies()}
    with session_scope(live.direct) as session:
        people = session.execute(select(Subscriber.id, Subscriber.email)).all()
    waiting = [(sid, email) for sid, email in people if email not in got]
    for sid, email in random.sample(waiting, min(count, len(waiting))):
        with session_scope(live.direct) as session:
            unsubscribe(session, sid)
        live.unsubscribed[email] = time.time()  # committed


def act_smtp_faults(live: Live) -> None:
    """Scenario 3: 421 to everything for a while; then 451 once to 30 % of the recipients,
    550 always to 50 of them, and five messages cut after their final dot."""
    emails = sorted(c for c in _emails(live))
    chosen = random.Random(3).sample(emails, len(emails))
    faults = live.smtp.faults
    faults.refused = set(chosen[:50])
    faults.closing_until = time.time() + live.options.closing_s
    live.publish()
    time.sleep(live.options.closing_s)
    faults.soft_once = set(chosen[50 : 50 + int(len(emails) * 0.3)])
    faults.drop_after_dot = 5


def act_redis_restart(live: Live) -> None:
    """Scenario 4: Redis killed (queues lost) a third into the send, started again."""
    live.publish()
    delivered_share(live, 0.3)
    live.redis.stop()
    time.sleep(live.options.redis_down_s)
    live.redis.start()


def act_redis_down_at_publish(live: Live) -> None:
    """Scenario 4b: Redis down when the release is published: the wake-up is lost."""
    live.redis.stop()
    live.publish()
    time.sleep(live.options.redis_down_s)
    live.redis.start()


def act_pg_down(live: Live) -> None:
    """Scenario 5: every connection to PostgreSQL cut, and new ones refused, for a while."""
    live.publish()
    delivered_share(live, 0.3)
    assert live.proxy is not None
    live.proxy.cut()
    time.sleep(live.options.pg_down_s)
    live.proxy.restore()


def _emails(live: Live) -> list[str]:
    with session_scope(live.direct) as session:
        return list(session.scalars(select(Subscriber.email)))


# --- counting -----------------------------------------------------------------------------


def measure(live: Live, row: Row, retry_base: float, retry_max: float) -> None:
    """Compare the server's copies with the ledger and the subscribers; fill ``row``."""
    copies = live.smtp.copies()
    per_rcpt = Counter(c.rcpt for c in copies)
    ids: dict[str, set[str]] = {}
    for c in copies:
        ids.setdefault(c.rcpt, set()).add(c.message_id)
    refused = {r for r, log in live.smtp.attempts().items() if any(code >= 500 for _, code in log)}
    with session_scope(live.direct) as session:
        ledger = session.execute(
            select(Subscriber.email, Delivery.status, Delivery.attempts, Delivery.last_error)
            .join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.release_id == live.dataset.release_id)
        ).all()
        emails = list(session.scalars(select(Subscriber.email)))
    status = {email: str(s) for email, s, _, _ in ledger}
    attempts = [a for _, _, a, _ in ledger]
    reconciled = sum(1 for *_, note in ledger if note == RECONCILED)
    owed = set(emails) - set(live.unsubscribed) - refused
    row.lost = sum(1 for e in owed if not per_rcpt[e])
    row.duplicated = sum(1 for n in per_rcpt.values() if n > 1)
    row.extra_copies = sum(n - 1 for n in per_rcpt.values() if n > 1)
    row.mismatches = sum(1 for e in emails if (status.get(e) == "sent") != (per_rcpt[e] > 0))
    row.refused = len(refused)
    if attempts:
        row.attempts_mean = sum(attempts) / len(attempts)
        row.attempts_max = max(attempts)
    if len(ledger) != len(emails):
        row.notes.append(f"ledger rows {len(ledger):,} ≠ subscribers {len(emails):,}")
    if row.duplicated:
        distinct = sum(1 for r, n in per_rcpt.items() if n > 1 and len(ids[r]) > 1)
        row.notes.append(
            f"{row.extra_copies} extra copies, {distinct} with another Message-ID "
            "(so a receiver deduplicating by Message-ID sees "
            f"{'none' if not distinct else distinct})"
        )
    if reconciled:
        row.notes.append(f"in doubt and found in the relay's log, not resent: {reconciled}")
    if refused:
        failed = sum(1 for e in refused if status.get(e) == "failed")
        row.notes.append(f"550-refused {len(refused)} (ledger failed: {failed})")
    if live.unsubscribed:
        delays = [
            c.rcpt_at - live.unsubscribed[c.rcpt]
            for c in copies
            if c.rcpt in live.unsubscribed and c.rcpt_at > live.unsubscribed[c.rcpt]
        ]
        got = sum(1 for e in live.unsubscribed if per_rcpt[e]) - len(delays)
        row.notes.append(
            f"{len(live.unsubscribed)} unsubscribed: {len(delays)} copies started after the "
            f"unsubscribe committed (at most {max(delays, default=0) * 1000:.0f} ms after), "
            f"{got} had started before"
        )
    early, worst = early_retries(live.smtp.attempts(), retry_base, retry_max)
    if early or worst == worst:
        row.notes.append(
            f"retries sooner than the backoff: {early} (tightest gap ÷ due {worst:.2f})"
        )
    dropped = sum(1 for log in live.smtp.attempts().values() for _, c in log if c == DROPPED)
    if dropped:
        kept = "kept by the server" if live.smtp.faults.keep_dropped else "not kept, resent"
        row.notes.append(f"{dropped} cut after the dot ({kept})")


_IN_DOUBT = re.compile(r"row\(s\) in doubt go out again .*?: deliveries ([\d,]+)")


def in_doubt_extras(live: Live, copies: list[Copy]) -> int:
    """Extra copies to subscribers whose row a worker took over from a dead one and sent
    again unreconciled (sending.send_batch logs their delivery ids): the copies a kill
    between the server's acceptance and the ledger's commit explains, exactly."""
    ids = {int(i) for w in live.workers for m in _IN_DOUBT.findall(w.log()) for i in m.split(",")}
    if not ids:
        return 0
    with session_scope(live.direct) as session:
        emails = set(
            session.scalars(
                select(Subscriber.email)
                .join(Delivery, Delivery.subscriber_id == Subscriber.id)
                .where(Delivery.id.in_(ids))
            )
        )
    per_rcpt = Counter(c.rcpt for c in copies)
    return sum(n - 1 for rcpt, n in per_rcpt.items() if n > 1 and rcpt in emails)


def early_retries(
    attempts: dict[str, list[tuple[float, int]]], base: float, cap: float
) -> tuple[int, float]:
    """How many retries came sooner than the backoff allows after a temporary failure
    (421/451/cut), and the smallest gap ÷ backoff seen (NaN if nothing was retried).

    After a recipient's k-th temporary failure the ledger has at least k attempts, so the
    next one is due no sooner than min(base·2^(k-1), cap)."""
    early, worst = 0, float("nan")
    for log in attempts.values():
        failures = 0
        for (t, code), (t_next, _) in itertools.pairwise(log):
            if not (code == DROPPED or 400 <= code < 500):
                continue
            failures += 1
            due = min(base * 2 ** (failures - 1), cap)
            ratio = (t_next - t) / due
            worst = ratio if worst != worst else min(worst, ratio)
            early += ratio < 0.99
    return early, worst


# --- the scenarios ------------------------------------------------------------------------


def run_scenario(
    backend: str, scenario: str, smtp: FaultySMTP, redis: RedisServer, options: Options
) -> Row:
    """Run one scenario on one database; its table row."""
    n = options.subscribers
    tuning = Tuning(n, options.lease)
    act: Callable[[Live], None] = act_none
    kills_wanted, data_delay = 0, 0.0
    if scenario in ("1", "1r"):
        act = act_kills
    elif scenario == "6":
        act = act_unsubscribe
    elif scenario in ("7", "7s"):
        # Batches of 100 rows that take ~30 s (15 s quick): a relay answering each message
        # after 0.3 s (0.15 s). Two rounds of batches on the four pool processes.
        batch_s = 15.0 if options.quick else 30.0
        tuning = Tuning(
            min(n, 400 if options.quick else 800),
            lease=int(batch_s * 2) if scenario == "7" else options.lease,
            batch_size=100,
            app="_celery_vt",
            env={"FAULTS_VISIBILITY_TIMEOUT": "10", "FAULTS_RESTORE_INTERVAL": "1"},
        )
        data_delay = batch_s / 100
    elif scenario in ("2", "2r"):
        kills_wanted = 10 if options.quick else 15
        tuning.env = {"DISTRIBUTOR_FAILPOINTS": f"after-accept:{kills_wanted / n:.6f}"}
    elif scenario in ("3", "3r"):
        quick = options.quick
        tuning.retry_base, tuning.retry_max = (2.0, 4.0) if quick else (5.0, 20.0)
        # Once per connection during the 421s, a batch outlives a short lease; another
        # worker would then retry its rows before their backoff (the 7s hazard, not this).
        tuning.lease = 60
        act = act_smtp_faults
    elif scenario == "4":
        act = act_redis_restart
    elif scenario == "4b":
        act = act_redis_down_at_publish
    elif scenario == "5":
        tuning.via_proxy = True
        act = act_pg_down
    row = Row(backend, scenario, tuning.subscribers)
    say(f"{backend} {scenario} ({TITLES[scenario]}): {tuning.subscribers:,} subscribers")
    with ExitStack() as stack:
        postfix: Postfix | None = None
        if options.relay == "postfix":  # a fresh one per scenario: its own queue and log
            postfix = stack.enter_context(running_postfix(("127.0.0.1", smtp.port)))
        if scenario.endswith("r"):  # the relay's log: Postfix's own, or the imitation's
            log = postfix.log if postfix else smtp.log_path  # (bench/_faulty_smtp.py)
            tuning.env["DISTRIBUTOR_RECONCILE_LOG"] = str(log)
        tag = scenario.replace("s", "short")
        relay_url = postfix.url if postfix else smtp.url
        live = stack.enter_context(running(backend, tag, tuning, smtp, redis, options, relay_url))
        say(f"{backend} {scenario}: workers ready, publishing")
        smtp.faults.data_delay = data_delay
        smtp.faults.keep_dropped = scenario == "3r"
        act(live)
        row.drain_s = wait_drained(live)
        if postfix:  # what Postfix accepted has yet to reach the recording server
            try:
                postfix.wait_delivered(live.options.timeout_s)
                row.notes.append(f"Postfix's queue empty {time.time() - live.published_at:.1f}"
                                 " s after publishing")  # fmt: skip
            except AssertionError as exc:
                row.notes.append(str(exc))
        time.sleep(1.0 if options.quick else 2.0)  # a copy sent twice would arrive now
        measure(live, row, tuning.retry_base, tuning.retry_max)
        explained = in_doubt_extras(live, live.smtp.copies())
        pool_kills = sum(w.pool_kills() for w in live.workers)
        if lost_leases := sum(w.lost_leases() for w in live.workers):
            row.notes.append(f"outcomes not recorded, lease taken over: {lost_leases}")
        received = [w.batches_received() for w in live.workers]
        row.notes += live.notes
    if scenario in ("1", "1r"):
        row.kills = sum(live.kills.values())
        # At most one group of outcomes per kill (accepted, waiting for their commit), and
        # with reconciliation, none.
        row.in_window = min(explained, row.kills * GROUP) if scenario == "1" else 0
        row.notes.insert(
            0,
            f"kills: {live.kills['pool process']} pool process, {live.kills['whole worker']} "
            f"whole worker; extra copies of rows a killed worker held, sent again "
            f"unreconciled: {explained}",
        )
    if scenario in ("2", "2r"):
        row.kills = pool_kills
        # At most one group per kill; with reconciliation, none.
        row.in_window = min(explained, pool_kills * GROUP) if scenario == "2" else 0
        row.notes.insert(0, f"failpoint kills: {pool_kills}")
    if scenario in ("7", "7s"):
        total, distinct = sum(r[0] for r in received), sum(r[1] for r in received)
        row.notes.insert(
            0, f"send_batch tasks run {total}, of which redelivered {total - distinct}"
        )
    say(
        f"{backend} {scenario}: lost {row.lost}, duplicated {row.duplicated}, mismatches "
        f"{row.mismatches}, drained in {row.drain_s:.1f} s — {row.verdict()}"
    )
    return row


def results_table(rows: list[Row]) -> str:
    return table(
        HEADERS,
        [
            [
                r.db,
                f"{r.scenario} {TITLES[r.scenario]}",
                f"{r.subscribers:,}",
                str(r.lost),
                str(r.duplicated),
                str(r.mismatches),
                f"{r.drain_s:.1f}" if r.drain_s == r.drain_s else "–",
                f"{r.attempts_mean:.3f}",
                str(r.attempts_max),
                r.verdict(),
            ]
            for r in rows
        ],
    )


def notes_text(rows: list[Row]) -> str:
    lines = []
    for r in rows:
        if r.notes:
            lines.append(f"  {r.db} {r.scenario}: " + "; ".join(r.notes))
    return "\n".join(lines)


def postfix_version() -> str:
    """The installed Postfix's name and version, e.g. "Postfix 3.7.11"."""
    found = subprocess.run(["postconf", "-h", "mail_version"], capture_output=True, text=True)
    return f"Postfix {found.stdout.strip() or '?'}"


def _on_sigterm(_signo: int, _frame: object) -> NoReturn:
    raise SystemExit(143)  # run the finally blocks: stop every process, drop every database


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    every = ",".join(SCENARIOS)
    parser.add_argument("--scenarios", default=every, help=f"in order of running ({every})")
    parser.add_argument("--subscribers", type=int, help="default 10,000 (quick 2,000)")
    parser.add_argument("--quick", action="store_true", help="smaller and shorter: ~5 minutes")
    parser.add_argument("--closing", type=float, help="scenario 3: seconds of 421 (120; quick 10)")
    parser.add_argument("--pg-down", type=float, help="scenario 5: seconds (60; quick 10)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the worker logs")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the fault timing")
    parser.add_argument(
        "--relay", choices=["aiosmtpd", "postfix"], default="aiosmtpd",
        help="send through a private Postfix in front of the recording server",
    )  # fmt: skip
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    if args.relay == "postfix" and args.scenarios == every:
        scenarios = THROUGH_POSTFIX
    if bad := [s for s in scenarios if s not in SCENARIOS]:
        parser.error(f"unknown scenario(s) {bad}; choose among {SCENARIOS}")
    if args.relay == "postfix":
        if bad := [s for s in scenarios if s not in THROUGH_POSTFIX]:
            parser.error(f"scenario(s) {bad} inject the relay's own faults: not with Postfix")
        if reason := unavailable():
            parser.error(f"--relay postfix: {reason}")
    signal.signal(signal.SIGTERM, _on_sigterm)
    random.seed(args.seed)
    backends = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    work = Path(tempfile.mkdtemp(prefix="distributor-faults-"))
    options = Options(
        subscribers=args.subscribers or (2_000 if args.quick else 10_000),
        quick=args.quick,
        lease=5 if args.quick else 15,
        sweep_every=1.0 if args.quick else 5.0,
        kills=20,
        closing_s=args.closing or (10.0 if args.quick else 120.0),
        pg_down_s=args.pg_down or (10.0 if args.quick else 60.0),
        redis_down_s=2.0 if args.quick else 5.0,
        timeout_s=300.0 if args.quick else 600.0,
        procs=2,
        log_dir=work,
        relay=args.relay,
    )
    code_before = code_state()
    started = time.perf_counter()
    rows: list[Row] = []
    with ExitStack() as stack:
        if not args.keep_logs:
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        smtp = FaultySMTP(work / "mail.log").start()
        stack.callback(smtp.stop)
        redis = RedisServer(work / "redis").start()
        stack.callback(redis.stop)
        for backend in backends:
            for scenario in scenarios:
                if scenario == "5" and backend != "postgresql":
                    continue  # no network between the workers and SQLite
                rows.append(run_scenario(backend, scenario, smtp, redis, options))
    elapsed = time.perf_counter() - started
    relay = "aiosmtpd recording every copy"
    if options.relay == "postfix":
        relay = f"through {postfix_version()} to aiosmtpd recording every copy"
    print(
        f"Faults: lease {options.lease} s, sweep every {options.sweep_every:g} s, two "
        f"`distributor worker -c {options.procs}`, {relay}; {elapsed / 60:.1f} min"
    )
    batch_s = 15 if options.quick else 30
    print(
        f"  7/7s: 100-row batches of ~{batch_s} s (a relay taking {batch_s / 100:.2f} s a "
        f"message), Celery's visibility timeout 10 s; lease {2 * batch_s} s (7) or "
        f"{options.lease} s (7s). 3: lease 60 s, retry after {2 if options.quick else 5} s "
        f"doubling up to {4 if options.quick else 20} s, 421 for {options.closing_s:g} s. "
        f"5: cut for {options.pg_down_s:g} s. 4/4b: Redis down {options.redis_down_s:g} s."
    )
    print(results_table(rows))
    print("\nNotes")
    print(notes_text(rows))
    code_after = code_state()
    print(f"\ncode measured: {code_before}" + ("" if code_after == code_before else
          f"\n  CHANGED during the run, now: {code_after}"))  # fmt: skip
    if args.keep_logs:
        print(f"worker logs: {work}")
    return 0 if all(r.verdict().startswith("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
