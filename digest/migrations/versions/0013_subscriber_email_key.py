"""A subscriber's address is kept as written; `subscribers.email_key` is what it is found by.

Every address was stored lower-cased whole, but RFC 5321 section 2.4 lets a mailbox's own server
tell the local part's "Ann" from "ann": digest mailed a spelling nobody gave it. An address is now
kept as the subscriber wrote it (its domain lower-cased), and the lower-cased address, unique, is
its key, so "Ann@X.org" and "ann@x.org" are still one subscription. Rows from before this revision
are unchanged: their address was stored lower-cased, and is its own key.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _address_key(email: str) -> str:
    # Frozen copy of digest.addresses.address_key as it was at this revision.
    return email.strip().lower()


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.add_column("subscribers", sa.Column("email_key", sa.Text))
    subs = sa.table("subscribers", sa.column("id", sa.Integer), sa.column("email", sa.Text), sa.column("email_key"))
    # In Python, not SQL's lower(): SQLite's folds ASCII letters only, and the key must be the one
    # digest computes for an address it is given. One executemany, as 0002 fills its columns.
    keys = [{"row_id": r.id, "key": _address_key(r.email)} for r in bind.execute(sa.select(subs.c.id, subs.c.email))]
    if keys:
        bind.execute(
            sa.update(subs).where(subs.c.id == sa.bindparam("row_id")).values(email_key=sa.bindparam("key")), keys
        )
    # SQLite copies the table to tighten the column: keep its AUTOINCREMENT (0002), so that no id is
    # handed out twice.
    with op.batch_alter_table(
        "subscribers",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True} if sqlite else {},
    ) as batch:
        batch.alter_column("email_key", existing_type=sa.Text, nullable=False)
        batch.create_unique_constraint("uq_subscribers_email_key", ["email_key"])


def downgrade() -> None:
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_constraint("uq_subscribers_email_key", type_="unique")
        batch.drop_column("email_key")
