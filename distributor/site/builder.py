"""The static site: every newsroom page and every feed, written under ``public/``.

``build_site`` is the one regeneration: after a publish, a correction, a withdrawal, or by
``distributor site build``. It is incremental. A cheap catalogue of the published releases
(ids, dates, topics, translations; no bodies) gives every output its fingerprint; an output
is rendered only when its fingerprint differs from the one recorded in ``public/.manifest.json``
(or its file is missing), and a file is replaced only when its bytes differ. So a publish
among 10,000 releases renders a few pages and feeds, not the whole site.

Files are replaced atomically (temporary file in the same directory, then rename): a
reader, nginx or the web app never sees a half-written file. Files the site no longer has
(a withdrawn release's page, a deleted topic's feeds) are removed; a release withdrawn after
publication leaves ``releases/SLUG.gone.html``, a notice served with 410 Gone. One build
runs at a time per data directory (a file lock), so a slower build that read older data
cannot finish last and leave stale files behind.

Listings and feeds are cut into pages of ``feed_size`` releases: the live page holds the
newest; archive pages are numbered from the oldest, so a full archive page never changes
when newer releases arrive (RFC 5005). Archive page k holds releases (k-1)·n … k·n-1 in
oldest-first order; the pages kept are those holding a release the live page does not.
"""

from __future__ import annotations

import fcntl
import gc
import hashlib
import json
import logging
import os
import re
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.orm import Session

from distributor.core import filemodes, urls
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.durable import fsync_dir
from distributor.core.identity import Identity
from distributor.core.models import Release, ReleaseState, Topic, release_topics
from distributor.core.queue import TaskQueue
from distributor.office.identity import identity
from distributor.site import discovery
from distributor.site.feeds import FeedPage, ItemCache, render_feed
from distributor.site.newsroom import Listing, Newsroom

log = logging.getLogger(__name__)

# Bump when the code that renders pages or feeds changes what it writes: every output's
# fingerprint includes it (templates are fingerprinted by their content).
RENDER_VERSION = "7"
MANIFEST = ".manifest.json"
LOAD_CHUNK = 500

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class _Row:
    """What the plan needs to know of a published release (no bodies)."""

    id: int
    slug: str
    lang: str
    date: str  # the database's text of the timestamp: sorts like it, and is cheap to read
    updated_at: str
    group: int  # the translation group: the id of the release the others translate
    topics: tuple[int, ...]


@dataclass(frozen=True)
class _Gone:
    """A release withdrawn after it was published: its page becomes a 410 notice, and the
    feeds it was in are dated by its withdrawal once they have nothing left."""

    id: int
    slug: str
    withdrawn_at: str
    lang: str
    topics: tuple[int, ...]
    withdrawn: datetime | None


@dataclass
class BuildReport:
    """What a build did: files written (site-relative paths), unchanged outputs, files
    removed, and the URLs of the live feeds whose content changed (for WebSub)."""

    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    changed_feeds: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """How many files the site has."""
        return len(self.written) + self.unchanged


@dataclass(frozen=True)
class _Output:
    relpath: str
    fingerprint: str
    kind: str  # "release", "gone", "listing", "root", "feed", "sitemap", "robots", "favicon"
    args: Any
    release_ids: tuple[int, ...]
    feed_url: str | None = None  # set for live feeds


def built_before(settings: Settings) -> bool:
    """True once a build has committed its manifest in ``public/``: there is a site to
    serve while it is brought up to date."""
    return (settings.public_dir / MANIFEST).is_file()


def build_site(
    settings: Settings, *, force: bool = False, progress: Progress | None = None
) -> BuildReport:
    """Bring ``public/`` up to date with the database; see the module docstring.

    ``force`` renders every output again (after a template or code change the fingerprints
    catch anyway; useful after editing files by hand). ``progress(done, total)`` is called as
    outputs are rendered."""
    public = settings.public_dir
    filemodes.data_dir(settings.data_dir)  # 0711: the web server passes through to public/
    public.mkdir(exist_ok=True)
    with _locked(public / ".site.lock"), _collector_paused():
        with session_scope(settings) as session:
            rows, topics, gone = _catalogue(session)
            sender = identity(session, settings)
        outputs = _plan(rows, topics, gone, settings, sender)
        manifest = {} if force else _read_manifest(public)
        root = f"{public}{os.sep}"
        todo = [
            o
            for o in outputs
            if manifest.get(o.relpath) != o.fingerprint or not os.path.isfile(root + o.relpath)
        ]
        report = BuildReport(unchanged=len(outputs) - len(todo))
        recorded = dict(manifest)
        try:
            _render_all(settings, sender, todo, topics, rows, report, recorded, progress)
        finally:
            # What was written is recorded even if a later output failed.
            wanted = {o.relpath for o in outputs}
            for relpath in sorted(set(recorded) - wanted):
                (public / relpath).unlink(missing_ok=True)
                del recorded[relpath]
                report.removed.append(relpath)
            if recorded != manifest:
                # The manifest is the build's commit record: the files it vouches for reach
                # the disk before it does (one sync, not an fsync per file: a full build
                # writes ~11,000). After a crash, the old manifest makes the next build
                # render again whatever this one had not committed.
                if report.written:
                    os.sync()
                _write_if_changed(public / MANIFEST, _manifest_bytes(recorded), durable=True)
    return report


