"""`/api/users` as an admin's script uses it, on SQLite and PostgreSQL: accounts created,
listed and read (never a password, hash, two-factor secret or token in an answer); roles
changed, accounts disabled and enabled (a disabled account's sessions and tokens stop at
once), passwords set, two-factor login taken off; people invited (the email reaching a
real SMTP server), invitations listed and cancelled. Each refusal says what: 409 for an
address with an account and for leaving no admin, 422 naming the field, 404 for an id
nobody has, 403 for a writer's or a publisher's token. The trail names the admin and the
token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.core import apitokens
from distributor.core.audit import recent
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import InputError, Unauthorized
from distributor.core.models import ApiToken, Invitation, User, utcnow
from distributor.core.queue import QUEUE
from distributor.office import accounts
from distributor.outbox import sending
from distributor.web import create_app
from tests.clients import logged_in_as
from tests.corrections import text_part
from tests.helpers import queued_tasks
from tests.smtp_server import SMTPServer

ADMIN = "camille@example.org"
ADMIN_TOKEN = "camille-admin"
ACTOR = f"user:{ADMIN} (token:{ADMIN_TOKEN})"
PASSWORD = "a long enough password"
NEW_PASSWORD = "another long enough password"


@dataclass
class AccountsDesk:
    """An admin's script on the API (token with the users scope), and what is behind it."""

    settings: Settings
    client: TestClient
    admin_id: int
    token: str
    broker: redis.Redis

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> httpx.Response:
        auth = {"Authorization": f"Bearer {self.token}", **headers}
        return self.client.request(method, path, json=body, headers=auth)


@pytest.fixture
def desk(settings: Settings, redis_url: str, smtp_server: SMTPServer) -> Iterator[AccountsDesk]:
    s = settings.model_copy(update={"broker_url": redis_url, "smtp_url": smtp_server.url})
    broker = redis.Redis.from_url(redis_url)
    broker.delete(QUEUE)
    with session_scope(s) as session:
        admin = accounts.create_user(session, ADMIN, "admin", PASSWORD, name="Camille Martin")
        token = apitokens.create_token(session, ADMIN_TOKEN, ["users"], admin.id)
        admin_id = admin.id
    with TestClient(create_app(s)) as client:
        yield AccountsDesk(s, client, admin_id, token, broker)
    broker.delete(QUEUE)
    broker.close()


def made_account(desk: AccountsDesk, email: str, role: str = "writer") -> dict[str, Any]:
    """An account created through the API; its JSON."""
    answer = desk.call("POST", "/api/users", {"email": email, "role": role, "password": PASSWORD})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def refusal_of(answer: httpx.Response) -> tuple[int, str | None, str]:
    """A refusal as the API answers it: status, field, message."""
    body = answer.json()
    return answer.status_code, body["field"], body["error"]


def token_of_account(settings: Settings, email: str, name: str) -> str:
    """A new API token (releases scope) of the account of ``email``."""
    with session_scope(settings) as session:
        owner = accounts.find_user(session, email)
        return apitokens.create_token(session, name, ["releases"], owner.id)


def test_an_admin_creates_lists_and_reads_accounts_and_no_secret_is_answered(
    desk: AccountsDesk,
) -> None:
    made = desk.call("POST", "/api/users", {"email": "Jo@Example.org", "role": "writer",
                                            "name": "Jo Bloggs", "password": PASSWORD})  # fmt: skip
    assert made.status_code == 201, made.text
    jo = made.json()
    assert {k: jo[k] for k in ("email", "name", "role", "disabled_at", "two_factor")} == {
        "email": "jo@example.org", "name": "Jo Bloggs", "role": "writer",
        "disabled_at": None, "two_factor": False,
    }  # fmt: skip
    with session_scope(desk.settings) as session:
        assert accounts.check_login(session, "jo@example.org", PASSWORD).id == jo["id"]
        # A secret each kind: a two-factor secret on Jo, a token of Jo's.
        session.get_one(User, jo["id"]).totp_secret = "JBSWY3DPEHPK3PXPJBSWY3DP"
        session.get_one(User, jo["id"]).totp_enabled_at = utcnow()
        jos_token = apitokens.create_token(session, "jo-bot", ["releases"], jo["id"])
        hashes = [u.password_hash for u in session.scalars(select(User))]

    listed = desk.call("GET", "/api/users")
    assert listed.status_code == 200
    assert [(u["email"], u["role"]) for u in listed.json()] == [
        (ADMIN, "admin"), ("jo@example.org", "writer")]  # fmt: skip
    one = desk.call("GET", f"/api/users/{jo['id']}")
    assert one.status_code == 200 and one.json()["two_factor"] is True
    for answer in (made, listed, one):
        for secret in (PASSWORD, "JBSWY3DPEHPK3PXPJBSWY3DP", jos_token, desk.token, *hashes):
            assert secret not in answer.text
        assert "argon2" not in answer.text and "hash" not in answer.text

    with session_scope(desk.settings) as session:
        (event,) = recent(session, 10, "user-create")
    assert (event.actor, event.subject, event.details) == (
        ACTOR, "user jo@example.org", {"role": "writer"})  # fmt: skip


