"""ids never reused, link nonces, subscription requests

On SQLite every table keyed by one integer id is rebuilt with AUTOINCREMENT (Alembic batch
mode: a copy with the same rows and ids), so an id freed by a deletion (a GDPR erasure) is
never given to a new row. SQLite then starts each table's sequence at its largest id: an
id erased *before* this migration and larger than every id left can still be taken once.
PostgreSQL's sequences never go back, so only the new columns and tables apply there.

Subscribers get ``link_nonce``, left empty on existing rows: their links already sent carry
only an id and must keep working (an unsubscribe link is forever, RFC 8058); new rows get
one, and an id-only link is accepted only for a row without one.

Subscription requests are kept apart from subscribers until confirmed, and the once-a-day
confirmation limit moves from the subscriber row to a table keyed by mailbox.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def _tables_to_rebuild(conn: sa.engine.Connection) -> list[str]:
    """Our SQLite tables keyed by a single INTEGER id and not yet AUTOINCREMENT."""
    found = []
    rows = conn.exec_driver_sql(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite_%' AND name != 'alembic_version' ORDER BY name"
    )
    inspector = sa.inspect(conn)
    for name, sql in rows:
        if 'AUTOINCREMENT' in (sql or '').upper():
            continue
        columns = inspector.get_pk_constraint(name)['constrained_columns']
        if len(columns) != 1:
            continue
        [column] = [c for c in inspector.get_columns(name) if c['name'] == columns[0]]
        if isinstance(column['type'], sa.Integer):
            found.append(name)
    return found


def upgrade() -> None:
    conn = op.get_bind()
    sqlite = conn.dialect.name == 'sqlite'
    if sqlite:
        # Batch mode drops each old table after copying it: with foreign keys enforced,
        # that drop would delete (ON DELETE CASCADE) every row referring to it.
        if conn.exec_driver_sql('PRAGMA foreign_keys').scalar():
            raise RuntimeError(
                'migration 0012 must run with PRAGMA foreign_keys=OFF on SQLite '
                '(distributor db upgrade does)'
            )
        for name in _tables_to_rebuild(conn):
            if name == 'subscribers':
                continue  # rebuilt below, with its column changes
            with op.batch_alter_table(
                name, recreate='always', table_kwargs={'sqlite_autoincrement': True}
            ):
                pass
    with op.batch_alter_table(
        'subscribers',
        recreate='always' if sqlite else 'auto',
        table_kwargs={'sqlite_autoincrement': True} if sqlite else {},
    ) as batch_op:
        batch_op.add_column(sa.Column('link_nonce', sa.String(length=32), nullable=True))
        batch_op.drop_column('confirmation_sent_at')

    op.create_table('subscription_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('mailbox', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('topics', sa.JSON(), nullable=False),
    sa.Column('consent_source', sa.String(length=200), nullable=False),
    sa.Column('consent_ip', sa.String(length=64), nullable=False),
    sa.Column('consent_user_agent', sa.String(length=500), nullable=False),
    sa.Column('consent_form_version', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('confirmation_sent_at', sa.DateTime(), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(), nullable=True),
    sa.Column('nonce', sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscription_requests')),
    sqlite_autoincrement=True,
    )
    op.create_index(op.f('ix_subscription_requests_created_at'), 'subscription_requests', ['created_at'], unique=False)
    op.create_index(op.f('ix_subscription_requests_email'), 'subscription_requests', ['email'], unique=False)
    op.create_table('confirmation_limits',
    sa.Column('mailbox_hash', sa.String(length=64), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('mailbox_hash', name=op.f('pk_confirmation_limits')),
    )


def downgrade() -> None:
    op.drop_table('confirmation_limits')
    op.drop_index(op.f('ix_subscription_requests_email'), table_name='subscription_requests')
    op.drop_index(op.f('ix_subscription_requests_created_at'), table_name='subscription_requests')
    op.drop_table('subscription_requests')
    with op.batch_alter_table('subscribers') as batch_op:
        batch_op.add_column(sa.Column('confirmation_sent_at', sa.DateTime(), nullable=True))
        batch_op.drop_column('link_nonce')
    # AUTOINCREMENT stays: it takes nothing away from the older code.
