"""The workspace's accounts page (``/admin/accounts``, admins only): the people and their
roles, invitations not yet accepted, and the form that invites someone; and the page an
invitation's link opens (``/admin/invitation/TOKEN``), where the person chooses a password.

Each action goes through ``actions`` (audited); refusals come back on the page with the
reason (422 for a value, 409 for a state, as everywhere). Built on the dashboard's
``Dashboard`` (templates, CSRF, the session cookie).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from distributor import actions
from distributor.core.db import session_scope
from distributor.core.errors import DistributorError
from distributor.core.roles import Can, Role
from distributor.core.tokens import InvalidToken
from distributor.office.accounts import MAX_PASSWORD, list_users
from distributor.office.invitations import open_invitation, pending_invitations
from distributor.web.admin import (
    MAX_ID,
    PREFIX,
    Admin,
    AdminRoute,
    Csrf,
    Dash,
    allowed,
)
from distributor.web.deps import AppQueue
from distributor.web.errors import status_of

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=AdminRoute)
Manager = Annotated[Admin, Depends(allowed(Can.ACCOUNTS))]
Email = Annotated[str, Form(max_length=400)]
ROLES = [r.value for r in Role]
# What a redirect after an action may announce (?done=…): fixed texts, never a parameter.
DONE = {
    "invited": "Invitation sent.",
    "role": "Role changed: it applies from their next click.",
    "disabled": "Disabled: their sessions have ended and their tokens stopped.",
    "enabled": "Enabled: they can log in again.",
    "uninvited": "Invitation cancelled: its link no longer works.",
}


def _page(
    request: Request,
    dash: Dash,
    admin: Admin,
    status: int = 200,
    error: str = "",
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    with session_scope(dash.settings) as session:
        users = list_users(session)
        invitations = pending_invitations(session)
    done = DONE.get(request.query_params.get("done", ""), "")
    return dash.render(
        request,
        "accounts.html",
        status,
        admin=admin,
        users=users,
        invitations=invitations,
        roles=ROLES,
        done="" if error else done,
        error=error,
        form=form or {"role": Role.WRITER.value},
    )


def _done(what: str) -> RedirectResponse:
    return RedirectResponse(f"{PREFIX}/accounts?done={what}", status_code=303)


@router.get("/accounts", response_class=HTMLResponse)
def accounts_page(request: Request, admin: Manager, dash: Dash) -> HTMLResponse:
    """The people, their roles, the invitations pending, and the invite form."""
    return _page(request, dash, admin)


@router.post("/accounts/invite", response_class=HTMLResponse)
def invite(
    request: Request,
    admin: Manager,
    dash: Dash,
    queue: AppQueue,
    email: Email = "",
    name: Annotated[str, Form(max_length=400)] = "",
    role: Annotated[str, Form(max_length=40)] = "",
    csrf: Csrf = "",
) -> Response:
    """Invite the address with the role; the page again with the reason if refused."""
    dash.check_csrf(request, csrf)
    try:
        actions.invite(dash.settings, queue.get(), email, role, admin.actor, name=name)
    except DistributorError as exc:
        form = {"email": email, "name": name, "role": role}
        return _page(request, dash, admin, status_of(exc), str(exc), form)
    return _done("invited")


def _act(request: Request, admin: Admin, dash: Dash, csrf: str, act: Any, done: str) -> Response:
    dash.check_csrf(request, csrf)
    try:
        act()
    except DistributorError as exc:
        return _page(request, dash, admin, status_of(exc), str(exc))
    return _done(done)


@router.post("/accounts/role", response_class=HTMLResponse)
def change_role(
    request: Request,
    admin: Manager,
    dash: Dash,
    email: Email = "",
    role: Annotated[str, Form(max_length=40)] = "",
    csrf: Csrf = "",
) -> Response:
    """Give the account the role (from its next request)."""
    s = dash.settings
    return _act(
        request,
        admin,
        dash,
        csrf,
        lambda: actions.set_user_role(s, email, role, admin.actor),
        "role",
    )


@router.post("/accounts/disable", response_class=HTMLResponse)
def disable(
    request: Request, admin: Manager, dash: Dash, email: Email = "", csrf: Csrf = ""
) -> Response:
    """Disable the account: its sessions end, its tokens stop."""
    s = dash.settings
    return _act(
        request, admin, dash, csrf, lambda: actions.disable_user(s, email, admin.actor), "disabled"
    )


@router.post("/accounts/enable", response_class=HTMLResponse)
def enable(
    request: Request, admin: Manager, dash: Dash, email: Email = "", csrf: Csrf = ""
) -> Response:
    """Let the account log in again."""
    s = dash.settings
    return _act(
        request, admin, dash, csrf, lambda: actions.enable_user(s, email, admin.actor), "enabled"
    )


@router.post("/accounts/invitations/{invitation_id}/cancel", response_class=HTMLResponse)
def cancel(
    request: Request,
    invitation_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    admin: Manager,
    dash: Dash,
    csrf: Csrf = "",
) -> Response:
    """Cancel a pending invitation: its link stops working."""
    s = dash.settings
    return _act(
        request,
        admin,
        dash,
        csrf,
        lambda: actions.cancel_invitation(s, invitation_id, admin.actor),
        "uninvited",
    )


# --- the invitation's link: open to anyone who has it -----------------------------------


Token = Annotated[str, Path(max_length=400)]


def _invitation_page(
    request: Request, dash: Dash, token: str, status: int = 200, error: str = ""
) -> HTMLResponse:
    try:
        with session_scope(dash.settings) as session:
            invitation = open_invitation(session, dash.settings, token)
    except InvalidToken as exc:
        invitation, status, error = None, status_of(exc), str(exc)
    return dash.render(
        request,
        "invitation.html",
        status,
        admin=None,
        invitation=invitation,
        token=token,
        error=error,
    )


@router.get("/invitation/{token}", response_class=HTMLResponse)
def invitation_page(request: Request, token: Token, dash: Dash) -> HTMLResponse:
    """The form where the invited person chooses a password; 410 for a link that no
    longer works (replaced, cancelled, accepted, expired), saying which."""
    return _invitation_page(request, dash, token)


@router.post("/invitation/{token}", response_class=HTMLResponse)
def accept(
    request: Request,
    token: Token,
    dash: Dash,
    password: Annotated[str, Form(max_length=MAX_PASSWORD)] = "",
    csrf: Csrf = "",
) -> Response:
    """Make the account with the password, log it in, and open the dashboard; the form
    again with the reason if the password is refused."""
    dash.check_csrf(request, csrf)
    try:
        value = actions.accept_invitation(dash.settings, token, password)
    except DistributorError as exc:
        return _invitation_page(request, dash, token, status_of(exc), str(exc))
    return dash.logged_in(value)
