"""embargoed advance copies: when a release's go out, and which deliveries were ones

``deliveries.advance`` marks the row of a subscriber who received the release before it was
public: the same row, so the public send at the lift (``ON CONFLICT DO NOTHING``) never
sends them a second copy, and the ledger's exactly-once holds across both.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain added columns with defaults: no table is rebuilt (deliveries can be large).
    op.add_column('releases', sa.Column('advance_at', sa.DateTime(), nullable=True))
    op.add_column('releases', sa.Column('advance_planned_at', sa.DateTime(), nullable=True))
    op.add_column('releases', sa.Column('embargo_moved_at', sa.DateTime(), nullable=True))
    op.add_column('deliveries', sa.Column('advance', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('deliveries') as batch:
        batch.drop_column('advance')
    with op.batch_alter_table('releases') as batch:
        batch.drop_column('embargo_moved_at')
        batch.drop_column('advance_planned_at')
        batch.drop_column('advance_at')
