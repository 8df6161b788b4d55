"""The workspace's editor (``/admin/releases/new``, ``/admin/releases/ID/edit``): a release
written in a form — title, language, date, dateline, lead, body in Markdown, topics, press
contacts, embargo, images and documents — with no YAML to learn; and deleting a draft,
which frees its slug.

The form is multipart: its file field uploads images and documents as it is saved (the
rows, alt texts, credits and titles: ``editor_media``). Files that are stored stay on the
form even when the save is refused, so nothing uploaded is lost either.

Press contacts are ticked in the office's address book (``office.contacts``) or typed, one
a line, for a one-off; the release stores a copy of each (the book may change later). A
draft's contacts that are, field for field, entries of the book show ticked.

The form's fields are checked as a release file's front matter is
(``source.draft_from_mapping``), and a refusal comes back on the form with everything typed
kept, saying what and where. A draft opened by two people is never silently overwritten:
the form carries the draft's ``updated_at`` as it was when opened, and a save finding
another one since answers 409 with both texts side by side (``StaleEdit``).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import Field
from starlette.responses import Response

from distributor import actions
from distributor.core.db import read_scope, session_scope
from distributor.core.errors import DistributorError, InputError, StaleEdit
from distributor.core.models import PressContact, Release, ReleaseState
from distributor.core.roles import Can
from distributor.office.contacts import chosen_contacts, list_contacts
from distributor.office.identity import identity
from distributor.releases.documents import MAX_DOCUMENT_BYTES
from distributor.releases.lifecycle import get_release
from distributor.releases.source import MAX_SOURCE_BYTES, draft_from_mapping
from distributor.releases.topics import list_topics
from distributor.web.admin import (
    DONE,
    MAX_ID,
    PREFIX,
    Admin,
    AdminRoute,
    Csrf,
    Dash,
    Dashboard,
    allowed,
    parse_local,
)
from distributor.web.bodies import FORM, FORM_LIMIT, MULTIPART, takes
from distributor.web.editor_media import (
    ACCEPT,
    UPLOAD_OVERHEAD,
    Files,
    Media,
    MediaFields,
    check_described,
    check_files,
    document_row,
    for_release,
    image_row,
    posted_media,
    store_files,
)
from distributor.web.errors import status_of

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=AdminRoute)
Writer = Annotated[Admin, Depends(allowed(Can.DRAFT))]
ReleaseId = Annotated[int, Path(ge=1, le=MAX_ID)]
TEXT, LINE = MAX_SOURCE_BYTES, 600  # the longest value a field takes, in characters
# The form: its text (URL-encoded, up to 3 bytes a character), and files up to the largest
# document. A set of files larger than that is refused before it is read (413).
FORM_MAX = 3 * MAX_SOURCE_BYTES + FORM_LIMIT + MAX_DOCUMENT_BYTES + UPLOAD_OVERHEAD
TOO_LARGE = (
    f"the files chosen are larger than {MAX_DOCUMENT_BYTES // 1_048_576} MiB in all, the most "
    "the release form takes at once: nothing was saved or uploaded. Go back (the form still "
    "has what you typed) and choose fewer files, or drop them on the form one at a time."
)
# A text field of the form may hold the whole body (starlette's default is 1 MiB).
FORM_LIMITS: Any = {"max_part_size": 3 * MAX_SOURCE_BYTES}
TEXT_FIELDS = (
    *("title", "lang", "date", "dateline", "lead", "body", "contacts", "embargo"),
    *("topics", "book", "version"),
)


class ReleaseForm(MediaFields):
    """The release form's fields, as posted (checked afterwards, with the release's rules);
    its images and documents: ``MediaFields``."""

    title: str = Field(default="", max_length=LINE)
    lang: str = Field(default="", max_length=LINE)
    date: str = Field(default="", max_length=LINE)
    dateline: str = Field(default="", max_length=LINE)
    lead: str = Field(default="", max_length=TEXT)
    body: str = Field(default="", max_length=TEXT)
    contacts: str = Field(default="", max_length=TEXT)
    embargo: str = Field(default="", max_length=LINE)
    topics: list[str] = Field(default_factory=list)
    # The ids of the address book's entries ticked (strings: a forged one is refused by
    # ``_book_ids``, naming the field, not by the parsing).
    book: list[Annotated[str, Field(max_length=LINE)]] = Field(default_factory=list)
    version: str = Field(default="", max_length=LINE)
    csrf: str = Field(default="", max_length=LINE)


Posted = Annotated[ReleaseForm, Form()]


def contacts_text(contacts: list[dict[str, str]]) -> str:
    """Press contacts as the form shows them: one a line, ``Name; Role; Phone; Email``."""
    keys = ("name", "role", "phone", "email")
    return "\n".join("; ".join(c.get(k, "") for k in keys).rstrip("; ") for c in contacts)


def _contacts(text: str) -> list[dict[str, str]]:
    keys = ("name", "role", "phone", "email")
    found = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(";")]
        if any(parts):
            if len(parts) > len(keys):
                raise InputError(
                    f"contacts: {line.strip()!r} has more than four parts "
                    "(Name; Role; Phone; Email)",
                    field="contacts",
                )
            found.append({k: v for k, v in zip(keys, parts, strict=False) if v})
    return found


def _book_ids(values: list[str]) -> list[int]:
    """The address book's ids ticked in the form, each once, in the order given;
    InputError (field ``book``) for one that is not an id."""
    ids: list[int] = []
    for value in values:
        if not value.isdigit() or not 1 <= int(value) <= MAX_ID:
            raise InputError(f"book: {value[:20]!r} is not a press contact's id", field="book")
        if int(value) not in ids:
            ids.append(int(value))
    return ids


def _split_contacts(
    contacts: list[dict[str, str]], book: list[PressContact]
) -> tuple[list[str], list[dict[str, str]]]:
    """A draft's ``contacts`` as the form shows them: the ids of the book's entries among
    them (each ticked once), and the others (typed lines)."""
    entries = [(str(entry.id), entry.fields()) for entry in book]
    ticked: list[str] = []
    typed = []
    for contact in contacts:
        given = {key: value for key, value in contact.items() if value}  # "" is no value
        match = next((i for i, f in entries if f == given and i not in ticked), None)
        if match is None:
            typed.append(contact)
        else:
            ticked.append(match)
    return ticked, typed


def _values(release: Release, dash: Dashboard, book: list[PressContact]) -> dict[str, Any]:
    """The form's values for a stored draft (``book``: the address book's entries)."""
    zone = dash.zone
    ticked, typed = _split_contacts(release.contacts, book)
    return {
        "title": release.title,
        "lang": release.language,
        "date": f"{release.date.astimezone(zone):%Y-%m-%dT%H:%M}",
        "dateline": release.dateline,
        "lead": release.lead,
        "body": release.body_text,
        "contacts": contacts_text(typed),
        "book": ticked,
        "embargo": f"{release.embargo_at.astimezone(zone):%Y-%m-%dT%H:%M}"
        if release.embargo_at
        else "",
        "topics": [t.slug for t in release.topics],
        "version": release.updated_at.isoformat(),
        "images": [dict(image) for image in release.images or []],
        "attachments": [dict(attachment) for attachment in release.attachments or []],
    }


def _kept(release: Release, with_media: bool) -> dict[str, Any]:
    """What the form does not show of a stored draft, which a save keeps as it is (read
    while its database session is open); its images and documents too for a form
    without them (``with_media`` False: rendered before the form had them)."""
    kept: dict[str, Any] = {"slug": release.slug}
    if not with_media:
        kept.update(images=release.images, attachments=release.attachments)
    if release.translation_of is not None:
        kept["translation_of"] = release.translation_of.slug
    return kept


def _draft(dash: Dashboard, form: dict[str, Any], kept: dict[str, Any]) -> Any:
    """The release the form describes (and ``kept``: see ``_kept``), checked
    (ReleaseInputError naming the field)."""
    zone = dash.zone
    ids = _book_ids(form["book"])
    with session_scope(dash.settings) as session:
        chosen = chosen_contacts(session, ids) if ids else []
    data: dict[str, Any] = {
        "title": form["title"],
        "lang": form["lang"],
        "topics": form["topics"],
        "date": parse_local(form["date"], zone, "date") if form["date"].strip() else None,
        "embargo": parse_local(form["embargo"], zone, "embargo")
        if form["embargo"].strip()
        else None,
        "dateline": form["dateline"],
        "lead": form["lead"] or None,
        "contacts": chosen + _contacts(form["contacts"]),
        "images": for_release(form["images"]),
        "attachments": for_release(form["attachments"]),
        **kept,
    }
    return draft_from_mapping(data, form["body"], "release", dash.settings)


def _label(contact: PressContact) -> str:
    """How the form names an entry of the address book: its name and role, and how to
    reach them (two people may share a name)."""
    return " — ".join(filter(None, (contact.name, contact.role, contact.email or contact.phone)))


def _page(
    request: Request,
    dash: Dashboard,
    admin: Admin,
    values: dict[str, Any],
    release: Release | None = None,
    status: int = 200,
    error: str = "",
    field: str | None = None,
    theirs: dict[str, Any] | None = None,
    done: str = "",
    uploaded: list[str] | None = None,
) -> HTMLResponse:
    with session_scope(dash.settings) as session:
        shown_in = dash.translator(request).lang  # topics named in the page's language
        topics = [(t.slug, t.name(shown_in)) for t in list_topics(session)]
        book = [(str(c.id), _label(c)) for c in list_contacts(session)]
    return dash.render(
        request,
        "editor.html",
        status,
        admin=admin,
        release=release,
        values=values,
        topics=topics,
        book=book,
        languages=dash.settings.languages,
        error=error,
        field=field,
        theirs=theirs,
        done=done,
        image_rows=[image_row(i, image) for i, image in enumerate(values.get("images", []))],
        document_rows=[document_row(i, a) for i, a in enumerate(values.get("attachments", []))],
        uploaded=uploaded or [],
        accept=ACCEPT,
        max_bytes=MAX_DOCUMENT_BYTES,
    )


def _seen(version: str) -> datetime | None:
    """The draft's ``updated_at`` when the form was opened (None: a form from before)."""
    try:
        return datetime.fromisoformat(version) if version else None
    except ValueError as exc:
        raise InputError("the form is damaged: open the draft again") from exc


