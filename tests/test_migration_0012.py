"""Migration 0012 on a database with rows in it, SQLite and PostgreSQL: every row and id
kept, every table of ours AUTOINCREMENT on SQLite, and the links already sent still work —
for the rows they were made for only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from distributor.audience.privacy import erase_person
from distributor.core.config import Settings, load_settings
from distributor.core.db import dispose_engines, get_engine, session_scope, upgrade
from distributor.core.models import Base, Subscriber, SubscriberStatus
from distributor.core.tokens import Purpose, make_token
from distributor.web import create_app
from tests.conftest import PG_ADMIN_URL
from tests.helpers import add_subscribers
from tests.processes import NO_BROKER

T0 = datetime(2026, 11, 1, 9, 0)  # naive UTC, as stored
PEOPLE = [  # id, email, status; id 4 is erased before the migration
    (1, "ann@example.com", "confirmed"),
    (2, "bob@example.com", "pending"),
    (3, "cy@example.com", "confirmed"),
    (4, "gone@example.com", "confirmed"),
]


def _pg(sql: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(sql))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def at_0010(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings for a new database migrated to 0010 only (the revision before 0012)."""
    url = None
    name = f"distributor_test_mig_{os.getpid()}"
    if request.param == "postgresql":
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        _pg(f'CREATE DATABASE "{name}"')
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    settings = load_settings(data_dir=tmp_path / "var", database_url=url, broker_url=NO_BROKER,
                             site_url="https://news.example.org",
                             secret_key="migration-test-key-" + "k" * 32)  # fmt: skip
    upgrade(settings, "0010")
    yield settings
    dispose_engines()
    if url:
        _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _insert(conn: sa.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
    conn.execute(sa.insert(reflected), rows)


def populate_old_schema(settings: Settings) -> None:
    """A row or more in every table, through the 0010 schema, then one person erased (the
    newest: on SQLite before AUTOINCREMENT, their id is free to be taken again)."""
    engine = get_engine(settings)
    stamp = {"created_at": T0}
    with engine.begin() as conn:
        _insert(conn, "topics", [{"id": 1, "slug": "climate", "names": {"en": "Climate"}, **stamp}])
        _insert(conn, "subscribers", [
            {"id": i, "email": e, "name": e[:3], "language": "en", "status": s,
             "consent_source": "old list", "created_at": T0, "soft_bounces": 0,
             "confirmed_at": T0 if s == "confirmed" else None,
             "confirmation_sent_at": T0 if s == "pending" else None}
            for i, e, s in PEOPLE
        ])  # fmt: skip
        _insert(conn, "subscriptions", [{"subscriber_id": i, "topic_id": 1} for i, *_ in PEOPLE])
        _insert(conn, "releases", [{
            "id": 1, "slug": "r1", "title": "R1", "language": "en", "dateline": "", "lead": "",
            "body_html": "<p>x</p>", "body_text": "x", "date": T0, "contacts": [],
            "images": [], "attachments": [], "state": "published", "withdrawn_by": "",
            "updated_at": T0, **stamp,
        }])  # fmt: skip
        _insert(conn, "release_topics", [{"release_id": 1, "topic_id": 1}])
        _insert(conn, "deliveries", [
            {"id": i, "release_id": 1, "subscriber_id": i, "status": "sent", "attempts": 1,
             "next_attempt_at": T0, "last_error": "", "sent_at": T0, **stamp}
            for i, _e, s in PEOPLE if s == "confirmed"
        ])  # fmt: skip
        _insert(conn, "correction_notices", [{
            "id": 1, "release_id": 1, "subscriber_id": 1, "delivery_id": 1, "corrected_at": T0,
            "status": "pending", "attempts": 0, "next_attempt_at": T0, "last_error": "", **stamp,
        }])  # fmt: skip
        _insert(conn, "suppressions", [{"id": 1, "email_hash": "0" * 64, "reason": "erased",
                                        **stamp}])  # fmt: skip
        _insert(conn, "audit_events", [{"id": 1, "at": T0, "actor": "cli", "action": "publish",
                                        "subject": "release 1", "details": {}}])  # fmt: skip
        _insert(conn, "api_tokens", [{"id": 1, "name": "desk", "token_hash": "1" * 64,
                                      "scopes": ["subscribers"], **stamp}])  # fmt: skip
        _insert(conn, "idempotency_keys", [{"id": 1, "token_name": "desk", "key": "k",
                                            "request_hash": "2" * 64, **stamp}])  # fmt: skip
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequences on
            for table in ("topics", "subscribers", "releases", "deliveries",
                          "correction_notices", "suppressions", "audit_events", "api_tokens",
                          "idempotency_keys"):  # fmt: skip
                conn.execute(sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"))  # fmt: skip
    with session_scope(settings) as session:  # the newest person erased before 0012
        session.execute(sa.text("DELETE FROM deliveries WHERE subscriber_id = 4"))
        session.execute(sa.text("DELETE FROM subscriptions WHERE subscriber_id = 4"))
        session.execute(sa.text("DELETE FROM subscribers WHERE id = 4"))


def snapshot(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of 0010, ordered, without the column 0012 drops."""
    engine = get_engine(settings)
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name in sa.inspect(conn).get_table_names():
            if name == "alembic_version":
                continue
            table = sa.Table(name, sa.MetaData(), autoload_with=conn)
            columns = [c for c in table.c if c.name not in ("confirmation_sent_at", "link_nonce")]
            rows = conn.execute(sa.select(*columns).order_by(*table.primary_key.columns))
            tables[name] = [tuple(r) for r in rows]
    return tables


def test_0012_keeps_every_row_and_id_and_the_links_already_sent(at_0010: Settings) -> None:
    settings = at_0010
    populate_old_schema(settings)
    before = snapshot(settings)
    dispose_engines()
    upgrade(settings, "0012")  # the revision under test (later ones may add columns)
    after = snapshot(settings)
    assert {t: rows for t, rows in after.items() if t in before} == before
    assert after["subscription_requests"] == [] and after["confirmation_limits"] == []
    with session_scope(settings) as session:
        nonces = session.scalars(sa.select(Subscriber.link_nonce).order_by(Subscriber.id))
        assert list(nonces) == [None] * 3

    # The links in mailboxes carry ids only: they work for their own rows, with today's code
    # on today's schema (the revisions after 0012 add tables the pages read).
    dispose_engines()
    upgrade(settings, "head")
    ann_unsubscribe = make_token(settings, Purpose.UNSUBSCRIBE, 1)
    ann_preferences = make_token(settings, Purpose.PREFERENCES, 1)
    bob_confirm = make_token(settings, Purpose.CONFIRM, 2)
    gone_preferences = make_token(settings, Purpose.PREFERENCES, 4)  # erased before 0012
    add_subscribers(settings, [("dan@example.com", "Dan", "en", "climate")])
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        page = client.get(f"/preferences/{ann_preferences}")
        assert page.status_code == 200 and "ann@example.com" in page.text
        page = client.get(f"/confirm/{bob_confirm}")
        assert page.status_code == 200 and "bob@example.com" in page.text
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        assert client.post(f"/confirm/{bob_confirm}", data={"csrf": csrf}).status_code == 200
        one_click = client.post(f"/unsubscribe/{ann_unsubscribe}",
                                data={"List-Unsubscribe": "One-Click"})  # fmt: skip
        assert one_click.status_code == 200
        # Dan may take the id erased before the migration (SQLite could not know it was
        # used), but not the erased person's links: his rows carry a nonce.
        gone = client.get(f"/preferences/{gone_preferences}")
        assert gone.status_code == 400 and "dan@example.com" not in gone.text
    with session_scope(settings) as session:
        status = dict(session.execute(sa.select(Subscriber.email, Subscriber.status)).all())
        dan = session.scalars(sa.select(Subscriber).where(Subscriber.email == "dan@example.com"))
        dan_row = dan.one()
        assert dan_row.link_nonce
    assert status["ann@example.com"] == SubscriberStatus.UNSUBSCRIBED
    assert status["bob@example.com"] == SubscriberStatus.CONFIRMED
    assert status["cy@example.com"] == SubscriberStatus.CONFIRMED  # untouched

    # From now on, no id is given twice.
    with session_scope(settings) as session:
        erase_person(session, settings, "dan@example.com")
    add_subscribers(settings, [("eve@example.com", "Eve", "en", "climate")])
    with session_scope(settings) as session:
        eve = session.scalars(sa.select(Subscriber).where(Subscriber.email == "eve@example.com"))
        assert eve.one().id > dan_row.id


def test_every_table_keyed_by_an_integer_is_autoincrement(sqlite_settings: Settings) -> None:
    """On a database migrated from scratch: tables added by later migrations too (each
    must pass ``sqlite_autoincrement=True``; the models' tables get it by themselves)."""
    with get_engine(sqlite_settings).connect() as conn:
        created = dict(conn.exec_driver_sql("SELECT name, sql FROM sqlite_master").all())
    for table in Base.metadata.sorted_tables:
        [*pk] = table.primary_key.columns
        if len(pk) == 1 and isinstance(pk[0].type, sa.Integer):
            assert "AUTOINCREMENT" in created[table.name], table.name
