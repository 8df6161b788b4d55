"""Conditional GET for generated files: strong ETag from the bytes, Last-Modified, 304."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

CACHE_CONTROL = "public, max-age=300"


@dataclass(frozen=True)
class _Entry:
    key: tuple[int, int]
    body: bytes
    etag: str
    last_modified: datetime


_cache: dict[Path, _Entry] = {}


def _load(path: Path) -> _Entry:
    stat = path.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    entry = _cache.get(path)
    if entry is None or entry.key != key:
        body = path.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        modified = datetime.fromtimestamp(int(stat.st_mtime), UTC)
        entry = _cache[path] = _Entry(key, body, etag, modified)
    return entry


def _not_modified(request: Request, entry: _Entry) -> bool:
    inm = request.headers.get("if-none-match")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return "*" in tags or entry.etag in tags
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return False
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return entry.last_modified <= since
    return False


def file_response(request: Request, path: Path, media_type: str) -> Response:
    """The file at ``path`` with ETag/Last-Modified, or 304 when the client has it."""
    entry = _load(path)
    headers = {
        "ETag": entry.etag,
        "Last-Modified": format_datetime(entry.last_modified, usegmt=True),
        "Cache-Control": CACHE_CONTROL,
    }
    if _not_modified(request, entry):
        return Response(status_code=304, headers=headers)
    return Response(entry.body, media_type=media_type, headers=headers)
