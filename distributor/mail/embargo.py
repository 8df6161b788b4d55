"""The notices to those who received an embargoed advance copy (outbox/advance.py): its
embargo moved — later, earlier, postponed until further notice, or lifted early — and, for
those who chose it on their preferences page, a line when it lifted. Their ledger:
``outbox/notices.py``; what every notice shares: :mod:`.notice`."""

from __future__ import annotations

from datetime import datetime

from distributor.core.config import Settings
from distributor.core.formats import embargo_time
from distributor.core.i18n import gettext_for
from distributor.core.identity import Identity
from distributor.core.models import Release, ReleaseState
from distributor.mail.notice import RenderedNotice, render_notice_email


def render_embargo_moved(
    release: Release, settings: Settings, identity: Identity, moved_at: datetime
) -> RenderedNotice:
    """The notice that the release's time to go public changed at ``moved_at``, as it stands
    now: it lifts at its new time (scheduled; the time written out in the press office's
    zone with the UTC offset), it is postponed until further notice (a draft again: the
    embargo holds), or it went public early (published: a link to its page)."""
    _ = gettext_for(release.language)
    title = " ".join(release.title.split())
    when = ""
    if release.state == ReleaseState.SCHEDULED and release.scheduled_at is not None:
        when = embargo_time(release.scheduled_at, release.language, settings.zone)
    subject = _("Embargo changed: %(title)s") % {"title": title}
    values = {"when": when, "state": release.state}
    return render_notice_email(
        release, settings, identity, "embargo-moved", moved_at, subject, values
    )


def render_embargo_lifted(
    release: Release, settings: Settings, identity: Identity, published_at: datetime
) -> RenderedNotice:
    """The one line that the release's embargo lifted at ``published_at``: it is public
    now, with a link to its page."""
    _ = gettext_for(release.language)
    title = " ".join(release.title.split())
    when = embargo_time(published_at, release.language, settings.zone)
    subject = _("Embargo lifted: %(title)s") % {"title": title}
    return render_notice_email(
        release, settings, identity, "embargo-lifted", published_at, subject, {"when": when}
    )
