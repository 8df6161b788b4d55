"""One end-to-end run for bench/pipeline.py: a real ``distributor worker -c P`` subprocess on
Redis db 12, a fresh database, publish, watch the sink until every message arrived, then check
the ledger against the sink and measure the worker's CPU and memory.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
from _fixture import Dataset, broker_url, settings_env
from _sinks import Sink
from sqlalchemy import func, select

from distributor import actions
from distributor.core.db import session_scope
from distributor.core.models import Delivery, Release
from distributor.core.queue import TaskQueue
from distributor.outbox.ledger import counts
from tests.redis_db import empty

DISTRIBUTOR = Path(sys.executable).parent / "distributor"
REPO = Path(__file__).resolve().parent.parent
STALL_SECONDS = 30.0  # no message for this long: the run is declared stuck
_SUCCEEDED = re.compile(r"Task distributor\.(\w+)\[[^\]]+\] succeeded in ([0-9.]+)s")


@dataclass
class RunResult:
    label: str
    subscribers: int
    planned: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    at_sink: int = 0
    duplicates: int | None = None
    signed: bool = False  # DKIM-signed by the worker
    signatures: tuple[int, int] | None = None  # (verified, failed) at the sink, if it checks
    complete: bool = False
    first_s: float = float("nan")  # publish → first ledger row sent
    first_sink_s: float = float("nan")  # publish → first message seen at the sink (polled)
    last_s: float = float("nan")  # publish → last ledger row sent
    last_sink_s: float = float("nan")  # publish → the last message seen at the sink (polled)
    planned_s: float = float("nan")  # publish → the release's ledger planned (planned_at)
    rate: float = 0.0  # sent / last_s: end to end
    steady_rate: float = 0.0  # between the first and the last message
    worker_cpu_per_1k: float = 0.0
    db_cpu_per_1k: float = 0.0
    sink_cpu_per_1k: float = 0.0
    redis_cpu_per_1k: float = 0.0
    bench_cpu_per_1k: float = 0.0
    machine_busy: float = 0.0  # fraction of all cores busy between publish and the last message
    foreign: float = 0.0  # fraction of all cores busy with something else (other processes)
    peak_rss_mb: float = 0.0  # sum over the worker's processes
    peak_pss_mb: float = 0.0  # the same, shared pages divided among the sharers
    peak_rss_proc_mb: float = 0.0  # the biggest single worker process (parent or child)
    distribute_s: float = float("nan")  # the distribute_release task, from the worker's log
    batch_mean_s: float = float("nan")
    batch_max_s: float = float("nan")
    batches: int = 0
    setup_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return self.statuses.get("sent", 0)

    @property
    def lost(self) -> int:
        return max(0, self.planned - self.at_sink)


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(procs: Iterable[psutil.Process]) -> float:
    """User + system CPU seconds of ``procs`` so far (one gone counts nothing)."""
    return sum(_cpu(procs).values())


def _cpu(procs: Iterable[psutil.Process]) -> dict[int, float]:
    out = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


def _named(*names: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith(names)]


_PG_SHARED = ("walwriter", "checkpointer", "background writer", "autovacuum")


def _postgres(database: str) -> list[psutil.Process]:
    """The server processes working for ``database``: its backends (connections) and the
    shared writers (WAL writer, checkpointer, background writer, autovacuum)."""
    out = []
    for p in _named("postgres"):
        try:
            title = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if f" {database} " in title or any(w in title for w in _PG_SHARED):
            out.append(p)
    return out


def _delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def _busy(t: psutil._common.scputimes) -> float:
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


class Worker:
    """``distributor worker -c procs`` as a subprocess (its own process group)."""

    def __init__(self, dataset: Dataset, procs: int, log_path: Path) -> None:
        empty(broker_url())
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(DISTRIBUTOR), "worker", "-c", str(procs)],
            env=settings_env(dataset.settings),
            cwd=REPO,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while b" ready." not in log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the worker did not start; see {log_path}")
            time.sleep(0.1)
        while len(_tree(self.proc.pid)) < procs + 1 and time.monotonic() < deadline:
            time.sleep(0.05)

    def processes(self) -> list[psutil.Process]:
        return _tree(self.proc.pid)

    def task_times(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for name, seconds in _SUCCEEDED.findall(self.log_path.read_text(errors="replace")):
            out.setdefault(name, []).append(float(seconds))
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        empty(broker_url())


def measure(
    label: str, dataset: Dataset, worker: Worker, sink: Sink, profiler: list[str] | None = None
) -> RunResult:
    """Publish the data set's release and follow it to the last message; ``profiler``, if
    given, is a command (py-spy) started against the worker for the duration of the run."""
    settings = dataset.settings
    result = RunResult(label, dataset.subscribers, signed=settings.dkim_key_file is not None)
    expected = dataset.subscribers
    database = settings.database_url.rsplit("/", 1)[1] if settings.database_url else None

    def groups() -> dict[str, dict[int, float]]:
        """CPU seconds so far of every process of each group, looked up afresh (PostgreSQL
        starts a backend for every new connection)."""
        return {
            "worker": _cpu(worker.processes()),
            "db": _cpu(_postgres(database)) if database else {},
            "redis": _cpu(_named("redis-server")),
            "sink": _cpu(sink.processes()),
            "bench": _cpu([psutil.Process()]),
        }

    sink.reset()
    base = sink.count()
    queue = TaskQueue(settings)
    spy = None
    if profiler:
        spy = subprocess.Popen(
            [*profiler, "--pid", str(worker.proc.pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # py-spy attaches to every process of the tree
    cpu0 = groups()
    machine0 = psutil.cpu_times()
    published_at = datetime.now(UTC)
    t0 = time.perf_counter()
    actions.publish(settings, queue, dataset.release_id)
    seen, last_change, next_memory = 0, t0, t0
    while True:
        time.sleep(0.05)
        now = time.perf_counter()
        at_sink = sink.count() - base
        if at_sink and result.first_sink_s != result.first_sink_s:
            result.first_sink_s = now - t0
        if at_sink != seen:
            seen, last_change = at_sink, now
        if now >= next_memory:
            next_memory = now + 0.5
            rss = pss = biggest = 0
            for p in worker.processes():
                try:
                    mem = p.memory_full_info()
                except psutil.NoSuchProcess:
                    continue
                rss, pss, biggest = rss + mem.rss, pss + mem.pss, max(biggest, mem.rss)
            result.peak_rss_mb = max(result.peak_rss_mb, rss / 2**20)
            result.peak_rss_proc_mb = max(result.peak_rss_proc_mb, biggest / 2**20)
            result.peak_pss_mb = max(result.peak_pss_mb, pss / 2**20)
        if at_sink >= expected:
            result.last_sink_s = now - t0
            break
        if now - last_change > STALL_SECONDS:
            result.notes.append(f"stalled: no message for {STALL_SECONDS:.0f} s")
            break
    elapsed = time.perf_counter() - t0
    cpu1 = groups()
    machine1 = psutil.cpu_times()
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    queue.close()
    time.sleep(1.0)  # anything sent twice would arrive now
    result.at_sink = sink.count() - base
    result.duplicates = sink.duplicates()
    result.signatures = sink.signatures()
    if result.duplicates is None and result.at_sink > expected:
        result.duplicates = result.at_sink - expected
    with session_scope(settings) as session:
        result.statuses = counts(session, dataset.release_id)
        first, last = session.execute(
            select(func.min(Delivery.sent_at), func.max(Delivery.sent_at)).where(
                Delivery.release_id == dataset.release_id
            )
        ).one()
        planned_at = session.get_one(Release, dataset.release_id).planned_at
    result.planned = sum(result.statuses.values())
    result.complete = result.sent == result.planned == expected == result.at_sink
    if planned_at is not None:
        result.planned_s = (planned_at - published_at).total_seconds()
    if first is not None and last is not None:
        result.first_s = (first - published_at).total_seconds()
        result.last_s = (last - published_at).total_seconds()
        result.rate = result.sent / result.last_s
        if last > first:
            result.steady_rate = (result.sent - 1) / (last - first).total_seconds()
    per_1k = 1000 / max(result.sent, 1)
    used = {name: _delta(cpu0[name], cpu1[name]) for name in cpu0}
    result.worker_cpu_per_1k = used["worker"] * per_1k
    result.db_cpu_per_1k = used["db"] * per_1k
    result.sink_cpu_per_1k = used["sink"] * per_1k
    result.redis_cpu_per_1k = used["redis"] * per_1k
    result.bench_cpu_per_1k = used["bench"] * per_1k
    capacity = elapsed * (psutil.cpu_count() or 1)
    busy = _busy(machine1) - _busy(machine0)
    result.machine_busy = busy / capacity
    # CPU used by processes that are not part of the run (the kernel's own work counts too).
    result.foreign = max(0.0, busy - sum(used.values())) / capacity
    times = worker.task_times()
    if times.get("distribute_release"):
        result.distribute_s = times["distribute_release"][0]
    if times.get("send_batch"):
        result.batches = len(times["send_batch"])
        result.batch_mean_s = statistics.mean(times["send_batch"])
        result.batch_max_s = max(times["send_batch"])
    return result
