"""The press office's whole journey in a real browser (issue 14, "Tests that must show it"):
Debian's headless Chromium driven by Playwright, against `distributor serve`, one real
worker on the test Redis and a real SMTP server (aiosmtpd), with
DISTRIBUTOR_REQUIRE_APPROVAL=true.

1. An admin invites a writer and a publisher; each opens the link of their email and
   chooses a password.
2. The writer writes a release from a seed-like text (accents, "+33 (0)1 …" phones, three
   press contacts) with an image and a PDF chosen in the form's file field, previews it at
   a phone's width, sends a test to herself, adds the French version and asks for the
   approval of both.
3. The publisher, on a phone, approves both and schedules them two minutes ahead.
4. Nothing goes out and no page exists before the time. The clock is injected, not waited
   for: the sweep (what beat runs every DISTRIBUTOR_SWEEP_SECONDS) is run in this process
   with ``now`` = the scheduled time + 1 s, and the worker sends what it enqueues. Each
   subscriber of the topic then gets one email, in their language, with the image and the
   PDF's link; a subscriber of another topic gets none; the pages and feeds appear.
5. The publisher corrects the English version with a note and a notice, then withdraws it
   with a reason and a notice: the notices carry them, the page answers 410 with the
   reason and the feed no longer lists it.

Asserted at the SMTP server and on the real pages. axe-core checks the pages the journey
visits that tests/test_workspace_pages_browser.py does not (the form refused with its
files, the translation's form, a release after a test send, asked for approval, scheduled
on a phone, the public page with its image, document and contacts)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    FilePayload,
    Page,
    ViewportSize,
    expect,
)
from sqlalchemy import select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Release
from distributor.core.queue import TaskQueue
from distributor.office.accounts import create_user
from distributor.outbox.sweep import sweep
from tests.browser import (
    accessibility_problems,
    chromium_people,
    fill_login,
    link_in,
    loaded_width,
)
from tests.corrections import html_part, text_part
from tests.helpers import add_subscribers, add_topics, free_port
from tests.processes import running_worker, wait_until
from tests.smtp_server import Received, SMTPServer
from tests.web_server import running_server

pytestmark = pytest.mark.needs("chromium", "axe")
PASSWORD = "correct horse battery staple"
ADMIN = "ines.garcia@example.org"
WRITER = "lea.dubois@example.org"
PUBLISHER = "marc.lefevre@example.org"
ENGLISH = ["ann@example.com", "bob@example.com"]  # climate, English
FRENCH = ["chloe@example.fr", "didier@example.fr"]  # climate, French
OTHER = "oscar@example.com"  # energy only: gets nothing
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}

TITLE = "Agency signs cooperation agreement on climate monitoring"
TITRE = "L'Agence signe un accord de coopération sur la surveillance du climat"
LEAD = (
    "The Agency today signed a five-year cooperation agreement with three national "
    "weather services to pool satellite and ground observations of greenhouse gases."
)
CHAPEAU = (
    "L'Agence a signé aujourd'hui un accord de coopération de cinq ans avec trois "
    "services météorologiques nationaux pour mettre en commun leurs observations."
)
BODY = """\
> "Climate decisions are only as good as the measurements behind them," said the Director-General.

## What the agreement covers

- **Shared observations** from six satellites and 2,400 ground stations.
- **Training** for 120 early-career scientists.

