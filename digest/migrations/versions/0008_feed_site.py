"""Feeds' sites: the address a feed's channel links to (RSS `<link>`, Atom's alternate link).

An edition cites a feed by the outlet its title names, found by the feed's host ("World – The
Harbour Gazette" at harbourgazette.example is "The Harbour Gazette"). A feed served from
FeedBurner, a CDN or a mirror has a host that names no outlet, and was cited by its whole title;
the site it links to names the outlet. Feeds stored before this revision have none until their
next poll that receives a body: until then they are cited as before.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("site_url", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("site_url")
