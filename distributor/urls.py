"""Every public URL, built from ``DISTRIBUTOR_SITE_URL`` (never from a request's Host)."""

from __future__ import annotations

from typing import Literal

from .config import Settings
from .tokens import Purpose, make_token

FeedFormat = Literal["rss", "atom", "json"]
FEED_FORMATS: tuple[FeedFormat, ...] = ("rss", "atom", "json")
FEED_SUFFIX: dict[str, str] = {"rss": "rss", "atom": "atom", "json": "json"}
# Media types of the generated files, by file suffix (the web app and nginx serve these).
MEDIA_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
}

# The static site, below ``public/`` and below the site root (the files are what nginx or a
# CDN serves; the web app serves the same files from memory):
#   /                                   index.html              newsroom, first language
#   /en/                                en/index.html           newsroom in a language
#   /en/topics/climate/                 en/topics/climate/index.html
#   /en/archive/3/                      en/archive/3/index.html  (also per topic)
#   /releases/SLUG                      releases/SLUG.html      a release's permanent page
#                                       (releases/SLUG.gone.html once withdrawn: 410 Gone)
#   /feeds/en/releases.rss|atom|json    the live feeds (also feeds/en/topics/SLUG.*)
#   /feeds/en/archive/3.atom            RFC 5005 archive pages (also per topic)
# Archive pages are numbered from the oldest (1 holds the oldest ``feed_size`` releases),
# so a page, once full, keeps its number and content when newer releases arrive.


def release_path(slug: str) -> str:
    """The site-relative path of a release's permanent page."""
    return f"/releases/{slug}"


def release_relpath(slug: str) -> str:
    """The file of a release's permanent page below ``public/``."""
    return f"releases/{slug}.html"


def gone_relpath(slug: str) -> str:
    """The notice left below ``public/`` when a published release is withdrawn: served
    at the release's own URL with 410 Gone (by the web app and by nginx)."""
    return f"releases/{slug}.gone.html"


def release_url(settings: Settings, slug: str) -> str:
    """The absolute URL of a release's permanent page."""
    return settings.site_url + release_path(slug)


def listing_path(lang: str | None, topic: str | None = None, archive: int | None = None) -> str:
    """The site-relative path of a newsroom listing: ``/`` (``lang`` None), ``/en/``,
    ``/en/topics/climate/``, ``/en/archive/3/``, ``/en/topics/climate/archive/3/``."""
    if lang is None:
        return "/"
    path = f"/{lang}/"
    if topic:
        path += f"topics/{topic}/"
    if archive is not None:
        path += f"archive/{archive}/"
    return path


def listing_relpath(lang: str | None, topic: str | None = None, archive: int | None = None) -> str:
    """The file of a newsroom listing below ``public/`` (``index.html``, ``en/index.html``…)."""
    return listing_path(lang, topic, archive).lstrip("/") + "index.html"


def listing_url(
    settings: Settings, lang: str | None, topic: str | None = None, archive: int | None = None
) -> str:
    """The absolute URL of a newsroom listing."""
    return settings.site_url + listing_path(lang, topic, archive)


def feed_relpath(
    lang: str, fmt: FeedFormat, topic: str | None = None, archive: int | None = None
) -> str:
    """A feed's path below ``public/`` and below the site root, e.g. ``feeds/en/releases.rss``,
    ``feeds/en/topics/climate.json`` or, for an Atom archive page, ``feeds/en/archive/3.atom``
    and ``feeds/en/topics/climate/archive/3.atom``."""
    if archive is not None:
        base = f"feeds/{lang}/topics/{topic}/archive" if topic else f"feeds/{lang}/archive"
        return f"{base}/{archive}.{FEED_SUFFIX[fmt]}"
    name = f"topics/{topic}" if topic else "releases"
    return f"feeds/{lang}/{name}.{FEED_SUFFIX[fmt]}"


def feed_url(
    settings: Settings,
    lang: str,
    fmt: FeedFormat,
    topic: str | None = None,
    archive: int | None = None,
) -> str:
    """The absolute URL a feed is served at."""
    return f"{settings.site_url}/{feed_relpath(lang, fmt, topic, archive)}"


def unsubscribe_url(settings: Settings, subscriber_id: int, nonce: str | None) -> str:
    """The personal one-click unsubscribe URL (RFC 8058 POST target, and a page on GET) of
    the subscriber with this id and link nonce (``Subscriber.link_nonce``)."""
    token = make_token(settings, Purpose.UNSUBSCRIBE, subscriber_id, nonce=nonce)
    return f"{settings.site_url}/unsubscribe/{token}"


def preferences_url(settings: Settings, subscriber_id: int, nonce: str | None) -> str:
    """The personal preferences page URL of the subscriber with this id and link nonce."""
    token = make_token(settings, Purpose.PREFERENCES, subscriber_id, nonce=nonce)
    return f"{settings.site_url}/preferences/{token}"


def confirm_url(settings: Settings, request_id: int, nonce: str) -> str:
    """The double opt-in link of a subscription request (its id and nonce): a page that
    shows what will be applied, with a button (a GET confirms nothing)."""
    token = make_token(settings, Purpose.CONFIRM, request_id, nonce=nonce)
    return f"{settings.site_url}/confirm/{token}"
