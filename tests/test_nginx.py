"""The nginx front door of docker-compose.yml, run for real (``/usr/sbin/nginx``) on a temp
public folder, with a tiny echo server standing in for the web app: what a feed reader, a
browser and a journalist's unsubscribe click get through it."""

from __future__ import annotations

import email.utils
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from distributor.core.urls import MEDIA_TYPES
from distributor.web.headers import static_page_headers
from tests.nginx_conf import RunningNginx, running_nginx

pytestmark = pytest.mark.needs("nginx")

SITE_URL = "https://news.example.org/"  # as an operator may write it: with a trailing slash
HUB = "https://hub.example.net/"
MODIFIED = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)  # every file's mtime
ATOM = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
    + b"<entry><title>Agency signs cooperation agreement</title><content>" * 40
    + b"</feed>\n"
)
MEDIA = "media/" + "ab" * 32  # a stored image's directory (distributor.releases.media)
PHOTO = b"\xff\xd8\xff\xe0 the bytes of a JPEG"
PDF = b"%PDF-1.4 the bytes of a PDF"  # a stored document (distributor.releases.documents)
DOCX = b"PK\x03\x04 the bytes of a Word file"
FILES = {
    f"{MEDIA}/for-pages.jpg": PHOTO,
    f"{MEDIA}/backgrounder.pdf": PDF,
    f"{MEDIA}/annual-report-2026.docx": DOCX,
    "index.html": b"<!doctype html><title>Newsroom</title>",
    "en/index.html": b"<!doctype html><title>Newsroom (en)</title>",
    "releases/climate-agreement.html": b"<!doctype html><title>Climate agreement</title>",
    "releases/old-news.gone.html": b"<!doctype html><title>Release withdrawn</title>",
    "feeds/en/releases.atom": ATOM,
    "feeds/en/releases.rss": b'<?xml version="1.0"?><rss version="2.0"><channel/></rss>\n',
    "feeds/en/releases.json": b'{"version": "https://jsonfeed.org/version/1.1", "items": []}',
    "feeds/en/topics/climate.atom": ATOM,
    "feeds/fr/releases.atom": ATOM,
    "sitemap.xml": b'<?xml version="1.0"?><urlset/>\n',
    "sitemaps/releases-3.xml": b'<?xml version="1.0"?><urlset/>\n',  # a split sitemap's part
    "robots.txt": b"User-agent: *\nDisallow: /admin/\n",
    "favicon.ico": b"\x00\x00\x01\x00 the bytes of an icon",
    ".manifest.json": b'{"feeds/en/releases.atom": "a fingerprint"}',  # the build's own
    "feeds/en/.releases.atom.4242.0f0f0f0f.tmp": b"half-written",
}


