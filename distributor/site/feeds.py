"""RSS 2.0, Atom 1.0 and JSON Feed 1.1 documents of releases; the only module that imports
feedgen. It renders; ``builder.py`` decides which feeds exist and writes them.

Feeds are deterministic: the same releases give the same bytes (no ``now()``, no library
version, a fixed order), so a file, and its ETag, change only when its content does.

What every feed carries: a self link (``atom:link rel="self"`` in RSS too), the hub when
``DISTRIBUTOR_WEBSUB_HUB`` is set, the language, and per item a ``tag:`` id that no edit
changes, published and updated dates, a plain-text summary, the full HTML with absolute
URLs (``content:encoded`` in RSS), the topics as categories, the lead image as an enclosure
and ``hreflang`` alternates to the release's other language versions.

Every field but the full content is plain text (``sanitize.plain_text``: no tag, no
character reference), escaped once by the writer: titles, the channel description, the
summary (RSS ``description``, Atom ``summary type="text"``, JSON ``summary``), names,
categories, document titles. Many readers render RSS titles and descriptions as HTML
whatever the specification says, so markup in a title or a lead must not reach them as
markup. The full content (``content:encoded``, Atom ``content``, JSON ``content_html``) is
the sanitised HTML of the body. Atom live feeds link
to RFC 5005 archive pages (``prev-archive``); archive pages are marked ``fh:archive``.

feedgen writes each document around its entries; the entries themselves are written here,
once per release and format, and spliced into every feed that carries them (``_entry_text``,
``_spliced``): building and serialising feedgen's elements for each took most of a full
build's feeds. They are the bytes feedgen writes of the same entries, with what feedgen 1.0
leaves out of an Atom entry's links (their ``rel``, ``type``, ``hreflang`` and ``length``):
``tests/feed_reference.py`` makes them through feedgen and the tests compare.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseExtension
from feedgen.feed import FeedGenerator
from feedgen.util import formatRFC2822
from lxml import etree

from distributor.core import urls
from distributor.core.config import Settings
from distributor.core.formats import document_label
from distributor.core.i18n import gettext_for
from distributor.core.models import Release, Topic
from distributor.core.sanitize import absolute_urls, clean_html, plain_text, strip_xml_invalid

# Atom's <updated> of a feed without items when the catalogue knows no date for it either
# (a database without a topic, where nothing can be published yet): fixed, so the feed is
# stable; after 1990, so validators do not call it implausible as they did 1970-01-01.
NO_DATE = datetime(2000, 1, 1, tzinfo=UTC)
SUMMARY_CHARS = 300
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
_ATOM = "http://www.w3.org/2005/Atom"
_HISTORY = "http://purl.org/syndication/history/1.0"  # RFC 5005
_MEDIA_TYPES = {
    "rss": "application/rss+xml",
    "atom": "application/atom+xml",
    "json": "application/feed+json",
}


@dataclass(frozen=True)
class FeedPage:
    """One feed document: a language (and maybe a topic), its releases, its archive links.

    ``archive`` is None for the live feed, else this RFC 5005 archive page's number;
    ``prev_archive`` is the next older archive page, ``next_archive`` the next newer one
    (both Atom only). ``empty_date`` is the feed's date when it has no release: when it
    last changed (``builder.py`` gives the withdrawal that emptied it, else the creation of
    its topic); never now(), so the same catalogue gives the same bytes."""

    lang: str
    topic: Topic | None
    releases: Sequence[Release]
    archive: int | None = None
    prev_archive: int | None = None
    next_archive: int | None = None
    empty_date: datetime | None = None
    # The organisation's name in ``lang`` (the identity's); "" for DISTRIBUTOR_ORGANISATION.
    organisation: str = ""


@dataclass
class ItemCache:
    """Per-item work shared by every feed rendered with it (sanitising the content is the
    dear part). Valid while the releases it holds, their translations, the settings and the
    identity stay as they were: ``forget`` the releases that changed (the site builder keeps
    one between regenerations)."""

    items: dict[tuple[int, str], _Item] = field(default_factory=dict)
    # An item's entry per format, as the XML text feedgen writes of it in a feed, made once
    # and put into every feed that carries it (a release is in its language's feed, its
    # topics' feeds and their archive pages).
    entries: dict[tuple[int, str, str], EntryText] = field(default_factory=dict)
    # An item's JSON Feed text, as it is indented in the feed's "items".
    json: dict[tuple[int, str], str] = field(default_factory=dict)

    def forget(self, release_ids: Collection[int]) -> None:
        """Drop what is held of the releases ``release_ids``."""
        self.keep(lambda rid: rid not in release_ids)

    def export(self, wanted: Callable[[int], bool]) -> ItemsHeld:
        """What is held of the releases whose id is ``wanted``, in a form another process
        can be sent (pickled) and ``adopt``."""
        entries = {k: v for k, v in self.entries.items() if wanted(k[0])}
        items = {k: v for k, v in self.items.items() if wanted(k[0])}
        return ItemsHeld(items, entries, {k: v for k, v in self.json.items() if wanted(k[0])})

    def adopt(self, held: ItemsHeld) -> None:
        """Hold what another process's cache ``export``-ed (made with the same settings)."""
        self.items.update(held.items)
        self.json.update(held.json)
        self.entries.update(held.entries)

    def keep(self, wanted: Callable[[int], bool]) -> None:
        """Keep only what is held of the releases whose id is ``wanted``."""
        self.items = {k: v for k, v in self.items.items() if wanted(k[0])}
        self.entries = {k: v for k, v in self.entries.items() if wanted(k[0])}
        self.json = {k: v for k, v in self.json.items() if wanted(k[0])}


