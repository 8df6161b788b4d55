"""The workspace's correction of a published release (``/admin/releases/ID/correct``): the
editor's fields (``editor.py``, ``editor.html``) prefilled with the published text — title,
dateline, lead, body, press contacts —, the required "What changed" note, and the box that
emails a correction notice to those who received it. The whole release as Markdown with
front matter (pasted, or a file) stays as an alternative; when given, it is used instead of
the fields.

What a correction keeps (language, date, topics, address: the release stays the one its
readers received) is shown, not offered. A refusal — a missing note, a field the release's
rules refuse — comes back on the form with everything typed kept, saying what and where.
Only those who may publish correct (``Can.PUBLISH``).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import Field
from starlette.responses import Response

from distributor import actions
from distributor.core.db import session_scope
from distributor.core.errors import DistributorError, InputError
from distributor.core.models import Release, ReleaseState
from distributor.office.contacts import list_contacts
from distributor.releases.lifecycle import get_release
from distributor.releases.source import MAX_SOURCE_BYTES, ReleaseDraft, parse_release
from distributor.web.admin import (
    PREFIX,
    Admin,
    AdminRoute,
    Dash,
    Dashboard,
    Publisher,
    ReleaseId,
    after,
    language_name,
    local_time,
)
from distributor.web.bodies import FORM, FORM_LIMIT, MULTIPART, takes
from distributor.web.deps import AppQueue
from distributor.web.editor import (
    FORM_LIMITS,
    LINE,
    TEXT,
    ReleaseForm,
    _draft,
    _kept,
    _label,
    _values,
)
from distributor.web.errors import status_of

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=AdminRoute)

NO_NOTE = (
    "note: say in a line what this correction changes (for example “time of the launch was "
    "17:42, now 17:40”): it is shown on the page, in the feeds and in the notice"
)


class CorrectionForm(ReleaseForm):
    """The correction form's fields, as posted: the editor's (of which language, date,
    embargo and topics are not read: a correction keeps them), the note, the notice box,
    and the Markdown alternative."""

    note: str = Field(default="", max_length=LINE)
    notify: bool = False
    source: str = Field(default="", max_length=TEXT)


Posted = Annotated[CorrectionForm, Form()]


def _fixed(release: Release, dash: Dashboard, lang: str) -> list[tuple[str, str]]:
    """What a correction keeps, as the form shows it in the page's ``lang`` (its labels
    are msgids the template translates; read while its session is open; the date in the
    press office's time zone)."""
    return [
        ("Language", language_name(release.language, lang)),
        ("Date", local_time(release.date, dash.zone, lang)),
        ("Topics", ", ".join(t.slug for t in release.topics)),
        ("Address", release.slug),
    ]


def _page(
    request: Request,
    dash: Dashboard,
    admin: Admin,
    release_id: int,
    values: dict[str, Any] | None = None,
    status: int = 200,
    error: str = "",
    field: str | None = None,
    **kept: Any,
) -> Response:
    """The correction form of release ``release_id``: ``values`` as typed (the published
    text when None), ``error`` saying why it was refused. When it is not published (there
    is nothing to correct): its page, with ``error`` when there is one."""
    try:
        with session_scope(dash.settings) as session:
            release = get_release(session, release_id)
            book = list_contacts(session)
            published = _values(release, dash, book)
            fixed = _fixed(release, dash, dash.translator(request).lang)
    except DistributorError as exc:
        return dash.failed(request, admin, release_id, exc)
    if release.state != ReleaseState.PUBLISHED:  # nothing to correct: its page says why
        if error:
            return dash.release_page(request, admin, release_id, status, error)
        return RedirectResponse(f"{PREFIX}/releases/{release_id}", status_code=303)
    return dash.render(
        request,
        "correct.html",
        status,
        admin=admin,
        release=release,
        values=values if values is not None else published,
        book=[(str(c.id), _label(c)) for c in book],
        fixed=fixed,
        error=error,
        field=field,
        theirs=None,
        done="",
        **kept,
    )


@router.get("/releases/{release_id}/correct", response_class=HTMLResponse)
def correct_page(request: Request, release_id: ReleaseId, admin: Publisher, dash: Dash) -> Response:
    """The correction form, filled in with the published text."""
    return _page(request, dash, admin, release_id)


def _source(posted: CorrectionForm, file: UploadFile | None, release_id: int) -> tuple[str, str]:
    """The Markdown alternative given, and its name: a chosen file wins over the text box;
    ("", "") when neither was given. InputError for a file that is not UTF-8."""
    if file is not None and file.filename:
        try:  # parse_release refuses what is longer than MAX_SOURCE_BYTES
            text = file.file.read(MAX_SOURCE_BYTES + 1).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{file.filename}: not UTF-8 text", field="file") from exc
        return text, file.filename
    if posted.source.strip():
        return posted.source, f"release {release_id} correction"
    return "", ""


def _corrected(
    dash: Dashboard, release_id: int, posted: CorrectionForm, source: str, name: str
) -> ReleaseDraft:
    """The corrected release: the Markdown alternative when given, else the form's fields
    with what a correction keeps taken from the release as stored."""
    if source:
        return parse_release(source.replace("\r\n", "\n"), name, dash.settings)
    with session_scope(dash.settings) as session:
        release = get_release(session, release_id)
        stored = _values(release, dash, [])
        kept = _kept(release, with_media=False)  # the form shows no images: they stay
    form = posted.model_dump(include={"title", "dateline", "lead", "body", "contacts", "book"})
    form.update({k: stored[k] for k in ("lang", "date", "embargo", "topics")})
    form.update(images=[], attachments=[])  # replaced by the release's own (``kept``)
    draft: ReleaseDraft = _draft(dash, form, kept)
    return draft


@router.post("/releases/{release_id}/correct", response_class=HTMLResponse, form_limits=FORM_LIMITS)
@takes(3 * MAX_SOURCE_BYTES + FORM_LIMIT, MULTIPART, FORM)  # URL-encoded: 3 bytes a byte
def correct(
    request: Request,
    release_id: ReleaseId,
    admin: Publisher,
    dash: Dash,
    queue: AppQueue,
    posted: Posted,
    file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Correct the release with the form's fields (or the Markdown given instead), with
    its note, emailing a notice to its recipients when asked; its page afterwards. The form
    again, with the reason and everything typed, when refused (a missing note first)."""
    dash.check_csrf(request, posted.csrf)
    try:
        if not posted.note.strip():
            raise InputError(NO_NOTE, field="note")
        source, name = _source(posted, file, release_id)
        draft = _corrected(dash, release_id, posted, source, name)
        actions.correct(
            dash.settings,
            queue.get(),
            release_id,
            draft,
            by=admin.actor,
            notify=posted.notify,
            note=posted.note,
        )
    except DistributorError as exc:
        typed = posted.model_dump(exclude={"csrf", "note", "notify", "source"})
        return _page(
            request,
            dash,
            admin,
            release_id,
            typed,
            status_of(exc),
            str(exc),
            getattr(exc, "field", None),
            note=posted.note,
            notify=posted.notify,
            source=posted.source,
        )
    return after(release_id, "corrected-notified" if posted.notify else "corrected")