def test_each_refusal_says_what_and_where_and_changes_nothing(desk: AccountsDesk) -> None:
    made_account(desk, "jo@example.org")

    def create(**fields: Any) -> httpx.Response:
        return desk.call("POST", "/api/users", {"email": "sam@example.org", "role": "writer",
                                                "password": PASSWORD, **fields})  # fmt: skip

    status, field, message = refusal_of(create(email="JO@example.org"))
    assert (status, message) == (409, "jo@example.org already has an account")
    assert refusal_of(create(email="not an address"))[:2] == (422, "email")
    status, field, message = refusal_of(create(role="editor"))
    assert (status, field) == (422, "role") and "writer" in message
    status, field, message = refusal_of(create(password="short"))
    assert (status, field) == (422, "password") and "at least 12 characters" in message
    status, field, message = refusal_of(create(password=None))
    assert (status, field) == (422, "password") and "invite them instead" in message
    assert refusal_of(create(admin=True))[:2] == (422, "admin")  # an unknown field

    for method, path, body in [
        ("GET", "/api/users/999999", None),
        ("POST", "/api/users/999999/role", {"role": "admin"}),
        ("POST", "/api/users/999999/password", {"password": PASSWORD}),
        ("POST", "/api/users/999999/disable", None),
        ("POST", "/api/users/999999/enable", None),
        ("POST", "/api/users/999999/reset-2fa", None),
        ("DELETE", "/api/users/invitations/999999", None),
    ]:
        status, _, message = refusal_of(desk.call(method, path, body))
        assert status == 404 and "999999" in message, path
    assert [u["email"] for u in desk.call("GET", "/api/users").json()] == [
        ADMIN, "jo@example.org"]  # fmt: skip
    with session_scope(desk.settings) as session:
        assert [e.action for e in recent(session, 20)] == ["user-create"]


