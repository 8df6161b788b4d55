"""Documents offered with a release (a PDF backgrounder, a fact sheet), checked by their
content and stored once below the data directory.

``store_document`` takes the bytes of an upload (the API's ``POST /api/documents``, or a
file named by a release's ``attachments`` entry) and keeps them, unchanged, as::

    public/media/<sha256>/<name>.<ext>

served at ``/media/<sha256>/<name>.<ext>``: ``<sha256>`` of the uploaded bytes, ``<name>``
an ASCII slug of the upload's name (what a journalist's download is called), ``<ext>``
the type found in the bytes — never the one the name claims. As for images
(``distributor.releases.media``), the URL never changes what it serves, the directory
appears whole or not at all, and the same bytes are stored once (under the first name
they were uploaded with).

What is taken, by its first bytes and, for a zip, by the names of its entries:

- PDF: ``%PDF-``;
- Office Open XML (Word, Excel, PowerPoint): a zip holding ``[Content_Types].xml`` and a
  ``word/``, ``xl/`` or ``ppt/`` part;
- OpenDocument (text, spreadsheet, presentation): a zip whose first entry is ``mimetype``,
  naming the kind.

Nothing in a zip is extracted but the few bytes of that ``mimetype`` entry: a "zip bomb"
(entries that inflate to gigabytes) costs no more than its central directory, itself
bounded by MAX_ZIP_ENTRIES.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from distributor.core.config import Settings
from distributor.core.errors import InputError
from distributor.core.sanitize import line_problem
from distributor.core.slugs import slugify
from distributor.releases.media import (
    display_name,
    media_path,
    media_root,
    media_url,
    megabytes,
    write_directory,
)

MAX_DOCUMENT_BYTES: Final = 50 * 1024 * 1024  # a report with photos; not a video
NAME_MAX: Final = 60  # characters of the stored name, before its suffix
TITLE_MAX: Final = 300  # an attachments entry's title (source.Attachment)
# A real .docx or .pptx has tens to a few thousand entries; the central directory of a zip
# with millions would cost memory to list.
MAX_ZIP_ENTRIES: Final = 10_000
_MIMETYPE_MAX: Final = 100  # bytes of an OpenDocument's "mimetype" entry (~45 in practice)

# What we store, by suffix: the media type it is served and linked with.
DOCUMENT_TYPES: Final = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odp": "application/vnd.oasis.opendocument.presentation",
}
# Served as downloads (Content-Disposition: attachment): an office file is opened by an
# application, not shown by the browser. A PDF is shown inline, in the browser's viewer.
DOWNLOADS: Final = frozenset(DOCUMENT_TYPES) - {".pdf"}
# Office Open XML: the folder of the main part, by suffix.
_OOXML_PARTS: Final = {"word/": ".docx", "xl/": ".xlsx", "ppt/": ".pptx"}
_ODF_KINDS: Final = {
    b"application/vnd.oasis.opendocument.text": ".odt",
    b"application/vnd.oasis.opendocument.spreadsheet": ".ods",
    b"application/vnd.oasis.opendocument.presentation": ".odp",
}
_ZIP_START: Final = b"PK\x03\x04"  # a zip's first local file header
_ZIP_END: Final = b"PK\x05\x06"  # the end of central directory record
_ZIP_END_SIZE: Final = 22  # that record without its comment (at most 65,535 bytes)
_ZIP_FAILURES: Final = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    RuntimeError,  # an encrypted entry
    NotImplementedError,  # a compression method zipfile does not know
)
_REFUSED: Final = "not a PDF, Word, Excel, PowerPoint or OpenDocument file (by its content)"


@dataclass(frozen=True)
class StoredDocument:
    """A document stored by ``store_document``. ``created`` is False when the same bytes
    had been stored before (nothing was written this time: ``path`` keeps the name of the
    first upload)."""

    digest: str  # SHA-256 of the bytes, hex: the directory's name
    path: str  # the site path, e.g. /media/<sha256>/backgrounder.pdf
    url: str  # the absolute URL (settings.site_url + path)
    media_type: str  # a value of DOCUMENT_TYPES
    length: int  # bytes
    created: bool

    def attachment_fields(self, title: str) -> dict[str, Any]:
        """The fields of a release's ``attachments`` entry that offers this document under
        ``title``: its site path as ``href`` (the pages, feeds and email make it absolute),
        its ``type`` and ``length``."""
        return {"href": self.path, "title": title, "type": self.media_type, "length": self.length}


def store_document(settings: Settings, data: bytes, filename: str) -> StoredDocument:
    """Check ``data`` (an upload named ``filename``: its stored name is made from it, and
    messages show it) by its content, store it below ``public/media/<sha256>/`` (see the
    module docstring) unless it is there already, and describe it.

    Raises InputError, naming ``filename`` and why, for an empty file, one of more than
    MAX_DOCUMENT_BYTES, and anything that is not a PDF, Office Open XML or OpenDocument
    file by its content, whatever its name says."""
    shown = display_name(filename, "the document")
    if not data:
        raise InputError(f"{shown}: the file is empty")
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InputError(
            f"{shown}: {megabytes(len(data))} is more than the "
            f"{megabytes(MAX_DOCUMENT_BYTES)} a document may have"
        )
    suffix = document_suffix(data)
    if suffix is None:
        raise InputError(f"{shown}: {_REFUSED}")
    digest = hashlib.sha256(data).hexdigest()
    found = _existing(settings, media_root(settings) / digest, digest, len(data))
    if found is not None:
        return found
    stored_name = stored_name_of(filename) + suffix
    found = write_directory(
        settings,
        digest,
        {stored_name: data},
        lambda directory: _existing(settings, directory, digest, len(data)),
    )
    if found is not None:
        return found
    return _described(settings, digest, stored_name, len(data), created=True)


def attachment_title(title: str | None, filename: str) -> str:
    """The title an ``attachments`` entry gives a document uploaded as ``filename``:
    ``title`` stripped, else the upload's name without its folder and extension. Raises
    InputError (field ``title``) for a title that is not a single line of at most
    TITLE_MAX characters, as a release's attachments entry refuses it."""
    if title is None or not title.strip():
        title = _stem(filename).strip() or "Document"
        title = title if line_problem(title) is None else stored_name_of(filename)
        return title[:TITLE_MAX]
    problem = line_problem(title)
    if problem is not None:
        raise InputError(f"title: {problem}", field="title")
    if len(title.strip()) > TITLE_MAX:
        raise InputError(f"title: more than {TITLE_MAX} characters", field="title")
    return title.strip()


