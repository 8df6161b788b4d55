"""digests: a daily or weekly email of the releases of a period, per subscriber

``subscribers.digest`` is how they receive releases (immediate, daily, weekly);
``digest_periods`` one period of a mode, planned once; ``digests`` the ledger (one row per
period and subscriber); ``digest_items`` the releases each digest holds, unique per
subscriber and revision so that nobody gets a release twice through digests.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

from typing import Any

from alembic import op
import sqlalchemy as sa


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def _outbox_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
        sa.Column('lease_until', sa.DateTime(), nullable=True),
        sa.Column('lease_token', sa.String(length=32), nullable=True),
        sa.Column('smtp_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
    ]


def upgrade() -> None:
    op.add_column('subscribers', sa.Column('digest', sa.String(length=16), nullable=False, server_default='immediate'))
    op.add_column('subscribers', sa.Column('digest_left', sa.String(length=16), nullable=True))
    op.add_column('subscribers', sa.Column('digest_left_at', sa.DateTime(), nullable=True))
    op.create_table(
        'digest_periods',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('mode', sa.String(length=16), nullable=False),
        sa.Column('starts_at', sa.DateTime(), nullable=False),
        sa.Column('ends_at', sa.DateTime(), nullable=False),
        sa.Column('planned_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_digest_periods')),
        sa.UniqueConstraint('mode', 'ends_at', name='uq_digest_periods_mode_end'),
        sqlite_autoincrement=True,
    )
    op.create_table(
        'digests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('period_id', sa.Integer(), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        *_outbox_columns(),
        sa.ForeignKeyConstraint(['period_id'], ['digest_periods.id'], name=op.f('fk_digests_period_id_digest_periods'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_digests_subscriber_id_subscribers'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_digests')),
        sa.UniqueConstraint('period_id', 'subscriber_id', name='uq_digests_period_subscriber'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_digests_due', 'digests', ['status', 'next_attempt_at'])
    # A claim goes straight to the period's open rows, past the thousands already sent.
    op.create_index('ix_digests_period_status', 'digests', ['period_id', 'status'])
    op.create_table(
        'digest_items',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('digest_id', sa.Integer(), nullable=False),
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('release_id', sa.Integer(), nullable=False),
        sa.Column('revision_at', sa.DateTime(), nullable=False),
        sa.Column('corrected', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['digest_id'], ['digests.id'], name=op.f('fk_digest_items_digest_id_digests'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_digest_items_subscriber_id_subscribers'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_digest_items_release_id_releases'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_digest_items')),
        sa.UniqueConstraint('subscriber_id', 'release_id', 'revision_at', name='uq_digest_items_once'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_digest_items_digest', 'digest_items', ['digest_id'])


def downgrade() -> None:
    op.drop_index('ix_digest_items_digest', table_name='digest_items')
    op.drop_table('digest_items')
    op.drop_index('ix_digests_period_status', table_name='digests')
    op.drop_index('ix_digests_due', table_name='digests')
    op.drop_table('digests')
    op.drop_table('digest_periods')
    with op.batch_alter_table('subscribers') as batch:
        batch.drop_column('digest_left_at')
        batch.drop_column('digest_left')
        batch.drop_column('digest')
