"""Documents offered with a release (distributor.releases.documents): taken by their content,
never their name — PDF, Office Open XML, OpenDocument — stored once under a name made from
the upload's, served by the web app with their type and as downloads where a browser should
not open them; uploaded over the API by a writer's token, or named in a release file."""

from __future__ import annotations

import hashlib
import io
import textwrap
import tracemalloc
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from distributor.core.audit import recent
from distributor.core.config import Settings, load_settings
from distributor.core.db import session_scope
from distributor.core.errors import InputError, ReleaseInputError
from distributor.releases import documents
from distributor.releases.documents import (
    DOCUMENT_TYPES,
    MAX_DOCUMENT_BYTES,
    StoredDocument,
    store_document,
)
from distributor.releases.media import MEDIA_PATH, media_root
from distributor.releases.source import parse_release
from tests.helpers import TEST_SECRET_KEY, add_topics, writer_token

SITE = "https://news.example.org"
REFUSED = "not a PDF, Word, Excel, PowerPoint or OpenDocument file (by its content)"
PDF_TYPE = "application/pdf"
DOCX_TYPE = DOCUMENT_TYPES[".docx"]
ODT_TYPE = DOCUMENT_TYPES[".odt"]

# A whole, if minimal, PDF: one empty page.
MINIMAL_PDF = (
    b"%PDF-1.4\n"
    b"1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
    b"2 0 obj <</Type /Pages /Kids [3 0 R] /Count 1>> endobj\n"
    b"3 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]>> endobj\n"
    b"trailer <</Root 1 0 R>>\n%%EOF\n"
)
# The first bytes of a Windows program: what a renamed .exe starts with.
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200


def ooxml_bytes(folder: str = "word", main: str = "document.xml") -> bytes:
    """An Office Open XML package as Word (folder ``word``), Excel (``xl``) or PowerPoint
    (``ppt``) write it, reduced to its content types, relationships and main part."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxml'
            'formats.org/package/2006/content-types"><Default Extension="xml" '
            'ContentType="application/xml"/></Types>',
        )
        package.writestr(
            "_rels/.rels",
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
            'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            f'officeDocument" Target="{folder}/{main}"/></Relationships>',
        )
        package.writestr(f"{folder}/{main}", "<document><body>Annual report</body></document>")
    return out.getvalue()


def odf_bytes(kind: str = "text") -> bytes:
    """An OpenDocument file: its ``mimetype`` entry first and stored (as the standard
    asks), then its content and manifest."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        package.writestr("mimetype", f"application/vnd.oasis.opendocument.{kind}")
        package.writestr(
            "content.xml", "<office:document-content>Annual report</office:document-content>",
            zipfile.ZIP_DEFLATED,
        )  # fmt: skip
        package.writestr("META-INF/manifest.xml", "<manifest:manifest/>", zipfile.ZIP_DEFLATED)
    return out.getvalue()


