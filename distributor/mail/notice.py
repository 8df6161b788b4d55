"""What every notice about a release sent earlier shares (its correction, its withdrawal):
rendered once per change, personalised as the release email is (:mod:`.compose`) — the same
From, List-Id, List-Unsubscribe (one-click), VERP envelope sender (the original delivery's,
so a bounce is recorded against it) and DKIM signature — with its own subject and
Message-ID, threaded under the original (In-Reply-To). A kind of notice is a small module
beside this one that gives its subject and its template values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from distributor.core.config import Settings
from distributor.core.formats import long_date
from distributor.core.i18n import gettext_for
from distributor.core.identity import Identity
from distributor.core.models import Release
from distributor.mail.compose import Recipient, RenderedRelease
from distributor.mail.render import context, render_pair


class RenderedNotice(RenderedRelease):
    """A notice about a release (``kind``: "correction", "withdrawal"), rendered once;
    :meth:`message_for` personalises it as a release email is personalised, with its own
    subject and Message-ID, threaded under the original release email."""

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


def render_notice_email(
    release: Release,
    settings: Settings,
    identity: Identity,
    kind: str,
    at: datetime,
    subject: str,
    values: dict[str, Any],
) -> RenderedNotice:
    """The notice of ``kind`` about the change made to ``release`` at ``at``, as from
    ``identity``, from the
    templates ``email/KIND.txt`` and ``email/KIND.html``: they get the release email's
    values, ``_`` in the release's language, ``subject``, ``on`` (the day of the change in
    the press office's time zone, written out) and ``values``. Raises
    :class:`ConfigError` when a template lacks the unsubscribe or preferences link."""
    day = long_date(at, release.language, settings.zone)

    def render(unsubscribe: str, preferences: str) -> tuple[str, str]:
        every = context(release, settings, identity, unsubscribe, preferences)
        every.update({"_": gettext_for(release.language), "subject": subject, "on": day})
        return render_pair(settings, kind, {**every, **values})

    names = (f"{kind}.txt", f"{kind}.html")
    return RenderedNotice.from_templates(
        release, settings, identity, names, render, subject=subject, kind=kind, at=at
    )
