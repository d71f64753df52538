"""One owner per subscriber field, a public id for links, suppression that outlives removal.

- subscribers.public_id: the random identifier links carry (never the row id, never reused).
- subscribers.<field>_origin: who set name, sections, timezone and status last: "config", "cli",
  "subscriber" (the web pages) or "delivery" (suspended after permanent failures). Config sync
  leaves alone what the subscriber set.
- suppressions: the SHA-256 of every address that unsubscribed or failed permanently, kept after
  the subscriber row is erased so the address is never mailed again.
- subscribers ids are never reused: AUTOINCREMENT on SQLite (PostgreSQL's sequence never goes back).
- meta legacy_link_max_id: the highest row id at this upgrade. Links sent before it carry the row
  id; they keep working for those rows only, since ids handed out from now on are never reused.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import hashlib
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ORIGINS = ("name_origin", "sections_origin", "timezone_origin", "status_origin")


def _address_hash(email: str) -> str:
    # Frozen copy of digest.store.subscribers.address_hash as it was at this revision.
    return hashlib.sha256(f"digest-suppression-v1:{email.strip().lower()}".encode()).hexdigest()


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    op.add_column("subscribers", sa.Column("public_id", sa.String(32)))
    for column in ORIGINS:
        op.add_column("subscribers", sa.Column(column, sa.String(16)))
    suppressions = op.create_table(
        "suppressions",
        sa.Column("email_hash", sa.String(64), primary_key=True),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )

    subs = sa.table(
        "subscribers",
        sa.column("id", sa.Integer),
        sa.column("email", sa.Text),
        sa.column("status", sa.String),
        sa.column("from_config", sa.Boolean),
        sa.column("updated_at", sa.DateTime),
        sa.column("public_id", sa.String),
        *(sa.column(c, sa.String) for c in ORIGINS),
    )
    rows = bind.execute(sa.select(subs.c.id, subs.c.email, subs.c.status, subs.c.from_config, subs.c.updated_at)).all()
    suppressed, filled = [], []
    for row in rows:
        declared = "config" if row.from_config else "cli"
        status_origin = {"unsubscribed": "subscriber", "suspended": "delivery"}.get(row.status, declared)
        filled.append(
            {
                "row_id": row.id,
                "public_id": secrets.token_hex(16),
                "name_origin": declared,
                "sections_origin": declared,
                "timezone_origin": declared,
                "status_origin": status_origin,
            }
        )
        if row.status in ("unsubscribed", "suspended"):
            reason = "unsubscribed" if row.status == "unsubscribed" else "failed"
            suppressed.append({"email_hash": _address_hash(row.email), "reason": reason, "created_at": row.updated_at})
    if filled:  # one executemany, not a statement per subscriber: 100k rows in seconds
        bind.execute(
            sa.update(subs)
            .where(subs.c.id == sa.bindparam("row_id"))
            .values(public_id=sa.bindparam("public_id"), **{c: sa.bindparam(c) for c in ORIGINS}),
            filled,
        )
    if suppressed:
        op.bulk_insert(suppressions, suppressed)
    meta = sa.table("meta", sa.column("key", sa.String), sa.column("value", sa.Text))
    highest = max((row.id for row in rows), default=0)
    op.bulk_insert(meta, [{"key": "legacy_link_max_id", "value": str(highest)}])

    # SQLite: copy the table once more, now with AUTOINCREMENT, so a deleted id is never handed out again.
    with op.batch_alter_table(
        "subscribers",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_autoincrement": True} if sqlite else {},
    ) as batch:
        batch.alter_column("public_id", existing_type=sa.String(32), nullable=False)
        for column in ORIGINS:
            batch.alter_column(column, existing_type=sa.String(16), nullable=False)
        batch.create_unique_constraint("uq_subscribers_public_id", ["public_id"])


def downgrade() -> None:
    op.execute("DELETE FROM meta WHERE key = 'legacy_link_max_id'")
    op.drop_table("suppressions")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_constraint("uq_subscribers_public_id", type_="unique")
        for column in ("public_id", *ORIGINS):
            batch.drop_column(column)