def zip_of(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.fixture
def document_settings(tmp_path: Path) -> Settings:
    """Settings with a data directory and no database: storing a document needs none."""
    return load_settings(data_dir=tmp_path / "var", site_url=SITE, secret_key=TEST_SECRET_KEY)


def stored_entries(settings: Settings) -> list[str]:
    root = media_root(settings)
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def stored_bytes(settings: Settings, stored: StoredDocument) -> bytes:
    return (settings.public_dir / stored.path.removeprefix("/")).read_bytes()


# -- store_document --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "filename", "path_name", "media_type"),
    [
        (MINIMAL_PDF, "Backgrounder 2026.pdf", "backgrounder-2026.pdf", PDF_TYPE),
        (ooxml_bytes("word"), "Annual Report.docx", "annual-report.docx", DOCX_TYPE),
        (ooxml_bytes("xl", "workbook.xml"), "Figures.xlsx", "figures.xlsx",
         DOCUMENT_TYPES[".xlsx"]),
        (ooxml_bytes("ppt", "presentation.xml"), "Slides.pptx", "slides.pptx",
         DOCUMENT_TYPES[".pptx"]),
        (odf_bytes("text"), "Rapport annuel.odt", "rapport-annuel.odt", ODT_TYPE),
        (odf_bytes("spreadsheet"), "Chiffres.ods", "chiffres.ods", DOCUMENT_TYPES[".ods"]),
        (odf_bytes("presentation"), "Diapos.odp", "diapos.odp", DOCUMENT_TYPES[".odp"]),
    ],
)  # fmt: skip
def test_each_kind_is_stored_unchanged_under_its_digest_and_a_safe_name(
    document_settings: Settings, data: bytes, filename: str, path_name: str, media_type: str
) -> None:
    stored = store_document(document_settings, data, filename)
    digest = hashlib.sha256(data).hexdigest()
    assert stored.created and stored.digest == digest
    assert stored.path == f"/media/{digest}/{path_name}"
    assert MEDIA_PATH.match(stored.path)
    assert stored.url == SITE + stored.path
    assert (stored.media_type, stored.length) == (media_type, len(data))
    assert stored_bytes(document_settings, stored) == data
    file = document_settings.public_dir / stored.path.removeprefix("/")
    assert file.stat().st_mode & 0o777 == 0o644  # nginx, another user, reads it
    assert stored.attachment_fields("Annual report") == {
        "href": stored.path, "title": "Annual report", "type": media_type, "length": len(data)
    }  # fmt: skip


def test_the_type_comes_from_the_content_not_the_name(document_settings: Settings) -> None:
    """A Word file called .pdf is stored as .docx; a PDF called .exe as .pdf."""
    word = store_document(document_settings, ooxml_bytes(), "minutes.pdf")
    assert word.path.endswith("/minutes.docx") and word.media_type == DOCX_TYPE
    pdf = store_document(document_settings, MINIMAL_PDF, "C:\\Users\\press\\Dossier de presse.exe")
    assert pdf.path.endswith("/dossier-de-presse.pdf") and pdf.media_type == PDF_TYPE


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("Überprüfung — Bericht.pdf", "uberprufung-bericht"),
        ("../../etc/passwd", "passwd"),
        ("???.pdf", "document"),
        ("", "document"),
        ("word " * 40 + ".pdf", ("word-" * 12).rstrip("-")),
    ],
)
def test_the_stored_name_is_an_ascii_slug_of_bounded_length(
    document_settings: Settings, filename: str, expected: str
) -> None:
    stored = store_document(document_settings, MINIMAL_PDF + filename.encode(), filename)
    assert stored.path.rsplit("/", 1)[1] == expected + ".pdf"


def test_the_same_document_is_stored_once(document_settings: Settings) -> None:
    data = ooxml_bytes()
    first = store_document(document_settings, data, "report.docx")
    file = document_settings.public_dir / first.path.removeprefix("/")
    written = file.stat().st_mtime_ns
    again = store_document(document_settings, data, "another name.docx")
    assert not again.created
    assert again == StoredDocument(first.digest, first.path, first.url, first.media_type,
                                   first.length, created=False)  # fmt: skip
    assert file.stat().st_mtime_ns == written
    assert stored_entries(document_settings) == [first.digest]  # no temporary left behind


