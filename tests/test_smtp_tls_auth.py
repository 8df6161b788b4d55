"""STARTTLS, SMTPS and SMTP AUTH against a real server (aiosmtpd) that offers them, through
the real send path: ``send_batch`` of a planned release, and a `distributor worker`
subprocess.

The server's certificate comes from a throwaway CA made for the run (trustme). The product
trusts it the way an operator trusts a private CA: the standard ``SSL_CERT_FILE`` variable,
which ``ssl.create_default_context()`` honours (OpenSSL's default verify paths). The
transport makes its TLS context once per process, so the in-process tests set the variable
and drop that cached context (:func:`trusting`); the worker test sets it in the worker's
environment, as an operator would.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import trustme
from sqlalchemy import select

from distributor import actions
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Delivery, Subscriber, SubscriberStatus
from distributor.core.queue import TaskQueue
from distributor.mail import transport
from distributor.mail.failover import PROCESS_HEALTH
from distributor.outbox import sending
from distributor.outbox.relay_health import KEY, relay_health
from distributor.reporting.status import release_status
from tests.helpers import add_subscribers, add_topics, make_release, published
from tests.processes import running_worker, wait_until
from tests.smtp_server import AuthAttempt, Login, SMTPServer

PEOPLE = ["ann@example.com", "bob@example.com", "cy@example.com"]
# Characters a URL must percent-encode: the transport must hand the relay the decoded password.
PASSWORD = "s3cret:p@ss/w%rd"


def _server_context(ca: trustme.CA) -> ssl.SSLContext:
    """A server-side TLS context with a certificate for 127.0.0.1 and localhost signed by
    ``ca``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """The run's throwaway certificate authority: the one the product is told to trust."""
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CA's certificate as a PEM file, what SSL_CERT_FILE names."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def trusting(ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This process trusts the throwaway CA (SSL_CERT_FILE), and only it, for the test."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    transport._tls_context.cache_clear()  # made once per process: made again with the CA
    yield ca_file
    transport._tls_context.cache_clear()


@pytest.fixture(scope="module")
def tls(ca: trustme.CA) -> ssl.SSLContext:
    """The server side of TLS, with a certificate the throwaway CA signed."""
    return _server_context(ca)


def _serving(server: SMTPServer) -> Iterator[SMTPServer]:
    server.start()
    yield server
    server.stop()


@pytest.fixture
def starttls_server(tls: ssl.SSLContext) -> Iterator[SMTPServer]:
    """Offers STARTTLS but takes mail in clear too: a client that skipped STARTTLS would be
    seen (its messages recorded without TLS) rather than refused."""
    yield from _serving(SMTPServer(starttls=tls))


@pytest.fixture
def smtps_server(tls: ssl.SSLContext) -> Iterator[SMTPServer]:
    yield from _serving(SMTPServer(implicit_tls=tls))


def _sent(settings: Settings, smtp_url: str) -> tuple[int, sending.BatchReport]:
    """Publish a release to PEOPLE and send its one batch through ``smtp_url``."""
    s = settings.model_copy(update={"smtp_url": smtp_url})
    release_id = published(s, PEOPLE)
    return release_id, sending.send_batch(s, release_id)


def _rows(settings: Settings, release_id: int) -> list[Delivery]:
    """The release's ledger rows, as the database has them now."""
    with session_scope(settings) as session:
        rows = list(session.scalars(select(Delivery).where(Delivery.release_id == release_id)))
        session.expunge_all()
    return rows


def _confirmed(settings: Settings) -> set[str]:
    """The addresses still confirmed (neither failed into a bounce nor otherwise dropped)."""
    with session_scope(settings) as session:
        return set(
            session.scalars(
                select(Subscriber.email).where(Subscriber.status == SubscriberStatus.CONFIRMED)
            )
        )


def test_starttls_delivers_every_message_over_tls(
    sqlite_settings: Settings, starttls_server: SMTPServer, trusting: Path
) -> None:
    """smtp+starttls:// upgrades the session before any mail: the server saw every message
    on an encrypted session, and the ledger has them sent."""
    release_id, report = _sent(sqlite_settings, starttls_server.url)
    assert report.outcomes == {"sent": 3, "deferred": 0, "failed": 0}
    received = starttls_server.handler.messages
    assert sorted(m.rcpt for m in received) == PEOPLE
    assert all(m.tls in ("TLSv1.2", "TLSv1.3") for m in received), [m.tls for m in received]
    assert {r.status for r in _rows(sqlite_settings, release_id)} == {"sent"}


