"""Bounces: every release email leaves with a VERP envelope sender naming its delivery;
delivery status notifications sent back to it (as Postfix writes them) mark hard bounces at
once and soft ones after the limit, stop further sending, and show in the release status."""

from __future__ import annotations

import email
import mailbox
import re
import subprocess
from email.message import Message
from pathlib import Path

import pytest
from sqlalchemy import select

from distributor.core.config import Settings, load_settings
from distributor.core.db import session_scope
from distributor.core.models import Delivery, DeliveryStatus, Subscriber, SubscriberStatus
from distributor.mail.compose import Recipient, render_release
from distributor.mail.verp import BounceAddresses
from distributor.office.identity import environment_identity
from distributor.reporting.status import release_status
from tests.bounce_mail import envelope_and_headers, postfix_dsn, publish_numbered, run_ingest
from tests.helpers import add_subscribers, add_topics, make_release
from tests.processes import invoke_cli
from tests.smtp_server import SMTPServer

VERP = re.compile(r"bounces\+d([0-9]+)-[0-9a-f]{16}@example\.org")
PEOPLE = [("ann@example.com", "Ann", "en", "climate"), ("bob@example.com", "Bob", "en", "climate")]


def auto_reply(to: str) -> bytes:
    return (
        f"From: Ann <ann@example.com>\r\nTo: {to}\r\nSubject: Out of office\r\n"
        "Auto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n"
    ).encode()


def parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw)


@pytest.fixture
def live(settings: Settings, smtp_server: SMTPServer) -> Settings:
    add_topics(settings, "climate")
    add_subscribers(settings, PEOPLE)
    return settings.model_copy(update={"smtp_url": smtp_server.url})


def delivery(settings: Settings, address: str, release_id: int) -> Delivery | None:
    with session_scope(settings) as session:
        return session.scalar(
            select(Delivery)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == address, Delivery.release_id == release_id)
        )


def subscriber(settings: Settings, address: str) -> Subscriber:
    with session_scope(settings) as session:
        sub = session.scalar(select(Subscriber).where(Subscriber.email == address))
    assert sub is not None
    return sub


def test_each_message_leaves_with_a_verp_envelope_naming_its_delivery(
    live: Settings, smtp_server: SMTPServer
) -> None:
    rid = publish_numbered(live, 1)
    assert len(smtp_server.handler.messages) == 2
    addresses = BounceAddresses(live)
    for who, _name, _lang, _topics in PEOPLE:
        mail_from, _headers = envelope_and_headers(smtp_server, who, rid)
        match = VERP.fullmatch(mail_from)
        assert match, mail_from
        row = delivery(live, who, rid)
        assert row is not None and row.status == DeliveryStatus.SENT
        assert int(match.group(1)) == row.id
        assert addresses.read(mail_from) == row.id
        assert addresses.read(mail_from.upper()) == row.id  # a server folded its case


def test_verp_tokens_cannot_be_forged_and_survive_key_rotation() -> None:
    addresses = BounceAddresses(load_settings(secret_key="old-key"))
    address = addresses.address(42)
    local = address.partition("@")[0]
    assert len(local) <= 64 and re.fullmatch(r"[a-z0-9+.-]+", local)
    flipped = address.replace(local[-1], "0" if local[-1] != "0" else "1")
    assert addresses.read(flipped) is None
    assert addresses.read(address.replace("d42-", "d43-")) is None
    assert addresses.read("press@example.org") is None
    assert addresses.read("bounces@example.org") is None
    rotated = BounceAddresses(load_settings(secret_key="new-key old-key"))
    assert rotated.read(address) == 42  # signed with the old key, still read
    assert rotated.address(42) != address  # the new key signs
    other = BounceAddresses(load_settings(secret_key="someone-else"))
    assert other.read(address) is None


