"""Relay failover: DISTRIBUTOR_SMTP_URL lists several relays; one that refuses connections,
answers 421 or dies mid-batch is skipped for its back-off and the batch goes on with the
next — against two real SMTP servers, counting the Message-IDs each recipient got across
both: exactly one, the ledger all sent, nothing lost or doubled."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, update

from distributor.audience.subscription import Consent, record_request
from distributor.core.config import Settings, configured_secrets, load_settings
from distributor.core.db import session_scope
from distributor.core.errors import ConfigError
from distributor.core.logs import RedactingFormatter
from distributor.core.models import Delivery, Subscriber, utcnow
from distributor.mail.failover import PROCESS_HEALTH, FailoverTransport
from distributor.mail.reconcile import already_accepted, open_reconciler
from distributor.mail.relays import open_transport
from distributor.mail.transport import SMTPTransport
from distributor.outbox import sending
from distributor.outbox.ledger import RECONCILED, counts
from distributor.outbox.relay_health import KEY
from tests.helpers import (
    CountingQueue,
    add_subscribers,
    add_topics,
    free_port,
    lease_runs_out,
    published,
)
from tests.postfix_lines import postfix_log
from tests.processes import settings_env
from tests.smtp_server import BusyServer, Received, SMTPServer


@pytest.fixture(autouse=True)
def fresh_health() -> Iterator[None]:
    """Each test starts with no relay in back-off in this process."""
    PROCESS_HEALTH.clear()
    yield
    PROCESS_HEALTH.clear()


@pytest.fixture
def base(sqlite_settings: Settings, redis_url: str) -> Iterator[Settings]:
    """Settings with the test Redis as the broker, where no relay is in back-off."""
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(KEY + "*"):
        client.delete(key)
    yield sqlite_settings.model_copy(update={"broker_url": redis_url})
    client.close()


@pytest.fixture
def second() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def busy() -> Iterator[BusyServer]:
    server = BusyServer().start()
    yield server
    server.stop()


def message_id(message: Received) -> str:
    found = re.search(rb"^Message-ID: (<[^>]+>)", message.data, re.MULTILINE | re.IGNORECASE)
    assert found
    return found.group(1).decode()


def copies(*servers: SMTPServer) -> Counter[tuple[str, str]]:
    """(recipient, Message-ID) → how many copies, across ``servers``."""
    return Counter((m.rcpt, message_id(m)) for s in servers for m in s.handler.messages)


def relays(s: Settings, *urls: str, **extra: object) -> Settings:
    return s.model_copy(update={"smtp_url": ",".join(urls), **extra})


# -- the list --------------------------------------------------------------------------------


def test_one_url_is_one_relay_as_ever_and_several_fail_over(tmp_path: Path) -> None:
    one = open_transport(load_settings(data_dir=tmp_path, smtp_url="smtp://relay.example.org"))
    assert isinstance(one, SMTPTransport)
    # A comma inside a password does not split the list; spaces around commas are fine.
    several = open_transport(load_settings(
        data_dir=tmp_path,
        smtp_url="smtp+starttls://u:p,w@a.example.org:587 , smtps://b.example.org",
    ))  # fmt: skip
    assert isinstance(several, FailoverTransport)
    assert [(r.host, r.port, r.security, r.password) for r in several.relays] == [
        ("a.example.org", 587, "starttls", "p,w"),
        ("b.example.org", 465, "tls", None),
    ]
    with pytest.raises(ConfigError, match=r"DISTRIBUTOR_SMTP_URL \(relay 2 of 2\): unknown"):
        open_transport(load_settings(data_dir=tmp_path, smtp_url="smtp://a,http://b"))


def test_every_relays_password_is_masked(caplog: pytest.LogCaptureFixture) -> None:
    url = "smtp+starttls://ann:first-secret@a.example.org:587,smtps://bob:second%2Fsecret@b"
    settings = load_settings(smtp_url=url)
    shown = repr(settings)
    assert "first-secret" not in shown and "second%2Fsecret" not in shown
    assert "ann:***@a.example.org" in shown and "bob:***@b" in shown
    found = configured_secrets(settings)
    assert {"first-secret", "second%2Fsecret", "second/secret"} <= set(found)
    formatter = RedactingFormatter("%(message)s", found)
    record = logging.LogRecord("x", logging.WARNING, "", 0, "relay %s said no: %s", None, None)
    record.args = (url, "535 auth failed for second/secret")
    line = formatter.format(record)
    assert "secret" not in line.replace("***", ""), line


# -- failing over --------------------------------------------------------------------------


def test_a_relay_refusing_connections_is_skipped(base: Settings, second: SMTPServer) -> None:
    s = relays(base, f"smtp://127.0.0.1:{free_port()}", second.url)
    release_id = published(s, 10)
    report = sending.send_batch(s, release_id)
    assert report.outcomes == {"sent": 10, "deferred": 0, "failed": 0}
    assert set(copies(second).values()) == {1} and len(copies(second)) == 10


def test_a_relay_answering_421_is_not_tried_again_before_its_backoff(
    base: Settings, busy: BusyServer, second: SMTPServer
) -> None:
    s = relays(base, busy.url, second.url, relay_backoff_seconds=1.5)
    release_id = published(s, 10)
    first = sending.send_batch(s.model_copy(update={"batch_size": 5}), release_id)
    assert first.outcomes["sent"] == 5 and busy.connections == 1  # once, not per message
    later = sending.send_batch(s.model_copy(update={"batch_size": 5}), release_id)
    assert later.outcomes["sent"] == 5 and busy.connections == 1  # in back-off: not asked
    assert set(copies(second).values()) == {1} and len(copies(second)) == 10
    time.sleep(1.6)  # the back-off is over: the first relay is asked again
    add_subscribers(s, [("late@example.com", "L", "en", "climate")])
    sending.distribute_release(s, CountingQueue(), release_id)  # type: ignore[arg-type]
    assert sending.send_batch(s, release_id).outcomes["sent"] == 1
    assert busy.connections == 2
    with session_scope(s) as session:
        assert counts(session, release_id)["sent"] == 11


def test_when_every_relay_is_down_rows_are_deferred_and_the_relays_left_alone(
    base: Settings, busy: BusyServer
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    s = relays(base, f"smtp://{closed}", busy.url)
    release_id = published(s, 4)
    report = sending.send_batch(s, release_id)
    assert report.outcomes == {"sent": 0, "deferred": 4, "failed": 0}
    assert busy.connections == 1
    with session_scope(s) as session:
        errors = set(session.scalars(select(Delivery.last_error)))
        statuses = set(session.scalars(select(Subscriber.status)))
    (error,) = errors
    assert error.startswith("no relay available")
    assert f"{closed}: {closed}: connect: ConnectionRefusedError" in error
    assert f"{busy.url[7:]}: " in error and "421" in error
    assert statuses == {"confirmed"}  # nobody bounced
    with session_scope(s) as session:  # their retry comes, both relays still in back-off
        session.execute(update(Delivery).values(next_attempt_at=utcnow()))
    assert sending.send_batch(s, release_id).outcomes["deferred"] == 4
    assert busy.connections == 1


@pytest.mark.parametrize("logs", ["both", "second-only"])
def test_a_relay_dying_mid_batch_loses_and_doubles_nothing(
    base: Settings, second: SMTPServer, tmp_path: Path, logs: str
) -> None:
    """The first relay keeps p03's message and dies before its 250: p03 is in doubt (not
    sent elsewhere), p04 whose envelope was in flight and the rest go to the second relay
    in the same batch; at p03's retry each relay's log settles it. With only the second
    relay's log, what the first took cannot be known: p03 goes out again (at least once)."""
    first = SMTPServer().start()
    log1, log2 = tmp_path / "relay1.log", tmp_path / "relay2.log"
    listed = f"{log1},{log2}" if logs == "both" else str(log2)
    s = relays(base, first.url, second.url, reconcile_log=Path(listed))
    release_id = published(s, 10)

    def dies(rcpt: str) -> bool:
        if rcpt != "p03@example.com":
            return False
        threading.Thread(target=first.stop).start()  # and stays down
        return True

    first.handler.cut_after_data = dies
    try:
        report = sending.send_batch(s, release_id)
    finally:
        first.stop()
    assert report.outcomes == {"sent": 9, "deferred": 1, "failed": 0}
    assert sorted(m.rcpt for m in first.handler.messages) == [
        f"p0{i}@example.com" for i in range(4)
    ]
    with session_scope(s) as session:
        (doubt,) = session.execute(
            select(Delivery.last_error, Delivery.lease_until).where(Delivery.status == "deferred")
        ).all()
    assert first.url[7:] in doubt.last_error and doubt.lease_until is not None  # in doubt
    postfix_log(log1, [message_id(m) for m in first.handler.messages])
    postfix_log(log2, [message_id(m) for m in second.handler.messages])
    with session_scope(s) as session:  # p03's retry is due
        session.execute(update(Delivery).values(next_attempt_at=utcnow()))
    lease_runs_out(s)
    again = sending.send_batch(s, release_id)
    assert again.claimed == 1
    got = copies(first, second)
    with session_scope(s) as session:
        assert counts(session, release_id)["sent"] == 10
        note = session.scalars(select(Delivery.last_error).where(Delivery.subscriber_id == 4))
    assert len({rcpt for rcpt, _ in got}) == 10
    if logs == "both":
        assert again.reconciled == 1 and set(got.values()) == {1}  # exactly one each
        assert list(note) == [RECONCILED]
    else:
        assert again.reconciled == 0
        assert sorted(got.values()) == [1] * 9 + [2]  # p03: a second copy, never none


