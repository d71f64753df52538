"""Outbox rows say when their message is on the wire: deliveries.on_wire (S8, S2).

A sender killed while a slow relay held its message (a deploy, `docker stop`, the OOM killer) was
counted a crash against that row, as if the message had killed it, and at the third the row was
parked as failed: the subscriber lost the edition. And every other row the sender had claimed (a
hundred) counted a crash too, each then sent alone. A sender now marks a row on the wire when its
SMTP transaction begins; when its lease runs out, only the row whose message it was making counts
a crash, and the others are pending again (those on the wire may go out twice). Rows queued
before this revision are not on the wire.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("on_wire", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("on_wire")
