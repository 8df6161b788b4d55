"""Journalists on the web: subscribe, confirm, preferences — and the rules that keep the
forms safe (same answer for every address state, one confirmation a day, rate limits,
honeypot, CSRF, GET changes nothing, signed links, no header injection)."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from distributor import dispatch
from distributor.config import Settings
from distributor.db import session_scope
from distributor.models import Subscriber, SubscriberStatus, utcnow
from distributor.queue import QUEUE
from distributor.subscribers import unsubscribe
from distributor.tokens import Purpose, make_token
from distributor.urls import preferences_url
from distributor.web import create_app
from tests.helpers import add_subscribers, add_topics
from tests.smtp_server import SMTPServer


@pytest.fixture
def web(sqlite_settings: Settings, redis_url: str) -> Iterator[tuple[Settings, TestClient]]:
    settings = sqlite_settings.model_copy(
        update={"broker_url": redis_url, "rate_limit_requests": 1000}
    )
    empty_queue_and_limits(redis_url)
    add_topics(settings, "climate", "science")
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        yield settings, client


def empty_queue_and_limits(url: str) -> None:
    """Forget queued tasks and rate-limit counts, but keep kombu's queue bindings (a client
    that declared the queue once does not declare it again)."""
    client = redis.Redis.from_url(url)
    client.delete(QUEUE)
    for key in client.scan_iter("distributor:ratelimit:*"):
        client.delete(key)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the form has a CSRF field"
    return match.group(1)


def subscribe(client: TestClient, **fields: object) -> object:
    page = client.get("/subscribe")
    data = {"email": "ann@example.com", "name": "Ann", "language": "en", "topics": ["climate"]}
    data.update(fields)  # type: ignore[arg-type]
    data.setdefault("csrf", csrf_of(page.text))
    return client.post("/subscribe", data=data)


def queued_confirmations(settings: Settings) -> list[int]:
    """The subscriber ids of the send_confirmation tasks waiting in Redis."""
    assert settings.broker_url
    ids = []
    for raw in redis.Redis.from_url(settings.broker_url).lrange(QUEUE, 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == "distributor.send_confirmation":
            args = json.loads(base64.b64decode(message["body"]))[0]
            ids.append(args[0])
    return ids


def subscriber(settings: Settings, email: str = "ann@example.com") -> Subscriber | None:
    with session_scope(settings) as session:
        return session.scalar(select(Subscriber).where(Subscriber.email == email))


def test_newsroom_links_to_the_form_which_lists_topics(web) -> None:  # type: ignore[no-untyped-def]
    _settings, client = web
    assert 'href="https://news.example.org/subscribe' in client.get("/").text
    page = client.get("/subscribe")
    assert page.status_code == 200
    for text in ('name="email"', 'value="climate"', 'value="science"', 'name="website"'):
        assert text in page.text
    assert "<label" in page.text and 'for="email"' in page.text


def test_the_page_speaks_the_browser_language(web) -> None:  # type: ignore[no-untyped-def]
    _settings, client = web
    page = client.get("/subscribe", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
    assert '<html lang="fr">' in page.text and "Adresse e-mail" in page.text
    assert "Abonnez-vous" in client.get("/subscribe?lang=fr").text


def test_every_address_state_gets_the_same_answer(web) -> None:  # type: ignore[no-untyped-def]
    settings, client = web
    add_subscribers(settings, [("confirmed@example.com", "C", "en", "climate")])
    add_subscribers(settings, [("gone@example.com", "G", "en", "climate")])
    with session_scope(settings) as session:
        gone = subscriber(settings, "gone@example.com")
        assert gone is not None
        unsubscribe(session, gone.id)
    subscribe(client, email="pending@example.com")
    answers = [
        subscribe(client, email=address)
        for address in (
            "new@example.com", "pending@example.com", "confirmed@example.com", "gone@example.com",
        )
    ]  # fmt: skip
    assert {a.status_code for a in answers} == {200}  # type: ignore[attr-defined]
    assert len({a.text for a in answers}) == 1  # type: ignore[attr-defined]


def test_a_hundred_submissions_send_one_confirmation(web) -> None:  # type: ignore[no-untyped-def]
    settings, client = web
    for _ in range(100):
        assert subscribe(client).status_code == 200  # type: ignore[attr-defined]
    sub = subscriber(settings)
    assert sub is not None and sub.status == SubscriberStatus.PENDING
    assert queued_confirmations(settings) == [sub.id]
    # A day later, asking again sends one more.
    with session_scope(settings) as session:
        session.execute(
            update(Subscriber).values(confirmation_sent_at=utcnow() - timedelta(hours=25))
        )
    subscribe(client)
    subscribe(client)
    assert queued_confirmations(settings) == [sub.id, sub.id]


def test_too_many_requests_from_one_ip_get_429_with_retry_after(
    sqlite_settings: Settings, redis_url: str
) -> None:
    settings = sqlite_settings.model_copy(
        update={"broker_url": redis_url, "rate_limit_requests": 3}
    )
    empty_queue_and_limits(redis_url)
    add_topics(settings, "climate")
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        codes = [subscribe(client, email=f"p{i}@example.com").status_code for i in range(5)]  # type: ignore[attr-defined]
        assert codes == [200, 200, 200, 429, 429]
        limited = subscribe(client, email="late@example.com")
        assert 0 < int(limited.headers["retry-after"]) <= 600  # type: ignore[attr-defined]
    with TestClient(
        create_app(settings), base_url="https://testserver"
    ) as second_process:  # the limit is shared in Redis
        assert subscribe(second_process, email="x@example.com").status_code == 429  # type: ignore[attr-defined]


def test_the_honeypot_drops_bots_with_the_same_answer(web) -> None:  # type: ignore[no-untyped-def]
    settings, client = web
    human = subscribe(client, email="human@example.com")
    bot = subscribe(client, email="bot@example.com", website="http://spam.example")
    assert bot.status_code == human.status_code == 200  # type: ignore[attr-defined]
    assert bot.text == human.text  # type: ignore[attr-defined]
    assert subscriber(settings, "bot@example.com") is None


def test_a_post_without_the_csrf_token_changes_nothing(web) -> None:  # type: ignore[no-untyped-def]
    settings, client = web
    answer = subscribe(client, csrf="forged")
    assert answer.status_code == 400  # type: ignore[attr-defined]
    assert subscriber(settings) is None


@pytest.mark.parametrize(
    "name", ["Ann\r\nBcc: victim@example.com", "Ann\nX-Injected: 1", "=?utf-8?b?QmNjOg==?="]
)
def test_header_injection_in_the_name_is_refused(web, name: str) -> None:  # type: ignore[no-untyped-def]
    settings, client = web
    answer = subscribe(client, name=name)
    assert answer.status_code == 400  # type: ignore[attr-defined]
    assert "line breaks" in answer.text or "encoded words" in answer.text  # type: ignore[attr-defined]
    assert subscriber(settings) is None


def test_the_confirmation_email_confirms_only_on_post(
    web,
    smtp_server: SMTPServer,  # type: ignore[no-untyped-def]
) -> None:
    settings, client = web
    subscribe(client, language="fr", topics=["climate", "science"])
    sub = subscriber(settings)
    assert sub is not None
    live = settings.model_copy(update={"smtp_url": smtp_server.url})
    assert dispatch.send_confirmation(live, sub.id) == "sent"
    [received] = smtp_server.handler.messages
    email = message_from_bytes(received.data, policy=policy.default)
    assert isinstance(email, EmailMessage)
    assert "Confirmez votre abonnement" in str(email["Subject"])
    text = email.get_body(("plain",))
    html = email.get_body(("html",))
    assert text is not None and html is not None
    link = re.search(r"https://news\.example\.org/confirm/\S+", text.get_content())
    assert link and link.group(0) in html.get_content()
    path = link.group(0).removeprefix(settings.site_url)

    page = client.get(path)  # what a mail scanner does
    assert page.status_code == 200 and "ann@example.com" in page.text
    assert subscriber(settings).status == SubscriberStatus.PENDING  # type: ignore[union-attr]
    done = client.post(path, data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200
    assert subscriber(settings).status == SubscriberStatus.CONFIRMED  # type: ignore[union-attr]


def test_an_expired_confirmation_link_says_so_and_offers_a_new_one(web) -> None:  # type: ignore[no-untyped-def]
    settings, client = web
    subscribe(client)
    sub = subscriber(settings)
    assert sub is not None
    eight_days_ago = int(time.time()) - 8 * 86400
    token = make_token(settings, Purpose.CONFIRM, sub.id, issued_at=eight_days_ago)
    page = client.get(f"/confirm/{token}")
    assert page.status_code == 200 and "expired" in page.text
    refused = client.post(f"/confirm/{token}", data={"csrf": csrf_of(page.text)})
    assert "expired" in refused.text
    assert subscriber(settings).status == SubscriberStatus.PENDING  # type: ignore[union-attr]
    with session_scope(settings) as session:  # yesterday's email is more than a day old
        session.execute(
            update(Subscriber).values(confirmation_sent_at=utcnow() - timedelta(days=8))
        )
    again = client.post(f"/confirm/{token}/resend", data={"csrf": csrf_of(refused.text)})
    assert again.status_code == 200
    assert queued_confirmations(settings) == [sub.id, sub.id]
    fresh = make_token(settings, Purpose.CONFIRM, sub.id, issued_at=int(time.time()) - 6 * 86400)
    assert "expired" not in client.get(f"/confirm/{fresh}").text


def test_a_flipped_character_in_a_link_is_refused(web) -> None:  # type: ignore[no-untyped-def]
    settings, client = web
    subscribe(client)
    sub = subscriber(settings)
    assert sub is not None
    good = make_token(settings, Purpose.CONFIRM, sub.id)
    bad = good[:-1] + ("A" if good[-1] != "A" else "B")
    assert client.get(f"/confirm/{bad}").status_code == 400
    page = client.get(f"/confirm/{good}")
    assert client.post(f"/confirm/{bad}", data={"csrf": csrf_of(page.text)}).status_code == 400
    assert subscriber(settings).status == SubscriberStatus.PENDING  # type: ignore[union-attr]


def test_preferences_change_topics_and_language(web) -> None:  # type: ignore[no-untyped-def]
    settings, client = web
    add_subscribers(settings, [("ann@example.com", "Ann", "en", "climate")])
    sub = subscriber(settings)
    assert sub is not None
    path = preferences_url(settings, sub.id).removeprefix(settings.site_url)
    page = client.get(path)
    assert page.status_code == 200 and 'value="science"' in page.text
    saved = client.post(
        path, data={"csrf": csrf_of(page.text), "language": "fr", "topics": ["science"]}
    )
    assert saved.status_code == 200 and "Vos préférences sont enregistrées" in saved.text
    with session_scope(settings) as session:
        sub = session.get(Subscriber, sub.id)
        assert sub is not None
        assert sub.language == "fr" and [t.slug for t in sub.topics] == ["science"]
    refused = client.post(path, data={"csrf": "forged", "language": "en", "topics": ["climate"]})
    assert refused.status_code == 400
    with session_scope(settings) as session:
        count = session.scalar(select(func.count()).select_from(Subscriber))
    assert count == 1
