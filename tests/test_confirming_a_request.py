"""Confirming a subscription request, as the confirm link does: the subscriber it creates
(name, date of confirmation, a clean bounce count), the link then marked used, and what the
page says when the topics chosen are gone. (Found by ``make mutate``: a subscriber created
without a confirmation date, or starting with a soft bounce, or a link never marked used,
left every test green.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from distributor.audience.subscription import confirm_legacy, confirm_request, request_choices
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import NotFound, SubscriberInputError
from distributor.core.models import Subscriber, SubscriberStatus, Topic, utcnow
from tests.helpers import add_subscribers, add_topics
from tests.subscription_requests import new_request


def test_confirming_creates_the_subscriber_and_marks_the_link_used(settings: Settings) -> None:
    """A request without a name confirms into a subscriber named "", confirmed now, with no
    soft bounce counted; the link's page then says it is done."""
    add_topics(settings, "climate")
    request_id = new_request(settings, "ann@example.com")
    with session_scope(settings) as session:
        sub = confirm_request(session, request_id)
        assert sub.status == SubscriberStatus.CONFIRMED
        assert (sub.name, sub.language, sub.soft_bounces) == ("", "en", 0)
        assert sub.confirmed_at is not None
        assert abs(sub.confirmed_at - utcnow()) < timedelta(minutes=1)
    with session_scope(settings) as session:
        choices = request_choices(session, request_id)
        assert choices is not None and choices.done is True


def test_a_second_request_of_a_confirmed_subscriber_is_marked_used(settings: Settings) -> None:
    """Someone already subscribed who asks again and clicks the new link: nothing changes,
    and that link too says it is done."""
    add_topics(settings, "climate")
    first = new_request(settings, "ann@example.com", name="Ann")
    with session_scope(settings) as session:
        confirm_request(session, first)
    second = new_request(settings, "ann@example.com", name="Someone Else")
    with session_scope(settings) as session:
        assert confirm_request(session, second).name == "Ann"
    with session_scope(settings) as session:
        choices = request_choices(session, second)
        assert choices is not None and choices.done is True


def test_confirming_after_the_topics_were_removed_says_to_subscribe_again(
    settings: Settings,
) -> None:
    """The confirm page shows this message (HTTP 422): it must say what to do."""
    add_topics(settings, "climate")
    request_id = new_request(settings, "ann@example.com")
    with session_scope(settings) as session:
        session.execute(delete(Topic))
    with session_scope(settings) as session, pytest.raises(SubscriberInputError) as refusal:
        confirm_request(session, request_id)
    assert "please subscribe again" in str(refusal.value)


def test_a_link_from_before_requests_confirms_only_a_subscriber_from_before(
    settings: Settings,
) -> None:
    """A confirm link that names a subscriber by id alone was sent before rows had nonces:
    it cannot confirm a subscriber made since (who has one), and for a subscriber from
    before who left, the page says how to come back."""
    add_topics(settings, "climate")
    add_subscribers(settings, [("ann@example.com", "Ann", "en", "climate")], confirmed=False)
    with session_scope(settings) as session:
        ann = session.scalars(select(Subscriber.id)).one()
    with session_scope(settings) as session, pytest.raises(NotFound):
        confirm_legacy(session, ann)  # Ann has a nonce: the link was not made for her
    with session_scope(settings) as session:
        left = {"link_nonce": None, "status": SubscriberStatus.UNSUBSCRIBED}
        session.execute(update(Subscriber).values(**left))
    with session_scope(settings) as session, pytest.raises(SubscriberInputError) as refusal:
        confirm_legacy(session, ann)
    assert str(refusal.value) == "this address is unsubscribed; subscribe again to return"
