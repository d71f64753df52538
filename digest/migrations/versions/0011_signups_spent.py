"""Sign-up confirmation links are spent by what spends them, not by any change to the row (U7).

A confirmation was refused as a replay when the subscriber's row had changed since the link was
issued. After an erasure there is no row, so a link already used subscribed the address again;
and a link issued before another change to the row (an earlier sign-up confirmed after it, a
config edit of the name) was refused though never used. Now each table says which links are
spent: `subscribers.signups_spent_at`, the issue time of the newest confirmation applied (a link
issued at or before it is used, or older than one used), and `suppressions.signups_spent_at`, when
the address last stopped (unsubscribed, failed, erased): a link issued before that is spent, and
the suppression outlives an erased row.

Rows from before this revision keep the old rule for the links already out: a subscriber's is its
`updated_at`, a suppression's its `created_at`.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("signups_spent_at", sa.DateTime))
    with op.batch_alter_table("suppressions") as batch:
        batch.add_column(sa.Column("signups_spent_at", sa.DateTime))
    op.execute("UPDATE subscribers SET signups_spent_at = updated_at")
    op.execute("UPDATE suppressions SET signups_spent_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_column("signups_spent_at")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("signups_spent_at")
