"""two small partial indexes for the reads at scale (issue 16)

- ``ix_deliveries_sent_at``: the sent rows' ``sent_at`` — the dashboard's chart of the
  last 24 hours counts the messages sent per hour; without it each view read every row of
  the ledger (a million rows per large release), with it only the hours asked for.
- ``ix_subscribers_unsubscribed_at``: the subscribers who left — ``releases status`` counts
  a release's recipients who unsubscribed since, looked up from those few people instead of
  a join of every row of the release.

Both are partial: a row enters them only when it is sent (the update that records the
outcome already rewrites the row's other index entries: its status is indexed) or when
its subscriber leaves. Planning a release (an insert of a pending row per recipient)
writes neither.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None

SENT = sa.text("status = 'sent'")
LEFT = sa.text("unsubscribed_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        'ix_deliveries_sent_at', 'deliveries', ['sent_at'],
        postgresql_where=SENT, sqlite_where=SENT,
    )
    op.create_index(
        'ix_subscribers_unsubscribed_at', 'subscribers', ['unsubscribed_at'],
        postgresql_where=LEFT, sqlite_where=LEFT,
    )


def downgrade() -> None:
    op.drop_index('ix_subscribers_unsubscribed_at', table_name='subscribers')
    op.drop_index('ix_deliveries_sent_at', table_name='deliveries')
