"""/healthz, which the compose healthcheck calls: 200 ``ok`` when the database and Redis
both answer, else 503 naming the one that does not — quickly, and without a secret."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from distributor.core.config import Settings
from distributor.web import create_app
from tests.processes import NO_BROKER

PASSWORD = "s3cret-healthz-Pw"


class Silent:
    """A port that accepts connections (the kernel's backlog) and never answers: a server
    that hangs, or a firewall that swallows packets — until ``hang_up``, which resets every
    connection waiting there (so the checks still waiting end now, not at their own
    timeouts: the app waits for them when it stops)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])

    def hang_up(self) -> None:
        self.sock.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.hang_up()


def client_for(settings: Settings) -> TestClient:
    """A client of the app without its lifespan: the site build at start would wait for a
    database that hangs as long as psycopg does (10 s), and /healthz needs none of it."""
    return TestClient(create_app(settings))


def healthz(settings: Settings, silent: Silent | None = None) -> tuple[int, str, float]:
    client = client_for(settings)
    started = time.monotonic()
    answer = client.get("/healthz")
    took = time.monotonic() - started
    if silent is not None:
        silent.hang_up()
    return answer.status_code, answer.text, took


def test_ok_when_the_database_and_redis_answer(settings: Settings, redis_url: str) -> None:
    status, text, _ = healthz(settings.model_copy(update={"broker_url": redis_url}))
    assert (status, text) == (200, "ok\n")


def test_503_naming_redis_when_it_is_down(settings: Settings) -> None:
    status, text, _ = healthz(settings.model_copy(update={"broker_url": NO_BROKER}))
    assert status == 503
    assert "redis: unavailable" in text and "database: ok" in text, text


def test_503_naming_the_database_without_its_password(
    sqlite_settings: Settings, redis_url: str
) -> None:
    url = f"postgresql+psycopg://distributor:{PASSWORD}@127.0.0.1:1/distributor"
    s = sqlite_settings.model_copy(update={"broker_url": redis_url, "database_url": url})
    status, text, _ = healthz(s)
    assert status == 503
    assert "database: unavailable" in text and "redis: ok" in text, text
    assert PASSWORD not in text and "127.0.0.1" not in text


def test_a_service_that_hangs_is_reported_within_seconds(
    sqlite_settings: Settings, silent: Silent
) -> None:
    database = f"postgresql+psycopg://distributor:{PASSWORD}@127.0.0.1:{silent.port}/x"
    broker = f"redis://:{PASSWORD}@127.0.0.1:{silent.port}/0"
    s = sqlite_settings.model_copy(update={"broker_url": broker, "database_url": database})
    status, text, took = healthz(s, silent)
    assert status == 503 and took < 5, (took, text)
    assert "database: no answer" in text and "redis: no answer" in text, text
    assert PASSWORD not in text


def test_a_hung_service_holds_one_thread_however_often_it_is_asked(
    sqlite_settings: Settings, redis_url: str, silent: Silent
) -> None:
    # psycopg gives up connecting after 10 s (db.py), far longer than a check waits.
    database = f"postgresql+psycopg://distributor@127.0.0.1:{silent.port}/x"
    s = sqlite_settings.model_copy(update={"broker_url": redis_url, "database_url": database})
    client = client_for(s)
    first = client.get("/healthz")
    assert first.status_code == 503 and "database: no answer within" in first.text
    # The first connection attempt still waits: it is not made again meanwhile.
    again = client.get("/healthz")
    assert again.status_code == 503, again.text
    assert "database: no answer (an earlier check is still waiting)" in again.text
    assert "redis: ok" in again.text
    silent.hang_up()  # the waiting attempt ends: the app can stop at once
