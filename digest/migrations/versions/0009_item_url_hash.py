"""Items are looked up by their link's SHA-256, not by the link: items.url_hash, indexed with feed_id.

A PostgreSQL B-tree entry holds 2,704 bytes at most. The index on (feed_id, url) made the insert
of an item whose link was longer fail, and with it its feed's every poll: none of that feed's
items were stored again. Links that long exist (tracking parameters, encoded redirects). The
hash of every stored link is written here, then the old index is dropped.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BATCH = 5000


def _url_hash(url: str) -> str:
    # Frozen copy of digest.store.feeds.url_hash as it was at this revision.
    return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


def upgrade() -> None:
    op.add_column("items", sa.Column("url_hash", sa.String(64), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # The same SHA-256 of the link's UTF-8, in one statement on the server (a text value there
        # holds no lone surrogate, so "surrogatepass" never applies).
        op.execute("UPDATE items SET url_hash = encode(sha256(convert_to(url, 'UTF8')), 'hex') WHERE url IS NOT NULL")
    else:
        _hash_in_batches(bind)
    op.create_index("ix_items_feed_url_hash", "items", ["feed_id", "url_hash"])
    op.drop_index("ix_items_feed_url", table_name="items")


def _hash_in_batches(bind: sa.Connection) -> None:
    """SQLite has no SHA-256: the links are read and hashed here, in batches by id (a large items
    table is never read into memory at once)."""
    items = sa.table("items", sa.column("id", sa.Integer), sa.column("url", sa.Text), sa.column("url_hash", sa.String))
    last = 0
    while rows := bind.execute(
        sa.select(items.c.id, items.c.url)
        .where(items.c.id > last, items.c.url.is_not(None))
        .order_by(items.c.id)
        .limit(_BATCH)
    ).all():
        bind.execute(
            sa.update(items).where(items.c.id == sa.bindparam("row_id")).values(url_hash=sa.bindparam("hash")),
            [{"row_id": r.id, "hash": _url_hash(r.url)} for r in rows],
        )
        last = rows[-1].id


def downgrade() -> None:
    op.create_index("ix_items_feed_url", "items", ["feed_id", "url"])
    op.drop_index("ix_items_feed_url_hash", table_name="items")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("url_hash")
