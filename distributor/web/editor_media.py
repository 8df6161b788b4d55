"""The release form's images and documents (``editor``): the rows it shows and posts back,
the files chosen in its file field, and ``POST /admin/uploads``, where the form's script
(``uploads.js``) sends each file dropped on the form, at once.

A row carries what is stored of its file in a hidden field (JSON: an image's ``src``,
``email_src``, ``href``, ``type``, ``length``, ``width`` and ``height``; a document's
``href``, ``type`` and ``length``; and, while the form is open, the upload's ``name``, for
the messages) beside what the writer types: an image's alt text and credit, a document's
title. None of it is trusted: saving checks every field by the release's rules
(``source.Image``, ``source.Attachment``), as for a release file.

The first image is the lead: the email and the release page show it first, and the feeds
offer it as the enclosure. Choosing another lead in the form moves that image first.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

import hashlib
import json
import posixpath
from dataclasses import dataclass, field
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from distributor import actions
from distributor.core.config import Settings
from distributor.core.errors import InputError
from distributor.core.formats import file_details
from distributor.core.roles import Can
from distributor.releases.documents import MAX_DOCUMENT_BYTES, attachment_title
from distributor.releases.media import StoredImage, display_name, megabytes
from distributor.web.admin import (
    CSRF_COOKIE,
    EXPIRED_FORM,
    PREFIX,
    Admin,
    AdminRoute,
    Dash,
    allowed,
    dashboard_of,
)
from distributor.web.bodies import MULTIPART, takes
from distributor.web.guards import csrf_ok

MAX_ROWS: Final = 100  # images, and documents, one form carries
ROW_MAX: Final = (
    16 * 1024
)  # characters of a row's hidden field: three links of 2,000 and a few numbers
TEXT_MAX: Final = 600  # an alt text (500), a credit (200), a title (300), with room
UPLOAD_OVERHEAD: Final = 64 * 1024  # the multipart framing around a dropped file
# What the file field and the drop zone take (the content decides: ``actions.upload_file``).
ACCEPT: Final = (
    "image/jpeg,image/png,image/webp,image/gif,.jpg,.jpeg,.png,.webp,.gif,"
    ".pdf,.docx,.xlsx,.pptx,.odt,.ods,.odp"
)
DAMAGED: Final = "the form's images and documents are damaged: open the draft again"

Text = Annotated[str, Field(max_length=TEXT_MAX)]
Hidden = Annotated[str, Field(max_length=ROW_MAX)]


class MediaFields(BaseModel):
    """The form's images and documents part, as posted: parallel lists, one item a row."""

    # "1" when the form has this part (a form rendered before it had none: the draft's
    # images and documents are then kept as stored).
    media: str = Field(default="", max_length=1)
    image: list[Hidden] = Field(default_factory=list, max_length=MAX_ROWS)
    image_alt: list[Text] = Field(default_factory=list, max_length=MAX_ROWS)
    image_credit: list[Text] = Field(default_factory=list, max_length=MAX_ROWS)
    lead_image: Hidden = ""  # the ``src`` of the image chosen as the lead
    image_remove: list[Hidden] = Field(default_factory=list, max_length=MAX_ROWS)
    document: list[Hidden] = Field(default_factory=list, max_length=MAX_ROWS)
    document_title: list[Text] = Field(default_factory=list, max_length=MAX_ROWS)
    document_remove: list[Hidden] = Field(default_factory=list, max_length=MAX_ROWS)


# A form's file field: an UploadFile each file chosen; a browser sends an empty part (a
# ``str``) when none is.
Files = Annotated[list[UploadFile | str] | None, File()]


