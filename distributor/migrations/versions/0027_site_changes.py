"""the site's change log: a version number the site builder's warm cache is checked against

``site_version`` holds one row: ``version``, a counter, and ``epoch``, a random token
made with the row (a database made again, whose counter restarts, is another epoch).
``site_changes`` holds one row per change the site may show: (the version it made, the
release it concerns). Triggers write both, in the transaction that makes the change:

- ``releases``: a row inserted, updated or deleted while it is (or was) published or
  withdrawn (drafts and scheduled releases have no page; their edits are not logged);
- ``release_topics``: a release's topics (any link inserted, updated or deleted; deleting a
  topic deletes its links).

A correction's note is stored with the correction of the release's row (``updated_at``
moves with it), which logs it.

So no code path has to remember to log a change (the site builder's catalogue reads these
tables only; topics and the office's identity it reads again at every build, they are a
few rows). Each change bumps the one counter row, which the transaction then holds until it
commits: versions are handed out in commit order, without gaps (a transaction rolled back
takes its versions with it), so a reader that saw version n has seen every change up to n.

On SQLite a later migration that rebuilds ``releases`` (``batch_alter_table`` with a
"move and copy") drops its triggers with the old table: it must create them again
(``sqlite_triggers`` below), as for the search index (0024).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


SHOWN = "('published', 'withdrawn')"
# table, the triggers' suffix, the event, the row's column holding the release id, the
# condition (SQLite's WHEN; PostgreSQL's function tests it in its body).
SQLITE_EVENTS = (
    ("releases", "insert", "INSERT", "new.id", f"new.state IN {SHOWN}"),
    ("releases", "update", "UPDATE", "new.id", f"old.state IN {SHOWN} OR new.state IN {SHOWN}"),
    ("releases", "delete", "DELETE", "old.id", f"old.state IN {SHOWN}"),
    ("release_topics", "insert", "INSERT", "new.release_id", "1"),
    ("release_topics", "update", "UPDATE", "new.release_id", "1"),
    ("release_topics", "delete", "DELETE", "old.release_id", "1"),
)
LOG = (
    "UPDATE site_version SET version = version + 1;"
    " INSERT INTO site_changes (version, release_id) SELECT version, {rid} FROM site_version;"
)

PG_FUNCTIONS = {
    "releases": f"""
    IF (TG_OP <> 'INSERT' AND OLD.state IN {SHOWN})
        OR (TG_OP <> 'DELETE' AND NEW.state IN {SHOWN}) THEN
        rid := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
    ELSE
        RETURN NULL;
    END IF;""",
    "release_topics": """
    rid := CASE WHEN TG_OP = 'DELETE' THEN OLD.release_id ELSE NEW.release_id END;""",
}
PG_FUNCTION = """CREATE FUNCTION site_change_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rid integer;
    v bigint;
BEGIN{body}
    UPDATE site_version SET version = version + 1 RETURNING version INTO v;
    INSERT INTO site_changes (version, release_id) VALUES (v, rid);
    RETURN NULL;
END
$$"""


def sqlite_triggers(table: str | None = None) -> None:
    """The triggers that log changes of ``table`` (both tables when None; SQLite)."""
    for name, suffix, event, rid, when in SQLITE_EVENTS:
        if table in (None, name):
            op.execute(
                f"CREATE TRIGGER site_change_{name}_{suffix} AFTER {event} ON {name}"
                f" WHEN {when} BEGIN {LOG.format(rid=rid)} END"
            )


def upgrade() -> None:
    op.create_table(
        'site_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.Column('epoch', sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_site_version')),
    )
    op.create_table(
        'site_changes',
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.Column('release_id', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('version', name=op.f('pk_site_changes')),
    )
    op.execute(
        sa.text("INSERT INTO site_version (id, version, epoch) VALUES (1, 0, :epoch)").bindparams(
            epoch=secrets.token_hex(16)
        )
    )
    if op.get_bind().dialect.name == 'sqlite':
        sqlite_triggers()
        return
    for table, body in PG_FUNCTIONS.items():
        op.execute(PG_FUNCTION.format(table=table, body=body))
        op.execute(
            f"CREATE TRIGGER site_change AFTER INSERT OR UPDATE OR DELETE ON {table}"
            f" FOR EACH ROW EXECUTE FUNCTION site_change_{table}()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for name, suffix, *_ in SQLITE_EVENTS:
            op.execute(f"DROP TRIGGER IF EXISTS site_change_{name}_{suffix}")
    else:
        for table in PG_FUNCTIONS:
            op.execute(f"DROP TRIGGER IF EXISTS site_change ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS site_change_{table}()")
    op.drop_table('site_changes')
    op.drop_table('site_version')
