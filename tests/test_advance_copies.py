"""Embargoed advance copies: a release scheduled with an advance time goes, at that time,
to every accredited confirmed subscriber of its language and topics and to nobody else,
through the release's own ledger; its subject and banner say when the embargo lifts (in the
press office's zone, with the UTC offset, in their language), and its only link to the
release is the recipient's own page, which opens for them alone while accredited; nothing
is public before the lift; at the lift everyone else gets the public email and the advance
recipients no second copy."""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor import actions
from distributor.audience.accreditation import Decision, ask, decide, set_lift_notice
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import ReleaseInputError
from distributor.core.formats import embargo_time
from distributor.core.models import Delivery, Release, Subscriber, SubscriberStatus
from distributor.core.queue import TaskQueue
from distributor.core.tokens import Purpose, read_link
from distributor.core.urls import (
    FEED_FORMATS,
    advance_url,
    feed_relpath,
    listing_path,
    release_url,
)
from distributor.outbox import sending
from distributor.outbox.advance import distribute_advance
from distributor.outbox.ledger import counts
from distributor.outbox.sweep import sweep
from distributor.releases.lifecycle import publish_due
from distributor.reporting.status import release_status
from distributor.site import builder
from distributor.web import create_app
from tests.clients import logged_in_as
from tests.corrections import html_part, send_all, text_part
from tests.helpers import (
    CountingQueue,
    add_subscribers,
    add_topics,
    csrf_of,
    make_release,
    new_token,
    outbox,
)
from tests.processes import invoke_cli, killed_mid_send, running_worker, wait_until
from tests.smtp_server import SMTPServer

ANN, BOB, CAROLE, DORA, EVE = (
    "ann@example.com",  # accredited, English, climate: gets the advance copy
    "bob@example.com",  # not accredited, English, climate: waits for the lift
    "carole@example.com",  # accredited, French, climate: the release is English
    "dora@example.com",  # accredited, English, energy: another topic
    "eve@example.com",  # accredited, English, climate, but unsubscribed
)


def ids(settings: Settings) -> dict[str, int]:
    with session_scope(settings) as session:
        return {
            email: id_ for email, id_ in session.execute(select(Subscriber.email, Subscriber.id))
        }


def accredit(settings: Settings, *emails: str) -> None:
    people = ids(settings)
    with session_scope(settings) as session:
        for email in emails:
            ask(session, people[email], "The Daily", "Science editor")
            decide(session, people[email], Decision.GRANT, "cli:test")


@pytest.fixture
def newsroom(settings: Settings) -> Settings:
    """Five subscribers (above), four of them accredited; Eve unsubscribed since."""
    add_topics(settings, "climate", "energy")
    add_subscribers(
        settings,
        [(ANN, "Ann", "en", "climate"), (BOB, "Bob", "en", "climate"),
         (CAROLE, "Carole", "fr", "climate"), (DORA, "Dora", "en", "energy"),
         (EVE, "Eve", "en", "climate")],
    )  # fmt: skip
    accredit(settings, ANN, CAROLE, DORA, EVE)
    with session_scope(settings) as session:
        eve = session.scalars(select(Subscriber).where(Subscriber.email == EVE)).one()
        eve.status = SubscriberStatus.UNSUBSCRIBED
    return settings


def text_lines(message: EmailMessage) -> str:
    return text_part(message).replace("\r\n", "\n")


def scheduled_with_advance(settings: Settings, lift: datetime) -> tuple[int, CountingQueue]:
    release = make_release(settings)
    queue = CountingQueue()
    actions.publish(settings, queue, release.id, lift, by="cli:test", advance=datetime.now(UTC))  # type: ignore[arg-type]
    return release.id, queue


