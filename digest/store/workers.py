"""Workers on one database (issue 15): the registry, feed claims and politeness across workers.

Every time that decides who holds what is the database's own clock (`database_time`), never a
worker's: two hosts whose clocks disagree by a few seconds then agree on whether a lease ran out,
so neither steals the other's live claim. A worker's clock only decides what is *due* (a feed's
next poll, an edition's day), and the registry refuses a worker whose clock is too far off.

    workers      one row per running worker; its heartbeat renews every lease it holds
    feeds        claimed_by / lease_until: a batch of due feeds, claimed with SKIP LOCKED
    hosts        the next time a request may start on a publisher's host (minimum interval)
    host_slots   `per_host` leased slots per host: fetches in flight there, all workers together
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, delete, func, insert, inspect, or_, select, update
from sqlalchemy.exc import IntegrityError

from digest.errors import LockHeldError
from digest.model import Feed
from digest.store import schema as t
from digest.store.base import StoreBase, database_time
from digest.store.editions import PENDING, SENDING
from digest.store.feeds import FEED_COLUMNS, _feed, is_due

STALE_AFTER = timedelta(seconds=60)  # a worker silent this long is gone (six missed heartbeats)


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A registered worker, as `digest status` shows it."""

    name: str
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    clock_skew: float  # seconds its clock was ahead of the database's at its last heartbeat
    feeds: int  # feeds it holds now (lease not run out)
    deliveries: int  # outbox rows it holds now, its spawned sending processes' included
    alive: bool
    # A gone worker's claims still in its name, lease run out or not (nobody has taken them over
    # yet), and when the last of their leases runs out (database clock); 0, 0, None for a live one.
    stranded_feeds: int = 0
    stranded_deliveries: int = 0
    stranded_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class HostTicket:
    """A slot on a publisher's host, and when (database clock) the request may start."""

    host: str
    slot: int
    start_at: datetime
    database_now: datetime

    @property
    def wait(self) -> float:
        return max(0.0, (self.start_at - self.database_now).total_seconds())


