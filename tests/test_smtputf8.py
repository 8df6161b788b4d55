"""Internationalised addresses (RFC 6531/6532): accepted wherever an address comes in, stored
with an A-label domain, sent with SMTPUTF8 when the relay offers it — what the server
received is checked: envelope, parameters, headers decoded — and deferred, with the reason
in the ledger, when it does not. An ASCII address with an IDN domain needs no SMTPUTF8."""

from __future__ import annotations

import email
import io
import smtplib
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor import actions
from distributor.audience.addresses import normalise_email
from distributor.audience.subscribers import import_csv
from distributor.audience.subscription import Consent, record_request
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import SubscriberInputError
from distributor.core.models import Delivery, Subscriber, SubscriptionRequest
from distributor.mail import preview
from distributor.mail.compose import render_release
from distributor.mail.dkim import load_signer
from distributor.office.identity import environment_identity
from distributor.outbox import sending
from distributor.releases.source import parse_release
from distributor.web import create_app
from tests.bounce_mail import envelope_and_headers, postfix_dsn, run_ingest
from tests.corrections import add_readers, corrected_text, send_release
from tests.dkim_keys import dkim_settings, dns_for, write_key
from tests.helpers import (
    CountingQueue,
    add_subscribers,
    add_topics,
    empty_queue_and_limits,
    make_release,
    new_token,
    published,
    queued_confirmations,
    subscribe,
)
from tests.smtp_server import Received, SMTPServer

JOSE = "josé@example.org"
CHINESE = "用户@例子.广告"
CHINESE_STORED = "用户@xn--fsqu00a.xn--4rr70v"
IDN = "user@bücher.example"
IDN_STORED = "user@xn--bcher-kva.example"
PEOPLE = [JOSE, CHINESE, IDN, "plain@example.com"]


@pytest.fixture(params=["smtputf8", "no-smtputf8"])
def relay(request: pytest.FixtureRequest) -> Iterator[SMTPServer]:
    """A relay offering SMTPUTF8 (as Postfix does), and one that does not."""
    server = SMTPServer(smtputf8=request.param == "smtputf8").start()
    yield server
    server.stop()


def parsed(message: Received) -> EmailMessage:
    """The message as a mail program reads it: RFC 6532 headers decoded as UTF-8."""
    msg = email.message_from_string(message.data.decode(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def ledger(s: Settings) -> dict[str, tuple[str, str, str]]:
    """Address → (status, last_error, subscriber status)."""
    with session_scope(s) as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status, Delivery.last_error, Subscriber.status)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        )  # fmt: skip
        return {e: (str(status), error, str(sub)) for e, status, error, sub in rows}


def relay_offers(relay: SMTPServer) -> bool:
    """Whether the relay's EHLO reply offers SMTPUTF8."""
    with smtplib.SMTP("127.0.0.1", relay.port) as client:
        client.ehlo()
        return client.has_extn("smtputf8")


# -- accepted where an address comes in, stored once --------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        (JOSE, JOSE),
        ("JOSÉ@Example.ORG", JOSE),
        ("jose\u0301@example.org", JOSE),  # decomposed: the same address, NFC
        (CHINESE, CHINESE_STORED),
        (IDN, IDN_STORED),
        ("User@BÜCHER.example", IDN_STORED),
        ("user@XN--BCHER-KVA.example", IDN_STORED),  # the A-label typed: the same row
        ("Plain@Example.com", "plain@example.com"),  # as ever
    ],
)
def test_internationalised_addresses_are_accepted_with_one_stored_form(
    typed: str, stored: str
) -> None:
    assert normalise_email(typed) == stored


@pytest.mark.parametrize(
    "address",
    ["é" * 33 + "@example.org",  # 66 octets before the @: over SMTP's 64
     "a\u202eb@example.org", "a\u200bb@example.org", "jos\u00e9@exa mple.org"],
)  # fmt: skip
def test_too_long_or_unsafe_ones_are_still_refused(address: str) -> None:
    with pytest.raises(SubscriberInputError, match="email"):
        normalise_email(address)


