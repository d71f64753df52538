"""Feeds' declared language: what a feed says its items are written in (RSS `<language>`,
`dc:language`, Atom `xml:lang`), as a primary subtag ("en-US" -> "en").

An item whose own text says too little of its language (a headline of a name and a verb) is read in
its feed's declared language: stemmed in it for clustering, and matched by section rules' `languages`
and keywords in it (digest.words.language_read). Feeds stored before this revision have none until
their next poll that receives a body: until then their items are read by their text alone, as before.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("language", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("language")
