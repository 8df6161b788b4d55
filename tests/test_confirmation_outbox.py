"""Confirmation emails through the outbox (distributor/outbox/confirmations.py): the double
opt-in email gets what every email of the outbox gets — a relay's 451 is retried after its
backoff and the sweep wakes the retry, which still keeps to one confirmation a day per
mailbox; a 550 fails it for good without bouncing anyone and gives the mailbox's day back;
the send limits hold it back rather than exceed them; a worker
killed after the relay took it does not send it twice when the relay's record says so; and
through a real Celery worker the form answers at once while the email goes out behind it,
DKIM-signed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import (
    ConfirmationEmail,
    Subscriber,
    SubscriberStatus,
    SubscriptionRequest,
    utcnow,
)
from distributor.mail.dkim import load_signer
from distributor.outbox import confirmations, sending, sweep, throttle
from distributor.outbox.ledger import RECONCILED
from distributor.web import create_app
from tests.dkim_keys import dns_for, write_key
from tests.helpers import (
    CountingQueue,
    add_subscribers,
    add_topics,
    csrf_of,
)
from tests.postfix_lines import postfix_log
from tests.processes import running_worker, settings_env, wait_until
from tests.smtp_server import SMTPServer
from tests.subscription_requests import new_request

GREYLISTED = "451 4.7.1 Greylisted, please try again later"
NO_SUCH_USER = "550 5.1.1 No such user here"


def emails_of(settings: Settings, request_id: int) -> list[ConfirmationEmail]:
    """The request's rows in the ledger of confirmation emails, oldest first."""
    with session_scope(settings) as session:
        query = select(ConfirmationEmail).where(ConfirmationEmail.request_id == request_id)
        return list(session.scalars(query.order_by(ConfirmationEmail.id)))


def request_of(settings: Settings, request_id: int) -> SubscriptionRequest:
    with session_scope(settings) as session:
        return session.get_one(SubscriptionRequest, request_id)


def swept(settings: Settings) -> list[object]:
    """Run the sweep; the requests it woke a send_confirmation for."""
    queue = CountingQueue()
    sweep.sweep(settings, queue)  # type: ignore[arg-type]
    return [args[0] for args in queue.tasks("send_confirmation")]


def confirmation_leases_run_out(settings: Settings) -> None:
    """Time passes: a dead worker's leases on confirmation emails expire."""
    with session_scope(settings) as session:
        session.execute(
            update(ConfirmationEmail)
            .where(ConfirmationEmail.lease_until.is_not(None))
            .values(lease_until=utcnow().replace(year=2000))
        )


def once_for(addresses: set[str], reply: str) -> Callable[[str], str | None]:
    """A ``rcpt_reply`` that answers ``reply`` to the first attempt to each of ``addresses``
    and takes every later one (a greylisting relay)."""
    first = set(addresses)

    def answer(rcpt: str) -> str | None:
        if rcpt in first:
            first.discard(rcpt)
            return reply
        return None

    return answer


# 1. A deferred confirmation is retried with backoff ---------------------------------------


