"""The workspace's embargo access page (``/admin/accreditations``): the journalists'
requests waiting (oldest first), each with a button that grants it and a form that refuses
it with a reason; the accredited, each with a form that revokes; the latest refusals and
revocations. As ``distributor subscribers accredit`` and the API do.

Each decision goes through ``actions`` (audited), every POST carries the CSRF value, and a
refusal comes back on the page with the reason (422 for a value, 409 for a state). Whoever
manages the audience decides (``Can.AUDIENCE``).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from distributor import actions
from distributor.audience.accreditation import Decision, accreditations
from distributor.core.db import session_scope
from distributor.core.errors import DistributorError
from distributor.core.models import AccreditationStatus
from distributor.core.roles import Can
from distributor.web.admin import MAX_ID, PREFIX, Admin, AdminRoute, Csrf, Dash, allowed
from distributor.web.errors import status_of

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=AdminRoute)
Manager = Annotated[Admin, Depends(allowed(Can.AUDIENCE))]
SubscriberId = Annotated[int, Path(ge=1, le=MAX_ID)]
PAST_SHOWN = 50  # refusals and revocations listed, latest first
# What a redirect after a decision may announce (?done=…): fixed texts, never a parameter.
DONE = {
    Decision.GRANT.value: "Accredited: embargoed advance copies of releases on their topics "
    "will reach them.",
    Decision.REFUSE.value: "Request refused. Their preferences page says so, with the reason.",
    Decision.REVOKE.value: "Accreditation revoked: advance copies no longer reach them.",
}


def _page(
    request: Request, dash: Dash, admin: Admin, status: int = 200, error: str = ""
) -> HTMLResponse:
    with session_scope(dash.settings) as session:
        every = accreditations(session)
    by_status: dict[str, list[object]] = {s.value: [] for s in AccreditationStatus}
    for one in every:
        by_status[one.status].append(one)
    past = [
        a for a in every if a.status in (AccreditationStatus.REFUSED, AccreditationStatus.REVOKED)
    ]
    done = DONE.get(request.query_params.get("done", ""), "")
    return dash.render(
        request,
        "accreditations.html",
        status,
        admin=admin,
        waiting=by_status[AccreditationStatus.REQUESTED],
        granted=by_status[AccreditationStatus.GRANTED],
        past=past[:PAST_SHOWN],
        done="" if error else done,
        error=error,
    )


@router.get("/accreditations", response_class=HTMLResponse)
def accreditations_page(request: Request, admin: Manager, dash: Dash) -> HTMLResponse:
    """The requests waiting, the accredited, the latest refusals and revocations."""
    return _page(request, dash, admin)


@router.post("/accreditations/{subscriber_id}", response_class=HTMLResponse)
def decide(
    request: Request,
    subscriber_id: SubscriberId,
    admin: Manager,
    dash: Dash,
    decision: Annotated[str, Form(max_length=20)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    csrf: Csrf = "",
) -> Response:
    """Grant, refuse or revoke the subscriber's embargo access; the page again, saying so
    (or why not)."""
    dash.check_csrf(request, csrf)
    try:
        chosen = Decision(decision)
    except ValueError:
        return _page(request, dash, admin, 422, f"decision: {decision!r} is not one of grant, "
                     "refuse, revoke")  # fmt: skip
    try:
        actions.decide_accreditation(
            dash.settings, subscriber_id, chosen, admin.actor, reason=reason
        )
    except DistributorError as exc:
        return _page(request, dash, admin, status_of(exc), str(exc))
    return RedirectResponse(f"{PREFIX}/accreditations?done={chosen.value}", status_code=303)
