"""Writes tests/data/postfix/: what the real Postfix logs, in every format a Postfix log comes
in, for the same traffic — three messages taken, then one cut before its final dot — so
tests/test_postfix.py can check that the reconciler reads each.

- ``maillog*.log``: Postfix's own ``maillog_file`` (postlogd), short and long queue ids;
- ``syslog-traditional*.log``: syslog through rsyslog's ``RSYSLOG_TraditionalFileFormat``
  (``Dec  5 16:45:41 relay postfix/cleanup[123]: …``);
- ``syslog-rfc3339*.log``: the same messages through ``RSYSLOG_FileFormat``, rsyslog's
  high-precision RFC 3339 timestamps (``2026-12-05T16:45:41.123456+00:00 relay …``).

The syslog files are written by Debian's rsyslogd itself, run as a private process that
listens on the private Postfix's ``QUEUE/dev/log`` (its chrooted daemons log there, as
Debian's do): the system's ``/dev/log`` is never touched, and rsyslog need not be installed,
only unpacked::

    mkdir /tmp/rsyslog && cd /tmp/rsyslog
    apt-get download rsyslog libestr0 libfastjson4 liblognorm5
    for deb in *.deb; do dpkg -x "$deb" root; done
    cd - && .venv/bin/python -m tests.postfix_samples --rsyslog /tmp/rsyslog/root

Run as root with Debian's postfix installed (tests/postfix.py). Not run by the tests: the
files it writes are committed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.postfix import Postfix, running_postfix
from tests.smtp_server import SMTPServer

OUT = Path(__file__).parent / "data" / "postfix"
TAKEN = [f"<release-7.{n}@news.example.org>" for n in (1, 2, 3)]
CUT = "<release-7.4@news.example.org>"  # its data cut before the final dot
SENDER = "bounces+7@news.example.org"


def message(message_id: str, rcpt: str, body_bytes: int = 200) -> bytes:
    body = "The Agency today signed a cooperation agreement.\r\n" * (body_bytes // 50 + 1)
    return (
        f"From: Press Office <press@news.example.org>\r\nTo: {rcpt}\r\n"
        f"Subject: Agency signs agreement\r\nMessage-ID: {message_id}\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()


def send_traffic(relay: Postfix) -> None:
    """Three messages taken, then one whose connection is cut inside its data: Postfix's
    cleanup has seen its headers (and logged its Message-ID), never its final dot."""
    with smtplib.SMTP("127.0.0.1", relay.port) as smtp:
        for n, message_id in enumerate(TAKEN):
            smtp.sendmail(SENDER, [f"p{n}@example.com"], message(message_id, f"p{n}@example.com"))
    with (
        socket.create_connection(("127.0.0.1", relay.port)) as conn,
        conn.makefile("rb") as replies,
    ):
        replies.readline()  # 220
        conn.sendall(b"EHLO worker.test\r\n")
        while replies.readline()[3:4] == b"-":
            pass
        for command in (f"MAIL FROM:<{SENDER}>", "RCPT TO:<p3@example.com>", "DATA"):
            conn.sendall(command.encode() + b"\r\n")
            replies.readline()
        # More than a buffer's worth, so smtpd hands the headers to cleanup before the cut.
        conn.sendall(message(CUT, "p3@example.com", body_bytes=64_000))
        time.sleep(0.5)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    relay.wait_delivered()
    time.sleep(0.5)  # postlogd / rsyslog write asynchronously


RSYSLOG_CONF = """\
global(workDirectory="{work}" localHostname="relay")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{socket}")
*.* action(type="omfile" file="{traditional}" template="RSYSLOG_TraditionalFileFormat")
*.* action(type="omfile" file="{rfc3339}" template="RSYSLOG_FileFormat")
"""


@contextmanager
def rsyslogd(unpacked: Path, socket_path: Path, traditional: Path, rfc3339: Path) -> Iterator[None]:
    """Debian's rsyslogd, unpacked in ``unpacked``, receiving on ``socket_path`` and writing
    each message in both formats; stopped on the way out."""
    work = Path(tempfile.mkdtemp(prefix="rsyslog-"))
    conf = work / "rsyslog.conf"
    conf.write_text(
        RSYSLOG_CONF.format(work=work, socket=socket_path, traditional=traditional, rfc3339=rfc3339)
    )
    libs = unpacked / "usr" / "lib" / "x86_64-linux-gnu"
    env = {**os.environ, "LD_LIBRARY_PATH": str(libs)}
    proc = subprocess.Popen(
        [str(unpacked / "usr" / "sbin" / "rsyslogd"), "-n", "-f", str(conf),
         "-i", str(work / "rsyslogd.pid"), "-M", str(libs / "rsyslog")],
        env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "rsyslogd did not start"
            time.sleep(0.05)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rsyslog", type=Path, required=True, help="unpacked rsyslog .debs")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sink = SMTPServer().start()
    try:
        for long_ids in (False, True):
            suffix = "-long-ids" if long_ids else ""
            with running_postfix(("127.0.0.1", sink.port), long_queue_ids=long_ids) as relay:
                send_traffic(relay)
                (args.out / f"maillog{suffix}.log").write_bytes(relay.log.read_bytes())
            with running_postfix(
                ("127.0.0.1", sink.port), long_queue_ids=long_ids, syslog=True
            ) as relay:
                traditional = args.out / f"syslog-traditional{suffix}.log"
                rfc3339 = args.out / f"syslog-rfc3339{suffix}.log"
                for path in (traditional, rfc3339):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                with rsyslogd(args.rsyslog, relay.syslog_socket, traditional, rfc3339):
                    send_traffic(relay)
    finally:
        sink.stop()
    for path in sorted(args.out.glob("*.log")):
        print(f"{path}: {len(path.read_bytes().splitlines())} lines")


if __name__ == "__main__":
    main()
