"""Mail that comes in (bounce reports), one message at a time: read from a Maildir, an mbox
or standard input as raw bytes under a size cap, marked when processed, and kept in a
quarantine with the reason when it could not be processed.

Each message is read on its own, so a hostile one (a MIME tree 3,000 levels deep, a
message of gigabytes) stops nothing but itself, and it never comes back to stop a later run:

- a Maildir: the messages in ``new/``, and those in ``cur/`` not marked seen, are read; one
  processed is moved to ``cur/`` with the standard ``:2,S`` info (seen), so no later run
  reads it again; one quarantined is moved out of the Maildir into the quarantine;
- an mbox, standard input: nothing can be moved. A later run reads the same messages again:
  what a processed one recorded is recognised then (``bounces``: "already recorded"), and
  one already in the quarantine (by its SHA-256) is skipped.

The quarantine is a Maildir of its own, ``DISTRIBUTOR_DATA_DIR/quarantine/bounces/`` (each
message in ``new/``, named by the SHA-256 of its bytes, so the same message is kept once;
open it with any mail client), and ``quarantine/bounces.log`` has one line per message
kept: when (UTC), its file, where it came from, and why.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol, cast

from distributor.core import filemodes
from distributor.core.errors import ConfigError, InputError

# Far above any bounce report (Postfix returns at most 50 KB of the original message, and a
# release email is some tens of KB), and Postfix's own default message_size_limit (10 MB):
# a larger message is no bounce of ours, and is not even parsed.
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
_CHUNK = 1 << 16
_SEEN = "S"


@dataclass
class Incoming:
    """One message read from an inbox.

    ``head`` holds its bytes — at most ``MAX_MESSAGE_BYTES + 1`` of them: more means the
    message is too large (``too_large``), and ``chunks`` gives all its bytes anyway (for
    the quarantine)."""

    label: str  # where it is, for the log: a file, "FILE, message N", "standard input"
    head: bytes
    rest: IO[bytes] | None = None  # the unread remainder of a message too large
    path: Path | None = None  # its file, in a Maildir

    @property
    def too_large(self) -> bool:
        """True when the message is longer than ``MAX_MESSAGE_BYTES``."""
        return len(self.head) > MAX_MESSAGE_BYTES

    def chunks(self) -> Iterator[bytes]:
        """Every byte of the message, in pieces (the whole of one too large, too)."""
        yield self.head
        while self.rest is not None and (chunk := self.rest.read(_CHUNK)):
            yield chunk


class Inbox(Protocol):
    """Where messages come from, and what processing one does to it there."""

    label: str

    def messages(self) -> Iterator[Incoming]:
        """Each message not processed yet, one at a time."""
        ...

    def processed(self, item: Incoming) -> None:
        """Mark ``item`` processed, so a later run does not read it again (if it can)."""
        ...

    def quarantined(self, item: Incoming) -> None:
        """``item`` is safe in the quarantine: take it out of the inbox (if it can)."""
        ...


def _read(stream: IO[bytes], label: str, path: Path | None = None) -> Incoming:
    """The message on ``stream``, its bytes read up to one more than the cap."""
    head = stream.read(MAX_MESSAGE_BYTES + 1)
    return Incoming(label, head, stream if len(head) > MAX_MESSAGE_BYTES else None, path)


class MaildirInbox:
    """A Maildir: ``new/`` and the messages of ``cur/`` without the seen flag."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)

    def _waiting(self) -> list[Path]:
        found: list[Path] = []
        for sub in ("new", "cur"):
            for entry in sorted(os.scandir(self.path / sub), key=lambda e: e.name):
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                _base, _sep, info = entry.name.partition(":2,")
                if sub == "cur" and _SEEN in info:
                    continue  # processed by an earlier run (or read by someone)
                found.append(Path(entry.path))
        return found

    def messages(self) -> Iterator[Incoming]:
        try:
            waiting = self._waiting()
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot be read: {exc.strerror or exc}") from exc
        for file in waiting:
            try:
                stream = file.open("rb")
            except FileNotFoundError:  # taken by another run meanwhile
                continue
            except OSError as exc:
                raise ConfigError(f"{file}: cannot be read: {exc.strerror or exc}") from exc
            with stream:
                yield _read(stream, str(file), file)

    def processed(self, item: Incoming) -> None:
        assert item.path is not None
        base, _sep, info = item.path.name.partition(":2,")
        flags = "".join(sorted(set(info) | {_SEEN}))
        try:
            item.path.rename(self.path / "cur" / f"{base}:2,{flags}")
        except FileNotFoundError:  # another run processed it too: what it did is recorded once
            pass

    def quarantined(self, item: Incoming) -> None:
        assert item.path is not None
        item.path.unlink(missing_ok=True)


