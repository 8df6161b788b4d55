"""journalists' embargo access: asked for, granted, refused or revoked

A table of its own rather than columns on ``subscribers``: most subscribers never ask, the
send path reads subscribers by the hundred thousand and none of this, and the row goes
with its subscriber (an erasure) by its foreign key.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accreditations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.Integer(), nullable=False),
    sa.Column('outlet', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('requested_at', sa.DateTime(), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('decided_by', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('lift_notice', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_accreditations_subscriber_id_subscribers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accreditations')),
    sa.UniqueConstraint('subscriber_id', name=op.f('uq_accreditations_subscriber_id')),
    sqlite_autoincrement=True,  # an id is never used twice (see 0012)
    )
    op.create_index('ix_accreditations_status', 'accreditations', ['status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_accreditations_status', table_name='accreditations')
    op.drop_table('accreditations')
