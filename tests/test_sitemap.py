"""What crawlers and browsers ask the site for besides its pages: ``/sitemap.xml`` (every
public page, its last change, its language versions), ``/robots.txt`` (personal links and
the workspace kept out, the sitemap named) and ``/favicon.ico``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import lxml.etree
import pytest
from fastapi.testclient import TestClient

from distributor.core.config import Settings, load_settings
from distributor.core.db import session_scope
from distributor.core.logs import PERSONAL_LINK_PATHS
from distributor.core.models import Release, ReleaseState
from distributor.site import discovery
from distributor.site.builder import build_site
from distributor.web import admin, apibase, create_app
from tests.feed_samples import BASE, add_feed_topics, add_release
from tests.helpers import TEST_SECRET_KEY

SITE = "https://news.example.org"
NS = {"sm": "http://www.sitemaps.org/schemas/sitemap/0.9", "xhtml": "http://www.w3.org/1999/xhtml"}
W3C_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")


def sitemap_of(settings: Settings) -> lxml.etree._Element:
    data = (settings.public_dir / "sitemap.xml").read_bytes()
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    return lxml.etree.fromstring(data)


def entries(root: lxml.etree._Element) -> dict[str, tuple[str | None, dict[str, str]]]:
    """loc → (lastmod, {hreflang: href}), checking each entry's shape on the way."""
    found: dict[str, tuple[str | None, dict[str, str]]] = {}
    for url in root.iterfind("sm:url", NS):
        assert [c.tag for c in url][:1] == [f"{{{NS['sm']}}}loc"]
        loc = url.findtext("sm:loc", namespaces=NS)
        assert loc is not None and loc.startswith(SITE + "/") and loc not in found
        lastmod = url.findtext("sm:lastmod", namespaces=NS)
        assert lastmod is None or W3C_UTC.match(lastmod), lastmod
        links = url.findall("xhtml:link", NS)
        assert all(link.get("rel") == "alternate" for link in links)
        alternates = {link.get("hreflang", ""): link.get("href", "") for link in links}
        assert len(alternates) == len(links)  # one per language
        found[loc] = (lastmod, alternates)
    return found


def test_the_sitemap_lists_every_public_page_with_its_language_versions_and_nothing_else(
    settings: Settings,
) -> None:
    add_feed_topics(settings)
    original = add_release(settings, 1, topics=("climate", "space"))
    add_release(settings, 2, lang="fr", translation_of_id=original)
    corrected = BASE + timedelta(days=3, minutes=30)
    add_release(settings, 3, updated_at=corrected, corrected_at=corrected)
    add_release(settings, 4, state=ReleaseState.SCHEDULED)
    add_release(settings, 5, state=ReleaseState.DRAFT)
    add_release(settings, 6, state=ReleaseState.WITHDRAWN)  # withdrawn after publication
    add_release(settings, 7, lang="fr", topics=("space",))
    build_site(settings)

    root = sitemap_of(settings)
    assert root.tag == f"{{{NS['sm']}}}urlset"
    found = entries(root)
    listings = {f"{SITE}/{lang}/{topic}" for lang in ("en", "fr")
                for topic in ("", "topics/climate/", "topics/space/")}  # fmt: skip
    releases = {f"{SITE}/releases/{slug}" for slug in ("en-release-1", "fr-release-2",
                                                       "en-release-3", "fr-release-7")}  # fmt: skip
    assert set(found) == listings | releases

    # A release and its translation name each other; a release alone names nothing.
    pair = {"en": f"{SITE}/releases/en-release-1", "fr": f"{SITE}/releases/fr-release-2"}
    assert found[pair["en"]] == ("2026-11-20T10:00:00Z", pair)
    assert found[pair["fr"]] == ("2026-11-20T11:00:00Z", pair)
    assert found[f"{SITE}/releases/en-release-3"] == ("2026-11-23T09:30:00Z", {})
    # The listings name their other languages, "/" as the x-default of all topics, and
    # are dated by their newest release (none: no date).
    assert found[f"{SITE}/en/"] == (
        "2026-11-23T09:30:00Z",
        {"en": f"{SITE}/en/", "fr": f"{SITE}/fr/", "x-default": f"{SITE}/en/"},
    )
    space = {"en": f"{SITE}/en/topics/space/", "fr": f"{SITE}/fr/topics/space/"}
    assert found[f"{SITE}/fr/topics/space/"] == ("2026-11-20T16:00:00Z", space)
    assert found[f"{SITE}/en/topics/space/"] == ("2026-11-20T10:00:00Z", space)
    assert found[f"{SITE}/fr/topics/climate/"][0] == "2026-11-20T11:00:00Z"