def _posted(
    dash: Dashboard, admin: Admin, posted: ReleaseForm, files: list[UploadFile | str] | None
) -> tuple[dict[str, Any], Media, InputError | None]:
    """The form's values as posted, its images and documents with the files chosen stored
    (``editor_media.store_files``), and why its rows cannot be read, if they cannot (the
    files are stored all the same: nothing uploaded is lost)."""
    form = posted.model_dump(include=set(TEXT_FIELDS))
    damaged = None
    try:
        media = posted_media(posted)
    except InputError as exc:
        media, damaged = Media(), exc
    store_files(dash.settings, files, admin.actor, media)
    form.update(images=media.images, attachments=media.attachments)
    return form, media, damaged


def _check_media(media: Media, damaged: InputError | None) -> None:
    """InputError for rows that cannot be read, a file refused, or an image without its
    alt text or credit."""
    if damaged is not None:
        raise damaged
    check_files(media)
    check_described(media.images)


@router.get("/releases/new", response_class=HTMLResponse)
def new_page(request: Request, admin: Writer, dash: Dash) -> HTMLResponse:
    """An empty release form (the date: now, in the press office's time zone), with the
    office's default press contacts (the settings page's) ticked."""
    now = datetime.now(UTC).astimezone(dash.zone)
    with read_scope(dash.settings) as session:
        defaults = identity(session, dash.settings).press_contacts
    values = {
        "lang": dash.settings.languages[0],
        "date": f"{now:%Y-%m-%dT%H:%M}",
        "topics": [],
        "book": [str(i) for i in defaults],
        "images": [],
        "attachments": [],
    }
    return _page(request, dash, admin, values)


