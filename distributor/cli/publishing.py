"""Sending a release and following it: ``releases publish``, ``correct``, ``withdraw``,
``request-approval``, ``approve``, ``unschedule``, ``status`` and ``report`` (on the group of
``releases``), and ``publish FILE.md`` (create and publish in one command)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from distributor import actions
from distributor.cli.context import local_time, settings
from distributor.cli.progress import err, out, print_status, watch
from distributor.cli.releases import create_from_file, read_release, releases_app
from distributor.core.errors import ConfigError, ReleaseInputError

if TYPE_CHECKING:
    from distributor.core.config import Settings


# --at of `releases publish` and of `publish FILE.md`.
AtOption = Annotated[
    str | None,
    typer.Option(
        help="ISO 8601 time to publish at (not in the past; without an offset, in "
        "DISTRIBUTOR_TIMEZONE), or now"
    ),
]


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


def _publish(
    s: Settings,
    release_id: int,
    at: str | None,
    with_versions: bool = False,
    advance: str | None = None,
) -> None:
    from distributor.core import audit
    from distributor.core.queue import TaskQueue

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
    out.print(_expected(s, release.id), markup=False, highlight=False)


def _expected(s: Settings, release_id: int) -> str:
    """How many it goes to and, timed by this installation's latest large send, how long
    sending it takes (reporting/estimate.py)."""
    from distributor.core import db
    from distributor.reporting.estimate import estimate

    with db.read_scope(s) as session:
        return f"sending: {estimate(session, release_id).describe()}"


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


@releases_app.command("publish")
def releases_publish(
    release_id: int,
    at: AtOption = None,
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
    from distributor.core import audit, db
    from distributor.core.queue import TaskQueue

    s = settings()
    draft = read_release(s, file)
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
    from distributor.core import audit
    from distributor.core.queue import TaskQueue

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
    from distributor.core import audit

    actions.request_approval(settings(), release_id, audit.cli_actor())
    out.print(f"approval of release {release_id} asked for", markup=False, highlight=False)


@releases_app.command("approve")
def releases_approve(release_id: int) -> None:
    """Approve a release as it is now (refused to its last editor); a later change of its
    text withdraws the approval."""
    from distributor.core import audit

    actions.approve(settings(), release_id, audit.cli_actor())
    out.print(f"release {release_id} approved", markup=False, highlight=False)


@releases_app.command("unschedule")
def releases_unschedule(release_id: int) -> None:
    """Cancel a scheduled publication: the release goes back to draft; nothing is sent."""
    from distributor.core import audit

    actions.unschedule(settings(), release_id, audit.cli_actor())
    out.print(f"release {release_id} is a draft again; nothing was sent")


def publish_file(
    file: Path,
    at: AtOption = None,
) -> None:
    """Create a release from FILE.md and publish it."""
    s = settings()
    from distributor.core import broker
    from distributor.releases.lifecycle import check_publish_time

    broker.require(s)  # before the release is stored: a broker it cannot have stops it whole
    check_publish_time(str(file), _parse_at(s, at))  # refused before the draft exists
    release_id, path = create_from_file(s, file)
    out.print(f"release {release_id} created: {path}", markup=False, highlight=False)
    _publish(s, release_id, at)


@releases_app.command("status")
def releases_status(
    release_id: int,
    watch_: Annotated[bool, typer.Option("--watch", help="Live progress until done")] = False,
) -> None:
    """Delivery counts of a release: planned, sent, deferred, failed."""
    from distributor.core import db, heartbeat

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

    from distributor.core import db
    from distributor.core.filemodes import open_private_text
    from distributor.reporting.report import describe_fold, fold_note, iso_utc
    from distributor.reporting.report_csv import report_csv

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
        note = describe_fold(st.folded_rows, st.folded_at)
        if note:
            out.print(note, markup=False, highlight=False)
        _print_statistics(s, release_id)
        return
    write_csv = report_csv(s, release_id)  # an unknown release fails here, before any file
    note = fold_note(s, release_id)
    if note:  # on standard error: the CSV stays one header and one row per delivery
        err.print(f"note: {note}", markup=False, highlight=False)
    if out_file is None:
        write_csv(sys.stdout)
        return
    try:
        stream = open_private_text(out_file, newline="")  # addresses and outcomes
    except OSError as exc:
        raise ConfigError(f"{out_file}: {exc.strerror}") from exc
    with stream:
        n = write_csv(stream)
    err.print(f"{n} deliveries written to {out_file}", markup=False, highlight=False)


def _print_statistics(s: Settings, release_id: int) -> None:
    """The statistics section of ``releases report``: counts only (see
    ``reporting.statistics``), the per-day lines last."""
    from distributor.core import db
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
