"""newsroom search: a full-text index of the published releases, kept by the database

SQLite: an FTS5 table ``release_search`` (title, lead, body, and the language to filter
on without reading ``releases``' long rows; rowid = the release's id), tokenizer ``unicode61 remove_diacritics 2`` ("eco" finds "éco"). PostgreSQL: a table
``release_search`` (release_id, a weighted tsvector: title A, lead B, body C) with a GIN
index, in the text search configuration ``distributor_search``: ``simple`` (no stemming,
no stop words: the same words match in every language, as on SQLite) with ``unaccent``
before it when the extension can be created (PostgreSQL 13+ trusts it to a database
owner), plain ``simple`` otherwise.

Triggers on ``releases`` keep either in step: a row is indexed while its state is
``published`` and only then, its text again whenever its title, lead, body or state
changes, and it leaves the index when it is withdrawn or deleted. No code path has to
remember it, and a draft, scheduled or withdrawn release is never in the index at all.

On SQLite a later migration that rebuilds ``releases`` (``batch_alter_table`` with a
"move and copy") drops these triggers with the old table: it must create them again
(``sqlite_triggers`` below).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


SQLITE_COLUMNS = "rowid, title, lead, body, language"
SQLITE_VALUES = "{row}.id, {row}.title, {row}.lead, {row}.body_text, {row}.language"
SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER release_search_insert AFTER INSERT ON releases
    WHEN new.state = 'published' BEGIN
        INSERT INTO release_search ({SQLITE_COLUMNS}) VALUES ({SQLITE_VALUES.format(row='new')});
    END""",
    f"""CREATE TRIGGER release_search_update
    AFTER UPDATE OF title, lead, body_text, language, state ON releases BEGIN
        DELETE FROM release_search WHERE rowid = old.id;
        INSERT INTO release_search ({SQLITE_COLUMNS})
        SELECT {SQLITE_VALUES.format(row='new')} WHERE new.state = 'published';
    END""",
    """CREATE TRIGGER release_search_delete AFTER DELETE ON releases BEGIN
        DELETE FROM release_search WHERE rowid = old.id;
    END""",
)

# "<", ">" and "&" made spaces first: PostgreSQL's parser takes "<b>bold</b>" (or
# "a<b and c>d") for markup and drops the words inside it, which SQLite's index keeps.
PG_FIELD = "to_tsvector('distributor_search', regexp_replace(coalesce({row}.{column}, ''), '[<>&]', ' ', 'g'))"
PG_HEAD = " || ".join(
    f"setweight({PG_FIELD.format(row='{row}', column=column)}, '{weight}')"
    for column, weight in (('title', 'A'), ('lead', 'B'))
)
PG_VALUES = (
    "{row}.id, {row}.language, {row}.date, "
    f"{PG_HEAD}, {PG_HEAD} || {PG_FIELD.format(row='{row}', column='body_text')}"
)

PG_FUNCTION = f"""CREATE FUNCTION release_search_sync() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM release_search WHERE release_id = OLD.id;
    IF NEW.state = 'published' THEN
        INSERT INTO release_search (release_id, language, date, head, document)
        VALUES ({PG_VALUES.format(row='NEW')});
    END IF;
    RETURN NULL;
END
$$"""


def sqlite_triggers() -> None:
    """The triggers that keep ``release_search`` in step with ``releases`` (SQLite)."""
    for statement in SQLITE_TRIGGERS:
        op.execute(statement)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        op.execute(
            "CREATE VIRTUAL TABLE release_search USING fts5("
            "title, lead, body, language, tokenize = 'unicode61 remove_diacritics 2')"
        )
        sqlite_triggers()
        op.execute(
            f"INSERT INTO release_search ({SQLITE_COLUMNS})"
            f" SELECT {SQLITE_VALUES.format(row='releases')} FROM releases"
            " WHERE state = 'published'"
        )
        return
    op.execute("CREATE TEXT SEARCH CONFIGURATION distributor_search (COPY = pg_catalog.simple)")
    # In a savepoint: a role that may not create the extension leaves the rest standing.
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS unaccent"))
            bind.execute(sa.text(
                "ALTER TEXT SEARCH CONFIGURATION distributor_search"
                " ALTER MAPPING FOR hword, hword_part, word WITH unaccent, simple"
            ))
    except sa.exc.DBAPIError:
        pass  # accents then count: "eco" does not find "éco" (README, Search)
    op.execute(
        "CREATE TABLE release_search ("
        " release_id integer PRIMARY KEY REFERENCES releases (id) ON DELETE CASCADE,"
        " language varchar(8) NOT NULL, date timestamp NOT NULL,"
        " head tsvector NOT NULL, document tsvector NOT NULL)"
    )
    op.execute("CREATE INDEX ix_release_search_document ON release_search USING gin (document)")
    op.execute(PG_FUNCTION)
    # Deleted releases leave by the foreign key's cascade.
    op.execute(
        "CREATE TRIGGER release_search_sync AFTER INSERT OR UPDATE OF title, lead, body_text,"
        " language, date, state ON releases FOR EACH ROW EXECUTE FUNCTION release_search_sync()"
    )
    op.execute(
        "INSERT INTO release_search (release_id, language, date, head, document)"
        f" SELECT {PG_VALUES.format(row='releases')} FROM releases"
        " WHERE state = 'published'"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for name in ('insert', 'update', 'delete'):
            op.execute(f"DROP TRIGGER IF EXISTS release_search_{name}")
        op.execute("DROP TABLE IF EXISTS release_search")
        return
    op.execute("DROP TRIGGER IF EXISTS release_search_sync ON releases")
    op.execute("DROP FUNCTION IF EXISTS release_search_sync()")
    op.execute("DROP TABLE IF EXISTS release_search")
    # The extension stays: it may have been there before, and other things may use it.
    op.execute("DROP TEXT SEARCH CONFIGURATION IF EXISTS distributor_search")
