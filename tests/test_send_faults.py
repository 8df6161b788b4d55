"""Two faults of bench/faults.py, as tests: a batch slower than its lease keeps its rows
(nobody takes it over and sends them twice), and the database dropping out mid-batch
loses no outcome of a message the server accepted (it is written once the database is
back, not sent again, with the time of the server's answer), for release emails and
correction notices alike; how patiently it is written again, and when it is given up."""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import time
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import select

from distributor.core.config import Settings, load_settings
from distributor.core.db import dispose_engines, get_engine, session_scope
from distributor.core.models import CorrectionNotice, Delivery, Subscriber, utcnow
from distributor.outbox import ledger as ledgers
from distributor.outbox import notices, sending
from distributor.outbox.ledger import OUTCOME_PATIENCE, OutcomeWriter, claim, counts, patiently
from tests.conftest import truncate_pg
from tests.corrections import sent_then_corrected
from tests.helpers import TEST_SECRET_KEY, FakeClock, published
from tests.smtp_server import SMTPServer

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
from _proxy import TcpProxy


def test_a_batch_slower_than_its_lease_is_not_taken_over(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    s = settings.model_copy(update={"smtp_url": smtp_server.url, "lease_seconds": 5})
    release_id = published(s, 10)

    def slow(_address: str) -> None:
        time.sleep(0.8)  # ten recipients: 8 s, longer than the 5 s lease

    smtp_server.handler.rcpt_reply = slow  # type: ignore[assignment]
    taken: list[int] = []

    def competitor() -> None:  # another worker, after the first lease would have expired
        time.sleep(6.5)
        taken.append(len(claim(get_engine(s), s, release_id, 100).rows))

    thread = threading.Thread(target=competitor)
    thread.start()
    report = sending.send_batch(s, release_id)
    thread.join()
    assert taken == [0]
    assert report.outcomes["sent"] == 10 and report.lost_leases == 0
    received = smtp_server.handler.by_rcpt()
    assert len(received) == 10 and all(len(copies) == 1 for copies in received.values())


def behind_a_proxy(direct: Settings) -> tuple[TcpProxy, Settings]:
    """A proxy in front of ``direct``'s PostgreSQL, and the settings that go through it."""
    upstream = urlsplit(direct.database_url)
    proxy = TcpProxy((upstream.hostname or "127.0.0.1", upstream.port or 5432)).start()
    netloc = upstream.netloc.rsplit(":", 1)[0] + f":{proxy.port}"
    return proxy, direct.model_copy(
        update={"database_url": urlunsplit(upstream._replace(netloc=netloc))}
    )


def test_the_database_dropping_out_mid_batch_loses_no_outcome(
    pg_url: str, tmp_path: Path, smtp_server: SMTPServer
) -> None:
    direct = load_settings(data_dir=tmp_path / "var", database_url=pg_url,
                           smtp_url=smtp_server.url, secret_key=TEST_SECRET_KEY)  # fmt: skip
    truncate_pg(direct)
    release_id = published(direct, 20)
    proxy, through = behind_a_proxy(direct)
    seen: list[str] = []

    def outage(address: str) -> None:
        seen.append(address)
        if len(seen) == 5:  # the database goes away while messages are in flight
            proxy.cut()
            threading.Timer(2.0, proxy.restore).start()

    smtp_server.handler.rcpt_reply = outage  # type: ignore[assignment]
    try:
        first = sending.send_batch(through, release_id)
        time.sleep(0.5)
        while sending.send_batch(through, release_id).claimed:  # what it left, if anything
            pass
    finally:
        proxy.stop()
        dispose_engines()
    received = smtp_server.handler.by_rcpt()
    assert first.outcomes["sent"] >= 5
    assert all(len(copies) == 1 for copies in received.values()), received
    with session_scope(direct) as session:
        ledger = counts(session, release_id)
    # Every accepted message is recorded as sent; the rest are still due (not lost) or sent.
    assert ledger["sent"] == len(received)
    assert ledger["sent"] + ledger["pending"] == 20


@pytest.mark.parametrize("ledger", ["deliveries", "correction_notices"])
def test_an_outcome_written_after_an_outage_keeps_the_time_of_the_answer(
    pg_url: str, tmp_path: Path, smtp_server: SMTPServer, caplog: pytest.LogCaptureFixture,
    ledger: str,
) -> None:  # fmt: skip
    direct = load_settings(data_dir=tmp_path / "var", database_url=pg_url,
                           smtp_url=smtp_server.url, secret_key=TEST_SECRET_KEY)  # fmt: skip
    truncate_pg(direct)
    proxy, through = behind_a_proxy(direct)
    engine = get_engine(through)
    with contextlib.ExitStack() as stack:
        stack.callback(dispose_engines)
        stack.callback(proxy.stop)
        if ledger == "deliveries":
            batch = claim(engine, through, published(direct, 1), 10)
            writer = stack.enter_context(OutcomeWriter(engine, through))
            record = functools.partial(writer.record, batch.token, batch.rows[0])
            table, row_id = Delivery, batch.rows[0].delivery_id
        else:
            notice_batch = notices.claim(engine, through, sent_then_corrected(direct).id, 100)
            row = notice_batch.rows[0]
            record = functools.partial(notices.record, engine, through, notice_batch.token, row)
            table, row_id = CorrectionNotice, row.notice_id
        answered = utcnow()
        proxy.cut()  # the server has answered; the database is gone before the write
        threading.Timer(1.5, proxy.restore).start()
        assert record("sent", 250, "ok", answered_at=answered)
    what = "delivery" if ledger == "deliveries" else "correction notice"
    warning = f"the database is unreachable; keeping the outcome of {what} {row_id} to write it"
    assert f"{warning} again in " in caplog.text
    with session_scope(direct) as session:
        stored = session.get(table, row_id)
        assert stored is not None
        assert (stored.status, stored.sent_at) == ("sent", answered)  # not the write's time


def test_an_unsubscribe_while_the_message_is_on_the_wire_is_recorded_as_sent(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    from distributor.audience.subscribers import unsubscribe

    s = settings.model_copy(update={"smtp_url": smtp_server.url})
    release_id = published(s, 3)

    def leaves(address: str) -> None:  # they unsubscribe as the server takes their copy
        if address == "p01@example.com":
            with session_scope(s) as session:
                sub = session.scalars(select(Subscriber).where(Subscriber.email == address)).one()
                unsubscribe(session, sub.id)

    smtp_server.handler.rcpt_reply = leaves  # type: ignore[assignment]
    sending.send_batch(s, release_id)
    assert sorted(smtp_server.handler.by_rcpt()) == [f"p0{i}@example.com" for i in range(3)]
    with session_scope(s) as session:
        query = select(Subscriber.email, Delivery.status).join(
            Subscriber, Subscriber.id == Delivery.subscriber_id
        )
        statuses = {email: status for email, status in session.execute(query)}
    assert statuses == {f"p0{i}@example.com": "sent" for i in range(3)}  # as the server has it


def test_a_row_taken_over_while_on_the_wire_keeps_its_new_owner_and_is_counted(
    settings: Settings, smtp_server: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A row another worker took over while its message was on the wire (this worker had
    stalled past its lease) is the new owner's: this batch's outcome is not written over
    it, the report counts it, and the log names it (bench/faults.py counts those lines)."""
    s = settings.model_copy(update={"smtp_url": smtp_server.url})
    release_id = published(s, 4)
    with session_scope(s) as session:
        query = select(Subscriber.email, Delivery.id).join(
            Subscriber, Subscriber.id == Delivery.subscriber_id
        )
        delivery_of = {email: row_id for email, row_id in session.execute(query)}
    taken = ["p01@example.com", "p02@example.com"]

    def taken_over(address: str) -> None:  # as the server takes their copy
        if address in taken:
            with session_scope(s) as session:
                row = session.get_one(Delivery, delivery_of[address])
                row.lease_token = "another-worker"

    smtp_server.handler.rcpt_reply = taken_over  # type: ignore[assignment]
    report = sending.send_batch(s, release_id)
    assert report.outcomes["sent"] == 4 and report.lost_leases == 2
    with session_scope(s) as session:
        query = select(Subscriber.email, Delivery.status, Delivery.lease_token).join(
            Subscriber, Subscriber.id == Delivery.subscriber_id
        )
        rows = {email: (status, token) for email, status, token in session.execute(query)}
    assert rows == {
        "p00@example.com": ("sent", None),
        "p01@example.com": ("pending", "another-worker"),
        "p02@example.com": ("pending", "another-worker"),
        "p03@example.com": ("sent", None),
    }
    lost = [m for m in caplog.messages if m.startswith("lease lost")]
    assert lost == [
        f"lease lost on delivery {delivery_of[a]} before its outcome was recorded" for a in taken
    ]


def test_an_outcome_is_written_again_for_as_long_as_its_patience_then_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """While the database cannot be reached, an outcome the server gave is written again
    after 0.2 s, then after each wait doubled up to 1 s, each time on a new connection and
    saying so in the log (the first line of the error); for ``OUTCOME_PATIENCE``, or the
    lease if longer, after which the error is raised. (The test's clock: no time passes.)"""
    clock = FakeClock()
    monkeypatch.setattr(ledgers, "time", SimpleNamespace(monotonic=clock.monotonic,
                                                         sleep=clock.sleep))  # fmt: skip
    settings = load_settings(data_dir=tmp_path / "var", secret_key=TEST_SECRET_KEY)
    tries: list[float] = []
    reconnects: list[float] = []

    def down_for(failures: float, error: str) -> Callable[[], str]:
        def write() -> str:
            tries.append(clock.now)
            if len(tries) <= failures:
                raise ConnectionError(error)
            return "written"

        return write

    def keep(write: Callable[[], str], lease: float) -> str:
        tries.clear()
        s = settings.model_copy(update={"lease_seconds": lease})
        return patiently(write, s, "delivery 7", (ConnectionError,),
                         lambda: reconnects.append(clock.now))  # fmt: skip

    lost = "server closed the connection unexpectedly\n\tThis probably means the server died"
    assert keep(down_for(6, lost), 30) == "written"
    waits = [later - earlier for earlier, later in pairwise(tries)]
    assert waits == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert reconnects == tries[1:]  # a new connection before each try again
    keeping = "the database is unreachable; keeping the outcome of delivery 7 to write it again"
    assert caplog.messages == [
        f"{keeping} in {wait:.1f} s: server closed the connection unexpectedly"
        for wait in (0.2, 0.4, 0.8, 1.0, 1.0, 1.0)
    ]
    caplog.clear()
    assert keep(down_for(1, ""), 30) == "written"  # an error with no words: logged as is
    assert caplog.messages == [f"{keeping} in 0.2 s: "]
    for lease in (30, OUTCOME_PATIENCE + 300):
        with pytest.raises(ConnectionError):
            keep(down_for(float("inf"), lost), lease)
        patience = max(lease, OUTCOME_PATIENCE)
        # Given up when the next try would come after the patience: not before, not after.
        assert patience - 1.0 < tries[-1] - tries[0] <= patience
