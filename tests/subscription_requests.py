"""Subscription requests made straight in the database, as the form and the API record
them, for the tests of what happens to a request afterwards."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from distributor.audience.subscription import Consent, record_request
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import SubscriptionRequest, utcnow

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
