"""A journalist's whole journey in a real browser (Debian's headless Chromium, Playwright)
against the real app over HTTP (served as `distributor serve` serves it), a real worker on the
test Redis and a real SMTP server: find the form on the newsroom, subscribe by keyboard alone,
confirm from the email, receive a release, leave in one click (RFC 8058), receive nothing more.

Screenshots of every page are kept in tests/artifacts/journey/ (phone width; the form also
at a desktop width)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, Response
from sqlalchemy import select

from distributor import actions
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.i18n import gettext_for
from distributor.core.models import Subscriber, SubscriberStatus
from distributor.core.queue import TaskQueue
from distributor.reporting.status import release_status
from tests.browser import (
    DESKTOP,
    PHONE,
    accessibility_problems,
    chromium,
    focused,
    link_in,
    visit,
)
from tests.helpers import add_subscribers, add_topics, free_port, make_release
from tests.processes import running_worker, wait_until
from tests.smtp_server import SMTPServer
from tests.web_server import running_server

ARTIFACTS = Path(__file__).parent / "artifacts" / "journey"
pytestmark = pytest.mark.needs("chromium", "axe")
ADDRESS = "marie.curie@example.com"
CONTROL = "control@example.com"  # a confirmed French subscriber: proves releases went out
fr = gettext_for("fr")


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS


@pytest.fixture
def live(
    sqlite_settings: Settings, redis_url: str, smtp_server: SMTPServer, tmp_path: Path
) -> Iterator[tuple[Settings, str]]:
    """A worker and the web app on one settings, every email link pointing at the
    server; yields (settings, base URL)."""
    port = free_port()
    settings = sqlite_settings.model_copy(
        update={
            "broker_url": redis_url,
            "smtp_url": smtp_server.url,
            "site_url": f"http://127.0.0.1:{port}",
            "rate_limit_requests": 1000,  # other runs on this Redis share the IP 127.0.0.1
        }
    )
    add_topics(settings, "climate", "science", "space")
    add_subscribers(settings, [(CONTROL, "Control", "fr", "climate")])
    with (
        running_worker(settings, tmp_path / "logs"),
        running_server(settings, port) as base,
    ):
        yield settings, base


def status_of(settings: Settings, email: str) -> str | None:
    """The subscriber's status; None while there is only a request, not yet confirmed."""
    with session_scope(settings) as session:
        sub = session.scalar(select(Subscriber).where(Subscriber.email == email))
        return sub.status if sub is not None else None


def mail_to(smtp: SMTPServer, rcpt: str) -> list[EmailMessage]:
    return [m.parsed() for m in smtp.handler.by_rcpt().get(rcpt, [])]


def wait_for_mail(smtp: SMTPServer, rcpt: str, count: int, what: str) -> EmailMessage:
    wait_until(lambda: len(mail_to(smtp, rcpt)) >= count, 30, what)
    return mail_to(smtp, rcpt)[count - 1]


