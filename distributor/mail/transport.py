"""Getting a composed message out: over SMTP to a relay, or into a Maildir outbox.

A transport never raises for what happens to a message: :meth:`Transport.send` returns a
:class:`SendResult` (the SMTP reply, or code 0 with what went wrong on the network) and the
caller records it in the ledger. Only :func:`open_transport` raises, for a configuration that
cannot work.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import re
import smtplib
import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self

from distributor.core import filemodes
from distributor.mail.reconcile import maildir_tag
from distributor.mail.smtpdata import dot_stuffed

Outcome = Literal["sent", "deferred", "failed"]
# What an envelope address may hold: printable ASCII but space and angle brackets, and
# (sent with SMTPUTF8, RFC 6531) non-ASCII characters but C1 controls, white space and
# lone surrogates. The ASCII pattern alone is the common case, and three times faster.
_ASCII_ENVELOPE_ADDRESS = re.compile(r"[!-;=?-~]*")
_ENVELOPE_ADDRESS = re.compile(r"(?:[!-;=?-~]|[^\x00-\x9f\s\ud800-\udfff])*")
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class SendResult:
    """What became of one message: the server's reply ``code`` and text, or code 0 when no
    reply was had (connection refused or lost, timeout) with ``message`` saying why."""

    code: int
    message: str
    # The message data went out and no reply came back: the server may have the message
    # (a relay that took it before the connection broke). Recorded as in doubt.
    uncertain: bool = False
    # When the reply came: the ledger's time of the outcome, however late it is written.
    at: datetime = field(default_factory=lambda: datetime.now(UTC), compare=False)
    # The relay itself failed: it could not be reached, dropped the connection, answered
    # 421 (closing), or will take no mail from us as configured (530: log in or STARTTLS
    # first). Unless ``uncertain``, it did not take the message, which another relay may
    # take at once (:class:`~distributor.mail.failover.FailoverTransport`).
    relay_failed: bool = field(default=False, compare=False)

    @property
    def outcome(self) -> Outcome:
        """``sent`` (2xx), ``failed`` (5xx about the message or its recipient: do not retry),
        else ``deferred`` (retry later) — a refusal of the relay's own (``relay_failed``,
        530 included) says nothing of the recipient, so it fails no one."""
        if 200 <= self.code < 300:
            return "sent"
        if 500 <= self.code < 600 and not self.relay_failed:
            return "failed"
        return "deferred"


@dataclass(frozen=True)
class Outgoing:
    """One message to send, with a ``key`` the caller uses to match it to its result."""

    key: object
    mail_from: str
    rcpt: str
    message: bytes


class Transport(Protocol):
    """Sends composed messages one recipient at a time; use as a context manager or close."""

    def send(self, mail_from: str, rcpt: str, message: bytes) -> SendResult:
        """Send ``message`` (complete, CRLF line ends) to ``rcpt``; never raises for a reply
        or a network error."""
        ...

    def send_stream(self, items: Iterable[Outgoing]) -> Iterator[tuple[Outgoing, SendResult]]:
        """Send each item, yielding it with its result as soon as that result is known (in
        sending order, except that an address SMTP cannot carry is answered at once). Items
        are pulled lazily, so the caller can build each message just in time."""
        ...

    def close(self) -> None:
        """Release the connection (if any); the transport may be used again afterwards."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class _Closing:
    """Context-manager support for transports (``with`` closes on the way out), and
    :meth:`send_stream` as one :meth:`send` after another."""

    def send(self, mail_from: str, rcpt: str, message: bytes) -> SendResult:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def send_stream(self, items: Iterable[Outgoing]) -> Iterator[tuple[Outgoing, SendResult]]:
        for item in items:
            yield item, self.send(item.mail_from, item.rcpt, item.message)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_stored = itertools.count(1)  # files stored by this process: part of each unique name


