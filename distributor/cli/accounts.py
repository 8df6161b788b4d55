"""The ``users`` commands: the press office's accounts (create, invite, list, roles,
passwords, two-factor login, disable, enable)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from distributor import actions
from distributor.cli.context import local_time, settings
from distributor.cli.progress import out
from distributor.core.errors import InputError

users_app = typer.Typer(
    no_args_is_help=True, help="The press office's accounts: writer, publisher, admin."
)


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
    from distributor.core import audit

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
    from distributor.core import audit
    from distributor.core.queue import TaskQueue

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
    from distributor.core import db
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
    from distributor.core import db
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
    from distributor.core import audit

    invitation = actions.cancel_invitation(settings(), invitation_id, audit.cli_actor())
    out.print(f"invitation of {invitation.email} cancelled", markup=False, highlight=False)


@users_app.command("role")
def users_role(
    email: str, role: Annotated[str, typer.Argument(help="writer, publisher or admin")]
) -> None:
    """Change an account's role; it applies from its next request."""
    from distributor.core import audit

    user = actions.set_user_role(settings(), email, role, audit.cli_actor())
    out.print(f"{user.email} is now {user.role}", markup=False, highlight=False)


@users_app.command("password")
def users_password(email: str) -> None:
    """Set a new password (asked as for `users create`); the account's sessions end."""
    from distributor.core import audit

    s = settings()
    password = _new_password(email)
    user = actions.set_user_password(s, email, password, audit.cli_actor())
    out.print(f"password of {user.email} changed; its sessions have ended", markup=False)


@users_app.command("disable")
def users_disable(email: str) -> None:
    """Disable an account: its sessions end and its tokens stop working, at once."""
    from distributor.core import audit

    user = actions.disable_user(settings(), email, audit.cli_actor())
    out.print(f"{user.email} disabled; its sessions have ended", markup=False, highlight=False)


@users_app.command("reset-2fa")
def users_reset_2fa(email: str) -> None:
    """Take two-factor login off an account (a lost phone); its sessions end. If its role
    requires it, it sets it up again at its next login."""
    from distributor.core import audit

    user = actions.reset_totp(settings(), email, audit.cli_actor())
    out.print(f"two-factor login of {user.email} is off", markup=False, highlight=False)


@users_app.command("enable")
def users_enable(email: str) -> None:
    """Let a disabled account log in again."""
    from distributor.core import audit

    user = actions.enable_user(settings(), email, audit.cli_actor())
    out.print(f"{user.email} enabled", markup=False, highlight=False)
