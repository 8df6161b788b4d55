"""The double opt-in email: one per request, in the subscriber's language.

Low volume, so it is built with the standard library's ``EmailMessage`` (SMTP policy: CRLF,
encoded headers) rather than the release fast path. To an internationalised address it is
written with the SMTPUTF8 policy (headers in UTF-8, RFC 6532): the SMTP policy would put
the local part in an encoded-word, which is not an address.
"""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8
from email.utils import format_datetime, make_msgid, parseaddr

import css_inline

from ..config import Settings
from ..i18n import gettext_for
from ..models import Subscriber, utcnow
from .render import environment

_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False)


def confirmation_message(settings: Settings, sub: Subscriber, confirm_url: str) -> bytes:
    """The confirmation email for ``sub`` (HTML + text), ready for SMTP DATA."""
    _ = gettext_for(sub.language)
    env = environment(settings.templates_dir / "email")
    topics = ", ".join(sorted(t.name(sub.language) for t in sub.topics))
    context = {
        "_": _,
        "lang": sub.language,
        "organisation": settings.organisation,
        "confirm_url": confirm_url,
        "topics": topics,
    }
    text = env.get_template("confirm.txt").render(context)
    html = _INLINER.inline(env.get_template("confirm.html").render(context))
    name, address = parseaddr(settings.sender)
    international = not (sub.email.isascii() and settings.sender_address.isascii())
    msg = EmailMessage(policy=SMTPUTF8 if international else SMTP)
    # An IDN sender domain as its A-label, so that only an address's local part needs UTF-8.
    sender = settings.sender_address
    msg["From"] = settings.sender if address == sender else Address(name, addr_spec=sender)
    msg["To"] = sub.email  # the address only: the name is not confirmed yet
    msg["Subject"] = _("Confirm your subscription to the press releases of %(organisation)s") % {
        "organisation": settings.organisation
    }
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_msgid("confirm", domain=settings.sender_domain)
    msg["Auto-Submitted"] = "auto-generated"
    # Gmail's feedback loop (CampaignId:CustomerId:MailTypeId:SenderId), as release emails.
    msg["Feedback-ID"] = f"confirm:{sub.language}:subscription:{settings.sender_domain}"
    msg["Content-Language"] = sub.language
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg.as_bytes()
