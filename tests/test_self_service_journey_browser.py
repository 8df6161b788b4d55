"""A new journalist's whole self-service journey, once in English and once in French, in a real
browser (Debian's Chromium, its locale en-GB or fr-FR) against the web app as `distributor
serve` serves it, with the real confirmation emails from the Maildir outbox (issue 15,
"Self-service that never strands anyone").

The newsroom at ``/`` speaks the browser's language and leads to the form; the form says
what the address is for, links to the privacy policy and offers "all topics"; "check your
inbox"; the confirmation email, opened at 390 px, fits, has a title and a button; the
button leads to the confirm page, then "confirmed" with links to the preferences and the
newsroom; the email's link used again says "already confirmed"; they leave from the
preferences page, and come back the same day from the form: no second confirmation that
day, the page says so and sends them to the first email's link, which brings them back in
one click; a topic page's link ticks that topic; a test email's "read online" opens the
draft's preview. Every page has a title of its own and is checked with axe at phone and
desktop widths.

What the other files prove in depth is only walked through here: the unsubscribe link of
an email, "Save" with nothing changed and refused addresses (test_self_service_browser),
the keyboard and a real worker over SMTP (test_journey_browser), the preview page's
headers and life (test_test_email_links)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, Response

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.i18n import gettext_for
from distributor.core.models import SubscriberStatus
from distributor.core.urls import listing_url
from distributor.mail.preview import send_test
from distributor.releases.lifecycle import mark_published
from distributor.site import builder
from tests.browser import (
    accessibility_problems,
    checked_at_both_widths,
    chromium,
    link_in,
    visit,
)
from tests.corrections import html_part, text_part
from tests.helpers import (
    add_topics,
    empty_queue_and_limits,
    free_port,
    make_release,
    outbox,
    subscriber_row,
)
from tests.subscription_requests import confirm_path, run_confirmations
from tests.web_server import running_server

pytestmark = pytest.mark.needs("chromium", "axe")
LOCALES = {"en": "en-GB", "fr": "fr-FR"}
PRIVACY = "https://example.org/privacy"
DESK = "desk@example.org"
ALL = ["climate", "science", "space"]
EMAIL_PHONE = {"width": 390, "height": 844}
PUBLISHED = {"en": "Agency maps the bay", "fr": "L'Agence cartographie la baie"}


@pytest.fixture
def newsroom(sqlite_settings: Settings, redis_url: str) -> Iterator[tuple[Settings, str]]:
    """The web app over SQLite with a privacy policy, three topics, one release
    published in each language and the newsroom built; yields (settings, base URL)."""
    port = free_port()
    settings = sqlite_settings.model_copy(
        update={
            "site_url": f"http://127.0.0.1:{port}",
            "broker_url": redis_url,
            "privacy_url": PRIVACY,
            "rate_limit_requests": 1000,  # other runs on this Redis share the IP 127.0.0.1
        }
    )
    empty_queue_and_limits(redis_url)  # no wake-up left by another test's requests
    add_topics(settings, *ALL)
    for lang, title in PUBLISHED.items():
        release = make_release(
            settings, lang=lang, title=title, slug=f"bay-{lang}", topics="science"
        )
        with session_scope(settings) as session:
            mark_published(session, release.id)
    builder.regenerate_site(settings)
    with running_server(settings, port) as base:
        yield settings, base


def typography_slips(text: str) -> list[str]:
    """The places in ``text`` (a French page as shown) where a ":" ";" "!" "?" has an
    ordinary space before it, where a line may break, or none at all: French wants a
    no-break one (U+00A0, or the narrow U+202F). Times (09:00) and addresses are not prose."""
    slips = re.findall(r".{0,20} [:;!?](?=\s|$)", text)
    slips += re.findall(r".{0,20}[^\s\u00a0\u202f\d:/][:;!?](?=\s|$)", text)
    return slips


def ticked(page: Page) -> list[str]:
    """The values of the topic boxes ticked on the page, in its order."""
    values: list[str] = page.locator("input[name=topics]:checked").evaluate_all(
        "boxes => boxes.map(b => b.value)"
    )
    return values


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_a_new_journalist_subscribes_confirms_leaves_and_comes_back(
    newsroom: tuple[Settings, str], lang: str
) -> None:
    settings, base = newsroom
    _ = gettext_for(lang)
    address = f"new.journalist.{lang}@example.com"
    broken: list[str] = []

    def on_response(response: Response) -> None:
        if response.status >= 400:
            broken.append(f"{response.status} {response.url}")

    with chromium(locale=LOCALES[lang]) as browser:
        page = browser.new_page()
        page.on("response", on_response)

        def arrived(heading: str, title: str | None = None) -> None:
            """The page with this <h1> is shown, titled for itself, in the journey's language,
            with nothing a screen reader or a phone would trip on."""
            page.get_by_role("heading", level=1, name=heading, exact=True).wait_for()
            assert page.title() == f"{title or heading} — {_('Press Office')}"
            assert page.evaluate("document.documentElement.lang") == lang
            if lang == "fr":
                assert typography_slips(page.inner_text("body")) == [], heading
            checked_at_both_widths(page, heading)

        # The newsroom speaks the browser's language and leads to the form.
        visit(page, base + "/")
        arrived(page.locator("h1").inner_text())
        assert page.get_by_role("heading", level=2, name=PUBLISHED[lang]).is_visible()
        page.get_by_role("banner").get_by_role("link", name=_("Subscribe by email")).click()
        arrived(_("Subscribe to our press releases"))
        policy = page.locator("#privacy-notice").get_by_role("link", name=_("Privacy policy"))
        assert policy.get_attribute("href") == PRIVACY
        page.get_by_label(_("Email address")).fill(address)
        page.get_by_label(_("All topics")).check()
        page.get_by_role("button", name=_("Subscribe"), exact=True).click()
        arrived(_("Check your inbox"))

        # The confirmation email at a phone's width: it fits, has a title and a button.
        assert run_confirmations(settings) == ["sent"]
        [email] = outbox(settings, address)
        confirm = settings.site_url + confirm_path(settings, email)
        page.set_viewport_size(EMAIL_PHONE)
        page.set_content(html_part(email))
        assert page.title() == f"{_('Confirm your subscription')} — {_('Press Office')}"
        assert (
            page.evaluate(
                "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            <= 0
        ), "the email scrolls sideways at 390 px"
        assert accessibility_problems(page) == []
        button = page.get_by_role("link", name=_("Confirm my subscription"))
        box = button.bounding_box()
        assert box is not None and box["height"] >= 40  # a button to tap, not a line of text
        button.click()
        arrived(_("Confirm your subscription"))
        shown = page.get_by_role("main").inner_text()
        assert address in shown and all(name in shown for name in ("Climate", "Science", "Space"))
        page.get_by_role("button", name=_("Confirm"), exact=True).click()
        arrived(_("Subscription confirmed"))
        assert subscriber_row(settings, address).status == SubscriberStatus.CONFIRMED
        newsroom_link = page.get_by_role("link", name=_("Read our press releases"))
        assert newsroom_link.get_attribute("href") == listing_url(settings, lang)
        page.get_by_role("link", name=_("Your topics and language")).click()
        arrived(_("Your subscription"))
        assert ticked(page) == ALL

        # The email's link used again says so, and leads on.
        visit(page, confirm)
        arrived(_("Your subscription was already confirmed"), _("Subscription confirmed"))
        page.get_by_role("link", name=_("Your topics and language")).click()

        # They leave from their preferences...
        page.get_by_role("button", name=_("Unsubscribe from everything")).click()
        arrived(_("You are unsubscribed"))
        assert subscriber_row(settings, address).status == SubscriberStatus.UNSUBSCRIBED

        # ...and come back the same day from the form: no second confirmation today, which
        # the page says, with the way back: the first email's link, which works.
        page.get_by_role("banner").get_by_role("link", name=_("Subscribe by email")).click()
        page.get_by_label(_("Email address")).fill(address)
        page.get_by_label(_("All topics")).check()
        page.get_by_role("button", name=_("Subscribe"), exact=True).click()
        arrived(_("Check your inbox"))
        said = page.get_by_role("main").inner_text()
        assert (
            _(
                "We send an address at most one confirmation email a day. If you asked earlier "
                "today, use the link in that email, or try again tomorrow."
            )
            in said
        )
        assert run_confirmations(settings) == ["skipped"]
        assert len(outbox(settings, address)) == 1
        visit(page, confirm)
        arrived(_("You are unsubscribed"))
        page.get_by_role("button", name=_("Subscribe again")).click()
        arrived(_("Your subscription"))
        assert page.get_by_role("status").inner_text() == _(
            "You are subscribed again: you will receive our press releases on the topics below."
        )
        assert subscriber_row(settings, address).status == SubscriberStatus.CONFIRMED
        assert ticked(page) == ALL

        # From the newsroom to a topic's page, whose link ticks that topic alone.
        visit(page, listing_url(settings, lang))
        science = "Science" + (" (fr)" if lang == "fr" else "")
        page.get_by_role("navigation", name=_("Topics")).get_by_role("link", name=science).click()
        arrived(page.locator("h1").inner_text())
        subscribe_here = _("Subscribe to %(topic)s by email") % {"topic": science}
        page.get_by_role("link", name=subscribe_here).click()
        arrived(_("Subscribe to our press releases"))
        assert ticked(page) == ["science"]

        # A test email's "read online" opens the draft's signed preview, not a 404.
        draft = make_release(settings, lang=lang, title=f"Draft {lang}", slug=f"draft-{lang}")
        send_test(settings, draft.id, [DESK])
        [test_email] = outbox(settings, DESK)
        visit(page, link_in(text_part(test_email), settings.site_url, "/preview/"))
        arrived(f"Draft {lang}")
        assert _("Preview: this release is not public yet.") in page.inner_text("body")

    assert broken == []
