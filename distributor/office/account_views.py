"""Accounts and pending invitations as the press office's faces show them to an admin (the
API's JSON, ``distributor users list --json``): what each one is, never a password, its
hash, a two-factor secret, a token or an invitation's link."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from distributor.core.models import Invitation, User
from distributor.core.roles import Role


class UserOut(BaseModel):
    """An account of the workspace, as an admin sees it (never its password or secrets)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 3,
                    "email": "jo@example.org",
                    "name": "Jo Bloggs",
                    "role": "writer",
                    "created_at": "2026-11-02T08:30:00Z",
                    "last_login_at": "2026-11-20T07:58:12Z",
                    "disabled_at": "2026-11-21T10:00:00Z",  # FastAPI drops a null
                    "two_factor": True,
                }
            ]
        }
    )
    id: int
    email: str
    name: str
    role: Role
    created_at: datetime
    last_login_at: datetime | None
    disabled_at: datetime | None = Field(
        description="When it was disabled (it logs in to nothing, its tokens stop); null "
        "while enabled"
    )
    two_factor: bool = Field(description="Whether it logs in with a one-time code too")


class InvitationOut(BaseModel):
    """An invitation not yet accepted: its email carries the link (never answered here)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 7,
                    "email": "sam@example.org",
                    "name": "Sam Lee",
                    "role": "publisher",
                    "invited_by": "user:camille@example.org (token:camille-admin)",
                    "created_at": "2026-11-20T09:00:00Z",
                    "expires_at": "2026-11-27T09:00:00Z",
                }
            ]
        }
    )
    id: int
    email: str
    name: str
    role: Role
    invited_by: str = Field(description="Who invited them, as the audit trail names them")
    created_at: datetime
    expires_at: datetime = Field(description="Its link works until then (7 days)")


def user_out(user: User) -> UserOut:
    """``user`` as the API answers it."""
    return UserOut(
        id=user.id,
        email=user.email,
        name=user.name,
        role=Role(user.role),
        created_at=user.created_at,
        last_login_at=user.last_login_at,
        disabled_at=user.disabled_at,
        two_factor=user.totp_enabled_at is not None,
    )


def invitation_out(invitation: Invitation) -> InvitationOut:
    """``invitation`` as the API answers it (without its link)."""
    return InvitationOut(
        id=invitation.id,
        email=invitation.email,
        name=invitation.name,
        role=Role(invitation.role),
        invited_by=invitation.invited_by,
        created_at=invitation.created_at,
        expires_at=invitation.expires_at,
    )
