"""The ``releases`` commands that write and check a release before it goes out: create,
duplicate, translate, list, show, update, delete, preview, test (``publishing`` has the
rest of the group)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from distributor import actions
from distributor.cli.context import local_time, settings
from distributor.cli.progress import err, out
from distributor.core.errors import ConfigError, ServiceError
from distributor.core.states import ReleaseState

if TYPE_CHECKING:
    from distributor.core.config import Settings
    from distributor.releases.source import ReleaseDraft

releases_app = typer.Typer(
    no_args_is_help=True, help="Releases: list, show, create, update, delete, publish, status."
)


def read_release(s: Settings, file: Path) -> ReleaseDraft:
    """The release in ``file``; its images given as local paths are read relative to the
    file's directory (and stored, once the rest of the release has been checked)."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot be read: {exc}") from exc
    from distributor.releases.source import parse_release

    return parse_release(text, str(file), s, base_dir=file.absolute().parent)


def create_from_file(s: Settings, file: Path) -> tuple[int, str]:
    """Create a draft release from ``file`` (see ``read_release``); returns its id and its
    page's site path. Says on stderr when the slug made from the title had to be cut."""
    from distributor.core import db
    from distributor.core.urls import release_path

    draft = read_release(s, file)
    with db.session_scope(s) as session:
        from distributor.releases.lifecycle import create_release

        release = create_release(session, s, draft)
        release_id, slug = release.id, release.slug
    warn_if_cut(draft, slug)
    return release_id, release_path(slug)


def warn_if_cut(draft: ReleaseDraft, slug: str) -> None:
    """Say on stderr when the slug made from the draft's title had to be cut."""
    from distributor.core.slugs import SLUG_MAX
    from distributor.releases.source import slug_cut_from

    cut_from = slug_cut_from(draft)
    if cut_from is not None:
        err.print(
            f"warning: the title makes a slug of {cut_from} characters, longer than "
            f"{SLUG_MAX}: it was cut between two words to {len(slug)} ({slug}); set 'slug' "
            "in the front matter to choose it",
            markup=False,
            highlight=False,
        )


@releases_app.command("create")
def releases_create(file: Path) -> None:
    """Create a draft release from Markdown with front matter; prints its id (alone on
    stdout, for scripts: ID=$(distributor releases create FILE.md)) and, on stderr, its
    address."""
    release_id, path = create_from_file(settings(), file)
    out.print(release_id)
    err.print(f"release {release_id} created: {path}", markup=False, highlight=False)


@releases_app.command("duplicate")
def releases_duplicate(release_id: int) -> None:
    """Start a new draft from a release (any state): its text, language, topics, contacts,
    images and documents, dated now, under the slug SLUG-copy; prints the new id (alone on
    stdout) and, on stderr, its address."""
    from distributor.core import audit

    copy = actions.duplicate(settings(), release_id, audit.cli_actor())
    out.print(copy.id)
    err.print(f"release {copy.id} created from release {release_id}: /releases/{copy.slug}",
              markup=False, highlight=False)  # fmt: skip


@releases_app.command("translate")
def releases_translate(
    release_id: int,
    lang: Annotated[str, typer.Option(help="The new version's language (DISTRIBUTOR_LANGUAGES)")],
) -> None:
    """Start a release's version in another language: a draft with its text to translate,
    linked to it, with its date and embargo, under SLUG-LANG; prints the new id (alone on
    stdout) and, on stderr, its address. Then `releases update ID FILE.md` with the
    translated text, or edit it in the workspace."""
    from distributor.core import audit

    made = actions.duplicate(settings(), release_id, audit.cli_actor(), lang)
    err.print(f"release {made.id} ({lang}) created from release {release_id}: "
              f"/releases/{made.slug}", markup=False, highlight=False)  # fmt: skip
    out.print(made.id)


@releases_app.command("list")
def releases_list(
    state: Annotated[ReleaseState | None, typer.Option(help="Only releases in this state")] = None,
    lang: Annotated[str | None, typer.Option(help="Only releases in this language")] = None,
    topic: Annotated[str | None, typer.Option(help="Only releases on this topic (slug)")] = None,
    search: Annotated[
        str | None, typer.Option(help="Only releases with all these words in the title")
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="A JSON array, with the fields of GET /api/releases")
    ] = False,
) -> None:
    """Every release, newest first: id, state, language, date (in DISTRIBUTOR_TIMEZONE),
    slug and title, tab-separated (for scripts too); or with --json a JSON array."""
    from distributor.core import db
    from distributor.reporting.releases import find_releases

    s = settings()
    with db.session_scope(s) as session:
        page = find_releases(session, state, lang, topic=topic, search=search)
    if json_:
        items = [item.model_dump(mode="json") for item in page.items]
        typer.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    typer.echo("id\tstate\tlanguage\tdate\tslug\ttitle")
    for r in page.items:
        when = f"{r.date.astimezone(s.zone):%Y-%m-%d %H:%M %Z}"
        typer.echo("\t".join([str(r.id), r.state, r.language, when, r.slug, r.title]))


