"""Feed elements as each format writes them, read with lxml and json rather than feedparser,
which fills in a missing ``rel`` or ``type`` and lowercases a ``rel``: the feed's own links
and their media types, the hub, a topic's RFC 5005 archive links, the generator, and the
names a feed shows for an organisation or a topic (also when a name has no text). Per item:
the full content (correction notes, lead, body, figures, documents), a summary cut from the
body, the enclosure's type and length, a document's type and title, the topics named in the
feed's language, and the fixed order of topics and language versions."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from lxml import etree
from sqlalchemy import select

from distributor.core import urls
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Correction, Release, Topic
from distributor.mail.compose import render_release
from distributor.office.identity import environment_identity
from distributor.site.feeds import FeedPage, render_feed
from distributor.site.newsroom import Newsroom
from tests.feed_samples import BASE, add_feed_topics, add_release
from tests.mail_samples import recipient

ATOM = "{http://www.w3.org/2005/Atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"


def render(
    settings: Settings,
    fmt: urls.FeedFormat,
    topic: str | None = None,
    lang: str = "en",
    **page: Any,
) -> Any:
    """The feed (English unless ``lang`` says otherwise) of every stored release in ``fmt``:
    the root element of the XML as written (lxml), or the JSON document. ``topic`` is the
    feed's topic's slug, ``page`` the FeedPage's other fields (archive numbers,
    organisation)."""
    with session_scope(settings) as session:
        found = session.scalar(select(Topic).where(Topic.slug == topic)) if topic else None
        releases = list(session.scalars(select(Release)))
        data = render_feed(FeedPage(lang, found, releases, **page), fmt, settings)
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


def test_each_correction_heads_the_content_in_the_releases_language_and_the_offices_time(
    sqlite_settings: Settings,
) -> None:
    """Each correction is a paragraph before the lead, oldest first: "Corrigé le" (the
    release's language), the date and time in the office's zone (Europe/Paris: 10:00 CET,
    not the server's 09:00 UTC), then what changed, as text. A correction without a note
    says only when; a release corrected before notes were recorded (``corrected_at`` alone)
    has its one line; a release never corrected has none."""
    settings = sqlite_settings
    add_feed_topics(settings)
    note = 'l\'heure était <b>17:42</b> & "17:40"'
    made = [
        Correction(corrected_at=BASE + timedelta(days=1), note=note),
        Correction(corrected_at=BASE + timedelta(days=2), note=""),
    ]
    add_release(settings, 1, lang="fr", corrected_at=BASE + timedelta(days=2), corrections=made)
    add_release(settings, 2, lang="fr", corrected_at=BASE + timedelta(days=3))
    add_release(settings, 3, lang="fr")
    items = render(settings, "json", lang="fr")["items"]
    before_lead = [
        item["content_html"][: item["content_html"].index("<p>Lead of release")] for item in items
    ]
    assert before_lead == [
        "",
        "<p><em>Corrigé le 2026-11-23 10:00 CET</em></p>",
        "<p><em>Corrigé le 2026-11-21 10:00 CET&nbsp;: "
        'l\'heure était &lt;b&gt;17:42&lt;/b&gt; &amp; "17:40"</em></p>'
        "<p><em>Corrigé le 2026-11-22 10:00 CET</em></p>",
    ]


def test_the_full_content_is_the_lead_the_body_the_figures_then_the_documents(
    sqlite_settings: Settings,
) -> None:
    """The full content (RSS content:encoded, Atom content, JSON content_html) is the lead as
    a paragraph of text, the body (nothing in its place when there is none), each image
    that has a picture as a figure (alt text, linked to its high-resolution file when it
    has one, its credit as the caption), then the documents as a list of links by title,
    every URL absolute; a picture or document whose link is not one (``//host``,
    ``javascript:``) is left out."""
    settings = sqlite_settings
    add_feed_topics(settings)
    add_release(
        settings,
        1,
        lead="Lead <b>of</b> release 1 & more.",
        images=[
            {"src": "/media/small.jpg", "href": "/media/hd.jpg", "alt": "Launch <i>pad</i>",
             "credit": "© <b>ESA</b>"},
            {"src": "https://cdn.example.org/b.png"},
            {"href": "/media/only-hd.jpg", "alt": "no picture to show"},
            {"src": "//evil.example/x.jpg", "alt": "not a link"},
        ],
        attachments=[
            {"href": "/files/report.pdf", "title": "Report <b>2026</b>"},
            {"href": "javascript:alert(1)", "title": "Not a link"},
            {"href": "https://cdn.example.org/v.mp4", "title": "Video"},
        ],
    )  # fmt: skip
    site, safe = "https://news.example.org", 'rel="noopener noreferrer"'
    expected = (
        "<p>Lead of release 1 &amp; more.</p>"
        f'<p>Body 1, see <a href="{site}/files/r1.pdf" {safe}>the report</a>.</p>'
        f'<figure><a href="{site}/media/hd.jpg" {safe}>'
        f'<img src="{site}/media/small.jpg" alt="Launch pad"></a>'
        "<figcaption>© ESA</figcaption></figure>"
        '<figure><img src="https://cdn.example.org/b.png" alt=""></figure>'
        f'<ul><li><a href="{site}/files/report.pdf" {safe}>Report 2026</a></li>'
        f'<li><a href="https://cdn.example.org/v.mp4" {safe}>Video</a></li></ul>'
    )
    add_release(settings, 2, body_html="")  # no body: the lead alone
    both = ["<p>Lead of release 2.</p>", expected]  # newest first
    assert [item["content_html"] for item in render(settings, "json")["items"]] == both
    atom = render(settings, "atom").findall(f"{ATOM}entry")
    assert [entry.findtext(f"{ATOM}content") for entry in atom] == both
    rss = render(settings, "rss").findall("channel/item")
    assert [item.findtext(f"{CONTENT}encoded") for item in rss] == both


def test_a_summary_from_the_body_keeps_every_word_that_fits_whole(
    sqlite_settings: Settings,
) -> None:
    """Without a lead the summary is the body's text: whole when it is 300 characters (no
    "…" on a text that is not cut), else cut after the last whole word of the first 300,
    also when the 300th character is the space after that word."""
    settings = sqlite_settings
    add_feed_topics(settings)
    exactly = "abcd " * 59 + "abcde"  # 300 characters
    space_at_300 = "abcd " * 60 + "tail"  # the 300th character is a space
    add_release(settings, 1, lead="", body_text=exactly)
    add_release(settings, 2, lead="", body_text=space_at_300)
    summaries = [item["summary"] for item in render(settings, "json")["items"]]
    assert summaries == ["abcd " * 59 + "abcd…", exactly]


def test_the_lead_images_enclosure_says_the_type_declared_else_guessed_else_jpeg(
    sqlite_settings: Settings,
) -> None:
    """The enclosure's media type is the image's declared type, else the one its name says,
    else image/jpeg (a picture whose address names no type); its length is the one declared,
    even a single byte, else the size of the site file it names (whatever its name), else
    unknown (0 in RSS, none in JSON Feed)."""
    settings = sqlite_settings
    add_feed_topics(settings)
    cdn, xray = "https://cdn.example.org", "https://news.example.org/X-ray.png"
    settings.public_dir.mkdir(parents=True, exist_ok=True)
    (settings.public_dir / "X-ray.png").write_bytes(b"x" * 321)
    add_release(settings, 1, images=[{"src": "/X-ray.png"}])
    add_release(settings, 2, images=[{"src": f"{cdn}/photo", "type": "image/webp", "length": 1}])
    add_release(settings, 3, images=[{"src": f"{cdn}/photo"}])
    enclosures = [
        dict(item.find("enclosure").attrib)
        for item in render(settings, "rss").findall("channel/item")
    ]
    assert enclosures == [
        {"url": f"{cdn}/photo", "length": "0", "type": "image/jpeg"},
        {"url": f"{cdn}/photo", "length": "1", "type": "image/webp"},
        {"url": xray, "length": "321", "type": "image/png"},
    ]
    attachments = [item["attachments"] for item in render(settings, "json")["items"]]
    assert attachments == [
        [{"url": f"{cdn}/photo", "mime_type": "image/jpeg"}],
        [{"url": f"{cdn}/photo", "mime_type": "image/webp", "size_in_bytes": 1}],
        [{"url": xray, "mime_type": "image/png", "size_in_bytes": 321}],
    ]


def test_categories_and_language_versions_come_in_a_fixed_order(
    sqlite_settings: Settings,
) -> None:
    """An item's topics come by slug and its other language versions by language, whatever
    order the database or the caller gives them in: the same releases give the same bytes
    (and ETag), so no reader fetches a feed again for nothing."""
    settings = sqlite_settings
    with session_scope(settings) as session:  # ids in the reverse of the slugs' order
        session.add_all(
            [Topic(slug="zoo", names={"en": "Zoo"}), Topic(slug="arts", names={"en": "Arts"})]
        )
    add_release(settings, 1, topics=("zoo", "arts"))
    add_release(settings, 2, lang="fr", topics=())
    add_release(settings, 3, lang="de", topics=())
    with session_scope(settings) as session:
        english, french, german = session.scalars(select(Release).order_by(Release.id))
        page = FeedPage("en", None, [english])
        doc = json.loads(render_feed(page, "json", settings, {english.id: [french, german]}))
        atom = etree.fromstring(render_feed(page, "atom", settings, {english.id: [french, german]}))
    assert doc["items"][0]["tags"] == ["Arts", "Zoo"]
    entry = atom.find(f"{ATOM}entry")
    assert [c.get("term") for c in entry.findall(f"{ATOM}category")] == ["arts", "zoo"]
    assert [link.get("hreflang") for link in entry.findall(f"{ATOM}link")] == ["en", "de", "fr"]


def test_a_feeds_items_name_their_topics_in_the_feeds_language(
    sqlite_settings: Settings,
) -> None:
    """In the French feed an item's topic is "Climat" and its scheme the French topic page,
    in every format (not the first name the topic was given)."""
    settings = sqlite_settings
    add_feed_topics(settings)
    add_release(settings, 1, lang="fr")
    page = urls.listing_url(settings, "fr", "climate")
    category = render(settings, "atom", lang="fr").find(f"{ATOM}entry/{ATOM}category")
    assert dict(category.attrib) == {"term": "climate", "label": "Climat", "scheme": page}
    category = render(settings, "rss", lang="fr").find("channel/item/category")
    assert (category.text, dict(category.attrib)) == ("Climat", {"domain": page})
    assert render(settings, "json", lang="fr")["items"][0]["tags"] == ["Climat"]


def test_a_documents_declared_type_wins_and_a_document_without_title_is_called_by_its_file(
    sqlite_settings: Settings,
) -> None:
    """A document's media type is the one declared, even when its name says another; a
    document stored without a title is called by its file's name (Atom link ``title``, JSON
    Feed ``title``), as its link on the page is."""
    settings = sqlite_settings
    add_feed_topics(settings)
    table = "https://news.example.org/files/table.txt"
    add_release(settings, 1, attachments=[{"href": "/files/table.txt", "type": "text/csv"}])
    (related,) = [
        link
        for link in render(settings, "atom").findall(f"{ATOM}entry/{ATOM}link")
        if link.get("rel") == "related"
    ]
    assert (related.get("href"), related.get("type")) == (table, "text/csv")
    assert related.get("title") == "table.txt"
    attachments = render(settings, "json")["items"][0]["attachments"]
    assert attachments == [{"url": table, "mime_type": "text/csv", "title": "table.txt"}]


def test_a_document_without_a_title_is_named_by_its_file_on_the_page_in_the_email_and_feeds(
    settings: Settings,
) -> None:
    """A document's link is never empty: with no title, or a title of markup only, it says
    its file's name — in the feed's content, its JSON attachment, the page and the email."""
    untitled = [
        {"href": "/media/ab/annual%20report.pdf", "title": "<b></b>", "type": "application/pdf"},
        {"href": "/media/cd/brief.pdf", "type": "application/pdf"},
    ]
    add_feed_topics(settings)
    release_id = add_release(settings, 1, attachments=untitled)
    entry = render(settings, "atom").find(f"{ATOM}entry")
    content = entry.findtext(f"{ATOM}content")
    assert ">annual report.pdf</a>" in content and ">brief.pdf</a>" in content
    related = [a for a in entry.findall(f"{ATOM}link") if a.get("rel") == "related"]
    titled = [a.get("title") for a in related]
    assert titled == ["annual report.pdf", "brief.pdf"]
    json_titles = [a.get("title") for a in render(settings, "json")["items"][0]["attachments"]]
    assert json_titles == ["annual report.pdf", "brief.pdf"]
    with session_scope(settings) as session:
        release = session.get_one(Release, release_id)
        page = Newsroom(settings, environment_identity(settings)).release_page(release, [])
        rendered = render_release(release, settings, environment_identity(settings))
    for said in (page, rendered.html_for(recipient(settings, 1))):
        assert re.search(r">\s*annual report\.pdf\s*</a>", said), said
        assert re.search(r">\s*brief\.pdf\s*</a>", said), said