def text_of(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None, "no text part"
    text: str = part.get_content()
    return text


def publish(settings: Settings, title: str, slug: str) -> int:
    release = make_release(settings, lang="fr", topics="climate", title=title, slug=slug)
    queue = TaskQueue(settings)
    try:
        actions.publish(settings, queue, release.id)
    finally:
        queue.close()
    return release.id


def wait_delivered(settings: Settings, release_id: int) -> None:
    def done() -> bool:
        with session_scope(settings) as session:
            st = release_status(session, release_id)
        return st.planned > 0 and st.open == 0

    wait_until(done, 30, f"the ledger of release {release_id} to finish")


def test_subscribe_confirm_receive_and_leave_in_a_real_browser(
    live: tuple[Settings, str], smtp_server: SMTPServer, artifacts: Path
) -> None:
    settings, base = live
    broken: list[str] = []

    def shoot(page: Page, name: str) -> None:
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
        assert accessibility_problems(page) == [], name

    def on_response(response: Response) -> None:
        if response.status >= 400:  # the icon too: the site has one
            broken.append(f"{response.status} {response.url}")

    with chromium() as browser:
        page = browser.new_page()
        page.on("response", on_response)

        # The newsroom links to the form.
        visit(page, base + "/")
        assert page.locator("link[rel=alternate]").count() >= 2  # feed autodiscovery
        shoot(page, "01-index")
        page.get_by_role("banner").get_by_role("link", name="Subscribe by email").click()
        page.wait_for_url(base + "/subscribe*")
        assert page.locator("h1").inner_text() == "Subscribe to our press releases"

        # The form, by keyboard alone: Tab to each field, arrows in the radio group, Space on
        # the checkboxes, Enter on the button. The honeypot is never reached.
        tab_stops = []
        for _ in range(10):
            page.keyboard.press("Tab")
            tab_stops.append(focused(page))
            if tab_stops[-1]["id"] == "email":
                break
        assert tab_stops[-1]["id"] == "email", tab_stops
        assert all(stop["name"] != "website" for stop in tab_stops)
        steps: list[tuple[str, Callable[[], None]]] = [
            ("email", lambda: page.keyboard.type(ADDRESS)),
            ("name", lambda: page.keyboard.type("Marie Curie")),
            ("language=en", lambda: page.keyboard.press("ArrowDown")),  # moves to French
            ("topics=*", lambda: None),  # "All topics", left unticked
            ("topics=climate", lambda: page.keyboard.press("Space")),
            ("topics=science", lambda: page.keyboard.press("Space")),
            ("topics=space", lambda: None),  # left unticked
        ]
        for expected, act in steps:
            now = focused(page)
            assert now["where"] == expected, (expected, now)
            assert now["outline"], f"no visible focus on {expected}"
            act()
            page.keyboard.press("Tab")
        now = focused(page)
        assert now["tag"] == "button" and now["outline"], now
        assert page.input_value("#email") == ADDRESS
        assert page.is_checked("input[name=language][value=fr]")
        assert page.is_checked("input[value=climate]") and page.is_checked("input[value=science]")
        assert not page.is_checked("input[value=space]")
        shoot(page, "02-form-filled-375")
        page.set_viewport_size(DESKTOP)
        page.screenshot(path=str(artifacts / "02-form-filled-1280.png"), full_page=True)
        page.set_viewport_size(PHONE)
        with page.expect_navigation() as answer:
            page.keyboard.press("Enter")
        assert answer.value is not None and answer.value.status == 200

        # The answer page, in the language chosen.
        assert page.evaluate("document.documentElement.lang") == "fr"
        assert page.locator("h1").inner_text() == fr("Check your inbox")
        shoot(page, "03-answer")
        assert status_of(settings, ADDRESS) is None  # a request: nothing applies before

        # The confirmation email (French), its link opens a page; the GET changes nothing.
        confirmation = wait_for_mail(smtp_server, ADDRESS, 1, "the confirmation email")
        assert fr("Confirm your subscription") in text_of(confirmation)
        confirm = link_in(text_of(confirmation), base, "/confirm/")
        visit(page, confirm)
        assert page.evaluate("document.documentElement.lang") == "fr"
        shown = page.locator("main").inner_text()
        assert ADDRESS in shown and "Marie Curie" in shown and "Français" in shown
        assert "Climate (fr), Science (fr)" in shown  # what the button will apply
        shoot(page, "04-confirm")
        assert status_of(settings, ADDRESS) is None
        with page.expect_navigation() as confirmed:
            page.get_by_role("button", name=fr("Confirm")).click()
        assert confirmed.value is not None and confirmed.value.status == 200
        assert page.locator("h1").inner_text() == fr("Subscription confirmed")
        shoot(page, "05-confirmed")
        assert status_of(settings, ADDRESS) == SubscriberStatus.CONFIRMED

        # A French release on one of the chosen topics arrives.
        first = publish(settings, "Accord de coopération sur le climat", "accord-climat")
        release_mail = wait_for_mail(smtp_server, ADDRESS, 2, "the release email")
        assert release_mail["Subject"] == "Accord de coopération sur le climat"
        assert release_mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe = release_mail["List-Unsubscribe"].strip().strip("<>")
        assert unsubscribe.startswith(base + "/unsubscribe/")
        assert link_in(text_of(release_mail), base, "/unsubscribe/") == unsubscribe
        wait_delivered(settings, first)

        # The preferences page from the email shows the choices made on the form.
        visit(page, link_in(text_of(release_mail), base, "/preferences/"))
        assert page.locator("h1").inner_text() == fr("Your subscription")
        assert page.is_checked("input[name=language][value=fr]")
        chosen = page.locator("input[name=topics]:checked").evaluate_all(
            "boxes => boxes.map(b => b.value)"
        )
        assert chosen == ["climate", "science"]
        shoot(page, "06-preferences")

        # The unsubscribe page (a GET) asks, and changes nothing.
        visit(page, unsubscribe)
        assert page.get_by_role("button", name=fr("Unsubscribe")).is_visible()
        shoot(page, "07-unsubscribe")
        assert status_of(settings, ADDRESS) == SubscriberStatus.CONFIRMED
        assert broken == []

    # RFC 8058 one-click: a bare POST, no cookie, no token, no redirect; twice is fine.
    for _ in range(2):
        response = httpx.post(
            unsubscribe, data={"List-Unsubscribe": "One-Click"}, follow_redirects=False
        )
        assert response.status_code == 200, response.text
        assert "location" not in response.headers
    assert status_of(settings, ADDRESS) == SubscriberStatus.UNSUBSCRIBED

    # The next release reaches the control subscriber, and nobody else.
    second = publish(settings, "Nouvelle mission d'observation", "nouvelle-mission")
    wait_delivered(settings, second)
    wait_for_mail(smtp_server, CONTROL, 2, "the second release at the control address")
    assert len(mail_to(smtp_server, ADDRESS)) == 2  # the confirmation and the first release
