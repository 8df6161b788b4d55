"""What feedgen itself writes of a feed's entries: the reference the site's own entry writer
(``distributor.site.feeds._entry_text``) must equal byte for byte. It is how the feeds were
made before that writer: feedgen's entries, with the extension that writes what feedgen 1.0
leaves out of an Atom entry's links (their ``rel``, ``type``, ``hreflang``, ``length``) and
an RSS item's categories, ``atom:updated`` and ``hreflang`` alternates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension
from feedgen.ext.dc import DcEntryExtension
from lxml import etree

from distributor.core import urls
from distributor.core.config import Settings
from distributor.core.models import Release
from distributor.site import feeds
from distributor.site.feeds import FeedPage

_ATOM = "http://www.w3.org/2005/Atom"


def by_feedgen(
    page: FeedPage,
    fmt: urls.FeedFormat,
    s: Settings,
    translations: Mapping[int, Sequence[Release]] | None = None,
) -> bytes:
    """The whole document of ``page`` as feedgen writes it with every entry built for it."""
    newest = sorted(page.releases, key=lambda r: (r.date, r.id), reverse=True)[: s.feed_size]
    items = [feeds._item(r, (translations or {}).get(r.id, ()), s, page) for r in newest]
    return items_by_feedgen(page, fmt, items, s)


def items_by_feedgen(
    page: FeedPage, fmt: urls.FeedFormat, items: Sequence[Any], s: Settings
) -> bytes:
    """The document of ``page`` holding ``items`` (``feeds._Item``), all written by feedgen."""
    return feeds._xml_feed(page, fmt, items, [feedgen_entry(i, fmt) for i in items], s)


class _ItemExtension(BaseEntryExtension):  # type: ignore[misc]
    item: Any

    def extend_atom(self, entry: Any) -> Any:
        for old in entry.findall("link"):
            entry.remove(old)
        item = self.item
        etree.SubElement(entry, "link", href=item.url, rel="alternate", type="text/html",
                         hreflang=item.lang)  # fmt: skip
        for lang, url in item.alternates:
            etree.SubElement(entry, "link", href=url, rel="alternate", type="text/html",
                             hreflang=lang)  # fmt: skip
        if item.enclosure is not None:
            enc = item.enclosure
            etree.SubElement(entry, "link", href=enc.url, rel="enclosure", type=enc.type,
                             length=str(enc.length))  # fmt: skip
        for url, title, kind, length in item.attachments:
            attrs = {"href": url, "rel": "related", "title": title}
            if kind:
                attrs["type"] = kind
            if length:
                attrs["length"] = str(length)
            etree.SubElement(entry, "link", **attrs)
        for term, label, scheme in item.categories:
            etree.SubElement(entry, "category", term=term, label=label, scheme=scheme)
        return entry

    def extend_rss(self, entry: Any) -> Any:
        item = self.item
        for _term, label, scheme in item.categories:
            category = etree.SubElement(entry, "category", domain=scheme)
            category.text = label
        updated = etree.SubElement(entry, f"{{{_ATOM}}}updated")
        updated.text = feeds._rfc3339(item.updated)
        for lang, url in item.alternates:
            etree.SubElement(entry, f"{{{_ATOM}}}link", href=url, rel="alternate",
                             type="text/html", hreflang=lang)  # fmt: skip
        return entry


def feedgen_entry(item: Any, fmt: urls.FeedFormat) -> FeedEntry:
    """``item`` as a feedgen entry for a ``fmt`` feed."""
    fe = FeedEntry()
    fe.register_extension("distributor", _ItemExtension, atom=True, rss=True)
    fe.distributor.item = item
    if fmt == "rss":
        fe.register_extension("dc", DcEntryExtension, atom=False, rss=True)
        fe.dc.dc_creator(item.author)
        if item.enclosure is not None:
            enc = item.enclosure
            fe.enclosure(url=enc.url, length=str(enc.length), type=enc.type)
    fe.id(item.id)  # also the RSS guid, isPermaLink="false"
    fe.title(item.title)
    fe.link(href=item.url, rel="alternate")  # the RSS <link>; Atom's are the extension's
    fe.published(item.published)
    fe.updated(item.updated)
    fe.author(name=item.author)
    fe.summary(item.summary, type="text")  # plain text: Atom summary, RSS description
    fe.content(item.content_html, type="html")  # RSS content:encoded
    return fe
