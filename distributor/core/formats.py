"""How dates, sizes and file kinds are written for a reader, in their language: "20
novembre 2026", "1,2 Mo", "PDF". Shared by the newsroom's pages and the emails."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from babel import Locale, UnknownLocaleError
from babel.dates import format_datetime
from babel.numbers import format_decimal

from distributor.core.i18n import gettext_for, primary
from distributor.core.sanitize import plain_text

# What a journalist calls a file, by media type; other types show their subtype.
FILE_KINDS: dict[str, str] = {
    "application/pdf": "PDF",
    "application/msword": "Word",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "Word",
    "application/vnd.ms-excel": "Excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "Excel",
    "application/vnd.ms-powerpoint": "PowerPoint",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "PowerPoint",
    "application/vnd.oasis.opendocument.text": "ODT",
    "application/vnd.oasis.opendocument.spreadsheet": "ODS",
    "application/zip": "ZIP",
    "text/csv": "CSV",
    "text/plain": "TXT",
    "image/jpeg": "JPEG",
    "image/svg+xml": "SVG",
}
_SHORT_NAME = re.compile(r"^[A-Za-z0-9]{1,6}$")
# Decimal (SI) units, as file managers and browsers show sizes; the catalog translates
# them (French: o, ko, Mo, Go).
_SIZE_UNITS = ("B", "kB", "MB", "GB")
_NBSP = "\u00a0"  # between a number and its unit: never broken across lines


@lru_cache(maxsize=64)
def _locale(lang: str) -> Locale:
    try:
        return Locale.parse(primary(lang))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


# The months as each language writes them in a date; a language not here is written in English.
MONTHS: dict[str, tuple[str, ...]] = {
    "en": tuple(
        """January February March April May June July August September October November
        December""".split()
    ),
    "fr": tuple(
        """janvier février mars avril mai juin juillet août septembre octobre novembre
        décembre""".split()
    ),
}


def written_date(day: date, lang: str) -> str:
    """``day`` written out in ``lang``, the one form of a date everywhere (pages, feeds'
    pages, emails): "20 November 2026", "20 novembre 2026", "1er mai 2026" (French writes
    the first of the month as an ordinal). Unknown languages get the English form."""
    code = primary(lang)
    month = MONTHS.get(code, MONTHS["en"])[day.month - 1]
    number = "1er" if code == "fr" and day.day == 1 else str(day.day)
    return f"{number} {month} {day.year}"


def long_date(moment: datetime, lang: str, zone: tzinfo = UTC) -> str:
    """The day of ``moment`` in ``zone`` (the press office's: a release at 00:30 in Paris
    is dated that day, not the day before in UTC) written out in ``lang``
    (:func:`written_date`)."""
    return written_date(moment.astimezone(zone).date(), lang)


def embargo_time(moment: datetime, lang: str, zone: tzinfo = UTC) -> str:
    """``moment`` as an embargo is announced, in ``zone`` with its UTC offset, so that a
    reader anywhere knows the instant: "Friday 6 February 2026, 10:00 CET (UTC+01:00)",
    "vendredi 6 février 2026, 10:00 CET (UTC+01:00)"; a zone with no abbreviation shows
    the offset only ("…, 10:00 UTC+04:00"), UTC itself as "10:00 UTC"."""
    local = moment.astimezone(zone)
    day = format_datetime(local, "EEEE d MMMM y", locale=_locale(lang))
    offset = local.strftime("%z")
    utc = f"UTC{offset[:3]}:{offset[3:]}"
    name = local.tzname() or ""
    if offset == "+0000" and name in ("UTC", ""):
        return f"{day}, {local:%H:%M} UTC"
    if not name or name[0] in "+-":
        return f"{day}, {local:%H:%M} {utc}"
    return f"{day}, {local:%H:%M} {name} ({utc})"


@lru_cache(maxsize=4096)  # a page and its feeds give the same files' sizes again and again
def human_size(length: int, lang: str) -> str:
    """``length`` bytes as people read it, in ``lang``: "1.2 MB", "1,2 Mo", "850 B"."""
    _ = gettext_for(lang)
    size, unit = float(length), 0
    while size >= 1000 and unit < len(_SIZE_UNITS) - 1:
        size, unit = size / 1000, unit + 1
    number = format_decimal(size, format="#,##0.#", locale=_locale(lang))
    return f"{number}{_NBSP}{_(_SIZE_UNITS[unit])}"


def file_kind(media_type: str, href: str = "") -> str:
    """What kind of file this is, for a reader: "PDF", "Word", "JPEG"… from its media type,
    else from its name's extension; "" when neither says."""
    if media_type in FILE_KINDS:
        return FILE_KINDS[media_type]
    subtype = media_type.partition("/")[2].removeprefix("x-")
    if _SHORT_NAME.match(subtype):
        return subtype.upper()
    extension = PurePosixPath(urlsplit(href).path).suffix.lstrip(".")
    return extension.upper() if _SHORT_NAME.match(extension) else ""


def document_label(item: Mapping[str, Any]) -> str:
    """What a link to a document says, on its page, in an email and in a feed: its title as
    plain text, else (no title, or one of markup only) the name of its file, so that no link
    is ever empty."""
    title = plain_text(str(item.get("title") or ""))
    if title:
        return title
    href = str(item.get("href") or "")
    return plain_text(unquote(PurePosixPath(urlsplit(href).path).name)) or href


def file_details(item: Mapping[str, Any], lang: str) -> str:
    """A file's kind and size for a link label, "PDF, 1.2 MB", from an attachment's or
    image's ``type``, ``length`` and ``href`` (or ``src``); "" when nothing is known."""
    length = item.get("length")
    parts = [file_kind(str(item.get("type") or ""), str(item.get("href") or item.get("src") or ""))]
    if isinstance(length, int) and length > 0:
        parts.append(human_size(length, lang))
    return ", ".join(part for part in parts if part)
