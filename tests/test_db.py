from sqlalchemy import inspect

from distributor.config import Settings
from distributor.db import get_engine


def test_migrations_create_every_table(settings: Settings) -> None:
    names = set(inspect(get_engine(settings)).get_table_names())
    assert {"topics", "subscribers", "subscriptions", "releases", "deliveries"} <= names
