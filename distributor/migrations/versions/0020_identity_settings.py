"""the office's identity as set on the settings page

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('identity_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_identity_settings')),
    )


def downgrade() -> None:
    op.drop_table('identity_settings')
