"""What the press office does with images and documents: upload one. The files are written
first, then the upload is recorded, in a transaction of its own (files are not
transactional); the same file uploaded again writes and records nothing."""

from __future__ import annotations

import os

from distributor.core import audit
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.releases.documents import (
    DOCUMENT_TYPES,
    StoredDocument,
    document_suffix,
    store_document,
)
from distributor.releases.media import StoredImage, store_image


def upload_image(settings: Settings, data: bytes, filename: str, by: str) -> StoredImage:
    """Store the image ``data`` (an upload named ``filename``) as ``media.store_image``
    does and, when it was new, record that ``by`` uploaded it, with its name and length.
    Returns what is stored; raises InputError for what is not an image it accepts."""
    stored = store_image(settings, data, filename)
    if stored.created:
        with session_scope(settings) as session:
            details = {"filename": filename[:200], "length": len(data)}
            audit.record(session, by, "upload", f"media {stored.digest[:16]}", **details)
    return stored


def upload_document(settings: Settings, data: bytes, filename: str, by: str) -> StoredDocument:
    """Store the document ``data`` (an upload named ``filename``) as
    ``documents.store_document`` does and, when it was new, record that ``by`` uploaded
    it, with its name and length. Returns what is stored; raises InputError for what is
    not a document it accepts (by its content)."""
    stored = store_document(settings, data, filename)
    if stored.created:
        with session_scope(settings) as session:
            details = {"filename": filename[:200], "length": len(data)}
            audit.record(session, by, "upload", f"document {stored.digest[:16]}", **details)
    return stored


def upload_file(
    settings: Settings, data: bytes, filename: str, by: str
) -> StoredImage | StoredDocument:
    """Store an upload whose kind is not said (the release form's file field, a file
    dropped on it) as an image (``upload_image``) or a document (``upload_document``):
    a document when its content is one, or when its name says it is one (a ``.pdf`` that
    is a renamed program is refused as a document); an image otherwise. Returns what is
    stored; raises InputError, naming ``filename``, for what is neither."""
    suffix = os.path.splitext(filename.replace("\\", "/"))[1].lower()
    if document_suffix(data) is not None or suffix in DOCUMENT_TYPES:
        return upload_document(settings, data, filename, by)
    return upload_image(settings, data, filename, by)
