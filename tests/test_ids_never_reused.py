"""An erased person's id is never given to someone else (finding 2), and their old links and
late bounces cannot reach whoever comes next.

SQLite without AUTOINCREMENT gives a new row the largest id + 1, so erasing the newest
subscriber handed their id — and with it their confirm, preferences and unsubscribe links,
and their deliveries' VERP bounce addresses — to the next person to sign up. Each test does
what a person or a mail server would: erase someone, let someone else arrive, then use
what the erased person left behind."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.audience.privacy import erase_person
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Subscriber, SubscriberStatus
from distributor.core.queue import QUEUE
from distributor.outbox import sending
from distributor.web import create_app
from tests.bounce_mail import postfix_dsn, publish_numbered, run_ingest
from tests.helpers import add_subscribers, add_topics, decode_task, outbox, subscribe
from tests.smtp_server import SMTPServer

ANN = ("ann@example.com", "Ann", "en", "climate")
BOB = ("bob@example.com", "Bob", "en", "climate")
CY = ("cy@example.com", "Cy", "en", "climate")


def sub_of(settings: Settings, email: str) -> Subscriber | None:
    with session_scope(settings) as session:
        return session.scalar(select(Subscriber).where(Subscriber.email == email))


def erase(settings: Settings, email: str) -> None:
    with session_scope(settings) as session:
        erase_person(session, settings, email)


def link(msg: EmailMessage, settings: Settings, kind: str) -> str:
    """The site path of the ``kind`` link (/confirm/, /preferences/…) in the text part."""
    part = msg.get_body(("plain",))
    assert part is not None
    found = re.search(re.escape(settings.site_url + kind) + r"\S+", part.get_content())
    assert found, f"no {kind} link"
    return found.group(0).removeprefix(settings.site_url)


def test_an_erased_subscribers_id_goes_to_nobody_else(settings: Settings) -> None:
    add_topics(settings, "climate")
    add_subscribers(settings, [ANN, BOB])
    bob = sub_of(settings, BOB[0])
    assert bob is not None
    erase(settings, BOB[0])  # the newest row: its id was the largest
    add_subscribers(settings, [CY])
    cy = sub_of(settings, CY[0])
    assert cy is not None and cy.id > bob.id


def test_an_erased_persons_links_do_not_reach_the_next_subscriber(settings: Settings) -> None:
    add_topics(settings, "climate")
    add_subscribers(settings, [ANN, BOB])
    publish_numbered(settings, 1)  # into the Maildir outbox
    [bob_mail] = outbox(settings, BOB[0])
    preferences, unsubscribe = (
        link(bob_mail, settings, "/preferences/"),
        link(bob_mail, settings, "/unsubscribe/"),
    )
    erase(settings, BOB[0])
    add_subscribers(settings, [CY])
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        page = client.get(preferences)
        assert page.status_code == 400 and CY[0] not in page.text  # not Cy's preferences
        assert CY[0] not in client.get(unsubscribe).text
        one_click = client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
        assert one_click.status_code == 200  # RFC 8058: the erased person is gone already
    cy = sub_of(settings, CY[0])
    assert cy is not None and cy.status == SubscriberStatus.CONFIRMED  # Cy still subscribed


def test_a_late_bounce_for_an_erased_person_does_not_bounce_the_next(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    live = settings.model_copy(update={"smtp_url": smtp_server.url})
    add_topics(live, "climate")
    add_subscribers(live, [ANN, BOB])
    publish_numbered(live, 1)
    [bob_envelope] = [m.mail_from for m in smtp_server.handler.messages if m.rcpt == BOB[0]]
    erase(live, BOB[0])  # bob's deliveries go with him; his was the newest row
    add_subscribers(live, [CY])
    publish_numbered(live, 2)  # Cy's delivery is planned now
    report = run_ingest(live, postfix_dsn(bob_envelope, BOB[0], "5.1.1"))  # bob's, late
    assert report.bounced == 0
    cy = sub_of(live, CY[0])
    assert cy is not None and cy.status == SubscriberStatus.CONFIRMED


@pytest.fixture
def web(sqlite_settings: Settings, redis_url: str) -> Iterator[tuple[Settings, TestClient]]:
    settings = sqlite_settings.model_copy(
        update={"broker_url": redis_url, "rate_limit_requests": 1000}
    )
    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE)
    for key in client.scan_iter("distributor:ratelimit:*"):
        client.delete(key)
    add_topics(settings, "climate")
    with TestClient(create_app(settings), base_url="https://testserver") as web_client:
        yield settings, web_client
    client.delete(QUEUE)


def send_queued_confirmations(settings: Settings) -> None:
    """Run the send_confirmation tasks waiting in Redis, as a worker would (Maildir)."""
    assert settings.broker_url
    broker = redis.Redis.from_url(settings.broker_url)
    while (raw := broker.rpop(QUEUE)) is not None:
        task, [arg] = decode_task(raw)
        if task == "distributor.send_confirmation":
            sending.send_confirmation(settings, arg)


def test_an_erased_persons_confirm_link_does_not_confirm_the_next_person(web) -> None:  # type: ignore[no-untyped-def]
    settings, client = web
    assert subscribe(client, email=BOB[0], name="").status_code == 200
    send_queued_confirmations(settings)
    [bob_mail] = outbox(settings, BOB[0])
    bob_confirm = link(bob_mail, settings, "/confirm/")
    erase(settings, BOB[0])  # before he confirmed
    # Cy asks; she has not confirmed (maybe never will)
    assert subscribe(client, email=CY[0], name="").status_code == 200
    page = client.get(bob_confirm)
    assert CY[0] not in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    token = csrf.group(1) if csrf else "none"
    if not csrf:  # no form on an invalid link: take a CSRF token from the subscribe page
        found = re.search(r'name="csrf" value="([^"]+)"', client.get("/subscribe").text)
        assert found
        token = found.group(1)
    answer = client.post(bob_confirm, data={"csrf": token})
    assert answer.status_code == 400
    cy = sub_of(settings, CY[0])
    assert cy is None or cy.status != SubscriberStatus.CONFIRMED  # no opt-in bypassed
