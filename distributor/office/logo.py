"""The office's logo: an upload (the settings page, the API, the command line) or the file
``DISTRIBUTOR_LOGO_FILE`` names, checked by its content and stored below the public media
directory like a release's images (``releases/media.py``), at a URL that never changes what
it serves: ``/media/<sha256>/office-logo.png`` or ``/media/<sha256>/office-logo.svg``.
(Not ``logo.png``: SpamAssassin's LONG_IMG_URI takes an image named ``/<45+ letters and
digits>/word.png`` for a web bug, and scores the email 1.0 for it; a hyphen in the name
does not match.)

- A PNG is decoded and encoded again by Pillow: no metadata, nothing but pixels.
- An SVG is kept as uploaded, but only if it is a drawing and nothing else: no script, no
  event handler attribute (``onload``…), no reference outside itself (``href``,
  ``url(…)``, ``@import``, a style sheet processing instruction), no foreign object (HTML
  inside the drawing) and no element of another namespace; no DTD, so no entity either
  (defusedxml parses it). A refusal names what was found.

Email clients differ on SVG (Gmail and Outlook show none): a PNG logo reaches every reader.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring
from PIL import Image, UnidentifiedImageError

from distributor.core.config import Settings
from distributor.core.errors import InputError
from distributor.core.identity import Logo, logo_size
from distributor.releases.media import (
    display_name,
    media_path,
    media_root,
    megabytes,
    write_directory,
)

MAX_LOGO_BYTES: Final = 1024 * 1024  # a logo is a few KB; a megabyte is plenty
MAX_LOGO_PIXELS: Final = 4096 * 4096
FIELD: Final = "logo"
# What a stored logo is served as, by suffix (the web app's media server adds .svg for it).
LOGO_TYPES: Final = {".png": "image/png", ".svg": "image/svg+xml"}
LOGO_NAME: Final = "office-logo"  # the stored file's name, before its suffix (see above)
_SVG_NS: Final = "http://www.w3.org/2000/svg"
_XLINK_NS: Final = "http://www.w3.org/1999/xlink"
# Elements that run code, embed another document or reach outside the drawing.
_REFUSED_ELEMENTS: Final = {
    "script": "a script",
    "foreignObject": "a foreign object (HTML inside the drawing)",
    "iframe": "an embedded document",
    "image": "an embedded image (it may load another file)",
    "feImage": "an embedded image (it may load another file)",
    "use": "a reference to another drawing",
    "a": "a link",
    "animate": "an animation (it can change links)",
    "set": "an animation (it can change links)",
    "handler": "an event handler",
    "listener": "an event handler",
}
# url(…) other than url(#id), and @import: both load something else.
_EXTERNAL_CSS: Final = re.compile(r"url\(\s*['\"]?\s*(?!#)|@import", re.IGNORECASE)
_LENGTH: Final = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(?:px)?\s*")


@dataclass(frozen=True)
class StoredLogo:
    """A logo stored below ``public/media/``: its site path and its natural size (pixels
    for a PNG, user units for an SVG)."""

    path: str
    width: float
    height: float

    def to_json(self) -> str:
        """As the identity table keeps it."""
        return json.dumps({"path": self.path, "width": self.width, "height": self.height})

    @classmethod
    def from_json(cls, value: str) -> StoredLogo | None:
        """What :meth:`to_json` wrote; None for anything else (a row written by hand)."""
        try:
            data = json.loads(value)
            return cls(str(data["path"]), float(data["width"]), float(data["height"]))
        except (ValueError, KeyError, TypeError):
            return None

    def logo(self, settings: Settings) -> Logo:
        """The logo as emails and pages show it: absolute URL, masthead size."""
        width, height = logo_size(self.width, self.height)
        return Logo(self.path, settings.site_url + self.path, width, height)


def store_logo(settings: Settings, data: bytes, filename: str) -> StoredLogo:
    """Check ``data`` (an upload named ``filename``, used in messages) as a PNG or an SVG
    logo and store it (once per content). InputError naming the field ``logo`` and why for
    anything else: empty, over :data:`MAX_LOGO_BYTES`, neither format, a broken PNG, an SVG
    with anything but drawing in it (see the module docstring)."""
    name = display_name(filename, "the logo")
    if not data:
        raise InputError(f"logo: {name} is empty", field=FIELD)
    if len(data) > MAX_LOGO_BYTES:
        raise InputError(
            f"logo: {name} is {megabytes(len(data))}, more than the "
            f"{megabytes(MAX_LOGO_BYTES)} a logo may have",
            field=FIELD,
        )
    width: float
    height: float
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        filename_out = f"{LOGO_NAME}.png"
        stored, width, height = _clean_png(data, name)
    elif _looks_like_xml(data):
        width, height = _check_svg(data, name)
        filename_out, stored = f"{LOGO_NAME}.svg", data
    else:
        raise InputError(
            f"logo: {name} is neither a PNG nor an SVG image (by its content, whatever its "
            "name says)",
            field=FIELD,
        )
    digest = hashlib.sha256(stored).hexdigest()
    target = media_root(settings) / digest / filename_out
    if not target.is_file():
        write_directory(
            settings,
            digest,
            {filename_out: stored},
            lambda d: d if (d / filename_out).is_file() else None,
        )
    return StoredLogo(media_path(digest, filename_out), width, height)


def logo_from_file(settings: Settings, path: Path) -> StoredLogo:
    """The logo of ``DISTRIBUTOR_LOGO_FILE``, checked and stored as an upload is. Raises
    InputError (as :func:`store_logo`) for a file that cannot be read or is refused."""
    try:
        data = path.read_bytes()[: MAX_LOGO_BYTES + 1]
    except OSError as exc:
        raise InputError(f"DISTRIBUTOR_LOGO_FILE: cannot read {path}: {exc}", field=FIELD) from exc
    return store_logo(settings, data, str(path))


def _clean_png(data: bytes, name: str) -> tuple[bytes, int, int]:
    """The PNG re-encoded by Pillow (pixels only), with its width and height."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if image.width * image.height > MAX_LOGO_PIXELS:
                raise InputError(
                    f"logo: {name} is {image.width}×{image.height} pixels; a logo may have "
                    f"at most {MAX_LOGO_PIXELS:,}",
                    field=FIELD,
                )
            image.load()
            mode = "RGBA" if image.mode in ("RGBA", "LA", "P", "PA") else "RGB"
            clean = image.convert(mode)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InputError(f"logo: {name} is not a whole PNG image", field=FIELD) from None
    out = io.BytesIO()
    clean.save(out, "PNG", optimize=True)
    return out.getvalue(), clean.width, clean.height