def test_smtps_delivers_every_message_over_implicit_tls(
    sqlite_settings: Settings, smtps_server: SMTPServer, trusting: Path
) -> None:
    """smtps:// speaks TLS from the first byte (port 465 style): delivered, encrypted."""
    _, report = _sent(sqlite_settings, smtps_server.url)
    assert report.outcomes["sent"] == 3
    received = smtps_server.handler.messages
    assert sorted(m.rcpt for m in received) == PEOPLE
    assert all(m.tls in ("TLSv1.2", "TLSv1.3") for m in received)


@pytest.mark.parametrize(
    ("mechanism", "security"), [("PLAIN", "starttls"), ("LOGIN", "smtps")]
)  # fmt: skip
def test_auth_with_the_right_password_delivers_as_that_user(
    sqlite_settings: Settings, tls: ssl.SSLContext, trusting: Path, mechanism: str, security: str
) -> None:
    """The user name and (percent-decoded) password of DISTRIBUTOR_SMTP_URL log in, with the
    one mechanism the server offers, after TLS; every message went in that user's session.
    The server refuses mail without AUTH (530), so a transport that skipped the login, or
    sent a wrong password, could not pass."""
    server = SMTPServer(
        starttls=tls if security == "starttls" else None,
        implicit_tls=tls if security == "smtps" else None,
        users={"press@example.org": PASSWORD},
        auth_mechanisms=(mechanism,),
    ).start()
    try:
        release_id, report = _sent(sqlite_settings, server.url_for("press@example.org", PASSWORD))
    finally:
        server.stop()
    assert report.outcomes["sent"] == 3, _rows(sqlite_settings, release_id)[0].last_error
    received = server.handler.messages
    assert sorted(m.rcpt for m in received) == PEOPLE
    assert {m.login for m in received} == {Login("press@example.org", mechanism)}
    assert all(m.tls is not None for m in received)


@pytest.fixture
def auth_server(tls: ssl.SSLContext) -> Iterator[SMTPServer]:
    """STARTTLS, then AUTH required, for user press@example.org."""
    yield from _serving(SMTPServer(starttls=tls, users={"press@example.org": PASSWORD}))


def test_a_wrong_password_defers_the_rows_as_a_relay_error(
    settings: Settings, auth_server: SMTPServer, trusting: Path
) -> None:
    """535 to AUTH is the relay refusing us, not the recipients: nothing is sent, every row
    is deferred (to be retried once the password is fixed) with the relay's 535 in its
    error, and no subscriber is failed or marked bounced. The batch tries the password once,
    not once per row: providers lock an account, fail2ban bans an address, after a few.
    Once the URL has the right password, the deferred rows go out at their retry."""
    quick = settings.model_copy(update={"retry_base_seconds": 0.2})
    url = auth_server.url_for("press@example.org", "not-the-password")
    release_id, report = _sent(quick, url)
    assert auth_server.handler.messages == []
    assert report.outcomes == {"sent": 0, "deferred": 3, "failed": 0}
    rows = _rows(settings, release_id)
    assert {r.status for r in rows} == {"deferred"}
    assert all("535" in r.last_error and "127.0.0.1" in r.last_error for r in rows), [
        r.last_error for r in rows
    ]
    assert _confirmed(settings) == set(PEOPLE)
    # One login for the batch (smtplib tries each mechanism offered once), not one per row.
    assert auth_server.handler.auth_attempts == [
        AuthAttempt("press@example.org", "PLAIN", False),
        AuthAttempt("press@example.org", "LOGIN", False),
    ]

    fixed = quick.model_copy(
        update={"smtp_url": auth_server.url_for("press@example.org", PASSWORD)}
    )

    def all_sent() -> bool:
        sending.send_batch(fixed, release_id)  # what the sweep does once the retry is due
        return {r.status for r in _rows(fixed, release_id)} == {"sent"}

    wait_until(all_sent, 30, "the deferred rows to be sent with the right password")
    assert sorted(m.rcpt for m in auth_server.handler.messages) == PEOPLE


def test_no_credentials_for_a_relay_that_requires_them_fails_no_one(
    settings: Settings, auth_server: SMTPServer, trusting: Path
) -> None:
    """A URL without user:password for a relay that requires AUTH: the relay answers 530
    (authentication required) to MAIL FROM. That is about us, not the recipients' addresses:
    the rows are deferred with the reason, and nobody is failed or marked bounced."""
    release_id, report = _sent(settings, auth_server.url)
    assert auth_server.handler.messages == []
    assert report.outcomes == {"sent": 0, "deferred": 3, "failed": 0}
    rows = _rows(settings, release_id)
    assert {r.status for r in rows} == {"deferred"}
    assert {(r.smtp_code, r.last_error) for r in rows} == {
        (530, "sender refused: 5.7.0 Authentication required")
    }
    assert _confirmed(settings) == set(PEOPLE)