def test_the_accredited_get_it_first_marked_and_everyone_else_at_the_lift_once(
    newsroom: Settings,
) -> None:
    settings = newsroom
    lift = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    release_id, queue = scheduled_with_advance(settings, lift)
    assert queue.tasks("distribute_advance") == [(release_id,)]
    assert queue.tasks("distribute_release") == []  # nothing public before its time
    assert distribute_advance(settings, queue, release_id) == 1  # type: ignore[arg-type]
    assert distribute_advance(settings, queue, release_id) == 0  # planned once
    send_all(settings, release_id)

    [copy] = outbox(settings)  # Ann's, and nobody else's
    assert copy["To"].addresses[0].addr_spec == ANN
    when = embargo_time(lift, "en", settings.zone)
    assert re.fullmatch(r"\w+day \d+ \w+ \d{4}, \d\d:\d\d CES?T \(UTC\+0[12]:00\)", when), when
    assert str(copy["Subject"]) == f"EMBARGOED until {when}: Agency signs agreement"
    text = text_lines(copy)
    assert text.startswith(f"EMBARGOED until {when}\n")
    assert "not to be published, broadcast or posted before then" in " ".join(text.split())
    people = ids(settings)
    links = set(re.findall(r'href="([^"]+)"', html_part(copy)))
    [own] = [link for link in links if "/advance/" in link]  # "read online": hers alone
    token, about = own.removeprefix(f"{settings.site_url}/advance/").split("/")
    assert read_link(settings, Purpose.ADVANCE, token).id == people[ANN]
    assert about == str(release_id)
    assert not any("agency-signs-agreement" in link for link in links)  # no public page yet
    with session_scope(settings) as session:
        assert release_status(session, release_id).advance_counts == {
            "pending": 0, "deferred": 0, "sent": 1, "failed": 0, "cancelled": 0,
        }  # fmt: skip

    # One second before the lift nothing is published; at the lift everyone else gets it.
    with session_scope(settings) as session:
        assert publish_due(session, lift - timedelta(seconds=1)) == []
        assert publish_due(session, lift) == [release_id]
    sending.distribute_release(settings, queue, release_id)  # type: ignore[arg-type]
    send_all(settings, release_id)
    received = sorted(m["To"].addresses[0].addr_spec for m in outbox(settings))
    assert received == [ANN, BOB]  # Ann once, before; Bob once, now
    [public] = outbox(settings, BOB)
    assert str(public["Subject"]) == "Agency signs agreement"
    assert "EMBARGOED" not in text_lines(public)
    with session_scope(settings) as session:
        rows = session.execute(select(Delivery.subscriber_id, Delivery.advance))
        assert sorted(rows) == sorted([(people[ANN], True), (people[BOB], False)])
        assert counts(session, release_id)["sent"] == 2


def test_the_personal_page_opens_for_its_recipient_only_while_accredited(
    newsroom: Settings,
) -> None:
    settings = newsroom
    lift = datetime.now(UTC) + timedelta(hours=2)
    release_id, queue = scheduled_with_advance(settings, lift)
    distribute_advance(settings, queue, release_id)  # type: ignore[arg-type]
    send_all(settings, release_id)
    builder.regenerate_site(settings)
    people = ids(settings)
    with session_scope(settings) as session:
        found = session.execute(select(Subscriber.id, Subscriber.link_nonce))
        nonces = {id_: nonce for id_, nonce in found}
    mine = advance_url(settings, release_id, people[ANN], nonces[people[ANN]])
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        page = client.get(mine.removeprefix(settings.site_url), follow_redirects=False)
        assert page.status_code == 200
        said = html.unescape(page.text)
        assert f"EMBARGOED until {embargo_time(lift, 'en', settings.zone)}" in said
        assert "Agency signs agreement" in said
        assert page.headers["cache-control"] == "private, no-store"
        assert "noindex" in page.headers["x-robots-tag"]
        assert 'rel="alternate"' not in page.text and 'rel="canonical"' not in page.text
        # Nothing public: the newsroom, the feeds and the release's own address.
        public = ["/", listing_path("en"), listing_path("en", "climate")]
        public += ["/" + feed_relpath("en", fmt, topic) for fmt in FEED_FORMATS
                   for topic in (None, "climate")]  # fmt: skip
        for path in public:
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert "Agency signs agreement" not in answer.text, path
        own_page = release_url(settings, "agency-signs-agreement")
        assert client.get(own_page.removeprefix(settings.site_url)).status_code == 404
        # Bob's own link (he was sent no copy), an altered link, Dora's (sent none: topic).
        bob = advance_url(settings, release_id, people[BOB], nonces[people[BOB]])
        assert client.get(bob.removeprefix(settings.site_url)).status_code == 403
        assert client.get(mine.removeprefix(settings.site_url) + "x").status_code == 400
        forged = mine.removeprefix(settings.site_url).replace("/advance/", "/advance/x")
        assert client.get(forged).status_code == 400
        # Revoked: the link stops opening.
        actions.decide_accreditation(settings, people[ANN], Decision.REVOKE, "cli:test")
        assert client.get(mine.removeprefix(settings.site_url)).status_code == 403
        actions.decide_accreditation(settings, people[ANN], Decision.GRANT, "cli:test")
        # Published: the link leads to the public page.
        with session_scope(settings) as session:
            publish_due(session, lift)
        moved = client.get(mine.removeprefix(settings.site_url), follow_redirects=False)
        assert moved.status_code == 303
        assert moved.headers["location"] == own_page


