"""The newsroom's static pages as a reader meets them: listings (all topics, a topic, archive
pages) and a release's permanent page — feeds announced, languages linked both ways, images,
documents and contacts, hostile content harmless, the same bytes for the same inputs."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import lxml.html
import pytest
from sqlalchemy import select

from distributor.core.config import Settings, load_settings
from distributor.core.db import session_scope
from distributor.core.formats import file_details
from distributor.core.i18n import LOCALE_DIR, gettext_for
from distributor.core.models import Topic
from distributor.core.sanitize import markdown_to_html
from distributor.office.identity import environment_identity
from distributor.site import newsroom as site_newsroom
from distributor.site.newsroom import Listing, Newsroom
from distributor.web.pages import Pages
from tests.helpers import TEST_SECRET_KEY, add_topics, make_release
from tests.page_samples import CLIMATE, SPACE, TOPICS, listing, release

SITE = "https://news.example.org"
NBSP = "\u00a0"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip


@pytest.fixture
def bare_settings(tmp_path: Path) -> Settings:
    """Settings without a database: rendering needs none."""
    return load_settings(data_dir=tmp_path / "var", site_url=SITE, secret_key=TEST_SECRET_KEY)


@pytest.fixture
def newsroom(bare_settings: Settings) -> Newsroom:
    return Newsroom(bare_settings, environment_identity(bare_settings))


class _Balance(HTMLParser):
    """Fails on an end tag that closes anything but the element last opened."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open[-3:]}"
        self.open.pop()


def parsed(page: str) -> Any:
    """The page as a tree, once checked: balanced tags, one h1, a language, landmarks, a
    skip link, labelled navs, every link absolute."""
    balance = _Balance()
    balance.feed(page)
    balance.close()
    assert balance.open == [], balance.open
    doc = lxml.html.document_fromstring(page)
    assert len(doc.xpath("//h1")) == 1
    assert doc.get("lang")
    assert [e.tag for e in doc.xpath("/html/body/*")] == ["a", "header", "main", "footer"]
    assert doc.xpath("//a[@class='skip']/@href") == ["#main"]
    assert all(nav.get("aria-label") for nav in doc.xpath("//nav"))
    for href in doc.xpath("//a/@href | //link/@href | //img/@src"):
        assert href.startswith(("https://", "tel:", "mailto:", "#")), href
    return doc


def alternates(doc: Any) -> dict[str, str]:
    return {e.get("hreflang"): e.get("href") for e in doc.xpath("//link[@hreflang]")}


def feeds(doc: Any) -> list[tuple[str, str]]:
    return [(e.get("type"), e.get("href")) for e in doc.xpath("//head/link[@type]")]


def test_head_announces_the_languages_three_feeds_and_the_footer_links_them(
    newsroom: Newsroom,
) -> None:
    doc = parsed(newsroom.listing_page(listing("fr")))
    assert feeds(doc) == [
        ("application/rss+xml", f"{SITE}/feeds/fr/releases.rss"),
        ("application/atom+xml", f"{SITE}/feeds/fr/releases.atom"),
        ("application/feed+json", f"{SITE}/feeds/fr/releases.json"),
    ]
    footer = doc.xpath("//footer//a/@href")
    assert footer == [href for _type, href in feeds(doc)]
    assert doc.xpath("//link[@rel='canonical']/@href") == [f"{SITE}/fr/"]


def test_a_topic_page_announces_the_topics_feeds_first(newsroom: Newsroom) -> None:
    doc = parsed(newsroom.listing_page(listing(topic=CLIMATE)))
    assert [href for _type, href in feeds(doc)] == [
        f"{SITE}/feeds/en/topics/climate.rss",
        f"{SITE}/feeds/en/topics/climate.atom",
        f"{SITE}/feeds/en/topics/climate.json",
        f"{SITE}/feeds/en/releases.rss",
        f"{SITE}/feeds/en/releases.atom",
        f"{SITE}/feeds/en/releases.json",
    ]
    assert doc.xpath("//h1")[0].text_content() == "Press releases — Climate"
    assert doc.xpath("//link[@rel='canonical']/@href") == [f"{SITE}/en/topics/climate/"]
    # The language switch keeps the reader on the topic.
    switch = doc.xpath("//header//nav//a")
    assert [(a.get("href"), a.get("hreflang"), a.get("lang")) for a in switch] == [
        (f"{SITE}/fr/topics/climate/", "fr", "fr")
    ]
    assert alternates(doc) == {"en": f"{SITE}/en/topics/climate/",
                               "fr": f"{SITE}/fr/topics/climate/"}  # fmt: skip


