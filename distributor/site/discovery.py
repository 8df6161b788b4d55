"""What search engines and browsers ask a site for besides its pages: ``sitemap.xml``,
``robots.txt`` and ``favicon.ico``, written below ``public/`` by the site builder.

The sitemap (sitemaps.org 0.9, with Google's ``xhtml:link`` hreflang alternates) lists
every public page a search engine should keep: each language's live newsroom listing, all
topics and per topic, and every published release's permanent page. Archive pages are left
out (each release they list is in it), as are ``/`` (its canonical URL is the first
language's listing) and withdrawn, scheduled and draft releases (they have no page). The
alternates are the ones the pages themselves carry (``newsroom.listing_alternates``,
``newsroom.release_alternates``), so the two never disagree.

A site of more than ``SPLIT_URLS`` URLs gets a split sitemap: ``/sitemap.xml`` (the URL
robots.txt and crawlers know) becomes a sitemap index of ``sitemaps/listings.xml`` and of
``sitemaps/releases-N.xml``, the releases by ranges of ids.

Like the feeds, the sitemap is deterministic: the same releases give the same bytes (dates
come from the database, never from the clock).
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from lxml import etree

from distributor.core.config import Settings
from distributor.core.logs import PERSONAL_LINK_PATHS
from distributor.core.urls import listing_url, release_url
from distributor.site.newsroom import language_versions, listing_alternates, release_alternates

log = logging.getLogger(__name__)

SITEMAP_RELPATH: Final = "sitemap.xml"
ROBOTS_RELPATH: Final = "robots.txt"
FAVICON_RELPATH: Final = "favicon.ico"
# The icon the site ships: a neutral page on the default accent colour.
FAVICON_FILE: Final = Path(__file__).with_name("favicon.ico")

SITEMAP_NS: Final = "http://www.sitemaps.org/schemas/sitemap/0.9"
XHTML_NS: Final = "http://www.w3.org/1999/xhtml"
# sitemaps.org: one file holds at most 50,000 URLs (a site beyond that needs an index).
MAX_URLS: Final = 50_000
# A site of more URLs than this has a split sitemap: ``/sitemap.xml`` is then an index of
# the listings' sitemap and of the releases' by ranges of this many ids, so a publish
# rewrites a small part (the newest ids'), the listings' and the index, not every release's
# entry. Below the protocol's limit, for that: a part of 10,000 takes about 40 ms to write.
SPLIT_URLS = 10_000
SITEMAPS_DIR: Final = "sitemaps"
LISTINGS_SITEMAP_RELPATH: Final = f"{SITEMAPS_DIR}/listings.xml"


def releases_sitemap_relpath(part: int) -> str:
    """The file of the releases' sitemap ``part`` (ids ``part * SPLIT_URLS`` and up)."""
    return f"{SITEMAPS_DIR}/releases-{part}.xml"


# The paths no crawler has any business in: the workspace (web/admin.PREFIX), the API
# (web/apibase.PREFIX) and the personal links, whose URLs carry a token.
PRIVATE_PATHS: Final = ("admin", "api", *PERSONAL_LINK_PATHS)


@dataclass(frozen=True)
class Published:
    """A published release as the sitemap lists it."""

    slug: str
    lang: str
    group: int  # its translation group (the id of the release the others translate)
    topics: tuple[int, ...]  # topic ids
    modified: datetime  # when its page last changed (aware)


@dataclass(frozen=True)
class _Url:
    loc: str
    lastmod: datetime | None
    alternates: Sequence[tuple[str, str]]


@dataclass
class SitemapCache:
    """Release entries kept from one sitemap to the next (for one Settings): a release's
    entry is written again only when it or its translations changed."""

    # slug -> (the release, its group's versions, its entry): looked up by slug (cheaper to
    # hash than the release), used only while the release and its versions are the same.
    entries: dict[str, tuple[Published, tuple[tuple[str, str], ...], str | None]] = field(
        default_factory=dict
    )


