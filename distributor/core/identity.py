"""The press office's identity as every email and page shows it (:class:`Identity`), and
the checks each of its values passes, wherever it comes from (the settings page, the API,
the command line or a ``DISTRIBUTOR_*`` variable).

Where a value comes from — the environment, the settings page's table, or the default — is
decided in one place only: ``office.identity.identity``. Everything else reads an Identity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any, Final
from urllib.parse import urlsplit

from distributor.core.errors import InputError
from distributor.core.i18n import gettext_for
from distributor.core.sanitize import line_problem

# The name an office that never gave its own goes by: translated in each language it is
# shown in (Identity.name), as every other fixed label.
DEFAULT_ORGANISATION: Final = "Press Office"
DEFAULT_ACCENT: Final = "#1c3d6e"  # the masthead's navy before there was a settings page
MAX_NAME: Final = 200
MAX_POSTAL: Final = 400  # characters: an address of a few lines
MAX_POSTAL_LINES: Final = 6
MAX_URL: Final = 500
# The accent colour is the masthead's text and rule on white, and the background of the
# emails' buttons under white text: both need WCAG's 4.5:1 for normal text.
MIN_CONTRAST: Final = 4.5
LOGO_HEIGHT: Final = 40  # CSS px: the logo's height in an email's masthead
LOGO_MAX_WIDTH: Final = 240  # CSS px: fits the masthead on a 390 px phone (less padding)
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")


@dataclass(frozen=True)
class Logo:
    """The office's logo as stored (``office/logo.py``): its site path, its absolute URL
    and the size an email's masthead shows it at (CSS px, the file's proportions)."""

    path: str  # /media/<sha256>/logo.png or logo.svg
    url: str
    width: int
    height: int


@dataclass(frozen=True)
class Identity:
    """Who the emails and pages say they are from. Hashable: a rendered email is kept for
    as long as both its release and the identity it was rendered with are unchanged."""

    names: tuple[tuple[str, str], ...]  # (language, name), the default language first
    accent_colour: str
    postal_address: str  # lines separated by "\n"; "" for none
    privacy_url: str  # "" for none
    sender: str  # "Name <address>": the From of every email
    reply_to: str  # "" for none: replies go to the sender
    logo: Logo | None = None
    press_contacts: tuple[int, ...] = ()  # address book ids a new release starts with

    @property
    def organisation(self) -> str:
        """The organisation's name in the default language."""
        return self.names[0][1]

    def name(self, lang: str) -> str:
        """The organisation's name in ``lang``, or in the default language when it has none
        in ``lang``; the default name, never set by the office, translated."""
        if (own := dict(self.names).get(lang)) is not None and own:
            return own
        if self.organisation == DEFAULT_ORGANISATION:
            return gettext_for(lang)(DEFAULT_ORGANISATION)
        return self.organisation

    @property
    def postal_lines(self) -> list[str]:
        """The postal address's lines, without blank ones."""
        return [line.strip() for line in self.postal_address.split("\n") if line.strip()]

    def brand(self, lang: str) -> dict[str, Any]:
        """What the email and page templates show of the identity in ``lang``: the
        organisation's name, the logo (None or a :class:`Logo`), the accent colour, the
        postal address's lines and the privacy policy's URL."""
        return {
            "organisation": self.name(lang),
            "logo": self.logo,
            "accent": self.accent_colour,
            "postal_lines": self.postal_lines,
            "privacy_url": self.privacy_url,
        }


def check_name(value: str, field: str, *, required: bool) -> str:
    """``value`` stripped, as an organisation's name (one line, at most 200 characters; ""
    only when not ``required``). InputError naming ``field`` otherwise."""
    value = value.strip()
    if not value:
        if required:
            raise InputError(f"{field}: the organisation needs a name", field=field)
        return ""
    problem = line_problem(value)
    if problem is not None:
        raise InputError(f"{field}: {problem}", field=field)
    if len(value) > MAX_NAME:
        raise InputError(f"{field}: longer than {MAX_NAME} characters", field=field)
    return value


def contrast_with_white(colour: str) -> float:
    """WCAG 2's contrast ratio between ``colour`` (#rrggbb) and white: 1 to 21."""

    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(colour[i : i + 2]) for i in (1, 3, 5))
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return 1.05 / (luminance + 0.05)


