"""Who may do what, route by route: every route of the workspace (``/admin``) and of the API
(``/api``) names the right it needs, and each role — writer, publisher, admin — is refused
(403, saying why) exactly the routes its role lacks, in the dashboard with a password login
and in the API with a token made for the account. Tokens made before accounts keep what
their scopes gave them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from distributor.core.apitokens import SCOPES, create_token
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.roles import Can, Role
from distributor.office.accounts import create_user
from distributor.web import create_app
from distributor.web.bodies import routes_of
from distributor.web.rights import needs_of
from tests.helpers import add_topics, csrf_of, make_release

PASSWORD = "a long enough password"

# The right each route needs: changing one is a decision, made here too.
NEEDS: dict[str, Can] = {
    "GET /api/subscribers": Can.AUDIENCE,
    "GET /api/subscribers.csv": Can.AUDIENCE,
    "GET /api/subscribers/{subscriber_id}": Can.AUDIENCE,
    "POST /api/subscribers": Can.AUDIENCE,
    "POST /api/subscribers/{subscriber_id}/unsubscribe": Can.AUDIENCE,
    "DELETE /api/subscribers/{subscriber_id}": Can.AUDIENCE,
    "GET /api/accreditations": Can.AUDIENCE,
    "GET /api/subscribers/{subscriber_id}/accreditation": Can.AUDIENCE,
    "POST /api/subscribers/{subscriber_id}/accreditation": Can.AUDIENCE,
    "GET /api/releases": Can.DRAFT,
    "POST /api/releases": Can.DRAFT,
    "GET /api/releases/{release_id}": Can.DRAFT,
    "GET /api/releases/{release_id}/stats": Can.DRAFT,
    "PUT /api/releases/{release_id}": Can.DRAFT,
    "DELETE /api/releases/{release_id}": Can.DRAFT,
    "POST /api/releases/{release_id}/duplicate": Can.DRAFT,
    "POST /api/releases/{release_id}/translations": Can.DRAFT,
    "GET /api/releases/{release_id}/preview": Can.DRAFT,
    "POST /api/releases/{release_id}/test": Can.DRAFT,
    "POST /api/releases/{release_id}/approval-request": Can.DRAFT,
    "POST /api/releases/{release_id}/approve": Can.PUBLISH,
    "POST /api/releases/{release_id}/publish": Can.PUBLISH,
    "POST /api/releases/{release_id}/unschedule": Can.PUBLISH,
    "POST /api/releases/{release_id}/correct": Can.PUBLISH,
    "POST /api/releases/{release_id}/withdraw": Can.PUBLISH,
    "GET /api/releases/{release_id}/deliveries.csv": Can.DRAFT,
    "GET /api/topics": Can.DRAFT,
    "POST /api/topics": Can.TOPICS,
    "GET /api/topics/{slug}": Can.DRAFT,
    "PUT /api/topics/{slug}": Can.TOPICS,
    "DELETE /api/topics/{slug}": Can.TOPICS,
    "GET /api/contacts": Can.DRAFT,  # the press office keeps its address book together
    "POST /api/contacts": Can.DRAFT,
    "GET /api/contacts/{contact_id}": Can.DRAFT,
    "PUT /api/contacts/{contact_id}": Can.DRAFT,
    "DELETE /api/contacts/{contact_id}": Can.DRAFT,
    "POST /api/media": Can.DRAFT,
    "POST /api/documents": Can.DRAFT,
    "GET /api/users": Can.ACCOUNTS,
    "POST /api/users": Can.ACCOUNTS,
    "GET /api/users/invitations": Can.ACCOUNTS,
    "POST /api/users/invitations": Can.ACCOUNTS,
    "DELETE /api/users/invitations/{invitation_id}": Can.ACCOUNTS,
    "GET /api/users/{user_id}": Can.ACCOUNTS,
    "POST /api/users/{user_id}/role": Can.ACCOUNTS,
    "POST /api/users/{user_id}/password": Can.ACCOUNTS,
    "POST /api/users/{user_id}/disable": Can.ACCOUNTS,
    "POST /api/users/{user_id}/enable": Can.ACCOUNTS,
    "POST /api/users/{user_id}/reset-2fa": Can.ACCOUNTS,
    "GET /admin": Can.DRAFT,
    "GET /admin/releases/{release_id}/progress.json": Can.DRAFT,
    "GET /admin/releases/{release_id}": Can.DRAFT,
    "GET /admin/releases/{release_id}/preview/{lang}.html": Can.DRAFT,
    "GET /admin/releases/{release_id}/preview/{lang}.txt": Can.DRAFT,
    "POST /admin/releases/{release_id}/test": Can.DRAFT,
    "POST /admin/releases/{release_id}/approval-request": Can.DRAFT,
    "POST /admin/releases/{release_id}/approve": Can.PUBLISH,
    "POST /admin/releases/{release_id}/publish": Can.PUBLISH,
    "GET /admin/releases/{release_id}/publish": Can.PUBLISH,
    "POST /admin/releases/{release_id}/unschedule": Can.PUBLISH,
    "GET /admin/releases/{release_id}/correct": Can.PUBLISH,
    "POST /admin/releases/{release_id}/correct": Can.PUBLISH,
    "GET /admin/releases/{release_id}/withdraw": Can.PUBLISH,
    "POST /admin/releases/{release_id}/withdraw": Can.PUBLISH,
    "GET /admin/releases/new": Can.DRAFT,
    "POST /admin/releases/new": Can.DRAFT,
    "GET /admin/releases/{release_id}/edit": Can.DRAFT,
    "POST /admin/releases/{release_id}/edit": Can.DRAFT,
    "POST /admin/releases/{release_id}/delete": Can.DRAFT,
    "POST /admin/releases/new/preview": Can.DRAFT,  # the editor's live preview and autosave
    "POST /admin/releases/new/preview.json": Can.DRAFT,
    "POST /admin/releases/new/autosave.json": Can.DRAFT,
    "POST /admin/releases/{release_id}/preview": Can.DRAFT,
    "POST /admin/releases/{release_id}/preview.json": Can.DRAFT,
    "POST /admin/releases/{release_id}/autosave.json": Can.DRAFT,
    "GET /admin/releases": Can.DRAFT,
    "POST /admin/releases/{release_id}/duplicate": Can.DRAFT,
    "POST /admin/releases/{release_id}/translate": Can.DRAFT,
    "POST /admin/uploads": Can.DRAFT,  # a file dropped on the release form
    "GET /admin/contacts": Can.DRAFT,
    "POST /admin/contacts": Can.DRAFT,
    "GET /admin/contacts/{contact_id}": Can.DRAFT,
    "POST /admin/contacts/{contact_id}": Can.DRAFT,
    "POST /admin/contacts/{contact_id}/delete": Can.DRAFT,
    "GET /admin/accounts": Can.ACCOUNTS,
    "GET /admin/accreditations": Can.AUDIENCE,
    "POST /admin/accreditations/{subscriber_id}": Can.AUDIENCE,
    "POST /admin/accounts/invite": Can.ACCOUNTS,
    "POST /admin/accounts/role": Can.ACCOUNTS,
    "POST /admin/accounts/disable": Can.ACCOUNTS,
    "POST /admin/accounts/enable": Can.ACCOUNTS,
    "POST /admin/accounts/invitations/{invitation_id}/cancel": Can.ACCOUNTS,
    "GET /admin/account/2fa": Can.DRAFT,  # every role sets up its own
    "POST /admin/account/2fa/start": Can.DRAFT,
    "POST /admin/account/2fa": Can.DRAFT,
    "GET /admin/settings": Can.SETTINGS,  # the office's identity: admins only
    "POST /admin/settings": Can.SETTINGS,
    "GET /api/settings": Can.SETTINGS,
    "PUT /api/settings": Can.SETTINGS,
}
# What each role may do, as the issue and the README say it (not read from the code).
MAY = {
    Role.WRITER: {Can.DRAFT},
    Role.PUBLISHER: {Can.DRAFT, Can.PUBLISH},
    Role.ADMIN: {Can.DRAFT, Can.PUBLISH, Can.TOPICS, Can.AUDIENCE, Can.ACCOUNTS, Can.SETTINGS},
}
# Routes of /admin and /api anyone may reach: logging in and out, the dashboard's script
# and style sheet, the language switch, accepting an invitation.
OPEN = {
    "GET /admin/login",
    "POST /admin/login",
    "POST /admin/logout",
    "GET /admin/static/{name}",
    "GET /admin/login/code",  # the password's step is the credential
    "POST /admin/login/code",
    "GET /admin/language/{lang}",  # the language switch: the login page has it too
    "GET /admin/invitation/{token}",  # the link is the credential
    "POST /admin/invitation/{token}",
    "GET /api/docs",
    "GET /api/docs/{name}",
}
# Stand-ins for path parameters: nothing has these ids, so an allowed call changes nothing.
PARAMETERS = {
    "release_id": "999999",
    "subscriber_id": "999999",
    "slug": "no-such-topic",
    "lang": "en",
    "name": "admin.css",
    "invitation_id": "999999",
    "contact_id": "999999",
    "user_id": "999999",
    "token": "not-a-token",
}


def declared(settings: Settings) -> dict[str, Can | None]:
    """Each API route of /admin and /api (``METHOD path``) and the right its dependencies
    check, None for none."""
    found: dict[str, Can | None] = {}
    for matching, route in routes_of(create_app(settings).routes):
        path = getattr(matching, "path", getattr(route, "path", ""))
        if not isinstance(route, APIRoute) or not path.startswith(("/admin", "/api")):
            continue
        needs: set[Can] = set()
        waiting = list(route.dependant.dependencies)
        while waiting:
            dependency = waiting.pop()
            need = needs_of(dependency.call)
            if need is not None:
                needs.add(need)
            waiting.extend(dependency.dependencies)
        assert len(needs) <= 1, (path, needs)
        for method in route.methods - {"HEAD"}:
            found[f"{method} {path}"] = next(iter(needs), None)
    return found


def test_every_route_names_the_right_it_needs(sqlite_settings: Settings) -> None:
    """A new route of the workspace or the API cannot forget its check: it fails here until
    it names one, and its line is added above."""
    found = declared(sqlite_settings)
    assert {k: v for k, v in found.items() if v is None} == dict.fromkeys(OPEN)
    assert {k: v for k, v in found.items() if v is not None} == NEEDS


@dataclass
class Person:
    """An account of one role, logged in to the dashboard, and a token made for it."""

    role: Role
    email: str
    dashboard: TestClient
    api: TestClient
    token: str


@pytest.fixture
def people(sqlite_settings: Settings, redis_url: str) -> Iterator[dict[Role, Person]]:
    settings = sqlite_settings.model_copy(update={"broker_url": redis_url})
    app = create_app(settings)
    found: dict[Role, Person] = {}
    with session_scope(settings) as session:
        made = {}
        for role in Role:
            email = f"{role.value}@example.org"
            user = create_user(session, email, role.value, PASSWORD, name=role.value.title())
            token = create_token(session, f"{role.value}-token", list(SCOPES), user.id)
            made[role] = (email, token)
    for role, (email, token) in made.items():
        dashboard = TestClient(app, base_url="https://testserver")
        page = dashboard.get("/admin/login")
        answer = dashboard.post(
            "/admin/login",
            data={"email": email, "password": PASSWORD, "csrf": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert answer.status_code == 303, answer.text
        api = TestClient(app, headers={"Authorization": f"Bearer {token}"})
        found[role] = Person(role, email, dashboard, api, token)
    yield found
    for person in found.values():
        person.dashboard.close()
        person.api.close()


def call(client: TestClient, route: str, data: dict[str, str] | None = None) -> httpx.Response:
    """Request ``route`` (``METHOD path``) with its parameters filled in; a form for the
    dashboard's POSTs (``data``), an empty JSON object for the API's bodies."""
    method, template = route.split(" ", 1)
    path = re.sub(r"\{(\w+)\}", lambda m: PARAMETERS[m.group(1)], template)
    if method == "GET":
        return client.get(path, follow_redirects=False)
    if template.startswith("/admin"):
        return client.request(method, path, data=data, follow_redirects=False)
    return client.request(method, path, json={}, follow_redirects=False)


def test_each_role_is_refused_exactly_what_it_may_not_do(people: dict[Role, Person]) -> None:
    """Every route × every role, in the dashboard and in the API: 403 with the reason where
    the role lacks the right, anything else (the page, a 404 for an id nobody has, a 422
    for an empty body) where it has it."""
    wrong: list[str] = []
    for role, person in people.items():
        csrf = csrf_of(person.dashboard.get("/admin").text)
        for route, need in NEEDS.items():
            client = person.dashboard if " /admin" in route else person.api
            answer = call(client, route, {"csrf": csrf})
            allowed = need in MAY[role]
            refused = answer.status_code == 403 and "cannot" in answer.text
            if allowed == refused or (allowed and answer.status_code in (401, 403)):
                wrong.append(f"{role.value}: {route} -> {answer.status_code}")
    assert wrong == []


def test_a_refusal_says_who_cannot_do_what(people: dict[Role, Person]) -> None:
    writer = people[Role.WRITER]
    answer = writer.api.post("/api/releases/999999/publish", json={})
    assert answer.status_code == 403
    assert answer.json()["error"] == (
        "a writer's token cannot publish, schedule, correct or withdraw releases"
    )
    csrf = csrf_of(writer.dashboard.get("/admin").text)
    page = writer.dashboard.post("/admin/releases/999999/publish", data={"csrf": csrf})
    assert page.status_code == 403
    assert "a writer cannot publish, schedule, correct or withdraw releases" in page.text


def test_a_token_made_before_accounts_keeps_what_its_scopes_gave(
    sqlite_settings: Settings, redis_url: str
) -> None:
    settings = sqlite_settings.model_copy(update={"broker_url": redis_url})
    with session_scope(settings) as session:
        releases = create_token(session, "newsroom-script", ["releases"])
        subscribers = create_token(session, "crm-sync", ["subscribers"])
    with TestClient(create_app(settings)) as client:

        def status(token: str, route: str) -> int:
            client.headers["Authorization"] = f"Bearer {token}"
            return call(client, route).status_code

        assert status(releases, "POST /api/releases/{release_id}/publish") == 404
        assert status(releases, "POST /api/topics") == 422  # may add topics, as before
        assert status(releases, "GET /api/subscribers") == 403
        assert status(subscribers, "GET /api/subscribers") == 200
        assert status(subscribers, "GET /api/releases") == 403


def test_a_writer_is_not_offered_what_a_publisher_does(
    people: dict[Role, Person], sqlite_settings: Settings
) -> None:
    add_topics(sqlite_settings, "climate")
    release = make_release(sqlite_settings, title="Agency signs agreement")
    writer = people[Role.WRITER].dashboard.get(f"/admin/releases/{release.id}").text
    publisher = people[Role.PUBLISHER].dashboard.get(f"/admin/releases/{release.id}").text
    assert "Publish now" in publisher and "Withdraw…" in publisher
    assert "Publish now" not in writer and "Withdraw…" not in writer
    assert "A publisher or an admin publishes or schedules it." in writer
    assert "Send a test" in writer  # what a writer does is there
