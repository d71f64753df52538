"""The engine, the site secret and the one-daemon lock.

The store is synchronous SQLAlchemy Core; async callers wrap it in asyncio.to_thread. Every method
opens its own short transaction, so a crash between two calls leaves a consistent database.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine, event, insert, select, update
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from digest import migrations
from digest.errors import LockHeldError, OutdatedDatabaseError, StoreError
from digest.store import schema as t


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the daemon's poller and sender and a CLI `digest status` run at once; a committed
    # "sent" survives kill -9 of the process (the page is in the WAL before COMMIT returns).
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise StoreError(f"[digest] database = {url!r} is not a SQLAlchemy URL: {exc}.") from exc
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, poolclass=NullPool, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(parsed, pool_pre_ping=True)


class StoreBase:
    def __init__(self, url: str, *, check_schema: bool = True) -> None:
        """Open the database; a new empty one is created at the newest schema.

        check_schema=False is for `digest db ...` only: every other caller needs the schema this
        code was written for, and gets OutdatedDatabaseError naming `digest db upgrade` otherwise.
        """
        self.url = url
        self.engine = make_engine(url)
        if check_schema:
            self._check_schema()

    def _check_schema(self) -> None:
        try:
            with self.engine.connect() as conn:
                found = migrations.current(conn)
            if found is None:  # an empty database: build it by the migrations, so it is at head
                migrations.upgrade(self.engine)
                return
        except SQLAlchemyError as exc:
            detail = exc.orig if hasattr(exc, "orig") else exc
            raise StoreError(f"Cannot open the database {self._safe_url}: {exc.__class__.__name__}: {detail}.") from exc
        wanted = migrations.head()
        if found == wanted:
            return
        if found not in migrations.revisions_between(None, wanted):
            raise OutdatedDatabaseError(
                f"The database {self._safe_url} is at schema revision {found}, which this digest does not know "
                f"(it needs {wanted}): it was upgraded by a newer digest; run that version instead.")
        raise OutdatedDatabaseError(
            f"The database {self._safe_url} is at schema revision {found} and this digest needs {wanted}: "
            f"run `digest db upgrade` (it keeps every row), then try again.")

    def schema_revision(self) -> str | None:
        """Where the database stands: a revision id, migrations.RELEASE_1, or None when empty."""
        with self.engine.connect() as conn:
            return migrations.current(conn)

    def upgrade_schema(self) -> tuple[str | None, str]:
        """`digest db upgrade`: (revision before, revision after); nothing happens at head."""
        try:
            return migrations.upgrade(self.engine)
        except CommandError as exc:  # alembic_version names a revision these scripts do not have
            raise OutdatedDatabaseError(
                f"The database {self._safe_url} is at a schema revision this digest does not know ({exc}): "
                f"it was upgraded by a newer digest; run that version instead.") from exc
        except SQLAlchemyError as exc:
            detail = exc.orig if hasattr(exc, "orig") else exc
            raise StoreError(f"Upgrading the database {self._safe_url} failed and changed nothing: "
                             f"{exc.__class__.__name__}: {detail}.") from exc

    @property
    def _safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(select(t.meta.c.value).where(t.meta.c.key == key))

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            if conn.execute(update(t.meta).where(t.meta.c.key == key).values(value=value)).rowcount == 0:
                conn.execute(insert(t.meta).values(key=key, value=value))

    def site_secret(self) -> str:
        """The secret for Message-IDs and tokens: generated once, then the same forever."""
        existing = self.get_meta("secret")
        if existing:
            return existing
        candidate = secrets.token_urlsafe(32)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.meta).values(key="secret", value=candidate))
        except IntegrityError:
            pass  # another process generated it first; use theirs
        value = self.get_meta("secret")
        assert value is not None
        return value

    def legacy_link_max_id(self) -> int:
        """Links of the release before public ids carry a row id; they stay good up to this id."""
        value = self.get_meta("legacy_link_max_id")
        return int(value) if value else 0

    # ------------------------------------------------------------------ the one-daemon lock

    def acquire_lock(self, name: str, holder: str, *, now: datetime, stale_after: timedelta,
                     holder_alive: bool | None = None) -> None:
        """Take the named lock, or raise LockHeldError naming the holder.

        A lock whose heartbeat is older than stale_after is taken over (its daemon died). The
        caller may also say the recorded holder is certainly dead (same host, no such pid).
        """
        with self.engine.begin() as conn:
            row = conn.execute(select(t.locks).where(t.locks.c.name == name)).first()
            if row is None:
                try:
                    conn.execute(insert(t.locks).values(name=name, holder=holder, heartbeat_at=now))
                    return
                except IntegrityError:
                    row = conn.execute(select(t.locks).where(t.locks.c.name == name)).first()
            assert row is not None
            fresh = now - row.heartbeat_at < stale_after
            if row.holder != holder and fresh and holder_alive is not False:
                raise LockHeldError(
                    f"Another digest daemon ({row.holder}) holds the database {self._safe_url}; "
                    f"its last heartbeat was at {row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC."
                )
            taken = conn.execute(
                update(t.locks)
                .where(t.locks.c.name == name, t.locks.c.holder == row.holder,
                       t.locks.c.heartbeat_at == row.heartbeat_at)
                .values(holder=holder, heartbeat_at=now)
            ).rowcount
            if taken == 0:
                raise LockHeldError(f"Another digest daemon took the database {self._safe_url} at the same moment.")

    def lock_holder(self, name: str) -> tuple[str, datetime] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.locks).where(t.locks.c.name == name)).first()
        return (row.holder, row.heartbeat_at) if row else None

    def heartbeat(self, name: str, holder: str, *, now: datetime) -> bool:
        """Refresh our lock; False when someone else holds it now (we must stop)."""
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    update(t.locks).where(t.locks.c.name == name, t.locks.c.holder == holder).values(heartbeat_at=now)
                ).rowcount
            )

    def release_lock(self, name: str, holder: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(t.locks.delete().where(t.locks.c.name == name, t.locks.c.holder == holder))