def test_advance_copies_need_a_later_publication_and_a_time_before_it(newsroom: Settings) -> None:
    settings = newsroom
    now = datetime.now(UTC)
    release = make_release(settings)
    queue = CountingQueue()
    with pytest.raises(ReleaseInputError, match="this one goes out now") as refused:
        actions.publish(settings, queue, release.id, advance=now)  # type: ignore[arg-type]
    assert refused.value.field == "advance"
    with pytest.raises(ReleaseInputError, match="is not before it goes public"):
        actions.publish(  # type: ignore[arg-type]
            settings, queue, release.id, now + timedelta(hours=1), advance=now + timedelta(hours=2)
        )
    with pytest.raises(ReleaseInputError, match="in the past"):
        actions.publish(  # type: ignore[arg-type]
            settings, queue, release.id, now + timedelta(hours=1), advance=now - timedelta(hours=1)
        )
    with session_scope(settings) as session:
        assert session.get_one(Release, release.id).state == "draft"  # nothing changed
    # Later advance copies: the sweep sends them at their time, not before.
    actions.publish(  # type: ignore[arg-type]
        settings, queue, release.id, now + timedelta(hours=3), advance=now + timedelta(hours=1)
    )
    assert queue.tasks("distribute_advance") == []
    assert sweep(settings, queue, now + timedelta(minutes=59)).advance == []  # type: ignore[arg-type]
    assert sweep(settings, queue, now + timedelta(hours=1)).advance == [release.id]  # type: ignore[arg-type]
    # Moving the publication before advance copies already sent is allowed (the embargo
    # they were told of changes: they are to be told, issue 15); not before unsent ones.
    other = make_release(settings, slug="other", title="Other")
    actions.publish(  # type: ignore[arg-type]
        settings, queue, other.id, now + timedelta(hours=3), advance=now + timedelta(hours=2)
    )
    with pytest.raises(ReleaseInputError, match="would no longer go before it is public"):
        actions.publish(settings, queue, other.id, now + timedelta(hours=1))  # type: ignore[arg-type]


def test_unscheduled_before_the_lift_a_copy_not_sent_becomes_the_public_one(
    newsroom: Settings,
) -> None:
    """Unscheduling cancels the advance copies not sent yet; when the release is published
    later, the public send sends them as it sends everyone (a cancelled copy never tried is
    not a copy received)."""
    settings = newsroom
    lift = datetime.now(UTC) + timedelta(hours=2)
    release_id, queue = scheduled_with_advance(settings, lift)
    distribute_advance(settings, queue, release_id)  # type: ignore[arg-type]
    actions.unschedule(settings, release_id, "cli:test")  # before any was sent
    with session_scope(settings) as session:
        assert counts(session, release_id, advance=True)["cancelled"] == 1
    assert outbox(settings) == []
    actions.publish(settings, queue, release_id)  # type: ignore[arg-type]
    sending.distribute_release(settings, queue, release_id)  # type: ignore[arg-type]
    send_all(settings, release_id)
    assert sorted(m["To"].addresses[0].addr_spec for m in outbox(settings)) == [ANN, BOB]
    assert all("EMBARGOED" not in str(m["Subject"]) for m in outbox(settings))


