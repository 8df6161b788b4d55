"""The admin API's document upload (under ``/api``): ``POST /api/documents`` stores a PDF,
Office or OpenDocument file (``distributor.releases.documents``, checked by its content) and
answers the ``attachments`` entry that offers it.

Needs a bearer token with the ``releases`` scope, of a writer or above: as for images.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from distributor import actions
from distributor.core.errors import InputError
from distributor.core.roles import Caller
from distributor.releases.documents import MAX_DOCUMENT_BYTES, TITLE_MAX, attachment_title
from distributor.web.apibase import ErrorOut, Refused, error_responses
from distributor.web.bodies import MULTIPART, takes
from distributor.web.deps import AppSettings
from distributor.web.errors import status_of
from distributor.web.media_api import SCOPE, token_caller, writer

# The multipart framing around the file, and the title.
_OVERHEAD = 64 * 1024


class DocumentOut(BaseModel):
    """The stored document, and the release's ``attachments`` entry that offers it."""

    digest: str = Field(description="SHA-256 of the uploaded bytes")
    created: bool = Field(description="False when the same document had been uploaded before")
    url: str = Field(description="Where it is served; it never changes what it serves")
    attachment: dict[str, Any] = Field(
        description="href, title, type, length: paste into the release's attachments"
    )


router = APIRouter(
    tags=["media"],
    responses=error_responses(SCOPE),
    dependencies=[Depends(token_caller), Depends(writer)],
)


@router.post(
    "/documents",
    status_code=201,
    summary="Upload a document",
    responses={
        201: {"model": DocumentOut, "description": "Stored"},
        200: {"model": DocumentOut, "description": "The same document was stored before"},
        413: {"model": ErrorOut, "description": "The document is too large"},
        415: {"model": ErrorOut, "description": "Not multipart/form-data"},
    },
)
@takes(MAX_DOCUMENT_BYTES + _OVERHEAD, MULTIPART)  # refused before a byte is read
def upload(
    file: Annotated[
        UploadFile,
        File(description="A PDF, Word, Excel, PowerPoint or OpenDocument file"),
    ],
    who: Annotated[Caller, Depends(writer)],
    settings: AppSettings,
    title: Annotated[
        str | None,
        Form(max_length=TITLE_MAX, description="Its title on the release; else its file name"),
    ] = None,
) -> JSONResponse:
    """Store the document as it is, at a URL that never changes, once its content shows it
    is a PDF, Word, Excel, PowerPoint or OpenDocument file (whatever its name says). Offer
    it on a release by the answer's ``attachment`` fields."""
    name = file.filename or "upload"
    try:
        checked_title = attachment_title(title, name)
    except InputError as exc:
        raise Refused(status_of(exc), str(exc), exc.field) from exc
    data = file.file.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise Refused(413, f"the document is larger than {MAX_DOCUMENT_BYTES // 1_048_576} MiB")
    try:
        stored = actions.upload_document(settings, data, name, who.actor)
    except InputError as exc:
        raise Refused(status_of(exc), str(exc), "file") from exc
    body = DocumentOut(
        digest=stored.digest,
        created=stored.created,
        url=stored.url,
        attachment=stored.attachment_fields(checked_title),
    ).model_dump(mode="json")
    return JSONResponse(body, 201 if stored.created else 200)
