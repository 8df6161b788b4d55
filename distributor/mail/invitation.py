"""The invitation to the press office's workspace: who invites, with which role, and the
link where the person chooses a password (its ledger: ``outbox/invitations.py``). English
only, like the workspace itself for now. Built as every email is (``compose.one_message``)."""

from __future__ import annotations

from distributor.core.config import Settings
from distributor.core.identity import Identity
from distributor.core.models import Invitation
from distributor.mail.compose import one_message
from distributor.mail.render import render_pair


def invitation_message(
    settings: Settings,
    identity: Identity,
    invitation: Invitation,
    link: str,
    days: int,
    message_id: str,
) -> bytes:
    """The invitation email for ``invitation``, from ``identity``, with its ``link`` (valid ``days``
    days), ready for SMTP DATA; ``message_id`` is the same every time the outbox builds it."""
    who = invitation.invited_by.split(":", 1)[-1] if invitation.invited_by else "An admin"
    values = {
        **identity.brand("en"),
        "name": invitation.name,
        "role": invitation.role,
        "article": "an" if invitation.role[:1] in "aeiou" else "a",
        "invited_by": who,
        "link": link,
        "days": days,
    }
    text, html = render_pair(settings, "invitation", values)
    domain = settings.sender_domain
    return one_message(
        identity,
        to=invitation.email,
        subject=f"You are invited to the press workspace of {identity.name('en')}",
        language="en",
        message_id=message_id,
        text=text,
        html_body=html,
        fields=f"Auto-Submitted: auto-generated\r\nFeedback-ID: invite:en:workspace:{domain}\r\n",
    )
