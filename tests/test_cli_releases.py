"""`distributor releases list|show|update|delete` and `--at` in local time, as a press officer or a
script runs them (the command's main(), in this process): the list is newest first and filters as
asked, its --json and `show --json` are what the API answers, a draft is replaced or deleted (its
slug free again) and nothing else is, each change is in the audit trail, and `--at` without an
offset is read in DISTRIBUTOR_TIMEZONE. The API's DELETE is tested in
tests/test_api_release_delete.py."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Release
from distributor.releases.lifecycle import mark_published
from distributor.web import create_app
from tests.helpers import add_topics, make_release, new_token, published, release_text
from tests.processes import invoke_cli

HEADER = ["id", "state", "language", "date", "slug", "title"]


def releases_cli(settings: Settings, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return invoke_cli(settings, "releases", *args, **extra)


def ok(settings: Settings, *args: str, **extra: str) -> str:
    done = releases_cli(settings, *args, **extra)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def dated(settings: Settings, date: str, **kwargs: str) -> int:
    """A draft like make_release's, dated ``date`` (front matter)."""
    text = release_text(**kwargs).replace("2026-11-20T09:00:00+01:00", date)
    path = settings.data_dir / f"{kwargs.get('slug', 'r')}.md"
    path.write_text(text)
    return int(ok(settings, "create", str(path)).strip())


def release_row(settings: Settings, release_id: int) -> Release | None:
    with session_scope(settings) as session:
        return session.get(Release, release_id)


def file_with(tmp_path: Path, name: str, **kwargs: str) -> Path:
    path = tmp_path / name
    path.write_text(release_text(**kwargs))
    return path


def test_list_is_newest_first_filters_and_its_json_is_the_apis(sqlite_settings: Settings) -> None:
    s = sqlite_settings
    add_topics(s, "climate")
    old = dated(s, "2026-11-20T09:00:00+01:00", slug="old-draft", title="Old draft")
    new = dated(s, "2026-11-22T09:00:00+01:00", slug="nouvelle", title="Nouvelle", lang="fr")
    mid = dated(s, "2026-11-21T18:30:00+01:00", slug="middle", title="Middle one")
    with session_scope(s) as session:
        mark_published(session, new)

    lines = [line.split("\t") for line in ok(s, "list").splitlines()]
    assert lines[0] == HEADER
    assert lines[1:] == [
        [str(new), "published", "fr", "2026-11-22 09:00 CET", "nouvelle", "Nouvelle"],
        [str(mid), "draft", "en", "2026-11-21 18:30 CET", "middle", "Middle one"],
        [str(old), "draft", "en", "2026-11-20 09:00 CET", "old-draft", "Old draft"],
    ]
    ids = lambda out: [line.split("\t")[0] for line in out.splitlines()[1:]]  # noqa: E731
    assert ids(ok(s, "list", "--state", "draft")) == [str(mid), str(old)]
    assert ids(ok(s, "list", "--lang", "fr")) == [str(new)]
    assert ids(ok(s, "list", "--state", "published", "--lang", "en")) == []
    # The date in the press office's zone, whichever it is.
    in_utc = ok(s, "list", "--lang", "fr", DISTRIBUTOR_TIMEZONE="UTC")
    assert "\t2026-11-22 08:00 UTC\t" in in_utc
    assert releases_cli(s, "list", "--state", "lost").returncode == 2  # not a state: a usage error

    listed = json.loads(ok(s, "list", "--json"))
    token = new_token(s, "desk", ["releases"])
    with TestClient(create_app(s)) as client:
        api = client.get("/api/releases", headers={"Authorization": f"Bearer {token}"}).json()
    assert listed == api["items"]
    assert [r["id"] for r in listed] == [new, mid, old]
    assert json.loads(ok(s, "list", "--json", "--state", "draft", "--lang", "fr")) == []


def test_show_prints_the_fields_and_counts_and_its_json_is_the_apis(
    sqlite_settings: Settings,
) -> None:
    s = sqlite_settings
    rid = published(s, 2)  # two deliveries planned, none sent yet
    shown = ok(s, "show", str(rid))
    assert f"id:                 {rid}\n" in shown
    assert "state:              published\n" in shown
    assert "title:              Agency signs agreement\n" in shown
    assert "date:               2026-11-20 09:00 CET (08:00 UTC)\n" in shown
    assert "topics:             climate\n" in shown
    assert "deliveries:         planned 2 · pending 2 · sent 0 · deferred 0" in shown

    token = new_token(s, "desk", ["releases"])
    with TestClient(create_app(s)) as client:
        api = client.get(f"/api/releases/{rid}", headers={"Authorization": f"Bearer {token}"})
    assert json.loads(ok(s, "show", str(rid), "--json")) == api.json()

    missing = releases_cli(s, "show", "999")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: no release with id 999"


def test_update_replaces_a_draft_only(sqlite_settings: Settings, tmp_path: Path) -> None:
    s = sqlite_settings
    done = published(s, 1)  # topic climate, and a release published
    draft = make_release(s, slug="the-draft").id
    new = file_with(tmp_path, "new.md", title="A new title", slug="the-draft")
    said = ok(s, "update", str(draft), str(new))
    assert said.strip() == f"release {draft} updated: /releases/the-draft"
    assert "title:              A new title\n" in ok(s, "show", str(draft))

    other = file_with(tmp_path, "other.md", title="Not this way")
    refused = releases_cli(s, "update", str(done), str(other))
    assert refused.returncode == 1
    assert f"error: release {done} is published: only a draft is edited" in refused.stderr
    assert "correct a published one" in refused.stderr
    assert release_row(s, done).title == "Agency signs agreement"  # type: ignore[union-attr]

    trail = invoke_cli(s, "audit", "--action", "update").stdout.splitlines()
    assert len(trail) == 1 and f"  update  release {draft}" in trail[0]


