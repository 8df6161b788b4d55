"""A real SMTP server for bench/faults.py (aiosmtpd, in a thread of the bench) that records
every attempt and every accepted message, and injects the faults a relay really shows:

- ``closing_until``: every recipient answered ``421`` (service closing) until that time;
- ``soft_once``: these recipients get ``451`` on their next attempt, once each;
- ``refused``: these recipients always get ``550``;
- ``drop_after_dot``: the connection is cut after the final dot of the next N messages,
  before any reply (the client cannot know whether the server has them); they are not kept,
  unless ``keep_dropped`` (a relay that queued them before the connection broke);
- ``data_delay``: every message's final reply comes that many seconds late (a slow relay).

Like Postfix, it logs each message it takes — a ``cleanup`` line with its Message-ID and a
``qmgr`` line once it is queued, both before its 250 — to ``log_path``, which the workers
may read to reconcile (``DISTRIBUTOR_RECONCILE_LOG``, distributor/mail/reconcile.py).

Times are wall-clock (``time.time()``), comparable with what the bench records.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _sinks import free_port
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.MULTILINE | re.IGNORECASE)
DROPPED = 0  # the code an attempt is logged with when the connection was cut after the dot


@dataclass(frozen=True)
class Copy:
    """One accepted message: to whom, its Message-ID, when its envelope (RCPT) arrived and
    when its data was accepted."""

    rcpt: str
    message_id: str
    rcpt_at: float
    accepted_at: float


@dataclass
class Faults:
    """What the server does wrong right now (changed by the bench while it runs)."""

    closing_until: float = 0.0
    soft_once: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)
    drop_after_dot: int = 0
    keep_dropped: bool = False
    data_delay: float = 0.0  # seconds before answering each message's data (a slow relay)


class _Handler:
    """aiosmtpd hooks: answer RCPT according to the faults, record everything."""

    def __init__(self, server: FaultySMTP) -> None:
        self.server = server

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:  # fmt: skip
        session.host_name = hostname
        responses.insert(len(responses) - 1, "250-PIPELINING")  # as Postfix does
        return responses

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        reply = self.server.rcpt_reply(address)
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        if delay := self.server.faults.data_delay:
            await asyncio.sleep(delay)
        found = _MESSAGE_ID.search(data[:20_000])
        message_id = found.group(1).decode("ascii", "replace") if found else ""
        if self.server.take_drop():
            for rcpt in envelope.rcpt_tos:
                self.server.log_attempt(rcpt, DROPPED, replace_last=True)
                if self.server.faults.keep_dropped:
                    self.server.accept(rcpt, message_id)
            assert isinstance(server.transport, asyncio.Transport)
            server.transport.abort()  # cut before the reply: the message is not kept
            return "421 dropped"
        for rcpt in envelope.rcpt_tos:
            self.server.accept(rcpt, message_id)
        return "250 2.0.0 Ok: queued"


class FaultySMTP:
    """The server: ``url`` for DISTRIBUTOR_SMTP_URL, ``faults`` to change its behaviour,
    ``copies()`` and ``attempts()`` for what it saw since the last ``reset()``."""

    def __init__(self, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.log_path = log_path or Path(tempfile.mkdtemp(prefix="faulty-smtp-")) / "mail.log"
        self.log_path.write_text("")
        self._queue_ids = itertools.count(0x10000)
        self.faults = Faults()
        self._lock = threading.Lock()
        self._copies: list[Copy] = []
        self._attempts: dict[str, list[tuple[float, int]]] = {}
        self._rcpt_at: dict[str, float] = {}
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            decode_data=False,
            data_size_limit=64 * 1024 * 1024,
        )

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> FaultySMTP:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def reset(self) -> None:
        """Forget everything seen and every fault."""
        with self._lock:
            self.faults = Faults()
            self._copies, self._attempts, self._rcpt_at = [], {}, {}
            self.log_path.write_text("")

    def rcpt_reply(self, rcpt: str) -> str:
        """The reply to RCPT TO ``rcpt`` under the current faults; the attempt is logged."""
        now = time.time()
        with self._lock:
            faults = self.faults
            if now < faults.closing_until:
                reply = "421 4.3.2 Service shutting down, try again later"
            elif rcpt in faults.refused:
                reply = "550 5.1.1 No such user here"
            elif rcpt in faults.soft_once:
                faults.soft_once.discard(rcpt)
                reply = "451 4.7.1 Greylisted, try again later"
            else:
                reply = "250 2.1.5 Ok"
                self._rcpt_at[rcpt] = now
            self._attempts.setdefault(rcpt, []).append((now, int(reply[:3])))
        return reply

    def log_attempt(self, rcpt: str, code: int, replace_last: bool = False) -> None:
        with self._lock:
            log = self._attempts.setdefault(rcpt, [])
            if replace_last and log:
                log[-1] = (log[-1][0], code)
            else:
                log.append((time.time(), code))

    def take_drop(self) -> bool:
        """True (and one fewer to drop) if this message is to be dropped after its dot."""
        with self._lock:
            if self.faults.drop_after_dot > 0:
                self.faults.drop_after_dot -= 1
                return True
            return False

    def accept(self, rcpt: str, message_id: str) -> None:
        with self._lock:
            rcpt_at = self._rcpt_at.get(rcpt, time.time())
            qid, stamp = f"{next(self._queue_ids):X}", time.strftime("%b %d %H:%M:%S")
            with self.log_path.open("a") as log:  # before the 250, as Postfix does
                log.write(
                    f"{stamp} relay postfix/cleanup[2]: {qid}: message-id={message_id}\n"
                    f"{stamp} relay postfix/qmgr[1]: {qid}: from=<>, nrcpt=1 (queue active)\n"
                )
            self._copies.append(Copy(rcpt, message_id, rcpt_at, time.time()))

    def count(self) -> int:
        """Messages accepted since the last reset."""
        with self._lock:
            return len(self._copies)

    def copies(self) -> list[Copy]:
        with self._lock:
            return list(self._copies)

    def attempts(self) -> dict[str, list[tuple[float, int]]]:
        """Per recipient, every attempt (time of RCPT, reply code; 0 = cut after the dot)."""
        with self._lock:
            return {rcpt: list(log) for rcpt, log in self._attempts.items()}
