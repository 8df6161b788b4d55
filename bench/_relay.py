"""A real relay for bench/pipeline.py: a private Postfix on loopback (the tests' own,
tests/postfix.py: its own configuration, queue and data directories under a temporary
directory, its own smtpd port, started with ``postfix -c DIR start``, stopped and removed on
the way out, the machine's own Postfix untouched) relaying everything to an ``smtp-sink``
behind it; and Postfix's own ceiling, measured with Postfix's ``smtp-source``.

The instance runs the compose relay's ``main.cf`` (deploy/postfix/main.cf) with what a
loopback bench needs on top: ``relayhost = [127.0.0.1]:<smtp-sink port>``, no DNS
(``smtp_host_lookup = native``, ``smtp_dns_support_level = disabled``), no TLS towards the
sink, ``inet_interfaces = 127.0.0.1``, ``mynetworks = 127.0.0.0/8``; no local delivery (the
compose relay's ``mydestination`` is empty already). Its queue is on whatever disk holds
``/tmp``, with Postfix's fsync of every queue file, as the compose relay's volume would be.
"""

from __future__ import annotations

import resource
import subprocess
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psutil
from _sinks import Sink, SmtpSink

from tests.postfix import Postfix, running_postfix, unavailable

SMTP_SOURCE = "/usr/sbin/smtp-source"
COMPOSE_MAIN_CF = Path(__file__).resolve().parent.parent / "deploy" / "postfix" / "main.cf"
# On top of the compose relay's main.cf: a relay on loopback to the sink, nothing else.
BENCH_SETTINGS = {
    "myhostname": "relay.bench.test",
    "mynetworks": "127.0.0.0/8",
    "smtp_host_lookup": "native",
    "smtp_dns_support_level": "disabled",
    "smtp_tls_security_level": "none",  # smtp-sink offers no STARTTLS
}
ARRIVAL_STALL_S = 30.0  # nothing more reached the sink for this long: give up waiting


class PostfixRelay(Sink):
    """A private Postfix in front of its own ``smtp-sink``: ``url`` is Postfix's smtpd;
    ``count()`` is what reached the smtp-sink behind it (so a run that waits for the count
    waits for Postfix's queue to drain); its CPU is Postfix's daemons' plus the sink's.
    ``parent``: where its directory (configuration, queue, log) is made, e.g. a tmpfs to
    see what the queue's disk costs."""

    name = "postfix"

    def __init__(
        self, settings: Mapping[str, str] | None = None, parent: Path | None = None
    ) -> None:
        reason = unavailable()
        if reason is not None:
            raise RuntimeError(f"the postfix sink kind needs a private Postfix: {reason}")
        self._stack = ExitStack()
        self.behind = SmtpSink()
        self._stack.callback(self.behind.stop)
        try:
            self.postfix: Postfix = self._stack.enter_context(
                running_postfix(
                    ("127.0.0.1", self.behind.port),
                    base=COMPOSE_MAIN_CF.read_text(),
                    settings={**BENCH_SETTINGS, **(settings or {})},
                    parent=parent,
                )
            )
        except BaseException:
            self._stack.close()
            raise
        self.port = self.postfix.port
        self.proc = self.behind.proc

    def count(self) -> int:
        return self.behind.count()

    def processes(self) -> list[psutil.Process]:
        out = self.behind.processes()
        pid_file = self.postfix.queue_dir / "pid" / "master.pid"
        try:
            master = psutil.Process(int(pid_file.read_text().split()[0]))
            out += [master, *master.children(recursive=True)]
        except (OSError, ValueError, psutil.NoSuchProcess):
            pass
        return out

    def settings(self) -> dict[str, str]:
        """The instance's effective main.cf values that matter for throughput (postconf)."""
        names = [
            "default_process_limit",
            "smtpd_client_connection_count_limit",
            "in_flow_delay",
            "default_destination_concurrency_limit",
            "smtp_destination_concurrency_limit",
            "smtp_connection_cache_on_demand",
            "qmgr_message_active_limit",
        ]
        found = subprocess.run(
            ["postconf", "-c", str(self.postfix.config_dir), *names],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        return dict(
            (name.strip(), value.strip())
            for name, _, value in (line.partition("=") for line in found.splitlines())
        )

    def stop(self) -> None:
        self._stack.close()


@dataclass(frozen=True)
class SourceRun:
    """One smtp-source run into the relay: messages, seconds until smtp-source had handed
    them all to Postfix, seconds until the last reached the sink behind it."""

    messages: int
    arrived: int
    accepted_s: float
    arrived_s: float
    source_cpu_s: float  # smtp-source's own CPU time
    relay_cpu_s: float  # Postfix's daemons' and the smtp-sink's behind it

    @property
    def rate(self) -> float:
        """Messages per second as received by the sink behind Postfix."""
        return self.arrived / self.arrived_s if self.arrived_s else 0.0

    @property
    def accept_rate(self) -> float:
        return self.messages / self.accepted_s if self.accepted_s else 0.0


def smtp_source(relay: PostfixRelay, sessions: int, count: int, size: int) -> SourceRun:
    """Postfix's ``smtp-source`` sending ``count`` messages of ``size`` bytes over
    ``sessions`` parallel sessions (each kept open: ``-d``, as a worker keeps its
    connection), each to a recipient of its own (``-N``), into the relay; timed until the
    last one reached the sink behind it (polled every 20 ms)."""
    before = relay.count()
    relay_cpu0 = _cpu(relay.processes())
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    source = subprocess.Popen(
        [
            SMTP_SOURCE,
            "-d",
            "-N",
            "-s",
            str(sessions),
            "-m",
            str(count),
            "-l",
            str(size),
            "-f",
            "press@example.org",
            "-t",
            "journalist@newsroom.example.com",
            f"127.0.0.1:{relay.port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    accepted_s = float("nan")
    seen, last_change, arrived_at = 0, t0, t0
    while True:
        time.sleep(0.02)
        now = time.perf_counter()
        if accepted_s != accepted_s and source.poll() is not None:
            accepted_s = now - t0
            if source.returncode:
                error = source.stderr.read().decode(errors="replace") if source.stderr else ""
                raise RuntimeError(f"smtp-source failed ({source.returncode}): {error}")
        arrived = relay.count() - before
        if arrived != seen:
            seen, last_change, arrived_at = arrived, now, now
        if arrived >= count or now - last_change > ARRIVAL_STALL_S:
            break
    if source.poll() is None:
        source.kill()
    source.wait()
    if source.stderr:
        source.stderr.close()
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    source_cpu = (children1.ru_utime + children1.ru_stime) - (
        children0.ru_utime + children0.ru_stime
    )
    relay_cpu1 = _cpu(relay.processes())
    relay_cpu = sum(t - relay_cpu0.get(pid, 0.0) for pid, t in relay_cpu1.items())
    return SourceRun(count, seen, accepted_s, arrived_at - t0, source_cpu, relay_cpu)


def _cpu(processes: list[psutil.Process]) -> dict[int, float]:
    """CPU seconds so far of each process still there (a daemon that exits in between takes
    its time with it: Postfix keeps its smtpd and cleanup for ``max_idle``, 100 s)."""
    out = {}
    for p in processes:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[p.pid] = t.user + t.system
    return out