class WorkerStore(StoreBase):
    @property
    def many_workers(self) -> bool:
        """Whether several workers may share this database (PostgreSQL; SQLite has one writer)."""
        return self.engine.dialect.name == "postgresql"

    def database_now(self) -> datetime:
        with self.engine.connect() as conn:
            return database_time(conn)

    # ------------------------------------------------------------------ the registry

    def register_worker(
        self,
        name: str,
        *,
        host: str,
        pid: int,
        version: str,
        worker_now: datetime,
        stale_after: timedelta,
    ) -> datetime:
        """Record this worker as running; returns the database's time.

        Refuses (LockHeldError) a name another live worker has, and on SQLite any second live
        worker. A row whose heartbeat is older than stale_after is a worker that died: replaced.
        """
        with self.engine.begin() as conn:
            now = database_time(conn)
            skew = (worker_now - now).total_seconds()
            live = conn.execute(
                select(t.workers.c.name, t.workers.c.host, t.workers.c.pid).where(
                    t.workers.c.heartbeat_at > now - stale_after
                )
            ).all()
            if any(r.name == name for r in live):
                raise LockHeldError(
                    f"A worker named {name!r} is already running on {self._safe_url}.",
                    hint="Give this one another --name, or stop the other first.",
                )
            if live and not self.many_workers:
                raise LockHeldError(
                    f"Another digest worker ({live[0].name}) is running on the SQLite database {self._safe_url}; "
                    "SQLite takes one worker.",
                    hint="For several workers, use PostgreSQL: [digest] database = "
                    '"postgresql+psycopg://user@host/db".',
                )
            conn.execute(delete(t.workers).where(t.workers.c.name == name))
            row = {"host": host, "pid": pid, "version": version, "heartbeat_at": now, "clock_skew": skew}
            try:
                conn.execute(insert(t.workers).values(name=name, started_at=now, **row))
            except IntegrityError:  # pragma: no cover - the DELETE above ran in this transaction
                raise LockHeldError(f"A worker named {name!r} registered at the same moment.") from None
            # A dead worker of the same name held things: its claims are ours to redo, not to wait for.
            _release_all(conn, name)
        return now

    def worker_heartbeat(self, name: str, *, worker_now: datetime, lease: timedelta) -> tuple[datetime, bool]:
        """Renew this worker's row and the leases of everything it holds, on the database's clock.

        Returns (database time, still registered). False: the row was removed (another worker
        took it as dead after missed heartbeats): the caller must stop, as its claims may be gone.
        """
        with self.engine.begin() as conn:
            now = database_time(conn)
            skew = (worker_now - now).total_seconds()
            found = conn.execute(
                update(t.workers).where(t.workers.c.name == name).values(heartbeat_at=now, clock_skew=skew)
            ).rowcount
            if not found:
                return now, False
            # Outbox claims are the senders' own, renewed by their writers (store/writers.py).
            conn.execute(update(t.feeds).where(t.feeds.c.claimed_by == name).values(lease_until=now + lease))
        return now, True

    def unregister_worker(self, name: str) -> None:
        """A worker that stops: its row goes, and what it still holds is free at once."""
        with self.engine.begin() as conn:
            _release_all(conn, name)
            conn.execute(delete(t.workers).where(t.workers.c.name == name))

    def workers(self, *, stale_after: timedelta) -> list[WorkerInfo]:
        """Every registered worker, the live ones first, with what each holds now; a gone one also
        with the claims still in its name until a live process takes them over."""
        with self.engine.connect() as conn:
            now = database_time(conn)
            f, d = t.feeds.c, t.deliveries.c
            live_lease = case((f.lease_until > now, 1), else_=0)
            feeds = {
                str(name): (int(live or 0), int(n), until)
                for name, live, n, until in conn.execute(
                    select(f.claimed_by, func.sum(live_lease), func.count(), func.max(f.lease_until))
                    .where(f.claimed_by.is_not(None))
                    .group_by(f.claimed_by)
                ).all()
            }
            held = conn.execute(
                select(
                    d.worker, func.sum(case((d.lease_until > now, 1), else_=0)), func.count(), func.max(d.lease_until)
                )
                .where(d.status == SENDING, d.worker.is_not(None))
                .group_by(d.worker)
            ).all()
            registered = conn.execute(select(t.workers).order_by(t.workers.c.name)).all()
            names = [r.name for r in registered]
            rows = _deliveries_by_worker([(str(s), int(live or 0)) for s, live, _, _ in held], names)
            every_row = _deliveries_by_worker([(str(s), int(n)) for s, _, n, _ in held], names)
            row_until = _latest_by_worker([(str(s), _aware(u)) for s, _, _, u in held], names)
            out = []
            for r in registered:
                alive = r.heartbeat_at > now - stale_after
                live_feeds, all_feeds, feeds_until = feeds.get(r.name, (0, 0, None))
                untils = [u for u in (_aware(feeds_until) if all_feeds else None, row_until.get(r.name)) if u]
                out.append(
                    WorkerInfo(
                        name=r.name,
                        host=r.host,
                        pid=r.pid,
                        version=r.version,
                        started_at=r.started_at,
                        heartbeat_at=r.heartbeat_at,
                        clock_skew=r.clock_skew,
                        feeds=live_feeds,
                        deliveries=rows.get(r.name, 0),
                        alive=alive,
                        stranded_feeds=0 if alive else all_feeds,
                        stranded_deliveries=0 if alive else every_row.get(r.name, 0),
                        stranded_until=None if alive or not untils else max(untils),
                    )
                )
        return sorted(out, key=lambda w: not w.alive)

    def live_worker_count(self, *, stale_after: timedelta) -> int:
        with self.engine.connect() as conn:
            now = database_time(conn)
            return int(
                conn.scalar(
                    select(func.count()).select_from(t.workers).where(t.workers.c.heartbeat_at > now - stale_after)
                )
                or 0
            )

    def live_worker_names(self) -> list[str]:
        """The workers alive now; [] on a database older than the workers table (for `db upgrade`)."""
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("workers"):
                return []
            now = database_time(conn)
            w = t.workers.c
            return list(conn.scalars(select(w.name).where(w.heartbeat_at > now - STALE_AFTER).order_by(w.name)))

    def forget_dead_workers(self, *, stale_after: timedelta) -> list[str]:
        """Remove the rows of workers silent for longer than stale_after; free what they held."""
        with self.engine.begin() as conn:
            now = database_time(conn)
            dead = list(conn.scalars(select(t.workers.c.name).where(t.workers.c.heartbeat_at <= now - stale_after)))
            for name in dead:
                _release_all(conn, name)
            if dead:
                conn.execute(delete(t.workers).where(t.workers.c.name.in_(dead)))
        return dead

    # ------------------------------------------------------------------ feed claims

    def claim_feeds(
        self, worker: str, *, due_by: datetime | None, lease: timedelta, limit: int, after_id: int | None = None
    ) -> list[Feed]:
        """Claim up to `limit` feeds due by `due_by` (the worker's clock), earliest first, until the
        database's now + lease. Feeds another worker holds under a live lease are skipped; on
        PostgreSQL so are rows another claim is locking at this moment (SKIP LOCKED), so workers
        claiming together get disjoint batches without waiting for each other.

        `due_by=None` (`digest poll`: every active feed, due or not) walks the feeds by id instead,
        from `after_id` on, so a caller claiming again and again meets each feed once."""
        f = t.feeds
        with self.engine.begin() as conn:
            now = database_time(conn)
            free = or_(f.c.lease_until.is_(None), f.c.lease_until < now)
            if due_by is None:
                due = and_(f.c.active.is_(True), f.c.id > (after_id or 0), free)
                order: tuple[Any, ...] = (f.c.id,)
            else:
                due = and_(f.c.active.is_(True), is_due(f.c.next_poll_at, due_by, conn.dialect), free)
                order = (f.c.next_poll_at.is_not(None), f.c.next_poll_at, f.c.id)
            ids = select(f.c.id).where(due).order_by(*order).limit(limit)
            if conn.dialect.name == "postgresql":
                ids = ids.with_for_update(skip_locked=True)
            # The WHERE is checked again on the rows the UPDATE changes: a racing claim loses them.
            rows = conn.execute(
                update(f)
                .where(f.c.id.in_(ids.scalar_subquery()), due)
                .values(claimed_by=worker, lease_until=now + lease)
                .returning(*FEED_COLUMNS)
            ).all()
        feeds = [_feed(r) for r in rows]
        if due_by is None:
            return sorted(feeds, key=lambda x: x.id)
        return sorted(feeds, key=lambda x: (x.next_poll_at is not None, x.next_poll_at or now, x.id))

    def renew_feed_claims(self, worker: str, *, lease: timedelta) -> int:
        """Extend the leases of the feeds `worker` holds (a claimer with no worker heartbeat:
        `digest poll`); returns how many it holds."""
        with self.engine.begin() as conn:
            now = database_time(conn)
            return conn.execute(
                update(t.feeds).where(t.feeds.c.claimed_by == worker).values(lease_until=now + lease)
            ).rowcount

    def release_feeds(self, worker: str, feed_ids: Sequence[int]) -> int:
        """Done with these feeds (their outcome is written): free them for their next poll."""
        if not feed_ids:
            return 0
        f = t.feeds.c
        with self.engine.begin() as conn:
            return conn.execute(
                update(t.feeds)
                .where(f.id.in_(list(feed_ids)), f.claimed_by == worker)
                .values(claimed_by=None, lease_until=None)
            ).rowcount

    # ------------------------------------------------------------------ politeness across workers

    def take_host_slot(
        self, host: str, *, worker: str, per_host: int, interval: timedelta, lease: timedelta
    ) -> HostTicket | None:
        """One of the host's `per_host` slots, and the start time reserved for this request.

        Start times are handed out `interval` apart (on the database's clock), whichever worker
        asks; the slot, held until `release_host_slot` or the lease's end, caps the requests in
        flight to the host. None: every slot is taken; ask again in a moment.
        """
        s, h = t.host_slots, t.hosts
        with self.engine.begin() as conn:
            now = database_time(conn)
            free = and_(s.c.host == host, s.c.slot < per_host, or_(s.c.held_by.is_(None), s.c.lease_until < now))
            query = select(s.c.slot).where(free).order_by(s.c.slot).limit(1)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            slot = conn.scalar(query)
            if slot is None:
                known = conn.scalar(select(func.count()).select_from(s).where(s.c.host == host, s.c.slot < per_host))
                if known:
                    return None
                _insert_ignore(conn, s, [{"host": host, "slot": i} for i in range(per_host)])
                slot = conn.scalar(query)
                if slot is None:  # other workers took them all between the insert and the select
                    return None
            conn.execute(
                update(s).where(s.c.host == host, s.c.slot == slot).values(held_by=worker, lease_until=now + lease)
            )
            _insert_ignore(conn, h, [{"host": host, "next_allowed_at": now}])
            lock = select(h.c.next_allowed_at).where(h.c.host == host)
            if conn.dialect.name == "postgresql":
                lock = lock.with_for_update()  # serialises the reservations of one host
            after = conn.scalar(lock)
            assert after is not None
            start = max(after, now)
            conn.execute(update(h).where(h.c.host == host).values(next_allowed_at=start + interval))
        return HostTicket(host, slot, start, now)

    def release_host_slot(self, ticket: HostTicket, *, worker: str) -> None:
        s = t.host_slots.c
        with self.engine.begin() as conn:
            conn.execute(
                update(t.host_slots)
                .where(s.host == ticket.host, s.slot == ticket.slot, s.held_by == worker)
                .values(held_by=None, lease_until=None)
            )

    # ------------------------------------------------------------------ lag

    def poll_lag(self, *, now: datetime) -> tuple[int, timedelta]:
        """(feeds due by `now`, how late the most overdue of them is)."""
        f = t.feeds.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(func.count(), func.min(f.next_poll_at)).where(
                    f.active.is_(True), is_due(f.next_poll_at, now, conn.dialect)
                )
            ).one()
        count, oldest = int(row[0] or 0), row[1]
        if isinstance(oldest, str):  # min() over SQLite text loses the column's type
            try:
                oldest = datetime.fromisoformat(oldest)
            except ValueError:  # only unreadable times are due (a hand edit): how late, nobody can say
                oldest = None
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return count, (now - oldest if oldest is not None and count else timedelta(0))

    def outbox_claims(self) -> tuple[int, int]:
        """(senders holding outbox rows under a live lease, the rows they hold), all workers together."""
        d = t.deliveries.c
        with self.engine.connect() as conn:
            now = database_time(conn)
            row = conn.execute(
                select(func.count(func.distinct(d.worker)), func.count()).where(
                    d.status == SENDING, d.lease_until > now
                )
            ).one()
        return int(row[0] or 0), int(row[1] or 0)

    def outbox_lag(self, *, now: datetime) -> tuple[int, timedelta]:
        """(outbox rows due to be sent by `now`, how long the oldest of them has waited)."""
        d = t.deliveries.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(func.count(), func.min(d.updated_at)).where(
                    d.status == PENDING, or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now)
                )
            ).one()
        count, oldest = int(row[0] or 0), row[1]
        if isinstance(oldest, str):
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        return count, (max(now - oldest, timedelta(0)) if oldest is not None and count else timedelta(0))