@dataclass
class ItemsHeld:
    """What an ``ItemCache`` held, exported (``ItemCache.export``)."""

    items: dict[tuple[int, str], _Item]
    entries: dict[tuple[int, str, str], EntryText]
    json: dict[tuple[int, str], str]


@dataclass(frozen=True)
class EntryText:
    """An entry (Atom) or item (RSS) as it is written in a feed, indented, line breaks
    included: ``head``, then its full content escaped as XML text, then ``tail``. The
    content is left out of what is kept (a second copy of every release's text would add
    about 40% to a full build's memory): ``body`` is None when the entry has none, ``tail``
    then empty."""

    head: bytes
    tail: bytes = b""
    body: str | None = None

    def parts(self) -> tuple[bytes, ...]:
        """The entry's bytes, in pieces to join."""
        if self.body is None:
            return (self.head,)
        return (self.head, xml_text(self.body).encode("utf-8"), self.tail)


@dataclass(frozen=True)
class Enclosure:
    url: str
    type: str
    length: int


@dataclass(frozen=True)
class _Item:
    id: str
    title: str
    url: str
    lang: str
    published: datetime
    updated: datetime
    summary: str
    content_html: str
    categories: tuple[tuple[str, str, str], ...]  # term, label, scheme (the topic page)
    enclosure: Enclosure | None
    alternates: tuple[tuple[str, str], ...]  # hreflang, url of another language version
    attachments: tuple[tuple[str, str, str, int], ...]  # url, title, type, length
    author: str


def render_feed(
    page: FeedPage,
    fmt: urls.FeedFormat,
    settings: Settings,
    translations: Mapping[int, Sequence[Release]] | None = None,
    cache: ItemCache | None = None,
) -> bytes:
    """The complete document (UTF-8 bytes) of ``page`` in ``fmt``.

    ``page.releases`` may come in any order: the document holds them newest first (by date,
    then id), at most ``settings.feed_size``. ``translations`` maps a release id to its
    other published language versions (for ``hreflang`` alternates). The result depends only
    on the arguments."""
    newest = sorted(page.releases, key=lambda r: (r.date, r.id), reverse=True)
    newest = newest[: settings.feed_size]
    cache = cache if cache is not None else ItemCache()
    items = []
    for release in newest:
        key = (release.id, page.lang)
        if key not in cache.items:
            others = (translations or {}).get(release.id, ())
            cache.items[key] = _item(release, others, settings, page)
        items.append(cache.items[key])
    if fmt == "json":
        texts = []
        for item, release in zip(items, newest, strict=True):
            key = (release.id, page.lang)
            if key not in cache.json:
                cache.json[key] = _json_item_text(item)
            texts.append(cache.json[key])
        return _json_feed(page, texts, settings)
    entries = []
    for item, release in zip(items, newest, strict=True):
        entry_key = (release.id, page.lang, fmt)
        if entry_key not in cache.entries:
            cache.entries[entry_key] = _entry_text(item, fmt)
        entries.append(cache.entries[entry_key])
    return _spliced(_xml_feed(page, fmt, items, [_Slot()], settings), entries)


