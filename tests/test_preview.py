"""Before publishing, the press office sees the exact email and sends it to a few
colleagues: a preview and a test send, against a real SMTP server and the real database."""

from __future__ import annotations

import subprocess
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import func, select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import Conflict, InputError, NotFound, ServiceError
from distributor.core.models import Delivery, Release, ReleaseState
from distributor.mail.dkim import load_signer
from distributor.mail.preview import render_preview, send_test
from tests.dkim_keys import dns_for, write_key
from tests.helpers import add_subscribers, add_topics, free_port, make_release
from tests.processes import invoke_cli
from tests.smtp_server import SMTPServer

FRENCH_MD = """\
---
title: L'Agence signe un accord sur le climat
lang: fr
topics: [climate]
date: 2026-11-20T09:00:00+01:00
dateline: PARIS
slug: accord-climat
translation_of: agency-signs-agreement
contacts:
  - {name: Jeanne Dupont, role: Attachée de presse, phone: "+33 1 00 00 00 00",
     email: presse@example.org}
---
L'Agence a signé aujourd'hui un accord de coopération sur la surveillance du climat.

Un second paragraphe avec des **détails**.
"""


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def _state(settings: Settings, release_id: int) -> tuple[str, object]:
    with session_scope(settings) as session:
        release = session.get_one(Release, release_id)
        return release.state, release.updated_at


def _set_state(settings: Settings, release_id: int, state: ReleaseState) -> None:
    with session_scope(settings) as session:
        session.get_one(Release, release_id).state = state


def _french(settings: Settings) -> int:
    from distributor.releases.lifecycle import create_release
    from distributor.releases.source import parse_release

    draft = parse_release(FRENCH_MD, "fr.md", settings)
    with session_scope(settings) as session:
        return create_release(session, settings, draft).id


@pytest.fixture
def release_id(settings: Settings) -> int:
    """A draft release on topic climate, which a confirmed subscriber follows."""
    add_topics(settings, "climate")
    add_subscribers(settings, [("ann@example.com", "Ann", "en", "climate")])
    return make_release(settings).id


def test_a_test_send_reaches_only_the_given_addresses_and_records_nothing(
    settings: Settings, release_id: int, smtp_server: SMTPServer
) -> None:
    live = settings.model_copy(update={"smtp_url": smtp_server.url})
    before = _state(live, release_id)

    outcomes = send_test(live, release_id, ["Bob@Example.org", "carol@example.net"])

    assert [(o.address, o.code, o.sent) for o in outcomes] == [
        ("bob@example.org", 250, True),
        ("carol@example.net", 250, True),
    ]
    received = smtp_server.handler.by_rcpt()
    assert sorted(received) == ["bob@example.org", "carol@example.net"]  # not ann
    ids = set()
    for (message,) in received.values():
        assert message.mail_from == "press@example.org"  # no VERP token naming a delivery
        parsed = message.parsed()
        assert parsed["Subject"] == "[TEST] Agency signs agreement"
        assert parsed["X-Distributor-Test"] == "yes"
        assert parsed["List-Unsubscribe"] is None and parsed["List-Unsubscribe-Post"] is None
        ids.add(parsed["Message-ID"])
        text, html = _parts(parsed)
        for part in (text, html):
            assert "Agency signs agreement" in part
            assert "signed a cooperation agreement on climate monitoring" in part
            assert "A quoted statement" in part
    assert len(ids) == 2  # each test message is a new message to mail programs
    with session_scope(live) as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    assert _state(live, release_id) == before
    assert not live.public_dir.exists() or not any(live.public_dir.rglob("*"))


def test_one_bad_address_sends_nothing_and_is_named(
    sqlite_settings: Settings, smtp_server: SMTPServer
) -> None:
    add_topics(sqlite_settings, "climate")
    release = make_release(sqlite_settings)
    live = sqlite_settings.model_copy(update={"smtp_url": smtp_server.url})

    with pytest.raises(InputError, match="not-an-address") as refused:
        send_test(live, release.id, ["bob@example.org", "not-an-address", "c@example.net"])
    assert "bob@example.org" not in str(refused.value)
    with pytest.raises(InputError, match="at most 20"):
        send_test(live, release.id, [f"p{n}@example.org" for n in range(21)])
    with pytest.raises(InputError, match="no address"):
        send_test(live, release.id, [])
    assert smtp_server.handler.messages == []


def test_a_refusal_is_reported_per_address_and_an_unreachable_server_is_an_error(
    sqlite_settings: Settings, smtp_server: SMTPServer
) -> None:
    add_topics(sqlite_settings, "climate")
    release = make_release(sqlite_settings)
    live = sqlite_settings.model_copy(update={"smtp_url": smtp_server.url})
    smtp_server.handler.rcpt_reply = lambda a: "550 5.1.1 no such user" if "gone" in a else None

    outcomes = send_test(live, release.id, ["gone@example.org", "bob@example.org"])
    assert [(o.address, o.code) for o in outcomes] == [
        ("gone@example.org", 550),
        ("bob@example.org", 250),
    ]
    assert "refused (550" in outcomes[0].describe() and "no such user" in outcomes[0].message

    down = sqlite_settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{free_port()}"})
    with pytest.raises(ServiceError):
        send_test(down, release.id, ["bob@example.org"])


