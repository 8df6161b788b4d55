"""SMTP DATA without a scan (mail/smtpdata.py): a message the composer marks as having no
line that starts with "." goes out exactly as a scanned one would, and a message that has
one is never marked, so its dots are still doubled on the wire."""

from __future__ import annotations

import re
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from distributor.core.config import Settings
from distributor.mail.compose import render_release
from distributor.mail.dkim import load_signer
from distributor.mail.relays import open_transport
from distributor.mail.smtpdata import DotFree, dot_free, dot_stuffed
from distributor.mail.transport import Outgoing
from distributor.office.identity import environment_identity
from tests.dkim_keys import dkim_settings, dns_for, write_key
from tests.mail_samples import BODY_MD, french_release, recipient
from tests.smtp_server import SMTPServer

DOT_LINE = ".Cette ligne commence par un point.\n\n"


def scanned(message: bytes) -> bytes:
    """The SMTP DATA of ``message`` found by scanning every line, as any message gets it."""
    return dot_stuffed(bytes(message))


def lines_starting_with_a_dot(message: bytes) -> list[bytes]:
    return re.findall(rb"(?:^|\r\n)(\.[^\r\n]*)", message)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return dkim_settings(tmp_path, None)


# Pieces of lines: some start with ".", some end mid-line, some hold a bare LF.
_piece = st.lists(
    st.sampled_from([b".", b"a", b"\r\n", b"\n", b"..", b" ", b"=2E"]), max_size=8
).map(b"".join)


@given(st.lists(_piece, max_size=6))
def test_pieces_said_dot_free_join_into_a_message_without_a_dotted_line(
    pieces: list[bytes],
) -> None:
    joined = b"".join(pieces)
    if dot_free(pieces):
        assert lines_starting_with_a_dot(joined) == []
        if joined:
            assert dot_stuffed(DotFree(joined)) == scanned(joined)


def test_a_release_without_a_dotted_line_is_marked_and_goes_out_byte_for_byte(
    settings: Settings,
) -> None:
    release = french_release(body_text=BODY_MD.replace(DOT_LINE, ""))
    message = render_release(release, settings, environment_identity(settings)).message_for(
        recipient(settings, 3)
    )
    assert type(message) is DotFree
    assert lines_starting_with_a_dot(message) == []
    assert dot_stuffed(message) == scanned(message)


def test_a_release_with_a_dotted_line_is_not_marked_and_its_dot_is_doubled(
    settings: Settings,
) -> None:
    rendered = render_release(french_release(), settings, environment_identity(settings))
    message = rendered.message_for(recipient(settings, 3))
    assert type(message) is not DotFree
    assert b"\r\n.Cette ligne" in message
    assert b"\r\n..Cette ligne" in dot_stuffed(message)


def test_a_dot_from_a_personal_line_unmarks_the_message(settings: Settings) -> None:
    # The recipient's name is written in the To field, never at the start of a line; a
    # personal body line is checked after its links are put in.
    rendered = render_release(
        french_release(body_text=BODY_MD.replace(DOT_LINE, "")),
        settings,
        environment_identity(settings),
    )
    assert type(rendered.message_for(recipient(settings, 3, name=".Jean"))) is DotFree
    text = rendered._text  # the template's own lines: one of them made personal with a dot
    personal = [c for c in text.chunks if isinstance(c, str)]
    assert personal, "the text part has lines holding the recipient's links"
    dotted = type(text)((*text.chunks, "." + personal[0]), text.static_dot_free)
    out: list[bytes] = []
    assert dotted.encode_into(out, ()) is False
    assert text.encode_into([], ()) is True


def test_a_signed_message_stays_marked_and_verifies(tmp_path: Path) -> None:
    key = tmp_path / "dkim.pem"
    write_key(key, serialization.PrivateFormat.PKCS8)
    settings = dkim_settings(tmp_path, key)
    signer = load_signer(settings)
    assert signer is not None
    release = french_release(body_text=BODY_MD.replace(DOT_LINE, ""))
    message = render_release(release, settings, environment_identity(settings)).message_for(
        recipient(settings, 3)
    )
    signed = signer.sign(message)
    assert type(signed) is DotFree
    assert dot_stuffed(signed) == scanned(signed)
    assert dkim.verify(bytes(signed), dnsfunc=dns_for(signer))


@pytest.mark.parametrize("dotted", [False, True])
def test_both_kinds_arrive_intact_through_a_pipelining_server(tmp_path: Path, dotted: bool) -> None:
    server = SMTPServer()
    server.handler.pipelining = True
    server.start()
    try:
        settings = dkim_settings(tmp_path, None, smtp_url=server.url, smtp_timeout=5)
        body = BODY_MD if dotted else BODY_MD.replace(DOT_LINE, "")
        rendered = render_release(
            french_release(body_text=body), settings, environment_identity(settings)
        )
        messages = [rendered.message_for(recipient(settings, n)) for n in range(3)]
        assert {type(m) is DotFree for m in messages} == {not dotted}
        with open_transport(settings) as transport:
            items = [
                Outgoing(n, "press@example.org", f"reader{n}@example.com", m)
                for n, m in enumerate(messages)
            ]
            results = list(transport.send_stream(iter(items)))
        assert [r.outcome for _, r in results] == ["sent"] * 3
        received = server.handler.by_rcpt()
        for n, sent in enumerate(messages):
            [got] = received[f"reader{n}@example.com"]
            assert got.data == bytes(sent)
    finally:
        server.stop()
