"""release scheduled_at, apart from the front matter's embargo

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scheduled_at', sa.DateTime(), nullable=True))
    # Until now a scheduled release kept its time in embargo_at.
    op.execute("UPDATE releases SET scheduled_at = embargo_at WHERE state = 'scheduled'")


def downgrade() -> None:
    op.execute(
        "UPDATE releases SET embargo_at = scheduled_at WHERE state = 'scheduled'"
    )
    with op.batch_alter_table('releases', schema=None) as batch_op:
        batch_op.drop_column('scheduled_at')