def build_feed(
    releases: Sequence[Release],
    settings: Settings,
    *,
    lang: str,
    fmt: urls.FeedFormat,
    topic: Topic | None = None,
) -> bytes:
    """The live feed of ``releases`` (no archive links, no translations): a shorthand of
    ``render_feed`` for callers that filtered the releases themselves."""
    return render_feed(FeedPage(lang, topic, releases), fmt, settings)


def feed_title(settings: Settings, lang: str, topic: Topic | None, organisation: str = "") -> str:
    """A feed's title: the organisation (``organisation``, else DISTRIBUTOR_ORGANISATION),
    and the topic's name in ``lang`` if any."""
    title = _organisation(settings, organisation)
    if topic is not None:
        title = f"{title} — {_topic_label(topic, lang)}"
    return title


# -- XML (feedgen) ---------------------------------------------------------------------------


def _xml_feed(
    page: FeedPage,
    fmt: urls.FeedFormat,
    items: Sequence[_Item],
    entries: Sequence[FeedEntry],
    s: Settings,
) -> bytes:
    """The document feedgen writes of ``page`` with ``entries`` (``items``: their data,
    which dates the feed). ``render_feed`` gives it one ``_Slot`` and splices the entries'
    text in its place (``_spliced``); given the entries themselves, it is what that splicing
    must equal (the tests compare them)."""
    slug = page.topic.slug if page.topic else None
    self_url = _text(urls.feed_url(s, page.lang, fmt, slug, page.archive))
    title = feed_title(s, page.lang, page.topic, page.organisation)
    if page.archive is not None:
        title = f"{title} ({page.archive})"
    fg = FeedGenerator()
    fg.register_extension("distributor", _FeedExtension, None, atom=True, rss=True)
    extension: _FeedExtension = fg.distributor
    extension.hub = s.websub_hub
    extension.archive = page.archive is not None
    # The feed's date: its newest item's; for a feed without items the date the catalogue
    # gives (page.empty_date); without one, RSS leaves its optional lastBuildDate out and
    # Atom, which requires <updated>, gets the fixed NO_DATE. Never now(): feeds are
    # deterministic (feedgen would put now() in).
    dated = max((i.updated for i in items), default=page.empty_date)
    extension.undated = dated is None
    if fmt == "rss":
        fg.load_extension("dc", atom=False, rss=True)  # dc:creator: an author without email
    fg.id(self_url)
    fg.title(title)
    if fmt == "rss":
        fg.description(title)
    fg.language(_text(page.lang))
    fg.author(name=_organisation(s, page.organisation))
    fg.link(href=self_url, rel="self", type=_MEDIA_TYPES[fmt])
    if fmt == "atom":
        if s.websub_hub:
            fg.link(href=_text(s.websub_hub), rel="hub")
        if page.archive is not None:
            fg.link(href=_text(urls.feed_url(s, page.lang, fmt, slug)), rel="current")
        if page.prev_archive is not None:
            prev = urls.feed_url(s, page.lang, fmt, slug, page.prev_archive)
            fg.link(href=_text(prev), rel="prev-archive")
        if page.next_archive is not None:
            newer = urls.feed_url(s, page.lang, fmt, slug, page.next_archive)
            fg.link(href=_text(newer), rel="next-archive")
    # Last, because feedgen takes the last link as the RSS channel <link>: the newsroom.
    home = urls.listing_url(s, page.lang, slug)
    fg.link(href=_text(home), rel="alternate", type="text/html")
    # Fixed generator and update time: feedgen would otherwise put its version and now() in.
    fg.generator("distributor")
    fg.updated(dated or NO_DATE)
    for entry in entries:
        fg.add_entry(entry, order="append")
    data = fg.rss_str(pretty=True) if fmt == "rss" else fg.atom_str(pretty=True)
    assert isinstance(data, bytes)
    return data