@releases_app.command("show")
def releases_show(
    release_id: int,
    json_: Annotated[
        bool, typer.Option("--json", help="The JSON that GET /api/releases/ID answers")
    ] = False,
) -> None:
    """One release: its fields (times in DISTRIBUTOR_TIMEZONE) and its delivery counts."""
    from distributor.core import db
    from distributor.releases.lifecycle import get_release
    from distributor.reporting.releases import release_out

    s = settings()
    with db.session_scope(s) as session:
        release = release_out(session, s, get_release(session, release_id))
    if json_:
        typer.echo(json.dumps(release.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return

    def when(moment: datetime | None) -> str:
        return "-" if moment is None else local_time(s, moment)

    c = release.counts
    withdrawn = when(release.withdrawn_at)
    if release.withdrawn_at is not None:
        withdrawn += f" by {release.withdrawn_by}"
        withdrawn += f": {release.withdrawn_reason}" if release.withdrawn_reason else ""
    rows = [
        ("id", str(release.id)),
        ("state", release.state),
        ("title", release.title),
        ("language", release.language),
        ("slug", release.slug),
        ("url", release.url),
        ("topics", ", ".join(release.topics) or "-"),
        ("translation of", str(release.translation_of or "-")),
        ("translations", ", ".join(map(str, release.translations)) or "-"),
        ("date", when(release.date)),
        ("dateline", release.dateline or "-"),
        ("embargo", when(release.embargo_at)),
        ("scheduled", when(release.scheduled_at)),
        ("published", when(release.published_at)),
        ("corrected", when(release.corrected_at)),
        *(  # each correction, with what changed
            ("  correction", f"{when(c.corrected_at)}: {c.note or '(no note)'}")
            for c in release.corrections
        ),
        ("withdrawn", withdrawn),
        ("created", when(release.created_at)),
        ("updated", when(release.updated_at)),
        (
            "deliveries",
            f"planned {c.planned} · pending {c.pending} · sent {c.sent} · deferred "
            f"{c.deferred} · failed {c.failed} · cancelled {c.cancelled}",
        ),
        ("bounces", f"{c.hard_bounces} hard, {c.soft_bounces} soft"),
        ("unsubscribed since", str(c.unsubscribed_since)),
        ("time to send", "-" if c.time_to_send is None else f"{c.time_to_send:.1f} s"),
    ]
    rows += [(f"no version in {lang}", f"{n} follower(s)") for lang, n in c.without_version.items()]
    for label, value in rows:
        typer.echo(f"{label + ':':<20}{value}")


@releases_app.command("update")
def releases_update(release_id: int, file: Path) -> None:
    """Replace a draft with FILE.md (every field; its slug too when the file sets one).
    Only a draft: unschedule a scheduled release first, correct a published one."""
    from distributor.core import audit
    from distributor.core.urls import release_path

    s = settings()
    draft = read_release(s, file)
    release = actions.update_draft(s, release_id, draft, audit.cli_actor())
    warn_if_cut(draft, release.slug)
    out.print(
        f"release {release_id} updated: {release_path(release.slug)}",
        markup=False,
        highlight=False,
    )


@releases_app.command("delete")
def releases_delete(release_id: int) -> None:
    """Delete a draft: its slug is free again (its id is never reused). Only a draft: a
    published release is withdrawn instead. Images it used stay stored."""
    from distributor.core import audit

    done = actions.delete_draft(settings(), release_id, audit.cli_actor())
    said = f"release {release_id} deleted ({done.title}); its slug {done.slug} is free"
    if done.unlinked:
        ids = ", ".join(map(str, done.unlinked))
        said += f"; release(s) {ids} no longer translate it"
    out.print(said, markup=False, highlight=False)


@releases_app.command("preview")
def releases_preview(
    release_id: int,
    lang: Annotated[
        str | None, typer.Option(help="The language of the version (default: the release's)")
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write to")] = Path(),
) -> None:
    """Write the release's email to release-ID-LANG.html and .txt; prints their paths.

    Exactly what a subscriber reading LANG gets (links to no real subscriber): open the files
    in a browser or an editor. Sends nothing, changes nothing."""
    from distributor.mail.preview import render_preview

    preview = render_preview(settings(), release_id, lang)
    paths = [out_dir / f"release-{release_id}-{preview.language}.{ext}" for ext in ("html", "txt")]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for path, body in zip(paths, (preview.html, preview.text), strict=True):
            path.write_text(body, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{out_dir}: cannot write the preview: {exc.strerror}") from exc
    for path in paths:
        typer.echo(path)


@releases_app.command("test")
def releases_test(
    release_id: int,
    to: Annotated[list[str], typer.Option("--to", help="Addresses, comma-separated (at most 20)")],
) -> None:
    """Send the release's email, marked [TEST], to a few addresses only.

    Prints each address's outcome. Nothing is recorded and the release stays as it is. Exit
    code 1 for a bad address (nothing sent) or one the server refused, 69 when the server
    could not be reached."""
    from distributor.mail.preview import send_test

    addresses = [a.strip() for item in to for a in item.split(",") if a.strip()]
    outcomes = send_test(settings(), release_id, addresses)
    for outcome in outcomes:
        typer.echo(outcome.describe())
    if any(o.code == 0 for o in outcomes):
        raise ServiceError("the mail server stopped answering; some addresses got nothing")
    if not all(o.sent for o in outcomes):
        raise typer.Exit(1)
