"""The public pages: newsroom, release page, feeds with conditional GET, unsubscribe."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Subscriber, SubscriberStatus
from distributor.core.urls import preferences_url, unsubscribe_url
from tests.helpers import published_site


@pytest.fixture
def site(sqlite_settings: Settings) -> tuple[Settings, TestClient]:
    s = sqlite_settings
    published_site(s)
    return s, TestClient(create_app_for(s))


def create_app_for(s: Settings):  # type: ignore[no-untyped-def]
    from distributor.web import create_app

    return create_app(s)


def ann_id(s: Settings) -> int:
    with session_scope(s) as session:
        sub = session.scalar(select(Subscriber).where(Subscriber.email == "ann@example.com"))
        assert sub is not None
        return sub.id


def ann_nonce(s: Settings) -> str | None:
    with session_scope(s) as session:
        return session.scalar(
            select(Subscriber.link_nonce).where(Subscriber.email == "ann@example.com")
        )


def test_newsroom_lists_published_releases_with_feed_autodiscovery(site) -> None:  # type: ignore[no-untyped-def]
    _s, client = site
    html = client.get("/").text
    assert "Agency signs agreement" in html
    assert 'rel="alternate" type="application/atom+xml"' in html
    assert "https://news.example.org/feeds/en/releases.atom" in html
    page = client.get("/releases/agency-signs-agreement")
    assert page.status_code == 200 and "Jane Doe" in page.text
    assert client.get("/releases/nope").status_code == 404


def test_feeds_answer_304_to_a_conditional_get(site) -> None:  # type: ignore[no-untyped-def]
    # The generated file, served from memory by the app (tests/test_static_serving.py has
    # the details, against a running `distributor serve`).
    _s, client = site
    first = client.get("/feeds/en/releases.atom", headers={"Accept-Encoding": "gzip"})
    assert first.status_code == 200 and first.headers["content-encoding"] == "gzip"
    assert first.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert b"Agency signs agreement" in first.content  # decoded by the client
    assert first.headers["link"] == '<https://news.example.org/feeds/en/releases.atom>; rel="self"'
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert client.get("/feeds/en/releases.atom", headers={"If-None-Match": etag}).status_code == 304
    again = client.get("/feeds/en/releases.atom", headers={"If-Modified-Since": modified})
    assert again.status_code == 304 and again.content == b""
    assert client.get("/feeds/en/nope.atom").status_code == 404
    assert client.get("/.manifest.json").status_code == 404


def test_unsubscribe_get_changes_nothing_and_one_click_post_unsubscribes(site) -> None:  # type: ignore[no-untyped-def]
    s, client = site
    path = unsubscribe_url(s, ann_id(s), ann_nonce(s)).removeprefix(s.site_url)
    page = client.get(path)
    assert page.status_code == 200 and "ann@example.com" in page.text
    with session_scope(s) as session:
        assert session.get(Subscriber, ann_id(s)).status == SubscriberStatus.CONFIRMED  # type: ignore[union-attr]
    for _ in range(2):  # a repeated POST also answers 200
        done = client.post(path, data={"List-Unsubscribe": "One-Click"}, follow_redirects=False)
        assert done.status_code == 200
    with session_scope(s) as session:
        assert session.get(Subscriber, ann_id(s)).status == SubscriberStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    tampered = path[:-2] + ("AA" if not path.endswith("AA") else "BB")
    assert client.post(tampered, data={"List-Unsubscribe": "One-Click"}).status_code == 400


def test_preferences_link_from_the_email_works(site) -> None:  # type: ignore[no-untyped-def]
    s, client = site
    page = client.get(preferences_url(s, ann_id(s), ann_nonce(s)).removeprefix(s.site_url))
    assert page.status_code == 200
    assert "ann@example.com" in page.text and "Climate" in page.text


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/subscribe/", "/subscribe"),
        ("/subscribe/?lang=fr", "/subscribe?lang=fr"),
        ("/api/subscribers/", "/api/subscribers"),
        ("/admin/login/", "/admin/login"),
    ],
)
def test_the_trailing_slash_redirect_goes_to_the_site_url_whatever_the_host(
    site, path: str, target: str
) -> None:  # type: ignore[no-untyped-def]
    s, client = site
    for host in ("evil.example", "news.example.org:8443", "a\\b"):
        answer = client.get(path, headers={"Host": host}, follow_redirects=False)
        assert answer.status_code == 307
        assert answer.headers["location"] == s.site_url + target, host
    # A path the app does not know is not redirected anywhere.
    assert client.get("/no-such-page/", follow_redirects=False).status_code == 404
