"""What the press office does with images and documents: upload one. The files are written
first, then the upload is recorded, in a transaction of its own (files are not
transactional); the same file uploaded again writes and records nothing."""

from __future__ import annotations

from distributor.core import audit
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.releases.documents import StoredDocument, store_document
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
