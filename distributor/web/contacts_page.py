"""The workspace's address book of press contacts (``/admin/contacts``): the entries (a
table, cards on a phone), a form that adds one, and for each a form that changes it and a
button that deletes it. The release form offers them as checkboxes (``editor``).

Each action goes through ``actions`` (audited), every POST carries the CSRF value, and a
refusal comes back on the page with the reason, the field at fault marked and what was
typed kept (422 for a value, 409 for an address already in the book, as everywhere).
Whoever may draft may keep the book (``Can.DRAFT``): the press office keeps it together.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.responses import Response

from distributor import actions
from distributor.core.db import session_scope
from distributor.core.errors import DistributorError
from distributor.core.models import PressContact
from distributor.core.roles import Can
from distributor.office.contacts import get_contact, list_contacts
from distributor.web.admin import MAX_ID, PREFIX, Admin, AdminRoute, Csrf, Dash, allowed
from distributor.web.errors import status_of

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=AdminRoute)
Writer = Annotated[Admin, Depends(allowed(Can.DRAFT))]
ContactId = Annotated[int, Path(ge=1, le=MAX_ID)]
# Longer than the model takes, so that too long a value is refused by the model, saying so
# on the page, and not by the form's parsing (a bare 422).
VALUE_MAX = 600  # characters a field takes, more than any contact's rules allow


class ContactForm(BaseModel):
    """The entry form's fields, as posted (checked afterwards by the contact rules)."""

    name: str = Field(default="", max_length=VALUE_MAX)
    role: str = Field(default="", max_length=VALUE_MAX)
    phone: str = Field(default="", max_length=VALUE_MAX)
    email: str = Field(default="", max_length=VALUE_MAX)
    csrf: str = Field(default="", max_length=VALUE_MAX)


Posted = Annotated[ContactForm, Form()]
# What a redirect after an action may announce (?done=…): fixed texts, never a parameter.
DONE = {
    "added": "Press contact added.",
    "saved": "Press contact saved. Releases already written keep the contact they printed.",
    "deleted": "Press contact deleted. Releases already written keep their copy.",
}


def _values(contact: PressContact) -> dict[str, str]:
    return {"name": contact.name, "role": contact.role, "phone": contact.phone,
            "email": contact.email or ""}  # fmt: skip


def _page(
    request: Request,
    dash: Dash,
    admin: Admin,
    status: int = 200,
    error: str = "",
    field: str | None = None,
    form: dict[str, str] | None = None,
    editing: int | None = None,
) -> HTMLResponse:
    """The book, with the add form (``editing`` None) or the form of entry ``editing``,
    filled with ``form``."""
    with session_scope(dash.settings) as session:
        contacts = list_contacts(session)
    done = DONE.get(request.query_params.get("done", ""), "")
    return dash.render(
        request,
        "contacts.html",
        status,
        admin=admin,
        contacts=contacts,
        done="" if error else done,
        error=error,
        field=field,
        form=form or {},
        editing=editing,
    )


def _done(what: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/contacts?done={what}", status_code=303)


@router.get("/contacts", response_class=HTMLResponse)
def contacts_page(request: Request, admin: Writer, dash: Dash) -> HTMLResponse:
    """The address book and the form that adds an entry."""
    return _page(request, dash, admin)


@router.post("/contacts", response_class=HTMLResponse)
def add(request: Request, admin: Writer, dash: Dash, posted: Posted) -> Response:
    """Add the entry; the page again with the reason and what was typed if refused."""
    dash.check_csrf(request, posted.csrf)
    form = posted.model_dump(exclude={"csrf"})
    try:
        actions.add_contact(dash.settings, form, admin.actor)
    except DistributorError as exc:
        field = getattr(exc, "field", None)
        return _page(request, dash, admin, status_of(exc), str(exc), field, form)
    return _done("added")


@router.get("/contacts/{contact_id}", response_class=HTMLResponse)
def edit_page(request: Request, contact_id: ContactId, admin: Writer, dash: Dash) -> Response:
    """The book, with entry ``contact_id``'s form filled in (404 when there is none)."""
    try:
        with session_scope(dash.settings) as session:
            form = _values(get_contact(session, contact_id))
    except DistributorError as exc:
        return _page(request, dash, admin, status_of(exc), str(exc))
    return _page(request, dash, admin, form=form, editing=contact_id)


@router.post("/contacts/{contact_id}", response_class=HTMLResponse)
def save(
    request: Request,
    contact_id: ContactId,
    admin: Writer,
    dash: Dash,
    posted: Posted,
) -> Response:
    """Replace the entry's fields; its form again with the reason if refused."""
    dash.check_csrf(request, posted.csrf)
    form = posted.model_dump(exclude={"csrf"})
    try:
        actions.update_contact(dash.settings, contact_id, form, admin.actor)
    except DistributorError as exc:
        field = getattr(exc, "field", None)
        return _page(request, dash, admin, status_of(exc), str(exc), field, form, contact_id)
    return _done("saved")


@router.post("/contacts/{contact_id}/delete", response_class=HTMLResponse)
def delete(
    request: Request, contact_id: ContactId, admin: Writer, dash: Dash, csrf: Csrf = ""
) -> Response:
    """Remove the entry from the book (releases keep their copy)."""
    dash.check_csrf(request, csrf)
    try:
        actions.delete_contact(dash.settings, contact_id, admin.actor)
    except DistributorError as exc:
        return _page(request, dash, admin, status_of(exc), str(exc))
    return _done("deleted")