def _looks_like_xml(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype"))


def _check_svg(data: bytes, name: str) -> tuple[float, float]:
    """The SVG's size (width and height, else its viewBox's), after checking that it is
    nothing but a drawing; InputError naming what else it holds."""
    if b"<?xml-stylesheet" in data:
        raise InputError(f"logo: {name} loads a style sheet from elsewhere", field=FIELD)
    try:
        root = fromstring(data, forbid_dtd=True)
    except DefusedXmlException:
        raise InputError(
            f"logo: {name} has a DTD or entities; an SVG logo needs none", field=FIELD
        ) from None
    except (ParseError, ValueError):
        raise InputError(f"logo: {name} is not a well-formed SVG file", field=FIELD) from None
    if root.tag != f"{{{_SVG_NS}}}svg":
        raise InputError(
            f"logo: {name} is not an SVG drawing (its root is not <svg> in the SVG namespace)",
            field=FIELD,
        )
    for element in root.iter():
        _check_element(element, name)
    return _svg_size(root, name)


def _check_element(element: Element, name: str) -> None:
    namespace, _, local = str(element.tag).rpartition("}")
    if namespace.lstrip("{") != _SVG_NS:
        raise InputError(
            f"logo: {name} holds an element of another language (<{local}>): only SVG is taken",
            field=FIELD,
        )
    if local in _REFUSED_ELEMENTS:
        raise InputError(
            f"logo: {name} holds {_REFUSED_ELEMENTS[local]} (<{local}>): a logo must be a "
            "drawing only",
            field=FIELD,
        )
    if local == "style" and _EXTERNAL_CSS.search(element.text or ""):
        raise InputError(
            f"logo: {name} has a style that loads something from elsewhere (url() or @import)",
            field=FIELD,
        )
    for attribute, value in element.attrib.items():
        attr = attribute.rpartition("}")[2]
        if attr.lower().startswith("on"):
            raise InputError(
                f"logo: {name} has an event handler ({attr} on <{local}>): a logo runs no code",
                field=FIELD,
            )
        if attr == "href" and not value.strip().startswith("#"):
            raise InputError(
                f"logo: {name} refers to something outside itself (href on <{local}>)",
                field=FIELD,
            )
        if _EXTERNAL_CSS.search(value):
            raise InputError(
                f"logo: {name} refers to something outside itself ({attr} on <{local}>)",
                field=FIELD,
            )


def _svg_size(root: Element, name: str) -> tuple[float, float]:
    width, height = (_LENGTH.fullmatch(root.get(a) or "") for a in ("width", "height"))
    if width and height:
        return float(width.group(1)), float(height.group(1))
    box = (root.get("viewBox") or "").replace(",", " ").split()
    try:
        w, h = float(box[2]), float(box[3])
    except (IndexError, ValueError):
        w = h = 0.0
    if w <= 0 or h <= 0:
        raise InputError(
            f"logo: {name} says neither its size (width and height in px) nor a viewBox; "
            "an email needs one to show it at the right size",
            field=FIELD,
        )
    return w, h
