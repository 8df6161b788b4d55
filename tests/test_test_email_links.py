"""Every link of a test email opens a page that works: "read online" of a release not public
yet opens its signed preview page (the public address is a 404 until it is published), and
the stand-in's preferences and unsubscribe links say they come from a test email. The
preview page is kept out of caches, referrers, search engines and feed readers, and follows
the release: to its public page once published, "withdrawn" after, "deleted" when gone."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from distributor import actions
from distributor.core.config import Settings
from distributor.core.tokens import Purpose, make_token
from distributor.core.urls import PREVIEW_MAX_AGE_DAYS, release_url
from distributor.mail.preview import send_test
from distributor.web import create_app
from tests.corrections import html_part, text_part
from tests.helpers import CountingQueue, add_topics, make_release, outbox

ME = "desk@example.org"


@pytest.fixture
def site(sqlite_settings: Settings) -> Iterator[tuple[Settings, TestClient]]:
    add_topics(sqlite_settings, "climate")
    with TestClient(create_app(sqlite_settings), base_url="https://testserver") as client:
        yield sqlite_settings, client


def links_of_test_email(settings: Settings, release_id: int) -> dict[str, str]:
    """Send release ``release_id`` as a test to ME (the Maildir outbox); its links to this
    site by the page they open (``preview``, ``preferences``…: paths below the site URL),
    the same in both parts."""
    send_test(settings, release_id, [ME])
    email = outbox(settings, ME)[-1]
    site = re.escape(settings.site_url)
    found = set(re.findall(site + r"/[^\s<>\"]+", text_part(email)))
    in_html = {html.unescape(u) for u in re.findall(site + r"/[^\s<>\"]+", html_part(email))}
    assert found <= in_html
    paths = [url.removeprefix(settings.site_url) for url in found]
    return {path.split("/")[1]: path for path in paths}


def test_a_test_emails_read_online_opens_the_drafts_preview_page(
    site: tuple[Settings, TestClient],
) -> None:
    settings, client = site
    release = make_release(settings, title="Agency maps the bay")
    links = links_of_test_email(settings, release.id)
    public = release_url(settings, release.slug).removeprefix(settings.site_url)
    assert client.get(public).status_code == 404  # not public yet...
    assert public not in links.values()  # ...so not linked to
    page = client.get(links["preview"])
    assert page.status_code == 200
    assert "<h1>Agency maps the bay</h1>" in page.text
    assert "Preview: this release is not public yet." in page.text
    # Kept by nobody: caches, referrers, search engines; and it leads no reader anywhere.
    assert page.headers["cache-control"] == "private, no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-robots-tag"] == "noindex"
    assert '<meta name="robots" content="noindex">' in page.text
    head = page.text.split("</head>", 1)[0]
    assert 'rel="alternate"' not in head and 'rel="canonical"' not in head
    # The stand-in's own links say what they are.
    for kind in ("preferences", "unsubscribe"):
        answer = client.get(links[kind])
        assert answer.status_code == 200, kind
        assert "This link comes from a test email" in answer.text, kind


def test_the_preview_link_follows_the_release(site: tuple[Settings, TestClient]) -> None:
    settings, client = site
    release = make_release(settings)
    preview = links_of_test_email(settings, release.id)["preview"]
    actions.publish(settings, CountingQueue(), release.id)  # type: ignore[arg-type]
    moved = client.get(preview, follow_redirects=False)
    assert moved.status_code == 303
    assert moved.headers["location"] == release_url(settings, release.slug)
    actions.withdraw(settings, CountingQueue(), release.id, "desk", "sent by mistake")  # type: ignore[arg-type]
    assert client.get(preview).status_code == 410

    draft = make_release(settings, slug="a-draft", title="A draft")
    preview = links_of_test_email(settings, draft.id)["preview"]
    actions.delete_draft(settings, draft.id, "desk")
    gone = client.get(preview)
    assert gone.status_code == 404 and "This release no longer exists" in gone.text


def test_a_preview_link_altered_or_too_old_opens_nothing(
    site: tuple[Settings, TestClient],
) -> None:
    settings, client = site
    release = make_release(settings)
    preview = links_of_test_email(settings, release.id)["preview"]
    altered = preview[:-3] + ("AAA" if not preview.endswith("AAA") else "BBB")
    assert client.get(altered).status_code == 400
    other_purpose = make_token(settings, Purpose.PREFERENCES, release.id)
    assert client.get(f"/preview/{other_purpose}").status_code == 400
    old = make_token(
        settings, Purpose.PREVIEW, release.id, int(time.time()) - PREVIEW_MAX_AGE_DAYS * 86400 - 60
    )
    expired = client.get(f"/preview/{old}", headers={"accept-language": "fr"})
    assert expired.status_code == 400 and "Envoyez-vous un nouveau message de test" in expired.text
