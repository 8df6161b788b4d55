"""Embargo access: a confirmed journalist asks on their preferences page (outlet, role); the
press office grants, refuses or revokes it from the command line; the page says where the
request stands (and why a refusal), an accredited journalist chooses the "embargo lifted"
line; every decision is in the audit trail, naming the subscriber by id only; a wrong value
is refused in a few words and changes nothing; an erasure takes the accreditation too."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.audience.accreditation import Decision, accreditations, ask, decide, view
from distributor.audience.privacy import export_person
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import Conflict, SubscriberInputError
from distributor.core.models import (
    Accreditation,
    AccreditationStatus,
    AuditEvent,
    Subscriber,
    SubscriberStatus,
)
from distributor.core.urls import preferences_url
from distributor.web import create_app
from tests.clients import logged_in_as
from tests.helpers import (
    add_subscribers,
    add_topics,
    csrf_of,
    empty_queue_and_limits,
    new_token,
    shown,
)
from tests.processes import invoke_cli

ANN, BOB = "ann@example.com", "bob@example.com"


def subscriber_id(settings: Settings, email: str) -> int:
    with session_scope(settings) as session:
        found = session.scalar(select(Subscriber.id).where(Subscriber.email == email))
    assert found is not None
    return found


@pytest.fixture
def journalist(sqlite_settings: Settings, redis_url: str) -> Iterator[tuple[Settings, TestClient]]:
    """The public pages over SQLite; Ann subscribed (confirmed) to climate in English, Bob
    in French."""
    settings = sqlite_settings.model_copy(
        update={"broker_url": redis_url, "rate_limit_requests": 1000}
    )
    empty_queue_and_limits(redis_url)
    add_topics(settings, "climate")
    add_subscribers(settings, [(ANN, "Ann", "en", "climate"), (BOB, "Bob", "fr", "climate")])
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        yield settings, client


def own_page(settings: Settings, email: str) -> str:
    with session_scope(settings) as session:
        sub = session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
        return preferences_url(settings, sub.id, sub.link_nonce).removeprefix(settings.site_url)


def test_ask_on_the_preferences_page_be_granted_on_the_command_line_and_see_it(
    journalist: tuple[Settings, TestClient],
) -> None:
    settings, client = journalist
    path = own_page(settings, ANN)
    page = client.get(path)
    assert "Embargoed advance copies" in shown(page.text)
    asked = client.post(
        path + "/accreditation",
        data={"outlet": "Le Monde", "role": "Science editor", "csrf": csrf_of(page.text)},
    )
    assert asked.status_code == 200
    said = shown(asked.text)
    assert "Your request for advance copies is sent: the press office will decide." in said
    assert "Your request is waiting for the press office's decision." in said
    assert 'value="Le Monde"' in asked.text and "Update my request" in said

    listed = invoke_cli(settings, "subscribers", "accreditations", "--status", "requested")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split("\t")[:4] == ["email", "status", "outlet", "role"]
    assert row.split("\t")[:4] == [ANN, "requested", "Le Monde", "Science editor"]

    granted = invoke_cli(settings, "subscribers", "accredit", ANN)
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout.strip() == (
        "granted: ann@example.com (Science editor, Le Monde) receives embargoed advance copies "
        "of releases on their topics"
    )
    page = client.get(path)
    said = shown(page.text)
    assert "You are accredited" in said and "As Science editor, Le Monde." in said
    assert 'name="outlet"' not in page.text  # nothing left to ask for

    # The "embargo lifted" line: chosen, then "nothing changed" when chosen again.
    tick = {"lift_notice": "1", "csrf": csrf_of(page.text)}
    saved = client.post(path + "/lift-notice", data=tick)
    assert "Your preferences are saved." in shown(saved.text)
    assert re.search(r'name="lift_notice" value="1" checked', saved.text)
    again = client.post(path + "/lift-notice", data={**tick, "csrf": csrf_of(saved.text)})
    assert "Nothing changed" in shown(again.text)
    with session_scope(settings) as session:
        row = session.scalars(select(Accreditation)).one()
        assert (row.status, row.lift_notice) == (AccreditationStatus.GRANTED, True)
        events = session.scalars(select(AuditEvent).where(AuditEvent.action.like("accred%")))
        [event] = list(events)
    ann_id = subscriber_id(settings, ANN)
    assert (event.action, event.subject) == ("accreditation-grant", f"subscriber {ann_id}")
    assert event.actor.startswith("cli:") and ANN not in repr(event.details)


def test_a_refusal_is_shown_with_its_reason_and_the_journalist_may_ask_again(
    journalist: tuple[Settings, TestClient],
) -> None:
    settings, client = journalist
    path = own_page(settings, BOB)
    page = client.get(path)
    client.post(
        path + "/accreditation",
        data={"outlet": "Libération", "role": "Pigiste", "csrf": csrf_of(page.text)},
    )
    refused = invoke_cli(
        settings, "subscribers", "accredit", BOB, "--refuse", "--reason", "Carte de presse ?"
    )
    assert refused.returncode == 0, refused.stderr
    assert (
        refused.stdout.strip() == "refused: bob@example.com (Pigiste, Libération): request refused"
    )
    page = client.get(path)
    said = shown(page.text)
    assert page.text.startswith("<!doctype html>") and '<html lang="fr">' in page.text
    assert "Le service de presse a refusé votre demande le" in said
    assert "Motif\u00a0: Carte de presse ?" in said
    assert "Vous pouvez la renouveler." in said
    asked = client.post(
        path + "/accreditation",
        data={"outlet": "Libération", "role": "Journaliste", "csrf": csrf_of(page.text)},
    )
    assert asked.status_code == 200
    with session_scope(settings) as session:
        row = session.scalars(select(Accreditation)).one()
        assert (row.status, row.role, row.reason) == ("requested", "Journaliste", "")
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions == ["accreditation-refuse"]


@pytest.mark.parametrize(
    ("outlet", "role", "words"),
    [
        ("", "Editor", "Name the outlet you write for"),
        ("Le Monde\r\nBcc: x@example.org", "Editor", "Name the outlet you write for"),
        ("Le Monde", "x" * 201, "Say what you do there"),
    ],
)
def test_a_request_that_does_not_fit_is_refused_in_a_few_words_and_stores_nothing(
    journalist: tuple[Settings, TestClient], outlet: str, role: str, words: str
) -> None:
    settings, client = journalist
    path = own_page(settings, ANN)
    page = client.get(path)
    answer = client.post(
        path + "/accreditation", data={"outlet": outlet, "role": role, "csrf": csrf_of(page.text)}
    )
    assert answer.status_code == 422
    assert words in shown(answer.text)
    with session_scope(settings) as session:
        assert session.scalars(select(Accreditation)).all() == []


def test_someone_who_left_is_not_offered_advance_copies_and_cannot_ask(
    journalist: tuple[Settings, TestClient],
) -> None:
    settings, client = journalist
    with session_scope(settings) as session:
        sub = session.scalars(select(Subscriber).where(Subscriber.email == ANN)).one()
        sub.status = SubscriberStatus.UNSUBSCRIBED
    path = own_page(settings, ANN)
    page = client.get(path)
    assert 'id="advance-copies"' not in page.text  # nothing to say to someone who left
    answer = client.post(
        path + "/accreditation",
        data={"outlet": "Le Monde", "role": "Editor", "csrf": csrf_of(page.text)},
    )
    assert answer.status_code == 409
    assert "Advance copies are for confirmed subscribers who are not accredited yet." in shown(
        answer.text
    )
    nothing = client.post(
        path + "/lift-notice", data={"lift_notice": "1", "csrf": csrf_of(answer.text)}
    )
    assert nothing.status_code == 409


def test_decisions_that_do_not_fit_the_state_are_refused_saying_why(settings: Settings) -> None:
    add_topics(settings, "climate")
    add_subscribers(settings, [(ANN, "Ann", "en", "climate"), (BOB, "Bob", "en", "climate")])
    ann, bob = subscriber_id(settings, ANN), subscriber_id(settings, BOB)
    with session_scope(settings) as session:
        with pytest.raises(
            Conflict, match=r"ann@example.com has no request waiting \(never asked\)"
        ):
            decide(session, ann, Decision.REFUSE, "cli:test")
        with pytest.raises(Conflict, match=r"is not accredited \(never asked\)"):
            decide(session, ann, Decision.REVOKE, "cli:test")
        ask(session, ann, "Nature", "Reporter")
        with pytest.raises(Conflict, match=r"is not accredited \(requested\)"):
            decide(session, ann, Decision.REVOKE, "cli:test")
        _, changed = decide(session, ann, Decision.GRANT, "cli:test")
        assert changed
        _, changed = decide(session, ann, Decision.GRANT, "cli:test")
        assert not changed  # granting again is harmless and records nothing
        with pytest.raises(Conflict, match="already accredited"):
            ask(session, ann, "Nature", "Reporter")
        session.get(Subscriber, bob).status = SubscriberStatus.PENDING  # type: ignore[union-attr]
        with pytest.raises(
            Conflict, match=r"bob@example.com is not a confirmed subscriber \(pending\)"
        ):
            decide(session, bob, Decision.GRANT, "cli:test")
        with pytest.raises(SubscriberInputError, match="reason: longer than 500"):
            decide(session, ann, Decision.REVOKE, "cli:test", reason="x" * 501)
        assert view(session, ann).status == "granted"  # the refused revocation changed nothing
    # The command line says the same, with exit status 1, and a wrong address as such.
    refused = invoke_cli(settings, "subscribers", "accredit", BOB)
    assert refused.returncode == 1 and "not a confirmed subscriber (pending)" in refused.stderr
    unknown = invoke_cli(settings, "subscribers", "accredit", "nobody@example.com")
    assert (
        unknown.returncode == 1
        and "no subscriber with address nobody@example.com" in unknown.stderr
    )
    both = invoke_cli(settings, "subscribers", "accredit", ANN, "--refuse", "--revoke")
    assert both.returncode == 2 and "--refuse or --revoke, not both" in both.stderr


def test_waiting_requests_come_first_and_a_grant_without_request_names_the_outlet(
    settings: Settings,
) -> None:
    add_topics(settings, "climate")
    people = [(f"j{i}@example.com", f"J{i}", "en", "climate") for i in range(3)]
    add_subscribers(settings, people)
    ids = [subscriber_id(settings, p[0]) for p in people]
    with session_scope(settings) as session:
        ask(session, ids[2], "AFP", "Desk")
        ask(session, ids[0], "Reuters", "Correspondent")
    granted = invoke_cli(
        settings, "subscribers", "accredit", "j1@example.com", "--outlet", "BBC", "--role", "Editor"
    )
    assert granted.returncode == 0, granted.stderr
    with session_scope(settings) as session:
        order = [(a.email, a.status) for a in accreditations(session)]
        assert order == [
            ("j2@example.com", "requested"),
            ("j0@example.com", "requested"),
            ("j1@example.com", "granted"),
        ]
        assert view(session, ids[1]).receives_advance_copies
        assert [a.email for a in accreditations(session, AccreditationStatus.GRANTED)] == [
            "j1@example.com"
        ]
    wrong = invoke_cli(settings, "subscribers", "accreditations", "--status", "maybe")
    assert wrong.returncode == 2 and "'maybe' is not one of requested, granted" in wrong.stderr


def test_an_erasure_takes_the_accreditation_and_the_export_shows_it(settings: Settings) -> None:
    add_topics(settings, "climate")
    add_subscribers(settings, [(ANN, "Ann", "en", "climate")])
    ann = subscriber_id(settings, ANN)
    with session_scope(settings) as session:
        ask(session, ann, "Nature", "Reporter")
        held = export_person(session, ANN)["accreditation"]
    assert (held["outlet"], held["role"], held["status"]) == ("Nature", "Reporter", "requested")
    erased = invoke_cli(settings, "subscribers", "erase", "--email", ANN)
    assert erased.returncode == 0, erased.stderr
    with session_scope(settings) as session:
        assert session.scalars(select(Accreditation)).all() == []


def test_the_api_lists_requests_and_decides_with_the_tokens_name_in_the_trail(
    settings: Settings,
) -> None:
    add_topics(settings, "climate")
    add_subscribers(settings, [(ANN, "Ann", "en", "climate"), (BOB, "Bob", "en", "climate")])
    ann, bob = subscriber_id(settings, ANN), subscriber_id(settings, BOB)
    with session_scope(settings) as session:
        ask(session, ann, "Nature", "Reporter")
    office = {"Authorization": "Bearer " + new_token(settings, "crm", ["subscribers"])}
    releases_only = {"Authorization": "Bearer " + new_token(settings, "cms", ["releases"])}
    with TestClient(create_app(settings)) as client:
        listed = client.get("/api/accreditations?status=requested", headers=office)
        assert listed.status_code == 200
        assert [(a["email"], a["outlet"], a["status"]) for a in listed.json()] == [
            (ANN, "Nature", "requested")
        ]
        assert client.get("/api/accreditations", headers=releases_only).status_code == 403
        granted = client.post(
            f"/api/subscribers/{ann}/accreditation", json={"decision": "grant"}, headers=office
        )
        assert granted.status_code == 200, granted.text
        body = granted.json()
        assert (body["status"], body["receives_advance_copies"], body["decided_by"]) == (
            "granted",
            True,
            "token:crm",
        )
        nothing_asked = client.post(
            f"/api/subscribers/{bob}/accreditation", json={"decision": "refuse"}, headers=office
        )
        assert nothing_asked.status_code == 409
        assert (
            nothing_asked.json()["error"] == "bob@example.com has no request waiting (never asked)"
        )
        assert (
            client.get(f"/api/subscribers/{bob}/accreditation", headers=office).status_code == 404
        )
        wrong = client.post(
            f"/api/subscribers/{bob}/accreditation", json={"decision": "maybe"}, headers=office
        )
        assert wrong.status_code == 422 and wrong.json()["field"] == "decision"
        revoked = client.post(
            f"/api/subscribers/{ann}/accreditation",
            json={"decision": "revoke", "reason": "Left the paper"},
            headers=office,
        )
        assert (
            revoked.json()["status"] == "revoked" and revoked.json()["reason"] == "Left the paper"
        )
        seen = client.get(f"/api/subscribers/{ann}/accreditation", headers=office).json()
        assert seen["receives_advance_copies"] is False
    with session_scope(settings) as session:
        trail = session.execute(
            select(AuditEvent.actor, AuditEvent.action, AuditEvent.details).order_by(AuditEvent.id)
        ).all()
    assert [tuple(t) for t in trail] == [
        ("token:crm", "accreditation-grant", {"reason": ""}),
        ("token:crm", "accreditation-revoke", {"reason": "Left the paper"}),
    ]


def test_the_workspace_lists_requests_and_decides_them_in_the_trail_by_name(
    sqlite_settings: Settings,
) -> None:
    settings = sqlite_settings
    add_topics(settings, "climate")
    add_subscribers(settings, [(ANN, "Ann", "en", "climate"), (BOB, "Bob", "en", "climate")])
    ann, bob = subscriber_id(settings, ANN), subscriber_id(settings, BOB)
    with session_scope(settings) as session:
        ask(session, ann, "Nature", "Reporter")
        ask(session, bob, "Science", "Editor")
    with logged_in_as(settings, "pub@example.org", "publisher") as publisher:
        # A publisher does not manage the audience: no link, no page.
        assert "/admin/accreditations" not in publisher.get("/admin").text
        assert publisher.get("/admin/accreditations").status_code == 403
    with logged_in_as(settings, "ines@example.org", "admin") as client:
        assert "/admin/accreditations" in client.get("/admin").text
        page = client.get("/admin/accreditations")
        said = shown(page.text)
        assert "Requests waiting" in said and "Nobody is accredited yet." in said
        assert said.index(ANN) < said.index(BOB)  # the oldest request first
        granted = client.post(
            f"/admin/accreditations/{ann}",
            data={"decision": "grant", "csrf": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert granted.status_code == 303
        page = client.get(granted.headers["location"])
        assert "Accredited: embargoed advance copies" in shown(page.text)
        refused = client.post(
            f"/admin/accreditations/{bob}",
            data={"decision": "refuse", "reason": "No press card", "csrf": csrf_of(page.text)},
        )
        said = shown(refused.text)
        assert "Request refused." in said and "No request is waiting." in said
        assert "No press card" in said
        again = client.post(
            f"/admin/accreditations/{bob}",
            data={"decision": "refuse", "csrf": csrf_of(refused.text)},
        )
        assert again.status_code == 409
        assert "bob@example.com has no request waiting (refused)" in shown(again.text)
    with session_scope(settings) as session:
        trail = session.execute(
            select(AuditEvent.actor, AuditEvent.action).order_by(AuditEvent.id)
        ).all()
    assert [tuple(t) for t in trail if t[1].startswith("accreditation")] == [
        ("user:ines@example.org", "accreditation-grant"),
        ("user:ines@example.org", "accreditation-refuse"),
    ]
