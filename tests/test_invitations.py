"""Invitations to the workspace, as an admin and the invited person live them: the admin
invites from the accounts page, the email goes out through the outbox to a real SMTP
server, its link opens a page where the person chooses a password, and that makes their
account with the role and logs them in. A link works once, for a week, and only while it is
the address's latest invitation; an address with an account is not invited."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import AuditEvent, Invitation, InvitationEmail, User, utcnow
from distributor.office.accounts import create_user
from distributor.outbox import sending, sweep
from distributor.web import create_app
from tests.corrections import text_part
from tests.helpers import CountingQueue, csrf_of
from tests.smtp_server import SMTPServer

ADMIN, PASSWORD = "camille@example.org", "a long enough password"
LINK = re.compile(r"https?://\S+/admin/invitation/\S+")


@pytest.fixture
def s(settings: Settings, redis_url: str, smtp_server: SMTPServer) -> Settings:
    return settings.model_copy(update={"broker_url": redis_url, "smtp_url": smtp_server.url})


@pytest.fixture
def admin(s: Settings) -> Iterator[TestClient]:
    """A browser logged in as an admin."""
    with session_scope(s) as session:
        create_user(session, ADMIN, "admin", PASSWORD, name="Camille Martin")
    client = TestClient(create_app(s), base_url="https://testserver")
    page = client.get("/admin/login")
    client.post(
        "/admin/login",
        data={"email": ADMIN, "password": PASSWORD, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    yield client
    client.close()


def invite(client: TestClient, email: str, role: str, name: str = "") -> object:
    page = client.get("/admin/accounts")
    data = {"email": email, "role": role, "name": name, "csrf": csrf_of(page.text)}
    return client.post("/admin/accounts/invite", data=data, follow_redirects=False)


def sent_link(s: Settings, server: SMTPServer, email: str) -> str:
    """Send the address's latest invitation email through the outbox; the link it carries."""
    with session_scope(s) as session:
        latest = session.scalars(
            select(Invitation.id).where(Invitation.email == email).order_by(Invitation.id.desc())
        ).first()
    assert latest is not None
    assert sending.outcome(sending.send_invitation(s, latest)) == "sent"
    [received] = [m for m in server.handler.messages if m.rcpt == email][-1:]
    found = LINK.search(text_part(received))
    assert found is not None
    return found.group(0)


def path_of(link: str) -> str:
    return link.split("://", 1)[1].split("/", 1)[1].join(["/", ""])


def test_an_invited_writer_chooses_a_password_and_is_logged_in(
    s: Settings, admin: TestClient, smtp_server: SMTPServer
) -> None:
    answer = invite(admin, "Jo@Example.org", "writer", "Jo Bloggs")
    assert answer.status_code == 303  # type: ignore[attr-defined]
    assert "Invitation sent." in admin.get("/admin/accounts?done=invited").text
    link = sent_link(s, smtp_server, "jo@example.org")
    [email] = [m for m in smtp_server.handler.messages if m.rcpt == "jo@example.org"]
    message = email.parsed()
    assert message["Subject"] == f"You are invited to the press workspace of {s.organisation}"
    assert "camille@example.org has invited you" in text_part(message)
    assert "as a writer" in text_part(message)

    person = TestClient(create_app(s), base_url="https://testserver")
    form = person.get(path_of(link))
    assert form.status_code == 200 and "jo@example.org" in form.text
    short = person.post(path_of(link), data={"password": "short", "csrf": csrf_of(form.text)})
    assert short.status_code == 422 and "at least 12 characters" in short.text
    made = person.post(
        path_of(link),
        data={"password": "jo's own long password", "csrf": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert (made.status_code, made.headers["location"]) == (303, "/admin")
    home = person.get("/admin")
    assert home.status_code == 200 and "Jo Bloggs" in home.text
    assert "/admin/accounts" not in home.text  # a writer manages no accounts
    with session_scope(s) as session:
        user = session.scalars(select(User).where(User.email == "jo@example.org")).one()
        assert user.role == "writer"
        trail = [(e.actor, e.action) for e in session.scalars(select(AuditEvent))]
    assert trail == [
        (f"user:{ADMIN}", "user-invite"),
        ("invitation:jo@example.org", "user-create"),
    ]
    again = person.get(path_of(link))
    assert again.status_code == 400 and "accepted already" in again.text
    person.close()


def test_a_new_invitation_or_a_cancelled_one_stops_the_old_link(
    s: Settings, admin: TestClient, smtp_server: SMTPServer
) -> None:
    invite(admin, "jo@example.org", "writer")
    first = sent_link(s, smtp_server, "jo@example.org")
    invite(admin, "jo@example.org", "publisher")
    second = sent_link(s, smtp_server, "jo@example.org")
    assert "no longer valid" in admin.get(path_of(first)).text
    page = admin.get(path_of(second))
    assert page.status_code == 200 and "publisher" in page.text
    with session_scope(s) as session:
        [pending] = session.scalars(
            select(Invitation.id).where(Invitation.cancelled_at.is_(None))
        ).all()
    accounts = admin.get("/admin/accounts")
    admin.post(
        f"/admin/accounts/invitations/{pending}/cancel", data={"csrf": csrf_of(accounts.text)}
    )
    assert "no longer valid" in admin.get(path_of(second)).text


def test_an_address_with_an_account_is_not_invited(s: Settings, admin: TestClient) -> None:
    answer = invite(admin, ADMIN, "writer")
    assert answer.status_code == 409  # type: ignore[attr-defined]
    assert "already has an account" in answer.text  # type: ignore[attr-defined]
    bad = invite(admin, "not an address", "writer")
    assert bad.status_code == 422  # type: ignore[attr-defined]
    assert 'value="not an address"' in bad.text  # type: ignore[attr-defined]  # kept


def test_an_invitation_whose_email_was_not_sent_is_swept_and_an_old_one_is_not(
    s: Settings, admin: TestClient, smtp_server: SMTPServer
) -> None:
    """A lost wake-up: the sweep sends the invitation's email; an expired invitation's
    email is cancelled at its claim, never sent."""
    invite(admin, "jo@example.org", "writer")
    queue = CountingQueue()
    report = sweep.sweep(s, queue)  # type: ignore[arg-type]
    [(invitation_id,)] = queue.tasks("send_invitation")
    assert report.invitation_retries == 1
    with session_scope(s) as session:
        session.get_one(Invitation, invitation_id).expires_at = utcnow() - timedelta(seconds=1)
    assert sending.outcome(sending.send_invitation(s, invitation_id)) == "skipped"
    assert smtp_server.handler.messages == []
    with session_scope(s) as session:
        [row] = session.scalars(select(InvitationEmail)).all()
        assert row.status == "cancelled"