def test_deleting_a_draft_frees_its_slug_and_is_recorded(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    s = sqlite_settings
    add_topics(s, "climate")
    draft = make_release(s, title="Draft to drop").id
    said = ok(s, "delete", str(draft))
    assert said.strip() == (
        f"release {draft} deleted (Draft to drop); its slug agency-signs-agreement is free"
    )
    assert release_row(s, draft) is None
    assert releases_cli(s, "show", str(draft)).returncode == 1

    # Its slug is free for a new release, which gets a new id (ids are never reused).
    again = int(ok(s, "create", str(file_with(tmp_path, "again.md"))).strip())
    assert again > draft
    assert release_row(s, again).slug == "agency-signs-agreement"  # type: ignore[union-attr]

    (event,) = invoke_cli(s, "audit", "--action", "delete").stdout.splitlines()
    assert event.endswith(
        f"  delete  release {draft}  slug=agency-signs-agreement title=Draft to drop"
    )
    assert "  cli:" in event

    # A published release is not deleted: it is withdrawn (what was sent stays on record).
    with session_scope(s) as session:
        mark_published(session, again)
    refused = releases_cli(s, "delete", str(again))
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: release {again} is published: only a draft is deleted "
        "(withdraw a published release instead)"
    )
    assert release_row(s, again) is not None
    assert releases_cli(s, "delete", "999").stderr.strip() == "error: no release with id 999"


def test_deleting_an_original_leaves_its_translation_on_its_own(
    sqlite_settings: Settings,
) -> None:
    s = sqlite_settings
    add_topics(s, "climate")
    original = make_release(s).id
    text = release_text(lang="fr", slug="accord", title="Accord").replace(
        "slug: accord", "slug: accord\ntranslation_of: agency-signs-agreement"
    )
    (s.data_dir / "fr.md").write_text(text)
    french = int(ok(s, "create", str(s.data_dir / "fr.md")).strip())
    assert release_row(s, french).translation_of_id == original  # type: ignore[union-attr]

    said = ok(s, "delete", str(original))
    assert f"; release(s) {french} no longer translate it" in said
    kept = release_row(s, french)
    assert kept is not None and kept.translation_of_id is None
    assert "translation of:     -\n" in ok(s, "show", str(french))
    (event,) = invoke_cli(s, "audit", "--action", "delete").stdout.splitlines()
    assert f"unlinked=[{french}]" in event


def scheduled_at(settings: Settings, release_id: int) -> datetime | None:
    release = release_row(settings, release_id)
    assert release is not None
    return release.scheduled_at


def test_at_without_an_offset_is_read_in_the_press_offices_zone(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    s = sqlite_settings
    add_topics(s, "climate")
    rid = make_release(s).id
    paris = {"DISTRIBUTOR_TIMEZONE": "Europe/Paris"}

    said = ok(s, "publish", str(rid), "--at", "2031-01-14T09:00", **paris)
    assert "scheduled for 2031-01-14 09:00 CET (08:00 UTC)" in said
    assert scheduled_at(s, rid) == datetime(2031, 1, 14, 8, 0, tzinfo=UTC)
    # In summer Paris is 2 hours ahead; an offset given is kept, whatever the zone.
    ok(s, "publish", str(rid), "--at", "2031-07-14T09:00", **paris)
    assert scheduled_at(s, rid) == datetime(2031, 7, 14, 7, 0, tzinfo=UTC)
    ok(s, "publish", str(rid), "--at", "2031-01-14T09:00+00:00", **paris)
    assert scheduled_at(s, rid) == datetime(2031, 1, 14, 9, 0, tzinfo=UTC)

    # The hour the clocks skip does not exist there: refused, the offset asked for.
    skipped = releases_cli(s, "publish", str(rid), "--at", "2031-03-30T02:30", **paris)
    assert skipped.returncode == 1
    assert "does not exist in Europe/Paris" in skipped.stderr
    assert scheduled_at(s, rid) == datetime(2031, 1, 14, 9, 0, tzinfo=UTC)  # unchanged

    # `publish FILE.md --at` too, in another zone.
    path = file_with(tmp_path, "other.md", slug="other")
    new_york = invoke_cli(
        s, "publish", str(path), "--at", "2031-01-14T09:00", DISTRIBUTOR_TIMEZONE="America/New_York"
    )
    assert new_york.returncode == 0, new_york.stderr
    with session_scope(s) as session:
        other = session.query(Release).filter_by(slug="other").one()
        assert other.scheduled_at == datetime(2031, 1, 14, 14, 0, tzinfo=UTC)
    # A local time in the past is still refused, before the draft is stored.
    past = invoke_cli(s, "publish", str(file_with(tmp_path, "p.md", slug="p")), "--at",
                   "2026-01-14T09:00")  # fmt: skip
    assert past.returncode == 1 and "is in the past" in past.stderr
    with session_scope(s) as session:
        assert session.query(Release).filter_by(slug="p").first() is None
