"""Feed elements as each format writes them, read with lxml and json rather than feedparser,
which fills in a missing ``rel`` or ``type`` and lowercases a ``rel``: the feed's own links
and their media types, the hub, a topic's RFC 5005 archive links, the generator, and the
names a feed shows for an organisation or a topic (also when a name has no text)."""

from __future__ import annotations

import json
from typing import Any

from lxml import etree
from sqlalchemy import select

from distributor.core import urls
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Release, Topic
from distributor.site.feeds import FeedPage, render_feed
from tests.feed_samples import add_feed_topics, add_release

ATOM = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"


def render(settings: Settings, fmt: urls.FeedFormat, topic: str | None = None, **page: Any) -> Any:
    """The English feed of every stored release in ``fmt``: the root element of the XML as
    written (lxml), or the JSON document. ``topic`` is the feed's topic's slug, ``page`` the
    FeedPage's other fields (archive numbers, organisation)."""
    with session_scope(settings) as session:
        found = session.scalar(select(Topic).where(Topic.slug == topic)) if topic else None
        releases = list(session.scalars(select(Release)))
        data = render_feed(FeedPage("en", found, releases, **page), fmt, settings)
    return json.loads(data) if fmt == "json" else etree.fromstring(data)


def links(element: Any) -> list[dict[str, str]]:
    """The attributes of each Atom link right under ``element`` (an Atom feed, an RSS
    channel), in document order."""
    return [dict(link.attrib) for link in element.findall(f"{ATOM}link")]


def test_a_feed_links_itself_and_its_newsroom_with_their_media_types(
    sqlite_settings: Settings,
) -> None:
    """Atom's self link says the feed's media type and its alternate link, the newsroom
    page, says text/html; RSS's atom:link self says application/rss+xml and its <link> is
    the newsroom page. The same for a topic's feeds."""
    settings = sqlite_settings
    add_feed_topics(settings)
    add_release(settings, 1)
    for topic in (None, "climate"):
        home = urls.listing_url(settings, "en", topic)
        atom = render(settings, "atom", topic)
        assert links(atom) == [
            {
                "href": urls.feed_url(settings, "en", "atom", topic),
                "rel": "self",
                "type": "application/atom+xml",
            },
            {"href": home, "rel": "alternate", "type": "text/html"},
        ]
        channel = render(settings, "rss", topic).find("channel")
        assert links(channel) == [
            {
                "href": urls.feed_url(settings, "en", "rss", topic),
                "rel": "self",
                "type": "application/rss+xml",
            }
        ]
        assert channel.findtext("link") == home


def test_rss_advertises_the_hub_with_the_registered_rel_as_written(
    sqlite_settings: Settings,
) -> None:
    """A configured WebSub hub is an ``atom:link rel="hub"`` in RSS as in Atom: "hub" as
    registered (Atom compares a rel as written: "HUB" would be another relation)."""
    hub = "https://hub.example.net/"
    settings = sqlite_settings.model_copy(update={"websub_hub": hub})
    add_feed_topics(settings)
    add_release(settings, 1)
    assert {"href": hub, "rel": "hub"} in links(render(settings, "atom"))
    assert {"href": hub, "rel": "hub"} in links(render(settings, "rss").find("channel"))


def test_a_topics_archive_page_links_the_topics_own_pages(sqlite_settings: Settings) -> None:
    """An Atom archive page of a topic links (RFC 5005) the topic's live feed as current and
    the topic's next older and next newer archive pages, never the language's pages."""
    settings = sqlite_settings
    add_feed_topics(settings)
    add_release(settings, 1)
    page = render(settings, "atom", "climate", archive=2, prev_archive=1, next_archive=3)
    by_rel = {link.get("rel"): link.get("href") for link in page.findall(f"{ATOM}link")}
    assert by_rel == {
        "self": urls.feed_url(settings, "en", "atom", "climate", 2),
        "current": urls.feed_url(settings, "en", "atom", "climate"),
        "prev-archive": urls.feed_url(settings, "en", "atom", "climate", 1),
        "next-archive": urls.feed_url(settings, "en", "atom", "climate", 3),
        "alternate": urls.listing_url(settings, "en", "climate"),
    }
    assert len(page.findall(f"{ATOM}link")) == len(by_rel)  # no rel twice, none left out


def test_the_generator_is_named_without_a_library_or_its_version(
    sqlite_settings: Settings,
) -> None:
    """<generator> says "distributor" and nothing else: feedgen's own name, version and
    URI would change the bytes (and every ETag) with a library upgrade."""
    settings = sqlite_settings
    add_feed_topics(settings)
    add_release(settings, 1)
    generator = render(settings, "atom").find(f"{ATOM}generator")
    assert (generator.text, dict(generator.attrib)) == ("distributor", {})
    assert render(settings, "rss").findtext("channel/generator") == "distributor"


def test_rss_and_atom_name_the_office_as_it_is_called_in_the_feeds_language(
    sqlite_settings: Settings,
) -> None:
    """The organisation's name in the feed's language (the identity's, not the configured
    default) titles the RSS and Atom feeds and is the Atom feed's author."""
    settings = sqlite_settings
    add_feed_topics(settings)
    add_release(settings, 1)
    name = "Agence de l'espace"
    channel = render(settings, "rss", organisation=name).find("channel")
    assert (channel.findtext("title"), channel.findtext("description")) == (name, name)
    assert channel.findtext(f"item/{DC}creator") == name
    atom = render(settings, "atom", "climate", organisation=name)
    assert atom.findtext(f"{ATOM}title") == f"{name} — Climate"
    assert atom.findtext(f"{ATOM}author/{ATOM}name") == name


def test_an_organisation_name_without_text_is_shown_as_press_releases(
    sqlite_settings: Settings,
) -> None:
    """An organisation named only with markup has no text once the tags are out: every
    format calls it "Press releases" (a feed's title and author are never empty)."""
    settings = sqlite_settings.model_copy(update={"organisation": "<b></b>"})
    add_feed_topics(settings)
    add_release(settings, 1)
    fallback = "Press releases"
    atom = render(settings, "atom")
    assert atom.findtext(f"{ATOM}title") == atom.findtext(f"{ATOM}author/{ATOM}name") == fallback
    assert render(settings, "rss").findtext("channel/title") == fallback
    doc = render(settings, "json")
    assert (doc["title"], doc["authors"]) == (fallback, [{"name": fallback}])
    assert doc["items"][0]["authors"] == [{"name": fallback}]


def test_a_topic_whose_name_has_no_text_is_called_by_its_slug(sqlite_settings: Settings) -> None:
    """A topic named only with markup appears under its slug: in its feed's title and as
    each item's category (Atom label, RSS category text, JSON Feed tag)."""
    settings = sqlite_settings
    with session_scope(settings) as session:
        session.add(Topic(slug="odd", names={"en": "<img src=x>"}))
    add_release(settings, 1, topics=("odd",))
    atom = render(settings, "atom", "odd")
    assert atom.findtext(f"{ATOM}title") == "Press Office — odd"
    (category,) = atom.findall(f"{ATOM}entry/{ATOM}category")
    assert (category.get("term"), category.get("label")) == ("odd", "odd")
    assert render(settings, "rss", "odd").findtext("channel/item/category") == "odd"
    assert render(settings, "json", "odd")["items"][0]["tags"] == ["odd"]