# -- the catalogue and the plan --------------------------------------------------------------


def _catalogue(session: Session) -> tuple[list[_Row], list[Topic], list[_Gone]]:
    # Core, not ORM rows, and timestamps as text: 10,000 releases in ~50 ms instead of ~500.
    t = Release.__table__.c
    published = t.state == ReleaseState.PUBLISHED
    gone_after_publication = (t.state == ReleaseState.WITHDRAWN) & t.published_at.is_not(None)
    conn = session.connection()
    topic_ids: dict[int, list[int]] = defaultdict(list)
    links = select(release_topics.c.release_id, release_topics.c.topic_id).join(
        Release.__table__, t.id == release_topics.c.release_id
    )
    for release_id, topic_id in conn.execute(links.where(published | gone_after_publication)):
        topic_ids[release_id].append(topic_id)
    columns = select(
        t.id,
        t.slug,
        t.language,
        cast(t.date, String),
        cast(t.updated_at, String),
        t.translation_of_id,
    )
    rows = [
        _Row(rid, slug, lang, date, updated, origin or rid, tuple(sorted(topic_ids[rid])))
        for rid, slug, lang, date, updated, origin in conn.execute(columns.where(published)).all()
    ]
    topics = list(session.scalars(select(Topic).order_by(Topic.slug)))
    withdrawn = select(
        t.id, t.slug, cast(t.withdrawn_at, String), t.language, t.withdrawn_at
    ).where(gone_after_publication)
    gone = [
        _Gone(rid, slug, str(text), lang, tuple(sorted(topic_ids[rid])), when)
        for rid, slug, text, lang, when in conn.execute(withdrawn).all()
    ]
    return rows, topics, gone


def _plan(
    rows: list[_Row],
    topics: list[Topic],
    gone: list[_Gone],
    settings: Settings,
    sender: Identity,
) -> list[_Output]:
    """Every file of the site, with the fingerprint of what it would contain."""
    build = _build_fingerprint(settings, topics, sender)
    groups: dict[int, list[_Row]] = defaultdict(list)
    for row in rows:
        groups[row.group].append(row)
    keys = {row.id: _release_key(row, groups[row.group]) for row in rows}
    usable = [t for t in topics if _safe_segment(t.slug)]
    for t in topics:
        if t not in usable:
            log.warning("topic %r: its slug cannot name a file; no page or feed", t.slug)

    members = {group: tuple(r.id for r in found) for group, found in groups.items()}
    outputs = []
    for r in rows:
        if _safe_segment(r.slug):
            ids = members[r.group]
            shown = (r.id, *(i for i in ids if i != r.id)) if len(ids) > 1 else ids
            relpath = urls.release_relpath(r.slug)
            outputs.append(
                _Output(relpath, _hash(build, "release", keys[r.id]), "release", r.id, shown)
            )
    outputs += [
        _Output(
            urls.gone_relpath(g.slug),
            _hash(build, "gone", str(g.id), g.slug, g.withdrawn_at),
            "gone",
            g.id,
            (g.id,),
        )
        for g in gone
        if _safe_segment(g.slug)
    ]
    size = settings.feed_size
    first_topic = min((t.created_at for t in topics), default=None)
    for lang in settings.languages:
        in_lang = sorted((r for r in rows if r.lang == lang), key=lambda r: (r.date, r.id))
        for topic in [None, *usable]:
            tid = topic.id if topic is not None else 0  # read once: an ORM attribute is slow
            chosen = in_lang if topic is None else [r for r in in_lang if tid in r.topics]
            empty_date = None
            if not chosen:
                empty_date = _empty_date(gone, lang, topic, first_topic)
            outputs.extend(
                _listing_outputs(build, settings, lang, topic, chosen, keys, size, empty_date)
            )
    return outputs + _discovery_outputs(build, rows, keys, usable)


