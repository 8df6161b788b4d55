"""ledger retention: counts of the delivery and notice rows folded after the retention period

``folded_counts`` holds, per release, ledger, notice kind, status and advance flag, how many
rows were folded (deleted after ``DISTRIBUTOR_LEDGER_RETENTION_DAYS``) and what the reports
read of them. Counts only: nothing about a person.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa


revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('folded_counts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('ledger', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('advance', sa.Boolean(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('hard_bounces', sa.Integer(), nullable=False),
    sa.Column('soft_bounces', sa.Integer(), nullable=False),
    sa.Column('unsubscribed', sa.Integer(), nullable=False),
    sa.Column('unsubscribed_in_window', sa.Integer(), nullable=False),
    sa.Column('first_sent_at', sa.DateTime(), nullable=True),
    sa.Column('last_sent_at', sa.DateTime(), nullable=True),
    sa.Column('folded_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_folded_counts_release_id_releases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_folded_counts')),
    sa.UniqueConstraint('release_id', 'ledger', 'kind', 'status', 'advance', name='uq_folded_counts_group'),
    sqlite_autoincrement=True,
    )
    # A fold deletes deliveries, and each takes its notices with it (ON DELETE CASCADE):
    # found through this index, not a scan of the notices per delivery deleted.
    op.create_index('ix_correction_notices_delivery', 'correction_notices', ['delivery_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_correction_notices_delivery', table_name='correction_notices')
    op.drop_table('folded_counts')