class _FeedExtension(BaseExtension):  # type: ignore[misc]
    """Feed-level elements feedgen does not write: the hub in RSS and the RFC 5005 marker;
    and the RSS lastBuildDate of an undated feed taken out (feedgen always writes one)."""

    hub: str | None = None
    archive: bool = False
    undated: bool = False

    def extend_ns(self) -> dict[str, str]:
        return {"fh": _HISTORY} if self.archive else {}

    def extend_rss(self, feed: Any) -> Any:
        channel = feed[0]
        if self.hub:
            etree.SubElement(channel, f"{{{_ATOM}}}link", href=_text(self.hub), rel="hub")
        if self.undated:
            for element in channel.findall("lastBuildDate"):
                channel.remove(element)
        return feed

    def extend_atom(self, feed: Any) -> Any:
        if self.archive:
            etree.SubElement(feed, f"{{{_HISTORY}}}archive")
        return feed


class _Slot(FeedEntry):  # type: ignore[misc]
    """Where a feed's entries go: feedgen writes it as one comment line (``_SLOT``)."""

    def atom_entry(self, extensions: bool = True) -> Any:
        return etree.Comment(_SLOT)

    def rss_entry(self, extensions: bool = True) -> Any:
        return etree.Comment(_SLOT)


# Never in a feed's own text: a comment only ``_Slot`` writes.
_SLOT = "distributor entries"


def _spliced(document: bytes, entries: Sequence[EntryText]) -> bytes:
    """``document`` (``_xml_feed`` given one ``_Slot``) with the slot's line replaced by
    ``entries``: the bytes feedgen writes of the feed with those entries, without building
    and serialising each entry's elements again for every feed that carries it (that took
    half of a full site build's feeds)."""
    mark = document.index(f"<!--{_SLOT}-->".encode())
    start = document.rindex(b"\n", 0, mark) + 1
    end = document.index(b"\n", mark) + 1
    pieces = [document[:start]]
    for entry in entries:
        pieces.extend(entry.parts())
    pieces.append(document[end:])
    return b"".join(pieces)


def _entry_text(item: _Item, fmt: urls.FeedFormat) -> EntryText:
    """``item``'s entry as feedgen writes it in a ``fmt`` feed, pretty-printed at its depth
    there (under the root in Atom, under the channel in RSS), its content left out.

    Written here as text: building feedgen's elements for it and serialising them took
    four times as long, for every release of a full build. What feedgen writes stays the
    reference: ``tests/feed_reference.py`` builds the same entries through feedgen, and the
    tests hold these bytes to those."""
    if fmt == "rss":
        return _rss_entry(item)
    return _atom_entry(item)


def _atom_entry(item: _Item) -> EntryText:
    # feedgen's order: id, title, updated, author, content, summary, published; then our
    # links and categories (feedgen 1.0 drops a link's attributes, see the module docstring).
    t = xml_text
    head = (
        f"  <entry>\n    <id>{t(item.id)}</id>\n    <title>{t(item.title)}</title>\n"
        f"    <updated>{item.updated.isoformat()}</updated>\n"
        f"    <author>\n      <name>{t(item.author)}</name>\n    </author>\n"
    )
    rest = []
    if item.summary:
        rest.append(f'    <summary type="text">{t(item.summary)}</summary>\n')
    rest.append(f"    <published>{item.published.isoformat()}</published>\n")
    links = [(item.url, "alternate", "text/html", item.lang)]
    links += [(url, "alternate", "text/html", lang) for lang, url in item.alternates]
    for url, rel, kind, lang in links:
        rest.append(_empty("link", href=url, rel=rel, type=kind, hreflang=lang))
    if item.enclosure is not None:
        enc = item.enclosure
        rest.append(
            _empty("link", href=enc.url, rel="enclosure", type=enc.type, length=str(enc.length))
        )
    for url, title, kind, length in item.attachments:
        rest.append(_empty("link", href=url, rel="related", title=title, type=kind or None,
                           length=str(length) if length else None))  # fmt: skip
    for term, label, scheme in item.categories:
        rest.append(_empty("category", term=term, label=label, scheme=scheme))
    rest.append("  </entry>\n")
    if not item.content_html:
        return EntryText((head + '    <content type="html"/>\n' + "".join(rest)).encode())
    head += '    <content type="html">'
    return EntryText(head.encode(), ("</content>\n" + "".join(rest)).encode(), item.content_html)


