"""The commands about the press office itself: its ``contacts`` (the address book), its
identity (``settings``), the admin API's ``tokens``, and the ``audit`` trail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from distributor import actions
from distributor.cli.context import settings
from distributor.cli.progress import err, out
from distributor.core.errors import InputError
from distributor.core.roles import DEFAULT_SCOPES, SCOPES

contacts_app = typer.Typer(
    no_args_is_help=True, help="The address book of press contacts releases print."
)
settings_app = typer.Typer(
    no_args_is_help=True, help="The office's identity: name, logo, colour, address, sender."
)
tokens_app = typer.Typer(no_args_is_help=True, help="Bearer tokens for the admin API.")


ContactOption = Annotated[str | None, typer.Option(help="Empty to clear it")]


@contacts_app.command("list")
def contacts_list(
    json_: Annotated[
        bool, typer.Option("--json", help="A JSON array, with the fields of GET /api/contacts")
    ] = False,
) -> None:
    """The address book, by name: id, name, role, phone, email, tab-separated (for scripts
    too); or with --json a JSON array."""
    from distributor.core import db
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
    from distributor.core import audit

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
    from distributor.core import audit

    given = {"name": name, "role": role, "phone": phone, "email": email}
    changes = {key: value for key, value in given.items() if value is not None}
    if not changes:
        raise InputError("give at least one of --name, --role, --phone, --email")
    contact = actions.update_contact(settings(), contact_id, changes, audit.cli_actor())
    out.print(f"press contact {contact.id} changed", markup=False, highlight=False)


@contacts_app.command("delete")
def contacts_delete(contact_id: int) -> None:
    """Remove a press contact from the address book (releases keep their copy)."""
    from distributor.core import audit

    actions.delete_contact(settings(), contact_id, audit.cli_actor())
    out.print(f"press contact {contact_id} deleted", markup=False, highlight=False)


@settings_app.command("show")
def settings_show(
    as_json: Annotated[bool, typer.Option("--json", help="As JSON, as GET /api/settings")] = False,
) -> None:
    """The identity in effect, a field a line: key, value, and the variable setting it."""
    from distributor.core import db
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
    from distributor.core import audit
    from distributor.core.queue import TaskQueue

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
    from distributor.core import db
    from distributor.core.apitokens import create_token
    from distributor.office.accounts import find_user

    with db.session_scope(settings()) as session:
        owner = find_user(session, user).id if user is not None else None
        token = create_token(session, name, scope or list(DEFAULT_SCOPES), owner)
    out.print(token, markup=False, highlight=False)
    err.print("Store this token now: it is shown only once and cannot be recovered.")


@tokens_app.command("list")
def tokens_list() -> None:
    """List the API tokens: name, scopes, created, last used, revoked."""
    from distributor.core import db
    from distributor.core.apitokens import list_tokens

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
    from distributor.core import db
    from distributor.core.apitokens import revoke as revoke_token

    with db.session_scope(settings()) as session:
        revoke_token(session, name)
    out.print(f"token {name} revoked", markup=False, highlight=False)


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
    from distributor.core import audit, db

    s = settings()
    with db.session_scope(s) as session:
        for event in audit.recent(session, limit, action):
            details = " ".join(f"{k}={v}" for k, v in sorted(event.details.items()))
            line = (
                f"{event.at.astimezone(s.zone):%Y-%m-%d %H:%M:%S %Z}  {event.actor}  "
                f"{event.action}  {event.subject}  {details}"
            )
            typer.echo(line.rstrip())
