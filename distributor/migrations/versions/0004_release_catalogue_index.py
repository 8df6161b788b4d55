"""release catalogue index (covers the site builder's query)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        'ix_releases_catalogue',
        'releases',
        ['state', 'language', 'date', 'id', 'updated_at', 'slug', 'translation_of_id'],
    )


def downgrade() -> None:
    op.drop_index('ix_releases_catalogue', table_name='releases')
