"""A batch's rows go back to the ledger as the ledger promises: rows claimed but never
attempted are free again at once, rows held back by a send limit from their own time, in
either case with no attempt counted (so neither backoff nor give-up moves) and only the
batch's own rows: another batch's, or a row whose lease was lost, are left alone. A
withdrawal cancels what is not sent yet, in flight too, and nothing of another release;
the sweep cancels the open rows of a subscriber who is no longer confirmed. On PostgreSQL
concurrent claims skip each other's rows rather than wait for them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, text

from distributor import actions
from distributor.core.config import Settings, load_settings
from distributor.core.db import get_engine, session_scope
from distributor.core.models import Delivery, Release, utcnow
from distributor.outbox import sweep
from distributor.outbox.ledger import (
    OutcomeWriter,
    claim,
    counts,
    plan,
    postpone,
    release_leases,
    renew_leases,
    still_leased,
)
from distributor.releases.lifecycle import mark_published
from tests.conftest import truncate_pg
from tests.helpers import TEST_SECRET_KEY, CountingQueue, lease_runs_out, make_release, published


def test_rows_given_back_unattempted_are_claimed_again_at_once_as_first_attempts(
    settings: Settings,
) -> None:
    """A batch that stops before reaching two of its rows gives back those two, and only
    them: the next claim takes them at once as first attempts, while the batch keeps its
    other row and another batch keeps its own."""
    release_id = published(settings, 4)
    engine = get_engine(settings)
    stopped = claim(engine, settings, release_id, 3)
    other = claim(engine, settings, release_id, 3)
    assert len(stopped.rows) == 3 and len(other.rows) == 1
    kept, *unattempted = (r.delivery_id for r in stopped.rows)
    theirs = other.rows[0].delivery_id
    with engine.connect() as conn:
        release_leases(conn, stopped.token, unattempted)
        release_leases(conn, stopped.token, [theirs])  # not this batch's: left alone
        release_leases(conn, stopped.token, [])
        assert still_leased(conn, stopped.token, [kept, *unattempted]) == {kept}
        assert still_leased(conn, other.token, [theirs]) == {theirs}
    again = claim(engine, settings, release_id, 10)
    assert sorted(r.delivery_id for r in again.rows) == sorted(unattempted)
    assert [(r.attempts, r.in_doubt) for r in again.rows] == [(1, False), (1, False)]


def test_rows_held_back_by_a_limit_wait_for_their_time_uncounted(settings: Settings) -> None:
    """A row held back by a domain limit goes back for the time given, no attempt counted;
    the batch's other rows stay leased to it, and a row whose lease went to another batch
    is not postponed."""
    release_id = published(settings, 3)
    engine = get_engine(settings)
    batch = claim(engine, settings, release_id, 2)
    other = claim(engine, settings, release_id, 2)
    held, kept = (r.delivery_id for r in batch.rows)
    theirs = other.rows[0].delivery_id
    later = utcnow() + timedelta(hours=1)
    with engine.connect() as conn:
        postpone(conn, batch.token, {held: later})
        postpone(conn, batch.token, {theirs: later})  # another batch's: left alone
        postpone(conn, batch.token, {})
        assert still_leased(conn, batch.token, [held, kept]) == {kept}
        assert still_leased(conn, other.token, [theirs]) == {theirs}
    with session_scope(settings) as session:
        rows = {r.id: r for r in session.scalars(select(Delivery))}
    assert (rows[held].attempts, rows[held].lease_until, rows[held].lease_token) == (0, None, None)
    assert rows[held].next_attempt_at == later
    assert rows[theirs].next_attempt_at < later and rows[theirs].attempts == 1
    assert claim(engine, settings, release_id, 10).rows == []  # nothing due before then


def test_a_withdrawal_cancels_the_release_s_open_rows_and_no_other(settings: Settings) -> None:
    """Withdrawing cancels every row of the release not sent yet — planned, deferred, and
    claimed by a running batch, whose lease check then drops it — with who withdrew it,
    and says how many (none for a release never planned); the rows already sent and
    another release's rows are left as they were."""
    release_id = published(settings, 4)
    other_id = make_release(settings, slug="another", title="Another release").id
    with session_scope(settings) as session:  # the same subscribers, another release
        plan(session, session.get_one(Release, other_id))
    engine = get_engine(settings)
    sent = claim(engine, settings, release_id, 1)
    with OutcomeWriter(engine, settings) as ledger:
        assert ledger.record(sent.token, sent.rows[0], "sent", 250, "ok")
    deferred = claim(engine, settings, release_id, 1)
    with OutcomeWriter(engine, settings) as ledger:
        assert ledger.record(deferred.token, deferred.rows[0], "deferred", 451, "busy")
    running = claim(engine, settings, release_id, 1)
    in_flight = running.rows[0].delivery_id
    assert actions.withdraw(settings, CountingQueue(), release_id, "Jane Doe").cancelled == 3  # type: ignore[arg-type]
    with engine.connect() as conn:
        assert still_leased(conn, running.token, [in_flight]) == set()
    with session_scope(settings) as session:
        rows = session.execute(
            select(Delivery.release_id, Delivery.status, Delivery.last_error,
                   Delivery.lease_token, Delivery.lease_until)
        ).all()  # fmt: skip
        assert counts(session, other_id)["pending"] == 4
    withdrawn = sorted((tuple(r[1:]) for r in rows if r.release_id == release_id), key=str)
    cancelled = ("cancelled", "release withdrawn by Jane Doe", None, None)
    assert withdrawn == [cancelled] * 3 + [("sent", "", None, None)]
    assert claim(engine, settings, release_id, 10).rows == []
    unplanned = make_release(settings, slug="draft", title="A draft").id  # no rows at all
    assert actions.withdraw(settings, CountingQueue(), unplanned, "Jane Doe").cancelled == 0  # type: ignore[arg-type]