The Agency's annual budget is €1.2 billion."""
CORPS = """\
> « Les décisions climatiques ne valent que par leurs mesures », a déclaré le directeur général.

## Ce que couvre l'accord

- **Observations partagées** de six satellites et 2 400 stations au sol.
- **Formation** de 120 jeunes scientifiques.

Le budget annuel de l'Agence est de 1,2 milliard d'euros."""
# Three press contacts, phones as French offices write them (the trunk "(0)" is not dialled).
CONTACTS = """\
Léa Dubois; Press officer; +33 (0)1 23 45 67 89; lea.dubois@example.org
Marc Lefèvre; Head of media relations; +33 (0)1 23 45 67 90; media@example.org
Zoë Åkesson; Spokesperson (Brussels); +32 (0)2 555 01 23; zoe.akesson@example.org"""
CONTACTS_FR = (
    CONTACTS.replace("Press officer", "Attachée de presse")
    .replace("Head of media relations", "Responsable des relations médias")
    .replace("Spokesperson (Brussels)", "Porte-parole (Bruxelles)")
)
ALT = "Two delegates sign the agreement at a long table"
CREDIT = "Photo: Léa Dubois / Agency"
DOCUMENT = "Technical backgrounder (PDF)"
# A whole, if minimal, PDF: one empty page.
PDF = (
    b"%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
    b"2 0 obj <</Type /Pages /Kids [3 0 R] /Count 1>> endobj\n"
    b"3 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]>> endobj\n"
    b"trailer <</Root 1 0 R>>\n%%EOF\n"
)
NOTE = "Budget figure corrected: €1.3 billion, not €1.2 billion"
REASON = "Signature postponed; a new release follows."


@dataclass
class Office:
    """What the journey runs against: the settings, the server's base URL, and the
    problems the browser reported (scripts or styles the CSP refused, errors)."""

    settings: Settings
    base: str
    console: list[str]


@pytest.fixture
def office(
    sqlite_settings: Settings, redis_url: str, smtp_server: SMTPServer, tmp_path: Path
) -> Iterator[Office]:
    """`distributor serve` and one `distributor worker` (no beat: the test runs the sweep)
    for a press office requiring approval: topics climate and energy, five confirmed
    subscribers, and its first admin."""
    port = free_port()
    settings = sqlite_settings.model_copy(
        update={
            "broker_url": redis_url,
            "smtp_url": smtp_server.url,
            "site_url": f"http://127.0.0.1:{port}",
            "require_approval": True,
            "timezone": "Europe/Paris",
        }
    )
    add_topics(settings, "climate", "energy")
    add_subscribers(
        settings,
        [(e, e.split("@")[0].title(), "en", "climate") for e in ENGLISH]
        + [(e, e.split("@")[0].title(), "fr", "climate") for e in FRENCH]
        + [(OTHER, "Oscar", "en", "energy")],
    )
    with session_scope(settings) as session:
        create_user(session, ADMIN, "admin", PASSWORD, name="Inès García")
    with running_worker(settings, tmp_path / "logs"), running_server(settings, port):
        yield Office(settings, settings.site_url, [])


# --- the mailbox and the public site -------------------------------------------------------


def inbox(smtp: SMTPServer, rcpt: str) -> list[EmailMessage]:
    """The messages ``rcpt`` received so far, oldest first."""
    received: list[Received] = smtp.handler.by_rcpt().get(rcpt, [])
    return [m.parsed() for m in received]


def nth_message(smtp: SMTPServer, rcpt: str, n: int, what: str) -> EmailMessage:
    """The ``n``-th message (1 = the first) ``rcpt`` received, once it has arrived."""
    wait_until(lambda: len(inbox(smtp, rcpt)) >= n, 30, f"{what} at {rcpt}")
    return inbox(smtp, rcpt)[n - 1]


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.found.append(dict(attrs))


def images_in(html: str) -> list[dict[str, str | None]]:
    """The attributes of each <img> of ``html`` (its masthead's logo aside: none here)."""
    parser = _Images()
    parser.feed(html)
    return parser.found


def status(url: str) -> int:
    """The HTTP status ``url`` answers now."""
    return httpx.get(url, timeout=10).status_code


def wait_status(url: str, expected: int, what: str) -> None:
    """Wait until ``url`` answers ``expected`` (the server picks rebuilt files up by
    inotify, moments after the worker wrote them)."""
    wait_until(lambda: status(url) == expected, 30, f"{what} ({url} answering {expected})")


