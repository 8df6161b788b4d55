"""Images stored under the data directory: checked, cleaned and resized once with Pillow.

``store_image`` takes the bytes of an upload (the API's ``POST /api/media``, or a file
named in a release's front matter) and keeps three versions of it below
``public/media/``, one directory per image, named by the SHA-256 of the uploaded bytes::

    public/media/<sha256>/full-size.jpg   full size, for the "high-resolution image" link
    public/media/<sha256>/for-pages.jpg   at most PAGE_WIDTH px wide: release pages and feeds
    public/media/<sha256>/for-email.jpg   at most EMAIL_WIDTH px wide: the email's preview

served at ``/media/<sha256>/full-size.jpg`` and so on (``.png`` instead of ``.jpg`` for PNG
and GIF uploads and for images with transparency). Each name has a hyphen: SpamAssassin's
LONG_IMG_URI ("web bug?", 1.0) scores an image whose address ends in a directory of 45
letters or digits and a name of only letters, digits and ``_`` — as ``<sha256>/email.jpg``,
the names of images stored before 2026-12-06, which are still found and served. The URL of
a file never changes what it serves, so the web app and nginx send it with
``Cache-Control: immutable``.

Every version is decoded and encoded again, so none carries the upload's metadata (EXIF,
GPS position, XMP, comments); the EXIF orientation is applied to the pixels first, and the
colour profile (ICC) is kept. Nothing is ever enlarged. A directory appears whole or not
at all (written under a temporary name, then renamed), and the same upload is stored once.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import re
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from PIL import Image, ImageOps, UnidentifiedImageError

from distributor.core import filemodes
from distributor.core.config import Settings
from distributor.core.durable import fsync_dir
from distributor.core.errors import InputError

MAX_UPLOAD_BYTES: Final = 20 * 1024 * 1024  # a camera JPEG is 5-15 MB
# 50 megapixels: a 45 MP camera's photo fits. Decoded, that is ~150 MB of RGB: the guard
# against a small file that decodes into gigabytes (a "decompression bomb").
MAX_PIXELS: Final = 50_000_000
PAGE_WIDTH: Final = 1200  # release pages show images up to ~600 CSS px: 2x for sharp screens
EMAIL_WIDTH: Final = 600  # the email shows 280 CSS px; 600 stays sharp at 2x on any client
JPEG_QUALITY: Final = {"full": 92, "page": 85, "email": 82}
VARIANTS: Final = ("full", "page", "email")
# Each version's file name (without suffix); before 2026-12-06, the version's own name.
FILE_STEMS: Final = {"full": "full-size", "page": "for-pages", "email": "for-email"}

MEDIA_DIR: Final = "media"  # below public/, and the first segment of every media URL
# The formats accepted, by Pillow's name, with the media type an upload of each has.
ACCEPTED: Final = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
MEDIA_TYPES: Final = {".jpg": "image/jpeg", ".png": "image/png"}  # what we write
# A stored file's URL path, an image's or a document's (distributor.releases.documents):
# its groups are the digest, the name (a slug: an image's variant, a document's name) and
# the suffix, which says what the file is. The web app serves the suffixes it knows.
MEDIA_PATH: Final = re.compile(
    r"\A/media/([0-9a-f]{64})/([a-z0-9]+(?:-[a-z0-9]+)*)(\.[a-z]{3,4})\Z"
)
_NO_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
Stored = TypeVar("Stored")  # what a stored directory is described as (write_directory)


@dataclass(frozen=True)
class Variant:
    """One stored version of an image: where it is served and what it is."""

    name: str  # "full", "page" or "email"
    path: str  # the site path, e.g. /media/<sha256>/for-pages.jpg
    url: str  # the absolute URL (settings.site_url + path)
    media_type: str  # image/jpeg or image/png
    length: int  # bytes
    width: int  # pixels
    height: int


@dataclass(frozen=True)
class StoredImage:
    """An image stored by ``store_image``: its three versions. ``created`` is False when
    the same bytes had been stored before (nothing was written this time)."""

    digest: str  # SHA-256 of the uploaded bytes, hex: the directory's name
    full: Variant
    page: Variant
    email: Variant
    created: bool

    def image_fields(self) -> dict[str, Any]:
        """The fields of a release's ``images`` entry (besides alt and credit) that show
        this image: the page version as ``src`` (site paths: the pages, feeds and email
        make them absolute), the email version as ``email_src``, the full size as ``href``
        with its ``type`` and ``length``, and the page version's ``width`` and ``height``."""
        return {
            "src": self.page.path,
            "email_src": self.email.path,
            "href": self.full.path,
            "type": self.full.media_type,
            "length": self.full.length,
            "width": self.page.width,
            "height": self.page.height,
        }


