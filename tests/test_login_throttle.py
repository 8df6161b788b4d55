"""Password guessing is throttled (issue 14): four wrong passwords cost nothing, the fifth
blocks the account for a minute, each further one doubles it; twenty failures from one
client address block that address whatever account it tries. An address without an
account is throttled exactly as one with, so the throttle tells no one who exists. The
clock is passed in (no sleeping); then the same through the dashboard's login form."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from distributor import actions
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import TooManyAttempts
from distributor.core.models import utcnow
from distributor.office import accounts, logins
from distributor.web import create_app
from distributor.web.admin import SESSION_COOKIE
from tests import clients
from tests.clients import Dash
from tests.helpers import csrf_of

dash = clients.dash  # the dashboard fixture: an app, a logged-out browser, a token

T0 = utcnow().replace(microsecond=0)
PASSWORD = "correct horse battery staple"
WRONG = "not the password at all"


def fail(settings: Settings, email: str, address: str, now: datetime) -> None:
    with session_scope(settings) as session:
        logins.record_failure(session, email, address, now=now)


def wait_for(settings: Settings, email: str, address: str, now: datetime) -> int | None:
    """The seconds to wait before ``email`` may be tried from ``address``; None if now."""
    with session_scope(settings) as session:
        try:
            logins.check_allowed(session, email, address, now=now)
        except TooManyAttempts as exc:
            return exc.retry_after
    return None


def make_account(settings: Settings, email: str, role: str = "writer") -> None:
    with session_scope(settings) as session:
        accounts.create_user(session, email, role, PASSWORD)


def timeline(settings: Settings, email: str, address: str) -> list[int | None]:
    """What the throttle answers along a run of failures for ``email`` from ``address``:
    the wait after each of 6 failures (each tried as soon as allowed), then a while later."""
    seen: list[int | None] = []
    now = T0
    for _ in range(6):
        fail(settings, email, address, now)
        wait = wait_for(settings, email, address, now)
        seen.append(wait)
        now += timedelta(seconds=wait or 1)
    seen.append(wait_for(settings, email, address, now + timedelta(minutes=3)))
    return seen


def test_the_fifth_failure_blocks_the_account_for_a_minute_and_the_next_doubles_it(
    settings: Settings,
) -> None:
    make_account(settings, "camille@example.org")
    email, address = "camille@example.org", "198.51.100.7"
    for n in range(4):
        fail(settings, email, address, T0 + timedelta(seconds=n))
        assert wait_for(settings, email, address, T0 + timedelta(seconds=n)) is None
    fail(settings, email, address, T0 + timedelta(seconds=4))
    first = wait_for(settings, email, address, T0 + timedelta(seconds=4))
    assert first is not None and 60 <= first <= 61
    halfway = wait_for(settings, email, address, T0 + timedelta(seconds=34))
    assert halfway is not None and 30 <= halfway <= 31
    # From another client address too: it is the account that is blocked.
    assert wait_for(settings, "Camille@Example.org", "203.0.113.5", T0 + timedelta(seconds=34))
    # A minute later it may be tried again; one more failure blocks it for two minutes.
    later = T0 + timedelta(seconds=65)
    assert wait_for(settings, email, address, later) is None
    fail(settings, email, address, later)
    second = wait_for(settings, email, address, later)
    assert second is not None and 120 <= second <= 121
    # Other accounts are not concerned.
    assert wait_for(settings, "remi@example.org", "203.0.113.5", later) is None


def test_the_block_grows_to_an_hour_at_most(settings: Settings) -> None:
    now = T0
    for _ in range(4):
        fail(settings, "camille@example.org", "", now)
    waits = []
    for _ in range(10):
        fail(settings, "camille@example.org", "", now)
        wait = wait_for(settings, "camille@example.org", "", now)
        assert wait is not None
        waits.append(wait // 60)
        now += timedelta(seconds=wait)
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]


def test_an_address_without_an_account_is_throttled_exactly_like_one_with(
    settings: Settings,
) -> None:
    """Otherwise an attacker would learn which addresses have accounts from the throttle."""
    make_account(settings, "camille@example.org")
    real = timeline(settings, "camille@example.org", "198.51.100.7")
    nobody = timeline(settings, "nobody@example.org", "198.51.100.8")
    assert real == nobody
    assert real[:4] == [None] * 4 and real[4] and real[5] and real[6] is None


def test_twenty_failures_from_one_client_address_block_it_for_every_account(
    settings: Settings,
) -> None:
    attacker = "192.0.2.66"
    for n in range(19):  # one guess at each of 19 accounts: no account reaches its limit
        fail(settings, f"user{n}@example.org", attacker, T0)
    assert wait_for(settings, "someone-else@example.org", attacker, T0) is None
    fail(settings, "user19@example.org", attacker, T0)
    wait = wait_for(settings, "someone-else@example.org", attacker, T0)
    assert wait is not None and 60 <= wait <= 61
    # Only that client address: the same accounts from elsewhere may still log in.
    assert wait_for(settings, "user0@example.org", "192.0.2.67", T0) is None


def test_a_good_login_clears_the_accounts_count_but_not_the_client_addresss(
    settings: Settings,
) -> None:
    email, here, there = "camille@example.org", "198.51.100.7", "198.51.100.99"
    for _ in range(4):
        fail(settings, email, here, T0)
    with session_scope(settings) as session:
        logins.record_success(session, email)
    for _ in range(4):  # four more: had the first four stayed counted, this would block
        fail(settings, email, there, T0)
    assert wait_for(settings, email, there, T0) is None
    # The client address kept its four: sixteen more failures make its twenty.
    for n in range(15):
        fail(settings, f"user{n}@example.org", here, T0)
    assert wait_for(settings, "user99@example.org", here, T0) is None
    fail(settings, "user15@example.org", here, T0)
    assert wait_for(settings, "user99@example.org", here, T0) is not None


def test_failures_a_day_old_are_forgotten(settings: Settings) -> None:
    for _ in range(4):
        fail(settings, "camille@example.org", "198.51.100.7", T0)
    # Another failure an hour later counts with the four: blocked.
    fail(settings, "camille@example.org", "198.51.100.7", T0 + timedelta(hours=1))
    assert wait_for(settings, "camille@example.org", "", T0 + timedelta(hours=1))
    # A day after, one failure is the first of a new count.
    next_day = T0 + timedelta(days=1, minutes=1)
    fail(settings, "camille@example.org", "198.51.100.7", next_day)
    assert wait_for(settings, "camille@example.org", "198.51.100.7", next_day) is None
    for _ in range(3):
        fail(settings, "camille@example.org", "198.51.100.7", next_day)
    assert wait_for(settings, "camille@example.org", "198.51.100.7", next_day) is None
    fail(settings, "camille@example.org", "198.51.100.7", next_day)
    assert wait_for(settings, "camille@example.org", "198.51.100.7", next_day) is not None


def test_another_spelling_of_the_address_counts_against_the_same_account(
    settings: Settings,
) -> None:
    """check_login accepts the account's address in any case, with a Unicode (here
    full-width) spelling of its domain: each spelling must not get its own free guesses."""
    make_account(settings, "camille@example.org")
    spellings = ["camille@example.org", "CAMILLE@Example.org", "camille@ｅｘａｍｐｌｅ.org"]
    with session_scope(settings) as session:
        for spelling in spellings:  # all of them are the account's address
            assert accounts.check_login(session, spelling, PASSWORD).email == "camille@example.org"
    for n in range(5):
        fail(settings, spellings[n % 3], f"198.51.100.{n}", T0)
    for spelling in spellings:
        assert wait_for(settings, spelling, "203.0.113.1", T0) is not None, spelling


# --- through the dashboard ----------------------------------------------------------------


def log_in(client: TestClient, email: str, password: str) -> httpx.Response:
    page = client.get("/admin/login")
    return client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )


def words(response: httpx.Response) -> str:
    """The page's text, without its (per-form) CSRF value."""
    return re.sub(r'name="csrf" value="[^"]+"', "", response.text)


