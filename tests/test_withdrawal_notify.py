"""`releases withdraw --notify` (and the API's ``notify``): a short withdrawal notice, with the
reason, to those who received the release and are still subscribed — once each, in their
language, even when a worker is killed mid-batch — and no email at all without it."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from distributor import actions
from distributor.audience.subscribers import unsubscribe
from distributor.core import audit
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.formats import written_date
from distributor.core.models import CorrectionNotice, NoticeKind, Release, Subscriber
from distributor.core.queue import QUEUE
from distributor.outbox import notices, sending
from distributor.outbox import sweep as outbox_sweep
from distributor.releases.lifecycle import create_release
from distributor.releases.source import parse_release
from distributor.web import create_app
from tests.corrections import (
    ENGLISH,
    add_readers,
    html_part,
    send_release,
    sent_then_corrected,
    sent_to,
    text_part,
)
from tests.helpers import CountingQueue, make_release, new_token, outbox, queued_tasks, release_text
from tests.processes import NO_BROKER, invoke_cli, settings_env, wait_until
from tests.smtp_server import Received, SMTPServer

DEFERRED, REFUSED = "dan@example.com", "fred@example.com"  # the original never reached them
LEFT_BEFORE = "eve@example.com"  # received it, then unsubscribed before the withdrawal
REASON_EN = "Figures were wrong; a corrected release follows."
REASON_FR = "Chiffres erronés ; un nouveau communiqué suit."
SUBJECT = "Withdrawn: Agency signs agreement"


def send_all_notices(s: Settings, release_id: int) -> None:
    """Run the notices' task until it finds nothing more to claim (as workers would)."""
    while sending.send_correction_notices(s, release_id).claimed:
        pass


def withdrawal_notices_to(s: Settings) -> Counter[str]:
    """How many withdrawal notices each address has in the Maildir outbox."""
    found = Counter[str]()
    for message in outbox(s):
        if str(message["Subject"]).startswith("Withdrawn: "):
            found[message["To"].addresses[0].addr_spec] += 1
    return found


