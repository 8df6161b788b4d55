"""Reconcile before resending (distributor/mail/reconcile.py): a worker killed between the relay's
acceptance of a message and the ledger's commit leaves a row in doubt; the next worker asks
the relay's record and sends it again only if the relay does not have it."""

from __future__ import annotations

import gzip
import logging
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import select, update

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Delivery, DeliveryStatus, Subscriber, utcnow
from distributor.mail import reconcile
from distributor.mail.reconcile import (
    MaildirReconciler,
    PostfixLogReconciler,
    already_accepted,
    maildir_tag,
)
from distributor.outbox import sending
from distributor.outbox.ledger import RECONCILED
from tests.corrections import sent_then_corrected
from tests.helpers import lease_runs_out, published
from tests.postfix_lines import MAILLOG, SAMPLES, lines, postfix_log, queue_id
from tests.postfix_samples import TAKEN
from tests.processes import settings_env
from tests.smtp_server import SMTPServer

# What a crashed worker does: sends a batch in a process that SIGKILLs itself right after the
# server accepted the third message, before the ledger records it.
CRASH = (
    "from distributor.outbox import sending; from distributor.core.config import load_settings; "
    "sending.{task}(load_settings(), {release_id})"
)


# One outcome a commit (DISTRIBUTOR_OUTCOME_GROUP=1): the crash leaves exactly the third
# message accepted and not recorded, which these tests count precisely. With the default
# group, the group's three are (test_maildir_a_message_stored_before_the_crash_…).
ONE_BY_ONE = {"outcome_group": 1}
# A crashed batch's lease must not run out by itself before the test says so
# (lease_runs_out): at 5 s, a second crashing worker started late on a loaded machine took
# over the first one's rows and the counts differed.
LONG_LEASE = 300


def crash_after_third_accept(s: Settings, release_id: int, task: str = "send_batch") -> None:
    env = settings_env(s, DISTRIBUTOR_FAILPOINTS="after-accept@3")
    proc = subprocess.run(
        [sys.executable, "-c", CRASH.format(task=task, release_id=release_id)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def ledger(s: Settings) -> dict[str, tuple[str, str]]:
    with session_scope(s) as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status, Delivery.last_error).join(
                Subscriber, Subscriber.id == Delivery.subscriber_id
            )
        )
        return {email: (str(status), error) for email, status, error in rows}


def outbox_recipients(s: Settings) -> Counter[str]:
    files = [*(s.outbox_dir / "new").iterdir(), *(s.outbox_dir / "cur").iterdir()]
    return Counter(str(message_from_bytes(f.read_bytes())["To"]) for f in files)


def test_maildir_a_message_stored_before_the_crash_is_not_stored_again(
    sqlite_settings: Settings,
) -> None:
    s = sqlite_settings.model_copy(update={"lease_seconds": LONG_LEASE})
    release_id = published(s, 8)
    crash_after_third_accept(s, release_id)
    assert sum(outbox_recipients(s).values()) == 3  # stored...
    # ...and none recorded: their outcomes waited for their group's commit (outcome_group).
    assert Counter(v[0] for v in ledger(s).values())["sent"] == 0

    lease_runs_out(s)
    report = sending.send_batch(s, release_id)

    copies = outbox_recipients(s)
    assert len(copies) == 8 and set(copies.values()) == {1}, copies  # nobody got two
    assert report.reconciled == 3 and report.outcomes["sent"] == 5
    states = ledger(s)
    assert all(status == DeliveryStatus.SENT for status, _ in states.values())
    assert sum(error == RECONCILED for _, error in states.values()) == 3


