"""Every public URL, built from ``DISTRIBUTOR_SITE_URL`` (never from a request's Host)."""

from __future__ import annotations

from typing import Literal

from .config import Settings
from .tokens import Purpose, make_token

FeedFormat = Literal["rss", "atom"]
FEED_SUFFIX: dict[str, str] = {"rss": "rss", "atom": "atom"}


def release_path(slug: str) -> str:
    """The site-relative path of a release's permanent page."""
    return f"/releases/{slug}"


def release_url(settings: Settings, slug: str) -> str:
    """The absolute URL of a release's permanent page."""
    return settings.site_url + release_path(slug)


def feed_relpath(lang: str, fmt: FeedFormat, topic: str | None = None) -> str:
    """A feed's path below ``public/`` and below the site root, e.g. ``feeds/en/releases.rss``
    or ``feeds/en/topics/climate.atom``."""
    name = f"topics/{topic}" if topic else "releases"
    return f"feeds/{lang}/{name}.{FEED_SUFFIX[fmt]}"


def feed_url(settings: Settings, lang: str, fmt: FeedFormat, topic: str | None = None) -> str:
    """The absolute URL a feed is served at."""
    return f"{settings.site_url}/{feed_relpath(lang, fmt, topic)}"


def unsubscribe_url(settings: Settings, subscriber_id: int) -> str:
    """The personal one-click unsubscribe URL (RFC 8058 POST target, and a page on GET)."""
    token = make_token(settings, Purpose.UNSUBSCRIBE, subscriber_id)
    return f"{settings.site_url}/unsubscribe/{token}"


def preferences_url(settings: Settings, subscriber_id: int) -> str:
    """The personal preferences page URL."""
    token = make_token(settings, Purpose.PREFERENCES, subscriber_id)
    return f"{settings.site_url}/preferences/{token}"


def confirm_url(settings: Settings, subscriber_id: int) -> str:
    """The double opt-in link: a page with a button (a GET confirms nothing)."""
    token = make_token(settings, Purpose.CONFIRM, subscriber_id)
    return f"{settings.site_url}/confirm/{token}"