def test_notify_tells_each_who_received_it_once_in_their_language_with_the_reason(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    s = settings.model_copy(update={"smtp_url": smtp_server.url})
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
    originals: dict[str, Received] = {m.rcpt: m for m in smtp_server.handler.messages}
    assert set(originals) == {*ENGLISH, "fra@example.com"} - {DEFERRED, REFUSED}
    with session_scope(s) as session:
        left = session.scalars(select(Subscriber).filter_by(email=LEFT_BEFORE)).one()
        unsubscribe(session, left.id)

    before = len(smtp_server.handler.messages)
    done = invoke_cli(s, "releases", "withdraw", str(english.id), "--notify", "--reason", REASON_EN)
    assert done.returncode == 0, done.stderr
    # Dan's delivery was waiting for a retry: cancelled, so he is told nothing either.
    assert "1 deliveries not sent were cancelled" in done.stdout
    assert "3 withdrawal notices planned" in done.stdout  # ann, bob, gus
    done = invoke_cli(s, "releases", "withdraw", str(french.id), "--notify", "--reason", REASON_FR)
    assert done.returncode == 0, done.stderr
    assert "1 withdrawal notice planned" in done.stdout  # fra
    assert sent_to(smtp_server, before) == []  # nothing leaves before a worker sends it
    with session_scope(s) as session:
        (event, *_) = audit.recent(session, action="withdraw")
        assert event.details["notify"] is True and event.details["notices"] == 1

    send_all_notices(s, english.id)
    send_all_notices(s, french.id)
    told = ["ann@example.com", "bob@example.com", "fra@example.com", "gus@example.com"]
    assert sent_to(smtp_server, before) == told  # once each; not dan, fred, eve nor zoe
    with session_scope(s) as session:
        withdrawn_at = session.get_one(Release, english.id).withdrawn_at
        assert withdrawn_at is not None
    day = withdrawn_at.astimezone(s.zone).date()
    for message in smtp_server.handler.messages[before:]:
        parsed, original = message.parsed(), originals[message.rcpt].parsed()
        text, html = text_part(parsed), html_part(parsed)
        if message.rcpt == "fra@example.com":
            assert parsed["Subject"] == "Retiré : L'Agence signe un accord"
            assert parsed["Content-Language"] == "fr"
            assert f"Motif\u00a0: {REASON_FR}" in text
            assert REASON_FR in html and "Motif" in html
            assert "https://news.example.org/releases/accord-agence" in text
        else:
            assert parsed["Subject"] == SUBJECT
            assert f"This release was withdrawn on {written_date(day, 'en')}." in text
            assert f"Reason: {REASON_EN}" in text
            assert REASON_EN in html and "Reason:" in html
            assert "https://news.example.org/releases/agency-signs-agreement" in text
        # Threaded under the release email it is about, with a Message-ID of its own.
        assert parsed["In-Reply-To"] == original["Message-ID"] != parsed["Message-ID"]
        assert message.mail_from == originals[message.rcpt].mail_from

    # Sent once: neither the task run again nor the sweep finds anything more to send.
    assert sending.send_correction_notices(s, english.id).claimed == 0
    sweep = CountingQueue()
    outbox_sweep.sweep(s, sweep)  # type: ignore[arg-type]
    assert sweep.tasks("send_correction_notices") == []
    assert len(smtp_server.handler.messages) == before + 4


def test_without_notify_no_notice_is_planned_or_sent(
    sqlite_settings: Settings, smtp_server: SMTPServer
) -> None:
    s = sqlite_settings.model_copy(update={"smtp_url": smtp_server.url})
    add_readers(s)
    release = make_release(s)
    send_release(s, release.id)
    before = len(smtp_server.handler.messages)
    done = invoke_cli(s, "releases", "withdraw", str(release.id), "--reason", REASON_EN)
    assert done.returncode == 0, done.stderr
    assert "withdrawn" in done.stdout and "notice" not in done.stdout
    assert sending.send_correction_notices(s, release.id).claimed == 0
    sweep = CountingQueue()
    outbox_sweep.sweep(s, sweep)  # type: ignore[arg-type]
    assert sweep.tasks("send_correction_notices") == []
    assert len(smtp_server.handler.messages) == before
    with session_scope(s) as session:
        assert session.scalar(select(func.count()).select_from(CorrectionNotice)) == 0
        (event,) = audit.recent(session, action="withdraw")
        assert "notify" not in event.details and "notices" not in event.details  # as before


# Runs the worker's own task once, as a worker's process would, for the release given.
_WORKER = "import sys; from worker.tasks import send_correction_notices as t; t(int(sys.argv[1]))"


def run_worker_task(env: dict[str, str], release_id: int) -> subprocess.CompletedProcess[str]:
    """The worker's ``send_correction_notices`` task run once in a process of its own."""
    return subprocess.run(
        [sys.executable, "-c", _WORKER, str(release_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_worker_killed_mid_batch_sends_each_withdrawal_notice_once(
    sqlite_settings: Settings,
) -> None:
    """The worst moment: SIGKILL right after the relay (the Maildir outbox) accepted the
    third notice, before the ledger recorded it. After its lease runs out, the sweep wakes
    a worker that recognises the accepted notice (reconcile) and sends the rest: each of the
    six recipients holds exactly one withdrawal notice."""
    s = sqlite_settings.model_copy(update={"lease_seconds": 5})
    add_readers(s)
    release = make_release(s)
    send_release(s, release.id)  # into the Maildir outbox
    queue = CountingQueue()
    done = actions.withdraw(s, queue, release.id, "Jane Doe", REASON_EN, notify=True)  # type: ignore[arg-type]
    assert done.notices == 6
    assert queue.tasks("send_correction_notices") == [(release.id,)]

    env = settings_env(s, DISTRIBUTOR_BROKER_URL=NO_BROKER, DISTRIBUTOR_FAILPOINTS="after-accept@3")
    killed = run_worker_task(env, release.id)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert sum(withdrawal_notices_to(s).values()) == 3  # the third accepted, not recorded
    with session_scope(s) as session:
        assert notices.counts(session, release.id)["sent"] == 2
    # Its rows stay leased to the dead worker until the lease runs out: nobody takes them.
    assert sending.send_correction_notices(s, release.id).claimed == 0

    def swept() -> bool:
        woken = CountingQueue()
        outbox_sweep.sweep(s, woken)  # type: ignore[arg-type]
        return woken.tasks("send_correction_notices") == [(release.id,)]

    wait_until(swept, 30, "the sweep to wake a worker for the dead worker's notices")
    again = run_worker_task(settings_env(s, DISTRIBUTOR_BROKER_URL=NO_BROKER), release.id)
    assert again.returncode == 0, again.stderr
    assert withdrawal_notices_to(s) == dict.fromkeys(ENGLISH, 1)
    with session_scope(s) as session:
        assert notices.counts(session, release.id)["sent"] == 6
    assert sending.send_correction_notices(s, release.id).claimed == 0
    for message in outbox(s):
        if str(message["Subject"]).startswith("Withdrawn: "):
            assert f"Reason: {REASON_EN}" in text_part(message)


def test_pending_correction_notices_are_cancelled_while_the_withdrawal_goes_out(
    sqlite_settings: Settings,
) -> None:
    s = sqlite_settings
    release = sent_then_corrected(s)  # six correction notices pending, into the Maildir
    done = actions.withdraw(s, CountingQueue(), release.id, "Jane Doe", notify=True)  # type: ignore[arg-type]
    assert done.notices == 6
    send_all_notices(s, release.id)
    # Each reader has the release and its withdrawal notice; no correction notice at all.
    assert Counter(str(m["Subject"]) for m in outbox(s)) == {
        "Agency signs agreement": 6,
        "Withdrawn: Agency signs agreement (corrected)": 6,
    }
    with session_scope(s) as session:
        rows = session.execute(select(CorrectionNotice.kind, CorrectionNotice.status)).all()
    assert Counter((str(kind), str(status)) for kind, status in rows) == {
        (NoticeKind.CORRECTION.value, "cancelled"): 6,
        (NoticeKind.WITHDRAWAL.value, "sent"): 6,
    }


@pytest.fixture
def api(sqlite_settings: Settings, redis_url: str) -> Iterator[tuple[Settings, TestClient, str]]:
    s = sqlite_settings.model_copy(update={"broker_url": redis_url})
    broker = redis.Redis.from_url(redis_url)
    broker.delete(QUEUE)
    token = new_token(s, "press-office", ["releases"])
    with TestClient(create_app(s)) as client:
        yield s, client, token
    broker.delete(QUEUE)
    broker.close()


def test_the_api_plans_notices_when_asked_and_says_how_many(
    api: tuple[Settings, TestClient, str],
) -> None:
    s, client, token = api
    auth = {"Authorization": f"Bearer {token}"}
    add_readers(s)
    release = make_release(s)
    send_release(s, release.id)  # six readers, into the Maildir outbox
    other = make_release(s, slug="second", title="A second release")
    send_release(s, other.id)
    broker = redis.Redis.from_url(str(s.broker_url))
    broker.delete(QUEUE)

    quiet = client.post(f"/api/releases/{other.id}/withdraw", json={}, headers=auth)
    assert quiet.status_code == 200, quiet.text
    assert quiet.json()["notices_planned"] == 0
    asked = {"reason": REASON_EN, "notify": True}
    answer = client.post(f"/api/releases/{release.id}/withdraw", json=asked, headers=auth)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["notices_planned"] == 6
    assert body["state"] == "withdrawn" and body["withdrawn_reason"] == REASON_EN
    assert body["withdrawn_by"] == "token:press-office" and body["counts"]["sent"] == 6
    woken = [args for task, args in queued_tasks(broker) if task.endswith("notices")]
    assert woken == [[release.id]]  # one batch of six, for the release told only

    send_all_notices(s, release.id)
    send_all_notices(s, other.id)
    assert withdrawal_notices_to(s) == dict.fromkeys(ENGLISH, 1)
    assert "Withdrawn: A second release" not in {str(m["Subject"]) for m in outbox(s)}
