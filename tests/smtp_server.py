"""A real SMTP server for tests (aiosmtpd, in-process) that records every message and can
answer chosen recipients with a chosen reply (451, 550, ...), or keep a message and cut the
connection before its reply; it offers SMTPUTF8 or not, and optionally STARTTLS, implicit
TLS (smtps) and AUTH PLAIN/LOGIN, recording for each message whether its session was
encrypted and who had logged in. And a relay that answers every connection 421
(:class:`BusyServer`)."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.helpers import free_port


@dataclass(frozen=True)
class Login:
    """A successful AUTH: the user name and the mechanism (``PLAIN``, ``LOGIN``)."""

    user: str
    mechanism: str


@dataclass(frozen=True)
class AuthAttempt:
    """One AUTH exchange the server judged, successful or not."""

    user: str
    mechanism: str
    success: bool


@dataclass
class Received:
    mail_from: str
    rcpt: str
    data: bytes
    mail_options: list[str] = field(default_factory=list)  # MAIL FROM's parameters
    tls: str | None = None  # the TLS version protecting the session ("TLSv1.3"); None: clear
    login: Login | None = None  # who had authenticated (AUTH) in the session, and how

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
    users: dict[str, str] = field(default_factory=dict)  # AUTH: user name → password
    auth_attempts: list[AuthAttempt] = field(default_factory=list)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        """aiosmtpd's ``authenticator``: the user and password must match ``users``; a
        success leaves the :class:`Login` in the session, for :meth:`handle_DATA`."""
        assert isinstance(data, LoginPassword)
        user = data.login.decode("utf-8", "replace")
        ok = user in self.users and self.users[user].encode() == data.password
        with self.lock:
            self.auth_attempts.append(AuthAttempt(user, mechanism, ok))
        return AuthResult(
            success=ok, handled=False, auth_data=Login(user, mechanism) if ok else None
        )

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:  # fmt: skip
        session.host_name = hostname
        if self.pipelining:  # aiosmtpd reads commands in order, so it can pipeline
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:  # fmt: skip
        if self.users and not session.authenticated:  # as a submission server does
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

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
        assert server.transport is not None
        tls = server.transport.get_extra_info("ssl_object")
        version = tls.version() if isinstance(tls, ssl.SSLObject) else None
        login = session.auth_data if isinstance(session.auth_data, Login) else None
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                received = Received(str(envelope.mail_from), rcpt, data,
                                    list(envelope.mail_options), version, login)  # fmt: skip
                self.messages.append(received)
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
    ``smtputf8``: whether it offers SMTPUTF8 (RFC 6531) in its EHLO reply.

    Security, all off by default: ``starttls`` (a server-side context) offers STARTTLS, and
    ``require_starttls`` refuses mail before it (530); ``implicit_tls`` (a server-side context)
    speaks TLS from the first byte, as on port 465; ``users`` (name → password) offers AUTH
    with ``auth_mechanisms`` once the session is encrypted, and refuses mail without it
    (530). Each :class:`Received` says whether its session was encrypted and who logged in;
    ``handler.auth_attempts`` lists every AUTH, failed ones too."""

    def __init__(
        self,
        *,
        smtputf8: bool = True,
        starttls: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        implicit_tls: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
        auth_mechanisms: tuple[str, ...] = ("PLAIN", "LOGIN"),
    ) -> None:
        self.handler = RecordingHandler(users=dict(users or {}))
        self._port = free_port()
        self._lock = threading.Lock()
        self._running = False
        self._implicit_tls = implicit_tls is not None
        self._starttls = starttls is not None
        security: dict[str, Any] = {}
        if starttls is not None:
            security.update(tls_context=starttls, require_starttls=require_starttls)
        if users is not None:
            excluded = [m for m in ("PLAIN", "LOGIN") if m not in auth_mechanisms]
            # AUTH only on an encrypted session: after STARTTLS, or from the start with
            # implicit TLS (aiosmtpd counts only STARTTLS as TLS, hence the flag). Mail
            # without AUTH is refused by handle_MAIL.
            security.update(authenticator=self.handler.authenticate,
                            auth_require_tls=implicit_tls is None,
                            auth_exclude_mechanism=excluded)  # fmt: skip
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self._port,
            decode_data=False,
            enable_SMTPUTF8=smtputf8,
            data_size_limit=64 * 1024 * 1024,
            ssl_context=implicit_tls,
            **security,
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
        """``smtps://`` for implicit TLS, ``smtp+starttls://`` when STARTTLS is offered, else
        ``smtp://``; no credentials (see :meth:`url_for`)."""
        return self.url_for()

    def url_for(
        self, user: str | None = None, password: str | None = None, *, scheme: str | None = None
    ) -> str:
        """A DISTRIBUTOR_SMTP_URL for this server with ``user:password@`` (percent-encoded)
        and ``scheme`` (by default the one :attr:`url` has)."""
        if scheme is None:
            scheme = (
                "smtps" if self._implicit_tls else "smtp+starttls" if self._starttls else "smtp"
            )
        credentials = ""
        if user is not None:
            credentials = quote(user, safe="")
            if password is not None:
                credentials += ":" + quote(password, safe="")
            credentials += "@"
        return f"{scheme}://{credentials}127.0.0.1:{self.port}"


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
