"""The ``distributor`` command. Turns domain errors into messages and exit codes:
1 for rejected input or a state conflict, 69 when a service is unavailable, 78 for a
configuration that cannot work."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from distributor import actions
from distributor.cli.progress import err, out, print_status, watch
from distributor.core import audit, db
from distributor.core.apitokens import DEFAULT_SCOPES, SCOPES, create_token, list_tokens
from distributor.core.apitokens import revoke as revoke_token
from distributor.core.config import (
    Settings,
    check_secret_key,
    configured_secrets,
    describe,
    inherited_environment,
    load_settings,
)
from distributor.core.errors import (
    ConfigError,
    DistributorError,
    ImportRejected,
    InputError,
    ReleaseInputError,
    ServiceError,
)
from distributor.core.filemodes import open_private_text
from distributor.core.logs import setup_logging
from distributor.core.models import ReleaseState
from distributor.core.queue import TaskQueue
from distributor.core.slugs import SLUG_MAX
from distributor.core.urls import release_path

if TYPE_CHECKING:
    from distributor.releases.source import ReleaseDraft

# Modules only some commands need (bounces, the site builder, exports, reports, the release
# parser and lifecycle, the status, DKIM, the broker's Redis client) are imported in those
# commands: every invocation pays for what is imported here (`tokens list` took 1.1 s, 0.6 s
# of it imports no command of it used), and the tests run hundreds.

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Publish press releases by email and feeds.",
)
db_app = typer.Typer(no_args_is_help=True, help="The database.")
topics_app = typer.Typer(no_args_is_help=True, help="Topics subscribers follow.")
contacts_app = typer.Typer(
    no_args_is_help=True, help="The address book of press contacts releases print."
)
subs_app = typer.Typer(no_args_is_help=True, help="Subscribers: import, export, erase, accredit.")
releases_app = typer.Typer(
    no_args_is_help=True, help="Releases: list, show, create, update, delete, publish, status."
)
feeds_app = typer.Typer(no_args_is_help=True, help="Feeds (kept for scripts: see `site`).")
site_app = typer.Typer(no_args_is_help=True, help="The static site: newsroom pages and feeds.")
tokens_app = typer.Typer(no_args_is_help=True, help="Bearer tokens for the admin API.")
bounces_app = typer.Typer(no_args_is_help=True, help="Bounces: delivery status notifications.")
settings_app = typer.Typer(
    no_args_is_help=True, help="The office's identity: name, logo, colour, address, sender."
)
users_app = typer.Typer(
    no_args_is_help=True, help="The press office's accounts: writer, publisher, admin."
)
app.add_typer(db_app, name="db")
app.add_typer(topics_app, name="topics")
app.add_typer(contacts_app, name="contacts")
app.add_typer(subs_app, name="subscribers")
app.add_typer(releases_app, name="releases")
app.add_typer(feeds_app, name="feeds")
app.add_typer(site_app, name="site")
app.add_typer(tokens_app, name="tokens")
app.add_typer(bounces_app, name="bounces")
app.add_typer(users_app, name="users")
app.add_typer(settings_app, name="settings")


def settings() -> Settings:
    """The Settings for this invocation (from the environment)."""
    try:
        return load_settings()
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from exc
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the latest schema."""
    s = settings()
    db.upgrade(s)
    out.print(f"database is up to date ({s.effective_database_url.split('@')[-1]})")


@topics_app.command("add")
def topics_add(
    slug: str,
    name: Annotated[
        list[str], typer.Option("--name", help="Name, or LANG:Name (repeat for each language)")
    ],
) -> None:
    """Add a topic, e.g. `topics add climate --name Climate --name fr:Climat`."""
    from distributor.releases.topics import add_topic, parse_names

    s = settings()
    with db.session_scope(s) as session:
        topic = add_topic(session, slug, parse_names(name, s.languages[0]))
        out.print(f"topic {topic.slug} added ({', '.join(topic.names.values())})")


@topics_app.command("list")
def topics_list() -> None:
    """List the topics."""
    from distributor.releases.topics import list_topics

    with db.session_scope(settings()) as session:
        for topic in list_topics(session):
            names = ", ".join(f"{k}: {v}" for k, v in sorted(topic.names.items()))
            out.print(f"{topic.slug}\t{names}")


ContactOption = Annotated[str | None, typer.Option(help="Empty to clear it")]


@contacts_app.command("list")
def contacts_list(
    json_: Annotated[
        bool, typer.Option("--json", help="A JSON array, with the fields of GET /api/contacts")
    ] = False,
) -> None:
    """The address book, by name: id, name, role, phone, email, tab-separated (for scripts
    too); or with --json a JSON array."""
    from distributor.office.contacts import list_contacts

    with db.session_scope(settings()) as session:
        found = [(c.id, c.name, c.role, c.phone, c.email or "") for c in list_contacts(session)]
    keys = ("id", "name", "role", "phone", "email")
    if json_:
        items = [dict(zip(keys, row, strict=True)) for row in found]
        typer.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    typer.echo("\t".join(keys))
    for row in found:
        typer.echo("\t".join(str(cell) for cell in row))


@contacts_app.command("add")
def contacts_add(
    name: str,
    role: Annotated[str, typer.Option(help="e.g. Head of press")] = "",
    phone: Annotated[str, typer.Option(help="As people write it, e.g. +33 1 00 00 00 00")] = "",
    email: Annotated[str, typer.Option(help="At most one entry per address")] = "",
) -> None:
    """Add a press contact to the address book, e.g. `contacts add "Ann Lee" --role
    Spokesperson --email ann.lee@example.org`; prints its id."""
    fields = {"name": name, "role": role, "phone": phone, "email": email}
    contact = actions.add_contact(settings(), fields, audit.cli_actor())
    out.print(f"press contact {contact.id} added ({contact.name})", markup=False, highlight=False)


