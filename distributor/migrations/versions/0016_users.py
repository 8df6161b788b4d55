"""named accounts with roles, and invitations (with their emails' ledger); tokens and
dashboard sessions can belong to an account; failed logins counted

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None
KEEP_IDS = {'sqlite_autoincrement': True}


def upgrade() -> None:
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('password_changed_at', sa.DateTime(), nullable=False),
    sa.Column('last_login_at', sa.DateTime(), nullable=True),
    sa.Column('disabled_at', sa.DateTime(), nullable=True),
    sa.Column('totp_secret', sa.String(length=64), nullable=True),
    sa.Column('totp_enabled_at', sa.DateTime(), nullable=True),
    sa.Column('totp_last_step', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email')),
    sqlite_autoincrement=True,  # an id is never used twice (see 0012)
    )
    op.create_table('login_failures',
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('first_at', sa.DateTime(), nullable=False),
    sa.Column('blocked_until', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('key_hash', name=op.f('pk_login_failures')),
    )
    op.create_index(op.f('ix_login_failures_blocked_until'), 'login_failures', ['blocked_until'], unique=False)
    op.create_table('invitations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('nonce', sa.String(length=24), nullable=False),
    sa.Column('invited_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('accepted_at', sa.DateTime(), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invitations')),
    sqlite_autoincrement=True,
    )
    op.create_index(op.f('ix_invitations_email'), 'invitations', ['email'], unique=False)
    op.create_table('invitation_emails',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('invitation_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('lease_token', sa.String(length=32), nullable=True),
    sa.Column('smtp_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['invitation_id'], ['invitations.id'], name=op.f('fk_invitation_emails_invitation_id_invitations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invitation_emails')),
    sqlite_autoincrement=True,
    )
    op.create_index('ix_invitation_emails_due', 'invitation_emails', ['status', 'next_attempt_at'], unique=False)
    op.create_index(op.f('ix_invitation_emails_invitation_id'), 'invitation_emails', ['invitation_id'], unique=False)
    # Tokens and sessions made before accounts existed belong to no user: a token keeps
    # what its scopes allow. SQLite recreates both tables: ids stay never reused.
    for table in ('api_tokens', 'admin_sessions'):
        with op.batch_alter_table(table, table_kwargs=KEEP_IDS) as batch:
            batch.add_column(sa.Column('user_id', sa.Integer(), nullable=True))
            batch.create_foreign_key(
                op.f(f'fk_{table}_user_id_users'), 'users', ['user_id'], ['id'],
                ondelete='CASCADE')
            batch.create_index(op.f(f'ix_{table}_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    # Sessions of users end; tokens made for a user go with the accounts.
    op.execute("DELETE FROM admin_sessions WHERE user_id IS NOT NULL")
    op.execute("DELETE FROM api_tokens WHERE user_id IS NOT NULL")
    for table in ('admin_sessions', 'api_tokens'):
        with op.batch_alter_table(table, table_kwargs=KEEP_IDS) as batch:
            batch.drop_index(op.f(f'ix_{table}_user_id'))
            batch.drop_constraint(op.f(f'fk_{table}_user_id_users'), type_='foreignkey')
            batch.drop_column('user_id')
    op.drop_table('invitation_emails')
    op.drop_table('invitations')
    op.drop_index(op.f('ix_login_failures_blocked_until'), table_name='login_failures')
    op.drop_table('login_failures')
    op.drop_table('users')
