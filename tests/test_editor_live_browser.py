"""The release editor, live, in a real browser (Debian's headless Chromium, Playwright)
against `distributor serve`: the preview beside the form follows the typing (the newsroom
page and the email, at a phone's width or a desktop's, and who it would reach); without
JavaScript the Preview button shows it; autosave keeps the draft on the server every few
seconds and what is typed in the browser until the server has it, so a web process killed
with SIGKILL loses at most the last seconds, which the browser offers back; two people
editing one draft see the conflict, both texts, and nothing is overwritten (issue 14)."""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import APIResponse, BrowserContext, Page, Route, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Release
from distributor.office.accounts import create_user
from tests.browser import accessibility_problems, chromium, chromium_people, fill_login
from tests.helpers import add_subscribers, add_topics, free_port, make_release
from tests.processes import running_serve, settings_env
from tests.web_server import running_server

pytestmark = pytest.mark.needs("chromium", "axe")
PASSWORD = "correct horse battery staple"
DESKTOP = {"width": 1280, "height": 900}
SAVED = re.compile(r"Saved at \d\d:\d\d:\d\d")


@pytest.fixture
def office(sqlite_settings: Settings, redis_url: str) -> Settings:
    """A press office with two topics, five readers and two writers (not yet serving)."""
    port = free_port()
    settings = sqlite_settings.model_copy(
        update={"broker_url": redis_url, "site_url": f"http://127.0.0.1:{port}"}
    )
    add_topics(settings, "climate", "energy")
    add_subscribers(
        settings,
        [
            ("r1@example.com", "R1", "en", "climate"),
            ("r2@example.com", "R2", "en", "climate;energy"),
            ("r3@example.com", "R3", "en", "energy"),
            ("r4@example.com", "R4", "fr", "climate"),
            ("r5@example.com", "R5", "en", "energy"),
        ],
    )
    with session_scope(settings) as session:
        create_user(session, "ann@example.org", "writer", PASSWORD, name="Ann")
        create_user(session, "bob@example.org", "writer", PASSWORD, name="Bob")
    return settings


def port_of(settings: Settings) -> int:
    return int(settings.site_url.rsplit(":", 1)[1])


@pytest.fixture
def served(office: Settings) -> Iterator[str]:
    with running_server(office, port_of(office)):
        yield office.site_url