@router.post("/releases/new", response_class=HTMLResponse, form_limits=FORM_LIMITS)
@takes(FORM_MAX, MULTIPART, FORM, too_large=TOO_LARGE)
def create(
    request: Request, admin: Writer, dash: Dash, posted: Posted, files: Files = None
) -> Response:
    """Store the form as a new draft, with the files chosen; its page. The form again,
    with the reason, what was typed and the files stored, if refused."""
    dash.check_csrf(request, posted.csrf)
    form, media, damaged = _posted(dash, admin, posted, files)
    try:
        _check_media(media, damaged)
        draft = _draft(dash, form, {})
        made = actions.create_release(dash.settings, draft, admin.actor, lambda s, r: {"id": r.id})
    except DistributorError as exc:
        field = getattr(exc, "field", None)
        return _page(
            request, dash, admin, form, None, status_of(exc), str(exc), field,
            uploaded=media.uploaded,
        )  # fmt: skip
    release_id = made["id"] if isinstance(made, dict) else 0
    return RedirectResponse(f"{PREFIX}/releases/{release_id}?done=created", status_code=303)


@router.get("/releases/{release_id}/edit", response_class=HTMLResponse)
def edit_page(request: Request, release_id: ReleaseId, admin: Writer, dash: Dash) -> Response:
    """The form of a draft, filled in; a message for a release that is not a draft."""
    try:
        with session_scope(dash.settings) as session:
            release = get_release(session, release_id)
            values = _values(release, dash, list_contacts(session))
    except DistributorError as exc:
        return dash.failed(request, admin, release_id, exc)
    if release.state != ReleaseState.DRAFT:
        return RedirectResponse(f"{PREFIX}/releases/{release_id}", status_code=303)
    done = DONE.get(request.query_params.get("done", ""), "")
    return _page(request, dash, admin, values, release, done=done)


