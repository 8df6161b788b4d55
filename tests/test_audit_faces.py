"""The audit record each action leaves, run through the faces a user runs it from: the
command line, the dashboard and the admin API. The same action leaves the same record
(action, subject, details) whichever face ran it, only the actor differs; a refused action
leaves none. And no face writes the trail itself: ``distributor.actions`` is the one place
where an action and its audit record are put together (issue 13)."""

from __future__ import annotations

import ast
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from PIL import Image

from distributor import actions
from distributor.audience.privacy import suppression_hash
from distributor.core import audit
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import utcnow
from distributor.core.queue import QUEUE, TaskQueue
from distributor.web import create_app
from tests.clients import Api, Dash
from tests.helpers import add_subscribers, add_topics, make_release, new_token, release_text
from tests.processes import NO_BROKER, invoke_cli
from tests.smtp_server import SMTPServer

PACKAGE = Path(audit.__file__).parents[1]  # distributor/
DESK = "token:press-desk"


@dataclass
class Faces:
    """The admin API and the dashboard of one app (one client), with a token that has both
    scopes; the command line is ``invoke_cli`` on the same settings."""

    settings: Settings
    api: Api
    dash: Dash


@pytest.fixture
def faces(settings: Settings, redis_url: str, smtp_server: SMTPServer) -> Iterator[Faces]:
    s = settings.model_copy(update={"broker_url": redis_url, "smtp_url": smtp_server.url})
    broker = redis.Redis.from_url(redis_url)
    broker.delete(QUEUE)
    add_topics(s, "climate", "energy")
    token = new_token(s, "press-desk", ["releases", "subscribers"])
    # https: the dashboard's cookies are Secure.
    with TestClient(create_app(s), base_url="https://testserver") as client:
        yield Faces(s, Api(s, client, token, broker), Dash(s, client, token, broker))
    broker.delete(QUEUE)
    broker.close()


def events(settings: Settings) -> list[tuple[str, str, str, dict[str, Any]]]:
    """The whole audit trail, oldest first: (actor, action, subject, details)."""
    with session_scope(settings) as session:
        return [
            (e.actor, e.action, e.subject, e.details) for e in reversed(audit.recent(session, 1000))
        ]


def cli(settings: Settings, *args: str) -> str:
    done = invoke_cli(settings, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_unschedule_leaves_the_same_record_from_the_cli_the_dashboard_and_the_api(
    faces: Faces,
) -> None:
    s = faces.settings
    ids = [make_release(s, slug=f"r{n}", title=f"Release {n}").id for n in range(3)]
    queue = TaskQueue(s.model_copy(update={"broker_url": NO_BROKER}))
    try:
        for release_id in ids:
            actions.publish(s, queue, release_id, utcnow() + timedelta(days=1), by="setup")
    finally:
        queue.close()
    cli_id, dash_id, api_id = ids
    start = len(events(s))

    assert "a draft again" in cli(s, "releases", "unschedule", str(cli_id))
    assert faces.dash.login().status_code == 303
    done = faces.dash.post(f"/admin/releases/{dash_id}/unschedule")
    assert done.headers["location"].endswith("?done=unscheduled")
    answer = faces.api.post(f"/api/releases/{api_id}/unschedule")
    assert answer.status_code == 200 and answer.json()["state"] == "draft"

    assert events(s)[start:] == [
        (audit.cli_actor(), "unschedule", f"release {cli_id}", {}),
        (DESK, "unschedule", f"release {dash_id}", {}),
        (DESK, "unschedule", f"release {api_id}", {}),
    ]
    # A draft cannot be unscheduled: each face refuses, and nothing more is recorded.
    assert invoke_cli(s, "releases", "unschedule", str(cli_id)).returncode == 1
    assert faces.dash.post(f"/admin/releases/{dash_id}/unschedule").status_code == 409
    assert faces.api.post(f"/api/releases/{api_id}/unschedule").status_code == 409
    assert len(events(s)) == start + 3


def test_creating_updating_and_test_sending_through_the_api_are_recorded(
    faces: Faces, smtp_server: SMTPServer
) -> None:
    api, s = faces.api, faces.settings
    headers = {**api.auth, "Content-Type": "text/markdown", "Idempotency-Key": "k-1"}
    body = release_text(slug="the-slug").encode()
    created = api.client.post("/api/releases", content=body, headers=headers)
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    again = api.client.post("/api/releases", content=body, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["id"] == rid
    changed = release_text(slug="the-slug", title="Changed").encode()
    updated = api.client.put(f"/api/releases/{rid}", content=changed,
                             headers={**api.auth, "Content-Type": "text/markdown"})  # fmt: skip
    assert updated.status_code == 200 and updated.json()["title"] == "Changed"
    tested = api.post(f"/api/releases/{rid}/test", {"to": ["desk@example.org"]})
    assert tested.status_code == 200 and tested.json()[0]["sent"] is True
    assert [m.rcpt for m in smtp_server.handler.messages] == ["desk@example.org"]

    assert events(s) == [
        (DESK, "create", f"release {rid}", {"slug": "the-slug"}),  # once: the repeat replays
        (DESK, "update", f"release {rid}", {}),
        (DESK, "test", f"release {rid}", {"to": ["desk@example.org"]}),
    ]
    # Refused: a taken slug, a release that is not a draft any more. Nothing recorded.
    taken = api.client.post("/api/releases", content=body,
                            headers={**api.auth, "Content-Type": "text/markdown"})  # fmt: skip
    assert taken.status_code == 409
    assert api.post(f"/api/releases/{rid}/publish").status_code == 200
    refused = api.client.put(f"/api/releases/{rid}", content=changed,
                             headers={**api.auth, "Content-Type": "text/markdown"})  # fmt: skip
    assert refused.status_code == 409
    assert [e[1] for e in events(s)] == ["create", "update", "test", "publish"]


def test_topics_are_recorded_with_their_checked_names(faces: Faces) -> None:
    api, s = faces.api, faces.settings
    assert (
        api.post("/api/topics", {"slug": "oceans", "names": {"en": " Oceans "}}).status_code == 201
    )
    renamed = api.client.put("/api/topics/oceans", json={"names": {"en": "Seas", "fr": "Mers"}},
                             headers=api.auth)  # fmt: skip
    assert renamed.status_code == 200 and renamed.json()["names"]["fr"] == "Mers"
    assert {"task": "distributor.regenerate_site", "args": []} in api.messages()
    assert api.client.delete("/api/topics/oceans", headers=api.auth).status_code == 204
    # Refused: a taken slug, a name in no configured language, a topic gone. Nothing recorded.
    assert api.post("/api/topics", {"slug": "climate", "names": {"en": "C"}}).status_code == 409
    assert api.post("/api/topics", {"slug": "x", "names": {"de": "X"}}).status_code in (400, 422)
    assert api.client.delete("/api/topics/oceans", headers=api.auth).status_code == 404

    assert events(s) == [
        (DESK, "topic-add", "topic oceans", {"names": {"en": "Oceans"}}),
        (DESK, "topic-rename", "topic oceans", {"names": {"en": "Seas", "fr": "Mers"}}),
        (DESK, "topic-delete", "topic oceans", {}),
    ]


def test_an_upload_is_recorded_once_with_its_name_and_length(faces: Faces) -> None:
    api, s = faces.api, faces.settings
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 90, 160)).save(picture, "PNG")
    data = picture.getvalue()
    upload = {"file": ("station.png", data, "image/png")}
    stored = api.client.post("/api/media", files=upload, headers=api.auth)
    assert stored.status_code == 201, stored.text
    digest = stored.json()["digest"]
    assert api.client.post("/api/media", files=upload, headers=api.auth).status_code == 200
    bad = {"file": ("notes.png", b"not an image", "image/png")}
    assert api.client.post("/api/media", files=bad, headers=api.auth).status_code == 422
    assert events(s) == [
        (DESK, "upload", f"media {digest[:16]}", {"filename": "station.png", "length": len(data)})
    ]