def test_the_sitemap_dates_a_release_in_utc_whatever_its_zone(sqlite_settings: Settings) -> None:
    add_feed_topics(sqlite_settings)
    add_release(
        sqlite_settings,
        1,
        date=datetime.fromisoformat("2026-12-01T09:15:00+01:00"),
        updated_at=datetime.fromisoformat("2026-11-30T10:00:00+01:00"),
    )
    build_site(sqlite_settings)
    # Dated after its last edit (announced ahead): the date, as the feeds' <updated>.
    assert entries(sitemap_of(sqlite_settings))[f"{SITE}/releases/en-release-1"][0] == (
        "2026-12-01T08:15:00Z"
    )


def test_the_sitemap_follows_a_correction_and_a_withdrawal(sqlite_settings: Settings) -> None:
    add_feed_topics(sqlite_settings)
    first = add_release(sqlite_settings, 1)
    add_release(sqlite_settings, 2)
    build_site(sqlite_settings)
    with session_scope(sqlite_settings) as session:
        session.get_one(Release, first).updated_at = BASE + timedelta(days=5)
    assert "sitemap.xml" in build_site(sqlite_settings).written
    found = entries(sitemap_of(sqlite_settings))
    assert found[f"{SITE}/releases/en-release-1"][0] == "2026-11-25T09:00:00Z"

    with session_scope(sqlite_settings) as session:
        session.get_one(Release, first).state = ReleaseState.WITHDRAWN
    assert "sitemap.xml" in build_site(sqlite_settings).written
    assert set(entries(sitemap_of(sqlite_settings))) == {
        f"{SITE}/en/", f"{SITE}/fr/", f"{SITE}/en/topics/climate/", f"{SITE}/fr/topics/climate/",
        f"{SITE}/en/topics/space/", f"{SITE}/fr/topics/space/", f"{SITE}/releases/en-release-2",
    }  # fmt: skip


def test_the_sitemap_is_the_same_bytes_for_the_same_releases(sqlite_settings: Settings) -> None:
    add_feed_topics(sqlite_settings)
    for n in range(1, 8):
        add_release(sqlite_settings, n, lang="fr" if n % 3 else "en")
    build_site(sqlite_settings)
    first = (sqlite_settings.public_dir / "sitemap.xml").read_bytes()
    assert build_site(sqlite_settings, force=True).written == []  # every file: same bytes
    assert (sqlite_settings.public_dir / "sitemap.xml").read_bytes() == first
    (sqlite_settings.public_dir / "sitemap.xml").unlink()
    assert build_site(sqlite_settings).written == ["sitemap.xml"]
    assert (sqlite_settings.public_dir / "sitemap.xml").read_bytes() == first


def test_the_sitemap_escapes_what_xml_must() -> None:
    data = discovery.sitemap(
        _settings_at("https://news.example.org/press&media"),
        [discovery.Published("a-b", "en", 1, (), datetime(2026, 11, 20, tzinfo=UTC))],
        [],
    )
    root = lxml.etree.fromstring(data)
    assert b"/press&amp;media/releases/a-b" in data
    assert (
        root.findtext("sm:url/sm:loc", namespaces=NS) == "https://news.example.org/press&media/en/"
    )


