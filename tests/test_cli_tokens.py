"""`distributor tokens create / list / revoke` as a user runs them (the command's
main(), in this process)."""

from __future__ import annotations

import subprocess

from fastapi.testclient import TestClient

from distributor.core.config import Settings
from distributor.web import create_app
from tests.processes import invoke_cli


def test_create_list_and_revoke_a_token(sqlite_settings: Settings, redis_url: str) -> None:
    s = sqlite_settings.model_copy(update={"broker_url": redis_url})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return invoke_cli(s, "tokens", *args)

    created = run("create", "press-desk")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("dst_") and "\n" not in token  # stdout is the token alone
    assert "shown only once" in created.stderr
    narrow = run("create", "feeds-bot", "--scope", "releases")
    assert narrow.returncode == 0, narrow.stderr
    assert run("create", "press-desk").returncode == 1  # the name is taken
    bad = run("create", "x", "--scope", "admin")
    assert bad.returncode == 1 and "unknown scope" in bad.stderr

    with TestClient(create_app(s)) as client:
        auth = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/subscribers", headers=auth).status_code == 200
        listed = run("list")
        assert listed.returncode == 0, listed.stderr
        lines = [line.split("\t") for line in listed.stdout.splitlines()]
        assert lines[0] == ["name", "scopes", "created", "last used", "revoked"]
        by_name = {cells[0]: cells for cells in lines[1:]}
        assert by_name["press-desk"][1] == "releases,subscribers"
        assert by_name["press-desk"][3] != "-" and by_name["press-desk"][4] == "-"
        assert by_name["feeds-bot"][1:2] == ["releases"] and by_name["feeds-bot"][3] == "-"
        assert token not in listed.stdout

        revoked = run("revoke", "press-desk")
        assert revoked.returncode == 0 and "revoked" in revoked.stdout
        assert client.get("/api/subscribers", headers=auth).status_code == 401
        assert run("list").stdout.splitlines()[2].split("\t")[4] != "-"
        missing = run("revoke", "nobody")
        assert missing.returncode == 1 and "no token named 'nobody'" in missing.stderr
