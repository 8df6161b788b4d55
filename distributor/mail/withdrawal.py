"""The withdrawal notice: tells those who received a release that it was withdrawn, with
the reason the press office gave and a link to its page (which answers 410 and shows the
reason) — ``releases withdraw --notify``; its ledger: ``outbox/notices.py``; what every
notice shares: :mod:`.notice`."""

from __future__ import annotations

from datetime import datetime

from distributor.core.config import Settings
from distributor.core.i18n import gettext_for
from distributor.core.identity import Identity
from distributor.core.models import Release
from distributor.mail.notice import RenderedNotice, render_notice_email


def render_withdrawal(
    release: Release, settings: Settings, identity: Identity, withdrawn_at: datetime
) -> RenderedNotice:
    """The notice of the withdrawal made at ``withdrawn_at``, from ``identity``, in the release's
    language: subject "Withdrawn: <title>", the day of the withdrawal, its reason (when one was
    given), a link to the page (``templates/email/withdrawal.*``)."""
    _ = gettext_for(release.language)
    subject = _("Withdrawn: %(title)s") % {"title": " ".join(release.title.split())}
    values = {"reason": release.withdrawn_reason}
    return render_notice_email(
        release, settings, identity, "withdrawal", withdrawn_at, subject, values
    )
