"""The press office's dashboard (/admin): its data queries (distributor.reporting.dashboard) and its
pages — login with an API token, sessions that end when the token is revoked, CSRF on every
POST, the actions (publish, schedule, unschedule, correct, withdraw, test, preview) with
their audit trail as token:NAME, escaping, headers — on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.core import heartbeat
from distributor.core.apitokens import revoke
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import InputError
from distributor.core.models import AuditEvent, Delivery, DeliveryStatus, Release, Subscriber
from distributor.reporting.dashboard import (
    HourCount,
    Progress,
    release_progress,
    releases_overview,
    sends_over_time,
    subscribers_by_topic_language,
)
from distributor.web import create_app
from distributor.web.admin import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    _ceiling,
    chart,
    parse_local,
    split_addresses,
)
from tests import clients
from tests.clients import Dash
from tests.helpers import (
    add_subscribers,
    add_topics,
    csrf_of,
    make_release,
    new_token,
    release_text,
)
from tests.smtp_server import SMTPServer

dash = clients.dash  # the dashboard fixture: an app, a logged-out browser, a token
HOSTILE = '<script>alert("x")</script> & <b>bold</b>'
NOW = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


# --- the queries ----------------------------------------------------------------------------


def subscriber_ids(settings: Settings) -> dict[str, int]:
    with session_scope(settings) as session:
        return {e: i for e, i in session.execute(select(Subscriber.email, Subscriber.id))}


def add_deliveries(settings: Settings, release_id: int, rows: list[dict[str, Any]]) -> None:
    """Ledger rows as a worker would have left them (each needs a distinct subscriber)."""
    ids = sorted(subscriber_ids(settings).values())
    with session_scope(settings) as session:
        for sub_id, row in zip(ids, rows, strict=False):
            row.setdefault("next_attempt_at", NOW - timedelta(days=3))
            session.add(Delivery(release_id=release_id, subscriber_id=sub_id, **row))


def people(n: int, lang: str = "en", topics: str = "climate") -> list[tuple[str, str, str, str]]:
    return [(f"p{i}.{lang}@example.com", f"P {i}", lang, topics) for i in range(n)]


def test_subscribers_by_topic_and_language(settings: Settings) -> None:
    add_topics(settings, "climate", "energy", "space")
    add_subscribers(settings, people(3, "en", "climate") + people(2, "fr", "climate;energy"))
    add_subscribers(settings, [("pending@example.com", "", "en", "space")], confirmed=False)
    with session_scope(settings) as session:
        table = subscribers_by_topic_language(session, ("en", "fr"), "fr")
    assert table.topics == [("climate", "Climate (fr)"), ("energy", "Energy (fr)"),
                            ("space", "Space (fr)")]  # fmt: skip
    assert table.languages == ["en", "fr"]
    assert (table.count("climate", "en"), table.count("climate", "fr")) == (3, 2)
    assert (table.count("energy", "en"), table.count("energy", "fr")) == (0, 2)
    assert table.count("space", "en") == 0  # the pending subscriber is not counted
    assert table.topic_total("climate") == 5
    assert table.people == {"en": 3, "fr": 2} and table.total == 5  # each person once


def test_releases_overview_and_progress(settings: Settings) -> None:
    add_topics(settings, "climate")
    add_subscribers(settings, people(6))
    first = make_release(settings, title="First", slug="first")
    second = make_release(settings, title="Second", slug="second")
    statuses = ["sent", "sent", "failed", "cancelled", "pending", "deferred"]
    add_deliveries(settings, first.id, [{"status": s} for s in statuses])
    with session_scope(settings) as session:
        session.get_one(Release, first.id).state = "published"
        rows = releases_overview(session, limit=10)
        live = release_progress(session, first.id)
        assert release_progress(session, 999) is None
        assert [r.id for r in releases_overview(session, limit=1)] == [second.id]
    assert [r.id for r in rows] == [second.id, first.id]  # newest first
    assert rows[0].progress.planned == 0 and not rows[0].sending  # a draft
    p = rows[1].progress
    assert p.counts == {"pending": 1, "deferred": 1, "sent": 2, "failed": 1, "cancelled": 1}
    assert (p.planned, p.done, p.open, p.percent) == (6, 4, 2, 66)
    assert rows[1].sending  # published, not fully planned, rows open
    assert live is not None and live.progress == p and live.sending and live.state == "published"
    with session_scope(settings) as session:
        session.get_one(Release, first.id).planned_at = NOW
        for delivery in session.scalars(select(Delivery).where(Delivery.status != "sent")):
            delivery.status = "sent"
        live = release_progress(session, first.id)
    assert live is not None and live.progress.percent == 100 and not live.sending
    nothing = Progress({"pending": 0, "deferred": 0, "sent": 0, "failed": 0, "cancelled": 0})
    assert nothing.percent == 0


def test_sends_over_time_counts_each_hour(settings: Settings) -> None:
    add_topics(settings, "climate")
    add_subscribers(settings, people(9))
    release = make_release(settings)
    h = timedelta(hours=1)
    current = NOW.replace(minute=0)  # 14:00, the hour NOW is in
    add_deliveries(settings, release.id, [
        {"status": "sent", "sent_at": NOW},                              # this hour
        {"status": "sent", "sent_at": current},                          # this hour, its start
        {"status": "sent", "sent_at": current - timedelta(seconds=1)},   # 13:00 hour
        {"status": "sent", "sent_at": current - 23 * h},                 # the oldest hour shown
        {"status": "sent", "sent_at": current - 23 * h - timedelta(seconds=1)},  # too old
        {"status": "failed", "next_attempt_at": current - 2 * h + timedelta(minutes=5)},
        {"status": "failed", "next_attempt_at": current - 30 * h},       # too old
        {"status": "deferred", "next_attempt_at": NOW},                  # not a failure
        {"status": "pending", "next_attempt_at": NOW},
    ])  # fmt: skip
    with session_scope(settings) as session:
        hours = sends_over_time(session, NOW, 24)
        assert len(sends_over_time(session, NOW, 3)) == 3
        with pytest.raises(ValueError):
            sends_over_time(session, NOW, 0)
    assert len(hours) == 24
    assert hours[0].start == current - 23 * h and hours[-1].start == current
    assert [(x.start, x.sent, x.failed) for x in hours if x.sent or x.failed] == [
        (current - 23 * h, 1, 0),
        (current - 2 * h, 0, 1),
        (current - h, 1, 0),
        (current, 2, 0),
    ]


def test_chart_layout_and_helpers() -> None:
    assert [_ceiling(v) for v in (0, 1, 2, 3, 7, 10, 11, 99, 101, 1000)] == [
        1, 1, 2, 5, 10, 10, 20, 100, 200, 1000]  # fmt: skip
    start = datetime(2026, 11, 20, 0, tzinfo=UTC)
    hours = [HourCount(start + timedelta(hours=i), sent=i * 10, failed=i % 2) for i in range(6)]
    drawn = chart(hours, UTC)
    assert len(drawn.sent) == len(drawn.failed) == 6
    tallest = max(drawn.sent, key=lambda b: b.height)
    assert tallest.label == "05:00: 50 sent" and drawn.scale[-1][1] == 50
    assert tallest.y + tallest.height == pytest.approx(drawn.height - drawn.bottom)
    assert drawn.total_sent == 150 and drawn.total_failed == 3
    paris = ZoneInfo("Europe/Paris")
    assert parse_local("2026-07-01T09:00", paris) == datetime(2026, 7, 1, 7, tzinfo=UTC)
    assert parse_local("2026-01-01T09:00+00:00", paris) == datetime(2026, 1, 1, 9, tzinfo=UTC)
    with pytest.raises(InputError):
        parse_local("tomorrow", paris)
    assert split_addresses(" a@x.org, b@y.org;\nc@z.org ") == ["a@x.org", "b@y.org", "c@z.org"]


# --- the pages ------------------------------------------------------------------------------


def session_cookies(response: httpx.Response) -> list[str]:
    """The Set-Cookie fields of the response that set or clear the session cookie."""
    return [
        c for c in response.headers.get_list("set-cookie") if c.startswith(f"{SESSION_COOKIE}=")
    ]


def state_of(settings: Settings, release_id: int) -> str:
    with session_scope(settings) as session:
        return session.get_one(Release, release_id).state


def audit_of(settings: Settings, release_id: int) -> list[tuple[str, str]]:
    with session_scope(settings) as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.subject == f"release {release_id}")
            .order_by(AuditEvent.id)
        )  # fmt: skip
        return [(e.action, e.actor) for e in events]


def test_without_a_session_every_page_sends_to_the_login_form(dash: Dash) -> None:
    release = make_release(dash.settings)
    base = f"/admin/releases/{release.id}"
    for path in ("/admin", base, f"{base}/preview/en.html", f"{base}/withdraw"):
        response = dash.client.get(path, follow_redirects=False)
        assert (response.status_code, response.headers["location"]) == (303, "/admin/login"), path
    assert dash.client.get(f"/admin/releases/{release.id}/progress.json").status_code == 401
    # A POST without a session changes nothing, whatever its CSRF token.
    csrf = csrf_of(dash.client.get("/admin/login").text)
    response = dash.client.post(f"/admin/releases/{release.id}/publish", data={"csrf": csrf},
                                follow_redirects=False)  # fmt: skip
    assert response.status_code == 303 and state_of(dash.settings, release.id) == "draft"
    # A forged or altered cookie is no session.
    dash.client.cookies.set(SESSION_COOKIE, "1.forged.sig", path="/admin")
    response = dash.client.get("/admin", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/admin/login?ended=1")


def test_login_sets_a_lax_session_cookie_and_logout_clears_it(dash: Dash) -> None:
    page = dash.client.get("/admin/login")
    assert page.status_code == 200 and 'type="password"' in page.text
    response = dash.login()
    assert (response.status_code, response.headers["location"]) == (303, "/admin")
    [cookie] = session_cookies(response)
    for flag in ("HttpOnly", "Path=/admin", "SameSite=lax", "Secure", "Max-Age=43200"):
        assert flag in cookie
    assert dash.token not in cookie  # the cookie names the token, it does not hold it
    home = dash.client.get("/admin")
    assert home.status_code == 200 and "press-desk" in home.text
    assert dash.client.get("/admin/login", follow_redirects=False).status_code == 303
    logout = dash.post("/admin/logout")
    assert (logout.status_code, logout.headers["location"]) == (303, "/admin/login")
    assert dash.client.get("/admin", follow_redirects=False).status_code == 303


def test_a_wrong_token_or_one_without_the_releases_scope_is_refused(dash: Dash) -> None:
    response = dash.login("dst_not-a-real-token")
    assert response.status_code == 401 and "not valid" in response.text
    assert 'name="token"' in response.text and "Traceback" not in response.text
    assert session_cookies(response) == []
    assert dash.login("").status_code == 401
    other = new_token(dash.settings, "subscriber-desk", ["subscribers"])
    response = dash.login(other)
    assert response.status_code == 403 and "releases scope" in response.text
    assert dash.client.get("/admin", follow_redirects=False).status_code == 303


def test_revoking_the_token_ends_the_session(dash: Dash) -> None:
    assert dash.login().status_code == 303
    assert dash.client.get("/admin").status_code == 200
    with session_scope(dash.settings) as session:
        revoke(session, "press-desk")
    response = dash.client.get("/admin", follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/admin/login?ended=1")
    [cleared] = session_cookies(response)
    assert cleared.startswith(f'{SESSION_COOKIE}="";') and "Max-Age=0" in cleared
    assert "session has ended" in dash.client.get("/admin/login?ended=1").text
    assert dash.login().status_code == 401  # and it cannot log in again


def test_every_post_needs_the_csrf_token(dash: Dash) -> None:
    release = make_release(dash.settings)
    assert dash.login().status_code == 303
    base = f"/admin/releases/{release.id}"
    for action in ("publish", "withdraw", "correct", "test", "unschedule"):
        for csrf in ("", "forged"):
            response = dash.client.post(f"{base}/{action}", data={"csrf": csrf})
            assert response.status_code == 403 and "expired" in response.text, (action, csrf)
    # The form's token without the cookie's copy is refused too.
    csrf = dash.csrf()
    dash.client.cookies.delete(CSRF_COOKIE)
    assert dash.client.post(f"{base}/publish", data={"csrf": csrf}).status_code == 403
    assert state_of(dash.settings, release.id) == "draft" and dash.tasks() == []
    assert audit_of(dash.settings, release.id) == []
    # The login form has one as well.
    response = dash.client.post("/admin/login", data={"token": dash.token, "csrf": "x"})
    assert response.status_code == 403


def test_publish_then_correct_then_withdraw_from_the_dashboard(dash: Dash) -> None:
    add_subscribers(dash.settings, people(3))
    release = make_release(dash.settings)
    assert dash.login().status_code == 303
    base = f"/admin/releases/{release.id}"

    response = dash.post(f"{base}/publish")
    assert (response.status_code, response.headers["location"]) == (303, f"{base}?done=published")
    assert state_of(dash.settings, release.id) == "published"
    assert f"distributor.distribute_release[{release.id}]" in dash.tasks()
    page = dash.client.get(response.headers["location"])
    assert "Published: the workers are sending it." in page.text
    assert 'data-live="1"' in page.text  # not planned yet: the script polls

    corrected = release_text(title="Agency signs the agreement (corrected)")
    response = dash.post(f"{base}/correct", source=corrected, note="the title was wrong")
    assert (response.status_code, response.headers["location"]) == (303, f"{base}?done=corrected")
    # ... or from a file, which wins over the text box.
    again = release_text(title="Corrected from a file")
    response = dash.client.post(
        f"{base}/correct", data={"csrf": dash.csrf(), "source": "", "note": "the title"},
        files={"file": ("fixed.md", again.encode(), "text/markdown")}, follow_redirects=False,
    )  # fmt: skip
    assert response.status_code == 303
    with session_scope(dash.settings) as session:
        fixed = session.get_one(Release, release.id)
        assert fixed.title == "Corrected from a file" and fixed.corrected_at is not None

    assert dash.client.get(f"{base}/withdraw").status_code == 200  # the confirmation step
    assert state_of(dash.settings, release.id) == "published"
    response = dash.post(f"{base}/withdraw")
    assert (response.status_code, response.headers["location"]) == (303, f"{base}?done=withdrawn")
    with session_scope(dash.settings) as session:
        gone = session.get_one(Release, release.id)
        assert (gone.state, gone.withdrawn_by) == ("withdrawn", "token:press-desk")
    assert audit_of(dash.settings, release.id) == [
        ("publish", "token:press-desk"),
        ("correct", "token:press-desk"),
        ("correct", "token:press-desk"),
        ("withdraw", "token:press-desk"),
    ]
    page = dash.client.get(base)
    assert "withdraw by <strong>token:press-desk</strong>" in page.text  # the history
    assert "/publish" not in page.text and "/correct" not in page.text  # no action left


def test_schedule_in_the_office_zone_and_unschedule(dash: Dash) -> None:
    release = make_release(dash.settings)
    assert dash.login().status_code == 303
    base = f"/admin/releases/{release.id}"
    # Europe/Paris in summer is UTC+2: 09:00 there is 07:00 UTC.
    response = dash.post(f"{base}/publish", at="2027-07-01T09:00")
    assert response.headers["location"] == f"{base}?done=scheduled"
    with session_scope(dash.settings) as session:
        scheduled = session.get_one(Release, release.id)
        assert scheduled.state == "scheduled"
        assert scheduled.scheduled_at == datetime(2027, 7, 1, 7, tzinfo=UTC)
    assert "2027-07-01 09:00 CEST" in dash.client.get(base).text
    assert dash.tasks() == []  # nothing is sent before its time
    response = dash.post(f"{base}/unschedule")
    assert response.headers["location"] == f"{base}?done=unscheduled"
    assert state_of(dash.settings, release.id) == "draft"
    assert audit_of(dash.settings, release.id) == [
        ("schedule", "token:press-desk"), ("unschedule", "token:press-desk")]  # fmt: skip


def test_refused_actions_say_why_on_the_page(dash: Dash) -> None:
    release = make_release(dash.settings)
    assert dash.login().status_code == 303
    base = f"/admin/releases/{release.id}"
    response = dash.post(f"{base}/publish", at="not a date")
    assert response.status_code == 422 and "is not a date and time" in response.text
    ago = (datetime.now(UTC) - timedelta(days=4)).astimezone(dash.settings.zone)
    response = dash.post(f"{base}/publish", at=f"{ago:%Y-%m-%dT%H:%M}")  # a wrong day
    assert response.status_code == 422 and "is in the past" in response.text
    assert state_of(dash.settings, release.id) == "draft" and dash.tasks() == []
    response = dash.post(f"{base}/correct", source=release_text(), note="a fix")
    assert response.status_code == 409 and "only a published release is corrected" in response.text
    response = dash.post(f"{base}/unschedule")
    assert response.status_code == 409 and "not scheduled" in response.text
    assert dash.post(f"{base}/withdraw").status_code == 303
    response = dash.post(f"{base}/withdraw")
    assert response.status_code == 409 and "already withdrawn" in response.text
    response = dash.post(f"{base}/publish")
    assert response.status_code == 409 and "cannot be published" in response.text
    assert dash.client.get("/admin/releases/4242").status_code == 404
    assert dash.post("/admin/releases/4242/publish").status_code == 404
    assert dash.client.get("/admin/releases/99999999999").status_code == 422  # not an id
    assert "Traceback" not in response.text


def test_a_bad_correction_keeps_the_text_and_names_the_field(dash: Dash) -> None:
    release = make_release(dash.settings)
    assert dash.login().status_code == 303
    base = f"/admin/releases/{release.id}"
    assert dash.post(f"{base}/publish").status_code == 303
    broken = "---\ntitle: [unclosed\n---\nText."
    response = dash.post(f"{base}/correct", source=broken, note="a fix")
    assert response.status_code == 422 and "not valid YAML" in response.text
    assert "title: [unclosed" in response.text  # kept in the text box
    response = dash.post(f"{base}/correct", source=release_text(lang="fr"), note="a fix")
    assert response.status_code == 422 and "keeps the language" in response.text
    response = dash.post(f"{base}/correct", source="  ", note="a fix")  # the fields, empty
    assert response.status_code == 422 and "field &#39;title&#39;" in response.text
    assert audit_of(dash.settings, release.id) == [("publish", "token:press-desk")]


def test_hostile_titles_are_escaped_and_pages_are_never_cached(dash: Dash) -> None:
    release = make_release(dash.settings, title=HOSTILE, slug="hostile")
    assert dash.login().status_code == 303
    base = f"/admin/releases/{release.id}"
    for path in ("/admin", base, f"{base}/withdraw"):
        response = dash.client.get(path)
        assert response.status_code == 200
        assert HOSTILE not in response.text and "<script>alert" not in response.text, path
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;" in response.text
        assert response.headers["cache-control"] == "no-store"
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert "<script>" not in response.text  # no inline script at all
        assert re.search(r"\son[a-z]+=", response.text) is None  # no inline event handler
    js = dash.client.get("/admin/static/admin.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert dash.client.get("/admin/static/secret_key").status_code == 404


def test_preview_is_sandboxed_and_test_send_reaches_only_the_addresses(
    dash: Dash, smtp_server: SMTPServer
) -> None:
    settings = dash.settings.model_copy(update={"smtp_url": smtp_server.url})
    add_subscribers(settings, people(2))
    release = make_release(settings)
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        dash.client = client
        assert dash.login().status_code == 303
        base = f"/admin/releases/{release.id}"
        page = client.get(base)
        assert f'src="{base}/preview/en.html"' in page.text and 'sandbox=""' in page.text
        html = client.get(f"{base}/preview/en.html")
        assert html.status_code == 200 and "Agency signs agreement" in html.text
        csp = html.headers["content-security-policy"]
        assert "sandbox" in csp and "script-src" not in csp and "frame-ancestors 'self'" in csp
        assert html.headers["cache-control"] == "no-store"
        text = client.get(f"{base}/preview/en.txt")
        assert text.headers["content-type"].startswith("text/plain")
        assert "Subject: Agency signs agreement" in text.text
        assert client.get(f"{base}/preview/fr.html").status_code == 404  # no French version

        response = dash.post(f"{base}/test", addresses="ann@example.org, bob@example.org")
        assert response.status_code == 200
        assert "ann@example.org: sent (250" in response.text
        received = smtp_server.handler.by_rcpt()
        assert sorted(received) == ["ann@example.org", "bob@example.org"]
        assert received["ann@example.org"][0].parsed()["Subject"].startswith("[TEST] ")
        response = dash.post(f"{base}/test", addresses="not-an-address")
        assert response.status_code == 422 and "nothing sent" in response.text
        assert "not-an-address" in response.text  # kept in the form
        assert state_of(settings, release.id) == "draft"


def test_the_dashboard_shows_counts_progress_and_the_chart(dash: Dash) -> None:
    add_subscribers(dash.settings, people(4, "en", "climate") + people(3, "fr", "climate;energy"))
    release = make_release(dash.settings)
    now = datetime.now(UTC)
    add_deliveries(dash.settings, release.id, [
        {"status": "sent", "sent_at": now}, {"status": "sent", "sent_at": now},
        {"status": "failed", "next_attempt_at": now}, {"status": "pending"},
    ])  # fmt: skip
    with session_scope(dash.settings) as session:
        session.get_one(Release, release.id).state = "published"
    assert dash.login().status_code == 303
    page = dash.client.get("/admin").text
    assert '<td data-topic="climate" data-lang="en">4</td>' in page
    assert '<td data-topic="climate" data-lang="fr">3</td>' in page
    assert '<td data-topic="energy" data-lang="en">0</td>' in page
    assert '<td data-people="all">7</td>' in page
    assert 'max="4" value="3"' in page and "75%" in page
    assert "sent (2)" in page and "failed (1)" in page  # the chart's legend
    assert f'data-progress-url="/admin/releases/{release.id}/progress.json" data-live="1"' in page
    progress = dash.client.get(f"/admin/releases/{release.id}/progress.json")
    assert progress.headers["cache-control"] == "no-store"
    body = progress.json()
    shown = {k: body[k] for k in ("state", "planned", "done", "sent", "failed", "pending")}
    assert shown == {"state": "published", "planned": 4, "done": 3, "sent": 2, "failed": 1,
                     "pending": 1}  # fmt: skip
    assert body["percent"] == 75 and body["sending"] is True
    assert dash.client.get("/admin/releases/4242/progress.json").status_code == 404
    detail = dash.client.get(f"/admin/releases/{release.id}").text
    assert '<td data-field="planned">4</td>' in detail
    assert '<td data-field="failed">1</td>' in detail
    # DeliveryStatus values are the keys of the JSON: the script relies on them.
    assert {s.value for s in DeliveryStatus} <= set(body)
    # What scrolls sideways on a phone can be reached (and scrolled) by keyboard.
    for html in (page, detail):
        scrolling = re.findall(r'<div class="scroll"[^>]*>', html)
        assert scrolling and all('tabindex="0"' in tag for tag in scrolling), scrolling


def test_a_correction_with_notify_asks_for_the_notices(dash: Dash) -> None:
    release = make_release(dash.settings)
    assert dash.login().status_code == 303
    base = f"/admin/releases/{release.id}"
    assert dash.post(f"{base}/publish").status_code == 303
    corrected = release_text(title="Agency signs the agreement (corrected)")
    response = dash.post(f"{base}/correct", source=corrected, notify="true", note="the title")
    assert response.headers["location"] == f"{base}?done=corrected-notified"
    assert (
        "a short correction notice is going" in dash.client.get(response.headers["location"]).text
    )
    with session_scope(dash.settings) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "correct")).one()
        assert event.details["notify"] is True


def test_the_dashboard_warns_when_the_sweep_is_missing(dash: Dash) -> None:
    """Without beat nothing recovers: every page says so, and publishing does not claim the
    workers are sending."""
    dash.broker.delete(heartbeat.KEY)
    assert dash.login().status_code == 303
    page = dash.client.get("/admin").text
    assert 'id="sweep-missing"' in page and "`distributor beat` is not running" in page
    release = make_release(dash.settings)
    base = f"/admin/releases/{release.id}"
    assert dash.post(f"{base}/publish").headers["location"] == f"{base}?done=published"
    page = dash.client.get(f"{base}?done=published").text
    assert "Published; see the warning above." in page and "sending it" not in page
    assert 'id="sweep-missing"' in page

    heartbeat.record(dash.settings, dash.settings.broker_url or "")  # beat is back
    page = dash.client.get(f"{base}?done=published").text
    assert "Published: the workers are sending it." in page and "sweep-missing" not in page
    dash.broker.delete(heartbeat.KEY)
