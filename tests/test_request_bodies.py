"""Request bodies against a real `distributor serve` (a subprocess on a free port, a raw
socket client): a body without a token, over its route's limit or of a type the route does
not take is refused before the server reads it — the client is answered while it still
has most of its body to send, and the server's memory does not grow with the body.

Each route's limit and types (one table, printed by ``test_every_route_with_a_body_has_a_
limit``): JSON API bodies 64 KiB, a release 4 MiB of JSON or Markdown, an image 20 MiB of
multipart (and 64 KiB of framing), a document 50 MiB, the release form 56 MiB (its text and
its files), every other form 16 KiB, any other route 1 KiB."""

from __future__ import annotations

import json
import secrets
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from distributor.core.apitokens import create_token
from distributor.core.config import Settings, load_settings
from distributor.core.db import dispose_engines, session_scope, upgrade
from distributor.web import create_app
from distributor.web.bodies import FORM_LIMIT, JSON_LIMIT, NO_BODY_LIMIT, body_of, routes_of
from tests.helpers import add_topics, free_port
from tests.processes import NO_BROKER, running_serve, settings_env

MB = 1024 * 1024


@dataclass
class Served:
    settings: Settings
    port: int
    pid: int
    token: str  # both scopes

    def rss(self) -> int:
        """The server process's resident memory, in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("bodies")
    s = load_settings(data_dir=base / "var", site_url="https://news.example.org",
                      secret_key=secrets.token_urlsafe(32), broker_url=NO_BROKER)  # fmt: skip
    upgrade(s)
    add_topics(s, "climate")
    with session_scope(s) as session:
        token = create_token(session, "bodies", ["subscribers", "releases"])
    port = free_port()
    # No broker: /healthz answers 503, and any answer means the server is up.
    with running_serve(settings_env(s), base / "serve.log", port, ready=lambda _: True) as proc:
        yield Served(s, port, proc.pid, token)
    dispose_engines()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client had sent when the answer came


def post(
    served: Served, path: str, headers: dict[str, str], body_size: int, chunked: bool,
    piece: bytes = b" " * 65536, first: bytes = b"",
) -> Answer:  # fmt: skip
    """Send the request line and ``headers``, then up to ``body_size`` bytes of body
    (``first``, then ``piece`` repeated; in chunks with ``chunked``, else as declared by a
    Content-Length the caller gives), reading as soon as the server answers. Returns the
    answer and how much of the body had been sent by then."""
    head = f"POST {path} HTTP/1.1\r\nHost: news.example.org\r\n"
    if chunked:
        headers = {**headers, "Transfer-Encoding": "chunked"}
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    try:
        sock.sendall(head.encode("latin-1"))
        sock.setblocking(False)
        sent, pending, received = 0, b"", b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not pending and sent < body_size:
                data = (first if sent == 0 and first else piece)[: body_size - sent]
                sent += len(data)
                pending = b"%x\r\n%s\r\n" % (len(data), data) if chunked else data
                if chunked and sent >= body_size:
                    pending += b"0\r\n\r\n"
            readable, writable, _ = select.select([sock], [sock] if pending else [], [], 5)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except (ConnectionResetError, BlockingIOError):
                    chunk = b""
                received += chunk
                if (b"\r\n\r\n" in received and _complete(received)) or not chunk:
                    break
            elif writable:
                try:
                    pending = pending[sock.send(pending) :]
                except (BrokenPipeError, ConnectionResetError, BlockingIOError):
                    pending = b""
        assert received, f"no answer after sending {sent:,} bytes"
    finally:
        sock.close()
    head_bytes, _, rest = received.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    return Answer(int(lines[0].split()[1]), {k.lower(): v for k, v in fields.items()}, rest,
                  sent - len(pending))  # fmt: skip


def _complete(received: bytes) -> bool:
    head, _, rest = received.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b": ")
        if name.lower() == b"content-length":
            return len(rest) >= int(value)
    return True


def auth(served: Served) -> dict[str, str]:
    return {"Authorization": f"Bearer {served.token}"}


def test_a_big_chunked_body_without_a_token_is_answered_401_before_it_is_read(
    served: Served,
) -> None:
    before = served.rss()
    answer = post(served, "/api/subscribers", {"Content-Type": "application/json"},
                  100 * MB, chunked=True, first=b'{"email": "')  # fmt: skip
    assert answer.status == 401 and json.loads(answer.body) == {
        "error": "an Authorization: Bearer token is required", "field": None}  # fmt: skip
    assert answer.sent < 10 * MB, f"answered after {answer.sent:,} bytes"
    assert served.rss() - before < 20 * MB
    # A wrong token likewise: answered before the body is read.
    wrong = {"Authorization": "Bearer dst_" + "x" * 43, "Content-Type": "application/json"}
    answer = post(served, "/api/subscribers", wrong, 100 * MB, chunked=True)
    assert answer.status == 401 and answer.sent < 10 * MB
    assert served.rss() - before < 20 * MB


def test_a_big_chunked_body_with_a_token_is_cut_at_the_routes_limit(served: Served) -> None:
    before = served.rss()
    answer = post(served, "/api/subscribers", {**auth(served), "Content-Type": "application/json"},
                  100 * MB, chunked=True)  # fmt: skip
    assert answer.status == 413, answer
    assert json.loads(answer.body)["error"].startswith("the body is larger than 64 KiB")
    assert answer.sent < 10 * MB and answer.headers["connection"] == "close"
    assert served.rss() - before < 20 * MB


def test_a_declared_length_over_the_limit_is_refused_at_once(served: Served) -> None:
    for path, headers in [
        ("/api/subscribers", {"Content-Type": "application/json"}),
        ("/api/subscribers", {**auth(served), "Content-Type": "application/json"}),
        ("/api/media", {**auth(served), "Content-Type": "multipart/form-data; boundary=x"}),
        ("/api/releases", {**auth(served), "Content-Type": "text/markdown"}),
        ("/subscribe", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("/admin/login", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("/admin/releases/new", {"Content-Type": "multipart/form-data; boundary=x"}),
        ("/admin/uploads", {"Content-Type": "multipart/form-data; boundary=x"}),
        ("/unsubscribe/anything", {"Content-Type": "application/x-www-form-urlencoded"}),
    ]:
        started = time.monotonic()
        answer = post(served, path, {**headers, "Content-Length": str(100 * MB)}, 0, False)
        assert answer.status == 413, (path, answer)
        assert time.monotonic() - started < 2, path


def test_a_multipart_upload_without_a_token_is_refused_before_it_is_spooled(
    served: Served,
) -> None:
    boundary = "b0undary"
    first = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
             f"filename=\"big.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode()  # fmt: skip
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    answer = post(served, "/api/media", headers, 200 * MB, chunked=True, first=first)
    assert answer.status == 401 and answer.sent < 10 * MB
    # With a token, a chunked upload is cut at 20 MiB (and its framing), not spooled on.
    rss = served.rss()
    answer = post(served, "/api/media", {**headers, **auth(served)}, 200 * MB, chunked=True,
                  first=first)  # fmt: skip
    assert answer.status == 413, answer
    assert 20 * MB < answer.sent < 40 * MB
    assert served.rss() - rss < 60 * MB


def test_public_forms_take_small_bodies(served: Served) -> None:
    for path in ("/subscribe", "/confirm/x", "/preferences/x", "/unsubscribe/x", "/admin/login"):
        answer = post(served, path, {"Content-Type": "application/x-www-form-urlencoded"},
                      10 * MB, chunked=True)  # fmt: skip
        assert answer.status == 413 and answer.sent < 5 * MB, (path, answer)
        assert b"16 KiB" in answer.body


def test_a_type_the_route_does_not_take_is_415_with_the_api_error_shape(served: Served) -> None:
    client = httpx.Client(base_url=f"http://127.0.0.1:{served.port}", headers=auth(served))
    for method, path in [("POST", "/api/subscribers"), ("POST", "/api/topics"),
                         ("PUT", "/api/topics/climate"), ("POST", "/api/releases"),
                         ("POST", "/api/releases/1/publish"), ("POST", "/api/media")]:  # fmt: skip
        answer = client.request(
            method, path, content=b"hello", headers={"Content-Type": "text/plain"}
        )
        assert answer.status_code == 415, (path, answer.text)
        error = answer.json()
        assert set(error) == {"error", "field"} and error["error"].startswith("send the body as")
    # No type at all: JSON routes want one; a form route takes a bare body (RFC 8058 senders).
    assert client.post("/api/subscribers", content=b"{}").status_code == 415
    bare = client.post("/unsubscribe/not-a-token", content=b"List-Unsubscribe=One-Click")
    assert bare.status_code == 400  # the token, not the body, is what is wrong
    # An empty body on a route that takes none, and a small one, still work.
    assert client.post("/api/releases/999/unschedule").status_code == 404
    assert client.post("/api/releases/999/unschedule", json={}).status_code == 404
    client.close()


def test_every_route_with_a_body_has_a_limit(sqlite_settings: Settings) -> None:
    """The table of limits: every route that takes a body, what it takes, and how much."""
    app = create_app(sqlite_settings)
    table = {}
    for matching, route in routes_of(app.routes):
        methods = getattr(route, "methods", set()) - {"GET", "HEAD"}
        if methods and isinstance(route, APIRoute):
            path = getattr(matching, "path", route.path)  # with its router's prefix
            table[f"{','.join(sorted(methods))} {path}"] = body_of(route)
    print("\n".join(f"{k}: {v.limit} {sorted(v.types)}" for k, v in sorted(table.items())))
    big = {k: v.limit for k, v in table.items() if v.limit > JSON_LIMIT}
    assert big == {
        "POST /api/releases": 4 * MB,
        "PUT /api/releases/{release_id}": 4 * MB,
        "POST /api/releases/{release_id}/correct": 4 * MB,
        "POST /api/media": 20 * MB + 64 * 1024,
        "POST /api/documents": 50 * MB + 64 * 1024,
        "POST /admin/releases/{release_id}/correct": 6 * MB + FORM_LIMIT,
        # The editor's form: its text, and files up to the largest document (and framing).
        "POST /admin/releases/new": 56 * MB + FORM_LIMIT + 64 * 1024,
        "POST /admin/releases/{release_id}/edit": 56 * MB + FORM_LIMIT + 64 * 1024,
        "POST /admin/uploads": 50 * MB + 64 * 1024,  # a file dropped on the form
        # The editor's form again, its text only: previewed and autosaved as typed.
        "POST /admin/releases/new/preview": 6 * MB + FORM_LIMIT,
        "POST /admin/releases/new/preview.json": 6 * MB + FORM_LIMIT,
        "POST /admin/releases/new/autosave.json": 6 * MB + FORM_LIMIT,
        "POST /admin/releases/{release_id}/preview": 6 * MB + FORM_LIMIT,
        "POST /admin/releases/{release_id}/preview.json": 6 * MB + FORM_LIMIT,
        "POST /admin/releases/{release_id}/autosave.json": 6 * MB + FORM_LIMIT,
        "POST /admin/settings": MB + FORM_LIMIT,  # the settings form, with its logo
    }
    assert table["POST /api/subscribers"].limit == JSON_LIMIT
    assert table["POST /subscribe"].limit == FORM_LIMIT
    assert table["POST /admin/login"].limit == FORM_LIMIT
    assert table["POST /api/releases/{release_id}/unschedule"].limit == NO_BODY_LIMIT
    with TestClient(app) as client:
        assert client.post("/api/subscribers", json={"x": "y" * JSON_LIMIT}).status_code == 413


def test_a_dashboard_form_from_nobody_is_sent_to_the_login_before_it_is_read(
    served: Served,
) -> None:
    boundary = "b0undary"
    first = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
             'filename="release.md"\r\nContent-Type: text/markdown\r\n\r\n').encode()  # fmt: skip
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    answer = post(served, "/admin/releases/1/correct", headers, 50 * MB, chunked=True,
                  first=first)  # fmt: skip
    assert answer.status == 303 and answer.headers["location"] == "/admin/login", answer
    assert answer.sent < 5 * MB  # the correction form takes 6 MiB from someone logged in
    # A forged or expired session cookie likewise.
    forged = {**headers, "Cookie": "distributor_admin=1.forged.signature"}
    answer = post(served, "/admin/releases/1/correct", forged, 50 * MB, chunked=True)
    assert answer.status == 303 and answer.sent < 5 * MB
