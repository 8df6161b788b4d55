"""A correction says what changed (issue 14): the note given with it is on the release's
page ("Corrected on 6 December 2026: …", in the page's language), in its feed item (RSS,
Atom, JSON), in the correction notice as the SMTP server receives it, in the audit record
and in the API's answer — escaped everywhere. The workspace's correction form is the
editor's, prefilled, and refuses a correction without a note, keeping what was typed; the
CLI and the API take one (--note, ?note=). Migration 0019 keeps each earlier correction."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import feedparser
import pytest
import redis
import sqlalchemy as sa
from alembic import command
from fastapi.testclient import TestClient

from distributor import actions
from distributor.core import audit
from distributor.core.config import Settings
from distributor.core.db import alembic_config, get_engine, session_scope, upgrade
from distributor.core.errors import ReleaseInputError
from distributor.core.models import Correction, Release
from distributor.core.queue import QUEUE
from distributor.mail.correction import note_of
from distributor.outbox import sending
from distributor.releases.source import parse_release
from distributor.site.builder import build_site
from distributor.web import create_app
from tests.clients import logged_in_as
from tests.corrections import add_readers, corrected_text, send_release, text_part
from tests.helpers import CountingQueue, csrf_of, make_release, new_token, release_text
from tests.processes import invoke_cli
from tests.smtp_server import SMTPServer

NOTE = "time of the launch was 17:42, now 17:40"
PHOTO = {"src": "https://cdn.example.org/harbour.jpg", "alt": "The harbour at dawn",
         "credit": "Photo: Agency"}  # fmt: skip
HOSTILE_NOTE = 'time was <b>17:42</b> & "17:40" now'  # markup that must stay text


def correct(s: Settings, release_id: int, note: str, notify: bool = False, **text: str) -> None:
    """Correct release ``release_id`` with ``corrected_text(**text)`` and ``note``."""
    fix = parse_release(corrected_text(**text), "fix.md", s)
    actions.correct(s, CountingQueue(), release_id, fix, by="cli:jane", notify=notify, note=note)  # type: ignore[arg-type]


def feed_entry(s: Settings, path: str) -> Any:
    """The first entry of the RSS or Atom feed at ``path``, as feedparser reads it; fails
    unless the feed is well-formed."""
    parsed = feedparser.parse((s.public_dir / path).read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed.entries[0]


def test_the_note_is_on_the_page_and_in_every_feed_escaped(settings: Settings) -> None:
    add_readers(settings)
    release = make_release(settings)
    send_release(settings, release.id)
    correct(settings, release.id, HOSTILE_NOTE)
    build_site(settings)

    page = (settings.public_dir / "releases/agency-signs-agreement.html").read_text()
    escaped = "time was &lt;b&gt;17:42&lt;/b&gt; &amp; &#34;17:40&#34; now"
    assert "Corrected on <time datetime=" in page
    assert f"</time>:</strong> {escaped}</p>" in page
    assert "<b>17:42</b>" not in page
    for path in ("feeds/en/releases.rss", "feeds/en/releases.atom"):
        entry = feed_entry(settings, path)
        content = entry.content[0].value  # the HTML a reader shows, once unescaped
        assert "Corrected on" in content and HOSTILE_NOTE.replace("&", "&amp;") not in content
        assert "time was &lt;b&gt;17:42&lt;/b&gt; &amp;" in content, content
        assert "<b>" not in content
    doc = json.loads((settings.public_dir / "feeds/en/releases.json").read_bytes())
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert "Corrected on" in doc["items"][0]["content_html"]
    assert "time was &lt;b&gt;17:42&lt;/b&gt; &amp;" in doc["items"][0]["content_html"]


def test_each_correction_keeps_its_note_and_a_french_page_says_it_in_french(
    settings: Settings,
) -> None:
    add_readers(settings)
    french = make_release(settings, lang="fr", slug="accord", title="Accord signé")
    send_release(settings, french.id)
    correct(settings, french.id, "l'heure était 17 h 42", lang="fr", slug="accord", title="Accord")
    correct(settings, french.id, "le titre", lang="fr", slug="accord", title="Accord (bis)")
    build_site(settings)

    page = (settings.public_dir / "releases/accord.html").read_text()
    assert page.count("Corrigé le") == 2
    assert "\u00a0:</strong> l&#39;heure était 17 h 42</p>" in page  # the first, still there
    assert "\u00a0:</strong> le titre</p>" in page
    assert "Corrected on" not in page
    entry = feed_entry(settings, "feeds/fr/releases.atom")
    assert entry.content[0].value.count("Corrigé le") == 2
    with session_scope(settings) as session:
        made = session.get_one(Release, french.id).corrections
        assert [(c.corrected_by, c.note) for c in made] == [
            ("cli:jane", "l'heure était 17 h 42"),
            ("cli:jane", "le titre"),
        ]


def test_the_notice_as_received_says_what_changed(
    settings: Settings, smtp_server: SMTPServer
) -> None:
    s = settings.model_copy(update={"smtp_url": smtp_server.url})
    add_readers(s)
    release = make_release(s)
    send_release(s, release.id)
    before = len(smtp_server.handler.messages)
    correct(s, release.id, HOSTILE_NOTE, notify=True)
    while sending.send_correction_notices(s, release.id).claimed:
        pass
    notices = smtp_server.handler.messages[before:]
    assert notices
    for message in notices:
        text = " ".join(text_part(message).split())
        assert f"What changed: {HOSTILE_NOTE}" in text  # plain text: as typed
        html = message.parsed().get_body(preferencelist=("html",))
        assert html is not None
        content = str(html.get_content())
        assert "What changed:</strong> time was &lt;b&gt;17:42&lt;/b&gt; &amp;" in content
        assert "<b>17:42</b>" not in content
    with session_scope(s) as session:
        (event, *_) = audit.recent(session, action="correct")
        assert event.details["note"] == HOSTILE_NOTE


def test_a_notice_tells_the_note_of_its_own_correction(settings: Settings) -> None:
    """A notice still on its way when the release is corrected again is cancelled; the new
    one carries the new note, not the first."""
    add_readers(settings)
    release = make_release(settings)
    send_release(settings, release.id)
    correct(settings, release.id, "the first fix", notify=True)
    correct(settings, release.id, "the second fix", notify=True)
    with session_scope(settings) as session:
        fixed = session.get_one(Release, release.id)
        first, second = fixed.corrections
        assert note_of(fixed, first.corrected_at) == "the first fix"
        assert note_of(fixed, second.corrected_at) == "the second fix"
        assert note_of(fixed, datetime(2000, 1, 1, tzinfo=UTC)) == ""


def test_a_note_is_one_line_of_at_most_500_characters(sqlite_settings: Settings) -> None:
    s = sqlite_settings
    add_readers(s)
    release = make_release(s)
    send_release(s, release.id)
    for bad, said in (("two\nlines", "note: "), ("x" * 501, "at most 500")):
        with pytest.raises(ReleaseInputError, match=said) as refused:
            correct(s, release.id, bad)
        assert refused.value.field == "note"
    with session_scope(s) as session:
        assert session.get_one(Release, release.id).corrected_at is None  # nothing changed


@pytest.fixture
def on_redis(settings: Settings, redis_url: str) -> Iterator[Settings]:
    """``settings`` with the test Redis as the broker (the app enqueues the site's
    regeneration), its queue emptied afterwards."""
    yield settings.model_copy(update={"broker_url": redis_url})
    broker = redis.Redis.from_url(redis_url)
    broker.delete(QUEUE)
    broker.close()


@pytest.fixture
def api(on_redis: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The app, and a releases token's headers."""
    token = new_token(on_redis, "desk", ["releases"])
    with TestClient(create_app(on_redis)) as client:
        yield client, {"Authorization": f"Bearer {token}"}


