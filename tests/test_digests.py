"""Daily and weekly digests: an injectable clock drives two weeks of releases, hour by hour;
each subscriber who chose a digest gets exactly one per period that had something for them
(none for an empty one), with the right releases in their language, newest first, a
correction marked, a withdrawn release left out — and nothing at once; an immediate
subscriber gets each release at once and no digest. A sweep that missed the hour catches up
once; switching mode mid-period loses nothing and repeats nothing."""

from __future__ import annotations

import csv
import io
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.audience.subscribers import change_digest, export_csv, import_csv
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import ImportRejected
from distributor.core.models import Digest, DigestPeriod, Release, ReleaseState, Subscriber
from distributor.core.queue import TaskQueue
from distributor.core.urls import preferences_url
from distributor.outbox import digests, sending
from distributor.outbox.sweep import sweep
from distributor.releases.lifecycle import mark_published
from distributor.web import create_app
from tests.corrections import send_all, text_part
from tests.helpers import (
    CountingQueue,
    add_subscribers,
    add_topics,
    csrf_of,
    empty_queue_and_limits,
    make_release,
    new_token,
    outbox,
    shown,
)
from tests.processes import killed_mid_send
from tests.smtp_server import SMTPServer

ANN, BOB, ZOE, IVY = "ann@example.com", "bob@example.com", "zoe@example.com", "ivy@example.com"
PARIS = "Europe/Paris"


def paris(day: int, hour: int, minute: int = 0) -> datetime:
    """A time of December 2026 (or 30 November, day 0) in Paris (UTC+01:00), in UTC."""
    base = datetime(2026, 11, 30, tzinfo=UTC) + timedelta(days=day)
    return base.replace(hour=hour, minute=minute) - timedelta(hours=1)


def set_modes(settings: Settings, modes: dict[str, str]) -> None:
    with session_scope(settings) as session:
        for sub in session.scalars(select(Subscriber).where(Subscriber.email.in_(list(modes)))):
            change_digest(sub, modes[sub.email])


def publish_at(settings: Settings, slug: str, when: datetime, **kw: str) -> int:
    """Publish a release at ``when`` (the clock's time), and send it to those who receive
    releases at once, as the workers would."""
    release = make_release(settings, slug=slug, title=kw.pop("title", slug), **kw)
    with session_scope(settings) as session:
        mark_published(session, release.id, now=when)
    sending.distribute_release(settings, CountingQueue(), release.id)  # type: ignore[arg-type]
    send_all(settings, release.id)
    return release.id


def run_digests(settings: Settings, now: datetime) -> dict[int, int]:
    """What beat does at ``now`` for digests, then the workers: every batch sent."""
    queue = CountingQueue()
    planned = digests.plan_due(settings, queue, now)  # type: ignore[arg-type]
    for (period_id,) in queue.tasks(digests.TASK):
        sending.send_digests(settings, int(period_id))  # type: ignore[call-overload]
    return planned


def digest_titles(message: EmailMessage) -> list[str]:
    """The release titles a digest lists, in order ("CORRECTED: " kept)."""
    text = text_part(message)
    found = []
    for line in text.splitlines():
        if (line.startswith("r") and line[1:2].isdigit()) or line.startswith("CORRECTED"):
            found.append(line.strip())
    return found


@pytest.fixture
def office(settings: Settings) -> Settings:
    """Digests at 08:00 Paris; Ann (English, climate, daily), Bob (English, climate and
    energy, weekly), Zoé (French, climate, daily) and Ivy (English, climate, at once)."""
    s = settings.model_copy(update={"digest_hour": 8, "timezone": PARIS})
    add_topics(s, "climate", "energy")
    add_subscribers(
        s,
        [
            (ANN, "Ann", "en", "climate"),
            (BOB, "Bob", "en", "climate;energy"),
            (ZOE, "Zoé", "fr", "climate"),
            (IVY, "Ivy", "en", "climate"),
        ],
    )
    set_modes(s, {ANN: "daily", BOB: "weekly", ZOE: "daily"})
    return s


