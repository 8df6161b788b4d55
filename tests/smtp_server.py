"""A real SMTP server for tests (aiosmtpd, in-process) that records every message and can
answer chosen recipients with a chosen reply (451, 550, ...), or keep a message and cut the
connection before its reply; it offers SMTPUTF8 or not. And a relay that answers every
connection 421 (:class:`BusyServer`)."""

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

from tests.helpers import free_port


@dataclass
class Received:
    mail_from: str
    rcpt: str
    data: bytes
    mail_options: list[str] = field(default_factory=list)  # MAIL FROM's parameters

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
                self.messages.append(
                    Received(str(envelope.mail_from), rcpt, data, list(envelope.mail_options))
                )
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


class SMTPServer:
    """Starts aiosmtpd on a free loopback port; ``url`` is a DISTRIBUTOR_SMTP_URL for it.
    ``smtputf8``: whether it offers SMTPUTF8 (RFC 6531) in its EHLO reply."""

    def __init__(self, *, smtputf8: bool = True) -> None:
        self.handler = RecordingHandler()
        self._port = free_port()
        self._lock = threading.Lock()
        self._running = False
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self._port,
            decode_data=False,
            enable_SMTPUTF8=smtputf8,
            data_size_limit=64 * 1024 * 1024,
        )

    def start(self) -> SMTPServer:
        self.controller.start()
        self._running = True
        return self

    def stop(self) -> None:
        """Stop the server (again: nothing), from any thread but the server's own."""
        with self._lock:
            if self._running:
                self._running = False
                self.controller.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"


class BusyServer:
    """A relay that answers every connection ``421 4.3.2 Service not available`` and closes
    it, as Postfix does when overloaded or shutting down; counts the connections."""

    def __init__(self) -> None:
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> BusyServer:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with conn:
                conn.sendall(b"421 4.3.2 Service not available, closing transmission channel\r\n")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self._sock.getsockname()[1]}"
