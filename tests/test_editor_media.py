"""Images and documents in the release form, as a press officer adds them without JavaScript
(the form's file field) or by dropping them on the form (``POST /admin/uploads``, which
``uploads.js`` calls): each image with its thumbnail, alt text, credit and a choice of lead
image, each document with its name, kind, size and title. What is saved shows on the
release's page and in its email, and reopening the draft shows it all again. A renamed
program, an image without its alt text or credit, a file too large: refused naming the file
and the field, with everything typed and uploaded kept on the form."""

from __future__ import annotations

import html
import io
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import AuditEvent, Release
from distributor.office.accounts import create_user
from distributor.releases.lifecycle import mark_published
from distributor.site import builder
from distributor.web import create_app
from distributor.web.editor import FORM_MAX
from tests.helpers import add_topics, csrf_of

WRITER, PASSWORD = "jo@example.org", "a long enough password"
TEXT = {
    "title": "Agency opens a flood research station",
    "lang": "en",
    "date": "2026-11-20T09:00",
    "lead": "The station measures the coast's rise for thirty years.",
    "body": "The whole story.",
    "topics": "climate",
}
# A whole, if minimal, PDF: one empty page.
PDF = (
    b"%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
    b"2 0 obj <</Type /Pages /Kids [3 0 R] /Count 1>> endobj\n"
    b"3 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]>> endobj\n"
    b"trailer <</Root 1 0 R>>\n%%EOF\n"
)
DETAILS = f"(PDF, {len(PDF)}\u00a0B)"  # its kind and size, as the pages say them
PROGRAM = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200


def picture(kind: str, colour: tuple[int, int, int]) -> bytes:
    """A small JPEG or PNG of one colour (each colour its own file, its own digest)."""
    out = io.BytesIO()
    Image.new("RGB", (640, 480), colour).save(out, kind)
    return out.getvalue()


