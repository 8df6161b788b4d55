"""the two-person rule: who last edited a release, who asked for and gave its approval

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain added columns with defaults: no table is rebuilt (releases can be large).
    op.add_column('releases', sa.Column('last_edited_by', sa.String(length=200), nullable=False, server_default=''))
    op.add_column('releases', sa.Column('approval_requested_by', sa.String(length=200), nullable=False, server_default=''))
    op.add_column('releases', sa.Column('approved_by', sa.String(length=200), nullable=False, server_default=''))
    op.add_column('releases', sa.Column('approved_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('releases') as batch:
        batch.drop_column('approved_at')
        batch.drop_column('approved_by')
        batch.drop_column('approval_requested_by')
        batch.drop_column('last_edited_by')
