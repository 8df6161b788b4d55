"""every correction of a release, with its "what changed" note

A table of corrections (when, by whom, the note) rather than one ``correction_note``
column on the release: a release corrected twice shows both notes on its page and in its
feed item (a reader who saw the first version, or the second, learns what changed since),
as newsrooms' correction policies ask; and a correction notice still on its way tells the
note of the correction it is about, found by its time (``correction_notices.corrected_at``
is that correction's own ``corrected_at``), not the note of a later one. A column would
keep only the latest and lose the others.

Releases corrected before this revision get one row each, at their ``corrected_at``, with
no author and no note: their page keeps saying "Corrected on …", as before.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('release_corrections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('release_id', sa.Integer(), nullable=False),
    sa.Column('corrected_at', sa.DateTime(), nullable=False),
    sa.Column('corrected_by', sa.String(length=200), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_release_corrections_release_id_releases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_release_corrections')),
    sqlite_autoincrement=True,  # an id is never used twice (see 0012)
    )
    op.create_index('ix_release_corrections_release_id', 'release_corrections', ['release_id'], unique=False)
    op.execute(
        "INSERT INTO release_corrections (release_id, corrected_at, corrected_by, note) "
        "SELECT id, corrected_at, '', '' FROM releases WHERE corrected_at IS NOT NULL "
        "ORDER BY id"
    )


def downgrade() -> None:
    # The notes go; each release keeps its corrected_at ("Corrected on …").
    op.drop_index('ix_release_corrections_release_id', table_name='release_corrections')
    op.drop_table('release_corrections')