class _FormReader(HTMLParser):
    """What a browser would send for the page's form with class ``editor``: its inputs,
    radio buttons and checkboxes that are checked, text areas and chosen options."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self.inside = False
        self.textarea: str | None = None
        self.select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = "editor" in a.get("class", "").split()
        elif not self.inside or "name" not in a:
            if tag == "option" and self.select and "selected" in a:
                self.fields.append((self.select, a.get("value", "")))
        elif tag == "input" and a.get("type") not in ("file", "submit"):
            if a.get("type") not in ("radio", "checkbox") or "checked" in a:
                self.fields.append((a["name"], a.get("value", "")))
        elif tag == "textarea":
            self.textarea = a["name"]
            self.fields.append((a["name"], ""))
        elif tag == "select":
            self.select = a["name"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea":
            self.textarea = None
        elif tag == "select":
            self.select = None

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            name, text = self.fields[-1]
            self.fields[-1] = (name, text + data)


def filled_in(page: str, **changes: str | list[str]) -> dict[str, list[str]]:
    """The editor's form on ``page`` as a browser would post it, with ``changes``: a field
    set to a value, or to one value a row (``image_alt=[…]``)."""
    reader = _FormReader()
    reader.feed(page)
    fields: dict[str, list[str]] = {}
    for name, value in reader.fields:
        fields.setdefault(name, []).append(value.removeprefix("\n"))
    for name, value in changes.items():
        fields[name] = value if isinstance(value, list) else [value]
    return fields


def send(
    client: TestClient, path: str, fields: dict[str, list[str]], *files: tuple[str, bytes]
) -> httpx.Response:
    """Post the form at ``path`` as multipart, with ``files`` in its file field."""
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return client.post(path, data=fields, files=parts or None, follow_redirects=False)


@pytest.fixture
def s(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"broker_url": redis_url})


@pytest.fixture
def jo(s: Settings) -> Iterator[TestClient]:
    add_topics(s, "climate")
    with session_scope(s) as session:
        create_user(session, WRITER, "writer", PASSWORD, name="Jo")
    client = TestClient(create_app(s), base_url="https://testserver")
    page = client.get("/admin/login")
    client.post(
        "/admin/login",
        data={"email": WRITER, "password": PASSWORD, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    yield client
    client.close()


def stored_release(s: Settings) -> Release:
    with session_scope(s) as session:
        return session.scalars(select(Release)).one()


def test_a_writer_adds_images_and_a_pdf_without_javascript_and_they_show_everywhere(
    s: Settings, jo: TestClient
) -> None:
    blank = jo.get("/admin/releases/new").text
    assert 'enctype="multipart/form-data"' in blank and 'type="file"' in blank
    photo, chart = picture("JPEG", (200, 30, 30)), picture("PNG", (30, 30, 200))
    first = send(jo, "/admin/releases/new", filled_in(blank, **TEXT),
                 ("harbour.jpg", photo), ("tide-chart.png", chart),
                 ("Backgrounder 2026.pdf", PDF))  # fmt: skip
    # Stored, shown as rows; the images want their alt text and credit before a save.
    page = first.text
    assert first.status_code == 422
    assert "images.0.alt: image 1 (harbour.jpg) has no alt text" in page
    assert "Uploaded: harbour.jpg, tide-chart.png, Backgrounder 2026.pdf" in page
    assert 'value="Agency opens a flood research station"' in page  # what was typed
    thumbnail = r'<img class="thumbnail" src="(/media/[0-9a-f]{64}/for-email\.\w+)"'
    thumbnails = re.findall(thumbnail, page)
    assert len(thumbnails) == 2
    assert jo.get(thumbnails[0]).headers["content-type"] == "image/jpeg"
    assert "Backgrounder 2026.pdf" in page and DETAILS in page  # its name, kind and size
    assert 'name="document_title" type="text" maxlength="300" value="Backgrounder 2026"' in page
    with session_scope(s) as session:
        assert session.scalars(select(Release)).all() == []
    # Alt texts, credits, the chart as the lead image, a title for the PDF: saved.
    fields = filled_in(page, image_alt=["The harbour at dawn", "Sea level since 1990"],
                       image_credit=["Photo: Ana Lima / Agency", "Agency"],
                       document_title="Background: the station in figures")  # fmt: skip
    chart_src = json.loads(fields["image"][1])["src"]
    fields["lead_image"] = [chart_src]
    saved = send(jo, "/admin/releases/new", fields)
    assert saved.status_code == 303, saved.text
    release = stored_release(s)
    assert [(i["alt"], i["credit"]) for i in release.images] == [
        ("Sea level since 1990", "Agency"),  # the lead, first
        ("The harbour at dawn", "Photo: Ana Lima / Agency"),
    ]
    assert release.images[0]["src"] == chart_src
    [document] = release.attachments
    assert document["title"] == "Background: the station in figures"
    assert document["type"] == "application/pdf" and document["length"] == len(PDF)
    assert re.fullmatch(r"/media/[0-9a-f]{64}/backgrounder-2026\.pdf", document["href"])
    # Reopened: the same rows, texts and lead; saved again unchanged, nothing changes.
    edit = f"/admin/releases/{release.id}/edit"
    again = jo.get(edit).text
    assert again.index("Sea level since 1990") < again.index("The harbour at dawn")
    assert re.search(r'name="lead_image" value="' + re.escape(chart_src) + '" checked', again)
    assert 'value="Background: the station in figures"' in again
    assert "backgrounder-2026.pdf" in again and DETAILS in again
    assert send(jo, edit, filled_in(again)).status_code == 303
    assert stored_release(s).images == release.images
    assert stored_release(s).attachments == release.attachments
    # The email shows the lead image first, with its alt text and credit, and the PDF.
    email = jo.get(f"/admin/releases/{release.id}/preview/en.html").text
    assert email.index("Sea level since 1990") < email.index("The harbour at dawn")
    assert "Photo: Ana Lima / Agency" in email
    assert f'src="{s.site_url}{release.images[0]["email_src"]}"' in email
    assert f'href="{s.site_url}{document["href"]}"' in email
    assert DETAILS.replace("\u00a0", "&nbsp;") in email  # as css-inline writes it
    # So does the release's page, once published; the PDF's link serves the PDF.
    with session_scope(s) as session:
        mark_published(session, release.id)
    builder.regenerate_site(s)
    public = jo.get(f"/releases/{release.slug}").text
    assert 'alt="Sea level since 1990"' in public and "Photo: Ana Lima / Agency" in public
    assert f'href="{s.site_url}{document["href"]}" type="application/pdf"' in public
    assert "Background: the station in figures" in public and DETAILS in public
    served = jo.get(document["href"])
    assert served.status_code == 200 and served.content == PDF
    assert served.headers["content-type"] == "application/pdf"


def test_removing_a_row_leaves_it_out_and_an_old_form_keeps_what_the_draft_has(
    s: Settings, jo: TestClient
) -> None:
    blank = jo.get("/admin/releases/new").text
    fields = filled_in(blank, **TEXT)
    made = send(jo, "/admin/releases/new", fields, ("notes.pdf", PDF))
    assert made.status_code == 303, made.text
    release_id = stored_release(s).id
    edit = f"/admin/releases/{release_id}/edit"
    # A form rendered before it had images and documents (URL-encoded, no "media"): kept.
    page = jo.get(edit).text
    old = {k: v for k, v in filled_in(page).items() if k in (*TEXT, "csrf", "version")}
    assert jo.post(edit, data=old, follow_redirects=False).status_code == 303
    [kept] = stored_release(s).attachments
    # "Remove" ticked: gone.
    page = jo.get(edit).text
    gone = send(jo, edit, filled_in(page, document_remove=kept["href"]))
    assert gone.status_code == 303
    assert stored_release(s).attachments == []


def test_a_refused_file_or_image_is_named_and_nothing_typed_or_uploaded_is_lost(
    s: Settings, jo: TestClient
) -> None:
    blank = jo.get("/admin/releases/new").text
    # A program renamed .pdf beside a good image: the program refused by name, the image kept.
    quay = picture("JPEG", (10, 120, 10))
    refused = send(jo, "/admin/releases/new", filled_in(blank, **TEXT),
                   ("report.pdf", PROGRAM), ("quay.jpg", quay))  # fmt: skip
    page = refused.text
    assert refused.status_code == 422
    assert (
        "files: report.pdf: not a PDF, Word, Excel, PowerPoint or OpenDocument file "
        "(by its content)" in page
    )
    assert 'id="files" name="files" type="file"' in page and 'aria-invalid="true"' in page
    assert "Uploaded: quay.jpg" in page and page.count('class="thumbnail"') == 1
    assert "The station measures the coast&#39;s rise" in page
    # An alt text but no credit: refused naming the image and the field, the alt text kept.
    no_credit = send(jo, "/admin/releases/new", filled_in(page, image_alt="The quay"))
    page = no_credit.text
    assert no_credit.status_code == 422
    assert "images.0.credit: image 1 (quay.jpg) has no credit" in page
    assert re.search(r'name="image_alt" [^>]*value="The quay"', page)
    # An image over 20 MiB (the form takes it: 50 MiB of files), refused by its name.
    big = send(jo, "/admin/releases/new", filled_in(page), ("huge.jpg", b"\xff" * (21 << 20)))
    assert big.status_code == 422
    assert "files: huge.jpg: 22.0 MB is more than the 21.0 MB an image may have" in big.text
    with session_scope(s) as session:
        assert session.scalars(select(Release)).all() == []
    # More than the form takes: 413 before a byte is read, saying what to do.
    headers = {"Content-Type": "multipart/form-data; boundary=x",
               "Content-Length": str(FORM_MAX + 1)}  # fmt: skip
    answer = jo.post("/admin/releases/new", content=b"--x", headers=headers)
    assert answer.status_code == 413
    assert answer.text.startswith("the files chosen are larger than 50 MiB in all")
    assert "Go back (the form still has what you typed)" in answer.text


def test_a_dropped_file_is_stored_at_once_and_answered_as_its_row(
    s: Settings, jo: TestClient
) -> None:
    csrf = csrf_of(jo.get("/admin/releases/new").text)
    image = picture("PNG", (90, 90, 90))
    answer = jo.post("/admin/uploads", data={"csrf": csrf}, files={"file": ("dune.png", image)})
    assert answer.status_code == 201, answer.text
    row = answer.json()
    assert (row["kind"], row["name"]) == ("image", "dune.png")
    assert 'name="image_alt"' in row["html"] and 'name="lead_image"' in row["html"]
    hidden = re.search(r'name="image" value="([^"]+)"', row["html"])
    assert hidden is not None
    src = json.loads(html.unescape(hidden.group(1)))["src"]
    assert jo.get(src).status_code == 200
    document = jo.post("/admin/uploads", data={"csrf": csrf}, files={"file": ("facts.pdf", PDF)})
    assert document.json()["kind"] == "document"
    assert 'name="document_title"' in document.json()["html"]
    with session_scope(s) as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "upload")).all()
        assert [e.actor for e in events] == [f"user:{WRITER}"] * 2
    program = jo.post("/admin/uploads", data={"csrf": csrf}, files={"file": ("dune.png", PROGRAM)})
    assert program.status_code == 422
    refusal = "files: dune.png: not a JPEG, PNG, WebP or GIF image"
    assert program.json() == {"error": refusal, "field": "file"}
    forged = jo.post("/admin/uploads", data={"csrf": "forged"}, files={"file": ("a.pdf", PDF)})
    assert forged.status_code == 403 and "expired" in forged.json()["error"]


def test_rows_show_what_a_draft_holds_escaped_and_the_script_is_a_file(
    s: Settings, jo: TestClient
) -> None:
    hostile = '"><script>alert(1)</script>'
    made = send(jo, "/admin/releases/new", filled_in(jo.get("/admin/releases/new").text, **TEXT))
    assert made.status_code == 303, made.text
    with session_scope(s) as session:
        release = session.scalars(select(Release)).one()
        release.images = [{"src": "https://photos.example.org/a.jpg", "alt": hostile,
                           "credit": hostile}]  # fmt: skip
        release.attachments = [{"href": "/media/x/notes.pdf", "title": hostile}]
        release_id = release.id
    page = jo.get(f"/admin/releases/{release_id}/edit")
    assert "<script>" not in page.text and re.search(r"\son[a-z]+=", page.text) is None
    assert page.text.count("&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;") == 3
    assert 'class="thumbnail"' not in page.text  # a remote image: the CSP shows none
    assert '<script src="/admin/static/uploads.js" defer></script>' in page.text
    script = jo.get("/admin/static/uploads.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
