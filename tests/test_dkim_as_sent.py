"""Every kind of email we send carries a DKIM signature that verifies as a receiving server
gets it: release emails, correction notices, test sends, confirmation emails and
invitations, each sent by its real send path (the ledger's claim → send → record loop, the
CLI, the worker) to a real SMTP server, and the bytes that server received checked with
dkimpy's verifier.

The signer itself is tested in test_mail_dkim.py; these tests fail when a send path stops
calling it (unsigned, a DMARC ``p=reject`` policy at the reader's provider drops the mail).
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization

from distributor import actions
from distributor.audience.subscription import Consent, request_subscription
from distributor.core.config import Settings
from distributor.core.queue import TaskQueue
from distributor.mail.dkim import Signer, load_signer
from distributor.outbox import sending
from distributor.releases.source import parse_release
from tests.corrections import send_all
from tests.dkim_keys import dns_for, write_key
from tests.helpers import CountingQueue, add_topics, make_release, published, release_text
from tests.processes import run_cli, running_worker, wait_until
from tests.smtp_server import Received, SMTPServer

READERS = ["ann@example.com", "bob@example.com"]


def signing_with_a_new_key(base: Settings, smtp_server: SMTPServer, key_file: Path) -> Settings:
    """``base`` sending to the test SMTP server and signing with a new throwaway key (written
    to ``key_file``) as selector ``press2026`` of ``example.org``, the sender's domain."""
    write_key(key_file, serialization.PrivateFormat.PKCS8)
    return base.model_copy(
        update={
            "smtp_url": smtp_server.url,
            "dkim_key_file": key_file,
            "dkim_selector": "press2026",
            "dkim_domain": "example.org",
        }
    )


@pytest.fixture
def signing(settings: Settings, smtp_server: SMTPServer, tmp_path: Path) -> Settings:
    """Signing settings on SQLite, then on PostgreSQL (see :func:`signing_with_a_new_key`)."""
    return signing_with_a_new_key(settings, smtp_server, tmp_path / "dkim.pem")


def signer_of(settings: Settings) -> Signer:
    """The signer ``settings`` configure, whose public key the verifier's DNS publishes."""
    signer = load_signer(settings)
    assert signer is not None
    return signer


def covered_fields(received: Received, signer: Signer) -> set[bytes]:
    """The header fields (lowercase names) whose values the message's DKIM signature covers,
    as dkimpy's verifier hashed them; fails unless the signature, by ``example.org`` with
    selector ``press2026``, verifies on the bytes the SMTP server received."""
    assert received.data.startswith(b"DKIM-Signature: "), received.data[:200]
    verifier = dkim.DKIM(received.data)
    assert verifier.verify(dnsfunc=dns_for(signer)), f"signature of {received.rcpt} fails"
    assert (verifier.domain, verifier.selector) == (b"example.org", b"press2026")
    return {name for name, _value in verifier.signed_headers}


def assert_verifies(received: Received, signer: Signer) -> EmailMessage:
    """Assert that a message, as the SMTP server received it, carries a DKIM signature that
    verifies and covers the From and Subject it shows and its Feedback-ID; and that the same
    bytes with the Subject changed do not verify (a verifier that accepted anything would
    not pass). Returns the message parsed."""
    assert {b"from", b"subject", b"feedback-id"} <= covered_fields(received, signer)
    parsed = received.parsed()
    assert parsed["From"] and parsed["Subject"] and parsed["Feedback-ID"]
    subject = b"\r\nSubject: "
    assert subject in received.data
    forged = received.data.replace(subject, subject + b"Re: ", 1)
    assert not dkim.verify(forged, dnsfunc=dns_for(signer))
    return parsed


def test_release_emails_as_sent_verify(signing: Settings, smtp_server: SMTPServer) -> None:
    """A published release planned in the ledger and sent by ``send_batch`` (claim, render,
    sign, send, record) reaches each reader signed: the signature verifies on the bytes the
    SMTP server received and covers From, Subject and the Feedback-ID."""
    release_id = published(signing, READERS)
    send_all(signing, release_id)
    received = smtp_server.handler.messages
    assert sorted(m.rcpt for m in received) == READERS
    for message in received:
        parsed = assert_verifies(message, signer_of(signing))
        assert parsed["Subject"] == "Agency signs agreement"
        assert parsed["Feedback-ID"] == f"release-{release_id}:en:press:example.org"


