"""The double opt-in email: one per subscription request, in the language it asked for.

It carries the confirm link and no preferences or unsubscribe link: until it is confirmed,
there is no subscription to manage, and ignoring the email is all it takes to get nothing
more.

Rendered as every email is (``render.render_pair``). Low volume, so it is built with the
standard library's ``EmailMessage`` (SMTP policy: CRLF, encoded headers) rather than the
release fast path. To an internationalised address it is written with the SMTPUTF8 policy
(headers in UTF-8, RFC 6532): the SMTP policy would put the local part in an encoded-word,
which is not an address.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime, make_msgid, parseaddr

from distributor.core.config import Settings
from distributor.core.i18n import gettext_for
from distributor.core.models import SubscriptionRequest, Topic, utcnow
from distributor.mail.render import render_pair


def confirmation_message(
    settings: Settings,
    request: SubscriptionRequest,
    topics: list[Topic],
    confirm_url: str,
    message_id: str | None = None,
) -> bytes:
    """The confirmation email for ``request`` (HTML + text) naming its ``topics``, ready for
    SMTP DATA; it goes to the address as given in the request. ``message_id`` (a new one if
    not given) is the same every time the outbox builds the same row's email."""
    lang = request.language
    _ = gettext_for(lang)
    context = {
        "_": _,
        "lang": lang,
        "organisation": settings.organisation,
        "confirm_url": confirm_url,
        "topics": ", ".join(sorted(t.name(lang) for t in topics)),
        "days": settings.confirm_max_age_days,
    }
    text, html = render_pair(settings, "confirm", context)
    name, address = parseaddr(settings.sender)
    international = not (request.email.isascii() and settings.sender_address.isascii())
    msg = EmailMessage(policy=SMTPUTF8 if international else SMTP)
    # An IDN sender domain as its A-label, so that only an address's local part needs UTF-8.
    sender = settings.sender_address
    msg["From"] = settings.sender if address == sender else Address(name, addr_spec=sender)
    msg["To"] = request.email  # the address only: the name is not confirmed yet
    msg["Subject"] = _("Confirm your subscription to the press releases of %(organisation)s") % {
        "organisation": settings.organisation
    }
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = message_id or make_msgid("confirm", domain=settings.sender_domain)
    msg["Auto-Submitted"] = "auto-generated"
    # Gmail's feedback loop (CampaignId:CustomerId:MailTypeId:SenderId), as release emails.
    msg["Feedback-ID"] = f"confirm:{lang}:subscription:{settings.sender_domain}"
    msg["Content-Language"] = lang
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg.as_bytes()