def test_a_renewal_keeps_no_lease_the_batch_lost(settings: Settings) -> None:
    """A slow batch renews the leases it holds, never one another batch took over from it:
    if that batch's worker dies, its row is free again after the lease, not kept for as
    long as the first batch lives."""
    release_id = published(settings, 1)
    engine = get_engine(settings)
    slow = claim(engine, settings, release_id, 1)
    row = slow.rows[0].delivery_id
    lease_runs_out(settings)
    dead = claim(engine, settings, release_id, 1)  # took the row over, then died
    assert [r.delivery_id for r in dead.rows] == [row]
    with session_scope(settings) as session:
        taken_until = session.get_one(Delivery, row).lease_until
    with engine.connect() as conn:
        renew_leases(conn, settings, slow.token, [row])
    with session_scope(settings) as session:
        assert session.get_one(Delivery, row).lease_until == taken_until


def test_the_sweep_cancels_the_open_rows_of_a_subscriber_the_relay_refused(
    settings: Settings,
) -> None:
    """A 5xx refusal marks the subscriber bounced but leaves their rows of other releases
    open (never claimed again); the sweep cancels those, saying why, and nobody else's, so
    the release's progress does not show them pending for ever."""
    first = published(settings, 2)
    second = make_release(settings, slug="another", title="Another release").id
    with session_scope(settings) as session:
        mark_published(session, second)
        plan(session, session.get_one(Release, second))
    engine = get_engine(settings)
    batch = claim(engine, settings, first, 1)
    with OutcomeWriter(engine, settings) as ledger:
        assert ledger.record(batch.token, batch.rows[0], "failed", 550, "5.1.1 no such user")
    refused = batch.rows[0].subscriber_id
    assert sweep.sweep(settings, CountingQueue()).cancelled == 1  # type: ignore[arg-type]
    with session_scope(settings) as session:
        rows = session.execute(
            select(Delivery.release_id, Delivery.subscriber_id, Delivery.status,
                   Delivery.last_error)
        ).all()  # fmt: skip
    assert sorted(tuple(r) for r in rows if r.subscriber_id == refused) == [
        (first, refused, "failed", "5.1.1 no such user"),
        (second, refused, "cancelled", "subscriber no longer confirmed"),
    ]
    assert [r.status for r in rows if r.subscriber_id != refused] == ["pending", "pending"]
    assert sweep.sweep(settings, CountingQueue()).cancelled == 0  # type: ignore[arg-type]


def test_a_claim_passes_over_the_rows_another_claim_holds(pg_url: str, tmp_path: Path) -> None:
    """Two workers claiming at once on PostgreSQL neither wait for each other nor take the
    same row: a claim passes over the row another claimer has picked and not yet leased
    (it would otherwise wait for that claim to commit, then lease the row a second time)
    and takes the others at once."""
    s = load_settings(data_dir=tmp_path / "var", secret_key=TEST_SECRET_KEY, database_url=pg_url)
    truncate_pg(s)
    release_id = published(s, 3)
    engine = get_engine(s)
    pool = ThreadPoolExecutor(1)
    try:
        with engine.connect() as other, other.begin():  # another claim, mid-transaction
            picked = text("SELECT id FROM deliveries ORDER BY id LIMIT 1 FOR UPDATE")
            theirs = other.execute(picked).scalar_one()
            ours = pool.submit(claim, engine, s, release_id, 10).result(timeout=10)
    finally:
        pool.shutdown()  # after the other claim ended: a claim waiting for it returns
    with session_scope(s) as session:
        every = set(session.scalars(select(Delivery.id)))
    assert sorted(r.delivery_id for r in ours.rows) == sorted(every - {theirs})