def test_without_smtp_the_test_goes_to_the_outbox(sqlite_settings: Settings) -> None:
    add_topics(sqlite_settings, "climate")
    release = make_release(sqlite_settings)
    (outcome,) = send_test(sqlite_settings, release.id, ["bob@example.org"])
    assert outcome.sent
    (stored,) = (sqlite_settings.outbox_dir / "new").iterdir()
    assert b"Subject: [TEST] Agency signs agreement" in stored.read_bytes()


def test_a_test_message_is_dkim_signed_and_verifies(
    sqlite_settings: Settings, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    add_topics(sqlite_settings, "climate")
    release = make_release(sqlite_settings)
    key_file = tmp_path / "dkim.pem"
    write_key(key_file, serialization.PrivateFormat.PKCS8)
    signing = sqlite_settings.model_copy(
        update={
            "smtp_url": smtp_server.url,
            "dkim_key_file": key_file,
            "dkim_selector": "press2026",
            "dkim_domain": "example.org",
        }
    )
    signer = load_signer(signing)
    assert signer is not None
    send_test(signing, release.id, ["bob@example.org"])
    (received,) = smtp_server.handler.messages
    assert dkim.verify(received.data, dnsfunc=dns_for(signer))


def test_a_french_preview_is_in_french(settings: Settings) -> None:
    add_topics(settings, "climate")
    english = make_release(settings)
    french_id = _french(settings)
    _set_state(settings, french_id, ReleaseState.SCHEDULED)

    preview = render_preview(settings, french_id)
    assert preview.release_id == french_id and preview.language == "fr"
    via_english = render_preview(settings, english.id, lang="fr")  # its French version
    assert (via_english.release_id, via_english.subject) == (french_id, preview.subject)
    assert preview.subject == "L'Agence signe un accord sur le climat"
    assert preview.headers["Content-Language"] == "fr"
    assert preview.headers["To"] == "subscriber@example.invalid"
    assert preview.headers["List-Unsubscribe"].startswith("<https://news.example.org/unsubscribe/")
    for part in (" ".join(preview.html.split()), " ".join(preview.text.split())):
        assert "communiqué de presse" in part.lower() and "contacts presse" in part.lower()
        assert "Se désabonner" in part
        assert "L'Agence signe un accord sur le climat" in part or "L&#39;Agence" in part
        assert "surveillance du climat" in part  # the lead
        assert "Jeanne Dupont" in part and "presse@example.org" in part
    assert "Press contacts" not in preview.html

    english_preview = render_preview(settings, english.id)
    assert english_preview.language == "en" and "Press contacts" in english_preview.html


def test_a_published_release_previews_a_withdrawn_or_unknown_one_is_refused(
    sqlite_settings: Settings,
) -> None:
    add_topics(sqlite_settings, "climate")
    release = make_release(sqlite_settings)
    _set_state(sqlite_settings, release.id, ReleaseState.PUBLISHED)
    assert render_preview(sqlite_settings, release.id).subject == "Agency signs agreement"
    with pytest.raises(NotFound, match="no de version"):
        render_preview(sqlite_settings, release.id, lang="de")
    with pytest.raises(NotFound, match="no release with id 999"):
        render_preview(sqlite_settings, 999)
    _set_state(sqlite_settings, release.id, ReleaseState.WITHDRAWN)
    with pytest.raises(Conflict, match="withdrawn"):
        render_preview(sqlite_settings, release.id)
    with pytest.raises(Conflict, match="withdrawn"):
        send_test(sqlite_settings, release.id, ["bob@example.org"])


def test_the_commands_end_to_end(
    sqlite_settings: Settings, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    add_topics(sqlite_settings, "climate")
    release_id = str(make_release(sqlite_settings).id)

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        smtp = {"DISTRIBUTOR_SMTP_URL": smtp_server.url, **extra}
        return invoke_cli(sqlite_settings, *args, cwd=tmp_path, **smtp)

    previewed = run("releases", "preview", release_id, "--out", "out")  # relative to the cwd
    assert previewed.returncode == 0, previewed.stderr
    html, text = (Path("out") / f"release-{release_id}-en.{ext}" for ext in ("html", "txt"))
    assert previewed.stdout.split() == [str(html), str(text)]
    assert "<html" in (tmp_path / html).read_text()
    assert "Agency signs agreement" in (tmp_path / html).read_text()
    assert "Agency signs agreement" in (tmp_path / text).read_text()

    sent = run("releases", "test", release_id, "--to", "bob@example.org, carol@example.net")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.splitlines() == [
        "bob@example.org: sent (250 Message accepted)",
        "carol@example.net: sent (250 Message accepted)",
    ]
    bad = run("releases", "test", release_id, "--to", "bob@example.org,bad@")
    assert bad.returncode == 1 and "'bad@'" in bad.stderr
    assert len(smtp_server.handler.messages) == 2
    down = run("releases", "test", release_id, "--to", "bob@example.org",
               DISTRIBUTOR_SMTP_URL=f"smtp://127.0.0.1:{free_port()}")  # fmt: skip
    assert down.returncode == 69 and "Connection refused" in down.stderr, down.stderr
