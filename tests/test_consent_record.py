"""The GDPR consent record of a web-form subscription, end to end: the web app served over HTTP
as `distributor serve` serves it, a real `distributor worker`, the form fetched and sent over
TCP by an HTTP client with its own User-Agent, the confirmation email received by a real SMTP
server and its link followed. The record is read back through the product's own access export
(`subscribers export --email`): the peer's address as the server saw it (not a header the
client wrote), the User-Agent of the browser that sent the form, the form's version and the
time of the request — kept on the request while it waits, and on the subscriber once confirmed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from distributor.audience.subscription import FORM_VERSION
from distributor.core.config import Settings
from tests.browser import link_in
from tests.helpers import add_topics, csrf_of, free_port
from tests.processes import invoke_cli, running_worker, wait_until
from tests.smtp_server import SMTPServer
from tests.web_server import running_server

# What the journalist's browser says it is; the confirmation is clicked from another device.
FORM_AGENT = "Mozilla/5.0 (X11; Linux x86_64) ConsentProbe/3.1 form-7f3a"
CLICK_AGENT = "Mozilla/5.0 (iPhone) ConsentProbe/3.1 click-c41e"
EMAIL = "ann@example.com"


@dataclass(frozen=True)
class Live:
    settings: Settings
    base: str
    smtp: SMTPServer


@pytest.fixture
def live(
    sqlite_settings: Settings, redis_url: str, smtp_server: SMTPServer, tmp_path: Path
) -> Iterator[Live]:
    """The web app served on a free port (its own address as the site URL, so the email's
    links lead back to it) and one worker, on this run's Redis, sending to ``smtp_server``."""
    port = free_port()
    s = sqlite_settings.model_copy(
        update={"broker_url": redis_url, "smtp_url": smtp_server.url,
                "site_url": f"http://127.0.0.1:{port}"}
    )  # fmt: skip
    add_topics(s, "climate", "science")
    with (
        running_worker(s, tmp_path / "logs", concurrency=1),
        running_server(s, port) as base,
    ):
        yield Live(s, base, smtp_server)


def export(settings: Settings, email: str) -> dict[str, Any]:
    """Everything held on ``email``, as `subscribers export --email` prints it."""
    done = invoke_cli(settings, "subscribers", "export", "--email", email)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert isinstance(data, dict)
    return data


def test_the_consent_record_is_the_forms_peer_agent_and_version(live: Live) -> None:
    """The record names 127.0.0.1 (the TCP peer; the X-Forwarded-For the client added is
    not trusted without --proxy-headers), the form's User-Agent (not the one that clicked
    the link), ``FORM_VERSION`` and "web form"; its time is the request's, not the click's."""
    browser = httpx.Client(base_url=live.base, headers={"User-Agent": FORM_AGENT}, timeout=10)
    form = browser.get("/subscribe")
    assert form.status_code == 200
    sent = browser.post(
        "/subscribe",
        data={"email": EMAIL, "name": "Ann", "language": "fr", "topics": ["climate", "science"],
              "csrf": csrf_of(form.text)},
        headers={"X-Forwarded-For": "203.0.113.66", "X-Real-IP": "203.0.113.67"},
    )  # fmt: skip
    assert sent.status_code == 200, sent.text
    browser.close()
    expected = {"source": "web form", "ip": "127.0.0.1", "user_agent": FORM_AGENT,
                "form_version": FORM_VERSION}  # fmt: skip

    # While it waits, the request holds the record (and no subscriber exists yet).
    wait_until(lambda: len(live.smtp.handler.messages) == 1, 30, "the confirmation email")
    waiting = export(live.settings, EMAIL)
    assert "id" not in waiting
    [request] = waiting["subscription_requests"]
    assert request["consent"] == expected and request["confirmation_sent_at"]

    # Confirmed from another device: the record stays the form's.
    [received] = live.smtp.handler.messages
    text = received.parsed().get_body(("plain",))
    assert text is not None
    link = link_in(text.get_content(), live.base, "/confirm/")
    phone = httpx.Client(headers={"User-Agent": CLICK_AGENT}, timeout=10)
    page = phone.get(link)
    assert page.status_code == 200
    done = phone.post(link, data={"csrf": csrf_of(page.text)})
    assert done.status_code == 200 and "Abonnement confirmé" in done.text, done.text
    phone.close()

    held = export(live.settings, EMAIL)
    assert held["status"] == "confirmed"
    consent = held["consent"]
    at = consent.pop("at")
    assert consent == expected
    assert datetime.fromisoformat(at) == datetime.fromisoformat(request["created_at"])
    assert datetime.fromisoformat(at) < datetime.fromisoformat(held["confirmed_at"])
