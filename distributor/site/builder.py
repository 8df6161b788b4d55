"""The static site: every newsroom page and every feed, written under ``public/``.

``build_site`` is the one regeneration: after a publish, a correction, a withdrawal, or by
``distributor site build``. It is incremental. A cheap catalogue of the published releases
(ids, dates, topics, translations; no bodies; ``catalogue.py``) gives every output its
fingerprint (``plan.py``); an output is rendered only when its fingerprint differs from the
one recorded in ``public/.manifest.json`` (or its file is missing), and a file is replaced
only when its bytes differ. So a publish among 10,000 releases renders a few pages and
feeds, not the whole site.

A build keeps the catalogue, the plan and the manifest in the process for the next (a
worker regenerates the site again and again): the next reads only the releases the
database logged as changed since (``catalogue.py``), re-plans only what they touch, and
looks at nothing else, unless another process wrote ``public/`` in between (its manifest is
not the one this process wrote), the topics, the office's identity, the templates or the
settings changed (read again every time: a few rows and files), or ``force`` is given.

A build with many outputs to render (``PARALLEL_MIN``: a full one, after a template change)
renders them on every core: forked children (``forked.py``) each render independent shares
(a language's listings and feeds; runs of release pages) and write their files; this process
renders the sitemap, and records what they did in the manifest, as for its own.

Files are replaced atomically (temporary file in the same directory, then rename): a
reader, nginx or the web app never sees a half-written file. Files the site no longer has
(a withdrawn release's page, a deleted topic's feeds) are removed; a release withdrawn after
publication leaves ``releases/SLUG.gone.html``, a notice served with 410 Gone. One build
runs at a time per data directory (a file lock), so a slower build that read older data
cannot finish last and leave stale files behind.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import itertools
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from distributor.core import collector, filemodes
from distributor.core.config import Settings
from distributor.core.db import read_scope, session_scope
from distributor.core.durable import fsync_dir
from distributor.core.identity import Identity
from distributor.core.models import Release, Topic
from distributor.core.queue import TaskQueue
from distributor.office.identity import identity
from distributor.site import discovery, forked
from distributor.site.catalogue import Catalogue, Row
from distributor.site.feeds import FeedPage, ItemCache, ItemsHeld, render_feed
from distributor.site.newsroom import Listing, Newsroom
from distributor.site.plan import Output, Plan, build_fingerprint, safe_segment

log = logging.getLogger(__name__)

MANIFEST = ".manifest.json"
LOAD_CHUNK = 500

Progress = Callable[[int, int], None]


@dataclass
class BuildReport:
    """What a build did: files written (site-relative paths), unchanged outputs, files
    removed, and the URLs of the live feeds whose content changed (for WebSub)."""

    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    changed_feeds: list[str] = field(default_factory=list)
    processes: int = 1  # how many rendered: more than one when forked children did

    @property
    def total(self) -> int:
        """How many files the site has."""
        return len(self.written) + self.unchanged


@dataclass
class _Warm:
    """What a build leaves for the next in this process: the catalogue and the plan, and
    the manifest it committed (with the manifest file's identity, to know it is still the
    one on disk). Valid for one public directory and one database."""

    where: tuple[str, str]
    catalogue: Catalogue
    plan: Plan
    rendering: _Rendering
    recorded: dict[str, str]
    text: _ManifestText
    stamp: tuple[int, int, int] | None


@dataclass
class _Rendering:
    """What rendering keeps for the next build, valid while the plan's build fingerprint
    holds and for releases whose key has not changed since (``forget`` those): the compiled
    templates, the feed items, the full releases of the live pages (what the next
    regeneration renders again), the releases as the sitemap dates them and its entries."""

    newsroom: Newsroom
    items: ItemCache = field(default_factory=ItemCache)
    releases: dict[int, Release] = field(default_factory=dict)
    published: dict[int, tuple[Row, discovery.Published]] = field(default_factory=dict)
    sitemap: discovery.SitemapCache = field(default_factory=discovery.SitemapCache)
    parts: dict[str, discovery.SitemapCache] = field(default_factory=dict)  # split, by path
    # A split sitemap's part (path) -> its fingerprint and its releases' newest change by
    # listing (what the listings' part and the index are dated by).
    newest: dict[str, tuple[str, dict[tuple[str, int | None], datetime]]] = field(
        default_factory=dict
    )

    def forget(self, release_ids: set[int]) -> None:
        """Drop what is held of the releases ``release_ids`` (changed)."""
        self.items.forget(release_ids)
        for rid in release_ids:
            self.releases.pop(rid, None)

    def keep(self, live: set[int]) -> None:
        """Keep the full releases and feed items of ``live`` releases only."""
        self.items.keep(live.__contains__)
        self.releases = {i: r for i, r in self.releases.items() if i in live}


# The sites last built in this process (a worker or a web process builds one; more are
# tests and benchmarks), by public directory and database. A build takes its site's and
# gives it back when it succeeds: a failed build, or two threads at once, start afresh.
KEEP_SITES = 2
_kept: dict[tuple[str, str], _Warm] = {}
_kept_lock = threading.Lock()


def forget_builds() -> None:
    """Drop what the builds of this process kept: the next reads the catalogue whole and
    plans every output, as a new process's first build does (benchmarks, tests)."""
    with _kept_lock:
        _kept.clear()


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
    where = (str(public.resolve()), settings.effective_database_url)
    with _locked(public / ".site.lock"), collector.paused():
        with _kept_lock:
            warm = _kept.pop(where, None)
        if force:
            warm = None
        with session_scope(settings) as session:
            sender = identity(session, settings)
            topics = list(session.scalars(select(Topic).order_by(Topic.slug)))
            conn = session.connection()
            changes = warm.catalogue.refresh(conn) if warm is not None else None
            catalogue = warm.catalogue if warm is not None and changes is not None else None
            if catalogue is None:
                catalogue = Catalogue.load(conn)
        build = build_fingerprint(settings, topics, sender)
        stamp = _stamp(public / MANIFEST)
        root = f"{public}{os.sep}"
        incremental = warm is not None and changes is not None and warm.plan.build == build
        if warm is not None and incremental:
            plan = warm.plan
            planned, dropped = plan.update(changes) if changes is not None else ([], set())
            rendering = warm.rendering
            rendering.forget(plan.moved)
        else:
            plan = Plan(settings, build, topics, catalogue)
            rendering = _Rendering(Newsroom(settings, sender))
        text = None
        if warm is not None and warm.stamp is not None and warm.stamp == stamp:
            manifest, text = warm.recorded, warm.text
        else:
            manifest = _read_manifest(public)  # with force too: what it lists and the site
            incremental = False  # no longer has is removed
        if not incremental:
            planned = list(plan.outputs.values())
            dropped = manifest.keys() - plan.outputs.keys()
        todo = [
            o
            for o in planned
            if force
            or manifest.get(o.relpath) != o.fingerprint
            or not os.path.isfile(root + o.relpath)
        ]
        if len(planned) < len(plan.outputs):  # the rest was checked before: lost since?
            todo += _lost(root, plan, {o.relpath for o in planned})
        report = BuildReport(unchanged=len(plan.outputs) - len(todo))
        recorded = dict(manifest)
        try:
            _render_all(_Pass(settings, sender, plan, rendering), todo, report, recorded, progress)
        finally:
            # What was written is recorded even if a later output failed.
            for relpath in sorted(dropped & recorded.keys()):
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
                if text is None:
                    text = _ManifestText(recorded)
                else:
                    text.update(recorded, {o.relpath for o in todo} | set(report.removed))
                _write_if_changed(public / MANIFEST, text.data(), durable=True)
        rendering.keep(plan.live_ids())
        if text is None:
            text = _ManifestText(recorded)
        stamp = _stamp(public / MANIFEST)
        kept = _Warm(where, catalogue, plan, rendering, recorded, text, stamp)
        with _kept_lock:
            _kept[where] = kept
            while len(_kept) > KEEP_SITES:
                del _kept[next(iter(_kept))]
    return report


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """The identity of the file at ``path`` (a new one at each atomic replacement)."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_ino, found.st_mtime_ns, found.st_size


def _lost(root: str, plan: Plan, checked: set[str]) -> list[Output]:
    """The outputs besides ``checked`` whose file is missing (deleted by hand): a listing
    of each directory of many files, not a look at each (10,000 files: 3 ms, not 80), and a
    look at the file of each directory of a few (a listing page's folder holds its
    ``index.html`` alone: at 100,000 releases, 6,000 listings took 0.1 s, looks 0.02 s)."""
    lost = []
    for directory, names in plan.by_dir.items():
        where = root + directory + os.sep if directory else root
        if len(names) <= _FEW_FILES:
            missing = {name for name in names if not os.path.exists(where + name)}
        else:
            try:
                missing = names - set(os.listdir(where))
            except FileNotFoundError:
                missing = set(names)
        for name in missing:
            relpath = f"{directory}/{name}" if directory else name
            if relpath not in checked:
                lost.append(plan.outputs[relpath])
    return lost


_FEW_FILES = 4  # up to this many outputs in a folder, each is looked at, not the folder listed


# -- rendering -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pass:
    """What every share of one build renders with: the settings, the sender's identity,
    the plan and what rendering keeps between builds."""

    settings: Settings
    sender: Identity
    plan: Plan
    rendering: _Rendering


def _render_all(
    build: _Pass,
    todo: list[Output],
    report: BuildReport,
    recorded: dict[str, str],
    progress: Progress | None,
) -> None:
    """Render and write ``todo``, recording each output written or found the same: here,
    or, for a large build (a full one), on every core (see ``_render_forked``)."""
    workers = forked.usable_workers() if len(todo) >= PARALLEL_MIN else 1
    report.processes = workers
    if workers > 1:
        _render_forked(build, todo, report, recorded, progress, workers)
    else:
        _render(build, todo, report, recorded, progress)


@dataclass
class _Done:
    """What rendering a share of the outputs did (sent back from a forked child): the
    report's part, the outputs recorded, and the feed items of the live releases it made
    (the next regeneration renders the live feeds again)."""

    report: BuildReport
    recorded: dict[str, str]
    items: ItemsHeld | None = None


def _render_forked(
    build: _Pass,
    todo: list[Output],
    report: BuildReport,
    recorded: dict[str, str],
    progress: Progress | None,
    workers: int,
) -> None:
    """``_render`` of ``todo`` split into shares rendered by ``workers`` forked children.

    The shares are independent: each language's listings and feeds together (a release's
    feed item, the dear part of a feed, is made once for its language's feed and its
    topics'), and the release pages in small runs that even out the children's loads. This
    process meanwhile renders the sitemap (its caches stay here, for the next regeneration)
    and loads the live pages' releases, which a regeneration renders again."""
    rendering = build.rendering
    mine = [o for o in todo if o.kind in _HERE]
    shares = _shares([o for o in todo if o.kind not in _HERE], workers)
    live = build.plan.live_ids()

    def work(index: int) -> _Done:
        done = _Done(BuildReport(), {})
        share = shares[index]
        _render(build, share, done.report, done.recorded, None)
        done.items = rendering.items.export(live.__contains__)
        rendering.items = ItemCache()  # sent once: the next share of this child sends its own
        return done

    count = len(mine)
    rendering.newsroom.compile()  # once, here: the children inherit it, and so does the next
    with forked.forked_results(work, len(shares), workers) as results:
        _render(build, mine, report, recorded, None)
        wanted = sorted(live - rendering.releases.keys())
        rendering.releases.update(_load(build.settings, wanted))
        if progress is not None:
            progress(count, len(todo))
        for done in results:
            report.written += done.report.written
            report.unchanged += done.report.unchanged
            report.changed_feeds += done.report.changed_feeds
            recorded.update(done.recorded)
            if done.items is not None:
                rendering.items.adopt(done.items)
            count += len(done.recorded)
            if progress is not None:
                progress(count, len(todo))


