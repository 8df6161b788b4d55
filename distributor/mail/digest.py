"""A digest's email: the releases of one period (outbox/digests.py), newest first, each with
its title, date, lead, a link to its page and its press contacts, a correction marked so.
Rendered once per group of subscribers holding the same releases in the same language, and
personalised per subscriber as a release email is (:mod:`.compose`: the same From, List-Id,
one-click List-Unsubscribe and DKIM signature), with a Message-ID naming the period and the
subscriber."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from distributor.core.config import Settings
from distributor.core.formats import long_date
from distributor.core.i18n import gettext_for, ngettext_for
from distributor.core.identity import Identity
from distributor.core.models import DigestMode, DigestPeriod, Release
from distributor.core.urls import release_url
from distributor.mail.compose import RenderedRelease
from distributor.mail.labels import labels_for
from distributor.mail.render import contact_lines, render_pair


@dataclass(frozen=True)
class DigestEntry:
    """A release in a digest; ``corrected``: it is in because it was corrected."""

    release: Release
    corrected: bool = False


@dataclass(frozen=True)
class _About:
    """What a digest's email is about (:class:`~distributor.mail.compose.Emailed`)."""

    id: int  # the period
    language: str
    title: str  # the subject


def digest_message_id(domain: str, period_id: int, subscriber_id: int) -> str:
    """The Message-ID of ``subscriber_id``'s digest of period ``period_id``: the same every
    time it is built (the relay's record is searched for it)."""
    return f"<digest-{period_id}.{subscriber_id}@{domain}>"


class RenderedDigest(RenderedRelease):
    """A digest, rendered once; :meth:`message_for` personalises it per subscriber."""

    kind = "digest"

    def message_id(self, subscriber_id: int) -> str:
        return digest_message_id(self._domain, self.release_id, subscriber_id)


def heading(period: DigestPeriod, language: str, settings: Settings) -> str:
    """What the digest is, in ``language``: "Daily digest, 7 December 2026" (the day it is
    sent), "Weekly digest, week of 30 November 2026" (the Monday its week began)."""
    _ = gettext_for(language)
    if period.mode == DigestMode.WEEKLY:
        week = long_date(period.ends_at - timedelta(weeks=1), language, settings.zone)
        return _("Weekly digest, week of %(date)s") % {"date": week}
    day = long_date(period.ends_at, language, settings.zone)
    return _("Daily digest, %(date)s") % {"date": day}


def render_digest(
    period: DigestPeriod,
    entries: list[DigestEntry],
    language: str,
    settings: Settings,
    identity: Identity,
) -> RenderedDigest:
    """The digest of ``period`` listing ``entries`` (in that order) in ``language``, as from
    ``identity``, from ``templates/email/digest.txt`` and ``digest.html``; raises
    :class:`ConfigError` when a template lacks the unsubscribe or preferences link."""
    _ = gettext_for(language)
    what = heading(period, language, settings)
    count = len(entries)
    subject = ngettext_for(language)(
        "{what}: {count} press release", "{what}: {count} press releases", count
    ).format(what=what, count=count)
    brand = identity.brand(language)
    items = [
        {
            "title": " ".join(e.release.title.split()),
            "dateline": e.release.dateline,
            "date": long_date(e.release.date, language, settings.zone),
            "lead": e.release.lead,
            "url": release_url(settings, e.release.slug),
            "contacts": contact_lines(e.release),
            "corrected": e.corrected,
        }
        for e in entries
    ]
    labels = labels_for(language)

    def render(unsubscribe: str, preferences: str) -> tuple[str, str]:
        values = {
            **brand,
            "_": _,
            "lang": language,
            "labels": labels,
            "site_url": settings.site_url,
            "subject": subject,
            "title": what,
            "items": items,
            "contacts": [],
            "subscribed_to": labels["subscribed_any"].format(organisation=brand["organisation"]),
            "unsubscribe_url": unsubscribe,
            "preferences_url": preferences,
        }
        return render_pair(settings, "digest", values)

    about = _About(period.id, language, subject)
    names = ("digest.txt", "digest.html")
    return RenderedDigest.from_templates(about, settings, identity, names, render, subject=subject)
