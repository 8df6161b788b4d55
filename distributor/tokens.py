"""Signed tokens for the links in emails (unsubscribe, preferences, confirmation).

Signed with ``DISTRIBUTOR_SECRET_KEY`` (itsdangerous, one salt per purpose). The key setting
may list several keys separated by spaces: the first signs, every one verifies, so a key
can be rotated without breaking the links already sent. Unsubscribe tokens never expire.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .config import Settings
from .errors import InputError


class Purpose(StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    CONFIRM = "confirm"


class InvalidToken(InputError):
    """The token was altered, signed with an unknown key, or made for another purpose."""


class ExpiredToken(InvalidToken):
    """The token is genuine but older than its purpose allows."""


@lru_cache(maxsize=32)
def _serializer(keys: tuple[str, ...], purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(list(keys), salt=f"distributor.{purpose}")


def _keys(settings: Settings) -> tuple[str, ...]:
    return tuple(settings.effective_secret_key.split())


def make_token(settings: Settings, purpose: Purpose, subscriber_id: int) -> str:
    """A URL-safe token naming ``subscriber_id`` for ``purpose``, signed with the newest key."""
    return _serializer(_keys(settings), purpose).dumps(subscriber_id)


def read_token(settings: Settings, purpose: Purpose, token: str, max_age: int | None = None) -> int:
    """The subscriber id in ``token``; raises InvalidToken (or ExpiredToken past ``max_age``
    seconds)."""
    try:
        value = _serializer(_keys(settings), purpose).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise ExpiredToken(f"this {purpose} link has expired") from exc
    except BadSignature as exc:
        raise InvalidToken(f"this {purpose} link is not valid") from exc
    if not isinstance(value, int):
        raise InvalidToken(f"this {purpose} link is not valid")
    return value