def test_envelope_is_plain_sender_without_a_delivery(sqlite_settings: Settings) -> None:
    settings = sqlite_settings
    add_topics(settings, "climate")
    rendered = render_release(make_release(settings), settings, environment_identity(settings))
    base = {"subscriber_id": 7, "email": "ann@example.com", "name": "Ann",
            "unsubscribe_url": "https://news.example.org/u/x",
            "preferences_url": "https://news.example.org/p/x"}  # fmt: skip
    assert rendered.envelope_for(Recipient(**base)) == "press@example.org"  # type: ignore[arg-type]
    verp = rendered.envelope_for(Recipient(**base, delivery_id=9))  # type: ignore[arg-type]
    assert BounceAddresses(settings).read(verp) == 9


def test_hard_bounce_marks_bounced_cancels_and_stops_later_releases(
    live: Settings, smtp_server: SMTPServer
) -> None:
    first = publish_numbered(live, 1)
    waiting = publish_numbered(live, 2, send=False)  # planned, not yet sent
    mail_from, headers = envelope_and_headers(smtp_server, "ann@example.com", first)
    dsn = postfix_dsn(mail_from, "ann@example.com", "5.1.1", headers=headers)

    report = run_ingest(live, dsn)
    assert (report.hard, report.soft, report.bounced, report.ignored) == (1, 0, 1, 0)
    ann = subscriber(live, "ann@example.com")
    assert ann.status == SubscriberStatus.BOUNCED and ann.bounced_at is not None
    row = delivery(live, "ann@example.com", first)
    assert row is not None and row.bounce == "hard" and row.bounced_at is not None
    pending = delivery(live, "ann@example.com", waiting)
    assert pending is not None and pending.status == DeliveryStatus.CANCELLED
    assert subscriber(live, "bob@example.com").status == SubscriberStatus.CONFIRMED

    again = run_ingest(live, dsn)  # the same report twice counts once
    assert (again.hard, again.bounced, again.duplicates) == (0, 0, 1)

    later = publish_numbered(live, 3)
    assert delivery(live, "ann@example.com", later) is None
    assert delivery(live, "bob@example.com", later) is not None
    with session_scope(live) as session:
        status = release_status(session, first)
    assert (status.hard_bounces, status.soft_bounces) == (1, 0)


def test_soft_bounces_mark_bounced_at_the_limit(live: Settings, smtp_server: SMTPServer) -> None:
    releases = [publish_numbered(live, n) for n in (1, 2, 3)]
    reports = []
    for n, rid in enumerate(releases):
        mail_from, headers = envelope_and_headers(smtp_server, "bob@example.com", rid)
        # The last one as Postfix reports giving up after its queue lifetime: failed, 4.x.x.
        action = "failed" if n == 2 else "delayed"
        dsn = postfix_dsn(mail_from, "bob@example.com", "4.4.1", action=action, headers=headers)
        reports.append(run_ingest(live, dsn, dsn))  # twice: counted once
        bob = subscriber(live, "bob@example.com")
        assert bob.soft_bounces == n + 1
        expected = SubscriberStatus.BOUNCED if n == 2 else SubscriberStatus.CONFIRMED
        assert bob.status == expected
    assert [(r.soft, r.duplicates, r.bounced) for r in reports] == [(1, 1, 0)] * 2 + [(1, 1, 1)]
    with session_scope(live) as session:
        status = release_status(session, releases[0])
    assert (status.hard_bounces, status.soft_bounces) == (0, 1)
    assert delivery(live, "bob@example.com", publish_numbered(live, 4)) is None


def test_soft_then_hard_for_one_message_becomes_hard(
    live: Settings, smtp_server: SMTPServer
) -> None:
    rid = publish_numbered(live, 1)
    mail_from, headers = envelope_and_headers(smtp_server, "ann@example.com", rid)
    delayed = run_ingest(live, postfix_dsn(mail_from, "ann@example.com", "4.2.2", headers=headers))
    failed = run_ingest(live, postfix_dsn(mail_from, "ann@example.com", "5.2.2", headers=headers))
    assert (delayed.soft, failed.hard, failed.bounced) == (1, 1, 1)
    row = delivery(live, "ann@example.com", rid)
    assert row is not None and row.bounce == "hard"
    assert subscriber(live, "ann@example.com").soft_bounces == 1


