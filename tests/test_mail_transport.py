"""Transports against a real SMTP server (aiosmtpd) and a real Maildir on disk."""

from __future__ import annotations

import email
import mailbox
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest

from distributor.core.config import Settings, load_settings
from distributor.core.errors import ConfigError
from distributor.mail.relays import open_transport
from distributor.mail.transport import (
    MaildirTransport,
    Outgoing,
    SendResult,
    SMTPTransport,
)
from tests.helpers import free_port
from tests.smtp_server import SMTPServer

SENDER = "press@example.org"


@pytest.fixture(params=["pipelining", "one-command-at-a-time"])
def smtp_server(request: pytest.FixtureRequest) -> Iterator[SMTPServer]:
    """The test SMTP server, once advertising RFC 2920 PIPELINING (the client then sends
    MAIL, RCPT and DATA in one write) and once not."""
    server = SMTPServer()
    server.handler.pipelining = request.param == "pipelining"
    server.start()
    yield server
    server.stop()


def message(n: int, extra: str = "") -> bytes:
    """A small well-formed message (CRLF) numbered ``n``."""
    return (
        f"From: Press <{SENDER}>\r\nTo: reader{n}@example.com\r\nSubject: Release {n}\r\n"
        f"Message-ID: <release-1.{n}@example.org>\r\n\r\nBody of message {n}.\r\n{extra}"
    ).encode()


def smtp_settings(tmp_path: Path, url: str) -> Settings:
    return load_settings(data_dir=tmp_path / "var", smtp_url=url, smtp_timeout=5)


def smtp(tmp_path: Path, server: SMTPServer) -> SMTPTransport:
    transport = open_transport(smtp_settings(tmp_path, server.url))
    assert isinstance(transport, SMTPTransport)
    return transport


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (250, "sent"),
        (251, "sent"),
        (421, "deferred"),
        (451, "deferred"),
        (0, "deferred"),
        (550, "failed"),
        (554, "failed"),
    ],
)
def test_outcome_follows_the_reply_code(code: int, outcome: str) -> None:
    assert SendResult(code, "").outcome == outcome


