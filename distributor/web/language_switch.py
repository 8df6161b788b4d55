"""The workspace's language switch (``/admin/language/LANG``): the links "English" and
"Français" in every page's header. Following one keeps the choice in a cookie (path
``/admin``, a year) and brings the browser back to the page it was on; without it the
workspace follows the browser's Accept-Language (workspace_i18n)."""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import RedirectResponse

from distributor.web.admin import PREFIX, AdminRoute, Dash
from distributor.web.workspace_i18n import (
    LANGUAGE_COOKIE,
    LANGUAGE_COOKIE_AGE,
    WORKSPACE_LANGUAGES,
    safe_return,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=AdminRoute)


@router.get("/language/{lang}")
def choose_language(
    dash: Dash,
    lang: Annotated[str, Path(max_length=20)],
    next: Annotated[str, Query(max_length=2000)] = PREFIX,
) -> RedirectResponse:
    """Back to ``next`` (a page of the workspace; the dashboard for anything else), the
    workspace in ``lang`` from now on in this browser. An unknown language changes
    nothing. Open to anyone: the login page has the switch too, and a choice of language
    is no action on anything (a link, so it works without JavaScript; no CSRF to carry)."""
    response = RedirectResponse(safe_return(next, PREFIX), status_code=303)
    if lang in WORKSPACE_LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE,
            lang,
            max_age=LANGUAGE_COOKIE_AGE,
            path=PREFIX,
            httponly=True,
            samesite="lax",
            secure=dash.secure,
        )
    return response
