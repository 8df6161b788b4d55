"""The generated site as a feed reader or a browser gets it from `distributor serve` (a real
subprocess on a free port, a real HTTP client): conditional GET, gzip/br, Link headers, the
poll limit, refused paths, and the dynamic routes still behind it."""

from __future__ import annotations

import gzip
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest
from fastapi.testclient import TestClient

from distributor.core.config import Settings, load_settings
from distributor.core.db import dispose_engines, session_scope, upgrade
from distributor.releases.lifecycle import mark_published
from distributor.site.builder import regenerate_site
from distributor.web import create_app, static
from distributor.web.changes import Watcher
from distributor.web.static import PollLimit, choose_coding
from tests.helpers import TEST_SECRET_KEY, add_topics, free_port, make_release
from tests.processes import running_serve, settings_env

SITE = "https://news.example.org"
HUB = "https://hub.example.org/"
MTIME = 1_780_000_000  # 2026-05-28: a fixed Last-Modified to compare dates against
IDENTITY = {"Accept-Encoding": "identity"}


@dataclass
class Server:
    """A running `distributor serve` and a client for it."""

    settings: Settings
    client: httpx.Client
    port: int

    def write(self, relpath: str, body: bytes, mtime: int = MTIME) -> bytes:
        """Put a file into the site the way the builder does: temporary file, then rename."""
        path = self.settings.public_dir / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(body)
        os.utime(tmp, (mtime, mtime))
        os.replace(tmp, path)
        return body

    def raw_status(self, target: str) -> int:
        """The status for a request line sent as is (clients normalise '..' and escapes)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            head = sock.recv(64)
        return int(head.split()[1])


@contextmanager
def serving(factory: pytest.TempPathFactory, name: str, **overrides: object) -> Iterator[Server]:
    """A migrated SQLite database, an empty site, and `distributor serve` on a free port: the
    command's own process, where the browser tests serve the app from theirs
    (tests/web_server.py), so that its options (no proxy headers, no server header) are
    checked as the command sets them."""
    base = factory.mktemp(name)
    settings = load_settings(
        data_dir=base / "var",
        site_url=SITE,
        secret_key=TEST_SECRET_KEY,
        sender="Agency Press Office <press@example.org>",
        **overrides,
    )
    upgrade(settings)
    settings.public_dir.mkdir(parents=True)
    port = free_port()
    log = base / "serve.log"
    with (
        running_serve(settings_env(settings), log, port),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
    ):
        yield Server(settings, client, port)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """Two servers started once for this module (a start costs about a second): "open" with
    no poll limit and a WebSub hub, and "limited" allowing 3 polls a minute per feed."""
    with (
        serving(tmp_path_factory, "open", feed_rate_limit=0, websub_hub=HUB) as open_,
        serving(tmp_path_factory, "limited", feed_rate_limit=3) as limited,
    ):
        yield {"open": open_, "limited": limited}
    dispose_engines()


@pytest.fixture
def server(servers: dict[str, Server]) -> Server:
    return servers["open"]


def feed_bytes(n: int = 40) -> bytes:
    entries = "".join(
        f"<entry><id>tag:news.example.org,2026:{i}</id><title>Release {i}</title></entry>"
        for i in range(n)
    )
    return f'<?xml version="1.0" encoding="utf-8"?><feed>{entries}</feed>'.encode()


def test_a_feed_answers_200_with_validators_then_304(server: Server) -> None:
    body = server.write("feeds/en/releases.atom", feed_bytes())
    first = server.client.get("/feeds/en/releases.atom", headers=IDENTITY)
    assert first.status_code == 200 and first.content == body
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert modified == formatdate(MTIME, usegmt=True)
    assert first.headers["cache-control"] == "public, max-age=300"
    assert first.headers["vary"] == "Accept-Encoding"
    assert first.headers["x-content-type-options"] == "nosniff"
    assert first.headers["content-length"] == str(len(body))
    assert "content-encoding" not in first.headers

    for inm in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = server.client.get("/feeds/en/releases.atom", headers={"If-None-Match": inm})
        assert again.status_code == 304 and again.content == b"", inm
        assert again.headers["last-modified"] == modified
        assert again.headers["cache-control"] == "public, max-age=300"

    def since(seconds: int, **extra: str) -> int:
        ims = formatdate(seconds, usegmt=True)
        headers = {"If-Modified-Since": ims, **IDENTITY, **extra}
        return server.client.get("/feeds/en/releases.atom", headers=headers).status_code

    assert since(MTIME) == 304  # the date we sent
    assert since(MTIME + 3600) == 304  # later: not "equal", but not modified since
    assert since(MTIME - 1) == 200
    # If-None-Match, when present, decides alone (RFC 9110 §13.2.2).
    assert since(MTIME, **{"If-None-Match": '"something-else"'}) == 200
    garbage = {"If-Modified-Since": "yesterday-ish", **IDENTITY}
    assert server.client.get("/feeds/en/releases.atom", headers=garbage).status_code == 200


def test_a_replaced_file_is_served_with_a_new_etag(server: Server) -> None:
    server.write("feeds/fr/releases.rss", feed_bytes(10))
    old = server.client.get("/feeds/fr/releases.rss", headers=IDENTITY)
    for _ in range(3):  # cached and answered from memory
        assert server.client.get("/feeds/fr/releases.rss", headers=IDENTITY).content == old.content
    new_body = server.write("feeds/fr/releases.rss", feed_bytes(11), mtime=MTIME + 60)

    # The very next request sees the rewritten file (the README: from the next request on).
    new = server.client.get(
        "/feeds/fr/releases.rss", headers={"If-None-Match": old.headers["etag"], **IDENTITY}
    )
    assert new.status_code == 200 and new.content == new_body
    assert new.headers["etag"] != old.headers["etag"]
    assert new.headers["last-modified"] == formatdate(MTIME + 60, usegmt=True)
    # Same size, same mtime, new bytes (a rename brings a new inode): noticed at once too.
    same_size = new_body.replace(b"Release", b"Rel_ase")
    server.write("feeds/fr/releases.rss", same_size, mtime=MTIME + 60)
    assert server.client.get("/feeds/fr/releases.rss", headers=IDENTITY).content == same_size
    # A newsroom page likewise.
    server.write("en/topics/energy/index.html", b"<html>one</html>")
    assert server.client.get("/en/topics/energy/").content == b"<html>one</html>"
    server.write("en/topics/energy/index.html", b"<html>two</html>")
    assert server.client.get("/en/topics/energy/").content == b"<html>two</html>"


def raw(server: Server, path: str, accept: str, **headers: str) -> tuple[httpx.Response, bytes]:
    with server.client.stream("GET", path, headers={"Accept-Encoding": accept, **headers}) as r:
        return r, b"".join(r.iter_raw())


def test_gzip_and_br_decode_to_the_same_bytes_each_with_its_own_etag(server: Server) -> None:
    body = server.write("feeds/en/topics/climate.json", feed_bytes(30))
    plain, plain_raw = raw(server, "/feeds/en/topics/climate.json", "identity")
    gz, gz_raw = raw(server, "/feeds/en/topics/climate.json", "gzip, deflate")
    br, br_raw = raw(server, "/feeds/en/topics/climate.json", "gzip, deflate, br")
    assert plain_raw == body and "content-encoding" not in plain.headers
    assert gz.headers["content-encoding"] == "gzip" and gzip.decompress(gz_raw) == body
    assert br.headers["content-encoding"] == "br" and brotli.decompress(br_raw) == body
    assert len(br_raw) < len(body) and len(gz_raw) < len(body)
    assert int(gz.headers["content-length"]) == len(gz_raw)
    etags = {plain.headers["etag"], gz.headers["etag"], br.headers["etag"]}
    assert len(etags) == 3
    assert all(r.headers["vary"] == "Accept-Encoding" for r in (plain, gz, br))

    assert (
        raw(server, "/feeds/en/topics/climate.json", "br;q=0, gzip")[0].headers["content-encoding"]
        == "gzip"
    )
    assert raw(server, "/feeds/en/topics/climate.json", "*")[0].headers["content-encoding"] == "br"
    # A client that kept any of the three representations gets a 304 (weak comparison),
    # carrying the ETag of the representation it asked for now.
    for etag in etags:
        kept = {"If-None-Match": etag}
        not_modified, _ = raw(server, "/feeds/en/topics/climate.json", "gzip", **kept)
        assert not_modified.status_code == 304
        assert not_modified.headers["etag"] == gz.headers["etag"]

    server.write("tiny.html", b"<p>hi</p>")  # too small to be worth compressing
    tiny, tiny_raw = raw(server, "/tiny.html", "br, gzip")
    assert tiny_raw == b"<p>hi</p>" and "content-encoding" not in tiny.headers


def test_head_answers_the_headers_of_get_without_a_body(server: Server) -> None:
    body = server.write("feeds/en/topics/space.atom", feed_bytes(5))
    head = server.client.head("/feeds/en/topics/space.atom", headers=IDENTITY)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(body))
    assert head.headers["content-type"] == "application/atom+xml; charset=utf-8"
    get = server.client.get("/feeds/en/topics/space.atom", headers=IDENTITY)
    assert head.headers["etag"] == get.headers["etag"]
    kept = {"If-None-Match": get.headers["etag"]}
    again = server.client.head("/feeds/en/topics/space.atom", headers=kept)
    assert again.status_code == 304


def test_feed_links_come_from_the_site_url_whatever_the_host_header(server: Server) -> None:
    server.write("feeds/en/archive/1.atom", feed_bytes(3))
    self_link = f'<{SITE}/feeds/en/archive/1.atom>; rel="self", <{HUB}>; rel="hub"'
    for host in ("evil.example", "127.0.0.1", "news.example.org:8443"):
        r = server.client.get("/feeds/en/archive/1.atom", headers={"Host": host})
        assert r.status_code == 200 and r.headers["link"] == self_link
        etag = r.headers["etag"]
        kept = {"Host": host, "If-None-Match": etag}
        assert server.client.get("/feeds/en/archive/1.atom", headers=kept).status_code == 304
    server.write("en/index.html", b"<html>en</html>")
    assert "link" not in server.client.get("/en/").headers  # pages are not feeds


def test_content_types_carry_a_charset(server: Server) -> None:
    expected = {
        "feeds/en/types.rss": "application/rss+xml; charset=utf-8",
        "feeds/en/types.atom": "application/atom+xml; charset=utf-8",
        "feeds/en/types.json": "application/feed+json; charset=utf-8",
        "types/page.html": "text/html; charset=utf-8",
        "types/photo.png": "image/png",
        "types/blob": "application/octet-stream",
    }
    for relpath, media_type in expected.items():
        server.write(relpath, b"x" * 300)
        assert server.client.get("/" + relpath).headers["content-type"] == media_type, relpath


def test_paths_map_to_the_site_files(server: Server) -> None:
    server.write("index.html", b"<html>newsroom</html>")
    server.write("fr/index.html", b"<html>salle de presse</html>")
    server.write("releases/climate-agreement.html", b"<html>the release</html>")
    server.write("en/topics/climate/index.html", b"<html>climate</html>")
    get = server.client.get
    assert get("/").content == b"<html>newsroom</html>"
    assert get("/?lang=fr").content == b"<html>salle de presse</html>"
    assert get("/?lang=xx").content == b"<html>newsroom</html>"  # not a language of ours
    assert get("/fr/").content == b"<html>salle de presse</html>"
    assert get("/fr").content == b"<html>salle de presse</html>"
    assert get("/releases/climate-agreement").content == b"<html>the release</html>"
    assert get("/releases/climate-agreement.html").content == b"<html>the release</html>"
    assert get("/en/topics/climate/").content == b"<html>climate</html>"
    assert get("/releases/no-such-release").status_code == 404
    # A withdrawn release: its page file is removed, and the URL stops answering.
    (server.settings.public_dir / "releases/climate-agreement.html").unlink()
    assert get("/releases/climate-agreement").status_code == 404


def test_dotfiles_and_paths_out_of_the_site_are_not_served(server: Server) -> None:
    public = server.settings.public_dir
    (public / ".manifest.json").write_text('{"secret": true}')
    (public / "feeds" / ".feeds.lock").parent.mkdir(parents=True, exist_ok=True)
    (public / "feeds" / ".feeds.lock").write_text("lock")
    (public.parent / "secret_key").write_text("do-not-serve")
    (public / "leak.txt").symlink_to(public.parent / "secret_key")
    for target in (
        "/.manifest.json",
        "/%2emanifest.json",
        "/feeds/.feeds.lock",
        "/feeds/../../secret_key",
        "/feeds/%2e%2e/%2e%2e/secret_key",
        "/feeds/..%2f..%2fsecret_key",
        "/feeds/%252e%252e/%252e%252e/secret_key",
        "/..\\secret_key",
        "/%00/../secret_key",
        "/%3Flang=..%2F..%2Fsecret_key",
        "//secret_key",
        "/leak.txt",
    ):
        assert server.raw_status(target) == 404, target
    assert server.client.get("/.manifest.json").status_code == 404


def test_a_client_polling_a_feed_too_often_gets_429_with_retry_after(
    servers: dict[str, Server],
) -> None:
    limited = servers["limited"]
    limited.write("feeds/en/releases.atom", feed_bytes(3))
    limited.write("feeds/fr/releases.atom", feed_bytes(3))
    limited.write("index.html", b"<html>newsroom</html>")
    first = limited.client.get("/feeds/en/releases.atom")
    assert first.status_code == 200
    etag = {"If-None-Match": first.headers["etag"]}
    # Conditional requests count too: they are what a too-eager reader sends.
    polls = [limited.client.get("/feeds/en/releases.atom", headers=etag) for _ in range(2)]
    assert [r.status_code for r in polls] == [304, 304]
    refused = limited.client.get("/feeds/en/releases.atom", headers=etag)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 20  # a token every 20 s
    assert refused.headers["content-type"].startswith("text/plain")
    assert "3 times a minute" in refused.text
    # Without --proxy-headers, a client cannot pose as another one to get a fresh allowance.
    spoofed = {"X-Forwarded-For": "203.0.113.9", **etag}
    assert limited.client.get("/feeds/en/releases.atom", headers=spoofed).status_code == 429
    # Per feed, and only feeds: another feed and the pages still answer.
    assert limited.client.get("/feeds/fr/releases.atom").status_code == 200
    assert all(limited.client.get("/").status_code == 200 for _ in range(5))


def test_dynamic_routes_still_answer_behind_the_files(server: Server) -> None:
    health = server.client.get("/healthz")
    assert health.text == "ok\n"
    assert "server" not in health.headers  # `serve` tells no one it runs uvicorn
    add_topics(server.settings, "dynamic-routes")  # with no topic, a notice stands instead
    form = server.client.get("/subscribe")
    assert form.status_code == 200 and "<form" in form.text
    assert server.client.get("/api/subscribers").status_code == 401
    assert server.client.get("/unsubscribe/not-a-token").status_code == 400
    server.write("feeds/en/post.atom", feed_bytes(1))
    # Only GET and HEAD are answered from files; a POST goes to the app (no such route).
    assert server.client.post("/feeds/en/post.atom").status_code in (404, 405)


def test_accept_encoding_negotiation() -> None:
    assert choose_coding("gzip, deflate, br") == "br"
    assert choose_coding("br;q=0, gzip;q=0.5") == "gzip"
    assert choose_coding("BR;Q=0.1") == "br"
    assert choose_coding("*") == "br"
    assert choose_coding("*;q=0, gzip") == "gzip"
    assert choose_coding("gzip;q=0, *;q=0.3") == "br"
    assert choose_coding("deflate") == "identity"
    assert choose_coding("gzip;q=0, br;q=0") == "identity"
    assert choose_coding("gzip;q=nonsense") == "identity"
    assert choose_coding("") == "identity"


def test_poll_limit_refills_and_stays_bounded() -> None:
    limit = PollLimit(per_minute=2, max_keys=100)
    assert [limit.take("1.2.3.4", "f", now=0.0) for _ in range(3)] == [0, 0, 30]
    assert limit.take("1.2.3.4", "f", now=29.0) == 1  # 29 s of 30 refilled: wait 1 s
    assert limit.take("1.2.3.4", "f", now=30.5) == 0
    assert limit.take("5.6.7.8", "f", now=30.5) == 0  # another client, its own bucket
    for i in range(1000):  # many clients, each once: memory stays bounded
        limit.take(f"10.0.{i // 256}.{i % 256}", "f", now=100.0 + i * 0.001)
    assert len(limit) <= 100
    start = time.monotonic()
    assert limit.take("1.2.3.4", "f") == 0  # real clock: a fresh or refilled bucket
    assert time.monotonic() - start < 1


def test_a_reader_polls_the_running_app_across_a_publish(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The whole path: releases in the database, the site built, `distributor serve`
    answering a feed reader's conditional polls, then a new release."""
    with serving(tmp_path_factory, "publish", feed_rate_limit=0) as live:
        s, client = live.settings, live.client
        add_topics(s, "climate")
        first = make_release(s, topics="climate")
        with session_scope(s) as session:
            mark_published(session, first.id)
        regenerate_site(s)

        feed = "/feeds/en/releases.atom"
        got = client.get(feed, headers=IDENTITY)
        assert got.status_code == 200 and "Agency signs agreement" in got.text
        etag, modified = got.headers["etag"], got.headers["last-modified"]
        later = formatdate(parsedate_to_datetime(modified).timestamp() + 3600, usegmt=True)
        for conditional in ({"If-None-Match": etag}, {"If-Modified-Since": modified},
                            {"If-Modified-Since": later}):  # fmt: skip
            again = client.get(feed, headers={**conditional, **IDENTITY})
            assert again.status_code == 304 and again.content == b""
        gz = client.get(feed, headers={"Accept-Encoding": "gzip"})
        assert gz.headers["content-encoding"] == "gzip" and gz.text == got.text  # decoded

        # A forged Host changes no URL: not in the page, not in the feed, not in Link.
        forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
        for path in ("/", "/en/", feed, "/releases/agency-signs-agreement"):
            answer = client.get(path, headers=forged)
            assert answer.status_code == 200, path
            assert "evil.example" not in answer.text + answer.headers.get("link", "")
            assert SITE in answer.text

        second = make_release(s, topics="climate", slug="second-release", title="Second one")
        with session_scope(s) as session:
            mark_published(session, second.id)
        regenerate_site(s)

        new = client.get(feed, headers={"If-None-Match": etag, **IDENTITY})
        assert new.headers["etag"] != etag and "Second one" in new.text
        assert "Second one" in client.get("/").text
        assert client.get("/releases/second-release").status_code == 200
        missing = client.get("/releases/no-such-release")
        assert missing.status_code == 404 and "Page not found" in missing.text


