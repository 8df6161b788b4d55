"""What each answer of the relay leaves in the ledger, as the press office reads it: who is
marked bounced (a 5xx about the recipient, 500 included; never the relay's own refusal),
the note a row keeps (the server's reason, none for a message sent, the reconciler's for
one found accepted), and which deferred rows come back in doubt. Notices keep their own ledger
(``RowRecorder``): each answer leaves the same there."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from distributor import actions
from distributor.audience.subscribers import unsubscribe
from distributor.core.config import Settings
from distributor.core.db import get_engine, session_scope
from distributor.core.models import CorrectionNotice, Delivery, Subscriber, utcnow
from distributor.outbox import notices
from distributor.outbox.ledger import RECONCILED, OutcomeWriter, claim
from distributor.releases.source import parse_release
from tests.corrections import corrected_text, send_all
from tests.helpers import CountingQueue, lease_runs_out, published


def _subscribers(settings: Settings) -> dict[str, str]:
    with session_scope(settings) as session:
        return {
            email: status
            for email, status in session.execute(select(Subscriber.email, Subscriber.status))
        }


def _row_by_recipient(settings: Settings) -> dict[str, tuple[str, str, int | None]]:
    """Each recipient's row: status, note, SMTP code."""
    with session_scope(settings) as session:
        query = select(Subscriber.email, Delivery.status, Delivery.last_error,
                       Delivery.smtp_code).join(Subscriber)  # fmt: skip
        return {email: (status, note, code) for email, status, note, code in session.execute(query)}


def test_only_a_refusal_of_the_recipient_marks_them_bounced(settings: Settings) -> None:
    """A 5xx refusal of the message (500 to 599) fails the row and marks its subscriber
    bounced; a refusal of the relay's own (530, deferred: it says nothing of the recipient)
    and a message never sent (code 0) mark no one."""
    release_id = published(settings, 4)
    engine = get_engine(settings)
    batch = claim(engine, settings, release_id, 4)
    answers = [
        ("failed", 500, "5.5.2 syntax error"),
        ("deferred", 530, "5.7.0 log in first"),
        ("failed", 0, "not sent: bad address"),
        ("failed", 554, "5.7.1 rejected"),
    ]
    with OutcomeWriter(engine, settings) as ledger:
        for row, (outcome, code, message) in zip(batch.rows, answers, strict=True):
            assert ledger.record(batch.token, row, outcome, code, message)  # type: ignore[arg-type]
    assert _subscribers(settings) == {
        "p00@example.com": "bounced",
        "p01@example.com": "confirmed",
        "p02@example.com": "confirmed",
        "p03@example.com": "bounced",
    }
    assert _row_by_recipient(settings) == {
        "p00@example.com": ("failed", "5.5.2 syntax error", 500),
        "p01@example.com": ("deferred", "5.7.0 log in first", 530),
        "p02@example.com": ("failed", "not sent: bad address", 0),
        "p03@example.com": ("failed", "5.7.1 rejected", 554),
    }


def test_a_sent_row_keeps_no_note_but_the_reconciler_s(settings: Settings) -> None:
    """A message the server accepted leaves no note on its row, whatever the server said;
    one found accepted in the relay's record says so; a refusal keeps the server's reason."""
    release_id = published(settings, 3)
    engine = get_engine(settings)
    batch = claim(engine, settings, release_id, 3)
    sent, reconciled, refused = batch.rows
    with OutcomeWriter(engine, settings) as ledger:
        assert ledger.record(batch.token, sent, "sent", 250, "2.0.0 Ok: queued as 4Xy")
        assert ledger.record(batch.token, reconciled, "sent", 250, RECONCILED)
        assert ledger.record(batch.token, refused, "failed", 550, "5.1.1 user unknown")
    assert _row_by_recipient(settings) == {
        "p00@example.com": ("sent", "", 250),
        "p01@example.com": ("sent", RECONCILED, 250),
        "p02@example.com": ("failed", "5.1.1 user unknown", 550),
    }


def test_only_a_deferral_with_no_answer_to_the_data_comes_back_in_doubt(
    settings: Settings,
) -> None:
    """A deferral whose message may have reached the server (no answer after the data went
    out) is claimed again in doubt, to be looked up in the relay's record before it is sent
    again; a plain deferral (a 4xx) is simply sent again."""
    s = settings.model_copy(update={"retry_base_seconds": 0.0, "retry_max_seconds": 0.0})
    release_id = published(s, 2)
    engine = get_engine(s)
    batch = claim(engine, s, release_id, 2)
    plain, cut = batch.rows
    with OutcomeWriter(engine, s) as ledger:
        assert ledger.record(batch.token, plain, "deferred", 451, "4.3.0 try later")
        assert ledger.record(batch.token, cut, "deferred", 0, "connection lost", uncertain=True)
    lease_runs_out(s)
    again = claim(engine, s, release_id, 2)
    assert {r.email: r.in_doubt for r in again.rows} == {
        "p00@example.com": False,
        "p01@example.com": True,
    }


