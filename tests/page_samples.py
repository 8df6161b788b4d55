"""Releases and listings for the page tests, as the builder hands them to the newsroom:
detached Release objects (no database) with a lead, an image, a document and contacts, and
topics climate and space named in English and French."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from distributor.core.models import Release, Topic
from distributor.core.sanitize import markdown_to_html
from distributor.site.newsroom import Listing

CLIMATE = Topic(slug="climate", names={"en": "Climate", "fr": "Climat"})
SPACE = Topic(slug="space", names={"en": "Space", "fr": "Espace"})
TOPICS = [CLIMATE, SPACE]


def release(slug: str = "agreement", lang: str = "en", **fields: Any) -> Release:
    """A detached release, as the builder gets them from the database."""
    values: dict[str, Any] = {
        "slug": slug,
        "title": "Agency signs agreement",
        "language": lang,
        "dateline": "PARIS",
        "lead": "The Agency today signed an agreement.",
        "body_html": markdown_to_html("A second paragraph with a [link](/releases/other)."),
        "body_text": "",
        "date": datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
        "contacts": [{"name": "Jane Doe", "role": "Press officer",
                      "phone": "+33 1 00 00 00 00", "email": "press@example.org"}],
        "images": [{"src": "/media/signing.jpg", "alt": "The signing ceremony",
                    "credit": "Photo: A. Photographer", "href": "/media/signing-hires.jpg",
                    "type": "image/jpeg", "length": 4_200_000}],
        "attachments": [{"href": "/media/backgrounder.pdf", "title": "Backgrounder",
                         "type": "application/pdf", "length": 1_234_567}],
        "topics": [SPACE, CLIMATE],
    }  # fmt: skip
    values.update(fields)
    return Release(**values)


def listing(lang: str = "en", **fields: Any) -> Listing:
    values: dict[str, Any] = {"topic": None, "topics": TOPICS, "releases": [release()],
                              "archive": None, "older": None, "newer": None}  # fmt: skip
    values.update(fields)
    return Listing(lang=lang, **values)