def _rss_entry(item: _Item) -> EntryText:
    # feedgen's order: title, link, description, content:encoded, guid, enclosure, pubDate;
    # then our categories, atom:updated and alternates; then dc:creator (its extension).
    t = xml_text
    head = (
        f"    <item>\n      <title>{t(item.title)}</title>\n      <link>{t(item.url)}</link>\n"
        f"      <description>{t(item.summary)}</description>\n      <content:encoded>"
    )
    rest = [f'</content:encoded>\n      <guid isPermaLink="false">{t(item.id)}</guid>\n']
    if item.enclosure is not None:
        enc = item.enclosure
        rest.append(_empty("enclosure", 6, url=enc.url, length=str(enc.length), type=enc.type))
    rest.append(f"      <pubDate>{formatRFC2822(item.published)}</pubDate>\n")
    for _term, label, scheme in item.categories:
        rest.append(f'      <category domain="{_xml_attribute(scheme)}">{t(label)}</category>\n')
    rest.append(f"      <atom:updated>{_rfc3339(item.updated)}</atom:updated>\n")
    for lang, url in item.alternates:
        rest.append(_empty("atom:link", 6, href=url, rel="alternate", type="text/html",
                           hreflang=lang))  # fmt: skip
    rest.append(f"      <dc:creator>{t(item.author)}</dc:creator>\n    </item>\n")
    return EntryText(head.encode(), "".join(rest).encode(), item.content_html)


def _empty(tag: str, indent: int = 4, **attributes: str | None) -> str:
    """An empty element on a line of its own, its attributes in the order given (None: left
    out)."""
    written = "".join(f' {k}="{_xml_attribute(v)}"' for k, v in attributes.items() if v is not None)
    return f"{' ' * indent}<{tag}{written}/>\n"


def _xml_attribute(value: str) -> str:
    """``value`` escaped as libxml2 writes an attribute's: as text (``xml_text``), and the
    quote, tab and line feed as references."""
    return _referenced(value, _ATTRIBUTE_REFERENCES)


def xml_text(text: str) -> str:
    """``text`` escaped as libxml2 writes an element's text: ``&``, ``<`` and ``>`` as
    entities, a carriage return as ``&#13;`` (so a parser does not make it a line feed)."""
    return _referenced(text, _TEXT_REFERENCES)


def _referenced(text: str, references: tuple[tuple[str, str], ...]) -> str:
    for char, reference in references:  # "&" first: the references hold one
        if char in text:
            text = text.replace(char, reference)
    return text


_TEXT_REFERENCES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("\r", "&#13;"))
_ATTRIBUTE_REFERENCES = (*_TEXT_REFERENCES, ('"', "&quot;"), ("\n", "&#10;"), ("\t", "&#9;"))


# -- JSON Feed -------------------------------------------------------------------------------


def _json_feed(page: FeedPage, items: Sequence[str], s: Settings) -> bytes:
    """The JSON Feed document of ``page`` whose items are ``items`` (``_json_item_text``):
    what ``json.dumps(doc, ensure_ascii=False, indent=1)`` writes of the whole, each item
    serialised once however many feeds carry it (the pure-Python encoder ``indent`` needs
    took a third of a regeneration's feeds)."""
    slug = page.topic.slug if page.topic else None
    doc: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": feed_title(s, page.lang, page.topic, page.organisation),
        "home_page_url": _text(urls.listing_url(s, page.lang, slug)),
        "feed_url": _text(urls.feed_url(s, page.lang, "json", slug)),
        "language": _text(page.lang),
        "authors": [{"name": _organisation(s, page.organisation)}],
    }
    if s.websub_hub:
        doc["hubs"] = [{"type": "WebSub", "url": s.websub_hub}]
    doc["items"] = []
    text = json.dumps(doc, ensure_ascii=False, indent=1)
    if items:
        empty = '\n "items": []\n}'
        assert text.endswith(empty)
        text = text[: -len(empty)] + '\n "items": [\n' + ",\n".join(items) + "\n ]\n}"
    return (text + "\n").encode("utf-8")