def test_the_command_line_schedules_advance_copies_and_the_status_shows_them(
    newsroom: Settings,
) -> None:
    settings = newsroom
    release = make_release(settings)
    lift = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    scheduled = invoke_cli(
        settings, "releases", "publish", str(release.id), "--at", lift.isoformat(),
        "--advance", "now",
    )  # fmt: skip
    assert scheduled.returncode == 0, scheduled.stderr
    assert "advance copies to accredited journalists:" in scheduled.stdout
    distribute_advance(settings, CountingQueue(), release.id)  # type: ignore[arg-type]
    send_all(settings, release.id)
    status = invoke_cli(settings, "releases", "status", str(release.id))
    assert status.returncode == 0, status.stderr
    assert re.search(
        r"advance copies \(\S+ \S+Z, before the embargo\): 1 sent, 0 to send", status.stdout
    ), status.stdout
    wrong = invoke_cli(settings, "releases", "publish", str(release.id), "--advance", "soon")
    assert wrong.returncode == 1 and "--advance 'soon': not an ISO 8601 date-time" in wrong.stderr


def test_through_the_worker_and_beat_the_copy_goes_at_once_and_the_rest_at_the_lift(
    newsroom: Settings, smtp_server: SMTPServer, redis_url: str, tmp_path: Path
) -> None:
    """The real `distributor worker --with-beat`: the advance copy leaves as soon as the
    release is scheduled, the public send when beat publishes it at its time, and Ann's
    advance copy is her only one."""
    live = newsroom.model_copy(
        update={"broker_url": redis_url, "smtp_url": smtp_server.url, "sweep_seconds": 1.0}
    )
    release = make_release(live)
    lift = datetime.now(UTC) + timedelta(seconds=12)  # room for a slow machine to start
    queue = TaskQueue(live)
    with running_worker(live, tmp_path / "logs", with_beat=True):
        actions.publish(live, queue, release.id, lift, by="cli:test", advance=datetime.now(UTC))
        wait_until(lambda: ANN in smtp_server.handler.by_rcpt(), 30, "Ann's advance copy")
        assert datetime.now(UTC) < lift, "the machine was too slow to see the order"
        assert set(smtp_server.handler.by_rcpt()) == {ANN}
        wait_until(lambda: BOB in smtp_server.handler.by_rcpt(), 60, "the public send to Bob")

        def settled() -> bool:
            with session_scope(live) as session:
                return release_status(session, release.id).open == 0

        wait_until(settled, 30, "nothing left to send")
    queue.close()
    received = smtp_server.handler.by_rcpt()
    assert {rcpt: len(copies) for rcpt, copies in received.items()} == {ANN: 1, BOB: 1}
    first = message_from_bytes(received[ANN][0].data, policy=policy.default)
    assert str(first["Subject"]).startswith("EMBARGOED until ")