def media_root(settings: Settings) -> Path:
    """The directory images are stored in: ``public/media`` (the site builder leaves it
    alone: it only removes files it wrote itself)."""
    return settings.public_dir / MEDIA_DIR


def media_path(digest: str, filename: str) -> str:
    """The site path of a stored file: ``/media/<digest>/<filename>``."""
    return f"/{MEDIA_DIR}/{digest}/{filename}"


def media_url(settings: Settings, digest: str, filename: str) -> str:
    """The absolute URL of a stored file (from ``DISTRIBUTOR_SITE_URL``)."""
    return settings.site_url + media_path(digest, filename)


def store_image(settings: Settings, data: bytes, filename: str) -> StoredImage:
    """Check ``data`` (an upload named ``filename``, used in messages only), store its full
    size, page and email versions below ``public/media/<sha256>/`` (see the module
    docstring) unless they are there already, and describe them.

    Raises InputError, naming ``filename`` and why, for anything but a whole JPEG, PNG, WebP
    or GIF image of at most MAX_UPLOAD_BYTES bytes and MAX_PIXELS pixels (an animated GIF or
    WebP keeps its first frame)."""
    name = display_name(filename, "the image")
    if not data:
        raise InputError(f"{name}: the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(
            f"{name}: {megabytes(len(data))} is more than the "
            f"{megabytes(MAX_UPLOAD_BYTES)} an image may have"
        )
    digest = hashlib.sha256(data).hexdigest()
    root = media_root(settings)
    found = _existing(settings, root / digest, digest)
    if found is not None:
        return found
    image, source_format = _decode(data, name)
    encoded = _encode_variants(image, lossless=source_format in ("PNG", "GIF"))
    return _write(settings, digest, encoded)


# -- reading ---------------------------------------------------------------------------------


def _decode(data: bytes, name: str) -> tuple[Image.Image, str]:
    """The image in ``data``, fully decoded, upright, without metadata, and its format
    (a key of ACCEPTED); InputError if it is not an accepted format, is damaged or
    truncated, or has too many pixels."""
    try:
        image = Image.open(io.BytesIO(data), formats=list(ACCEPTED))
        _check_pixels(image, name)
        image.seek(0)
        image.load()
    except UnidentifiedImageError as exc:
        raise InputError(f"{name}: not a JPEG, PNG, WebP or GIF image") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard, from ~89 MP (a warning, an error from ~179 MP): ours, at
        # MAX_PIXELS, comes first below that. The warning is an error under -W error.
        raise InputError(f"{name}: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        # Pillow's decoders report damage with any of these ("image file is truncated").
        raise InputError(f"{name}: the image is damaged or truncated ({exc})") from exc
    icc = image.info.get("icc_profile")
    upright = ImageOps.exif_transpose(image)
    clean = _normalise_mode(upright)
    # Metadata travels in .info (EXIF, XMP, comments, PNG text): keep the colour profile
    # only. A CMYK profile does not describe the RGB pixels we made of them.
    clean.info = {"icc_profile": icc} if icc and image.mode != "CMYK" else {}
    return clean, str(image.format)


def _check_pixels(image: Image.Image, name: str) -> None:
    width, height = image.size
    if width < 1 or height < 1 or width * height > MAX_PIXELS:
        raise InputError(
            f"{name}: {width} x {height} pixels is more than the "
            f"{MAX_PIXELS // 1_000_000} megapixels an image may have"
        )


def _normalise_mode(image: Image.Image) -> Image.Image:
    """``image`` in a mode JPEG or PNG store as is: RGB, RGBA, L or LA."""
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        return image
    if image.mode in ("P", "PA") or "transparency" in image.info:
        return image.convert("RGBA")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits (a plain convert would clip at 255).
        return image.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    return image.convert("RGB")  # CMYK, YCbCr, 1, F…


def _has_alpha(image: Image.Image) -> bool:
    if image.mode not in ("RGBA", "LA"):
        return False
    lowest = image.getchannel("A").getextrema()[0]  # one band: (lowest, highest)
    return isinstance(lowest, int | float) and lowest < 255


# -- encoding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Encoded:
    name: str
    suffix: str
    data: bytes
    width: int
    height: int


def _encode_variants(image: Image.Image, *, lossless: bool) -> list[_Encoded]:
    """The full size, page and email versions of ``image``, encoded: PNG when the source
    was ``lossless`` (a PNG or GIF: logos, charts, screenshots) or has transparency, else
    JPEG."""
    as_png = lossless or _has_alpha(image)
    if not as_png and image.mode in ("RGBA", "LA"):
        image = image.convert("RGB" if image.mode == "RGBA" else "L")  # an opaque alpha
    encoded = []
    for name, width in (("full", image.width), ("page", PAGE_WIDTH), ("email", EMAIL_WIDTH)):
        sized = _narrowed(image, width)
        encoded.append(_encode(sized, name, as_png, image.info.get("icc_profile")))
    return encoded


def _narrowed(image: Image.Image, width: int) -> Image.Image:
    """``image`` scaled down to ``width`` px wide (height in proportion); never enlarged."""
    if image.width <= width:
        return image
    height = max(1, round(image.height * width / image.width))
    return image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)


