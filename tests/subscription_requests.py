"""Subscription requests made straight in the database, as the form and the API record
them, for the tests of what happens to a request afterwards."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.message import EmailMessage

import redis
from sqlalchemy import select

from distributor.audience.subscription import Consent, record_request
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import SubscriptionRequest, utcnow
from distributor.core.queue import QUEUE
from distributor.outbox import sending
from tests.helpers import queued_confirmations

CONSENT = Consent("192.0.2.7", "Mozilla/5.0 (test)")


def new_request(
    settings: Settings, email: str, age: timedelta = timedelta(0), *, name: str = ""
) -> int:
    """A request for ``email`` (topic "climate", English), made ``age`` ago; its id."""
    with session_scope(settings) as session:
        request = record_request(session, settings, email=email, name=name, language="en",
                                 topics=["climate"], consent=CONSENT)  # fmt: skip
        if age:
            request.created_at = utcnow() - age
        return request.id


def request_ids(settings: Settings) -> list[int]:
    """The ids of the requests kept, oldest first."""
    with session_scope(settings) as session:
        return list(session.scalars(select(SubscriptionRequest.id).order_by("id")))


def run_confirmations(settings: Settings, workers: int = 1) -> list[str]:
    """Take the waiting send_confirmation tasks off the queue and run them as ``workers``
    concurrent workers would (mail into the Maildir outbox); their outcomes, in order."""
    ids = list(reversed(queued_confirmations(settings)))  # the queue's head is its end
    assert settings.broker_url
    redis.Redis.from_url(settings.broker_url).delete(QUEUE)
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda i: sending.send_confirmation(settings, i), ids))


def confirm_path(settings: Settings, msg: EmailMessage) -> str:
    """The path of the confirmation link in ``msg``'s text (after the site URL)."""
    text = msg.get_body(("plain",))
    assert text is not None
    link = re.search(re.escape(settings.site_url) + r"/confirm/\S+", text.get_content())
    assert link, "no confirm link"
    return link.group(0).removeprefix(settings.site_url)
