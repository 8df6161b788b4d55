"""The admin API's accounts of the press office (under ``/api``), as ``distributor users``
has them: list, create, read; change a role or a password, disable, enable, take
two-factor login off; invite someone, list and cancel the invitations pending.

Every call needs a bearer token with the ``users`` scope made for an admin's account
(``distributor tokens create NAME --user EMAIL --scope users``): managing accounts is a
person's right (core/roles.py), so a writer's or a publisher's token is refused (403), and
a token of no account cannot have the scope. What a call changes is recorded in the audit
trail as ``user:EMAIL (token:NAME)``. No answer ever holds a password, its hash, a
two-factor secret, a token or an invitation's link: the invited person gets the link by
email, and chooses their password there.

Creating an account and inviting honour an ``Idempotency-Key`` header: a repeat makes
nothing and answers as the first did (a repeated invitation would otherwise end the first
one's link and send a second email).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from distributor import actions
from distributor.core import idempotency
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import InputError
from distributor.core.models import Invitation, User
from distributor.core.roles import Caller, Can, Role
from distributor.office.account_views import InvitationOut, UserOut, invitation_out, user_out
from distributor.office.accounts import MAX_PASSWORD, get_user, list_users
from distributor.office.invitations import pending_invitations
from distributor.web.apibase import (
    MAX_ID,
    PRINTABLE,
    IdempotencyKey,
    conflict,
    error_responses,
    not_found,
    replayed,
    token_dependency,
    token_of,
)
from distributor.web.deps import AppQueue, AppSettings
from distributor.web.rights import requiring

SCOPE = "users"
UserId = Annotated[int, Path(ge=1, le=MAX_ID)]
InvitationId = Annotated[int, Path(ge=1, le=MAX_ID)]
Email = Annotated[str, Field(min_length=1, max_length=320, pattern=PRINTABLE)]
Name = Annotated[str, Field(max_length=200, pattern=PRINTABLE)]
Password = Annotated[
    str,
    Field(
        max_length=MAX_PASSWORD,
        description="At least 12 characters (a few words make a good one); stored only as "
        "an argon2id hash, never answered",
    ),
]
INVITE_INSTEAD = (
    "password: required to create an account here; to let the person choose it, invite "
    "them instead (POST /api/users/invitations)"
)


class UserIn(BaseModel):
    """A new account: its address, role, the name the workspace shows, and its password.
    Without a password it is refused (422, field ``password``): invite the person instead,
    and they choose it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "email": "jo@example.org",
                    "role": "writer",
                    "name": "Jo Bloggs",
                    "password": "correct horse battery staple",
                }
            ]
        },
    )
    email: Email
    role: Role
    name: Name = ""
    password: Password | None = None


class InvitationIn(BaseModel):
    """Whom to invite, with which role; the name the workspace will show."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"email": "sam@example.org", "role": "publisher", "name": "Sam Lee"}]
        },
    )
    email: Email
    role: Role
    name: Name = ""


class RoleIn(BaseModel):
    """The account's new role."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"role": "admin"}]})
    role: Role


class PasswordIn(BaseModel):
    """The account's new password (its sessions end)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"password": "a new and long enough password"}]},
    )
    password: Password


def email_of(settings: Settings, user_id: int) -> str:
    """The address of the account ``user_id`` (what the actions name an account by; it
    never changes); NotFound (404) for no such account."""
    with session_scope(settings) as session:
        return get_user(session, user_id).email


def claim_of(
    who: Caller, key: str | None, request: Request, canonical: BaseModel
) -> idempotency.KeyClaim | None:
    """The idempotency claim of a request with ``key`` (None without one): its fingerprint
    is taken over ``canonical``, the body as checked, so that spacing or key order does
    not make another request."""
    if key is None:
        return None
    body = canonical.model_dump_json().encode()
    fingerprint = idempotency.fingerprint(request.method, request.url.path, body)
    return idempotency.KeyClaim(token_of(who), key, fingerprint)


token_caller = token_dependency(SCOPE)
# Every route manages accounts: the right is checked for the whole router.
manager = requiring(token_caller, Can.ACCOUNTS)
Manager = Annotated[Caller, Depends(manager)]
router = APIRouter(
    tags=["users"],
    responses=error_responses(SCOPE),
    dependencies=[Depends(token_caller), Depends(manager)],
)
FOUND = not_found("account")
LAST_ADMIN = conflict("It would leave no enabled admin: make another admin first")
KEY_IN_USE = "the idempotency key's first request is still being processed"


@router.get("/users", summary="List accounts")
def users(settings: AppSettings) -> list[UserOut]:
    """Every account, disabled ones too, by address."""
    with session_scope(settings) as session:
        return [user_out(u) for u in list_users(session)]


@router.post(
    "/users",
    status_code=201,
    summary="Create an account",
    responses={
        201: {"model": UserOut, "description": "The account, as stored"},
        **conflict(f"The address has an account already, or {KEY_IN_USE}"),
    },
)
def create(
    request: Request,
    body: UserIn,
    who: Manager,
    settings: AppSettings,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Create an account with its password (the CLI's `users create`); to let the person
    choose their password, invite them instead. With an ``Idempotency-Key``, a repeat
    creates nothing and answers as the first did; the password is not part of what
    makes a request the same (it is kept nowhere but in its hash)."""
    if body.password is None:
        raise InputError(INVITE_INSTEAD, field="password")
    claim = claim_of(who, key, request, body.model_copy(update={"password": None}))

    def answer(user: User) -> dict[str, Any]:
        return user_out(user).model_dump(mode="json")

    made = actions.create_user_once(
        settings, body.email, body.role, body.password, who.actor, answer, claim, name=body.name
    )
    if isinstance(made, idempotency.Replay):
        return replayed(made)
    return JSONResponse(made, 201)


