"""What is done to the press office's accounts — create, invite, change a role or a
password, disable, enable, take two-factor login off — each with its audit record in the
same transaction; and logging in, with its throttle (office/logins.py).

A login is not recorded in the audit trail (the trail is what was done to releases,
subscribers and accounts), but each refused one is counted against the address typed and
the client's address, in a transaction of its own so that it stays counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from distributor.core import audit, idempotency
from distributor.core.admin_sessions import end_session, start_session
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import Unauthorized
from distributor.core.models import Invitation, User
from distributor.core.queue import TaskQueue
from distributor.core.tokens import InvalidToken, Purpose, make_token, read_link
from distributor.office import accounts, invitations, logins, totp

log = logging.getLogger(__name__)
CODE_STEP_SECONDS = 300  # from a good password to its code


def create_user(
    settings: Settings, email: str, role: str, password: str, by: str, name: str = ""
) -> User:
    """A new account (see ``accounts.create_user`` for what is refused), recorded as made
    by ``by``."""
    with session_scope(settings) as session:
        return _create_user(session, email, role, password, by, name)


def create_user_once(
    settings: Settings,
    email: str,
    role: str,
    password: str,
    by: str,
    answer: Callable[[User], dict[str, Any]],
    claim: idempotency.KeyClaim | None,
    name: str = "",
) -> dict[str, Any] | idempotency.Replay:
    """As ``create_user``, answering ``answer`` of the new account — at most once per
    ``claim``'s key: the key, the account, its audit record and the answer (status 201)
    commit together; a repeat of the request gets the Replay and makes nothing."""

    def act() -> dict[str, Any]:
        return answer(_create_user(session, email, role, password, by, name))

    with session_scope(settings) as session:
        done: dict[str, Any] | idempotency.Replay = idempotency.once(session, claim, 201, act)
    return done


def _create_user(
    session: Session, email: str, role: str, password: str, by: str, name: str
) -> User:
    user = accounts.create_user(session, email, role, password, name)
    audit.record(session, by, "user-create", f"user {user.email}", role=user.role)
    return user


def set_user_role(settings: Settings, email: str, role: str, by: str) -> User:
    """Give ``email``'s account ``role`` (from its next request), recorded."""
    with session_scope(settings) as session:
        before = accounts.find_user(session, email).role
        user = accounts.set_role(session, email, role)
        audit.record(session, by, "user-role", f"user {user.email}", role=user.role, was=before)
    return user


def set_user_password(settings: Settings, email: str, password: str, by: str) -> User:
    """Replace ``email``'s password (its sessions end), recorded (never the password)."""
    with session_scope(settings) as session:
        user = accounts.set_password(session, email, password)
        audit.record(session, by, "user-password", f"user {user.email}")
    return user


def disable_user(settings: Settings, email: str, by: str) -> User:
    """Disable ``email``'s account (its sessions end, its tokens stop), recorded."""
    with session_scope(settings) as session:
        user = accounts.disable(session, email)
        audit.record(session, by, "user-disable", f"user {user.email}")
    return user


def enable_user(settings: Settings, email: str, by: str) -> User:
    """Let ``email``'s account log in again, recorded."""
    with session_scope(settings) as session:
        user = accounts.enable(session, email)
        audit.record(session, by, "user-enable", f"user {user.email}")
    return user


def invite(
    settings: Settings, queue: TaskQueue, email: str, role: str, by: str, name: str = ""
) -> Invitation:
    """Invite ``email`` to the workspace with ``role`` (``invitations.invite``: a pending
    invitation of the address is replaced), recorded; after the commit, wake a worker to
    send its email (the sweep does, if the wake-up is lost)."""
    with session_scope(settings) as session:
        invitation = _invite(session, email, role, by, name)
    queue.send("send_invitation", invitation.id)
    return invitation


def invite_once(
    settings: Settings,
    queue: TaskQueue,
    email: str,
    role: str,
    by: str,
    answer: Callable[[Invitation], dict[str, Any]],
    claim: idempotency.KeyClaim | None,
    name: str = "",
) -> dict[str, Any] | idempotency.Replay:
    """As ``invite``, answering ``answer`` of the invitation — at most once per
    ``claim``'s key: a repeat of the request gets the Replay, and neither replaces the
    invitation (its link would stop working) nor sends a second email."""
    made: list[int] = []

    def act() -> dict[str, Any]:
        invitation = _invite(session, email, role, by, name)
        made.append(invitation.id)
        return answer(invitation)

    with session_scope(settings) as session:
        done: dict[str, Any] | idempotency.Replay = idempotency.once(session, claim, 201, act)
    for invitation_id in made:  # after the commit: a worker never sees an uncommitted one
        queue.send("send_invitation", invitation_id)
    return done


def _invite(session: Session, email: str, role: str, by: str, name: str) -> Invitation:
    invitation = invitations.invite(session, email, role, by, name)
    audit.record(session, by, "user-invite", f"user {invitation.email}", role=invitation.role)
    return invitation