def test_a_deferred_confirmation_is_retried_after_its_backoff_and_sent_once(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    """The relay greylists the first attempt (451): the row is deferred until its backoff
    (``DISTRIBUTOR_RETRY_BASE_SECONDS``) with the relay's answer kept; the sweep does not wake
    it before then and does after; the retry sends it, once, and the request says when."""
    s = settings.model_copy(update={"smtp_url": smtp_server.url, "retry_base_seconds": 2.0})
    add_topics(s, "climate")
    request_id = new_request(s, "ann@example.com")
    smtp_server.handler.rcpt_reply = once_for({"ann@example.com"}, GREYLISTED)

    before = utcnow()
    assert sending.send_confirmation(s, request_id) == "deferred"
    after = utcnow()
    (row,) = emails_of(s, request_id)
    assert (row.status, row.attempts, row.smtp_code, row.sent_at) == ("deferred", 1, 451, None)
    assert "Greylisted" in row.last_error
    base = timedelta(seconds=2.0)
    assert before + base <= row.next_attempt_at <= after + base
    assert smtp_server.handler.messages == []
    assert request_of(s, request_id).confirmation_sent_at is None  # no link went out yet

    assert swept(s) == []  # not due yet: the sweep leaves it
    assert sending.send_confirmation(s, request_id) == "skipped"  # nor can a worker claim it
    due = row.next_attempt_at
    wait_until(lambda: utcnow() > due, 30, "the backoff to run out")
    assert swept(s) == [request_id]  # due: the sweep wakes a worker for it

    assert sending.send_confirmation(s, request_id) == "sent"
    (received,) = smtp_server.handler.messages
    assert received.rcpt == "ann@example.com"
    (row,) = emails_of(s, request_id)
    assert (row.status, row.attempts, row.smtp_code, row.last_error) == ("sent", 2, 250, "")
    assert row.sent_at is not None and row.sent_at > due
    assert request_of(s, request_id).confirmation_sent_at == row.sent_at
    assert received.parsed()["Message-ID"] == f"<confirm-{row.id}@example.org>"
    assert swept(s) == [] and sending.send_confirmation(s, request_id) == "skipped"
    assert len(smtp_server.handler.messages) == 1  # sent is never sent again


def test_a_confirmation_sent_at_its_retry_still_counts_for_the_day(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    """The first attempt, greylisted, gave the mailbox's day back; the retry that then goes
    out takes the day again: another request for the mailbox (however spelt) within the day
    sends nothing more."""
    s = settings.model_copy(update={"smtp_url": smtp_server.url, "retry_base_seconds": 1.0})
    add_topics(s, "climate")
    first = new_request(s, "ann@example.com")
    smtp_server.handler.rcpt_reply = once_for({"ann@example.com"}, GREYLISTED)
    assert sending.send_confirmation(s, first) == "deferred"
    (row,) = emails_of(s, first)
    wait_until(lambda: utcnow() > row.next_attempt_at, 30, "the backoff to run out")
    assert sending.send_confirmation(s, first) == "sent"
    assert sending.send_confirmation(s, new_request(s, "A.nn@example.com")) == "skipped"
    assert [m.rcpt for m in smtp_server.handler.messages] == ["ann@example.com"]


def test_a_retry_is_not_sent_when_another_confirmation_went_meanwhile(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    """The first request's email is greylisted and gives the day back; the person asks again
    and that email goes at once. When the first one's retry comes due it is not sent — the
    mailbox had its confirmation today — but cancelled, saying why, and never woken again."""
    s = settings.model_copy(update={"smtp_url": smtp_server.url, "retry_base_seconds": 1.0})
    add_topics(s, "climate")
    first = new_request(s, "bob@example.com")
    smtp_server.handler.rcpt_reply = once_for({"bob@example.com"}, GREYLISTED)
    assert sending.send_confirmation(s, first) == "deferred"
    again = new_request(s, "b.ob@example.com")
    assert sending.send_confirmation(s, again) == "sent"  # the day given back: at once
    (row,) = emails_of(s, first)
    wait_until(lambda: utcnow() > row.next_attempt_at, 30, "the backoff to run out")
    assert swept(s) == [first]
    assert sending.send_confirmation(s, first) == "skipped"
    assert [m.rcpt for m in smtp_server.handler.messages] == ["b.ob@example.com"]
    (row,) = emails_of(s, first)
    assert (row.status, row.attempts, row.lease_token) == ("cancelled", 1, None)
    assert row.last_error == confirmations.NOT_AGAIN
    assert swept(s) == []


# 2. A permanent refusal ---------------------------------------------------------------------


def test_a_refused_confirmation_fails_bounces_nobody_and_gives_the_day_back(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    """550 for the confirmation: the row fails for good with the relay's answer kept and is
    never tried again; the address — here someone who had unsubscribed — is not marked
    bounced (a bounced address would never be sent a confirmation again), and the mailbox's
    day is given back: once the address works, a new request is sent at once."""
    s = settings.model_copy(update={"smtp_url": smtp_server.url, "retry_base_seconds": 1.0})
    add_topics(s, "climate")
    add_subscribers(s, [("ann@example.com", "Ann", "en", "climate")])
    with session_scope(s) as session:
        session.execute(
            update(Subscriber).values(
                status=SubscriberStatus.UNSUBSCRIBED, unsubscribed_at=utcnow()
            )
        )
    request_id = new_request(s, "ann@example.com")
    smtp_server.handler.rcpt_reply = once_for({"ann@example.com"}, NO_SUCH_USER)

    assert sending.send_confirmation(s, request_id) == "failed"
    (row,) = emails_of(s, request_id)
    assert (row.status, row.attempts, row.smtp_code, row.sent_at) == ("failed", 1, 550, None)
    assert "No such user" in row.last_error and row.lease_token is None
    assert request_of(s, request_id).confirmation_sent_at is None
    with session_scope(s) as session:
        ann = session.scalars(select(Subscriber)).one()
        assert (ann.status, ann.bounced_at) == (SubscriberStatus.UNSUBSCRIBED, None)

    time.sleep(1.2)  # past any backoff: a failed row is not retried
    assert swept(s) == [] and sending.send_confirmation(s, request_id) == "skipped"
    again = new_request(s, "ann@example.com")
    assert sending.send_confirmation(s, again) == "sent"  # the same day
    assert [m.rcpt for m in smtp_server.handler.messages] == ["ann@example.com"]


# 3. The send limits ------------------------------------------------------------------------


def arrivals(smtp_server: SMTPServer) -> list[tuple[float, str]]:
    """From now on, (monotonic time, recipient) of every RCPT the relay takes."""
    seen: list[tuple[float, str]] = []

    def note(rcpt: str) -> None:
        seen.append((time.monotonic(), rcpt))

    smtp_server.handler.rcpt_reply = note  # type: ignore[assignment]
    return seen


def test_confirmations_over_a_domains_rate_are_held_and_go_out_later(
    settings: Settings, smtp_server: SMTPServer, redis_url: str
) -> None:
    """One message every 2 s to a domain: of three requests for mailboxes there, the first
    is sent, the others are held back (not attempted, not failed, the worker told when to
    wake) and go out later, each no sooner than the rate allows, one copy each."""
    interval = 2.0
    domain = f"d-{uuid.uuid4().hex[:8]}.example"
    s = settings.model_copy(
        update={"smtp_url": smtp_server.url, "broker_url": redis_url, "domain_rate": 1 / interval}
    )
    add_topics(s, "climate")
    seen = arrivals(smtp_server)
    ids = [new_request(s, f"{name}@{domain}") for name in ("ann", "bob", "cat")]
    before = utcnow()
    reports = [sending.send_confirmations(s, i) for i in ids]
    assert [sending.outcome(r) for r in reports] == ["sent", "deferred", "deferred"]
    for request_id, report in zip(ids[1:], reports[1:], strict=True):
        (row,) = emails_of(s, request_id)
        assert (row.status, row.attempts, row.lease_token) == ("pending", 0, None)
        assert row.next_attempt_at >= before + timedelta(seconds=throttle.HOLD_SECONDS)
        assert report.held == 1 and 0 < report.retry_in <= interval + 1
        woken = _Woken()
        sending.wake_for_held(woken, "send_confirmation", request_id, report)  # type: ignore[arg-type]
        assert woken.sent == [("send_confirmation", (request_id,))]  # within seconds

    deadline = time.monotonic() + 60
    while len(seen) < 3:  # workers woken for the held rows (here: whatever is due)
        assert time.monotonic() < deadline, f"held confirmations never went out: {seen}"
        with session_scope(s) as session:
            waiting = list(confirmations.due(session))
        for request_id in waiting:
            assert sending.send_confirmation(s, request_id) in ("sent", "deferred")
        time.sleep(0.1)
    gaps = [later - earlier for (earlier, _), (later, _) in pairwise(seen)]
    # Never over the domain's rate (times taken at the relay: less the jitter of getting
    # there; sent as they came, the three would be milliseconds apart).
    assert all(gap >= 0.75 * interval for gap in gaps), gaps
    assert Counter(rcpt for _, rcpt in seen) == {f"{n}@{domain}": 1 for n in ("ann", "bob", "cat")}
    for request_id in ids:
        (row,) = emails_of(s, request_id)
        assert (row.status, row.attempts) == ("sent", 1)  # a hold is not an attempt
        assert request_of(s, request_id).confirmation_sent_at == row.sent_at


class _Woken:
    """Records what a worker task enqueues for held rows (``sending.wake_for_held``)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[object, ...]]] = []

    def send(self, task: str, *args: object, countdown: float = 0.0) -> bool:
        assert 0.2 <= countdown <= 5.0
        self.sent.append((task, args))
        return True


def test_confirmations_keep_to_the_global_send_rate(
    sqlite_settings: Settings, smtp_server: SMTPServer, redis_url: str
) -> None:
    """At 4 messages a second across all workers, five confirmations (five domains, so no
    domain limit plays) leave at least a quarter of a second apart, all of them sent."""
    rate = 4.0
    s = sqlite_settings.model_copy(
        update={"smtp_url": smtp_server.url, "broker_url": redis_url, "send_rate": rate}
    )
    add_topics(s, "climate")
    seen = arrivals(smtp_server)
    ids = [new_request(s, f"p{i}@d{i}-{uuid.uuid4().hex[:6]}.example") for i in range(5)]
    assert [sending.send_confirmation(s, i) for i in ids] == ["sent"] * 5
    times = [at for at, _ in seen]
    early = throttle.burst_for(rate) - 1  # let go at once after an idle spell
    for k, at in enumerate(times):
        # The jitter of getting to the relay allowed for; unpaced, the five would be gone
        # in a small fraction of the second the rate makes them take.
        assert at - times[0] >= (k - early) / rate - 0.1, (k, at - times[0])


# 4. Exactly once under a kill ---------------------------------------------------------------

# A worker that dies the moment the relay accepted the confirmation, before the ledger has it.
CRASH = (
    "from distributor.outbox import sending; from distributor.core.config import load_settings; "
    "sending.send_confirmations(load_settings(), {request_id})"
)


def killed_after_accept(settings: Settings, request_id: int) -> None:
    env = settings_env(settings, DISTRIBUTOR_FAILPOINTS="after-accept@1")
    proc = subprocess.run(
        [sys.executable, "-c", CRASH.format(request_id=request_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def test_a_worker_killed_after_the_relay_accepted_does_not_send_it_twice(
    settings: Settings, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    """SIGKILL right after the relay's 250: the row is left leased with no outcome. While
    the lease lives the sweep leaves it; once it runs out the sweep wakes a worker, which
    finds the Message-ID in the relay's log and records the row as sent (RECONCILED)
    without sending it again."""
    log = tmp_path / "mail.log"
    s = settings.model_copy(
        update={"smtp_url": smtp_server.url, "lease_seconds": 5, "reconcile_log": log}
    )
    add_topics(s, "climate")
    request_id = new_request(s, "ann@example.com")
    killed_after_accept(s, request_id)
    (received,) = smtp_server.handler.messages
    (row,) = emails_of(s, request_id)
    assert (row.status, row.attempts, row.sent_at) == ("pending", 1, None)
    assert row.lease_token is not None  # the dead worker's
    postfix_log(log, [received.parsed()["Message-ID"]])  # what the relay wrote as it took it

    assert swept(s) == []  # the lease still runs: nobody else may take it
    confirmation_leases_run_out(s)
    assert swept(s) == [request_id]
    report = sending.send_confirmations(s, request_id)
    assert (report.claimed, report.reconciled, report.outcomes["sent"]) == (1, 1, 0)
    assert sending.outcome(report) == "sent"
    assert len(smtp_server.handler.messages) == 1  # not sent twice
    (row,) = emails_of(s, request_id)
    assert (row.status, row.last_error, row.lease_token) == ("sent", RECONCILED, None)
    assert request_of(s, request_id).confirmation_sent_at == row.sent_at
    assert swept(s) == []


def test_without_the_relays_record_the_one_in_doubt_goes_again_and_is_named(
    sqlite_settings: Settings, smtp_server: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The same kill with no relay log to read: the confirmation in doubt is sent again (at
    least once, never lost), and the log names the row that may be a second copy."""
    s = sqlite_settings.model_copy(update={"smtp_url": smtp_server.url, "lease_seconds": 5})
    add_topics(s, "climate")
    request_id = new_request(s, "ann@example.com")
    killed_after_accept(s, request_id)
    confirmation_leases_run_out(s)
    assert sending.send_confirmation(s, request_id) == "sent"
    assert [m.rcpt for m in smtp_server.handler.messages] == ["ann@example.com"] * 2
    (row,) = emails_of(s, request_id)
    assert (row.status, row.last_error) == ("sent", "")
    assert "1 row(s) in doubt go out again (their worker died holding them" in caplog.text
    assert f"confirmation emails {row.id}" in caplog.text


# 5 and 6. Through Celery, signed --------------------------------------------------------------


def test_the_form_answers_at_once_and_a_worker_sends_the_signed_email_behind_it(
    sqlite_settings: Settings, smtp_server: SMTPServer, redis_url: str, tmp_path: Path
) -> None:
    """The subscribe form, sent with a real `distributor worker` running over Redis and a
    relay that takes 2 s to answer: the page comes back in well under a second, before the
    relay has anything; then the worker's email arrives, DKIM-signed, and its row says sent."""
    key_file = tmp_path / "dkim.pem"
    write_key(key_file, serialization.PrivateFormat.PKCS8)
    live = sqlite_settings.model_copy(
        update={
            "broker_url": redis_url,
            "smtp_url": smtp_server.url,
            "rate_limit_requests": 1000,
            "dkim_key_file": key_file,
            "dkim_selector": "press2026",
            "dkim_domain": "example.org",
        }
    )
    add_topics(live, "climate")

    def slow(_rcpt: str) -> None:
        time.sleep(2.0)

    smtp_server.handler.rcpt_reply = slow  # type: ignore[assignment]
    with running_worker(live, tmp_path / "logs", concurrency=1):
        with TestClient(create_app(live), base_url="https://testserver") as client:
            form = client.get("/subscribe")  # the app warmed up: the POST alone is timed
            fields = {
                "email": "reporter@example.com",
                "name": "Ana",
                "language": "en",
                "topics": ["climate"],
                "csrf": csrf_of(form.text),
            }
            started = time.monotonic()
            answer = client.post("/subscribe", data=fields)
            took = time.monotonic() - started
        assert answer.status_code == 200, answer.text
        assert took < 1.0, took
        assert smtp_server.handler.messages == []  # the relay has not answered yet
        with session_scope(live) as session:
            (request_id,) = session.scalars(select(SubscriptionRequest.id))

        def recorded() -> bool:
            rows = emails_of(live, request_id)
            return bool(rows) and rows[0].status == "sent"

        wait_until(recorded, 60, "the worker to send the confirmation and record it")
    (message,) = smtp_server.handler.messages
    assert message.rcpt == "reporter@example.com"
    signer = load_signer(live)
    assert signer is not None and dkim.verify(message.data, dnsfunc=dns_for(signer))
    (row,) = emails_of(live, request_id)
    assert request_of(live, request_id).confirmation_sent_at == row.sent_at
