"""SMTP sinks for bench/pipeline.py: Postfix's ``smtp-sink`` and an aiosmtpd server, each run
as a subprocess that counts what it accepted.

Run as a script (``python bench/_sinks.py PORT [DKIM-RECORD]``) it is the aiosmtpd sink: it
answers one JSON line of counters for every line read on stdin, and stops at end of input.
Given the TXT record of a DKIM key, it also checks the signature of every message it
accepts with dkimpy's verifier (which slows it down: a run into it measures correctness,
not speed).
"""

from __future__ import annotations

import collections
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import psutil

SMTP_SINK = "/usr/sbin/smtp-sink"
_MESG = re.compile(rb"mesg=(\d+)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[Any], what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.recv(100)  # the greeting: the server is really answering
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} is not listening on port {port}")


class Sink:
    """A running SMTP sink subprocess: ``url`` for DISTRIBUTOR_SMTP_URL, ``count()`` messages
    accepted since it started, ``duplicates()`` when it can tell, ``stop()``."""

    name = "sink"
    port: int
    proc: subprocess.Popen[Any]

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def count(self) -> int:
        raise NotImplementedError

    def duplicates(self) -> int | None:
        """Messages beyond the first to the same recipient since :meth:`reset`; None if the
        sink cannot tell."""
        return None

    def reset(self) -> None:
        """Forget the recipients seen so far (the message count keeps running)."""

    def signatures(self) -> tuple[int, int] | None:
        """(verified, failed) DKIM signatures since :meth:`reset`; None if the sink does not
        check them."""
        return None

    def processes(self) -> list[psutil.Process]:
        """The processes whose CPU time is the sink's (the subprocess and its children)."""
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class SmtpSink(Sink):
    """Postfix ``smtp-sink -c``: announces PIPELINING, throws messages away, and writes a
    running counter (``sess=N quit=N mesg=N`` followed by CR) after every message."""

    name = "smtp-sink"

    def __init__(self) -> None:
        self.port = free_port()
        self._out = tempfile.NamedTemporaryFile(prefix="bench-smtp-sink-", suffix=".out")
        # -u nobody: required when run as root (it drops privileges after binding).
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-c", "-u", "nobody", f"127.0.0.1:{self.port}", "1000"],
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )
        _wait_listening(self.port, self.proc, "smtp-sink")

    def count(self) -> int:
        with open(self._out.name, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 200))
            found = _MESG.findall(f.read())
        return int(found[-1]) if found else 0

    def stop(self) -> None:
        super().stop()
        self._out.close()


class AioSink(Sink):
    """aiosmtpd (this file run as a script): counts messages per recipient, so it can report
    duplicates, and check DKIM signatures; much slower than smtp-sink."""

    name = "aiosmtpd"

    def __init__(self, dkim_record: str | None = None) -> None:
        self.port = free_port()
        self.checks_dkim = dkim_record is not None
        self.proc = subprocess.Popen(
            [sys.executable, __file__, str(self.port), *([dkim_record] if dkim_record else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lock = threading.Lock()
        self._ask()  # answers once the server is started
        _wait_listening(self.port, self.proc, "aiosmtpd sink")

    def _ask(self, command: str = "?") -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the aiosmtpd sink exited")
        return dict(json.loads(line))

    def count(self) -> int:
        return self._ask()["messages"]

    def duplicates(self) -> int:
        return self._ask()["duplicates"]

    def reset(self) -> None:
        self._ask("reset")

    def signatures(self) -> tuple[int, int] | None:
        if not self.checks_dkim:
            return None
        answer = self._ask()
        return answer["dkim_verified"], answer["dkim_failed"]

    def stop(self) -> None:
        if self.proc.stdin is not None and self.proc.poll() is None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            super().stop()


def _serve_aiosmtpd(port: int, dkim_record: str | None) -> None:
    import dkim
    from aiosmtpd.controller import Controller

    counts: collections.Counter[str] = collections.Counter()  # per recipient, since reset
    signatures: collections.Counter[str] = collections.Counter()  # since reset
    total = 0
    lock = threading.Lock()

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return dkim_record.encode() if dkim_record else None

    class Counting:
        async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
            nonlocal total
            verified = dkim_record is not None and dkim.verify(envelope.content, dnsfunc=dns)
            with lock:
                counts.update(envelope.rcpt_tos)
                total += len(envelope.rcpt_tos)
                if dkim_record is not None:
                    signatures["dkim_verified" if verified else "dkim_failed"] += 1
            return "250 Message accepted"

    controller = Controller(
        Counting(), hostname="127.0.0.1", port=port, data_size_limit=64 * 1024 * 1024
    )
    controller.start()
    try:
        for command in sys.stdin:
            with lock:
                if command.strip() == "reset":
                    counts.clear()
                    signatures.clear()
                answer = {
                    "messages": total,
                    "duplicates": sum(counts.values()) - len(counts),
                    "dkim_verified": signatures["dkim_verified"],
                    "dkim_failed": signatures["dkim_failed"],
                }
            print(json.dumps(answer), flush=True)
    finally:
        controller.stop()


if __name__ == "__main__":
    _serve_aiosmtpd(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)