def _discovery_outputs(
    build: str, rows: list[_Row], keys: dict[int, str], topics: list[Topic]
) -> list[_Output]:
    """The sitemap (of the releases that have a page, and the topics' listings), robots.txt
    and the icon; see ``discovery``."""
    listed = sorted((r for r in rows if _safe_segment(r.slug)), key=lambda r: r.id)
    topic_slugs = tuple((t.id, t.slug) for t in topics)
    sitemap_fp = _hash(build, "sitemap", str(topic_slugs), *(keys[r.id] for r in listed))
    icon = hashlib.sha256(discovery.favicon()).hexdigest()
    return [
        _Output(discovery.SITEMAP_RELPATH, sitemap_fp, "sitemap", (listed, topic_slugs), ()),
        _Output(discovery.ROBOTS_RELPATH, _hash(build, "robots"), "robots", None, ()),
        _Output(discovery.FAVICON_RELPATH, _hash("favicon", icon), "favicon", None, ()),
    ]


def _empty_date(
    gone: list[_Gone], lang: str, topic: Topic | None, first_topic: datetime | None
) -> datetime | None:
    """The date of a feed that has no release: when it last changed. That is the newest
    withdrawal among the releases it held (all of them were withdrawn, or it would not be
    empty); a feed that never held one is as old as its topic, and a language's feed as
    the first topic (nothing is published before a topic exists). None for a database
    without a topic. From the catalogue, never now(): the same data, the same bytes."""
    tid = topic.id if topic is not None else None
    withdrawals = [
        g.withdrawn
        for g in gone
        if g.withdrawn is not None and g.lang == lang and (tid is None or tid in g.topics)
    ]
    if withdrawals:
        return max(withdrawals)
    return topic.created_at if topic is not None else first_topic


def _listing_outputs(
    build: str,
    settings: Settings,
    lang: str,
    topic: Topic | None,
    ascending: list[_Row],
    keys: dict[int, str],
    size: int,
    empty_date: datetime | None = None,
) -> Iterator[_Output]:
    """The pages and feeds of one listing (a language, maybe a topic): live and archives.
    ``empty_date`` dates the live feeds when there is no release (see ``_empty_date``)."""
    slug = topic.slug if topic else None
    archives = (len(ascending) - 1) // size if ascending else 0
    live = ascending[-size:][::-1]
    pages: list[tuple[int | None, list[_Row], int | None, int | None]] = [
        (None, live, archives or None, None)
    ]
    for k in range(1, archives + 1):
        chunk = ascending[(k - 1) * size : k * size][::-1]
        pages.append((k, chunk, k - 1 or None, k + 1 if k < archives else None))
    for archive, chunk, older, newer in pages:
        ids = tuple(r.id for r in chunk)
        content = _hash(*(keys[i] for i in ids))
        shape = f"{lang}|{slug}|{archive}|{older}|{newer}"
        listing = (lang, topic, archive, older, newer)
        fp = _hash(build, "listing", shape, content)
        yield _Output(urls.listing_relpath(lang, slug, archive), fp, "listing", listing, ids)
        if archive is None and topic is None and lang == settings.languages[0]:
            root_fp = _hash(build, "root", shape, content)
            yield _Output(urls.listing_relpath(None), root_fp, "root", listing, ids)
        formats: Sequence[urls.FeedFormat] = urls.FEED_FORMATS if archive is None else ("atom",)
        for fmt in formats:
            feed = FeedPage(
                lang, topic, (), archive, older if fmt == "atom" else None, newer, empty_date
            )
            fp = _hash(build, "feed", fmt, shape, content, str(empty_date))
            url = urls.feed_url(settings, lang, fmt, slug) if archive is None else None
            relpath = urls.feed_relpath(lang, fmt, slug, archive)
            yield _Output(relpath, fp, "feed", (feed, fmt), ids, url)


def _release_key(row: _Row, group: list[_Row]) -> str:
    """Everything of a release its page or feed items depend on, short of the bodies: an
    edit moves ``updated_at``; a translation's slug and language appear as alternates."""
    others = (
        sorted((o.lang, o.slug, o.id) for o in group if o.id != row.id) if len(group) > 1 else ""
    )
    return f"{row.id}|{row.slug}|{row.lang}|{row.date}|{row.updated_at}|{row.topics}|{others}"


def _build_fingerprint(settings: Settings, topics: Sequence[Topic], sender: Identity) -> str:
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


def _safe_segment(slug: str) -> bool:
    return _SEGMENT.match(slug) is not None


# -- rendering -------------------------------------------------------------------------------