def test_a_confirmation_email_fails_over_too(
    base: Settings, busy: BusyServer, second: SMTPServer
) -> None:
    s = relays(base, busy.url, second.url)
    add_topics(s, "climate")
    with session_scope(s) as session:
        request = record_request(
            session, s, email="new@example.com", name="N", language="en", topics=["climate"],
            consent=Consent("192.0.2.7", "test"),
        )  # fmt: skip
    assert sending.send_confirmation(s, request.id) == "sent"
    assert busy.connections == 1 and [m.rcpt for m in second.handler.messages] == [
        "new@example.com"
    ]


# -- the back-off is shared by every worker ---------------------------------------------------

OTHER_WORKER = (
    "from distributor.outbox import sending; from distributor.core.config import load_settings; "
    "print(sending.send_batch(load_settings(), {release_id}).outcomes)"
)


def test_a_relay_one_worker_found_down_is_skipped_by_the_others(
    base: Settings, busy: BusyServer, second: SMTPServer
) -> None:
    s = relays(base, busy.url, second.url, batch_size=5)
    release_id = published(s, 10)
    assert sending.send_batch(s, release_id).outcomes["sent"] == 5
    assert busy.connections == 1
    # Another worker process, which never saw the relay fail itself: it asks Redis.
    other = subprocess.run(
        [sys.executable, "-c", OTHER_WORKER.format(release_id=release_id)],
        env=settings_env(s), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert other.returncode == 0, other.stderr
    assert "'sent': 5" in other.stdout
    assert busy.connections == 1  # not tried by the other worker
    assert set(copies(second).values()) == {1} and len(copies(second)) == 10


def test_without_redis_each_process_keeps_its_own_backoffs(
    base: Settings, busy: BusyServer, second: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    s = relays(base, busy.url, second.url, batch_size=5, broker_url=nowhere)
    release_id = published(s, 10)
    assert sending.send_batch(s, release_id).outcomes["sent"] == 5
    assert sending.send_batch(s, release_id).outcomes["sent"] == 5
    assert busy.connections == 1  # this process remembers
    assert "relay back-offs: Redis unreachable" in caplog.text


def test_each_relays_log_settles_its_own_messages_and_an_unreadable_one_is_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = ["<release-1.1@example.org>", "<release-1.2@example.org>", "<release-1.3@example.org>"]
    postfix_log(tmp_path / "relay1.log", ids[:1])
    postfix_log(tmp_path / "relay2.log", ids[1:2])
    both = load_settings(reconcile_log=Path(f"{tmp_path}/relay1.log,{tmp_path}/relay2.log"))
    reconciler = open_reconciler(both)
    assert reconciler is not None and reconciler.accepted(ids) == set(ids[:2])
    gone = load_settings(reconcile_log=Path(f"{tmp_path}/gone.log,{tmp_path}/relay2.log"))
    assert already_accepted(open_reconciler(gone), ids) == {ids[1]}
    assert "cannot read 1 of the relays' logs" in caplog.text and "gone.log" in caplog.text
    none = load_settings(reconcile_log=Path(f"{tmp_path}/gone.log,{tmp_path}/gone2.log"))
    assert already_accepted(open_reconciler(none), ids) == set()
    assert "cannot reconcile 3 message(s) in doubt" in caplog.text