class _Echo(BaseHTTPRequestHandler):
    """The stand-in web app: answers every request with what it received, as JSON."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": self.rfile.read(length).decode(),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def public(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("public")
    stamp = MODIFIED.timestamp()
    for name, data in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (stamp, stamp))
    return root


@pytest.fixture(scope="module")
def app_upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def nginx(
    tmp_path_factory: pytest.TempPathFactory, public: Path, app_upstream: str
) -> Iterator[RunningNginx]:
    run_dir = tmp_path_factory.mktemp("nginx")
    with running_nginx(
        run_dir, public_dir=public, upstream=app_upstream, site_url=SITE_URL, websub_hub=HUB
    ) as server:
        yield server


@pytest.fixture
def client(nginx: RunningNginx) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=nginx.base_url, timeout=5) as c:
        yield c


def _http_date(when: datetime) -> str:
    return email.utils.format_datetime(when.astimezone(UTC), usegmt=True)


# Each test polls its own feed: the poll limit is per client and feed.


def test_a_feed_is_served_with_its_type_validators_caching_and_links(
    client: httpx.Client,
) -> None:
    r = client.get("/feeds/en/releases.atom", headers={"Host": "attacker.example"})
    assert r.status_code == 200
    assert r.content == ATOM
    assert r.headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert r.headers["etag"]
    assert r.headers["last-modified"] == _http_date(MODIFIED)
    assert r.headers["cache-control"] == "public, max-age=300"
    # From DISTRIBUTOR_SITE_URL (its trailing slash dropped), never from the Host header.
    assert r.headers.get_list("link", split_commas=True) == [
        '<https://news.example.org/feeds/en/releases.atom>; rel="self"',
        '<https://hub.example.net/>; rel="hub"',
    ]


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/feeds/en/releases.rss", "application/rss+xml; charset=utf-8"),
        ("/feeds/en/releases.json", "application/feed+json; charset=utf-8"),
    ],
)
def test_rss_and_json_feeds_have_their_media_types(
    client: httpx.Client, path: str, media_type: str
) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == media_type


def test_a_poll_with_the_etag_gets_304(client: httpx.Client) -> None:
    path, plain = "/feeds/fr/releases.atom", {"Accept-Encoding": "identity"}
    etag = client.get(path, headers=plain).headers["etag"]
    r = client.get(path, headers={**plain, "If-None-Match": etag})
    assert r.status_code == 304
    assert r.content == b""
    assert r.headers["etag"] == etag
    assert r.headers["cache-control"] == "public, max-age=300"
    assert client.get(path, headers={"If-None-Match": '"stale"'}).status_code == 200


def test_if_modified_since_equal_or_later_gets_304_and_earlier_gets_the_feed(
    client: httpx.Client,
) -> None:
    path = "/feeds/en/releases.rss"
    for since, status in [
        (MODIFIED, 304),
        (MODIFIED + timedelta(hours=3), 304),  # a reader's clock, or another server's date
        (MODIFIED - timedelta(seconds=1), 200),
    ]:
        r = client.get(path, headers={"If-Modified-Since": _http_date(since)})
        assert r.status_code == status, since


def test_gzip_when_asked_and_a_304_for_the_gzipped_etag(client: httpx.Client) -> None:
    path = "/feeds/en/releases.json"
    plain = client.get(path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    r = client.get(path, headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in r.headers["vary"]
    assert r.content == FILES["feeds/en/releases.json"]  # decoded by httpx
    atom = client.get("/feeds/en/releases.atom", headers={"Accept-Encoding": "gzip"})
    assert atom.num_bytes_downloaded < len(ATOM) / 5
    # What a feed reader sends back is the (weak) ETag of the gzipped answer.
    again = client.get(
        path, headers={"Accept-Encoding": "gzip", "If-None-Match": r.headers["etag"]}
    )
    assert again.status_code == 304


@pytest.mark.parametrize(
    ("path", "file"),
    [
        ("/en/", "en/index.html"),
        ("/releases/climate-agreement", "releases/climate-agreement.html"),
    ],
)
def test_newsroom_pages_are_the_files(client: httpx.Client, path: str, file: str) -> None:
    r = client.get(path)
    assert r.status_code == 200
    assert r.content == FILES[file]
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "public, max-age=300"
    assert client.get(path, headers={"If-None-Match": r.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("path", ["/en/", "/releases/climate-agreement", "/releases/old-news"])
def test_the_pages_nginx_serves_have_the_security_headers_the_app_sends(
    client: httpx.Client, path: str
) -> None:
    r = client.get(path)
    assert r.status_code in (200, 410)
    expected = {k.decode(): v.decode() for k, v in static_page_headers(SITE_URL.rstrip("/"))}
    assert {k: r.headers.get(k) for k in expected} == expected
    assert r.headers["x-content-type-options"] == "nosniff"


def test_feeds_and_images_get_no_page_policy(client: httpx.Client) -> None:
    for path in ("/feeds/en/releases.rss", f"/{MEDIA}/for-pages.jpg"):
        r = client.get(path)
        assert r.status_code == 200 and "content-security-policy" not in r.headers, path
        assert (
            "x-frame-options" not in r.headers and r.headers["x-content-type-options"] == "nosniff"
        )


@pytest.mark.parametrize(
    "path", ["/sitemap.xml", "/sitemaps/releases-3.xml", "/robots.txt", "/favicon.ico"]
)
def test_the_sitemap_robots_and_icon_have_the_types_the_app_gives(
    client: httpx.Client, path: str
) -> None:
    r = client.get(path)
    assert r.status_code == 200 and r.content == FILES[path[1:]]
    suffix = path[path.rindex(".") :]
    assert r.headers["content-type"] == MEDIA_TYPES[suffix]
    assert r.headers["cache-control"] == "public, max-age=300"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in r.headers


def test_the_root_goes_to_the_app_with_the_browser_language(client: httpx.Client) -> None:
    """The app picks the newsroom's language for / (Accept-Language, ?lang=)."""
    seen = client.get("/", headers={"Accept-Language": "fr-CA,fr;q=0.9"}).json()
    assert seen["path"] == "/" and seen["headers"]["accept-language"] == "fr-CA,fr;q=0.9"