def test_every_row_in_doubt_found_accepted_is_counted_once_and_recorded_as_ours(
    sqlite_settings: Settings,
) -> None:
    """Two workers killed on two batches leave two messages accepted and not recorded: the
    next batch records both as sent without sending them, counts two reconciled rows, and
    no lost lease (the rows were its own)."""
    s = sqlite_settings.model_copy(
        update={"lease_seconds": LONG_LEASE, "batch_size": 4, **ONE_BY_ONE}
    )
    release_id = published(s, 8)
    crash_after_third_accept(s, release_id)  # the first batch of 4
    crash_after_third_accept(s, release_id)  # the next 4 (the first are still leased)
    assert sum(outbox_recipients(s).values()) == 6
    lease_runs_out(s)
    report = sending.send_batch(s, release_id)
    assert (report.claimed, report.reconciled, report.lost_leases) == (4, 2, 0)
    assert report.outcomes["sent"] == 2  # the two that were never accepted
    copies = outbox_recipients(s)
    assert len(copies) == 8 and set(copies.values()) == {1}, copies
    assert sum(error == RECONCILED for _, error in ledger(s).values()) == 2


def test_rows_in_doubt_taken_over_while_they_are_settled_keep_their_new_owner(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows in doubt that another worker takes over while this one asks the relay's record
    are the other's: "sent (reconciled)" is not written over their lease, and the report
    counts each as a lost lease."""
    s = sqlite_settings.model_copy(
        update={"lease_seconds": LONG_LEASE, "batch_size": 4, **ONE_BY_ONE}
    )
    release_id = published(s, 8)
    crash_after_third_accept(s, release_id)  # each leaves its third row accepted, its fourth not
    crash_after_third_accept(s, release_id)
    lease_runs_out(s)
    opened = reconcile.open_reconciler

    def taken_over_while_asked(settings: Settings) -> reconcile.Reconciler | None:
        with session_scope(s) as session:  # another worker's claim, while this one asks
            left = session.scalars(
                select(Delivery).where(Delivery.status != DeliveryStatus.SENT).order_by("id")
            ).all()
            for row in left[::2]:  # each crashed batch's third row: accepted, not recorded
                row.lease_token = "another-worker"
        return opened(settings)

    monkeypatch.setattr(reconcile, "open_reconciler", taken_over_while_asked)
    report = sending.send_batch(s, release_id)
    assert (report.reconciled, report.lost_leases, report.outcomes["sent"]) == (2, 2, 2)
    with session_scope(s) as session:
        left = session.execute(
            select(Delivery.status, Delivery.lease_token).where(
                Delivery.status != DeliveryStatus.SENT
            )
        ).all()
    assert left == [(DeliveryStatus.PENDING, "another-worker")] * 2  # the other's to record
    assert sum(outbox_recipients(s).values()) == 8  # nobody's copy sent twice


def test_maildir_reconciler_reads_new_and_cur_not_tmp(tmp_path: Path) -> None:
    ids = ["<release-1.1@example.org>", "<release-1.2@example.org>", "<release-1.3@ex.org>"]
    for sub in ("new", "cur", "tmp"):
        (tmp_path / sub).mkdir()
    (tmp_path / "new" / f"1.M1P1Q1{maildir_tag(ids[0])}.host").write_bytes(b"")
    (tmp_path / "cur" / f"1.M1P1Q2{maildir_tag(ids[1])}.host:2,S").write_bytes(b"")  # read
    (tmp_path / "tmp" / f"1.M1P1Q3{maildir_tag(ids[2])}.host").write_bytes(b"")  # half
    assert MaildirReconciler(tmp_path).accepted(ids) == set(ids[:2])


def test_postfix_log_lines_are_the_real_ones() -> None:
    """The lines these tests write are Postfix's own (tests/data/postfix/), only the queue
    id and Message-ID replaced: the reconciler is checked against what Postfix writes."""
    text = MAILLOG.read_text()
    [real_qid] = re.findall(rf"cleanup\[\d+\]: (\w+): message-id={re.escape(TAKEN[0])}", text)
    real = [line for line in text.splitlines() if f": {real_qid}: " in line]
    qid = queue_id(1, "<release-1.1@example.org>")
    written = lines("<release-1.1@example.org>", qid=qid)
    assert re.fullmatch(r"[0-9A-F]{11}", qid) and qid != real_qid  # a short queue id
    assert [line.replace(qid, real_qid).replace("<release-1.1@example.org>", TAKEN[0])
            for line in written] == real[:3]  # fmt: skip


@pytest.mark.parametrize("sample", SAMPLES, ids=[path.stem for path in SAMPLES])
def test_postfix_log_needs_the_queue_manager_line(tmp_path: Path, sample: Path) -> None:
    log = tmp_path / "mail.log"
    postfix_log(log, ["<release-1.1@example.org>"], sample=sample)
    postfix_log(log, ["<release-1.22@example.org>"], queued=False, sample=sample)  # cut
    qq, rr = queue_id(7, "other instance", sample), queue_id(8, "resent", sample)
    with log.open("a") as out:  # another instance (its own syslog name), and other lines
        out.writelines(f"{line}\n" for line in [
            *lines("<release-1.3@example.org>", qid=qq, sample=sample, service="postfix-out",
                   only=("cleanup", "qmgr")),
            *(line.replace(": message-id=", ": resent-message-id=") for line in lines(
                "<release-1.4@example.org>", qid=rr, sample=sample, only=("cleanup",))),
        ])  # fmt: skip
    wanted = [f"<release-1.{n}@example.org>" for n in (1, 22, 3, 4, 5)]
    assert PostfixLogReconciler(log).accepted(wanted) == {
        "<release-1.1@example.org>",
        "<release-1.3@example.org>",
    }


@pytest.mark.parametrize("sample", SAMPLES, ids=[path.stem for path in SAMPLES])
def test_postfix_log_with_a_queue_id_used_again_and_lines_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample: Path
) -> None:
    log = tmp_path / "mail.log"
    # Postfix's short queue ids come round again: the earlier message under the same id
    # was queued, but the one asked about was cut before its final dot.
    postfix_log(log, ["<release-2.1@example.org>"], sample=sample)  # queue id Q, queued
    postfix_log(log, ["<release-2.2@example.org>"], queued=False, sample=sample)  # Q, cut
    postfix_log(log, ["<release-2.3@example.org>"], sample=sample)  # Q again, queued
    assert len(set(re.findall(r"\]: (\w+): message-id=", log.read_text()))) == 1
    # A message asked about whose id is taken over by another before it is queued.
    ss = queue_id(9, "taken over", sample)
    with log.open("a") as out:
        out.writelines(f"{line}\n" for line in [
            *lines("<release-2.4@example.org>", qid=ss, sample=sample, only=("cleanup",)),
            *lines("<other@example.org>", qid=ss, sample=sample, only=("cleanup", "qmgr")),
        ])  # fmt: skip
    wanted = ["<release-2.2@example.org>", "<release-2.3@example.org>", "<release-2.4@example.org>"]
    for block in (1 << 20, 64, 7):  # one block; lines across blocks; lines longer than one
        monkeypatch.setattr(PostfixLogReconciler, "BLOCK", block)
        assert PostfixLogReconciler(log).accepted(wanted) == {"<release-2.3@example.org>"}


def test_postfix_log_rotated_between_the_crash_and_the_reconciliation(tmp_path: Path) -> None:
    log = tmp_path / "mail.log"
    postfix_log(log, ["<release-3.1@example.org>"])
    postfix_log(log, ["<release-3.2@example.org>"], queued=False)  # its qmgr line: after
    log.rename(tmp_path / "mail.log.1")  # logrotate, at midnight
    qid = queue_id(0, "<release-3.2@example.org>")  # as postfix_log named it
    with log.open("a") as out:
        [qmgr] = lines("<release-3.2@example.org>", qid=qid, only=("qmgr",))
        out.write(f"{qmgr}\n")
    (tmp_path / "mail.log.2.gz").write_bytes(b"\x1f\x8b not read")
    wanted = ["<release-3.1@example.org>", "<release-3.2@example.org>", "<release-3.3@x>"]
    assert PostfixLogReconciler(log).accepted(wanted) == set(wanted[:2])


@pytest.mark.parametrize(
    "rotated_name", ["mail.log.20261129-000001.gz", "mail.log.20261129-000001", "mail.log.1.gz"]
)
def test_postfix_log_rotated_and_compressed(tmp_path: Path, rotated_name: str) -> None:
    """``postfix logrotate`` (NAME.YYYYMMDD-HHMMSS, gzipped unless its compressor is off)
    and logrotate's ``compress`` (NAME.1.gz); until Postfix writes again after ``postfix
    logrotate`` there is no NAME at all. The newest rotated log is read, not older ones."""
    log = tmp_path / "mail.log"
    postfix_log(log, ["<release-4.0@example.org>"])
    older = tmp_path / "mail.log.20261128-000001.gz"
    older.write_bytes(gzip.compress(log.read_bytes()))
    os.utime(older, (1, 1))  # rotated the day before
    log.unlink()
    postfix_log(log, ["<release-4.1@example.org>"])
    rotated = log.rename(tmp_path / rotated_name.removesuffix(".gz"))
    if rotated_name.endswith(".gz"):
        rotated.with_name(rotated_name).write_bytes(gzip.compress(rotated.read_bytes()))
        rotated.unlink()
    wanted = [f"<release-4.{n}@example.org>" for n in range(3)]
    assert PostfixLogReconciler(log).accepted(wanted) == {wanted[1]}  # no NAME yet
    postfix_log(log, [wanted[2]])  # Postfix writes again
    assert PostfixLogReconciler(log).accepted(wanted) == set(wanted[1:])


def test_postfix_log_being_compressed_is_read_uncompressed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While gzip writes NAME.x.gz, NAME.x is still there and whole: that one is read. A
    compressed log cut short is a record that cannot be read: sent again, with a warning."""
    log = tmp_path / "mail.log"
    postfix_log(log, ["<release-5.1@example.org>"])
    whole = log.rename(tmp_path / "mail.log.20261129-000001")
    half = gzip.compress(whole.read_bytes())[:40]
    (tmp_path / "mail.log.20261129-000001.gz").write_bytes(half)
    assert PostfixLogReconciler(log).accepted(["<release-5.1@example.org>"]) == {
        "<release-5.1@example.org>"
    }
    whole.unlink()  # as if gzip had died: only the cut-short file
    reconciler = PostfixLogReconciler(log)
    assert already_accepted(reconciler, ["<release-5.1@example.org>"]) == set()
    assert "cannot reconcile 1 message(s) in doubt" in caplog.text


@pytest.mark.parametrize("with_log", [False, True], ids=["without-log", "with-log"])
def test_smtp_with_and_without_the_relay_log(
    sqlite_settings: Settings, smtp_server: SMTPServer, tmp_path: Path, with_log: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """Without a record of the relay, the copy in doubt goes out twice (at least once), and
    the log names the rows that may (each id, as bench/faults.py reads them); with the
    relay's log, it does not, and the log counts those found accepted."""
    caplog.set_level(logging.INFO, logger="distributor.outbox.sending")
    log = tmp_path / "mail.log"
    s = sqlite_settings.model_copy(
        update={"smtp_url": smtp_server.url, "lease_seconds": LONG_LEASE,
                "reconcile_log": log if with_log else None, **ONE_BY_ONE}
    )  # fmt: skip
    release_id = published(s, 6)
    crash_after_third_accept(s, release_id)
    postfix_log(log, [_message_id(m.data) for m in smtp_server.handler.messages])
    lease_runs_out(s)
    in_doubt = rows_in_doubt(s)
    report = sending.send_batch(s, release_id)
    copies = Counter(m.rcpt for m in smtp_server.handler.messages)
    assert len(copies) == 6
    # The dead worker held four rows with no outcome: the one it had sent, three it had not.
    assert len(in_doubt) == 4
    with session_scope(s) as session:
        reconciled = select(Delivery.id, Delivery.status, Delivery.smtp_code).where(
            Delivery.last_error == RECONCILED
        )
        found = {
            row_id for row_id, *outcome in session.execute(reconciled) if outcome == ["sent", 250]
        }
    again = ",".join(map(str, sorted(set(in_doubt) - found)))
    if with_log:
        assert set(copies.values()) == {1} and report.reconciled == 1 and len(found) == 1
        accepted = f"release {release_id}: 1 message(s) in doubt were already accepted, not resent"
        assert accepted in caplog.messages
        assert f"release {release_id}: 3 row(s) in doubt go out again" in caplog.text
    else:
        assert sorted(copies.values()) == [1, 1, 1, 1, 1, 2]  # the one in the window
        assert report.reconciled == 0 and not found
        assert "already accepted" not in caplog.text
        assert f"release {release_id}: 4 row(s) in doubt go out again" in caplog.text
    (named,) = [m for m in caplog.messages if "go out again" in m]
    assert named.startswith(f"release {release_id}: ") and named.endswith(f"deliveries {again}")


def rows_in_doubt(s: Settings) -> list[int]:
    """The deliveries whose lease ran out with no outcome written (claimed again: in doubt)."""
    with session_scope(s) as session:
        return list(
            session.scalars(
                select(Delivery.id).where(
                    Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.DEFERRED]),
                    Delivery.lease_until.is_not(None),
                )
            )
        )