def test_two_weeks_of_releases_make_one_digest_per_non_empty_period(office: Settings) -> None:
    s = office
    events = {
        paris(0, 10): lambda t: publish_at(s, "r1-climate", t),
        paris(0, 15): lambda t: publish_at(s, "r2-energy", t, topics="energy"),
        paris(1, 7): lambda t: publish_at(s, "r4-climate", t),
        paris(1, 9): lambda t: publish_at(s, "r3-climat", t, lang="fr"),
        paris(3, 12): lambda t: publish_at(s, "r5-withdrawn", t),
        paris(3, 18): lambda t: withdraw(s, "r5-withdrawn"),
        paris(4, 9): lambda t: publish_at(s, "r6-climate", t),
        paris(7, 9): lambda t: correct_at(s, "r6-climate", t),
        paris(9, 10): lambda t: publish_at(s, "r7-climate", t),
    }
    sent: dict[str, list[tuple[datetime, list[str]]]] = defaultdict(list)
    seen = 0
    clock = paris(0, 0)
    while clock <= paris(15, 0):  # every hour for two weeks and a day
        for when in sorted(events):
            if clock - timedelta(hours=1) < when <= clock:
                events[when](when)
        run_digests(s, clock)
        if len(list((s.outbox_dir / "new").glob("*"))) == seen:
            clock += timedelta(hours=1)
            continue
        for message in outbox(s)[seen:]:
            if "digest" in str(message["Message-ID"]):
                sent[str(message["To"]).split("<")[-1].rstrip(">")].append(
                    (clock, digest_titles(message))
                )
        seen = len(outbox(s))
        clock += timedelta(hours=1)

    assert sent[ANN] == [
        (paris(1, 8), ["r4-climate", "r1-climate"]),
        (paris(5, 8), ["r6-climate"]),
        (paris(8, 8), ["CORRECTED: r6-climate (corrected)"]),
        (paris(10, 8), ["r7-climate"]),
    ]
    assert sent[BOB] == [
        (paris(7, 8), ["r6-climate", "r4-climate", "r2-energy", "r1-climate"]),
        (paris(14, 8), ["r7-climate", "CORRECTED: r6-climate (corrected)"]),
    ]
    assert sent[ZOE] == [(paris(2, 8), ["r3-climat"])]
    assert IVY not in sent
    # Those on a digest got nothing at once; Ivy got each English climate release at once.
    at_once = [m for m in outbox(s) if "release-" in str(m["Message-ID"])]
    assert {str(m["To"]) for m in at_once} == {f"Ivy <{IVY}>"}
    assert len(at_once) == 5  # r1, r4, r5 (before its withdrawal), r6 and r7


def withdraw(settings: Settings, slug: str) -> None:
    with session_scope(settings) as session:
        release = session.scalars(select(Release).where(Release.slug == slug)).one()
        release.state = ReleaseState.WITHDRAWN


def correct_at(settings: Settings, slug: str, when: datetime) -> None:
    with session_scope(settings) as session:
        release = session.scalars(select(Release).where(Release.slug == slug)).one()
        release.title = f"{slug} (corrected)"
        release.corrected_at = when


def test_a_sweep_that_missed_the_hour_catches_up_once(office: Settings) -> None:
    s = office
    publish_at(s, "r1-climate", paris(0, 10))
    run_digests(s, paris(1, 8))  # Tuesday's digest: r1
    publish_at(s, "r2-climate", paris(1, 10))
    publish_at(s, "r3-climate", paris(2, 10))
    # Beat down from Tuesday 09:00 to Thursday noon: one digest, of everything since Tuesday.
    queue = CountingQueue()
    report = sweep(s, queue, now=paris(3, 12))  # type: ignore[arg-type]
    assert len(report.digests) == 1
    for (period_id,) in queue.tasks(digests.TASK):
        sending.send_digests(s, int(period_id))  # type: ignore[call-overload]
    mine = [m for m in outbox(s, ANN) if "digest" in str(m["Message-ID"])]
    assert [digest_titles(m) for m in mine] == [["r1-climate"], ["r3-climate", "r2-climate"]]
    # Another sweep, the same hour or the next: nothing more.
    assert sweep(s, CountingQueue(), now=paris(3, 12, 30)).digests == {}  # type: ignore[arg-type]
    assert run_digests(s, paris(3, 13)) == {}
    assert len([m for m in outbox(s, ANN) if "digest" in str(m["Message-ID"])]) == 2
    with session_scope(s) as session:
        periods = session.scalars(
            select(DigestPeriod).where(DigestPeriod.mode == "daily").order_by(DigestPeriod.id)
        ).all()
        assert [(p.starts_at, p.ends_at) for p in periods] == [
            (paris(0, 8), paris(1, 8)),
            (paris(1, 8), paris(3, 8)),
        ]


