"""The correction notice's email: a short message telling those who received a release that
it was corrected, with a link to the corrected page (its ledger: ``outbox/notices.py``).

Rendered once per correction and personalised as release emails are (:mod:`.compose`): the
same From, List-Id, List-Unsubscribe (one-click), VERP envelope sender (the original
delivery's, so a bounce is recorded against it) and DKIM signature; it threads under the
original (In-Reply-To)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from distributor.core.config import Settings
from distributor.core.i18n import gettext_for
from distributor.core.models import Release
from distributor.mail.compose import Recipient, RenderedRelease
from distributor.mail.labels import format_date
from distributor.mail.render import context, render_pair


class RenderedNotice(RenderedRelease):
    """A notice about a release sent earlier (its correction, its withdrawal: ``kind``),
    rendered once; :meth:`message_for` personalises it as a release email is personalised,
    with its own subject and Message-ID, threaded under the original release email."""

    def __init__(self, *args: Any, kind: str, at: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kind, self._stamp = kind, int(at.timestamp())

    def message_id(self, subscriber_id: int) -> str:
        """The notice's Message-ID for ``subscriber_id``: one per change and person, the
        same every time (never the original's: some providers drop a Message-ID seen twice)."""
        ids = f"{self.release_id}-{self._stamp}.{subscriber_id}"
        return f"<{self._kind}-{ids}@{self._domain}>"

    def thread_headers(self, rcpt: Recipient) -> bytes:
        """In-Reply-To and References naming the original release email to ``rcpt``."""
        original = super().message_id(rcpt.subscriber_id)
        return f"In-Reply-To: {original}\r\nReferences: {original}\r\n".encode("ascii")


def render_notice(release: Release, settings: Settings, corrected_at: datetime) -> RenderedNotice:
    """The notice of the correction made at ``corrected_at``, in the release's language:
    subject "Correction: <title>", the date of the correction in the press office's time
    zone, a link to the corrected page, the press contacts. Raises :class:`ConfigError`
    when a template lacks the unsubscribe or preferences link."""
    _ = gettext_for(release.language)
    day = corrected_at.astimezone(settings.zone).date()
    subject = _("Correction: %(title)s") % {"title": " ".join(release.title.split())}

    def render(unsubscribe: str, preferences: str) -> tuple[str, str]:
        values = context(release, settings, unsubscribe, preferences)
        values.update(
            {"_": _, "subject": subject, "corrected_on": format_date(day, release.language)}
        )
        return render_pair(settings, "correction", values)

    return RenderedNotice.from_templates(
        release,
        settings,
        ("correction.txt", "correction.html"),
        render,
        subject=subject,
        kind="correction",
        at=corrected_at,
    )
