"""What the ``distributor`` command prints besides its own lines: the two consoles (stdout,
stderr), a release's status, and the live progress bars of ``--watch`` and the demo."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:  # only the commands showing a status load it (the database, the ledger)
    from distributor.core.config import Settings
    from distributor.reporting.status import ReleaseStatus

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _status_line(st: ReleaseStatus) -> str:
    c = st.counts
    line = (
        f"planned {st.planned} · sent {c['sent']} · deferred {c['deferred']} · "
        f"failed {c['failed']} · cancelled {c['cancelled']} · pending {c['pending']}"
    )
    return line


def print_status(st: ReleaseStatus) -> None:
    """Print a release's status as `releases status` shows it."""
    out.print(f"[bold]{escape(st.title)}[/bold] (id {st.release_id}, {st.language}, {st.state})")
    out.print(_status_line(st))
    if st.advance_at is not None and st.advance_counts is not None:
        early = st.advance_counts
        out.print(
            f"advance copies ({st.advance_at:%Y-%m-%d %H:%M:%S}Z, before the embargo): "
            f"{early['sent']} sent, {early['pending'] + early['deferred']} to send, "
            f"{early['failed']} failed, {early['cancelled']} cancelled"
        )
    if st.first_sent_at and st.last_sent_at:
        seconds = (st.last_sent_at - st.first_sent_at).total_seconds()
        out.print(f"first sent {st.first_sent_at:%Y-%m-%d %H:%M:%S}Z, last {seconds:.1f} s later")
    out.print(f"bounces: {st.hard_bounces} hard, {st.soft_bounces} soft")
    if st.unsubscribed_since:
        out.print(f"{st.unsubscribed_since} recipient(s) unsubscribed since they received it")
    for lang, n in sorted(st.without_version.items()):
        out.print(f"{n} subscriber(s) of these topics read {lang}: no {lang} version, none sent")
    if st.folded_rows and st.folded_at is not None:
        out.print(
            f"{st.folded_rows} of these rows were folded into counts on "
            f"{st.folded_at:%Y-%m-%d} after the retention period",
            markup=False,
            highlight=False,
        )


def watch(s: Settings, release_ids: list[int], timeout: float = 3600) -> list[ReleaseStatus]:
    """Show a progress bar per release until each has nothing left to send."""
    # Imported here: only --watch draws bars, and every command pays for its imports.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from distributor.core import db
    from distributor.reporting.status import release_status

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=out) as progress:
        bars = {rid: progress.add_task(f"release {rid}", total=None) for rid in release_ids}
        while True:
            with db.session_scope(s) as session:
                states = [release_status(session, rid) for rid in release_ids]
            for st in states:
                progress.update(
                    bars[st.release_id],
                    total=st.planned or None,
                    completed=st.done,
                    description=f"{st.slug[:30]} ({st.language})",
                )
            finished = all(st.planned and not st.open for st in states)
            if finished or time.monotonic() > deadline:
                return states
            time.sleep(0.5)