@pytest.mark.parametrize("path", ["/.manifest.json", "/feeds/en/.releases.atom.4242.0f0f0f0f.tmp"])
def test_dotfiles_are_not_served(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code in (403, 404)
    assert FILES[path.lstrip("/")] not in r.content


@pytest.mark.parametrize(
    "path", ["/subscribe", "/?lang=fr", "/releases/not-built-yet", "/feeds/en/topics/new.atom"]
)
def test_what_is_not_a_file_reaches_the_app(client: httpx.Client, path: str) -> None:
    r = client.get(path, headers={"Host": "news.example.org"})
    assert r.status_code == 200
    seen = r.json()
    assert seen["path"] == path
    assert seen["headers"]["host"] == "news.example.org"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    # A client cannot choose the address the app trusts: nginx replaces the header.
    spoofed = client.get(path, headers={"X-Forwarded-For": "10.9.8.7"}).json()
    assert spoofed["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert "cache-control" not in r.headers  # the app's pages are not made cacheable


def test_a_one_click_unsubscribe_reaches_the_app_intact(client: httpx.Client) -> None:
    r = client.post("/unsubscribe/TOKEN", data={"List-Unsubscribe": "One-Click"})
    assert r.status_code == 200
    assert r.json()["method"] == "POST"
    assert r.json()["body"] == "List-Unsubscribe=One-Click"


def test_an_upload_reaches_the_app_the_app_sets_the_limits(client: httpx.Client) -> None:
    """nginx's own default (1 MB) would refuse a photo before the app sees it: the app
    checks each route's limit (20 MiB for an image, 50 MiB for a document), so nginx lets
    the largest through and refuses only what no route takes."""
    photo = b"x" * (15 * 1024 * 1024)
    r = client.post("/api/media", files={"file": ("minister.jpg", photo, "image/jpeg")})
    assert r.status_code == 200, r.status_code
    assert len(r.json()["body"]) > len(photo)
    report = b"%PDF-" + b"x" * (50 * 1024 * 1024 - 5)
    r = client.post("/api/documents", files={"file": ("report.pdf", report, "application/pdf")})
    assert r.status_code == 200, r.status_code
    too_big = client.post("/api/documents", content=b"x" * (52 * 1024 * 1024))
    assert too_big.status_code == 413  # beyond any route's limit: refused at the door


def test_a_client_polling_one_feed_too_fast_gets_429_with_retry_after(
    client: httpx.Client,
) -> None:
    path = "/feeds/en/topics/climate.atom"
    statuses = [client.get(path).status_code for _ in range(11)]
    assert statuses == [200] * 11  # one, and a burst of ten
    r = client.get(path)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "60"
    assert "link" not in r.headers
    assert client.get("/feeds/en/releases.rss").status_code == 200  # other feeds: own count


def test_without_a_hub_only_the_self_link_is_sent(
    tmp_path: Path, public: Path, app_upstream: str
) -> None:
    with running_nginx(
        tmp_path,
        public_dir=public,
        upstream=app_upstream,
        site_url="https://press.example.com",
        websub_hub="",
    ) as server:
        r = httpx.get(server.base_url + "/feeds/en/releases.atom")
    assert r.headers.get_list("link") == [
        '<https://press.example.com/feeds/en/releases.atom>; rel="self"'
    ]


def test_a_withdrawn_release_answers_410_with_its_notice(client: httpx.Client) -> None:
    r = client.get("/releases/old-news")
    assert r.status_code == 410
    assert r.content == FILES["releases/old-news.gone.html"]
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    # The notice file is not a page of its own, and a live release is not affected.
    assert client.get("/releases/old-news.gone.html").status_code == 404
    assert client.get("/releases/climate-agreement").status_code == 200


def test_a_stored_image_is_cached_for_a_year_with_the_etag_the_app_gives(
    client: httpx.Client,
) -> None:
    r = client.get(f"/{MEDIA}/for-pages.jpg")
    assert r.status_code == 200
    assert r.content == PHOTO
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert r.headers["x-content-type-options"] == "nosniff"
    # The form distributor.web.static gives it too: either server's validator works.
    assert r.headers["etag"] == f'"{int(MODIFIED.timestamp()):x}-{len(PHOTO):x}"'
    assert client.get(f"/{MEDIA}/for-pages.jpg", headers={"If-None-Match": r.headers["etag"]}
                      ).status_code == 304  # fmt: skip
    # An image not stored (yet) is no business of the app's: the files are the same.
    missing = client.get(f"/{MEDIA}/for-email.jpg")
    assert missing.status_code == 404
    assert "path" not in missing.text


def test_a_stored_document_is_served_as_the_app_serves_it(client: httpx.Client) -> None:
    """The headers distributor.web.static gives a document: its type, cached for a year,
    and an office file as a download under its stored name."""
    for name, data, media_type, disposition in (
        ("backgrounder.pdf", PDF, "application/pdf", None),
        ("annual-report-2026.docx", DOCX,
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         'attachment; filename="annual-report-2026.docx"'),
    ):  # fmt: skip
        r = client.get(f"/{MEDIA}/{name}")
        assert r.status_code == 200 and r.content == data, name
        assert r.headers["content-type"] == media_type
        assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers.get("content-disposition") == disposition
        assert r.headers["etag"] == f'"{int(MODIFIED.timestamp()):x}-{len(data):x}"'
    missing = client.get(f"/{MEDIA}/other.pdf")
    assert missing.status_code == 404 and "path" not in missing.text
