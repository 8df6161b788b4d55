"""Signed tokens for the links in emails (unsubscribe, preferences, confirmation).

Signed with ``DISTRIBUTOR_SECRET_KEY`` (itsdangerous, one salt per purpose). The key setting
may list several keys separated by spaces: the first signs, every one verifies, so a key
can be rotated without breaking the links already sent. Unsubscribe tokens never expire.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from itsdangerous import BadData, BadSignature, SignatureExpired, TimestampSigner
from itsdangerous.encoding import base64_decode, base64_encode, int_to_bytes

from .config import Settings
from .errors import InputError


class Purpose(StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    CONFIRM = "confirm"
    CSRF = "csrf"  # signs a random value, not a subscriber id (web/guards.py)


class InvalidToken(InputError):
    """The token was altered, signed with an unknown key, or made for another purpose."""


class ExpiredToken(InvalidToken):
    """The token is genuine but older than its purpose allows."""


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
    settings: Settings, purpose: Purpose, subscriber_id: int, issued_at: int | None = None
) -> str:
    """A URL-safe token naming ``subscriber_id`` for ``purpose``, signed with the newest key,
    stamped now (or at ``issued_at``, seconds since the epoch: an injectable clock)."""
    stamp = signer(settings, purpose)
    if issued_at is None:
        return stamp.sign(str(subscriber_id)).decode("ascii")
    stamped = f"{subscriber_id}.".encode() + base64_encode(int_to_bytes(issued_at))
    return (stamped + b"." + stamp.get_signature(stamped)).decode("ascii")


def read_token(settings: Settings, purpose: Purpose, token: str, max_age: int | None = None) -> int:
    """The subscriber id in ``token``; raises InvalidToken (or ExpiredToken past ``max_age``
    seconds). Only the exact spelling that was signed is accepted: base64 leaves a few
    unused bits in the signature's last character, and a variant differing there is refused
    like any other altered link."""
    if not _canonical_signature(token):
        raise InvalidToken(f"this {purpose} link is not valid")
    try:
        value = signer(settings, purpose).unsign(token, max_age=max_age)
    except SignatureExpired as exc:
        raise ExpiredToken(f"this {purpose} link has expired") from exc
    except BadSignature as exc:
        raise InvalidToken(f"this {purpose} link is not valid") from exc
    if not value.isdigit():
        raise InvalidToken(f"this {purpose} link is not valid")
    return int(value)


def _canonical_signature(token: str) -> bool:
    _, _, signature = token.rpartition(".")
    try:
        return base64_encode(base64_decode(signature)).decode("ascii") == signature
    except BadData:  # not base64 at all
        return False
