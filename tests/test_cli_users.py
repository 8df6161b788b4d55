"""`distributor users …` and `tokens create --user` as an operator runs them (the command's main()
in this process, the password given on standard input as a script would): the accounts it makes log
in, what `users list` shows follows each change, the last admin stays, and a token made for a writer
can do no more than a writer."""

from __future__ import annotations

import json
import subprocess

import pytest
import redis
from fastapi.testclient import TestClient

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import Unauthorized
from distributor.core.queue import QUEUE
from distributor.office import accounts
from distributor.web import create_app
from tests.processes import invoke_cli

PASSWORD = "correct horse battery staple"


def users(
    settings: Settings, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return invoke_cli(settings, "users", *args, input=stdin)


def listed(settings: Settings) -> dict[str, list[str]]:
    """`users list`, as {address: [role, name, last login, disabled]}."""
    done = users(settings, "list")
    assert done.returncode == 0, done.stderr
    lines = [line.split("\t") for line in done.stdout.splitlines()]
    assert lines[0] == ["email", "role", "name", "last login", "disabled"]
    return {cells[0]: cells[1:] for cells in lines[1:]}


def logs_in(settings: Settings, email: str, password: str) -> bool:
    with session_scope(settings) as session:
        try:
            accounts.check_login(session, email, password)
        except Unauthorized:
            return False
    return True


def test_an_account_made_with_the_password_on_standard_input_logs_in(
    sqlite_settings: Settings,
) -> None:
    s = sqlite_settings
    made = users(s, "create", "Ada@Example.org", "--role", "admin", "--name", "Ada Lovelace",
                 stdin=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "admin ada@example.org created" in made.stdout
    assert PASSWORD not in made.stdout + made.stderr
    assert logs_in(s, "ada@example.org", PASSWORD)
    # Through the dashboard's form too.
    with TestClient(create_app(s), base_url="https://testserver") as client:
        page = client.get("/admin/login")
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        response = client.post(
            "/admin/login",
            data={"email": "ada@example.org", "password": PASSWORD, "csrf": csrf},
            follow_redirects=False,
        )
        assert (response.status_code, response.headers["location"]) == (303, "/admin")
    assert listed(s)["ada@example.org"][:2] == ["admin", "Ada Lovelace"]
    assert listed(s)["ada@example.org"][2] != "-"  # its last login

    # A new password, read the same way: the old one stops working.
    changed = users(s, "password", "ada@example.org", stdin="another long passphrase\n")
    assert changed.returncode == 0, changed.stderr
    assert logs_in(s, "ada@example.org", "another long passphrase")
    assert not logs_in(s, "ada@example.org", PASSWORD)


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (["--role", "writer"], "too short\n", "password"),
        (["--role", "writer"], "", "password"),  # nothing on standard input
        (["--role", "boss"], PASSWORD + "\n", "role"),
    ],
)
def test_a_bad_password_or_role_creates_nothing(
    sqlite_settings: Settings, args: list[str], stdin: str, says: str
) -> None:
    made = users(sqlite_settings, "create", "camille@example.org", *args, stdin=stdin)
    assert made.returncode == 1
    assert says in made.stderr
    assert "Traceback" not in made.stderr
    assert listed(sqlite_settings) == {}


