"""The bookkeeping behind double opt-in that nobody sees until it goes wrong: the sweep
forgets what it must (requests no email was ever sent for) and keeps what it must (today's
once-a-day limit); a lost wake-up is retried for a day, not for ever; reopening or giving
back one request touches that request or mailbox only. (Found by ``make mutate``: each of
these could be broken with every test green.)"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from distributor.audience.subscription import (
    FORM_VERSION,
    Consent,
    confirm_request,
    give_back_confirmation,
    purge_requests,
    record_request,
    reopen_request,
    take_confirmation,
    undecided_requests,
)
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import ConfirmationLimit, utcnow
from distributor.outbox import sending, sweep
from tests.helpers import CountingQueue, add_subscribers, add_topics
from tests.subscription_requests import CONSENT, new_request, request_ids


def test_the_sweep_purges_a_request_no_email_was_ever_sent_for(settings: Settings) -> None:
    """A request whose wake-up was lost and never retried (more than a day old) holds an
    address and a consent record: it goes once its links would have expired, like one
    whose email went out."""
    add_topics(settings, "climate")
    forgotten = new_request(settings, "old@example.com", timedelta(days=8))
    recent = new_request(settings, "new@example.com", timedelta(days=1))
    with session_scope(settings) as session:
        purge_requests(session, settings)
    assert forgotten not in request_ids(settings)
    assert recent in request_ids(settings)


def test_the_sweep_keeps_todays_once_a_day_limit(settings: Settings) -> None:
    """After the sweep, a second request for a mailbox sent a confirmation an hour ago still
    gets no second email (only the limits older than a day go)."""
    add_topics(settings, "climate")
    assert sending.send_confirmation(settings, new_request(settings, "ann@example.com")) == "sent"
    with session_scope(settings) as session:
        purge_requests(session, settings, now=utcnow() + timedelta(hours=1))
        assert len(session.scalars(select(ConfirmationLimit)).all()) == 1
    again = new_request(settings, "ann@example.com")
    assert sending.send_confirmation(settings, again) == "skipped"


def test_a_lost_wake_up_is_retried_for_a_day_not_for_ever(settings: Settings) -> None:
    """The sweep wakes a worker for a request left undecided a few minutes, and not for one
    left undecided two days: that person gets no confirmation email out of the blue."""
    add_topics(settings, "climate")
    stale = new_request(settings, "old@example.com", timedelta(days=2))
    lost = new_request(settings, "new@example.com", timedelta(minutes=5))
    queue = CountingQueue()
    sweep.sweep(settings, queue)  # type: ignore[arg-type]
    assert ("send_confirmation", (lost,)) in queue.sent
    assert ("send_confirmation", (stale,)) not in queue.sent


def test_reopening_one_request_leaves_the_others_decided(settings: Settings) -> None:
    """Asking for a new link from an expired one reopens that request only; a confirmed
    request is not reopened (so no worker is woken for it)."""
    add_topics(settings, "climate")
    ann, bob = new_request(settings, "ann@example.com"), new_request(settings, "bob@example.com")
    for request_id in (ann, bob):
        assert sending.send_confirmation(settings, request_id) == "sent"
    with session_scope(settings) as session:
        assert reopen_request(session, ann)
    with session_scope(settings) as session:
        assert undecided_requests(session, now=utcnow() + timedelta(minutes=2)) == [ann]
        confirm_request(session, bob)
    with session_scope(settings) as session:
        assert not reopen_request(session, bob)


def test_giving_back_a_confirmation_frees_that_mailbox_at_that_time_only(
    settings: Settings,
) -> None:
    """A confirmation that did not go out gives back its own mailbox's limit, taken at that
    moment: not another mailbox's taken at the same moment, nor its own taken later."""
    add_topics(settings, "climate")
    ann, bob = new_request(settings, "ann@example.com"), new_request(settings, "bob@example.com")
    with session_scope(settings) as session:
        for request_id in (ann, bob):
            assert take_confirmation(session, request_id) is not None
        moment = utcnow() - timedelta(minutes=1)
        session.execute(update(ConfirmationLimit).values(sent_at=moment))
    with session_scope(settings) as session:
        give_back_confirmation(session, ann, moment - timedelta(hours=25))  # not this one
        assert len(session.scalars(select(ConfirmationLimit)).all()) == 2
        give_back_confirmation(session, ann, moment)
        assert len(session.scalars(select(ConfirmationLimit)).all()) == 1


def test_the_consent_record_is_kept_whole_and_cut_to_its_columns(settings: Settings) -> None:
    """The GDPR consent record of a request names the form's version; an overlong user
    agent (or source, IP, version) is cut to its column instead of failing the request."""
    add_topics(settings, "climate")
    long = Consent(ip="1" * 100, user_agent="u" * 600, form_version="v" * 40, source="s" * 300)
    with session_scope(settings) as session:
        plain = record_request(session, settings, email="ann@example.com", name="",
                               language="en", topics=["climate"], consent=CONSENT)  # fmt: skip
        assert (plain.consent_ip, plain.consent_form_version) == ("192.0.2.7", FORM_VERSION)
        cut = record_request(session, settings, email="bob@example.com", name="",
                             language="en", topics=["climate"], consent=long)  # fmt: skip
        lengths = (len(cut.consent_ip), len(cut.consent_user_agent),
                   len(cut.consent_form_version), len(cut.consent_source))  # fmt: skip
        assert lengths == (64, 500, 32, 200)


def test_someone_else_being_subscribed_does_not_hold_back_a_confirmation(
    settings: Settings,
) -> None:
    """The "already subscribed" check looks at this address only: a new address gets its
    confirmation email while another address is confirmed."""
    add_topics(settings, "climate")
    add_subscribers(settings, [("cat@example.com", "Cat", "en", "climate")])
    assert sending.send_confirmation(settings, new_request(settings, "new@example.com")) == "sent"
