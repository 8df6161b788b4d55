"""The release API: the whole life of a release (create from Markdown or JSON, read,
update the draft, preview, test, publish, send, correct, withdraw, report), idempotency
keys, topics, and the token checks — on SQLite and PostgreSQL, enqueueing on real Redis,
test emails into a real SMTP server."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from distributor.audience.subscribers import unsubscribe
from distributor.core.audit import recent
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Delivery, Release
from distributor.core.queue import QUEUE, TaskQueue
from distributor.outbox import sending, sweep
from distributor.site.builder import build_site
from distributor.web import create_app
from tests.clients import Api
from tests.helpers import add_subscribers, add_topics, new_token, release_text
from tests.processes import NO_BROKER
from tests.smtp_server import SMTPServer

JSON_RELEASE: dict[str, Any] = {
    "title": "Agency opens a new monitoring station",
    "lang": "en",
    "topics": ["climate"],
    "date": "2026-11-21T10:00:00+01:00",
    "dateline": "BREST",
    "contacts": [{"name": "Jane Doe", "email": "press@example.org"}],
    "body": "The Agency opened a station on the coast.\n\nIt measures **sea level**.",
}
SUBSCRIBERS = [
    ("ann@example.com", "Ann", "en", "climate"),
    ("bob@example.org", "Bob", "en", "climate;energy"),
    ("cat@example.net", "Cat", "en", "climate"),
    ("dan@example.com", "Dan", "en", "energy"),  # not a climate follower
]


@pytest.fixture
def api(settings: Settings, redis_url: str, smtp_server: SMTPServer) -> Iterator[Api]:
    s = settings.model_copy(update={"broker_url": redis_url, "smtp_url": smtp_server.url})
    broker = redis.Redis.from_url(redis_url)
    broker.delete(QUEUE)
    add_topics(s, "climate", "energy")
    add_subscribers(s, SUBSCRIBERS)
    token = new_token(s, "press-office", ["releases"])
    with TestClient(create_app(s)) as client:
        yield Api(s, client, token, broker)
    broker.delete(QUEUE)
    broker.close()


def markdown(client: TestClient, auth: dict[str, str], text: str, **headers: str) -> Any:
    return client.post(
        "/api/releases",
        content=text.encode(),
        headers={**auth, "Content-Type": "text/markdown; charset=utf-8", **headers},
    )


def send_everything(s: Settings, release_id: int) -> None:
    """What the workers do after a publish, in this process."""
    queue = TaskQueue(s.model_copy(update={"broker_url": NO_BROKER}))
    try:
        sending.distribute_release(s, queue, release_id)
        while sending.send_batch(s, release_id).claimed:
            pass
    finally:
        queue.close()


def tasks(api: Api, name: str) -> list[list[Any]]:
    return [m["args"] for m in api.messages() if m["task"].endswith(name)]


def test_the_whole_life_of_a_release(api: Api, smtp_server: SMTPServer) -> None:
    # Create from a release file: a draft, visible to the API only.
    created = markdown(api.client, api.auth, release_text())
    assert created.status_code == 201, created.text
    release = created.json()
    rid = release["id"]
    assert release["state"] == "draft" and release["topics"] == ["climate"]
    assert release["url"].endswith("/releases/agency-signs-agreement")
    assert release["counts"]["planned"] == 0
    build_site(api.settings)
    assert api.client.get("/releases/agency-signs-agreement").status_code == 404

    # Update the draft (JSON this time): every field is replaced.
    changed = {**JSON_RELEASE, "slug": "agency-signs-agreement", "title": "Agency signs a pact"}
    updated = api.client.put(f"/api/releases/{rid}", json=changed, headers=api.auth)
    assert updated.status_code == 200, updated.text
    assert updated.json()["title"] == "Agency signs a pact"
    assert updated.json()["dateline"] == "BREST"

    # Preview and test: the email as subscribers get it; a test reaches only the address.
    preview = api.get(f"/api/releases/{rid}/preview").json()
    assert preview["subject"] == "Agency signs a pact"
    assert "sea level" in preview["text"] and "<strong>sea level</strong>" in preview["html"]
    tested = api.post(f"/api/releases/{rid}/test", {"to": ["desk@example.org"]})
    assert tested.status_code == 200, tested.text
    assert tested.json() == [
        {
            "address": "desk@example.org",
            "sent": True,
            "code": 250,
            "message": tested.json()[0]["message"],
        }
    ]
    (test_message,) = smtp_server.handler.messages
    assert test_message.parsed()["Subject"] == "[TEST] Agency signs a pact"
    assert api.get(f"/api/releases/{rid}").json()["counts"]["planned"] == 0  # no ledger

    # Publish: the workers are woken; then they send it, once to each climate follower.
    published = api.post(f"/api/releases/{rid}/publish")
    assert published.status_code == 200, published.text
    assert published.json()["state"] == "published"
    assert tasks(api, "distribute_release") == [[rid]]
    assert api.client.put(f"/api/releases/{rid}", json=changed, headers=api.auth).status_code == 409
    send_everything(api.settings, rid)
    received = sorted(m.rcpt for m in smtp_server.handler.messages[1:])
    assert received == ["ann@example.com", "bob@example.org", "cat@example.net"]
    counts = api.get(f"/api/releases/{rid}").json()["counts"]
    assert (counts["planned"], counts["sent"], counts["failed"]) == (3, 3, 0)
    assert counts["time_to_send"] is not None and counts["time_to_send"] >= 0

    # Someone leaves after reading it: counted as unsubscribed since.
    with session_scope(api.settings) as session:
        sub_id = session.scalar(
            select(Delivery.subscriber_id).where(Delivery.release_id == rid).limit(1)
        )
        assert sub_id is not None
        unsubscribe(session, sub_id)
    assert api.get(f"/api/releases/{rid}").json()["counts"]["unsubscribed_since"] == 1

    # Correct: same id and address, a corrected date, no email.
    before = len(smtp_server.handler.messages)
    fixed = {**changed, "body": "The Agency opened a station on the Breton coast.\n\nMore."}
    corrected = api.client.post(f"/api/releases/{rid}/correct", json=fixed, headers=api.auth)
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["corrected_at"] is not None
    assert "Breton coast" in corrected.json()["lead"]
    # No email: the correction woke no sender, and what a woken (or sweeping) worker would
    # run finds nothing to send, so the SMTP server receives nothing.
    assert tasks(api, "send_correction_notices") == []
    assert sending.send_correction_notices(api.settings, rid).claimed == 0
    send_everything(api.settings, rid)
    assert len(smtp_server.handler.messages) == before

    # The report: every delivery, as CSV.
    report = api.get(f"/api/releases/{rid}/deliveries.csv")
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert report.headers["content-type"].startswith("text/csv")
    assert sorted(r["email"] for r in rows) == received and {r["status"] for r in rows} == {"sent"}

    # Withdraw: off the site; recorded with the token's name.
    withdrawn = api.post(f"/api/releases/{rid}/withdraw", {"by": "Jane Doe"})
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["state"] == "withdrawn"
    assert withdrawn.json()["withdrawn_by"] == "Jane Doe (token:press-office)"
    assert api.post(f"/api/releases/{rid}/withdraw").status_code == 409
    with session_scope(api.settings) as session:
        trail = [(e.actor, e.action) for e in reversed(recent(session, 20))]
    assert ("token:press-office", "create") in trail
    assert ("token:press-office", "publish") in trail
    assert ("token:press-office", "correct") in trail
    assert ("Jane Doe (token:press-office)", "withdraw") in trail


def test_a_release_from_json_and_the_errors_name_the_field(api: Api) -> None:
    created = api.post("/api/releases", JSON_RELEASE)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["slug"] == "agency-opens-a-new-monitoring-station"
    assert body["lead"] == "The Agency opened a station on the coast."
    assert "<strong>sea level</strong>" in body["body_html"]
    assert body["contacts"][0]["name"] == "Jane Doe"

    def refused(payload: Any, **headers: str) -> tuple[int, str | None, str]:
        if isinstance(payload, bytes):
            response = api.client.post(
                "/api/releases", content=payload, headers={**api.auth, **headers}
            )
        else:
            response = api.post("/api/releases", payload)
        data = response.json()
        return response.status_code, data["field"], data["error"]

    no_title = {k: v for k, v in JSON_RELEASE.items() if k != "title"}
    assert refused(no_title)[:2] == (422, "title")
    assert refused({**JSON_RELEASE, "topics": ["sport"]})[:2] == (422, "topics")
    assert refused({**JSON_RELEASE, "date": "2026-11-21T10:00:00"})[:2] == (422, "date")
    assert refused({**JSON_RELEASE, "lang": "de"})[:2] == (422, "lang")
    assert refused({**JSON_RELEASE, "title": "Two\r\nlines"})[:2] == (422, "title")
    assert refused({**JSON_RELEASE, "colour": "red"})[:2] == (422, "colour")
    assert refused(b"{not json", **{"Content-Type": "application/json"})[0] == 400
    assert refused(b"title: x", **{"Content-Type": "text/plain"})[0] == 415
    assert refused(b"\xff\xfe", **{"Content-Type": "text/markdown"})[0] == 400
    status, _, message = refused(b"no front matter", **{"Content-Type": "text/markdown"})
    assert status == 422 and "front matter" in message
    # The slug is taken: 409, and the first release is untouched.
    status, _, message = refused(JSON_RELEASE)
    assert status == 409 and "already exists" in message
    with session_scope(api.settings) as session:
        assert session.scalar(select(func.count()).select_from(Release)) == 1


def test_an_idempotency_key_makes_one_release_and_one_distribution(api: Api) -> None:
    key = {"Idempotency-Key": "0b6f9d4e-create-1"}
    first = markdown(api.client, api.auth, release_text(), **key)
    again = markdown(api.client, api.auth, release_text(), **key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    with session_scope(api.settings) as session:
        assert session.scalar(select(func.count()).select_from(Release)) == 1
    # The same key with another request is refused, and creates nothing.
    other = markdown(api.client, api.auth, release_text(slug="other-slug"), **key)
    assert other.status_code == 422 and other.json()["field"] == "Idempotency-Key"
    assert "another request" in other.json()["error"]
    # Another token has its own keys.
    second_token = new_token(api.settings, "second-desk", ["releases"])
    own = markdown(
        api.client, {"Authorization": f"Bearer {second_token}"},
        release_text(slug="second-release"), **key,
    )  # fmt: skip
    assert own.status_code == 201 and own.json()["id"] != first.json()["id"]

    rid = first.json()["id"]
    publish_key = {**api.auth, "Idempotency-Key": "publish-1"}
    one = api.client.post(f"/api/releases/{rid}/publish", headers=publish_key)
    two = api.client.post(f"/api/releases/{rid}/publish", headers=publish_key)
    assert one.status_code == two.status_code == 200
    assert one.json() == two.json() and "idempotent-replayed" in two.headers
    assert tasks(api, "distribute_release") == [[rid]]  # one distribution
    send_everything(api.settings, rid)
    send_everything(api.settings, rid)
    with session_scope(api.settings) as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 3
    # A failed call does not use up its key: fixed and retried, it acts.
    retry = {**api.auth, "Idempotency-Key": "retry-after-error"}
    bad = api.client.post("/api/releases", json={**JSON_RELEASE, "topics": ["x"]}, headers=retry)
    assert bad.status_code == 422
    with session_scope(api.settings) as session:
        gone = session.scalar(select(func.count()).select_from(Release))
    good = api.client.post("/api/releases", json=JSON_RELEASE, headers=retry)
    assert good.status_code == 201
    with session_scope(api.settings) as session:
        assert session.scalar(select(func.count()).select_from(Release)) == (gone or 0) + 1


def test_a_key_that_is_not_visible_ascii_is_refused_naming_the_header(api: Api) -> None:
    """The README once showed ``Idempotency-Key: 5f1c…``: curl sends the ellipsis as UTF-8,
    which a key may not hold. The answer says which header, what a key may be, and where."""
    rid = markdown(api.client, api.auth, release_text()).json()["id"]
    for key, says in ((b"5f1c\xe2\x80\xa6", "visible ASCII characters (a UUID, say): "
                       "character 5 is not"), (b"two words", "character 4 is not"),
                      (b"k" * 201, "at most 200 characters")):  # fmt: skip
        refused = api.client.post(
            f"/api/releases/{rid}/publish", headers={**api.auth, "Idempotency-Key": key}
        )
        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert body["field"] == "Idempotency-Key"
        assert body["error"].startswith("Idempotency-Key: ") and says in body["error"], body
    assert tasks(api, "distribute_release") == []  # nothing was published
    good = {**api.auth, "Idempotency-Key": "3f6c1e9a-8d2b-4c1e-9b7a-2f4d6e8a0c11"}
    assert api.client.post(f"/api/releases/{rid}/publish", headers=good).status_code == 200


def test_scheduling_over_the_api(api: Api) -> None:
    rid = markdown(api.client, api.auth, release_text()).json()["id"]
    at = datetime(2031, 5, 4, 7, 30, tzinfo=UTC)
    scheduled = api.post(f"/api/releases/{rid}/publish", {"at": at.isoformat()})
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["state"] == "scheduled"
    assert scheduled.json()["scheduled_at"].startswith("2031-05-04T07:30:00")
    assert tasks(api, "distribute_release") == []
    naive = api.post(f"/api/releases/{rid}/publish", {"at": "2031-05-04T07:30:00"})
    assert naive.status_code == 422 and naive.json()["field"] == "at"
    # A time in the past (a wrong day) is refused, and changes nothing.
    ago = (datetime.now(UTC) - timedelta(days=4)).isoformat()
    past = api.post(f"/api/releases/{rid}/publish", {"at": ago})
    assert past.status_code == 422 and past.json()["field"] == "at"
    assert "is in the past" in past.json()["error"]
    assert api.get(f"/api/releases/{rid}").json()["scheduled_at"].startswith("2031-05-04T07:30")
    assert tasks(api, "distribute_release") == []
    # Invisible while scheduled: no page, not in the feed, no API read without a token.
    build_site(api.settings)
    assert api.client.get("/releases/agency-signs-agreement").status_code == 404
    assert "agency-signs-agreement" not in api.client.get("/feeds/en/releases.atom").text
    assert api.client.get(f"/api/releases/{rid}").status_code == 401
    later = api.post(f"/api/releases/{rid}/publish", {"at": (at + timedelta(days=1)).isoformat()})
    assert later.json()["scheduled_at"].startswith("2031-05-05T07:30:00")
    back = api.post(f"/api/releases/{rid}/unschedule")
    assert back.status_code == 200 and back.json()["state"] == "draft"
    assert api.post(f"/api/releases/{rid}/unschedule").status_code == 409
    assert api.post(f"/api/releases/{rid}/publish", {"at": ago}).status_code == 422
    listed = api.get("/api/releases", state="draft").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == rid
    now = api.post(f"/api/releases/{rid}/publish", {"at": "now"})  # said explicitly: at once
    assert now.status_code == 200 and now.json()["state"] == "published"
    assert tasks(api, "distribute_release") == [[rid]]


def test_tokens_missing_wrong_scope_and_revoked_are_refused(api: Api) -> None:
    from distributor.core.apitokens import revoke

    rid = markdown(api.client, api.auth, release_text()).json()["id"]
    subscribers_only = new_token(api.settings, "list-desk", ["subscribers"])
    paths = [("get", "/api/releases"), ("get", f"/api/releases/{rid}"),
             ("post", f"/api/releases/{rid}/publish"), ("get", "/api/topics")]  # fmt: skip
    for method, path in paths:
        missing = api.client.request(method, path)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        wrong = api.client.request(method, path, headers={"Authorization": "Bearer dst_nope"})
        assert wrong.status_code == 401
        scope = api.client.request(
            method, path, headers={"Authorization": f"Bearer {subscribers_only}"}
        )
        assert scope.status_code == 403 and "releases" in scope.json()["error"]
    # And the other way round: a releases token reads no subscriber.
    assert api.get("/api/subscribers").status_code == 403
    with session_scope(api.settings) as session:
        revoke(session, "press-office")
    revoked = api.get(f"/api/releases/{rid}")
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]
    with session_scope(api.settings) as session:
        assert session.get_one(Release, rid).state == "draft"  # nothing was published


def test_topics_can_be_listed_created_renamed_and_deleted(api: Api) -> None:
    created = api.post("/api/topics", {"slug": "oceans", "names": {"en": "Oceans", "fr": "Océans"}})
    assert created.status_code == 201, created.text
    assert created.json() == {
        "slug": "oceans", "names": {"en": "Oceans", "fr": "Océans"},
        "confirmed_subscribers": 0, "subscribers": 0, "releases": 0,
    }  # fmt: skip
    assert api.post("/api/topics", {"slug": "oceans", "names": {"en": "x"}}).status_code == 409
    bad_lang = api.post("/api/topics", {"slug": "rivers", "names": {"de": "Flüsse"}})
    assert bad_lang.status_code == 422 and bad_lang.json()["field"] == "names"
    bad_slug = api.post("/api/topics", {"slug": "Big Rivers", "names": {"en": "Rivers"}})
    assert bad_slug.status_code == 422 and bad_slug.json()["field"] == "slug"
    renamed = api.client.put(
        "/api/topics/oceans", json={"names": {"en": "Seas and oceans"}}, headers=api.auth
    )
    assert renamed.status_code == 200 and renamed.json()["names"] == {"en": "Seas and oceans"}
    assert [t["slug"] for t in api.get("/api/topics").json()] == ["climate", "energy", "oceans"]
    climate = api.get("/api/topics/climate").json()
    assert (climate["confirmed_subscribers"], climate["subscribers"]) == (3, 3)
    in_use = api.client.delete("/api/topics/climate", headers=api.auth)
    assert in_use.status_code == 409 and "3 subscriber" in in_use.json()["error"]
    assert api.client.delete("/api/topics/oceans", headers=api.auth).status_code == 204
    assert api.get("/api/topics/oceans").status_code == 404


def test_an_uploaded_image_is_referenced_by_a_release(api: Api) -> None:
    from PIL import Image

    picture = io.BytesIO()
    Image.new("RGB", (1600, 900), (20, 90, 160)).save(picture, "JPEG")
    upload = {"file": ("station.jpg", picture.getvalue(), "image/jpeg")}
    stored = api.client.post("/api/media", files=upload, headers=api.auth)
    assert stored.status_code == 201, stored.text
    answer = stored.json()
    assert (answer["page"]["width"], answer["email"]["width"]) == (1200, 600)
    assert answer["full"]["url"].startswith(api.settings.site_url + "/media/")
    again = api.client.post("/api/media", files=upload, headers=api.auth)
    assert again.status_code == 200 and again.json()["digest"] == answer["digest"]
    assert api.client.post("/api/media", files=upload).status_code == 401

    image = {**answer["image"], "alt": "The new station", "credit": "Agency"}
    created = api.post("/api/releases", {**JSON_RELEASE, "images": [image]})
    assert created.status_code == 201, created.text
    preview = api.get(f"/api/releases/{created.json()['id']}/preview").json()
    assert answer["email"]["url"] in preview["html"] and answer["full"]["url"] in preview["html"]
    served = api.client.get(answer["page"]["url"].removeprefix(api.settings.site_url))
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"

    text_file = {"file": ("notes.jpg", b"not an image at all", "image/jpeg")}
    refused = api.client.post("/api/media", files=text_file, headers=api.auth)
    assert refused.status_code == 422 and refused.json()["field"] == "file"
    local = {**JSON_RELEASE, "slug": "local", "images": [{"src": "photos/x.jpg", "alt": "x"}]}
    assert api.post("/api/releases", local).json()["field"] == "images.0.src"


def test_keys_are_forgotten_after_a_day(api: Api) -> None:
    from distributor.core import idempotency
    from distributor.core.models import IdempotencyKey

    key = {"Idempotency-Key": "old-key"}
    assert markdown(api.client, api.auth, release_text(), **key).status_code == 201
    queue = TaskQueue(api.settings.model_copy(update={"broker_url": NO_BROKER}))
    try:
        sweep.sweep(api.settings, queue, now=datetime.now(UTC) + timedelta(hours=23))
        with session_scope(api.settings) as session:
            assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 1
        sweep.sweep(api.settings, queue, now=datetime.now(UTC) + idempotency.KEY_TTL)
    finally:
        queue.close()
    with session_scope(api.settings) as session:
        assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def test_a_key_in_flight_is_refused_until_its_claim_is_abandoned(settings: Settings) -> None:
    from distributor.core import idempotency
    from distributor.core.errors import Conflict, InputError

    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    with session_scope(settings) as session:
        assert idempotency.claim(session, "desk", "k1", "request-a", now) is None
    with session_scope(settings) as session, pytest.raises(Conflict, match="still being"):
        idempotency.claim(session, "desk", "k1", "request-a", now + timedelta(seconds=5))
    with session_scope(settings) as session, pytest.raises(InputError, match="another request"):
        idempotency.claim(session, "desk", "k1", "request-b", now + timedelta(seconds=5))
    later = now + idempotency.ABANDONED_AFTER
    with session_scope(settings) as session:  # its process died: the key is free again
        assert idempotency.claim(session, "desk", "k1", "request-a", later) is None
        idempotency.complete(session, "desk", "k1", 200, {"id": 7})
    with session_scope(settings) as session:
        replay = idempotency.claim(session, "desk", "k1", "request-a", later)
        assert replay == idempotency.Replay(200, {"id": 7})
    with session_scope(settings) as session, pytest.raises(InputError, match="visible ASCII"):
        idempotency.claim(session, "desk", "bad key\n", "request-a", later)


def test_links_names_and_contacts_that_deceive_are_refused_over_the_api(api: Api) -> None:
    # Issue 11: the JSON payload goes through the same model as a release file.
    def refused(**fields: Any) -> tuple[int, str | None, str]:
        response = api.post("/api/releases", {**JSON_RELEASE, **fields})
        return response.status_code, response.json()["field"], response.json()["error"]

    image = {"src": "/media/a.jpg", "alt": "A"}
    document = {"href": "/files/a.pdf", "title": "A"}
    for link in ("//evil.example/a.jpg", "/\\evil.example/a.jpg", "/%2Fevil.example/a.jpg",
                 " \t//evil.example/a.jpg", "javascript:alert(1)"):  # fmt: skip
        assert refused(images=[image, {**image, "src": link}])[:2] == (422, "images.1.src")
        assert refused(images=[{**image, "href": link}])[:2] == (422, "images.0.href")
        status, field, _ = refused(attachments=[document, {**document, "href": link}])
        assert (status, field) == (422, "attachments.1.href")
    for title in ("Invoice \u202egpj.exe", "A\u2066B", "A\ufdd0", "A\x85B", "A\x9bB"):
        assert refused(title=title)[:2] == (422, "title")
    contact = {"name": "Jane"}
    status, field, error = refused(contacts=[contact, {**contact, "email": "x@y.org?cc=z@w.org"}])
    assert (status, field) == (422, "contacts.1.email") and "not an email address" in error
    assert refused(contacts=[{**contact, "phone": "+33 1\x07"}])[:2] == (422, "contacts.0.phone")
    assert refused(contacts=[{"name": "Jane\u202e"}])[:2] == (422, "contacts.0.name")
    status, _, error = refused(body="The lead.\n\nReversed \u202etext.")
    assert status == 422 and "U+202E" in error
    with session_scope(api.settings) as session:
        assert session.scalar(select(func.count()).select_from(Release)) == 0
