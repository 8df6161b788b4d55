"""Reconcile before resending: did the relay already take the message of a row in doubt?

A row is *in doubt* when a worker leased it and its lease ran out with no outcome written
(the worker died somewhere between claiming the row and committing what the server said: if
after the server's 250, the message went out), or when its last attempt ended with the
connection broken after the message data went out (``SendResult.uncertain``: the relay may
have kept it). Sending it again blindly could be a duplicate. Every release email has a
Message-ID fixed by (release, subscriber)
(:meth:`distributor.mail.compose.RenderedRelease.message_id`), so a copy the relay took can
be recognised — where the relay keeps a record that can be read:

- the **Maildir outbox** (no SMTP URL): :class:`~distributor.mail.transport.MaildirTransport`
  names each file after a digest of its Message-ID (:func:`maildir_tag`), in ``new/`` and,
  once a mail program has read it, in ``cur/``;
- a **Postfix relay** whose log the workers can read (``DISTRIBUTOR_RECONCILE_LOG``, the
  ``maillog_file`` or the syslog file): a message is accepted when the log has its
  ``cleanup`` line (``QUEUEID: message-id=<…>``, written as its headers arrive) and then
  its ``qmgr`` line (``QUEUEID: from=<…>``: the whole message reached the queue; one cut
  before its final dot never does). A message Postfix took whose ``qmgr`` line is not
  written yet (a queue manager far behind) counts as not taken: sent again, not lost.

With several relays (``DISTRIBUTOR_SMTP_URL`` lists them), ``DISTRIBUTOR_RECONCILE_LOG``
names one log per relay, separated by commas: a message is accepted when any of them shows it
accepted (a row in doubt may have reached any relay; a Message-ID names one message). A relay
whose log is not listed, or cannot be read, settles nothing: its rows in doubt are sent again.

Elsewhere (another relay, a log the workers cannot read) nothing can be reconciled and a row
in doubt is sent again: at least once, never lost.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import logging
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from distributor.core.config import Settings

log = logging.getLogger(__name__)

TAG_PREFIX = "X"  # marks the Message-ID digest inside a Maildir file's unique part
_TAG = re.compile(rf"{TAG_PREFIX}([0-9a-f]{{24}})(?:[.:_]|$)")
# Postfix: "… postfix/cleanup[123]: 4Fh2x0abcz1: message-id=<…>" and
#          "… postfix/qmgr[99]: 4Fh2x0abcz1: from=<…>, size=…, nrcpt=1 (queue active)";
# a multi-instance relay names its service "postfix-out/cleanup".
_POSTFIX = re.compile(rb"/(cleanup|qmgr)\[\d+\]: ([0-9A-Za-z]+): (?:message-id=(<[^>\s]*>)|from=<)")


class _Readable(Protocol):
    """A file open for reading bytes: a plain one or a gzip-compressed one."""

    def read(self, size: int = -1, /) -> bytes: ...


class Reconciler(Protocol):
    """A record of what the relay accepted, looked up by Message-ID."""

    def accepted(self, message_ids: Iterable[str]) -> set[str]:
        """The ``message_ids`` (``<…>``, as in the header) the relay is known to have
        accepted. Raises OSError when the record cannot be read."""
        ...


def maildir_tag(message_id: str) -> str:
    """The tag a Maildir file of the message ``message_id`` carries in its name: ``X`` and
    24 hex digits of the SHA-256 of the Message-ID (no ``/`` or ``:``, as Maildir needs)."""
    return TAG_PREFIX + hashlib.sha256(message_id.encode("utf-8")).hexdigest()[:24]


class MaildirReconciler:
    """Reads the outbox's file names: a Message-ID is accepted when a file in ``new/`` or
    ``cur/`` carries its tag (a file in ``tmp/`` was never delivered)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def accepted(self, message_ids: Iterable[str]) -> set[str]:
        wanted = {maildir_tag(m)[len(TAG_PREFIX) :]: m for m in message_ids}
        found: set[str] = set()
        for sub in ("new", "cur"):
            try:
                names = os.listdir(self.path / sub)
            except FileNotFoundError:
                continue
            for name in names:
                match = _TAG.search(name)
                if match and match.group(1) in wanted:
                    found.add(wanted[match.group(1)])
        return found


_MESSAGE_ID = re.compile(rb"message-id=(<[^>\s]*>)")