def check_colour(value: str, field: str = "accent_colour") -> str:
    """``value`` as ``#rrggbb`` in lower case, dark enough to carry white text and to be
    read on white (:data:`MIN_CONTRAST`). InputError naming ``field`` otherwise."""
    value = value.strip()
    if not _COLOUR.fullmatch(value):
        raise InputError(
            f"{field}: {value[:20]!r} is not a colour written #rrggbb (such as #1c3d6e)",
            field=field,
        )
    ratio = contrast_with_white(value)
    if ratio < MIN_CONTRAST:
        raise InputError(
            f"{field}: {value} is too light: its contrast with white is {ratio:.1f}:1, and "
            f"the masthead's text and the buttons' white text need {MIN_CONTRAST}:1; "
            "choose a darker shade",
            field=field,
        )
    return value.lower()


def check_postal_address(value: str, field: str = "postal_address") -> str:
    """``value`` as a postal address: at most 6 lines of one-line text and 400 characters,
    blank lines and the spaces around each line removed ("" for none). InputError naming
    ``field`` otherwise."""
    lines = [line.strip() for line in value.replace("\r\n", "\n").split("\n") if line.strip()]
    for number, line in enumerate(lines, 1):
        problem = line_problem(line)
        if problem is not None:
            raise InputError(f"{field}, line {number}: {problem}", field=field)
    if len(lines) > MAX_POSTAL_LINES:
        raise InputError(f"{field}: more than {MAX_POSTAL_LINES} lines", field=field)
    joined = "\n".join(lines)
    if len(joined) > MAX_POSTAL:
        raise InputError(f"{field}: longer than {MAX_POSTAL} characters", field=field)
    return joined


def check_url(value: str, field: str = "privacy_url") -> str:
    """``value`` as an absolute http(s) URL of printable ASCII ("" for none). InputError
    naming ``field`` otherwise."""
    value = value.strip()
    if not value:
        return ""
    shown = value if len(value) <= 80 else value[:79] + "…"
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or not re.fullmatch(r"[!-~]+", value)
        or any(c in value for c in "<>\"'")
    ):
        raise InputError(
            f"{field}: {shown!r} is not an absolute http:// or https:// address of a web page",
            field=field,
        )
    if len(value) > MAX_URL:
        raise InputError(f"{field}: longer than {MAX_URL} characters", field=field)
    return value


def check_mailbox(value: str, field: str, *, required: bool) -> str:
    """``value`` as a mailbox, ``Name <address>`` or a bare address (checked by
    email-validator, as subscribers' addresses are), written ``Name <address>`` with the
    address's domain as an A-label; "" for none when not ``required``. InputError naming
    ``field`` otherwise."""
    value = value.strip()
    if not value:
        if required:
            raise InputError(f"{field}: an address is needed", field=field)
        return ""
    if any(c in value for c in "\r\n\x00"):
        raise InputError(f"{field}: must be on one line", field=field)
    name, address = parseaddr(value)
    if "@" not in address:
        raise InputError(
            f"{field}: {value[:80]!r} is not an address ('Name <press@example.org>')",
            field=field,
        )
    from email_validator import EmailNotValidError, validate_email  # see config.py

    try:
        checked = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise InputError(f"{field}: {address[:80]!r}: {exc}", field=field) from exc
    problem = line_problem(name)
    if problem is not None or len(name) > MAX_NAME:
        why = problem or f"longer than {MAX_NAME} characters"
        raise InputError(f"{field}: the name {name[:40]!r}: {why}", field=field)
    bare = f"{checked.local_part}@{checked.ascii_domain}"
    if not name:
        return bare
    if re.search(r'[()<>@,;:\\".\[\]]', name):  # RFC 5322 specials: a quoted string
        name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{name} <{bare}>"


def logo_size(width: float, height: float) -> tuple[int, int]:
    """The size (CSS px) a logo of ``width`` × ``height`` is shown at in a masthead:
    :data:`LOGO_HEIGHT` high, or narrower than :data:`LOGO_MAX_WIDTH`, in its proportions."""
    if width <= 0 or height <= 0:
        return LOGO_HEIGHT, LOGO_HEIGHT
    scale = min(LOGO_HEIGHT / height, LOGO_MAX_WIDTH / width)
    return max(1, round(width * scale)), max(1, round(height * scale))
