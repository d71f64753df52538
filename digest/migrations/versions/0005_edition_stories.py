"""Edition stories: the clustering of an edition, done once when it is built (issue 12).

Every sending process used to cluster every edition's items again (quadratic in items); now the
process that builds the edition stores its stories here and the others, and the web page, read
them. Editions built before this revision have no row: they are clustered when read, as before.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "edition_stories",
        sa.Column("edition_id", sa.Integer, sa.ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("edition_stories")
