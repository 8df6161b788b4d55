"""The admin API's address book of press contacts (under ``/api``): list, create, read,
change, delete.

Every call needs a bearer token with the ``releases`` scope, as topics do: the contacts
are printed on releases. Reading and changing need the right to draft (``Can.DRAFT``): the
press office keeps its book together, writers included (core/roles.py).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from distributor import actions
from distributor.core.db import session_scope
from distributor.core.models import PressContact
from distributor.core.roles import Caller, Can
from distributor.office.contacts import get_contact, list_contacts
from distributor.web.apibase import (
    MAX_ID,
    PRINTABLE,
    conflict,
    error_responses,
    not_found,
    token_dependency,
)
from distributor.web.deps import AppSettings
from distributor.web.rights import requiring

SCOPE = "releases"
ContactId = Annotated[int, Path(ge=1, le=MAX_ID)]


class ContactOut(BaseModel):
    """An entry of the address book; a field it does not have is empty."""

    id: int
    name: str
    role: str
    phone: str
    email: str


class ContactIn(BaseModel):
    """A press contact, checked as a release's front matter checks one: a name, and
    optionally a role, a phone number as people write it, an email address (at most one
    entry per address, whatever its case). A PUT replaces every field: one left out is
    emptied."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=PRINTABLE)]
    role: Annotated[str, Field(max_length=200, pattern=PRINTABLE)] = ""
    phone: Annotated[str, Field(max_length=50, pattern=PRINTABLE)] = ""
    email: Annotated[str, Field(max_length=320, pattern=PRINTABLE)] = ""


def _out(contact: PressContact) -> ContactOut:
    return ContactOut(id=contact.id, name=contact.name, role=contact.role,
                      phone=contact.phone, email=contact.email or "")  # fmt: skip


token_caller = token_dependency(SCOPE)
Writer = Annotated[Caller, Depends(requiring(token_caller, Can.DRAFT))]
reader = requiring(token_caller, Can.DRAFT)
router = APIRouter(
    tags=["contacts"], responses=error_responses(SCOPE), dependencies=[Depends(token_caller)]
)
DUPLICATE = conflict("Another entry has this email address")


@router.get("/contacts", summary="List press contacts", dependencies=[Depends(reader)])
def contacts(settings: AppSettings) -> list[ContactOut]:
    """The address book, by name."""
    with session_scope(settings) as session:
        return [_out(c) for c in list_contacts(session)]


@router.post("/contacts", status_code=201, summary="Add a press contact", responses=DUPLICATE)
def create(body: ContactIn, who: Writer, settings: AppSettings) -> ContactOut:
    """Add an entry; the email is stored as email-validator normalises it."""
    return _out(actions.add_contact(settings, body.model_dump(), who.actor))


@router.get(
    "/contacts/{contact_id}",
    summary="One press contact",
    responses=not_found("press contact"),
    dependencies=[Depends(reader)],
)
def read(contact_id: ContactId, settings: AppSettings) -> ContactOut:
    """The entry."""
    with session_scope(settings) as session:
        return _out(get_contact(session, contact_id))


@router.put(
    "/contacts/{contact_id}",
    summary="Change a press contact",
    responses={**not_found("press contact"), **DUPLICATE},
)
def change(
    contact_id: ContactId, body: ContactIn, who: Writer, settings: AppSettings
) -> ContactOut:
    """Replace the entry's fields. Releases already written keep the contact as they
    printed it."""
    return _out(actions.update_contact(settings, contact_id, body.model_dump(), who.actor))


@router.delete(
    "/contacts/{contact_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a press contact",
    responses=not_found("press contact"),
)
def remove(contact_id: ContactId, who: Writer, settings: AppSettings) -> Response:
    """Remove the entry from the address book; releases keep their copy."""
    actions.delete_contact(settings, contact_id, who.actor)
    return Response(status_code=204)
