"""A real SMTP server for tests (aiosmtpd, in-process) that records every message and can
answer chosen recipients with a chosen reply (451, 550, ...), or keep a message and cut the
connection before its reply."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Received:
    mail_from: str
    rcpt: str
    data: bytes

    def parsed(self) -> EmailMessage:
        msg = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class RecordingHandler:
    """Records accepted messages; ``rcpt_reply`` may refuse a recipient with a reply line."""

    messages: list[Received] = field(default_factory=list)
    rcpt_reply: Callable[[str], str | None] = lambda _addr: None
    lock: threading.Lock = field(default_factory=threading.Lock)
    pipelining: bool = True  # advertise RFC 2920 PIPELINING, as Postfix does
    # Keep the message, then cut the connection before replying (the client cannot know).
    cut_after_data: Callable[[str], bool] = lambda _addr: False

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:  # fmt: skip
        session.host_name = hostname
        if self.pipelining:  # aiosmtpd reads commands in order, so it can pipeline
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        reply = self.rcpt_reply(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.messages.append(Received(str(envelope.mail_from), rcpt, data))
        if any(self.cut_after_data(rcpt) for rcpt in envelope.rcpt_tos):
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()
            return "421 cut"  # never reaches the client
        return "250 Message accepted"

    def by_rcpt(self) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = {}
        with self.lock:
            for m in self.messages:
                out.setdefault(m.rcpt, []).append(m)
        return out


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SMTPServer:
    """Starts aiosmtpd on a free loopback port; ``url`` is a DISTRIBUTOR_SMTP_URL for it."""

    def __init__(self) -> None:
        self.handler = RecordingHandler()
        self._port = free_port()
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self._port,
            decode_data=False,
            enable_SMTPUTF8=True,
            data_size_limit=64 * 1024 * 1024,
        )

    def start(self) -> SMTPServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"
