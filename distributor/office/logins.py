"""Throttling password guesses: failed logins are counted per account (the address typed,
whether or not it has an account, so the throttle itself says nothing of who exists) and
per client address, in the database, so every web process and every restart sees them.

Past a number of failures free of charge, each further failure blocks that key for a
doubling time (1 minute after the 5th failure on an account, 2 after the 6th, … at most an
hour; for a client address from the 20th). A good login clears its account's count; a
count is forgotten a day after its first failure, unless it is blocking. While any key of
an attempt is blocked, the password is not even checked.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from distributor.audience.addresses import normalise_email
from distributor.core.errors import InputError, TooManyAttempts
from distributor.core.models import LoginFailures, utcnow


@dataclass(frozen=True)
class Limit:
    """``free`` failures cost nothing; then each blocks for ``first`` × 2ⁿ, at most ``most``."""

    free: int
    first: timedelta
    most: timedelta


ACCOUNT = Limit(free=4, first=timedelta(minutes=1), most=timedelta(hours=1))
ADDRESS = Limit(free=19, first=timedelta(minutes=1), most=timedelta(hours=1))
FORGET_AFTER = timedelta(days=1)


def _account(email: str) -> str:
    """The account typed, as check_login finds it (``CAMILLE@ｅｘａｍｐｌｅ.org`` is
    ``camille@example.org``): each spelling must not get free guesses of its own."""
    try:
        return normalise_email(email)
    except InputError:  # no account can have it: still counted, as typed
        return email.strip().lower()


def _keys(email: str, address: str) -> list[tuple[str, Limit]]:
    account = "account:" + _account(email)
    found = [(hashlib.sha256(account.encode("utf-8", "surrogatepass")).hexdigest(), ACCOUNT)]
    if address:
        found.append((hashlib.sha256(f"address:{address}".encode()).hexdigest(), ADDRESS))
    return found


def check_allowed(session: Session, email: str, address: str, now: datetime | None = None) -> None:
    """Raise TooManyAttempts (with the seconds to wait) while the account typed or the
    client ``address`` is blocked."""
    now = now or utcnow()
    hashes = [key for key, _ in _keys(email, address)]
    until = session.scalars(
        select(LoginFailures.blocked_until).where(
            LoginFailures.key_hash.in_(hashes), LoginFailures.blocked_until > now
        )
    ).all()
    if until:
        wait = max(1, int((max(u for u in until if u is not None) - now).total_seconds()) + 1)
        minutes = (wait + 59) // 60
        raise TooManyAttempts(
            f"too many failed logins: try again in {minutes} minute{'s' if minutes > 1 else ''}",
            retry_after=wait,
        )


def record_failure(session: Session, email: str, address: str, now: datetime | None = None) -> None:
    """Count one failed login for the account typed and for the client ``address``."""
    now = now or utcnow()
    # Counts a day old and not blocking go (failures are rare: a short DELETE each time).
    session.execute(
        delete(LoginFailures).where(
            LoginFailures.first_at < now - FORGET_AFTER,
            or_(LoginFailures.blocked_until.is_(None), LoginFailures.blocked_until <= now),
        )
    )
    for key, limit in _keys(email, address):
        row = session.get(LoginFailures, key)
        if row is None:
            row = LoginFailures(key_hash=key, failures=0, first_at=now)
            try:
                with session.begin_nested():  # a concurrent first failure: count on theirs
                    session.add(row)
            except IntegrityError:
                row = session.get(LoginFailures, key, populate_existing=True)
                if row is None:  # deleted meanwhile by a good login: nothing to add to
                    continue
        row.failures += 1
        beyond = row.failures - limit.free
        if beyond > 0:
            row.blocked_until = now + min(limit.most, limit.first * 2 ** min(beyond - 1, 20))


def record_success(session: Session, email: str) -> None:
    """Clear the failures counted for the account typed (not its client address's)."""
    key, _ = _keys(email, "")[0]
    session.execute(delete(LoginFailures).where(LoginFailures.key_hash == key))
