"""Counting the public files nginx serves itself, from its address-free access log.

Behind nginx (docker-compose.yml), nginx answers the static site from disk and writes one
line per answer to ``DISTRIBUTOR_STATISTICS_LOG`` in the format ``distributor_stats``:
``$msec $request_method $status $uri`` — a time, a method, a status and a path; nothing
about who asked. Each flush (``stats_flush.flush_statistics``) first reads the whole lines
written since the position it recorded, counts them with the app's own rule
(``counting.fetch_kind``) into the same per-hour Redis hashes the web process fills (the
hour of each line's ``$msec``), and records the new position in the same MULTI/EXEC as the
counts: a flush that dies midway has added both or neither, so no line is counted twice
nor dropped. The position key is WATCHed: of two flushes reading at once, one commits, the
other reads again from the new position.

The position is (inode, offset, lines read). A file with another inode was rotated: the
rest of the old one is read first when it is still in the same directory under any name
(``access.log.1``, not compressed yet), then the new one from its start. A file shorter
than the offset was truncated: read from its start. A partial last line waits for the next
run; a missing file is not an error (nginx has not written yet, or the log is being
rotated).
"""

from __future__ import annotations

import collections
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import redis

from distributor.reporting import counting

log = logging.getLogger(__name__)

POSITION_PREFIX: Final = "distributor:stats-log:"  # + the log's path: "inode offset lines"
BATCH_BYTES: Final = 4 * 1024 * 1024  # read and committed at a time
MAX_RETRIES: Final = 5  # another flush committed between our WATCH and EXEC this often
# nginx's log escaping: '"', '\\' and bytes outside 32-126 become \xHH.
_ESCAPE: Final = re.compile(rb"\\x([0-9A-Fa-f]{2})")
_METHOD: Final = re.compile(r"[A-Z]{1,20}")
_SLASHES: Final = re.compile(r"//+")


@dataclass(frozen=True)
class Position:
    """How far a log was read: its inode, the byte offset and the lines before it."""

    inode: int
    offset: int
    lines: int


def position_key(path: Path) -> str:
    """The Redis key holding how far the log at ``path`` was read."""
    return POSITION_PREFIX + str(path)


def parse_line(line: bytes) -> tuple[float, str, int, str] | None:
    """(Unix time, method, status, path below public/) of one ``distributor_stats`` line
    (without its newline), or None when it is not one."""
    parts = line.split(b" ", 3)  # the path, last, may hold spaces
    if len(parts) != 4 or not parts[3].startswith(b"/"):
        return None
    try:
        when = float(parts[0])
        status = int(parts[2])
        method = parts[1].decode("ascii")
        raw = _ESCAPE.sub(lambda m: bytes.fromhex(m.group(1).decode()), parts[3])
        path = raw.decode("utf-8", "replace")  # a file nginx served has a UTF-8 name
    except (ValueError, UnicodeDecodeError):
        return None
    if not _METHOD.fullmatch(method) or not 100 <= status <= 599 or not when > 0:
        return None
    # try_files makes /en/ answer "$uri/index.html": /en//index.html, the file en/index.html.
    return when, method, status, _SLASHES.sub("/", path)[1:]


def read_statistics_log(client: redis.Redis, path: Path) -> int:
    """Count the whole lines written to nginx's log at ``path`` since the last run into the
    per-hour hashes, with the position, atomically; returns the fetches counted."""
    counted = 0
    for _ in range(MAX_RETRIES):
        try:
            while True:
                step = _step(client, path)
                if step is None:
                    return counted
                counted += step
        except redis.WatchError:  # another flush moved the position: read on from it
            continue
    return counted


def _step(client: redis.Redis, path: Path) -> int | None:
    """Read and commit one batch; the fetches it counted, or None when nothing was left."""
    key = position_key(path)
    with client.pipeline(transaction=True) as pipe:
        pipe.watch(key)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        recorded = _recorded(pipe.get(key))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None  # not written yet, or rotated and not reopened yet: nothing lost
        source, start = path, recorded
        if recorded is None:
            start = Position(st.st_ino, 0, 0)
        elif recorded.inode != st.st_ino:
            old = _rotated(path, recorded.inode)
            if old is not None and os.stat(old).st_size > recorded.offset:
                source = old  # the rest of the rotated file first
            else:
                if old is None and recorded.offset:
                    log.info("statistics: %s was rotated; reading the new file", path)
                start = Position(st.st_ino, 0, 0)
        elif st.st_size < recorded.offset:
            log.warning("statistics: %s is shorter than what was read: reading it again", path)
            start = Position(st.st_ino, 0, 0)
        assert start is not None
        chunk = _read(source, start.offset)
        if not chunk:
            if start != recorded:  # a new file, empty so far: remember it
                pipe.multi()
                pipe.set(key, _text(start))
                pipe.execute()
            return None
        counts, bad = _count(chunk)
        if bad:
            log.warning(
                "statistics: skipped %d line(s) of %s that are not in the distributor_stats "
                "format, the first at line %d",
                len(bad),
                source,
                start.lines + bad[0],
            )
        pipe.multi()
        for (hour, name), n in counts.items():
            pipe.hincrby(hour, name, n)
        for hour in {hour for hour, _ in counts}:
            pipe.expire(hour, counting.KEEP_SECONDS)
        lines = start.lines + chunk.count(b"\n")
        pipe.set(key, _text(Position(start.inode, start.offset + len(chunk), lines)))
        pipe.execute()
        return sum(counts.values())


def _recorded(raw: bytes | str | None) -> Position | None:
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        inode, offset, lines = (int(part) for part in text.split())
    except ValueError:
        return None
    return Position(inode, offset, lines)


def _text(position: Position) -> str:
    return f"{position.inode} {position.offset} {position.lines}"


def _rotated(path: Path, inode: int) -> Path | None:
    """The file of ``path``'s directory with ``inode`` (the log before a rename), if any."""
    try:
        with os.scandir(path.parent) as entries:
            for entry in entries:
                if entry.name.startswith(path.name) and entry.inode() == inode:
                    return Path(entry.path)
    except OSError:
        pass
    return None


def _read(path: Path, offset: int) -> bytes:
    """The whole lines of ``path`` from ``offset``, at most about BATCH_BYTES of them."""
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read(BATCH_BYTES)
    except FileNotFoundError:
        return b""
    end = data.rfind(b"\n")
    if end < 0 and len(data) == BATCH_BYTES:  # a "line" longer than a batch: skip it whole
        return data
    return data[: end + 1]


def _count(chunk: bytes) -> tuple[collections.Counter[tuple[str, str]], list[int]]:
    """The counts per (hour's key, field) of ``chunk``'s lines, and the numbers (from 1)
    of the lines that are not in the format."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    bad: list[int] = []
    for number, line in enumerate(chunk.split(b"\n")[:-1], 1):
        parsed = parse_line(line)
        if parsed is None:
            bad.append(number)
            continue
        when, method, status, relpath = parsed
        kind = counting.fetch_kind(method, status, relpath)
        if kind is not None:
            counts[counting.hour_key(when), counting.field(kind, relpath)] += 1
    return counts, bad