def test_messages_are_delivered_over_one_connection(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    with smtp(tmp_path, smtp_server) as transport:
        results = [transport.send(SENDER, f"reader{n}@example.com", message(n)) for n in range(5)]
        assert transport.connections_opened == 1
    assert [r.outcome for r in results] == ["sent"] * 5
    assert all(r.code == 250 for r in results)
    received = smtp_server.handler.by_rcpt()
    assert sorted(received) == [f"reader{n}@example.com" for n in range(5)]
    for n in range(5):
        [got] = received[f"reader{n}@example.com"]
        assert got.mail_from == SENDER
        assert got.data == message(n)
        assert got.parsed()["Subject"] == f"Release {n}"


def test_lines_starting_with_a_dot_arrive_intact(tmp_path: Path, smtp_server: SMTPServer) -> None:
    data = b".starts with a dot\r\n" + message(1, ".\r\n..two dots\r\n.")
    with smtp(tmp_path, smtp_server) as transport:
        assert transport.send(SENDER, "reader1@example.com", data).outcome == "sent"
    [got] = smtp_server.handler.messages
    assert got.data == data + b"\r\n"  # only the missing final CRLF was added


def test_temporary_refusal_is_deferred_and_the_connection_goes_on(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    smtp_server.handler.rcpt_reply = lambda addr: (
        "451 4.3.0 Try again later" if addr == "busy@example.com" else None
    )
    with smtp(tmp_path, smtp_server) as transport:
        busy = transport.send(SENDER, "busy@example.com", message(1))
        after = transport.send(SENDER, "reader2@example.com", message(2))
        assert transport.connections_opened == 1
    assert (busy.code, busy.outcome) == (451, "deferred")
    assert "Try again later" in busy.message
    assert after.outcome == "sent"
    assert list(smtp_server.handler.by_rcpt()) == ["reader2@example.com"]


def test_permanent_refusal_fails_and_the_connection_stays_usable(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    smtp_server.handler.rcpt_reply = lambda addr: (
        "550 5.1.1 No such user" if addr.startswith("gone") else None
    )
    with smtp(tmp_path, smtp_server) as transport:
        results = [
            transport.send(SENDER, rcpt, message(n))
            for n, rcpt in enumerate(["gone1@example.com", "ok@example.com", "gone2@example.com"])
        ]
        last = transport.send(SENDER, "ok2@example.com", message(9))
        assert transport.connections_opened == 1
    assert [r.outcome for r in results] == ["failed", "sent", "failed"]
    assert results[0].code == 550 and "No such user" in results[0].message
    assert last.outcome == "sent"
    assert sorted(smtp_server.handler.by_rcpt()) == ["ok2@example.com", "ok@example.com"]
    [got] = smtp_server.handler.by_rcpt()["ok2@example.com"]
    assert got.data == message(9)  # nothing of the refused transactions leaked into it


def test_a_stopped_server_defers_instead_of_raising(tmp_path: Path) -> None:
    server = SMTPServer().start()  # not the fixture's: a stopped aiosmtpd cannot stop again
    with smtp(tmp_path, server) as transport:
        assert transport.send(SENDER, "reader1@example.com", message(1)).outcome == "sent"
        server.stop()
        result = transport.send(SENDER, "reader2@example.com", message(2))
    assert (result.code, result.outcome) == (0, "deferred")
    assert f"127.0.0.1:{server.port}" in result.message


def test_no_server_at_all_is_deferred(tmp_path: Path) -> None:
    with open_transport(smtp_settings(tmp_path, f"smtp://127.0.0.1:{free_port()}")) as transport:
        result = transport.send(SENDER, "reader@example.com", message(1))
    assert (result.code, result.outcome) == (0, "deferred")
    assert "connect" in result.message and "Connection" in result.message


def test_a_dropped_connection_is_reopened_once(tmp_path: Path) -> None:
    first = SMTPServer().start()
    transport = smtp(tmp_path, first)
    try:
        assert transport.send(SENDER, "a@example.com", message(1)).outcome == "sent"
        first.stop()  # the server goes away, and comes back on the same port
        second = SMTPServer()
        second.controller.port = second._port = first.port  # the helper has no port argument
        second.start()
        try:
            result = transport.send(SENDER, "b@example.com", message(2))
            assert result.outcome == "sent", result
            assert transport.connections_opened == 2
            assert list(second.handler.by_rcpt()) == ["b@example.com"]
        finally:
            second.stop()
    finally:
        transport.close()


def test_unsendable_envelope_addresses_fail_without_a_connection(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    with smtp(tmp_path, smtp_server) as transport:
        injected = transport.send(SENDER, "x@example.com>\r\nRCPT TO:<y@example.com", message(1))
        control = transport.send(SENDER, "ren\x85@exemple.fr", message(2))  # a C1 control
        assert transport.connections_opened == 0
    assert injected.outcome == control.outcome == "failed"
    assert smtp_server.handler.messages == []


def test_smtp_url_parsing(tmp_path: Path) -> None:
    transport = open_transport(
        smtp_settings(tmp_path, "smtp+starttls://us%40er:p%3Ass%2Fw@relay.example.org:2525")
    )
    assert isinstance(transport, SMTPTransport)
    assert (transport.host, transport.port, transport.security) == (
        "relay.example.org",
        2525,
        "starttls",
    )
    assert (transport.username, transport.password) == ("us@er", "p:ss/w")
    assert transport.timeout == 5
    implicit = open_transport(smtp_settings(tmp_path, "smtps://relay.example.org"))
    assert isinstance(implicit, SMTPTransport)
    assert (implicit.port, implicit.security, implicit.username) == (465, "tls", None)
    plain = open_transport(smtp_settings(tmp_path, "smtp://relay.example.org"))
    assert isinstance(plain, SMTPTransport) and (plain.port, plain.security) == (25, "plain")


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://user:secret@relay.example.org", "unknown scheme http://"),
        ("relay.example.org:25", "unknown scheme"),
        ("smtp://relay.example.org:notaport", "bad port"),
        ("smtp://:25", "no host"),
    ],
)
def test_a_bad_smtp_url_is_a_config_error(tmp_path: Path, url: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match="DISTRIBUTOR_SMTP_URL") as caught:
        open_transport(smtp_settings(tmp_path, url))
    assert complaint in str(caught.value)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize("pipelining", [False, True])
def test_a_cut_after_the_data_is_uncertain_and_a_cut_before_it_is_not(
    tmp_path: Path, smtp_server: SMTPServer, pipelining: bool
) -> None:
    """The server may have a message whose data went out before the connection broke (it
    is "uncertain"); a message whose data never left is simply not sent."""
    smtp_server.handler.pipelining = pipelining
    smtp_server.handler.cut_after_data = lambda addr: addr == "cut@example.com"
    items = [
        Outgoing(n, SENDER, rcpt, message(n))
        for n, rcpt in enumerate(["a@example.com", "cut@example.com", "b@example.com"])
    ]
    with smtp(tmp_path, smtp_server) as transport:
        results = {item.rcpt: result for item, result in transport.send_stream(items)}
    assert results["a@example.com"].outcome == "sent"
    cut = results["cut@example.com"]
    assert (cut.code, cut.outcome, cut.uncertain) == (0, "deferred", True)
    # Behind it, b@ was either in flight (its envelope only) or sent on a new connection.
    assert not results["b@example.com"].uncertain


def test_maildir_outbox_gets_one_file_per_message(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "missing" / "var")
    with open_transport(settings) as transport:
        assert isinstance(transport, MaildirTransport)
        results = [transport.send(SENDER, f"reader{n}@example.com", message(n)) for n in range(3)]
    assert [(r.code, r.outcome) for r in results] == [(250, "sent")] * 3
    files = sorted((settings.outbox_dir / "new").iterdir())
    assert len(files) == 3
    assert list((settings.outbox_dir / "tmp").iterdir()) == []
    contents = sorted(f.read_bytes() for f in files)
    assert contents == sorted(message(n) for n in range(3))
    subjects = sorted(
        email.message_from_bytes(data, policy=policy.default)["Subject"] for data in contents
    )
    assert subjects == ["Release 0", "Release 1", "Release 2"]
    assert len(mailbox.Maildir(settings.outbox_dir, create=False)) == 3


def test_an_unwritable_outbox_defers(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = MaildirTransport(str(blocker / "outbox")).send(SENDER, "a@example.com", message(1))
    assert (result.code, result.outcome) == (0, "deferred")
    assert "outbox" in result.message


def test_a_stream_reports_every_message_once_and_delivers_only_the_accepted(
    tmp_path: Path, smtp_server: SMTPServer
) -> None:
    smtp_server.handler.rcpt_reply = lambda addr: (
        "550 5.1.1 No such user"
        if addr.startswith("gone")
        else "451 4.3.0 Try later"
        if addr.startswith("busy")
        else None
    )
    rcpts = [
        "a@example.com", "gone1@example.com", "b@example.com", "busy@example.com",
        "gone2@example.com", "gone3@example.com", "c@example.com", "bad address@x",
        "d@example.com",
    ]  # fmt: skip
    items = [Outgoing(n, SENDER, rcpt, message(n)) for n, rcpt in enumerate(rcpts)]
    with smtp(tmp_path, smtp_server) as transport:
        results = list(transport.send_stream(iter(items)))
        assert transport.connections_opened == 1
    codes = {item.key: result.code for item, result in results}
    assert len(results) == len(rcpts)
    assert [codes[n] for n in range(len(rcpts))] == [250, 550, 250, 451, 550, 550, 250, 553, 250]
    received = smtp_server.handler.by_rcpt()
    assert sorted(received) == ["a@example.com", "b@example.com", "c@example.com", "d@example.com"]
    for n, rcpt in enumerate(rcpts):
        if rcpt in received:
            [got] = received[rcpt]
            assert got.data == message(n)  # nothing of a refused transaction leaked in


def test_a_stream_pulls_messages_lazily(tmp_path: Path, smtp_server: SMTPServer) -> None:
    pulled: list[int] = []

    def produce() -> Iterator[Outgoing]:
        for n in range(5):
            pulled.append(n)
            yield Outgoing(n, SENDER, f"reader{n}@example.com", message(n))

    with smtp(tmp_path, smtp_server) as transport:
        stream = transport.send_stream(produce())
        first, result = next(stream)
        assert first.key == 0 and result.code == 250
        assert len(pulled) <= 2  # at most the next envelope is on its way
        assert [item.key for item, _ in stream] == [1, 2, 3, 4]
