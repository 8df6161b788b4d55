"""A newsroom link pasted into a social network, a chat or a CMS: the preview it shows comes
from the page's Open Graph and Twitter card tags — title, lead, image, the office's name —
and a page not public yet (a preview, an advance copy) shows nothing of the release."""

from __future__ import annotations

from pathlib import Path

import lxml.html
import pytest
from fastapi.testclient import TestClient

from distributor.core.config import Settings, load_settings
from distributor.core.urls import preview_url
from distributor.office.identity import environment_identity
from distributor.site.newsroom import Newsroom, og_locale, share_text
from distributor.web import create_app
from tests.helpers import TEST_SECRET_KEY, make_release, published_site
from tests.page_samples import CLIMATE, listing, release

SITE = "https://news.example.org"


@pytest.fixture
def newsroom(tmp_path: Path) -> Newsroom:
    settings = load_settings(
        data_dir=tmp_path / "var",
        site_url=SITE,
        secret_key=TEST_SECRET_KEY,
        organisation="Agence Press Office",
        organisation_names={"fr": "Service de presse de l'Agence"},
    )
    return Newsroom(settings, environment_identity(settings))


def shared(page: str) -> dict[str, list[str]]:
    """property (og:…) or name (twitter:…) → the contents of the page's meta tags, in order."""
    doc = lxml.html.document_fromstring(page)
    found: dict[str, list[str]] = {}
    for meta in doc.xpath("//head/meta[starts-with(@property, 'og:')]"):
        found.setdefault(meta.get("property"), []).append(meta.get("content"))
    for meta in doc.xpath("//head/meta[starts-with(@name, 'twitter:')]"):
        found.setdefault(meta.get("name"), []).append(meta.get("content"))
    # Nothing else names them (a twitter: property or an og: name is ignored by readers).
    assert not doc.xpath("//meta[starts-with(@name, 'og:') or starts-with(@property, 'tw')]")
    return found


def test_a_release_page_shares_its_title_lead_and_image(newsroom: Newsroom) -> None:
    with_size = release(images=[{"src": "/media/signing.jpg", "alt": "The signing ceremony",
                                 "width": 800, "height": 533}])  # fmt: skip
    assert shared(newsroom.release_page(with_size, [])) == {
        "og:type": ["article"],
        "og:title": ["Agency signs agreement"],
        "og:url": [f"{SITE}/releases/agreement"],
        "og:site_name": ["Agence Press Office"],
        "og:locale": ["en_US"],
        "og:description": ["The Agency today signed an agreement."],
        "og:image": [f"{SITE}/media/signing.jpg"],
        "og:image:width": ["800"],
        "og:image:height": ["533"],
        "og:image:alt": ["The signing ceremony"],
        "twitter:card": ["summary_large_image"],
        "twitter:image:alt": ["The signing ceremony"],
    }


def test_the_lead_image_is_the_first_the_page_shows(newsroom: Newsroom) -> None:
    images = [
        {"src": "javascript:alert(1)", "alt": "never a link"},
        {"src": "https://cdn.example.net/a.jpg", "alt": ""},
        {"src": "/media/second.jpg", "alt": "Second"},
    ]
    tags = shared(newsroom.release_page(release(images=images), []))
    assert tags["og:image"] == ["https://cdn.example.net/a.jpg"]
    assert "og:image:alt" not in tags and "og:image:width" not in tags
    assert tags["twitter:card"] == ["summary_large_image"]


def test_a_release_without_an_image_shares_a_summary_card(newsroom: Newsroom) -> None:
    tags = shared(newsroom.release_page(release(images=[], lead=""), []))
    assert tags["twitter:card"] == ["summary"]
    assert not {"og:image", "og:image:alt", "og:description"} & set(tags)


def test_a_french_release_shares_in_french_and_names_its_english_version(
    newsroom: Newsroom,
) -> None:
    en, fr = release("agreement", "en"), release("accord", "fr", title="L'Agence signe")
    tags = shared(newsroom.release_page(fr, [en]))
    assert tags["og:site_name"] == ["Service de presse de l'Agence"]
    assert tags["og:locale"] == ["fr_FR"] and tags["og:locale:alternate"] == ["en_US"]
    assert tags["og:url"] == [f"{SITE}/releases/accord"]
    assert tags["og:title"] == ["L'Agence signe"]


def test_shared_text_is_escaped_and_a_long_lead_cut_between_words(newsroom: Newsroom) -> None:
    title = 'Q3 "results" <b>up</b> & AT&T\'s'
    lead = "Word " * 60 + "\n\tend"
    page = newsroom.release_page(release(title=title, lead=lead), [])
    tags = shared(page)
    assert tags["og:title"] == [title]  # read back as written: escaped once, not twice
    escaped = "Q3 &#34;results&#34; &lt;b&gt;up&lt;/b&gt; &amp; AT&amp;T&#39;s"
    assert f'<meta property="og:title" content="{escaped}">' in page
    (description,) = tags["og:description"]
    assert description.endswith("Word…") and len(description) <= 200
    assert "  " not in description and "\n" not in description
    assert share_text("a\n b  c") == "a b c"


def test_a_listing_shares_its_heading_url_and_the_office(newsroom: Newsroom) -> None:
    assert shared(newsroom.listing_page(listing("fr", topic=CLIMATE))) == {
        "og:type": ["website"],
        "og:title": ["Communiqués de presse — Climat"],
        "og:url": [f"{SITE}/fr/topics/climate/"],
        "og:site_name": ["Service de presse de l'Agence"],
        "og:locale": ["fr_FR"],
    }
    archive = shared(newsroom.listing_page(listing("en", archive=2, newer=3)))
    assert archive["og:url"] == [f"{SITE}/en/archive/2/"]
    # "/" is the first language's listing byte for byte: it shares its canonical URL.
    root = shared(newsroom.listing_page(listing("en", root=True)))
    assert root["og:url"] == [f"{SITE}/en/"]


def test_a_preview_page_shares_nothing(newsroom: Newsroom) -> None:
    full = release(images=[{"src": "/media/signing.jpg", "alt": "The signing ceremony"}])
    for page in (
        newsroom.release_page(full, [release("accord", "fr")], preview=True),
        newsroom.release_page(full, [], preview=True, embargo="20 November 2026, 09:00"),
    ):
        assert shared(page) == {}
        assert "og:" not in page and "twitter:" not in page
    assert shared(newsroom.release_page(full, []))  # the same release, public: it shares


def test_a_preview_link_served_by_the_app_shares_nothing(sqlite_settings: Settings) -> None:
    published_site(sqlite_settings)
    draft = make_release(sqlite_settings, slug="next-week", title="Not public yet")
    with TestClient(create_app(sqlite_settings)) as client:
        public = client.get("/releases/agency-signs-agreement").text
        assert shared(public)["og:url"] == [f"{SITE}/releases/agency-signs-agreement"]
        link = preview_url(sqlite_settings, draft.id).removeprefix(SITE)
        page = client.get(link)
        assert page.status_code == 200 and "Not public yet" in page.text
        assert shared(page.text) == {}


def test_the_open_graph_locale_has_a_territory() -> None:
    assert (og_locale("en"), og_locale("fr"), og_locale("de")) == ("en_US", "fr_FR", "de_DE")
    assert og_locale("zz") == "zz"
