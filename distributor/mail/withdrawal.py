"""The withdrawal notice's email: tells those who received a release that it was withdrawn,
with the reason the press office gave and a link to its page (which answers 410 and shows
the reason). Its ledger is the notices' (``outbox/notices.py``); sent on ``releases withdraw
--notify`` and its API and dashboard equivalents.

Rendered once per withdrawal and personalised as every notice is
(:class:`~distributor.mail.correction.RenderedNotice`): threaded under the original."""

from __future__ import annotations

from datetime import datetime

from distributor.core.config import Settings
from distributor.core.i18n import gettext_for
from distributor.core.models import Release
from distributor.mail.correction import RenderedNotice
from distributor.mail.labels import format_date
from distributor.mail.render import context, render_pair


def render_withdrawal(
    release: Release, settings: Settings, withdrawn_at: datetime
) -> RenderedNotice:
    """The notice of the withdrawal made at ``withdrawn_at``, in the release's language:
    subject "Withdrawn: <title>", the day of the withdrawal in the press office's time zone,
    its reason (when one was given), a link to the page. Raises :class:`ConfigError` when a
    template lacks the unsubscribe or preferences link."""
    _ = gettext_for(release.language)
    day = withdrawn_at.astimezone(settings.zone).date()
    subject = _("Withdrawn: %(title)s") % {"title": " ".join(release.title.split())}

    def render(unsubscribe: str, preferences: str) -> tuple[str, str]:
        values = context(release, settings, unsubscribe, preferences)
        values.update(
            {
                "_": _,
                "subject": subject,
                "withdrawn_on": format_date(day, release.language),
                "reason": release.withdrawn_reason,
            }
        )
        return render_pair(settings, "withdrawal", values)

    return RenderedNotice.from_templates(
        release,
        settings,
        ("withdrawal.txt", "withdrawal.html"),
        render,
        subject=subject,
        kind="withdrawal",
        at=withdrawn_at,
    )
