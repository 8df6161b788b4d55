"""Idempotency keys for the API's creating and publishing calls (the ``Idempotency-Key``
header, draft-ietf-httpapi-idempotency-key-header).

A client that sends the same key twice (a retry after a timeout, say) gets the first
answer again and the server acts once. Keys belong to the token that used them and to the
request they came with: the same key on another request (another path or body) is refused,
as is a key whose first request is still running. A key is kept for ``KEY_TTL``.

A call claims its key in the same transaction as its work where it can (creating a
release), so the key and the release are stored together or not at all. Where the work
commits on its own (publishing), the claim commits first and is released if the work
fails; a claim left by a process that died is taken over after ``ABANDONED_AFTER``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from distributor.core.errors import Conflict, InputError
from distributor.core.models import IdempotencyKey, utcnow

HEADER = "Idempotency-Key"
KEY_TTL = timedelta(hours=24)
ABANDONED_AFTER = timedelta(minutes=5)
_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")  # visible ASCII, as the draft's sf-string


class KeyReused(InputError):
    """The key was used before with another request (HTTP 422)."""


class KeyInFlight(Conflict):
    """The key's first request has not finished yet (HTTP 409)."""


@dataclass(frozen=True)
class Replay:
    """The answer recorded for a key: send it again instead of acting again."""

    status: int
    body: Any


@dataclass(frozen=True)
class KeyClaim:
    """A key to claim in an action's own transaction, so the key, the work and the answer
    are stored together or not at all: ``token`` and ``key`` name it, ``request`` is the
    request's ``fingerprint``."""

    token: str
    key: str
    request: str


def once(session: Session, key: KeyClaim | None, status: int, act: Callable[[], Any]) -> Any:
    """``act()``'s answer, recorded with ``status`` as ``key``'s in the session's
    transaction; or, when ``key`` was used for this very request before, the ``Replay``
    recorded for it, ``act`` not called. Without a key, ``act()``. Raises as ``claim``
    does."""
    if key is None:
        return act()
    replay = claim(session, key.token, key.key, key.request)
    if replay is not None:
        return replay
    body = act()
    complete(session, key.token, key.key, status, body)
    return body


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What identifies a request for its key: method, path and body, hashed."""
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def check_key(key: str) -> str:
    """The key as given, or InputError if it is empty, too long or not visible ASCII."""
    if not _KEY.match(key):
        if not key:
            where = "it is empty"
        elif len(key) > 200:
            where = f"it has {len(key)}"
        else:  # a header arrives decoded as Latin-1: the position is the byte's
            bad = next(i for i, c in enumerate(key) if not "\x21" <= c <= "\x7e")
            where = f"character {bad + 1} is not"
        raise InputError(
            f"{HEADER}: must be 1-200 visible ASCII characters (a UUID, say): {where}",
            field=HEADER,
        )
    return key


def claim(
    session: Session, token: str, key: str, request: str, now: datetime | None = None
) -> Replay | None:
    """Claim ``key`` for ``token``'s request with fingerprint ``request``, in the session's
    transaction. Returns None when the caller should act (the key is new, expired, or
    abandoned), or the recorded answer when it was used for this very request before.
    Raises KeyReused for another request, KeyInFlight while the first one still runs.

    Two concurrent claims of one key: the second waits for the first transaction (the
    unique index) and then replays or refuses, never acts.
    """
    check_key(key)
    now = now or utcnow()
    existing = _find(session, token, key)
    if existing is not None and _stale(existing, now):
        session.delete(existing)
        session.flush()
        existing = None
    if existing is None:
        try:
            with session.begin_nested():
                session.add(
                    IdempotencyKey(token_name=token, key=key, request_hash=request, created_at=now)
                )
            return None
        except IntegrityError:
            existing = _find(session, token, key)  # committed by a concurrent claim
            if existing is None:  # and gone again: its work failed
                raise KeyInFlight(f"{HEADER}: a request with this key is being processed") from None
    if existing.request_hash != request:
        raise KeyReused(
            f"{HEADER}: this key was used with another request; use a new key for a new request",
            field=HEADER,
        )
    if existing.status_code is None:
        raise KeyInFlight(f"{HEADER}: a request with this key is still being processed; retry")
    return Replay(existing.status_code, existing.response)


def complete(session: Session, token: str, key: str, status: int, body: Any) -> None:
    """Record the answer given to the key's request, to be replayed on a repeat."""
    row = _find(session, token, key)
    if row is not None:
        row.status_code = status
        row.response = body


def release(session: Session, token: str, key: str) -> None:
    """Forget an unanswered claim (its work failed), so the client may retry with it."""
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.token_name == token,
            IdempotencyKey.key == key,
            IdempotencyKey.status_code.is_(None),
        )
    )


def purge(session: Session, now: datetime | None = None) -> int:
    """Delete every key older than ``KEY_TTL``; returns how many."""
    result = session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.created_at < (now or utcnow()) - KEY_TTL)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _find(session: Session, token: str, key: str) -> IdempotencyKey | None:
    return session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.token_name == token, IdempotencyKey.key == key)
    )


def _stale(row: IdempotencyKey, now: datetime) -> bool:
    age = now - row.created_at
    return age >= KEY_TTL or (row.status_code is None and age >= ABANDONED_AFTER)
