"""Two web apps in one process each answer from their own Settings: the routers are
module-level, and every route reads its app's database, templates' names and tokens."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from distributor.core.config import Settings, load_settings
from distributor.core.db import upgrade
from distributor.web import create_app
from tests.helpers import TEST_SECRET_KEY, add_topics, csrf_of, new_token


def other_settings(tmp_path: Path) -> Settings:
    """A second site: its own SQLite database and organisation name."""
    s = load_settings(
        data_dir=tmp_path / "other",
        site_url="https://other.example.org",
        secret_key=TEST_SECRET_KEY,
        sender="Other Agency <press@other.example.org>",
        organisation="Other Agency",
    )
    upgrade(s)
    return s


def dashboard_text(client: TestClient, token: str) -> str:
    """The dashboard's page once logged in with ``token``."""
    page = client.get("/admin/login")
    client.post("/admin/login", data={"token": token, "csrf": csrf_of(page.text)})
    answer = client.get("/admin")
    assert answer.status_code == 200
    return answer.text


def test_two_apps_in_one_process_answer_from_their_own_settings(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    mine, other = sqlite_settings, other_settings(tmp_path)
    add_topics(mine, "climate")
    add_topics(other, "energy")
    my_token = new_token(mine, "mine", ["releases", "subscribers"])
    other_token = new_token(other, "other", ["releases", "subscribers"])
    # Both apps exist before either answers anything.
    my_app, other_app = create_app(mine), create_app(other)
    my_client, other_client = TestClient(my_app), TestClient(other_app)

    for client, token, slug in ((other_client, other_token, "energy"),
                                (my_client, my_token, "climate")):  # fmt: skip
        topics = client.get("/api/topics", headers={"Authorization": f"Bearer {token}"})
        assert topics.status_code == 200, topics.text
        assert [t["slug"] for t in topics.json()] == [slug]
    # A token is known only to the site that made it.
    stranger = other_client.get("/api/topics", headers={"Authorization": f"Bearer {my_token}"})
    assert stranger.status_code == 401

    assert "Energy" in other_client.get("/subscribe").text
    subscribe_page = my_client.get("/subscribe").text
    assert "Climate" in subscribe_page and "Energy" not in subscribe_page

    assert "Other Agency" in dashboard_text(other_client, other_token)
    assert "Other Agency" not in dashboard_text(my_client, my_token)
