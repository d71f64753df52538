"""Bounces and complaints: what came back for which subscription, and a soft-bounce score.

- bounces: one row per outcome, however often the same report arrives (``dedupe`` is unique:
  the VERP token and the kind for a verified report, a hash of the message for one that is not).
  A verified row belongs to its subscriber and goes when they are erased (ON DELETE CASCADE); an
  unverified one keeps no address or text, only that it came.
- subscribers.bounce_score / bounce_score_at: the Mailman-style soft-bounce score, decayed from
  bounce_score_at when the next soft bounce arrives.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "bounces",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("dedupe", sa.String(64), nullable=False),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE")),
        sa.Column("edition_id", sa.Integer),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16)),
        sa.Column("diagnostic", sa.Text),
        sa.Column("verified", sa.Boolean, nullable=False),
        sa.Column("via", sa.String(16), nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("dedupe", name="uq_bounces_dedupe"),
    )
    op.create_index("ix_bounces_subscriber", "bounces", ["subscriber_id"])
    # SQLite's ALTER TABLE ADD COLUMN keeps the table (and its AUTOINCREMENT) as it is.
    with op.batch_alter_table("subscribers", recreate="never" if sqlite else "auto") as batch:
        batch.add_column(sa.Column("bounce_score", sa.Float, nullable=False, server_default="0"))
        batch.add_column(sa.Column("bounce_score_at", sa.DateTime))


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("bounce_score_at")
        batch.drop_column("bounce_score")
    op.drop_index("ix_bounces_subscriber", "bounces")
    op.drop_table("bounces")
