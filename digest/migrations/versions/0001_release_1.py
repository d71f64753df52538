"""The schema of digest's last release without migrations (commit 6058449).

A database that release made has these tables and no alembic_version table; the store recognises
it and treats it as this revision, so `digest db upgrade` carries it forward. Frozen: never edit
this file; change the schema with a new revision.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "feeds",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("url", sa.Text, nullable=False, unique=True),
        sa.Column("origin_url", sa.Text, nullable=False, unique=True),
        sa.Column("name", sa.Text),
        sa.Column("section", sa.Text),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("from_config", sa.Boolean, nullable=False),
        sa.Column("interval_minutes", sa.Integer),
        sa.Column("title", sa.Text),
        sa.Column("etag", sa.Text),
        sa.Column("last_modified", sa.Text),
        sa.Column("body_hash", sa.String(64)),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("last_polled_at", sa.DateTime),
        sa.Column("next_poll_at", sa.DateTime),
        sa.Column("consecutive_failures", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("feed_id", sa.Integer, sa.ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("url", sa.Text),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("summary_html", sa.Text, nullable=False),
        sa.Column("summary_text", sa.Text, nullable=False),
        sa.Column("published", sa.DateTime),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("categories", sa.JSON, nullable=False),
        sa.Column("image_url", sa.Text),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("feed_id", "key", name="uq_items_feed_key"),
    )
    op.create_index("ix_items_first_seen", "items", ["first_seen"])
    op.create_index("ix_items_feed_url", "items", ["feed_id", "url"])
    op.create_table(
        "subscribers",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.Text, nullable=False, unique=True),
        sa.Column("name", sa.Text),
        sa.Column("sections", sa.JSON),
        sa.Column("timezone", sa.Text),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("permanent_failures", sa.Integer, nullable=False),
        sa.Column("from_config", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "editions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("timezone", sa.Text, nullable=False),
        sa.Column("cutoff", sa.DateTime, nullable=False),
        sa.Column("window_start", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.UniqueConstraint("day", "timezone", name="uq_editions_day_tz"),
    )
    op.create_table(
        "edition_items",
        sa.Column("edition_id", sa.Integer, sa.ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("section", sa.Text, nullable=False),
    )
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("edition_id", sa.Integer, sa.ForeignKey("editions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("worker", sa.Text),
        sa.Column("lease_until", sa.DateTime),
        sa.Column("last_error", sa.Text),
        sa.Column("next_attempt_at", sa.DateTime),
        sa.Column("message_id", sa.Text),
        sa.Column("sent_at", sa.DateTime),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("edition_id", "subscriber_id", name="uq_deliveries_edition_subscriber"),
    )
    op.create_index("ix_deliveries_status", "deliveries", ["edition_id", "status"])
    op.create_table(
        "locks",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    for table in ("locks", "deliveries", "edition_items", "editions", "subscribers", "items", "feeds", "meta"):
        op.drop_table(table)
