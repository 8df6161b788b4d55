"""A release and its translation published together: each subscriber gets one email, in
their own language, and neither version reaches the other language's readers."""

from __future__ import annotations

from collections import Counter

from distributor import actions
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.queue import TaskQueue
from distributor.outbox import sending
from distributor.releases.lifecycle import create_release
from distributor.releases.source import parse_release
from tests.helpers import add_subscribers, add_topics, make_release, release_text
from tests.processes import NO_BROKER
from tests.smtp_server import SMTPServer

ENGLISH = [(f"en{i}@example.com", f"E {i}", "en", "climate") for i in range(4)]
FRENCH = [(f"fr{i}@example.com", f"F {i}", "fr", "climate") for i in range(3)]


def test_the_pair_sends_each_subscriber_one_email_in_their_language(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    live = settings.model_copy(update={"smtp_url": smtp_server.url, "batch_size": 3})
    add_topics(live, "climate")
    add_subscribers(live, ENGLISH + FRENCH)
    original = make_release(live)
    text = release_text(title="L'Agence signe un accord", lang="fr", slug="accord-agence")
    text = text.replace(
        "dateline: PARIS", "dateline: PARIS\ntranslation_of: agency-signs-agreement"
    )
    with session_scope(live) as session:
        french = create_release(session, live, parse_release(text, "fr.md", live))
    queue = TaskQueue(live.model_copy(update={"broker_url": NO_BROKER}))
    try:
        for release_id in (original.id, french.id):  # published together
            actions.publish(live, queue, release_id)
            sending.distribute_release(live, queue, release_id)
        for release_id in (original.id, french.id):
            while sending.send_batch(live, release_id).claimed:
                pass
    finally:
        queue.close()

    received = smtp_server.handler.messages
    per_address = Counter(m.rcpt for m in received)
    assert per_address == Counter({email: 1 for email, *_ in ENGLISH + FRENCH})
    for message in received:
        subject = str(message.parsed()["Subject"])
        expected = "L'Agence signe un accord" if message.rcpt.startswith("fr") else "Agency"
        assert subject.startswith(expected), (message.rcpt, subject)
