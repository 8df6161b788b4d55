"""How long a release waits when a worker dies mid-send, with the production shape: the
default lease (``DISTRIBUTOR_LEASE_SECONDS``, or ``--lease``) and beat's real sweep (every
30 s), not bench/faults.py's sweep every few seconds.

Each run: a fresh SQLite data directory, N confirmed subscribers (2,000), a redis-server of
its own, an aiosmtpd sink counting copies per recipient, two ``distributor worker -c 1`` and
one ``distributor beat``; publish at ``DISTRIBUTOR_SEND_RATE`` (100/s, so a 250-row batch
takes seconds); once 300 messages are sent (both workers mid-batch), SIGKILL one worker
(its whole process group, not restarted); time until every row is sent. Prints each run
and the median with min and max.

    .venv/bin/python bench/recovery.py [--runs 3] [--lease SECONDS] [--subscribers N]
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from _fault_workers import DISTRIBUTOR, REPO, WorkerGroup
from _fixture import populate, settings_env
from _redis import RedisServer
from _report import code_state, say, table
from _sinks import AioSink
from sqlalchemy import func, select

from distributor import actions
from distributor.core.config import Settings, load_settings
from distributor.core.db import dispose_engines, session_scope, upgrade
from distributor.core.models import Delivery, DeliveryStatus
from distributor.core.queue import TaskQueue

KILL_AFTER = 300  # messages sent before the kill: both workers are then mid-batch


@dataclass
class Run:
    lease: int
    kill_s: float  # publish → kill
    recovery_s: float  # kill → every row sent
    total_s: float  # publish → every row sent
    rows: int
    extra_copies: int  # messages beyond one per recipient (rows in doubt, sent again)


def sent(settings: Settings) -> tuple[int, int]:
    """(rows sent, rows planned) of the ledger."""
    with session_scope(settings) as session:
        total = session.scalar(select(func.count()).select_from(Delivery)) or 0
        done = session.scalar(select(func.count()).where(Delivery.status == DeliveryStatus.SENT))
    return int(done or 0), int(total)


def one_run(n: int, subscribers: int, lease: int | None, rate: float, work: Path) -> Run:
    with ExitStack() as stack:
        data = Path(tempfile.mkdtemp(prefix="recovery-", dir=work))
        redis = RedisServer(data / "redis").start()
        stack.callback(redis.stop)
        sink = AioSink()
        stack.callback(sink.stop)
        extra: dict[str, object] = {} if lease is None else {"lease_seconds": lease}
        settings = load_settings(
            data_dir=data / "var", broker_url=redis.url, smtp_url=sink.url, send_rate=rate,
            site_url="https://news.example.org", secret_key="bench-secret-key-" + "x" * 32,
            sender="Agency Press Office <press@example.org>", **extra,
        )  # fmt: skip
        upgrade(settings)
        dataset = populate(settings, subscribers)
        env = settings_env(settings)
        workers = [WorkerGroup(f"w{i}", env, data / f"worker{i}.log", 1) for i in (1, 2)]
        for w in workers:
            w.launch()
            stack.callback(w.stop)
        with (data / "beat.log").open("ab") as log:
            beat = subprocess.Popen(
                [str(DISTRIBUTOR), "beat"], env=env, cwd=REPO, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        stack.callback(beat.wait)  # callbacks run last in, first out: terminate, then wait
        stack.callback(beat.terminate)
        for w in workers:
            w.wait_ready()
        say(f"run {n}: lease {settings.lease_seconds} s, {subscribers} subscribers, publishing")
        queue = TaskQueue(settings)
        stack.callback(queue.close)
        published = time.monotonic()
        actions.publish(settings, queue, dataset.release_id)
        while sent(settings)[0] < KILL_AFTER:
            if time.monotonic() - published > 120:
                raise RuntimeError(f"nothing sent after 120 s; see {data}")
            time.sleep(0.05)
        workers[0].kill()
        killed = time.monotonic()
        say(f"run {n}: worker 1 killed {killed - published:.1f} s after publishing")
        while True:
            done, total = sent(settings)
            if total and done == total:
                break
            if time.monotonic() - killed > 1200:
                raise RuntimeError(f"not drained 20 minutes after the kill; see {data}")
            time.sleep(0.2)
        finished = time.monotonic()
        extra_copies = sink.count() - total
        say(f"run {n}: all {total} sent {finished - killed:.1f} s after the kill")
        dispose_engines()
        shutil.rmtree(data, ignore_errors=True)
        return Run(settings.lease_seconds, killed - published, finished - killed,
                   finished - published, total, extra_copies)  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--lease", type=int, help="DISTRIBUTOR_LEASE_SECONDS (default: its default)"
    )
    parser.add_argument("--subscribers", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=100.0, help="DISTRIBUTOR_SEND_RATE")
    args = parser.parse_args()
    code = code_state()
    work = Path(tempfile.mkdtemp(prefix="distributor-recovery-"))
    try:
        runs = [one_run(n, args.subscribers, args.lease, args.rate, work)
                for n in range(1, args.runs + 1)]  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [[str(i), f"{r.lease}", f"{r.kill_s:.1f}", f"{r.recovery_s:.1f}", f"{r.total_s:.1f}",
             str(r.rows), str(r.extra_copies)] for i, r in enumerate(runs, 1)]  # fmt: skip
    print(f"Recovery after a SIGKILLed worker: sweep every 30 s (beat), send rate "
          f"{args.rate:g}/s, two `distributor worker -c 1`, SQLite")  # fmt: skip
    print(table(["run", "lease s", "kill at s", "kill → all sent s", "publish → all sent s",
                 "rows", "extra copies"], rows))  # fmt: skip
    recovery = [r.recovery_s for r in runs]
    print(
        f"  recovery (kill → all sent): median {statistics.median(recovery):.1f} s, "
        f"min {min(recovery):.1f}, max {max(recovery):.1f}"
    )
    print(f"code measured: {code}" + ("" if code_state() == code else " (CHANGED during run)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
