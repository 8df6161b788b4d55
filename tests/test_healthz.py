"""/healthz, which the compose healthcheck calls: 200 ``ok`` when the database and Redis
both answer, else 503 naming the one that does not — quickly, and without a secret."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from distributor.config import Settings
from distributor.web import create_app
from tests.processes import NO_BROKER

PASSWORD = "s3cret-healthz-Pw"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers: a server
    that hangs, or a firewall that swallows packets."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def healthz(settings: Settings) -> tuple[int, str, float]:
    with TestClient(create_app(settings)) as client:
        started = time.monotonic()
        answer = client.get("/healthz")
        return answer.status_code, answer.text, time.monotonic() - started


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
    sqlite_settings: Settings, silent_port: int
) -> None:
    database = f"postgresql+psycopg://distributor:{PASSWORD}@127.0.0.1:{silent_port}/x"
    broker = f"redis://:{PASSWORD}@127.0.0.1:{silent_port}/0"
    s = sqlite_settings.model_copy(update={"broker_url": broker, "database_url": database})
    status, text, took = healthz(s)
    assert status == 503 and took < 5, (took, text)
    assert "database: no answer" in text and "redis: no answer" in text, text
    assert PASSWORD not in text


def test_a_hung_service_holds_one_thread_however_often_it_is_asked(
    sqlite_settings: Settings, redis_url: str, silent_port: int
) -> None:
    # psycopg gives up connecting after 10 s (db.py), far longer than a check waits.
    database = f"postgresql+psycopg://distributor@127.0.0.1:{silent_port}/x"
    s = sqlite_settings.model_copy(update={"broker_url": redis_url, "database_url": database})
    with TestClient(create_app(s)) as client:
        first = client.get("/healthz")
        assert first.status_code == 503 and "database: no answer within" in first.text
        # The first connection attempt still waits: it is not made again meanwhile.
        again = client.get("/healthz")
        assert again.status_code == 503, again.text
        assert "database: no answer (an earlier check is still waiting)" in again.text
        assert "redis: ok" in again.text
