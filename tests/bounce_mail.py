"""Bounces as a mail server sends them back: a delivery status notification as Postfix
writes it, its ingestion, and the release sends they answer (the bounce, erasure, README
and SMTPUTF8 tests)."""

from __future__ import annotations

import email

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.outbox import sending
from distributor.outbox.bounces import BounceReport, ingest
from distributor.outbox.ledger import plan
from distributor.releases.lifecycle import mark_published
from tests.helpers import make_release
from tests.smtp_server import SMTPServer


def postfix_dsn(
    to: str, recipient: str, status: str, *, action: str | None = None, headers: bytes = b""
) -> bytes:
    """A delivery status notification as Postfix writes it: multipart/report with a text
    part, a message/delivery-status part and the returned message's headers."""
    action = action or ("failed" if status.startswith("5") else "delayed")
    subject = "Undelivered Mail Returned to Sender" if action == "failed" else "Delayed Mail"
    reply = "550 5.1.1 User unknown" if status.startswith("5") else "451 4.4.1 Try again later"
    return (
        f"""\
Return-Path: <>
Delivered-To: {to}
Received: by mail.example.org (Postfix) id 3F2A1C0123; Fri, 20 Nov 2026 09:00:05 +0100 (CET)
Date: Fri, 20 Nov 2026 09:00:05 +0100 (CET)
From: MAILER-DAEMON@mail.example.org (Mail Delivery System)
Subject: {subject}
To: {to}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="3F2A1C0123.1763625605/mail.example.org"
Message-Id: <20261120080005.3F2A1C0123@mail.example.org>

This is a MIME-encapsulated message.

--3F2A1C0123.1763625605/mail.example.org
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.example.org.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx.example.com[192.0.2.25] said: {reply} (in reply to RCPT TO command)

--3F2A1C0123.1763625605/mail.example.org
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.org
X-Postfix-Queue-ID: 3F2A1C0123
X-Postfix-Sender: rfc822; {to}
Arrival-Date: Fri, 20 Nov 2026 09:00:01 +0100 (CET)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.com
Diagnostic-Code: smtp; {reply}

--3F2A1C0123.1763625605/mail.example.org
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

""".replace("\n", "\r\n").encode()
        + headers
        + b"\r\n--3F2A1C0123.1763625605/mail.example.org--\r\n"
    )


def publish_numbered(settings: Settings, n: int, *, send: bool = True) -> int:
    """Publish release number ``n`` (planned through the ledger) and send it if ``send``."""
    release = make_release(settings, slug=f"release-{n}", title=f"Release {n}")
    with session_scope(settings) as session:
        plan(session, mark_published(session, release.id))
    if send:
        sending.send_batch(settings, release.id)
    return release.id


def envelope_and_headers(smtp: SMTPServer, address: str, release_id: int) -> tuple[str, bytes]:
    """The envelope sender and the header block of the message ``address`` got."""
    for m in smtp.handler.messages:
        if m.rcpt == address and f"<release-{release_id}." in m.data.decode():
            return m.mail_from, m.data.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    raise AssertionError(f"no message of release {release_id} to {address}")


def run_ingest(settings: Settings, *raw: bytes) -> BounceReport:
    """Ingest the raw messages ``raw`` as the bounce mailbox reader does; its report."""
    with session_scope(settings) as session:
        return ingest(session, settings, [email.message_from_bytes(r) for r in raw])
