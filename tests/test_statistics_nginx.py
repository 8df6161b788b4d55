"""Statistics behind nginx: the compose nginx config, run for real on a built site, writes
its address-free log of the files it serves itself; the flush counts that log's new whole
lines exactly once (after a second flush, a rotation, a partial line) with the app's own
rule (``counting.fetch_kind``), and the log holds nothing about who fetched."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import yaml
from sqlalchemy import select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import PublicStat
from distributor.reporting import counting
from distributor.reporting.counting import fetch_kind
from distributor.reporting.stats_flush import flush_statistics
from distributor.reporting.stats_log import parse_line
from tests import nginx_conf
from tests.helpers import free_port
from tests.nginx_conf import running_nginx
from tests.processes import wait_until
from tests.statistics_samples import (
    CLIENT_IP,
    HEADERS,
    MARKERS,
    Site,
    published_with_files,
    stored_counts,
)

SHA = "ab" * 32
FORBIDDEN = ("$remote_addr", "$binary_remote_addr", "$http_", "$args", "$arg_", "$query_string",
             "$request_uri", "$request ", "$cookie_", "$remote_user", "$realip")  # fmt: skip


def clean_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match="distributor:stats*"):
        client.delete(key)
    client.close()


def log_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


# --- the rule both paths share -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "relpath", "kind"),
    [
        ("GET", 200, "releases/climate.html", "page"),
        ("GET", 304, "releases/climate.html", "page"),
        ("GET", 200, "en/index.html", "page"),
        ("HEAD", 200, "releases/climate.html", None),
        ("GET", 404, "releases/climate.html", None),
        ("GET", 410, "releases/climate.gone.html", None),
        ("GET", 200, "releases/climate.gone.html", None),
        ("GET", 200, "feeds/en/releases.atom", "feed200"),
        ("GET", 304, "feeds/en/topics/climate.rss", "feed304"),
        ("GET", 429, "feeds/en/releases.json", None),
        ("HEAD", 304, "feeds/en/releases.atom", None),
        ("GET", 200, f"media/{SHA}/full-size.png", "image"),
        ("GET", 200, f"media/{SHA}/full.jpg", "image"),
        ("GET", 304, f"media/{SHA}/full-size.png", None),
        ("GET", 200, f"media/{SHA}/for-pages.jpg", None),
        ("GET", 200, f"media/{SHA}/for-email.jpg", None),  # a tracking pixel, else
        ("GET", 200, f"media/{SHA}/office-logo.png", None),
        ("GET", 200, f"media/{SHA}/office-logo.svg", None),
        ("GET", 200, f"media/{SHA}/backgrounder.pdf", "document"),
        ("GET", 200, f"media/{SHA}/annual-report.docx", "document"),
        ("GET", 206, f"media/{SHA}/backgrounder.pdf", None),
        ("GET", 304, f"media/{SHA}/backgrounder.pdf", None),
        ("GET", 200, "sitemap.xml", None),
        ("GET", 200, "robots.txt", None),
        ("GET", 200, "favicon.ico", None),
        ("POST", 200, "releases/climate.html", None),
        ("GET", 200, "releases/" + "x" * 600 + ".html", None),  # longer than a subject
    ],
)
def test_one_rule_says_what_a_fetch_counts_as(
    method: str, status: int, relpath: str, kind: str | None
) -> None:
    assert fetch_kind(method, status, relpath) == kind


def test_a_log_line_gives_time_method_status_and_path_and_nothing_else_parses() -> None:
    assert parse_line(b"1796000000.123 GET 200 /releases/climate.html") == (
        1796000000.123, "GET", 200, "releases/climate.html"
    )  # fmt: skip
    # nginx escapes '"', '\' and bytes outside ASCII; a path may hold a space.
    assert parse_line(b"1796000000.000 GET 404 /a b/caf\\xC3\\xA9\\x22") == (
        1796000000.0, "GET", 404, 'a b/café"'
    )  # fmt: skip
    # What try_files "$uri/index.html" makes of /en/: the file en/index.html.
    assert parse_line(b"1796000000.000 GET 200 /en//index.html") == (
        1796000000.0, "GET", 200, "en/index.html"
    )  # fmt: skip
    for bad in (b"", b"GET 200 /x", b"soon GET 200 /x", b"1796000000.1 GET two /x",
                b"1796000000.1 get 200 /x", b"1796000000.1 GET 200 x", b"1796000000.1 GET 999 /x",
                b'127.0.0.1 - - [08/Dec/2026:09:00:00 +0000] "GET / HTTP/1.1" 200'):  # fmt: skip
        assert parse_line(bad) is None, bad


def test_the_compose_log_format_holds_nothing_personal_and_reaches_the_workers() -> None:
    text = nginx_conf.compose_interpolate(nginx_conf.template_text())
    formats = [line for line in text.splitlines() if "log_format" in line]
    assert formats == ["log_format distributor_stats '$msec $request_method $status $uri';"]
    for variable in FORBIDDEN:
        assert variable not in formats[0], variable
    services = yaml.safe_load(nginx_conf.COMPOSE.read_text())["services"]
    log_dir = os.path.dirname(nginx_conf.STATS_LOG)
    [nginx_mount] = [v for v in services["nginx"]["volumes"] if v.split(":")[1] == log_dir]
    volume = nginx_mount.split(":")[0]
    assert not nginx_mount.endswith(":ro")  # nginx writes it
    # The flush runs in a worker (beat schedules it): the worker must see the same file.
    for name in ("worker", "beat"):
        path = services[name]["environment"]["DISTRIBUTOR_STATISTICS_LOG"]
        mounts = [v for v in services[name]["volumes"] if v.startswith(volume + ":")]
        assert [m.split(":")[1] for m in mounts] == [os.path.dirname(path)], name
        assert os.path.basename(path) == os.path.basename(nginx_conf.STATS_LOG)


# --- the log, read by the flush -------------------------------------------------------------


@pytest.fixture
def with_log(sqlite_settings: Settings, redis_url: str, tmp_path: Path) -> Iterator[Settings]:
    clean_redis(redis_url)
    yield sqlite_settings.model_copy(
        update={"broker_url": redis_url, "statistics_log": tmp_path / "logs" / "access.log"}
    )


def test_partial_bad_truncated_and_missing_lines_are_each_handled_once(
    with_log: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    log = with_log.statistics_log
    assert log is not None
    assert flush_statistics(with_log) == 0  # no file yet: not an error
    log.parent.mkdir()
    page = "page:releases/climate.html"
    with log.open("ab") as fh:
        fh.write(b"1796000000.5 GET 200 /releases/climate.html\n")
        fh.write(b"garbage\n")
        fh.write(b"1796003600.0 GET 304 /releases/climate.html\n")
        fh.write(b"1796003601.0 GET 2")  # nginx is writing this one
    with caplog.at_level(logging.WARNING, "distributor.reporting.stats_log"):
        assert flush_statistics(with_log) == 2
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and f"of {log}" in warnings[0] and "at line 2" in warnings[0]
    with log.open("ab") as fh:
        fh.write(b"00 /releases/climate.html\nnot a line either\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, "distributor.reporting.stats_log"):
        assert flush_statistics(with_log) == 1  # the line, once whole
    assert "at line 5" in caplog.records[0].getMessage()  # numbered across runs
    assert flush_statistics(with_log) == 0
    with session_scope(with_log) as session:
        rows = session.execute(select(PublicStat.hour, PublicStat.count)).all()
    # Each line in the hour of its own $msec.
    assert sorted((h.isoformat(), n) for h, n in rows) == [
        ("2026-11-30T00:00:00+00:00", 1),
        ("2026-11-30T01:00:00+00:00", 2),
    ]
    # Truncated (copytruncate): shorter than the position, read from its start.
    log.write_bytes(b"1796007200.0 GET 200 /releases/climate.html\n")
    assert flush_statistics(with_log) == 1
    assert stored_counts(with_log) == {page: 4}


def test_a_flush_that_dies_before_exec_counts_nothing_and_the_next_counts_all(
    with_log: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributor.reporting import stats_log

    log = with_log.statistics_log
    assert log is not None
    log.parent.mkdir()
    log.write_bytes(b"1796000000.5 GET 200 /releases/climate.html\n" * 3)
    client = redis.Redis.from_url(with_log.broker_url or "")

    def dying_set(self: redis.client.Pipeline, *args: object, **kwargs: object) -> object:
        raise ConnectionError("the flush's process died here, the counts queued")

    with monkeypatch.context() as patched:
        patched.setattr(redis.client.Pipeline, "set", dying_set)
        with pytest.raises(ConnectionError):
            stats_log.read_statistics_log(client, log)
    assert [k for k in client.scan_iter(match="distributor:stats*")] == []  # nothing queued
    client.close()
    assert flush_statistics(with_log) == 3
    assert flush_statistics(with_log) == 0


# --- nginx, for real ------------------------------------------------------------------------


@pytest.mark.needs("nginx")
def test_nginx_answers_are_counted_once_through_rotation_and_nothing_personal_is_logged(
    sqlite_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    clean_redis(redis_url)
    s = sqlite_settings.model_copy(update={"broker_url": redis_url, "feed_rate_limit": 0})
    site: Site = published_with_files(s)
    dead_app = f"127.0.0.1:{free_port()}"  # what nginx passes on answers 502, unlogged
    with running_nginx(
        tmp_path / "nginx", public_dir=s.public_dir, upstream=dead_app, site_url=s.site_url
    ) as nginx:
        s = s.model_copy(update={"statistics_log": nginx.statistics_log})
        page_html = site.page[1:] + ".html"
        feed = "/feeds/en/releases.atom"
        with httpx.Client(
            base_url=nginx.base_url,
            transport=httpx.HTTPTransport(local_address=CLIENT_IP),
            headers=HEADERS,
            timeout=5,
        ) as web:
            served = 0

            def get(path: str, status: int, **kwargs: object) -> httpx.Response:
                nonlocal served
                answer = web.get(path, **kwargs)  # type: ignore[arg-type]
                assert answer.status_code == status, (path, answer.status_code)
                served += 1
                return answer

            for _ in range(3):
                get(site.page, 200, params={"utm": "query-7f3a"})
            assert web.head(site.page).status_code == 200  # logged, never counted
            get("/en/", 200)
            first = get(feed, 200)
            get(feed, 200)
            for _ in range(4):
                get(feed, 304, headers={"If-None-Match": first.headers["etag"]})
            full = get(site.image, 200)
            get(site.image, 200)
            get(site.image, 304, headers={"If-None-Match": full.headers["etag"]})
            get(site.email_image, 200)
            get(site.document, 200)
            get(f"/media/{SHA}/missing.pdf", 404)
            # Passed to the app (here: down): the app counts those itself, nginx logs none.
            assert web.get("/").status_code == 502
            assert web.get("/no-such-page").status_code == 502
            wait_until(lambda: log_lines(nginx.statistics_log) == served + 1, 5, "nginx's log")
            expected = {
                f"page:{page_html}": 3,
                "page:en/index.html": 1,
                "feed200:feeds/en/releases.atom": 2,
                "feed304:feeds/en/releases.atom": 4,
                f"image:{site.image[1:]}": 2,
                f"document:{site.document[1:]}": 1,
            }
            assert flush_statistics(s) == sum(expected.values())
            assert stored_counts(s) == expected
            assert flush_statistics(s) == 0  # a second flush adds nothing
            assert stored_counts(s) == expected

            written = nginx.statistics_log.read_text()
            for marker in (*MARKERS, "127.0.0.1", "StatsProbe", "utm", "?"):
                assert marker not in written, marker
            assert "/no-such-page" not in written and " / " not in written

            # Rotation: renamed, nginx still writes the old file until it reopens.
            get(site.page, 200)
            wait_until(lambda: log_lines(nginx.statistics_log) == served + 1, 5, "the line")
            rotated = nginx.statistics_log.with_name("statistics.log.1")
            nginx.statistics_log.rename(rotated)
            get(site.page, 200)  # into the renamed file
            wait_until(lambda: log_lines(rotated) == served + 1, 5, "the line, after the rename")
            assert flush_statistics(s) == 0  # no log by that name yet: nothing, no error
            nginx.reopen_logs()
            wait_until(nginx.statistics_log.exists, 5, "nginx to reopen its log")
            # nginx's master makes the new file, then tells its worker to reopen: a request
            # the worker serves in between still goes to the old file (a CI run saw it).
            # Asked again until one reaches the new file; each is counted once either way.
            early = 0
            get(site.page, 200)
            deadline = time.monotonic() + 5
            while log_lines(nginx.statistics_log) == 0:
                assert time.monotonic() < deadline, "nginx's worker never wrote its new log"
                if log_lines(rotated) > served + 1 + early:  # that one went to the old file
                    early += 1
                    get(site.page, 200)
                time.sleep(0.05)
            assert log_lines(nginx.statistics_log) == 1
            # The rest of the old file, then the new one.
            assert flush_statistics(s) == 3 + early
            assert stored_counts(s)[f"page:{page_html}"] == 6 + early
            assert flush_statistics(s) == 0


def test_counting_keys_are_not_taken_for_the_position() -> None:
    # The flush renames every "distributor:stats:*" key: the position must not be one.
    from distributor.reporting.stats_log import POSITION_PREFIX

    assert not POSITION_PREFIX.startswith(counting.KEY_PREFIX)


def test_flushes_reading_the_log_at_once_count_each_line_once(
    with_log: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from distributor.reporting import stats_log

    log = with_log.statistics_log
    assert log is not None
    log.parent.mkdir()
    line = b"1796000000.5 GET 200 /releases/climate.html\n"
    log.write_bytes(line * 2000)
    monkeypatch.setattr(stats_log, "BATCH_BYTES", 10 * len(line))  # many small commits
    counted: list[int] = []

    def flush() -> None:
        client = redis.Redis.from_url(with_log.broker_url or "")
        try:
            counted.append(stats_log.read_statistics_log(client, log))
        finally:
            client.close()

    threads = [threading.Thread(target=flush) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counted) == 2000  # some read nothing: another committed first
    assert flush_statistics(with_log) == 2000  # the hashes the readers filled
    assert flush_statistics(with_log) == 0
    assert stored_counts(with_log) == {"page:releases/climate.html": 2000}
