"""Workers: any number of `digest worker` processes on one database, no leader (issue 15).

- `workers`: the registry. Each worker writes its row when it starts and its heartbeat (on the
  database's clock) while it runs; `digest status` lists the live ones and what they hold.
- `feeds.claimed_by` / `feeds.lease_until`: a worker claims a batch of due feeds (SKIP LOCKED on
  PostgreSQL) until the lease, on the database's clock, runs out; nobody else polls them meanwhile.
- `hosts` and `host_slots`: politeness across workers. A host's row holds the next time a request
  may start there (the minimum interval); its slot rows, leased like feeds, cap the fetches in
  flight to one publisher across all workers together.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime, nullable=False),
        sa.Column("clock_skew", sa.Float, nullable=False, server_default="0"),
    )
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("claimed_by", sa.Text))
        batch.add_column(sa.Column("lease_until", sa.DateTime))
    op.create_index("ix_feeds_next_poll", "feeds", ["next_poll_at"])
    op.create_table(
        "hosts",
        sa.Column("host", sa.Text, primary_key=True),
        sa.Column("next_allowed_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "host_slots",
        sa.Column("host", sa.Text, primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("held_by", sa.Text),
        sa.Column("lease_until", sa.DateTime),
    )


def downgrade() -> None:
    op.drop_table("host_slots")
    op.drop_table("hosts")
    op.drop_index("ix_feeds_next_poll", "feeds")
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("claimed_by")
    op.drop_table("workers")
