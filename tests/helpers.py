"""Small builders and probes shared by tests: topics, subscribers and release files, a free
port, a form's CSRF token, API tokens, the tasks waiting in the queue, leases run out."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import secrets
import socket
import textwrap
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import redis
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from distributor.audience.subscribers import import_csv
from distributor.core.apitokens import create_token
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import CorrectionNotice, Delivery, Release, Subscriber, utcnow
from distributor.core.queue import QUEUE
from distributor.office.accounts import create_user
from distributor.outbox import sending
from distributor.releases.lifecycle import create_release, mark_published
from distributor.releases.source import parse_release
from distributor.releases.topics import add_topic
from distributor.site import builder
from distributor.web import create_app

# The signing key of every test's Settings: strong, since `serve`, `worker` and `beat` refuse
# a weak one, and drawn afresh for each run, so that no key written in this repository could
# ever pass for a production key.
TEST_SECRET_KEY = secrets.token_urlsafe(32)

RELEASE_MD = textwrap.dedent(
    """\
    ---
    title: {title}
    lang: {lang}
    topics: [{topics}]
    date: 2026-11-20T09:00:00+01:00
    dateline: PARIS
    slug: {slug}
    contacts:
      - {{name: Jane Doe, role: Press officer, phone: "+33 1 00 00 00 00",
         email: press@example.org}}
    ---
    The Agency today signed a cooperation agreement on climate monitoring.

    A second paragraph with **details** and a [link](/releases/other).

    > "A quoted statement," said the Director-General.
    """
)


def release_text(
    *, title: str = "Agency signs agreement", lang: str = "en", topics: str = "climate",
    slug: str = "agency-signs-agreement",
) -> str:  # fmt: skip
    return RELEASE_MD.format(title=title, lang=lang, topics=topics, slug=slug)


def add_topics(settings: Settings, *slugs: str) -> None:
    with session_scope(settings) as session:
        for slug in slugs:
            add_topic(session, slug, {"en": slug.title(), "fr": slug.title() + " (fr)"})


def add_subscribers(
    settings: Settings, rows: list[tuple[str, str, str, str]], *, confirmed: bool = True
) -> None:
    """rows: (email, name, language, 'topic;topic')."""
    buf = io.StringIO()
    buf.write("email,name,language,topics\n")
    for email, name, lang, topics in rows:
        buf.write(f'{email},"{name}",{lang},{topics}\n')
    buf.seek(0)
    with session_scope(settings) as session:
        import_csv(session, settings, buf, "test.csv", confirmed=confirmed,
                   consent_source="test" if confirmed else "")  # fmt: skip


def subscriber_row(settings: Settings, email: str) -> Subscriber:
    """The subscriber of ``email`` as stored now (detached; its topics not loaded)."""
    with session_scope(settings) as session:
        sub = session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
        session.expunge(sub)
        return sub


def make_release(settings: Settings, **kwargs: str) -> Release:
    draft = parse_release(release_text(**kwargs), "test.md", settings)
    with session_scope(settings) as session:
        return create_release(session, settings, draft)


class CountingQueue:
    """Stands in for the broker: records the wake-ups instead of sending them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[object, ...]]] = []

    def send(self, task: str, *args: object) -> bool:
        self.sent.append((task, args))
        return True

    def waiting(self) -> int:
        return 0

    def tasks(self, name: str) -> list[tuple[object, ...]]:
        """The arguments of each wake-up of task ``name``, in the order they were sent."""
        return [args for task, args in self.sent if task == name]


def published_site(settings: Settings) -> None:
    """Topic climate, Ann (a confirmed English subscriber), one release published, and the
    site built: the newsroom, the release's page and the feeds are files."""
    add_topics(settings, "climate")
    add_subscribers(settings, [("ann@example.com", "Ann", "en", "climate")])
    release = make_release(settings)
    with session_scope(settings) as session:
        mark_published(session, release.id)
    builder.regenerate_site(settings)


def published_unplanned(settings: Settings, emails: int | list[str]) -> int:
    """A release on topic climate, published for confirmed English subscribers but not yet
    planned (no row): ``emails``, or that many numbered ones (p00@example.com, …)."""
    if isinstance(emails, int):
        emails = [f"p{i:02}@example.com" for i in range(emails)]
    add_topics(settings, "climate")
    add_subscribers(settings, [(e, "P", "en", "climate") for e in emails])
    release = make_release(settings)
    with session_scope(settings) as session:
        mark_published(session, release.id)
    return release.id