def _render_all(
    settings: Settings,
    sender: Identity,
    todo: list[_Output],
    topics: list[Topic],
    rows: list[_Row],
    report: BuildReport,
    recorded: dict[str, str],
    progress: Progress | None,
) -> None:
    if not todo:
        return
    newsroom = Newsroom(settings, sender)
    cache = ItemCache()
    groups: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        groups[row.group].append(row.id)
    group_of = {row.id: row.group for row in rows}
    needed = sorted({i for o in todo for i in o.release_ids})
    # A feed item links to its translations (hreflang alternates): load them too, or a
    # feed rewritten for a new release would lose an older release's alternates.
    wanted = sorted({o for i in needed if i in group_of for o in groups[group_of[i]]})
    releases = _load(settings, sorted(set(needed) | set(wanted)))
    translations = {
        rid: [releases[o] for o in groups[group_of[rid]] if o != rid and o in releases]
        for rid in needed
        if rid in group_of  # not the withdrawn, whose notices need no translations
    }
    for done, output in enumerate(todo, 1):
        items = [releases[i] for i in output.release_ids if i in releases]
        if output.kind == "gone":
            data = newsroom.gone_page(releases[output.args]).encode()
        elif output.kind == "release":
            release = releases[output.args]
            data = newsroom.release_page(release, translations[release.id]).encode()
        elif output.kind == "sitemap":
            data = _sitemap(settings, *output.args)
        elif output.kind == "robots":
            data = discovery.robots(settings)
        elif output.kind == "favicon":
            data = discovery.favicon()
        elif output.kind in ("listing", "root"):
            lang, topic, archive, older, newer = output.args
            listing = Listing(
                lang, topic, topics, items, archive, older, newer, root=output.kind == "root"
            )
            data = newsroom.listing_page(listing).encode()
        else:
            page, fmt = output.args
            page = FeedPage(
                page.lang,
                page.topic,
                items,
                page.archive,
                page.prev_archive,
                page.next_archive,
                page.empty_date,
                sender.name(page.lang),
            )
            data = render_feed(page, fmt, settings, translations, cache)
        if _write_if_changed(settings.public_dir / output.relpath, data):
            report.written.append(output.relpath)
            if output.feed_url:
                report.changed_feeds.append(output.feed_url)
        else:
            report.unchanged += 1
        recorded[output.relpath] = output.fingerprint
        if progress is not None:
            progress(done, len(todo))


def _sitemap(settings: Settings, rows: list[_Row], topics: tuple[tuple[int, str], ...]) -> bytes:
    """The sitemap of ``rows`` (the published releases that have a page) and ``topics``,
    each release dated as its feed entries are: its last change, or its date if later."""
    t = Release.__table__.c
    with session_scope(settings) as session:
        found = session.connection().execute(
            select(t.id, t.updated_at, t.date).where(t.state == ReleaseState.PUBLISHED)
        )
        modified: dict[int, datetime] = {rid: max(updated, date) for rid, updated, date in found}
    releases = [
        discovery.Published(r.slug, r.lang, r.group, r.topics, modified[r.id])
        for r in rows
        if r.id in modified  # not withdrawn since the catalogue was read
    ]
    return discovery.sitemap(settings, releases, topics)


def _load(settings: Settings, ids: Sequence[int]) -> dict[int, Release]:
    """The full releases, in short transactions (SQLite holds a write lock for each)."""
    found: dict[int, Release] = {}
    for start in range(0, len(ids), LOAD_CHUNK):
        chunk = ids[start : start + LOAD_CHUNK]
        with session_scope(settings) as session:
            for release in session.scalars(select(Release).where(Release.id.in_(chunk))):
                found[release.id] = release
            session.expunge_all()
    return found


# -- files -----------------------------------------------------------------------------------


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the block; reference counting still
    frees what the block drops.

    A build makes hundreds of thousands of objects that live until it ends (catalogue rows,
    outputs, the loaded releases), and the collector scanned them again and again: a third
    of a full build and half of a regeneration. What a build leaves in reference cycles is
    small (its peak memory is the same) and is collected after it. Another thread's build
    may end first and resume the collector early; that costs speed, never correctness."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _read_manifest(public: Path) -> dict[str, str]:
    try:
        data = json.loads((public / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def _manifest_bytes(files: dict[str, str]) -> bytes:
    return json.dumps({"files": dict(sorted(files.items()))}, separators=(",", ":")).encode()


def _write_if_changed(path: Path, data: bytes, *, durable: bool = False) -> bool:
    """Put ``data`` at ``path`` atomically unless it is already there; True if written.

    Readers see the old file or the new one, never a part. ``durable`` also syncs the file
    and the rename to disk before returning."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # 0o644 (less the umask), not mkstemp's 0o600: the web server must be able to read it.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return True


def regenerate_site(
    settings: Settings,
    queue: TaskQueue | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> BuildReport:
    """Bring the static site (pages and feeds) up to date; see ``build_site``.

    When live feeds changed and a WebSub hub is configured, wakes a worker to ping it (a
    task, so a hub that is down is retried without holding up the next regeneration)."""
    report = build_site(settings, force=force, progress=progress)
    if report.changed_feeds and settings.websub_hub and queue is not None:
        queue.send("websub_publish", report.changed_feeds)
    return report
