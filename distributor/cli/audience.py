"""The commands about who receives releases: ``topics`` (what subscribers follow),
``subscribers`` (import, export, erase, accredit) and ``bounces``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from distributor import actions
from distributor.cli.context import settings
from distributor.cli.progress import err, out
from distributor.core.errors import ConfigError, InputError

topics_app = typer.Typer(no_args_is_help=True, help="Topics subscribers follow.")
subs_app = typer.Typer(no_args_is_help=True, help="Subscribers: import, export, erase, accredit.")
bounces_app = typer.Typer(no_args_is_help=True, help="Bounces: delivery status notifications.")


@topics_app.command("add")
def topics_add(
    slug: str,
    name: Annotated[
        list[str], typer.Option("--name", help="Name, or LANG:Name (repeat for each language)")
    ],
) -> None:
    """Add a topic, e.g. `topics add climate --name Climate --name fr:Climat`."""
    from distributor.core import db
    from distributor.releases.topics import add_topic, parse_names

    s = settings()
    with db.session_scope(s) as session:
        topic = add_topic(session, slug, parse_names(name, s.languages[0]))
        out.print(f"topic {topic.slug} added ({', '.join(topic.names.values())})")


@topics_app.command("list")
def topics_list() -> None:
    """List the topics."""
    from distributor.core import db
    from distributor.releases.topics import list_topics

    with db.session_scope(settings()) as session:
        for topic in list_topics(session):
            names = ", ".join(f"{k}: {v}" for k, v in sorted(topic.names.items()))
            out.print(f"{topic.slug}\t{names}")


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
    from distributor.core import audit

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
    from distributor.core import db
    from distributor.core.filemodes import open_private_text

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
    from distributor.core import audit

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
    from distributor.core import audit, db

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
    from distributor.core import db
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
