"""One table (``distributor.web.errors``) gives a domain error its HTTP status on every
face of the web app: the API, the dashboard's pages and the public pages. A refused value
comes back from the API with its field as data: the error carries it from where it was
raised."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from distributor.core import heartbeat
from distributor.core.config import Settings
from distributor.core.errors import (
    ConfigError,
    Conflict,
    DistributorError,
    Forbidden,
    ImportRejected,
    InputError,
    NotFound,
    ReleaseInputError,
    ServiceError,
    SubscriberInputError,
    Unauthorized,
)
from distributor.core.idempotency import KeyInFlight, KeyReused
from distributor.core.queue import QUEUE
from distributor.core.tokens import ExpiredToken, InvalidToken
from distributor.releases.source import parse_release
from distributor.web import admin, create_app, releases_api, subscribe
from distributor.web.errors import DEFAULT_STATUS, status_of
from tests.clients import Dash
from tests.helpers import add_topics, empty_queue_and_limits, make_release, new_token, release_text
from tests.helpers import subscribe as fill_in


class Unlisted(DistributorError):
    """An error class the table does not know."""


# One error of each line of the table, and the status the table gives it.
ERRORS: list[tuple[DistributorError, int]] = [
    (SubscriberInputError("email: refused here", field="email"), 422),
    (ReleaseInputError("test.md: the lang is refused here", field="lang"), 422),
    (InputError("refused here"), 422),
    (InvalidToken("this confirm link is not valid"), 400),
    (Unauthorized("no token here"), 401),
    (Forbidden("no scope here"), 403),
    (NotFound("nothing here"), 404),
    (Conflict("not in this state"), 409),
    (ServiceError("the relay is down"), 503),
]


def test_the_table_gives_a_class_its_own_line_or_its_nearest_parents() -> None:
    for exc, status in ERRORS:
        assert status_of(exc) == status, exc
    assert status_of(ExpiredToken("expired")) == 400  # an InvalidToken, not any InputError
    assert status_of(ImportRejected("people.csv", [])) == 422
    assert status_of(KeyReused("Idempotency-Key: used")) == 422
    assert status_of(KeyInFlight("Idempotency-Key: running")) == 409
    assert status_of(ConfigError("no key file")) == DEFAULT_STATUS == 500
    assert status_of(Unlisted("what is this")) == DEFAULT_STATUS


@pytest.fixture
def faces(settings: Settings, redis_url: str) -> Iterator[tuple[Dash, dict[str, str], int]]:
    """One app seen by its three faces: the dashboard logged in (``Dash``), a bearer token
    for the API holding both scopes, and a release to act on. Server errors are answered
    (500) rather than raised into the test, as a browser would see them."""
    s = settings.model_copy(update={"broker_url": redis_url})
    broker = redis.Redis.from_url(redis_url)
    empty_queue_and_limits(redis_url)  # the subscribe form counts requests per address
    heartbeat.record(s, redis_url)
    add_topics(s, "climate")
    release = make_release(s)
    token = new_token(s, "press-desk", ["releases"])
    both = new_token(s, "integration", ["releases", "subscribers"])
    app = create_app(s)
    with TestClient(app, base_url="https://testserver", raise_server_exceptions=False) as client:
        dash = Dash(s, client, token, broker)
        assert dash.login().status_code == 303
        yield dash, {"Authorization": f"Bearer {both}"}, release.id
    broker.delete(QUEUE)
    broker.close()


def raising(exc: Exception) -> Callable[..., Any]:
    def raise_it(*_args: object, **_kwargs: object) -> Any:
        raise exc

    return raise_it


def behind_each_face(
    faces: tuple[Dash, dict[str, str], int], monkeypatch: pytest.MonkeyPatch, exc: Exception
) -> dict[str, httpx.Response]:
    """What the API (a preview), the dashboard (a preview) and the public subscribe form
    answer when the domain call behind each raises ``exc``."""
    dash, auth, release_id = faces
    for face in (releases_api, admin):
        monkeypatch.setattr(face, "render_preview", raising(exc))
    monkeypatch.setattr(subscribe, "request_subscription", raising(exc))
    client = dash.client
    return {
        "api": client.get(f"/api/releases/{release_id}/preview", headers=auth),
        "admin": client.get(f"/admin/releases/{release_id}/preview/en.html"),
        "public": fill_in(client),
    }


@pytest.mark.parametrize(("exc", "status"), ERRORS, ids=[type(e).__name__ for e, _ in ERRORS])
def test_the_same_error_has_the_tables_status_behind_every_face(
    faces: tuple[Dash, dict[str, str], int],
    monkeypatch: pytest.MonkeyPatch,
    exc: DistributorError,
    status: int,
) -> None:
    answers = behind_each_face(faces, monkeypatch, exc)
    assert {face: r.status_code for face, r in answers.items()} == dict.fromkeys(answers, status)
    field = exc.field if isinstance(exc, InputError) else None
    assert answers["api"].json() == {"error": str(exc), "field": field}
    assert str(exc) in answers["admin"].text
    if status < 500:  # a message meant for users is shown to them; a field's, in few words
        said = subscribe.FIELD_ERRORS.get(field or "", str(exc))
        assert said in html.unescape(answers["public"].text)
    else:  # not what the relay said to us
        assert str(exc) not in answers["public"].text and "try again" in answers["public"].text


def test_an_error_the_table_does_not_know_is_a_server_error_on_every_face(
    faces: tuple[Dash, dict[str, str], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = behind_each_face(faces, monkeypatch, Unlisted("what is this"))
    assert {face: r.status_code for face, r in answers.items()} == dict.fromkeys(answers, 500)
    assert "what is this" not in answers["api"].text + answers["public"].text


def test_a_refused_value_on_each_face_is_422(faces: tuple[Dash, dict[str, str], int]) -> None:
    dash, auth, release_id = faces
    client = dash.client
    api = client.post(
        "/api/subscribers",
        json={"email": "not an address", "language": "en", "topics": ["climate"]},
        headers=auth,
    )
    page = dash.post(f"/admin/releases/{release_id}/test", addresses="not an address")
    form = fill_in(client, email="not an address")
    assert (api.status_code, page.status_code, form.status_code) == (422, 422, 422)
    assert "not an address" in page.text and "nothing sent" in page.text
    assert "not an address" in form.text


def test_a_refused_field_comes_back_as_data(faces: tuple[Dash, dict[str, str], int]) -> None:
    dash, auth, _ = faces
    client = dash.client
    markdown = {**auth, "Content-Type": "text/markdown; charset=utf-8"}
    release = client.post("/api/releases", content=release_text(lang="de"), headers=markdown)
    subscriber = client.post(
        "/api/subscribers",
        json={"email": "ann@example.com", "language": "de", "topics": ["climate"]},
        headers=auth,
    )
    topic = client.post(
        "/api/topics", json={"slug": "Big Rivers", "names": {"en": "Rivers"}}, headers=auth
    )
    assert (release.status_code, subscriber.status_code, topic.status_code) == (422, 422, 422)
    assert release.json() == {
        "error": "body: field 'lang': 'de' is not one of en, fr",
        "field": "lang",
    }
    assert subscriber.json() == {
        "error": "language: 'de' is not one of en, fr",
        "field": "language",
    }
    assert topic.json() == {
        "error": "slug: topic slug 'Big Rivers': use lowercase letters, digits and hyphens",
        "field": "slug",
    }


def test_the_error_carries_its_field_from_where_it_was_raised(settings: Settings) -> None:
    with pytest.raises(ReleaseInputError) as refused:
        parse_release(release_text(lang="de"), "test.md", settings)
    assert refused.value.field == "lang"
    misspelt = release_text().replace("title:", "titel:", 1)  # the first problem: no title
    with pytest.raises(ReleaseInputError) as refused:
        parse_release(misspelt, "test.md", settings)
    assert refused.value.field == "title" and "field 'titel'" in str(refused.value)
    assert SubscriberInputError("subscriber 3: name too long").field is None
