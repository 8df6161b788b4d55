"""Dashboard sessions are server-side, random and revocable (issue 11, finding 1): the
secret key forges none, logout ends the session for every copy of the cookie, and a
session ends after two idle hours or twelve hours whatever happens — on SQLite and
PostgreSQL, with the stored times moved instead of sleeping."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner
from sqlalchemy import select, update

from distributor.core.admin_sessions import (
    SESSION_IDLE,
    SESSION_MAX_AGE,
    end_expired_sessions,
    find_session,
    start_session,
)
from distributor.core.apitokens import revoke, token_hash
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import AdminSession, ApiToken, utcnow
from distributor.web import create_app
from distributor.web.admin import SESSION_COOKIE
from tests import clients
from tests.clients import Dash
from tests.helpers import new_token

dash = clients.dash  # the dashboard fixture: an app, a logged-out browser, a token

NOW = utcnow().replace(microsecond=0)


def cookie_of(dash: Dash) -> str:
    value = dash.client.cookies.get(SESSION_COOKIE)
    assert value, "logged in"
    return value


def rows(settings: Settings) -> list[AdminSession]:
    with session_scope(settings) as session:
        return list(session.scalars(select(AdminSession).order_by(AdminSession.id)))


def token_id(settings: Settings, name: str = "press-desk") -> int:
    with session_scope(settings) as session:
        return session.scalars(select(ApiToken.id).where(ApiToken.name == name)).one()


def with_cookie(dash: Dash, value: str) -> TestClient:
    """A second browser that presents ``value`` as its session cookie."""
    other = TestClient(create_app(dash.settings), base_url="https://testserver")
    other.cookies.set(SESSION_COOKIE, value, path="/admin")
    return other


def opens_dashboard(client: TestClient) -> bool:
    """True if the dashboard opens; False if the cookie was presented and refused."""
    response = client.get("/admin", follow_redirects=False)
    if response.status_code == 200:
        return True
    # "?ended=1": the browser did send a session cookie, and it was turned away
    assert (response.status_code, response.headers["location"]) == (303, "/admin/login?ended=1")
    return False


def test_a_cookie_signed_with_the_known_key_opens_nothing(dash: Dash) -> None:
    """Before: the cookie was the token id signed with the secret key, so whoever knew the
    key (a placeholder, a leaked .env) made one for any token."""
    signer = TimestampSigner(
        list(dash.settings.effective_secret_key.split()), salt="distributor.admin-session",
        key_derivation="hmac",
    )  # fmt: skip
    forged = signer.sign(str(token_id(dash.settings))).decode("ascii")
    assert not opens_dashboard(with_cookie(dash, forged))
    assert rows(dash.settings) == []


def test_the_cookie_is_random_and_the_database_keeps_only_its_hash(dash: Dash) -> None:
    assert dash.login().status_code == 303
    first = cookie_of(dash)
    assert len(first) >= 43 and str(token_id(dash.settings)) not in first.split(".")
    [row] = rows(dash.settings)
    assert row.session_hash == token_hash(first) and first not in row.session_hash
    assert row.token_id == token_id(dash.settings)
    assert row.expires_at - row.created_at == SESSION_MAX_AGE
    # Logging in again gives a new id and ends the one the browser had.
    assert dash.login().status_code == 303
    second = cookie_of(dash)
    assert second != first
    assert [r.session_hash for r in rows(dash.settings)] == [token_hash(second)]
    assert not opens_dashboard(with_cookie(dash, first))


def test_a_cookie_replayed_after_logout_is_refused(dash: Dash) -> None:
    assert dash.login().status_code == 303
    stolen = cookie_of(dash)
    assert opens_dashboard(with_cookie(dash, stolen))  # a copy works while the session lives
    logout = dash.post("/admin/logout")
    assert (logout.status_code, logout.headers["location"]) == (303, "/admin/login")
    assert rows(dash.settings) == []
    replay = with_cookie(dash, stolen)
    response = replay.get("/admin", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/admin/login?ended=1")
    release_page = replay.get("/admin/releases/1/progress.json")
    assert release_page.status_code == 401


def test_a_session_ends_after_two_idle_hours(dash: Dash) -> None:
    assert dash.login().status_code == 303
    # Used 1 h 59 min ago: still open, and the use is recorded.
    with session_scope(dash.settings) as session:
        session.execute(update(AdminSession).values(last_seen_at=utcnow() - SESSION_IDLE
                                                    + timedelta(minutes=1)))  # fmt: skip
    assert opens_dashboard(dash.client)
    [row] = rows(dash.settings)
    assert utcnow() - row.last_seen_at < timedelta(minutes=1)
    # Not used for two hours: ended, and the row is gone.
    with session_scope(dash.settings) as session:
        session.execute(update(AdminSession).values(last_seen_at=utcnow() - SESSION_IDLE))
    response = dash.client.get("/admin", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/admin/login?ended=1")
    assert rows(dash.settings) == []


def test_a_session_ends_twelve_hours_after_login_however_busy(dash: Dash) -> None:
    assert dash.login().status_code == 303
    with session_scope(dash.settings) as session:
        session.execute(update(AdminSession).values(
            created_at=utcnow() - SESSION_MAX_AGE, expires_at=utcnow(),
        ))  # fmt: skip
    assert not opens_dashboard(dash.client)  # used a second ago, and ended all the same
    assert rows(dash.settings) == []


def test_revoking_the_token_ends_every_session_it_has(dash: Dash) -> None:
    new_token(dash.settings, "night-desk", ["releases"])
    press, night = token_id(dash.settings), token_id(dash.settings, "night-desk")
    with session_scope(dash.settings) as session:
        values = {"laptop": start_session(session, press), "phone": start_session(session, press),
                  "night": start_session(session, night)}  # fmt: skip
    browsers = {name: with_cookie(dash, value) for name, value in values.items()}
    assert all(opens_dashboard(browser) for browser in browsers.values())
    with session_scope(dash.settings) as session:
        revoke(session, "press-desk")
    assert not opens_dashboard(browsers["laptop"])
    # The phone's session went with it, before the phone came back; night-desk's stays.
    assert [r.token_id for r in rows(dash.settings)] == [night]
    assert not opens_dashboard(browsers["phone"])
    assert opens_dashboard(browsers["night"])


def test_the_clock_decides_and_expired_rows_are_cleaned_up(settings: Settings) -> None:
    """The domain functions with an injected clock: idle and absolute limits to the second,
    uses recorded to the minute, and every expired row deleted at the next login."""
    new_token(settings, "desk", ["releases"])
    tid = token_id(settings, "desk")
    with session_scope(settings) as session:
        busy = start_session(session, tid, NOW)
        idle = start_session(session, tid, NOW)
    step = SESSION_IDLE - timedelta(seconds=1)
    moment = NOW
    while moment + step < NOW + SESSION_MAX_AGE:  # used just often enough all day long
        moment += step
        with session_scope(settings) as session:
            assert find_session(session, busy, moment) is not None, moment - NOW
    with session_scope(settings) as session:
        assert find_session(session, busy, NOW + SESSION_MAX_AGE) is None
        assert find_session(session, idle, NOW + SESSION_IDLE) is None
        assert find_session(session, "x" * 500, NOW) is None
        assert find_session(session, "", NOW) is None
    assert rows(settings) == []  # both deleted when presented
    # Seen again within the minute: not written (a dashboard read takes no write lock).
    with session_scope(settings) as session:
        fresh = start_session(session, tid, NOW)
        assert find_session(session, fresh, NOW + timedelta(seconds=59)) is not None
    assert [r.last_seen_at for r in rows(settings)] == [NOW]
    # Rows nobody presents again are deleted at the next login.
    with session_scope(settings) as session:
        start_session(session, tid, NOW - SESSION_IDLE)  # idle since
        start_session(session, tid, NOW - SESSION_MAX_AGE)  # over
    assert len(rows(settings)) == 3
    with session_scope(settings) as session:
        start_session(session, tid, NOW)
    assert [r.created_at for r in rows(settings)] == [NOW, NOW]
    with session_scope(settings) as session:
        assert end_expired_sessions(session, NOW + SESSION_IDLE) == 2


@pytest.mark.parametrize("value", ["", "not-a-session", "1.forged.sig", "A" * 101, "%00" * 30])
def test_garbage_cookies_are_no_session(dash: Dash, value: str) -> None:
    dash.client.cookies.set(SESSION_COOKIE, value, path="/admin")
    assert not opens_dashboard(dash.client)