def test_the_newsroom_root_follows_the_browser_language_and_lang_wins(server: Server) -> None:
    server.write("index.html", b"<html>newsroom</html>")
    server.write("en/index.html", b"<html>newsroom (en)</html>")
    server.write("fr/index.html", b"<html>salle de presse</html>")

    def root(accept: str | None, query: str = "") -> httpx.Response:
        headers = {"Accept-Language": accept} if accept is not None else {}
        return server.client.get("/" + query, headers={**headers, **IDENTITY})

    french = root("fr-CA,fr;q=0.9,en;q=0.5")
    assert french.content == b"<html>salle de presse</html>"
    assert {v.strip() for v in french.headers["vary"].split(",")} == {
        "Accept-Encoding",
        "Accept-Language",
    }
    assert root("en-GB,en;q=0.9,fr;q=0.8").content == b"<html>newsroom</html>"
    assert root("de, fr;q=0.1").content == b"<html>salle de presse</html>"
    assert root("de").content == b"<html>newsroom</html>"  # none of ours: the first
    assert root(None).content == b"<html>newsroom</html>"
    assert root("fr;q=0").content == b"<html>newsroom</html>"
    assert "Accept-Language" in root(None).headers["vary"]
    # ?lang= wins over the browser; an unknown one leaves the choice to the browser.
    assert root("fr", "?lang=en").content == b"<html>newsroom (en)</html>"
    assert root("en", "?lang=fr").content == b"<html>salle de presse</html>"
    assert root("fr", "?lang=xx").content == b"<html>salle de presse</html>"
    # A conditional request is answered for the file the browser's language picks.
    etag = french.headers["etag"]
    again = server.client.get("/", headers={"Accept-Language": "fr", "If-None-Match": etag})
    assert again.status_code == 304
    english = server.client.get("/", headers={"Accept-Language": "en", "If-None-Match": etag})
    assert english.status_code == 200


