"""Reconciliation against the real Postfix (Debian's package, a private instance per test,
tests/postfix.py): a `distributor worker` killed between Postfix's 250 and the ledger's
commit, the row then settled from Postfix's own log; and every format a Postfix log comes
in, as the real Postfix (and rsyslog) wrote it (tests/data/postfix/, tests/postfix_samples.py).

The tests that start a Postfix are marked ``needs("postfix")`` (tests/tools.py): skipped
where a private Postfix cannot run (not root, package missing), unless ``CI`` or
``DISTRIBUTOR_TEST_REQUIRE_POSTFIX`` is set, as ``.ci/run`` sets them: there, a missing
Postfix fails the run instead of skipping these tests silently.
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from distributor import actions
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Delivery, Subscriber
from distributor.core.queue import TaskQueue
from distributor.mail.reconcile import PostfixLogReconciler
from distributor.outbox import sending
from distributor.outbox.ledger import RECONCILED
from distributor.reporting.status import release_status
from tests.helpers import add_subscribers, add_topics, lease_runs_out, make_release, published
from tests.postfix import POSTFIX, Postfix, running_postfix
from tests.postfix_samples import CUT, OUT, SENDER, TAKEN, message, send_traffic
from tests.processes import running_command, settings_env, wait_until
from tests.smtp_server import SMTPServer

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(OUT.glob("*.log"))


# --- every format -------------------------------------------------------------------------


def test_every_format_has_a_sample() -> None:
    names = {path.name for path in SAMPLES}
    for kind in ("maillog", "syslog-traditional", "syslog-rfc3339"):
        assert {f"{kind}.log", f"{kind}-long-ids.log"} <= names


@pytest.mark.parametrize("sample", SAMPLES, ids=[path.stem for path in SAMPLES])
@pytest.mark.parametrize("block", [PostfixLogReconciler.BLOCK, 97], ids=["block", "small-blocks"])
def test_every_postfix_log_format_is_read(
    sample: Path, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The messages Postfix took are found; the one cut before its final dot, whose
    Message-ID Postfix logged all the same, is not."""
    text = sample.read_text()
    # What makes each file what it claims to be, as Postfix and rsyslog wrote it.
    stamp = {
        "maillog": r"[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d relay ",  # postlogd: "Dec 05"
        "syslog-traditional": r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d relay ",  # "Dec  5"
        "syslog-rfc3339": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d relay ",
    }[sample.stem.removesuffix("-long-ids")]
    assert all(re.match(stamp, line) for line in text.splitlines()), sample.name
    queue_ids = set(re.findall(r"postfix/cleanup\[\d+\]: (\w+): message-id=", text))
    assert len(queue_ids) == 4
    long_ids = sample.stem.endswith("-long-ids")
    assert all((len(q) > 12) == long_ids for q in queue_ids), queue_ids
    assert f"message-id={CUT}" in text and "lost connection after DATA" in text

    monkeypatch.setattr(PostfixLogReconciler, "BLOCK", block)
    asked = [*TAKEN, CUT, "<release-7.5@news.example.org>"]
    assert PostfixLogReconciler(sample).accepted(asked) == set(TAKEN)


# --- a worker killed between Postfix's 250 and the ledger's commit -------------------------


@pytest.fixture
def relay(smtp_server: SMTPServer) -> Iterator[Postfix]:
    """A private Postfix relaying to the test's SMTP server (which counts the copies)."""
    with running_postfix(("127.0.0.1", smtp_server.port)) as postfix:
        yield postfix


def _ledger(s: Settings, release_id: int) -> dict[str, tuple[str, str | None]]:
    with session_scope(s) as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status, Delivery.last_error)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.release_id == release_id)
        )
        return {email: (str(status), error) for email, status, error in rows}


def _open_rows(s: Settings, release_id: int) -> int:
    with session_scope(s) as session:
        return release_status(session, release_id).open