# Before /users/{user_id}, which would take "invitations" for an id.
@router.get("/users/invitations", summary="List pending invitations")
def invitations(settings: AppSettings) -> list[InvitationOut]:
    """The invitations not accepted, cancelled or expired, newest first."""
    with session_scope(settings) as session:
        return [invitation_out(i) for i in pending_invitations(session)]


@router.post(
    "/users/invitations",
    status_code=201,
    summary="Invite someone",
    responses={
        201: {"model": InvitationOut, "description": "The invitation; its email is on its way"},
        **conflict(f"The address has an account already, or {KEY_IN_USE}"),
    },
)
def invite(
    request: Request,
    body: InvitationIn,
    who: Manager,
    settings: AppSettings,
    queue: AppQueue,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Email the person a link (valid 7 days) to a page where they choose their password,
    which makes their account with ``role`` — as the Accounts page and `users invite` do.
    Inviting an address again replaces its pending invitation (the earlier link stops
    working). With an ``Idempotency-Key``, a repeat invites nobody again."""
    claim = claim_of(who, key, request, body)

    def answer(invitation: Invitation) -> dict[str, Any]:
        return invitation_out(invitation).model_dump(mode="json")

    made = actions.invite_once(
        settings, queue.get(), body.email, body.role, who.actor, answer, claim, name=body.name
    )
    if isinstance(made, idempotency.Replay):
        return replayed(made)
    return JSONResponse(made, 201)


@router.delete(
    "/users/invitations/{invitation_id}",
    status_code=204,
    response_class=Response,
    summary="Cancel an invitation",
    responses={**not_found("invitation"), **conflict("It was accepted already")},
)
def cancel(invitation_id: InvitationId, who: Manager, settings: AppSettings) -> Response:
    """Its link stops working (cancelling one cancelled already changes nothing)."""
    actions.cancel_invitation(settings, invitation_id, who.actor)
    return Response(status_code=204)


@router.get("/users/{user_id}", summary="One account", responses=FOUND)
def read(user_id: UserId, settings: AppSettings) -> UserOut:
    """The account."""
    with session_scope(settings) as session:
        return user_out(get_user(session, user_id))


@router.post(
    "/users/{user_id}/role",
    summary="Change an account's role",
    responses={**FOUND, **LAST_ADMIN},
)
def change_role(user_id: UserId, body: RoleIn, who: Manager, settings: AppSettings) -> UserOut:
    """Give the account ``role``, from its next request (its tokens too). An admin is not
    made a writer or a publisher while no other enabled admin is left."""
    email = email_of(settings, user_id)
    return user_out(actions.set_user_role(settings, email, body.role, who.actor))


@router.post("/users/{user_id}/password", summary="Set an account's password", responses=FOUND)
def change_password(
    user_id: UserId, body: PasswordIn, who: Manager, settings: AppSettings
) -> UserOut:
    """Replace the account's password (the rules of creation); its sessions end. The
    audit trail records the change, never the password."""
    email = email_of(settings, user_id)
    return user_out(actions.set_user_password(settings, email, body.password, who.actor))


@router.post(
    "/users/{user_id}/disable",
    summary="Disable an account",
    responses={**FOUND, **LAST_ADMIN},
)
def disable(user_id: UserId, who: Manager, settings: AppSettings) -> UserOut:
    """Its sessions end and its tokens stop working, at once; it logs in to nothing until
    enabled. Disabling a disabled account changes nothing. The last enabled admin is not
    disabled."""
    email = email_of(settings, user_id)
    return user_out(actions.disable_user(settings, email, who.actor))


@router.post("/users/{user_id}/enable", summary="Enable an account", responses=FOUND)
def enable(user_id: UserId, who: Manager, settings: AppSettings) -> UserOut:
    """Let it log in again, with its password; its tokens work again."""
    email = email_of(settings, user_id)
    return user_out(actions.enable_user(settings, email, who.actor))


@router.post(
    "/users/{user_id}/reset-2fa", summary="Take two-factor login off an account", responses=FOUND
)
def reset_two_factor(user_id: UserId, who: Manager, settings: AppSettings) -> UserOut:
    """For a lost phone: it logs in with its password alone (until it sets up a new app,
    which a publisher or admin must when ``DISTRIBUTOR_REQUIRE_TOTP`` is on); its sessions
    end."""
    email = email_of(settings, user_id)
    return user_out(actions.reset_totp(settings, email, who.actor))