@router.post("/releases/{release_id}/edit", response_class=HTMLResponse, form_limits=FORM_LIMITS)
@takes(FORM_MAX, MULTIPART, FORM, too_large=TOO_LARGE)
def save(
    request: Request,
    release_id: ReleaseId,
    admin: Writer,
    dash: Dash,
    posted: Posted,
    files: Files = None,
) -> Response:
    """Save the draft, with the files chosen, unless someone saved it since it was
    opened: then both texts, side by side (409), and nothing overwritten. The form again
    with the reason (and the files stored) if refused."""
    dash.check_csrf(request, posted.csrf)
    version = posted.version
    try:
        with session_scope(dash.settings) as session:
            release = get_release(session, release_id)
            kept = _kept(release, posted.media == "1")
    except DistributorError as exc:
        return dash.failed(request, admin, release_id, exc)
    form, media, damaged = _posted(dash, admin, posted, files)
    try:
        _check_media(media, damaged)
        draft = _draft(dash, form, kept)
        actions.update_draft(dash.settings, release_id, draft, admin.actor, _seen(version))
    except StaleEdit as exc:
        with session_scope(dash.settings) as session:
            release = get_release(session, release_id)
            theirs = _values(release, dash, list_contacts(session))
        form["version"] = theirs["version"]  # saving again overwrites, knowingly
        return _page(
            request, dash, admin, form, release, 409, str(exc), None, theirs,
            uploaded=media.uploaded,
        )  # fmt: skip
    except DistributorError as exc:
        field = getattr(exc, "field", None)
        return _page(
            request, dash, admin, form, release, status_of(exc), str(exc), field,
            uploaded=media.uploaded,
        )  # fmt: skip
    return RedirectResponse(f"{PREFIX}/releases/{release_id}?done=saved", status_code=303)


@router.post("/releases/{release_id}/delete", response_class=HTMLResponse)
def delete(
    request: Request, release_id: ReleaseId, admin: Writer, dash: Dash, csrf: Csrf = ""
) -> Response:
    """Delete a draft (its slug is free again); the dashboard, saying so."""
    return dash.act(
        request, admin, release_id, csrf, actions.delete_draft, f"{PREFIX}?done=deleted"
    )
