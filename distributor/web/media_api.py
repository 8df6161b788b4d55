"""The admin API's image upload (under ``/api``): ``POST /api/media`` stores an image in
three sizes (``distributor.releases.media``) and answers the ``images`` entry that shows it.

Needs a bearer token with the ``releases`` scope.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from distributor import actions
from distributor.core.errors import InputError
from distributor.core.roles import Caller, Can
from distributor.releases.media import MAX_UPLOAD_BYTES, StoredImage, Variant
from distributor.web.apibase import ErrorOut, Refused, error_responses, token_dependency
from distributor.web.bodies import MULTIPART, takes
from distributor.web.deps import AppSettings
from distributor.web.errors import status_of
from distributor.web.rights import requiring

SCOPE = "releases"
# The multipart framing around the file.
_OVERHEAD = 64 * 1024


class VariantOut(BaseModel):
    """One stored size of the image."""

    url: str
    media_type: str
    length: int
    width: int
    height: int


class MediaOut(BaseModel):
    """The stored image: its sizes, and the fields of a release's ``images`` entry that
    show it (add ``alt`` and ``credit``)."""

    digest: str = Field(description="SHA-256 of the uploaded bytes")
    created: bool = Field(description="False when the same image had been uploaded before")
    image: dict[str, Any] = Field(
        description="src, email_src, href, type, length, width, height: paste into the "
        "release's images entry"
    )
    full: VariantOut
    page: VariantOut
    email: VariantOut


def _variant(v: Variant) -> VariantOut:
    return VariantOut(
        url=v.url, media_type=v.media_type, length=v.length, width=v.width, height=v.height
    )


def media_out(stored: StoredImage) -> MediaOut:
    """The API's view of a stored image."""
    return MediaOut(
        digest=stored.digest,
        created=stored.created,
        image=stored.image_fields(),
        full=_variant(stored.full),
        page=_variant(stored.page),
        email=_variant(stored.email),
    )


token_caller = token_dependency(SCOPE)
writer = requiring(token_caller, Can.DRAFT)  # images are part of writing a release
router = APIRouter(
    tags=["media"],
    responses=error_responses(SCOPE),
    dependencies=[Depends(token_caller), Depends(writer)],
)


@router.post(
    "/media",
    status_code=201,
    summary="Upload an image",
    responses={
        201: {"model": MediaOut, "description": "Stored in three sizes"},
        200: {"model": MediaOut, "description": "The same image was stored before"},
        413: {"model": ErrorOut, "description": "The image is too large"},
        415: {"model": ErrorOut, "description": "Not multipart/form-data"},
    },
)
@takes(MAX_UPLOAD_BYTES + _OVERHEAD, MULTIPART)  # refused before a byte is read
def upload(
    file: Annotated[UploadFile, File(description="A JPEG, PNG, WebP or GIF image")],
    who: Annotated[Caller, Depends(writer)],
    settings: AppSettings,
) -> JSONResponse:
    """Store the image: upright, without its metadata (EXIF, GPS), at full size, page
    width and email width, each at a URL that never changes. Reference it in a
    release by the answer's ``image`` fields."""
    data = file.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise Refused(413, f"the image is larger than {MAX_UPLOAD_BYTES // 1_048_576} MiB")
    name = file.filename or "upload"
    try:
        stored = actions.upload_image(settings, data, name, who.actor)
    except InputError as exc:
        raise Refused(status_of(exc), str(exc), "file") from exc
    body = media_out(stored).model_dump(mode="json")
    return JSONResponse(body, 201 if stored.created else 200)
