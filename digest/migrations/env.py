"""Alembic's environment for digest: always run on a connection the store hands over.

digest never reads alembic.ini; `digest.migrations.upgrade()` passes its open connection (already in
a transaction that holds the upgrade lock) as ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters a table by copying it, which batch mode does for us.
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():  # a no-op: the caller's transaction spans the whole upgrade
    context.run_migrations()
