"""Feeds' copyright lines: the owner a feed's channel names (RSS `<copyright>`, Atom `<rights>`).

A title may name its outlet by an acronym ("NYT > Home Page"), which an edition cited as "NYT"; the
copyright line names the publication in full, and a name there whose initials are the acronym and
that the feed's host spells is cited instead (digest.outlets.outlet_name). Feeds stored before this
revision have none until their next poll that receives a body: until then they are cited as before.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("rights", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("rights")
