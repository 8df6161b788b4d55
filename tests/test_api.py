"""The admin API: bearer tokens, subscriber search, add (pending or confirmed),
unsubscribe, erase and CSV export — on SQLite and PostgreSQL, enqueueing on real Redis."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.core.apitokens import authenticate, create_token, list_tokens, revoke
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import Conflict, Forbidden, InputError, NotFound, Unauthorized
from distributor.core.models import ApiToken, Base
from distributor.core.queue import QUEUE
from distributor.outbox import sending
from distributor.web import create_app
from tests.clients import Api
from tests.helpers import add_subscribers, add_topics, new_token


@pytest.fixture
def api(settings: Settings, redis_url: str) -> Iterator[Api]:
    s = settings.model_copy(update={"broker_url": redis_url})
    broker = redis.Redis.from_url(redis_url)
    broker.delete(QUEUE)
    add_topics(s, "climate", "energy")
    token = new_token(s, "press-desk", ["subscribers"])
    with TestClient(create_app(s), headers={"User-Agent": "api-test/1.0"}) as client:
        yield Api(s, client, token, broker)
    broker.delete(QUEUE)
    broker.close()


def add_people(api: Api) -> None:
    add_subscribers(
        api.settings,
        [
            ("ann@example.com", "Ann Archer", "en", "climate"),
            ("bob@example.org", "Bob Brown", "fr", "energy"),
            ("cat@example.com", "Cat Annecy", "en", "climate;energy"),
            ("dan@example.net", "Dan 100% Sure", "fr", "climate"),
        ],
    )
    add_subscribers(api.settings, [("eve@example.com", "Eve", "en", "energy")], confirmed=False)


def subscriber_id(api: Api, email: str) -> int:
    page = api.get("/api/subscribers", q=email).json()
    assert page["total"] == 1, page
    return int(page["items"][0]["id"])


# ---- authentication ------------------------------------------------------------------


def test_no_token_unknown_token_or_revoked_token_is_401(api: Api) -> None:
    client = api.client
    for headers in (
        {},
        {"Authorization": "Bearer dst_not-a-token"},
        {"Authorization": f"Basic {api.token}"},
        {"Authorization": f"Bearer {api.token}x"},
        {"Authorization": "Bearer " + "x" * 5000},
    ):
        response = client.get("/api/subscribers", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["field"] is None and response.json()["error"]
    assert client.get("/api/subscribers", headers=api.auth).status_code == 200
    with session_scope(api.settings) as session:
        revoke(session, "press-desk")
    response = client.get("/api/subscribers", headers=api.auth)
    assert response.status_code == 401 and "revoked" in response.json()["error"]
    assert client.delete("/api/subscribers/1", headers=api.auth).status_code == 401


def test_a_token_without_the_subscribers_scope_is_403(api: Api) -> None:
    other = new_token(api.settings, "releases-bot", ["releases"])
    response = api.client.get("/api/subscribers", headers={"Authorization": f"Bearer {other}"})
    assert response.status_code == 403
    assert response.json() == {
        "error": "this token does not have the 'subscribers' scope",
        "field": None,
    }


def test_tokens_are_stored_hashed_and_record_their_last_use(api: Api) -> None:
    assert api.token.startswith("dst_") and len(api.token) >= 40
    with session_scope(api.settings) as session:
        (row,) = list_tokens(session)
        assert row.last_used_at is None
    api.get("/api/subscribers")
    with session_scope(api.settings) as session:
        (row,) = list_tokens(session)
        assert row.token_hash == hashlib.sha256(api.token.encode()).hexdigest()
        assert row.last_used_at is not None and row.scopes == ["subscribers"]
        # The plaintext is nowhere in the database: not in any column of any table.
        for table in Base.metadata.sorted_tables:
            for record in session.execute(select(table)):
                assert api.token not in repr(tuple(record)), table.name
                assert api.token[4:] not in repr(tuple(record)), table.name


def test_token_rules(api: Api) -> None:
    s = api.settings
    with session_scope(s) as session:
        with pytest.raises(Conflict):
            create_token(session, "press-desk", ["subscribers"])
        for bad in ("", "has space", "-dash-first", "x" * 101, "new\nline"):
            with pytest.raises(InputError, match="name"):
                create_token(session, bad, ["subscribers"])
        with pytest.raises(InputError, match="unknown scope"):
            create_token(session, "ok", ["admin"])
        with pytest.raises(InputError, match="at least one"):
            create_token(session, "ok", [])
        with pytest.raises(NotFound):
            revoke(session, "nobody")
        with pytest.raises(Unauthorized):
            authenticate(session, "", "subscribers")
        with pytest.raises(Forbidden):
            authenticate(session, api.token, "releases")
        both = create_token(session, "both", ["releases", "subscribers", "releases"])
        assert authenticate(session, both, "releases").scopes == ["releases", "subscribers"]
        first = revoke(session, "both").revoked_at
        assert revoke(session, "both").revoked_at == first  # idempotent
        assert [t.name for t in list_tokens(session)] == ["both", "press-desk"]
        assert session.scalar(select(ApiToken.scopes).where(ApiToken.name == "both")) == [
            "releases",
            "subscribers",
        ]


# ---- search --------------------------------------------------------------------------


def test_list_search_filter_and_page(api: Api) -> None:
    add_people(api)
    everyone = api.get("/api/subscribers").json()
    assert everyone["total"] == 5
    emails = [s["email"] for s in everyone["items"]]
    assert emails == sorted(emails)

    def found(**params: Any) -> list[str]:
        response = api.get("/api/subscribers", **params)
        assert response.status_code == 200, response.text
        return [s["email"] for s in response.json()["items"]]

    assert found(q="ANN") == ["ann@example.com", "cat@example.com"]  # address or name
    assert found(q="Example.ORG") == ["bob@example.org"]
    assert found(q="100%") == ["dan@example.net"]  # % is a character, not a wildcard
    assert found(q="_") == []
    assert found(status="pending") == ["eve@example.com"]
    assert found(language="fr") == ["bob@example.org", "dan@example.net"]
    assert found(topic="energy") == ["bob@example.org", "cat@example.com", "eve@example.com"]
    assert found(topic="energy", language="en", status="confirmed") == ["cat@example.com"]
    assert found(topic="nope") == []
    page = api.get("/api/subscribers", limit=2, offset=2).json()
    assert page["total"] == 5
    assert [s["email"] for s in page["items"]] == emails[2:4]
    assert api.get("/api/subscribers", offset=10).json() == {"total": 5, "items": []}

    bad = api.get("/api/subscribers", limit=0)
    assert bad.status_code == 422 and bad.json()["field"] == "limit"
    bad = api.get("/api/subscribers", status="happy")
    assert bad.status_code == 422 and bad.json()["field"] == "status"
    for name in ("q", "language", "topic"):
        bad = api.get("/api/subscribers", **{name: "ann\x00"})
        assert bad.status_code == 422 and bad.json()["field"] == name


def test_one_subscriber_with_topics_status_and_consent(api: Api) -> None:
    add_people(api)
    cat = subscriber_id(api, "cat@example.com")
    one = api.get(f"/api/subscribers/{cat}").json()
    assert one["email"] == "cat@example.com" and one["name"] == "Cat Annecy"
    assert one["topics"] == ["climate", "energy"]
    assert one["status"] == "confirmed" and one["confirmed_at"]
    assert one["consent_source"] == "test"
    assert set(one) >= {"consent_at", "consent_ip", "consent_user_agent", "consent_form_version"}
    missing = api.get("/api/subscribers/999999")
    assert missing.status_code == 404
    assert missing.json() == {"error": "no subscriber with id 999999", "field": None}
    assert api.get("/api/subscribers/0").status_code == 422
    assert api.get("/api/nothing-here").json() == {"error": "Not Found", "field": None}


# ---- add -----------------------------------------------------------------------------


def test_adding_confirmed_needs_a_consent_source(api: Api) -> None:
    body = {"email": "Fay@Example.com", "name": "Fay", "language": "en", "topics": ["climate"],
            "confirmed": True}  # fmt: skip
    for source in (None, "", "   "):
        refused = api.post("/api/subscribers", {**body, "consent_source": source})
        assert refused.status_code == 422
        assert refused.json()["field"] == "consent_source"
    added = api.post("/api/subscribers", {**body, "consent_source": "met at COP, card"})
    assert added.status_code == 201, added.text
    fay = added.json()
    assert fay["email"] == "fay@example.com" and fay["status"] == "confirmed"
    assert fay["consent_source"] == "met at COP, card" and fay["topics"] == ["climate"]
    again = api.post("/api/subscribers", {**body, "topics": ["energy"], "consent_source": "x"})
    assert again.status_code == 201 and again.json()["topics"] == ["climate", "energy"]
    assert api.messages() == []  # a confirmed subscriber is sent no confirmation


def test_refused_values_name_their_field(api: Api) -> None:
    good = {"email": "gil@example.com", "language": "en", "topics": ["climate"]}
    cases = [
        ({**good, "email": "not an address"}, "email"),
        ({**good, "email": "gil@example.com\r\nBcc: x@example.com"}, "email"),
        ({**good, "name": "Gil\nBcc: x@example.com"}, "name"),
        ({**good, "name": "=?utf-8?q?Gil?="}, "name"),
        ({**good, "language": "de"}, "language"),
        ({**good, "topics": ["nope"]}, "topics"),
        ({**good, "topics": []}, "topics"),
        ({"email": "gil@example.com", "topics": ["climate"]}, "language"),
        ({**good, "unexpected": 1}, "unexpected"),
        ({**good, "consent_source": "card\x00"}, "consent_source"),  # PostgreSQL refuses NUL
        ({**good, "topics": ["climate\x00"]}, "topics.0"),  # the path of the item
    ]
    for confirmed in (False, True):
        for body, field in cases:
            body = {"consent_source": "card", **body, "confirmed": confirmed}
            response = api.post("/api/subscribers", body)
            assert response.status_code == 422, (body, response.text)
            assert response.json()["field"] == field, (body, response.json())
    not_json = api.client.post(
        "/api/subscribers",
        content=b"{not json",
        headers={**api.auth, "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400 and not_json.json()["field"] is None
    lone_surrogate = api.client.post(
        "/api/subscribers",
        content=b'{"email": "gil@example.com", "name": "\\ud800", "language": "en", '
        b'"topics": ["climate"]}',
        headers={**api.auth, "Content-Type": "application/json"},
    )
    assert lone_surrogate.status_code == 422 and lone_surrogate.json()["field"] == "name"
    assert api.get("/api/subscribers").json()["total"] == 0


def run_confirmations(api: Api) -> list[str]:
    """Run the waiting send_confirmation tasks as a worker would (into the outbox)."""
    outcomes = [sending.send_confirmation(api.settings, m["args"][0]) for m in api.messages()
                if m["task"] == "distributor.send_confirmation"]  # fmt: skip
    api.broker.delete(QUEUE)
    return outcomes


def test_adding_pending_sends_one_confirmation_however_often_it_is_posted(api: Api) -> None:
    body = {"email": "hal@example.com", "name": "Hal", "language": "fr", "topics": ["energy"]}
    answers = [api.post("/api/subscribers", body) for _ in range(5)]
    assert [a.status_code for a in answers] == [202] * 5  # a request, not yet a subscriber
    hal = answers[-1].json()
    assert hal["email"] == "hal@example.com" and hal["language"] == "fr"
    assert hal["topics"] == ["energy"] and hal["name"] == "Hal"
    assert hal["consent_source"] == "api:press-desk"
    assert hal["consent_form_version"] == "api"
    assert hal["consent_user_agent"] == "api-test/1.0" and hal["created_at"]
    queued = sorted(m["args"] for m in api.messages())
    assert queued == [[a.json()["request_id"]] for a in answers]  # one wake-up per request
    assert sorted(run_confirmations(api)) == ["sent"] + ["skipped"] * 4
    assert api.get("/api/subscribers", q="hal").json()["total"] == 0  # until confirmed


def test_a_confirmed_add_never_resubscribes_someone_who_left(api: Api) -> None:
    add_people(api)
    ann = subscriber_id(api, "ann@example.com")
    api.post(f"/api/subscribers/{ann}/unsubscribe")
    body = {"email": "ann@example.com", "language": "en", "topics": ["climate"],
            "confirmed": True, "consent_source": "old list"}  # fmt: skip
    refused = api.post("/api/subscribers", body)
    assert refused.status_code == 409 and refused.json()["field"] == "email"
    assert api.get(f"/api/subscribers/{ann}").json()["status"] == "unsubscribed"
    # As pending, they are asked (double opt-in): only they can come back.
    pending = api.post("/api/subscribers", {**body, "confirmed": False})
    assert pending.status_code == 202 and pending.json()["request_id"]
    assert api.get(f"/api/subscribers/{ann}").json()["status"] == "unsubscribed"
    assert run_confirmations(api) == ["sent"]


def test_a_pending_add_changes_nothing_of_a_subscriber(api: Api) -> None:
    add_people(api)
    eve = api.get(f"/api/subscribers/{subscriber_id(api, 'eve@example.com')}").json()
    body = {"email": "eve@example.com", "name": "Mallory", "language": "fr",
            "topics": ["climate"]}  # fmt: skip
    assert api.post("/api/subscribers", body).status_code == 202
    assert api.get(f"/api/subscribers/{eve['id']}").json() == eve  # still as it was


# ---- unsubscribe, erase, export ------------------------------------------------------


def test_unsubscribe_is_idempotent(api: Api) -> None:
    add_people(api)
    bob = subscriber_id(api, "bob@example.org")
    first = api.post(f"/api/subscribers/{bob}/unsubscribe")
    assert first.status_code == 200 and first.json()["status"] == "unsubscribed"
    second = api.post(f"/api/subscribers/{bob}/unsubscribe")
    assert second.status_code == 200
    assert second.json()["unsubscribed_at"] == first.json()["unsubscribed_at"]
    assert api.post("/api/subscribers/999999/unsubscribe").status_code == 404


def test_erase_then_404_and_no_confirmed_re_add(api: Api) -> None:
    add_people(api)
    dan = subscriber_id(api, "dan@example.net")
    erased = api.client.delete(f"/api/subscribers/{dan}", headers=api.auth)
    assert erased.status_code == 204 and erased.content == b""
    assert api.get(f"/api/subscribers/{dan}").status_code == 404
    assert api.client.delete(f"/api/subscribers/{dan}", headers=api.auth).status_code == 404
    assert api.get("/api/subscribers", q="dan").json()["total"] == 0
    assert "dan@example.net" not in api.get("/api/subscribers.csv").text
    body = {"email": "dan@example.net", "language": "fr", "topics": ["climate"],
            "confirmed": True, "consent_source": "old list"}  # fmt: skip
    again = api.post("/api/subscribers", body)
    assert again.status_code == 409 and again.json()["field"] == "email"


def test_csv_export(api: Api) -> None:
    add_people(api)
    response = api.get("/api/subscribers.csv")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["content-disposition"]
    lines = response.text.splitlines()
    assert lines[0].startswith("email,name,language,topics,status,consent_source")
    assert len(lines) == 6
    assert lines[3].startswith("cat@example.com,Cat Annecy,en,climate;energy,confirmed,test,")
    assert api.client.get("/api/subscribers.csv").status_code == 401


# ---- the schema ----------------------------------------------------------------------


def test_openapi_describes_the_api_only(api: Api) -> None:
    schema = api.client.get("/api/openapi.json").json()
    assert sorted(p for p in schema["paths"] if p.startswith("/api/subscribers")) == [
        "/api/subscribers",
        "/api/subscribers.csv",
        "/api/subscribers/{subscriber_id}",
        "/api/subscribers/{subscriber_id}/accreditation",
        "/api/subscribers/{subscriber_id}/unsubscribe",
    ]
    assert all(p.startswith("/api/") for p in schema["paths"])  # no public page, no /admin
    assert schema["components"]["securitySchemes"]["subscribersToken"]["scheme"] == "bearer"
    assert schema["components"]["securitySchemes"]["releasesToken"]["scheme"] == "bearer"
    post = schema["paths"]["/api/subscribers"]["post"]
    assert set(post["responses"]) >= {"201", "401", "403", "409", "422"}
    assert api.client.get("/api/docs").status_code == 200
    # The public pages are not part of the API and keep their own error pages.
    missing = api.client.get("/releases/nope")
    assert missing.status_code == 404 and "Page not found" in missing.text  # HTML, not JSON