def test_the_workspace_form_is_the_editor_prefilled_and_requires_a_note(
    on_redis: Settings,
) -> None:
    settings = on_redis
    add_readers(settings)
    release = make_release(settings)
    with session_scope(settings) as session:  # an image, which the form does not show
        session.get_one(Release, release.id).images = [PHOTO]
    send_release(settings, release.id)
    base = f"/admin/releases/{release.id}"
    with logged_in_as(settings, "pia@example.org", "publisher") as browser:
        assert f'href="{base}/correct"' in browser.get(base).text
        form = browser.get(f"{base}/correct")
        assert form.status_code == 200
        assert 'value="Agency signs agreement"' in form.text  # the published title
        assert "A second paragraph with **details**" in form.text  # the body, as Markdown
        assert 'name="note"' in form.text and 'name="notify"' in form.text
        assert "<dd>2026-11-20 09:00 CET</dd>" in form.text  # kept, in the office's zone
        assert 'name="lang"' not in form.text and 'name="topics"' not in form.text
        typed = {"csrf": csrf_of(form.text), "title": "Agency signs the agreement",
                 "dateline": "LYON", "lead": "The Agency signed it at 17:40.",
                 "body": "A fixed paragraph.", "contacts": "Jane Doe; Press officer",
                 "note": "  "}  # fmt: skip
        refused = browser.post(f"{base}/correct", data=typed, follow_redirects=False)
        assert refused.status_code == 422
        assert "note: say in a line what this correction changes" in refused.text
        assert 'value="Agency signs the agreement"' in refused.text  # kept
        assert "The Agency signed it at 17:40." in refused.text and "LYON" in refused.text
        assert 'id="note"' in refused.text and 'aria-invalid="true"' in refused.text
        with session_scope(settings) as session:
            assert session.get_one(Release, release.id).corrected_at is None

        done = browser.post(f"{base}/correct", data={**typed, "note": NOTE},
                            follow_redirects=False)  # fmt: skip
        assert (done.status_code, done.headers["location"]) == (303, f"{base}?done=corrected")
        assert NOTE in browser.get(base).text  # the release's page lists it
    with session_scope(settings) as session:
        fixed = session.get_one(Release, release.id)
        assert (fixed.title, fixed.dateline, fixed.language) == (
            "Agency signs the agreement", "LYON", "en")  # fmt: skip
        assert [t.slug for t in fixed.topics] == ["climate"]  # kept
        assert [(i["src"], i["alt"]) for i in fixed.images] == [(PHOTO["src"], PHOTO["alt"])]
        assert [(c.corrected_by, c.note) for c in fixed.corrections] == [
            ("user:pia@example.org", NOTE)
        ]


