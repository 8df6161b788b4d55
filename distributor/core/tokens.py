"""Signed tokens for the links in emails (unsubscribe, preferences, confirmation).

Signed with ``DISTRIBUTOR_SECRET_KEY`` (itsdangerous, one salt per purpose). The key setting
may list several keys separated by spaces: the first signs, every one verifies, so a key
can be rotated without breaking the links already sent. Unsubscribe tokens never expire.

A token names a row by its id and, for rows that have one, the random nonce stored with the
row (``ID-NONCE``): a row that ever came to hold the same id has another nonce, so a link
reaches the row it was made for and no other (:meth:`Link.fits`). Tokens made before rows had
nonces carry the id alone; they are still accepted, for rows without a nonce only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from base64 import urlsafe_b64encode
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from itsdangerous import BadData, BadSignature, SignatureExpired, TimestampSigner
from itsdangerous.encoding import base64_decode, base64_encode, int_to_bytes

from distributor.core.config import Settings
from distributor.core.errors import InputError


class Purpose(StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    CONFIRM = "confirm"
    INVITE = "invite"  # an invitation to the press office's workspace (office/invitations.py)
    LOGIN_CODE = "login-code"  # a password checked, the one-time code still to come (totp.py)
    CSRF = "csrf"  # signs a random value, not a subscriber id (web/guards.py)
    PREVIEW = "preview"  # a release not public yet, for those sent its link (web/preview_page.py)
    ADVANCE = "advance"  # an accredited subscriber's embargoed advance copies (web/advance_page.py)


class InvalidToken(InputError):
    """The token was altered, signed with an unknown key, or made for another purpose."""


class ExpiredToken(InvalidToken):
    """The token is genuine but older than its purpose allows."""


# What a token's signed value may be: an id, then (for rows with one) "-" and the nonce.
_VALUE = re.compile(r"([0-9]{1,18})(?:-([A-Za-z0-9_-]{8,32}))?")


@dataclass(frozen=True)
class Link:
    """What a genuine token names: a row id and the row's nonce (None in a token made
    before rows had nonces)."""

    id: int
    nonce: str | None

    def fits(self, stored_nonce: str | None) -> bool:
        """True when this link was made for the row holding ``stored_nonce``: the same
        nonce, or an id-only link for a row that has none (a row from before nonces)."""
        if stored_nonce is None or self.nonce is None:
            return stored_nonce is None and self.nonce is None
        return hmac.compare_digest(self.nonce, stored_nonce)


@lru_cache(maxsize=32)
def _signer(keys: tuple[str, ...], purpose: str) -> TimestampSigner:
    # itsdangerous signs with the *last* key of the list and verifies with all of them.
    # A bare TimestampSigner costs ~5 µs a token; the JSON serializer on top of it ~25 µs,
    # which showed in send profiles (two links per message).
    return TimestampSigner(
        list(reversed(keys)), salt=f"distributor.{purpose}", key_derivation="hmac"
    )


def _keys(settings: Settings) -> tuple[str, ...]:
    return tuple(settings.effective_secret_key.split())


def signer(settings: Settings, purpose: Purpose) -> TimestampSigner:
    """The (cached) signer for ``purpose``: the first key signs, every key verifies."""
    return _signer(_keys(settings), purpose)


def make_token(
    settings: Settings,
    purpose: Purpose,
    row_id: int,
    issued_at: int | None = None,
    *,
    nonce: str | None = None,
) -> str:
    """A URL-safe token naming ``row_id`` (and the row's ``nonce``, if it has one) for
    ``purpose``, signed with the newest key, stamped now (or at ``issued_at``, seconds since
    the epoch: an injectable clock).

    The token is exactly what itsdangerous's ``TimestampSigner`` (SHA-1, ``hmac`` key
    derivation, the purpose's salt) makes, so :func:`read_link` and every link already sent
    agree with it; but it costs one HMAC, not two: the signer derives its key again for every
    token (HMAC(secret, salt)), which is the same for every token of a purpose and key, so it
    is derived once here (two links a message: it showed in send profiles)."""
    value = f"{row_id}-{nonce}" if nonce else str(row_id)
    stamp = int(time.time()) if issued_at is None else issued_at
    stamped = f"{value}.".encode() + _timestamp(stamp)
    mac = _mac(_keys(settings)[0], purpose).copy()
    mac.update(stamped)
    signature = mac.digest()
    return (stamped + b"." + urlsafe_b64encode(signature).rstrip(b"=")).decode("ascii")


@lru_cache(maxsize=32)
def _mac(secret_key: str, purpose: str) -> hmac.HMAC:
    # itsdangerous's "hmac" key derivation with SHA-1: the key is HMAC(secret key, salt),
    # the same for every token of a purpose; each token copies this keyed HMAC (as verp.py).
    salt = f"distributor.{purpose}".encode()
    key = hmac.digest(secret_key.encode("utf-8"), salt, "sha1")
    return hmac.new(key, digestmod=hashlib.sha1)


@lru_cache(maxsize=4)
def _timestamp(seconds: int) -> bytes:
    # Every token stamped within the same second carries the same encoded timestamp.
    return base64_encode(int_to_bytes(seconds))


def read_link(settings: Settings, purpose: Purpose, token: str, max_age: int | None = None) -> Link:
    """The row ``token`` names (check :meth:`Link.fits` against the row before acting on it);
    raises InvalidToken (or ExpiredToken past ``max_age`` seconds). Only the exact spelling
    that was signed is accepted: base64 leaves a few unused bits in the signature's last
    character, and a variant differing there is refused like any other altered link."""
    if not _canonical_signature(token):
        raise InvalidToken(f"this {purpose} link is not valid")
    try:
        value = signer(settings, purpose).unsign(token, max_age=max_age)
    except SignatureExpired as exc:
        raise ExpiredToken(f"this {purpose} link has expired") from exc
    except BadSignature as exc:
        raise InvalidToken(f"this {purpose} link is not valid") from exc
    match = _VALUE.fullmatch(value.decode("ascii", "replace"))
    if match is None:
        raise InvalidToken(f"this {purpose} link is not valid")
    return Link(int(match.group(1)), match.group(2))


def read_token(settings: Settings, purpose: Purpose, token: str, max_age: int | None = None) -> int:
    """The id in an id-only ``token`` (one made without a nonce); raises InvalidToken for
    any other (see :func:`read_link`), or ExpiredToken past ``max_age`` seconds."""
    link = read_link(settings, purpose, token, max_age)
    if link.nonce is not None:
        raise InvalidToken(f"this {purpose} link is not valid")
    return link.id


def _canonical_signature(token: str) -> bool:
    _, _, signature = token.rpartition(".")
    try:
        return base64_encode(base64_decode(signature)).decode("ascii") == signature
    except BadData:  # not base64 at all
        return False