def feed_items(base: str, lang: str) -> list[dict[str, Any]]:
    """The items of the language's JSON feed."""
    feed = httpx.get(f"{base}/feeds/{lang}/releases.json", timeout=10)
    assert feed.status_code == 200, feed.status_code
    items: list[dict[str, Any]] = feed.json()["items"]
    return items


def feed_titles(base: str, lang: str) -> list[str]:
    """The item titles of the language's JSON feed."""
    return [item["title"] for item in feed_items(base, lang)]


# --- the browser ---------------------------------------------------------------------------


def tab(browser: BrowserContext, found: list[str], viewport: ViewportSize) -> Page:
    """A page of ``browser`` at ``viewport`` whose console errors (a script or a style the
    Content-Security-Policy refused) are added to ``found``."""
    page = browser.new_page()
    page.set_viewport_size(viewport)

    def on_console(message: ConsoleMessage) -> None:
        where = message.location.get("url", "")
        if message.type == "error" and "Content-Security-Policy" in message.text:
            found.append(f"{message.text} ({where})")

    page.on("console", on_console)
    return page


def accept_invitation(page: Page, link: str, role: str) -> None:
    """Open an invitation's link, choose a password: the account is made and logged in."""
    page.goto(link)
    assert f"You are invited as a {role}" in page.locator("main").inner_text()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Make my account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Dashboard")


def no_access_problem(page: Page, where: str) -> None:
    assert accessibility_problems(page) == [], where


def release_id_of(page: Page) -> int:
    """The id of the release whose workspace page (or form) ``page`` shows."""
    found = re.search(r"/admin/releases/(\d+)", page.url)
    assert found, page.url
    return int(found.group(1))