def test_a_writer_is_not_offered_the_correction_form(on_redis: Settings) -> None:
    settings = on_redis
    add_readers(settings)
    release = make_release(settings)
    send_release(settings, release.id)
    base = f"/admin/releases/{release.id}"
    with logged_in_as(settings, "wes@example.org", "writer") as browser:
        assert f"{base}/correct" not in browser.get(base).text
        assert browser.get(f"{base}/correct").status_code == 403


def test_the_cli_takes_a_note(sqlite_settings: Settings, tmp_path: Any) -> None:
    s = sqlite_settings
    add_readers(s)
    release = make_release(s)
    send_release(s, release.id)
    fix = tmp_path / "fix.md"
    fix.write_text(corrected_text())
    done = invoke_cli(s, "releases", "correct", str(release.id), str(fix), "--note", NOTE)
    assert done.returncode == 0, done.stderr
    refused = invoke_cli(s, "releases", "correct", str(release.id), str(fix), "--note", "a\x07")
    assert refused.returncode != 0 and "note" in refused.stderr
    without = invoke_cli(s, "releases", "correct", str(release.id), str(fix))  # as before
    assert without.returncode == 0, without.stderr
    with session_scope(s) as session:
        made = session.get_one(Release, release.id).corrections
        assert [c.note for c in made] == [NOTE, ""]
    shown = invoke_cli(s, "releases", "show", str(release.id)).stdout
    notes = [line.split(": ", 1)[1] for line in shown.splitlines() if "correction:" in line]
    assert [n.split(": ", 1)[1] for n in notes] == [NOTE, "(no note)"]


