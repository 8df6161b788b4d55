"""A private Postfix (Debian's package) for tests and benchmarks: its own configuration,
queue and log in a temporary directory, listening on a free loopback port, relaying
everything to a sink on loopback. It changes nothing of the system's Postfix (it reads the
package's ``/etc/postfix/postfix-files``, writes nothing there, never uses the system's queue
or port 25), and its processes are stopped on the way out.

Used by tests/test_postfix.py and bench/faults.py (``--relay postfix``), so the bench and the
tests run the same relay. The settings a private instance needs (README, "Testing"):

- ``maillog_file`` in the instance's directory, which ``maillog_file_prefixes`` must allow,
  written by the ``postlog`` service (``postlogd``) in ``master.cf``, chroot off;
- ``data_directory`` owned by ``postfix``; the queue directory is created by ``postfix
  start`` itself (``postfix-script`` makes its subdirectories with the right owners);
- every service unchrooted (Debian's ``master.cf`` chroots most: they would need copies
  of ``/etc`` files in the queue directory), but in ``syslog`` mode, where the services
  that log a message's way (smtpd, cleanup, qmgr, smtp) are chrooted on purpose: a
  chrooted Postfix daemon logs to ``QUEUE/dev/log``, as Debian's does, which lets a
  syslog daemon of our own receive its log without touching the system's ``/dev/log``;
- no local delivery: ``mydestination`` empty, ``local_transport`` an error.

Postfix must run as root (its master starts the daemons as ``mail_owner``):
:func:`unavailable` says why it cannot run here.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests import tools
from tests.helpers import free_port

POSTFIX = tools.POSTFIX.path  # DISTRIBUTOR_TEST_POSTFIX, else Debian's
MAIL_OWNER = tools.POSTFIX.user or "postfix"
# The queue's subdirectories where a message waits (not hold/, corrupt/: those never leave).
_WAITING = ("maildrop", "incoming", "active", "deferred")
# The services a relay needs, as Debian's master.cf names them, chroot off; ``{chroot}``
# is ``y`` in syslog mode for the ones whose lines a log of its mail needs.
_MASTER_CF = """\
{listen} inet  n - {chroot} - - smtpd
pickup     unix  n - n - 1 pickup
cleanup    unix  n - {chroot} - 0 cleanup
qmgr       unix  n - {chroot} 300 1 qmgr
rewrite    unix  - - n - - trivial-rewrite
bounce     unix  - - n - 0 bounce
defer      unix  - - n - 0 bounce
trace      unix  - - n - 0 bounce
verify     unix  - - n - 1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n - - proxymap
proxywrite unix  - - n - 1 proxymap
smtp       unix  - - {chroot} - - smtp
relay      unix  - - {chroot} - - smtp
showq      unix  n - n - - showq
error      unix  - - n - - error
retry      unix  - - n - - error
discard    unix  - - n - - discard
anvil      unix  - - n - 1 anvil
scache     unix  - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
"""


def unavailable() -> str | None:
    """Why a private Postfix cannot run on this machine, or None when it can."""
    return tools.POSTFIX.missing()


@dataclass(frozen=True)
class Postfix:
    """A running private Postfix: SMTP on 127.0.0.1:``port``, its files under ``root``."""

    root: Path
    port: int
    syslog: bool

    @property
    def url(self) -> str:
        """``DISTRIBUTOR_SMTP_URL`` for this relay."""
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def config_dir(self) -> Path:
        return self.root / "etc"

    @property
    def queue_dir(self) -> Path:
        return self.root / "spool"

    @property
    def log(self) -> Path:
        """Its ``maillog_file`` (written by postlogd; not in ``syslog`` mode)."""
        return self.root / "log" / "maillog"

    @property
    def syslog_socket(self) -> Path:
        """Where its chrooted daemons send their syslog lines (``syslog`` mode)."""
        return self.queue_dir / "dev" / "log"

    def waiting(self) -> int:
        """Messages in the queue not yet delivered or bounced."""
        return sum(
            len(files)
            for sub in _WAITING
            for _, _, files in os.walk(self.queue_dir / sub)  # hashed subdirectories
        )

    def wait_delivered(self, timeout: float = 60) -> None:
        """Return once the queue is empty; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.waiting():
            if time.monotonic() > deadline:
                raise AssertionError(f"Postfix still holds {self.waiting()} message(s)")
            time.sleep(0.05)


# What a relay for the tests sets apart from Postfix's defaults (deploy/postfix/main.cf, the
# compose relay's, can stand in for it: ``running_postfix(base=…)``).
_RELAY = {
    "compatibility_level": "3.6",
    "myhostname": "relay.test",
    "mydestination": "",
    "local_transport": "error:5.1.1 no local delivery on this relay",
    "alias_maps": "",
    "alias_database": "",
    "mynetworks": "127.0.0.0/8",
    "smtpd_relay_restrictions": "permit_mynetworks, reject",
    "smtp_tls_security_level": "none",
    "smtpd_banner": "$myhostname ESMTP",
}


def parse_main_cf(text: str) -> dict[str, str]:
    """The parameters of a ``main.cf`` text, in order (comments dropped, continuation
    lines joined)."""
    values: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and name:
            values[name] += " " + line.strip()
            continue
        name, _, value = line.partition("=")
        name = name.strip()
        values[name] = value.strip()
    return values


