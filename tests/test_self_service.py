"""A journalist who leaves and comes back is never stranded: the preferences page says
whether anything is sent and subscribes again in one POST, "Save" says when nothing
changed, the confirmation pages lead on (preferences, newsroom; "already confirmed" for a
link used twice), a topic's own link ticks that topic, "all topics" means every one, and a
refusal is said in a few words of the page's language. Each page has a title of its own."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Subscriber, SubscriberStatus, SubscriptionRequest
from distributor.core.tokens import Link, Purpose, read_link
from distributor.core.urls import listing_url, preferences_url, unsubscribe_url
from distributor.web import create_app
from tests.helpers import (
    add_subscribers,
    add_topics,
    csrf_of,
    empty_queue_and_limits,
    outbox,
    queued_confirmations,
    shown,
    subscribe,
)
from tests.subscription_requests import confirm_path, run_confirmations

ANN = "ann@example.com"


@pytest.fixture
def pages(sqlite_settings: Settings, redis_url: str) -> Iterator[tuple[Settings, TestClient]]:
    """The public pages over SQLite and the test Redis, three topics, Ann subscribed to
    climate in English."""
    settings = sqlite_settings.model_copy(
        update={"broker_url": redis_url, "rate_limit_requests": 1000}
    )
    empty_queue_and_limits(redis_url)
    add_topics(settings, "climate", "science", "space")
    add_subscribers(settings, [(ANN, "Ann", "en", "climate")])
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        yield settings, client


def ann(settings: Settings) -> Subscriber:
    """Ann's row as stored now (topics loaded)."""
    with session_scope(settings) as session:
        sub = session.scalars(select(Subscriber).where(Subscriber.email == ANN)).one()
        sub.topics  # noqa: B018 - loaded before the session closes
        session.expunge(sub)
        return sub


def on_site(settings: Settings, url: str) -> str:
    return url.removeprefix(settings.site_url)


def preferences_of(settings: Settings, url: str) -> Link:
    """Whose preferences page ``url`` opens. A link is compared by what it names, never by
    its spelling: its token is stamped with the second it was made."""
    prefix = f"{settings.site_url}/preferences/"
    assert url.startswith(prefix), url
    return read_link(settings, Purpose.PREFERENCES, url.removeprefix(prefix))


def title_of(page: str) -> str:
    found = re.search(r"<title>([^<]*)</title>", page)
    assert found, "no title"
    return html.unescape(found.group(1))


def test_an_unsubscribed_journalist_is_told_and_subscribes_again_in_one_post(
    pages: tuple[Settings, TestClient],
) -> None:
    settings, client = pages
    sub = ann(settings)
    leave = client.get(on_site(settings, unsubscribe_url(settings, sub.id, sub.link_nonce)))
    left = client.post(on_site(settings, unsubscribe_url(settings, sub.id, sub.link_nonce)))
    assert leave.status_code == left.status_code == 200
    assert ann(settings).status == SubscriberStatus.UNSUBSCRIBED
    # The page that says "unsubscribed" leads back: "Subscribe again", to the preferences.
    back = re.search(r'<a href="([^"]+)">Subscribe again</a>', left.text)
    assert back and preferences_of(settings, back.group(1)) == Link(sub.id, sub.link_nonce)

    page = client.get(on_site(settings, back.group(1)))
    said = shown(page.text)
    assert "You are unsubscribed: we send you nothing." in said
    assert 'value="climate" checked' in page.text  # what they would get again, shown
    assert "Unsubscribe from everything" not in said  # nothing to leave
    again = client.post(
        on_site(settings, back.group(1)) + "/subscribe",
        data={"csrf": csrf_of(page.text)},
        headers={"user-agent": "Journalist's browser"},
    )
    assert again.status_code == 200
    said = shown(again.text)
    assert "You are subscribed again" in said and "unsubscribed" not in said
    assert "Unsubscribe from everything" in said
    now = ann(settings)
    assert now.status == SubscriberStatus.CONFIRMED and now.unsubscribed_at is None
    assert [t.slug for t in now.topics] == ["climate"] and now.language == "en"
    # Their own link (it reached their mailbox) is the proof: no confirmation email, and
    # the consent record says where and how it was given.
    assert queued_confirmations(settings) == []
    assert (now.consent_source, now.consent_user_agent) == (
        "preferences page",
        "Journalist's browser",
    )
    assert now.consent_ip == "testclient" and now.consent_at is not None


