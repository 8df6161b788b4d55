"""The correction notice: tells those who received a release that it was corrected, with a
link to the corrected page (``releases correct --notify``; its ledger: ``outbox/notices.py``;
what every notice shares: :mod:`.notice`)."""

from __future__ import annotations

from datetime import datetime

from distributor.core.config import Settings
from distributor.core.i18n import gettext_for
from distributor.core.identity import Identity
from distributor.core.models import Release
from distributor.mail.notice import RenderedNotice, render_notice_email


def render_notice(
    release: Release, settings: Settings, identity: Identity, corrected_at: datetime
) -> RenderedNotice:
    """The notice of the correction made at ``corrected_at``, from ``identity``, in the
    release's language: subject "Correction: <title>", the day of the correction, what
    changed (that correction's note, when it has one), a link to the corrected page, the
    press contacts (``templates/email/correction.*``)."""
    _ = gettext_for(release.language)
    subject = _("Correction: %(title)s") % {"title": " ".join(release.title.split())}
    values = {"note": note_of(release, corrected_at)}
    return render_notice_email(
        release, settings, identity, "correction", corrected_at, subject, values
    )


def note_of(release: Release, corrected_at: datetime) -> str:
    """The note of ``release``'s correction made at ``corrected_at`` ("" when it has none,
    or for a correction not recorded with one): a later correction's note is not this one's."""
    return next((c.note for c in release.corrections if c.corrected_at == corrected_at), "")
