"""The engine, the site secret and the one-daemon lock.

The store is synchronous SQLAlchemy Core; async callers wrap it in asyncio.to_thread. Every method
opens its own short transaction, so a crash between two calls leaves a consistent database.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, text, update
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.engine.url import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from digest import migrations
from digest.config import mask_url
from digest.errors import (
    DatabaseBusyError,
    DatabaseFullError,
    DatabaseLostError,
    LockHeldError,
    OutdatedDatabaseError,
    StoreError,
)
from digest.store import schema as t

_SYNC_LOCK = 0x64676373  # "dgcs": the advisory lock serialising config syncs
BUSY_TIMEOUT = 30.0  # seconds a SQLite statement waits for another process's write lock


class Unreadable(str):
    """A JSON column's text that is not JSON (a hand edit, a damaged file, a bug of an older digest).

    The engine hands it over as read instead of raising: one row must not stop a command that reads
    many (an edition, `digest status`). Whoever reads the column says what it means for that row.
    """


def _lenient_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return Unreadable(text)


def _sqlite_pragmas(busy_timeout: float) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        # WAL lets the daemon's poller and sender and a CLI `digest status` run at once; a committed
        # "sent" survives kill -9 of the process (the page is in the WAL before COMMIT returns).
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.close()

    return on_connect


# What the database says when it cannot take a write: SQLite's and PostgreSQL's wordings.
_BUSY = ("database is locked", "database is busy", "database table is locked", "lock timeout", "could not obtain lock")
_FULL = (
    "database or disk is full",
    "disk i/o error",
    "no space left",
    "could not extend file",
    "file too large",
    "disk quota",
)


def _translate(where: str, busy_timeout: float | None) -> Callable[[ExceptionContext], None]:
    """handle_error: a busy or full database becomes one StoreError line with a hint, at the one
    place every statement passes, instead of a traceback from whichever command met it."""

    def on_error(ctx: ExceptionContext) -> None:
        exc = ctx.original_exception
        if not isinstance(ctx.sqlalchemy_exception, OperationalError):
            return  # integrity errors and the like are the caller's to handle
        text = str(exc).lower()
        if any(m in text for m in _BUSY):
            waited = f" for over {busy_timeout:g} s" if busy_timeout is not None else ""
            raise DatabaseBusyError(
                f"The database {where} is busy: another process has held a write lock{waited} ({exc}).",
                hint="Try again in a minute (nothing was changed). If it stays busy, find what holds it "
                "(for SQLite: `fuser` on the file), or raise the wait with ?timeout=SECONDS in the URL.",
            )
        if any(m in text for m in _FULL):
            raise DatabaseFullError(
                f"The database {where} cannot be written: the disk is full or failing ({exc}).",
                hint="Free space on the disk that holds the database, then run the command again; "
                "the unfinished change was rolled back and nothing was lost.",
            )
        # Anything else the database itself reports (cannot open the file, the server went away):
        # still one line naming the database, never a traceback (PostgreSQL's DETAIL and HINT lines
        # joined to it).
        said = " ".join(str(exc).split())
        if ctx.is_disconnect:  # SQLAlchemy invalidated the connection: a retry may use a fresh one
            raise DatabaseLostError(
                f"The database {where} failed: {said}{'' if said.endswith(('.', '?', '!')) else '.'}"
            )
        raise StoreError(f"The database {where} failed: {said}{'' if said.endswith(('.', '?', '!')) else '.'}")

    return on_error


def make_engine(url: str, busy_timeout: float = BUSY_TIMEOUT) -> Engine:
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise StoreError(f"[digest] database = {mask_url(url)!r} is not a SQLAlchemy URL: {exc}.") from exc
    where = mask_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            # ?timeout=SECONDS in the URL sets how long to wait for another process's write lock.
            try:
                busy: float | None = float(parsed.query.get("timeout", busy_timeout))  # type: ignore[arg-type]
            except ValueError:
                raise StoreError(f"[digest] database = {where!r}: timeout must be a number of seconds.") from None
            engine = create_engine(
                parsed, poolclass=NullPool, connect_args={"timeout": busy}, json_deserializer=_lenient_json
            )
            event.listen(engine, "connect", _sqlite_pragmas(busy or 0.0))
        else:
            busy = None
            engine = create_engine(parsed, pool_pre_ping=True, json_deserializer=_lenient_json)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise StoreError(
            f"[digest] database = {where!r} cannot be used: {exc}.",
            hint='Use "sqlite:///path/digest.sqlite" or "postgresql+psycopg://user@host/db".',
        ) from exc
    event.listen(engine, "handle_error", _translate(where, busy))
    return engine


def database_time(conn: Connection) -> datetime:
    """The database server's clock, now (not the transaction's start), as an aware UTC time."""
    if conn.dialect.name == "postgresql":
        value: Any = conn.scalar(text("SELECT clock_timestamp()"))
    elif conn.dialect.name == "sqlite":
        value = conn.scalar(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"))
    else:
        value = conn.scalar(select(func.now()))
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StoreBase:
    def __init__(self, url: str, *, check_schema: bool = True, busy_timeout: float = BUSY_TIMEOUT) -> None:
        """Open the database; a new empty one is created at the newest schema.

        check_schema=False is for `digest db ...` only: every other caller needs the schema this
        code was written for, and gets OutdatedDatabaseError naming `digest db upgrade` otherwise.
        busy_timeout is how long a SQLite statement waits for another process's write lock unless
        the URL says (?timeout=SECONDS).
        """
        self.url = url
        self.engine = make_engine(url, busy_timeout)
        if check_schema:
            self._check_schema()

    def _check_schema(self) -> None:
        try:
            with self.engine.connect() as conn:
                found = migrations.current(conn)
            if found is None:  # an empty database: build it by the migrations, so it is at head
                migrations.upgrade(self.engine)
                return
        except StoreError:  # busy or full, already one line (handle_error)
            raise
        except SQLAlchemyError as exc:
            detail = exc.orig if hasattr(exc, "orig") else exc
            raise StoreError(f"Cannot open the database {self._safe_url}: {exc.__class__.__name__}: {detail}.") from exc
        if (error := self._schema_error(found)) is not None:
            raise error

    def _schema_error(self, found: str | None, wanted: str | None = None) -> OutdatedDatabaseError | None:
        """Why code at revision `wanted` (this code's head by default) cannot work on a database at
        revision `found`; None when they are the same."""
        wanted = wanted or migrations.head()
        if found == wanted:
            return None
        if found not in migrations.revisions_between(None, wanted):
            return OutdatedDatabaseError(
                f"The database {self._safe_url} is at schema revision {found}, which this digest does not know "
                f"(it needs {wanted}): it was upgraded by a newer digest; run that version instead."
            )
        return OutdatedDatabaseError(
            f"The database {self._safe_url} is at schema revision {found} and this digest needs {wanted}: "
            f"run `digest db upgrade` (it keeps every row), then try again."
        )

    def check_schema_unchanged(self, wanted: str | None = None) -> None:
        """For a long-running process, at each heartbeat: raise the OutdatedDatabaseError a process
        started now would get, when the schema moved under it (a `digest db upgrade` run while it
        was paused, frozen or cut off: it must not go on writing rows shaped by its old code).

        `wanted`: the revision another process's code needs, for one it started (a sending process
        is spawned from the code on disk now, which an upgrade may have replaced under its parent)."""
        with self.engine.connect() as conn:
            found = migrations.current(conn)
        if (error := self._schema_error(found, wanted)) is not None:
            raise error

    def schema_revision(self) -> str | None:
        """Where the database stands: a revision id, migrations.RELEASE_1, or None when empty."""
        with self.engine.connect() as conn:
            return migrations.current(conn)

    def upgrade_schema(self) -> tuple[str | None, str]:
        """`digest db upgrade`: (revision before, revision after); nothing happens at head."""
        from alembic.util.exc import CommandError  # only an upgrade needs Alembic (digest/migrations)

        try:
            return migrations.upgrade(self.engine)
        except CommandError as exc:  # alembic_version names a revision these scripts do not have
            raise OutdatedDatabaseError(
                f"The database {self._safe_url} is at a schema revision this digest does not know ({exc}): "
                f"it was upgraded by a newer digest; run that version instead."
            ) from exc
        except SQLAlchemyError as exc:
            detail = exc.orig if hasattr(exc, "orig") else exc
            raise StoreError(
                f"Upgrading the database {self._safe_url} failed and changed nothing: "
                f"{exc.__class__.__name__}: {detail}."
            ) from exc

    @property
    def _safe_url(self) -> str:
        return mask_url(self.url)

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(select(t.meta.c.value).where(t.meta.c.key == key))

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            if conn.execute(update(t.meta).where(t.meta.c.key == key).values(value=value)).rowcount == 0:
                try:
                    with conn.begin_nested():  # another process may insert the key at the same moment
                        conn.execute(insert(t.meta).values(key=key, value=value))
                except IntegrityError:
                    conn.execute(update(t.meta).where(t.meta.c.key == key).values(value=value))

    @contextmanager
    def config_sync_lock(self) -> Iterator[None]:
        """Held while a process syncs the config's feeds and subscribers into the database, so
        workers starting together on PostgreSQL sync one after the other instead of inserting the
        same new rows at once (issue 15). SQLite writers queue on its own lock already."""
        if self.engine.dialect.name != "postgresql":
            yield
            return
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _SYNC_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _SYNC_LOCK})
                conn.commit()

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

    def acquire_lock(
        self, name: str, holder: str, *, now: datetime, stale_after: timedelta, holder_alive: bool | None = None
    ) -> None:
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
                .where(
                    t.locks.c.name == name, t.locks.c.holder == row.holder, t.locks.c.heartbeat_at == row.heartbeat_at
                )
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