def test_the_dashboard_logs_in_with_the_right_password(dash: Dash) -> None:
    make_account(dash.settings, "camille@example.org")
    response = log_in(dash.client, "Camille@Example.org", PASSWORD)
    assert (response.status_code, response.headers["location"]) == (303, "/admin")
    assert dash.client.cookies.get(SESSION_COOKIE)
    assert dash.client.get("/admin", follow_redirects=False).status_code == 200


def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(dash: Dash) -> None:
    make_account(dash.settings, "camille@example.org")
    wrong = log_in(dash.client, "camille@example.org", WRONG)
    unknown = log_in(dash.client, "nobody@example.org", WRONG)
    assert wrong.status_code == unknown.status_code == 401
    assert "Wrong email address or password." in wrong.text
    assert words(wrong) == words(unknown)
    assert not dash.client.cookies.get(SESSION_COOKIE)


def test_after_five_wrong_passwords_even_the_right_one_must_wait(dash: Dash) -> None:
    make_account(dash.settings, "camille@example.org")
    for _ in range(5):
        assert log_in(dash.client, "camille@example.org", WRONG).status_code == 401
    blocked = log_in(dash.client, "camille@example.org", PASSWORD)
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= 61
    assert "Too many failed logins" in blocked.text
    assert not dash.client.cookies.get(SESSION_COOKIE)
    assert dash.client.get("/admin", follow_redirects=False).status_code == 303
    # An address without an account answers the same after five.
    for _ in range(5):
        assert log_in(dash.client, "nobody@example.org", WRONG).status_code == 401
    assert log_in(dash.client, "nobody@example.org", WRONG).status_code == 429


def replayed(dash: Dash, value: str) -> httpx.Response:
    """A request of a fresh browser that presents ``value`` as its session cookie."""
    other = TestClient(create_app(dash.settings), base_url="https://testserver")
    other.cookies.set(SESSION_COOKIE, value, path="/admin")
    return other.get("/admin", follow_redirects=False)


def test_logging_out_ends_the_session_for_every_copy_of_the_cookie(dash: Dash) -> None:
    make_account(dash.settings, "camille@example.org")
    assert log_in(dash.client, "camille@example.org", PASSWORD).status_code == 303
    copy = dash.client.cookies.get(SESSION_COOKIE)
    assert copy and replayed(dash, copy).status_code == 200
    assert dash.post("/admin/logout").status_code == 303
    again = replayed(dash, copy)
    assert (again.status_code, again.headers["location"]) == (303, "/admin/login?ended=1")


@pytest.mark.parametrize("change", ["disable", "password"])
def test_disabling_or_a_new_password_ends_a_logged_in_browsers_session(
    dash: Dash, change: str
) -> None:
    make_account(dash.settings, "camille@example.org")
    assert log_in(dash.client, "camille@example.org", PASSWORD).status_code == 303
    assert dash.client.get("/admin", follow_redirects=False).status_code == 200
    if change == "disable":
        actions.disable_user(dash.settings, "camille@example.org", by="cli:root")
    else:
        actions.set_user_password(dash.settings, "camille@example.org", WRONG, by="cli:root")
    response = dash.client.get("/admin", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/admin/login?ended=1")
