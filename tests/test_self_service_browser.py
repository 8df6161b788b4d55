"""Leaving and coming back, in a real browser (Debian's Chromium) against `distributor
serve`, in English and in French, at phone and desktop widths, each page checked with axe:
the page after one-click unsubscribe leads back, the preferences page says nothing is sent
and subscribes again with one button, "Save" says when nothing changed, a topic's link
ticks that topic, and a refused address is said in the page's language."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from distributor.audience.accreditation import Decision, decide
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.i18n import gettext_for
from distributor.core.models import SubscriberStatus
from distributor.core.urls import preferences_url, unsubscribe_url
from tests.browser import (
    accessibility_problems,
    checked_at_both_widths,
    chromium,
    visit,
)
from tests.corrections import html_part
from tests.helpers import (
    add_subscribers,
    add_topics,
    empty_queue_and_limits,
    free_port,
    outbox,
    subscriber_row,
)
from tests.subscription_requests import confirm_path, run_confirmations
from tests.web_server import running_server

pytestmark = pytest.mark.needs("chromium", "axe")
PEOPLE = {"en": "ann@example.com", "fr": "zoe@example.com"}


@pytest.fixture
def served(sqlite_settings: Settings, redis_url: str) -> Iterator[tuple[Settings, str]]:
    """The web app over SQLite, three topics, Ann (English) and Zoé (French)
    subscribed to climate."""
    port = free_port()
    settings = sqlite_settings.model_copy(
        update={
            "site_url": f"http://127.0.0.1:{port}",
            "broker_url": redis_url,
            "rate_limit_requests": 1000,  # other runs on this Redis share the IP 127.0.0.1
        }
    )
    empty_queue_and_limits(redis_url)  # no wake-up left by another test's requests
    add_topics(settings, "climate", "science", "space")
    add_subscribers(settings, [(email, "", lang, "climate") for lang, email in PEOPLE.items()])
    with running_server(settings, port) as base:
        yield settings, base


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_leave_and_come_back_in_a_real_browser(served: tuple[Settings, str], lang: str) -> None:
    settings, base = served
    _ = gettext_for(lang)
    sub = subscriber_row(settings, PEOPLE[lang])
    with chromium(locale="fr-FR" if lang == "fr" else "en-GB") as browser:
        page = browser.new_page()
        # Leave from the email's link, then follow the page's way back.
        visit(page, unsubscribe_url(settings, sub.id, sub.link_nonce))
        page.get_by_role("button", name=_("Unsubscribe")).click()
        page.get_by_role("heading", name=_("You are unsubscribed")).wait_for()
        assert page.title() == f"{_('You are unsubscribed')} — {_('Press Office')}"
        checked_at_both_widths(page, "unsubscribed")
        assert subscriber_row(settings, PEOPLE[lang]).status == SubscriberStatus.UNSUBSCRIBED
        page.get_by_role("link", name=_("Subscribe again")).click()
        page.get_by_role("heading", name=_("Your subscription")).wait_for()
        notice = page.locator("#not-subscribed")
        assert _("You are unsubscribed: we send you nothing.") in notice.inner_text()
        checked_at_both_widths(page, "preferences, unsubscribed")

        # One button, and they are back, with the topics the page showed.
        notice.get_by_role("button", name=_("Subscribe again")).click()
        page.get_by_role("status").wait_for()
        back = _(
            "You are subscribed again: you will receive our press releases on the topics below."
        )
        assert page.get_by_role("status").inner_text() == back
        assert page.locator("#not-subscribed").count() == 0
        assert subscriber_row(settings, PEOPLE[lang]).status == SubscriberStatus.CONFIRMED
        checked_at_both_widths(page, "preferences, subscribed again")

        # "Save" with nothing changed says so; a change is saved.
        page.get_by_role("button", name=_("Save"), exact=True).click()
        page.get_by_role("status").wait_for()
        assert page.get_by_role("status").inner_text() == _(
            "Nothing changed: these were already your preferences."
        )
        page.get_by_role("checkbox", name="Space" + (" (fr)" if lang == "fr" else "")).check()
        page.get_by_role("button", name=_("Save"), exact=True).click()
        page.get_by_role("status").wait_for()
        assert page.get_by_role("status").inner_text() == _("Your preferences are saved.")

        # The subscribe form from a topic's link, and a refused address in the page's words.
        visit(page, f"{base}/subscribe?topic=science&lang={lang}")
        assert page.get_by_role("checkbox", name="Science" + (" (fr)" if lang == "fr" else ""))
        assert page.locator("input[value=science]").is_checked()
        assert not page.locator("input[value=climate]").is_checked()
        page.get_by_label(_("Email address")).fill("someone@")
        page.evaluate("document.querySelector('form[action$=\"/subscribe\"]').noValidate = true")
        page.get_by_role("button", name=_("Subscribe"), exact=True).click()
        alert = page.get_by_role("alert")
        alert.wait_for()
        assert alert.inner_text() == _("Please check the form: %(error)s") % {
            "error": _("Enter a whole email address, like name@example.org.")
        }
        assert page.locator("input[value=science]").is_checked()  # nothing typed is lost
        checked_at_both_widths(page, "the form, refused")


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_the_confirmation_email_fits_a_phone_with_a_title_and_a_button(
    served: tuple[Settings, str], lang: str
) -> None:
    settings, base = served
    _ = gettext_for(lang)
    address = f"a.rather.long.name.{lang}@newsroom-of-a-long-domain.example.org"
    with chromium(viewport={"width": 390, "height": 844}) as browser:
        page = browser.new_page()
        visit(page, f"{base}/subscribe?topic=climate&lang={lang}")
        page.get_by_label(_("Email address")).fill(address)
        page.get_by_role("button", name=_("Subscribe"), exact=True).click()
        page.get_by_role("heading", name=_("Check your inbox")).wait_for()
        assert run_confirmations(settings) == ["sent"]
        [email] = outbox(settings, address)
        link = settings.site_url + confirm_path(settings, email)
        page.set_content(html_part(email))
        assert page.title() == f"{_('Confirm your subscription')} — {_('Press Office')}"
        sideways = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert sideways <= 0, f"the email scrolls sideways by {sideways} px at 390 px"
        button = page.get_by_role("link", name=_("Confirm my subscription"))
        assert button.get_attribute("href") == link
        box = button.bounding_box()
        assert box is not None and box["height"] >= 40  # a button to tap, not a line of text
        assert accessibility_problems(page) == []


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_ask_for_advance_copies_and_choose_the_lift_line_in_a_real_browser(
    served: tuple[Settings, str], lang: str
) -> None:
    settings, _base = served
    _ = gettext_for(lang)
    sub = subscriber_row(settings, PEOPLE[lang])
    with chromium(locale="fr-FR" if lang == "fr" else "en-GB") as browser:
        page = browser.new_page()
        visit(page, preferences_url(settings, sub.id, sub.link_nonce))
        section = page.locator("#advance-copies")
        assert section.get_by_role("heading", level=2).inner_text() == _("Embargoed advance copies")
        section.get_by_label(_("The outlet you write for")).fill("Le Monde diplomatique")
        section.get_by_label(_("Your role there")).fill("Rédactrice en chef adjointe")
        section.get_by_role("button", name=_("Ask for advance copies")).click()
        page.get_by_role("status").wait_for()
        assert page.get_by_role("status").inner_text() == _(
            "Your request for advance copies is sent: the press office will decide."
        )
        assert _("Your request is waiting for the press office's decision.") in section.inner_text()
        checked_at_both_widths(page, "preferences, advance copies asked for")

        with session_scope(settings) as session:
            decide(session, sub.id, Decision.GRANT, "cli:test")
        visit(page, preferences_url(settings, sub.id, sub.link_nonce))  # a GET, not the POST again
        accredited = _(
            "You are accredited: you receive our releases on your topics before their embargo "
            "lifts, clearly marked with it, so you can prepare your story. Please respect the "
            "embargo."
        )
        assert accredited in section.inner_text()
        section.get_by_label(_("Also send me one line when an embargo lifts")).check()
        section.get_by_role("button", name=_("Save")).click()
        page.get_by_role("status").wait_for()
        assert page.get_by_role("status").inner_text() == _("Your preferences are saved.")
        assert section.get_by_label(_("Also send me one line when an embargo lifts")).is_checked()
        checked_at_both_widths(page, "preferences, accredited")
