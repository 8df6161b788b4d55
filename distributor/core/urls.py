"""Every public URL, built from ``DISTRIBUTOR_SITE_URL`` (never from a request's Host)."""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote, unquote, urlsplit

from distributor.core.config import Settings
from distributor.core.tokens import Purpose, make_token

FeedFormat = Literal["rss", "atom", "json"]
FEED_FORMATS: tuple[FeedFormat, ...] = ("rss", "atom", "json")
FEED_SUFFIX: dict[str, str] = {"rss": "rss", "atom": "atom", "json": "json"}
# Media types of the generated files, by file suffix (the web app and nginx serve these).
MEDIA_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".json": "application/feed+json; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",  # sitemap.xml
    ".txt": "text/plain; charset=utf-8",  # robots.txt
    ".ico": "image/x-icon",  # favicon.ico, as nginx names it
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
#   /sitemap.xml, /robots.txt, /favicon.ico   for crawlers and browsers (site.discovery)
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


PREVIEW_MAX_AGE_DAYS = 30  # how long a test email's link to a release not public yet opens


def preview_url(settings: Settings, release_id: int) -> str:
    """The signed link to release ``release_id``'s page before it is public (a test email's
    "read online"): it opens for :data:`PREVIEW_MAX_AGE_DAYS`, to whoever holds it, and
    search engines are told to keep nothing."""
    token = make_token(settings, Purpose.PREVIEW, release_id)
    return f"{settings.site_url}/preview/{token}"


def advance_url(settings: Settings, release_id: int, subscriber_id: int, nonce: str | None) -> str:
    """The personal link to release ``release_id``'s page in an embargoed advance copy sent
    to subscriber ``subscriber_id`` (with their link nonce): it opens only for them while
    they are accredited, and leads to the public page once the embargo lifts. The token
    comes first, so logs mask it as every personal link's (``logs.PERSONAL_LINK_PATHS``)."""
    token = make_token(settings, Purpose.ADVANCE, subscriber_id, nonce=nonce)
    return f"{settings.site_url}/advance/{token}/{release_id}"


def confirm_url(settings: Settings, request_id: int, nonce: str) -> str:
    """The double opt-in link of a subscription request (its id and nonce): a page that
    shows what will be applied, with a button (a GET confirms nothing)."""
    token = make_token(settings, Purpose.CONFIRM, request_id, nonce=nonce)
    return f"{settings.site_url}/confirm/{token}"


def invitation_url(settings: Settings, invitation_id: int, nonce: str) -> str:
    """The link of an invitation to the workspace: a page where the person chooses a
    password, which makes their account."""
    token = make_token(settings, Purpose.INVITE, invitation_id, nonce=nonce)
    return f"{settings.site_url}/admin/invitation/{token}"


# -- links a release carries (images, documents, contacts) -----------------------------------

