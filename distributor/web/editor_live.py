"""The release editor, live: a preview of what is typed beside the form, and autosave.

- ``POST …/preview`` (``/admin/releases/new/preview``, ``/admin/releases/ID/preview``): the
  form's current values, not saved, rendered as the newsroom page or the email
  (``view=page|email``) by the code that renders the real ones (``actions.preview``). The
  editor's "Preview" button posts the form into the pane's frame (``formtarget``), with or
  without JavaScript; the answer carries a policy of its own (the email's inline styles,
  no script, sandboxed, framed by the workspace only), which a ``srcdoc`` frame could not
  have: it would inherit the workspace's. A form error is shown in the frame (its status
  422), not a crash.
- ``POST …/preview.json``: who it would reach (per language and topic, as the release page
  and the publish step say it: ``_reach.html``), or the form's error; the script shows it
  beside the frame.
- ``POST …/autosave.json``: the form saved as Save does — the same checks, the same version
  check (a draft saved by someone else since answers 409 with their text: never a silent
  overwrite) — answered in JSON: the new ``version``, and for a new release its id and edit
  address (its first autosave creates it). Invalid input is refused (422, saying what and
  where) and stored nowhere: the script keeps it in the browser.

Every route is CSRF-checked and needs ``Can.DRAFT``, like the form itself.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from datetime import tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import Field
from starlette.responses import Response

from distributor import actions
from distributor.actions.preview import DraftPreview, preview_draft
from distributor.core.db import session_scope
from distributor.core.errors import DistributorError, StaleEdit
from distributor.core.models import Release
from distributor.core.slugs import slugify
from distributor.office.contacts import list_contacts
from distributor.releases.lifecycle import get_release
from distributor.releases.source import MAX_SOURCE_BYTES, ReleaseDraft
from distributor.web.admin import (
    CSRF_COOKIE,
    PREFIX,
    Admin,
    AdminRoute,
    Dash,
    Dashboard,
    dashboard_of,
)
from distributor.web.bodies import FORM, FORM_LIMIT, takes
from distributor.web.deps import part
from distributor.web.editor import (
    FORM_LIMITS,
    ReleaseForm,
    ReleaseId,
    Writer,
    _check_media,
    _draft,
    _kept,
    _posted,
    _seen,
    _values,
)
from distributor.web.errors import status_of
from distributor.web.guards import csrf_ok
from distributor.web.headers import EMAIL_PREVIEW_CSP
from distributor.web.pages import Pages

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=AdminRoute)
LIMIT = 3 * MAX_SOURCE_BYTES + FORM_LIMIT  # the editor's form: URL-encoded, 3 bytes a byte
VIEWS = ("page", "email")
# The frame's document: its own styles and images, nothing else; framed by the workspace.
FRAME_HEADERS = {"Content-Security-Policy": EMAIL_PREVIEW_CSP, "X-Frame-Options": "SAMEORIGIN"}


class LiveForm(ReleaseForm):
    """The editor's fields, and which rendering the preview frame shows."""

    view: str = Field(default="page", max_length=10)


Live = Annotated[LiveForm, Form()]
Posted = Annotated[ReleaseForm, Form()]


def _checked(
    dash: Dashboard, admin: Admin, posted: ReleaseForm, kept: dict[str, Any]
) -> ReleaseDraft:
    """The release the posted form describes, with its images and documents (those stored
    already: a file is uploaded by Save or the drop zone, never here), checked as Save
    checks it (``kept``: ``editor._kept``). Raises InputError saying what and where."""
    form, media, damaged = _posted(dash, admin, posted, None)
    _check_media(media, damaged)
    draft: ReleaseDraft = _draft(dash, form, kept)
    return draft


def _previewed(
    request: Request, dash: Dashboard, admin: Admin, posted: ReleaseForm, release_id: int | None
) -> DraftPreview:
    """The posted form previewed (as draft ``release_id``'s new text, or a new release);
    raises what saving it would."""
    kept: dict[str, Any] = {}
    if release_id is not None:
        with session_scope(dash.settings) as session:
            kept = _kept(get_release(session, release_id), posted.media == "1")
    draft = _checked(dash, admin, posted, kept)
    return preview_draft(dash.settings, part(request, Pages).newsroom, draft, release_id)


def _frame(
    request: Request, dash: Dashboard, admin: Admin, posted: LiveForm, release_id: int | None
) -> Response:
    dash.check_csrf(request, posted.csrf)
    try:
        shown = _previewed(request, dash, admin, posted, release_id)
    except DistributorError as exc:
        said = dash.translator(request).say(str(exc))
        html = dash.fragment(request, "preview_error.html", error=said)
        return HTMLResponse(html, status_of(exc), headers=FRAME_HEADERS)
    html = shown.email.html if posted.view == "email" else shown.page
    return HTMLResponse(html, headers=FRAME_HEADERS)


def _refused(request: Request, dash: Dashboard, csrf: str) -> JSONResponse | None:
    """A JSON 403 when ``csrf`` is not the browser's CSRF value; None when it is."""
    if csrf_ok(dash.settings, request.cookies.get(CSRF_COOKIE), csrf):
        return None
    said = dash.translator(request).gettext("This form has expired: reload the page.")
    return JSONResponse({"error": said}, status_code=403)