def _message_id(data: bytes) -> str:
    found = re.search(rb"^Message-ID: (<[^>]+>)", data, re.MULTILINE | re.IGNORECASE)
    assert found
    return found.group(1).decode()


def test_an_unreadable_record_sends_again_and_says_why(
    sqlite_settings: Settings, smtp_server: SMTPServer, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    s = sqlite_settings.model_copy(
        update={"smtp_url": smtp_server.url, "reconcile_log": tmp_path / "missing.log",
                **ONE_BY_ONE}
    )  # fmt: skip
    release_id = published(s, 4)
    crash_after_third_accept(s, release_id)
    lease_runs_out(s)
    report = sending.send_batch(s, release_id)
    assert report.outcomes["sent"] == 2 and report.reconciled == 0
    assert "cannot reconcile 2 message(s) in doubt" in caplog.text
    assert "missing.log" in caplog.text


def test_maildir_a_correction_notice_stored_before_the_crash_is_not_stored_again(
    sqlite_settings: Settings,
) -> None:
    s = sqlite_settings.model_copy(update={"lease_seconds": LONG_LEASE})
    release = sent_then_corrected(s)
    crash_after_third_accept(s, release.id, "send_correction_notices")
    lease_runs_out(s)
    report = sending.send_correction_notices(s, release.id)
    assert report.reconciled == 1 and report.outcomes["sent"] == 3
    notices = [
        message_from_bytes(f.read_bytes())
        for f in (s.outbox_dir / "new").iterdir()
        if b"\nIn-Reply-To: " in f.read_bytes()
    ]
    assert len(notices) == 6
    assert set(Counter(str(m["To"]) for m in notices).values()) == {1}  # nobody got two


@pytest.mark.parametrize("with_log", [False, True], ids=["without-log", "with-log"])
def test_a_connection_cut_after_the_data_leaves_the_row_in_doubt(
    sqlite_settings: Settings, smtp_server: SMTPServer, tmp_path: Path, with_log: bool
) -> None:
    """The relay keeps a message but the connection breaks before its 250: the row is
    deferred, and at its retry it is in doubt — settled by the relay's log if there is one,
    sent again (a second copy) if not."""
    log = tmp_path / "mail.log"
    s = sqlite_settings.model_copy(
        update={"smtp_url": smtp_server.url, "reconcile_log": log if with_log else None}
    )
    release_id = published(s, 5)
    cut = {"p02@example.com"}

    def once(rcpt: str) -> bool:  # the first attempt only: the retry is not cut
        if rcpt not in cut:
            return False
        cut.remove(rcpt)
        return True

    smtp_server.handler.cut_after_data = once
    first = sending.send_batch(s, release_id)
    # p02's data went out, p03's envelope was in flight behind it (pipelining): both
    # deferred, only p02 in doubt.
    assert first.outcomes == {"sent": 3, "deferred": 2, "failed": 0}
    postfix_log(log, [_message_id(m.data) for m in smtp_server.handler.messages])
    with session_scope(s) as session:  # their backoff runs out
        session.execute(update(Delivery).values(next_attempt_at=utcnow()))
    lease_runs_out(s)
    second = sending.send_batch(s, release_id)
    copies = Counter(m.rcpt for m in smtp_server.handler.messages)
    assert second.claimed == 2 and second.reconciled == (1 if with_log else 0)
    assert copies["p02@example.com"] == (1 if with_log else 2)
    assert copies["p03@example.com"] == 1
    assert Counter(v[0] for v in ledger(s).values())["sent"] == 5
