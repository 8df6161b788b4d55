"""Celery worker groups for bench/faults.py: real ``distributor worker -c N`` subprocesses
(each in its own process group) that the bench can kill with SIGKILL — one pool process, or
the whole group — and start again."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
DISTRIBUTOR = Path(sys.executable).parent / "distributor"
_FLAGS = ["-Q", "distributor", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
          "-O", "fair"]  # fmt: skip
_RECEIVED = re.compile(r"Task distributor\.send_batch\[([0-9a-f-]+)\] received")


class WorkerGroup:
    """One worker (a Celery main process and ``procs`` pool processes), logging to
    ``log_path`` across restarts. ``app`` other than ``worker.app`` runs that Celery app
    (a module in bench/) instead of ``distributor worker``."""

    def __init__(
        self, name: str, env: dict[str, str], log_path: Path, procs: int, app: str | None = None
    ) -> None:
        self.name, self.env, self.log_path, self.procs, self.app = name, env, log_path, procs, app
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._offset = 0

    def _command(self) -> list[str]:
        if self.app is None:
            return [str(DISTRIBUTOR), "worker", "-c", str(self.procs)]
        return [sys.executable, "-m", "celery", "-A", self.app, "worker",
                "-c", str(self.procs), "-n", f"{self.name}@%h", *_FLAGS]  # fmt: skip

    def start(self) -> None:
        """Start the worker and wait until it is ready to take tasks."""
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Start the worker (see :meth:`wait_ready`)."""
        env = dict(self.env)
        if self.app is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(REPO / "bench"), str(REPO)])
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self._command(), env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.starts += 1
        self._offset = offset

    def wait_ready(self) -> None:
        """Wait until the worker last launched is ready to take tasks."""
        assert self.proc is not None
        deadline = time.monotonic() + 60
        while b" ready." not in self.log_path.read_bytes()[self._offset :]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.name} did not start; see {self.log_path}")
            time.sleep(0.1)

    def ready(self) -> bool:
        """Running and ready to take tasks (a worker still starting dies of a lost pool
        process: Celery's "Could not start worker processes")."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        return b" ready." in self.log_path.read_bytes()[self._offset :]

    def exited(self) -> bool:
        """Launched, and its main process has ended."""
        return self.proc is not None and self.proc.poll() is not None

    def pool(self) -> list[psutil.Process]:
        """The pool processes (the main process's children)."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            children: list[psutil.Process] = psutil.Process(self.proc.pid).children()
            return children
        except psutil.NoSuchProcess:
            return []

    def kill_pool_process(self) -> bool:
        """SIGKILL one pool process chosen at random (the main process starts another)."""
        pool = self.pool()
        if not pool:
            return False
        try:
            random.choice(pool).send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL the whole worker (main and pool processes) at once."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """Stop gracefully (SIGTERM), or kill after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def pool_kills(self) -> int:
        """Pool processes that died of SIGKILL, as the main process logged them."""
        return self.log().count("exited with 'signal 9 (SIGKILL)'")

    def lost_leases(self) -> int:
        """Outcomes a batch could not record because another worker had taken its row."""
        return self.log().count("before its outcome was recorded")

    def batches_received(self) -> tuple[int, int]:
        """send_batch tasks received: (deliveries, distinct task ids)."""
        ids = _RECEIVED.findall(self.log())
        return len(ids), len(set(ids))
