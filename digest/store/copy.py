"""`digest db copy`: every row of one database into another, empty one, ids and all.

Moving from SQLite to PostgreSQL must not change what anyone outside sees: the links already mailed
carry subscribers' public ids (and legacy row ids), Message-IDs and tokens are made with the site
secret in `meta`, deliveries say which editions went to whom, and suppressions keep stopped
addresses stopped. So the copy keeps every column of every row as it is, through the schema's own
types (UTCDateTime, Boolean, JSON, Date), never by hand-written SQL per table.

The target is written in one transaction: a failure half-way leaves it as empty as it was. The
source is read in one transaction too (a SQLite write lock, a PostgreSQL snapshot), so the copy
is one moment of the source, not rows from before and after some other process's write.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from digest import migrations
from digest.config import mask_url
from digest.errors import OutdatedDatabaseError, StoreError
from digest.store import schema as t
from digest.store.base import make_engine

BATCH = 1000  # rows per executemany: bounded memory whatever the table's size

# Who is running on the source, not data: the copy is refused while any of them is alive, and a
# dead one's row would only show in `digest status` on the new database as a worker that never ran
# there.
NOT_COPIED = (t.locks, t.workers)

# What the migrations themselves write into an empty database (0002); the source's value replaces it.
_MIGRATION_META = frozenset({"legacy_link_max_id"})


@dataclass(frozen=True, slots=True)
class Copied:
    table: str
    rows: int


def copied_tables() -> list[Table]:
    """The tables copied, parents before children (foreign keys)."""
    return [table for table in t.metadata.sorted_tables if table not in NOT_COPIED]


def check_source(source: Engine, where: str) -> None:
    """The source must be at this digest's schema: the copy writes the newest schema's columns."""
    with source.connect() as conn:
        found = migrations.current(conn)
    wanted = migrations.head()
    if found is None:
        raise StoreError(f"The database {where} is empty: there is nothing to copy.")
    if found != wanted:
        raise OutdatedDatabaseError(
            f"The database {where} is at schema revision {found} and the copy needs {wanted}.",
            hint="Run `digest db upgrade` first (it keeps every row), then `digest db copy` again.",
        )


PASSWORD_VARIABLE = "DIGEST_DB_COPY_PASSWORD"


def target_url(given: str, env: Mapping[str, str]) -> tuple[str, bool]:
    """The --to URL to connect with, and whether it carried a password itself.

    A password on the command line is shown to every user of the host by `ps` (and kept in the
    shell's history): the URL may go without one and the password come from PASSWORD_VARIABLE,
    which a URL's own password beats. Without either, the driver looks as usual (libpq: PGPASSWORD,
    ~/.pgpass)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(given)
    except ArgumentError:  # prepare_target says so, with the driver's own words
        return given, False
    if url.password is not None:
        return given, True
    password = env.get(PASSWORD_VARIABLE)
    if not password:
        return given, False
    return url.set(password=password).render_as_string(hide_password=False), False


def prepare_target(target_url: str) -> Engine:
    """The target's engine, upgraded to the newest schema when it is empty; refused unless empty."""
    where = mask_url(target_url)
    engine = make_engine(target_url)
    try:
        with engine.connect() as conn:
            found = migrations.current(conn)
        if found is not None and found != migrations.head():
            raise StoreError(
                f"The database {where} is at schema revision {found}: it is not a new, empty database.",
                hint="Copy into a newly created, empty database (e.g. `createdb digest`).",
            )
        migrations.upgrade(engine)  # nothing at head; builds the tables in an empty database
        with engine.connect() as conn:
            filled = _filled_tables(conn)
        if filled:
            raise StoreError(
                f"The database {where} is not empty (rows in {', '.join(filled)}); nothing was copied.",
                hint="Copy into a newly created, empty database, so nothing in it is mixed with or overwritten "
                "by the copy.",
            )
    except BaseException:
        engine.dispose()
        raise
    return engine


