"""Secrets never logged (issue 6): the real code paths that handle a secret run with logging
at DEBUG captured — in this process (caplog) and in a `distributor` subprocess with
DISTRIBUTOR_LOG_LEVEL=DEBUG — and no secret shows up in any log line: the SMTP password,
the signing key, the database and broker passwords, API tokens (made, presented, refused),
the DKIM private key, and the unsubscribe and preferences tokens (capabilities: whoever has
one acts for the subscriber)."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.audience.subscription import Consent, record_request
from distributor.core.apitokens import authenticate, create_token
from distributor.core.config import Settings, configured_secrets, load_settings
from distributor.core.db import session_scope, upgrade
from distributor.core.errors import ConfigError, Unauthorized
from distributor.core.logs import MASK, RedactingFormatter, redact
from distributor.core.models import Subscriber
from distributor.core.urls import confirm_url, preferences_url, unsubscribe_url
from distributor.mail.dkim import load_signer
from distributor.mail.relays import open_transport
from distributor.web import create_app
from tests.conftest import truncate_pg
from tests.helpers import TEST_SECRET_KEY, add_subscribers, add_topics, free_port, release_text
from tests.processes import (
    NO_BROKER,
    invoke_cli,
    running_serve,
    settings_env,
    wait_until,
)
from tests.smtp_server import SMTPServer

SMTP_PASSWORD = "s3cret-smtp-Pw"
SECRET_KEY = TEST_SECRET_KEY  # strong: `serve` refuses a weak key
DB_PASSWORD = "s3cret-db-Pw"
BROKER_PASSWORD = "s3cret-broker-Pw"


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as a handler would write it (message, arguments, traceback),
    but the test client's own (httpx logs each URL it requests: the client side)."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(
        formatter.format(record) for record in caplog.records if not record.name.startswith("httpx")
    )


def assert_absent(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text, f"{secret!r} was logged"


# -- the formatter masks what slips through -------------------------------------------------


def test_every_log_line_masks_passwords_tokens_and_keys() -> None:
    secrets = configured_secrets(
        load_settings(
            secret_key=f"{SECRET_KEY} old-key-kept-for-rotation",
            smtp_url=f"smtp+starttls://user:{SMTP_PASSWORD}%21@mail.example:587",
            database_url=f"postgresql://app:{DB_PASSWORD}@db/app",
            broker_url="redis://:@redis:6379/0",
        )
    )
    assert set(secrets) >= {SECRET_KEY, "old-key-kept-for-rotation", SMTP_PASSWORD + "!"}
    formatter = RedactingFormatter("%(message)s", secrets)
    try:
        raise RuntimeError(f"cannot log in as user:{SMTP_PASSWORD}! with key {SECRET_KEY}")
    except RuntimeError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "connecting to %s with %s (token %s)",
            (f"smtps://u:{SMTP_PASSWORD}@h", DB_PASSWORD, "dst_" + "A" * 43),
            sys.exc_info(),
        )  # fmt: skip
    line = formatter.format(record)
    assert "smtps://u:***@h" in line and "token dst_***" in line and "RuntimeError" in line
    assert_absent(line, SMTP_PASSWORD, SECRET_KEY, DB_PASSWORD, "A" * 43)
    assert redact("https://user@example.org/", []) == "https://user@example.org/"
    assert redact('"GET /confirm/1.Y29uZmlybQ.AbCd?a=b HTTP/1.1"', []) == (
        '"GET /confirm/***?a=b HTTP/1.1"'
    )


TOKEN = "12.aGVsbG8.Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4"  # the shape of tokens.make_token's
SIGNATURE = TOKEN.rsplit(".", 1)[1]


@pytest.mark.parametrize(
    "path",
    [
        f"/preferences%2f{TOKEN}",
        f"/preferences%2F{TOKEN}",
        f"/unsubscribe%2f{TOKEN}",
        f"/confirm%2F{TOKEN}%2Fresend",
        f"%2Fpreferences%2F{TOKEN}",
        f"/pr%65ferences/{TOKEN}",
        f"/preferences%252f{TOKEN}",  # decoded twice by some proxy on the way
        f"/preferences/%31%32.aGVsbG8.{SIGNATURE}",
        f"//preferences/{TOKEN}",
        f"/preferences//{TOKEN}",
        f"/preferences/./{TOKEN}",
        f"/preferences/%2e/{TOKEN}",
        f"/PREFERENCES/{TOKEN}",
        f"/Unsubscribe/{TOKEN}",
        f"/preferences\\{TOKEN}",
        f"/preferences%5c{TOKEN}",
    ],
)
def test_a_personal_link_is_masked_however_it_is_spelled(path: str) -> None:
    """A server decodes the path before routing it, so every spelling that reaches the page
    (and those a reader could retype into one) hides the token in an access log line."""
    line = redact(f'127.0.0.1:5000 - "GET {path}?x=1 HTTP/1.1" 200', [])
    assert_absent(line, TOKEN, SIGNATURE)
    assert MASK in line and '?x=1 HTTP/1.1" 200' in line and "\n" not in line


def test_masking_decodes_nothing_else_and_lets_no_line_break_through() -> None:
    plain = '"GET /feeds/en/releases.atom?q=a%2Fb HTTP/1.1" 304'
    assert redact(plain, []) == plain
    forged = redact(f'"GET /preferences%2f{TOKEN}%0a127.0.0.1 - fake HTTP/1.1" 200', [])
    assert "\n" not in forged and TOKEN not in forged
    assert redact(f"/confirm/{TOKEN}/resend", []) == f"/confirm/{MASK}/resend"


# -- in this process, at DEBUG -------------------------------------------------------------


def test_smtp_login_failure_never_shows_the_password(
    debug_logs: pytest.LogCaptureFixture, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    url = f"smtp://press:{SMTP_PASSWORD}@127.0.0.1:{smtp_server.port}"
    settings = load_settings(data_dir=tmp_path, smtp_url=url, secret_key=SECRET_KEY)
    with open_transport(settings) as transport:
        result = transport.send("press@example.org", "ann@example.com", b"Subject: x\r\n\r\nx\r\n")
    assert result.code == 0  # the server offers no AUTH: the login fails
    assert_absent(result.message, SMTP_PASSWORD)  # recorded in the ledger
    assert_absent(logged(debug_logs), SMTP_PASSWORD)


def test_api_tokens_are_never_logged(
    debug_logs: pytest.LogCaptureFixture, sqlite_settings: Settings
) -> None:
    with session_scope(sqlite_settings) as session:
        token = create_token(session, "desk", ["subscribers"])
    with session_scope(sqlite_settings) as session:
        authenticate(session, token, "subscribers")
        for wrong in (token + "x", token[:-1], "dst_" + "B" * 43):
            with pytest.raises(Unauthorized) as refused:
                authenticate(session, wrong, "subscribers")
            assert_absent(str(refused.value), wrong)
    with TestClient(create_app(sqlite_settings)) as client:
        assert client.get(
            "/api/subscribers", headers={"Authorization": f"Bearer {token}"}
        ).is_success
        bad = client.get("/api/subscribers", headers={"Authorization": f"Bearer {token}x"})
        assert bad.status_code == 401
        assert_absent(bad.text, token)
    assert_absent(logged(debug_logs), token, token[4:], "B" * 43)


def test_unsubscribe_and_preferences_tokens_are_never_logged(
    debug_logs: pytest.LogCaptureFixture, sqlite_settings: Settings
) -> None:
    s = sqlite_settings.model_copy(update={"broker_url": NO_BROKER})
    add_topics(s, "climate")
    add_subscribers(s, [("ann@example.com", "Ann", "en", "climate")])
    with session_scope(s) as session:
        ann, nonce = session.execute(select(Subscriber.id, Subscriber.link_nonce)).one()
    unsubscribe, preferences = unsubscribe_url(s, ann, nonce), preferences_url(s, ann, nonce)
    tokens = [unsubscribe.rsplit("/", 1)[1], preferences.rsplit("/", 1)[1]]
    with TestClient(create_app(s)) as client:
        assert client.get(preferences.removeprefix(s.site_url)).status_code == 200
        one_click = client.post(
            unsubscribe.removeprefix(s.site_url), data={"List-Unsubscribe": "One-Click"}
        )
        assert one_click.status_code == 200
        client.post(
            "/unsubscribe/" + tokens[0] + "tampered", data={"List-Unsubscribe": "One-Click"}
        )
    assert_absent(logged(debug_logs), *tokens)


def test_dkim_key_contents_are_never_shown(
    debug_logs: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    body_lines = [line for line in pem.decode().splitlines() if "-----" not in line]
    broken = tmp_path / "broken.pem"
    broken.write_bytes(pem.replace(b"\n", b"\n#", 3))  # not a key any more, still its bytes
    broken.chmod(0o600)
    base = {"data_dir": tmp_path, "dkim_selector": "s1", "dkim_domain": "example.org"}
    with pytest.raises(ConfigError) as refused:
        load_signer(load_settings(dkim_key_file=broken, **base))
    assert_absent(str(refused.value), *body_lines)
    good = tmp_path / "good.pem"
    good.write_bytes(pem)
    good.chmod(0o600)
    signer = load_signer(load_settings(dkim_key_file=good, **base))
    assert signer is not None
    assert_absent(logged(debug_logs), *body_lines)


def test_the_settings_repr_shows_no_secret(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path,
        secret_key=SECRET_KEY,
        smtp_url=f"smtp+starttls://press:{SMTP_PASSWORD}@mail.example.org:587",
        database_url=f"postgresql://app:{DB_PASSWORD}@db.example.org/app",
    )
    assert_absent(repr(settings) + str(settings), SECRET_KEY, SMTP_PASSWORD, DB_PASSWORD)


# -- the `distributor` command at DEBUG (its main(), in this process) ------------------------


def test_the_cli_at_debug_logs_no_secret(pg_url: str, tmp_path: Path) -> None:
    user, _, rest = pg_url.partition("://")[2].partition("@")
    database_url = f"postgresql+psycopg://{user}:{DB_PASSWORD}@{rest}"  # trust: any password
    settings = load_settings(
        data_dir=tmp_path / "var",
        database_url=database_url,
        secret_key=SECRET_KEY,
        smtp_url=f"smtp+starttls://press:{SMTP_PASSWORD}@127.0.0.1:1",
        site_url="https://news.example.org",
    )
    truncate_pg(settings)  # the run's database: other tests left their rows (ids, slugs)
    env = {
        "DISTRIBUTOR_LOG_LEVEL": "DEBUG",
        # Nobody listens there: the publish logs that it could not wake the workers.
        "DISTRIBUTOR_BROKER_URL": f"redis://:{BROKER_PASSWORD}@127.0.0.1:1/0",
    }
    md = tmp_path / "release.md"
    md.write_text(release_text(topics="secrets"))
    outputs: list[subprocess.CompletedProcess[str]] = []
    for args in (
        ("db", "upgrade"),
        ("topics", "add", "secrets", "--name", "Secrets"),
        ("publish", str(md)),
        ("releases", "test", "1", "--to", "ann@example.com"),
        ("tokens", "create", "desk", "--scope", "subscribers"),
    ):
        outputs.append(invoke_cli(settings, *args, **env))
    assert outputs[0].returncode == 0, outputs[0].stderr
    assert outputs[2].returncode == 0, outputs[2].stderr
    assert "could not wake the workers" in outputs[2].stderr  # logged, and looked at
    token = outputs[4].stdout.strip()
    assert outputs[4].returncode == 0 and token.startswith("dst_"), outputs[4].stderr
    everything = "\n".join(o.stderr for o in outputs) + outputs[0].stdout + outputs[2].stdout
    assert_absent(everything, SECRET_KEY, SMTP_PASSWORD, DB_PASSWORD, BROKER_PASSWORD, token)


def test_the_access_log_shows_no_personal_link(tmp_path: Path) -> None:
    """`distributor serve --access-log` logs each request line as uvicorn formats it, with
    the token of an unsubscribe, preferences or confirmation link masked."""
    s = load_settings(data_dir=tmp_path / "var", secret_key=SECRET_KEY, broker_url=NO_BROKER,
                      site_url="https://news.example.org")  # fmt: skip
    upgrade(s)
    add_topics(s, "climate")
    add_subscribers(s, [("ann@example.com", "Ann", "en", "climate")])
    with session_scope(s) as session:
        ann, nonce = session.execute(select(Subscriber.id, Subscriber.link_nonce)).one()
        consent = Consent("192.0.2.1", "test")
        asked = record_request(session, s, email="bob@example.com", name="", language="en",
                               topics=["climate"], consent=consent)  # fmt: skip
    links = [unsubscribe_url(s, ann, nonce), preferences_url(s, ann, nonce),
             confirm_url(s, asked.id, asked.nonce)]  # fmt: skip
    port, log = free_port(), tmp_path / "serve.log"
    with (
        running_serve(settings_env(s), log, port, "--access-log",
                      ready=lambda status: status in (200, 503)),  # no broker: 503
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):  # fmt: skip
        for link in links:
            assert client.get(link.removeprefix(s.site_url) + "?x=1").status_code == 200
        # The server decodes the path before routing it: an encoded slash reaches the page.
        encoded = links[1].removeprefix(s.site_url).replace("/", "%2f").replace("%2f", "/", 1)
        assert client.get(encoded + "?x=2").status_code == 200
        wait_until(lambda: "?x=2" in log.read_text(), 10, "four access log lines")
    text = log.read_text()
    assert '"GET /unsubscribe/***?x=1 HTTP/1.1" 200' in text, text
    assert "GET /preferences/***?x=1" in text and "GET /confirm/***?x=1" in text
    assert '"GET /preferences/***?x=2 HTTP/1.1" 200' in text, text
    assert_absent(text, *(link.rsplit("/", 1)[1] for link in links))


CELERY_LOGS = """
import logging
from worker.app import app
app.log.setup(loglevel="INFO", colorize=False)  # what `distributor worker` does at start
logging.getLogger("distributor.outbox.sending").warning("sent to %s with %s", {link!r}, {token!r})
logging.getLogger("distributor.outbox.sending").warning("signed with %s", {key!r})
"""

# A command that logs the signing key, run by the CLI's own entry point (its logging set-up).
CLI_LOGS = """
import logging
from distributor.cli import commands
commands.app = lambda: logging.getLogger("distributor.cli").warning("signed with %s", {key!r})
commands.main()
"""


def test_the_cli_masks_the_configured_secrets_in_what_it_logs(tmp_path: Path) -> None:
    """The signing key has no shape a pattern could find: the CLI masks it because it was
    handed the Settings' secrets."""
    s = load_settings(data_dir=tmp_path / "var", secret_key=SECRET_KEY, broker_url=NO_BROKER)
    out = subprocess.run(
        [sys.executable, "-c", CLI_LOGS.format(key=SECRET_KEY)],
        env=settings_env(s), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "distributor.cli: signed with ***" in out.stderr, out.stderr
    assert_absent(out.stderr, SECRET_KEY)


def test_the_worker_logs_through_celery_show_no_secret(tmp_path: Path) -> None:
    """Celery replaces the root logger's handlers with its own: they mask secrets too."""
    s = load_settings(data_dir=tmp_path / "var", secret_key=SECRET_KEY, broker_url=NO_BROKER)
    link, token = unsubscribe_url(s, 7, "some-link-nonce"), "dst_" + "B" * 43
    out = subprocess.run(
        [sys.executable, "-c", CELERY_LOGS.format(link=link, token=token, key=SECRET_KEY)],
        env=settings_env(s), capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).parent.parent,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "WARNING/MainProcess] sent to http://localhost:8000/unsubscribe/*** with dst_***" in (
        out.stderr
    ), out.stderr
    assert "WARNING/MainProcess] signed with ***" in out.stderr, out.stderr
    assert_absent(out.stderr, link.rsplit("/", 1)[1], "B" * 43, SECRET_KEY)
