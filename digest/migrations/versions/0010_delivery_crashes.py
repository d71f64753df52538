"""Outbox rows count their crashes: deliveries.crashes (a poison message is parked, S8).

A message whose making raised an error the code did not expect, or whose sender stopped while
holding it (killed, crashed: its lease ran out), was tried again at every run, for ever; an error
stopped the whole send, so nobody after that row got the edition. Each such event now adds one to
the row's `crashes`, and a row that reaches three is parked as failed with its error. Rows queued
before this revision start at 0.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("crashes", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("crashes")