def test_subscribe_again_needs_the_pages_csrf_token(pages: tuple[Settings, TestClient]) -> None:
    settings, client = pages
    sub = ann(settings)
    client.post(on_site(settings, unsubscribe_url(settings, sub.id, sub.link_nonce)))
    path = on_site(settings, preferences_url(settings, sub.id, sub.link_nonce))
    forged = client.post(path + "/subscribe", data={"csrf": "forged"})
    assert forged.status_code == 400 and "This form has expired" in forged.text
    assert ann(settings).status == SubscriberStatus.UNSUBSCRIBED
    not_ours = on_site(settings, preferences_url(settings, sub.id, "0" * 32)) + "/subscribe"
    assert client.post(not_ours, data={"csrf": "x"}).status_code == 400


def test_save_says_saved_only_when_something_changed(pages: tuple[Settings, TestClient]) -> None:
    settings, client = pages
    sub = ann(settings)
    path = on_site(settings, preferences_url(settings, sub.id, sub.link_nonce))
    page = client.get(path)
    same = client.post(
        path, data={"csrf": csrf_of(page.text), "language": "en", "topics": ["climate"]}
    )
    assert same.status_code == 200
    assert "Nothing changed: these were already your preferences." in shown(same.text)
    assert "saved" not in shown(same.text)
    changed = client.post(
        path, data={"csrf": csrf_of(same.text), "language": "en", "topics": ["climate", "space"]}
    )
    assert "Your preferences are saved." in shown(changed.text)
    assert sorted(t.slug for t in ann(settings).topics) == ["climate", "space"]
    french = client.post(
        path, data={"csrf": csrf_of(changed.text), "language": "fr", "topics": ["climate", "space"]}
    )
    assert "Vos préférences sont enregistrées." in shown(french.text)  # said in the new language


