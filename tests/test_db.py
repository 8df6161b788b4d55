import pytest
from sqlalchemy import inspect

from distributor.core.config import Settings
from distributor.core.db import get_engine
from distributor.releases.search import SEARCH_TABLE


def test_migrations_create_every_table(settings: Settings) -> None:
    names = set(inspect(get_engine(settings)).get_table_names())
    assert {"topics", "subscribers", "subscriptions", "releases", "deliveries"} <= names


# SQLite's reflection skips an index on an expression (lower(email)); PostgreSQL's checks it.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_the_migrations_build_exactly_the_tables_the_models_describe(settings: Settings) -> None:
    """A column, index or constraint declared in ``core/models.py`` and missing from the
    migrations (or the reverse) is a database that differs between a fresh test run and an
    upgraded production one; alembic's comparison names each difference."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from distributor.core.models import Base

    def modelled(name: str | None, type_: str, parent_names: object) -> bool:
        # The search index (migration 0024) is the database's own, kept by triggers, and no
        # model: SQLite's FTS5 table and its shadow tables, PostgreSQL's tsvector table.
        # Likewise the site's change log (migration 0026), written by triggers.
        own = (SEARCH_TABLE, "site_version", "site_changes")
        return not (type_ == "table" and (name or "").startswith(own))

    with get_engine(settings).connect() as connection:
        opts = {"compare_type": True, "include_name": modelled}
        context = MigrationContext.configure(connection, opts=opts)
        differences = compare_metadata(context, Base.metadata)
    ours = [d for d in differences if "alembic_version" not in repr(d)]
    assert ours == [], "\n".join(map(repr, ours))
