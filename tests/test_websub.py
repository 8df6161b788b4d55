"""WebSub: every regeneration that changes the feeds pings the hub exactly once, from a
Celery task on a real worker, and a hub that is down is tried again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from distributor import actions
from distributor.core import urls
from distributor.core.config import Settings
from distributor.core.queue import TaskQueue
from distributor.site import builder
from distributor.site.websub import HubUnavailable, ping_hub
from tests.helpers import add_topics, make_release
from tests.processes import running_worker, wait_until


class Hub:
    """A local HTTP server standing in for a WebSub hub: records every ping; answers 503 to
    the first ``failures`` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.pings: list[list[tuple[str, str]]] = []
        self.failures = failures
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                hub.pings.append(parse_qsl(body))
                failing = len(hub.pings) <= hub.failures
                self.send_response(503 if failing else 204)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hub:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub() -> Iterator[Hub]:
    with Hub() as running:
        yield running


def test_each_publish_pings_the_hub_once_with_the_changed_feeds(
    sqlite_settings: Settings, hub: Hub, redis_url: str, tmp_path: Path
) -> None:
    live = sqlite_settings.model_copy(update={"broker_url": redis_url, "websub_hub": hub.url})
    add_topics(live, "climate", "space")
    first = make_release(live, topics="climate")
    second = make_release(live, topics="space", slug="second-release", title="Second")
    third = make_release(live, topics="climate", slug="third-release", title="Third")
    builder.regenerate_site(live)  # the empty site exists before the first publish
    queue = TaskQueue(live)
    try:
        with running_worker(live, tmp_path / "logs"):
            actions.publish(live, queue, first.id)
            wait_until(lambda: len(hub.pings) >= 1, 60, "the first ping")
            actions.publish(live, queue, second.id)
            wait_until(lambda: len(hub.pings) >= 2, 60, "the second ping")
            builder.regenerate_site(live, queue)  # nothing changed: nothing to announce
            actions.publish(live, queue, second.id)  # already published: no change either
            # A last publish, so the worker has run everything above when its ping arrives.
            actions.publish(live, queue, third.id)
            wait_until(lambda: len(hub.pings) >= 3, 60, "the third ping")
    finally:
        queue.close()

    assert len(hub.pings) == 3
    for ping, topic in zip(hub.pings, ("climate", "space", "climate"), strict=True):
        assert ping[0] == ("hub.mode", "publish")
        announced = {value for key, value in ping[1:] if key == "hub.url"}
        assert announced == {
            urls.feed_url(live, "en", fmt, t)
            for fmt in ("rss", "atom", "json")
            for t in (None, topic)
        }


def test_a_hub_that_is_down_is_tried_again(
    sqlite_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    with Hub(failures=1) as flaky:
        live = sqlite_settings.model_copy(update={"broker_url": redis_url, "websub_hub": flaky.url})
        add_topics(live, "climate")
        release = make_release(live, topics="climate")
        queue = TaskQueue(live)
        try:
            with running_worker(live, tmp_path / "logs"):
                actions.publish(live, queue, release.id)
                wait_until(lambda: len(flaky.pings) >= 2, 60, "the retried ping")
        finally:
            queue.close()
        assert flaky.pings[0] == flaky.pings[1]  # the same announcement, delivered


def test_pinging_without_a_hub_or_with_nothing_changed_does_nothing(
    sqlite_settings: Settings, hub: Hub
) -> None:
    assert ping_hub(sqlite_settings, ["https://news.example.org/feeds/en/releases.rss"]) is False
    with_hub = sqlite_settings.model_copy(update={"websub_hub": hub.url})
    assert ping_hub(with_hub, []) is False
    assert hub.pings == []
    unreachable = sqlite_settings.model_copy(update={"websub_hub": "http://127.0.0.1:9/hub"})
    with pytest.raises(HubUnavailable, match="unreachable"):
        ping_hub(unreachable, ["https://news.example.org/feeds/en/releases.rss"])
