"""A release sent, then corrected: its readers, the corrected text, and the send done in this
process (tests of correction notices, their reconciliation, faults and SMTPUTF8)."""

from __future__ import annotations

from email.message import EmailMessage

from distributor import actions
from distributor.core.config import Settings
from distributor.core.models import Release
from distributor.outbox import sending
from distributor.releases.source import parse_release
from tests.helpers import CountingQueue, add_subscribers, add_topics, make_release, release_text
from tests.smtp_server import Received, SMTPServer

ENGLISH = ["ann@example.com", "bob@example.com", "dan@example.com", "eve@example.com",
           "fred@example.com", "gus@example.com"]  # fmt: skip


def corrected_text(**kwargs: str) -> str:
    """The test release's text (``release_text``) with its second paragraph fixed and
    "(corrected)" in its title, unless ``title`` says otherwise."""
    title = kwargs.pop("title", "Agency signs agreement (corrected)")
    return release_text(title=title, **kwargs).replace("A second paragraph", "A fixed paragraph")


def send_all(settings: Settings, release_id: int) -> None:
    """Send every due row of the release as workers do: ``send_batch`` until none is left."""
    while sending.send_batch(settings, release_id).claimed:
        pass


def send_release(settings: Settings, release_id: int) -> None:
    """Publish the release and send all of it, in this process."""
    queue = CountingQueue()
    actions.publish(settings, queue, release_id)  # type: ignore[arg-type]
    sending.distribute_release(settings, queue, release_id)  # type: ignore[arg-type]
    while sending.send_batch(settings, release_id).claimed:
        pass


def add_readers(settings: Settings) -> None:
    """Topics climate and energy; ENGLISH on climate, Fra (French, climate) and Zoe
    (English, energy), all confirmed."""
    add_topics(settings, "climate", "energy")
    rows = [(email, email.split("@")[0].title(), "en", "climate") for email in ENGLISH]
    rows += [
        ("fra@example.com", "Fra", "fr", "climate"),
        ("zoe@example.com", "Zoe", "en", "energy"),
    ]
    add_subscribers(settings, rows)


def sent_then_corrected(s: Settings) -> Release:
    """The release sent to the people of ``add_readers``, then corrected with notify: its
    notices planned."""
    add_readers(s)
    release = make_release(s)
    send_release(s, release.id)
    fix = parse_release(corrected_text(), "fix.md", s)
    actions.correct(s, CountingQueue(), release.id, fix, notify=True)  # type: ignore[arg-type]
    return release


def sent_to(server: SMTPServer, since: int = 0) -> list[str]:
    """The recipients of the messages ``server`` received after the first ``since``."""
    return sorted(m.rcpt for m in server.handler.messages[since:])


def text_part(message: Received | EmailMessage) -> str:
    """The plain-text part of a message received (or already parsed)."""
    parsed = message.parsed() if isinstance(message, Received) else message
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def html_part(message: EmailMessage) -> str:
    """The HTML part of a parsed message."""
    body = message.get_body(preferencelist=("html",))
    assert body is not None
    return str(body.get_content())
