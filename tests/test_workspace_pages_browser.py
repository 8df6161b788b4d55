"""Every page of the press workspace in a real browser (Debian's headless Chromium, Playwright)
against the real app over HTTP (served as `distributor serve` serves it), at a phone's width
(390 px) and a desktop's (1280 px): the login form, the dashboard, the list of releases, a
release, its withdraw form and correction form, the editor, the publish step, the accounts
page, the address book of press contacts (and one entry's form), the office's settings and an
invitation's page. On each, axe-core finds no serious or critical violation, every control is
labelled, and nothing is wider than the screen (issue 14).

The login, dashboard, releases, release, editor and accounts pages are saved, full page, as
PAGE-WIDTH.png in tests/artifacts/workspace/, or in the folder DISTRIBUTOR_TEST_SCREENSHOTS
names: `make screenshots` renews docs/screenshots/, which the README shows. (Not on every
run: the pages show times, so each run's images differ, and a test run would leave the work
tree changed.)"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page
from sqlalchemy import select

from distributor.audience.accreditation import Decision, ask, decide
from distributor.core import heartbeat
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Subscriber
from distributor.core.urls import invitation_url
from distributor.office.accounts import create_user
from distributor.office.contacts import add_contact
from distributor.office.identity import update_identity
from distributor.office.invitations import invite
from distributor.releases.lifecycle import duplicate
from tests.browser import accessibility_problems, chromium, fill_login
from tests.corrections import send_release
from tests.helpers import add_subscribers, add_topics, free_port, make_release
from tests.smtp_server import SMTPServer
from tests.web_server import running_server

pytestmark = pytest.mark.needs("chromium", "axe")
SCREENSHOTS = Path(
    os.environ.get("DISTRIBUTOR_TEST_SCREENSHOTS")
    or Path(__file__).parent / "artifacts" / "workspace"
)
ADMIN = "ines.garcia@example.org"
PASSWORD = "correct horse battery staple"
LOGO = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 40"><rect width="120"/></svg>'
WIDTHS = {390: {"width": 390, "height": 844}, 1280: {"width": 1280, "height": 800}}
# The screenshots the README shows.
SHOWN = ("login", "dashboard", "releases", "release", "editor", "edit", "accounts", "settings")
OPEN_DETAILS = """() => {
  const closed = [...document.querySelectorAll('details:not([open])')];
  closed.forEach(d => { d.open = true; });
  return closed.length;
}"""


@pytest.fixture
def workspace(
    sqlite_settings: Settings, redis_url: str, smtp_server: SMTPServer
) -> Iterator[tuple[str, dict[str, str]]]:
    """The web app with what a press office has after a few weeks: topics in two
    languages, subscribers, a release sent to them, a draft, a colleague, an invitation
    pending, its sweep running. Yields (base URL, {page name: its path})."""
    port = free_port()
    settings = sqlite_settings.model_copy(
        update={
            "broker_url": redis_url,
            "smtp_url": smtp_server.url,
            "site_url": f"http://127.0.0.1:{port}",
        }
    )
    add_topics(settings, "climate", "energy", "transport")
    add_subscribers(
        settings,
        [(f"reader{i:02}@example.com", f"Reader {i}", ("en", "fr")[i % 2],
          ("climate", "energy;transport", "climate;energy")[i % 3]) for i in range(12)],
    )  # fmt: skip
    sent = make_release(
        settings, title="Agency signs a cooperation agreement on coastal flood defences"
    )
    send_release(settings, sent.id)
    draft = make_release(settings, slug="grid", title="Grid upgrade", topics="energy")
    with session_scope(settings) as session:
        # Its French version, a draft: the publish step and the schedule form offer it.
        duplicate(session, draft.id, language="fr")
        create_user(session, ADMIN, "admin", PASSWORD, name="Inès García")
        create_user(session, "tom.writer@example.org", "writer", PASSWORD, name="Tom Writer")
        invitation = invite(session, "new.colleague@example.org", "publisher", by=ADMIN)
        link = invitation_url(settings, invitation.id, invitation.nonce)
        press = add_contact(session, {"name": "Inès García", "role": "Head of press",
                                      "phone": "+33 1 23 45 67 89",
                                      "email": "ines.garcia@example.org"})  # fmt: skip
        add_contact(session, {"name": "Press desk (night)", "phone": "+33 6 00 00 00 00"})
        # The settings page with a logo, an address and a default press contact.
        address = "12 rue de l'Observatoire\n75014 Paris"
        changes = {"postal_address": address, "press_contacts": [press.id]}
        update_identity(session, settings, changes, ("logo.svg", LOGO))
        # Two journalists asked for embargo access; the office granted one.
        readers = session.scalars(select(Subscriber).order_by(Subscriber.id).limit(2)).all()
        ask(session, readers[0].id, "Le Monde diplomatique", "Rédactrice en chef adjointe")
        ask(session, readers[1].id, "Nature", "Senior science correspondent")
        decide(session, readers[1].id, Decision.GRANT, ADMIN)
    paths = {
        "login": "/admin/login",
        "dashboard": "/admin",
        "release": f"/admin/releases/{sent.id}",
        "withdraw": f"/admin/releases/{sent.id}/withdraw",
        "correct": f"/admin/releases/{sent.id}/correct",
        "accounts": "/admin/accounts",
        "releases": "/admin/releases",
        "editor": "/admin/releases/new",
        "edit": f"/admin/releases/{draft.id}/edit",
        "publish": f"/admin/releases/{draft.id}/publish",
        "draft": f"/admin/releases/{draft.id}",
        "twofactor": "/admin/account/2fa",
        "contacts": "/admin/contacts",
        "contact": f"/admin/contacts/{press.id}",
        "invitation": link.removeprefix(settings.site_url),
        "settings": "/admin/settings",
        "accreditations": "/admin/accreditations",
    }
    heartbeat.record(settings, redis_url)  # as a running `distributor beat` keeps it
    with running_server(settings, port) as base:
        yield base, paths


def check_page(page: Page, name: str, width: int) -> None:
    """The page as it is: no accessibility problem (axe's included), no sideways scroll;
    saved for the README if it is one of SHOWN. Then the same with every <details> open
    (the figures per hour, the token login): axe checks only what is shown."""
    assert accessibility_problems(page) == [], (name, width)
    assert sideways(page) <= 0, f"{name} at {width} px scrolls sideways by {sideways(page)} px"
    if name in SHOWN:
        if name == "edit":  # a draft is previewed as it opens: shown with its preview
            preview = page.frame_locator("#preview-frame").get_by_role("heading", level=1)
            preview.first.wait_for()
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    if page.evaluate(OPEN_DETAILS):
        assert accessibility_problems(page) == [], (name, width, "<details> open")
        assert sideways(page) <= 0, f"{name} at {width} px, <details> open, scrolls sideways"


def sideways(page: Page) -> int:
    """How far the page scrolls sideways, in CSS pixels."""
    width: int = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return width


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_every_workspace_page_passes_axe_at_phone_and_desktop_width(
    workspace: tuple[str, dict[str, str]], width: int
) -> None:
    base, paths = workspace
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with chromium(viewport=WIDTHS[width]) as browser:
        page = browser.new_page()
        visited = []

        def visit(name: str) -> None:
            response = page.goto(base + paths[name])
            assert response is not None and response.status == 200, (name, response)
            if name == "release":  # its email preview, loaded lazily, is in the page
                page.locator("iframe.preview").scroll_into_view_if_needed()
                preview = page.frame_locator("iframe.preview")
                preview.get_by_role("heading", level=1).wait_for()
                page.evaluate("() => window.scrollTo(0, 0)")
            check_page(page, name, width)
            visited.append(name)

        # Not logged in: the invitation's page, then the login form, filled in.
        visit("invitation")
        assert page.get_by_label("Password").is_visible()
        visit("login")
        fill_login(page, ADMIN, PASSWORD)
        page.get_by_role("button", name="Log in", exact=True).click()
        page.wait_for_url(base + paths["dashboard"])
        check_page(page, "dashboard", width)
        visited.append("dashboard")
        for name in ("release", "withdraw", "accounts"):
            visit(name)
        assert page.get_by_text("new.colleague@example.org", exact=True).is_visible()  # pending
        visit("accreditations")  # a request to decide, a grant to revoke
        asked = "Accredit reader00@example.com"
        assert page.get_by_role("button", name=asked).is_visible()
        revoke = "Revoke the accreditation of reader01@example.com"
        assert page.get_by_role("button", name=revoke).is_visible()
        visit("releases")  # a card a release on a phone, a table row on a desktop
        row = page.locator("tr[data-id]").first
        shown_as = row.evaluate("row => getComputedStyle(row).display")
        assert shown_as == ("table-row" if width > 600 else "block"), (width, shown_as)
        assert row.get_by_role("button", name="Duplicate").is_visible()
        visit("editor")  # the address book's contacts, each a labelled checkbox
        book = "Inès García — Head of press — ines.garcia@example.org"
        assert page.get_by_role("checkbox", name=book).is_checked()  # a default contact
        for name in ("edit", "correct", "publish", "draft", "twofactor"):
            visit(name)
        visit("contacts")  # the address book: a card an entry on a phone, as releases
        entry = page.locator("tr[data-id]").first
        shown_as = entry.evaluate("row => getComputedStyle(row).display")
        assert shown_as == ("table-row" if width > 600 else "block"), (width, shown_as)
        assert entry.get_by_role("button", name="Delete Inès García").is_visible()
        visit("contact")
        visit("settings")  # the office's identity, its logo shown, a textarea, checkboxes
        assert page.get_by_role("img", name="The current logo").is_visible()
        assert page.get_by_label("Postal address (a few lines)").input_value().endswith("Paris")
        assert sorted(visited) == sorted(paths)


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_the_workspace_in_french_passes_axe_without_sideways_scroll(
    workspace: tuple[str, dict[str, str]], width: int
) -> None:
    """A browser set to French gets the workspace in French (its longer words too must fit
    a phone): the login form, the dashboard, the list, the editor, a release and the other
    pages a press officer opens every day, each checked as in English."""
    base, paths = workspace
    with chromium(viewport=WIDTHS[width], locale="fr-FR") as browser:
        page = browser.new_page()

        def visit(name: str) -> None:
            response = page.goto(base + paths[name])
            assert response is not None and response.status == 200, (name, response)
            assert page.locator("html").get_attribute("lang") == "fr", name
            check_page(page, f"{name}-fr", width)

        visit("login")
        assert page.get_by_role("heading", level=1).inner_text() == "Se connecter"
        page.get_by_label("Adresse e-mail").fill(ADMIN)
        page.get_by_label("Mot de passe").fill(PASSWORD)
        page.get_by_role("button", name="Se connecter", exact=True).click()
        page.wait_for_url(base + paths["dashboard"])
        assert page.get_by_role("heading", level=1).inner_text() == "Tableau de bord"
        check_page(page, "dashboard-fr", width)
        visit("releases")
        row = page.locator("tr[data-id]").first
        assert row.get_by_role("button", name="Dupliquer").is_visible()
        visit("editor")
        assert page.get_by_role("button", name="Créer le brouillon").is_visible()
        for name in ("release", "publish", "withdraw", "edit", "accounts", "contacts",
                     "accreditations", "settings"):  # fmt: skip
            visit(name)
        # The switch: back to English, on the same page.
        page.get_by_role("link", name="English").click()
        page.wait_for_url(base + paths["settings"])
        assert page.locator("html").get_attribute("lang") == "en"
        heading = page.get_by_role("heading", level=1).inner_text()
        assert heading == "Settings: the office's identity"