def _killed_then_recovered(
    s: Settings, relay: Postfix, sink: SMTPServer, tmp_path: Path
) -> tuple[Counter[str], dict[str, tuple[str, str | None]]]:
    """Publish a release to six subscribers through ``relay`` with a `distributor worker`
    whose pool process is killed at Postfix's third 250, before the ledger records it; then
    let a second worker finish the release (the sweep hands it the dead worker's rows).
    The copies the sink got per subscriber, and the ledger (email → status, last error)."""
    people = [f"p{i}@example.com" for i in range(6)]
    add_topics(s, "climate")
    add_subscribers(s, [(email, "P", "en", "climate") for email in people])
    release = make_release(s)
    queue = TaskQueue(s)
    args = ["worker", "-c", "1"]
    env = settings_env(s, DISTRIBUTOR_FAILPOINTS="after-accept@3")
    first_log = tmp_path / "first.log"
    with running_command(args, env, first_log, stop_timeout=1) as first:
        actions.publish(s, queue, release.id)
        wait_until(lambda: "signal 9" in first_log.read_text(), 60, "the failpoint's kill")
        os.killpg(first.pid, signal.SIGKILL)  # nothing of it is needed any more
    relay.wait_delivered()
    assert len(sink.handler.messages) == 3  # Postfix took three messages...
    statuses = Counter(status for status, _ in _ledger(s, release.id).values())
    assert statuses["sent"] == 0  # ...the ledger records none: they waited for their group

    lease_runs_out(s)  # time passes: the dead worker's leases expire
    with running_command(args, settings_env(s), tmp_path / "second.log", stop_timeout=2):

        def drained() -> bool:
            queue.send("sweep")  # beat's job: re-enqueue the rows whose lease ran out
            return _open_rows(s, release.id) == 0

        wait_until(drained, 60, "the second worker to finish the release")
    relay.wait_delivered()
    queue.close()
    copies = Counter(m.rcpt for m in sink.handler.messages)
    assert set(copies) == set(people)  # nobody lost
    return copies, _ledger(s, release.id)


def _live(s: Settings, relay: Postfix, redis_url: str, log: Path | None) -> Settings:
    return s.model_copy(
        update={"smtp_url": relay.url, "broker_url": redis_url, "reconcile_log": log}
    )