def test_listing_shows_each_release_with_date_title_link_and_lead(
    newsroom: Newsroom,
) -> None:
    doc = parsed(newsroom.listing_page(listing()))
    (item,) = doc.xpath("//ul[@class='releases']/li")
    link = item.xpath(".//h2/a")[0]
    assert link.get("href") == f"{SITE}/releases/agreement"
    assert link.text_content() == "Agency signs agreement"
    time = item.xpath(".//time")[0]
    assert time.get("datetime") == "2026-11-20T08:00:00+00:00"
    assert time.text_content() == "20 November 2026"  # as the email writes it
    assert "English" not in item.text_content()  # the page's own language goes unsaid
    assert "The Agency today signed an agreement." in item.text_content()
    subscribe = doc.xpath("//a[contains(@href, '/subscribe')]/@href")
    assert subscribe == [f"{SITE}/subscribe?lang=en"]  # once: the header's
    assert doc.xpath("//header/a[@class='home']/@href") == [f"{SITE}/en/"]


def test_the_root_page_is_the_first_languages_listing(newsroom: Newsroom) -> None:
    doc = parsed(newsroom.listing_page(listing(root=True)))
    assert doc.xpath("//link[@rel='canonical']/@href") == [f"{SITE}/en/"]
    assert alternates(doc) == {"en": f"{SITE}/en/", "fr": f"{SITE}/fr/", "x-default": f"{SITE}/en/"}


def test_topic_filter_links_every_topic_and_marks_the_current_one(newsroom: Newsroom) -> None:
    def filter_of(page: str) -> list[tuple[str, str, str | None]]:
        links = parsed(page).xpath("//main//nav[@aria-label='Topics']//a")
        return [(a.text_content(), a.get("href"), a.get("aria-current")) for a in links]

    assert filter_of(newsroom.listing_page(listing(topic=SPACE))) == [
        ("All topics", f"{SITE}/en/", None),
        ("Climate", f"{SITE}/en/topics/climate/", None),
        ("Space", f"{SITE}/en/topics/space/", "page"),
    ]
    assert filter_of(newsroom.listing_page(listing()))[0] == ("All topics", f"{SITE}/en/", "page")
    # On an archive page the link goes to the topic's live page: not this page.
    archived = filter_of(newsroom.listing_page(listing(topic=SPACE, archive=2, newer=3)))
    assert archived[2] == ("Space", f"{SITE}/en/topics/space/", "true")


def pager(page: str) -> dict[str, tuple[str, str]]:
    links = parsed(page).xpath("//nav[@class='pager']//a")
    return {a.text_content().strip("←→ "): (a.get("rel"), a.get("href")) for a in links}


def test_older_and_newer_navigation_between_live_and_archive_pages(newsroom: Newsroom) -> None:
    live = newsroom.listing_page(listing(older=3))
    assert pager(live) == {"Older releases": ("next", f"{SITE}/en/archive/3/")}
    newest_archive = newsroom.listing_page(listing(archive=3, older=2, newer=None))
    assert pager(newest_archive) == {
        "Newer releases": ("prev", f"{SITE}/en/"),
        "Older releases": ("next", f"{SITE}/en/archive/2/"),
    }
    oldest = newsroom.listing_page(listing(topic=CLIMATE, archive=1, older=None, newer=2))
    assert pager(oldest) == {"Newer releases": ("prev", f"{SITE}/en/topics/climate/archive/2/")}
    doc = parsed(oldest)
    assert doc.xpath("//h1")[0].text_content() == "Press releases — Climate — Archive page 1"
    assert doc.xpath("//link[@rel='canonical']/@href") == [f"{SITE}/en/topics/climate/archive/1/"]
    assert alternates(doc) == {}  # other languages number their archives differently
    assert pager(newsroom.listing_page(listing())) == {}


def test_an_empty_listing_says_so(newsroom: Newsroom) -> None:
    doc = parsed(newsroom.listing_page(listing(releases=[])))
    assert "No releases yet." in doc.xpath("//main")[0].text_content()
    french = parsed(newsroom.listing_page(listing("fr", topic=CLIMATE, releases=[])))
    assert "Aucun communiqué sur ce thème pour l'instant." in french.text_content()


