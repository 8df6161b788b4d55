"""The newsroom's pages, rendered to strings: the listings (``/``, ``/en/``, a topic, an
archive page) and a release's permanent page, for the static site builder; and the one Jinja2
environment of ``templates/pages`` that the dynamic pages (subscribe, confirm…) share.

Rendering is deterministic — the same inputs give the same bytes (no clock, no randomness,
topics sorted) — so the builder rewrites a file only when its content changed. Every URL is
absolute, from ``settings.site_url``; never from a request.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from babel import Locale
from babel.core import get_global
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

from distributor.core.config import Settings
from distributor.core.formats import document_label, file_details, long_date
from distributor.core.i18n import gettext_for
from distributor.core.identity import Identity
from distributor.core.models import Release, Topic
from distributor.core.sanitize import absolute_urls, strip_xml_invalid
from distributor.core.templating import CompiledTemplates
from distributor.core.urls import (
    FEED_FORMATS,
    FeedFormat,
    absolute_link,
    feed_url,
    listing_url,
    mailto_href,
    release_url,
    tel_href,
)

# Each language named in itself, so a reader finds their own in the switch.
LANGUAGE_NAMES: dict[str, str] = {"en": "English", "fr": "Français"}

# The templates of the static site's pages (``listing_page``, ``gone_page``, ``release_page``
# and what they extend).
SITE_TEMPLATES = ("base.html", "listing.html", "gone.html", "release.html")

# Link previews (Open Graph, Twitter cards) show about this much of a description.
SHARE_TEXT_LIMIT = 200

FEED_LABELS: dict[FeedFormat, str] = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}
FEED_MEDIA_TYPES: dict[FeedFormat, str] = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}


@dataclass(frozen=True)
class Listing:
    """One newsroom listing page."""

    lang: str  # the page's language
    topic: Topic | None  # None: all topics
    topics: Sequence[Topic]  # every topic, for the topic filter (sorted by the caller)
    releases: Sequence[Release]  # this page's releases, newest first (caller chunks)
    archive: int | None  # this page's archive number; None for the live page
    older: int | None  # archive number of the next older page, if any
    # Archive number of the next newer archive page; when this is an archive page and
    # newer is None, the newer page is the live one.
    newer: int | None
    # True for "/" (the first language's live listing; canonical → /LANG/).
    root: bool = False


@dataclass(frozen=True)
class Feed:
    """One feed, as a page announces it in ``<head>`` and links to it in its footer."""

    href: str
    media_type: str
    label: str  # "RSS", "Atom", "JSON Feed"
    title: str  # for autodiscovery: "Press Office — Climate (RSS)"


@dataclass(frozen=True)
class FeedGroup:
    """The three feeds of one scope: a topic, or every release of a language."""

    name: str  # "Climate", "All press releases"
    feeds: tuple[Feed, ...]


# Every newsroom's environment is configured alike: they share compiled templates.
_COMPILED = CompiledTemplates()


class Newsroom:
    """Renders the newsroom's pages for one Settings, as from ``identity`` (unless a render
    is given another); build one and keep it (it holds the compiled templates)."""

    def __init__(self, settings: Settings, identity: Identity) -> None:
        self.settings = settings
        self.identity = identity
        self._language_feeds: dict[str, FeedGroup] = {}
        # auto_reload off: templates ship with the code, and the builder renders thousands
        # of pages, each of which would otherwise stat its template files again.
        self.env = Environment(
            loader=FileSystemLoader(settings.templates_dir / "pages"),
            autoescape=True,
            auto_reload=False,
            finalize=_printable,
            bytecode_cache=_COMPILED,
        )
        self.env.globals.update(
            settings=settings,
            site_url=settings.site_url,
            language_names=LANGUAGE_NAMES,
            listing_url=partial(listing_url, settings),
            release_url=partial(release_url, settings),
            feed_groups=self.feed_groups,
        )
        self.env.filters.update(
            long_date=partial(long_date, zone=settings.zone),
            absolute=self.absolute,
            tel=tel_href,
            mailto=mailto_href,
            file_details=file_details,
            document_label=document_label,
        )

    def compile(self) -> None:
        """Compile the site's page templates now (the first render of each otherwise does):
        before forking renderers, which then share them instead of compiling each its own."""
        for name in SITE_TEMPLATES:
            self.env.get_template(name)

    def render(self, name: str, lang: str, identity: Identity | None = None, **context: Any) -> str:
        """The page template ``name`` rendered in ``lang`` (its labels through gettext), as
        from ``identity`` (default: the newsroom's): its name in ``lang``, logo, postal
        address and privacy link (``Identity.brand``).

        ``site_lang`` — the language whose listing, feeds and form the page links to —
        defaults to ``lang``, or the first configured language if ``lang`` has no newsroom.
        """
        context.setdefault("site_lang", self._site_lang(lang))
        template = self.env.get_template(name)
        brand = (identity or self.identity).brand(lang)
        return template.render(lang=lang, _=gettext_for(lang), **brand, **context)

    def listing_page(self, listing: Listing) -> str:
        """The HTML of a listing: its releases newest first, the topic filter, the language
        switch, older/newer navigation, the feeds of its topic and language.

        The root page ("/", ``listing.root``) is the first language's live listing, byte for
        byte: its canonical URL is already ``/LANG/``, so search engines keep one of the two.
        """
        s, lang = self.settings, listing.lang
        _ = gettext_for(lang)
        topic = listing.topic.slug if listing.topic else None
        live = listing.archive is None
        parts = [_("Press releases")]
        if listing.topic:
            parts.append(listing.topic.name(lang))
        if not live:
            parts.append(_("Archive page %(number)s") % {"number": listing.archive})
        newer: str | None = None
        if not live:
            newer = listing_url(s, lang, topic, listing.newer)  # None: the live page
        older = listing_url(s, lang, topic, listing.older) if listing.older is not None else None
        # Another language's archive numbers count other releases: switch to its live page.
        others = [code for code in s.languages if code != lang]
        alternates = listing_alternates(s, topic) if live else []
        canonical = listing_url(s, lang, topic, listing.archive)
        return self.render(
            "listing.html",
            lang,
            listing=listing,
            heading=" — ".join(parts),
            canonical=canonical,
            alternates=alternates,
            share=self._listing_share(lang, " — ".join(parts), canonical),
            language_links=[(code, listing_url(s, code, topic)) for code in others],
            feeds=self.feed_groups(lang, listing.topic),
            newer_url=newer,
            older_url=older,
            # On an archive page, the topic's live page is where it belongs, not this page.
            current="page" if live else "true",
        )

    def gone_page(self, release: Release) -> str:
        """The notice a withdrawn release's URL answers with (status 410): its title, when
        it was withdrawn, and the way back to the newsroom; not its text."""
        return self.render("gone.html", release.language, release=release, noindex=True)

    def release_page(
        self,
        release: Release,
        translations: Sequence[Release],
        identity: Identity | None = None,
        *,
        preview: bool = False,
        embargo: str = "",
    ) -> str:
        """The HTML of a release's permanent page; ``translations`` are its other published
        language versions (linked visibly, and as hreflang alternates both ways); from
        ``identity`` (default: the newsroom's). A ``preview`` (the page of a release not
        public yet) says so at the top and names no canonical address, alternate or feed:
        nothing in it leads a crawler or a feed reader anywhere. An ``embargo`` (when it
        lifts, written out) makes the preview an accredited journalist's advance copy."""
        s, lang = self.settings, release.language
        order = {code: index for index, code in enumerate(s.languages)}
        versions = sorted(
            (t for t in translations if t.slug != release.slug),
            key=lambda t: (order.get(t.language, len(order)), t.language, t.slug),
        )
        # One version per language for the switch and the hreflang alternates; the visible
        # list shows every version.
        by_lang = language_versions(s, lang, release.slug, [(t.language, t.slug) for t in versions])
        alternates = release_alternates(s, lang, release.slug, by_lang)
        switch = [
            (code, release_url(s, by_lang[code]) if code in by_lang else listing_url(s, code))
            for code in s.languages
            if code != lang
        ]
        return self.render(
            "release.html",
            lang,
            identity,
            release=release,
            body=absolute_urls(release.body_html, s.site_url),
            translations=versions,
            topics=sorted(release.topics, key=lambda t: t.slug),
            canonical="" if preview else release_url(s, release.slug),
            alternates=[] if preview else alternates,
            language_links=[] if preview else switch,
            share=[] if preview else self._release_share(release, identity, list(by_lang)),
            preview=preview,
            embargo=embargo,
            noindex=preview,
        )

    def _release_share(
        self, release: Release, identity: Identity | None, other_languages: Sequence[str]
    ) -> list[tuple[str, str]]:
        """The Open Graph and Twitter card tags of a public release page, as (property,
        content): its title, lead (plain text, trimmed), permanent URL, the office's name in
        its language, its locale and its language versions' locales, and its lead image
        (the first it shows) with its alt text; a large-image card when there is an image."""
        lang = release.language
        tags = [
            ("og:type", "article"),
            ("og:title", release.title),
            ("og:url", release_url(self.settings, release.slug)),
            ("og:site_name", (identity or self.identity).name(lang)),
            ("og:locale", og_locale(lang)),
        ]
        tags += [("og:locale:alternate", og_locale(code)) for code in other_languages]
        description = share_text(release.lead)
        if description:
            tags.append(("og:description", description))
        image = next((i for i in release.images if self.absolute(i.get("src") or "")), None)
        if image is None:
            return [*tags, ("twitter:card", "summary")]
        tags.append(("og:image", self.absolute(image["src"])))
        width, height = image.get("width"), image.get("height")
        if isinstance(width, int) and isinstance(height, int):
            tags += [("og:image:width", str(width)), ("og:image:height", str(height))]
        alt = share_text(image.get("alt") or "")
        if alt:
            tags.append(("og:image:alt", alt))
        tags.append(("twitter:card", "summary_large_image"))
        if alt:
            tags.append(("twitter:image:alt", alt))
        return tags

    def _listing_share(self, lang: str, title: str, url: str) -> list[tuple[str, str]]:
        """The Open Graph tags of a listing page, as (property, content): its heading, its
        canonical URL, the office's name and the page's locale."""
        return [
            ("og:type", "website"),
            ("og:title", title),
            ("og:url", url),
            ("og:site_name", self.identity.name(lang)),
            ("og:locale", og_locale(lang)),
        ]

    def feed_groups(self, lang: str, topic: Topic | None = None) -> tuple[FeedGroup, ...]:
        """The feeds a page in ``lang`` announces: the topic's first, then the language's."""
        if lang not in self._language_feeds:
            # Kept: every release page announces them; they depend on nothing but settings.
            name = gettext_for(lang)("All press releases")
            self._language_feeds[lang] = self._feed_group(lang, name, None)
        if topic is None:
            return (self._language_feeds[lang],)
        return (self._feed_group(lang, topic.name(lang), topic.slug), self._language_feeds[lang])

    def _feed_group(self, lang: str, name: str, topic: str | None) -> FeedGroup:
        site_lang, organisation = self._site_lang(lang), self.identity.name(lang)
        return FeedGroup(
            name,
            tuple(
                Feed(
                    href=feed_url(self.settings, site_lang, fmt, topic),
                    media_type=FEED_MEDIA_TYPES[fmt],
                    label=FEED_LABELS[fmt],
                    title=f"{organisation} — {name} ({FEED_LABELS[fmt]})",
                )
                for fmt in FEED_FORMATS
            ),
        )

    def absolute(self, url: str) -> str:
        """``url`` (an http(s) URL or a site path such as ``/media/a.jpg``, as release files
        give them) made absolute under the site URL; "" for anything else, which ingest
        refuses anyway (a ``javascript:`` URL must not become a link even if it got in)."""
        return absolute_link(self.settings.site_url, url) or ""

    def _site_lang(self, lang: str) -> str:
        return lang if lang in self.settings.languages else self.settings.languages[0]


def listing_alternates(settings: Settings, topic: str | None) -> list[tuple[str, str]]:
    """The hreflang alternates of a live listing, as (hreflang, URL): the same listing (all
    topics, or ``topic``) in every configured language; for all topics also ``x-default``,
    the first language's (the canonical URL of "/", which serves that page to everyone)."""
    alternates = [(code, listing_url(settings, code, topic)) for code in settings.languages]
    if topic is None:
        alternates.append(("x-default", listing_url(settings, settings.languages[0])))
    return alternates


def language_versions(
    settings: Settings, lang: str, slug: str, versions: Iterable[tuple[str, str]]
) -> dict[str, str]:
    """Language → slug: for each language but ``lang``, the one version of the release
    ``slug`` its page links to, among ``versions`` (language, slug), the first in the order
    the page lists them (configured languages first, then by language and slug). One per
    language: a language given twice would void the hreflang alternates."""
    order = {code: index for index, code in enumerate(settings.languages)}
    chosen: dict[str, str] = {}
    for code, other in sorted(versions, key=lambda v: (order.get(v[0], len(order)), *v)):
        if other != slug and code != lang:
            chosen.setdefault(code, other)
    return chosen


def release_alternates(
    settings: Settings, lang: str, slug: str, versions: Mapping[str, str]
) -> list[tuple[str, str]]:
    """The hreflang alternates of the release ``slug`` in ``lang``, as (hreflang, URL): itself
    and its ``versions`` (``language_versions``); none when it has no other version."""
    if not versions:
        return []
    alternates = [(lang, release_url(settings, slug))]
    return alternates + [(code, release_url(settings, other)) for code, other in versions.items()]


@functools.cache
def og_locale(lang: str) -> str:
    """The Open Graph locale (``language_TERRITORY``) of a page in ``lang``: its most likely
    territory by CLDR (``en`` → ``en_US``, ``fr`` → ``fr_FR``); the code itself when CLDR
    knows none."""
    likely = get_global("likely_subtags").get(lang)
    if not likely:
        return lang
    locale = Locale.parse(likely)
    return f"{locale.language}_{locale.territory}" if locale.territory else locale.language


def share_text(text: str, limit: int = SHARE_TEXT_LIMIT) -> str:
    """``text`` as a one-line description for a link preview: white space collapsed, cut
    at the last word that fits in ``limit`` characters (with "…") when longer."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > 0 else cut).rstrip(" ,;:.") + "…"


def _printable(value: Any) -> Any:
    """Every ``{{ value }}`` printed, without the control characters XML forbids (a title
    pasted from a word processor must not break the page); markup marked safe is ours or
    was sanitised at ingest, and is left as it is."""
    if isinstance(value, str) and not isinstance(value, Markup) and not value.isprintable():
        # isprintable() is a fast C check that most values (URLs, names) pass.
        return strip_xml_invalid(value)
    return value
