"""The double opt-in email: one per subscription request, in the language it asked for
(its ledger: ``outbox/confirmations.py``).

It carries the confirm link and no preferences or unsubscribe link: until it is confirmed,
there is no subscription to manage, and ignoring the email is all it takes to get nothing
more. Rendered as every email is (``render.render_pair``) and built as every email is
(``compose.one_message``: the same From, Subject, Date, MIME layout and quoted-printable
parts); to an internationalised address, the address is written in UTF-8 (RFC 6532) and the
message goes with SMTPUTF8.
"""

from __future__ import annotations

from email.utils import make_msgid

from distributor.core.config import Settings
from distributor.core.i18n import gettext_for
from distributor.core.identity import Identity
from distributor.core.models import SubscriptionRequest, Topic
from distributor.mail.compose import one_message
from distributor.mail.render import render_pair


def confirmation_message(
    settings: Settings,
    identity: Identity,
    request: SubscriptionRequest,
    topics: list[Topic],
    confirm_url: str,
    message_id: str | None = None,
) -> bytes:
    """The confirmation email for ``request`` (HTML + text) from ``identity`` naming its
    ``topics``, ready for
    SMTP DATA; it goes to the address as given in the request (the address only: the name
    is not confirmed yet). ``message_id`` (a new one if not given) is the same every time
    the outbox builds the same row's email."""
    lang = request.language
    _ = gettext_for(lang)
    values = {
        "_": _,
        "lang": lang,
        **identity.brand(lang),
        "confirm_url": confirm_url,
        "topics": ", ".join(sorted(t.name(lang) for t in topics)),
        "days": settings.confirm_max_age_days,
    }
    text, html = render_pair(settings, "confirm", values)
    subject = _("Confirm your subscription to the press releases of %(organisation)s")
    domain = settings.sender_domain
    # Gmail's feedback loop (CampaignId:CustomerId:MailTypeId:SenderId), as release emails.
    feedback = f"Feedback-ID: confirm:{lang}:subscription:{domain}\r\n"
    return one_message(
        identity,
        to=request.email,
        subject=subject % {"organisation": identity.name(lang)},
        language=lang,
        message_id=message_id or make_msgid("confirm", domain=domain),
        text=text,
        html_body=html,
        fields="Auto-Submitted: auto-generated\r\n" + feedback,
    )
