"""statistics without tracking: fetches of public files counted per hour

``release_stats`` holds one count per (hour, kind, file path): aggregates only, nothing
about who fetched. ``release_stats_batches`` records each batch of counts moved from Redis,
so a batch is never added twice.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-08
"""

from alembic import op
import sqlalchemy as sa


revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('release_stats',
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('hour', sa.DateTime(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('subject', 'kind', 'hour', name=op.f('pk_release_stats')),
    )
    op.create_index(op.f('ix_release_stats_hour'), 'release_stats', ['hour'], unique=False)
    op.create_table('release_stats_batches',
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('flushed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('token', name=op.f('pk_release_stats_batches')),
    )
    op.create_index(op.f('ix_release_stats_batches_flushed_at'), 'release_stats_batches', ['flushed_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_release_stats_batches_flushed_at'), table_name='release_stats_batches')
    op.drop_table('release_stats_batches')
    op.drop_index(op.f('ix_release_stats_hour'), table_name='release_stats')
    op.drop_table('release_stats')