@contacts_app.command("update")
def contacts_update(
    contact_id: int,
    name: Annotated[str | None, typer.Option()] = None,
    role: ContactOption = None,
    phone: ContactOption = None,
    email: ContactOption = None,
) -> None:
    """Change a press contact: the options given replace its fields, the others stay.
    Releases already written keep the contact as they printed it."""
    given = {"name": name, "role": role, "phone": phone, "email": email}
    changes = {key: value for key, value in given.items() if value is not None}
    if not changes:
        raise InputError("give at least one of --name, --role, --phone, --email")
    contact = actions.update_contact(settings(), contact_id, changes, audit.cli_actor())
    out.print(f"press contact {contact.id} changed", markup=False, highlight=False)


@contacts_app.command("delete")
def contacts_delete(contact_id: int) -> None:
    """Remove a press contact from the address book (releases keep their copy)."""
    actions.delete_contact(settings(), contact_id, audit.cli_actor())
    out.print(f"press contact {contact_id} deleted", markup=False, highlight=False)


@settings_app.command("show")
def settings_show(
    as_json: Annotated[bool, typer.Option("--json", help="As JSON, as GET /api/settings")] = False,
) -> None:
    """The identity in effect, a field a line: key, value, and the variable setting it."""
    from distributor.office.identity import describe as describe_identity

    s = settings()
    with db.session_scope(s) as session:
        states = describe_identity(session, s)
    if as_json:
        fields = [{"key": f.key, "label": f.label, "value": f.value, "set_by": f.set_by}
                  for f in states]  # fmt: skip
        out.print_json(json.dumps(fields))
        return
    for f in states:
        value = f.value if isinstance(f.value, str) else ",".join(map(str, f.value))
        value = value.replace("\n", " / ")
        where = f"set by {f.set_by}" if f.set_by else ""
        out.print(f"{f.key}\t{value}\t{where}".rstrip(), markup=False, highlight=False)


@settings_app.command("set")
def settings_set(key: str, value: str) -> None:
    """Set a field of the identity (`settings show` lists them): `settings set
    accent_colour '#0b5394'`; "" puts it back to its default; `logo FILE` (PNG or SVG);
    `press_contacts 1,3` (address book ids). Use "\\n" for a line break of the address."""
    s = settings()
    upload = None
    changes: dict[str, object] = {}
    if key == "logo" and value:
        path = Path(value)
        try:
            upload = (path.name, path.read_bytes()[: 1024 * 1024 + 1])
        except OSError as exc:
            raise InputError(f"logo: cannot read {value}: {exc.strerror}", field="logo") from exc
    else:
        changes[key] = value.replace("\\n", "\n") if key == "postal_address" else value
    queue = TaskQueue(s)
    try:
        changed = actions.update_identity(s, queue, changes, audit.cli_actor(), upload)
    finally:
        queue.close()
    what = ", ".join(sorted(changed)) if changed else "nothing (the value was already so)"
    out.print(f"settings changed: {what}", markup=False, highlight=False)


@subs_app.command("import")
def subscribers_import(
    file: Path,
    confirmed: Annotated[bool, typer.Option(help="Import as confirmed (needs consent)")] = False,
    consent_source: Annotated[str, typer.Option(help="Where consent was given")] = "",
    skip_invalid: Annotated[
        bool, typer.Option(help="Import the good rows; write the bad ones to --rejects")
    ] = False,
    rejects: Annotated[Path | None, typer.Option(help="Where bad rows go")] = None,
) -> None:
    """Import subscribers from CSV: email,name,language,topics (topics separated by ';')."""
    from distributor.audience.subscribers import write_rejects

    s = settings()
    try:
        stream = file.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{file}: {exc.strerror}") from exc
    with stream:
        report = actions.import_subscribers(
            s,
            stream,
            str(file),
            audit.cli_actor(),
            confirmed=confirmed,
            consent_source=consent_source,
            skip_invalid=skip_invalid,
        )
    out.print(
        f"{report.added} added, {report.updated} updated, "
        f"{report.unchanged} left unchanged (unsubscribed or bounced)"
    )
    if report.suppressed:
        out.print(f"{report.suppressed} not added: erased, on the suppression list")
    if report.rejected:
        target = rejects or file.with_suffix(".rejects.csv")
        write_rejects(report.rejected, target)
        err.print(f"{len(report.rejected)} bad row(s) skipped, written to {target}")


@subs_app.command("export")
def subscribers_export(
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    email: Annotated[
        str | None, typer.Option(help="Print everything held on this one person, as JSON")
    ] = None,
) -> None:
    """Export every subscriber as CSV (to stdout, or --output); with --email, everything
    held on one person as JSON (GDPR access request)."""
    from distributor.audience.privacy import export_person
    from distributor.audience.subscribers import export_csv

    with db.session_scope(settings()) as session:
        if email is not None:
            text = json.dumps(export_person(session, email), indent=2, ensure_ascii=False)
            if output is None:
                print(text)
            else:
                with open_private_text(output) as stream:
                    stream.write(text + "\n")
                err.print(f"everything held on {email} written to {output}")
        elif output is None:
            export_csv(session, sys.stdout)
        else:
            with open_private_text(output, newline="") as stream:
                n = export_csv(session, stream)
            err.print(f"{n} subscribers written to {output}")