def test_switching_mode_mid_period_loses_nothing_and_repeats_nothing(office: Settings) -> None:
    """Ann leaves her daily digest for immediate, Ivy joins the daily digest, Bob goes from
    weekly to daily, each mid-period: every English climate release reaches each of them
    exactly once — at once or in a digest (README: "Digests")."""
    s = office
    publish_at(s, "r1-climate", paris(0, 10))  # Monday
    run_digests(s, paris(0, 11))  # nothing is due: the week's and the day's hours are ahead
    set_modes(s, {ANN: "immediate", IVY: "daily"})  # Monday 12:00
    publish_at(s, "r2-climate", paris(0, 14))
    run_digests(s, paris(1, 8))  # Tuesday's daily digests
    set_modes(s, {BOB: "daily"})  # Tuesday 09:00
    publish_at(s, "r3-climate", paris(1, 14))
    for day in range(2, 8):
        run_digests(s, paris(day, 8))  # to the next Monday: Bob's last weekly digest

    def got(email: str) -> list[str]:
        found = []
        for message in outbox(s, email):
            if "digest" in str(message["Message-ID"]):
                found += digest_titles(message)
            else:
                found.append(str(message["Subject"]))
        return found

    # Ann: r1 in her (last) daily digest, r2 and r3 at once.
    assert got(ANN) == ["r2-climate", "r1-climate", "r3-climate"]
    # Ivy: r1 at once; r2 and r3 in her daily digests.
    assert got(IVY) == ["r1-climate", "r2-climate", "r3-climate"]
    # Bob: r3 in Wednesday's daily digest; r1 and r2, owed by his week, in its digest.
    assert got(BOB) == ["r3-climate", "r2-climate", "r1-climate"]


def test_preferences_page_offers_the_digest_and_says_saved_only_on_a_change(
    office: Settings, redis_url: str
) -> None:
    s = office.model_copy(update={"broker_url": redis_url, "rate_limit_requests": 1000})
    empty_queue_and_limits(redis_url)
    with session_scope(s) as session:
        sub = session.scalars(select(Subscriber).where(Subscriber.email == IVY)).one()
        path = preferences_url(s, sub.id, sub.link_nonce).removeprefix(s.site_url)
    with TestClient(create_app(s), base_url="https://testserver") as client:
        page = client.get(path)
        assert 'name="digest" value="immediate" checked' in page.text
        assert "A daily digest, at 08:00, of the releases of the past day" in shown(page.text)
        form = {"language": "en", "topics": ["climate"], "csrf": csrf_of(page.text)}
        weekly = client.post(path, data={**form, "digest": "weekly"})
        assert "Your preferences are saved." in shown(weekly.text)
        assert 'name="digest" value="weekly" checked' in weekly.text
        again = client.post(path, data={**form, "digest": "weekly", "csrf": csrf_of(weekly.text)})
        assert "Nothing changed" in shown(again.text)
        wrong = client.post(path, data={**form, "digest": "hourly", "csrf": csrf_of(again.text)})
        assert wrong.status_code == 422
        assert "Choose how you receive our releases" in shown(wrong.text)
        french = client.post(
            path, data={**form, "language": "fr", "digest": "daily", "csrf": csrf_of(wrong.text)}
        )
        assert "Un récapitulatif quotidien, à 08:00" in shown(french.text)
    with session_scope(s) as session:
        sub = session.scalars(select(Subscriber).where(Subscriber.email == IVY)).one()
        assert (sub.digest, sub.language, sub.digest_left) == ("daily", "fr", "weekly")


