"""Where the office's identity comes from, decided in one place (:func:`identity`): for each
field, a value set in the environment (``DISTRIBUTOR_*``, automated set-ups) wins; otherwise
the value set on the settings page (the ``identity_settings`` table); otherwise the default
(what the emails showed before there was a page).

The fields, by the names the page, the API and ``distributor settings set`` use:

    organisation        the name in the default language    DISTRIBUTOR_ORGANISATION
    organisation_<lang> the name in another language        DISTRIBUTOR_ORGANISATION_NAMES
    logo                PNG or SVG (office/logo.py)         DISTRIBUTOR_LOGO_FILE
    accent_colour       #rrggbb, 4.5:1 against white        DISTRIBUTOR_ACCENT_COLOUR
    postal_address      a few lines                         DISTRIBUTOR_POSTAL_ADDRESS
    privacy_url         http(s)                             DISTRIBUTOR_PRIVACY_URL
    sender              the From of every email             DISTRIBUTOR_SENDER
    reply_to            the Reply-To of every email         DISTRIBUTOR_REPLY_TO
    press_contacts      address book ids a release starts with (the page only)
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.core import identity as checks
from distributor.core.config import Settings
from distributor.core.errors import InputError
from distributor.core.identity import DEFAULT_ACCENT, Identity, Logo
from distributor.core.models import IdentitySetting, PressContact, utcnow
from distributor.office.logo import StoredLogo, logo_from_file, store_logo

DEFAULT_SENDER = "Press Office <press@example.org>"  # Settings' default, for the page's hint
_SIMPLE = ("accent_colour", "postal_address", "privacy_url", "sender", "reply_to")
# DISTRIBUTOR_LOGO_FILE's logo by (data dir, file, size, time of change): checked once.
_FILE_LOGOS: dict[tuple[Path, Path, int, int], StoredLogo] = {}
LABELS = {
    "organisation": "Organisation's name",
    "logo": "Logo",
    "accent_colour": "Accent colour",
    "postal_address": "Postal address",
    "privacy_url": "Privacy policy (URL)",
    "sender": "Default sender",
    "reply_to": "Reply-To",
    "press_contacts": "Default press contacts",
}


@dataclass(frozen=True)
class FieldState:
    """One field as the settings page, the API and the CLI show it: its value in effect
    (a string; a list of ids for ``press_contacts``; the logo's URL or "") and, when the
    environment sets it, the variable that does (the field is then read-only)."""

    key: str
    label: str
    value: Any
    set_by: str | None


def field_keys(settings: Settings) -> list[str]:
    """The identity's fields, in the order the page shows them."""
    names = [f"organisation_{lang}" for lang in settings.languages[1:]]
    return ["organisation", *names, "logo", *_SIMPLE, "press_contacts"]


def label(settings: Settings, key: str) -> str:
    """What the page calls field ``key``."""
    if key.startswith("organisation_"):
        return f"Organisation's name ({key.removeprefix('organisation_')})"
    if key == "organisation":
        return f"{LABELS['organisation']} ({settings.languages[0]})"
    return LABELS[key]


def set_by(settings: Settings, key: str) -> str | None:
    """The ``DISTRIBUTOR_*`` variable that sets field ``key``, or None when none does."""
    if key in ("organisation", "sender"):
        return f"DISTRIBUTOR_{key.upper()}" if key in settings.model_fields_set else None
    if key.startswith("organisation_"):
        lang = key.removeprefix("organisation_")
        return "DISTRIBUTOR_ORGANISATION_NAMES" if lang in settings.organisation_names else None
    if key == "logo":
        return "DISTRIBUTOR_LOGO_FILE" if settings.logo_file is not None else None
    if key in _SIMPLE:
        return f"DISTRIBUTOR_{key.upper()}" if getattr(settings, key) is not None else None
    return None


def stored_values(session: Session) -> dict[str, str]:
    """The values set on the settings page, by field."""
    return {row.key: row.value for row in session.scalars(select(IdentitySetting))}


def identity(session: Session, settings: Settings) -> Identity:
    """The identity in effect: per field, the environment's value, else the page's, else
    the default. The one place they are merged. Raises InputError (field ``logo``) when
    ``DISTRIBUTOR_LOGO_FILE`` names a file that is not a logo."""
    return _merge(settings, stored_values(session))


def environment_identity(settings: Settings) -> Identity:
    """The identity as if nothing were set on the settings page: the environment's values,
    else the defaults (for tests, benchmarks and tools without a database)."""
    return _merge(settings, {})


def _merge(settings: Settings, stored: Mapping[str, str]) -> Identity:
    value = functools.partial(_effective, settings, stored)
    names = [(settings.languages[0], value("organisation"))]
    names += [
        (lang, value(f"organisation_{lang}"))
        for lang in settings.languages[1:]
        if value(f"organisation_{lang}")
    ]
    return Identity(
        names=tuple(names),
        accent_colour=value("accent_colour") or DEFAULT_ACCENT,
        postal_address=value("postal_address"),
        privacy_url=value("privacy_url"),
        sender=value("sender"),
        reply_to=value("reply_to"),
        logo=_logo(settings, stored),
        press_contacts=tuple(_ids(stored.get("press_contacts", "[]"))),
    )


def describe(session: Session, settings: Settings) -> list[FieldState]:
    """Every field with its value in effect and the variable setting it, if any (the page,
    ``GET /api/settings``, ``distributor settings show``)."""
    stored = stored_values(session)
    current = identity(session, settings)
    states = []
    for key in field_keys(settings):
        shown: Any
        if key == "logo":
            shown = current.logo.url if current.logo else ""
        elif key == "press_contacts":
            shown = list(current.press_contacts)
        else:
            shown = _effective(settings, stored, key)
        states.append(FieldState(key, label(settings, key), shown, set_by(settings, key)))
    return states


def update_identity(
    session: Session,
    settings: Settings,
    changes: Mapping[str, Any],
    logo_upload: tuple[str, bytes] | None = None,
) -> dict[str, Any]:
    """Set the fields of ``changes`` (a string each; a list of ids for ``press_contacts``;
    "" puts a field back to its default, ``logo`` "" removes the logo) and the logo
    ``logo_upload`` (file name, bytes), each checked first: nothing is stored unless every
    one passes. Returns what changed, field by field (the logo as its path), for the audit
    record. InputError naming the field: an unknown field, a value refused by its check, a
    field set in the environment (read-only here)."""
    keys = field_keys(settings)
    wanted = dict(changes)
    for key in wanted:
        if key not in keys:
            raise InputError(f"{key}: not a setting (they are: {', '.join(keys)})", field=key)
    checked: dict[str, str | None] = {}
    for key, raw in wanted.items():
        checked[key] = _checked(session, settings, key, raw)
    if logo_upload is not None:
        _refuse_if_env(settings, "logo")
        checked["logo"] = store_logo(settings, logo_upload[1], logo_upload[0]).to_json()
    stored = stored_values(session)
    changed: dict[str, Any] = {}
    for key, value in checked.items():
        if (value or None) == (stored.get(key) or None):
            continue
        row = session.get(IdentitySetting, key)
        if value is None or value == "":
            if row is not None:
                session.delete(row)
        elif row is None:
            session.add(IdentitySetting(key=key, value=value, updated_at=utcnow()))
        else:
            row.value, row.updated_at = value, utcnow()
        changed[key] = _shown(key, value)
    session.flush()
    return changed


def _checked(session: Session, settings: Settings, key: str, raw: Any) -> str | None:
    """``raw`` as field ``key`` stores it (None: back to the default)."""
    _refuse_if_env(settings, key)
    if key == "press_contacts":
        return _checked_contacts(session, raw)
    if not isinstance(raw, str):
        raise InputError(f"{key}: must be text", field=key)
    if key == "organisation":
        return checks.check_name(raw, key, required=True)
    if key.startswith("organisation_"):
        return checks.check_name(raw, key, required=False) or None
    if key == "logo":
        if raw.strip():
            raise InputError('logo: upload a file, or give "" to remove the logo', field=key)
        return None
    if key == "accent_colour":
        return checks.check_colour(raw, key) if raw.strip() else None
    if key == "postal_address":
        return checks.check_postal_address(raw, key) or None
    if key == "privacy_url":
        return checks.check_url(raw, key) or None
    if key == "sender":
        sender = checks.check_mailbox(raw, key, required=True)
        _same_domain(settings, sender)
        return sender
    return checks.check_mailbox(raw, key, required=False) or None


def _checked_contacts(session: Session, raw: Any) -> str | None:
    field = "press_contacts"
    if isinstance(raw, str):
        raw = [part for part in raw.replace(",", " ").split() if part]
    if not isinstance(raw, list):
        raise InputError(f"{field}: must be a list of address book ids", field=field)
    ids: list[int] = []
    for item in raw:
        try:
            number = int(item)
        except (TypeError, ValueError):
            raise InputError(f"{field}: {item!r} is not an address book id", field=field) from None
        if session.get(PressContact, number) is None:
            raise InputError(f"{field}: no press contact {number} in the address book", field=field)
        if number not in ids:
            ids.append(number)
    return json.dumps(ids) if ids else None


def _same_domain(settings: Settings, sender: str) -> None:
    """Refuse a sender whose domain is not DISTRIBUTOR_SENDER's: the envelope, the bounce
    addresses and DKIM's signature are that domain's, and a From of another one fails the
    receivers' DMARC alignment (and lands in spam)."""
    domain = parseaddr(sender)[1].rpartition("@")[2].lower()
    if domain != settings.sender_domain.lower():
        raise InputError(
            f"sender: the address must be at {settings.sender_domain}, the domain emails are "
            "signed for and bounces come back to (DISTRIBUTOR_SENDER); a From at another "
            "domain fails receivers' DMARC checks. Set DISTRIBUTOR_SENDER to move domains.",
            field="sender",
        )


def _refuse_if_env(settings: Settings, key: str) -> None:
    variable = set_by(settings, key)
    if variable is not None:
        raise InputError(
            f"{key}: set by {variable} in the environment, which wins; change it there",
            field=key,
        )


def _shown(key: str, value: str | None) -> Any:
    if value is None:
        return ""
    if key == "logo":
        stored = StoredLogo.from_json(value)
        return stored.path if stored else ""
    if key == "press_contacts":
        return _ids(value)
    return value


def _effective(settings: Settings, stored: Mapping[str, str], key: str) -> str:
    """Field ``key``'s text in effect (environment, page, default)."""
    if key == "organisation":
        env = settings.organisation if set_by(settings, key) else None
        return env or stored.get(key) or settings.organisation
    if key.startswith("organisation_"):
        lang = key.removeprefix("organisation_")
        return settings.organisation_names.get(lang) or stored.get(key) or ""
    if key == "sender":
        env = settings.sender if set_by(settings, key) else None
        return env or stored.get(key) or settings.sender
    if key in _SIMPLE:
        return str(getattr(settings, key) or stored.get(key) or "")
    return stored.get(key, "")


def _logo(settings: Settings, stored: Mapping[str, str]) -> Logo | None:
    found: StoredLogo | None
    if settings.logo_file is not None:
        found = _logo_file(settings, settings.logo_file)
    else:
        found = StoredLogo.from_json(stored["logo"]) if "logo" in stored else None
    return found.logo(settings) if found else None


def _logo_file(settings: Settings, path: Path) -> StoredLogo:
    """DISTRIBUTOR_LOGO_FILE's logo, checked and stored once per content of the file (its
    size and time of change), not at every identity read."""
    try:
        st = path.stat()
    except OSError as exc:
        raise InputError(f"DISTRIBUTOR_LOGO_FILE: cannot read {path}: {exc}", field="logo") from exc
    key = (settings.data_dir.resolve(), path, st.st_size, st.st_mtime_ns)
    if key not in _FILE_LOGOS:
        if len(_FILE_LOGOS) > 8:
            _FILE_LOGOS.clear()
        _FILE_LOGOS[key] = logo_from_file(settings, path)
    return _FILE_LOGOS[key]


def _ids(value: str) -> list[int]:
    try:
        data = json.loads(value)
    except ValueError:
        return []
    return [int(i) for i in data if isinstance(i, int)] if isinstance(data, list) else []
