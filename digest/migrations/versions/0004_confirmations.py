"""Sign-up confirmations sent: what the per-address window and the global hourly cap count.

Only the address's hash and the time are kept (like suppressions): enough to refuse a second
confirmation within the window, nothing to read the address back. Rows older than a day are
pruned as new ones are written.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "confirmation_sends",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email_hash", sa.String(64), nullable=False),
        sa.Column("sent_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_confirmation_sends_hash", "confirmation_sends", ["email_hash", "sent_at"])
    op.create_index("ix_confirmation_sends_at", "confirmation_sends", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_confirmation_sends_at", "confirmation_sends")
    op.drop_index("ix_confirmation_sends_hash", "confirmation_sends")
    op.drop_table("confirmation_sends")
