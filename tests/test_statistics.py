"""Statistics without tracking: fetches of the public files counted per hour in Redis by a
real `distributor serve`, moved into the database by the flush, read back per release (API,
`releases report`) — and nothing about the person who fetched lands anywhere."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from distributor.core.config import Settings
from distributor.core.db import get_engine, session_scope
from distributor.core.models import Base, PublicStat, StatBatch
from distributor.office.accounts import create_user
from distributor.reporting import counting
from distributor.reporting.statistics import release_statistics
from distributor.reporting.stats_flush import FLUSHING_PREFIX, flush_statistics
from tests.helpers import free_port, writer_token
from tests.processes import NO_BROKER, invoke_cli, wait_until
from tests.statistics_samples import (
    CLIENT_IP,
    HEADERS,
    MARKERS,
    Site,
    published_with_files,
    stored_counts,
)
from tests.web_server import running_server


@pytest.fixture
def counted(settings: Settings, redis_url: str) -> Iterator[Site]:
    """The published site on the run's Redis, emptied of earlier counts."""
    s = settings.model_copy(update={"broker_url": redis_url, "feed_rate_limit": 0})
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match="distributor:stats*"):
        client.delete(key)
    client.close()
    yield published_with_files(s)


def redis_dump(url: str) -> list[bytes]:
    """Every key of the database and every value in it, whatever its type."""
    client = redis.Redis.from_url(url)
    found: list[bytes] = []
    try:
        for key in client.scan_iter(count=1000):
            found.append(key)
            kind = client.type(key)
            if kind == b"string":
                found.append(client.get(key) or b"")
            elif kind == b"hash":
                for k, v in client.hgetall(key).items():
                    found += [k, v]
            elif kind == b"list":
                found += client.lrange(key, 0, -1)
            elif kind == b"set":
                found += list(client.smembers(key))
            elif kind == b"zset":
                found += [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
            elif kind == b"stream":
                for _id, data in client.xrange(key):
                    for k, v in data.items():
                        found += [k, v]
    finally:
        client.close()
    return found


def database_dump(settings: Settings) -> list[str]:
    """Every row of every table, as text."""
    rows: list[str] = []
    with get_engine(settings).connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows += [repr(tuple(row)) for row in conn.execute(table.select())]
        rows += [repr(tuple(row)) for row in conn.execute(text("SELECT * FROM alembic_version"))]
    return rows


def hour_counts(url: str) -> dict[str, int]:
    """The counts waiting in Redis, over every hour's hash."""
    client = redis.Redis.from_url(url)
    totals: dict[str, int] = {}
    try:
        for key in client.scan_iter(match=counting.KEY_PREFIX + "*"):
            for k, v in client.hgetall(key).items():
                totals[k.decode()] = totals.get(k.decode(), 0) + int(v)
    finally:
        client.close()
    return totals


def test_fetches_are_counted_per_hour_flushed_once_and_nothing_personal_is_kept(
    counted: Site, redis_url: str
) -> None:
    s = counted.settings
    port = free_port()
    transport = httpx.HTTPTransport(local_address=CLIENT_IP)
    feed = "/feeds/en/releases.atom"
    slug_html = counted.page.removeprefix("/") + ".html"
    with (
        running_server(s, port),
        httpx.Client(
            base_url=f"http://127.0.0.1:{port}", transport=transport, headers=HEADERS
        ) as web,
    ):
        for _ in range(3):
            assert web.get(counted.page, params={"utm": "query-7f3a"}).status_code == 200
        assert web.head(counted.page).status_code == 200  # a check, not a view
        first = web.get(feed)
        assert first.status_code == 200
        assert web.get(feed).status_code == 200
        for _ in range(4):
            again = web.get(feed, headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304
        full = web.get(counted.image)
        assert full.status_code == 200
        assert web.get(counted.image).status_code == 200
        not_again = web.get(counted.image, headers={"If-None-Match": full.headers["etag"]})
        assert not_again.status_code == 304  # the reader has it: no download
        assert web.get(counted.email_image).status_code == 200  # an email opened: never counted
        assert web.get(counted.document).status_code == 200
        expected = {
            f"page:{slug_html}": 3,
            "feed200:feeds/en/releases.atom": 2,
            "feed304:feeds/en/releases.atom": 4,
            f"image:{counted.image[1:]}": 2,
            f"document:{counted.document[1:]}": 1,
        }
        # Pushed to Redis within a second, the server still running.
        wait_until(lambda: hour_counts(redis_url) == expected, 10, "the counts in Redis")

    assert flush_statistics(s) == sum(expected.values())
    assert hour_counts(redis_url) == {}
    assert stored_counts(s) == expected
    assert flush_statistics(s) == 0  # nothing left: nothing added twice
    assert stored_counts(s) == expected

    with session_scope(s) as session:
        stats = release_statistics(session, counted.release_id, s.timezone)
    assert (stats.page_views, stats.image_downloads, stats.document_downloads) == (3, 2, 1)
    assert (stats.feed_fetches, stats.feed_not_modified) == (2, 4)
    assert [(d.page_views, d.image_downloads, d.document_downloads) for d in stats.days] == [
        (3, 2, 1)
    ]

    dumped_redis = b"\n".join(redis_dump(redis_url))
    dumped_db = "\n".join(database_dump(s))
    for marker in MARKERS:
        assert marker.encode() not in dumped_redis, marker
        assert marker not in dumped_db, marker


def test_a_batch_left_half_flushed_is_added_once(counted: Site, redis_url: str) -> None:
    s = counted.settings
    client = redis.Redis.from_url(redis_url)
    try:
        # A flush that stopped after its commit, before deleting its key: recorded, skipped.
        done = uuid.uuid4().hex
        with session_scope(s) as session:
            session.add(StatBatch(token=done))
        client.hset(f"{FLUSHING_PREFIX}2026120809:{done}", "page:index.html", 5)
        # One that stopped before its commit: added.
        client.hset(f"{FLUSHING_PREFIX}2026120809:{uuid.uuid4().hex}", "page:index.html", 7)
        # The current hour's counts, and a field that is not ours.
        client.hset(counting.hour_key(1_796_000_000), mapping={"page:index.html": 2, "who": 1})
        assert flush_statistics(s) == 9
        assert list(client.scan_iter(match="distributor:stats*")) == []
    finally:
        client.close()
    with session_scope(s) as session:
        rows = session.execute(select(PublicStat.hour, PublicStat.count)).all()
    assert sorted((h.isoformat(), n) for h, n in rows) == [
        ("2026-11-30T00:00:00+00:00", 2),
        ("2026-12-08T09:00:00+00:00", 7),
    ]
    assert flush_statistics(s) == 0


def test_serving_goes_on_when_redis_is_down(
    sqlite_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from distributor.web import create_app

    s = sqlite_settings.model_copy(update={"broker_url": NO_BROKER})
    published = published_with_files(s)
    app = create_app(s)
    with caplog.at_level(logging.WARNING, "distributor.reporting.counting"), TestClient(app) as web:
        for _ in range(3):
            assert web.get(published.page).status_code == 200
            assert web.get(published.document).status_code == 200
            assert app.counter.push() == 0  # dropped, not kept growing
        assert web.get(published.page).status_code == 200
    warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
    assert len(warnings) == 1


def test_nothing_is_counted_when_statistics_are_off(counted: Site, redis_url: str) -> None:
    from distributor.web import create_app

    s = counted.settings.model_copy(update={"statistics": False})
    app = create_app(s)
    with TestClient(app) as web:
        assert web.get(counted.page).status_code == 200
        assert web.get(counted.document).status_code == 200
        assert web.get("/feeds/en/releases.atom").status_code == 200
    assert hour_counts(redis_url) == {}


def test_the_api_and_the_report_show_a_releases_statistics(counted: Site, redis_url: str) -> None:
    from distributor.web import create_app

    s = counted.settings
    with TestClient(create_app(s)) as web:
        for _ in range(2):
            assert web.get(counted.page).status_code == 200
        assert web.get(counted.document).status_code == 200
    flush_statistics(s)  # the app's shutdown pushed its counts to Redis
    token = writer_token(s, ["releases"])
    with TestClient(create_app(s)) as api:
        answer = api.get(
            f"/api/releases/{counted.release_id}/stats",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["page_views"] == 2 and body["document_downloads"] == 1
        assert body["image_downloads"] == 0
        assert body["delivered"] == 0 and body["unsubscribed"] == 0
        assert len(body["days"]) == 1 and body["days"][0]["page_views"] == 2
        assert api.get(f"/api/releases/{counted.release_id}/stats").status_code == 401
        assert (
            api.get(
                "/api/releases/999/stats", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 404
        )
        schema = api.get("/api/openapi.json").json()
        assert "/api/releases/{release_id}/stats" in schema["paths"]

    result = invoke_cli(s, "releases", "report", str(counted.release_id))
    assert result.returncode == 0, result.stderr
    assert "statistics (counted per hour, no personal data):" in result.stdout
    assert "page views 2, image downloads 0, document downloads 1" in result.stdout
    assert ": 2 view(s), 1 download(s)" in result.stdout


def test_the_workspace_shows_the_counts_per_day_in_a_chart_and_a_table(
    counted: Site, redis_url: str
) -> None:
    from distributor.web import create_app
    from tests.clients import logged_in_as

    s = counted.settings
    with TestClient(create_app(s)) as web:
        for _ in range(3):
            assert web.get(counted.page).status_code == 200
        assert web.get(counted.image).status_code == 200
    flush_statistics(s)
    with logged_in_as(s, "jo@example.org", "writer") as jo:
        page = jo.get(f"/admin/releases/{counted.release_id}")
        assert page.status_code == 200
        html = page.text
        assert '<td data-stat="page_views">3</td>' in html
        assert '<td data-stat="image_downloads">1</td>' in html
        assert 'aria-labelledby="stats-daily-title stats-daily-desc"' in html
        assert "3 page views and 1 downloads, per day" in html
        assert re.search(r"<tr><th scope=\"row\">\d{4}-\d\d-\d\d</th><td>3</td><td>1</td>", html)
        dashboard = jo.get("/admin")
        assert "Newsroom page views and downloads, the last 14 days" in dashboard.text
        assert re.search(r"<tr><th scope=\"row\">[-\d]+</th><td>3</td><td>1</td>", dashboard.text)
        french = jo.get(
            f"/admin/releases/{counted.release_id}", headers={"Accept-Language": "fr-FR,fr"}
        )
        assert "Statistiques" in french.text
        assert "3 pages vues et 1 téléchargements, par jour\u00a0; le tableau" in french.text


@pytest.mark.needs("chromium", "axe")
def test_the_release_pages_chart_passes_axe_in_a_browser(
    sqlite_settings: Settings, redis_url: str
) -> None:
    from distributor.core.models import utcnow
    from tests.browser import DESKTOP, PHONE, accessibility_problems, chromium, fill_login

    port = free_port()
    s = sqlite_settings.model_copy(
        update={"broker_url": redis_url, "site_url": f"http://127.0.0.1:{port}"}
    )
    site = published_with_files(s)
    hour = utcnow().replace(minute=0, second=0, microsecond=0)
    with session_scope(s) as session:
        create_user(session, "jo@example.org", "writer", "a long enough password", name="Jo")
        for days_ago, views in enumerate((12, 30, 7)):
            session.add(
                PublicStat(subject=site.page[1:] + ".html", kind=counting.PAGE,
                           hour=hour - timedelta(days=days_ago), count=views)
            )  # fmt: skip
        session.add(
            PublicStat(subject=site.document[1:], kind=counting.DOCUMENT, hour=hour, count=4)
        )
    with running_server(s, port) as base:
        for viewport in (PHONE, DESKTOP):
            with chromium(viewport=viewport) as browser:
                page = browser.new_page()
                page.goto(base + "/admin/login")
                fill_login(page, "jo@example.org", "a long enough password")
                page.get_by_role("button", name="Log in", exact=True).click()
                page.wait_for_url(base + "/admin")
                page.goto(base + f"/admin/releases/{site.release_id}")
                chart = page.get_by_role("img", name="Page views and downloads per day")
                assert chart.is_visible()
                assert page.locator("#stats-daily-desc").text_content() == (
                    "49 page views and 4 downloads, per day; the table below has the figures."
                )
                page.get_by_text("The figures per day").first.click()
                assert page.locator("#stats-daily-days tbody tr").count() == 3
                assert accessibility_problems(page) == [], viewport
