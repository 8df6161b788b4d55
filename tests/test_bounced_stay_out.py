"""A bounced address is never subscribed again by anyone but a working mailbox: not by a CSV
import (`subscribers import`, even `--confirmed`), not by the API's ``confirmed: true``, and
a request from the API or the web form sends it no confirmation email, so nothing can
confirm it. Each refusal says why, and the rest of the work (other rows) is not lost."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from distributor.core.apitokens import create_token
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Subscriber, SubscriberStatus, utcnow
from distributor.outbox import sending
from distributor.web import create_app
from tests.helpers import add_subscribers, add_topics, csrf_of
from tests.processes import invoke_cli
from tests.smtp_server import SMTPServer
from tests.subscription_requests import request_ids

BOUNCED = "ann@example.com"


@dataclass(frozen=True)
class Record:
    """What is held on a subscriber that a re-subscription would change."""

    status: str
    language: str
    topics: list[str]
    consent_source: str
    bounced: bool


@dataclass
class Desk:
    settings: Settings
    client: TestClient
    token: str
    smtp: SMTPServer


def record(settings: Settings, email: str) -> Record | None:
    with session_scope(settings) as session:
        sub = session.scalar(select(Subscriber).where(Subscriber.email == email))
        if sub is None:
            return None
        topics = sorted(t.slug for t in sub.topics)
        return Record(sub.status, sub.language, topics, sub.consent_source,
                      sub.bounced_at is not None)  # fmt: skip


def run_workers(settings: Settings) -> list[str]:
    """What woken workers do with every stored subscription request: the outcome of each."""
    return [sending.send_confirmation(settings, i) for i in request_ids(settings)]


@pytest.fixture
def desk(sqlite_settings: Settings, redis_url: str, smtp_server: SMTPServer) -> Iterator[Desk]:
    """Ann subscribed to climate in English, then her address hard-bounced; a token with the
    subscribers scope; the app, sending to a real SMTP server."""
    s = sqlite_settings.model_copy(update={"broker_url": redis_url, "smtp_url": smtp_server.url,
                                           "rate_limit_requests": 1000})  # fmt: skip
    add_topics(s, "climate", "science")
    add_subscribers(s, [(BOUNCED, "Ann", "en", "climate")])
    with session_scope(s) as session:
        session.execute(update(Subscriber).where(Subscriber.email == BOUNCED)
                        .values(status=SubscriberStatus.BOUNCED, bounced_at=utcnow()))  # fmt: skip
        token = create_token(session, "desk", ["subscribers"])
    with TestClient(create_app(s), base_url="https://testserver") as client:
        yield Desk(s, client, token, smtp_server)


AS_BOUNCED = Record("bounced", "en", ["climate"], "test", True)


def test_a_confirmed_import_leaves_a_bounced_address_alone_and_says_so(
    desk: Desk, tmp_path: Path
) -> None:
    """`subscribers import --confirmed`: the bounced row (spelt in capitals) is counted as
    left unchanged, said on stdout; the new row of the same file is added."""
    people = tmp_path / "people.csv"
    with people.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["email", "name", "language", "topics"])
        writer.writerow(["ANN@Example.COM", "Ann Again", "fr", "climate;science"])
        writer.writerow(["new@example.org", "New", "en", "science"])
    runs = [(["--confirmed", "--consent-source", "fair 2026"], "1 added, 0 updated"),
            ([], "0 added, 1 updated")]  # fmt: skip
    for extra, counts in runs:
        done = invoke_cli(desk.settings, "subscribers", "import", str(people), *extra)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0] == (
            f"{counts}, 1 left unchanged (unsubscribed or bounced)"
        )
        assert record(desk.settings, BOUNCED) == AS_BOUNCED
    new = record(desk.settings, "new@example.org")
    assert new is not None and new.status == "confirmed" and new.consent_source == "fair 2026"
    assert desk.smtp.handler.messages == []


def test_the_api_refuses_to_confirm_a_bounced_address_and_says_why(desk: Desk) -> None:
    """``POST /api/subscribers`` with ``confirmed: true``: 409 naming the field and the
    reason, whatever the spelling; the record is as it was."""
    auth = {"Authorization": f"Bearer {desk.token}"}
    for email in (BOUNCED, "Ann@EXAMPLE.com"):
        body = {"email": email, "name": "Ann", "language": "fr",
                "topics": ["climate", "science"], "confirmed": True,
                "consent_source": "old list"}  # fmt: skip
        refused = desk.client.post("/api/subscribers", json=body, headers=auth)
        assert refused.status_code == 409, refused.text
        assert refused.json() == {
            "error": f"email: {BOUNCED} is bounced; only its owner can subscribe it again "
            "(add it with confirmed false to send them a confirmation)",
            "field": "email",
        }
        assert record(desk.settings, BOUNCED) == AS_BOUNCED
    # Someone else in the same call style is added: the refusal is about this address only.
    other = {**body, "email": "bob@example.org"}
    assert desk.client.post("/api/subscribers", json=other, headers=auth).status_code == 201


def test_a_request_from_the_api_or_the_form_sends_a_bounced_address_nothing(
    desk: Desk,
) -> None:
    """A pending add through the API, and the web form, answer as for anyone (202; the
    form's thank-you page) and record a request; the worker sends no confirmation to the
    bounced address, so no link exists to confirm it, and the record is unchanged. A new
    address sent the same way does get its email (the worker does send)."""
    auth = {"Authorization": f"Bearer {desk.token}"}
    body = {"email": BOUNCED, "language": "fr", "topics": ["science"]}
    assert desk.client.post("/api/subscribers", json=body, headers=auth).status_code == 202
    answers = []
    for email in (BOUNCED, "cat@example.net"):
        page = desk.client.get("/subscribe")
        form = {"email": email, "name": "", "language": "en", "topics": ["science"],
                "csrf": csrf_of(page.text)}  # fmt: skip
        answer = desk.client.post("/subscribe", data=form)
        assert answer.status_code == 200, answer.text
        answers.append(answer.text)
    assert answers[0] == answers[1]  # the same page for the bounced and the new address
    assert len(request_ids(desk.settings)) == 3
    assert sorted(run_workers(desk.settings)) == ["sent", "skipped", "skipped"]
    assert [m.rcpt for m in desk.smtp.handler.messages] == ["cat@example.net"]
    assert record(desk.settings, BOUNCED) == AS_BOUNCED
