"""Every word the release email prints by itself, in English and French, in one place; and
dates written the way each language writes them ("20 November 2026", "20 novembre 2026").

An unknown language falls back to English, key by key.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

NBSP = "\u00a0"  # French puts a no-break space before ":" so it never starts a line

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "press_release": "Press release",
        "press_contacts": "Press contacts",
        "unsubscribe": "Unsubscribe",
        "preferences": "Manage your subscription",
        "subscribed_to": "You receive this email because you subscribed to: {topics}.",
        "subscribed_any": "You receive this email because you subscribed to the press "
        "releases of {organisation}.",
        "high_res": "High-resolution image",
        "photo": "Photo:",
        "colon": ":",
        "read_online": "Read online",
        "list_name": "{organisation} press releases",
    },
    "fr": {
        "press_release": "Communiqué de presse",
        "press_contacts": "Contacts presse",
        "unsubscribe": "Se désabonner",
        "preferences": "Gérer votre abonnement",
        "subscribed_to": f"Vous recevez ce message car vous êtes abonné(e) à{NBSP}: {{topics}}.",
        "subscribed_any": "Vous recevez ce message car vous êtes abonné(e) aux communiqués "
        "de presse de {organisation}.",
        "high_res": "Image haute définition",
        "photo": f"Photo{NBSP}:",
        "colon": f"{NBSP}:",
        "read_online": "Lire en ligne",
        "list_name": "Communiqués de presse – {organisation}",
    },
}

MONTHS: dict[str, tuple[str, ...]] = {
    "en": (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
    "fr": (
        "janvier", "février", "mars", "avril", "mai", "juin",
        "juillet", "août", "septembre", "octobre", "novembre", "décembre",
    ),
}  # fmt: skip


def _primary(lang: str) -> str:
    """``fr-CA`` → ``fr``; the language subtag, lower case."""
    return lang.split("-")[0].split("_")[0].lower()


def labels_for(lang: str) -> Mapping[str, str]:
    """The labels for ``lang`` (``fr``, ``fr-CA``, ``en``…); missing ones are in English."""
    return {**LABELS["en"], **LABELS.get(_primary(lang), {})}


def format_date(day: date, lang: str) -> str:
    """``day`` written out in ``lang``: "20 November 2026", "20 novembre 2026", "1er mai 2026".

    Unknown languages get the English form.
    """
    code = _primary(lang)
    month = MONTHS.get(code, MONTHS["en"])[day.month - 1]
    number = "1er" if code == "fr" and day.day == 1 else str(day.day)
    return f"{number} {month} {day.year}"
