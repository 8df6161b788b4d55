"""consent, bounces, suppressions, api tokens

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('last_used_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('name', name=op.f('uq_api_tokens_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('suppressions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email_hash', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppressions')),
    sa.UniqueConstraint('email_hash', name=op.f('uq_suppressions_email_hash'))
    )
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bounce', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('bounced_at', sa.DateTime(), nullable=True))

    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consent_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('consent_ip', sa.String(length=64), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('consent_user_agent', sa.String(length=500), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('consent_form_version', sa.String(length=32), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('confirmation_sent_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('soft_bounces', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('bounced_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('bounced_at')
        batch_op.drop_column('soft_bounces')
        batch_op.drop_column('confirmation_sent_at')
        batch_op.drop_column('consent_form_version')
        batch_op.drop_column('consent_user_agent')
        batch_op.drop_column('consent_ip')
        batch_op.drop_column('consent_at')

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('bounced_at')
        batch_op.drop_column('bounce')

    op.drop_table('suppressions')
    op.drop_table('api_tokens')