def test_what_is_not_a_bounce_of_ours_is_ignored(live: Settings, smtp_server: SMTPServer) -> None:
    rid = publish_numbered(live, 1)
    mail_from, headers = envelope_and_headers(smtp_server, "ann@example.com", rid)
    token = VERP.fullmatch(mail_from)
    assert token
    forged = mail_from.replace(f"d{token.group(1)}-", f"d{int(token.group(1)) + 1}-")
    delivered = postfix_dsn(mail_from, "ann@example.com", "2.0.0", action="delivered")
    report = run_ingest(
        live,
        auto_reply(mail_from),  # an out-of-office reply to the VERP address
        postfix_dsn("press@example.org", "ann@example.com", "5.1.1", headers=headers),  # no token
        postfix_dsn(forged, "ann@example.com", "5.1.1"),  # a token that does not verify
        delivered,  # a success notice
        b"",  # an empty message
    )
    assert (report.messages, report.ignored, report.hard, report.soft) == (5, 5, 0, 0)
    assert subscriber(live, "ann@example.com").status == SubscriberStatus.CONFIRMED


@pytest.fixture
def cli(sqlite_settings: Settings, smtp_server: SMTPServer):  # type: ignore[no-untyped-def]
    live = sqlite_settings.model_copy(update={"smtp_url": smtp_server.url})
    add_topics(live, "climate")
    add_subscribers(live, PEOPLE)

    def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
        return invoke_cli(live, *args, input=stdin)

    run.settings = live  # type: ignore[attr-defined]
    run.smtp = smtp_server  # type: ignore[attr-defined]
    return run


