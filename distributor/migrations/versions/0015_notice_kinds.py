"""notices of a withdrawal beside those of a correction: a kind column

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None
KEEP_IDS = {'sqlite_autoincrement': True}


def upgrade() -> None:
    # Every notice planned before this revision is a correction's.
    # SQLite recreates the table: its ids stay never reused (see 0012).
    with op.batch_alter_table('correction_notices', table_kwargs=KEEP_IDS) as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=False,
                                   server_default='correction'))
        batch.drop_constraint('uq_correction_notices_once', type_='unique')
        batch.create_unique_constraint(
            'uq_correction_notices_once',
            ['release_id', 'subscriber_id', 'kind', 'corrected_at'])


def downgrade() -> None:
    # Withdrawal notices have no place in the older schema.
    op.execute("DELETE FROM correction_notices WHERE kind <> 'correction'")
    # SQLite recreates the table: its ids stay never reused (see 0012).
    with op.batch_alter_table('correction_notices', table_kwargs=KEEP_IDS) as batch:
        batch.drop_constraint('uq_correction_notices_once', type_='unique')
        batch.create_unique_constraint(
            'uq_correction_notices_once', ['release_id', 'subscriber_id', 'corrected_at'])
        batch.drop_column('kind')
