"""Items' outlets: who wrote an item that an aggregator's feed carries, as the feed names it.

Google News and other aggregators carry many outlets' reports in one feed and name each one's
outlet in the item (RSS `<source url="https://www.reuters.com">Reuters</source>`, Atom's
`<source><title>`); their links (news.google.com/rss/articles/...) name no article to read it
from. The edition cites and counts such an item as that outlet's. Items stored before this
revision have none: they are cited by their feed's name, as before.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.add_column(sa.Column("outlet", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_column("outlet")