def _site(tmp_path: Path) -> Settings:
    s = load_settings(data_dir=tmp_path / "var", site_url=SITE, secret_key="k" * 40,
                      feed_rate_limit=0)  # fmt: skip
    s.public_dir.mkdir(parents=True)
    return s


def _replace(path: Path, body: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(body)
    os.replace(tmp, path)


@pytest.mark.parametrize("inotify", [True, False])
def test_the_next_request_after_a_rewrite_gets_it_with_or_without_inotify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inotify: bool
) -> None:
    """With inotify, a cached file is served without a stat until the kernel says it
    changed; without it (another OS, no watch left), with a stat a request. Either way the
    request after a rewrite gets the new bytes."""
    if not inotify:
        monkeypatch.setattr(static, "Watcher", _no_inotify)
    s = _site(tmp_path)
    feed = s.public_dir / "feeds/en/releases.atom"
    feed.parent.mkdir(parents=True)
    feed.write_bytes(b"<feed>one</feed>")
    stats: list[str] = []
    real_stat = os.stat

    def counting_stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if str(path) == str(feed.absolute()):
            stats.append(str(path))
        return real_stat(path, *args, **kwargs)

    with TestClient(create_app(s)) as client:
        assert client.get("/feeds/en/releases.atom").content == b"<feed>one</feed>"
        monkeypatch.setattr(os, "stat", counting_stat)
        for _ in range(20):
            assert client.get("/feeds/en/releases.atom").content == b"<feed>one</feed>"
        assert len(stats) == (0 if inotify else 20)
        for body in (b"<feed>two</feed>", b"<feed>six</feed>", b"<feed>ten!</feed>"):
            _replace(feed, body)
            assert client.get("/feeds/en/releases.atom").content == body
        feed.write_bytes(b"<feed>in place</feed>")  # not renamed: written where it is
        assert client.get("/feeds/en/releases.atom").content == b"<feed>in place</feed>"
        # A whole new folder put where the old one was (the watch followed the old one).
        (s.public_dir / "feeds").rename(s.public_dir / "old-feeds")
        feed.parent.mkdir(parents=True)
        feed.write_bytes(b"<feed>new folder</feed>")
        assert client.get("/feeds/en/releases.atom").content == b"<feed>new folder</feed>"
        _replace(feed, b"<feed>and again</feed>")
        assert client.get("/feeds/en/releases.atom").content == b"<feed>and again</feed>"
        feed.unlink()
        assert client.get("/feeds/en/releases.atom").status_code == 404


def _no_inotify(root: str) -> None:
    raise OSError("no inotify here")


def test_the_watcher_names_what_changed(tmp_path: Path) -> None:
    (tmp_path / "feeds" / "en").mkdir(parents=True)
    watcher = Watcher(str(tmp_path))
    try:
        assert watcher.watch("feeds/en") and watcher.watch("")
        assert not watcher.watch("no/such/dir")
        assert watcher.changes() == set()
        _replace(tmp_path / "feeds/en/releases.atom", b"x")
        (tmp_path / "index.html").write_bytes(b"y")
        changed = watcher.changes()
        assert changed is not None
        assert {"feeds/en/releases.atom", "index.html"} <= changed
        # A watched directory that goes: anything below it may have changed, and the
        # watches are made again on what is there now.
        (tmp_path / "feeds").rename(tmp_path / "old-feeds")
        (tmp_path / "feeds/en").mkdir(parents=True)
        assert watcher.changes() is None
        assert watcher.watch("feeds/en")
        (tmp_path / "feeds/en/releases.rss").write_bytes(b"z")
        assert watcher.changes() == {"feeds/en/releases.rss"}
    finally:
        watcher.close()