def test_a_stored_document_cut_short_is_stored_again(document_settings: Settings) -> None:
    first = store_document(document_settings, MINIMAL_PDF, "a.pdf")
    file = document_settings.public_dir / first.path.removeprefix("/")
    file.write_bytes(MINIMAL_PDF[:10])
    again = store_document(document_settings, MINIMAL_PDF, "a.pdf")
    assert again.created and file.read_bytes() == MINIMAL_PDF
    assert stored_entries(document_settings) == [first.digest]


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("report.pdf", EXE),  # a program renamed
        ("x.docx", zip_of({"readme.txt": b"hello"})),  # a plain zip
        ("x.docx", zip_of({"[Content_Types].xml": b"<Types/>", "other/a.xml": b"<a/>"})),
        ("x.docx", zip_of({"word/document.xml": b"<w/>"})),  # no content types
        ("x.odt", zip_of({"content.xml": b"<c/>", "mimetype": b"application/"
                          b"vnd.oasis.opendocument.text"})),  # mimetype not first
        ("x.odt", zip_of({"mimetype": b"application/zip", "content.xml": b"<c/>"})),
        ("x.docx", EXE + ooxml_bytes()),  # a zip after other bytes: zipfile would take it
        ("x.docx", ooxml_bytes()[:200]),  # cut short
        ("x.pdf", b"%PD"),
        ("notes.txt", b"Backgrounder: see the attached figures."),
    ],
)  # fmt: skip
def test_what_is_not_a_document_is_refused_naming_it_and_nothing_stored(
    document_settings: Settings, filename: str, data: bytes
) -> None:
    with pytest.raises(InputError) as refused:
        store_document(document_settings, data, filename)
    assert str(refused.value) == f"{filename}: {REFUSED}"
    assert stored_entries(document_settings) == []


def test_an_empty_or_oversized_file_is_refused(document_settings: Settings) -> None:
    with pytest.raises(InputError, match=r"\Aempty\.pdf: the file is empty\Z"):
        store_document(document_settings, b"", "empty.pdf")
    huge = MINIMAL_PDF.ljust(MAX_DOCUMENT_BYTES + 1, b"\n")
    with pytest.raises(InputError) as refused:
        store_document(document_settings, huge, "huge.pdf")
    assert str(refused.value) == "huge.pdf: 52.4 MB is more than the 52.4 MB a document may have"
    assert store_document(document_settings, huge[:MAX_DOCUMENT_BYTES], "huge.pdf").created
    assert len(stored_entries(document_settings)) == 1


def test_a_zip_bomb_is_never_inflated(document_settings: Settings) -> None:
    """A "docx" whose part inflates to 64 MiB is taken by its names alone; an "odt" whose
    mimetype entry would inflate to 64 MiB is refused without inflating it."""
    size = 64 * 1024 * 1024
    docx_bomb = zip_of({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"\0" * size})
    odt_bomb = zip_of({"mimetype": b"\0" * size})
    assert len(docx_bomb) < 1_000_000 and len(odt_bomb) < 1_000_000
    tracemalloc.start()
    try:
        assert store_document(document_settings, docx_bomb, "bomb.docx").media_type == DOCX_TYPE
        with pytest.raises(InputError, match=REFUSED.replace("(", r"\(").replace(")", r"\)")):
            store_document(document_settings, odt_bomb, "bomb.odt")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024, peak  # the bytes and zipfile's lists, nothing inflated


def test_a_zip_of_too_many_entries_is_refused_before_it_is_listed(
    document_settings: Settings,
) -> None:
    many = {"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"}
    many |= {f"word/media/{i}.xml": b"" for i in range(documents.MAX_ZIP_ENTRIES)}
    with pytest.raises(InputError, match="by its content"):
        store_document(document_settings, zip_of(many, zipfile.ZIP_STORED), "many.docx")


# -- served by the web app -------------------------------------------------------------------


@pytest.fixture
def site_client(sqlite_settings: Settings) -> Iterator[TestClient]:
    from distributor.web import create_app  # the web app's whole import graph: only here

    with TestClient(create_app(sqlite_settings)) as client:
        yield client


