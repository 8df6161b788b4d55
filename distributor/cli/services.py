"""The commands that keep the installation going: ``db upgrade``, ``site build`` (and
``feeds rebuild``), and the long-running ``worker``, ``beat``, ``serve`` and ``demo``."""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from distributor.cli.context import settings
from distributor.cli.progress import out

if TYPE_CHECKING:
    from distributor.core.config import Settings

db_app = typer.Typer(no_args_is_help=True, help="The database.")
feeds_app = typer.Typer(no_args_is_help=True, help="Feeds (kept for scripts: see `site`).")
site_app = typer.Typer(no_args_is_help=True, help="The static site: newsroom pages and feeds.")
ledger_app = typer.Typer(no_args_is_help=True, help="The delivery ledger: retention.")
# What `distributor serve` serves: uvicorn builds it in each of its processes.
WEB_APP = "distributor.web.app:app_from_environment"


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the latest schema."""
    from distributor.core import db

    s = settings()
    db.upgrade(s)
    out.print(f"database is up to date ({s.effective_database_url.split('@')[-1]})")


@ledger_app.command("fold")
def ledger_fold(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only count what would be folded; change nothing")
    ] = False,
) -> None:
    """Fold the ledger rows of releases whose sending ended more than
    DISTRIBUTOR_LEDGER_RETENTION_DAYS ago into per-release counts (beat does it hourly).

    Prints what was folded, release by release. With the variable unset or 0, folds nothing.
    """
    from distributor.outbox.retention import fold

    s = settings()
    report = fold(s, dry_run=dry_run)
    if report.cutoff is None:
        out.print(
            "DISTRIBUTOR_LEDGER_RETENTION_DAYS is unset or 0: every ledger row is kept",
            markup=False,
            highlight=False,
        )
        return
    verb = "would fold" if dry_run else "folded"
    for release_id in sorted(set(report.deliveries) | set(report.notices)):
        out.print(
            f"release {release_id}: {verb} {report.deliveries.get(release_id, 0)} "
            f"delivery row(s), {report.notices.get(release_id, 0)} notice row(s)",
            markup=False,
            highlight=False,
        )
    for release_id in report.skipped:
        out.print(f"release {release_id}: a notice is still to be sent; folded later")
    out.print(
        f"{verb} {report.rows} row(s) of {len(set(report.deliveries) | set(report.notices))} "
        f"release(s) whose sending ended before {report.cutoff:%Y-%m-%d %H:%M}Z",
        markup=False,
        highlight=False,
    )


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

    from distributor.core.queue import TaskQueue
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
        # Redrawn by the build's own calls, at most 10 times a second: Rich's refresh thread
        # would stop the build forking its renderers (forked.usable_workers).
        with Progress(*columns, console=out, transient=True, auto_refresh=False) as progress:
            bar = progress.add_task("rendering", total=None)
            drawn = 0.0

            def advance(done: int, total: int) -> None:
                nonlocal drawn
                redraw = time.monotonic() - drawn >= 0.1 or done == total
                if redraw:
                    drawn = time.monotonic()
                progress.update(bar, completed=done, total=total, refresh=redraw)

            report = builder.regenerate_site(s, queue, force=force, progress=advance)
    finally:
        if queue is not None:
            queue.close()
    seconds = time.monotonic() - started
    out.print(
        f"{report.total} files in {s.public_dir}: {len(report.written)} written, "
        f"{report.unchanged} unchanged, {len(report.removed)} removed ({seconds:.2f} s"
        + (f", {report.processes} processes rendering)" if report.processes > 1 else ")")
    )


@feeds_app.command("rebuild")
def feeds_rebuild() -> None:
    """Same as `distributor site build` (the feeds are part of the site)."""
    site_build(force=False)


def server_settings() -> Settings:
    """The Settings for a long-running command (serve, worker, beat), refused (ConfigError,
    exit 78) before anything starts when the secret key is weak or a placeholder, or the
    DKIM key cannot be used (unreadable, readable by others, half configured)."""
    from distributor.core.config import check_secret_key

    s = settings()
    check_secret_key(s)
    from distributor.mail.dkim import load_signer

    load_signer(s)
    return s


def _celery(args: list[str]) -> None:
    from distributor.core import broker, filemodes
    from distributor.core.config import inherited_environment

    s = server_settings()  # checked here, before Celery replaces this process
    # Beat keeps its schedule file there: with PostgreSQL nothing else may have made it yet.
    filemodes.data_dir(s.data_dir)
    env = inherited_environment(
        DISTRIBUTOR_BROKER_URL=broker.broker_url(s), DISTRIBUTOR_DATA_DIR=str(s.data_dir.resolve())
    )
    # `python -m worker`: Celery's command, started with the cyclic collector off.
    os.execvpe(  # noqa: S606 - replaces this process with the Celery program
        sys.executable, [sys.executable, "-m", "worker", "-A", "worker.app", *args], env
    )


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


def beat(loglevel: Annotated[str, typer.Option()] = "INFO") -> None:
    """Run the scheduler that starts the sweep every 30 seconds."""
    _celery(["beat", "--loglevel", loglevel])


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

    if workers == 1:
        # Served from this process: its module imported now, while the command's start keeps
        # the cyclic collector off (core/collector.py: ~0.25 s of a 1.5 s import), rather than
        # by uvicorn after; by name, as uvicorn does (the CLI does not import the web face).
        importlib.import_module(WEB_APP.partition(":")[0])
    broker.require(server_settings())
    # By import string, so that every worker process builds its own app from the environment.
    uvicorn.run(
        WEB_APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **server_options(access_log, proxy_headers, forwarded_allow_ips),
    )


def server_options(
    access_log: bool = False, proxy_headers: bool = False, forwarded_allow_ips: str = "127.0.0.1"
) -> dict[str, Any]:
    """uvicorn's options as `serve` gives them for its flags (the defaults: serve's own);
    tests/web_server.py serves the app in a test's process with them."""
    return {
        "access_log": access_log,
        "proxy_headers": proxy_headers,
        "forwarded_allow_ips": forwarded_allow_ips if proxy_headers else None,
        "server_header": False,  # no "server: uvicorn": nothing to learn, one header less
    }


def demo(
    subscribers: Annotated[int, typer.Option(help="How many subscribers to generate")] = 1000,
) -> None:
    """Run the whole thing on one machine: data, 1,000 subscribers, two releases, a worker."""
    from distributor.cli.demo import run_demo

    run_demo(server_settings(), subscribers, out)  # it starts a worker: the same check
