"""Bearer tokens for the admin API: created by name with scopes, stored only as a hash.

The plaintext (``dst_`` + 43 random URL-safe characters, 256 bits) is shown once, when the
token is created; the database holds its SHA-256. A token is found by the hash of what a
client presents, so no comparison ever runs over a secret stored in clear: a timing
difference can only reveal bytes of a hash the client already knows.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from distributor.core.errors import Conflict, Forbidden, InputError, NotFound, Unauthorized
from distributor.core.models import ApiToken, utcnow
from distributor.core.roles import DEFAULT_SCOPES as DEFAULT_SCOPES  # named in roles.py: the
from distributor.core.roles import SCOPES as SCOPES  # command's help reads them from there
from distributor.core.roles import USER_SCOPES, Caller, token_caller

PREFIX = "dst_"
# Recording every use would make each read-only API call take the database's write lock.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_MAX_TOKEN_LENGTH = 200


def token_hash(plaintext: str) -> str:
    """The SHA-256 hex digest of a token: what the database stores and looks up."""
    return hashlib.sha256(plaintext.encode("utf-8", "surrogatepass")).hexdigest()


def check_scopes(scopes: Iterable[str]) -> list[str]:
    """The scopes, deduplicated and sorted; raises InputError for none or an unknown one."""
    chosen = sorted({s.strip() for s in scopes})
    if not chosen:
        raise InputError(f"scopes: at least one of {', '.join(SCOPES)} is required", field="scopes")
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise InputError(
            f"scopes: unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}",
            field="scopes",
        )
    return chosen


def create_token(session: Session, name: str, scopes: list[str], user_id: int | None = None) -> str:
    """Create a token called ``name`` with ``scopes`` (for the user ``user_id``, if given:
    it then does at most what their role allows, and stops with their account) and return
    its plaintext — the only time it exists outside the client; only its hash is stored.

    Raises InputError for a bad name (1–100 of letters, digits, ``.``, ``_``, ``-``,
    starting with a letter or digit), an unknown scope, or the ``users`` or ``settings`` scope
    without a user (it would allow nothing: only a person's role manages accounts and the
    office's identity), Conflict if the
    name is taken (a revoked token keeps its name: names stay unique in the audit trail).
    """
    if not _NAME.fullmatch(name):
        raise InputError(
            f"name: {name!r} must be 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            field="name",
        )
    chosen = check_scopes(scopes)
    if user_id is None and USER_SCOPES.intersection(chosen):
        raise InputError(
            f"scopes: the {' and '.join(sorted(USER_SCOPES.intersection(chosen)))} scope is "
            "for a token of an admin's account (--user EMAIL): only a person's role manages "
            "accounts and the office's identity",
            field="scopes",
        )
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise Conflict(f"a token named {name!r} already exists")
    plaintext = PREFIX + secrets.token_urlsafe(32)
    try:
        with session.begin_nested():  # a concurrent create of the same name loses here
            session.add(
                ApiToken(
                    name=name,
                    token_hash=token_hash(plaintext),
                    scopes=chosen,
                    created_at=utcnow(),
                    user_id=user_id,
                )
            )
    except IntegrityError as exc:
        raise Conflict(f"a token named {name!r} already exists") from exc
    return plaintext


def authenticate(session: Session, plaintext: str, scope: str) -> ApiToken:
    """The live token whose plaintext is ``plaintext``, if it grants ``scope``.

    Raises Unauthorized when the token is missing, unknown or revoked, or its user's
    account is disabled, and Forbidden when it is valid but lacks ``scope``. Records the
    time of use in ``last_used_at`` (to the minute; the caller's transaction commits it).
    """
    if not plaintext or len(plaintext) > _MAX_TOKEN_LENGTH:
        raise Unauthorized("a valid bearer token is required")
    digest = token_hash(plaintext)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        raise Unauthorized("unknown token")
    if token.revoked_at is not None:
        raise Unauthorized("this token has been revoked")
    if token.user is not None and token.user.disabled_at is not None:
        raise Unauthorized("the account this token belongs to is disabled")
    if scope not in token.scopes:
        raise Forbidden(f"this token does not have the {scope!r} scope")
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        token.last_used_at = now
    return token


def caller(token: ApiToken) -> Caller:
    """Who calls with ``token`` and what they may do: its scopes, narrowed by its user's
    role if it has a user."""
    user = token.user
    if user is None:
        return token_caller(token.name, token.scopes, None, None)
    return token_caller(token.name, token.scopes, user.email, user.role)


def revoke(session: Session, name: str) -> ApiToken:
    """Revoke the token called ``name`` so it authenticates nothing from now on; returns it.
    Idempotent (the first revocation time is kept); raises NotFound for an unknown name."""
    token = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if token is None:
        raise NotFound(f"no token named {name!r}")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return token


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, revoked ones included, ordered by name (hashes only, never plaintext)."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.name)))
