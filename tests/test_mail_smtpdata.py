"""SMTP DATA without a scan (mail/smtpdata.py): the composer writes no line that starts
with "." (quoted-printable "=2E" where a line would), marks its messages so, and they go out
exactly as a scanned message would; what is not marked is scanned."""

from __future__ import annotations

import re
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from distributor.core.config import Settings
from distributor.mail.compose import one_message, render_release
from distributor.mail.dkim import load_signer
from distributor.mail.relays import open_transport
from distributor.mail.smtpdata import DotFree, dot_free, dot_stuffed
from distributor.mail.transport import Outgoing
from distributor.office.identity import environment_identity
from tests.dkim_keys import dkim_settings, dns_for, write_key
from tests.mail_samples import BODY_MD, french_release, parse_email, parts, recipient
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


# Text whose quoted-printable form starts lines with "." (long lines soft-broken before a
# dot, lines that start with one, "=" escapes near the cut), in any Unicode.
_text = st.lists(
    st.one_of(
        st.sampled_from([".", "..", "=", ". ", "é", "a" * 70, "\n", "\n.", " ", "\t"]),
        st.text(max_size=90),
    ),
    max_size=30,
).map("".join)


@given(_text, _text)
def test_quoted_printable_never_starts_a_line_with_a_dot_and_decodes_to_the_text(
    text: str, html_body: str
) -> None:
    settings = dkim_settings(Path("/nonexistent"), None)
    message = one_message(
        environment_identity(settings),
        to="reader@example.com",
        subject="Dots",
        language="en",
        message_id="<m@example.org>",
        text=text,
        html_body=html_body,
    )
    assert lines_starting_with_a_dot(message) == []
    body = message.partition(b"\r\n\r\n")[2]
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    want = [
        "".join(f"{line}\n" for line in t.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
        for t in (text, html_body)
    ]
    got = parts(parse_email(message))
    assert [g.rstrip("\n") for g in got] == [w.rstrip("\n") for w in want]


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


def test_a_line_starting_with_a_dot_is_sent_encoded_and_read_as_written(
    settings: Settings,
) -> None:
    rendered = render_release(french_release(), settings, environment_identity(settings))
    message = rendered.message_for(recipient(settings, 3, name=".Jean"))
    assert type(message) is DotFree
    assert lines_starting_with_a_dot(message) == []
    assert b"\r\n=2ECette ligne" in message
    text, _ = parts(parse_email(message))
    assert "\n.Cette ligne commence par un point." in text


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


@pytest.mark.parametrize("marked", [True, False])
def test_marked_or_not_a_message_arrives_intact_through_a_pipelining_server(
    tmp_path: Path, marked: bool
) -> None:
    server = SMTPServer()
    server.handler.pipelining = True
    server.start()
    try:
        settings = dkim_settings(tmp_path, None, smtp_url=server.url, smtp_timeout=5)
        rendered = render_release(french_release(), settings, environment_identity(settings))
        made = [rendered.message_for(recipient(settings, n)) for n in range(3)]
        messages = made if marked else [bytes(m) for m in made]  # plain bytes are scanned
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