def published(settings: Settings, emails: int | list[str]) -> int:
    """``published_unplanned``'s release, planned (nothing sent yet)."""
    release_id = published_unplanned(settings, emails)
    sending.distribute_release(settings, CountingQueue(), release_id)  # type: ignore[arg-type]
    return release_id


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def shown(page: str) -> str:
    """A page's main text as a reader sees it: tags dropped, entities decoded, runs of ASCII
    white space made one space (a French no-break space is kept: it is part of the text)."""
    main = page.split('<main id="main">', 1)[1].split("</main>", 1)[0]
    return re.sub(r"[ \n\t\r]+", " ", html.unescape(re.sub(r"<[^>]+>", " ", main)))


def csrf_of(html: str) -> str:
    """The CSRF token of the (first) form in ``html``."""
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has a form with a CSRF field"
    return match.group(1)


def new_token(settings: Settings, name: str, scopes: list[str]) -> str:
    """A new API token ``name`` with ``scopes``, stored; the secret a client presents."""
    with session_scope(settings) as session:
        return create_token(session, name, scopes)


def lease_runs_out(s: Settings) -> None:
    """Time passes: the dead worker's leases expire (their rows keep what it left)."""
    with session_scope(s) as session:
        for ledger in (Delivery, CorrectionNotice):
            session.execute(
                update(ledger)
                .where(ledger.lease_until.is_not(None))
                .values(lease_until=utcnow().replace(year=2000))
            )


def decode_task(raw: bytes) -> tuple[str, list[Any]]:
    """A task message as Celery leaves it in the Redis queue (kombu's JSON envelope around
    a base64 body): the task's name and its positional arguments."""
    message = json.loads(raw)
    args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    return message["headers"]["task"], args


def queued_tasks(broker: redis.Redis) -> list[tuple[str, list[Any]]]:
    """The task messages waiting in the queue, newest first (kombu pushes on the left and
    a worker takes from the right): each one's task name and arguments."""
    return [decode_task(raw) for raw in broker.lrange(QUEUE, 0, -1)]


def empty_queue_and_limits(url: str) -> None:
    """Forget queued tasks and rate-limit counts, but keep kombu's queue bindings (a client
    that declared the queue once does not declare it again)."""
    client = redis.Redis.from_url(url)
    client.delete(QUEUE)
    for key in client.scan_iter("distributor:ratelimit:*"):
        client.delete(key)


def subscribe(client: TestClient, **fields: object) -> httpx.Response:
    """Fill in and send the subscription form as a browser does (its CSRF token from the
    page): Ann, English, topic climate, unless ``fields`` say otherwise."""
    page = client.get("/subscribe")
    data = {"email": "ann@example.com", "name": "Ann", "language": "en", "topics": ["climate"]}
    data.update(fields)  # type: ignore[arg-type]
    data.setdefault("csrf", csrf_of(page.text))
    return client.post("/subscribe", data=data)


def queued_confirmations(settings: Settings) -> list[int]:
    """The request ids of the send_confirmation tasks waiting in Redis."""
    assert settings.broker_url
    waiting = queued_tasks(redis.Redis.from_url(settings.broker_url))
    return [args[0] for task, args in waiting if task == "distributor.send_confirmation"]


def outbox(settings: Settings, rcpt: str | None = None) -> list[EmailMessage]:
    """The messages in the Maildir outbox (to ``rcpt`` only, if given), oldest first."""
    folder = settings.outbox_dir / "new"
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(msg, EmailMessage)
        if rcpt is None or rcpt in str(msg["To"]):
            found.append(msg)
    return found


class FakeClock:
    """A clock for :class:`distributor.outbox.throttle.Throttle` (``clock=``) that moves only when
    slept on or told (``now``): pacing by it is exact whatever the machine's load."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    """A green PNG of ``width`` x ``height`` pixels (half transparent in RGBA)."""
    out = io.BytesIO()
    Image.new(mode, (width, height), (0, 128, 0, 128) if mode == "RGBA" else (0, 128, 0)).save(
        out, "PNG"
    )
    return out.getvalue()


def writer_token(settings: Settings, scopes: list[str]) -> str:
    """A writer's account and a token of theirs with ``scopes``; its secret."""
    with session_scope(settings) as session:
        user = create_user(session, f"writer-{len(scopes)}@example.org", "writer",
                           "a long enough password", name="Writer")  # fmt: skip
        return create_token(session, f"writer-{'-'.join(scopes)}", scopes, user.id)


# One sample of the /metrics text: (name, labels) -> value.
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(settings: Settings, client: tuple[str, int] = ("127.0.0.1", 40000)) -> Samples:
    response = TestClient(create_app(settings), client=client).get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
