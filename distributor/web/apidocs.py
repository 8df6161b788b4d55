"""The routes of the API's documentation, public like the schema: the Swagger UI page at
``/api/docs`` and its script, style sheet and icon under ``/api/docs/`` (``swagger.py``),
so that the page works with no network but this site's."""

from __future__ import annotations

import functools
import gzip

import brotli
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from distributor.web.apibase import Refused
from distributor.web.static import BR, BROTLI_QUALITY, GZIP, IDENTITY, choose_coding
from distributor.web.swagger import ASSET_DIR, ASSETS, DOCS_PATH, PAGE

# The assets' URLs carry Swagger UI's version (swagger.asset_url): a browser may keep them.
ASSET_CACHE = "public, max-age=31536000, immutable"

router = APIRouter(prefix=DOCS_PATH.removeprefix("/api"), include_in_schema=False)


@functools.cache
def _body(name: str, coding: str) -> bytes:
    """The asset ``name`` in content coding ``coding``, read (and compressed) once."""
    raw = (ASSET_DIR / name).read_bytes()
    if coding == GZIP:
        return gzip.compress(raw, compresslevel=9, mtime=0)
    if coding == BR:
        return bytes(brotli.compress(raw, quality=BROTLI_QUALITY))
    return raw


@router.get("")
def docs_page() -> HTMLResponse:
    """Swagger UI, browsing ``/api/openapi.json``."""
    return HTMLResponse(PAGE)


@router.get("/{name}")
def docs_asset(name: str, request: Request) -> Response:
    """Swagger UI's script, style sheet or icon (gzip or br when the client takes it, but
    not the icon: a PNG is compressed already); 404 for any other name."""
    if name not in ASSETS:
        raise Refused(404, f"There is no file {name!r} here.")
    media_type = ASSETS[name]
    accepted = request.headers.get("accept-encoding", "")
    coding = IDENTITY if media_type.startswith("image/") else choose_coding(accepted)
    headers = {"Cache-Control": ASSET_CACHE, "Vary": "Accept-Encoding"}
    if coding != IDENTITY:
        headers["Content-Encoding"] = coding
    return Response(_body(name, coding), media_type=media_type, headers=headers)