@pytest.mark.parametrize("refusal", ["wrong password", "no credentials", "untrusted certificate"])
def test_a_relay_refusing_the_configuration_is_skipped_for_the_next(
    sqlite_settings: Settings,
    auth_server: SMTPServer,
    smtp_server: SMTPServer,
    trusting: Path,
    redis_url: str,
    refusal: str,
) -> None:
    """With several relays, a first relay that refuses our password (535), wants a login we
    do not give (530) or shows a certificate no trusted CA signed is failed over at once:
    the second relay takes every message, the first is in back-off with the reason, and
    no row is failed."""
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(KEY + "*"):
        client.delete(key)
    PROCESS_HEALTH.clear()
    stranger = SMTPServer(starttls=_server_context(trustme.CA())).start()
    try:
        first = {
            "wrong password": auth_server.url_for("press@example.org", "not-the-password"),
            "no credentials": auth_server.url,
            "untrusted certificate": stranger.url,
        }[refusal]
        s = sqlite_settings.model_copy(
            update={"broker_url": redis_url, "smtp_url": f"{first},{smtp_server.url}"}
        )
        release_id = published(s, PEOPLE)
        report = sending.send_batch(s, release_id)
    finally:
        stranger.stop()
        PROCESS_HEALTH.clear()
    assert report.outcomes == {"sent": 3, "deferred": 0, "failed": 0}
    assert sorted(m.rcpt for m in smtp_server.handler.messages) == PEOPLE
    assert auth_server.handler.messages == [] and stranger.handler.messages == []
    first_name = "127.0.0.1:" + first.rsplit(":", 1)[1]
    health = relay_health(s)
    assert health is not None
    reason = health.down(first_name)
    expected = {"wrong password": "535", "no credentials": "Authentication required",
                "untrusted certificate": "CERTIFICATE_VERIFY_FAILED"}[refusal]  # fmt: skip
    assert reason is not None and expected in reason, reason
    client.close()


@pytest.mark.parametrize("security", ["starttls", "smtps"])
def test_a_certificate_from_an_untrusted_ca_is_refused(
    sqlite_settings: Settings, trusting: Path, security: str
) -> None:
    """A relay whose certificate no trusted CA signed (here: another throwaway CA) gets
    nothing: no message, not even in clear after a failed STARTTLS; the rows are deferred
    with the verification failure in their error."""
    stranger = _server_context(trustme.CA())
    server = SMTPServer(
        starttls=stranger if security == "starttls" else None,
        implicit_tls=stranger if security == "smtps" else None,
    ).start()
    try:
        release_id, report = _sent(sqlite_settings, server.url)
    finally:
        server.stop()
    assert server.handler.messages == []
    assert report.outcomes == {"sent": 0, "deferred": 3, "failed": 0}
    errors = {r.last_error for r in _rows(sqlite_settings, release_id)}
    assert all("CERTIFICATE_VERIFY_FAILED" in e for e in errors), errors


def test_starttls_asked_of_a_server_without_it_sends_nothing_in_clear(
    sqlite_settings: Settings, smtp_server: SMTPServer
) -> None:
    """smtp+starttls:// to a server that does not offer STARTTLS: no message goes out in
    clear; the rows are deferred, saying the relay does not offer STARTTLS."""
    release_id, report = _sent(sqlite_settings, smtp_server.url_for(scheme="smtp+starttls"))
    assert smtp_server.handler.messages == []
    assert report.outcomes == {"sent": 0, "deferred": 3, "failed": 0}
    errors = {r.last_error for r in _rows(sqlite_settings, release_id)}
    assert all("STARTTLS" in e for e in errors), errors


def test_the_worker_sends_over_starttls_with_auth_trusting_ssl_cert_file(
    sqlite_settings: Settings,
    auth_server: SMTPServer,
    ca_file: Path,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """The operator's path: a `distributor worker` whose environment names the private CA in
    SSL_CERT_FILE, DISTRIBUTOR_SMTP_URL=smtp+starttls://user:password@…: the release reaches
    every subscriber, over TLS, in the configured user's session."""
    live = sqlite_settings.model_copy(
        update={
            "broker_url": redis_url,
            "smtp_url": auth_server.url_for("press@example.org", PASSWORD),
        }
    )
    add_topics(live, "climate")
    add_subscribers(live, [(e, "P", "en", "climate") for e in PEOPLE])
    release = make_release(live)
    with running_worker(live, tmp_path / "logs", SSL_CERT_FILE=str(ca_file)):
        actions.publish(live, TaskQueue(live), release.id)

        def finished() -> bool:
            with session_scope(live) as session:
                st = release_status(session, release.id)
            return st.planned > 0 and st.open == 0

        wait_until(finished, 120, "the release to be sent")
    received = auth_server.handler.messages
    assert sorted(m.rcpt for m in received) == PEOPLE
    assert {m.login for m in received} == {Login("press@example.org", "PLAIN")}
    assert all(m.tls is not None for m in received)
