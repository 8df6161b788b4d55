"""A redis-server of bench/faults.py's own (never the shared one on 6379): started as a
subprocess on a free port with no persistence, so it can be stopped and restarted at will
(a restart loses every queued task, as a Redis without persistence does)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis
from _sinks import free_port


class RedisServer:
    """``url`` for DISTRIBUTOR_BROKER_URL; ``stop()`` (SIGKILL-like: nothing saved) and
    ``start()`` again on the same port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = shutil.which("redis-server") or "redis-server"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "redis.log").open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                client = redis.Redis(port=self.port, socket_timeout=1)
                client.ping()
                client.close()
                return self
            except redis.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start; see {self.workdir}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Kill the server (nothing is saved: its queues are gone)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def flush(self) -> None:
        client = redis.Redis(port=self.port)
        client.flushdb()
        client.close()
