"""confirmation emails through the outbox: their own ledger

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('confirmation_emails',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('lease_token', sa.String(length=32), nullable=True),
    sa.Column('smtp_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['request_id'], ['subscription_requests.id'], name=op.f('fk_confirmation_emails_request_id_subscription_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_confirmation_emails')),
    sqlite_autoincrement=True,  # an id is never used twice (see 0012)
    )
    op.create_index('ix_confirmation_emails_due', 'confirmation_emails', ['status', 'next_attempt_at'], unique=False)
    op.create_index(op.f('ix_confirmation_emails_request_id'), 'confirmation_emails', ['request_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_confirmation_emails_request_id'), table_name='confirmation_emails')
    op.drop_index('ix_confirmation_emails_due', table_name='confirmation_emails')
    op.drop_table('confirmation_emails')