def test_imports_and_erasures_are_recorded_from_the_cli_and_the_api(
    faces: Faces, tmp_path: Path
) -> None:
    api, s = faces.api, faces.settings
    add_subscribers(s, [("ann@example.com", "Ann", "en", "climate")])
    file = tmp_path / "people.csv"
    file.write_text("email,name,language,topics\nann@example.com,Ann A,en,climate\n"
                    "bob@example.org,Bob,fr,energy\ncat@example.net,Cat,en,energy\n")  # fmt: skip
    cli(s, "subscribers", "import", str(file), "--confirmed", "--consent-source", "fair")
    cli(s, "subscribers", "erase", "--email", "ann@example.com")
    bob = api.get("/api/subscribers", q="bob@example.org").json()["items"][0]["id"]
    assert api.client.delete(f"/api/subscribers/{bob}", headers=api.auth).status_code == 204
    # Refused: nobody left to erase. Nothing recorded.
    assert invoke_cli(s, "subscribers", "erase", "--email", "ann@example.com").returncode == 1
    assert api.client.delete(f"/api/subscribers/{bob}", headers=api.auth).status_code == 404

    who = audit.cli_actor()
    assert events(s) == [
        (who, "import", str(file), {"added": 2, "updated": 1, "confirmed": True}),
        (who, "erase", suppression_hash("ann@example.com"), {}),
        (DESK, "erase", suppression_hash("bob@example.org"), {}),
    ]


def _writes_the_trail(path: Path) -> list[str]:
    """Where the module at ``path`` records an audit event itself: ``audit.record(...)``,
    or ``record`` imported from ``distributor.core.audit``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr == "record":
            if isinstance(node.value, ast.Name) and node.value.id == "audit":
                found.append(f"{path}:{node.lineno}: audit.record")
        elif isinstance(node, ast.ImportFrom) and node.module == "distributor.core.audit":
            if any(alias.name == "record" for alias in node.names):
                found.append(f"{path}:{node.lineno}: imports audit.record")
    return found


def test_no_face_writes_the_audit_trail_itself() -> None:
    faces = sorted((PACKAGE / "web").rglob("*.py")) + sorted((PACKAGE / "cli").rglob("*.py"))
    assert len(faces) > 10
    assert [where for path in faces for where in _writes_the_trail(path)] == []
    # The check itself sees a record where there is one.
    assert _writes_the_trail(PACKAGE / "outbox" / "sweep.py")
