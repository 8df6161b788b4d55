"""The database: one engine per Settings, sessions, and migrations (Alembic).

SQLite (the default) runs in WAL mode with a busy timeout so a worker, the web app and the
CLI can share it; PostgreSQL is used as is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from distributor.core import filemodes
from distributor.core.config import Settings
from distributor.core.errors import ConfigError, DistributorError, ServiceError
from distributor.core.logs import redact

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def is_sqlite(engine: Engine | Connection) -> bool:
    """True when the engine or connection talks to SQLite."""
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own handling defers it
    # and cannot do BEGIN IMMEDIATE).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
    # SQLite's lower() folds ASCII only: a search for "élection" would miss "Élection".
    dbapi_conn.create_function("casefold", 1, _casefold, deterministic=True)


def _casefold(value: object) -> object:
    return value.casefold() if isinstance(value, str) else value


def _sqlite_begin(conn: Connection) -> None:
    # Every transaction takes the write lock at its start. A deferred one that reads and
    # then writes fails at once with "database is locked" (SQLITE_BUSY_SNAPSHOT, which the
    # busy timeout does not cover) whenever a worker committed in between — seen when the
    # planning of a release ran alongside the workers sending it. Writers queue instead.
    # A read_scope reads only: deferred, it never waits for the lock (WAL: readers do not).
    reading = conn.get_execution_options().get(_READ_ONLY, False)
    conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


_ENGINES: dict[str, Engine] = {}
_READ_ONLY = "distributor_read_only"  # the execution option of a read_scope's connection


def _sqlite_file(url: str) -> Path | None:
    """The database file a ``sqlite://`` URL names; None for another database or memory."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _prepare_sqlite(settings: Settings) -> None:
    """Create the SQLite file private before SQLite opens it: SQLite would make it 0644 less
    the umask, and gives its -wal and -shm files the database file's mode. An existing file
    with looser modes, and its companions, are tightened. Nothing for PostgreSQL."""
    path = _sqlite_file(settings.effective_database_url)
    if path is None:
        return
    if settings.database_url:  # a place of the operator's choosing
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        filemodes.data_dir(settings.data_dir)
    filemodes.private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        filemodes.keep_private(path.with_name(path.name + suffix))


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    try:
        return create_engine(url, pool_pre_ping=True, connect_args=_PG_CONNECT_ARGS)
    except Exception as exc:  # bad URL or missing driver
        raise ConfigError(f"DISTRIBUTOR_DATABASE_URL cannot be used: {exc}") from exc


# A connection the network lost must not hold row locks for hours: the server ends a
# transaction left idle (ours all last well under a second between statements) and both
# ends probe a silent peer; connecting gives up after 10 s instead of waiting for ever.
_PG_CONNECT_ARGS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "options": "-c idle_in_transaction_session_timeout=120s -c tcp_keepalives_idle=30"
    " -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3",
}


def get_engine(settings: Settings) -> Engine:
    """The (shared, per-process) engine for the configured database."""
    url = settings.effective_database_url
    if url not in _ENGINES:
        _prepare_sqlite(settings)
        _ENGINES[url] = _make_engine(url)
    return _ENGINES[url]


def dispose_engines() -> None:
    """Close every pooled connection and forget the engines (after a fork, or in tests)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


def forget_engines_after_fork() -> None:
    """In a forked child: forget the parent's engines without closing their connections
    (they are the parent's, still in use there; closing one would end its session on the
    server). The child connects afresh."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)
    _ENGINES.clear()


def sessions(settings: Settings) -> sessionmaker[Session]:
    """A session factory bound to the configured database (objects survive commit)."""
    return sessionmaker(get_engine(settings), expire_on_commit=False)


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A session that commits when the block ends normally and rolls back otherwise."""
    with sessions(settings).begin() as session:
        yield session


@contextmanager
def read_scope(settings: Settings) -> Iterator[Session]:
    """A session for reading only, rolled back at the end. On SQLite its transaction is
    deferred: it neither takes nor waits for the write lock, so it may be opened while this
    thread holds a session_scope (a page rendered inside a route's transaction)."""
    with deferred(get_engine(settings).connect()) as conn:
        with Session(bind=conn, expire_on_commit=False) as session:
            yield session  # closing it rolls back what it began


def deferred(conn: Connection) -> Connection:
    """``conn``, its transactions begun deferred on SQLite: they take the write lock at their
    first write, not at their start. For reads, and for transactions whose first statement
    writes (one that reads and then writes must take the lock first: ``_sqlite_begin``)."""
    return conn.execution_options(**{_READ_ONLY: True})


def alembic_config(settings: Settings) -> AlembicConfig:
    """An Alembic config pointing at our migrations and the configured database."""
    # Imported here: Alembic is 0.6 s of every process's start, and only migrations need it.
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", settings.effective_database_url.replace("%", "%%"))
    cfg.attributes["settings"] = settings
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (creating it if needed)."""
    from alembic import command

    filemodes.data_dir(settings.data_dir)
    _prepare_sqlite(settings)  # Alembic opens the database with an engine of its own
    command.upgrade(alembic_config(settings), revision)


# Where a driver says the schema is missing or older than the code (no table, no column).
_NO_SCHEMA = ("no such table", "no such column", "does not exist")
_UNDEFINED = ("42P01", "42703")  # PostgreSQL: undefined table, undefined column


def explain(settings: Settings, exc: DBAPIError) -> DistributorError | None:
    """What to tell a user when ``exc`` means the database cannot be used at all — one
    line saying which database, where (its URL, password masked) and what to check:

    - ServiceError (exit 69) when it cannot be reached: connecting failed (nothing listens
      there, no such database, credentials refused, an SQLite file that cannot be opened)
      or the connection was lost;
    - ConfigError (exit 78) when it answers but has no tables, or an older schema: it
      needs ``distributor db upgrade``.

    None for any other database error (a bug, shown as it is)."""
    url = settings.effective_database_url
    sqlite = url.startswith("sqlite")
    where = f"{'SQLite' if sqlite else 'PostgreSQL'} at {redact(url, [])}"
    lines = str(exc.orig).strip().splitlines() or [type(exc.orig).__name__]
    reason = " ".join(lines[0].split()).removeprefix("connection failed: ")
    if isinstance(exc, OperationalError | InterfaceError) and (
        exc.statement is None or exc.connection_invalidated
    ):
        if sqlite:
            hint = "check that the file's directory exists and this user may write there"
        elif "does not exist" in reason:
            hint = "create it (createdb) or correct DISTRIBUTOR_DATABASE_URL"
        elif "authentication" in reason or "password" in reason:
            hint = "check the user name and password in DISTRIBUTOR_DATABASE_URL"
        else:
            hint = (
                "check that the server runs and accepts connections there, "
                "and DISTRIBUTOR_DATABASE_URL"
            )
        return ServiceError(f"the database cannot be reached ({where}): {reason}; {hint}")
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if exc.statement is not None and (
        sqlstate in _UNDEFINED or (sqlite and reason.startswith(_NO_SCHEMA))
    ):
        return ConfigError(
            f"the database ({where}) has no tables yet, or an older schema ({reason}): "
            "run `distributor db upgrade`"
        )
    return None