def test_list_follows_role_disable_and_enable_and_the_last_admin_stays(
    sqlite_settings: Settings,
) -> None:
    s = sqlite_settings
    for email, role, name in [("ada@example.org", "admin", "Ada"),
                              ("camille@example.org", "writer", "")]:  # fmt: skip
        made = users(s, "create", email, "--role", role, "--name", name, stdin=PASSWORD + "\n")
        assert made.returncode == 0, made.stderr
    assert listed(s) == {
        "ada@example.org": ["admin", "Ada", "-", "-"],
        "camille@example.org": ["writer", "-", "-", "-"],
    }

    promoted = users(s, "role", "camille@example.org", "publisher")
    assert promoted.returncode == 0, promoted.stderr
    assert listed(s)["camille@example.org"][0] == "publisher"

    disabled = users(s, "disable", "camille@example.org")
    assert disabled.returncode == 0, disabled.stderr
    assert listed(s)["camille@example.org"][3] != "-"
    assert not logs_in(s, "camille@example.org", PASSWORD)
    enabled = users(s, "enable", "camille@example.org")
    assert enabled.returncode == 0, enabled.stderr
    assert listed(s)["camille@example.org"][3] == "-"
    assert logs_in(s, "camille@example.org", PASSWORD)

    for refused in (users(s, "disable", "ada@example.org"),
                    users(s, "role", "ada@example.org", "writer")):  # fmt: skip
        assert refused.returncode == 1
        assert "last enabled admin" in refused.stderr and "Traceback" not in refused.stderr
    assert listed(s)["ada@example.org"] == ["admin", "Ada", "-", "-"]
    unknown = users(s, "disable", "nobody@example.org")
    assert unknown.returncode == 1 and "no account" in unknown.stderr


def test_a_token_made_for_a_writer_can_do_what_a_writer_can(sqlite_settings: Settings) -> None:
    s = sqlite_settings
    made = users(s, "create", "camille@example.org", "--role", "writer", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    created = invoke_cli(s, "tokens", "create", "camille-bot", "--scope", "releases",
                      "--user", "Camille@example.org")  # fmt: skip
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(s)) as client:
        assert client.get("/api/releases", headers=auth).status_code == 200
        publish = client.post("/api/releases/999999/publish", json={}, headers=auth)
        assert publish.status_code == 403
        assert "cannot publish" in publish.json()["error"]
        disabled = users(s, "disable", "camille@example.org")
        assert disabled.returncode == 0, disabled.stderr
        assert client.get("/api/releases", headers=auth).status_code == 401

    nobody = invoke_cli(s, "tokens", "create", "ghost-bot", "--user", "nobody@example.org")
    assert nobody.returncode == 1 and "no account" in nobody.stderr
    assert "dst_" not in nobody.stdout


def test_the_cli_shows_what_the_api_shows_and_an_admin_s_users_token_comes_from_it(
    sqlite_settings: Settings, redis_url: str
) -> None:
    s = sqlite_settings.model_copy(update={"broker_url": redis_url})
    made = users(s, "create", "ada@example.org", "--role", "admin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    ghost = invoke_cli(s, "tokens", "create", "ghost-admin", "--scope", "users")
    assert ghost.returncode == 1 and "users scope is for a token of an admin" in ghost.stderr
    created = invoke_cli(s, "tokens", "create", "ada-admin", "--scope", "users",
                         "--user", "ada@example.org")  # fmt: skip
    assert created.returncode == 0, created.stderr
    auth = {"Authorization": f"Bearer {created.stdout.strip()}"}
    invited = users(s, "invite", "sam@example.org", "--role", "publisher", "--name", "Sam Lee")
    assert invited.returncode == 0, invited.stderr
    with TestClient(create_app(s)) as client:
        for command, path in (("list", "/api/users"), ("invitations", "/api/users/invitations")):
            shown = users(s, command, "--json")
            assert shown.returncode == 0, shown.stderr
            answer = client.get(path, headers=auth)
            assert answer.status_code == 200 and json.loads(shown.stdout) == answer.json()
        [sam] = client.get("/api/users/invitations", headers=auth).json()
        table = users(s, "invitations").stdout.splitlines()
        assert table[0] == "id\temail\trole\tname\tinvited by\tvalid until"
        assert table[1].split("\t")[:5] == [str(sam["id"]), "sam@example.org", "publisher",
                                            "Sam Lee", sam["invited_by"]]  # fmt: skip
        cancelled = users(s, "uninvite", str(sam["id"]))
        assert cancelled.returncode == 0 and "sam@example.org cancelled" in cancelled.stdout
        assert client.get("/api/users/invitations", headers=auth).json() == []
    redis.Redis.from_url(redis_url).delete(QUEUE)  # the invitation's wake-up