@pytest.mark.needs("postfix")
def test_a_worker_killed_after_postfix_took_the_message_is_settled_from_its_log(
    settings: Settings, relay: Postfix, smtp_server: SMTPServer, redis_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """The next worker finds the message in Postfix's own log (``maillog_file``) and
    records it sent: every subscriber gets exactly one copy."""
    s = _live(settings, relay, redis_url, relay.log)
    copies, ledger = _killed_then_recovered(s, relay, smtp_server, tmp_path)
    assert set(copies.values()) == {1}, copies  # nobody got two
    assert all(status == "sent" for status, _ in ledger.values())
    reconciled = [email for email, (_, note) in ledger.items() if note == RECONCILED]
    assert len(reconciled) == 3  # the group the kill left unrecorded
    # Found in Postfix's real log: its cleanup and queue manager lines for each message.
    log = relay.log.read_text()
    for email in reconciled:
        message_id = re.escape(_message_id_of(smtp_server, email))
        found = re.search(rf"postfix/cleanup\[\d+\]: (\w+): message-id={message_id}", log)
        assert found and re.search(rf"postfix/qmgr\[\d+\]: {found.group(1)}: from=<", log)


@pytest.mark.needs("postfix")
def test_without_the_log_the_message_in_doubt_goes_twice(
    sqlite_settings: Settings, relay: Postfix, smtp_server: SMTPServer, redis_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Without ``DISTRIBUTOR_RECONCILE_LOG`` nothing tells the next worker that Postfix has
    the message: its subscriber gets a second copy (at least once, as the README says)."""
    s = _live(sqlite_settings, relay, redis_url, None)
    copies, ledger = _killed_then_recovered(s, relay, smtp_server, tmp_path)
    assert sorted(copies.values()) == [1, 1, 1, 2, 2, 2]  # the group in the window
    assert all(status == "sent" for status, _ in ledger.values())
    assert all(note != RECONCILED for _, note in ledger.values())


def _message_id_of(smtp_server: SMTPServer, rcpt: str) -> str:
    [copy] = smtp_server.handler.by_rcpt()[rcpt]
    found = re.search(rb"^Message-ID: (<[^>]+>)", copy.data, re.MULTILINE | re.IGNORECASE)
    assert found
    return found.group(1).decode()


@pytest.mark.needs("postfix")
def test_a_private_postfix_leaves_nothing_behind(smtp_server: SMTPServer) -> None:
    with running_postfix(("127.0.0.1", smtp_server.port)) as postfix:
        pid = int((postfix.queue_dir / "pid" / "master.pid").read_text().split()[0])
        assert os.getpgid(pid) == pid  # its daemons are in the master's process group
        main_cf = (postfix.config_dir / "main.cf").read_text()
        assert "inet_interfaces = 127.0.0.1\n" in main_cf and postfix.port != 25
    assert not postfix.root.exists()
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # no process of the group is left


@pytest.mark.needs("postfix")
def test_the_compose_relay_config_relays_and_logs_what_the_workers_read(
    sqlite_settings: Settings, smtp_server: SMTPServer
) -> None:
    """deploy/postfix/main.cf, the compose relay's, run by the same Postfix (only its
    directories, address and relay host replaced): it relays a release email, and its
    maillog_file names the message as taken."""
    base = (ROOT / "deploy" / "postfix" / "main.cf").read_text()
    assert "maillog_file = /var/log/postfix/maillog\n" in base  # where compose's volume is
    with running_postfix(("127.0.0.1", smtp_server.port), base=base) as postfix:
        s = sqlite_settings.model_copy(update={"smtp_url": postfix.url})
        release_id = published(s, 2)
        assert sending.send_batch(s, release_id).outcomes["sent"] == 2
        postfix.wait_delivered()
        message_ids = [
            _message_id_of(smtp_server, rcpt) for rcpt in ("p00@example.com", "p01@example.com")
        ]
        time.sleep(0.2)  # postlogd writes what it is sent a moment later
        assert PostfixLogReconciler(postfix.log).accepted(message_ids) == set(message_ids)
        assert (postfix.log.stat().st_mode & 0o044) == 0o044  # readable by another user


@pytest.mark.needs("postfix")
def test_a_log_rotated_by_postfix_logrotate_is_still_read(smtp_server: SMTPServer) -> None:
    """``postfix logrotate`` renames the maillog_file NAME.YYYYMMDD-HHMMSS and gzips it: the
    messages taken before are still found there, and those taken after in the new log."""
    with running_postfix(("127.0.0.1", smtp_server.port)) as postfix:
        send_traffic(postfix)
        rotate = [str(POSTFIX), "-c", str(postfix.config_dir), "logrotate"]
        subprocess.run(rotate, check=True, capture_output=True, timeout=30)
        # NAME is there again only if Postfix logged since (a reload's statistics, often).
        [rotated] = [p for p in postfix.log.parent.iterdir() if p != postfix.log]
        assert re.fullmatch(r"maillog\.\d{8}-\d{6}\.gz", rotated.name), rotated.name
        reader = PostfixLogReconciler(postfix.log)
        asked = [*TAKEN, CUT, "<release-7.5@news.example.org>"]
        assert reader.accepted(asked) == set(TAKEN)

        with smtplib.SMTP("127.0.0.1", postfix.port) as smtp:
            smtp.sendmail(SENDER, ["p5@example.com"], message(asked[-1], "p5@example.com"))
        postfix.wait_delivered()
        wait_until(lambda: asked[-1] in postfix.log.read_text(errors="replace"), 10, "the log")
        assert reader.accepted(asked) == {*TAKEN, asked[-1]}
