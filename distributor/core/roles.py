"""What each kind of caller may do: the roles of named accounts, the scopes of API tokens,
and the capabilities both come down to. Every route of the workspace and the API names
the one capability it needs (tests/test_role_matrix.py walks them all).

- writer: create, edit, preview and test-send drafts;
- publisher: also schedule, publish, correct and withdraw;
- admin: also topics, subscribers (import, export, erase), and accounts.

A token made for a user can do what both its scopes and the user's role allow; a token
made before accounts existed (no user) keeps exactly what its scopes allowed. Managing
accounts (the ``users`` scope) is a person's right only: a token of no user never has it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from distributor.core.errors import Forbidden


class Role(enum.StrEnum):
    WRITER = "writer"
    PUBLISHER = "publisher"
    ADMIN = "admin"


class Can(enum.StrEnum):
    """A capability a route needs."""

    DRAFT = "draft"  # see releases and their progress; create, edit, preview, test drafts
    PUBLISH = "publish"  # publish, schedule, unschedule, correct, withdraw
    TOPICS = "topics"  # add, rename, delete topics
    AUDIENCE = "audience"  # subscribers: import, export, erase, change
    ACCOUNTS = "accounts"  # users: create, disable, change roles
    SETTINGS = "settings"  # the office's identity: name, logo, colour, address, sender


ROLE_CAN: dict[Role, frozenset[Can]] = {
    Role.WRITER: frozenset({Can.DRAFT}),
    Role.PUBLISHER: frozenset({Can.DRAFT, Can.PUBLISH}),
    Role.ADMIN: frozenset(Can),
}

# What a token's scopes allow: for a token without a user, what they allowed before roles
# existed (unchanged); for a user's token, the most its user's role is narrowed to.
SCOPE_CAN: dict[str, frozenset[Can]] = {
    "releases": frozenset({Can.DRAFT, Can.PUBLISH, Can.TOPICS}),
    "subscribers": frozenset({Can.AUDIENCE}),
    "users": frozenset({Can.ACCOUNTS}),
    "settings": frozenset({Can.SETTINGS}),
}
SCOPES = ("subscribers", "releases", "users", "settings")
# What a token gets when none is named: managing accounts (``users``) and the office's
# identity (``settings``) are asked for by name.
DEFAULT_SCOPES = ("subscribers", "releases")
# The scopes only a user's token may have (ROLE_ONLY below).
USER_SCOPES = frozenset({"users", "settings"})
# What only a person's role grants: accounts and the office's identity are managed by someone
# the trail can name and whose own account can be disabled, never by a token of nobody.
ROLE_ONLY = frozenset({Can.ACCOUNTS, Can.SETTINGS})


def parse_role(value: str) -> Role:
    """The role called ``value`` (any case); ValueError naming the roles otherwise."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        known = ", ".join(r.value for r in Role)
        raise ValueError(f"role: {value!r} is not one of {known}") from None


def capabilities(role: str | None, scopes: Iterable[str] | None = None) -> frozenset[Can]:
    """What a caller may do: a user's ``role``, narrowed to what a token's ``scopes`` allow
    when the call comes with a token; a token of no user (``role`` None) has its scopes',
    except what only a role grants (``ROLE_ONLY``). An unknown role or scope allows
    nothing."""
    by_role = ROLE_CAN.get(Role(role), frozenset()) if role in set(Role) else frozenset()
    if scopes is None:
        return by_role
    by_scopes = frozenset(c for s in scopes for c in SCOPE_CAN.get(s, frozenset()))
    return by_scopes - ROLE_ONLY if role is None else by_role & by_scopes


WHAT_IT_DOES: dict[Can, str] = {
    Can.DRAFT: "write, preview or test releases",
    Can.PUBLISH: "publish, schedule, correct or withdraw releases",
    Can.TOPICS: "change topics",
    Can.AUDIENCE: "manage subscribers",
    Can.ACCOUNTS: "manage accounts",
    Can.SETTINGS: "change the office's settings",
}


@dataclass(frozen=True)
class Caller:
    """Who makes a request of the workspace or the API: how the audit trail names them
    (``actor``), what they may do, and what that comes from (``by``: ``a writer``, ``this
    token's scopes``), for the refusal's message."""

    actor: str
    can: frozenset[Can]
    by: str
    token: str | None = None  # the name of the token it calls with, if it does

    def require(self, need: Can) -> None:
        """Forbidden, saying what and why, unless this caller may do ``need``."""
        if need not in self.can:
            raise Forbidden(f"{self.by} cannot {WHAT_IT_DOES[need]}")


def user_caller(email: str, role: str) -> Caller:
    """A person logged in with a password."""
    article = "an" if role[:1] in "aeiou" else "a"
    return Caller(user_actor(email), capabilities(role), f"{article} {role}")


def token_caller(name: str, scopes: Iterable[str], email: str | None, role: str | None) -> Caller:
    """A call made with the token ``name``, of the user ``email`` (with ``role``) if any."""
    if email is None or role is None:
        by = "this token's scopes"
    else:  # the role, not the scopes, is what a user can change by asking an admin
        by = f"{'an' if role[:1] in 'aeiou' else 'a'} {role}'s token"
    return Caller(token_actor(name, email), capabilities(role, list(scopes)), by, name)


def user_actor(email: str) -> str:
    """How the audit trail names a person logged in with a password."""
    return f"user:{email}"


def token_actor(token_name: str, email: str | None) -> str:
    """How the audit trail names a call made with a token, and the token's user if any."""
    return f"token:{token_name}" if email is None else f"user:{email} (token:{token_name})"


def person(actor: str) -> str:
    """The person an audit name stands for: ``user:EMAIL (token:NAME)`` (``token_actor``)
    is ``user:EMAIL``; any other name is itself."""
    return actor.split(" (token:", 1)[0].strip()