def test_a_notice_s_answer_leaves_what_a_release_email_s_leaves(settings: Settings) -> None:
    """A notice's row says what its relay answered, as a release email's does: a sent one
    no note (but the reconciler's), a refusal its reason and code, and a 5xx refusal (500
    too) marks the subscriber bounced at that moment, never a deferral (the relay's own
    530) nor one who unsubscribed while it was on the wire; a deferral with no answer to
    the data comes back in doubt, a plain one does not; a notice no longer wanted is
    cancelled with no attempt counted; a row whose lease was lost is left as it is, its
    subscriber too."""
    s = settings.model_copy(update={"retry_base_seconds": 0.0, "retry_max_seconds": 0.0})
    release_id = published(s, 7)
    send_all(s, release_id)
    fix = parse_release(corrected_text(), "fix.md", s)
    actions.correct(s, CountingQueue(), release_id, fix, notify=True)  # type: ignore[arg-type]
    engine = get_engine(s)
    batch = notices.claim(engine, s, release_id, 7)
    answers = [
        ("sent", 250, "2.0.0 Ok: queued as 4Xy", False),
        ("sent", 250, RECONCILED, False),
        ("failed", 500, "5.5.2 syntax error", False),
        ("failed", 554, "5.7.1 rejected", False),  # unsubscribed meanwhile
        ("deferred", 530, "5.7.0 log in first", False),
        ("deferred", 0, "connection lost", True),
    ]
    *answered, unwanted = batch.rows
    assert len(answered) == len(answers)
    with session_scope(s) as session:
        unsubscribe(session, answered[3].subscriber_id)
    assert not notices.record(engine, s, "another batch", answered[0], "failed", 550, "late")
    before = utcnow()
    for row, (outcome, code, message, uncertain) in zip(answered, answers, strict=True):
        assert notices.record(engine, s, batch.token, row, outcome, code, message, uncertain)
    after = utcnow()
    notices.recorder(engine, s).drop(batch.token, unwanted)
    who = {row.notice_id: row.email for row in batch.rows}
    with session_scope(s) as session:
        rows = session.scalars(select(CorrectionNotice)).all()
        left = {who[r.id]: (r.status, r.last_error, r.smtp_code, r.attempts) for r in rows}
        sent_at = [r.sent_at for r in rows if r.status == "sent"]
        people = {p.email: p for p in session.scalars(select(Subscriber))}
    assert [left[row.email] for row in batch.rows] == [
        ("sent", "", 250, 1),
        ("sent", RECONCILED, 250, 1),
        ("failed", "5.5.2 syntax error", 500, 1),
        ("failed", "5.7.1 rejected", 554, 1),
        ("deferred", "5.7.0 log in first", 530, 1),
        ("deferred", "connection lost", None, 1),
        ("cancelled", notices.NOT_WANTED, None, 0),
    ]
    assert [people[row.email].status for row in batch.rows] == [
        "confirmed", "confirmed", "bounced", "unsubscribed", "confirmed", "confirmed",
        "confirmed",
    ]  # fmt: skip
    assert len(sent_at) == 2 and all(when and before <= when <= after for when in sent_at)
    bounced_at = people[answered[2].email].bounced_at
    assert bounced_at is not None and before <= bounced_at <= after
    lease_runs_out(s)
    again = notices.claim(engine, s, release_id, 7)
    assert {r.email: r.in_doubt for r in again.rows} == {
        answered[4].email: False,
        answered[5].email: True,
    }


def test_outcomes_are_committed_by_the_group_and_none_is_left_behind(settings: Settings) -> None:
    """Outcomes wait for their group (``DISTRIBUTOR_OUTCOME_GROUP``) and are committed
    together when it fills; what waits is committed by ``flush`` and at the batch's end,
    and a bounce is written at once. A press office reading the status sees a group late,
    never an outcome lost."""
    s = settings.model_copy(update={"outcome_group": 3})
    release_id = published(s, 7)
    engine = get_engine(s)
    batch = claim(engine, s, release_id, 7)
    rows = iter(batch.rows)

    def sent() -> int:
        return sum(status == "sent" for status, _, _ in _row_by_recipient(s).values())

    with OutcomeWriter(engine, s) as ledger:
        for expected in (0, 0, 3, 3):
            assert ledger.record(batch.token, next(rows), "sent", 250, "ok")
            assert sent() == expected
        assert ledger.flush() == []  # no lease was lost
        assert sent() == 4
        ledger.record(batch.token, next(rows), "failed", 550, "5.1.1 no such user")
        assert _subscribers(s)["p04@example.com"] == "bounced"  # at once, not with a group
        ledger.record(batch.token, next(rows), "sent", 250, "ok")
        assert sent() == 4
    assert sent() == 5  # the batch's end committed the last
    assert _row_by_recipient(s)["p04@example.com"] == ("failed", "5.1.1 no such user", 550)


def test_an_outcome_waits_for_its_group_no_longer_than_its_bound(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With answers coming slowly, a group is committed once its first outcome has waited
    ``OUTCOME_GROUP_SECONDS``: the status a press office watches lags by that, not by a
    whole group of a slow relay's answers."""
    from distributor.outbox import ledger as ledger_module

    release_id = published(settings, 3)
    engine = get_engine(settings)
    batch = claim(engine, settings, release_id, 3)
    clock = [1000.0]
    monkeypatch.setattr(ledger_module.time, "monotonic", lambda: clock[0])

    def sent() -> int:
        return sum(status == "sent" for status, _, _ in _row_by_recipient(settings).values())

    with OutcomeWriter(engine, settings) as writer:
        writer.record(batch.token, batch.rows[0], "sent", 250, "ok")
        clock[0] += ledger_module.OUTCOME_GROUP_SECONDS / 2
        writer.record(batch.token, batch.rows[1], "sent", 250, "ok")
        assert sent() == 0  # a group of 32 waits
        clock[0] += ledger_module.OUTCOME_GROUP_SECONDS
        writer.record(batch.token, batch.rows[2], "sent", 250, "ok")
        assert sent() == 3  # the first had waited past the bound: all three committed
