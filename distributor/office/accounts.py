"""Named accounts of the press office's workspace: create, change role or password,
disable and enable, list; and checking a password at login.

Passwords are hashed with argon2id (argon2-cffi, RFC 9106's low-memory profile: 64 MiB,
3 passes); a hash made with older parameters is replaced at the next good login. A login
for an address with no account, or a disabled one, costs the same hashing as a real one
and answers the same ``Unauthorized``, so the answer tells no one whether an account
exists. Disabling an account, or changing its password, ends its sessions at once.

Every function takes the caller's database session; the caller commits (and records the
action in the audit trail: actions/accounts.py).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from distributor.audience.addresses import normalise_email
from distributor.core.errors import Conflict, InputError, NotFound, Unauthorized
from distributor.core.models import AdminSession, User, utcnow
from distributor.core.roles import Role, parse_role

if TYPE_CHECKING:
    from argon2 import PasswordHasher

# NIST SP 800-63B: at least 8; a press office's workspace publishes in its name, so 12.
# The upper bound keeps hashing a posted megabyte from being a way to load the server.
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
WRONG_LOGIN = "wrong email address or password"


@functools.cache
def _hasher() -> PasswordHasher:
    from argon2 import PasswordHasher  # only where passwords are handled: it is slow to load

    return PasswordHasher()  # argon2id, RFC 9106 low-memory parameters


@functools.cache
def _decoy() -> str:
    """A hash to verify against when there is no account, so that costs the same."""
    return _hasher().hash("not a password of anyone")


def normalised(value: str) -> str:
    """The address as stored: the subscribers' rules (one place), the field named ``email``."""
    try:
        return normalise_email(value)
    except InputError as exc:
        raise InputError(str(exc), field="email") from exc


def check_password_rules(password: str) -> None:
    """InputError (field ``password``) unless ``password`` has 12–1,024 characters."""
    if len(password) < MIN_PASSWORD:
        raise InputError(
            f"password: at least {MIN_PASSWORD} characters (a few words make a good one)",
            field="password",
        )
    if len(password) > MAX_PASSWORD:
        raise InputError(f"password: at most {MAX_PASSWORD} characters", field="password")


def find_user(session: Session, email: str) -> User:
    """The account of ``email``; NotFound otherwise."""
    user = session.scalar(select(User).where(User.email == normalised(email)))
    if user is None:
        raise NotFound(f"no account for {email!r}")
    return user


def get_user(session: Session, user_id: int) -> User:
    """The account with id ``user_id``; NotFound otherwise."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no account with id {user_id}")
    return user


def create_user(session: Session, email: str, role: str, password: str, name: str = "") -> User:
    """A new account. InputError for a bad address, role or password; Conflict when the
    address already has one."""
    address = normalised(email)
    try:
        chosen = parse_role(role)
    except ValueError as exc:
        raise InputError(str(exc), field="role") from exc
    check_password_rules(password)
    if session.scalar(select(User.id).where(User.email == address)) is not None:
        raise Conflict(f"{address} already has an account")
    user = User(
        email=address,
        name=name.strip()[:200],
        role=chosen.value,
        password_hash=_hasher().hash(password),
    )
    try:
        with session.begin_nested():  # a concurrent create of the same address loses here
            session.add(user)
    except IntegrityError as exc:
        raise Conflict(f"{address} already has an account") from exc
    return user


def set_role(session: Session, email: str, role: str) -> User:
    """Give the account of ``email`` ``role``; it applies from its next request. Refuses
    (Conflict) to leave no enabled admin."""
    user = find_user(session, email)
    try:
        chosen = parse_role(role)
    except ValueError as exc:
        raise InputError(str(exc), field="role") from exc
    if user.role == Role.ADMIN and chosen != Role.ADMIN:
        _keep_an_admin(session, user)
    user.role = chosen.value
    return user


def set_password(session: Session, email: str, password: str) -> User:
    """Replace the password of ``email``'s account; its sessions end."""
    check_password_rules(password)
    user = find_user(session, email)
    user.password_hash = _hasher().hash(password)
    user.password_changed_at = utcnow()
    end_user_sessions(session, user.id)
    return user


def disable(session: Session, email: str) -> User:
    """Disable ``email``'s account: its sessions end and its tokens stop working at once.
    Idempotent. Refuses (Conflict) to disable the last enabled admin."""
    user = find_user(session, email)
    if user.disabled_at is None:
        if user.role == Role.ADMIN:
            _keep_an_admin(session, user)
        user.disabled_at = utcnow()
    end_user_sessions(session, user.id)
    return user


def enable(session: Session, email: str) -> User:
    """Let a disabled account log in again (with its old password). Idempotent."""
    user = find_user(session, email)
    user.disabled_at = None
    return user


def list_users(session: Session) -> Sequence[User]:
    """Every account, disabled ones too, by address."""
    return list(session.scalars(select(User).order_by(User.email)))


def check_login(session: Session, email: str, password: str) -> User:
    """The enabled account of ``email`` if ``password`` is its password, its login time
    recorded (and its hash renewed if made with older parameters). Unauthorized, with the
    same message and the same hashing work, for a wrong password, an unknown address, a
    disabled account or a malformed address."""
    from argon2.exceptions import VerificationError

    try:
        address = normalised(email)
    except InputError:
        address = None
    user = (
        session.scalar(select(User).where(User.email == address)) if address is not None else None
    )
    hashed = user.password_hash if user is not None else _decoy()
    try:
        _hasher().verify(hashed, password[:MAX_PASSWORD])
        good = user is not None
    except VerificationError:
        good = False
    if not good or user is None or user.disabled_at is not None:
        raise Unauthorized(WRONG_LOGIN)
    if _hasher().check_needs_rehash(user.password_hash):
        user.password_hash = _hasher().hash(password)
    user.last_login_at = utcnow()
    return user


def end_user_sessions(session: Session, user_id: int) -> int:
    """Delete every dashboard session of the user ``user_id``; returns how many."""
    done = session.execute(delete(AdminSession).where(AdminSession.user_id == user_id))
    return int(done.rowcount)  # type: ignore[attr-defined]


def _keep_an_admin(session: Session, leaving: User) -> None:
    others = session.scalar(
        select(func.count())
        .select_from(User)
        .where(User.role == Role.ADMIN, User.disabled_at.is_(None), User.id != leaving.id)
    )
    if not others:
        raise Conflict(f"{leaving.email} is the last enabled admin: make another admin first")