def logged_in_page(browser: BrowserContext, base: str, email: str) -> Page:
    """A tab of ``browser`` logged in to the workspace as ``email``."""
    page = browser.new_page()
    page.goto(base + "/admin/login")
    fill_login(page, email, PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    page.wait_for_url(base + "/admin")
    return page


def type_release(page: Page, title: str, body: str) -> None:
    """Type a release's text into the open editor and tick the climate topic."""
    page.get_by_label("Title", exact=True).fill(title)
    page.get_by_label("Lead", exact=False).fill("Eleven years of measurements, open to all.")
    page.get_by_label("Body").fill(body)
    page.get_by_role("checkbox", name="Climate").check()


def test_the_preview_follows_the_typing_page_email_widths_and_reach(
    served: str, office: Settings
) -> None:
    with chromium(viewport=DESKTOP) as browser:
        page = logged_in_page(browser, served, "ann@example.org")
        page.goto(served + "/admin/releases/new")
        type_release(page, "Agency opens a climate data portal", "The portal opens today.")
        frame = page.frame_locator("#preview-frame")
        expect(frame.get_by_role("heading", level=1)).to_have_text(
            "Agency opens a climate data portal"
        )
        expect(page.locator("#reach-total")).to_contain_text("2 people would get an email")
        page.get_by_label("Body").fill("The portal opens today, with a map of every station.")
        expect(frame.locator("body")).to_contain_text("a map of every station")
        # The form beside the preview on a desktop.
        form, pane = page.locator("#editor-form"), page.locator("#preview")
        assert form.bounding_box()["x"] < pane.bounding_box()["x"]  # type: ignore[index]
        page.get_by_role("checkbox", name="Energy").check()  # r1, r2, r3, r5: each once
        expect(page.locator("#reach-total")).to_contain_text("4 people would get an email")
        page.get_by_label("Email", exact=True).check()
        expect(frame.locator("body")).to_contain_text("Unsubscribe")  # the email's footer
        email_html = frame.locator("html").inner_html()
        assert 'style="' in email_html  # its inline styles, as sent, and shown
        page.get_by_label("Phone (390 px)").check()
        expect(page.locator("#preview-frame")).to_have_js_property("offsetWidth", 390)
        assert accessibility_problems(page) == [], "at 1280 px"
        page.get_by_label("Desktop").check()
        # Waited for, as every other expectation here: a preview or the autosave may be
        # swapping the frame at that instant (a CI run read 0 once, under load).
        page.wait_for_function("document.getElementById('preview-frame').offsetWidth > 390")
        # Autosaved meanwhile: a draft, and this page now edits it.
        expect(page.locator("#autosave-status")).to_have_text(SAVED, timeout=15_000)
        with session_scope(office) as session:
            [release] = session.query(Release).all()
        assert page.url == f"{served}/admin/releases/{release.id}/edit"
        page.set_viewport_size({"width": 390, "height": 844})
        box = page.locator("#preview").bounding_box()
        assert box is not None and box["y"] > page.locator("#editor-form").bounding_box()["y"]  # type: ignore[index]
        assert accessibility_problems(page) == [], "at 390 px"


def test_a_preview_asked_for_while_the_first_autosave_stores_the_draft_shows_the_draft(
    served: str,
) -> None:
    """The first autosave creates the draft; a preview of the still "new" release that the
    server answers after that met the draft's own slug, said "already exists" and kept
    saying it until the next keystroke (seen under load). Here the autosave's answer is
    held back after the server stored the draft, while the typing asks for a preview."""
    held: list[tuple[Route, APIResponse]] = []
    with chromium(viewport=DESKTOP) as browser:
        page = logged_in_page(browser, served, "ann@example.org")
        page.route(
            "**/admin/releases/new/autosave.json",
            lambda route: held.append((route, route.fetch())),  # stored, not yet answered
        )
        page.goto(served + "/admin/releases/new")
        type_release(page, "Agency opens a climate data portal", "The portal opens today.")
        deadline = time.monotonic() + 30
        while not held:
            assert time.monotonic() < deadline, "no autosave within 30 s"
            page.wait_for_timeout(100)  # Playwright runs the route's handler meanwhile
        try:  # a preview asked for now is answered before the draft's address is known...
            with page.expect_response(re.compile(r"/releases/new/preview"), timeout=3_000):
                page.get_by_label("Body").fill(
                    "The portal opens today, with a map of every station."
                )
        except PlaywrightTimeoutError:
            pass  # ...unless it waits for the autosave, as it should
        route, stored = held[0]
        route.fulfill(response=stored)
        expect(page).to_have_url(re.compile(r"/admin/releases/\d+/edit$"))
        frame = page.frame_locator("#preview-frame")
        expect(frame.locator("body")).to_contain_text("a map of every station")
        expect(page.locator("#reach-total")).to_contain_text("2 people would get an email")
        expect(page.locator("#preview-problem")).to_have_count(0)


def test_without_javascript_the_preview_button_shows_it_and_a_form_error(
    served: str, office: Settings
) -> None:
    with chromium(viewport=DESKTOP, java_script_enabled=False) as browser:
        page = logged_in_page(browser, served, "ann@example.org")
        page.goto(served + "/admin/releases/new")
        type_release(page, "Grid upgrade in the north", "Works start in May.")
        page.get_by_role("button", name="Preview", exact=True).click()
        frame = page.frame_locator("#preview-frame")
        expect(frame.get_by_role("heading", level=1)).to_have_text("Grid upgrade in the north")
        assert page.get_by_label("Body").input_value() == "Works start in May."  # all kept
        page.get_by_label("Title", exact=True).fill("")
        page.get_by_role("button", name="Preview", exact=True).click()
        expect(frame.locator("#preview-error")).to_contain_text("title")
        assert page.get_by_label("Body").input_value() == "Works start in May."
    with session_scope(office) as session:
        assert session.query(Release).count() == 0  # previewing saves nothing


def test_a_killed_web_process_loses_at_most_the_last_seconds_and_the_browser_offers_them(
    office: Settings, tmp_path: Path
) -> None:
    env = settings_env(office, DISTRIBUTOR_LOG_LEVEL="INFO")
    port, base = port_of(office), office.site_url
    with chromium(viewport=DESKTOP) as browser:
        with running_serve(env, tmp_path / "serve-1.log", port) as server:
            page = logged_in_page(browser, base, "ann@example.org")
            page.goto(base + "/admin/releases/new")
            type_release(page, "Agency opens a climate data portal", "First paragraph.")
            expect(page.locator("#autosave-status")).to_have_text(SAVED, timeout=15_000)
            edit_url = page.url
            assert edit_url.endswith("/edit")
            page.get_by_label("Body").fill("First paragraph.\n\nSecond, typed just before.")
            os.killpg(server.pid, signal.SIGKILL)  # before the next autosave
            server.wait()
            expect(page.locator("#autosave-status")).to_contain_text("Not saved", timeout=15_000)
            expect(page.locator("#autosave-status")).to_contain_text("kept in this browser")
            page.close()
        with session_scope(office) as session:
            [release] = session.query(Release).all()
            assert release.body_text.strip() == "First paragraph."  # the last autosave
        with running_serve(env, tmp_path / "serve-2.log", port):
            page = browser.new_page()
            page.goto(edit_url)
            assert page.get_by_label("Body").input_value() == "First paragraph."
            offer = page.get_by_role("button", name=re.compile(r"Restore what you typed at"))
            expect(offer).to_be_visible()
            offer.click()
            body = "First paragraph.\n\nSecond, typed just before."
            assert page.get_by_label("Body").input_value() == body
            expect(page.locator("#autosave-status")).to_have_text(SAVED, timeout=15_000)
        with session_scope(office) as session:
            assert "Second, typed just before." in session.query(Release).one().body_text


def test_two_people_autosaving_one_draft_see_the_conflict_with_both_texts(
    served: str, office: Settings
) -> None:
    draft = make_release(office, title="Port strike ends")
    edit = f"{served}/admin/releases/{draft.id}/edit"
    with chromium_people(2, viewport=DESKTOP) as (anns, bobs):
        ann = logged_in_page(anns, served, "ann@example.org")
        bob = logged_in_page(bobs, served, "bob@example.org")
        ann.goto(edit)
        bob.goto(edit)  # both opened the same version
        ann.get_by_label("Title", exact=True).fill("Port strike ends after three weeks")
        expect(ann.locator("#autosave-status")).to_have_text(SAVED, timeout=15_000)
        bob.get_by_label("Title", exact=True).fill("Port strike ends: ships leave tonight")
        status = bob.locator("#autosave-status")
        expect(status).to_contain_text("saved by someone else since you opened it", timeout=15_000)
        expect(status).to_contain_text("nothing was overwritten")
        conflict = bob.locator("#live-conflict")
        expect(conflict).to_contain_text("Port strike ends after three weeks")  # theirs
        assert (
            bob.get_by_label("Title", exact=True).input_value()
            == "Port strike ends: ships leave tonight"
        )
        with session_scope(office) as session:
            assert session.get_one(Release, draft.id).title == "Port strike ends after three weeks"
        # Bob saves knowingly: his replaces Ann's.
        bob.get_by_role("button", name="Save the draft").click()
        bob.wait_for_url(re.compile(r"done=saved"))
        with session_scope(office) as session:
            assert session.get_one(Release, draft.id).title == (
                "Port strike ends: ships leave tonight"
            )
