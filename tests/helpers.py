"""Small builders shared by tests: topics, subscribers and release files."""

from __future__ import annotations

import io
import secrets
import textwrap

from distributor import dispatch
from distributor.config import Settings
from distributor.db import session_scope
from distributor.models import Release
from distributor.releases import create_release, mark_published, parse_release
from distributor.subscribers import import_csv
from distributor.topics import add_topic

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


def make_release(settings: Settings, **kwargs: str) -> Release:
    draft = parse_release(release_text(**kwargs), "test.md", settings)
    with session_scope(settings) as session:
        return create_release(session, settings, draft)


class CountingQueue:
    """Stands in for the broker: counts the wake-ups instead of sending them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, tuple[int, ...]]] = []

    def send(self, task: str, *args: int) -> bool:
        self.sent.append((task, args))
        return True


def published_site(settings: Settings) -> None:
    """Topic climate, Ann (a confirmed English subscriber), one release published, and the
    site built: the newsroom, the release's page and the feeds are files."""
    add_topics(settings, "climate")
    add_subscribers(settings, [("ann@example.com", "Ann", "en", "climate")])
    release = make_release(settings)
    with session_scope(settings) as session:
        mark_published(session, release.id)
    dispatch.regenerate_site(settings)


def published(settings: Settings, emails: int | list[str]) -> int:
    """A release on topic climate, published and planned (nothing sent yet) for confirmed
    English subscribers: ``emails``, or that many numbered ones (p00@example.com, …)."""
    if isinstance(emails, int):
        emails = [f"p{i:02}@example.com" for i in range(emails)]
    add_topics(settings, "climate")
    add_subscribers(settings, [(e, "P", "en", "climate") for e in emails])
    release = make_release(settings)
    with session_scope(settings) as session:
        mark_published(session, release.id)
    dispatch.distribute_release(settings, CountingQueue(), release.id)  # type: ignore[arg-type]
    return release.id