def main_cf(
    root: Path, relay: tuple[str, int], syslog: bool, settings: Mapping[str, str],
    base: str | None = None,
) -> str:  # fmt: skip
    """The instance's ``main.cf``: ``base`` (a main.cf text; by default, a relay's few
    settings) with this instance's directories, log, loopback address and relay host."""
    values = parse_main_cf(base) if base is not None else dict(_RELAY)
    values.update(
        {
            "queue_directory": str(root / "spool"),
            "data_directory": str(root / "data"),
            "maillog_file": "" if syslog else str(root / "log" / "maillog"),
            "maillog_file_prefixes": str(root / "log"),
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "relayhost": f"[{relay[0]}]:{relay[1]}",
            **settings,
        }
    )
    return "".join(f"{name} = {value}\n" for name, value in values.items())


@contextmanager
def running_postfix(
    relay: tuple[str, int],
    *,
    long_queue_ids: bool = False,
    syslog: bool = False,
    settings: Mapping[str, str] | None = None,
    base: str | None = None,
    parent: Path | None = None,
) -> Iterator[Postfix]:
    """A private Postfix relaying everything to ``relay`` (host, port) until the block ends,
    with ``enable_long_queue_ids`` if ``long_queue_ids``; its log in :attr:`Postfix.log`, or,
    if ``syslog``, sent by its smtpd, cleanup, qmgr and smtp to :attr:`Postfix.syslog_socket`
    (whoever wants it listens there before sending mail). ``base`` is the main.cf to start
    from (by default, a relay's few settings), ``settings`` more main.cf parameters;
    ``parent`` the directory its own is made in (by default the system's temporary one).
    Raises AssertionError, with Postfix's own words, if it does not start."""
    reason = unavailable()
    assert reason is None, reason
    # Postfix's daemons run as `postfix`: every directory above theirs must be searchable,
    # which pytest's 0700 tmp_path is not; so a directory of our own in /tmp.
    root = Path(tempfile.mkdtemp(prefix="distributor-postfix-", dir=parent))
    root.chmod(0o755)
    owner = pwd.getpwnam(MAIL_OWNER)
    for sub in ("etc", "spool", "data", "log"):
        (root / sub).mkdir()
    os.chown(root / "data", owner.pw_uid, owner.pw_gid)
    if syslog:
        (root / "spool" / "dev").mkdir()
    port = free_port()
    extra = dict(settings or {})
    if long_queue_ids:
        extra["enable_long_queue_ids"] = "yes"
    (root / "etc" / "main.cf").write_text(main_cf(root, relay, syslog, extra, base))
    (root / "etc" / "master.cf").write_text(
        _MASTER_CF.format(listen=f"127.0.0.1:{port}", chroot="y" if syslog else "n")
    )
    for name in ("main.cf", "master.cf"):
        # `postfix` waits, reading main.cf again every 0.3 s, until the files are a few
        # seconds old: dated in the past, they start it at once.
        past = time.time() - 60
        os.utime(root / "etc" / name, (past, past))
    instance = Postfix(root, port, syslog)
    reaper: subprocess.Popen[bytes] | None = None
    try:
        reaper = subprocess.Popen(
            [sys.executable, "-c", _REAPER, str(POSTFIX), "-c", str(instance.config_dir), "start"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        _wait_banner(instance, reaper)
        yield instance
    finally:
        if reaper is not None:
            _stop(instance, reaper)
        shutil.rmtree(root, ignore_errors=True)


# `postfix start` leaves a daemon (the master, a session leader) whose parent has exited:
# reparented to PID 1, which in a container may never reap it, it and its daemons would
# stay zombies. So it is started from this small process, made their "subreaper"
# (prctl PR_SET_CHILD_SUBREAPER): they become its children, it reaps them all, and it exits
# once none is left, the sign that the instance is gone.
_REAPER = """\
import ctypes, os, subprocess, sys
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
started = subprocess.run(sys.argv[1:])
while started.returncode == 0:
    try:
        os.wait()
    except ChildProcessError:
        break
sys.exit(started.returncode)
"""


def _wait_banner(instance: Postfix, reaper: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Wait until smtpd answers with its 220 banner; AssertionError, with Postfix's words,
    if it does not start."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", instance.port), timeout=2) as conn:
                if conn.recv(512).startswith(b"220"):
                    conn.sendall(b"QUIT\r\n")
                    return
        except OSError:
            pass
        if reaper.poll() is not None or time.monotonic() > deadline:
            errors = reaper.stderr.read().decode(errors="replace") if reaper.stderr else ""
            raise AssertionError(f"Postfix did not start:\n{errors}{_tail(instance)}")
        time.sleep(0.05)


def _master_pid(instance: Postfix) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((instance.queue_dir / "pid" / "master.pid").read_text().split()[0])
    return None


def _stop(instance: Postfix, reaper: subprocess.Popen[bytes]) -> None:
    """What ``postfix stop`` does (SIGTERM to the master, which ends its daemons), without
    its one-second polls, until the reaper has seen every process of the instance end; then,
    if some linger, SIGKILL to the master's process group (its daemons)."""
    pid = _master_pid(instance)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        try:
            reaper.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    try:
        reaper.wait(timeout=5)
    except subprocess.TimeoutExpired:
        reaper.kill()  # nothing of the instance left to wait for, or nothing can be done
        reaper.wait()
    if reaper.stderr:
        reaper.stderr.close()


def _tail(instance: Postfix, lines: int = 20) -> str:
    if instance.syslog or not instance.log.exists():
        return ""
    text = instance.log.read_text(errors="replace").splitlines()[-lines:]
    return "\n" + "\n".join(text)
