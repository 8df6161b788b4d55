"""the press office's address book of press contacts

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('press_contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=200), nullable=False),
    sa.Column('phone', sa.String(length=50), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_press_contacts')),
    sqlite_autoincrement=True,  # an id is never used twice (see 0012)
    )
    # One entry per mailbox whatever its case; an entry without an address (NULL) is not
    # compared. SQLite and PostgreSQL both index the expression.
    op.create_index('uq_press_contacts_email', 'press_contacts', [sa.text('lower(email)')], unique=True)


def downgrade() -> None:
    op.drop_index('uq_press_contacts_email', table_name='press_contacts')
    op.drop_table('press_contacts')