class MaildirTransport(_Closing):
    """Writes each message as one file in a Maildir (``new/``, written and synced in ``tmp/``
    and then linked in, so a reader never sees half a message). The demo's outbox.

    A file's name carries a digest of its Message-ID
    (:func:`~distributor.mail.reconcile.maildir_tag`) so that a message stored just before its
    worker died is recognised instead of being stored again
    (:class:`~distributor.mail.reconcile.MaildirReconciler`)."""

    def __init__(self, path: str | Path, *, data_dir: Path | None = None) -> None:
        """``data_dir``: the data directory the Maildir is in, made (or checked) as such."""
        self.path = str(path)
        self._data_dir = data_dir
        self._ready = False
        self._host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")

    def send(self, mail_from: str, rcpt: str, message: bytes) -> SendResult:
        """Store ``message`` in the Maildir: 250 with the file's name, or 0 when it cannot be
        written (disk full, permissions)."""
        try:
            if not self._ready:  # the messages carry personal links: the owner's only
                if self._data_dir is not None:
                    filemodes.data_dir(self._data_dir)
                filemodes.private_dir(Path(self.path))
                for sub in ("tmp", "new", "cur"):
                    filemodes.private_dir(Path(self.path, sub))
                self._ready = True
            key = self._store(message)
        except OSError as exc:
            return SendResult(0, f"cannot write to the outbox {self.path}: {exc}")
        return SendResult(250, f"stored in {self.path} as {key}")

    def _store(self, message: bytes) -> str:
        now = time.time()
        header_end = message.find(b"\r\n\r\n")
        found = _MESSAGE_ID.search(message, 0, len(message) if header_end < 0 else header_end)
        tag = maildir_tag(found.group(1).decode("ascii", "replace")) if found else ""
        key = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_stored)}{tag}.{self._host}"
        tmp = os.path.join(self.path, "tmp", key)
        fd = filemodes.open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(message)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, os.path.join(self.path, "new", key))  # never replaces a file
            except PermissionError:  # a file system without hard links
                os.rename(tmp, os.path.join(self.path, "new", key))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        return key

    def close(self) -> None:
        self._ready = False


