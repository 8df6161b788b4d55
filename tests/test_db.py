from sqlalchemy import inspect

from distributor.core.config import Settings
from distributor.core.db import get_engine


def test_migrations_create_every_table(settings: Settings) -> None:
    names = set(inspect(get_engine(settings)).get_table_names())
    assert {"topics", "subscribers", "subscriptions", "releases", "deliveries"} <= names
