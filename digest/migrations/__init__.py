"""Schema migrations (Alembic), shipped inside the package: no alembic.ini at run time.

Where a database stands is one of:
  - empty: none of digest's tables; the store creates it at the head revision on first use;
  - a revision id from alembic_version;
  - RELEASE_1 for a database made before migrations existed (our tables, no alembic_version):
    its schema is exactly revision 0001, so `digest db upgrade` stamps it and carries it on.

Upgrades run in one transaction that first takes a lock (BEGIN IMMEDIATE on SQLite, an advisory
lock on PostgreSQL), so two processes upgrading at once run it once, and a failure leaves the
database as it was.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.pool import NullPool

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic (~80 ms of imports) is imported only to upgrade or to walk the revisions: every command
# opens the store, and a database at HEAD needs neither.
HERE = Path(__file__).parent
RELEASE_1 = "0001"  # the schema of the last release without migrations
_VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps
_LEGACY_TABLE = "subscribers"  # present in every database the release before migrations made
_PG_LOCK = 0x64696765  # "dige": the advisory lock id serialising upgrades


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache  # the scripts ship with the code: they cannot change while it runs
def head() -> str:
    """The newest revision: what this digest's code expects.

    Read from the file names, without Alembic: versions/NNNN_what.py holds revision "NNNN" and
    revises the one before (tests/test_migrations.py checks both against Alembic's own reading).
    """
    return max(path.name.partition("_")[0] for path in (HERE / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def current(conn: Connection) -> str | None:
    """The database's revision; RELEASE_1 for a pre-migration database; None when it is empty."""
    found = _stamped(conn)
    if found is not None:
        return found
    return RELEASE_1 if inspect(conn).has_table(_LEGACY_TABLE) else None


def _stamped(conn: Connection) -> str | None:
    """alembic_version's one row, read as Alembic's MigrationContext.get_current_revision() reads it."""
    if not inspect(conn).has_table(_VERSION_TABLE):
        return None
    rows = conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:  # a linear history has one head; Alembic refuses the same way
        raise RuntimeError(f"{_VERSION_TABLE} has more than one row ({', '.join(rows)}): the database has branched")
    return rows[0] if rows else None


@functools.cache  # the scripts ship with the code: they cannot change while it runs
def _revisions(start: str | None, end: str) -> tuple[str, ...]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config())
    return tuple(reversed([s.revision for s in script.iterate_revisions(end, start)]))


def revisions_between(start: str | None, end: str) -> list[str]:
    """The revisions an upgrade from `start` to `end` applies, oldest first."""
    return list(_revisions(start, end))


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the schema lock, for upgrades only."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK})
            yield conn
        return
    # pysqlite opens transactions only before DML, so DDL would commit statement by statement. Take
    # over: no implicit transactions, our own BEGIN IMMEDIATE (the write lock, at once), and foreign
    # keys off while a table is copied (DROP TABLE of a parent would cascade to its children).
    sqlite_engine = create_engine(engine.url, poolclass=NullPool, connect_args={"timeout": 30})

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA foreign_keys=OFF")
        dbapi_conn.execute("PRAGMA busy_timeout=30000")

    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(sqlite_engine, "connect", on_connect)
    event.listen(sqlite_engine, "begin", on_begin)
    try:
        with sqlite_engine.begin() as conn:
            yield conn
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"the upgrade left rows whose parent is gone: {broken[:3]}")
    finally:
        sqlite_engine.dispose()


def upgrade(engine: Engine, *, to: str = "head") -> tuple[str | None, str]:
    """Bring the database to `to` (default: head); (revision before, revision after). Idempotent."""
    from alembic import command

    with _locked(engine) as conn:
        before = current(conn)  # read under the lock: another process may just have upgraded
        cfg = _config(conn)
        if before == RELEASE_1 and _stamped(conn) is None:
            command.stamp(cfg, RELEASE_1)
        command.upgrade(cfg, to)
        after = current(conn)
    assert after is not None
    return before, after
