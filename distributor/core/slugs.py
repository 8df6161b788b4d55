"""Slugs: ASCII, lowercase words joined by hyphens, bounded in length — a release's URL
(``releases/<slug>``) and a stored document's file name (``media/<sha256>/<slug>.pdf``)."""

from __future__ import annotations

import re
import unicodedata
from typing import Final

SLUG_MAX: Final = 80


def slugify(text: str, *, empty: str = "release", limit: int = SLUG_MAX) -> str:
    """A slug of ``text``: ASCII, lowercase, words joined by hyphens, at most ``limit``
    characters, cut between two words (a single word longer than that is cut inside);
    ``empty`` when nothing of ``text`` is left."""
    slug = whole_slug(text)
    if len(slug) > limit:
        head = slug[: limit + 1]  # a hyphen right after the limit ends a whole word
        cut = head.rfind("-")
        slug = head[:cut] if cut > 0 else slug[:limit]
    return slug.strip("-") or empty


def whole_slug(text: str) -> str:
    """The slug of ``text`` before any cut: what is left of it in ASCII (accents dropped,
    NFKD), lowercase, each run of other characters one hyphen; may be empty."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