def cancel_invitation(settings: Settings, invitation_id: int, by: str) -> Invitation:
    """Cancel a pending invitation (its link stops working), recorded."""
    with session_scope(settings) as session:
        invitation = invitations.cancel_invitation(session, invitation_id)
        audit.record(session, by, "user-uninvite", f"user {invitation.email}")
    return invitation


def accept_invitation(settings: Settings, token: str, password: str) -> str:
    """Make the account the invitation ``token`` names with ``password``, recorded as made
    by the invitation, and open its first session; returns the cookie value."""
    with session_scope(settings) as session:
        user = invitations.accept_invitation(session, settings, token, password)
        audit.record(
            session, f"invitation:{user.email}", "user-create", f"user {user.email}", role=user.role
        )
        return start_session(session, user_id=user.id)


@dataclass(frozen=True)
class Login:
    """What a good password opens: a session (``session``, its cookie value), or, for an
    account with two-factor login, the step that asks for its code (``code_step``: a signed
    value naming the account, for five minutes)."""

    session: str | None = None
    code_step: str | None = None


def log_in(settings: Settings, email: str, password: str, address: str, ended: str = "") -> Login:
    """A new dashboard session for the account of ``email`` if ``password`` is its
    password (ending the session ``ended``, the browser's old one, if any) — or, when the
    account logs in with a one-time code, the code step (:func:`log_in_with_code`). Raises
    TooManyAttempts while the address typed or the client ``address`` is throttled (the
    password is not checked then), and Unauthorized, with the same words whether the
    account exists or not, for a wrong one."""
    with session_scope(settings) as session:
        logins.check_allowed(session, email, address)
    try:
        with session_scope(settings) as session:
            user = accounts.check_login(session, email, password)
            logins.record_success(session, email)
            if user.totp_enabled_at is not None:
                step = make_token(settings, Purpose.LOGIN_CODE, user.id, nonce=_code_nonce(user))
                return Login(code_step=step)
            end_session(session, ended)
            return Login(session=start_session(session, user_id=user.id))
    except Unauthorized:
        _failed(settings, email, address)
        raise


def log_in_with_code(
    settings: Settings, code_step: str, code: str, address: str, ended: str = ""
) -> str:
    """The session of the account whose password opened ``code_step`` (five minutes ago at
    most), once ``code`` is a one-time code of its app not used before; its cookie value.
    Failed codes count against the account and the address as failed passwords do."""
    try:
        link = read_link(settings, Purpose.LOGIN_CODE, code_step, CODE_STEP_SECONDS)
    except InvalidToken as exc:
        raise Unauthorized("the login took too long: type your password again") from exc
    with session_scope(settings) as session:
        user = session.get(User, link.id)
        if user is None or user.disabled_at is not None:
            raise Unauthorized(accounts.WRONG_LOGIN)
        email = user.email
        if not link.fits(_code_nonce(user)):
            raise Unauthorized("the login took too long: type your password again")
        logins.check_allowed(session, email, address)
    try:
        with session_scope(settings) as session:
            user = session.get_one(User, link.id)
            totp.check_code(user, code)
            logins.record_success(session, email)
            end_session(session, ended)
            return start_session(session, user_id=user.id)
    except Unauthorized:
        _failed(settings, email, address)
        raise


def _code_nonce(user: User) -> str:
    """What ties a code step to the account as it was: a new password, or two-factor login
    taken off, makes earlier steps worthless."""
    changed = int(user.password_changed_at.timestamp())
    enabled = int(user.totp_enabled_at.timestamp()) if user.totp_enabled_at else 0
    return f"{changed:x}{enabled:x}"


def _failed(settings: Settings, email: str, address: str) -> None:
    with session_scope(settings) as session:
        logins.record_failure(session, email, address)
    log.warning("a login to the workspace failed (from %s)", address or "an unknown address")


def start_totp(settings: Settings, user_id: int) -> str:
    """Start (or start again) the two-factor enrolment of the user ``user_id``: a new
    secret; returns the ``otpauth://`` address for their app."""
    with session_scope(settings) as session:
        user = session.get_one(User, user_id)
        totp.start_enrolment(user)
        return totp.provisioning_uri(settings, user)


def confirm_totp(settings: Settings, user_id: int, code: str) -> None:
    """Switch two-factor login on for ``user_id`` once ``code`` comes from the new secret,
    recorded in the audit trail."""
    with session_scope(settings) as session:
        user = session.get_one(User, user_id)
        totp.confirm_enrolment(user, code)
        audit.record(session, f"user:{user.email}", "user-2fa-on", f"user {user.email}")


def reset_totp(settings: Settings, email: str, by: str) -> User:
    """Take two-factor login off ``email``'s account (a lost phone); its sessions end."""
    with session_scope(settings) as session:
        user = accounts.find_user(session, email)
        totp.reset(user)
        accounts.end_user_sessions(session, user.id)
        audit.record(session, by, "user-2fa-reset", f"user {user.email}")
    return user