class StreamInbox:
    """An mbox file, or one message on standard input: read only, nothing is moved."""

    def __init__(self, label: str, mbox: Path | None = None, stdin: IO[bytes] | None = None):
        self.label, self.mbox, self.stdin = label, mbox, stdin

    def messages(self) -> Iterator[Incoming]:
        if self.mbox is None:
            yield _read(self.stdin or sys.stdin.buffer, "standard input")
            return
        import mailbox

        try:
            box = mailbox.mbox(self.mbox, factory=None, create=False)
            keys = box.keys()  # reads the file once for where each message starts: no parsing
        except OSError as exc:
            raise ConfigError(f"{self.mbox}: cannot be read: {exc.strerror or exc}") from exc
        try:
            for n, key in enumerate(keys, start=1):
                with box.get_file(key) as stream:  # after its "From " line
                    yield _read(cast(IO[bytes], stream), f"{self.mbox}, message {n}")
        finally:
            box.close()

    def processed(self, item: Incoming) -> None:
        """Nothing to do: a later run recognises what this one recorded."""

    def quarantined(self, item: Incoming) -> None:
        """Nothing to do: a later run finds it in the quarantine and skips it."""


def open_inbox(source: str, stdin: IO[bytes] | None = None) -> Inbox:
    """The inbox ``source`` names: a Maildir directory, an mbox file, or ``-`` for one
    message on ``stdin`` (standard input by default). Checked before anything is read:
    raises InputError for a path that is neither a Maildir nor an mbox, and ConfigError for
    one that cannot be read; both name the path."""
    if source == "-":
        return StreamInbox("standard input", stdin=stdin)
    path = Path(source)
    try:
        if path.is_dir():
            if not all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
                raise InputError(f"{path}: a directory, but not a Maildir (no cur/, new/, tmp/)")
            return MaildirInbox(path)
        with path.open("rb") as stream:
            head = stream.read(5)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    if head and head != b"From ":
        raise InputError(
            f"{path}: neither a Maildir nor an mbox (an mbox begins with a 'From ' line); "
            "use '-' to read one message from standard input"
        )
    return StreamInbox(str(path), mbox=path)


class Quarantine:
    """A Maildir (``ROOT/NAME/``) keeping the messages that could not be processed, each
    once, and a log (``ROOT/NAME.log``) of why. Private to the installation: folders 0700,
    files 0600 (a bounce names people and their addresses)."""

    def __init__(self, root: Path, name: str) -> None:
        self.path = root / name
        self.log = root / f"{name}.log"

    def _prepare(self) -> None:
        for folder in (self.path.parent, self.path):
            filemodes.private_dir(folder)
        for sub in ("tmp", "new", "cur"):
            filemodes.private_dir(self.path / sub)

    def keep(self, item: Incoming, reason: str) -> Path | None:
        """Store ``item`` (all of it) with ``reason`` in the log; the path of its file, or
        None when the same message was already kept (nothing written then). ConfigError
        when the quarantine cannot be written: the message then stays where it was."""
        try:
            self._prepare()
            digest = hashlib.sha256()
            temp = self.path / "tmp" / f"{os.getpid()}.{datetime.now(UTC):%Y%m%d%H%M%S%f}"
            with open(temp, "xb", opener=filemodes.open_private) as stream:
                for chunk in item.chunks():
                    digest.update(chunk)
                    stream.write(chunk)
                stream.flush()
                os.fsync(stream.fileno())
            final = self.path / "new" / digest.hexdigest()
            if final.exists() or any((self.path / "cur").glob(f"{final.name}:*")):
                temp.unlink()
                return None
            temp.rename(final)
            line = f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}\t{final.name}\t{item.label}\t{reason}"
            with open(self.log, "a", encoding="utf-8", opener=filemodes.open_private) as log:
                log.write(line.replace("\n", " ") + "\n")
        except OSError as exc:
            raise ConfigError(
                f"{self.path}: the quarantine cannot be written: {exc.strerror or exc}"
            ) from exc
        return final
