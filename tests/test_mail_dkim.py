"""DKIM: messages signed by our signer verify with dkimpy's verifier, before and after a trip
through a real SMTP server; a changed message does not."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from distributor.audience.subscription import Consent, record_request
from distributor.core.config import load_settings
from distributor.core.db import session_scope, upgrade
from distributor.core.errors import ConfigError
from distributor.core.models import Release, Topic
from distributor.mail.compose import Recipient, render_release
from distributor.mail.correction import render_notice
from distributor.mail.dkim import Signer, load_signer
from distributor.mail.preview import as_test_message
from distributor.mail.relays import open_transport
from distributor.office.identity import environment_identity
from distributor.outbox import sending
from distributor.releases.topics import add_topic
from tests.dkim_keys import dkim_settings, dns_for, write_key
from tests.processes import run_cli
from tests.smtp_server import SMTPServer

REQUIRED = [
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
]


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    key_file = tmp_path / "dkim.pem"
    write_key(key_file, serialization.PrivateFormat.TraditionalOpenSSL)
    loaded = load_signer(dkim_settings(tmp_path, key_file))
    assert loaded is not None
    return loaded


def composed(tmp_path: Path) -> bytes:
    settings = dkim_settings(tmp_path, None, dkim_selector=None, dkim_domain=None)
    return render_release(sample_release(), settings, environment_identity(settings)).message_for(
        reader()
    )


def sample_release() -> Release:
    return Release(
        id=3,
        slug="sécheresse",
        title="Sécheresse : l'état des nappes phréatiques au 1er novembre",
        language="fr",
        dateline="Orléans",
        lead="Les niveaux sont inférieurs à la normale sur 62 % des points de mesure.",
        body_html="<p>Le détail par département figure dans le rapport.</p>",
        body_text="Le détail par département figure dans le rapport.",
        date=datetime(2026, 11, 20, 8, tzinfo=UTC),
        contacts=[{"name": "Jeanne Dupont", "phone": "+33 1 00 00 00 00"}],
        images=[],
        topics=[Topic(slug="eau", names={"fr": "Eau"})],
    )


def reader() -> Recipient:
    return Recipient(
        5,
        "reader@example.com",
        "Jean-François Lefèvre",
        "https://news.example.org/unsubscribe/abc",
        "https://news.example.org/preferences/def",
    )


def test_signed_message_verifies(tmp_path: Path, signer: Signer) -> None:
    message = composed(tmp_path)
    signed = signer.sign(message)
    assert signed.startswith(b"DKIM-Signature: ") and signed.endswith(message)
    assert dkim.verify(signed, dnsfunc=dns_for(signer))

    field = signed[: len(signed) - len(message)].decode()
    tags = dict(
        (tag.split("=", 1)[0].strip(), re.sub(r"\s+", "", tag.split("=", 1)[1]))
        for tag in field.removeprefix("DKIM-Signature:").split(";")
    )
    assert (tags["a"], tags["c"], tags["d"], tags["s"]) == (
        "rsa-sha256",
        "relaxed/relaxed",
        "example.org",
        "press2026",
    )
    signed_names = tags["h"].split(":")
    assert set(REQUIRED) <= set(signed_names)
    assert signed_names.count("from") == 2  # oversigned: a second From breaks the signature
    assert all(len(line) <= 78 for line in field.split("\r\n"))
    parsed = email.message_from_bytes(signed, policy=policy.default)
    assert parsed["Subject"] == "Sécheresse : l'état des nappes phréatiques au 1er novembre"


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Message-ID: <release-3.5@", b"Message-ID: <release-3.6@"),
        (b"List-Unsubscribe: <https://news.example.org/unsubscribe/abc>", b"List-Unsubscribe: <https://evil.example/x>"),
        (b"=C3=A9tail", b"=C3=A8tail"),
    ],
)  # fmt: skip
def test_a_changed_message_fails_verification(
    tmp_path: Path, signer: Signer, old: bytes, new: bytes
) -> None:
    signed = signer.sign(composed(tmp_path))
    assert old in signed
    assert not dkim.verify(signed.replace(old, new, 1), dnsfunc=dns_for(signer))


def test_an_added_header_fails_verification(tmp_path: Path, signer: Signer) -> None:
    signed = signer.sign(composed(tmp_path))
    added = signed.replace(b"\r\nTo:", b"\r\nSubject: Free money\r\nTo:", 1)
    assert not dkim.verify(added, dnsfunc=dns_for(signer))


def test_signature_survives_smtp(tmp_path: Path, signer: Signer, smtp_server: SMTPServer) -> None:
    signed = signer.sign(composed(tmp_path))
    settings = load_settings(data_dir=tmp_path / "var", smtp_url=smtp_server.url, smtp_timeout=5)
    with open_transport(settings) as transport:
        assert transport.send("press@example.org", "reader@example.com", signed).outcome == "sent"
    [received] = smtp_server.handler.messages
    assert dkim.verify(received.data, dnsfunc=dns_for(signer))


@pytest.mark.parametrize(
    "body",
    [
        b"Tabs\tand  double  spaces, trailing spaces   \r\n\r\n  indented\r\n\r\n\r\n",
        b" \t \r\n",
        b"",
        b"no final line break",
    ],
)
@pytest.mark.parametrize("newline", [b"\r\n", b"\n"])
def test_any_body_verifies(signer: Signer, body: bytes, newline: bytes) -> None:
    message = (
        b"From: Press <press@example.org>\r\nTo: a@example.com\r\nSubject:  spaced\t out \r\n"
        b"List-Unsubscribe: <https://news.example.org/u/1>\r\n\r\n" + body
    ).replace(b"\r\n", newline)
    assert dkim.verify(signer.sign(message), dnsfunc=dns_for(signer))


def test_test_emails_and_correction_notices_verify(tmp_path: Path, signer: Signer) -> None:
    settings = dkim_settings(tmp_path, None, dkim_selector=None, dkim_domain=None)
    rendered = render_release(sample_release(), settings, environment_identity(settings))
    test_email = signer.sign(as_test_message(settings, rendered, reader()))
    assert email.message_from_bytes(test_email, policy=policy.default)["Subject"].startswith(
        "[TEST] "
    )
    notice = render_notice(
        sample_release(),
        settings,
        environment_identity(settings),
        datetime(2026, 11, 21, 9, tzinfo=UTC),
    )
    correction = signer.sign(notice.message_for(reader()))
    assert b"\r\nIn-Reply-To: <release-3.5@example.org>\r\n" in correction
    for message in (test_email, correction):
        assert dkim.verify(message, dnsfunc=dns_for(signer))
    # The threading of a notice is signed: it cannot be moved under another message.
    moved = correction.replace(b"In-Reply-To: <release-3.5@", b"In-Reply-To: <release-4.5@")
    assert not dkim.verify(moved, dnsfunc=dns_for(signer))


@pytest.mark.parametrize(
    "head",
    [
        # folded fields, tabs and runs of spaces in values, a name in another case
        b"FROM: Press\r\n\t<press@example.org>\r\nTo:   a@example.com  \r\n"
        b"Subject: one\r\n  two\t\tthree\r\n",
        # two instances of a signed field: the last one is signed first (RFC 6376 5.4.2)
        b"From: Press <press@example.org>\r\nReceived: x\r\nTo: a@example.com\r\n"
        b"To: b@example.com\r\nSubject:\r\nReceived: y\r\n",
        # something only dkimpy's parser takes: an mbox "From " line
        b"From press@example.org Sat Nov 28 10:00:00 2026\r\nFrom: press@example.org\r\n",
    ],
)
def test_any_header_verifies(signer: Signer, head: bytes) -> None:
    signed = signer.sign(head + b"\r\nBody  text \r\n")
    assert dkim.verify(signed, dnsfunc=dns_for(signer))


def test_the_key_is_read_once_and_again_when_rotated(tmp_path: Path) -> None:
    key_file = tmp_path / "dkim.pem"
    write_key(key_file, serialization.PrivateFormat.PKCS8)
    settings = dkim_settings(tmp_path, key_file)
    first = load_signer(settings)
    assert first is not None and load_signer(settings) is first  # not parsed again
    write_key(key_file, serialization.PrivateFormat.PKCS8)
    rotated = load_signer(settings)
    assert rotated is not None and rotated is not first
    assert rotated.dns_record != first.dns_record
    assert dkim.verify(rotated.sign(composed(tmp_path)), dnsfunc=dns_for(rotated))


def test_pkcs8_keys_work_too(tmp_path: Path) -> None:
    key_file = tmp_path / "pkcs8.pem"
    write_key(key_file, serialization.PrivateFormat.PKCS8)
    signer = load_signer(dkim_settings(tmp_path, key_file))
    assert signer is not None
    assert dkim.verify(signer.sign(composed(tmp_path)), dnsfunc=dns_for(signer))


def test_no_dkim_settings_means_no_signer(tmp_path: Path) -> None:
    assert load_signer(dkim_settings(tmp_path, None, dkim_selector=None, dkim_domain=None)) is None


def test_half_configured_dkim_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DISTRIBUTOR_DKIM_KEY_FILE"):
        load_signer(dkim_settings(tmp_path, None))


def test_missing_key_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"DISTRIBUTOR_DKIM_KEY_FILE.*cannot read"):
        load_signer(dkim_settings(tmp_path, tmp_path / "nowhere.pem"))


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660], ids=lambda m: f"{m:04o}")
def test_a_key_other_users_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    """Whoever can read the key signs mail as the press office; one that others can change
    is no better. The error names the file and the fix."""
    key_file = tmp_path / "dkim.pem"
    write_key(key_file, serialization.PrivateFormat.PKCS8)
    key_file.chmod(mode)
    with pytest.raises(ConfigError) as refused:
        load_signer(dkim_settings(tmp_path, key_file))
    message = str(refused.value)
    assert "DISTRIBUTOR_DKIM_KEY_FILE" in message and f"chmod 600 {key_file}" in message
    assert f"{mode:04o}" in message
    key_file.chmod(0o400)  # read-only for its owner is fine too
    assert load_signer(dkim_settings(tmp_path, key_file)) is not None


def test_a_worker_with_a_readable_dkim_key_does_not_start(tmp_path: Path) -> None:
    key_file = tmp_path / "dkim.pem"
    write_key(key_file, serialization.PrivateFormat.PKCS8)
    key_file.chmod(0o644)
    result = run_cli(dkim_settings(tmp_path, key_file), "worker")
    assert result.returncode == 78, result.stderr
    assert f"chmod 600 {key_file}" in result.stderr and "Traceback" not in result.stderr


def test_a_file_that_is_not_a_key_is_an_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key\n")
    garbage.chmod(0o600)
    with pytest.raises(ConfigError, match=r"DISTRIBUTOR_DKIM_KEY_FILE.*not an unencrypted PEM"):
        load_signer(dkim_settings(tmp_path, garbage))


def test_a_non_rsa_key_is_an_error(tmp_path: Path) -> None:
    key_file = tmp_path / "ec.pem"
    key = ec.generate_private_key(ec.SECP256R1())
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    with pytest.raises(ConfigError, match="must be an RSA key"):
        load_signer(dkim_settings(tmp_path, key_file))


def test_the_confirmation_email_goes_out_signed(
    tmp_path: Path, signer: Signer, smtp_server: SMTPServer
) -> None:
    """The double opt-in email is the first a subscriber's provider sees from us: it is
    signed like every release email (unsigned, a DMARC policy would have it rejected)."""
    settings = dkim_settings(tmp_path, tmp_path / "dkim.pem", smtp_url=smtp_server.url)
    upgrade(settings)
    with session_scope(settings) as session:
        add_topic(session, "climate", {"en": "Climate", "fr": "Climat"})
    with session_scope(settings) as session:
        request = record_request(
            session, settings, email="reporter@example.com", name="Ana", language="en",
            topics=["climate"], consent=Consent("192.0.2.1", "test"),
        )  # fmt: skip
    assert sending.send_confirmation(settings, request.id) == "sent"
    [received] = smtp_server.handler.messages
    assert received.data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    assert dkim.verify(received.data, dnsfunc=dns_for(signer))
    assert received.parsed()["Feedback-ID"] == "confirm:en:subscription:example.org"


def test_a_signing_domain_dmarc_would_not_count_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key_file = tmp_path / "dkim.pem"
    write_key(key_file, serialization.PrivateFormat.TraditionalOpenSSL)
    for dkim_domain, sender in [
        ("news.example.org", "press@example.org"),  # a subdomain of the sender's
        ("mail.example.org", "press@news.example.org"),  # a sibling: same organisation
        ("mail.example.co.uk", "press@example.co.uk"),  # under a two-label public suffix
    ]:
        caplog.clear()
        assert load_signer(dkim_settings(tmp_path, key_file, dkim_domain=dkim_domain,
                                         sender=f"Press <{sender}>"))  # fmt: skip
        assert "DMARC" not in caplog.text, (dkim_domain, sender)
    for dkim_domain, sender in [
        ("mailer.example.net", "press@example.org"),
        ("other.co.uk", "press@example.co.uk"),  # co.uk is a public suffix, not an org
        ("b.github.io", "press@a.github.io"),  # a private suffix of the list
    ]:
        caplog.clear()
        assert load_signer(dkim_settings(tmp_path, key_file, dkim_domain=dkim_domain,
                                         sender=f"Press <{sender}>"))  # fmt: skip
        assert f"DISTRIBUTOR_DKIM_DOMAIN {dkim_domain} and the sender's domain " \
               f"{sender.split('@')[1]} have different organisational domains" \
               in caplog.text  # fmt: skip
