"""The press office's dashboard in a real browser (Debian's headless Chromium, Playwright)
against the real app over HTTP (served as `distributor serve` serves it), a real worker on the
test Redis and a real SMTP server: log in as a named publisher through the form, open a draft
release, publish it, and watch its progress bar reach 100% without reloading the page (the
dashboard's script polls progress.json); every subscriber gets exactly one message.

Full-page screenshots are kept in tests/artifacts/admin/."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page, Response

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import AuditEvent
from distributor.office.accounts import create_user
from distributor.releases.lifecycle import mark_published
from distributor.site.builder import build_site
from tests.browser import (
    DESKTOP,
    PHONE,
    accessibility_problems,
    chromium,
    fill_login,
)
from tests.corrections import send_release
from tests.helpers import add_subscribers, add_topics, free_port, make_release
from tests.processes import running_worker, wait_until
from tests.redis_db import empty
from tests.smtp_server import SMTPServer
from tests.web_server import running_server

ARTIFACTS = Path(__file__).parent / "artifacts" / "admin"
pytestmark = pytest.mark.needs("chromium", "axe")
SUBSCRIBERS = 200
PUBLISHER = "camille.martin@example.org"
PASSWORD = "correct horse battery staple"
TITLE = 'Agency signs <b>"cooperation"</b> agreement'
# Records every percentage the page shows, from the moment it is called (no reload since).
WATCH_PERCENT = """() => {
  const el = document.querySelector('[data-progress-scope] [data-field=percent]');
  window.seenPercents = [el.textContent];
  new MutationObserver(() => window.seenPercents.push(el.textContent))
    .observe(el, {childList: true, characterData: true, subtree: true});
}"""


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS


@pytest.fixture
def live(
    sqlite_settings: Settings, redis_url: str, smtp_server: SMTPServer
) -> Iterator[tuple[Settings, str, str]]:
    """The web app (no worker yet: the test starts it), 200 confirmed subscribers,
    a publisher's account, the run's Redis database emptied; yields (settings, base URL,
    the account's address)."""
    port = free_port()
    settings = sqlite_settings.model_copy(
        update={
            "broker_url": redis_url,
            "smtp_url": smtp_server.url,
            "site_url": f"http://127.0.0.1:{port}",
            # Small batches at a measured pace: the send takes a few seconds, long enough
            # for the page to show it moving.
            "batch_size": 20,
            "send_rate": 40,
        }
    )
    add_topics(settings, "climate", "energy")
    add_subscribers(
        settings,
        [(f"journalist{i:03}@example.com", f"Journalist {i}", "en", "climate")
         for i in range(SUBSCRIBERS)],
    )  # fmt: skip
    with session_scope(settings) as session:
        create_user(session, PUBLISHER, "publisher", PASSWORD, name="Camille Martin")
    empty(redis_url)  # no task of an earlier test
    with running_server(settings, port) as base:
        yield settings, base, PUBLISHER


def test_log_in_publish_and_watch_the_send_reach_100_percent(
    live: tuple[Settings, str, str], smtp_server: SMTPServer, artifacts: Path, tmp_path: Path
) -> None:
    """The progress shown moves to 100% on the page itself, no reload. The worker starts
    only once the page is watched, so the page cannot have been shown the end already (it
    used to race the worker for what the page showed first)."""
    settings, base, email = live
    release = make_release(settings, title=TITLE, slug="cooperation")
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # A script or style blocked by the Content-Security-Policy is reported here.
        where = message.location.get("url", "")
        if message.type == "error" and not where.endswith("/favicon.ico"):
            problems.append(f"{message.text} ({where})")

    def on_response(response: Response) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            problems.append(f"{response.status} {response.url}")

    def shoot(page: Page, name: str) -> None:
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
        assert accessibility_problems(page) == [], name

    with chromium(viewport=DESKTOP) as browser, ExitStack() as worker:
        page = browser.new_page()
        page.on("console", on_console)
        page.on("response", on_response)

        page.goto(f"{base}/admin")
        assert page.url == f"{base}/admin/login"
        fill_login(page, email, PASSWORD)
        shoot(page, "1-login")
        page.get_by_role("button", name="Log in", exact=True).click()
        page.wait_for_url(f"{base}/admin")
        assert page.get_by_role("heading", level=1).inner_text() == "Dashboard"
        assert page.get_by_text("Camille Martin").is_visible()

        page.get_by_role("link", name=TITLE).click()
        page.wait_for_url(f"{base}/admin/releases/{release.id}")
        assert page.get_by_role("heading", level=1).inner_text() == TITLE  # escaped, shown
        shoot(page, "2-draft")

        page.get_by_role("link", name="Publish now…").click()  # the step that says to whom
        page.wait_for_url(f"{base}/admin/releases/{release.id}/publish")
        count = SUBSCRIBERS
        assert page.get_by_role("heading", level=1).inner_text() == (
            f"Send “{TITLE}” now to {count} people?"
        )
        shoot(page, "2b-publish-step")
        page.get_by_role("button", name=f"Yes, publish and send to {count} people").click()
        page.wait_for_url(f"{base}/admin/releases/{release.id}?done=published")
        page.evaluate(WATCH_PERCENT)
        assert set(page.evaluate("() => window.seenPercents")) == {"0%"}  # none sent yet
        worker.enter_context(running_worker(settings, tmp_path / "logs", keep_queue=True))
        bar = page.locator(f"#progress-{release.id}")
        page.wait_for_function(
            """([id, n]) => {
                const bar = document.getElementById('progress-' + id);
                const shown = document.querySelector('[data-progress-scope] [data-field=percent]');
                return bar.max === n && bar.value === n && shown.textContent === '100%';
            }""",
            arg=[release.id, SUBSCRIBERS],
            timeout=60_000,
        )
        seen: list[str] = page.evaluate("() => window.seenPercents")
        print(f"percentages shown while sending: {seen}")
        assert seen[0] == "0%" and seen[-1] == "100%"  # it moved on this page, no reload
        assert bar.get_attribute("max") is not None
        page.get_by_text("Finished.").wait_for()
        shoot(page, "3-sent")

        page.get_by_role("link", name="Dashboard").first.click()
        page.wait_for_url(f"{base}/admin")
        cell = page.locator("#subscribers td[data-topic=climate][data-lang=en]")
        assert cell.inner_text() == str(SUBSCRIBERS)
        shoot(page, "4-dashboard")
        page.set_viewport_size(PHONE)
        shoot(page, "5-dashboard-phone")

    assert problems == []
    wait_until(lambda: len(smtp_server.handler.messages) >= SUBSCRIBERS, 30, "every message")
    received = smtp_server.handler.by_rcpt()
    assert len(received) == SUBSCRIBERS
    assert all(len(messages) == 1 for messages in received.values())
    with session_scope(settings) as session:
        events = session.query(AuditEvent).filter_by(subject=f"release {release.id}").all()
        assert [(e.action, e.actor) for e in events] == [("publish", f"user:{PUBLISHER}")]


def test_withdraw_with_a_reason_and_read_it_on_the_410_page(
    live: tuple[Settings, str, str], artifacts: Path
) -> None:
    """The reason typed in the dashboard's withdraw form is what a reader of the release's
    address sees, in the release's language, on a phone and on a desktop."""
    settings, base, email = live
    english = make_release(settings)
    french = make_release(settings, lang="fr", slug="accord-signe", title="Accord signé")
    with session_scope(settings) as session:
        for release in (english, french):
            mark_published(session, release.id)
    reasons = [
        (english, "Figures were wrong; a new release follows."),
        (french, "Chiffres erronés ; un nouveau communiqué suit."),
    ]
    with chromium(viewport=DESKTOP) as browser:
        page = browser.new_page()
        page.goto(f"{base}/admin/login")
        fill_login(page, email, PASSWORD)
        page.get_by_role("button", name="Log in", exact=True).click()
        page.wait_for_url(f"{base}/admin")
        for release, reason in reasons:
            page.goto(f"{base}/admin/releases/{release.id}/withdraw")
            assert accessibility_problems(page) == []
            page.get_by_label("Reason (optional, one line, shown on its page)").fill(reason)
            page.get_by_role("button", name=f"Yes, withdraw release {release.id}").click()
            page.wait_for_url(f"{base}/admin/releases/{release.id}?done=withdrawn")
    build_site(settings)  # what the worker's regenerate_site does (no worker here)
    shown = [
        ("/releases/agency-signs-agreement", "Reason: Figures were wrong; a new release follows."),
        ("/releases/accord-signe", "Motif\u00a0: Chiffres erronés ; un nouveau communiqué suit."),
    ]
    for viewport in (PHONE, {"width": 390, "height": 844}, DESKTOP):
        with chromium(viewport=viewport) as browser:
            page = browser.new_page()
            for path, text in shown:
                url = f"{base}{path}"
                # The server picks the rebuilt files up by inotify: within moments.
                wait_until(
                    lambda tab=page, url=url: getattr(tab.goto(url), "status", 0) == 410,
                    10,
                    f"{path} answering 410",
                )
                assert text in page.locator("main").inner_text()
                assert accessibility_problems(page) == [], (path, viewport)
                name = f"gone-{path.rsplit('/', 1)[1]}-{viewport['width']}"
                page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def test_withdraw_and_tell_those_who_received_it(
    live: tuple[Settings, str, str], smtp_server: SMTPServer, tmp_path: Path
) -> None:
    """The withdraw form's box, off by default: ticked, the page after says how many
    withdrawal notices were planned, and a worker sends each reader one, with the reason."""
    settings, base, email = live
    readers = [f"reader{i}@example.com" for i in range(3)]
    add_subscribers(settings, [(email, "Reader", "en", "energy") for email in readers])
    release = make_release(settings, topics="energy", slug="grid", title="Grid upgrade")
    send_release(settings, release.id)  # the three readers of energy
    assert sorted(m.rcpt for m in smtp_server.handler.messages) == readers
    reason = "Figures were wrong; a new release follows."
    box = "Tell those who received it (send a withdrawal notice)"
    with chromium(viewport={"width": 390, "height": 844}) as browser:  # the form on a phone
        page = browser.new_page()
        page.goto(f"{base}/admin/login")
        fill_login(page, email, PASSWORD)
        page.get_by_role("button", name="Log in", exact=True).click()
        page.wait_for_url(f"{base}/admin")
        page.goto(f"{base}/admin/releases/{release.id}/withdraw")
        assert page.get_by_label(box).is_visible()
        assert accessibility_problems(page) == []
        page.screenshot(path=str(tmp_path / "withdraw-form-390.png"), full_page=True)
    with chromium(viewport=DESKTOP) as browser:
        page = browser.new_page()
        page.goto(f"{base}/admin/login")
        fill_login(page, email, PASSWORD)
        page.get_by_role("button", name="Log in", exact=True).click()
        page.wait_for_url(f"{base}/admin")
        page.goto(f"{base}/admin/releases/{release.id}/withdraw")
        assert accessibility_problems(page) == []
        assert not page.get_by_label(box).is_checked()  # no email unless asked
        page.get_by_label("Reason (optional, one line, shown on its page)").fill(reason)
        page.get_by_label(box).check()
        page.get_by_role("button", name=f"Yes, withdraw release {release.id}").click()
        page.wait_for_url(f"{base}/admin/releases/{release.id}?done=withdrawn-notified")
        said = page.get_by_text("3 withdrawal notices planned")
        assert said.is_visible(), page.locator("main").inner_text()
        assert accessibility_problems(page) == []
    with running_worker(settings, tmp_path / "logs", keep_queue=True):  # what the form enqueued

        def told() -> list[str]:
            subjects = {m.rcpt: str(m.parsed()["Subject"]) for m in smtp_server.handler.messages}
            return sorted(r for r, s in subjects.items() if s == "Withdrawn: Grid upgrade")

        wait_until(lambda: told() == readers, 60, "a withdrawal notice to each reader")
    received = smtp_server.handler.by_rcpt()
    assert all(len(received[r]) == 2 for r in readers)  # the release, then its notice
    notice = received[readers[0]][1].parsed().get_body(preferencelist=("plain",))
    assert notice is not None and f"Reason: {reason}" in str(notice.get_content())
