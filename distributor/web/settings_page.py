"""The office's identity on a workspace page of its own (``/admin/settings``, admins only):
the organisation's name in each language, the logo (upload, or remove), the accent colour,
the postal address, the privacy policy's URL, the default sender and Reply-To, and the press
contacts a new release starts with (ticked from the address book).

A field set in the environment shows its value read-only, naming the variable that sets it
(``office/identity.py``: the environment wins). One form saves everything through
``actions.update_identity`` (audited; nothing stored unless every field passes); a refusal
comes back with the reason, the field at fault marked and everything typed kept. The logo's
size is limited before the body is read (``@takes``).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from distributor import actions
from distributor.core.db import session_scope
from distributor.core.errors import DistributorError
from distributor.core.roles import Can
from distributor.office.contacts import list_contacts
from distributor.office.identity import describe
from distributor.office.logo import MAX_LOGO_BYTES
from distributor.web.admin import PREFIX, Admin, AdminRoute, Dash, allowed
from distributor.web.bodies import FORM, FORM_LIMIT, MULTIPART, takes
from distributor.web.deps import AppQueue
from distributor.web.errors import status_of
from distributor.web.queueing import LazyQueue

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=AdminRoute)
Administrator = Annotated[Admin, Depends(allowed(Can.SETTINGS))]
MAX_VALUE = 2000  # characters kept of a posted field: more than any field takes


def _page(
    request: Request,
    dash: Dash,
    admin: Admin,
    status: int = 200,
    error: str = "",
    field: str | None = None,
    typed: dict[str, Any] | None = None,
) -> HTMLResponse:
    """The page with each field's value in effect, or ``typed`` (what was posted) after a
    refusal."""
    with session_scope(dash.settings) as session:
        fields = describe(session, dash.settings)
        book = list_contacts(session)
    values = {f.key: f.value for f in fields}
    if typed:
        values.update({k: v for k, v in typed.items() if k in values})
    done = "" if error else request.query_params.get("done", "") == "saved"
    return dash.render(
        request,
        "settings.html",
        status,
        admin=admin,
        fields=fields,
        values=values,
        book=book,
        error=error,
        field=field,
        done=done,
    )


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, admin: Administrator, dash: Dash) -> HTMLResponse:
    """The office's identity, as in effect, in a form."""
    return _page(request, dash, admin)


@router.post("/settings", response_class=HTMLResponse)
@takes(MAX_LOGO_BYTES + FORM_LIMIT, MULTIPART, FORM)
async def save_settings(
    request: Request, admin: Administrator, dash: Dash, queue: AppQueue
) -> Response:
    """Save the form's fields (those not set in the environment) and the logo chosen; the
    page again with the reason, the field marked and what was typed if one is refused."""
    async with request.form() as form:  # closes the upload's temporary file
        return await _save(request, admin, dash, queue, form)


async def _save(
    request: Request, admin: Admin, dash: Dash, queue: LazyQueue, form: FormData
) -> Response:
    dash.check_csrf(request, str(form.get("csrf", "")))
    with session_scope(dash.settings) as session:
        editable = [f.key for f in describe(session, dash.settings) if f.set_by is None]
    changes: dict[str, Any] = {}
    for key in editable:
        if key == "press_contacts":
            changes[key] = [str(v)[:20] for v in form.getlist(key)]
        elif key == "logo":
            if form.get("remove_logo"):
                changes[key] = ""
        elif key in form:
            changes[key] = str(form.get(key, ""))[:MAX_VALUE]
    upload = form.get("logo")
    logo: tuple[str, bytes] | None = None
    if "logo" in editable and isinstance(upload, UploadFile) and upload.filename:
        logo = (upload.filename, await upload.read(MAX_LOGO_BYTES + 1))
    try:
        await run_in_threadpool(
            lambda: actions.update_identity(dash.settings, queue.get(), changes, admin.actor, logo)
        )
    except DistributorError as exc:
        typed = {k: v for k, v in changes.items() if k != "logo"}
        field = getattr(exc, "field", None)
        return _page(request, dash, admin, status_of(exc), str(exc), field, typed)
    return RedirectResponse(f"{PREFIX}/settings?done=saved", status_code=303)