@subs_app.command("erase")
def subscribers_erase(
    email: Annotated[str, typer.Option(help="The address of the person to erase")],
) -> None:
    """Erase one person (GDPR): their subscriber record, subscriptions and deliveries;
    only a hash of the address is kept, so no import can add them again. Asks nothing."""
    held = actions.erase(settings(), email, audit.cli_actor())
    out.print(
        f"erased {held['email']}: subscriber {held['id']}, {len(held['topics'])} topic "
        f"subscription(s), {len(held['deliveries'])} delivery record(s); "
        "the address's hash is on the suppression list"
    )


@subs_app.command("accredit")
def subscribers_accredit(
    email: Annotated[str, typer.Argument(help="The subscriber's address")],
    refuse: Annotated[bool, typer.Option("--refuse", help="Refuse their request")] = False,
    revoke: Annotated[bool, typer.Option("--revoke", help="Take their access away")] = False,
    reason: Annotated[
        str, typer.Option(help="Why (refused or revoked): shown to the journalist")
    ] = "",
    outlet: Annotated[str, typer.Option(help="The outlet they write for (replaces theirs)")] = "",
    role: Annotated[str, typer.Option(help="Their role there (replaces theirs)")] = "",
) -> None:
    """Grant a subscriber embargo access (embargoed advance copies of releases on their
    topics), with or without their request; --refuse a request, --revoke a grant. Each
    decision is in the audit trail."""
    from distributor.audience.accreditation import Decision
    from distributor.audience.subscribers import subscriber_id_by_email

    if refuse and revoke:
        raise typer.BadParameter("--refuse or --revoke, not both")
    decision = Decision.REFUSE if refuse else Decision.REVOKE if revoke else Decision.GRANT
    s = settings()
    with db.session_scope(s) as session:
        subscriber_id = subscriber_id_by_email(session, email)
    now = actions.decide_accreditation(
        s, subscriber_id, decision, audit.cli_actor(), reason=reason, outlet=outlet, role=role
    )
    who = now.email + (f" ({now.role}, {now.outlet})" if now.role or now.outlet else "")
    said = {
        Decision.GRANT: " receives embargoed advance copies of releases on their topics",
        Decision.REFUSE: ": request refused",
        Decision.REVOKE: ": receives no more advance copies",
    }[decision]
    out.print(f"{now.status}: {who}{said}")


@subs_app.command("accreditations")
def subscribers_accreditations(
    status: Annotated[
        str, typer.Option(help="Only these: requested, granted, refused or revoked")
    ] = "",
) -> None:
    """Journalists' embargo access, tab-separated: requests waiting first (oldest first),
    then the decisions, latest first."""
    from distributor.audience.accreditation import accreditations
    from distributor.core.models import AccreditationStatus

    try:
        only = AccreditationStatus(status.strip().lower()) if status else None
    except ValueError:
        known = ", ".join(AccreditationStatus)
        raise typer.BadParameter(
            f"{status!r} is not one of {known}", param_hint="--status"
        ) from None
    s = settings()
    with db.session_scope(s) as session:
        found = accreditations(session, only)
    typer.echo("email\tstatus\toutlet\trole\tasked\tdecided\tby\treason")
    for a in found:
        when = [a.requested_at, a.decided_at]
        cells = [a.email, a.status, a.outlet or "-", a.role or "-"]
        cells += [f"{w.astimezone(s.zone):%Y-%m-%d %H:%M %Z}" if w else "-" for w in when]
        cells += [a.decided_by or "-", a.reason or "-"]
        typer.echo("\t".join(cells))


@bounces_app.command("ingest")
def bounces_ingest(
    path: Annotated[
        str, typer.Argument(help="A Maildir directory, an mbox file, or - for one message")
    ],
) -> None:
    """Read bounces (RFC 3464 delivery status notifications) and stop mailing addresses
    that fail: hard bounces at once, soft ones after DISTRIBUTOR_SOFT_BOUNCE_LIMIT.

    Each message on its own: one processed is moved to the Maildir's cur/ (seen); one that
    cannot be processed goes to $DISTRIBUTOR_DATA_DIR/quarantine/bounces/ with the reason
    logged, and the run goes on. Exit code 1 when this run quarantined any."""
    from distributor.mail.inbox import Quarantine, open_inbox
    from distributor.outbox.bounces import ingest_inbox

    s = settings()
    inbox = open_inbox(path)
    quarantine = Quarantine(s.quarantine_dir, "bounces")
    report = ingest_inbox(s, inbox, quarantine)
    out.print(
        f"{report.messages} message(s): {report.hard} hard bounce(s), {report.soft} soft, "
        f"{report.bounced} subscriber(s) now bounced, {report.ignored} ignored"
        + (f", {report.duplicates} already recorded" if report.duplicates else "")
        + (f", {report.in_quarantine} already in quarantine" if report.in_quarantine else "")
    )
    if report.quarantined:
        raise InputError(
            f"{report.quarantined} message(s) quarantined in {quarantine.path}: see the log "
            f"above and {quarantine.log}"
        )