def sitemap(
    settings: Settings,
    releases: Sequence[Published],
    topics: Sequence[tuple[int, str]],
    cache: SitemapCache | None = None,
) -> bytes:
    """The sitemap of the site: every language's live listing (all topics, then each of
    ``topics``, given as (id, slug)), then every release of ``releases`` by slug; each with
    its absolute URL, its ``lastmod`` when it has one (a listing: its newest release's) and
    its language versions as hreflang alternates. The same arguments give the same bytes,
    with a ``cache`` or without."""
    listings = _listings(settings, newest_by_listing(releases), topics)
    count = len(listings) + len(releases)
    if count > MAX_URLS:
        log.warning("the sitemap lists %d URLs, more than search engines read", count)
    return _urlset(settings, listings, releases, _versions(releases), cache)


def listings_sitemap(
    settings: Settings,
    newest: Mapping[tuple[str, int | None], datetime],
    topics: Sequence[tuple[int, str]],
) -> bytes:
    """The sitemap of the live listings alone (a part of a split sitemap, ``SPLIT_URLS``):
    as ``sitemap`` lists them, dated by ``newest`` (``newest_by_listing``)."""
    return _urlset(settings, _listings(settings, newest, topics), [], {}, None)


def releases_sitemap(
    settings: Settings,
    releases: Sequence[Published],
    versions: Mapping[int, Sequence[tuple[str, str]]],
    cache: SitemapCache | None = None,
) -> bytes:
    """The sitemap of ``releases`` alone (a part of a split sitemap), by slug, as
    ``sitemap`` lists them; ``versions`` gives each translation group's published versions
    as (language, slug), oldest first (some may be in another part)."""
    return _urlset(settings, [], releases, versions, cache)


def sitemap_index(settings: Settings, parts: Sequence[tuple[str, datetime | None]]) -> bytes:
    """The sitemap index (sitemaps.org 0.9) of ``parts``, each a (path below the site,
    newest change in it) in that order: what ``/sitemap.xml`` is when the site has more
    than ``SPLIT_URLS`` URLs."""
    base = settings.site_url
    root = etree.Element(f"{{{SITEMAP_NS}}}sitemapindex", nsmap={None: SITEMAP_NS})
    for relpath, lastmod in parts:
        element = etree.SubElement(root, f"{{{SITEMAP_NS}}}sitemap")
        etree.SubElement(element, f"{{{SITEMAP_NS}}}loc").text = f"{base}/{relpath}"
        if lastmod is not None:
            etree.SubElement(element, f"{{{SITEMAP_NS}}}lastmod").text = w3c_datetime(lastmod)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data


def newest_by_listing(releases: Iterable[Published]) -> dict[tuple[str, int | None], datetime]:
    """The newest change among ``releases`` by listing: (language, topic id, or None for
    all topics)."""
    newest: dict[tuple[str, int | None], datetime] = {}
    for r in releases:  # one pass (10,000 releases, 10 topics: 5 ms, not 40)
        modified, lang = r.modified, r.lang
        for topic_id in (None, *r.topics):
            where = (lang, topic_id)
            if newest.get(where, modified) <= modified:
                newest[where] = modified
    return newest


def _versions(releases: Sequence[Published]) -> dict[int, list[tuple[str, str]]]:
    groups: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for r in releases:
        groups[r.group].append((r.lang, r.slug))
    return groups


def _urlset(
    settings: Settings,
    listings: list[_Url],
    releases: Sequence[Published],
    groups: Mapping[int, Sequence[tuple[str, str]]],
    cache: SitemapCache | None,
) -> bytes:
    if not releases and not listings:
        return _lxml_xml([])
    cache = cache if cache is not None else SitemapCache()
    entries = [_entry(url) for url in listings]
    kept = cache.entries
    for r in sorted(releases, key=lambda r: r.slug):
        versions = tuple(groups[r.group])
        found = kept.get(r.slug)
        if found is None or not (found[0] is r or found[0] == r) or found[1] != versions:
            found = kept[r.slug] = (r, versions, _entry(_release_url(settings, r, versions)))
        entries.append(found[2])
    if len(kept) > len(releases) + 1000:  # releases since withdrawn
        cache.entries = {r.slug: kept[r.slug] for r in releases}
    if any(entry is None for entry in entries):
        by_slug = sorted(releases, key=lambda r: r.slug)
        return _lxml_xml(
            [*listings, *(_release_url(settings, r, groups[r.group]) for r in by_slug)]
        )
    head = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        f'<urlset xmlns="{SITEMAP_NS}" xmlns:xhtml="{XHTML_NS}">',
    ]
    return "\n".join([*head, *entries, "</urlset>", ""]).encode()  # type: ignore[list-item]