def test_documents_are_served_with_their_type_as_downloads_and_cached_for_good(
    sqlite_settings: Settings, site_client: TestClient
) -> None:
    pdf = store_document(sqlite_settings, MINIMAL_PDF, "Backgrounder.pdf")
    word = store_document(sqlite_settings, ooxml_bytes(), "Annual report.docx")
    odt = store_document(sqlite_settings, odf_bytes(), "Rapport.odt")
    for stored, data, disposition in (
        (pdf, MINIMAL_PDF, None),  # shown in the browser's viewer
        (word, ooxml_bytes(), 'attachment; filename="annual-report.docx"'),
        (odt, odf_bytes(), 'attachment; filename="rapport.odt"'),
    ):
        r = site_client.get(stored.path)
        assert r.status_code == 200, stored.path
        assert r.content == data
        assert r.headers["content-type"] == stored.media_type
        assert r.headers["content-length"] == str(len(data))
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers.get("content-disposition") == disposition
        assert site_client.get(stored.path, headers={"If-None-Match": r.headers["etag"]}
                               ).status_code == 304  # fmt: skip
        head = site_client.head(stored.path)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(data))
        assert head.headers.get("content-disposition") == disposition
    # Another name or suffix in the same directory is not served.
    assert site_client.get(pdf.path.replace(".pdf", ".docx")).status_code == 404
    assert site_client.get(pdf.path.replace("backgrounder", "other")).status_code == 404
    assert site_client.get(f"/media/{pdf.digest}/backgrounder.exe").status_code == 404


# -- the API ---------------------------------------------------------------------------------


def uploads(settings: Settings) -> list[tuple[str, str, dict[str, object]]]:
    with session_scope(settings) as session:
        return [(e.actor, e.subject, e.details) for e in recent(session, 100, action="upload")]


def test_a_writer_uploads_a_document_once_and_gets_its_attachment_entry(
    sqlite_settings: Settings, site_client: TestClient
) -> None:
    token = writer_token(sqlite_settings, ["releases"])
    auth = {"Authorization": f"Bearer {token}"}
    data = ooxml_bytes()
    files = {"file": ("Annual report 2026.docx", data, "application/octet-stream")}
    r = site_client.post("/api/documents", files=files, headers=auth)
    assert r.status_code == 201, r.text
    body = r.json()
    digest = hashlib.sha256(data).hexdigest()
    href = f"/media/{digest}/annual-report-2026.docx"
    assert body == {
        "digest": digest,
        "created": True,
        "url": SITE + href,
        "attachment": {"href": href, "title": "Annual report 2026", "type": DOCX_TYPE,
                       "length": len(data)},
    }  # fmt: skip
    assert site_client.get(href).content == data
    [(actor, subject, details)] = uploads(sqlite_settings)
    assert subject == f"document {digest[:16]}" and "writer" in actor
    assert details == {"filename": "Annual report 2026.docx", "length": len(data)}

    again = site_client.post("/api/documents", files=files, data={"title": "Figures"},
                             headers=auth)  # fmt: skip
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False
    assert again.json()["attachment"]["title"] == "Figures"
    assert len(uploads(sqlite_settings)) == 1  # nothing new stored, nothing recorded


def test_the_api_refuses_what_is_not_a_document_or_not_a_title(
    sqlite_settings: Settings, site_client: TestClient
) -> None:
    auth = {"Authorization": f"Bearer {writer_token(sqlite_settings, ['releases'])}"}
    r = site_client.post("/api/documents", files={"file": ("report.pdf", EXE, PDF_TYPE)},
                         headers=auth)  # fmt: skip
    assert r.status_code == 422
    assert r.json() == {"error": f"report.pdf: {REFUSED}", "field": "file"}
    r = site_client.post("/api/documents", files={"file": ("empty.pdf", b"", PDF_TYPE)},
                         headers=auth)  # fmt: skip
    assert r.status_code == 422 and r.json()["error"] == "empty.pdf: the file is empty"
    r = site_client.post("/api/documents", files={"file": ("a.pdf", MINIMAL_PDF, PDF_TYPE)},
                         data={"title": "Two\nlines"}, headers=auth)  # fmt: skip
    assert r.status_code == 422 and r.json()["field"] == "title"
    assert stored_entries(sqlite_settings) == [] and uploads(sqlite_settings) == []