class SMTPTransport(_Closing):
    """One SMTP connection, opened on the first send and reused for every message after it.

    A connection that has dropped since the last message is reopened once; a refused sender,
    recipient or message is followed by RSET so the connection stays usable.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Literal["plain", "starttls", "tls"] = "plain",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.host, self.port, self.security = host, port, security
        self.username, self.password, self.timeout = username, password, timeout
        self._smtp: smtplib.SMTP | None = None
        #: How many connections this transport has opened (one, unless some dropped).
        self.connections_opened = 0
        # Why the relay refused this configuration (credentials, certificate, no STARTTLS),
        # until close(): asking again per message would not change its mind, and a wrong
        # password tried once per row gets accounts locked and addresses banned.
        self._refusal: str | None = None

    def _connect(self) -> smtplib.SMTP:
        """A new connection, greeted (EHLO), secured and authenticated as configured."""
        self.connections_opened += 1
        smtp: smtplib.SMTP
        if self.security == "tls":
            smtp = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=_tls_context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            code, reply = smtp.ehlo()
            if code == 421:  # busy or shutting down: closing the connection
                raise smtplib.SMTPResponseException(code, reply)
            if self.security == "starttls":
                smtp.starttls(context=_tls_context())
                smtp.ehlo()
            if self.username is not None:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    @property
    def name(self) -> str:
        """``host:port``: how the logs and the ledger name this relay."""
        return f"{self.host}:{self.port}"

    def send(self, mail_from: str, rcpt: str, message: bytes) -> SendResult:
        """Send ``message`` to ``rcpt`` over the shared connection.

        Returns the server's final reply (250 when it took the message), its refusal of the
        sender, the recipient or the message, or code 0 when the server could not be reached
        or the connection was lost. An old connection found closed before the message was
        handed over is reopened once; after the data was sent, nothing is retried (the
        server may have the message). An internationalised address goes with SMTPUTF8; a
        server that does not offer it gets nothing, and the result (code 0, deferred) says
        so. A relay that refused the configuration itself (the login, its certificate, no
        STARTTLS) is not asked again until :meth:`close`: the same answer is given at once.
        """
        for name, address in (("sender", mail_from), ("recipient", rcpt)):
            if not _envelope_address(address):
                return SendResult(553, f"{name} address {address!r} cannot be sent over SMTP")
        if self._refusal is not None:
            return SendResult(0, self._refusal, relay_failed=True)
        reused = self._smtp is not None
        try:
            return self._transaction(mail_from, rcpt, message)
        except _Dropped as dropped:
            if isinstance(dropped.__cause__, _CONFIGURATION_REFUSED):
                self._refusal = str(dropped)
            if not reused:
                return SendResult(0, str(dropped), relay_failed=True)
        try:
            return self._transaction(mail_from, rcpt, message)
        except _Dropped as dropped:
            return SendResult(0, str(dropped), relay_failed=True)

    def _transaction(self, mail_from: str, rcpt: str, message: bytes) -> SendResult:
        """One mail transaction. Raises :class:`_Dropped` when the connection failed before
        the message data went out (safe to try again)."""
        stage = "connect"
        try:
            if self._smtp is None:
                self._smtp = self._connect()
            smtp = self._smtp
            if (missing := self._lacks_smtputf8(mail_from, rcpt)) is not None:
                return missing
            if smtp.has_extn("pipelining"):
                stage = "MAIL FROM, RCPT TO, DATA"
                refused = self._envelope_pipelined(smtp, mail_from, rcpt)
            else:
                refused = self._envelope(smtp, mail_from, rcpt)
            if refused is not None:
                return refused
            stage = "message data"
            smtp.send(dot_stuffed(message))
            code, reply = smtp.getreply()
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            error = f"{self.host}:{self.port}: {stage}: {_describe(exc)}"
            if stage == "message data":
                return SendResult(0, error, uncertain=True, relay_failed=True)
            raise _Dropped(error) from exc
        if code == 421:  # the server is closing the connection
            self.close()
        return SendResult(code, _text(reply), relay_failed=_relay_refuses(code))

    def _lacks_smtputf8(self, mail_from: str, rcpt: str) -> SendResult | None:
        """None when the connected server can carry these addresses; else the deferral of
        an internationalised address by a server that does not offer SMTPUTF8."""
        if mail_from.isascii() and rcpt.isascii():
            return None
        assert self._smtp is not None
        if self._smtp.has_extn("smtputf8"):
            return None
        needs = rcpt if not rcpt.isascii() else mail_from
        return SendResult(0, f"the relay {self.name} does not offer SMTPUTF8, which {needs} needs")

    def send_stream(self, items: Iterable[Outgoing]) -> Iterator[tuple[Outgoing, SendResult]]:
        """Like one :meth:`send` per item, but with a server that offers PIPELINING the end
        of one message and the whole envelope of the next go out in a single write, so each
        message costs one round trip. An item's result is yielded as soon as its final reply
        is read. After a network error the items in flight get code 0 and the rest go one
        :meth:`send` at a time (which reconnects)."""
        iterator = iter(items)
        while self._smtp is None or not self._smtp.has_extn("pipelining"):
            item = next(iterator, None)
            if item is None:
                return
            yield item, self.send(item.mail_from, item.rcpt, item.message)
            if self._smtp is not None and not self._smtp.has_extn("pipelining"):
                yield from _Closing.send_stream(self, iterator)  # a server that cannot
                return
        first = next(iterator, None)
        while first is not None and (refused := self._unsendable(first)) is not None:
            yield first, refused
            first = next(iterator, None)
        if first is not None:
            yield from self._pipelined(first, iterator)

    def _unsendable(self, item: Outgoing) -> SendResult | None:
        """The answer, without a word to the server, for an item whose address SMTP cannot
        carry (553) or that needs SMTPUTF8 the server does not offer (deferred); None for
        an item to send."""
        for address in (item.mail_from, item.rcpt):
            if not _envelope_address(address):
                return SendResult(
                    553, f"address {item.rcpt!r} or {item.mail_from!r} cannot be sent over SMTP"
                )
        return self._lacks_smtputf8(item.mail_from, item.rcpt)

    def _pipelined(
        self, first: Outgoing, rest: Iterator[Outgoing]
    ) -> Iterator[tuple[Outgoing, SendResult]]:
        """The pipelined loop: each write carries what the replies just read call for (the
        accepted message's data, or RSET after a refusal) and the next envelope."""
        smtp = self._smtp
        assert smtp is not None
        eight_bit = smtp.has_extn("8bitmime")
        buffer = _envelope_bytes(first, eight_bit)
        expected: list[tuple[str, Outgoing | None]] = [("envelope", first)]  # replies owed
        in_flight: list[Outgoing] = [first]
        data_sent: set[int] = set()  # id() of the items in flight whose data went out
        try:
            while expected:
                smtp.send(buffer)
                buffer, owed, expected = b"", expected, []
                for kind, item in owed:
                    if kind == "rset":
                        smtp.getreply()
                    elif kind == "final":
                        assert item is not None
                        code, reply = smtp.getreply()
                        in_flight.remove(item)
                        yield (
                            item,
                            SendResult(code, _text(reply), relay_failed=_relay_refuses(code)),
                        )
                        if code == 421:  # the server is closing the connection
                            raise OSError(f"421 {_text(reply)}")
                    else:  # the three replies to MAIL, RCPT, DATA of ``item``
                        assert item is not None
                        replies = [smtp.getreply() for _ in range(3)]
                        refused = _envelope_refusal(replies)
                        if refused is None:
                            buffer += dot_stuffed(item.message)
                            expected.append(("final", item))
                            data_sent.add(id(item))
                        else:
                            if replies[2][0] == 354:  # accepted DATA regardless: end it empty
                                buffer += b".\r\n"
                                expected.append(("rset", None))
                            buffer += b"RSET\r\n"
                            expected.append(("rset", None))
                            in_flight.remove(item)
                            yield item, refused
                            if refused.code == 421:
                                raise OSError(f"421 {refused.message}")
                        following = next(rest, None)
                        while (
                            following is not None
                            and (refusal := self._unsendable(following)) is not None
                        ):
                            yield following, refusal
                            following = next(rest, None)
                        if following is not None:
                            buffer += _envelope_bytes(following, eight_bit)
                            expected.append(("envelope", following))
                            in_flight.append(following)
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            error = f"{self.host}:{self.port}: pipelined send: {_describe(exc)}"
            for item in in_flight:
                uncertain = id(item) in data_sent
                yield item, SendResult(0, error, uncertain=uncertain, relay_failed=True)
            yield from _Closing.send_stream(self, rest)

    def _envelope(self, smtp: smtplib.SMTP, mail_from: str, rcpt: str) -> SendResult | None:
        """MAIL, RCPT and DATA one reply at a time; None once the server awaits the data."""
        code, reply = smtp.mail(mail_from, _mail_options(mail_from, rcpt, smtp))
        if code != 250:
            return self._refused(code, reply, "sender")
        code, reply = smtp.rcpt(rcpt)
        if code not in (250, 251):
            return self._refused(code, reply, "recipient")
        code, reply = smtp.docmd("DATA")
        if code != 354:
            return self._refused(code, reply, "message")
        return None

    def _envelope_pipelined(
        self, smtp: smtplib.SMTP, mail_from: str, rcpt: str
    ) -> SendResult | None:
        """MAIL, RCPT and DATA in one write (RFC 2920 PIPELINING), then their three replies:
        one round trip instead of three. None once the server awaits the data."""
        smtp.send(_envelope_bytes(Outgoing(None, mail_from, rcpt, b""), smtp.has_extn("8bitmime")))
        (mail_code, mail_reply), (rcpt_code, rcpt_reply), (data_code, data_reply) = (
            smtp.getreply(),
            smtp.getreply(),
            smtp.getreply(),
        )
        if mail_code == 250 and rcpt_code in (250, 251) and data_code == 354:
            return None
        if data_code == 354:  # a server that accepts DATA after a refusal: send nothing
            smtp.send(b".\r\n")
            smtp.getreply()
        if mail_code != 250:
            return self._refused(mail_code, mail_reply, "sender")
        if rcpt_code not in (250, 251):
            return self._refused(rcpt_code, rcpt_reply, "recipient")
        return self._refused(data_code, data_reply, "message")

    def _refused(self, code: int, reply: bytes, what: str) -> SendResult:
        """The server refused the sender, the recipient or the data: reset the transaction
        so the connection stays usable (or drop it if the server is closing it)."""
        if code == 421:
            self.close()
        elif self._smtp is not None:
            try:
                self._smtp.rset()
            except (smtplib.SMTPException, OSError):
                self.close()
        return SendResult(
            code, f"{what} refused: {_text(reply)}", relay_failed=_relay_refuses(code)
        )

    def close(self) -> None:
        """QUIT and close the connection, if one is open; errors on the way out are ignored.
        The next send connects afresh, even to a relay that refused the configuration."""
        self._refusal = None
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()


class _Dropped(Exception):
    """The connection failed before the message data was sent; the text says how."""


# Connection failures no retry within a batch can cure: the relay refused the credentials
# (535) or does not offer AUTH, does not offer STARTTLS, or its certificate failed checks.
_CONFIGURATION_REFUSED = (
    smtplib.SMTPAuthenticationError,
    smtplib.SMTPNotSupportedError,
    ssl.SSLCertVerificationError,
)


def _envelope_address(address: str) -> bool:
    """Whether ``address`` can go in MAIL FROM or RCPT TO (with SMTPUTF8 if not ASCII)."""
    pattern = _ASCII_ENVELOPE_ADDRESS if address.isascii() else _ENVELOPE_ADDRESS
    return pattern.fullmatch(address) is not None


def _mail_options(mail_from: str, rcpt: str, smtp: smtplib.SMTP) -> list[str]:
    """The MAIL FROM parameters: none for ASCII addresses (as ever), else SMTPUTF8 (and
    BODY=8BITMIME where offered: the header carries UTF-8, as smtplib's send_message does).
    smtplib then writes the commands in UTF-8."""
    if mail_from.isascii() and rcpt.isascii():
        return []
    return ["BODY=8BITMIME", "SMTPUTF8"] if smtp.has_extn("8bitmime") else ["SMTPUTF8"]


def _envelope_bytes(item: Outgoing, eight_bit: bool) -> bytes:
    """MAIL FROM, RCPT TO and DATA for ``item``, for a pipelined write: ASCII as ever, or
    with SMTPUTF8 (and BODY=8BITMIME when the server offers it, ``eight_bit``) in UTF-8
    for an internationalised address."""
    if item.mail_from.isascii() and item.rcpt.isascii():
        params = ""
    else:
        params = " BODY=8BITMIME SMTPUTF8" if eight_bit else " SMTPUTF8"
    return f"MAIL FROM:<{item.mail_from}>{params}\r\nRCPT TO:<{item.rcpt}>\r\nDATA\r\n".encode()


def _envelope_refusal(replies: list[tuple[int, bytes]]) -> SendResult | None:
    """None when MAIL, RCPT and DATA were all accepted, else the first refusal."""
    (mail, mail_text), (rcpt, rcpt_text), (data, data_text) = replies
    if mail != 250:
        return SendResult(
            mail, f"sender refused: {_text(mail_text)}", relay_failed=_relay_refuses(mail)
        )
    if rcpt not in (250, 251):
        return SendResult(
            rcpt, f"recipient refused: {_text(rcpt_text)}", relay_failed=_relay_refuses(rcpt)
        )
    if data != 354:
        return SendResult(
            data, f"message refused: {_text(data_text)}", relay_failed=_relay_refuses(data)
        )
    return None


def _relay_refuses(code: int) -> bool:
    """Whether a reply is the relay failing us rather than judging the message: 421 (it is
    closing the connection), 530 (authentication required, RFC 4954, or STARTTLS first, RFC
    3207: the relay wants credentials or encryption this configuration does not give it)."""
    return code in (421, 530)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The TLS context for smtps:// and STARTTLS, made once: loading the system's CA
    certificates costs ~19 ms, which per batch connection showed up in profiles."""
    return ssl.create_default_context()


def _text(reply: bytes) -> str:
    return reply.decode("utf-8", "replace").replace("\n", " ")


def _describe(exc: BaseException) -> str:
    """A one-line account of a network or SMTP error, for the ledger."""
    if isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error
        text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
        return f"{exc.smtp_code} {text}".replace("\n", " ")
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
