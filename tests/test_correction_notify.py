"""`releases correct --notify`: a short correction notice to those who received the release
and are still subscribed — once each, in their language — and no email at all without it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from distributor import actions
from distributor.audience.privacy import erase_person
from distributor.audience.subscribers import unsubscribe
from distributor.core import audit
from distributor.core.config import Settings
from distributor.core.db import get_engine, session_scope
from distributor.core.formats import written_date
from distributor.core.models import CorrectionNotice, Delivery, Release, Subscriber, utcnow
from distributor.core.tokens import Purpose, read_link
from distributor.outbox import notices, sending
from distributor.outbox import sweep as outbox_sweep
from distributor.releases.lifecycle import create_release
from distributor.releases.source import parse_release
from tests.corrections import (
    ENGLISH,
    add_readers,
    corrected_text,
    send_release,
    sent_then_corrected,
    sent_to,
    text_part,
)
from tests.helpers import CountingQueue, make_release, release_text
from tests.processes import invoke_cli
from tests.smtp_server import SMTPServer

DEFERRED, REFUSED = "dan@example.com", "fred@example.com"  # the original never reached them
LEFT_BEFORE, LEFT_AFTER = "eve@example.com", "gus@example.com"  # unsubscribed after it did


ZERO = {"pending": 0, "deferred": 0, "sent": 0, "failed": 0, "cancelled": 0}


def subscriber_id(session: Session, email: str) -> int:
    return session.scalars(select(Subscriber.id).filter_by(email=email)).one()


def test_notify_tells_each_who_received_it_once_in_their_language(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    s = settings.model_copy(update={"smtp_url": smtp_server.url, "batch_size": 3})
    add_readers(s)
    english = make_release(s)
    text = release_text(title="L'Agence signe un accord", lang="fr", slug="accord-agence")
    with session_scope(s) as session:
        french = create_release(session, s, parse_release(text, "fr.md", s))
    refusals = {DEFERRED: "451 4.2.0 try again later", REFUSED: "550 5.1.1 no such user"}
    smtp_server.handler.rcpt_reply = refusals.get  # type: ignore[assignment]
    send_release(s, english.id)
    send_release(s, french.id)
    smtp_server.handler.rcpt_reply = lambda _address: None
    originals = {m.rcpt: m for m in smtp_server.handler.messages}
    assert set(originals) == {*ENGLISH, "fra@example.com"} - {DEFERRED, REFUSED}
    with session_scope(s) as session:
        unsubscribe(session, subscriber_id(session, LEFT_BEFORE))

    queue = CountingQueue()
    before = len(smtp_server.handler.messages)
    fix = parse_release(corrected_text(), "fix.md", s)
    actions.correct(s, queue, english.id, fix, by="cli:jane", notify=True)  # type: ignore[arg-type]
    fix_fr = parse_release(
        corrected_text(title="L'Agence signe un accord (corrigé)", lang="fr", slug="accord-agence"),
        "fix-fr.md",
        s,
    )
    actions.correct(s, queue, french.id, fix_fr, notify=True)  # type: ignore[arg-type]
    assert sent_to(smtp_server, before) == []  # nothing leaves before a worker sends it
    # ann, bob, gus: one batch of 3; fra: one batch
    assert queue.tasks("send_correction_notices") == [(english.id,), (french.id,)]
    with session_scope(s) as session:
        unsubscribe(session, subscriber_id(session, LEFT_AFTER))
        (event, *_) = audit.recent(session, action="correct")
        assert event.details["notify"] is True

    reports = [sending.send_correction_notices(s, english.id) for _ in range(2)]
    reports += [sending.send_correction_notices(s, french.id) for _ in range(2)]
    notices_sent = smtp_server.handler.messages[before:]
    assert sent_to(smtp_server, before) == ["ann@example.com", "bob@example.com", "fra@example.com"]
    assert [r.outcomes["sent"] for r in reports] == [2, 0, 1, 0]

    with session_scope(s) as session:
        when = session.get_one(Release, english.id).corrected_at
        assert when is not None
        assert notices.counts(session, english.id)["sent"] == 2
        assert notices.counts(session, english.id)["cancelled"] == 1  # gus, who left since
        subscriber_ids = {sub.email: sub.id for sub in session.scalars(select(Subscriber))}
    day = when.astimezone(s.zone).date()
    for message in notices_sent:
        parsed, original = message.parsed(), originals[message.rcpt].parsed()
        text = text_part(message)
        if message.rcpt == "fra@example.com":
            assert parsed["Subject"] == "Rectificatif : L'Agence signe un accord (corrigé)"
            assert f"Ce communiqué a été corrigé le {written_date(day, 'fr')}." in text
            assert "https://news.example.org/releases/accord-agence" in text
            assert parsed["Content-Language"] == "fr"
        else:
            assert parsed["Subject"] == "Correction: Agency signs agreement (corrected)"
            assert f"This release was corrected on {written_date(day, 'en')}." in text
            assert "https://news.example.org/releases/agency-signs-agreement" in text
            assert "Jane Doe" in text  # the press contacts
        html = parsed.get_body(preferencelist=("html",))
        assert html is not None and "/releases/" in str(html.get_content())
        # The same list headers and envelope sender (the original's VERP address) as the
        # release email, threaded under it, with a Message-ID of its own.
        assert message.mail_from == originals[message.rcpt].mail_from
        assert message.mail_from.startswith("bounces+d")
        for field in ("List-Id", "List-Unsubscribe-Post"):
            assert parsed[field] == original[field], field
        token = str(parsed["List-Unsubscribe"]).strip("<>").rsplit("/unsubscribe/", 1)[1]
        assert read_link(s, Purpose.UNSUBSCRIBE, token).id == subscriber_ids[message.rcpt]
        assert parsed["In-Reply-To"] == original["Message-ID"] != parsed["Message-ID"]

    with session_scope(s) as session:  # planning again adds nothing
        assert notices.plan(session, session.get_one(Release, english.id)) == 0
    assert sending.send_correction_notices(s, english.id).claimed == 0
    assert len(smtp_server.handler.messages) == before + 3


def test_without_notify_no_email_is_planned_or_sent(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    s = settings.model_copy(update={"smtp_url": smtp_server.url})
    add_readers(s)
    release = make_release(s)
    send_release(s, release.id)
    before = len(smtp_server.handler.messages)
    queue = CountingQueue()
    fix = parse_release(corrected_text(), "fix.md", s)
    actions.correct(s, queue, release.id, fix)  # type: ignore[arg-type]
    assert [task for task, _ in queue.sent] == ["regenerate_site"]
    assert sending.send_correction_notices(s, release.id).claimed == 0
    sweep = CountingQueue()
    outbox_sweep.sweep(s, sweep)  # type: ignore[arg-type]
    assert sweep.tasks("send_correction_notices") == []
    assert len(smtp_server.handler.messages) == before
    with session_scope(s) as session:
        assert session.scalar(select(func.count()).select_from(CorrectionNotice)) == 0
        (event,) = audit.recent(session, action="correct")
        assert event.details["notify"] is False


def test_a_lost_wake_up_or_a_dead_worker_sends_each_notice_once(
    sqlite_settings: Settings, smtp_server: SMTPServer
) -> None:
    s = sqlite_settings.model_copy(update={"smtp_url": smtp_server.url})
    release = sent_then_corrected(s)
    before = len(smtp_server.handler.messages)
    # A worker claims the batch and dies before sending: its lease holds the rows…
    dead = notices.claim(get_engine(s), s, release.id, 100)
    assert len(dead.rows) == 6
    assert sending.send_correction_notices(s, release.id).claimed == 0
    # …until it runs out; then the sweep wakes a worker (the task itself was lost).
    with session_scope(s) as session:
        session.execute(
            update(CorrectionNotice).values(lease_until=utcnow() - timedelta(seconds=1))
        )
    sweep = CountingQueue()
    outbox_sweep.sweep(s, sweep)  # type: ignore[arg-type]
    assert sweep.tasks("send_correction_notices") == [(release.id,)]
    assert sending.send_correction_notices(s, release.id).outcomes["sent"] == 6
    # The dead worker's outcome, were it to come back, changes nothing: its lease is gone.
    assert not notices.record(get_engine(s), s, dead.token, dead.rows[0], "sent", 250, "ok")
    assert sending.send_correction_notices(s, release.id).claimed == 0
    again = CountingQueue()
    outbox_sweep.sweep(s, again)  # type: ignore[arg-type]
    assert again.tasks("send_correction_notices") == []
    assert len(smtp_server.handler.messages) == before + 6
    assert len(set(sent_to(smtp_server, before))) == 6


def test_later_corrections_erasures_and_withdrawals_cancel_unsent_notices(
    sqlite_settings: Settings,
) -> None:
    s = sqlite_settings
    add_readers(s)
    release = make_release(s)
    send_release(s, release.id)  # into the Maildir outbox
    for n in range(2):
        fix = parse_release(corrected_text(title=f"Fixed {n}"), f"fix{n}.md", s)
        actions.correct(s, CountingQueue(), release.id, fix, notify=True)  # type: ignore[arg-type]
    with session_scope(s) as session:
        statuses = session.execute(
            select(CorrectionNotice.corrected_at, CorrectionNotice.status)
            .order_by(CorrectionNotice.corrected_at)
        ).all()  # fmt: skip
        latest = session.get_one(Release, release.id).corrected_at
    assert [status for _, status in statuses] == ["cancelled"] * 6 + ["pending"] * 6
    assert {when for when, status in statuses if status == "pending"} == {latest}
    with session_scope(s) as session:  # an erasure takes the person's notices with it
        erase_person(session, s, "ann@example.com")
    with session_scope(s) as session:
        assert notices.counts(session, release.id) == {**ZERO, "pending": 5, "cancelled": 5}
    actions.withdraw(s, CountingQueue(), release.id, "Jane Doe")  # type: ignore[arg-type]
    with session_scope(s) as session:
        assert notices.counts(session, release.id) == {**ZERO, "cancelled": 10}


def test_the_cli_flag_plans_and_reports_the_notices(
    sqlite_settings: Settings, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    s = sqlite_settings
    add_readers(s)
    release = make_release(s)
    send_release(s, release.id)  # into the Maildir outbox
    fix = tmp_path / "fix.md"
    fix.write_text(corrected_text(), encoding="utf-8")
    done = invoke_cli(s, "releases", "correct", str(release.id), str(fix), "--notify")
    assert done.returncode == 0, done.stderr
    assert "corrected" in done.stdout and "6 correction notices planned" in done.stdout
    with session_scope(s) as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 6
        assert notices.counts(session, release.id)["pending"] == 6
    live = s.model_copy(update={"smtp_url": smtp_server.url})
    assert sending.send_correction_notices(live, release.id).outcomes["sent"] == 6
    assert len(smtp_server.handler.messages) == 6
    assert {str(m.parsed()["Subject"]) for m in smtp_server.handler.messages} == {
        "Correction: Agency signs agreement (corrected)"
    }


def test_notices_keep_the_domain_limits_and_a_slow_batch_keeps_its_lease(
    sqlite_settings: Settings, smtp_server: SMTPServer, redis_url: str
) -> None:
    """Notices go out like release emails: a domain over its rate is held back (not
    attempted, sent by a later batch), and a batch slower than its lease is not taken over
    by another worker (which would send its notices twice)."""
    s = sqlite_settings.model_copy(update={"smtp_url": smtp_server.url, "lease_seconds": 5})
    release = sent_then_corrected(s)
    before = len(smtp_server.handler.messages)

    limited = s.model_copy(update={"broker_url": redis_url, "domain_rate": 1.0})
    first = sending.send_correction_notices(limited, release.id)
    assert first.claimed == 6 and first.outcomes["sent"] == 1 and first.held == 5
    assert sending.send_correction_notices(s, release.id).claimed == 0  # held: not due yet
    with session_scope(s) as session:  # the hold runs out
        session.execute(update(CorrectionNotice).values(next_attempt_at=utcnow()))

    def slow(_address: str) -> None:
        time.sleep(1.4)  # five notices: 7 s, longer than the 5 s lease

    smtp_server.handler.rcpt_reply = slow  # type: ignore[assignment]
    taken: list[int] = []

    def competitor() -> None:  # another worker, after the first lease would have expired
        time.sleep(6.0)
        taken.append(len(notices.claim(get_engine(s), s, release.id, 100).rows))

    thread = threading.Thread(target=competitor)
    thread.start()
    second = sending.send_correction_notices(s, release.id)
    thread.join()
    assert taken == [0] and second.outcomes["sent"] == 5
    assert len(smtp_server.handler.messages) == before + 6
    assert len(set(sent_to(smtp_server, before))) == 6


def test_someone_who_leaves_mid_batch_gets_no_notice_and_theirs_is_cancelled_at_once(
    sqlite_settings: Settings, smtp_server: SMTPServer
) -> None:
    """A reader who unsubscribes while the notices are going out is not sent theirs, and the
    batch records it as cancelled then and there (not left pending for a later claim)."""
    s = sqlite_settings.model_copy(update={"smtp_url": smtp_server.url})
    release = sent_then_corrected(s)
    before = len(smtp_server.handler.messages)
    leaver = "gus@example.com"  # the last of ENGLISH to be sent one

    def reply(_address: str) -> None:
        if len(smtp_server.handler.messages) == before + 1:  # after the first notice
            with session_scope(s) as session:
                unsubscribe(session, subscriber_id(session, leaver))
            time.sleep(0.1)  # past the batch's 50 ms view of its own rows

    smtp_server.handler.rcpt_reply = reply  # type: ignore[assignment]
    report = sending.send_correction_notices(s, release.id)
    assert report.skipped == 1 and leaver not in sent_to(smtp_server, before)
    with session_scope(s) as session:
        theirs = session.scalars(
            select(CorrectionNotice.status).where(
                CorrectionNotice.subscriber_id == subscriber_id(session, leaver)
            )
        ).one()
    assert theirs == "cancelled"