def _listings(
    settings: Settings,
    newest: Mapping[tuple[str, int | None], datetime],
    topics: Sequence[tuple[int, str]],
) -> list[_Url]:
    found: list[_Url] = []
    for topic_id, slug in [(None, None), *topics]:
        alternates = listing_alternates(settings, slug)
        for lang in settings.languages:
            when = newest.get((lang, topic_id))
            found.append(_Url(listing_url(settings, lang, slug), when, alternates))
    return found


def _releases(settings: Settings, releases: Sequence[Published]) -> list[_Url]:
    groups = _versions(releases)
    return [
        _release_url(settings, r, groups[r.group]) for r in sorted(releases, key=lambda r: r.slug)
    ]


def _release_url(settings: Settings, r: Published, group: Sequence[tuple[str, str]]) -> _Url:
    versions = language_versions(settings, r.lang, r.slug, group)
    alternates = release_alternates(settings, r.lang, r.slug, versions)
    return _Url(release_url(settings, r.slug), r.modified, alternates)


# What lxml writes as something else than itself, or refuses (control characters, lone
# surrogates): a document with one of them goes through lxml whole.
_UNUSUAL = re.compile(r"[\x00-\x1f\ud800-\udfff]")


def _entry(url: _Url) -> str | None:
    """The ``<url>`` element of ``url`` as lxml pretty-prints it in a sitemap; None when a
    string in it needs what only lxml does (see ``_UNUSUAL``)."""
    if any(_UNUSUAL.search(text) for text in _strings([url])):
        return None
    lines = ["  <url>", f"    <loc>{_text(url.loc)}</loc>"]
    if url.lastmod is not None:
        lines.append(f"    <lastmod>{w3c_datetime(url.lastmod)}</lastmod>")
    lines += [
        f'    <xhtml:link rel="alternate" hreflang="{_attribute(code)}" href="{_attribute(href)}"/>'
        for code, href in url.alternates
    ]
    lines.append("  </url>")
    return "\n".join(lines)


def _text(value: str) -> str:
    """``value`` escaped as lxml escapes text."""
    if "&" in value or "<" in value or ">" in value:
        return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value


def _attribute(value: str) -> str:
    """``value`` escaped as lxml escapes an attribute's value (in double quotes)."""
    return _text(value).replace('"', "&quot;")


def _strings(urls: Sequence[_Url]) -> Iterator[str]:
    for url in urls:
        yield url.loc
        for code, href in url.alternates:
            yield code
            yield href


def _lxml_xml(urls: Sequence[_Url]) -> bytes:
    root = etree.Element(f"{{{SITEMAP_NS}}}urlset", nsmap={None: SITEMAP_NS, "xhtml": XHTML_NS})
    for url in urls:
        element = etree.SubElement(root, f"{{{SITEMAP_NS}}}url")
        etree.SubElement(element, f"{{{SITEMAP_NS}}}loc").text = url.loc
        if url.lastmod is not None:
            etree.SubElement(element, f"{{{SITEMAP_NS}}}lastmod").text = w3c_datetime(url.lastmod)
        for code, href in url.alternates:
            attributes = {"rel": "alternate", "hreflang": code, "href": href}
            etree.SubElement(element, f"{{{XHTML_NS}}}link", attributes)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data


def w3c_datetime(when: datetime) -> str:
    """``when`` in UTC, as the W3C datetime profile of ISO 8601 writes it to the second:
    ``2026-11-20T08:00:00Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def robots(settings: Settings) -> bytes:
    """robots.txt: every crawler may read the newsroom, none the workspace, the API or a
    personal link (:data:`PRIVATE_PATHS`, below the site URL's path); and where the
    sitemap is, as an absolute URL."""
    base = urlsplit(settings.site_url).path.rstrip("/")
    lines = [
        "# The newsroom is public; the workspace, the API and personal links are not.",
        "User-agent: *",
        *(f"Disallow: {base}/{path}/" for path in PRIVATE_PATHS),
        f"Allow: {base}/",
        "",
        f"Sitemap: {settings.site_url}/{SITEMAP_RELPATH}",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def favicon() -> bytes:
    """The site's icon (``favicon.ico``: 16, 32 and 48 pixels)."""
    return FAVICON_FILE.read_bytes()
