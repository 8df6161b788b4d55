"""A release email's raw material and how a reader's mail program takes it apart: a French
release with every field filled, a recipient with signed links, and the parsed message
and its two parts (the compose, header-fuzz and release-field tests)."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage

from distributor.core.config import Settings
from distributor.core.models import Release, Topic
from distributor.core.sanitize import markdown_to_html
from distributor.core.urls import preferences_url, unsubscribe_url
from distributor.mail.compose import Recipient

BODY_MD = """Le ministre a déclaré que la coopération internationale était essentielle au suivi \
du climat européen, et que l'Agence y prendrait toute sa part.

> « Nous devons agir ensemble », a déclaré la directrice générale.

.Cette ligne commence par un point.

Voir [le rapport complet](/rapports/2026-climat.pdf) et la [carte](https://example.net/carte).
"""


def french_release(**overrides: object) -> Release:
    """A detached French release (id 7) with a contact, an image and two topics, as the
    composer gets it; ``overrides`` replace fields."""
    values: dict[str, object] = {
        "id": 7,
        "slug": "accord-climat",
        "title": "L'Agence signe un accord de coopération européen sur la surveillance du "
        "climat et des océans",
        "language": "fr",
        "dateline": "Paris",
        "lead": "Huit agences européennes mettent en commun leurs données.",
        "body_html": markdown_to_html(BODY_MD),
        "body_text": BODY_MD,
        "date": datetime(2026, 11, 20, 8, tzinfo=UTC),
        "contacts": [
            {
                "name": "Jeanne Dupont",
                "role": "Attachée de presse",
                "phone": "+33 1 00 00 00 00",
                "email": "presse@example.org",
            }
        ],
        "images": [
            {
                "src": "/media/signature.jpg",
                "alt": "La signature à Paris",
                "credit": "Agence / J. Martin",
                "href": "/media/signature-hd.jpg",
            }
        ],
        "topics": [
            Topic(slug="climat", names={"fr": "Climat", "en": "Climate"}),
            Topic(slug="international", names={"en": "International"}),
        ],
    }
    values.update(overrides)
    return Release(**values)


def recipient(settings: Settings, subscriber_id: int, name: str = "Jean Martin") -> Recipient:
    """Reader ``subscriber_id`` (readerN@example.com) with signed unsubscribe and preference
    links."""
    return Recipient(
        subscriber_id=subscriber_id,
        email=f"reader{subscriber_id}@example.com",
        name=name,
        unsubscribe_url=unsubscribe_url(settings, subscriber_id, "a-link-nonce"),
        preferences_url=preferences_url(settings, subscriber_id, "a-link-nonce"),
    )


def parse_email(data: bytes) -> EmailMessage:
    """The message as a mail program reads it, with no defect found in it."""
    msg = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    assert not msg.defects
    return msg


def parts(msg: EmailMessage) -> tuple[str, str]:
    """The text and HTML parts' contents, line breaks as a program reading them sees them."""
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    # MIME's canonical line break is CRLF; compare text as a program reading it would
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")
