"""Images stored under the data directory (distributor.releases.media): checked, upright,
stripped of their metadata, resized for the page and the email, stored once; named in a release file
by local path, they reach the page, the email and the web app as absolute URLs."""

from __future__ import annotations

import email
import io
import re
import struct
import textwrap
import zlib
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import ExifTags, Image
from sqlalchemy import func, select

from distributor.core.config import Settings, load_settings
from distributor.core.db import session_scope
from distributor.core.errors import InputError, ReleaseInputError
from distributor.core.models import Release
from distributor.core.urls import preferences_url, release_url, unsubscribe_url
from distributor.mail.compose import Recipient, render_release
from distributor.mail.render import context, environment
from distributor.office.identity import environment_identity
from distributor.releases import media
from distributor.releases.lifecycle import create_release, mark_published
from distributor.releases.media import FILE_STEMS, MEDIA_PATH, StoredImage, store_image
from distributor.releases.source import parse_release
from distributor.site.builder import build_site
from tests.helpers import TEST_SECRET_KEY, add_topics, png
from tests.processes import invoke_cli

SITE = "https://news.example.org"
RED, BLUE = (255, 0, 0), (0, 0, 255)
SECRET = "Secret Photographer"


@pytest.fixture
def media_settings(tmp_path: Path) -> Settings:
    """Settings with a data directory and no database: storing an image needs none."""
    return load_settings(data_dir=tmp_path / "var", site_url=SITE, secret_key=TEST_SECRET_KEY)


def photo(width: int, height: int, *, orientation: int = 1) -> bytes:
    """A camera-like JPEG, red on the left and blue on the right as stored, with an EXIF
    orientation, the photographer's name, a GPS position and a comment."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (width // 2, 0, width, height))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Artist] = SECRET
    exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=SECRET.encode())
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # it is there
    return data


def forged_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels: what a decompression
    bomb looks like before it is decoded."""
    data = bytearray(png(1, 1))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def stored_file(settings: Settings, path: str) -> Path:
    return settings.public_dir / path.removeprefix("/")


def media_entries(settings: Settings) -> list[str]:
    root = media.media_root(settings)
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


# -- store_image -----------------------------------------------------------------------------


