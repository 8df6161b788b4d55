"""RSS 2.0 and Atom 1.0 feeds of published releases; the only module that imports feedgen.

Feeds are deterministic: the same releases give the same bytes (no ``now()``, no library
version, a fixed order), so a file is rewritten, and its ETag changes, only when its content
does. Every feed is written atomically (temporary file in the same directory, fsync, rename).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from feedgen.entry import FeedEntry
from feedgen.ext.dc import DcEntryExtension
from feedgen.feed import FeedGenerator
from sqlalchemy import select
from sqlalchemy.orm import Session

from . import urls
from .config import Settings
from .models import Release, ReleaseState, Topic
from .sanitize import absolute_urls, clean_html, strip_xml_invalid

log = logging.getLogger(__name__)

# The feed-level date of a feed without items: fixed, so an empty feed is stable too.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SUMMARY_CHARS = 300
FORMATS: tuple[urls.FeedFormat, ...] = ("rss", "atom")
_MEDIA_TYPES = {"rss": "application/rss+xml", "atom": "application/atom+xml"}
_SPACES = re.compile(r"\s+")

# One FeedEntry per (release id, language), shared by every feed built in one pass.
_EntryCache = dict[tuple[int, str], Any]


def build_feed(
    releases: Sequence[Release],
    settings: Settings,
    *,
    lang: str,
    fmt: Literal["rss", "atom"],
    topic: Topic | None = None,
) -> bytes:
    """A complete RSS 2.0 or Atom 1.0 document (UTF-8 bytes) for ``releases``.

    The caller filters (state, language, topic); this keeps the ``settings.feed_size`` newest
    by date then id, newest first. The result depends only on the arguments: the same
    releases, in any order, give the same bytes. Item ids are ``tag:`` URIs built from the
    site host, the release's creation date and id, so edits never change them.
    """
    return _render(releases, settings, lang=lang, fmt=fmt, topic=topic, cache={})


def write_feeds(session: Session, settings: Settings) -> list[Path]:
    """Regenerate every feed under ``settings.public_dir``: for each configured language, the
    releases feed and one feed per topic, each as RSS and Atom, of published releases.

    A file is replaced atomically, and only when its bytes differ, so unchanged feeds keep
    their mtime and inode. Returns every feed path, whether rewritten or already up to date.
    Nothing else is removed (a deleted topic's old feed files stay). Topics whose slug cannot
    name a file are skipped with a warning.
    """
    topics: list[Topic | None] = [None]
    for row in session.scalars(select(Topic).order_by(Topic.slug)):
        if _safe_segment(row.slug):
            topics.append(row)
        else:
            log.warning("topic %r: slug cannot name a feed file; no feed written", row.slug)
    cache: _EntryCache = {}
    paths: list[Path] = []
    for lang in settings.languages:
        for topic in topics:
            releases = _published(session, settings, lang, topic)
            for fmt in FORMATS:
                data = _render(releases, settings, lang=lang, fmt=fmt, topic=topic, cache=cache)
                slug = topic.slug if topic else None
                path = settings.public_dir / urls.feed_relpath(lang, fmt, slug)
                _write_if_changed(path, data)
                paths.append(path)
    return paths


def _published(
    session: Session, settings: Settings, lang: str, topic: Topic | None
) -> list[Release]:
    stmt = select(Release).where(Release.state == ReleaseState.PUBLISHED, Release.language == lang)
    if topic is not None:
        stmt = stmt.where(Release.topics.any(Topic.id == topic.id))
    stmt = stmt.order_by(Release.date.desc(), Release.id.desc()).limit(settings.feed_size)
    return list(session.scalars(stmt))


def _render(
    releases: Sequence[Release],
    settings: Settings,
    *,
    lang: str,
    fmt: Literal["rss", "atom"],
    topic: Topic | None,
    cache: _EntryCache,
) -> bytes:
    newest = sorted(releases, key=lambda r: (r.date, r.id), reverse=True)[: settings.feed_size]
    slug = topic.slug if topic else None
    self_url = _text(urls.feed_url(settings, lang, fmt, slug))
    title = _organisation(settings)
    if topic is not None:
        title = f"{title} — {_text(topic.name(lang)).strip() or _text(topic.slug)}"

    fg = FeedGenerator()
    if fmt == "rss":
        fg.load_extension("dc", atom=False, rss=True)  # dc:creator: an author without email
    fg.id(self_url)
    fg.title(title)
    if fmt == "rss":
        fg.description(title)
    fg.language(_text(lang))
    fg.author(name=_organisation(settings))
    fg.link(href=self_url, rel="self", type=_MEDIA_TYPES[fmt])
    # Last, because feedgen takes the last link as the RSS channel <link>: the newsroom.
    fg.link(href=_text(settings.site_url) + "/", rel="alternate", type="text/html")
    # Fixed generator and update time: feedgen would otherwise put its version and now() in.
    fg.generator("distributor")
    fg.updated(max((_updated(r) for r in newest), default=EPOCH))
    for release in newest:
        key = (release.id, lang)
        if key not in cache:
            cache[key] = _entry(release, settings, lang)
        fg.add_entry(cache[key], order="append")
    data = fg.rss_str(pretty=True) if fmt == "rss" else fg.atom_str(pretty=True)
    assert isinstance(data, bytes)
    return data


def _entry(release: Release, settings: Settings, lang: str) -> Any:
    """The feed item of ``release`` (usable in RSS and Atom feeds alike)."""
    organisation = _organisation(settings)
    fe = FeedEntry()
    fe.register_extension("dc", DcEntryExtension, atom=False, rss=True)
    fe.id(_tag_uri(release, settings))  # also the RSS guid, isPermaLink="false"
    fe.title(_text(release.title).strip() or _text(release.slug))
    fe.link(href=_text(urls.release_url(settings, release.slug)), rel="alternate")
    fe.published(release.date)
    fe.updated(_updated(release))
    fe.author(name=organisation)
    fe.dc.dc_creator(organisation)
    fe.summary(_summary(release))  # plain text: Atom summary, RSS description
    fe.content(_content_html(release, settings), type="html")  # RSS content:encoded
    for topic in sorted(release.topics, key=lambda t: t.slug):
        fe.category(
            term=_text(topic.slug), label=_text(topic.name(lang)).strip() or _text(topic.slug)
        )
    return fe


def _tag_uri(release: Release, settings: Settings) -> str:
    # RFC 4151: the authority is the bare host name (no port); the date is when the release
    # row was created, which no edit changes.
    host = (urlsplit(settings.site_url).hostname or "localhost").lower()
    return f"tag:{host},{release.created_at.astimezone(UTC):%Y-%m-%d}:release/{release.id}"


def _updated(release: Release) -> datetime:
    # A release dated after its last edit (announced ahead) must not look updated before
    # it was published.
    return max(release.updated_at, release.date)


def _summary(release: Release) -> str:
    lead = _SPACES.sub(" ", _text(release.lead)).strip()
    if lead:
        return lead
    text = _SPACES.sub(" ", _text(release.body_text or "")).strip()
    if len(text) > SUMMARY_CHARS:
        text = text[:SUMMARY_CHARS].rsplit(" ", 1)[0] + "…"
    return text or _text(release.title).strip() or _text(release.slug)


def _content_html(release: Release, settings: Settings) -> str:
    """The full text as HTML: the lead, the body, then the images with their credits, with
    every URL absolute. Sanitised again here: feed readers do not all sanitise."""
    parts: list[str] = []
    lead = _text(release.lead).strip()
    if lead:
        parts.append(f"<p>{escape(lead)}</p>")
    parts.append(release.body_html or "")
    parts.extend(_figure(image) for image in release.images or [])
    return absolute_urls(clean_html("".join(parts)), settings.site_url)


def _figure(image: dict[str, Any]) -> str:
    src = str(image.get("src") or "")
    if not src:
        return ""
    html = f'<img src="{escape(src)}" alt="{escape(str(image.get("alt") or ""))}">'
    if image.get("href"):
        html = f'<a href="{escape(str(image["href"]))}">{html}</a>'
    if image.get("credit"):
        html += f"<figcaption>{escape(str(image['credit']))}</figcaption>"
    return f"<figure>{html}</figure>"


def _organisation(settings: Settings) -> str:
    return _text(settings.organisation).strip() or "Press releases"


def _text(value: str) -> str:
    return strip_xml_invalid(value)


def _safe_segment(slug: str) -> bool:
    return bool(slug) and slug not in (".", "..") and not any(c in slug for c in "/\\\x00")


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Put ``data`` at ``path`` atomically unless it is already there; True if written."""
    try:
        if path.read_bytes() == data:
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
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return True


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, hence best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