@dataclass
class Media:
    """A form's images and documents, as its next page shows them and a save stores them
    (each entry a release's ``images`` or ``attachments`` entry, with the form's ``name``),
    the names of the files stored by this request and what was refused of them."""

    images: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, stored: Any, filename: str) -> str:
        """Add the row of a file just stored (``actions.upload_file``'s answer) unless the
        form has it already; "image" or "document", what it was stored as."""
        name = display_name(filename)
        if isinstance(stored, StoredImage):
            image = {**stored.image_fields(), "alt": "", "credit": "", "name": name}
            if all(i.get("src") != image["src"] for i in self.images):
                self.images.append(image)
            return "image"
        title = attachment_title(None, filename)
        attachment = {**stored.attachment_fields(title), "name": name}
        if all(a.get("href") != attachment["href"] for a in self.attachments):
            self.attachments.append(attachment)
        return "document"


def _rows(hidden: list[str], texts: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The entries of one list of rows: each hidden field's JSON with the row's texts
    (``texts``: a field name of the entry → the posted values, one a row). InputError
    when the lists do not pair up or a hidden field is not an object of plain values."""
    if any(len(values) != len(hidden) for values in texts.values()):
        raise InputError(DAMAGED, field="images")
    entries = []
    for index, value in enumerate(hidden):
        try:
            entry = json.loads(value)
        except ValueError as exc:
            raise InputError(DAMAGED, field="images") from exc
        plain = (str, int, float, bool, type(None))
        if not isinstance(entry, dict) or not all(isinstance(v, plain) for v in entry.values()):
            raise InputError(DAMAGED, field="images")
        entry.update({key: values[index].strip() for key, values in texts.items()})
        entries.append(entry)
    return entries


def posted_media(posted: MediaFields) -> Media:
    """The images and documents ``posted``: the rows marked "remove" left out, the image
    chosen as the lead first. InputError (``DAMAGED``) for rows that cannot be read."""
    texts = {"alt": posted.image_alt, "credit": posted.image_credit}
    images = [
        entry for entry in _rows(posted.image, texts) if entry.get("src") not in posted.image_remove
    ]
    lead = next((i for i, entry in enumerate(images) if entry.get("src") == posted.lead_image), 0)
    images[:0] = images[lead : lead + 1] if lead else []
    if lead:
        del images[lead + 1]
    attachments = [
        entry
        for entry in _rows(posted.document, {"title": posted.document_title})
        if entry.get("href") not in posted.document_remove
    ]
    return Media(images, attachments)


def store_files(
    settings: Settings, files: list[UploadFile | str] | None, by: str, media: Media
) -> None:
    """Store each file chosen (``actions.upload_file``) and add its row to ``media``; one
    that is refused is named in ``media.problems`` (field ``files``), and the others are
    stored all the same."""
    for upload in files or []:
        if isinstance(upload, str) or not upload.filename:
            continue  # the field left empty
        name = display_name(upload.filename)
        data = upload.file.read(MAX_DOCUMENT_BYTES + 1)
        if len(data) > MAX_DOCUMENT_BYTES:
            media.problems.append(
                f"files: {name}: more than the {megabytes(MAX_DOCUMENT_BYTES)} a file may have"
            )
            continue
        try:
            media.add(actions.upload_file(settings, data, upload.filename, by), upload.filename)
        except InputError as exc:
            media.problems.append(f"files: {exc}")
        else:
            media.uploaded.append(name)


def check_files(media: Media) -> None:
    """InputError (field ``files``) naming each file refused, if any was."""
    if media.problems:
        raise InputError("; ".join(media.problems), field="files")


def check_described(images: list[dict[str, Any]]) -> None:
    """InputError naming the image and the field, for the first image without an alt text
    or a credit (the release's rules want an alt text; the press office, a credit too: a
    journalist may not print a photo without one)."""
    for index, image in enumerate(images):
        which = f"image {index + 1}" + (f" ({image['name']})" if image.get("name") else "")
        if not str(image.get("alt") or "").strip():
            raise InputError(
                f"images.{index}.alt: {which} has no alt text: say what it shows, for those "
                "who cannot see it",
                field=f"images.{index}.alt",
            )
        if not str(image.get("credit") or "").strip():
            raise InputError(
                f"images.{index}.credit: {which} has no credit: name who took it or owns it "
                "(the photographer, the agency)",
                field=f"images.{index}.credit",
            )


def for_release(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``entries`` as a release stores them: without the form's ``name``."""
    return [{k: v for k, v in entry.items() if k != "name"} for entry in entries]


@dataclass(frozen=True)
class Row:
    """A row of the form, as its template shows it."""

    index: int
    key: str  # stable while the form is open: the HTML ids of its fields
    name: str
    hidden: str  # the JSON of its hidden field
    entry: dict[str, Any]
    details: str  # "JPEG, 1.2 MB"
    thumbnail: str  # a site path the page may show (CSP img-src 'self'); "" for none


def _key(link: str) -> str:
    return hashlib.sha256(link.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _file_name(link: str) -> str:
    return posixpath.basename(urlsplit(link).path) or link


def image_row(index: int, image: dict[str, Any]) -> Row:
    """The form's row of ``image`` (the ``index``-th)."""
    src = str(image.get("src") or "")
    fixed = {k: v for k, v in image.items() if k not in ("alt", "credit")}
    small = str(image.get("email_src") or src)
    return Row(
        index,
        _key(src),
        str(image.get("name") or f"Image {index + 1}"),
        json.dumps(fixed, ensure_ascii=False, sort_keys=True),
        image,
        file_details(image, "en"),
        small if small.startswith("/") and not small.startswith("//") else "",
    )


def document_row(index: int, attachment: dict[str, Any]) -> Row:
    """The form's row of ``attachment`` (the ``index``-th)."""
    href = str(attachment.get("href") or "")
    fixed = {k: v for k, v in attachment.items() if k != "title"}
    return Row(
        index,
        _key(href),
        str(attachment.get("name") or _file_name(href)),
        json.dumps(fixed, ensure_ascii=False, sort_keys=True),
        attachment,
        file_details(attachment, "en"),
        "",
    )


# --- the drop zone's uploads -------------------------------------------------------------

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=AdminRoute)
Writer = Annotated[Admin, Depends(allowed(Can.DRAFT))]  # a file is part of writing a release


def _refused(request: Request, status: int, message: str) -> JSONResponse:
    said = dashboard_of(request).translator(request).say(message)  # uploads.js shows it
    return JSONResponse({"error": said, "field": "file"}, status)


@router.post("/uploads")
@takes(
    MAX_DOCUMENT_BYTES + UPLOAD_OVERHEAD,
    MULTIPART,
    too_large=f"the file is larger than {MAX_DOCUMENT_BYTES // 1_048_576} MiB, the most a "
    "document may have",
)
def upload(
    request: Request,
    admin: Writer,
    dash: Dash,
    file: Annotated[UploadFile | str, File()] = "",
    csrf: Annotated[str, Form(max_length=TEXT_MAX)] = "",
) -> JSONResponse:
    """Store a file dropped on the release form, as the form's file field does: 201 and
    ``{"kind": "image" | "document", "name", "key", "html"}``, its row for the script to
    add to the form; 422 ``{"error", "field"}`` naming the file when it is refused (not
    what its name says, too large, empty), 403 when the form has expired."""
    if not csrf_ok(dash.settings, request.cookies.get(CSRF_COOKIE), csrf):
        return _refused(request, 403, EXPIRED_FORM)
    if isinstance(file, str) or not file.filename:
        return _refused(request, 422, "file: no file was sent")
    media = Media()
    store_files(dash.settings, [file], admin.actor, media)
    if media.problems:
        return _refused(request, 422, media.problems[0])
    if media.images:
        kind, row = "image", image_row(0, media.images[0])
    else:
        kind, row = "document", document_row(0, media.attachments[0])
    html = dash.fragment(request, "_media_row.html", kind=kind, row=row, lead=False)
    return JSONResponse({"kind": kind, "name": row.name, "key": row.key, "html": html}, 201)