@tokens_app.command("create")
def tokens_create(
    name: str,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help=f"Repeat for each: {', '.join(SCOPES)} (default: {' and '.join(DEFAULT_SCOPES)};"
            " users, to manage accounts, and settings, the office's identity, only for an"
            " admin's token: --user)",
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            help="The account it belongs to: it can do no more than the account's role, and "
            "stops when the account is disabled",
        ),
    ] = None,
) -> None:
    """Create an API token; prints it once (only its hash is stored)."""
    from distributor.office.accounts import find_user

    with db.session_scope(settings()) as session:
        owner = find_user(session, user).id if user is not None else None
        token = create_token(session, name, scope or list(DEFAULT_SCOPES), owner)
    out.print(token, markup=False, highlight=False)
    err.print("Store this token now: it is shown only once and cannot be recovered.")


@tokens_app.command("list")
def tokens_list() -> None:
    """List the API tokens: name, scopes, created, last used, revoked."""
    with db.session_scope(settings()) as session:
        tokens = list_tokens(session)
    typer.echo("name\tscopes\tcreated\tlast used\trevoked")  # tab-separated, for scripts too
    for t in tokens:
        when = [t.created_at, t.last_used_at, t.revoked_at]
        cells = [t.name, ",".join(t.scopes), *(f"{w:%Y-%m-%d %H:%M}Z" if w else "-" for w in when)]
        typer.echo("\t".join(cells))


@tokens_app.command("revoke")
def tokens_revoke(name: str) -> None:
    """Revoke an API token: it stops working at once."""
    with db.session_scope(settings()) as session:
        revoke_token(session, name)
    out.print(f"token {name} revoked", markup=False, highlight=False)