def test_csv_import_accepts_them_and_spellings_of_one_address_are_one_row(
    sqlite_settings: Settings,
) -> None:
    add_topics(sqlite_settings, "climate")
    rows = "".join(f"{a},A,en,climate\n" for a in [*PEOPLE, "USER@Bücher.Example"])
    with session_scope(sqlite_settings) as session:
        report = import_csv(session, sqlite_settings, io.StringIO("email,name,language,topics\n"
                            + rows), "people.csv", skip_invalid=True)  # fmt: skip
        assert report.added == 4
        assert [r.reason for r in report.rejected] == [f"email: {IDN_STORED} already on line 4"]
        stored = set(session.scalars(select(Subscriber.email)))
    assert stored == {JOSE, CHINESE_STORED, IDN_STORED, "plain@example.com"}


def test_the_subscribe_form_accepts_them(sqlite_settings: Settings, redis_url: str) -> None:
    s = sqlite_settings.model_copy(update={"broker_url": redis_url})
    empty_queue_and_limits(redis_url)
    add_topics(s, "climate")
    with TestClient(create_app(s), base_url="https://testserver") as client:
        for address in (JOSE, CHINESE):
            answer = subscribe(client, email=address)
            assert answer.status_code == 200, answer.text  # type: ignore[attr-defined]
    with session_scope(s) as session:  # requests: subscribers once they confirm
        stored = set(session.scalars(select(SubscriptionRequest.email)))
    assert stored == {JOSE, CHINESE_STORED}
    assert len(queued_confirmations(s)) == 2