def _error(request: Request, exc: DistributorError, **more: Any) -> JSONResponse:
    """``exc`` as the JSON answer of a live route: what and where, with its status; what,
    in the workspace's language as far as it translates (editor.js shows it)."""
    said = dashboard_of(request).translator(request).say(str(exc))
    return JSONResponse(
        {"error": said, "field": getattr(exc, "field", None), **more},
        status_code=status_of(exc),
    )


def _summary(
    request: Request, dash: Dashboard, admin: Admin, posted: ReleaseForm, release_id: int | None
) -> JSONResponse:
    refused = _refused(request, dash, posted.csrf)
    if refused is not None:
        return refused
    try:
        shown = _previewed(request, dash, admin, posted, release_id)
    except DistributorError as exc:
        return _error(request, exc)
    reach = shown.reach
    html = dash.fragment(request, "_reach.html", reach=reach, release={"id": release_id or 0})
    return JSONResponse(
        {
            "subject": shown.email.subject,
            "people": reach.people,
            "by_language": {v.language: v.people for v in reach.versions},
            "reach_html": html,
        }
    )


def _saved(release: Release, zone: tzinfo) -> dict[str, Any]:
    """What an autosave answers: the draft's id, its new version (the form sends it with
    the next save), when it was saved (the press office's time) and its edit address."""
    return {
        "id": release.id,
        "version": release.updated_at.isoformat(),
        "saved_at": f"{release.updated_at.astimezone(zone):%H:%M:%S}",
        "edit_url": f"{PREFIX}/releases/{release.id}/edit",
    }


@router.post("/releases/new/preview", response_class=HTMLResponse, form_limits=FORM_LIMITS)
@takes(LIMIT, FORM)
def preview_new(request: Request, admin: Writer, dash: Dash, posted: Live) -> Response:
    """The form of a release not created yet, as its newsroom page or its email."""
    return _frame(request, dash, admin, posted, None)


@router.post("/releases/new/preview.json", form_limits=FORM_LIMITS)
@takes(LIMIT, FORM)
def reach_new(request: Request, admin: Writer, dash: Dash, posted: Posted) -> JSONResponse:
    """Who a release not created yet would reach with the form's language and topics."""
    return _summary(request, dash, admin, posted, None)


@router.post("/releases/new/autosave.json", form_limits=FORM_LIMITS)
@takes(LIMIT, FORM)
def autosave_new(request: Request, admin: Writer, dash: Dash, posted: Posted) -> JSONResponse:
    """Create the draft the form describes (its first autosave): 201 with its id, version
    and edit address; 422 saying what is wrong, nothing stored."""
    refused = _refused(request, dash, posted.csrf)
    if refused is not None:
        return refused
    try:
        draft = _checked(dash, admin, posted, {})
        made = actions.create_release(
            dash.settings, draft, admin.actor, lambda s, r: _saved(r, dash.zone)
        )
    except DistributorError as exc:
        return _error(request, exc)
    return JSONResponse(made, status_code=201)


@router.post("/releases/{release_id}/preview", response_class=HTMLResponse, form_limits=FORM_LIMITS)
@takes(LIMIT, FORM)
def preview_edit(
    request: Request, release_id: ReleaseId, admin: Writer, dash: Dash, posted: Live
) -> Response:
    """Draft ``release_id`` with the form's text, not saved, as its page or its email."""
    return _frame(request, dash, admin, posted, release_id)


@router.post("/releases/{release_id}/preview.json", form_limits=FORM_LIMITS)
@takes(LIMIT, FORM)
def reach_edit(
    request: Request, release_id: ReleaseId, admin: Writer, dash: Dash, posted: Posted
) -> JSONResponse:
    """Who draft ``release_id`` (and its other versions) would reach with the form's
    language and topics."""
    return _summary(request, dash, admin, posted, release_id)


@router.post("/releases/{release_id}/autosave.json", form_limits=FORM_LIMITS)
@takes(LIMIT, FORM)
def autosave_edit(
    request: Request, release_id: ReleaseId, admin: Writer, dash: Dash, posted: Posted
) -> JSONResponse:
    """Save draft ``release_id`` as Save does: 200 with the new version; 409 with their
    text and version when someone saved it since the form's version (nothing
    overwritten); 422 saying what is wrong (nothing stored)."""
    refused = _refused(request, dash, posted.csrf)
    if refused is not None:
        return refused
    try:
        with session_scope(dash.settings) as session:
            stored = get_release(session, release_id)
            kept = _kept(stored, posted.media == "1")
            # A slug made from the title follows the title while autosave stores it half
            # typed: the draft's address is its finished title's, as when Create was pressed.
            if stored.slug == slugify(stored.title):
                del kept["slug"]
        draft = _checked(dash, admin, posted, kept)
        release = actions.update_draft(
            dash.settings, release_id, draft, admin.actor, _seen(posted.version)
        )
    except StaleEdit as exc:
        with session_scope(dash.settings) as session:
            theirs = _values(get_release(session, release_id), dash, list_contacts(session))
        shown = {key: theirs[key] for key in ("title", "lead", "body")}
        return _error(request, exc, theirs=shown, version=theirs["version"])
    except DistributorError as exc:
        return _error(request, exc)
    return JSONResponse(_saved(release, dash.zone))
