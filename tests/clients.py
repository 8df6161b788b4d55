"""Test clients of the web faces, shared by the modules that drive them: :class:`Api` (the
admin API, with a bearer token) and :class:`Dash` (the dashboard, with its ``dash``
fixture: an app, a logged-out browser and a token)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from distributor.core import heartbeat
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.queue import QUEUE
from distributor.office.accounts import create_user
from distributor.web import create_app
from tests.helpers import add_topics, csrf_of, new_token, queued_tasks


@dataclass
class Api:
    """The admin API as a client with a bearer token sees it, and the queue behind it."""

    settings: Settings
    client: TestClient
    token: str
    broker: redis.Redis

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.auth)

    def post(self, path: str, body: Any = None) -> Any:
        return self.client.post(path, json=body, headers=self.auth)

    def messages(self) -> list[dict[str, Any]]:
        """The task messages waiting in the queue: task name and arguments."""
        return [{"task": task, "args": args} for task, args in queued_tasks(self.broker)]


@dataclass
class Dash:
    """The dashboard as a browser sees it (cookies, CSRF), and the queue behind it."""

    settings: Settings
    client: TestClient
    token: str
    broker: redis.Redis

    def login(self, token: str | None = None) -> httpx.Response:
        page = self.client.get("/admin/login")
        return self.client.post(
            "/admin/login",
            data={"token": token if token is not None else self.token, "csrf": csrf_of(page.text)},
            follow_redirects=False,
        )

    def csrf(self, path: str = "/admin") -> str:
        return csrf_of(self.client.get(path).text)

    def post(self, path: str, **data: str) -> httpx.Response:
        data.setdefault("csrf", self.csrf())
        return self.client.post(path, data=data, follow_redirects=False)

    def tasks(self) -> list[str]:
        """The tasks waiting in the queue, as ``name[args]``."""
        return [f"{task}{args}" for task, args in queued_tasks(self.broker)]


@pytest.fixture
def dash(settings: Settings, redis_url: str) -> Iterator[Dash]:
    """The dashboard of an app on the test Redis (its queue emptied), with topics climate
    and energy and a "releases" token; the browser is not logged in."""
    s = settings.model_copy(update={"broker_url": redis_url})
    broker = redis.Redis.from_url(redis_url)
    broker.delete(QUEUE)
    heartbeat.record(s, redis_url)  # beat runs (test_the_dashboard_warns_… removes it)
    add_topics(s, "climate", "energy")
    token = new_token(s, "press-desk", ["releases"])
    # The site is https: the cookies are Secure, so the client must speak https too.
    with TestClient(create_app(s), base_url="https://testserver") as client:
        yield Dash(s, client, token, broker)
    broker.delete(QUEUE)
    broker.close()


@contextmanager
def logged_in_as(settings: Settings, email: str, role: str) -> Iterator[TestClient]:
    """A browser on the workspace, logged in with a new account of ``role``."""
    password = "a long enough password"  # a test account's
    with session_scope(settings) as session:
        create_user(session, email, role, password, name=email.split("@")[0].title())
    with browser_logged_in(settings, email, password) as client:
        yield client


def browser_logged_in(settings: Settings, email: str, password: str) -> TestClient:
    """A browser on the workspace (a client of a new app), logged in as the account
    ``email``, which exists."""
    client = TestClient(create_app(settings), base_url="https://testserver")
    page = client.get("/admin/login")
    client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    return client
