"""A message as SMTP DATA (RFC 5321 §4.5.2): every line that starts with "." gets a second
one, and a line holding "." alone ends the data.

Finding those lines means scanning the whole message (``bytes.replace``: 10–25 µs for a
12–20 KB message, a tenth of a worker's CPU per message before this module). The composer
knows, piece by piece, whether any line it writes starts with "."; when none does it says so
with :class:`DotFree`, and :func:`dot_stuffed` then only appends the end.
"""

from __future__ import annotations

from collections.abc import Iterable


class DotFree(bytes):
    """A complete message (CRLF line ends, ending in CRLF) in which no line starts with
    ".": as SMTP DATA it needs no dot-stuffing. Made only by code that checked every piece
    with :func:`dot_free` (mail/compose.py, mail/dkim.py); anything else is plain ``bytes``
    and is scanned."""

    __slots__ = ()


def dot_free(pieces: Iterable[bytes]) -> bool:
    """True when the concatenation of ``pieces`` has no line starting with ".", told from
    each piece alone: every piece must end a line (end in CRLF, or be empty), so that each
    begins one. A piece that does not end a line answers False: safe, the message is then
    scanned. (A bare LF counts as a line end here: stricter than SMTP, never wrong.)"""
    return all(
        not piece
        or (piece.endswith(b"\r\n") and not piece.startswith(b".") and b"\n." not in piece)
        for piece in pieces
    )


def dot_stuffed(message: bytes) -> bytes:
    """``message`` as SMTP DATA: lines starting with "." doubled, CRLF at the end, then the
    terminating ".". (``bytes.replace``: a third of the cost of smtplib's regex, ~30 µs
    against ~85 µs for 20 KB; quoted-printable often starts a line with ".". A
    :class:`DotFree` message skips the scan.)"""
    if type(message) is DotFree:
        return message + b".\r\n"
    if message.startswith(b"."):
        message = b"." + message
    message = message.replace(b"\r\n.", b"\r\n..")
    if not message.endswith(b"\r\n"):
        message += b"\r\n"
    return message + b".\r\n"