class PostfixLogReconciler:
    """Reads a Postfix log: a Message-ID is accepted when, after its ``cleanup`` line, the
    same queue id reached the queue manager. Only those lines are kept, so memory stays
    that of the Message-IDs asked about, and a short queue id Postfix used again later is
    not mistaken for the earlier message's. Reads the log whole each time (only batches
    with rows in doubt ask) in large blocks, and looks closer only at the blocks that name
    a Message-ID asked about or follow one (``bench/reconcile.py``). The log rotated last
    is read first when it is there, so a rotation between a crash and its reconciliation
    hides nothing: ``NAME.1`` as logrotate and newsyslog name it, or
    ``NAME.YYYYMMDD-HHMMSS`` as ``postfix logrotate`` names a ``maillog_file``, either one
    gzip-compressed (``.gz``) or not; older ones are not read. Until Postfix writes again
    after ``postfix logrotate``, there is no current log: the rotated one is all there is."""

    BLOCK = 8 << 20  # bytes read at once; lines are never split between blocks

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._rotated_name = re.compile(re.escape(self.path.name) + r"\.(?:1|\d{8}-\d{6})(?:\.gz)?")

    def rotated(self) -> Path | None:
        """The log rotated last (the newest of the rotated ones), or None."""
        try:
            names = set(os.listdir(self.path.parent))
        except FileNotFoundError:
            return None
        newest: tuple[float, Path] | None = None
        for name in filter(self._rotated_name.fullmatch, names):
            if name.endswith(".gz") and name.removesuffix(".gz") in names:
                continue  # NAME.x.gz beside NAME.x: still being compressed, NAME.x is whole
            path = self.path.with_name(name)
            with contextlib.suppress(FileNotFoundError):  # rotated away meanwhile
                mtime = path.stat().st_mtime
                if newest is None or mtime > newest[0]:
                    newest = (mtime, path)
        return newest[1] if newest else None

    def accepted(self, message_ids: Iterable[str]) -> set[str]:
        wanted = {m.encode("utf-8", "replace") for m in message_ids}
        named: dict[bytes, bytes] = {}  # queue id → Message-ID, for the ones wanted
        found: set[bytes] = set()
        for block in self._blocks():
            if not named and wanted.isdisjoint(_MESSAGE_ID.findall(block)):
                continue  # the common case: rows in doubt are recent, the log is long
            for match in _POSTFIX.finditer(block):
                service, queue_id, message_id = match.groups()
                if service == b"cleanup":
                    if message_id in wanted:
                        named[queue_id] = message_id
                    else:
                        named.pop(queue_id, None)  # the queue id now names another message
                elif queue_id in named:
                    found.add(named.pop(queue_id))
        return {m.decode("utf-8") for m in found}

    def _blocks(self) -> Iterator[bytes]:
        """The log rotated last, if there, then the current one, in blocks. Raises
        FileNotFoundError (naming the current log) when there is neither, OSError when a
        compressed one is cut short."""
        with contextlib.ExitStack() as files:
            streams: list[_Readable] = []
            missing: FileNotFoundError | None = None
            # The current log first: rotated in between, it is read twice, never missed.
            try:
                streams.append(files.enter_context(self.path.open("rb")))
            except FileNotFoundError as exc:
                missing = exc  # rotated by `postfix logrotate`, nothing written since
            if (rotated := self.rotated()) is not None:
                with contextlib.suppress(FileNotFoundError):
                    opened = gzip.open(rotated) if rotated.suffix == ".gz" else rotated.open("rb")
                    streams.insert(0, files.enter_context(opened))
            if not streams and missing is not None:
                raise missing
            for stream in streams:
                try:
                    yield from _blocks(stream, self.BLOCK)
                except EOFError as exc:  # a compressed file cut short
                    raise OSError(f"{rotated}: {exc}") from exc


class AnyLogReconciler:
    """The logs of several relays: a Message-ID is accepted when any of them shows it
    accepted. A log that cannot be read is passed over with a warning (its relay's rows in
    doubt are sent again); OSError only when none can be read."""

    def __init__(self, logs: Iterable[PostfixLogReconciler]) -> None:
        self.logs = list(logs)

    def accepted(self, message_ids: Iterable[str]) -> set[str]:
        wanted = set(message_ids)
        found: set[str] = set()
        errors: list[OSError] = []
        for relay_log in self.logs:
            try:
                found |= relay_log.accepted(wanted - found)
            except OSError as exc:
                errors.append(exc)
            if found == wanted:
                break
        if errors and len(errors) == len(self.logs):
            raise errors[0]
        if errors and found != wanted:
            log.warning(
                "cannot read %d of the relays' logs; what their relays took is sent again: %s",
                len(errors),
                "; ".join(map(str, errors)),
            )
        return found


def _blocks(stream: _Readable, size: int) -> Iterator[bytes]:
    """What is left to read of ``stream`` in blocks of about ``size`` bytes, each ending at
    a line's end (but the last, which ends where the file does)."""
    rest = b""
    while chunk := stream.read(size):
        block = rest + chunk
        cut = block.rfind(b"\n") + 1
        if cut == 0:  # no line end yet: a very long line, keep reading
            rest = block
            continue
        rest = block[cut:]
        yield block[:cut]
    if rest:
        yield rest


def open_reconciler(settings: Settings) -> Reconciler | None:
    """The record of accepted messages for this installation: the Postfix log when
    ``DISTRIBUTOR_RECONCILE_LOG`` is set (any of the logs, when it names one per relay),
    the Maildir outbox when there is no SMTP URL, and None (nothing to reconcile with)
    otherwise."""
    logs = settings.reconcile_logs
    if len(logs) > 1:
        return AnyLogReconciler(PostfixLogReconciler(path) for path in logs)
    if logs:
        return PostfixLogReconciler(logs[0])
    if not settings.smtp_url:
        return MaildirReconciler(settings.outbox_dir)
    return None


def already_accepted(reconciler: Reconciler | None, message_ids: Iterable[str]) -> set[str]:
    """The ``message_ids`` the relay already has, by ``reconciler``; an empty set when there
    is none or its record cannot be read (then they are sent again: a duplicate is possible,
    a loss is not), with a warning that says why."""
    wanted = list(message_ids)
    if reconciler is None or not wanted:
        return set()
    try:
        return reconciler.accepted(wanted)
    except OSError as exc:
        log.warning(
            "cannot reconcile %d message(s) in doubt, sending them again: %s", len(wanted), exc
        )
        return set()
