"""The API's body limits, at the byte, against the app served over HTTP as `distributor serve`
serves it (tests/web_server.py): a subscriber (any JSON route) is read up to 64 KiB, a release
up to 4 MiB, an image up to 20 MiB (its multipart framing up to 64 KiB more). One byte more is
413 with the API's error shape, whether the length is declared or the body comes in chunks, and
nothing is stored — though each refused body is a valid request that would have been
(whitespace pads the JSON; an image may carry bytes after its end), as the same body at the
limit shows."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from distributor.core.apitokens import create_token
from distributor.core.audit import recent
from distributor.core.config import Settings, load_settings
from distributor.core.db import dispose_engines, session_scope, upgrade
from distributor.core.models import Release, Subscriber
from distributor.releases.media import media_root
from tests.helpers import TEST_SECRET_KEY, add_topics, free_port
from tests.web_server import running_server

KIB, MIB = 1024, 1024 * 1024


@dataclass(frozen=True)
class Served:
    settings: Settings
    base: str
    token: str  # subscribers and releases scopes

    def post(self, path: str, body: bytes, content_type: str, chunked: bool) -> httpx.Response:
        """POST ``body``: with its Content-Length, or (``chunked``) in 64 KiB chunks."""
        content = iter([body[i : i + 64 * KIB] for i in range(0, len(body), 64 * KIB)])
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": content_type}
        return httpx.post(self.base + path, content=content if chunked else body,
                          headers=headers, timeout=60)  # fmt: skip

    def count(self, model: type[Subscriber] | type[Release]) -> int:
        with session_scope(self.settings) as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

    def uploads(self) -> tuple[int, list[Path]]:
        """Uploads recorded in the audit trail, and the files under the media directory."""
        with session_scope(self.settings) as session:
            events = len(recent(session, 1000, action="upload"))
        root = media_root(self.settings)
        return events, sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("oversized")
    port = free_port()
    s = load_settings(data_dir=base / "var", site_url=f"http://127.0.0.1:{port}",
                      secret_key=TEST_SECRET_KEY, broker_url=redis_url)  # fmt: skip
    upgrade(s)
    add_topics(s, "climate")
    with session_scope(s) as session:
        token = create_token(session, "desk", ["subscribers", "releases"])
    with running_server(s, port) as url:
        yield Served(s, url, token)
    dispose_engines()


def padded(value: dict[str, Any], size: int) -> bytes:
    """``value`` as JSON, followed by spaces up to exactly ``size`` bytes (still valid)."""
    data = json.dumps(value).encode()
    assert len(data) <= size
    return data + b" " * (size - len(data))


def too_large(answer: httpx.Response, limit: str) -> None:
    assert answer.status_code == 413, answer.text
    assert answer.json() == {
        "error": f"the body is larger than {limit}, the most this address takes",
        "field": None,
    }


def test_a_subscriber_of_64_kib_is_read_and_one_byte_more_is_refused(served: Served) -> None:
    for chunked in (False, True):
        person = {"email": f"big{int(chunked)}@example.org", "language": "en",
                  "topics": ["climate"], "confirmed": True,
                  "consent_source": "fair 2026"}  # fmt: skip
        too_large(served.post("/api/subscribers", padded(person, 64 * KIB + 1),
                              "application/json", chunked), "64 KiB")  # fmt: skip
        before = served.count(Subscriber)
        taken = served.post("/api/subscribers", padded(person, 64 * KIB), "application/json",
                            chunked)  # fmt: skip
        assert taken.status_code == 201, taken.text
        assert served.count(Subscriber) == before + 1
    assert served.count(Subscriber) == 2  # only the two at the limit


def test_a_release_of_4_mib_is_read_and_one_byte_more_is_refused(served: Served) -> None:
    for chunked in (False, True):
        release = {"title": f"Agency opens station {int(chunked)}", "lang": "en",
                   "topics": ["climate"], "date": "2026-11-21T10:00:00+01:00",
                   "contacts": [{"name": "Jane Doe", "email": "press@example.org"}],
                   "body": "The Agency opened a station.\n\n" + "Sea level. " * 10_000}  # fmt: skip
        too_large(served.post("/api/releases", padded(release, 4 * MIB + 1),
                              "application/json", chunked), "4 MiB")  # fmt: skip
        before = served.count(Release)
        taken = served.post("/api/releases", padded(release, 4 * MIB), "application/json",
                            chunked)  # fmt: skip
        assert taken.status_code == 201, taken.text
        assert served.count(Release) == before + 1
    # A release file (Markdown) over 4 MiB likewise.
    markdown = b"---\ntitle: x\n---\n" + b"x" * (4 * MIB)
    too_large(served.post("/api/releases", markdown, "text/markdown", False), "4 MiB")
    too_large(served.post("/api/releases", markdown, "text/markdown", True), "4 MiB")
    assert served.count(Release) == 2


def image_of(size: int) -> bytes:
    """A small PNG followed by zeros up to ``size`` bytes (image readers stop at its end)."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (30, 90, 160)).save(buffer, "PNG")
    return buffer.getvalue().ljust(size, b"\0")