def test_a_photo_is_stored_upright_resized_and_without_metadata(media_settings: Settings) -> None:
    # Orientation 6: the camera was turned; the stored 3000 x 2000 pixels show 2000 x 3000.
    stored = store_image(media_settings, photo(3000, 2000, orientation=6), "minister.jpg")
    assert stored.created
    sizes = {v.name: (v.width, v.height) for v in (stored.full, stored.page, stored.email)}
    assert sizes == {"full": (2000, 3000), "page": (1200, 1800), "email": (600, 900)}
    for variant in (stored.full, stored.page, stored.email):
        match = MEDIA_PATH.match(variant.path)
        assert match and match.groups() == (stored.digest, FILE_STEMS[variant.name], ".jpg")
        assert variant.url == SITE + variant.path
        assert variant.media_type == "image/jpeg"
        raw = stored_file(media_settings, variant.path).read_bytes()
        assert len(raw) == variant.length
        assert b"Exif" not in raw and SECRET.encode() not in raw  # no EXIF, GPS, comment
        with Image.open(io.BytesIO(raw)) as image:
            assert image.format == "JPEG"
            assert image.size == (variant.width, variant.height)
            assert not image.getexif()
            assert "comment" not in image.info and "xmp" not in image.info
            image = image.convert("RGB")
            # Turned upright: what was the left (red) is now the top.
            top = image.getpixel((image.width // 2, image.height // 4))
            bottom = image.getpixel((image.width // 2, 3 * image.height // 4))
            assert isinstance(top, tuple) and isinstance(bottom, tuple)
            assert top[0] > 200 > top[2] and bottom[2] > 200 > bottom[0]
    fields = stored.image_fields()
    assert fields["src"] == stored.page.path and fields["href"] == stored.full.path
    assert (fields["width"], fields["height"]) == (1200, 1800)


def test_a_small_image_is_never_enlarged(media_settings: Settings) -> None:
    stored = store_image(media_settings, photo(400, 300), "small.jpg")
    for variant in (stored.full, stored.page, stored.email):
        assert (variant.width, variant.height) == (400, 300)
        with Image.open(stored_file(media_settings, variant.path)) as image:
            assert image.size == (400, 300)


def test_the_same_upload_is_stored_once(media_settings: Settings) -> None:
    data = photo(800, 600)
    first = store_image(media_settings, data, "a.jpg")
    written = stored_file(media_settings, first.page.path).stat().st_mtime_ns
    again = store_image(media_settings, data, "same-photo-another-name.jpg")
    assert not again.created
    assert again == StoredImage(first.digest, first.full, first.page, first.email, False)
    assert stored_file(media_settings, first.page.path).stat().st_mtime_ns == written
    assert media_entries(media_settings) == [first.digest]  # no temporary left behind


def test_no_stored_image_address_looks_like_a_web_bug_and_older_ones_are_kept(
    media_settings: Settings,
) -> None:
    """SpamAssassin's LONG_IMG_URI scores an image address ending in 45+ letters or digits
    and a name of word characters only (``<sha256>/email.jpg`` did); an image stored under
    those names before is found as it is (its addresses are in releases and sent emails)."""
    web_bug = re.compile(r"/[0-9a-z]{45,}/\w+\.(?:png|gif|jpe?g)$", re.I)  # its rule
    data = photo(800, 600)
    stored = store_image(media_settings, data, "a.jpg")
    for variant in (stored.full, stored.page, stored.email):
        assert not web_bug.search(variant.path), variant.path
    # The directory as stored before: its files under the versions' own names.
    for variant in (stored.full, stored.page, stored.email):
        old = stored_file(media_settings, variant.path)
        old.rename(old.with_name(variant.name + ".jpg"))
    again = store_image(media_settings, data, "a.jpg")
    assert not again.created
    assert [v.path.rsplit("/", 1)[1] for v in (again.full, again.page, again.email)] == [
        "full.jpg",
        "page.jpg",
        "email.jpg",
    ]


@pytest.mark.parametrize(
    ("data", "suffix", "media_type"),
    [
        (png(1600, 100, "RGBA"), ".png", "image/png"),  # transparency: stays PNG
        (png(300, 200), ".png", "image/png"),  # a chart or a logo: lossless stays lossless
    ],
)
def test_png_stays_png(media_settings: Settings, data: bytes, suffix: str, media_type: str) -> None:
    stored = store_image(media_settings, data, "logo.png")
    assert stored.full.path.endswith("/full-size" + suffix)
    assert {stored.full.media_type, stored.page.media_type, stored.email.media_type} == {media_type}
    assert stored.page.width == min(1200, stored.full.width)


def test_a_webp_photo_is_stored_as_jpeg(media_settings: Settings) -> None:
    out = io.BytesIO()
    Image.new("RGB", (1400, 700), RED).save(out, "WEBP")
    stored = store_image(media_settings, out.getvalue(), "photo.webp")
    assert stored.email.media_type == "image/jpeg"  # WebP is not shown by every mail client
    assert (stored.page.width, stored.page.height) == (1200, 600)


@pytest.mark.parametrize(
    ("filename", "data", "reason"),
    [
        ("notes.jpg", b"Minister's speech, final version\n", "not a JPEG, PNG, WebP or GIF image"),
        ("cut.png", png(400, 300)[:-60], "damaged or truncated"),
        ("bomb.png", forged_png(30_000, 30_000), "exceeds limit"),  # Pillow's own guard
        ("big.png", forged_png(8_000, 8_000), "8000 x 8000 pixels is more than the 50 megapixels"),
        ("empty.jpg", b"", "the file is empty"),
        ("doc.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "not a JPEG, PNG, WebP or GIF"),
    ],
)
def test_what_is_not_a_whole_image_is_refused_and_nothing_stored(
    media_settings: Settings, filename: str, data: bytes, reason: str
) -> None:
    with pytest.raises(InputError, match=rf"^{filename}: .*{reason}"):
        store_image(media_settings, data, filename)
    assert media_entries(media_settings) == []


def test_an_upload_over_the_byte_limit_is_refused(
    media_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media, "MAX_UPLOAD_BYTES", 1_000)
    with pytest.raises(InputError, match=r"^huge.jpg: .* is more than the 0.0 MB"):
        store_image(media_settings, photo(200, 200), "huge.jpg")


# -- a release file naming a local image ----------------------------------------------------

RELEASE = textwrap.dedent(
    """\
    ---
    title: Minister visits the monitoring centre
    lang: en
    topics: [climate]
    date: 2026-11-20T09:00:00+01:00
    slug: minister-visits
    images:
      - src: {src}
        alt: The minister at the control desk
        credit: Agency / J. Martin
    attachments:
      - href: /files/backgrounder.pdf
        title: Backgrounder
        type: application/pdf
        length: 123456
    ---
    The minister visited the Agency's monitoring centre today.
    """
)


def write_release(directory: Path, src: str = "photos/minister.jpg") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    md = directory / "release.md"
    md.write_text(RELEASE.format(src=src))
    return md


def reader(settings: Settings) -> Recipient:
    return Recipient(1, "reader@example.com", "Reader", unsubscribe_url(settings, 1, None),
                     preferences_url(settings, 1, None))  # fmt: skip


def test_a_local_image_reaches_page_email_and_web_app_by_absolute_url(
    settings: Settings, tmp_path: Path
) -> None:
    add_topics(settings, "climate")
    data = photo(3000, 2000, orientation=6)
    (tmp_path / "press" / "photos").mkdir(parents=True)
    (tmp_path / "press" / "photos" / "minister.jpg").write_bytes(data)
    md = write_release(tmp_path / "press")
    draft = parse_release(md.read_text(), str(md), settings, base_dir=md.parent)
    stored = store_image(settings, data, "again.jpg")  # the same bytes: described, not written
    assert not stored.created
    image = draft.meta.images[0]
    assert (image.src, image.email_src, image.href) == (
        stored.page.path, stored.email.path, stored.full.path
    )  # fmt: skip
    assert (image.type, image.length) == ("image/jpeg", stored.full.length)
    assert (image.width, image.height) == (1200, 1800)
    with session_scope(settings) as session:
        release_id = create_release(session, settings, draft).id
        mark_published(session, release_id)

    build_site(settings)
    page = (settings.public_dir / "releases" / "minister-visits.html").read_text()
    assert f'src="{stored.page.url}"' in page and f'href="{stored.full.url}"' in page
    assert 'width="1200" height="1800"' in page
    assert "The minister at the control desk" in page and "Agency / J. Martin" in page
    build_site(settings, force=True)  # the builder removes only files it wrote
    assert all(stored_file(settings, v.path).is_file() for v in (stored.page, stored.full))

    with session_scope(settings) as session:
        release = session.get(Release, release_id)
        assert release is not None
        rendered = render_release(release, settings, environment_identity(settings))
        values = context(release, settings, environment_identity(settings), "U", "P")
    html = rendered.html_for(reader(settings))
    text = rendered.text_for(reader(settings))
    # The preview: the email version once distributor.mail.render passes email_src on (the
    # template uses it when present), the page version until then.
    assert f'src="{stored.email.url}"' in html or f'src="{stored.page.url}"' in html
    assert f'href="{stored.full.url}"' in html and stored.full.url in text
    assert "The minister at the control desk" in html and "Agency / J. Martin" in html
    values["images"][0]["email_src"] = stored.email.url
    with_email_src = environment(settings.templates_dir).get_template("email/release.html")
    assert f'src="{stored.email.url}"' in with_email_src.render(values)

    from distributor.web import create_app  # the web app's whole import graph: only here

    client = TestClient(create_app(settings))
    path = stored.page.path
    r = client.get(path)
    assert r.status_code == 200
    assert r.content == stored_file(settings, path).read_bytes()
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["content-length"] == str(stored.page.length)
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert client.get(path, headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    since = {"If-Modified-Since": r.headers["last-modified"]}
    assert client.get(path, headers=since).status_code == 304
    head = client.head(stored.full.path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(stored.full.length)
    assert client.get(path.replace("/for-pages.jpg", "/for-pages.png")).status_code == 404


def test_a_pdf_is_linked_never_attached(settings: Settings, tmp_path: Path) -> None:
    add_topics(settings, "climate")
    md = write_release(tmp_path, src="https://cdn.example.net/minister.jpg")
    draft = parse_release(md.read_text(), str(md), settings)
    with session_scope(settings) as session:
        release = create_release(session, settings, draft)
        mark_published(session, release.id)
        message = render_release(release, settings, environment_identity(settings)).message_for(
            reader(settings)
        )
    msg = email.message_from_bytes(message, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    types = [part.get_content_type() for part in msg.walk()]
    assert "application/pdf" not in types
    assert not any(part.get_content_disposition() == "attachment" for part in msg.walk())
    assert len(message) < 100_000
    # The email links the release's page, which links the document.
    assert release_url(settings, "minister-visits") in msg.as_string()
    build_site(settings)
    page = (settings.public_dir / "releases" / "minister-visits.html").read_text()
    assert f'href="{SITE}/files/backgrounder.pdf"' in page


def test_a_missing_or_unusable_local_image_is_refused_naming_the_field(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    md = write_release(tmp_path, src="photos/missing.jpg")
    with pytest.raises(ReleaseInputError) as caught:
        parse_release(md.read_text(), str(md), sqlite_settings, base_dir=tmp_path)
    assert str(caught.value).startswith(f"{md}: field 'images.0.src': no image file")
    (tmp_path / "notes.jpg").write_text("not a photo")
    md = write_release(tmp_path, src="notes.jpg")
    with pytest.raises(ReleaseInputError, match=r"images.0.src': notes.jpg: not a JPEG"):
        parse_release(md.read_text(), str(md), sqlite_settings, base_dir=tmp_path)
    # Markdown not read from a file (sent over the API) has no directory to read from.
    (tmp_path / "photo.jpg").write_bytes(photo(100, 100))
    md = write_release(tmp_path, src="photo.jpg")
    with pytest.raises(ReleaseInputError, match=r"'photo.jpg' names a local file"):
        parse_release(md.read_text(), "api", sqlite_settings)
    # Another error in the release: refused before any image is stored.
    broken = md.read_text().replace("lang: en", "lang: de")
    with pytest.raises(ReleaseInputError, match="field 'lang'"):
        parse_release(broken, str(md), sqlite_settings, base_dir=tmp_path)
    assert media_entries(sqlite_settings) == []


def test_the_command_reads_images_next_to_the_release_file(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    add_topics(sqlite_settings, "climate")
    press = tmp_path / "press"
    (press / "photos").mkdir(parents=True)
    (press / "photos" / "minister.jpg").write_bytes(photo(1600, 900))
    md = write_release(press)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    created = invoke_cli(sqlite_settings, "releases", "create", str(md), cwd=elsewhere)
    assert created.returncode == 0, created.stderr
    with session_scope(sqlite_settings) as session:
        release = session.get(Release, int(created.stdout.strip()))
        assert release is not None
        src = release.images[0]["src"]
    assert MEDIA_PATH.match(src) and stored_file(sqlite_settings, src).is_file()

    missing = write_release(tmp_path / "other", src="photos/minister.jpg")
    failed = invoke_cli(sqlite_settings, "releases", "create", str(missing), cwd=press)
    assert failed.returncode == 1
    assert f"{missing}: field 'images.0.src': no image file" in failed.stderr
    with session_scope(sqlite_settings) as session:
        assert session.scalar(select(func.count()).select_from(Release)) == 1


def test_a_stored_image_missing_a_file_is_stored_again(media_settings: Settings) -> None:
    data = photo(700, 500)
    first = store_image(media_settings, data, "a.jpg")
    stored_file(media_settings, first.email.path).unlink()
    again = store_image(media_settings, data, "a.jpg")
    assert again.created and again.email == first.email
    assert stored_file(media_settings, first.email.path).is_file()
    assert media_entries(media_settings) == [first.digest]