# Rendered by the building process itself, not a forked child: what keeps caches there.
_HERE = frozenset(
    {"sitemap", "sitemap-index", "sitemap-listings", "sitemap-part", "robots", "favicon"}
)
# Fewer outputs than this render in this process: forking costs more than it saves.
PARALLEL_MIN = 500
PAGE_RUN = 250  # release pages a share holds (small: the children's loads even out)


def _shares(todo: list[Output], workers: int) -> list[list[Output]]:
    """``todo`` in independent shares, the largest first (see ``_render_forked``)."""
    by_lang: dict[str, list[Output]] = {}
    pages: list[Output] = []
    for output in todo:
        if output.kind in ("listing", "root"):
            by_lang.setdefault(output.args[0], []).append(output)
        elif output.kind == "feed":
            by_lang.setdefault(output.args[0].lang, []).append(output)
        else:
            pages.append(output)
    shares = sorted(by_lang.values(), key=lambda s: -sum(len(o.release_ids) for o in s))
    run = max(1, min(PAGE_RUN, len(pages) // (4 * workers) or 1))
    shares += [pages[i : i + run] for i in range(0, len(pages), run)]
    return shares


def _render(
    build: _Pass,
    todo: list[Output],
    report: BuildReport,
    recorded: dict[str, str],
    progress: Progress | None,
) -> None:
    if not todo:
        return
    settings, sender, plan, rendering = build.settings, build.sender, build.plan, build.rendering
    newsroom, cache, releases = rendering.newsroom, rendering.items, rendering.releases
    catalogue = plan.catalogue
    groups, rows = catalogue.groups, catalogue.rows
    needed = sorted({i for o in todo for i in o.release_ids})
    # A feed item links to its translations (hreflang alternates): load them too, or a
    # feed rewritten for a new release would lose an older release's alternates.
    wanted = {o for i in needed if i in rows for o in groups[rows[i].group]}
    releases.update(_load(settings, sorted((set(needed) | wanted) - releases.keys())))
    translations = {
        rid: [releases[o] for o in groups[rows[rid].group] if o != rid and o in releases]
        for rid in needed
        if rid in rows  # not the withdrawn, whose notices need no translations
    }
    for done, output in enumerate(todo, 1):
        items = [releases[i] for i in output.release_ids if i in releases]
        if output.kind == "gone":
            data = newsroom.gone_page(releases[output.args]).encode()
        elif output.kind == "release":
            release = releases[output.args]
            data = newsroom.release_page(release, translations[release.id]).encode()
        elif output.kind == "sitemap":
            data = _sitemap(settings, rows, output.args, rendering)
        elif output.kind == "sitemap-part":
            published = _published(rows, output.args, rendering)
            versions = _versions(catalogue, {p.group for p in published})
            kept = rendering.parts.setdefault(output.relpath, discovery.SitemapCache())
            data = discovery.releases_sitemap(settings, published, versions, kept)
        elif output.kind == "sitemap-listings":
            topic_slugs, parts = output.args
            newest: dict[tuple[str, int | None], datetime] = {}
            for part in parts:
                for where, when in _newest(rows, part, rendering).items():
                    if newest.get(where, when) <= when:
                        newest[where] = when
            data = discovery.listings_sitemap(settings, newest, topic_slugs)
        elif output.kind == "sitemap-index":
            dated = [
                (p.relpath, max(_newest(rows, p, rendering).values(), default=None))
                for p in output.args
            ]
            latest = max((d for _, d in dated if d is not None), default=None)
            listings_part = (discovery.LISTINGS_SITEMAP_RELPATH, latest)
            data = discovery.sitemap_index(settings, [listings_part, *dated])
        elif output.kind == "robots":
            data = discovery.robots(settings)
        elif output.kind == "favicon":
            data = discovery.favicon()
        elif output.kind in ("listing", "root"):
            lang, topic, archive, older, newer = output.args
            listing = Listing(
                lang, topic, plan.topics, items, archive, older, newer, root=output.kind == "root"
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


def _sitemap(
    settings: Settings,
    rows: Mapping[int, Row],
    topics: tuple[tuple[int, str], ...],
    rendering: _Rendering,
) -> bytes:
    """The sitemap of the published releases that have a page (by id) and ``topics``, each
    release dated as its feed entries are: its last change, or its date if later."""
    releases = _published(
        rows, [rid for rid in sorted(rows) if safe_segment(rows[rid].slug)], rendering
    )
    return discovery.sitemap(settings, releases, topics, rendering.sitemap)


def _published(
    rows: Mapping[int, Row], ids: Sequence[int], rendering: _Rendering
) -> list[discovery.Published]:
    """The releases ``ids`` as the sitemap lists them (kept from one build to the next)."""
    kept = rendering.published
    releases = []
    for rid in ids:
        row = rows[rid]
        if rid not in kept or kept[rid][0] != row:
            published = discovery.Published(
                row.slug, row.lang, row.group, row.topics, row.modified()
            )
            kept[rid] = (row, published)
        releases.append(kept[rid][1])
    if len(kept) > len(rows) + 1000:
        rendering.published = {rid: kept[rid] for rid in rows if rid in kept}
    return releases


def _versions(catalogue: Catalogue, groups: set[int]) -> dict[int, list[tuple[str, str]]]:
    """The published versions of each translation group of ``groups`` that have a page, as
    (language, slug), oldest first: as ``discovery.sitemap`` finds them among all."""
    rows = catalogue.rows
    return {
        g: [
            (rows[i].lang, rows[i].slug)
            for i in sorted(catalogue.groups.get(g, ()))
            if safe_segment(rows[i].slug)
        ]
        for g in groups
    }


def _newest(
    rows: Mapping[int, Row], part: Output, rendering: _Rendering
) -> dict[tuple[str, int | None], datetime]:
    """The newest change by listing among the releases of a split sitemap's ``part``
    (kept while its fingerprint holds)."""
    kept = rendering.newest.get(part.relpath)
    if kept is None or kept[0] != part.fingerprint:
        newest = discovery.newest_by_listing(_published(rows, part.args, rendering))
        kept = rendering.newest[part.relpath] = (part.fingerprint, newest)
    return kept[1]


def _load(settings: Settings, ids: Sequence[int]) -> dict[int, Release]:
    """The full releases, in short read transactions (forked children load at once: they
    must not queue for SQLite's write lock)."""
    found: dict[int, Release] = {}
    for start in range(0, len(ids), LOAD_CHUNK):
        chunk = ids[start : start + LOAD_CHUNK]
        with read_scope(settings) as session:
            for release in session.scalars(select(Release).where(Release.id.in_(chunk))):
                found[release.id] = release
            session.expunge_all()
    return found


# -- files -----------------------------------------------------------------------------------


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


class _ManifestText:
    """The manifest's JSON text kept entry by entry, in order, for the next build: it
    rewrites the entries a build touched, not every one (``json.dumps`` of 112,000 entries
    took 0.13 s of each regeneration at 100,000 releases). The same bytes as
    ``json.dumps({"files": files}, separators=(",", ":"), sort_keys=True)``."""

    def __init__(self, files: Mapping[str, str]) -> None:
        self.keys = sorted(files)
        self.pairs = {k: _pair(k, v) for k, v in files.items()}

    def update(self, files: Mapping[str, str], touched: set[str]) -> None:
        """Bring the text up to date with ``files``, which differ from what it holds in the
        entries ``touched`` (set, changed or removed) at most."""
        for key in touched:
            if key in files:
                if key not in self.pairs:
                    bisect.insort(self.keys, key)
                self.pairs[key] = _pair(key, files[key])
            elif self.pairs.pop(key, None) is not None:
                del self.keys[bisect.bisect_left(self.keys, key)]

    def data(self) -> bytes:
        """The manifest's bytes."""
        pairs = self.pairs
        return ('{"files":{' + ",".join([pairs[k] for k in self.keys]) + "}}").encode()


def _pair(key: str, value: str) -> str:
    return f"{json.dumps(key)}:{json.dumps(value)}"


def _write_if_changed(path: Path, data: bytes, *, durable: bool = False) -> bool:
    """Put ``data`` at ``path`` atomically unless it is already there; True if written.

    Readers see the old file or the new one, never a part. ``durable`` also syncs the file
    and the rename to disk before returning."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    # A full build writes every file: syscalls only where needed (the folder is made when
    # the first write into it finds none; a name of this process's own, no random bytes).
    tmp, fd = _new_file(path)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)
    return True


def _new_file(path: Path) -> tuple[str, int]:
    """A new temporary file beside ``path`` (its folder made if missing), open to write."""
    while True:
        tmp = f"{path.parent}{os.sep}.{path.name}.{os.getpid()}.{next(_TMP_NUMBERS)}.tmp"
        try:
            return tmp, os.open(tmp, _NEW_FILE, 0o644)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # left by a process that died, whose pid this one has now
            pass


# 0o644 (less the umask), not mkstemp's 0o600: the web server must be able to read it.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL
_TMP_NUMBERS = itertools.count()


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
