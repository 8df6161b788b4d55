"""The ``distributor`` command: its tree of commands, and ``main()``, which turns domain
errors into messages and exit codes: 1 for rejected input or a state conflict, 69 when a
service is unavailable, 78 for a configuration that cannot work.

The commands live in one module per group (``releases``, ``publishing``, ``audience``,
``office``, ``accounts``, ``services``). Building the tree and printing help import none of
what the commands use — SQLAlchemy, the Settings, Redis, Celery, the web stack, the domain
modules: each command imports what it needs (``distributor --help`` took 0.87 s with them,
0.14 s without: bench/cli.py; the tests start hundreds of commands). tests/test_cli.py fails
if one comes back."""

from __future__ import annotations

import atexit
import gc
import sys

import typer

from distributor.cli import accounts, audience, office, publishing, releases, services
from distributor.cli.context import log_on_demand, settings
from distributor.cli.progress import err
from distributor.core import collector
from distributor.core.errors import ConfigError, DistributorError, ImportRejected, ServiceError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Publish press releases by email and feeds.",
)
# Help lists the commands, then the groups, each in the order given here.
app.add_typer(services.db_app, name="db")
app.add_typer(services.ledger_app, name="ledger")
app.add_typer(audience.topics_app, name="topics")
app.add_typer(office.contacts_app, name="contacts")
app.add_typer(audience.subs_app, name="subscribers")
app.add_typer(releases.releases_app, name="releases")
app.add_typer(services.feeds_app, name="feeds")
app.add_typer(services.site_app, name="site")
app.add_typer(office.tokens_app, name="tokens")
app.add_typer(audience.bounces_app, name="bounces")
app.add_typer(accounts.users_app, name="users")
app.add_typer(office.settings_app, name="settings")
app.command("publish")(publishing.publish_file)
app.command("audit")(office.audit_list)
app.command("worker")(services.worker)
app.command("beat")(services.beat)
app.command("serve")(services.serve)
app.command("demo")(services.demo)


def _database_problem(exc: Exception) -> DistributorError | None:
    """What to tell a user when ``exc`` says the database cannot be used at all
    (``db.explain``); None for any other error."""
    if "sqlalchemy" not in sys.modules:  # nothing else raises its errors: no need to load it
        return None
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return None
    from distributor.core import db

    return db.explain(settings(), exc)


def _leave() -> None:
    """At exit: close the database's pooled connections (a server is told goodbye), then
    spare the interpreter's shutdown its garbage collections over every object the imports
    made (~0.25 s of a 1 s `releases status`, ~0.03 s of `--help`): what is still alive is
    only freed by the exit. ``gc.freeze`` keeps reference counting, files and the other
    exit handlers (coverage's) working as before."""
    db = sys.modules.get("distributor.core.db")  # not loaded: no engine, none to load
    if db is not None:
        db.dispose_engines()
    gc.freeze()


def main() -> None:
    """Entry point: run the CLI and map domain errors to messages and exit codes."""
    # No cyclic collection while the command imports what it needs: they would scan the
    # hundreds of thousands of objects its imports make, all of which live until the exit
    # (core/collector.py). The command's first call for its Settings ends the start.
    collector.starting()
    try:
        _run()
    finally:
        collector.finish_start()


def _run() -> None:
    log_on_demand()
    atexit.unregister(_leave)  # once, however many times main() runs in one process
    atexit.register(_leave)
    try:
        try:
            app()  # usage errors exit 2 from here; domain errors propagate to us
        except Exception as exc:  # a database that cannot be used at all: say so in a line
            problem = _database_problem(exc)
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