def test_an_oversized_upload_is_refused_before_it_is_read(
    sqlite_settings: Settings, site_client: TestClient
) -> None:
    auth = {"Authorization": f"Bearer {writer_token(sqlite_settings, ['releases'])}"}
    huge = MINIMAL_PDF.ljust(MAX_DOCUMENT_BYTES + 128 * 1024, b"\n")
    r = site_client.post("/api/documents", files={"file": ("huge.pdf", huge, PDF_TYPE)},
                         headers=auth)  # fmt: skip
    assert r.status_code == 413
    assert r.json() == {
        "error": "the body is larger than 50 MiB, the most this address takes", "field": None
    }  # fmt: skip
    assert stored_entries(sqlite_settings) == [] and uploads(sqlite_settings) == []


def test_a_token_without_the_releases_scope_or_no_token_cannot_upload(
    sqlite_settings: Settings, site_client: TestClient
) -> None:
    token = writer_token(sqlite_settings, ["subscribers"])
    files = {"file": ("a.pdf", MINIMAL_PDF, PDF_TYPE)}
    r = site_client.post("/api/documents", files=files,
                         headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert r.status_code == 403 and "releases" in r.json()["error"]
    assert site_client.post("/api/documents", files=files).status_code == 401
    assert stored_entries(sqlite_settings) == [] and uploads(sqlite_settings) == []


# -- a release file naming a local document -------------------------------------------------

RELEASE_WITH_FILE = textwrap.dedent(
    """\
    ---
    title: Agency publishes its annual report
    lang: en
    topics: [climate]
    date: 2026-11-20T09:00:00+01:00
    attachments:
      - href: {href}
        title: Backgrounder
        type: text/plain
        length: 1
      - href: https://cdn.example.net/figures.xlsx
        title: Figures
    ---
    The Agency published its annual report today.
    """
)


def test_a_local_attachment_is_stored_and_linked_by_its_site_path(
    settings: Settings, tmp_path: Path
) -> None:
    add_topics(settings, "climate")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "Backgrounder 2026.pdf").write_bytes(MINIMAL_PDF)
    md = tmp_path / "release.md"
    md.write_text(RELEASE_WITH_FILE.format(href="files/Backgrounder 2026.pdf"))
    draft = parse_release(md.read_text(), str(md), settings, base_dir=tmp_path)
    digest = hashlib.sha256(MINIMAL_PDF).hexdigest()
    first, second = draft.meta.attachments
    assert first.href == f"/media/{digest}/backgrounder-2026.pdf"
    assert (first.title, first.type, first.length) == ("Backgrounder", PDF_TYPE, len(MINIMAL_PDF))
    assert (settings.public_dir / first.href.removeprefix("/")).read_bytes() == MINIMAL_PDF
    assert second.href == "https://cdn.example.net/figures.xlsx"  # a URL: left alone


def test_a_local_attachment_that_is_not_a_document_is_refused_naming_the_field(
    settings: Settings, tmp_path: Path
) -> None:
    add_topics(settings, "climate")
    (tmp_path / "report.pdf").write_bytes(EXE)
    md = tmp_path / "release.md"
    md.write_text(RELEASE_WITH_FILE.format(href="report.pdf"))
    with pytest.raises(ReleaseInputError) as refused:
        parse_release(md.read_text(), str(md), settings, base_dir=tmp_path)
    assert str(refused.value) == f"{md}: field 'attachments.0.href': report.pdf: {REFUSED}"
    assert refused.value.field == "attachments.0.href"
    missing = RELEASE_WITH_FILE.format(href="files/none.pdf")
    with pytest.raises(ReleaseInputError, match=r"no document file 'files/none\.pdf'"):
        parse_release(missing, str(md), settings, base_dir=tmp_path)
    with pytest.raises(ReleaseInputError, match=r"upload the document first \(POST /api/docu"):
        parse_release(md.read_text(), "api", settings)  # Markdown over the API: no files
    assert stored_entries(settings) == []
