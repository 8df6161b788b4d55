"""The security headers of the public pages: every newsroom page and form (generated or
dynamic) with a CSP that keeps it from being framed and allows no script, and the personal
pages (their URLs carry a subscriber's token) never cached and never sending a Referer —
checked on the answers, and in a real browser that the pages still look and work as they
did under their CSP."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.audience.subscription import Consent, record_request
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Subscriber
from distributor.core.urls import confirm_url, preferences_url, unsubscribe_url
from distributor.web import create_app
from distributor.web.headers import DOCS_CSP, page_csp
from tests.browser import chromium
from tests.helpers import free_port, published_site
from tests.processes import NO_BROKER
from tests.web_server import running_server


@pytest.fixture
def site(sqlite_settings: Settings) -> Iterator[tuple[Settings, TestClient]]:
    s = sqlite_settings.model_copy(update={"broker_url": NO_BROKER})
    published_site(s)
    with TestClient(create_app(s)) as client:
        yield s, client


def personal_links(s: Settings) -> list[str]:
    """A confirm link (of a new request), then Ann's preferences and unsubscribe links."""
    with session_scope(s) as session:
        ann = session.scalars(select(Subscriber)).one()
        request = record_request(
            session, s, email="bob@example.com", name="", language="en", topics=["climate"],
            consent=Consent("192.0.2.7", "test"),
        )  # fmt: skip
        links = [confirm_url(s, request.id, request.nonce),
                 preferences_url(s, ann.id, ann.link_nonce),
                 unsubscribe_url(s, ann.id, ann.link_nonce)]  # fmt: skip
    return [link.removeprefix(s.site_url) for link in links]


def assert_page_headers(answer: httpx.Response, what: str) -> None:
    csp = answer.headers.get("content-security-policy", "")
    assert csp == page_csp("https://news.example.org"), (what, csp)
    assert "frame-ancestors 'none'" in csp and "script-src" not in csp  # default-src 'none'
    assert answer.headers.get("x-frame-options") == "DENY", what
    assert answer.headers.get("x-content-type-options") == "nosniff", what


def test_newsroom_pages_and_forms_have_a_csp_and_cannot_be_framed(site) -> None:  # type: ignore[no-untyped-def]
    _s, client = site
    for path in ("/", "/en/", "/?lang=fr", "/releases/agency-signs-agreement"):
        answer = client.get(path)
        assert answer.status_code == 200 and "text/html" in answer.headers["content-type"]
        assert_page_headers(answer, path)
        assert answer.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert answer.headers["cache-control"] == "public, max-age=300"  # the newsroom is
        etag = {"If-None-Match": answer.headers["etag"]}  # public; its 304 says so too
        assert_page_headers(client.get(path, headers=etag), f"304 {path}")
    for path, status in (("/subscribe", 200), ("/no-such-page", 404)):
        answer = client.get(path)
        assert answer.status_code == status
        assert_page_headers(answer, path)
        assert answer.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert answer.headers["cache-control"] == "no-store"  # a CSRF cookie, an error
    # The API's docs load Swagger UI from this site only; they cannot be framed either.
    docs = client.get("/api/docs")
    assert docs.headers["content-security-policy"] == DOCS_CSP
    assert docs.headers["x-frame-options"] == "DENY"
    # The feeds are not pages: their answers stay as small as they were.
    feed = client.get("/feeds/en/releases.atom")
    assert "content-security-policy" not in feed.headers
    assert feed.headers["x-content-type-options"] == "nosniff"


def test_personal_pages_are_never_cached_and_send_no_referrer(site) -> None:  # type: ignore[no-untyped-def]
    s, client = site
    confirm, preferences, unsubscribe = personal_links(s)
    answers = {
        "confirm": client.get(confirm),
        "preferences": client.get(preferences),
        "unsubscribe": client.get(unsubscribe),
        "one-click": client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"}),
        "bad link": client.get("/confirm/not-a-token"),
        "bad unsubscribe": client.get("/unsubscribe/not-a-token"),
        "another spelling": client.get(preferences.replace("/preferences/", "/Preferences/")),
    }
    assert answers["preferences"].status_code == 200 and "ann@example.com" in answers[
        "preferences"].text  # fmt: skip
    for what, answer in answers.items():
        assert answer.headers["cache-control"] == "private, no-store", what
        assert answer.headers["referrer-policy"] == "no-referrer", what
        assert answer.headers["x-robots-tag"] == "noindex", what
        assert_page_headers(answer, what)


def test_the_refusals_of_the_body_guard_carry_the_headers_too(site) -> None:  # type: ignore[no-untyped-def]
    s, client = site
    preferences = personal_links(s)[1]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    refused = client.post(preferences, content=b"x" * 100_000, headers=form)
    assert refused.status_code == 413
    assert refused.headers["cache-control"] == "private, no-store"
    assert refused.headers["referrer-policy"] == "no-referrer"


@pytest.mark.needs("chromium")
def test_the_pages_still_look_and_work_the_same_under_their_csp(
    sqlite_settings: Settings, redis_url: str
) -> None:
    """In Chromium: no CSP violation on the newsroom, a release and the forms; the inline
    style sheet applies; the subscribe form still posts (to DISTRIBUTOR_SITE_URL)."""
    port = free_port()
    # The test Redis: without a broker URL, the form's wake-up would start an embedded one
    # that outlives the test.
    s = sqlite_settings.model_copy(
        update={"site_url": f"http://127.0.0.1:{port}", "broker_url": redis_url}
    )
    published_site(s)
    links = personal_links(s)
    with running_server(s, port) as base, chromium() as browser:
        page = browser.new_page()
        violations: list[str] = []
        page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text
                else None)  # fmt: skip
        for path in ("/", "/releases/agency-signs-agreement", "/subscribe", *links):
            answer = page.goto(base + path)
            assert answer is not None and answer.status == 200, path
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
            colour = page.evaluate(
                "getComputedStyle(document.querySelector('header')).borderBottomColor"
            )
            # The inline <style> applies: the header's rule in the office's accent colour
            # (the default, #1c3d6e, as the emails').
            assert colour == "rgb(28, 61, 110)", (path, colour)
        page.goto(base + "/subscribe")
        page.fill("#email", "journalist@example.com")
        page.check("input[value=climate]")
        with page.expect_navigation() as sent:
            page.click("button[type=submit]")
        assert sent.value is not None and sent.value.status == 200
        assert violations == []
        # Framed by a page of another origin: the browser refuses to show it.
        with framing_page(base + "/subscribe") as outer:
            page.goto(outer)
            page.wait_for_timeout(1000)
        framed = [f for f in page.frames if f is not page.main_frame]
        assert [f.url for f in framed] == ["chrome-error://chromewebdata/"]


@contextmanager
def framing_page(target: str) -> Iterator[str]:
    """The URL of a page (on a port of its own: another origin) that frames ``target``."""
    body = f'<!doctype html><iframe src="{target}"></iframe>'.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = 2  # a connection Chromium opened ahead and never used is let go

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    # Threads: one connection waiting for its request must not hold up the others, nor the
    # shutdown (which waited up to a minute for a preconnected socket of Chromium's).
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