def test_a_bounced_address_is_told_why_and_is_not_subscribed_again_from_its_link(
    pages: tuple[Settings, TestClient],
) -> None:
    settings, client = pages
    sub = ann(settings)
    with session_scope(settings) as session:
        session.get_one(Subscriber, sub.id).status = SubscriberStatus.BOUNCED
    path = on_site(settings, preferences_url(settings, sub.id, sub.link_nonce))
    page = client.get(path)
    said = shown(page.text)
    assert "Our emails to this address could not be delivered" in said
    assert "/subscribe" not in page.text.split("<main", 1)[1]  # no button to come back
    refused = client.post(path + "/subscribe", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 422
    assert "we cannot subscribe it again from here" in shown(refused.text)
    assert ann(settings).status == SubscriberStatus.BOUNCED


def test_confirming_leads_on_and_a_link_used_again_says_already_confirmed(
    pages: tuple[Settings, TestClient],
) -> None:
    settings, client = pages
    subscribe(client, email="bob@example.com", name="Bob", language="fr", topics=["science"])
    assert run_confirmations(settings) == ["sent"]
    [email] = outbox(settings, "bob@example.com")
    path = confirm_path(settings, email)
    page = client.get(path)
    done = client.post(path, data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200 and "Abonnement confirmé" in shown(done.text)
    with session_scope(settings) as session:
        bob = session.scalars(select(Subscriber).where(Subscriber.email == "bob@example.com")).one()
        bobs = Link(bob.id, bob.link_nonce)

    def links_on(page: str) -> dict[str, str]:
        found = re.findall(r'<li><a href="([^"]+)">([^<]+)</a></li>', page)
        return {html.unescape(text): href for href, text in found}

    links = links_on(done.text)
    assert links.keys() == {"Vos thèmes et votre langue", "Lire nos communiqués de presse"}
    assert links["Lire nos communiqués de presse"] == listing_url(settings, "fr")
    own = links["Vos thèmes et votre langue"]
    assert preferences_of(settings, own) == bobs
    assert "bob@example.com" in client.get(on_site(settings, own)).text  # the link opens
    reused = client.get(path)  # the email's link, clicked again days later
    assert reused.status_code == 200
    assert "Votre abonnement était déjà confirmé" in shown(reused.text)
    assert preferences_of(settings, links_on(reused.text)["Vos thèmes et votre langue"]) == bobs
    assert 'action="' not in reused.text.split("<main", 1)[1]


def test_a_confirmation_link_used_again_after_leaving_never_says_confirmed(
    pages: tuple[Settings, TestClient],
) -> None:
    """Left, then back the same day: the form sends no second confirmation that day and
    says "use the link in that email"; that link must not say "already confirmed"."""
    settings, client = pages
    subscribe(client, email="eve@example.com", topics=["science"])
    assert run_confirmations(settings) == ["sent"]
    path = confirm_path(settings, outbox(settings, "eve@example.com")[0])
    client.post(path, data={"csrf": csrf_of(client.get(path).text)})
    with session_scope(settings) as session:
        eve = session.scalars(select(Subscriber).where(Subscriber.email == "eve@example.com")).one()
        eve.status = SubscriberStatus.UNSUBSCRIBED
        eves = Link(eve.id, eve.link_nonce)
    page = client.get(path)
    said = shown(page.text)
    assert title_of(page.text) == "You are unsubscribed — Press Office"
    assert "You confirmed your subscription with this link, then left" in said
    assert "already confirmed" not in said
    back = re.search(r'action="([^"]+)/subscribe"', page.text)
    assert back and preferences_of(settings, back.group(1)) == eves
    again = client.post(
        on_site(settings, back.group(1)) + "/subscribe", data={"csrf": csrf_of(page.text)}
    )
    assert "You are subscribed again" in shown(again.text)
    with session_scope(settings) as session:
        assert session.get_one(Subscriber, eves.id).status == SubscriberStatus.CONFIRMED
        session.get_one(Subscriber, eves.id).status = SubscriberStatus.BOUNCED
    bounced = client.get(path)  # no way back from here: the press office's mail bounced
    assert "could not be delivered" in shown(bounced.text)
    assert (
        "already confirmed" not in shown(bounced.text)
        and "/subscribe" not in bounced.text.split("<main", 1)[1]
    )


def test_a_topics_own_link_ticks_it_and_all_topics_means_every_one(
    pages: tuple[Settings, TestClient],
) -> None:
    settings, client = pages
    page = client.get("/subscribe?topic=science")
    assert 'value="science" checked' in page.text
    assert 'value="climate" checked' not in page.text and 'value="*" checked' not in page.text
    assert 'value="*"' in page.text and "All topics" in page.text
    answer = subscribe(client, email="cy@example.com", topics=["*"])
    assert answer.status_code == 200 and "Check your inbox" in answer.text
    with session_scope(settings) as session:
        asked = session.scalars(
            select(SubscriptionRequest).where(SubscriptionRequest.email == "cy@example.com")
        ).one()
        assert sorted(asked.topics) == ["climate", "science", "space"]


def test_a_refusal_is_said_in_a_few_words_of_the_pages_language(
    pages: tuple[Settings, TestClient],
) -> None:
    _, client = pages
    english = subscribe(client, email="not-an-email")
    assert english.status_code == 422
    assert "Please check the form: Enter a whole email address, like name@example.org." in (
        shown(english.text)
    )
    french = subscribe(client, email="not-an-email", language="fr")
    said = shown(french.text)
    assert "Veuillez vérifier le formulaire\u00a0: Saisissez une adresse e-mail complète" in said
    assert "@-sign" not in said and "not-an-email'" not in said
    assert 'value="not-an-email"' in french.text  # what was typed is kept


def test_the_form_says_what_the_address_is_used_for_with_the_policy(
    pages: tuple[Settings, TestClient],
) -> None:
    settings, _ = pages
    policy = settings.model_copy(update={"privacy_url": "https://example.org/privacy"})
    with TestClient(create_app(policy), base_url="https://testserver") as client:
        page = client.get("/subscribe")
    notice = re.search(r'<p class="small" id="privacy-notice">(.*?)</p>', page.text, re.S)
    assert notice and "only to send you the press releases you choose" in notice.group(1)
    assert '<a href="https://example.org/privacy">Privacy policy</a>' in notice.group(1)


def test_the_check_your_inbox_page_says_what_to_do_when_no_email_comes(
    pages: tuple[Settings, TestClient],
) -> None:
    _, client = pages
    said = shown(subscribe(client).text)  # Ann, already subscribed: the same page as anyone
    assert "at most one confirmation email a day" in said
    assert "“Manage your subscription”" in said and "“Subscribe again”" in said


def test_each_page_has_a_title_of_its_own(pages: tuple[Settings, TestClient]) -> None:
    settings, client = pages
    sub = ann(settings)
    preferences = client.get(on_site(settings, preferences_url(settings, sub.id, sub.link_nonce)))
    unsubscribe = on_site(settings, unsubscribe_url(settings, sub.id, sub.link_nonce))
    titles = {
        "form": title_of(client.get("/subscribe").text),
        "sent": title_of(subscribe(client, email="dee@example.com").text),
        "preferences": title_of(preferences.text),
        "unsubscribe": title_of(client.get(unsubscribe).text),
        "unsubscribed": title_of(client.post(unsubscribe).text),
        "bad link": title_of(client.get("/confirm/not-a-token").text),
    }
    assert titles == {
        "form": "Subscribe to our press releases — Press Office",
        "sent": "Check your inbox — Press Office",
        "preferences": "Your subscription — Press Office",
        "unsubscribe": "Unsubscribe — Press Office",
        "unsubscribed": "You are unsubscribed — Press Office",
        "bad link": "This link is not valid — Press Office",
    }