def test_the_api_takes_a_note_and_answers_every_correction(
    settings: Settings, api: tuple[TestClient, dict[str, str]]
) -> None:
    client, auth = api
    add_readers(settings)
    release = make_release(settings)
    send_release(settings, release.id)
    url = f"/api/releases/{release.id}/correct"
    headers = {**auth, "Content-Type": "text/markdown"}
    answer = client.post(url, params={"note": NOTE}, content=corrected_text(), headers=headers)
    assert answer.status_code == 200, answer.text
    [made] = answer.json()["corrections"]
    assert (made["note"], made["corrected_by"]) == (NOTE, "token:desk")
    refused = client.post(url, params={"note": "two\nlines"}, content=corrected_text(),
                          headers=headers)  # fmt: skip
    assert refused.status_code == 422 and refused.json()["field"] == "note", refused.text
    old = client.post(url, content=release_text(), headers=headers)  # without: as before
    assert old.status_code == 200 and [c["note"] for c in old.json()["corrections"]] == [NOTE, ""]
    spec = client.get("/api/openapi.json").json()
    params = spec["paths"]["/api/releases/{release_id}/correct"]["post"]["parameters"]
    assert "What changed" in next(p for p in params if p["name"] == "note")["description"]


def test_0019_keeps_each_earlier_correction_and_goes_back(settings: Settings) -> None:
    """Down to 0018 and up again, on SQLite and PostgreSQL: a release corrected before has
    one correction, without a note, at its corrected_at; its page still says so."""
    add_readers(settings)
    release = make_release(settings)
    send_release(settings, release.id)
    correct(settings, release.id, NOTE)
    config = alembic_config(settings)
    try:
        command.downgrade(config, "0018")
        tables = sa.inspect(get_engine(settings)).get_table_names()
        assert "release_corrections" not in tables
    finally:
        upgrade(settings)
    with session_scope(settings) as session:
        fixed = session.get_one(Release, release.id)
        assert fixed.corrected_at is not None
        assert [(c.corrected_at, c.corrected_by, c.note) for c in fixed.corrections] == [
            (fixed.corrected_at, "", "")
        ]
        assert session.scalar(sa.select(sa.func.count()).select_from(Correction)) == 1
    build_site(settings)
    page = (settings.public_dir / "releases/agency-signs-agreement.html").read_text()
    assert page.count("Corrected on") == 1 and NOTE not in page


@pytest.mark.parametrize("settings", ["sqlite"], indirect=True)  # the form parser's limit
def test_the_correction_form_takes_a_body_over_a_mebibyte(on_redis: Settings) -> None:
    """A corrected body may be as long as a release's (2 MB): the form parser's default of
    1 MiB a field does not refuse it."""
    settings = on_redis
    add_readers(settings)
    release = make_release(settings)
    send_release(settings, release.id)
    base = f"/admin/releases/{release.id}"
    long_body = "\n\n".join(["A corrected paragraph of the annex."] * 29_000)
    assert len(long_body) > 1024 * 1024
    with logged_in_as(settings, "pia@example.org", "publisher") as browser:
        form = browser.get(f"{base}/correct")
        typed = {"csrf": csrf_of(form.text), "title": "Agency signs agreement",
                 "lead": "The Agency signed it.", "body": long_body, "note": NOTE}  # fmt: skip
        done = browser.post(f"{base}/correct", data=typed, follow_redirects=False)
        assert done.status_code == 303, done.text[:300]