def test_the_api_schedules_advance_copies_and_reports_them(
    newsroom: Settings, redis_url: str
) -> None:
    settings = newsroom.model_copy(update={"broker_url": redis_url})
    release = make_release(settings)
    token = new_token(settings, "cms", ["releases"])
    lift = (datetime.now(UTC) + timedelta(hours=5)).replace(microsecond=0)
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(settings)) as client:
        late = client.post(
            f"/api/releases/{release.id}/publish",
            json={"at": lift.isoformat(), "advance": (lift + timedelta(hours=1)).isoformat()},
            headers=auth,
        )
        assert late.status_code == 422 and late.json()["field"] == "advance"
        answer = client.post(
            f"/api/releases/{release.id}/publish",
            json={"at": lift.isoformat(), "advance": "now"},
            headers=auth,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["state"] == "scheduled" and body["advance_at"] is not None
        distribute_advance(settings, CountingQueue(), release.id)  # type: ignore[arg-type]
        send_all(settings, release.id)
        seen = client.get(f"/api/releases/{release.id}", headers=auth).json()
    assert seen["counts"]["advance"]["sent"] == 1 and seen["counts"]["sent"] == 1


class BusyQueue(CountingQueue):
    """A broker with tasks waiting."""

    def waiting(self) -> int:
        return 1


def send_notices(settings: Settings, release_id: int) -> None:
    while sending.send_correction_notices(settings, release_id).claimed:
        pass


def subjects(settings: Settings, rcpt: str) -> list[str]:
    return [" ".join(str(m["Subject"]).split()) for m in outbox(settings, rcpt)]


def advance_sent(settings: Settings, lift: datetime) -> tuple[int, CountingQueue]:
    """A release scheduled for ``lift`` whose advance copy reached Ann (and Fay, accredited,
    English, climate, who did not ask for the lift line; Ann did)."""
    add_subscribers(settings, [("fay@example.com", "Fay", "en", "climate")])
    accredit(settings, "fay@example.com")
    with session_scope(settings) as session:
        set_lift_notice(session, ids(settings)[ANN], True)
    release_id, queue = scheduled_with_advance(settings, lift)
    distribute_advance(settings, queue, release_id)  # type: ignore[arg-type]
    send_all(settings, release_id)
    assert sorted(m["To"].addresses[0].addr_spec for m in outbox(settings)) == [
        ANN,
        "fay@example.com",
    ]
    return release_id, queue


def test_a_moved_embargo_is_told_to_the_advance_recipients_only(newsroom: Settings) -> None:
    settings = newsroom
    lift = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    release_id, queue = advance_sent(settings, lift)
    later = lift + timedelta(days=1)
    actions.publish(settings, queue, release_id, later, by="cli:test")  # type: ignore[arg-type]
    assert queue.tasks("send_correction_notices") == [(release_id,)]
    send_notices(settings, release_id)
    when = embargo_time(later, "en", settings.zone)
    for rcpt in (ANN, "fay@example.com"):
        assert subjects(settings, rcpt)[1] == "Embargo changed: Agency signs agreement"
        [_, notice] = outbox(settings, rcpt)
        said = " ".join(text_lines(notice).split())
        assert f"it now lifts on {when}." in said
        assert notice["In-Reply-To"] == outbox(settings, rcpt)[0]["Message-ID"]
    assert outbox(settings, BOB) == []  # he was sent nothing: nothing to tell him
    # Postponed (a draft again): told too, once more.
    actions.unschedule(settings, release_id, "cli:test", queue)  # type: ignore[arg-type]
    send_notices(settings, release_id)
    [_, _, postponed] = outbox(settings, ANN)
    assert "The publication of this release is postponed." in " ".join(
        text_lines(postponed).split()
    )


def test_withdrawn_before_the_lift_the_advance_recipients_are_told_without_asking(
    newsroom: Settings,
) -> None:
    settings = newsroom
    release_id, queue = advance_sent(settings, datetime.now(UTC) + timedelta(hours=2))
    done = actions.withdraw(settings, queue, release_id, "cli:test", reason="Figures wrong")  # type: ignore[arg-type]
    assert done.notices == 2  # no --notify: they hold a copy of something withdrawn
    send_notices(settings, release_id)
    assert subjects(settings, ANN)[1] == "Withdrawn: Agency signs agreement"
    assert "Figures wrong" in text_lines(outbox(settings, ANN)[1])


def test_at_the_lift_those_who_asked_get_one_line_and_the_others_nothing_more(
    newsroom: Settings,
) -> None:
    settings = newsroom
    lift = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    release_id, _ = advance_sent(settings, lift)
    queue = BusyQueue()  # tasks wait in it: the sweep's repair of lost wake-ups stands by
    report = sweep(settings, queue, lift)  # type: ignore[arg-type]
    assert report.published == [release_id]
    assert queue.tasks("send_correction_notices") == [(release_id,)]  # woken at once
    send_notices(settings, release_id)
    sending.distribute_release(settings, queue, release_id)  # type: ignore[arg-type]
    send_all(settings, release_id)
    assert subjects(settings, ANN)[1:] == ["Embargo lifted: Agency signs agreement"]
    lifted = " ".join(text_lines(outbox(settings, ANN)[1]).split())
    assert f"lifted on {embargo_time(lift, 'en', settings.zone)}: it is public now." in lifted
    assert len(outbox(settings, "fay@example.com")) == 1  # her copy, nothing more
    assert subjects(settings, BOB) == ["Agency signs agreement"]


def test_the_workspace_schedules_advance_copies_and_says_when_they_go(
    newsroom: Settings, redis_url: str
) -> None:
    settings = newsroom.model_copy(update={"broker_url": redis_url})
    release = make_release(settings)
    lift = (datetime.now(UTC) + timedelta(days=2)).astimezone(settings.zone)
    early = lift - timedelta(days=1)
    with logged_in_as(settings, "pub@example.org", "publisher") as client:
        page = client.get(f"/admin/releases/{release.id}")
        assert "Embargoed advance copies to accredited journalists" in page.text
        form = {"at": f"{lift:%Y-%m-%dT%H:%M}", "csrf": csrf_of(page.text)}
        missing = client.post(
            f"/admin/releases/{release.id}/publish", data={**form, "advance": "at"}
        )
        assert missing.status_code == 422
        assert "advance copies' time: '' is not a date and time" in html.unescape(missing.text)
        done = client.post(
            f"/admin/releases/{release.id}/publish",
            data={**form, "advance": "at", "advance_at": f"{early:%Y-%m-%dT%H:%M}",
                  "csrf": csrf_of(missing.text)},
        )  # fmt: skip
        assert done.status_code == 200, done.text
        said = html.unescape(done.text)
        assert "Embargoed advance copies to accredited journalists:" in said
        assert 'id="advance-planned"' in done.text
    with session_scope(settings) as session:
        stored = session.get_one(Release, release.id)
        assert stored.state == "scheduled"
        assert stored.advance_at == early.replace(second=0, microsecond=0)


def test_a_worker_killed_mid_advance_send_loses_none_and_the_lift_adds_none(
    sqlite_settings: Settings, smtp_server: SMTPServer, redis_url: str, tmp_path: Path
) -> None:
    """Exactly once under a kill, as every send of the ledger: the worker is killed (SIGKILL,
    parent and children) while the advance copies go out; another finishes them; at the lift
    the public send adds nobody who had one."""
    live = sqlite_settings.model_copy(
        update={"broker_url": redis_url, "smtp_url": smtp_server.url,
                "lease_seconds": 5, "batch_size": 50}
    )  # fmt: skip
    add_topics(live, "climate")
    journalists = [f"j{i:03}@example.com" for i in range(300)]
    readers = [f"r{i:03}@example.com" for i in range(100)]
    add_subscribers(live, [(e, "", "en", "climate") for e in journalists + readers])
    accredit(live, *journalists)
    release = make_release(live)
    lift = datetime.now(UTC) + timedelta(hours=1)

    def slow(_address: str) -> None:
        time.sleep(0.01)  # ~100 messages/s per connection
        return None

    def slow_down() -> None:
        smtp_server.handler.rcpt_reply = slow  # type: ignore[assignment]

    def start() -> None:
        queue = TaskQueue(live)
        actions.publish(live, queue, release.id, lift, by="cli:test", advance=datetime.now(UTC))
        queue.close()

    def finished() -> bool:
        with session_scope(live) as session:
            return release_status(session, release.id).open == 0

    received = lambda: len(smtp_server.handler.messages)  # noqa: E731
    killed_mid_send(live, received, slow_down, tmp_path, start, finished, "the advance copies")
    early = smtp_server.handler.by_rcpt()
    assert set(early) == set(journalists)  # lost: none; and nobody else before the lift
    # At most one group of outcomes (DISTRIBUTOR_OUTCOME_GROUP) per process killed.
    assert len([r for r, copies in early.items() if len(copies) > 1]) <= 2 * live.outcome_group
    before = {r: len(copies) for r, copies in early.items()}
    smtp_server.handler.rcpt_reply = lambda _address: None  # type: ignore[assignment]
    sweep(live, CountingQueue(), lift)  # type: ignore[arg-type]
    sending.distribute_release(live, CountingQueue(), release.id)  # type: ignore[arg-type]
    send_all(live, release.id)
    after = smtp_server.handler.by_rcpt()
    assert {r: len(after[r]) for r in journalists} == before  # not one more at the lift
    assert {r: len(after[r]) for r in readers} == dict.fromkeys(readers, 1)


def test_embargo_end_to_end_over_smtp_with_every_public_url_fetched(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    """Two accredited and three ordinary subscribers, a real SMTP server, the real pages:
    the advance copies go out two hours before the lift (T − 2 h), marked; every public URL
    of the site, fetched a second before T, shows no trace of the release; at T the three
    others get it and the two accredited nothing more. Then another release withdrawn before
    its lift tells the two accredited only."""
    live = settings.model_copy(update={"smtp_url": smtp_server.url})
    add_topics(live, "climate")
    accredited, ordinary = (
        ["a1@example.com", "a2@example.com"],
        [f"o{i}@example.com" for i in range(3)],
    )
    add_subscribers(live, [(e, "", "en", "climate") for e in accredited + ordinary])
    accredit(live, *accredited)
    now = datetime.now(UTC).replace(microsecond=0)
    lift, early = now + timedelta(hours=3), now + timedelta(hours=1)
    release = make_release(live)
    queue = CountingQueue()
    actions.publish(live, queue, release.id, lift, by="cli:test", advance=early)  # type: ignore[arg-type]
    assert sweep(live, queue, early - timedelta(seconds=1)).advance == []  # type: ignore[arg-type]
    assert sweep(live, queue, early).advance == [release.id]  # type: ignore[arg-type]
    send_all(live, release.id)
    received = smtp_server.handler.by_rcpt()
    assert sorted(received) == accredited
    for rcpt in accredited:
        [copy] = received[rcpt]
        assert copy.parsed()["Subject"].startswith("EMBARGOED until ")
    # A second before the lift: every file of the public site, fetched, names it nowhere.
    sweep(live, queue, lift - timedelta(seconds=1))  # type: ignore[arg-type]
    builder.regenerate_site(live)
    served = live.public_dir.rglob("*")  # the builder's own dotfiles are not served
    files = [p for p in served if p.is_file() and not p.name.startswith(".")]
    assert len(files) > 5
    with TestClient(create_app(live)) as client:
        for path in files:
            url = "/" + path.relative_to(live.public_dir).as_posix().removesuffix("index.html")
            answer = client.get(url)
            assert answer.status_code == 200, url
            assert "Agency signs agreement" not in answer.text, url
            assert "agency-signs-agreement" not in answer.text, url
    assert sorted(smtp_server.handler.by_rcpt()) == accredited
    # At T: the others, once each; the accredited, nothing more.
    sweep(live, queue, lift)  # type: ignore[arg-type]
    sending.distribute_release(live, queue, release.id)  # type: ignore[arg-type]
    send_all(live, release.id)
    counts_now = {r: len(c) for r, c in smtp_server.handler.by_rcpt().items()}
    assert counts_now == dict.fromkeys(accredited + ordinary, 1)

    # Withdrawn before its lift: the accredited are told, nobody else.
    other = make_release(live, slug="second", title="Second release")
    actions.publish(  # type: ignore[arg-type]
        live, queue, other.id, datetime.now(UTC) + timedelta(hours=3), by="cli:test",
        advance=datetime.now(UTC),
    )  # fmt: skip
    distribute_advance(live, queue, other.id)  # type: ignore[arg-type]
    send_all(live, other.id)
    actions.withdraw(live, queue, other.id, "cli:test", reason="Not ready")  # type: ignore[arg-type]
    send_notices(live, other.id)
    withdrawn = {
        m.rcpt for m in smtp_server.handler.messages
        if m.parsed()["Subject"].startswith("Withdrawn: Second release")
    }  # fmt: skip
    assert withdrawn == set(accredited)
