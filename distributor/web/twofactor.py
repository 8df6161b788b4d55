"""Two-factor login in the workspace (office/totp.py): the page that asks for the one-time
code after a good password (``/admin/login/code``), and the page where a person sets it up
(``/admin/account/2fa``: a QR code for their app, then a code it made). With
``DISTRIBUTOR_REQUIRE_TOTP``, a publisher or an admin who has not set it up is sent to that
page by every other page until they do.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from distributor import actions
from distributor.core.db import session_scope
from distributor.core.errors import DistributorError, Forbidden, TooManyAttempts, Unauthorized
from distributor.core.models import User
from distributor.core.roles import Can
from distributor.office.totp import must_enrol, provisioning_uri, qr_svg
from distributor.web.admin import (
    CODE_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    Admin,
    AdminRoute,
    Csrf,
    Dash,
    LoggedIn,
)
from distributor.web.errors import status_of
from distributor.web.rights import declare

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=AdminRoute)
Code = Annotated[str, Form(max_length=40)]


def _person(admin: LoggedIn) -> Admin:
    """The person logged in with a password (a token's session has no account to set up)."""
    if admin.user_id is None:
        raise Forbidden("two-factor login belongs to an account: log in with your address")
    return admin


# Every role may set it up: the right every role has, without the redirect to this page.
Person = Annotated[Admin, Depends(declare(_person, Can.DRAFT))]


@router.get("/login/code", response_class=HTMLResponse)
def code_page(request: Request, dash: Dash) -> Response:
    """The form for the one-time code; the login form when no password was just checked."""
    if not request.cookies.get(CODE_COOKIE):
        return RedirectResponse(f"{PREFIX}/login", status_code=303)
    return dash.render(request, "login_code.html", admin=None, error="")


@router.post("/login/code", response_class=HTMLResponse)
def code(request: Request, dash: Dash, code: Code = "", csrf: Csrf = "") -> Response:
    """The session, once the code is right; the form again, saying why, otherwise (429
    with Retry-After while the account or the address is throttled)."""
    dash.check_csrf(request, csrf)
    step = request.cookies.get(CODE_COOKIE, "")
    address = request.client.host if request.client else ""
    ended = request.cookies.get(SESSION_COOKIE, "")
    try:
        value = actions.log_in_with_code(dash.settings, step, code, address, ended)
    except Unauthorized as exc:
        said = str(exc)
        page = dash.render(
            request,
            "login_code.html",
            status_of(exc),
            admin=None,
            error=said[:1].upper() + said[1:] + ".",
        )
        if isinstance(exc, TooManyAttempts):
            page.headers["Retry-After"] = str(exc.retry_after)
        return page
    response = dash.logged_in(value)
    response.delete_cookie(CODE_COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


def _setup_page(
    request: Request, dash: Dash, admin: Admin, status: int = 200, error: str = ""
) -> HTMLResponse:
    with session_scope(dash.settings) as session:
        user = session.get_one(User, admin.user_id)
        pending = user.totp_secret if user.totp_enabled_at is None else None
        uri = provisioning_uri(dash.settings, user) if pending else None
        required = must_enrol(dash.settings, user)
    return dash.render(
        request,
        "twofactor.html",
        status,
        admin=admin,
        qr=qr_svg(uri) if uri else None,
        secret=pending,
        error=error,
        required=required,
    )


@router.get("/account/2fa", response_class=HTMLResponse)
def setup_page(request: Request, admin: Person, dash: Dash) -> HTMLResponse:
    """Two-factor login: on, or the QR code of a key being set up, or the button to start."""
    return _setup_page(request, dash, admin)


@router.post("/account/2fa/start", response_class=HTMLResponse)
def start(request: Request, admin: Person, dash: Dash, csrf: Csrf = "") -> Response:
    """A new key for the person's app (replacing one not yet confirmed)."""
    dash.check_csrf(request, csrf)
    assert admin.user_id is not None  # _person
    try:
        actions.start_totp(dash.settings, admin.user_id)
    except DistributorError as exc:
        return _setup_page(request, dash, admin, status_of(exc), str(exc))
    return RedirectResponse(f"{PREFIX}/account/2fa", status_code=303)


@router.post("/account/2fa", response_class=HTMLResponse)
def confirm(
    request: Request, admin: Person, dash: Dash, code: Code = "", csrf: Csrf = ""
) -> Response:
    """Turn two-factor login on with a code of the new key; then the dashboard."""
    dash.check_csrf(request, csrf)
    assert admin.user_id is not None  # _person
    try:
        actions.confirm_totp(dash.settings, admin.user_id, code)
    except DistributorError as exc:
        return _setup_page(request, dash, admin, status_of(exc), str(exc))
    return RedirectResponse(f"{PREFIX}/account/2fa", status_code=303)
