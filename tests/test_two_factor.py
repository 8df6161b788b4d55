"""Two-factor login (one-time codes from an authenticator app), as a press officer lives it:
setting it up from the workspace with a QR code, logging in with password then code, a code
that works once, guessing throttled like passwords, a role that must have it sent to set it
up before anything else, and an admin taking it off for a lost phone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor import actions
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import InputError, Unauthorized
from distributor.core.models import AuditEvent, User
from distributor.office import totp
from distributor.office.accounts import create_user
from distributor.web import create_app
from tests.helpers import csrf_of

EMAIL, PASSWORD = "camille@example.org", "a long enough password"


@pytest.fixture
def s(sqlite_settings: Settings, redis_url: str) -> Settings:
    # SQLite only: the codes, the steps and the pages do not depend on the database (the
    # accounts and throttle beneath them are tested on both, in test_accounts.py and
    # test_login_throttle.py), and each login hashes with argon2.
    return sqlite_settings.model_copy(update={"broker_url": redis_url})


def browser(s: Settings) -> TestClient:
    return TestClient(create_app(s), base_url="https://testserver")


def password_step(client: TestClient, email: str = EMAIL, password: str = PASSWORD) -> object:
    page = client.get("/admin/login")
    data = {"email": email, "password": password, "csrf": csrf_of(page.text)}
    return client.post("/admin/login", data=data, follow_redirects=False)


def code_step(client: TestClient, code: str) -> object:
    page = client.get("/admin/login/code")
    data = {"code": code, "csrf": csrf_of(page.text)}
    return client.post("/admin/login/code", data=data, follow_redirects=False)


def secret_of(s: Settings, email: str = EMAIL) -> str:
    with session_scope(s) as session:
        secret = session.scalars(select(User.totp_secret).where(User.email == email)).one()
    assert secret is not None
    return secret


def next_code(secret: str) -> str:
    """The code the app shows in the next 30 seconds: the one of now went to the enrolment
    (a code works once)."""
    return pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=totp.STEP_SECONDS))


def enrolled(s: Settings, role: str = "admin", email: str = EMAIL) -> str:
    """An account with two-factor login on; its secret."""
    with session_scope(s) as session:
        user = create_user(session, email, role, PASSWORD)
        secret = totp.start_enrolment(user)
        totp.confirm_enrolment(user, pyotp.TOTP(secret).now())
    return secret


def test_setting_it_up_from_the_workspace(s: Settings) -> None:
    with session_scope(s) as session:
        create_user(session, EMAIL, "writer", PASSWORD, name="Camille")
    client = browser(s)
    assert password_step(client).headers["location"] == "/admin"  # type: ignore[attr-defined]
    page = client.get("/admin/account/2fa")
    assert "Set up two-factor login" in page.text and "<svg" not in page.text
    client.post("/admin/account/2fa/start", data={"csrf": csrf_of(page.text)})
    page = client.get("/admin/account/2fa")
    secret = secret_of(s)
    assert "<svg" in page.text and secret in page.text  # the QR code, and the key in letters
    wrong = client.post("/admin/account/2fa", data={"code": "000000", "csrf": csrf_of(page.text)})
    assert wrong.status_code == 422 and "this code is not right" in wrong.text
    right = pyotp.TOTP(secret).now()
    client.post("/admin/account/2fa", data={"code": right, "csrf": csrf_of(page.text)})
    assert "Two-factor login is on" in client.get("/admin/account/2fa").text
    with session_scope(s) as session:
        actions_done = [e.action for e in session.scalars(select(AuditEvent))]
    assert actions_done == ["user-2fa-on"]
    client.close()


def test_a_login_asks_for_the_code_after_the_password_and_a_code_works_once(s: Settings) -> None:
    secret = enrolled(s)
    client = browser(s)
    first = password_step(client)
    assert first.headers["location"] == "/admin/login/code"  # type: ignore[attr-defined]
    assert client.get("/admin", follow_redirects=False).status_code == 303  # no session yet
    refused = code_step(client, "123456" if pyotp.TOTP(secret).now() != "123456" else "654321")
    assert refused.status_code == 401 and "This code is not right" in refused.text  # type: ignore[attr-defined]
    code = next_code(secret)
    done = code_step(client, code)
    assert done.headers["location"] == "/admin"  # type: ignore[attr-defined]
    assert client.get("/admin").status_code == 200
    other = browser(s)
    password_step(other)
    again = code_step(other, code)  # the same code, seen over a shoulder
    assert again.status_code == 401  # type: ignore[attr-defined]
    client.close()
    other.close()


def test_guessing_codes_is_throttled_like_passwords(s: Settings) -> None:
    secret = enrolled(s)
    client = browser(s)
    password_step(client)
    for _ in range(5):
        code_step(client, "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    blocked = code_step(client, next_code(secret))
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers  # type: ignore[attr-defined]
    client.close()


def test_a_password_changed_meanwhile_ends_the_code_step(s: Settings) -> None:
    secret = enrolled(s)
    client = browser(s)
    password_step(client)
    with session_scope(s) as session:
        user = session.scalars(select(User).where(User.email == EMAIL)).one()
        user.password_changed_at = user.password_changed_at + timedelta(seconds=5)
    late = code_step(client, next_code(secret))
    assert late.status_code == 401 and "type your password again" in late.text  # type: ignore[attr-defined]
    client.close()


def test_a_role_that_must_have_it_sets_it_up_before_anything_else(s: Settings) -> None:
    required = s.model_copy(update={"require_totp": True})
    with session_scope(s) as session:
        create_user(session, EMAIL, "publisher", PASSWORD)
        create_user(session, "jo@example.org", "writer", PASSWORD)
    publisher, writer = browser(required), browser(required)
    password_step(publisher)
    sent = publisher.get("/admin/releases/1", follow_redirects=False)
    assert (sent.status_code, sent.headers["location"]) == (303, "/admin/account/2fa")
    assert "must log in with a one-time code" in publisher.get("/admin/account/2fa").text
    password_step(writer, "jo@example.org")
    assert writer.get("/admin").status_code == 200  # a writer is not asked
    publisher.close()
    writer.close()


def test_an_admin_takes_it_off_for_a_lost_phone(s: Settings) -> None:
    enrolled(s, role="publisher", email="jo@example.org")
    user = actions.reset_totp(s, "jo@example.org", "cli:root")
    assert user.totp_enabled_at is None
    client = browser(s)
    assert password_step(client, "jo@example.org").headers["location"] == "/admin"  # type: ignore[attr-defined]
    client.close()


def test_a_code_of_the_step_before_or_after_is_taken_and_older_ones_are_not(s: Settings) -> None:
    with session_scope(s) as session:
        user = create_user(session, EMAIL, "admin", PASSWORD)
        secret = totp.start_enrolment(user)
        now = datetime(2026, 12, 6, 9, 0, 15, tzinfo=UTC)
        maker = pyotp.TOTP(secret)
        with pytest.raises(InputError):
            totp.confirm_enrolment(user, maker.at(now - timedelta(seconds=61)), now)
        totp.confirm_enrolment(user, maker.at(now - timedelta(seconds=30)), now)  # a slow clock
        with pytest.raises(Unauthorized):  # the step already used
            totp.check_code(user, maker.at(now - timedelta(seconds=30)), now)
        totp.check_code(user, maker.at(now + timedelta(seconds=30)), now)  # a fast clock
        with pytest.raises(Unauthorized):  # now is older than the step just used
            totp.check_code(user, maker.at(now), now)
        later = now + timedelta(minutes=2)
        totp.check_code(user, " ".join(re.findall("...", maker.at(later))), later)  # "123 456"