def _json_item_text(item: _Item) -> str:
    """``item`` in JSON as ``json.dumps(…, indent=1)`` writes it in the feed's "items" (two
    levels deep: JSON strings escape their line breaks, so every one is the layout's)."""
    text = json.dumps(_json_item(item), ensure_ascii=False, indent=1)
    return "  " + text.replace("\n", "\n  ")


def _json_item(item: _Item) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": item.id,
        "url": item.url,
        "title": item.title,
        "content_html": item.content_html,
        "summary": item.summary,
        "date_published": _rfc3339(item.published),
        "date_modified": _rfc3339(item.updated),
        "language": item.lang,
        "authors": [{"name": item.author}],
        "tags": [label for _, label, _ in item.categories],
    }
    attachments = []
    if item.enclosure is not None:
        data["image"] = item.enclosure.url
        enc = item.enclosure
        attachments.append(_json_attachment(enc.url, "", enc.type, enc.length))
    attachments.extend(_json_attachment(*a) for a in item.attachments)
    if attachments:
        data["attachments"] = attachments
    return data


def _json_attachment(url: str, title: str, kind: str, length: int) -> dict[str, Any]:
    found: dict[str, Any] = {"url": url, "mime_type": kind or "application/octet-stream"}
    if title:
        found["title"] = title
    if length:
        found["size_in_bytes"] = length
    return found


# -- one item --------------------------------------------------------------------------------


def _item(release: Release, others: Sequence[Release], s: Settings, page: FeedPage) -> _Item:
    lang = page.lang
    organisation = _organisation(s, page.organisation)
    categories = tuple(
        (plain_text(t.slug) or "-", _topic_label(t, lang), _text(urls.listing_url(s, lang, t.slug)))
        for t in sorted(release.topics, key=lambda t: t.slug)
    )
    alternates = tuple(
        (_text(o.language), _text(urls.release_url(s, o.slug)))
        for o in sorted(others, key=lambda o: (o.language, o.id))
        if o.language != release.language
    )
    attachments = tuple(
        (
            url,
            document_label(a),
            _text(str(a.get("type") or _guess_type(url))),
            _length(a.get("length"), str(a.get("href") or ""), s),
        )
        for a in release.attachments or []
        if (url := _absolute(str(a.get("href") or ""), s))
    )
    return _Item(
        id=_tag_uri(release, s),
        title=_title(release),
        url=_text(urls.release_url(s, release.slug)),
        lang=_text(release.language),
        published=release.date,
        updated=_updated(release),
        summary=_summary(release),
        content_html=_content_html(release, s),
        categories=categories,
        enclosure=_enclosure(release, s),
        alternates=alternates,
        attachments=attachments,
        author=organisation,
    )


def _enclosure(release: Release, s: Settings) -> Enclosure | None:
    """The lead (first) image: its high-resolution version when there is one."""
    for image in release.images or []:
        for key in ("href", "src"):
            path = str(image.get(key) or "")
            if url := _absolute(path, s):
                kind = _text(str(image.get("type") or _guess_type(url) or "image/jpeg"))
                return Enclosure(url, kind, _length(image.get("length"), path, s))
    return None


def _length(declared: object, path: str, s: Settings) -> int:
    """The length of the file at ``path`` (a release's link as stored): ``declared`` when it
    is a positive number, else the size of the site file under public/ it names, else 0
    (unknown, as RSS 2.0 allows)."""
    if isinstance(declared, int) and declared > 0:
        return declared
    if path.startswith("/") and urls.link_problem(path) is None and ".." not in path:
        try:
            return (s.public_dir / path.lstrip("/")).stat().st_size
        except (OSError, ValueError):  # missing, or a name no file system takes
            return 0
    return 0


def _guess_type(url: str) -> str:
    return mimetypes.guess_type(Path(urlsplit(url).path).name)[0] or ""


