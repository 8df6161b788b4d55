"""schemathesis over the admin API's own OpenAPI schema: whatever request the schema allows
(and many it does not), the server never answers with a 5xx. Deterministic: Hypothesis is
derandomized, so the same requests are made on every run.

``EXAMPLES`` requests per operation, allowed and refused: 10 in ``make test`` (generating
them is most of this file's time, and derandomized, more of them find nothing new on the
next run); set
``DISTRIBUTOR_TEST_API_EXAMPLES`` higher for a deeper search, as before a release:
``DISTRIBUTOR_TEST_API_EXAMPLES=200 .venv/bin/pytest tests/test_api_schema.py``. The accepted
ones stay at 20 (at least): fewer, and none of the subscribers' might reach the table."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
import redis
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from sqlalchemy import func, select

from distributor.core.apitokens import SCOPES, create_token
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Invitation, Release, Subscriber, Suppression, User
from distributor.core.queue import QUEUE
from distributor.office.accounts import create_user
from distributor.web import create_app
from tests.helpers import add_subscribers, add_topics, make_release


@pytest.fixture
def api_token(settings: Settings, redis_url: str) -> Iterator[tuple[Settings, str]]:
    s = settings.model_copy(update={"broker_url": redis_url})
    add_topics(s, "climate", "energy")
    add_subscribers(s, [("ann@example.com", "Ann", "en", "climate"),
                        ("bob@example.org", "Bob", "fr", "climate;energy")])  # fmt: skip
    with session_scope(s) as session:  # an admin's token: every operation is reached
        admin = create_user(session, "ada@example.org", "admin", "a long enough password")
        token = create_token(session, "schemathesis", list(SCOPES), admin.id)
    make_release(s)  # id 1, a draft: some generated ids find it
    yield s, token
    redis.Redis.from_url(redis_url).delete(QUEUE)  # the confirmations it asked for


def accepted_release(case: Case) -> Case:
    """The generated release with a language, topics and date the domain accepts, so the
    generated title, slug, body, contacts and images reach the database."""
    if isinstance(case.body, dict):
        case.body = {**case.body, "lang": "en", "topics": ["climate"],
                     "date": "2026-11-20T09:00:00+01:00"}  # fmt: skip
        for field in ("translation_of", "embargo", "slug", "lead"):
            case.body.pop(field, None)  # the slug from the generated title; the body's lead
        case.body["body"] = "A lead paragraph.\n\n" + str(case.body.get("body", ""))
    return case


def accepted_address(case: Case) -> Case:
    """The generated body with an address, language and topic the domain accepts, so the
    other generated values (name, consent source, confirmed, digest) reach the database."""
    if isinstance(case.body, dict):
        case.body = {**case.body, "email": "probe@example.com", "language": "en",
                     "topics": ["climate"]}  # fmt: skip
        # Left unsaid, a confirmed add (its values reach the table); said false, a request.
        case.body.setdefault("confirmed", True)
        if not case.body["confirmed"]:  # a pending subscriber chooses their digest later
            case.body.pop("digest", None)
        elif not str(case.body.get("consent_source") or "").strip():  # needed when confirmed
            case.body["consent_source"] = "probe"
    return case


def accepted_account(case: Case) -> Case:
    """The generated account or invitation with an address (a new one each time) and,
    for an account, a password the domain accepts, so the generated name and role reach
    the database."""
    if isinstance(case.body, dict):
        case.body = {**case.body, "email": f"probe{next(PROBES)}@example.com"}
        if case.operation.label == "POST /api/users":
            case.body["password"] = "long enough: " + str(case.body.get("password") or "")
    return case


EXAMPLES = int(os.environ.get("DISTRIBUTOR_TEST_API_EXAMPLES", "10"))
PROBES = itertools.count(1)
ACCEPTED = {"POST /api/subscribers": accepted_address, "POST /api/releases": accepted_release,
            "PUT /api/releases/{release_id}": accepted_release,
            "POST /api/users": accepted_account,
            "POST /api/users/invitations": accepted_account}  # fmt: skip


# Requests the schema allows, on PostgreSQL: the stricter of the two stores (column lengths,
# types, integer ranges, no NUL in text), where a value the API lets through can still fail
# in the database. SQLite gets the accepted ones below, which reach its tables.
@pytest.mark.parametrize("settings", ["postgresql"], indirect=True)
def test_no_request_makes_a_server_error(api_token: tuple[Settings, str]) -> None:
    exercise(api_token, "positive")


# Requests the domain accepts, so that generated values reach the tables: on both stores.
def test_no_accepted_request_makes_a_server_error(api_token: tuple[Settings, str]) -> None:
    exercise(api_token, "accepted")


# What the schema refuses is refused by the request's validation, before any query: once,
# on SQLite.
@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
def test_no_refused_request_makes_a_server_error(api_token: tuple[Settings, str]) -> None:
    exercise(api_token, "negative")


def exercise(api_token: tuple[Settings, str], mode: str) -> None:
    """Every operation of the API, with requests schemathesis generates in ``mode``
    (``positive``, ``negative``, or ``accepted``: positive ones the domain takes); none is
    answered with a 5xx."""
    s, token = api_token
    app = create_app(s)
    with TestClient(app):  # runs the app's lifespan: the broker connection is closed after
        schema = schemathesis.openapi.from_asgi("/api/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) == 51  # every operation of the API is exercised
        for operation in operations:
            if mode == "accepted":
                if operation.label not in ACCEPTED:
                    continue
                cases = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
                cases = cases.map(ACCEPTED[operation.label])
            else:
                cases = operation.as_strategy(generation_mode=GenerationMode(mode))

            @given(case=cases)
            @hypothesis_settings(
                max_examples=max(EXAMPLES, 20) if mode == "accepted" else EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def no_server_error(case: Case) -> None:
                case.call_and_validate(
                    headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error]
                )

            no_server_error()
    if mode == "accepted":  # the generated values did reach the database, not only 422s
        with session_scope(s) as session:
            assert session.scalar(select(func.count()).select_from(Release)) > 1
            # A generated subscriber reached the table (and is there still, or was erased by
            # a generated DELETE since: its address's hash is on the suppression list).
            assert (
                session.scalar(select(func.count()).select_from(Subscriber)) > 2
                or session.scalar(select(func.count()).select_from(Suppression)) > 0
            )
            assert session.scalar(select(func.count()).select_from(User)) > 1
            assert session.scalar(select(func.count()).select_from(Invitation)) > 0