@pytest.mark.parametrize("path", ["", "/press", "/a&b", '/a"b', "/a<b>", "/a'b", "/ünï"])
def test_the_sitemap_is_lxml_s_document_byte_for_byte_whatever_the_url(path: str) -> None:
    # The sitemap is written as text when nothing in it needs escaping, else by lxml; a
    # site URL with a character XML escapes must take lxml's way, and either way the bytes
    # are lxml's (the file, and its ETag, do not change with the writer).
    settings = _settings_at(SITE + path)
    when = datetime(2026, 11, 20, 8, tzinfo=UTC)
    releases = [
        discovery.Published("a-b", "en", 1, (1,), when),
        discovery.Published("a-b-fr", "fr", 1, (1,), when + timedelta(hours=1)),
        discovery.Published("c", "en", 3, (), when - timedelta(days=1)),
    ]
    topics = [(1, "climate"), (2, "space")]
    data = discovery.sitemap(settings, releases, topics)
    urls = [
        *discovery._listings(settings, discovery.newest_by_listing(releases), topics),
        *discovery._releases(settings, releases),
    ]
    assert data == discovery._lxml_xml(urls)
    locs = lxml.etree.fromstring(data).findall("sm:url/sm:loc", namespaces=NS)
    assert locs[0].text == f"{SITE}{path}/en/"
    assert locs[-1].text == f"{SITE}{path}/releases/c"


