"""The plan of the site: every file it has, with the fingerprint of what it would contain,
made from the catalogue (``catalogue.py``) and kept up to date by the changes a refresh of
the catalogue reports.

The site is cut into pieces that depend on few releases: a release's page (its release and
its translations), a withdrawn release's notice, a listing (a language, maybe a topic: its
pages and feeds, live and archives), and the discovery files (the sitemap, robots.txt, the
icon). A change re-plans only the pieces of the releases it touched; every piece is planned
as a full plan plans it, so the two give the same outputs.

Listings and feeds are cut into pages of ``feed_size`` releases: the live page holds the
newest; archive pages are numbered from the oldest, so a full archive page never changes
when newer releases arrive (RFC 5005). Archive page k holds releases (k-1)·n … k·n-1 in
oldest-first order; the pages kept are those holding a release the live page does not.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import logging
import re
from collections import defaultdict
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from distributor.core import urls
from distributor.core.config import Settings
from distributor.core.identity import Identity
from distributor.core.models import Topic
from distributor.site import discovery
from distributor.site.catalogue import Catalogue, Changes, Gone, Row
from distributor.site.feeds import FeedPage

log = logging.getLogger(__name__)

# Bump when the code that renders pages or feeds changes what it writes: every output's
# fingerprint includes it (templates are fingerprinted by their content).
RENDER_VERSION = "7"


@dataclass(frozen=True)
class Output:
    """A file of the site: where, the fingerprint of what it holds, what renders it (the
    kind and its arguments) and the releases it shows."""

    relpath: str
    fingerprint: str
    # "release", "gone", "listing", "root", "feed", "sitemap" (whole, or split:
    # "sitemap-index", "sitemap-listings", "sitemap-part"), "robots", "favicon"
    kind: str
    args: Any
    release_ids: tuple[int, ...]
    feed_url: str | None = None  # set for live feeds


_DISCOVERY = ("discovery",)


class Plan:
    """The outputs of the site for one catalogue, one build fingerprint (``build_fingerprint``)
    and one list of topics. ``outputs`` maps each file's site-relative path to its output."""

    def __init__(
        self, settings: Settings, build: str, topics: list[Topic], catalogue: Catalogue
    ) -> None:
        self.settings = settings
        self.build = build
        self.topics = topics
        self.catalogue = catalogue
        self.usable = [t for t in topics if safe_segment(t.slug)]
        for t in topics:
            if t not in self.usable:
                log.warning("topic %r: its slug cannot name a file; no page or feed", t.slug)
        self._topic = {t.id: t for t in self.usable}
        self.first_topic = min((t.created_at for t in topics), default=None)
        self.keys: dict[int, str] = {}
        # (lang, topic id or 0) -> the listing's (date, id), oldest first
        self.listings: dict[tuple[str, int], list[tuple[str, int]]] = {}
        self.pieces: dict[Hashable, list[Output]] = {}
        self.outputs: dict[str, Output] = {}
        self.by_dir: dict[str, set[str]] = defaultdict(set)  # directory -> file names
        self.moved: set[int] = set()  # by the last update: releases whose key changed
        # A split sitemap's parts of releases (``discovery.SPLIT_URLS``), and those a change
        # touched since they were planned.
        self._parts: dict[int, Output] = {}
        self._dirty_parts: set[int] = set()
        # By listing, the lowest index in it (oldest first) an update changed.
        self._low: dict[tuple[str, int], int] = {}
        rows = catalogue.rows
        for members in catalogue.groups.values():
            found = [rows[i] for i in members]
            for row in found:
                self.keys[row.id] = release_key(row, found)
        for key in self._listing_keys():
            self.listings[key] = []
        for row in sorted(rows.values(), key=lambda r: (r.date, r.id)):
            for key in self._listings_of(row):
                self.listings[key].append((row.date, row.id))
        every: list[Hashable] = [("release", i) for i in rows]
        every += [("gone", i) for i in catalogue.gone]
        every += [("listing", *key) for key in self.listings]
        self._replan([*every, _DISCOVERY])

    def update(self, changes: Changes) -> tuple[list[Output], set[str]]:
        """Re-plan what ``changes`` (the catalogue's refresh, already applied to it) touched:
        the outputs planned again (a subset may have changed) and the paths the site no
        longer has."""
        rows, cat = self.catalogue.rows, self.catalogue
        before = {i: row for i, row in changes.rows.items() if row is not None}
        groups = {row.group for row in before.values()}
        groups |= {rows[i].group for i in changes.ids if i in rows}
        moved: set[int] = set()  # releases whose key changed, came or went
        for group in groups:
            found = [rows[i] for i in cat.groups.get(group, ())]
            for row in found:
                key = release_key(row, found)
                if self.keys.get(row.id) != key:
                    self.keys[row.id] = key
                    moved.add(row.id)
        for i, old in before.items():
            if i not in rows:
                del self.keys[i]
                moved.add(i)
            if i not in rows or _placed(rows[i]) != _placed(old):
                for where in self._listings_of(old):
                    listing = self.listings[where]
                    del listing[bisect.bisect_left(listing, (old.date, old.id))]
        dirty: set[Hashable] = {("release", i) for i in moved}
        dirty |= {("gone", i) for i in changes.ids}
        for i in changes.ids:
            was, now = before.get(i), rows.get(i)
            if now is not None and (was is None or _placed(was) != _placed(now)):
                for where in self._listings_of(now):
                    bisect.insort(self.listings[where], (now.date, now.id))
            for shown in (changes.gone.get(i), cat.gone.get(i)):
                if shown is not None:
                    dirty |= {("listing", *where) for where in self._listings_of(shown)}
        for i in moved:
            for version in (before.get(i), rows.get(i)):
                if version is not None:
                    dirty |= {("listing", *where) for where in self._listings_of(version)}
        if moved:
            dirty.add(_DISCOVERY)
            self._dirty_parts |= {i // discovery.SPLIT_URLS for i in moved}
        self.moved = moved
        # Where each listing changed: the pages wholly below it are as they were.
        for i in changes.ids | moved:
            for version in (before.get(i), rows.get(i)):
                if version is None:
                    continue
                for where in self._listings_of(version):
                    at = bisect.bisect_left(self.listings[where], (version.date, version.id))
                    self._low[where] = min(self._low.get(where, at), at)
        try:
            return self._replan(dirty)
        finally:
            self._low = {}

    def live_ids(self) -> set[int]:
        """The releases on the live page of a listing (the newest of each)."""
        size = self.settings.feed_size
        return {i for listing in self.listings.values() for _, i in listing[-size:]}

    def _replan(self, pieces: Sequence[Hashable] | set[Hashable]) -> tuple[list[Output], set[str]]:
        planned: list[Output] = []
        dropped: set[str] = set()
        for piece in pieces:
            old = self.pieces.pop(piece, [])
            new = list(self._plan_piece(piece, old))
            if new:
                self.pieces[piece] = new
            for output in old:
                del self.outputs[output.relpath]
                directory, _, name = output.relpath.rpartition("/")
                self.by_dir[directory].discard(name)
            planned += new
            dropped.update(o.relpath for o in old)
        for output in planned:
            self.outputs[output.relpath] = output
            directory, _, name = output.relpath.rpartition("/")
            self.by_dir[directory].add(name)
        return planned, dropped - self.outputs.keys()

    def _listing_keys(self) -> Iterator[tuple[str, int]]:
        for lang in self.settings.languages:
            yield lang, 0
            for topic in self.usable:
                yield lang, topic.id

    def _listings_of(self, row: Row | Gone) -> list[tuple[str, int]]:
        """The listings ``row`` is in (a withdrawn release: was in)."""
        if row.lang not in self.settings.languages:
            return []
        return [(row.lang, 0), *((row.lang, t) for t in row.topics if t in self._topic)]

    def _plan_piece(self, piece: Hashable, old: list[Output]) -> Iterator[Output]:
        """The outputs of ``piece``; ``old``, what it had before."""
        assert isinstance(piece, tuple)
        kind, *where = piece
        build, cat = self.build, self.catalogue
        if kind == "release":
            row = cat.rows.get(where[0])
            if row is not None and safe_segment(row.slug):
                ids = tuple(cat.groups[row.group])
                shown = (row.id, *(i for i in ids if i != row.id)) if len(ids) > 1 else ids
                fingerprint = _hash(build, "release", self.keys[row.id])
                yield Output(urls.release_relpath(row.slug), fingerprint, "release", row.id, shown)
        elif kind == "gone":
            g = cat.gone.get(where[0])
            if g is not None and safe_segment(g.slug):
                fingerprint = _hash(build, "gone", str(g.id), g.slug, g.withdrawn_at)
                yield Output(urls.gone_relpath(g.slug), fingerprint, "gone", g.id, (g.id,))
        elif kind == "listing":
            lang, tid = where
            topic = self._topic[tid] if tid else None
            listing = self.listings[lang, tid]
            chosen = [cat.rows[i] for _, i in listing]
            empty_date = None if chosen else self._empty_date(lang, topic)
            archives: dict[int, list[Output]] = defaultdict(list)
            for output in old:
                archive = output.args[0].archive if output.kind == "feed" else output.args[2]
                if archive is not None:
                    archives[archive].append(output)
            low = self._low.get((lang, tid), len(listing))
            yield from _listing_outputs(
                build, self.settings, lang, topic, chosen, self.keys, empty_date, archives, low
            )
        else:
            yield from self._discovery_outputs()

    def _discovery_outputs(self) -> Iterator[Output]:
        """The sitemap (of the releases that have a page, and the topics' listings), robots.txt
        and the icon; see ``discovery``. Past ``discovery.SPLIT_URLS`` URLs the sitemap is an
        index of parts, each planned again only when a release of its ids changed."""
        build, rows = self.build, self.catalogue.rows
        topic_slugs = tuple((t.id, t.slug) for t in self.usable)
        per = discovery.SPLIT_URLS
        listing_urls = len(self.settings.languages) * (1 + len(self.usable))
        if listing_urls + len(self.keys) <= per:
            self._parts = {}
            listed = [i for i in sorted(self.keys) if safe_segment(rows[i].slug)]
            sitemap_fp = _hash(build, "sitemap", str(topic_slugs), *(self.keys[i] for i in listed))
            yield Output(discovery.SITEMAP_RELPATH, sitemap_fp, "sitemap", topic_slugs, ())
        else:
            yield from self._split_sitemap(topic_slugs)
        icon = hashlib.sha256(discovery.favicon()).hexdigest()
        yield Output(discovery.ROBOTS_RELPATH, _hash(build, "robots"), "robots", None, ())
        yield Output(discovery.FAVICON_RELPATH, _hash("favicon", icon), "favicon", None, ())

    def _split_sitemap(self, topic_slugs: tuple[tuple[int, str], ...]) -> Iterator[Output]:
        """The index, the listings' part and the releases' parts of a split sitemap."""
        build, rows, keys = self.build, self.catalogue.rows, self.keys
        per = discovery.SPLIT_URLS
        dirty = self._dirty_parts if self._parts else {i // per for i in keys}
        for part in dirty:
            ids = tuple(
                i
                for i in range(part * per, (part + 1) * per)
                if i in keys and safe_segment(rows[i].slug)
            )
            if ids:
                fp = _hash(build, "sitemap-part", str(part), *(keys[i] for i in ids))
                relpath = discovery.releases_sitemap_relpath(part)
                self._parts[part] = Output(relpath, fp, "sitemap-part", ids, ())
            else:
                self._parts.pop(part, None)
        self._dirty_parts = set()
        parts = tuple(self._parts[k] for k in sorted(self._parts))
        fps = [o.fingerprint for o in parts]
        index_fp = _hash(build, "sitemap-index", *(o.relpath for o in parts), *fps)
        listings_fp = _hash(build, "sitemap-listings", str(topic_slugs), *fps)
        yield Output(discovery.SITEMAP_RELPATH, index_fp, "sitemap-index", parts, ())
        listings = (topic_slugs, parts)
        relpath = discovery.LISTINGS_SITEMAP_RELPATH
        yield Output(relpath, listings_fp, "sitemap-listings", listings, ())
        yield from parts

    def _empty_date(self, lang: str, topic: Topic | None) -> datetime | None:
        """The date of a feed that has no release: when it last changed. That is the newest
        withdrawal among the releases it held (all of them were withdrawn, or it would not
        be empty); a feed that never held one is as old as its topic, and a language's feed
        as the first topic (nothing is published before a topic exists). None for a
        database without a topic. From the catalogue, never now(): the same data, the same
        bytes."""
        tid = topic.id if topic is not None else None
        withdrawals = [
            g.withdrawn
            for g in self.catalogue.gone.values()
            if g.withdrawn is not None and g.lang == lang and (tid is None or tid in g.topics)
        ]
        if withdrawals:
            return max(withdrawals)
        return topic.created_at if topic is not None else self.first_topic


def _placed(row: Row) -> tuple[str, str, tuple[int, ...]]:
    """What decides the listings a release is in, and where."""
    return row.lang, row.date, row.topics


def _listing_outputs(
    build: str,
    settings: Settings,
    lang: str,
    topic: Topic | None,
    ascending: list[Row],
    keys: dict[int, str],
    empty_date: datetime | None = None,
    before: Mapping[int, list[Output]] | None = None,
    low: int = 0,
) -> Iterator[Output]:
    """The pages and feeds of one listing (a language, maybe a topic): live and archives.
    ``empty_date`` dates the live feeds when there is no release (see ``_empty_date``).
    ``before`` holds the outputs of each archive page as they were planned before, when
    the listing has changed at index ``low`` and above only (oldest first): an archive page
    wholly below it, with a newer page before and after, is the same (a full archive page
    never changes when newer releases arrive)."""
    size = settings.feed_size
    slug = topic.slug if topic else None
    archives = (len(ascending) - 1) // size if ascending else 0
    kept = before or {}
    was = max(kept, default=0)  # the archive pages there were
    pages: list[tuple[int | None, list[Row], int | None, int | None]] = [
        (None, ascending[-size:][::-1], archives or None, None)
    ]
    for k in range(1, archives + 1):
        pages.append((k, [], k - 1 or None, k + 1 if k < archives else None))
    for archive, chunk, older, newer in pages:
        if archive is not None:
            if archive < was and archive < archives and archive * size <= low and archive in kept:
                yield from kept[archive]
                continue
            chunk = ascending[(archive - 1) * size : archive * size][::-1]
        ids = tuple(r.id for r in chunk)
        content = _hash(*(keys[i] for i in ids))
        shape = f"{lang}|{slug}|{archive}|{older}|{newer}"
        listing = (lang, topic, archive, older, newer)
        fp = _hash(build, "listing", shape, content)
        yield Output(urls.listing_relpath(lang, slug, archive), fp, "listing", listing, ids)
        if archive is None and topic is None and lang == settings.languages[0]:
            root_fp = _hash(build, "root", shape, content)
            yield Output(urls.listing_relpath(None), root_fp, "root", listing, ids)
        formats: Sequence[urls.FeedFormat] = urls.FEED_FORMATS if archive is None else ("atom",)
        for fmt in formats:
            feed = FeedPage(
                lang, topic, (), archive, older if fmt == "atom" else None, newer, empty_date
            )
            fp = _hash(build, "feed", fmt, shape, content, str(empty_date))
            url = urls.feed_url(settings, lang, fmt, slug) if archive is None else None
            relpath = urls.feed_relpath(lang, fmt, slug, archive)
            yield Output(relpath, fp, "feed", (feed, fmt), ids, url)


def release_key(row: Row, group: list[Row]) -> str:
    """Everything of a release its page or feed items depend on, short of the bodies: an
    edit moves ``updated_at``; a translation's slug and language appear as alternates."""
    others = (
        sorted((o.lang, o.slug, o.id) for o in group if o.id != row.id) if len(group) > 1 else ""
    )
    return f"{row.id}|{row.slug}|{row.lang}|{row.date}|{row.updated_at}|{row.topics}|{others}"


def build_fingerprint(settings: Settings, topics: Sequence[Topic], sender: Identity) -> str:
    """What every output depends on: the code, the templates, the site settings, the
    office's identity, the topics."""
    templates = sorted((settings.templates_dir / "pages").glob("*.html"))
    parts = [
        RENDER_VERSION,
        settings.site_url,
        repr(sender),
        str(settings.languages),
        str(settings.feed_size),
        str(settings.websub_hub),
    ]
    parts += [hashlib.sha256(p.read_bytes()).hexdigest() for p in templates]
    parts += [f"{t.id}|{t.slug}|{sorted(t.names.items())}" for t in topics]
    return _hash(*parts)


def _hash(*parts: str) -> str:
    data = "\x00".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=16).hexdigest()


_SEGMENT = re.compile(r"[^./\\\x00][^/\\\x00]*\Z")  # one path segment, not hidden


@functools.cache  # every slug, again at each regeneration: a dict look-up, not a match
def safe_segment(slug: str) -> bool:
    """True if ``slug`` can name a file: one path segment, not hidden."""
    return _SEGMENT.match(slug) is not None