def multipart(file: bytes, padding: int = 0) -> tuple[bytes, str]:
    """A form with ``file`` as its ``file`` field (and a ``padding``-byte field before it)."""
    boundary = "b0undary-7f3a"
    parts = b""
    if padding:
        parts += (f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
                  .encode() + b"n" * padding + b"\r\n")  # fmt: skip
    parts += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
              'filename="photo.png"\r\nContent-Type: image/png\r\n\r\n').encode()  # fmt: skip
    parts += file + f"\r\n--{boundary}--\r\n".encode()
    return parts, f"multipart/form-data; boundary={boundary}"


def test_an_image_of_20_mib_is_stored_and_one_byte_more_is_refused(served: Served) -> None:
    """A file one byte over 20 MiB, in a body within the framing allowance: the upload
    answers 413 naming the image; a body past 20 MiB + 64 KiB is refused before it is read.
    Neither stores a file or records an upload; the same image at 20 MiB is stored."""
    body, content_type = multipart(image_of(20 * MIB + 1))
    for chunked in (False, True):
        answer = served.post("/api/media", body, content_type, chunked)
        assert answer.status_code == 413, answer.text
        assert answer.json() == {"error": "the image is larger than 20 MiB", "field": None}
    body, content_type = multipart(image_of(20 * MIB), padding=64 * KIB + 1)
    for chunked in (False, True):
        too_large(served.post("/api/media", body, content_type, chunked), "20 MiB")
    assert served.uploads() == (0, [])

    body, content_type = multipart(image_of(20 * MIB))
    taken = served.post("/api/media", body, content_type, chunked=False)
    assert taken.status_code == 201, taken.text
    events, files = served.uploads()
    assert events == 1 and files


def test_a_document_of_50_mib_is_stored_and_one_byte_more_is_refused(served: Served) -> None:
    """As for images: a file one byte over 50 MiB answers 413 naming the document; a body
    past 50 MiB + 64 KiB is refused before it is read; neither stores or records anything.
    A PDF of 50 MiB (sent as photo.png: the content decides) is stored."""
    before = served.uploads()
    pdf_of = b"%PDF-1.4\n".ljust
    body, content_type = multipart(pdf_of(50 * MIB + 1, b"\n"))
    for chunked in (False, True):
        answer = served.post("/api/documents", body, content_type, chunked)
        assert answer.status_code == 413, answer.text
        assert answer.json() == {"error": "the document is larger than 50 MiB", "field": None}
    body, content_type = multipart(pdf_of(50 * MIB, b"\n"), padding=64 * KIB + 1)
    for chunked in (False, True):
        too_large(served.post("/api/documents", body, content_type, chunked), "50 MiB")
    assert served.uploads() == before

    body, content_type = multipart(pdf_of(50 * MIB, b"\n"))
    taken = served.post("/api/documents", body, content_type, chunked=False)
    assert taken.status_code == 201, taken.text
    assert taken.json()["attachment"]["href"].endswith("/photo.pdf")
    events, files = served.uploads()
    assert events == before[0] + 1 and len(files) == len(before[1]) + 1