def test_cli_ingests_a_maildir_an_mbox_and_stdin(  # type: ignore[no-untyped-def]
    cli, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    live: Settings = cli.settings
    rid = publish_numbered(live, 1)
    ann_from, ann_headers = envelope_and_headers(smtp_server, "ann@example.com", rid)
    bob_from, bob_headers = envelope_and_headers(smtp_server, "bob@example.com", rid)

    maildir = mailbox.Maildir(tmp_path / "Maildir", create=True)
    maildir.add(postfix_dsn(ann_from, "ann@example.com", "5.1.1", headers=ann_headers))
    maildir.add(auto_reply(ann_from))
    result = cli("bounces", "ingest", str(tmp_path / "Maildir"))
    assert result.returncode == 0, result.stderr
    assert "2 message(s): 1 hard bounce(s), 0 soft, 1 subscriber(s) now bounced, 1 ignored" in (
        result.stdout
    )

    box = mailbox.mbox(tmp_path / "bounces.mbox")
    box.add(postfix_dsn(bob_from, "bob@example.com", "4.4.1", headers=bob_headers))
    box.add(postfix_dsn(ann_from, "ann@example.com", "5.1.1", headers=ann_headers))
    box.close()
    result = cli("bounces", "ingest", str(tmp_path / "bounces.mbox"))
    assert result.returncode == 0, result.stderr
    assert "2 message(s): 0 hard bounce(s), 1 soft, 0 subscriber(s) now bounced" in result.stdout
    assert "1 already recorded" in result.stdout

    result = cli("bounces", "ingest", "-", stdin=auto_reply(bob_from))
    assert (
        result.returncode == 0 and "1 message(s)" in result.stdout and "1 ignored" in result.stdout
    )

    status = cli("releases", "status", str(rid))
    assert status.returncode == 0 and "bounces: 1 hard, 1 soft" in status.stdout
    assert subscriber(live, "ann@example.com").status == SubscriberStatus.BOUNCED
    assert subscriber(live, "bob@example.com").soft_bounces == 1


def test_cli_refuses_what_is_neither_maildir_nor_mbox(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    note = tmp_path / "notes.txt"
    note.write_text("Dear press office,\n")
    result = cli("bounces", "ingest", str(note))
    assert result.returncode == 1 and f"{note}: neither a Maildir nor an mbox" in result.stderr
    (tmp_path / "plain").mkdir()
    result = cli("bounces", "ingest", str(tmp_path / "plain"))
    assert result.returncode == 1 and f"{tmp_path / 'plain'}: a directory, but not a Maildir" in (
        result.stderr
    )
    missing = tmp_path / "nowhere.mbox"
    result = cli("bounces", "ingest", str(missing))
    assert result.returncode == 78 and f"{missing}: cannot be read" in result.stderr


# ---- hostile messages: each message on its own, the quarantine --------------------------


def nested(depth: int, to: str = "bounces@example.org") -> bytes:
    """A message whose MIME tree is ``depth`` multiparts deep (the stdlib parser recurses
    once per level: RecursionError near 1,000)."""
    head = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(depth)
    )
    tail = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return (
        f"From: x@example.net\r\nTo: {to}\r\nSubject: hi\r\nMIME-Version: 1.0\r\n".encode()
        + head
        + b"Content-Type: text/plain\r\n\r\nhello"
        + tail
    )


def quarantine_files(settings: Settings) -> list[Path]:
    return sorted((settings.data_dir / "quarantine" / "bounces" / "new").glob("*"))


def three_messages(cli) -> tuple[bytes, bytes, bytes]:  # type: ignore[no-untyped-def]
    """A hard bounce for Ann, a message 3,000 levels deep, a soft bounce for Bob."""
    live: Settings = cli.settings
    rid = publish_numbered(live, 1)
    ann_from, ann_headers = envelope_and_headers(cli.smtp, "ann@example.com", rid)
    bob_from, bob_headers = envelope_and_headers(cli.smtp, "bob@example.com", rid)
    return (
        postfix_dsn(ann_from, "ann@example.com", "5.1.1", headers=ann_headers),
        nested(3000, ann_from),
        postfix_dsn(bob_from, "bob@example.com", "4.4.1", headers=bob_headers),
    )


def assert_both_recorded(live: Settings) -> None:
    assert subscriber(live, "ann@example.com").status == SubscriberStatus.BOUNCED
    bob = subscriber(live, "bob@example.com")
    assert bob.soft_bounces == 1 and bob.status == SubscriberStatus.CONFIRMED


def assert_quarantined(
    live: Settings, result: subprocess.CompletedProcess[str], raw: bytes
) -> None:
    where = live.data_dir / "quarantine" / "bounces"
    assert result.returncode == 1, result.stderr
    assert f"1 message(s) quarantined in {where}: see the log" in result.stderr
    assert "nested too deeply to parse (RecursionError)" in result.stderr
    assert "Traceback" not in result.stderr
    (kept,) = quarantine_files(live)
    assert kept.read_bytes() == raw  # as it came, byte for byte
    (line,) = (live.data_dir / "quarantine" / "bounces.log").read_text().splitlines()
    assert kept.name in line and "nested too deeply to parse" in line
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    # A bounce names people: the folders holding them are the owner's only, whatever the umask.
    for folder in (where.parent, where, where / "new"):
        assert oct(folder.stat().st_mode & 0o777) == "0o700", folder


def test_a_hostile_message_in_a_maildir_is_quarantined_and_the_run_goes_on(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    live: Settings = cli.settings
    good, hostile, later = three_messages(cli)
    maildir = tmp_path / "Maildir"
    mailbox.Maildir(maildir, create=True)
    for name, raw in (("1.ann", good), ("2.hostile", hostile), ("3.bob", later)):
        (maildir / "new" / name).write_bytes(raw)

    result = cli("bounces", "ingest", str(maildir))
    assert_quarantined(live, result, hostile)
    assert "3 message(s): 1 hard bounce(s), 1 soft, 1 subscriber(s) now bounced" in result.stdout
    assert_both_recorded(live)
    assert "2.hostile" in result.stderr  # where it came from
    # Processed: moved to cur/, seen; the hostile one moved out into the quarantine.
    assert sorted(p.name for p in (maildir / "new").iterdir()) == []
    assert sorted(p.name for p in (maildir / "cur").iterdir()) == ["1.ann:2,S", "3.bob:2,S"]

    again = cli("bounces", "ingest", str(maildir))  # nothing new, nothing to crash on
    assert again.returncode == 0, again.stderr
    assert "0 message(s)" in again.stdout and again.stderr == ""
    assert_both_recorded(live)
    assert len(quarantine_files(live)) == 1

    # A message a mail client has seen is left alone; one in cur/ without the flag is read.
    (maildir / "cur" / "4.bob:2,S").write_bytes(later)
    (maildir / "cur" / "5.bob:2,R").write_bytes(later)
    third = cli("bounces", "ingest", str(maildir))
    assert third.returncode == 0 and "1 message(s)" in third.stdout
    assert "1 already recorded" in third.stdout
    assert (maildir / "cur" / "5.bob:2,RS").exists()


def test_a_hostile_message_in_an_mbox_or_on_stdin_is_quarantined_once(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    live: Settings = cli.settings
    good, hostile, later = three_messages(cli)
    path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(path)
    for raw in (good, hostile, later):
        box.add(raw)
    box.close()

    result = cli("bounces", "ingest", str(path))
    assert_quarantined(live, result, box_message(path, 1))
    assert f"{path}, message 2" in result.stderr
    assert_both_recorded(live)

    # An mbox cannot be changed: read again, each bounce is recognised and the hostile
    # message is found in the quarantine, where it is kept once.
    again = cli("bounces", "ingest", str(path))
    assert again.returncode == 0, again.stderr
    assert "2 already recorded, 1 already in quarantine" in again.stdout
    assert len(quarantine_files(live)) == 1
    assert_both_recorded(live)

    stdin = cli("bounces", "ingest", "-", stdin=nested(3000))
    assert stdin.returncode == 1 and "1 message(s) quarantined" in stdin.stderr
    assert "standard input" in stdin.stderr and "Traceback" not in stdin.stderr
    assert len(quarantine_files(live)) == 2
    repeat = cli("bounces", "ingest", "-", stdin=nested(3000))
    assert repeat.returncode == 0 and "1 already in quarantine" in repeat.stdout
    ok = cli("bounces", "ingest", "-", stdin=good)
    assert ok.returncode == 0 and "1 already recorded" in ok.stdout


def box_message(path: Path, index: int) -> bytes:
    """The bytes of an mbox's message ``index`` (0-based) after its "From " line."""
    box = mailbox.mbox(path)
    try:
        with box.get_file(box.keys()[index]) as stream:
            return stream.read()
    finally:
        box.close()


def test_a_message_too_large_is_quarantined_unparsed(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path
) -> None:
    live: Settings = cli.settings
    good, _hostile, _later = three_messages(cli)
    maildir = tmp_path / "Maildir"
    mailbox.Maildir(maildir, create=True)
    huge = good + b"x" * (10 * 1024 * 1024)
    (maildir / "new" / "1.huge").write_bytes(huge)
    result = cli("bounces", "ingest", str(maildir))
    assert result.returncode == 1 and "1 message(s) quarantined" in result.stderr
    assert "larger than 10,485,760 bytes" in result.stderr
    (kept,) = quarantine_files(live)
    assert kept.stat().st_size == len(huge)  # all of it, for whoever looks
    assert subscriber(live, "ann@example.com").status == SubscriberStatus.CONFIRMED  # not read


def test_each_message_commits_on_its_own(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The run stops when the quarantine cannot be written (exit 78); the bounce before
    the hostile message stays recorded, the hostile one and those after it stay waiting."""
    live: Settings = cli.settings
    good, hostile, later = three_messages(cli)
    maildir = tmp_path / "Maildir"
    mailbox.Maildir(maildir, create=True)
    for name, raw in (("1.ann", good), ("2.hostile", hostile), ("3.bob", later)):
        (maildir / "new" / name).write_bytes(raw)
    live.data_dir.mkdir(parents=True, exist_ok=True)
    (live.data_dir / "quarantine").write_text("not a directory")
    result = cli("bounces", "ingest", str(maildir))
    assert result.returncode == 78 and "the quarantine cannot be written" in result.stderr
    assert subscriber(live, "ann@example.com").status == SubscriberStatus.BOUNCED
    assert subscriber(live, "bob@example.com").soft_bounces == 0
    assert sorted(p.name for p in (maildir / "new").iterdir()) == ["2.hostile", "3.bob"]

    (live.data_dir / "quarantine").unlink()
    result = cli("bounces", "ingest", str(maildir))
    assert result.returncode == 1 and "1 message(s) quarantined" in result.stderr
    assert_both_recorded(live)