def test_correction_notices_as_sent_verify(signing: Settings, smtp_server: SMTPServer) -> None:
    """The correction notice that ``correct --notify`` plans, sent by the notice send loop
    (``send_correction_notices``), is signed too, and its threading (In-Reply-To) is signed
    with it: it cannot be moved under another message."""
    release_id = published(signing, READERS)
    send_all(signing, release_id)
    before = len(smtp_server.handler.messages)
    fixed = release_text(title="Agency signs agreement (corrected)")
    draft = parse_release(fixed, "fixed.md", signing)
    queue = CountingQueue()
    actions.correct(signing, queue, release_id, draft, notify=True)  # type: ignore[arg-type]
    while sending.send_correction_notices(signing, release_id).claimed:
        pass
    notices = smtp_server.handler.messages[before:]
    assert sorted(m.rcpt for m in notices) == READERS
    for message in notices:
        parsed = assert_verifies(message, signer_of(signing))
        assert parsed["Subject"] == "Correction: Agency signs agreement (corrected)"
        assert parsed["In-Reply-To"]
        assert b"in-reply-to" in covered_fields(message, signer_of(signing))


def test_a_test_send_from_the_cli_verifies(signing: Settings, smtp_server: SMTPServer) -> None:
    """``distributor releases test ID --to …``, run as a user runs it (its own process, the
    DKIM key and selector given only by DISTRIBUTOR_DKIM_* variables), sends a [TEST] copy
    that is signed like the real thing."""
    add_topics(signing, "climate")
    release = make_release(signing)
    result = run_cli(signing, "releases", "test", str(release.id), "--to", "desk@example.org")
    assert result.returncode == 0, result.stderr
    (message,) = smtp_server.handler.messages
    assert message.rcpt == "desk@example.org"
    parsed = assert_verifies(message, signer_of(signing))
    assert parsed["Subject"] == "[TEST] Agency signs agreement"


def test_the_confirmation_a_worker_sends_verifies(
    sqlite_settings: Settings, smtp_server: SMTPServer, redis_url: str, tmp_path: Path
) -> None:
    """A subscription request (recorded and enqueued as the web form does it) wakes a real
    `distributor worker` over Redis; the double opt-in email that worker sends, the first a
    reader's provider sees from us, is signed with the key the worker was configured with.
    SQLite only: a worker costs seconds, and the signing does not depend on the database."""
    signing = signing_with_a_new_key(sqlite_settings, smtp_server, tmp_path / "dkim.pem")
    live = signing.model_copy(update={"broker_url": redis_url})
    add_topics(live, "climate")
    with running_worker(live, tmp_path / "logs", concurrency=1):
        queue = TaskQueue(live)
        try:
            request_subscription(
                live, queue, email="reporter@example.com", name="Ana", language="en",
                topics=["climate"], consent=Consent("192.0.2.1", "test"),
            )  # fmt: skip
        finally:
            queue.close()
        wait_until(lambda: bool(smtp_server.handler.messages), 60, "the confirmation email")
    (message,) = smtp_server.handler.messages
    assert message.rcpt == "reporter@example.com"
    parsed = assert_verifies(message, signer_of(live))
    assert parsed["Feedback-ID"] == "confirm:en:subscription:example.org"


def test_the_invitation_a_worker_sends_verifies(
    sqlite_settings: Settings, smtp_server: SMTPServer, redis_url: str, tmp_path: Path
) -> None:
    """An admin's invitation to the workspace wakes a real `distributor worker`
    (``send_invitation``); the email it sends, with the link to choose a password, is
    signed. SQLite only, as for the confirmation."""
    signing = signing_with_a_new_key(sqlite_settings, smtp_server, tmp_path / "dkim.pem")
    live = signing.model_copy(update={"broker_url": redis_url})
    with running_worker(live, tmp_path / "logs", concurrency=1):
        queue = TaskQueue(live)
        try:
            actions.invite(live, queue, "sam@example.org", "writer", "user:ines@example.org")
        finally:
            queue.close()
        wait_until(lambda: bool(smtp_server.handler.messages), 60, "the invitation email")
    (message,) = smtp_server.handler.messages
    assert message.rcpt == "sam@example.org"
    parsed = assert_verifies(message, signer_of(live))
    assert parsed["Feedback-ID"] == "invite:en:workspace:example.org"
    assert "/admin/invitation/" in message.data.decode()