def test_import_export_and_api_carry_the_mode(office: Settings, redis_url: str) -> None:
    s = office.model_copy(update={"broker_url": redis_url})
    rows = "email,name,language,topics,digest\nnew@example.com,New,en,climate,Weekly\n"
    rows += f"{ANN},Ann,en,climate,\n"  # empty: left as it was (daily)
    with session_scope(s) as session:
        import_csv(session, s, io.StringIO(rows), "digest.csv", confirmed=True, consent_source="t")
    with session_scope(s) as session:
        bad = io.StringIO("email,name,language,topics,digest\nx@example.com,X,en,climate,hourly\n")
        with pytest.raises(ImportRejected) as refused:
            import_csv(session, s, bad, "bad.csv", confirmed=True, consent_source="t")
        assert "bad.csv" in str(refused.value) and "digest: 'hourly'" in str(refused.value)
        out = io.StringIO()
        export_csv(session, out)
    exported = {r["email"]: r["digest"] for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert exported == {
        ANN: "daily", BOB: "weekly", ZOE: "daily", IVY: "immediate", "new@example.com": "weekly"
    }  # fmt: skip
    token = new_token(s, "desk", ["subscribers"])
    with TestClient(create_app(s)) as client:
        auth = {"Authorization": f"Bearer {token}"}
        body = {"email": "api@example.com", "language": "en", "topics": ["climate"]}
        made = client.post(
            "/api/subscribers",
            headers=auth,
            json={**body, "confirmed": True, "consent_source": "call", "digest": "daily"},
        )
        assert made.status_code == 201 and made.json()["digest"] == "daily"
        pending = client.post("/api/subscribers", headers=auth, json={**body, "digest": "daily"})
        assert pending.status_code == 422 and "digest" in pending.text
        listed = client.get("/api/subscribers", headers=auth).json()["items"]
        assert {i["email"]: i["digest"] for i in listed}[BOB] == "weekly"


def test_a_worker_killed_mid_digest_send_loses_none(
    sqlite_settings: Settings, smtp_server: SMTPServer, redis_url: str, tmp_path: Path
) -> None:
    """Exactly once under a kill, as every send of the outbox: the worker is killed (SIGKILL,
    parent and children) while a period's digests go out; another finishes them; each
    subscriber has their digest, at most a group of outcomes twice per process killed."""
    live = sqlite_settings.model_copy(
        update={"broker_url": redis_url, "smtp_url": smtp_server.url,
                "lease_seconds": 5, "batch_size": 50}
    )  # fmt: skip
    add_topics(live, "climate")
    people = [f"d{i:03}@example.com" for i in range(300)]
    add_subscribers(live, [(e, "", "en", "climate") for e in people])
    set_modes(live, dict.fromkeys(people, "daily"))
    now = datetime.now(UTC)
    publish_at(live, "r1-climate", digests.period_end(live, "daily", now) - timedelta(hours=1))

    def slow(_address: str) -> None:
        time.sleep(0.01)  # ~100 messages/s per connection
        return None

    def slow_down() -> None:
        smtp_server.handler.rcpt_reply = slow  # type: ignore[assignment]

    planned: dict[int, int] = {}

    def start() -> None:
        planned.update(digests.plan_due(live, TaskQueue(live), now))

    def finished() -> bool:
        with session_scope(live) as session:
            left = [digests.counts(session, period) for period, count in planned.items()]
        return all(n["pending"] + n["deferred"] == 0 for n in left)

    received = lambda: len(smtp_server.handler.messages)  # noqa: E731
    killed_mid_send(live, received, slow_down, tmp_path, start, finished, "the digests")
    [period_id] = [period for period, count in planned.items() if count]
    assert planned[period_id] == len(people)
    got = smtp_server.handler.by_rcpt()
    assert set(got) == set(people)  # lost: none
    # At most one group of outcomes (DISTRIBUTOR_OUTCOME_GROUP) per process killed.
    assert len([r for r, copies in got.items() if len(copies) > 1]) <= 2 * live.outcome_group
    with session_scope(live) as session:
        assert digests.counts(session, period_id)["sent"] == len(people)


def test_a_digest_whose_subscriber_left_before_the_claim_is_cancelled_not_sent(
    office: Settings,
) -> None:
    """The claim's own check (outbox/digests.claim), for a departure its cancellation
    missed: a subscriber whose status changed under the planned row."""
    s = office
    set_modes(s, {IVY: "daily"})
    publish_at(s, "r1-climate", paris(0, 10))
    queue = CountingQueue()
    digests.plan_due(s, queue, paris(1, 8))  # type: ignore[arg-type]
    with session_scope(s) as session:
        ann = session.scalars(select(Subscriber).where(Subscriber.email == ANN)).one()
        ann.status = "unsubscribed"  # as a write racing the claim would leave it
    for (period_id,) in queue.tasks(digests.TASK):
        sending.send_digests(s, int(period_id))  # type: ignore[call-overload]
    assert [m for m in outbox(s, ANN) if "digest" in str(m["Message-ID"])] == []
    assert len([m for m in outbox(s, IVY) if "digest" in str(m["Message-ID"])]) == 1
    with session_scope(s) as session:
        rows = session.execute(
            select(Digest.status, Digest.last_error)
            .join(Subscriber, Subscriber.id == Digest.subscriber_id)
            .where(Subscriber.email == ANN)
        ).all()
    assert [(str(status), error) for status, error in rows] == [
        ("cancelled", digests.NOT_CONFIRMED)
    ]