def document_suffix(data: bytes) -> str | None:
    """The suffix (a key of DOCUMENT_TYPES) of what ``data`` is, by its content; None when
    it is none of them."""
    if data.startswith(b"%PDF-"):
        return ".pdf"
    if data.startswith(_ZIP_START):
        return _zip_suffix(data)
    return None


def stored_name_of(filename: str) -> str:
    """The name a document uploaded as ``filename`` is stored under, without its suffix:
    an ASCII slug of the name without its folders and extension, at most NAME_MAX
    characters; "document" when nothing is left."""
    return slugify(_stem(filename), empty="document", limit=NAME_MAX)


def _stem(filename: str) -> str:
    """The name of an upload without its folders (a browser may send a whole Windows path)
    and its extension."""
    return os.path.splitext(filename.replace("\\", "/").rsplit("/", 1)[-1])[0]


def _zip_suffix(data: bytes) -> str | None:
    """The suffix of the Office Open XML or OpenDocument file ``data`` (a zip) is; None
    for any other zip, a damaged one, or one of more than MAX_ZIP_ENTRIES entries. Reads
    the central directory (the names) and at most the ``mimetype`` entry's few bytes."""
    entries = _zip_entry_count(data)
    if entries is None or entries > MAX_ZIP_ENTRIES:
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if not infos:
                return None
            first = infos[0]
            if first.filename == "mimetype":
                if first.file_size > _MIMETYPE_MAX or first.compress_size > _MIMETYPE_MAX:
                    return None
                # The read stops at the declared size, checked just above.
                return _ODF_KINDS.get(archive.read(first).strip())
            names = {info.filename for info in infos}
    except _ZIP_FAILURES:
        return None
    if "[Content_Types].xml" not in names:
        return None
    for folder, suffix in _OOXML_PARTS.items():
        if any(name.startswith(folder) for name in names):
            return suffix
    return None


def _zip_entry_count(data: bytes) -> int | None:
    """The number of entries the end of central directory record of ``data`` declares,
    before zipfile lists them; None when there is no such record. An archive of 65,535
    entries or more declares 0xFFFF here (its count is in a ZIP64 record): more than
    MAX_ZIP_ENTRIES, so refused."""
    end = data.rfind(_ZIP_END, max(0, len(data) - _ZIP_END_SIZE - 0xFFFF))
    if end < 0 or len(data) - end < _ZIP_END_SIZE:
        return None
    (count,) = struct.unpack_from("<H", data, end + 10)  # entries in the whole directory
    return int(count)


def _existing(
    settings: Settings, directory: Path, digest: str, length: int
) -> StoredDocument | None:
    """The document of ``length`` bytes stored in ``directory`` already, or None if there
    is none (or it is not whole — deleted or cut short by hand: then it is stored again)."""
    try:
        entries = list(directory.iterdir())
    except OSError:
        return None
    for entry in entries:
        if entry.suffix in DOCUMENT_TYPES and not entry.name.startswith("."):
            try:
                if entry.is_file() and entry.stat().st_size == length:
                    return _described(settings, digest, entry.name, length, created=False)
            except OSError:
                continue
    return None


def _described(
    settings: Settings, digest: str, filename: str, length: int, *, created: bool
) -> StoredDocument:
    return StoredDocument(
        digest=digest,
        path=media_path(digest, filename),
        url=media_url(settings, digest, filename),
        media_type=DOCUMENT_TYPES[os.path.splitext(filename)[1]],
        length=length,
        created=created,
    )