def _new_password(email: str) -> str:
    """The password for ``email``'s account: asked twice on a terminal, else one line read
    from standard input (``printf '%s\\n' "$PASSWORD" | distributor users create …``)."""
    if sys.stdin.isatty():
        return str(typer.prompt(f"Password for {email}", hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline()
    if not line:
        raise InputError("password: none given (type it, or give it on standard input)")
    return line.rstrip("\r\n")


@users_app.command("create")
def users_create(
    email: str,
    role: Annotated[str, typer.Option(help="writer, publisher or admin")],
    name: Annotated[str, typer.Option(help="The name the workspace shows")] = "",
) -> None:
    """Create an account (the first admin is made here). Asks for its password twice on a
    terminal, or reads one line from standard input; at least 12 characters."""
    s = settings()
    password = _new_password(email)
    user = actions.create_user(s, email, role, password, audit.cli_actor(), name=name)
    out.print(f"{user.role} {user.email} created", markup=False, highlight=False)


@users_app.command("invite")
def users_invite(
    email: str,
    role: Annotated[str, typer.Option(help="writer, publisher or admin")],
    name: Annotated[str, typer.Option(help="The name the workspace shows")] = "",
) -> None:
    """Invite someone: they get an email with a link (valid 7 days) to choose their
    password, which makes their account. Inviting an address again replaces the link."""
    s = settings()
    queue = TaskQueue(s)
    try:
        invitation = actions.invite(s, queue, email, role, audit.cli_actor(), name=name)
    finally:
        queue.close()
    out.print(
        f"{invitation.email} invited as {invitation.role}: the link goes by email, valid 7 days",
        markup=False,
        highlight=False,
    )


@users_app.command("list")
def users_list(
    json_: Annotated[
        bool, typer.Option("--json", help="A JSON array, with the fields of GET /api/users")
    ] = False,
) -> None:
    """Every account: address, role, name, last login, disabled; or with --json a JSON
    array."""
    from distributor.office.account_views import user_out
    from distributor.office.accounts import list_users

    s = settings()
    with db.session_scope(s) as session:
        users = list_users(session)
    if json_:
        items = [user_out(u).model_dump(mode="json") for u in users]
        typer.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    typer.echo("email\trole\tname\tlast login\tdisabled")  # tab-separated, for scripts too
    for u in users:
        when = [u.last_login_at, u.disabled_at]
        cells = [u.email, u.role, u.name or "-"]
        cells += [f"{w.astimezone(s.zone):%Y-%m-%d %H:%M %Z}" if w else "-" for w in when]
        typer.echo("\t".join(cells))


@users_app.command("invitations")
def users_invitations(
    json_: Annotated[
        bool,
        typer.Option("--json", help="A JSON array, with the fields of GET /api/users/invitations"),
    ] = False,
) -> None:
    """The invitations not yet accepted, newest first: id, address, role, name, invited
    by, valid until; or with --json a JSON array. (`users uninvite ID` cancels one.)"""
    from distributor.office.account_views import invitation_out
    from distributor.office.invitations import pending_invitations

    s = settings()
    with db.session_scope(s) as session:
        pending = [invitation_out(i) for i in pending_invitations(session)]
    if json_:
        items = [i.model_dump(mode="json") for i in pending]
        typer.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    typer.echo("id\temail\trole\tname\tinvited by\tvalid until")
    for i in pending:
        until = local_time(s, i.expires_at)
        cells = [str(i.id), i.email, i.role, i.name or "-", i.invited_by, until]
        typer.echo("\t".join(cells))


@users_app.command("uninvite")
def users_uninvite(invitation_id: int) -> None:
    """Cancel a pending invitation (see `users invitations`): its link stops working."""
    invitation = actions.cancel_invitation(settings(), invitation_id, audit.cli_actor())
    out.print(f"invitation of {invitation.email} cancelled", markup=False, highlight=False)


@users_app.command("role")
def users_role(
    email: str, role: Annotated[str, typer.Argument(help="writer, publisher or admin")]
) -> None:
    """Change an account's role; it applies from its next request."""
    user = actions.set_user_role(settings(), email, role, audit.cli_actor())
    out.print(f"{user.email} is now {user.role}", markup=False, highlight=False)


@users_app.command("password")
def users_password(email: str) -> None:
    """Set a new password (asked as for `users create`); the account's sessions end."""
    s = settings()
    password = _new_password(email)
    user = actions.set_user_password(s, email, password, audit.cli_actor())
    out.print(f"password of {user.email} changed; its sessions have ended", markup=False)


@users_app.command("disable")
def users_disable(email: str) -> None:
    """Disable an account: its sessions end and its tokens stop working, at once."""
    user = actions.disable_user(settings(), email, audit.cli_actor())
    out.print(f"{user.email} disabled; its sessions have ended", markup=False, highlight=False)


@users_app.command("reset-2fa")
def users_reset_2fa(email: str) -> None:
    """Take two-factor login off an account (a lost phone); its sessions end. If its role
    requires it, it sets it up again at its next login."""
    user = actions.reset_totp(settings(), email, audit.cli_actor())
    out.print(f"two-factor login of {user.email} is off", markup=False, highlight=False)


@users_app.command("enable")
def users_enable(email: str) -> None:
    """Let a disabled account log in again."""
    user = actions.enable_user(settings(), email, audit.cli_actor())
    out.print(f"{user.email} enabled", markup=False, highlight=False)


def _read_release(s: Settings, file: Path) -> ReleaseDraft:
    """The release in ``file``; its images given as local paths are read relative to the
    file's directory (and stored, once the rest of the release has been checked)."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot be read: {exc}") from exc
    from distributor.releases.source import parse_release

    return parse_release(text, str(file), s, base_dir=file.absolute().parent)


def _create(s: Settings, file: Path) -> tuple[int, str]:
    """Create a draft release from ``file`` (see ``_read_release``); returns its id and its
    page's site path. Says on stderr when the slug made from the title had to be cut."""
    draft = _read_release(s, file)
    with db.session_scope(s) as session:
        from distributor.releases.lifecycle import create_release

        release = create_release(session, s, draft)
        release_id, slug = release.id, release.slug
    _warn_if_cut(draft, slug)
    return release_id, release_path(slug)


def _warn_if_cut(draft: ReleaseDraft, slug: str) -> None:
    """Say on stderr when the slug made from the draft's title had to be cut."""
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


def _parse_at(s: Settings, at: str | None, option: str = "--at") -> datetime | None:
    """The time of ``--at`` (or ``option``): None for none or ``now`` (at once). A time
    without an offset is read in DISTRIBUTOR_TIMEZONE; one that does not exist there (the
    hour the clocks skip) or happens twice (the hour they repeat) is refused: say the
    offset."""
    if at is None or at.strip().lower() == "now":
        return None
    try:
        when = datetime.fromisoformat(at)
    except ValueError as exc:
        raise ReleaseInputError(f"{option} {at!r}: not an ISO 8601 date-time") from exc
    if when.tzinfo is not None:
        return when
    first, second = when.replace(tzinfo=s.zone, fold=0), when.replace(tzinfo=s.zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        back = first.astimezone(UTC).astimezone(s.zone).replace(tzinfo=None)
        how = "does not exist" if back != when else "happens twice"
        raise ReleaseInputError(
            f"{option} {at!r}: {how} in {s.timezone} (a clock change); give the offset, "
            f"e.g. {first.isoformat(timespec='minutes')}"
        )
    return first


@releases_app.command("create")
def releases_create(file: Path) -> None:
    """Create a draft release from Markdown with front matter; prints its id (alone on
    stdout, for scripts: ID=$(distributor releases create FILE.md)) and, on stderr, its
    address."""
    release_id, path = _create(settings(), file)
    out.print(release_id)
    err.print(f"release {release_id} created: {path}", markup=False, highlight=False)


@releases_app.command("duplicate")
def releases_duplicate(release_id: int) -> None:
    """Start a new draft from a release (any state): its text, language, topics, contacts,
    images and documents, dated now, under the slug SLUG-copy; prints the new id (alone on
    stdout) and, on stderr, its address."""
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
    s = settings()
    draft = _read_release(s, file)
    release = actions.update_draft(s, release_id, draft, audit.cli_actor())
    _warn_if_cut(draft, release.slug)
    out.print(
        f"release {release_id} updated: {release_path(release.slug)}",
        markup=False,
        highlight=False,
    )


@releases_app.command("delete")
def releases_delete(release_id: int) -> None:
    """Delete a draft: its slug is free again (its id is never reused). Only a draft: a
    published release is withdrawn instead. Images it used stay stored."""
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


def _publish(
    s: Settings,
    release_id: int,
    at: str | None,
    with_versions: bool = False,
    advance: str | None = None,
) -> None:
    early = None
    if advance is not None:
        early = _parse_at(s, advance, "--advance") or datetime.now(UTC)
    queue = TaskQueue(s)
    try:
        release = actions.publish(
            s, queue, release_id, _parse_at(s, at), by=audit.cli_actor(),
            with_versions=with_versions, advance=early,
        )  # fmt: skip
    finally:
        queue.close()
    if release.state == "scheduled" and release.scheduled_at:
        out.print(
            f"release {release.id} scheduled for {local_time(s, release.scheduled_at)}; "
            f"`distributor releases unschedule {release.id}` cancels"
        )
        if early is not None and release.advance_at is not None:
            out.print(
                f"advance copies to accredited journalists: {local_time(s, release.advance_at)}"
            )
    else:
        out.print(f"release {release.id} published{_sending(s)}")


def _sending(s: Settings) -> str:
    """What happens to a release just published: sent now, unless the sweep is not running
    (or Redis cannot be reached), which the press office must hear about."""
    from distributor.core import heartbeat

    found = heartbeat.health(s)
    if found.alive:
        return "; the workers are sending it"
    if found.error is not None:
        return f", but no worker could be woken: {found.describe()}; it goes out once they can"
    return f", but {found.describe()}"


def local_time(s: Settings, moment: datetime) -> str:
    """``moment`` in the press office's time zone, with the UTC time beside it."""
    local = moment.astimezone(s.zone)
    return f"{local:%Y-%m-%d %H:%M %Z} ({moment.astimezone(UTC):%H:%M} UTC)"


@releases_app.command("publish")
def releases_publish(
    release_id: int,
    at: Annotated[
        str | None,
        typer.Option(
            help="ISO 8601 time to publish at (not in the past; without an offset, in "
            "DISTRIBUTOR_TIMEZONE), or now"
        ),
    ] = None,
    with_versions: Annotated[
        bool,
        typer.Option(
            "--with-versions",
            help="Also its other language versions not sent yet (drafts, scheduled), at the "
            "same time, in one go: all or none",
        ),
    ] = False,
    advance: Annotated[
        str | None,
        typer.Option(
            help="Send accredited journalists an embargoed advance copy at this time (ISO "
            "8601, as --at), or now; the release must go public later"
        ),
    ] = None,
) -> None:
    """Publish a release now (or at --at): emails go out and the feeds are regenerated.

    Never before the release's embargo; a time in the past is refused (--at now publishes
    at once). Publishing a scheduled release again with another --at reschedules it.
    --with-versions publishes or schedules its unsent translations (or original) with it.
    --advance sends its accredited subscribers an advance copy, marked with the embargo,
    before it is public; they get no second copy when it is."""
    _publish(settings(), release_id, at, with_versions, advance)


@releases_app.command("correct")
def releases_correct(
    release_id: int,
    file: Path,
    notify: Annotated[
        bool,
        typer.Option(
            "--notify",
            help="Also email a short correction notice to those who received the release "
            "and are still subscribed",
        ),
    ] = False,
    note: Annotated[
        str,
        typer.Option(
            help="What changed, in a line (e.g. 'time of the launch was 17:42, now 17:40'): "
            "shown on the page, in the feed item and in the notice",
        ),
    ] = "",
) -> None:
    """Correct a published release from FILE.md (same language and address): its page and
    feed items change under the same ids, marked "Corrected on …" with the --note. No
    email is sent unless --notify."""
    s = settings()
    draft = _read_release(s, file)
    queue = TaskQueue(s)
    try:
        release = actions.correct(
            s, queue, release_id, draft, by=audit.cli_actor(), notify=notify, note=note
        )
    finally:
        queue.close()
    if not notify or release.corrected_at is None:
        out.print(f"release {release_id} corrected; the site is being regenerated (no email sent)")
        return
    with db.session_scope(s) as session:
        from distributor.outbox import notices

        planned = notices.planned(session, release_id, release.corrected_at)
    out.print(
        f"release {release_id} corrected; the site is being regenerated; "
        f"{planned} correction notice{'' if planned == 1 else 's'} planned "
        "(to those who received it and are still subscribed)"
    )


@releases_app.command("withdraw")
def releases_withdraw(
    release_id: int,
    by: Annotated[
        str, typer.Option(help="Who withdraws it, for the record (default: cli:YOUR-USER-NAME)")
    ] = "",
    reason: Annotated[
        str,
        typer.Option(
            help="Why, in a line: shown on the page that answers 410 Gone (and in the notice)"
        ),
    ] = "",
    notify: Annotated[
        bool,
        typer.Option(
            "--notify",
            help="Also email a short withdrawal notice, with the reason, to those who "
            "received the release and are still subscribed",
        ),
    ] = False,
) -> None:
    """Withdraw a release: it leaves the pages and feeds (its page answers 410 Gone, with
    the reason if given) and every delivery not sent yet is cancelled. No email is sent
    unless --notify."""
    s = settings()
    queue = TaskQueue(s)
    try:
        done = actions.withdraw(
            s, queue, release_id, by or audit.cli_actor(), reason, notify=notify
        )
    finally:
        queue.close()
    said = f"release {release_id} withdrawn; {done.cancelled} deliveries not sent were cancelled"
    if notify:
        n = done.notices
        said += (
            f"; {n} withdrawal notice{'' if n == 1 else 's'} planned "
            "(to those who received it and are still subscribed)"
        )
    out.print(said)


@releases_app.command("request-approval")
def releases_request_approval(release_id: int) -> None:
    """Ask for a draft's approval (DISTRIBUTOR_REQUIRE_APPROVAL: someone other than its
    last editor approves it before it is published or scheduled)."""
    actions.request_approval(settings(), release_id, audit.cli_actor())
    out.print(f"approval of release {release_id} asked for", markup=False, highlight=False)


@releases_app.command("approve")
def releases_approve(release_id: int) -> None:
    """Approve a release as it is now (refused to its last editor); a later change of its
    text withdraws the approval."""
    actions.approve(settings(), release_id, audit.cli_actor())
    out.print(f"release {release_id} approved", markup=False, highlight=False)


@releases_app.command("unschedule")
def releases_unschedule(release_id: int) -> None:
    """Cancel a scheduled publication: the release goes back to draft; nothing is sent."""
    actions.unschedule(settings(), release_id, audit.cli_actor())
    out.print(f"release {release_id} is a draft again; nothing was sent")


@app.command("publish")
def publish_file(
    file: Path,
    at: Annotated[
        str | None,
        typer.Option(
            help="ISO 8601 time to publish at (not in the past; without an offset, in "
            "DISTRIBUTOR_TIMEZONE), or now"
        ),
    ] = None,
) -> None:
    """Create a release from FILE.md and publish it."""
    s = settings()
    from distributor.core import broker
    from distributor.releases.lifecycle import check_publish_time

    broker.require(s)  # before the release is stored: a broker it cannot have stops it whole
    check_publish_time(str(file), _parse_at(s, at))  # refused before the draft exists
    release_id, path = _create(s, file)
    out.print(f"release {release_id} created: {path}", markup=False, highlight=False)
    _publish(s, release_id, at)


@releases_app.command("status")
def releases_status(
    release_id: int,
    watch_: Annotated[bool, typer.Option("--watch", help="Live progress until done")] = False,
) -> None:
    """Delivery counts of a release: planned, sent, deferred, failed."""
    from distributor.core import heartbeat

    s = settings()
    if watch_:
        watch(s, [release_id])
    with db.session_scope(s) as session:
        from distributor.reporting.status import release_status

        print_status(release_status(session, release_id))
    out.print(heartbeat.health(s).describe(), markup=False, highlight=False)


@releases_app.command("report")
def releases_report(
    release_id: int,
    csv_: Annotated[
        bool, typer.Option("--csv", help="One CSV row per delivery, to stdout or --out")
    ] = False,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Write the CSV to this file (implies --csv)")
    ] = None,
) -> None:
    """Every delivery of a release: counts per status and time to send, or with --csv one
    row each (email, language, status, attempts, SMTP code, last error, UTC times, bounce)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    from distributor.reporting.report import delivery_lines, iso_utc, write_csv

    s = settings()
    if not csv_ and out_file is None:
        with db.session_scope(s) as session:
            from distributor.reporting.status import release_status

            st = release_status(session, release_id)
        title = Text(f"{st.title} (id {st.release_id}, {st.language}, {st.state})")
        table = Table(title=title, box=box.SIMPLE)
        table.add_column("status")
        table.add_column("deliveries", justify="right")
        for status, n in st.counts.items():
            table.add_row(status, str(n))
        table.add_row("total", str(st.planned))
        out.print(table)
        if st.first_sent_at and st.last_sent_at:
            seconds = (st.last_sent_at - st.first_sent_at).total_seconds()
            out.print(
                f"first sent {iso_utc(st.first_sent_at)}, last sent "
                f"{iso_utc(st.last_sent_at)} ({seconds:.1f} s)"
            )
        out.print(f"bounces: {st.hard_bounces} hard, {st.soft_bounces} soft")
        if st.unsubscribed_since:
            out.print(f"{st.unsubscribed_since} recipient(s) unsubscribed since they received it")
        _print_statistics(s, release_id)
        return
    lines = delivery_lines(s, release_id)  # an unknown release fails here, before any file
    if out_file is None:
        write_csv(lines, sys.stdout)
        return
    try:
        stream = open_private_text(out_file, newline="")  # addresses and outcomes
    except OSError as exc:
        raise ConfigError(f"{out_file}: {exc.strerror}") from exc
    with stream:
        n = write_csv(lines, stream)
    err.print(f"{n} deliveries written to {out_file}", markup=False, highlight=False)


def _print_statistics(s: Settings, release_id: int) -> None:
    """The statistics section of ``releases report``: counts only (see
    ``reporting.statistics``), the per-day lines last."""
    from distributor.reporting.statistics import WINDOW_DAYS, release_statistics

    with db.session_scope(s) as session:
        st = release_statistics(session, release_id, s.timezone)
    lines = [
        "statistics (counted per hour, no personal data):",
        f"  delivered {st.delivered}, deferred {st.deferred}, bounced {st.bounced}, "
        f"unsubscribed within {WINDOW_DAYS} days {st.unsubscribed}",
        f"  page views {st.page_views}, image downloads {st.image_downloads}, "
        f"document downloads {st.document_downloads}",
        f"  feed fetches in its first {WINDOW_DAYS} days: {st.feed_fetches} (200), "
        f"{st.feed_not_modified} not modified (304)",
    ]
    for day in st.days:
        lines.append(
            f"  {day.day.isoformat()}: {day.page_views} view(s), "
            f"{day.image_downloads + day.document_downloads} download(s)"
        )
    for line in lines:
        out.print(line, markup=False, highlight=False)


@app.command("audit")
def audit_list(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many events")] = 50,
    action: Annotated[
        str | None,
        typer.Option(
            help="Only this action: publish, schedule, unschedule, correct, withdraw, import, erase"
        ),
    ] = None,
) -> None:
    """The audit trail, newest first: when (in DISTRIBUTOR_TIMEZONE), who, what, to what."""
    s = settings()
    with db.session_scope(s) as session:
        for event in audit.recent(session, limit, action):
            details = " ".join(f"{k}={v}" for k, v in sorted(event.details.items()))
            line = (
                f"{event.at.astimezone(s.zone):%Y-%m-%d %H:%M:%S %Z}  {event.actor}  "
                f"{event.action}  {event.subject}  {details}"
            )
            typer.echo(line.rstrip())


@site_app.command("build")
def site_build(
    force: Annotated[
        bool, typer.Option("--force", help="Render every page and feed, changed or not")
    ] = False,
) -> None:
    """Write the newsroom and every feed to $DISTRIBUTOR_DATA_DIR/public (only what changed).

    Any web server or CDN can serve that folder; `distributor serve` serves it too.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from distributor.site import builder

    s = settings()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    started = time.monotonic()
    queue = TaskQueue(s) if s.websub_hub else None
    try:
        with Progress(*columns, console=out, transient=True) as progress:
            bar = progress.add_task("rendering", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(bar, completed=done, total=total)

            report = builder.regenerate_site(s, queue, force=force, progress=advance)
    finally:
        if queue is not None:
            queue.close()
    seconds = time.monotonic() - started
    out.print(
        f"{report.total} files in {s.public_dir}: {len(report.written)} written, "
        f"{report.unchanged} unchanged, {len(report.removed)} removed ({seconds:.2f} s)"
    )


@feeds_app.command("rebuild")
def feeds_rebuild() -> None:
    """Same as `distributor site build` (the feeds are part of the site)."""
    site_build(force=False)


def server_settings() -> Settings:
    """The Settings for a long-running command (serve, worker, beat), refused (ConfigError,
    exit 78) before anything starts when the secret key is weak or a placeholder, or the
    DKIM key cannot be used (unreadable, readable by others, half configured)."""
    s = settings()
    check_secret_key(s)
    from distributor.mail.dkim import load_signer

    load_signer(s)
    return s


def _celery(args: list[str]) -> None:
    from distributor.core import broker, filemodes

    s = server_settings()  # checked here, before Celery replaces this process
    # Beat keeps its schedule file there: with PostgreSQL nothing else may have made it yet.
    filemodes.data_dir(s.data_dir)
    env = inherited_environment(
        DISTRIBUTOR_BROKER_URL=broker.broker_url(s), DISTRIBUTOR_DATA_DIR=str(s.data_dir.resolve())
    )
    os.execvpe(  # noqa: S606 - replaces this process with the Celery program
        sys.executable, [sys.executable, "-m", "celery", "-A", "worker.app", *args], env
    )


@app.command("worker")
def worker(
    concurrency: Annotated[int | None, typer.Option("-c", "--concurrency")] = None,
    loglevel: Annotated[str, typer.Option()] = "INFO",
    with_beat: Annotated[
        bool,
        typer.Option(
            "--with-beat",
            help="Also run beat (the sweep) in this worker: for a one-host install. Never "
            "on more than one worker, nor beside a `distributor beat`.",
        ),
    ] = False,
) -> None:
    """Run a Celery worker (prefork) on the distributor queue."""
    n = concurrency or settings().worker_concurrency
    _celery(
        [
            "worker",
            "-Q",
            "distributor",
            "-c",
            str(n),
            "--loglevel",
            loglevel,
            "--without-gossip",
            "--without-mingle",
            "-O",
            "fair",
            *(["-B"] if with_beat else []),
        ]
    )


@app.command("beat")
def beat(loglevel: Annotated[str, typer.Option()] = "INFO") -> None:
    """Run the scheduler that starts the sweep every 30 seconds."""
    _celery(["beat", "--loglevel", loglevel])


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Processes serving requests (each caches the site).")
    ] = 1,
    access_log: Annotated[
        bool,
        typer.Option(
            help="Log every request. Off by default: on the feed path it costs a large "
            "share of the throughput."
        ),
    ] = False,
    proxy_headers: Annotated[
        bool,
        typer.Option(
            help="Take the client address from X-Forwarded-For (feed poll limit, form "
            "limits): only behind a reverse proxy you trust, listed in --forwarded-allow-ips."
        ),
    ] = False,
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            help="Comma-separated addresses of the trusted proxies (with --proxy-headers)."
        ),
    ] = "127.0.0.1",
) -> None:
    """Serve the newsroom, the feeds and the subscription pages."""
    import uvicorn

    # A configuration that cannot work fails here, with exit code 78: a weak secret key, an
    # unusable DKIM key, or no broker (the forms and the publishing API need it).
    from distributor.core import broker

    broker.require(server_settings())
    # By import string, so that every worker process builds its own app from the environment.
    uvicorn.run(
        "distributor.web.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        proxy_headers=proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips if proxy_headers else None,
        server_header=False,  # no "server: uvicorn": nothing to learn, one header less
    )