def test_a_repeated_create_with_its_idempotency_key_makes_one_account(desk: AccountsDesk) -> None:
    body = {"email": "jo@example.org", "role": "writer", "password": PASSWORD}
    first = desk.call("POST", "/api/users", body, **{"Idempotency-Key": "k-1"})
    again = desk.call("POST", "/api/users", body, **{"Idempotency-Key": "k-1"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = desk.call("POST", "/api/users", {**body, "email": "sam@example.org"},
                      **{"Idempotency-Key": "k-1"})  # fmt: skip
    assert refusal_of(other)[:2] == (422, "Idempotency-Key")
    assert len(desk.call("GET", "/api/users").json()) == 2
    with session_scope(desk.settings) as session:
        assert len(recent(session, 10, "user-create")) == 1


def test_roles_change_and_the_last_enabled_admin_stays_one(desk: AccountsDesk) -> None:
    me = f"/api/users/{desk.admin_id}"
    status, _, message = refusal_of(desk.call("POST", f"{me}/role", {"role": "publisher"}))
    assert status == 409 and "last enabled admin" in message
    status, _, message = refusal_of(desk.call("POST", f"{me}/disable"))
    assert status == 409 and "last enabled admin" in message
    assert desk.call("GET", me).json()["role"] == "admin"  # and the token still works

    jo = made_account(desk, "jo@example.org")
    promoted = desk.call("POST", f"/api/users/{jo['id']}/role", {"role": "admin"})
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    assert refusal_of(desk.call("POST", f"{me}/role", {"role": "Boss"}))[:2] == (422, "role")
    # With Jo an admin, Camille may step down; her token then manages no accounts.
    stepped = desk.call("POST", f"{me}/role", {"role": "publisher"})
    assert stepped.status_code == 200 and stepped.json()["role"] == "publisher"
    status, _, message = refusal_of(desk.call("GET", "/api/users"))
    assert (status, message) == (403, "a publisher's token cannot manage accounts")
    with session_scope(desk.settings) as session:
        events = [(e.actor, e.subject, e.details) for e in recent(session, 10, "user-role")]
    assert events == [
        (ACTOR, f"user {ADMIN}", {"role": "publisher", "was": "admin"}),
        (ACTOR, "user jo@example.org", {"role": "admin", "was": "writer"}),
    ]


def test_a_disabled_account_s_sessions_and_tokens_stop_at_once(desk: AccountsDesk) -> None:
    s = desk.settings
    with logged_in_as(s, "jo@example.org", "writer") as browser:
        jos_token = token_of_account(s, "jo@example.org", "jo-bot")
        jos_api = {"Authorization": f"Bearer {jos_token}"}
        assert browser.get("/admin", follow_redirects=False).status_code == 200
        assert desk.client.get("/api/releases", headers=jos_api).status_code == 200
        jo = next(u for u in desk.call("GET", "/api/users").json() if u["role"] == "writer")

        disabled = desk.call("POST", f"/api/users/{jo['id']}/disable")
        assert disabled.status_code == 200 and disabled.json()["disabled_at"] is not None
        ended = browser.get("/admin", follow_redirects=False)
        assert (ended.status_code, ended.headers["location"]) == (303, "/admin/login?ended=1")
        stopped = desk.client.get("/api/releases", headers=jos_api)
        assert stopped.status_code == 401
        assert "disabled" in stopped.json()["error"]
        with session_scope(s) as session, pytest.raises(Unauthorized):
            accounts.check_login(session, "jo@example.org", "a long enough password")

        enabled = desk.call("POST", f"/api/users/{jo['id']}/enable")
        assert enabled.status_code == 200 and enabled.json()["disabled_at"] is None
        assert desk.client.get("/api/releases", headers=jos_api).status_code == 200
    with session_scope(s) as session:
        trail = [(e.actor, e.action) for e in recent(session, 10) if e.action != "user-create"]
    assert trail == [(ACTOR, "user-enable"), (ACTOR, "user-disable")]


def test_a_new_password_and_two_factor_taken_off_end_the_sessions(desk: AccountsDesk) -> None:
    s = desk.settings
    with logged_in_as(s, "jo@example.org", "writer") as browser:
        with session_scope(s) as session:
            jo = accounts.find_user(session, "jo@example.org")
            jo.totp_secret, jo.totp_enabled_at = "JBSWY3DPEHPK3PXP", utcnow()
            jo_id = jo.id
        assert desk.call("GET", f"/api/users/{jo_id}").json()["two_factor"] is True
        reset = desk.call("POST", f"/api/users/{jo_id}/reset-2fa")
        assert reset.status_code == 200 and reset.json()["two_factor"] is False
        assert browser.get("/admin", follow_redirects=False).status_code == 303
        with session_scope(s) as session:
            assert accounts.find_user(session, "jo@example.org").totp_secret is None

    short = desk.call("POST", f"/api/users/{jo_id}/password", {"password": "short"})
    assert refusal_of(short)[:2] == (422, "password")
    changed = desk.call("POST", f"/api/users/{jo_id}/password", {"password": NEW_PASSWORD})
    assert changed.status_code == 200 and NEW_PASSWORD not in changed.text
    with session_scope(s) as session:
        assert accounts.check_login(session, "jo@example.org", NEW_PASSWORD).id == jo_id
        with pytest.raises(Unauthorized):
            accounts.check_login(session, "jo@example.org", PASSWORD)
        actions = [(e.actor, e.action, e.details) for e in recent(session, 2)]
    assert actions == [(ACTOR, "user-password", {}), (ACTOR, "user-2fa-reset", {})]
    assert all(NEW_PASSWORD not in repr(a) for a in actions)


def test_an_invitation_reaches_the_person_and_can_be_cancelled(
    desk: AccountsDesk, smtp_server: SMTPServer
) -> None:
    body = {"email": "Sam@Example.org", "role": "publisher", "name": "Sam Lee"}
    invited = desk.call("POST", "/api/users/invitations", body, **{"Idempotency-Key": "i-1"})
    assert invited.status_code == 201, invited.text
    sam = invited.json()
    assert {k: sam[k] for k in ("email", "name", "role", "invited_by")} == {
        "email": "sam@example.org",
        "name": "Sam Lee",
        "role": "publisher",
        "invited_by": ACTOR,
    }
    again = desk.call("POST", "/api/users/invitations", body, **{"Idempotency-Key": "i-1"})
    assert again.json() == sam and again.headers["Idempotent-Replayed"] == "true"
    # One wake-up for the worker, for the one invitation.
    woken = [args for task, args in queued_tasks(desk.broker) if task.endswith("invitation")]
    assert woken == [[sam["id"]]]

    assert sending.outcome(sending.send_invitation(desk.settings, sam["id"])) == "sent"
    [email] = [m for m in smtp_server.handler.messages if m.rcpt == "sam@example.org"]
    text = text_part(email.parsed())
    assert "as a publisher" in text and f"user:{ADMIN}" not in text
    link = re.search(r"https?://\S+/admin/invitation/(\S+)", text)
    assert link is not None
    for answer in (invited, desk.call("GET", "/api/users/invitations")):
        assert link.group(1) not in answer.text  # the link goes to the person only
    assert [i["email"] for i in desk.call("GET", "/api/users/invitations").json()] == [
        "sam@example.org"]  # fmt: skip

    made_account(desk, "jo@example.org")
    taken = desk.call("POST", "/api/users/invitations", {"email": "jo@example.org",
                                                         "role": "writer"})  # fmt: skip
    assert refusal_of(taken) == (409, None, "jo@example.org already has an account")

    gone = desk.call("DELETE", f"/api/users/invitations/{sam['id']}")
    assert (gone.status_code, gone.content) == (204, b"")
    assert desk.call("GET", "/api/users/invitations").json() == []
    page = desk.client.get(f"/admin/invitation/{link.group(1)}")
    assert page.status_code == 400 and "no longer valid" in page.text
    with session_scope(desk.settings) as session:
        assert session.scalar(select(Invitation.cancelled_at)) is not None
        trail = [(e.actor, e.action, e.subject) for e in recent(session, 10)]
    assert trail == [
        (ACTOR, "user-uninvite", "user sam@example.org"),
        (ACTOR, "user-create", "user jo@example.org"),
        (ACTOR, "user-invite", "user sam@example.org"),
    ]


def test_only_an_admin_s_token_with_the_users_scope_manages_accounts(desk: AccountsDesk) -> None:
    s = desk.settings
    every = list(apitokens.SCOPES)
    with session_scope(s) as session:
        tokens = {}
        for role in ("writer", "publisher", "admin"):
            user = accounts.create_user(session, f"{role}@example.org", role, PASSWORD)
            scopes = every if role != "admin" else ["releases", "subscribers"]
            tokens[role] = apitokens.create_token(session, f"{role}-bot", scopes, user.id)
        with pytest.raises(InputError, match="users scope is for a token of an admin") as caught:
            apitokens.create_token(session, "nobody-bot", ["users"])
        assert caught.value.field == "scopes"

    def answer(role: str) -> tuple[int, str]:
        got = desk.client.get("/api/users", headers={"Authorization": f"Bearer {tokens[role]}"})
        return got.status_code, got.json()["error"]

    assert answer("writer") == (403, "a writer's token cannot manage accounts")
    assert answer("publisher") == (403, "a publisher's token cannot manage accounts")
    # An admin's token made without the scope: an admin's other scripts stay narrow.
    assert answer("admin") == (403, "this token does not have the 'users' scope")
    assert desk.client.get("/api/users").status_code == 401
    # A token of no account given the scope by hand in the database manages nothing either.
    with session_scope(s) as session:
        tokens["nobody"] = apitokens.create_token(session, "nobody-bot", ["releases"])
        row = session.scalars(select(ApiToken).where(ApiToken.name == "nobody-bot")).one()
        row.scopes = ["releases", "users"]
    assert answer("nobody") == (403, "this token's scopes cannot manage accounts")