def test_a_site_past_the_split_limit_has_a_sitemap_index_and_a_publish_rewrites_one_part(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``discovery.SPLIT_URLS`` URLs (50,000 is the protocol's most in one file),
    /sitemap.xml becomes an index of parts that together list what the one sitemap lists,
    byte for byte the same entries; a publish rewrites the part of the newest ids, the
    listings' part and the index, not the others; and a warm regeneration writes what a
    build from scratch does."""
    monkeypatch.setattr(discovery, "SPLIT_URLS", 8)  # 6 listings + 10 releases: split
    whole = settings.model_copy(
        update={"data_dir": tmp_path / "whole", "database_url": settings.effective_database_url}
    )
    scratch = settings.model_copy(
        update={"data_dir": tmp_path / "scratch", "database_url": settings.effective_database_url}
    )
    add_feed_topics(settings)
    original = add_release(settings, 1, topics=("climate", "space"))
    for n in range(2, 10):
        add_release(settings, n, topics=("space",))
    add_release(settings, 10, lang="fr", translation_of_id=original)  # ids 1-7, then 8-10
    build_site(settings)
    public = settings.public_dir

    index = lxml.etree.fromstring((public / "sitemap.xml").read_bytes())
    assert index.tag == f"{{{NS['sm']}}}sitemapindex"
    parts = [
        loc.removeprefix(SITE + "/")
        for loc in index.xpath("sm:sitemap/sm:loc/text()", namespaces=NS)
    ]
    assert parts[0] == "sitemaps/listings.xml" and len(parts) >= 2
    assert all(W3C_UTC.match(d) for d in index.xpath("sm:sitemap/sm:lastmod/text()", namespaces=NS))
    found: dict[str, tuple[str | None, dict[str, str]]] = {}
    for part in parts:
        data = (public / part).read_bytes()
        assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
        listed = entries(lxml.etree.fromstring(data))
        assert not listed.keys() & found.keys()
        found |= listed
    monkeypatch.setattr(discovery, "SPLIT_URLS", 1000)  # one file, as before
    build_site(whole)
    assert found == entries(sitemap_of(whole))
    assert len(found) == 16

    monkeypatch.setattr(discovery, "SPLIT_URLS", 8)
    stamps = {p: (public / p).stat().st_mtime_ns for p in parts}
    add_release(settings, 11)
    written = set(build_site(settings).written)
    newest_part = discovery.releases_sitemap_relpath(
        max(int(p.rsplit("-", 1)[1].removesuffix(".xml")) for p in parts[1:])
    )
    assert {"sitemap.xml", "sitemaps/listings.xml", newest_part} <= written
    oldest_part = discovery.releases_sitemap_relpath(0)
    assert oldest_part in parts and oldest_part != newest_part
    assert oldest_part not in written
    assert (public / oldest_part).stat().st_mtime_ns == stamps[oldest_part]
    build_site(scratch)
    assert {p: (public / p).read_bytes() for p in ["sitemap.xml", *parts]} == {
        p: (scratch.public_dir / p).read_bytes() for p in ["sitemap.xml", *parts]
    }
    robots = (public / "robots.txt").read_text()
    assert robots.endswith(f"Sitemap: {SITE}/sitemap.xml\n")  # the index, where it always was


def test_robots_keeps_crawlers_out_of_personal_links_and_names_the_sitemap(
    sqlite_settings: Settings,
) -> None:
    build_site(sqlite_settings)
    text = (sqlite_settings.public_dir / "robots.txt").read_text()
    lines = text.splitlines()
    assert lines[1] == "User-agent: *"
    disallowed = {line.split(": ", 1)[1] for line in lines if line.startswith("Disallow: ")}
    assert disallowed == {"/admin/", "/api/", "/preferences/", "/unsubscribe/", "/confirm/",
                          "/preview/", "/advance/"}  # fmt: skip
    assert "Allow: /" in lines
    assert lines[-1] == f"Sitemap: {SITE}/sitemap.xml"


def test_robots_names_every_private_path_the_app_has() -> None:
    """The workspace's and the API's prefixes live in web/, which site/ may not import."""
    assert discovery.PRIVATE_PATHS == (
        admin.PREFIX.strip("/"),
        apibase.PREFIX.strip("/"),
        *PERSONAL_LINK_PATHS,
    )


def test_robots_follows_a_site_below_a_path() -> None:
    text = discovery.robots(_settings_at("https://example.org/newsroom/")).decode()
    assert "Disallow: /newsroom/preview/\n" in text and "Disallow: /preview/" not in text
    assert "Allow: /newsroom/\n" in text
    assert text.endswith("Sitemap: https://example.org/newsroom/sitemap.xml\n")


@pytest.fixture
def client(sqlite_settings: Settings) -> TestClient:
    add_feed_topics(sqlite_settings)
    add_release(sqlite_settings, 1)
    return TestClient(create_app(sqlite_settings))  # its start builds the site


def test_the_app_serves_the_sitemap_robots_and_icon_with_their_types(client: TestClient) -> None:
    with client:
        sitemap = client.get("/sitemap.xml")
        assert sitemap.status_code == 200
        assert sitemap.headers["content-type"] == "application/xml; charset=utf-8"
        assert f"{SITE}/releases/en-release-1".encode() in sitemap.content
        assert client.get("/sitemap.xml", headers={"If-None-Match": sitemap.headers["etag"]}
                          ).status_code == 304  # fmt: skip
        robots = client.get("/robots.txt")
        assert robots.status_code == 200
        assert robots.headers["content-type"] == "text/plain; charset=utf-8"
        assert robots.text.endswith(f"Sitemap: {SITE}/sitemap.xml\n")
        icon = client.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
        assert icon.content == discovery.FAVICON_FILE.read_bytes()
        assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file's header


def test_every_public_page_names_the_icon(client: TestClient) -> None:
    with client:
        for path in ("/", "/en/topics/climate/", "/releases/en-release-1", "/subscribe"):
            page = client.get(path).text
            assert f'<link rel="icon" href="{SITE}/favicon.ico"' in page, path


def _settings_at(site_url: str) -> Settings:
    return load_settings(site_url=site_url, secret_key=TEST_SECRET_KEY)