def _deliveries_by_worker(held: Sequence[tuple[str, int]], workers: Sequence[str]) -> dict[str, int]:
    """Outbox rows held per worker. A worker's senders name their claims "<worker>:random" (its own
    process) and "<worker>/send-N:random" (its sending processes: store/writers.py set_claimant);
    the longest worker name that prefixes a claim owns it. Claims of no worker (`digest send`) go
    nowhere here."""
    out: dict[str, int] = {}
    by_length = sorted(workers, key=len, reverse=True)
    for sender, n in held:
        owner = next((w for w in by_length if sender.startswith((f"{w}:", f"{w}/send-"))), None)
        if owner is not None:
            out[owner] = out.get(owner, 0) + n
    return out


def _latest_by_worker(leases: Sequence[tuple[str, datetime | None]], workers: Sequence[str]) -> dict[str, datetime]:
    """The latest lease per worker over its senders' claims (named as `_deliveries_by_worker` says)."""
    out: dict[str, datetime] = {}
    by_length = sorted(workers, key=len, reverse=True)
    for sender, until in leases:
        owner = next((w for w in by_length if sender.startswith((f"{w}:", f"{w}/send-"))), None)
        if owner is not None and until is not None:
            out[owner] = max(out.get(owner, until), until)
    return out


def _aware(value: datetime | str | None) -> datetime | None:
    """A time max() read back: SQLite hands over text, and a naive time is UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:  # a hand edit: no time to tell
            return None
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _release_all(conn: Connection, name: str) -> None:
    """Free the feeds and host slots the named worker holds. (Its outbox claims carry their
    sender's own lease, which runs out by itself: store/writers.py.)"""
    f, s = t.feeds.c, t.host_slots.c
    conn.execute(update(t.feeds).where(f.claimed_by == name).values(claimed_by=None, lease_until=None))
    conn.execute(update(t.host_slots).where(s.held_by == name).values(held_by=None, lease_until=None))


def _insert_ignore(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on both backends."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).on_conflict_do_nothing(), rows)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(table).on_conflict_do_nothing(), rows)