def test_a_release_and_its_translation_point_at_each_other(newsroom: Newsroom) -> None:
    en, fr = release("agreement", "en"), release("accord", "fr", title="L'Agence signe")
    english, french = (
        parsed(newsroom.release_page(en, [fr])),
        parsed(newsroom.release_page(fr, [en])),
    )
    both = {"en": f"{SITE}/releases/agreement", "fr": f"{SITE}/releases/accord"}
    assert alternates(english) == alternates(french) == both
    assert english.xpath("//link[@rel='canonical']/@href") == [both["en"]]
    assert french.xpath("//link[@rel='canonical']/@href") == [both["fr"]]
    visible = english.xpath("//article//a[@hreflang]")
    assert [(a.get("href"), a.get("lang"), a.text_content()) for a in visible] == [
        (both["fr"], "fr", "Français")
    ]
    # The header switch leads to the translation, not to the other newsroom.
    assert french.xpath("//header//nav//a/@href") == [both["en"]]
    assert french.get("lang") == "fr"
    # Two versions in one language: both visible, one hreflang (a repeated one voids them).
    again = release("accord-bis", "fr", title="L'Agence signe (bis)")
    doc = parsed(newsroom.release_page(en, [again, fr]))
    assert alternates(doc) == {"en": both["en"], "fr": f"{SITE}/releases/accord"}
    assert len(doc.xpath("//link[@hreflang='fr']")) == 1
    assert len(doc.xpath("//article//a[@hreflang='fr']")) == 2
    alone = parsed(newsroom.release_page(en, []))
    assert alternates(alone) == {}
    assert alone.xpath("//header//nav//a/@href") == [f"{SITE}/fr/"]


def test_a_release_page_shows_images_documents_topics_and_contacts(newsroom: Newsroom) -> None:
    doc = parsed(newsroom.release_page(release(), []))
    assert doc.xpath("//title")[0].text_content() == "Agency signs agreement — Press Office"
    assert "PARIS, 20 November 2026" in doc.xpath("//article/p[@class='meta']")[0].text_content()
    assert doc.xpath("//p[@class='lead']")[0].text_content().startswith("The Agency today")
    # Relative links in the body are made absolute (copied text keeps working links).
    assert f"{SITE}/releases/other" in doc.xpath("//article//p/a/@href")

    (figure,) = doc.xpath("//figure")
    img = figure.xpath(".//img")[0]
    assert (img.get("src"), img.get("alt"), img.get("loading")) == (
        f"{SITE}/media/signing.jpg", "The signing ceremony", "lazy")  # fmt: skip
    assert img.get("width") is None  # unknown: no made-up size
    hires = f"{SITE}/media/signing-hires.jpg"
    assert img.getparent().get("href") == hires
    caption = figure.xpath(".//figcaption")[0]
    assert (
        caption.text_content()
        == f"Photo: A. Photographer · High-resolution image (JPEG, 4.2{NBSP}MB)"
    )
    assert caption.xpath(".//a/@href") == [hires]

    (document,) = doc.xpath("//section[@aria-labelledby='documents']//li")
    assert document.xpath(".//a/@href") == [f"{SITE}/media/backgrounder.pdf"]
    assert document.text_content() == f"Backgrounder (PDF, 1.2{NBSP}MB)"

    topics = doc.xpath("//article/p[starts-with(., 'Topics')]/a")
    assert [(a.text_content(), a.get("href")) for a in topics] == [
        ("Climate", f"{SITE}/en/topics/climate/"),
        ("Space", f"{SITE}/en/topics/space/"),
    ]
    contacts = doc.xpath("//section[@class='contacts']")[0]
    assert contacts.xpath(".//h2")[0].text_content() == "Press contacts"
    assert "Jane Doe, Press officer" in contacts.text_content()
    assert contacts.xpath(".//a/@href") == ["tel:+33100000000", "mailto:press@example.org"]


def test_image_size_given_only_when_known(newsroom: Newsroom) -> None:
    image = {"src": "https://cdn.example.net/a.png", "alt": "A chart", "width": 640, "height": 480}
    doc = parsed(newsroom.release_page(release(images=[image]), []))
    img = doc.xpath("//figure//img")[0]
    assert (img.get("src"), img.get("width"), img.get("height")) == (
        "https://cdn.example.net/a.png", "640", "480")  # fmt: skip
    assert doc.xpath("//figure//a") == [] and doc.xpath("//figcaption") == []