@app.command("demo")
def demo(
    subscribers: Annotated[int, typer.Option(help="How many subscribers to generate")] = 1000,
) -> None:
    """Run the whole thing on one machine: data, 1,000 subscribers, two releases, a worker."""
    from distributor.cli.demo import run_demo

    run_demo(server_settings(), subscribers, out)  # it starts a worker: the same check


def main() -> None:
    """Entry point: run the CLI and map domain errors to messages and exit codes."""
    try:
        configured = load_settings()
        level, secrets = configured.log_level, configured_secrets(configured)
    except ValueError:  # the command itself says what is wrong (exit 78)
        level, secrets = None, []
    setup_logging(level or "WARNING", secrets)
    try:
        try:
            app()  # usage errors exit 2 from here; domain errors propagate to us
        except DBAPIError as exc:  # a database that cannot be used at all: say so in a line
            problem = db.explain(settings(), exc)
            if problem is None:
                raise
            raise problem from exc
    except ImportRejected as exc:
        err.print(
            f"error: {exc.source}: {len(exc.rows)} bad row(s), nothing imported",
            markup=False,
            highlight=False,
        )
        for row in exc.rows:
            err.print(f"  {exc.source}:{row.line}: {row.reason}", markup=False, highlight=False)
        sys.exit(1)
    except DistributorError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(78 if isinstance(exc, ConfigError) else 69 if isinstance(exc, ServiceError) else 1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