def _filled_tables(conn: Connection) -> list[str]:
    filled = [
        table.name
        for table in t.metadata.sorted_tables
        if table is not t.meta and conn.execute(select(text("1")).select_from(table).limit(1)).first() is not None
    ]
    keys = set(conn.scalars(select(t.meta.c.key)))
    if keys - _MIGRATION_META:
        filled.insert(0, "meta")
    return filled


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection that reads the source as of one moment until it is closed."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # A write lock, not only a read snapshot: a web app's unsubscribe during the copy then
            # waits, and past its busy timeout goes to the spool, which is applied to the target
            # afterwards, instead of landing in the source after its table was copied.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            yield conn
        finally:
            conn.rollback()  # the source is only read


def copy_rows(source: Engine, target: Engine, *, batch: int = BATCH) -> list[Copied]:
    """Every row of every table (but NOT_COPIED) from source into target, in one target transaction."""
    counts: list[Copied] = []
    doing = "meta"
    try:
        with _snapshot(source) as src, target.begin() as dst:
            dst.execute(delete(t.meta))  # the migrations' own rows; the source's say the same, or more
            for table in copied_tables():
                doing = table.name
                counts.append(Copied(table.name, _copy_table(src, dst, table, batch)))
            doing = "the id counters"
            _carry_id_counters(src, dst)
    except SQLAlchemyError as exc:
        detail = " ".join(str(getattr(exc, "orig", exc)).split())
        raise StoreError(
            f"Copying {doing} into {mask_url(target.url.render_as_string(hide_password=False))} failed and the "
            f"copy was rolled back: {detail}",
            hint="Nothing was written there; fix the rows the database names (or stop what holds it), then run "
            "`digest db copy` again.",
        ) from exc
    return counts


def _copy_table(src: Connection, dst: Connection, table: Table, batch: int) -> int:
    rows = src.execution_options(yield_per=batch).execute(select(table).order_by(*table.primary_key.columns))
    total = 0
    for part in rows.partitions():
        dst.execute(insert(table), [dict(row._mapping) for row in part])
        total += len(part)
    return total


def _serial_tables() -> list[Table]:
    """Tables whose integer id the database hands out (a sequence on PostgreSQL)."""
    return [
        table
        for table in copied_tables()
        if [c.name for c in table.primary_key.columns] == ["id"] and table.c.id.autoincrement in (True, "auto")
    ]


def _carry_id_counters(src: Connection, dst: Connection) -> None:
    """The target hands out ids after the highest the source ever did, not only the highest left:
    a legacy link carries a row id, so an id once given out must never reach someone else."""
    for table in _serial_tables():
        highest = max(_high_water(src, table), dst.scalar(select(func.max(table.c.id))) or 0)
        if dst.dialect.name == "postgresql":
            sequence = dst.scalar(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name})
            if sequence is None:
                continue
            if highest > 0:
                dst.execute(text("SELECT setval(CAST(:s AS regclass), :n, true)"), {"s": sequence, "n": highest})
            else:
                dst.execute(text("SELECT setval(CAST(:s AS regclass), 1, false)"), {"s": sequence})
        elif dst.dialect.name == "sqlite" and table.dialect_options["sqlite"]["autoincrement"] and highest > 0:
            # AUTOINCREMENT keeps its counter in sqlite_sequence; the inserts raised it to the highest
            # row copied, a newest row deleted on the source raises it further.
            raise_counter = text("UPDATE sqlite_sequence SET seq = :n WHERE name = :t AND seq < :n")
            dst.execute(raise_counter, {"n": highest, "t": table.name})


def _high_water(conn: Connection, table: Table) -> int:
    """The highest id the source's counter handed out (0 when it keeps none)."""
    if conn.dialect.name == "sqlite":
        has_counter = conn.scalar(text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_sequence'"))
        if not has_counter:
            return 0
        return int(conn.scalar(text("SELECT seq FROM sqlite_sequence WHERE name = :t"), {"t": table.name}) or 0)
    if conn.dialect.name == "postgresql":
        sequence = conn.scalar(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name})
        if sequence is None:
            return 0
        return int(conn.scalar(text("SELECT pg_sequence_last_value(CAST(:s AS regclass))"), {"s": sequence}) or 0)
    return 0