def test_a_french_page_speaks_french(newsroom: Newsroom) -> None:
    fr = release("accord", "fr", title="Accord", dateline="")
    page = newsroom.release_page(fr, [])
    doc = parsed(page)
    text = doc.text_content()
    labels = ["Contacts presse", "Documents", "Thèmes", "Aller au contenu",
              "S'abonner par e-mail", "Image haute définition"]  # fmt: skip
    for label in labels:
        assert label in text, label
    assert "20 novembre 2026" in text
    assert f"PDF, 1,2{NBSP}Mo" in text and f"JPEG, 4,2{NBSP}Mo" in text
    assert "Tous les communiqués" in text  # the footer's feeds
    listing_doc = parsed(newsroom.listing_page(listing("fr", older=1)))
    assert listing_doc.xpath("//h1")[0].text_content() == "Communiqués de presse"
    assert "Communiqués plus anciens" in listing_doc.text_content()
    assert "Tous les thèmes" in listing_doc.text_content()


def test_hostile_content_is_text_and_the_page_still_parses(newsroom: Newsroom) -> None:
    title = "<script>alert('x')</script> \"Quoted\" & \x00\x0b\x1f<b onmouseover=alert(1)>"
    body = markdown_to_html(
        '<script>alert(1)</script><p onclick="steal()">Hi <a href="javascript:alert(1)">x</a>'
        '<img src=x onerror=alert(1)></p>\n\n' + "A long paragraph. " * 60_000
    )  # fmt: skip
    assert len(body) > 1_000_000
    hostile = release(
        title=title,
        lead="</p><script>alert(2)</script>",
        body_html=body,
        contacts=[{"name": '"><script>', "role": "", "phone": "+33 1 <b>", "email": 'a@b"c'}],
        images=[
            {"src": "javascript:alert(1)", "alt": "a", "href": "/big.jpg"},
            {"src": '/a b"c', "alt": '"onerror="alert(1)', "href": "javascript:x"},
        ],
        attachments=[{"href": "/f.pdf", "title": "<i>doc</i>", "type": "", "length": 0}],
    )
    page = newsroom.release_page(hostile, [])
    doc = parsed(page)
    assert "<script" not in page and "onclick" not in page and "onerror=alert" not in page
    assert "javascript:" not in page
    assert not any(ch in page for ch in "\x00\x0b\x1f")
    assert doc.xpath("//h1")[0].text_content() == "<script>alert('x')</script> \"Quoted\" & " + (
        "<b onmouseover=alert(1)>"
    )
    (figure,) = doc.xpath("//figure")  # the image with a javascript: src is left out
    assert figure.xpath(".//img/@alt") == ['"onerror="alert(1)']
    assert figure.xpath(".//a") == []  # and so is a javascript: high-resolution link
    # A document's link says its title as plain text, as the feeds and the email do.
    documents = doc.xpath("//section[@aria-labelledby='documents']//a")
    assert documents[0].text_content() == "doc"
    listed = parsed(newsroom.listing_page(listing(releases=[hostile])))
    assert listed.xpath("//h2/a")[0].text_content().startswith("<script>")


def test_rendering_is_deterministic(bare_settings: Settings) -> None:
    def pages(newsroom: Newsroom, topics: Sequence[Topic]) -> list[str]:
        en = release(topics=list(topics))
        fr = release("accord", "fr")
        return [
            newsroom.release_page(en, [fr]),
            newsroom.listing_page(listing(releases=[en, fr], older=2)),
            newsroom.listing_page(listing(topic=CLIMATE, archive=2, older=1)),
        ]

    first = pages(Newsroom(bare_settings, environment_identity(bare_settings)), TOPICS)
    shuffled = TOPICS[::-1]
    random.Random(1).shuffle(shuffled)
    assert (
        pages(Newsroom(bare_settings, environment_identity(bare_settings)), shuffled) == first
    )  # a release's topics come in any order
    assert (
        pages(Newsroom(bare_settings, environment_identity(bare_settings)), TOPICS[::-1]) == first
    )


def test_file_details_say_kind_and_size() -> None:
    pdf = {"type": "application/pdf", "length": 1_234_567}
    assert file_details(pdf, "en") == f"PDF, 1.2{NBSP}MB"
    assert file_details(pdf, "fr") == f"PDF, 1,2{NBSP}Mo"
    assert file_details({"href": "/x/fact-sheet.DOCX", "length": 850}, "fr") == f"DOCX, 850{NBSP}o"
    assert file_details({"type": "application/x-gzip"}, "en") == "GZIP"
    assert file_details({"href": "/no-extension"}, "en") == ""
    assert file_details({"length": 12_000}, "xx") == f"12{NBSP}kB"  # unknown language: English