_HTTP = re.compile(r"^https?://", re.IGNORECASE)
# An authority without user information: a host name (or an IP literal) and a port.
_AUTHORITY = re.compile(r"^(?:[^\s@/\\?#:\[\]]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_URL_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_URL_UNSAFE = re.compile(r'[<>"{}|^`]')
_PHONE = re.compile(
    r"^\+?[0-9 ().\-/\u00a0\u202f]*[0-9][0-9 ().\-/\u00a0\u202f]*"
    r"(?:(?:ext\.?|x|#) ?([0-9]{1,6}))?$",
    re.IGNORECASE,
)
_PHONE_EXTENSION = re.compile(r"(?:ext\.?|x|#) ?[0-9]{1,6}$", re.IGNORECASE)
_NOT_DIALLED = re.compile(r"[^0-9+]")
# RFC 6068: what may stay as it is in the address of a mailto: URL (the rest is %-encoded:
# "?", "#", "%" and "&" above all, which would start header fields or a fragment).
_MAILTO_SAFE = "@!$'()*+,;:"


def link_problem(url: str) -> str | None:
    """Why ``url`` cannot be a link of a release (an image, its high-resolution version, a
    document); None when it can. A link is an http(s) URL with a host and no user name, or
    a site path: one ``/`` followed by anything but another ``/`` or ``\\``, even once
    %-decoded. Browsers read ``//host``, ``/\\host`` and ``\\\\host`` as another host's
    address (and drop tabs and line breaks first), and servers that decode ``%2F`` before
    redirecting do too; so a site path never becomes another host when ``absolute_link``
    puts the site URL in front of it. A link has no white space at either end and none of
    the characters a URL never holds as they are (``< > " { } | ^ `` ` ``)."""
    if not url:
        return "is empty"
    if url != url.strip():
        return "must not start or end with white space"
    if _URL_UNSAFE.search(url):
        return 'must not hold < > " { } | ^ or ` (write them %-encoded)'
    return _leaves_site(url)


def _leaves_site(url: str) -> str | None:
    """Why ``url`` would lead elsewhere than where it seems to (another host, a script, a
    scheme that is not the web's); None for an http(s) URL with a host or a site path."""
    if _URL_CONTROLS.search(url):
        return "must not hold control characters (browsers drop tabs and line breaks)"
    if "\\" in url:
        return "must not hold a backslash (browsers read it as '/')"
    if url.startswith("/"):
        decoded = url
        for _ in range(3):  # %252F is %2F once decoded, then /
            decoded = _URL_CONTROLS.sub("", unquote(decoded))
        if decoded.startswith(("//", "/\\")):
            return (
                f"{url[:40]!r} is read as another host's address (a protocol-relative "
                "URL): give a site path starting with a single '/', or a full https:// URL"
            )
        return None
    if not _HTTP.match(url):
        return "must be an http(s) URL or a site path starting with /"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError as exc:
        return f"is not a URL: {exc}"
    if not parts.netloc or not _AUTHORITY.match(parts.netloc):
        return "needs a host name after '//', without a user name or '@'"
    return None


def absolute_link(site_url: str, url: str) -> str | None:
    """``url`` (a link of a release) as an absolute URL: a site path under ``site_url``, an
    http(s) URL as it is; None for anything that would lead elsewhere (see
    ``link_problem``): a link stored before ingest checked it, such as ``//host``,
    ``/\\host`` or ``javascript:``, never becomes a link."""
    if _leaves_site(url) is not None:
        return None
    return site_url + url if url.startswith("/") else url


def phone_problem(phone: str) -> str | None:
    """Why ``phone`` is not a phone number as people write it (digits, spaces, a leading
    ``+``, ``( ) - . /``, an extension "ext. 12"); None when it is."""
    match = _PHONE.match(phone)
    if match is None:
        return "is not a phone number as people write it, e.g. +33 1 00 00 00 00"
    digits = len(_NOT_DIALLED.sub("", _PHONE_EXTENSION.sub("", phone)).lstrip("+"))
    if not 3 <= digits <= 20:
        return f"has {digits} digits; a phone number has 3 to 20"
    return None


def tel_href(phone: str) -> str:
    """A ``tel:`` URL (RFC 3966) for a phone number as people write it: "+33 1 00 00 00 00"
    → ``tel:+33100000000``; the trunk prefix of "+44 (0)20…" is not dialled from abroad
    and goes; an extension "ext. 12" becomes ``;ext=12``."""
    extension = _PHONE_EXTENSION.search(phone)
    number = phone[: extension.start()] if extension else phone
    if number.lstrip().startswith("+"):
        number = number.replace("(0)", "")
    href = "tel:" + _NOT_DIALLED.sub("", number)
    if extension:
        href += ";ext=" + _NOT_DIALLED.sub("", extension.group()).lstrip("+")
    return href


def mailto_href(address: str) -> str:
    """A ``mailto:`` URL (RFC 6068) for one address: whatever would start header fields
    (``?cc=…``) or a fragment is %-encoded, so the link writes to that address only."""
    return "mailto:" + quote(address, safe=_MAILTO_SAFE)