def _absolute(url: str, s: Settings) -> str:
    """A release's link made absolute (``urls.absolute_link``); "" for one that is not a
    link, stored before the checks (``//host``, ``javascript:``): it is left out."""
    return urls.absolute_link(s.site_url, _text(url)) or ""


def _tag_uri(release: Release, settings: Settings) -> str:
    # RFC 4151: the authority is the bare host name (no port); the date is when the release
    # row was created, which no edit changes.
    host = (urlsplit(settings.site_url).hostname or "localhost").lower()
    return f"tag:{host},{release.created_at.astimezone(UTC):%Y-%m-%d}:release/{release.id}"


def _updated(release: Release) -> datetime:
    # A release dated after its last edit (announced ahead) must not look updated before
    # it was published.
    return max(release.updated_at, release.date)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _summary(release: Release) -> str:
    lead = plain_text(release.lead)
    if lead:
        return lead
    # The body's start only: plain_text reads what it is given, and the body may be 2 MB.
    text = plain_text((release.body_text or "")[: SUMMARY_CHARS * 4])
    if len(text) > SUMMARY_CHARS:
        text = text[:SUMMARY_CHARS].rsplit(" ", 1)[0] + "…"
    return text or _title(release)


def _title(release: Release) -> str:
    # Never empty: feedgen refuses an entry without a title ("Required fields not set").
    return plain_text(release.title) or plain_text(release.slug) or f"#{release.id}"


def _content_html(release: Release, settings: Settings) -> str:
    """The full text as HTML: the lead, the body, the images with their credits, then the
    attachments, with every URL absolute. Sanitised again here: not every reader does."""
    parts = _corrections(release, settings)
    lead = plain_text(release.lead)  # the same text as the summary's
    if lead:
        parts.append(f"<p>{escape(lead)}</p>")
    parts.append(release.body_html or "")
    parts.extend(_figure(image, settings) for image in release.images or [])
    links = [
        f'<li><a href="{escape(href)}">{escape(document_label(a))}</a></li>'
        for a in release.attachments or []
        if (href := _absolute(str(a.get("href") or ""), settings))
    ]
    if links:
        parts.append("<ul>" + "".join(links) + "</ul>")
    return absolute_urls(
        clean_html("".join(parts)), settings.site_url
    )  # it strips what XML forbids


def _corrections(release: Release, settings: Settings) -> list[str]:
    """A paragraph per correction, oldest first: "Corrected on DATE TIME: what changed"
    (the note, when one was given), in the release's language; the one "Corrected on"
    of a release corrected before notes were recorded."""
    _ = gettext_for(release.language)
    made = [(c.corrected_at, _text(c.note)) for c in release.corrections]
    if not made and release.corrected_at is not None:
        made = [(release.corrected_at, "")]
    lines = []
    for at, note in made:
        when = f"{at.astimezone(settings.zone):%Y-%m-%d %H:%M %Z}"
        said = f"{escape(_('Corrected on'))} {when}"
        if note:
            said += f"{escape(_(':'))} {escape(note)}"
        lines.append(f"<p><em>{said}</em></p>")
    return lines


def _figure(image: Mapping[str, Any], settings: Settings) -> str:
    src = _absolute(str(image.get("src") or ""), settings)
    if not src:
        return ""
    html = f'<img src="{escape(src)}" alt="{escape(plain_text(str(image.get("alt") or "")))}">'
    href = _absolute(str(image.get("href") or ""), settings)
    if href:
        html = f'<a href="{escape(href)}">{html}</a>'
    credit = plain_text(str(image.get("credit") or ""))
    if credit:
        html += f"<figcaption>{escape(credit)}</figcaption>"
    return f"<figure>{html}</figure>"


def _organisation(settings: Settings, name: str = "") -> str:
    return plain_text(name or settings.organisation) or "Press releases"


def _topic_label(topic: Topic, lang: str) -> str:
    """A topic's name in ``lang`` as plain text; its slug when the name has no text."""
    return plain_text(topic.name(lang)) or plain_text(topic.slug) or "-"


def _text(value: str) -> str:
    return strip_xml_invalid(value)