def test_the_dynamic_pages_share_the_layout_with_a_lang_switch(sqlite_settings: Settings) -> None:
    # A dynamic page reads the office's identity as set now: it needs the database.
    pages = Pages(sqlite_settings.model_copy(update={"site_url": SITE}))
    assert pages.newsroom.env.get_template("base.html") is not None
    response = pages.render(
        "message.html", "fr", 400, title="This link is not valid", text="Check the link."
    )
    doc = lxml.html.document_fromstring(bytes(response.body))
    assert response.status_code == 400 and doc.get("lang") == "fr"
    assert doc.xpath("//h1")[0].text_content() == "Ce lien n'est pas valide"
    assert doc.xpath("//meta[@name='robots']/@content") == ["noindex"]
    assert doc.xpath("//header//nav//a/@href") == ["?lang=en"]
    assert doc.xpath("//header/a[@class='home']/@href") == [f"{SITE}/fr/"]
    assert feeds(doc)[0] == ("application/rss+xml", f"{SITE}/feeds/fr/releases.rss")
    personal = pages.render("unsubscribe.html", "en", token="t", email="a@b.c", done=False)
    personal_doc = lxml.html.document_fromstring(bytes(personal.body))
    assert personal_doc.xpath("//header//nav") == []  # the subscriber's language, no switch


def test_a_release_from_the_database_renders(sqlite_settings: Settings) -> None:
    add_topics(sqlite_settings, "climate", "space")
    en = make_release(sqlite_settings, topics="space, climate")
    fr = make_release(sqlite_settings, lang="fr", slug="accord", title="Accord signé")
    with session_scope(sqlite_settings) as session:
        topics = list(session.scalars(select(Topic).order_by(Topic.slug)))
    newsroom = Newsroom(sqlite_settings, environment_identity(sqlite_settings))
    doc = parsed(newsroom.release_page(en, [fr]))
    assert "Jane Doe" in doc.text_content()
    assert alternates(doc)["fr"] == f"{SITE}/releases/accord"
    page = newsroom.listing_page(Listing("en", None, topics, [fr, en], None, None, None))
    assert [a.text_content() for a in parsed(page).xpath("//h2/a")] == [
        "Accord signé", "Agency signs agreement"]  # fmt: skip


def test_every_label_of_the_pages_has_a_french_translation(bare_settings: Settings) -> None:
    fr = gettext_for("fr")
    sources = [*sorted((bare_settings.templates_dir / "pages").glob("*.html"))]
    sources.append(Path(site_newsroom.__file__))
    labels = {"B", "kB", "MB", "GB"}
    for source in sources:
        labels |= set(re.findall(r'_\("([^"]+)"\)', source.read_text()))
    same_in_french = {"Documents"}
    assert sorted(label for label in labels if fr(label) == label) == sorted(same_in_french)


def test_french_punctuation_keeps_its_no_break_spaces() -> None:
    """French puts a no-break space before : (U+00A0) and a narrow one before ; ! ? and
    inside « » (U+202F): never an ordinary space, where a line could break, nor none."""
    from babel.messages.pofile import read_po

    with (LOCALE_DIR / "fr" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalogue = read_po(source, locale="fr")
    wrong = []
    for message in catalogue:
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in strings:
            if message.id and (
                re.search(r" [:;!?»]|« ", text)  # an ordinary space
                or re.search(r"[^\s\u00a0\u202f][;!?»]|«[^\s\u00a0\u202f]", text)  # none
                or re.search(r"[^\s\u00a0\u202f/:]:(?!//)(?=\s|$)", text)  # "mot: "
            ):
                wrong.append(text)
    assert wrong == ["Nom; Fonction; Téléphone; E-mail"]  # a format to type, not prose


def test_a_topic_page_subscribes_to_that_topic(newsroom: Newsroom) -> None:
    """A topic's listing links to the form with the topic ticked (``?topic=``); every page
    links to the plain form once, in its header ("Subscribe" once, not twice)."""
    links = {}
    for topic in (CLIMATE, None):
        page = parsed(newsroom.listing_page(Listing("fr", topic, TOPICS, [], None, None, None)))
        found = [a for a in page.xpath("//a") if "/subscribe" in a.get("href")]
        links[topic.slug if topic else "all"] = [(a.get("href"), a.text_content()) for a in found]
    header = (f"{SITE}/subscribe?lang=fr", "S'abonner par e-mail")
    assert links == {
        "climate": [
            header,
            (
                f"{SITE}/subscribe?lang=fr&topic=climate",
                "Abonnez-vous à «\u202fClimat\u202f» par e-mail",
            ),
        ],
        "all": [header],
    }
