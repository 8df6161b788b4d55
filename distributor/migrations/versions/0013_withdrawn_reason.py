"""a withdrawn release's reason, shown on its 410 page

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Releases withdrawn before this revision have no reason: their page stays as it was.
    with op.batch_alter_table('releases') as batch:
        batch.add_column(sa.Column('withdrawn_reason', sa.String(length=500), nullable=False,
                                   server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('releases') as batch:
        batch.drop_column('withdrawn_reason')
