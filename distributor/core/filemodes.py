"""Who may read what distributor writes on disk.

The data directory holds private files (the SQLite database and its WAL, the outbox of
messages with personal links, the generated secret key, the embedded Redis, logs) next to
``public/``, the static site that a web server running as another user must read (nginx in
docker-compose.yml mounts the data volume read-only). So:

- the data directory is ``0711``: other users may pass through it to ``public/`` but may
  not list it;
- every private file is ``0600`` and every private directory ``0700``, whatever the umask;
- ``public/`` and its files keep ``0755`` / ``0644`` (less the umask), see site/builder.py and
  media.py.

What exists already with looser modes (made by an older version, or by hand) is tightened
when distributor next opens it, with one warning naming the path; what cannot be tightened
(another owner) is warned about once and used as it is.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import TextIO

log = logging.getLogger(__name__)

DATA_DIR_MODE = 0o711
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# The bits the data directory must not give others: reading (listing) and writing.
_DATA_DIR_LOOSE = 0o066
_PRIVATE_LOOSE = 0o077

_warned: set[Path] = set()  # paths this process could not tighten (warned about once)


def _tighten(path: Path, loose: int) -> None:
    """Remove the ``loose`` bits from ``path``'s mode if it has any; warn once naming it."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not mode & loose:
        return
    tighter = mode & ~loose
    try:
        path.chmod(tighter)
    except OSError as exc:
        if path not in _warned:
            _warned.add(path)
            log.warning(
                "%s is mode %04o: other users can read it, and it cannot be tightened (%s); "
                "run chmod %04o %s",
                path,
                mode,
                exc.strerror,
                tighter,
                path,
            )
        return
    log.warning(
        "%s was mode %04o: tightened to %04o so that other users cannot read it",
        path,
        mode,
        tighter,
    )


def _make_dir(path: Path, mode: int, loose: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=mode)
        path.chmod(mode)  # mkdir's mode is cut by the umask; this one is meant
    except FileExistsError:
        _tighten(path, loose)
    return path


def data_dir(path: Path) -> Path:
    """Create the data directory ``path`` (``0711``) or take group and world read and write
    away from an existing one; returns ``path``."""
    return _make_dir(path, DATA_DIR_MODE, _DATA_DIR_LOOSE)


def private_dir(path: Path) -> Path:
    """Create directory ``path`` ``0700`` (its missing parents as the umask makes them), or
    tighten an existing one to its owner only; returns ``path``."""
    return _make_dir(path, PRIVATE_DIR_MODE, _PRIVATE_LOOSE)


def private_file(path: Path) -> Path:
    """Make sure ``path`` exists and only its owner may read it: created empty ``0600``,
    or tightened if it exists with group or world bits; returns ``path``."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        _tighten(path, _PRIVATE_LOOSE)
    return path


def keep_private(path: Path) -> None:
    """Take group and world access away from ``path`` if it exists (a file SQLite or
    another program made beside ours); nothing if it does not."""
    _tighten(path, _PRIVATE_LOOSE)


def open_private(path: Path | str, flags: int) -> int:
    """``os.open(path, flags)`` creating the file ``0600`` whatever the umask (a file that
    exists keeps its mode); returns the file descriptor."""
    return os.open(path, flags, PRIVATE_FILE_MODE)


def open_private_text(path: Path, newline: str | None = None) -> TextIO:
    """``path`` opened for writing UTF-8 text (emptied first), created ``0600``: for files
    that hold personal data (subscriber exports, rejected rows, delivery reports)."""
    return open(
        open_private(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        "w",
        encoding="utf-8",
        newline=newline,
    )
