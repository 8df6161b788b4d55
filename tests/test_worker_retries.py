"""Retries and recovery as a user sees them, through a real `distributor worker` subprocess
(running the sweep itself, as `--with-beat` does on one host) on the real Redis and a real
SMTP server that answers 451: the backoff between attempts doubles up to its cap; a row
deferred again and again gives up and says why, for a release email and for a correction
notice; and the sweep alone sends a release whose wake-up was lost.

Settings are made small (retries in fractions of a second, a sweep every second) so that
each test takes seconds. SQLite only: the same ledger code runs on both databases, with an
injected clock, in tests/test_delivery.py; a worker per database would double the wall
time."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import select

from distributor import actions
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import CorrectionNotice, Delivery, Release, Subscriber
from distributor.core.queue import TaskQueue
from distributor.releases.source import parse_release
from tests.helpers import add_subscribers, add_topics, make_release, release_text
from tests.processes import NO_BROKER, invoke_cli, running_worker, wait_until
from tests.redis_db import empty
from tests.smtp_server import SMTPServer

ANN, BOB = "ann@example.com", "bob@example.com"
GREYLISTED = "451 4.7.1 Greylisted, try again later"


@pytest.fixture
def live(sqlite_settings: Settings, smtp_server: SMTPServer, redis_url: str) -> Settings:
    """SQLite, the test Redis (emptied by the worker's start) and the test SMTP server; a
    sweep every second (the least beat allows). Ann and Bob follow climate, in English."""
    s = sqlite_settings.model_copy(
        update={"broker_url": redis_url, "smtp_url": smtp_server.url, "sweep_seconds": 1.0}
    )
    add_topics(s, "climate")
    add_subscribers(s, [(ANN, "Ann", "en", "climate"), (BOB, "Bob", "en", "climate")])
    return s


class Attempts:
    """The server's side: when each RCPT of a recipient arrived (``time.time()``, the clock
    the ledger's times come from), answering those in ``refused`` with a 451."""

    def __init__(self, server: SMTPServer, *refused: str) -> None:
        self.refused = set(refused)
        self.seen: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        server.handler.rcpt_reply = self.reply

    def reply(self, address: str) -> str | None:
        with self._lock:
            self.seen.setdefault(address, []).append(time.time())
            return GREYLISTED if address in self.refused else None

    def refuse(self, address: str) -> None:
        """Answer ``address`` with a 451 from now on."""
        with self._lock:
            self.refused.add(address)

    def count(self, address: str) -> int:
        with self._lock:
            return len(self.seen.get(address, []))


def delivery_of(settings: Settings, email: str) -> Delivery:
    """The person's ledger row (the test's one release)."""
    with session_scope(settings) as session:
        row = session.scalars(
            select(Delivery).join(Subscriber).where(Subscriber.email == email)
        ).one()
        session.expunge(row)
        return row


def notice_of(settings: Settings, email: str) -> CorrectionNotice:
    """The person's correction notice (the test's one correction)."""
    with session_scope(settings) as session:
        row = session.scalars(
            select(CorrectionNotice).join(Subscriber).where(Subscriber.email == email)
        ).one()
        session.expunge(row)
        return row


def settled(
    settings: Settings, ledger: type[Delivery] | type[CorrectionNotice], email: str
) -> bool:
    """Whether the person's row in ``ledger`` exists and is no longer open."""
    with session_scope(settings) as session:
        status = session.scalar(
            select(ledger.status).join(Subscriber).where(Subscriber.email == email)
        )
    return status is not None and status not in ("pending", "deferred")


def planned(settings: Settings, release_id: int) -> bool:
    with session_scope(settings) as session:
        return session.get_one(Release, release_id).planned_at is not None


@pytest.fixture
def queue(live: Settings) -> Iterator[TaskQueue]:
    q = TaskQueue(live)
    yield q
    q.close()


@pytest.fixture
def waking(live: Settings) -> Iterator[list[int]]:
    """Append a release id to wake a worker for it every 50 ms while the queue is empty: the
    sweep's retry wake-up, at a period beat cannot have (a sweep runs at most once a
    second), so that the gaps between attempts are the ledger's backoff and not the sweep's
    period."""
    releases: list[int] = []
    stop = threading.Event()
    queue = TaskQueue(live)  # its own: the test's queue is used from the test's thread

    def wake() -> None:
        while not stop.wait(0.05):
            if releases and queue.waiting() == 0:
                queue.send("send_batch", releases[0])

    thread = threading.Thread(target=wake, daemon=True)
    thread.start()
    yield releases
    stop.set()
    thread.join()
    queue.close()


def test_deferred_again_and_again_backs_off_doubling_to_the_cap_then_gives_up(
    live: Settings, smtp_server: SMTPServer, queue: TaskQueue, waking: list[int], tmp_path: Path
) -> None:
    """Bob's server answers 451 at every attempt. Between two of his attempts as the server
    sees them there are at least base·2^(n-1) seconds after the n-th (0.25, 0.5, then the
    cap, 1 s), and never more than the cap plus 1.5 s of wake-up slack. Once a retry would
    come later than ``give_up_after`` (7 s) after planning, his row ends ``failed`` and the
    report says "gave up" with the server's reason. Ann's copy goes out once; her notice of
    a correction, greylisted likewise and retried by the worker's own sweep, gives up the
    same way."""
    base, cap, slack = 0.25, 1.0, 1.5
    s = live.model_copy(
        update={"retry_base_seconds": base, "retry_max_seconds": cap,
                "give_up_after_seconds": 7.0}
    )  # fmt: skip
    attempts = Attempts(smtp_server, BOB)
    release = make_release(s)
    with running_worker(s, tmp_path / "logs", with_beat=True):
        actions.publish(s, queue, release.id)
        waking.append(release.id)
        wait_until(lambda: settled(s, Delivery, ANN), 30, "Ann's copy")
        # Ann's server greylists her from now on; the release is corrected, with a notice.
        attempts.refuse(ANN)
        draft = parse_release(release_text(title="Agency signs agreement (corrected)"),
                              "corrected.md", s)  # fmt: skip
        actions.correct(s, queue, release.id, draft, notify=True)
        wait_until(lambda: settled(s, Delivery, BOB), 30, "Bob's delivery to be given up")
        wait_until(lambda: settled(s, CorrectionNotice, ANN), 30, "Ann's notice to give up")

    times = attempts.seen[BOB]
    gaps = [later - earlier for earlier, later in pairwise(times)]
    least = [min(base * 2 ** (n - 1), cap) for n in range(1, len(gaps) + 1)]
    shown = [round(gap, 3) for gap in gaps]
    assert len(gaps) >= 5, shown  # up to the cap, and at it twice
    assert all(gap >= wait for gap, wait in zip(gaps, least, strict=True)), (shown, least)
    assert max(gaps) <= cap + slack, shown

    reason = f"recipient refused: {GREYLISTED[4:]}"
    bob = delivery_of(s, BOB)
    assert (bob.status, bob.last_error) == ("failed", f"gave up: {reason}")
    assert bob.attempts == len(times)  # every attempt reached the server
    assert delivery_of(s, ANN).status == "sent"
    notice = notice_of(s, ANN)
    assert (notice.status, notice.last_error) == ("failed", f"gave up: {reason}")
    assert notice.attempts >= 2 and attempts.count(ANN) == 1 + notice.attempts

    report = invoke_cli(s, "releases", "report", str(release.id), "--csv")
    assert report.returncode == 0, report.stderr
    lines = {line["email"]: line for line in csv.DictReader(io.StringIO(report.stdout))}
    assert lines[BOB]["status"] == "failed" and lines[BOB]["smtp_code"] == "451"
    assert lines[BOB]["last_error"] == f"gave up: {reason}"
    assert lines[ANN]["status"] == "sent"


def test_a_release_whose_wake_up_was_lost_is_sent_by_the_sweep_alone(
    live: Settings, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    """Published while Redis was out of reach (the wake-up never enqueued), then Redis is
    emptied (a restart): the worker with its sweep plans the release and sends it, each
    person once, with no test calling distribute_release."""
    attempts = Attempts(smtp_server)
    release = make_release(live)
    published = invoke_cli(live, "releases", "publish", str(release.id),
                        DISTRIBUTOR_BROKER_URL=NO_BROKER)  # fmt: skip
    assert published.returncode == 0, published.stderr
    assert "no worker could be woken" in published.stdout
    assert live.broker_url
    empty(live.broker_url)  # a Redis restart; the run keeps its claim on the database
    assert not planned(live, release.id)
    with running_worker(live, tmp_path / "logs", with_beat=True):
        wait_until(lambda: settled(live, Delivery, ANN) and settled(live, Delivery, BOB), 30,
                   "the release to be sent to Ann and Bob")  # fmt: skip
    assert smtp_server.handler.by_rcpt().keys() == {ANN, BOB}
    assert attempts.count(ANN) == attempts.count(BOB) == 1
