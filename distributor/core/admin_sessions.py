"""Logins to the press office's dashboard (``/admin``), kept in the database.

The browser's cookie holds 256 random bits and nothing else; the database holds only their
SHA-256 (as for API tokens: a copy of the table opens no session), with the API token the
session belongs to, when it began, was last used and ends. Nothing about a session is
derived from the secret key, so knowing the key forges none; logging out deletes the row,
so a copied cookie is worth nothing afterwards; a revoked token's sessions end at their
next request (web/admin.py checks the token every time and deletes them), and a disabled
account's, or one whose password changed, at once (office/accounts.py).

A session ends ``SESSION_MAX_AGE`` after login whatever happens, or ``SESSION_IDLE`` after
its last use. Rows past either limit are deleted when they are next presented, and all of
them at each login (rare, and a single indexed DELETE).

Every function takes the caller's database session and ``now`` (an injectable clock).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, or_, select, update
from sqlalchemy.orm import Session

from distributor.core.apitokens import token_hash
from distributor.core.models import AdminSession, utcnow

# A working day: a press officer logs in once in the morning and is asked again the next.
SESSION_MAX_AGE = timedelta(hours=12)
# A dashboard left open on an unattended or shared computer should not stay usable all day:
# two hours without a request (a long meeting) ends it. Open pages poll progress.json only
# while a release is being sent, so an idle tab does not keep a session alive for ever.
SESSION_IDLE = timedelta(hours=2)
# Recording each use would make every dashboard read take the database's write lock; to the
# minute is enough for a two-hour limit (as ApiToken.last_used_at).
SEEN_RESOLUTION = timedelta(minutes=1)
_MAX_COOKIE_LENGTH = 100  # ours are 43 characters


def _expired(now: datetime) -> ColumnElement[bool]:
    return or_(AdminSession.expires_at <= now, AdminSession.last_seen_at <= now - SESSION_IDLE)


def start_session(
    session: Session,
    token_id: int | None = None,
    now: datetime | None = None,
    *,
    user_id: int | None = None,
) -> str:
    """Open a session for the user ``user_id`` or the API token ``token_id`` (one of the
    two); returns the cookie value (shown only to the browser; the database keeps its
    hash). Deletes every expired session first."""
    if (token_id is None) == (user_id is None):
        raise ValueError("a session belongs to a user or to a token")
    now = now or utcnow()
    end_expired_sessions(session, now)
    value = secrets.token_urlsafe(32)
    session.add(
        AdminSession(
            session_hash=token_hash(value),
            token_id=token_id,
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_MAX_AGE,
        )
    )
    session.flush()
    return value


def find_session(session: Session, value: str, now: datetime | None = None) -> AdminSession | None:
    """The live session whose cookie value is ``value``, its last use recorded (to the
    minute); None for an unknown, ended or expired one (an expired row is deleted)."""
    if not value or len(value) > _MAX_COOKIE_LENGTH:
        return None
    now = now or utcnow()
    found = session.scalar(
        select(AdminSession).where(AdminSession.session_hash == token_hash(value))
    )
    if found is None:
        return None
    # Plain statements, not the ORM's unit of work: a request of another tab may have
    # ended this row meanwhile (logout), and then there is simply nothing to change.
    this = AdminSession.id == found.id
    if now >= found.expires_at or now - found.last_seen_at >= SESSION_IDLE:
        session.execute(delete(AdminSession).where(this))
        return None
    if now - found.last_seen_at >= SEEN_RESOLUTION:
        session.execute(update(AdminSession).where(this).values(last_seen_at=now))
    return found


def end_session(session: Session, value: str) -> bool:
    """Delete the session whose cookie value is ``value`` (logout); True if there was one."""
    if not value or len(value) > _MAX_COOKIE_LENGTH:
        return False
    done = session.execute(
        delete(AdminSession).where(AdminSession.session_hash == token_hash(value))
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def end_token_sessions(session: Session, token_id: int) -> int:
    """Delete every session of API token ``token_id`` (it was revoked); returns how many."""
    done = session.execute(delete(AdminSession).where(AdminSession.token_id == token_id))
    return int(done.rowcount)  # type: ignore[attr-defined]


def end_expired_sessions(session: Session, now: datetime | None = None) -> int:
    """Delete every session past its absolute or idle limit; returns how many."""
    done = session.execute(delete(AdminSession).where(_expired(now or utcnow())))
    return int(done.rowcount)  # type: ignore[attr-defined]