def test_invite_write_approve_schedule_send_correct_and_withdraw(
    office: Office, smtp_server: SMTPServer
) -> None:
    settings, base = office.settings, office.base
    with chromium_people(4, viewport=DESKTOP) as (admins, writers, publishers, readers):
        admin = tab(admins, office.console, DESKTOP)
        writer = tab(writers, office.console, DESKTOP)
        publisher = tab(publishers, office.console, PHONE)  # approves on a phone
        reader = tab(readers, office.console, PHONE)  # a journalist, on a phone

        # 1. The admin invites a writer and a publisher; each makes an account from the email.
        admin.goto(base + "/admin/login")
        fill_login(admin, ADMIN, PASSWORD)
        admin.get_by_role("button", name="Log in", exact=True).click()
        admin.wait_for_url(base + "/admin")
        admin.goto(base + "/admin/accounts")
        for email, name, role in ((WRITER, "Léa Dubois", "writer"),
                                  (PUBLISHER, "Marc Lefèvre", "publisher")):  # fmt: skip
            admin.get_by_label("Email address").fill(email)
            admin.get_by_label("Name (optional)").fill(name)
            admin.get_by_label("Role", exact=True).select_option(role)
            admin.get_by_role("button", name="Send the invitation").click()
            expect(admin.get_by_role("status")).to_have_text("Invitation sent.")
        for page, email, role in ((writer, WRITER, "writer"), (publisher, PUBLISHER, "publisher")):
            invitation = nth_message(smtp_server, email, 1, "the invitation")
            link = link_in(text_part(invitation), base, "/admin/invitation/")
            accept_invitation(page, link, role)
        admin.reload()
        assert "Invitations not yet accepted" not in admin.locator("main").inner_text()

        # 2. The writer writes the release, with an image and a PDF from the file field.
        writer.get_by_role("link", name="New release").first.click()
        writer.wait_for_url(base + "/admin/releases/new")
        photo = io.BytesIO()
        Image.new("RGB", (1200, 800), (20, 90, 160)).save(photo, "PNG")
        files: list[FilePayload] = [
            {"name": "signing.png", "mimeType": "image/png", "buffer": photo.getvalue()},
            {"name": "backgrounder.pdf", "mimeType": "application/pdf", "buffer": PDF},
        ]
        writer.get_by_label("Add images or documents").set_input_files(files)
        writer.get_by_label("Title", exact=True).fill(TITLE)
        writer.get_by_label("Dateline").fill("PARIS")
        writer.get_by_label("Lead: the first paragraph").fill(LEAD)
        writer.get_by_label("Body").fill(BODY)
        writer.get_by_role("checkbox", name="Climate").check()
        writer.get_by_label("Other press contacts").fill(CONTACTS)
        # The live preview at a phone's width: the page, then the email.
        frame = writer.frame_locator("#preview-frame")
        expect(frame.get_by_role("heading", level=1)).to_have_text(TITLE)
        expect(writer.locator("#reach-total")).to_contain_text("2 people would get an email")
        # By keyboard: in this headless Chromium the first click on the page after typing
        # in a text box did not reach it (see notes/workspace-journey.md).
        writer.get_by_label("Phone (390 px)").focus()
        writer.keyboard.press("Space")
        expect(writer.locator("#preview-frame")).to_have_js_property("offsetWidth", 390)
        expect(frame.locator("body")).to_contain_text("+33 (0)1 23 45 67 90")
        writer.get_by_label("Email", exact=True).focus()
        writer.keyboard.press("Space")
        expect(frame.locator("body")).to_contain_text("Unsubscribe")  # the email's footer
        expect(frame.locator("body")).to_contain_text("Zoë Åkesson")
        # Saved without the image's alt text and credit: refused, the files kept on the form.
        writer.get_by_role("button", name=re.compile("^(Create|Save) the draft$")).click()
        expect(writer.locator("#editor-error")).to_contain_text("alt")
        expect(writer.get_by_role("status").first).to_contain_text(
            "Uploaded: signing.png, backgrounder.pdf"
        )
        assert writer.get_by_label("Body").input_value() == BODY  # nothing typed is lost
        no_access_problem(writer, "the form refused, with its files")
        writer.get_by_label("Alt text (required)").fill(ALT)
        writer.get_by_label("Credit (required)").fill(CREDIT)
        writer.get_by_label("Title of the link").fill(DOCUMENT)
        writer.get_by_role("button", name=re.compile("^(Create|Save) the draft$")).click()
        writer.wait_for_url(re.compile(r"/admin/releases/\d+\?done=(created|saved)$"))
        english = release_id_of(writer)
        expect(writer.get_by_role("heading", level=1)).to_have_text(TITLE)

        # A test to herself: to her only, marked [TEST].
        writer.get_by_label("Addresses").fill(WRITER)
        writer.get_by_role("button", name="Send test").click()
        expect(writer.get_by_role("status").first).to_contain_text(WRITER)
        no_access_problem(writer, "a release after a test send")
        test = nth_message(smtp_server, WRITER, 2, "the test email")
        assert str(test["Subject"]) == f"[TEST] {TITLE}"
        tests = [m.rcpt for m in smtp_server.handler.messages if "[TEST]" in m.parsed()["Subject"]]
        assert tests == [WRITER]
        assert not any(inbox(smtp_server, r) for r in [*ENGLISH, *FRENCH, OTHER])

        # The French version: its form, prefilled with the English text, to translate.
        writer.get_by_role("button", name="Add French version").click()
        writer.wait_for_url(re.compile(r"/admin/releases/\d+/edit\?done=translated$"))
        french = release_id_of(writer)
        assert writer.get_by_label("Title", exact=True).input_value() == TITLE
        no_access_problem(writer, "the French version's form")
        writer.get_by_label("Title", exact=True).fill(TITRE)
        writer.get_by_label("Lead: the first paragraph").fill(CHAPEAU)
        writer.get_by_label("Body").fill(CORPS)
        writer.get_by_label("Other press contacts").fill(CONTACTS_FR)
        writer.get_by_label("Alt text (required)").fill("Deux délégués signent l'accord")
        writer.get_by_label("Credit (required)").fill("Photo : Léa Dubois / Agence")
        writer.get_by_label("Title of the link").fill("Note technique (PDF)")
        writer.get_by_role("button", name="Save the draft").click()
        writer.wait_for_url(f"{base}/admin/releases/{french}?done=saved")
        for release_id in (french, english):
            writer.goto(f"{base}/admin/releases/{release_id}")
            writer.get_by_role("button", name="Ask for approval").click()
            expect(writer.locator("#approval")).to_contain_text(
                f"Approval asked for by user:{WRITER}"
            )
        assert writer.get_by_role("button", name="Approve").count() == 0  # not hers to give
        no_access_problem(writer, "a release asked for approval")

        # 3. The publisher, on a phone, approves both, then schedules them together two
        # minutes ahead from the English one (its French version's box is ticked).
        zone = settings.zone
        when = datetime.now(UTC).astimezone(zone).replace(second=0, microsecond=0)
        when += timedelta(minutes=2)
        for release_id in (french, english):
            publisher.goto(f"{base}/admin/releases/{release_id}")
            publisher.get_by_role("button", name="Approve").click()
            expect(publisher.locator("#approval")).to_contain_text(f"Approved by user:{PUBLISHER}")
        publisher.get_by_label("Publish at").fill(f"{when:%Y-%m-%dT%H:%M}")
        assert publisher.get_by_role("checkbox", name=re.compile("French version")).is_checked()
        publisher.get_by_role("button", name="Schedule").click()
        publisher.wait_for_url(f"{base}/admin/releases/{english}?done=scheduled")
        expect(publisher.locator("[data-field=state]")).to_have_text("scheduled")
        no_access_problem(publisher, "a scheduled release at 390 px")
        with session_scope(settings) as session:
            found = session.scalars(select(Release).where(Release.id.in_([english, french])))
            releases = {r.id: r for r in found}
            slug, slug_fr = releases[english].slug, releases[french].slug
            assert {r.scheduled_at for r in releases.values()} == {when.astimezone(UTC)}

        # 4. Before the time: the sweep publishes nothing, no page, no feed item, no email.
        page_en, page_fr = f"{base}/releases/{slug}", f"{base}/releases/{slug_fr}"
        queue = TaskQueue(settings)
        try:
            early = sweep(settings, queue, now=when.astimezone(UTC) - timedelta(seconds=1))
            assert early.published == []
            wait_status(f"{base}/feeds/en/releases.json", 200, "the site built by the worker")
            assert TITLE not in feed_titles(base, "en")
            assert TITRE not in feed_titles(base, "fr")
            assert (status(page_en), status(page_fr)) == (404, 404)
            assert not any(inbox(smtp_server, r) for r in [*ENGLISH, *FRENCH, OTHER])
            # The time comes (the clock injected): both versions go out together.
            due = sweep(settings, queue, now=when.astimezone(UTC) + timedelta(seconds=1))
            assert sorted(due.published) == sorted([english, french])
        finally:
            queue.close()
        for rcpt, title in [*((r, TITLE) for r in ENGLISH), *((r, TITRE) for r in FRENCH)]:
            message = nth_message(smtp_server, rcpt, 1, "the release")
            assert str(message["Subject"]) == title, rcpt
            alt = ALT if title == TITLE else "Deux délégués signent l'accord"
            [image] = images_in(html_part(message))
            assert image.get("alt") == alt, rcpt
            picture = httpx.get(image.get("src") or "", timeout=10)
            assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
            [document] = re.findall(re.escape(base) + r"/media/\S+\.pdf", text_part(message))
            assert httpx.get(document, timeout=10).content == PDF
        wait_status(page_en, 200, "the English page")
        wait_status(page_fr, 200, "the French page")
        wait_until(lambda: TITLE in feed_titles(base, "en"), 30, "the English feed item")
        assert TITRE in feed_titles(base, "fr")
        for path in ("releases.rss", "releases.atom"):
            assert TITLE in httpx.get(f"{base}/feeds/en/{path}", timeout=10).text
        assert {r: len(inbox(smtp_server, r)) for r in [*ENGLISH, *FRENCH, OTHER]} == {
            **{r: 1 for r in [*ENGLISH, *FRENCH]},
            OTHER: 0,
        }
        # What a journalist reads, on a phone: the image with its credit, the PDF, whom to call.
        reader.goto(page_en)
        shown = reader.locator("main").inner_text()
        assert CREDIT in shown and DOCUMENT in shown and "Zoë Åkesson" in shown
        call = reader.get_by_role("link", name="+33 (0)1 23 45 67 89")
        assert call.get_attribute("href") == "tel:+33123456789"
        assert loaded_width(reader.get_by_role("img", name=ALT)) > 0
        no_access_problem(reader, "the public release page at 390 px")
        reader.goto(page_fr)
        assert "Porte-parole (Bruxelles)" in reader.locator("main").inner_text()
        no_access_problem(reader, "the French public page at 390 px")

        # 5. The publisher corrects the English version, with a note and a notice...
        publisher.goto(f"{base}/admin/releases/{english}")
        publisher.get_by_role("link", name="Correct…").click()
        body = publisher.get_by_label("Body")
        body.fill(body.input_value().replace("€1.2 billion", "€1.3 billion"))
        publisher.get_by_label("What changed (required, one line)").fill(NOTE)
        publisher.get_by_label("Also email a short correction notice").check()
        publisher.get_by_role("button", name="Correct the release").click()
        publisher.wait_for_url(f"{base}/admin/releases/{english}?done=corrected-notified")
        for rcpt in ENGLISH:
            notice = nth_message(smtp_server, rcpt, 2, "the correction notice")
            assert NOTE in text_part(notice), rcpt
        wait_until(lambda: NOTE in httpx.get(page_en).text, 30, "the note on the page")
        assert "€1.3 billion" in httpx.get(page_en).text
        [item] = [i for i in feed_items(base, "en") if i["title"] == TITLE]
        assert NOTE in item["content_html"]

        # ... then withdraws it, with a reason and a notice.
        publisher.get_by_role("link", name="Withdraw…").click()
        publisher.get_by_label("Reason (optional").fill(REASON)
        publisher.get_by_label("Tell those who received it").check()
        publisher.get_by_role("button", name=f"Yes, withdraw release {english}").click()
        publisher.wait_for_url(f"{base}/admin/releases/{english}?done=withdrawn-notified")
        expect(publisher.get_by_role("status").first).to_contain_text("2 withdrawal notices")
        no_access_problem(publisher, "a withdrawn release at 390 px")
        for rcpt in ENGLISH:
            notice = nth_message(smtp_server, rcpt, 3, "the withdrawal notice")
            assert f"Reason: {REASON}" in text_part(notice), rcpt
        wait_status(page_en, 410, "the withdrawn page")
        # Another journalist: the first one's browser may show its copy for the page's
        # max-age (300 s), as any browser or cache in between may.
        assert readers.browser is not None
        late = tab(readers.browser.new_context(locale="en-GB"), office.console, PHONE)
        gone = late.goto(page_en)
        assert gone is not None and gone.status == 410
        assert REASON in late.locator("main").inner_text()
        wait_until(lambda: TITLE not in feed_titles(base, "en"), 30, "the feed without it")

    assert office.console == []
    # Nobody got anything twice, and the reader of another topic nothing at all.
    counts = {r: len(inbox(smtp_server, r)) for r in [*ENGLISH, *FRENCH, OTHER]}
    assert counts == {**{r: 3 for r in ENGLISH}, **{r: 1 for r in FRENCH}, OTHER: 0}