def _encode(image: Image.Image, name: str, as_png: bool, icc: bytes | None) -> _Encoded:
    out = io.BytesIO()
    options: dict[str, Any] = {"icc_profile": icc} if icc else {}
    if as_png:
        image.save(out, "PNG", optimize=name != "full", **options)  # full size: too slow
    else:
        image.save(
            out, "JPEG", quality=JPEG_QUALITY[name], optimize=True, progressive=True, **options
        )
    suffix = ".png" if as_png else ".jpg"
    return _Encoded(name, suffix, out.getvalue(), image.width, image.height)


# -- the files -------------------------------------------------------------------------------


def _write(settings: Settings, digest: str, encoded: list[_Encoded]) -> StoredImage:
    """Store the versions as ``public/media/<digest>/`` (``write_directory``) and describe them; if
    another process stored the same image meanwhile, its directory is described."""
    files = {FILE_STEMS[e.name] + e.suffix: e.data for e in encoded}
    found = write_directory(
        settings, digest, files, lambda directory: _existing(settings, directory, digest)
    )
    if found is not None:
        return found
    variants = {
        e.name: _variant(
            settings, digest, e.name, FILE_STEMS[e.name] + e.suffix, len(e.data), e.width, e.height
        )
        for e in encoded
    }
    return StoredImage(digest, variants["full"], variants["page"], variants["email"], True)


def write_directory(
    settings: Settings,
    digest: str,
    files: Mapping[str, bytes],
    existing: Callable[[Path], Stored | None],
) -> Stored | None:
    """Write ``files`` (name → bytes) as the directory ``public/media/<digest>/``: into a
    temporary directory, then renamed, so that it appears whole or not at all. Returns
    None once written; if another process stored the same content meanwhile, what
    ``existing`` makes of its directory (which is kept) — unless that is None (the
    directory is not whole: a file deleted by hand), and it is replaced."""
    root = media_root(settings)
    filemodes.data_dir(settings.data_dir)  # 0711: the web server passes through to public/
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{digest}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir(mode=0o755)
    try:
        for name, data in files.items():
            write_file(tmp / name, data)
        fsync_dir(tmp)
        try:
            tmp.rename(root / digest)
        except OSError:
            found = existing(root / digest)
            if found is not None:
                return found
            # Not whole (a file deleted by hand): replaced by the one just made.
            stale = tmp.with_suffix(".stale")
            (root / digest).rename(stale)
            tmp.rename(root / digest)
            shutil.rmtree(stale, ignore_errors=True)
        fsync_dir(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return None


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` as the new file ``path`` (never an existing one), on disk when this
    returns."""
    # 0o644 (less the umask): nginx, another user, must be able to read it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _existing(settings: Settings, directory: Path, digest: str) -> StoredImage | None:
    """The image stored in ``directory`` already, or None if there is none (or it is not
    whole: then it is stored again)."""
    if not directory.is_dir():
        return None
    variants: dict[str, Variant] = {}
    for name in VARIANTS:
        # Today's file names, then the names an image stored before had (its URLs are in
        # releases and in emails sent: they keep working).
        for stem, suffix in itertools.product((FILE_STEMS[name], name), MEDIA_TYPES):
            path = directory / (stem + suffix)
            try:
                length = path.stat().st_size
                with Image.open(path) as image:  # reads the header only
                    width, height = image.size
            except (OSError, SyntaxError, ValueError):
                continue
            variants[name] = _variant(settings, digest, name, stem + suffix, length, width, height)
            break
        else:
            return None
    return StoredImage(digest, variants["full"], variants["page"], variants["email"], False)


def _variant(
    settings: Settings,
    digest: str,
    name: str,
    filename: str,
    length: int,
    width: int,
    height: int,
) -> Variant:
    suffix = os.path.splitext(filename)[1]
    return Variant(
        name=name,
        path=media_path(digest, filename),
        url=media_url(settings, digest, filename),
        media_type=MEDIA_TYPES[suffix],
        length=length,
        width=width,
        height=height,
    )


def display_name(filename: str, unnamed: str = "the file") -> str:
    """``filename`` fit for a message: one line, at most 200 characters; ``unnamed`` when
    it is empty."""
    cleaned = _NO_CONTROL.sub("?", filename).strip()
    return (cleaned[:197] + "...") if len(cleaned) > 200 else cleaned or unnamed


def megabytes(size: int) -> str:
    """``size`` bytes as a message shows them: ``20.1 MB``."""
    return f"{size / 1_000_000:.1f} MB"
