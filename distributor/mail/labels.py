"""Every word the release email prints by itself, named in one place (translated through
the gettext catalogs); and dates written the way each language writes them
("20 November 2026", "20 novembre 2026"), as the pages write them (``core.formats``).

An unknown language falls back to English, label by label.
"""

from __future__ import annotations

from collections.abc import Mapping

from distributor.core.i18n import gettext_for

NBSP = "\u00a0"  # French puts a no-break space before ":" so it never starts a line

# The English text of each label is its msgid in the gettext catalogs (distributor/locale).
LABELS: dict[str, str] = {
    "press_release": "Press release",
    "press_contacts": "Press contacts",
    "unsubscribe": "Unsubscribe",
    "preferences": "Manage your subscription",
    "subscribed_to": "You receive this email because you subscribed to: {topics}.",
    "subscribed_any": "You receive this email because you subscribed to the press releases "
    "of {organisation}.",
    "high_res": "High-resolution image",
    "documents": "Documents",
    "photo": "Photo:",
    "colon": ":",
    "read_online": "Read online",
    "privacy": "Privacy policy",
    "list_name": "{organisation} press releases",
    # An embargoed advance copy (outbox/advance.py): its subject, and the banner on top.
    "embargoed_until": "EMBARGOED until {when}",
    "embargoed_subject": "EMBARGOED until {when}: {title}",
    "embargo_note": "An advance copy for accredited journalists: not to be published, "
    "broadcast or posted before then, in any form. The link below is yours alone.",
}


def labels_for(lang: str) -> Mapping[str, str]:
    """The labels in ``lang`` (``fr``, ``fr-CA``, ``en``…), from its gettext catalog; a
    label the catalog lacks stays in English."""
    translate = gettext_for(lang)
    return {key: translate(text) for key, text in LABELS.items()}