def test_the_api_accepts_them(sqlite_settings: Settings, redis_url: str) -> None:

    s = sqlite_settings.model_copy(update={"broker_url": redis_url})
    add_topics(s, "climate")
    token = new_token(s, "desk", ["subscribers"])
    with TestClient(create_app(s)) as client:
        body = {"email": CHINESE, "language": "en", "topics": ["climate"], "confirmed": True,
                "consent_source": "card"}  # fmt: skip
        added = client.post("/api/subscribers", json=body,
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert added.status_code == 201, added.text
    assert added.json()["email"] == CHINESE_STORED


# -- sent with SMTPUTF8, or deferred ------------------------------------------------------


def test_a_release_goes_with_smtputf8_or_is_deferred_with_the_reason(
    sqlite_settings: Settings, relay: SMTPServer
) -> None:
    s = sqlite_settings.model_copy(update={"smtp_url": relay.url})
    release_id = published(s, PEOPLE)
    report = sending.send_batch(s, release_id)
    received = relay.handler.by_rcpt()
    offers = relay_offers(relay)
    # The ASCII ones as ever: no SMTPUTF8, the IDN domain as its A-label.
    for address in ("plain@example.com", IDN_STORED):
        (copy,) = received[address]
        assert copy.mail_options == [] and copy.data.isascii()
        assert copy.mail_from.startswith("bounces+d") and copy.mail_from.isascii()
        assert parsed(copy)["To"].addresses[0].addr_spec == address
    rows = ledger(s)
    if offers:
        assert report.outcomes == {"sent": 4, "deferred": 0, "failed": 0}
        for address in (JOSE, CHINESE_STORED):
            (copy,) = received[address]
            assert "SMTPUTF8" in copy.mail_options
            assert copy.mail_from.startswith("bounces+d") and copy.mail_from.isascii()  # VERP
            msg = parsed(copy)
            assert msg["To"].addresses[0].addr_spec == address
            assert f"<{address}>".encode() in copy.data  # raw UTF-8, RFC 6532
            assert not msg.defects and "Agency signs agreement" in str(msg["Subject"])
            assert rows[address][0] == "sent"
    else:
        assert report.outcomes == {"sent": 2, "deferred": 2, "failed": 0}
        assert set(received) == {"plain@example.com", IDN_STORED}
        port = relay.port
        for address in (JOSE, CHINESE_STORED):
            status, error, subscriber = rows[address]
            assert (status, subscriber) == ("deferred", "confirmed")  # not failed, not bounced
            assert error == f"the relay 127.0.0.1:{port} does not offer SMTPUTF8, " \
                            f"which {address} needs"  # fmt: skip


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-at-a-time"])
def test_without_pipelining_too(
    sqlite_settings: Settings, smtp_server: SMTPServer, pipelining: bool
) -> None:
    smtp_server.handler.pipelining = pipelining
    s = sqlite_settings.model_copy(update={"smtp_url": smtp_server.url})
    release_id = published(s, [JOSE, "plain@example.com", CHINESE])
    assert sending.send_batch(s, release_id).outcomes["sent"] == 3
    received = smtp_server.handler.by_rcpt()
    assert "SMTPUTF8" in received[JOSE][0].mail_options
    assert received["plain@example.com"][0].mail_options == []
    assert parsed(received[CHINESE_STORED][0])["To"].addresses[0].addr_spec == CHINESE_STORED


def test_the_maildir_outbox_writes_them_as_they_are(sqlite_settings: Settings) -> None:
    release_id = published(sqlite_settings, [JOSE])
    assert sending.send_batch(sqlite_settings, release_id).outcomes["sent"] == 1
    (stored,) = (sqlite_settings.outbox_dir / "new").iterdir()
    data = stored.read_bytes()
    assert b"To: P <jos\xc3\xa9@example.org>\r\n" in data
    assert (
        email.message_from_string(data.decode(), policy=policy.default)["To"].addresses[0].addr_spec
        == JOSE
    )


def test_an_ascii_message_is_unchanged_by_a_utf8_address_beside_it(
    sqlite_settings: Settings,
) -> None:
    """The composer writes UTF-8 only into the To field of an internationalised address."""
    from distributor.mail.preview import placeholder

    add_topics(sqlite_settings, "climate")
    rendered = render_release(
        make_release(sqlite_settings), sqlite_settings, environment_identity(sqlite_settings)
    )
    ascii_one = rendered.message_for(placeholder(sqlite_settings, "jose@example.org"))
    utf8_one = rendered.message_for(placeholder(sqlite_settings, JOSE))
    assert ascii_one.isascii()
    assert utf8_one.replace("é".encode(), b"e") == ascii_one


def test_dkim_signs_a_utf8_message_that_dkimpy_verifies(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    write_key(tmp_path / "dkim.pem", serialization.PrivateFormat.PKCS8)
    signer = load_signer(dkim_settings(tmp_path, tmp_path / "dkim.pem"))
    assert signer is not None
    add_topics(sqlite_settings, "climate")
    rendered = render_release(
        make_release(sqlite_settings), sqlite_settings, environment_identity(sqlite_settings)
    )
    for address in (JOSE, CHINESE_STORED):
        message = rendered.message_for(preview.placeholder(sqlite_settings, address))
        signed = signer.sign(message)
        assert dkim.verify(signed, dnsfunc=dns_for(signer))
        # The To field is covered: another mailbox breaks the signature.
        forged = signed.replace(address.encode(), b"eve@example.org")
        assert not dkim.verify(forged, dnsfunc=dns_for(signer))


def test_the_confirmation_email_takes_the_same_path(
    sqlite_settings: Settings, relay: SMTPServer
) -> None:
    s = sqlite_settings.model_copy(update={"smtp_url": relay.url})
    add_topics(s, "climate")
    with session_scope(s) as session:
        request = record_request(
            session, s, email=JOSE, name="José", language="en", topics=["climate"],
            consent=Consent("192.0.2.7", "test"),
        )  # fmt: skip
    outcome = sending.send_confirmation(s, request.id)
    if relay_offers(relay):
        assert outcome == "sent"
        (copy,) = relay.handler.messages
        assert copy.rcpt == JOSE and "SMTPUTF8" in copy.mail_options
        msg = parsed(copy)
        assert msg["To"].addresses[0].addr_spec == JOSE and not msg.defects
        assert "=?utf-8?" not in copy.data.split(b"\r\n\r\n")[0].decode().split("To:")[1][:40]
    else:
        assert outcome == "deferred" and relay.handler.messages == []


def test_correction_notices_take_the_same_path(
    sqlite_settings: Settings, smtp_server: SMTPServer
) -> None:
    s = sqlite_settings.model_copy(update={"smtp_url": smtp_server.url})
    add_readers(s)
    add_subscribers(s, [(JOSE, "José", "en", "climate")])
    release = make_release(s)
    send_release(s, release.id)
    fix = parse_release(corrected_text(), "fix.md", s)
    actions.correct(s, CountingQueue(), release.id, fix, notify=True)  # type: ignore[arg-type]
    report = sending.send_correction_notices(s, release.id)
    assert report.outcomes["failed"] == 0 and report.outcomes["deferred"] == 0
    copies = smtp_server.handler.by_rcpt()[JOSE]
    assert len(copies) == 2  # the release, then its correction notice
    notice = parsed(copies[1])
    assert "SMTPUTF8" in copies[1].mail_options
    assert notice["To"].addresses[0].addr_spec == JOSE
    assert str(notice["Subject"]).startswith("Correction:")


def test_a_test_send_goes_to_them(sqlite_settings: Settings, smtp_server: SMTPServer) -> None:
    s = sqlite_settings.model_copy(update={"smtp_url": smtp_server.url})
    add_topics(s, "climate")
    release = make_release(s)
    outcomes = preview.send_test(s, release.id, [JOSE, IDN])
    assert [(o.address, o.sent) for o in outcomes] == [(JOSE, True), (IDN_STORED, True)]
    received = smtp_server.handler.by_rcpt()
    assert parsed(received[JOSE][0])["To"].addresses[0].addr_spec == JOSE
    assert received[IDN_STORED][0].mail_options == []


def test_an_idn_sender_domain_keeps_the_envelope_ascii(
    sqlite_settings: Settings, smtp_server: SMTPServer
) -> None:
    s = sqlite_settings.model_copy(
        update={"smtp_url": smtp_server.url, "sender": "Presse <presse@bücher.example>"}
    )
    release_id = published(s, ["plain@example.com"])
    assert sending.send_batch(s, release_id).outcomes["sent"] == 1
    (copy,) = smtp_server.handler.messages
    assert copy.mail_from.startswith("bounces+d") and copy.mail_from.endswith(
        "@xn--bcher-kva.example"
    )
    assert copy.mail_options == [] and copy.data.isascii()
    msg = parsed(copy)
    assert msg["From"].addresses[0].addr_spec == "presse@xn--bcher-kva.example"
    assert str(msg["Message-ID"]).endswith("@xn--bcher-kva.example>")


@pytest.mark.parametrize(
    ("content_type", "escaped"),
    [("delivery-status", False), ("global-delivery-status", False),
     ("global-delivery-status", True)],
)  # fmt: skip
def test_a_bounce_for_an_internationalised_address_is_recorded(
    sqlite_settings: Settings, smtp_server: SMTPServer, content_type: str, escaped: bool
) -> None:
    """A DSN naming the address in UTF-8 (as a relay with SMTPUTF8 writes it; RFC 6533's
    message/global-delivery-status too) marks the subscriber bounced; it used to stop the
    ingest with UnicodeDecodeError."""
    s = sqlite_settings.model_copy(update={"smtp_url": smtp_server.url})
    release_id = published(s, [JOSE, "plain@example.com"])
    sending.send_batch(s, release_id)
    mail_from, headers = envelope_and_headers(smtp_server, JOSE, release_id)
    dsn = postfix_dsn(mail_from, JOSE, "5.1.1", headers=headers)
    dsn = dsn.replace(b"message/delivery-status", f"message/{content_type}".encode())
    if escaped:  # RFC 6533's utf-8-addr-xtext
        dsn = dsn.replace(f"rfc822; {JOSE}".encode(), b"utf-8; jos\\x{E9}@example.org")
        dsn = dsn.replace(f"rfc822;{JOSE}".encode(), b"utf-8;jos\\x{E9}@example.org")
    report = run_ingest(s, dsn)
    assert (report.hard, report.bounced, report.ignored) == (1, 1, 0)
    rows = ledger(s)
    assert rows[JOSE][2] == "bounced" and rows["plain@example.com"][2] == "confirmed"
