"""The press office's named accounts (issue 14): one account per address however it is
typed, passwords that are checked with one answer for every wrong login, disabling that
ends sessions and stops tokens at once, an admin always left, and an audit record of
every change that never holds a password — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import argon2
import pytest
from sqlalchemy import func, select

from distributor import actions
from distributor.core import apitokens
from distributor.core.admin_sessions import find_session, start_session
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import Conflict, InputError, Unauthorized
from distributor.core.models import AuditEvent, User
from distributor.office import accounts

PASSWORD = "correct horse battery staple"
OTHER_PASSWORD = "a different passphrase entirely"
BY = "cli:press-admin"


def make(
    settings: Settings, email: str, role: str = "writer", password: str = PASSWORD, name: str = ""
) -> User:
    return actions.create_user(settings, email, role, password, by=BY, name=name)


def login(settings: Settings, email: str, password: str = PASSWORD) -> User:
    with session_scope(settings) as session:
        return accounts.check_login(session, email, password)


def refusal(settings: Settings, email: str, password: str) -> str:
    with pytest.raises(Unauthorized) as caught:
        login(settings, email, password)
    return str(caught.value)


def audit_events(settings: Settings) -> list[AuditEvent]:
    with session_scope(settings) as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def account_of(settings: Settings, email: str) -> User:
    with session_scope(settings) as session:
        return accounts.find_user(session, email)


def test_an_address_has_one_account_however_it_is_typed(settings: Settings) -> None:
    user = make(settings, "  Camille@Example.ORG ", name="Camille Martin")
    assert user.email == "camille@example.org"
    with session_scope(settings) as session:
        [listed] = accounts.list_users(session)
        assert (listed.email, listed.name) == ("camille@example.org", "Camille Martin")
    with pytest.raises(Conflict, match="already has an account"):
        make(settings, "camille@EXAMPLE.org", role="admin")
    with session_scope(settings) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1
    assert login(settings, "CAMILLE@example.org").email == "camille@example.org"


@pytest.mark.parametrize(
    ("role", "password", "field"),
    [
        ("editor", PASSWORD, "role"),
        ("writer", "elevenchars", "password"),
        ("writer", "x" * 1025, "password"),
    ],
)
def test_an_unknown_role_or_a_bad_password_is_refused_naming_the_field(
    settings: Settings, role: str, password: str, field: str
) -> None:
    with pytest.raises(InputError) as caught:
        make(settings, "camille@example.org", role=role, password=password)
    assert caught.value.field == field and field in str(caught.value)
    with session_scope(settings) as session:
        assert accounts.list_users(session) == []
    assert audit_events(settings) == []


def test_the_right_password_logs_in_and_records_when(settings: Settings) -> None:
    make(settings, "camille@example.org")
    assert account_of(settings, "camille@example.org").last_login_at is None
    assert login(settings, "camille@example.org").email == "camille@example.org"
    assert account_of(settings, "camille@example.org").last_login_at is not None


def test_every_wrong_login_gets_the_same_answer(settings: Settings) -> None:
    """Whether an address has an account must not be learnt from the answer."""
    make(settings, "camille@example.org")
    make(settings, "remi@example.org")
    actions.disable_user(settings, "remi@example.org", by=BY)
    answers = {
        "wrong password": refusal(settings, "camille@example.org", OTHER_PASSWORD),
        "unknown address": refusal(settings, "nobody@example.org", PASSWORD),
        "disabled account": refusal(settings, "remi@example.org", PASSWORD),
        "malformed address": refusal(settings, "not an address", PASSWORD),
        "empty password": refusal(settings, "camille@example.org", ""),
    }
    assert set(answers.values()) == {accounts.WRONG_LOGIN}, answers


def test_a_hash_made_with_weaker_parameters_is_replaced_at_the_next_good_login(
    settings: Settings,
) -> None:
    make(settings, "camille@example.org")
    weak = argon2.PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)
    with session_scope(settings) as session:
        accounts.find_user(session, "camille@example.org").password_hash = weak
    with pytest.raises(Unauthorized):  # a wrong password changes nothing
        login(settings, "camille@example.org", OTHER_PASSWORD)
    assert account_of(settings, "camille@example.org").password_hash == weak
    login(settings, "camille@example.org")
    renewed = account_of(settings, "camille@example.org").password_hash
    assert renewed != weak
    params, default = argon2.extract_parameters(renewed), argon2.PasswordHasher()
    assert (params.time_cost, params.memory_cost) == (default.time_cost, default.memory_cost)
    assert params.type is argon2.Type.ID
    login(settings, "camille@example.org")  # and the same password still opens it


def session_of(settings: Settings, email: str) -> str:
    with session_scope(settings) as session:
        return start_session(session, user_id=accounts.find_user(session, email).id)


def session_alive(settings: Settings, value: str) -> bool:
    with session_scope(settings) as session:
        return find_session(session, value) is not None


def token_works(settings: Settings, token: str) -> bool:
    with session_scope(settings) as session:
        try:
            apitokens.authenticate(session, token, "releases")
        except Unauthorized:
            return False
    return True


def test_disabling_ends_sessions_and_stops_tokens_and_enabling_lets_them_log_in_again(
    settings: Settings,
) -> None:
    user = make(settings, "camille@example.org")
    colleague = make(settings, "remi@example.org")
    laptop, phone = (session_of(settings, "camille@example.org") for _ in range(2))
    theirs = session_of(settings, "remi@example.org")
    with session_scope(settings) as session:
        token = apitokens.create_token(session, "camille-bot", ["releases"], user.id)
        other_token = apitokens.create_token(session, "remi-bot", ["releases"], colleague.id)
    assert session_alive(settings, laptop) and token_works(settings, token)

    actions.disable_user(settings, "camille@example.org", by=BY)
    assert not session_alive(settings, laptop) and not session_alive(settings, phone)
    assert not token_works(settings, token)
    assert refusal(settings, "camille@example.org", PASSWORD) == accounts.WRONG_LOGIN
    # The colleague's are untouched.
    assert session_alive(settings, theirs) and token_works(settings, other_token)

    actions.enable_user(settings, "camille@example.org", by=BY)
    assert login(settings, "camille@example.org").disabled_at is None
    assert token_works(settings, token)
    assert not session_alive(settings, laptop)  # ended sessions stay ended


def test_a_new_password_ends_sessions_and_the_old_one_stops_working(settings: Settings) -> None:
    make(settings, "camille@example.org")
    laptop = session_of(settings, "camille@example.org")
    actions.set_user_password(settings, "Camille@example.org", OTHER_PASSWORD, by=BY)
    assert not session_alive(settings, laptop)
    assert refusal(settings, "camille@example.org", PASSWORD) == accounts.WRONG_LOGIN
    assert login(settings, "camille@example.org", OTHER_PASSWORD)
    with pytest.raises(InputError) as caught:  # the same rules as at creation
        actions.set_user_password(settings, "camille@example.org", "short", by=BY)
    assert caught.value.field == "password"


def test_the_last_enabled_admin_can_be_neither_disabled_nor_demoted(settings: Settings) -> None:
    make(settings, "ada@example.org", role="admin")
    make(settings, "camille@example.org", role="publisher")
    with pytest.raises(Conflict, match="last enabled admin"):
        actions.disable_user(settings, "ada@example.org", by=BY)
    with pytest.raises(Conflict, match="last enabled admin"):
        actions.set_user_role(settings, "ada@example.org", "publisher", by=BY)
    assert account_of(settings, "ada@example.org").role == "admin"
    assert account_of(settings, "ada@example.org").disabled_at is None
    assert [e.action for e in audit_events(settings)] == ["user-create", "user-create"]

    actions.set_user_role(settings, "camille@example.org", "admin", by=BY)
    actions.set_user_role(settings, "ada@example.org", "writer", by=BY)  # now allowed
    actions.set_user_role(settings, "ada@example.org", "admin", by=BY)
    actions.disable_user(settings, "ada@example.org", by=BY)  # camille is an admin too
    # A disabled admin does not count: camille is now the last one.
    with pytest.raises(Conflict, match="last enabled admin"):
        actions.disable_user(settings, "camille@example.org", by=BY)
    with pytest.raises(Conflict, match="last enabled admin"):
        actions.set_user_role(settings, "camille@example.org", "writer", by=BY)


def test_each_change_to_an_account_adds_one_audit_event_without_the_password(
    settings: Settings,
) -> None:
    make(settings, "ada@example.org", role="admin")  # so that camille's changes are allowed
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("user-create", lambda: actions.create_user(
            settings, "camille@example.org", "writer", PASSWORD, by="user:ada@example.org")),
        ("user-role", lambda: actions.set_user_role(
            settings, "camille@example.org", "publisher", by="user:ada@example.org")),
        ("user-password", lambda: actions.set_user_password(
            settings, "camille@example.org", OTHER_PASSWORD, by="user:ada@example.org")),
        ("user-disable", lambda: actions.disable_user(
            settings, "camille@example.org", by="user:ada@example.org")),
        ("user-enable", lambda: actions.enable_user(
            settings, "camille@example.org", by="user:ada@example.org")),
    ]  # fmt: skip
    for action, step in steps:
        before = len(audit_events(settings))
        step()
        after = audit_events(settings)
        assert len(after) == before + 1, action
        event = after[-1]
        assert (event.action, event.actor, event.subject) == (
            action, "user:ada@example.org", "user camille@example.org",
        )  # fmt: skip
    [role] = [e for e in audit_events(settings) if e.action == "user-role"]
    assert role.details == {"role": "publisher", "was": "writer"}
    for event in audit_events(settings):
        text = f"{event.subject} {event.details}"
        assert PASSWORD not in text and OTHER_PASSWORD not in text
        assert "$argon2" not in text  # nor its hash
