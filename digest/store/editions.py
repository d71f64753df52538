"""Editions and the outbox.

An edition is keyed by (local day, time zone) and freezes, when it is built, the items it carries:
those first seen after the previous edition's cut-off up to its own. So every item is in exactly one
edition per time zone, whatever the downtime. The outbox holds one row per (edition, subscriber);
a row becomes `sent` only after the SMTP server accepted the message.

Rows move pending -> sending -> sent | failed | skipped | pending (retry later) (B1). A sender
*claims* rows: one UPDATE moves a few pending rows to `sending` with its name and a lease, so two
processes never hold the same row. Results are recorded a batch at a time (`OutboxSession.record`);
only rows still claimed by that sender move. The lease is the sender's heartbeat: it renews it while
it lives (`store.writers.OutboxWriter`), and a claim whose lease ran out, on whatever host its
sender ran, returns to `pending` (`expire_claims`) and is claimed again. The store applies no
policy: which items an edition carries and in which section is the send job's decision.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Row,
    Select,
    Text,
    Update,
    and_,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from digest.errors import DatabaseLostError, StoreError
from digest.model import (
    DUE_EARLY,
    DUE_LAPSED,
    DUE_RETRY,
    DUE_UNTRIED,
    ClaimHolder,
    Delivery,
    EditionItem,
    EditionRecord,
    EditionWindow,
    Item,
    Lapsed,
    Mark,
    Moved,
    Neighbours,
    OutboxEntry,
    Standing,
    Subscriber,
)
from digest.schedule import known_zone
from digest.store import schema as t
from digest.store.base import StoreBase, database_time
from digest.store.feeds import _ITEM_COLUMNS, _item
from digest.store.subscribers import _SUBSCRIBER_COLUMNS, ACTIVE, _subscriber

PENDING, SENDING, SENT, FAILED, SKIPPED = "pending", "sending", "sent", "failed", "skipped"
MAX_CRASHES = 3  # a row's crashes (deliveries.crashes) before it is parked as failed (S8)
# A sender whose connection was lost (a PostgreSQL restart takes a few seconds) tries again on a
# fresh one after each of these pauses, about 15 s in all, before it gives up (audit bug 3).
RECONNECT_PAUSES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

log = logging.getLogger(__name__)
T = TypeVar("T")


class _WindowMoved(Exception):
    """The zone's last cut-off changed between reading the window and inserting the edition."""


def _insert_new(conn: Connection) -> Any:
    """The dialect's INSERT, which has ON CONFLICT DO NOTHING (both of ours do)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


# How far back a zone's first edition reaches: what one daily edition covers. A new zone's readers
# are new (a sign-up) or moved from another zone, and a new site's may come after days of polling;
# all want a day's news, not the whole database (an edition of 928 items, back a week, in an audit).
FIRST_EDITION_SPAN = timedelta(days=1)
# How far back before an edition's window a subscriber who moved zone is looked for: the last edition
# that covered them ended there at the earliest, and the items since (the gap between their former
# zone's cut-off and their new zone's) come with their first edition here. Two days: the widest gap
# between two zones' cut-offs (UTC-12 and UTC+14: 26 hours) and a missed day, not a week for a
# reader who paused for one and then moved (they start afresh, as a new reader of the zone does).
MOVER_GAP_SPAN = timedelta(days=2)


def _last_cutoff(conn: Connection, timezone: str) -> datetime | None:
    cutoff: datetime | None = conn.scalar(
        select(func.max(t.editions.c.cutoff)).where(t.editions.c.timezone == timezone)
    )
    return cutoff


def _claimable(
    d: Any, now: datetime, due_only: bool, since: datetime | None = None, *, lease_now: datetime | None = None
) -> ColumnElement[bool]:
    """Rows a sender may claim: pending ones and claims whose lease ran out.

    `now` (the sender's clock) says which retries are due; `lease_now`, the database's clock,
    whether a lease ran out: senders on hosts whose clocks differ agree on that (issue 15).

    With due_only (the daemon), only pending rows whose retry time has come. With `since` (a run
    of `digest send` that started then), rows deferred by earlier runs are retried at once, as
    the operator asked, but never a row this run itself deferred: that would hammer a server that
    just said "try later" (B7).
    """
    pending = d.c.status == PENDING
    due = or_(d.c.next_attempt_at.is_(None), d.c.next_attempt_at <= now)
    if due_only:
        pending = and_(pending, due)
    elif since is not None:
        pending = and_(pending, or_(due, d.c.updated_at < since))
    return or_(pending, and_(d.c.status == SENDING, d.c.lease_until < (lease_now or now)))


def _due_kind(status: str, retry: datetime | None, now: datetime) -> str:
    """Why a row `_claimable` took is claimable (`Standing.why`): a label of its state, not the
    decision, which stays `_claimable`'s."""
    if status == SENDING:
        return DUE_LAPSED
    if retry is None:
        return DUE_UNTRIED
    return DUE_RETRY if retry <= now else DUE_EARLY


def _aware(value: datetime | str) -> datetime:
    """A time an aggregate returned: SQLite's max() hands back the stored text."""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _edition(row: Row[Any]) -> EditionRecord:
    return EditionRecord(
        id=row.id,
        day=row.day,
        timezone=row.timezone,
        cutoff=row.cutoff,
        window_start=row.window_start,
        created_at=row.created_at,
        status=row.status,
    )


def _delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        id=row.id,
        edition_id=row.edition_id,
        subscriber_id=row.subscriber_id,
        status=row.status,
        attempts=row.attempts,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        message_id=row.message_id,
        sent_at=row.sent_at,
        crashes=row.crashes,
    )


class EditionStore(StoreBase):
    def last_edition(self, timezone: str) -> EditionRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.editions)
                .where(t.editions.c.timezone == timezone)
                .order_by(t.editions.c.cutoff.desc())
                .limit(1)
            ).first()
        return _edition(row) if row else None

    def get_edition(
        self, *, day: date | None = None, timezone: str | None = None, id: int | None = None
    ) -> EditionRecord | None:
        query = select(t.editions)
        query = (
            query.where(t.editions.c.id == id)
            if id is not None
            else query.where(t.editions.c.day == day, t.editions.c.timezone == timezone)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _edition(row) if row else None

    def count_editions(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(t.editions)) or 0)

    def list_editions(self, *, status: str | None = None, limit: int = 100) -> list[EditionRecord]:
        query = select(t.editions).order_by(t.editions.c.cutoff.desc()).limit(limit)
        if status:
            query = query.where(t.editions.c.status == status)
        with self.engine.connect() as conn:
            return [_edition(r) for r in conn.execute(query)]

    def overlapping_editions(self, edition: EditionRecord) -> tuple[int, ...]:
        """Other zones' editions whose windows overlap this one's: a subscriber who moved from one
        of those zones may have been sent some of this edition's items there (`OutboxSession.movers`)."""
        e = t.editions.c
        cond = [e.timezone != edition.timezone, or_(e.window_start.is_(None), e.window_start < edition.cutoff)]
        if edition.window_start is not None:
            cond.append(e.cutoff > edition.window_start)
        with self.engine.connect() as conn:
            return tuple(conn.scalars(select(e.id).where(*cond).order_by(e.id)))

    def neighbours(self, edition: EditionRecord) -> Neighbours:
        """The editions a subscriber who moved here from another zone may have been sent before
        this one (`Neighbours`): one indexed query per edition sent, none per subscriber."""
        overlapping = self.overlapping_editions(edition)
        e = t.editions.c
        near: ColumnElement[bool] = e.id.in_(list(overlapping))
        if edition.window_start is not None:  # (None: built before windows were stored; no gap told)
            earlier = and_(e.cutoff > edition.window_start - MOVER_GAP_SPAN, e.cutoff <= edition.window_start)
            near = or_(near, earlier)
        with self.engine.connect() as conn:
            rows = conn.execute(select(e.id, e.cutoff, e.timezone).where(near, e.id != edition.id)).all()
        if all(zone == edition.timezone for _, _, zone in rows):
            return Neighbours(overlapping)  # a single-zone site: nobody moved here
        return Neighbours(overlapping, {i: (_aware(cutoff), zone) for i, cutoff, zone in rows})

    def items_seen(self, *, after: datetime, until: datetime) -> list[Item]:
        """Items first seen in (after, until], earliest first: a mover's gap (`Moved.since`)."""
        first_seen = t.items.c.first_seen
        return self._items(select(*_ITEM_COLUMNS).where(first_seen > after, first_seen <= until).order_by(first_seen))

    def items_before(self, until: datetime, *, since: datetime, limit: int) -> list[Item]:
        """At most `limit` items first seen in [since, until), the latest first: the week before an
        edition, which weighs how common its words are (`cluster.cluster`'s background)."""
        first_seen = t.items.c.first_seen
        query = select(*_ITEM_COLUMNS).where(first_seen >= since, first_seen < until).order_by(first_seen.desc())
        return self._items(query.limit(limit), descending=True)

    def _items(self, query: Select[Any], *, descending: bool = False) -> list[Item]:
        """The items `query` selects (with their feeds), ties in its order broken by id."""
        item_id = t.items.c.id
        query = query.select_from(t.items.join(t.feeds)).order_by(item_id.desc() if descending else item_id)
        with self.engine.connect() as conn:
            return list(map(_item, conn.execute(query).all()))

    def edition_window(self, timezone: str, *, until: datetime) -> EditionWindow:
        """The items the next edition of `timezone` would freeze if it were built with this cut-off."""
        with self.engine.connect() as conn:
            previous = _last_cutoff(conn, timezone)
            first_seen = t.items.c.first_seen
            # After a clock step back the window is empty, never doubled. A first edition's day
            # includes its first instant: nothing before it is any edition's.
            start = previous if previous is not None else until - FIRST_EDITION_SPAN
            after = first_seen > start if previous is not None else first_seen >= start
            rows = conn.execute(
                select(*_ITEM_COLUMNS)
                .select_from(t.items.join(t.feeds))
                .where(after, first_seen <= until)
                .order_by(t.items.c.first_seen, t.items.c.id)
            ).all()
        return EditionWindow(timezone, start, until, tuple(map(_item, rows)), previous)

    def create_edition(
        self,
        *,
        day: date,
        window: EditionWindow,
        items: Sequence[EditionItem],
        default_timezone: str,
        now: datetime,
    ) -> tuple[EditionRecord, bool]:
        """Build the edition (day, window.timezone) once: freeze `items` (chosen from `window`) and
        queue one row per active subscriber of the zone.

        Returns (edition, created). A second call for the same key, even racing the first from
        another process, returns the existing edition and queues nothing (S7). A window that
        moved meanwhile (another edition of the zone was built) is refused: read it again.
        """
        timezone = window.timezone
        existing = self.get_edition(day=day, timezone=timezone)
        if existing is not None:
            return existing, False
        try:
            with self.engine.begin() as conn:
                if _last_cutoff(conn, timezone) != window.previous:
                    raise _WindowMoved
                # INSERT ... ON CONFLICT DO NOTHING on the edition's key: of several workers (or
                # runs) building it at once, the first inserts it and the others get no row (on
                # PostgreSQL they wait for the first's commit, then see its row): built exactly once.
                edition_id = conn.scalar(
                    _insert_new(conn)(t.editions)
                    .values(
                        day=day,
                        timezone=timezone,
                        cutoff=window.until,
                        window_start=window.start,
                        created_at=now,
                        status="open",
                    )
                    .on_conflict_do_nothing(index_elements=["day", "timezone"])
                    .returning(t.editions.c.id)
                )
                if edition_id is None:
                    raise _WindowMoved  # the same key, inserted by another process: return theirs
                if items:
                    conn.execute(
                        insert(t.edition_items),
                        [{"edition_id": edition_id, "item_id": i.item_id, "section": i.section} for i in items],
                    )
                zone = t.subscribers.c.timezone
                ours = func.coalesce(zone, default_timezone) == timezone
                if timezone == default_timezone:
                    # and those whose own zone this machine does not know (`schedule.effective_zone`)
                    chosen = conn.scalars(
                        select(zone).where(t.subscribers.c.status == ACTIVE, zone.is_not(None)).distinct()
                    )
                    if unknown := sorted(z for z in chosen if not known_zone(z)):
                        ours = or_(ours, zone.in_(unknown))
                conn.execute(
                    insert(t.deliveries).from_select(
                        ["edition_id", "subscriber_id", "status", "attempts", "updated_at"],
                        select(
                            literal(edition_id),
                            t.subscribers.c.id,
                            literal(PENDING),
                            literal(0),
                            literal(now, t.UTCDateTime),
                        ).where(t.subscribers.c.status == ACTIVE, ours),
                    )
                )
        except (IntegrityError, _WindowMoved):
            raced = self.get_edition(day=day, timezone=timezone)  # another process built this one first
            if raced is not None:
                return raced, False
            raise StoreError(
                f"Another edition of {timezone} was built while the edition of {day} was being made.",
                hint="Run the command again; it reads the new window.",
            ) from None
        created = self.get_edition(id=edition_id)
        assert created is not None
        return created, True

    def save_edition_stories(self, edition_id: int, body: str, *, now: datetime) -> bool:
        """Keep an edition's clustered stories (digest.compose's serialisation); the first write wins.

        Returns False when another process stored them first (both computed the same stories)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(t.edition_stories).values(edition_id=edition_id, body=body, created_at=now))
        except IntegrityError:
            return False
        return True

    def edition_stories(self, edition_id: int) -> str | None:
        """The stories stored when the edition was built; None for an edition built before they were."""
        with self.engine.connect() as conn:
            body = conn.scalar(select(t.edition_stories.c.body).where(t.edition_stories.c.edition_id == edition_id))
        return None if body is None else str(body)

    def edition_items(self, edition_id: int) -> list[tuple[Item, str]]:
        query = (
            select(*_ITEM_COLUMNS, t.edition_items.c.section)
            .select_from(t.edition_items.join(t.items).join(t.feeds))
            .where(t.edition_items.c.edition_id == edition_id)
            .order_by(t.items.c.id)
        )
        with self.engine.connect() as conn:
            return [(_item(r), r.section) for r in conn.execute(query)]

    def find_items(self, key: str) -> list[Item]:
        """Stored items whose id (all digits) or link is `key`, oldest first: for `sections explain`."""
        query = select(*_ITEM_COLUMNS).select_from(t.items.join(t.feeds))
        query = query.where(t.items.c.id == int(key)) if key.isdigit() else query.where(t.items.c.url == key)
        with self.engine.connect() as conn:
            return [_item(r) for r in conn.execute(query.order_by(t.items.c.id))]

    def item_sections(self, item_id: int) -> list[tuple[EditionRecord, str]]:
        """Each edition that carries the item, with the section it stored for it."""
        query = (
            select(t.editions, t.edition_items.c.section)
            .select_from(t.edition_items.join(t.editions))
            .where(t.edition_items.c.item_id == item_id)
            .order_by(t.editions.c.id)
        )
        with self.engine.connect() as conn:
            return [(_edition(r), r.section) for r in conn.execute(query)]

    def sent_items(self, *, since: datetime, before_edition: int, timezone: str) -> list[Item]:
        """Items already carried by earlier editions of this time zone (for "Read also")."""
        query = (
            select(*_ITEM_COLUMNS)
            .select_from(t.edition_items.join(t.items).join(t.feeds).join(t.editions))
            .where(
                t.editions.c.timezone == timezone, t.editions.c.id != before_edition, t.editions.c.created_at >= since
            )
            .order_by(t.items.c.first_seen)
        )
        with self.engine.connect() as conn:
            return [_item(r) for r in conn.execute(query)]

    # ------------------------------------------------------------------ outbox

    def iter_deliveries(self, edition_id: int, *, now: datetime | None = None, batch: int = 1000) -> Iterator[Delivery]:
        """Unfinished rows in id order, streamed: pending ones (with `now`, only those whose retry
        time has come) and claimed ones (`sending`), which a sender holds or which wait to be
        claimed again."""
        last = 0
        d = t.deliveries.c
        pending = d.status == PENDING
        if now is not None:
            pending = and_(pending, or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now))
        while True:
            cond = [d.edition_id == edition_id, or_(pending, d.status == SENDING), d.id > last]
            with self.engine.connect() as conn:
                rows = [
                    _delivery(r) for r in conn.execute(select(t.deliveries).where(*cond).order_by(d.id).limit(batch))
                ]
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1].id

    def count_claimable(self, edition_id: int, *, now: datetime, due_only: bool = False) -> int:
        d = t.deliveries
        with self.engine.connect() as conn:
            return int(
                conn.scalar(
                    select(func.count())
                    .select_from(d)
                    .where(d.c.edition_id == edition_id, _claimable(d, now, due_only))
                )
                or 0
            )

    def outbox_standing(
        self, edition_id: int, *, now: datetime, due_only: bool, subscriber_id: int | None = None
    ) -> Standing:
        """What a send run starting `now` would do with the edition's rows (one subscriber's, with
        `subscriber_id`): those it would claim, by the claim's own condition (`_claimable`, with the
        run's `since` at `now`, the lease judged on the database's clock), and the others' states.
        Recording nothing: `digest preview` and `send --dry-run` show a send's work from it."""
        d = t.deliveries
        cond = [d.c.edition_id == edition_id]
        if subscriber_id is not None:
            cond.append(d.c.subscriber_id == subscriber_id)
        with self.engine.connect() as conn:
            claimable = _claimable(d, now, due_only, None if due_only else now, lease_now=database_time(conn))
            due = conn.execute(
                select(d.c.subscriber_id, d.c.status, d.c.next_attempt_at).where(*cond, claimable).order_by(d.c.id)
            ).all()
            counts = conn.execute(
                select(d.c.status, func.count(), func.max(d.c.sent_at)).where(*cond).group_by(d.c.status)
            ).all()
            retry_at = conn.scalar(
                select(func.min(d.c.next_attempt_at)).where(*cond, d.c.status == PENDING, d.c.next_attempt_at > now)
            )
        rest = {str(status): int(n) for status, n, _ in counts}
        why: dict[str, int] = {}
        for _, status, retry in due:
            rest[status] -= 1
            kind = _due_kind(status, None if retry is None else _aware(retry), now)
            why[kind] = why.get(kind, 0) + 1
        sent_at = next((_aware(at) for status, _, at in counts if status == SENT and at is not None), None)
        return Standing(
            tuple(int(sub) for sub, _, _ in due),
            {status: n for status, n in rest.items() if n},
            sent_at,
            _aware(retry_at) if retry_at is not None and rest.get(PENDING) else None,
            why,
        )

    def expire_claims(self, edition_id: int, *, now: datetime, other_than: str | None = None) -> Lapsed:
        """Return to pending the rows of the edition whose claim's lease ran out: their sender
        stopped renewing it (killed, crashed, its host gone). Never those of `other_than` (the
        caller itself: its lease may lag while it is busy, but it is alive). See `_expire_lapsed`."""
        d = t.deliveries.c
        with self.engine.begin() as conn:
            cond = [d.edition_id == edition_id, d.status == SENDING, d.lease_until < database_time(conn)]
            if other_than is not None:
                cond.append(d.worker != other_than)
            return _expire_lapsed(conn, cond, now)

    def claims_held(self, edition_id: int, *, other_than: str | None = None) -> datetime | None:
        """When the earliest lease on the edition's claimed rows (but `other_than`'s) runs out;
        None when no such row is claimed."""
        d = t.deliveries.c
        cond = [d.edition_id == edition_id, d.status == SENDING]
        if other_than is not None:
            cond.append(d.worker != other_than)
        with self.engine.connect() as conn:
            until: datetime | None = conn.scalar(select(func.min(d.lease_until)).where(*cond))
        return until

    def claim_holders(self, edition_id: int, *, other_than: str | None = None) -> tuple[datetime, list[ClaimHolder]]:
        """The database's clock now, and who holds the edition's claimed rows (but `other_than`):
        each sender, its rows and when its lease runs out, the one that runs out first first."""
        d = t.deliveries.c
        cond = [d.edition_id == edition_id, d.status == SENDING]
        if other_than is not None:
            cond.append(d.worker != other_than)
        with self.engine.connect() as conn:
            now = database_time(conn)
            rows = conn.execute(
                select(d.worker, func.count(), func.max(d.lease_until).label("until"))
                .where(*cond)
                .group_by(d.worker)
                .order_by("until")
            ).all()
        return now, [ClaimHolder(str(worker or ""), int(n), _aware(until)) for worker, n, until in rows]

    def outbox_session(self, worker: str) -> OutboxSession:
        return OutboxSession(self.engine, worker, where=self._safe_url)

    def delivery_counts(self, edition_id: int | None = None) -> dict[str, int]:
        query = select(t.deliveries.c.status, func.count()).group_by(t.deliveries.c.status)
        if edition_id is not None:
            query = query.where(t.deliveries.c.edition_id == edition_id)
        with self.engine.connect() as conn:
            return {status: int(n) for status, n in conn.execute(query)}

    def close_edition_if_done(self, edition_id: int) -> bool:
        """Mark the edition complete once no row is pending or claimed (never before: listmonk#2278)."""
        with self.engine.begin() as conn:
            pending = conn.scalar(
                select(func.count())
                .select_from(t.deliveries)
                .where(t.deliveries.c.edition_id == edition_id, t.deliveries.c.status.in_((PENDING, SENDING)))
            )
            if pending:
                return False
            conn.execute(update(t.editions).where(t.editions.c.id == edition_id).values(status="complete"))
            return True


# --------------------------------------------------------------------------- one sender's connection


class OutboxSession:
    """One sender's claims and results over one connection kept open for the whole send.

    A transaction on a fresh SQLite connection costs about 2 ms (open, pragmas) and, when it was
    the database's last connection, a WAL checkpoint with fsync on close; on a kept connection it
    costs about 0.3 ms. A connection belongs to one thread: call every method from the same one.
    """

    def __init__(self, engine: Engine, worker: str, *, where: str) -> None:
        self.worker, self._where = worker, where
        self._engine = engine
        self._conn: Connection | None = None
        self.lapsed = Lapsed()  # what the last claim's taking over of lapsed claims did

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _again(self, what: str, fn: Callable[[], T]) -> T:
        """`fn()`, run again on a fresh connection when the server dropped ours (a restart, an
        administrator's `pg_terminate_backend`), after a short pause while the server comes back.

        Every statement here may run twice: a claim or result applies only to rows still held by
        this sender, so a transaction that committed just before the connection died changes
        nothing the second time. Without this, one terminated connection stopped the sender with
        messages the relay had accepted unrecorded, sent again once their lease ran out."""
        for pause in (*RECONNECT_PAUSES, None):
            try:
                return fn()
            except (DatabaseLostError, DBAPIError) as exc:
                lost = isinstance(exc, DatabaseLostError) or exc.connection_invalidated
                if not lost or pause is None:
                    raise
                log.warning("outbox: %s: the database connection was lost; again in %gs on a new one", what, pause)
                if self._conn is not None:
                    self._conn.invalidate()
                    self._conn.close()
                    self._conn = None
                time.sleep(pause)  # on the session's own thread (PostgreSQL), never the event loop's
        raise AssertionError("unreachable")

    def claim(
        self,
        edition_id: int,
        *,
        now: datetime,
        lease: timedelta,
        limit: int,
        due_only: bool = False,
        since: datetime | None = None,
        suspects: bool = False,
    ) -> list[Delivery]:
        """Claim rows (`_claim`); what taking over lapsed claims did first is left in `lapsed`."""

        def claim() -> list[Delivery]:
            with self.conn.begin():
                rows, self.lapsed = _claim(
                    self.conn,
                    edition_id,
                    worker=self.worker,
                    now=now,
                    lease=lease,
                    limit=limit,
                    due_only=due_only,
                    since=since,
                    suspects=suspects,
                )
            return rows

        return self._again("claiming", claim)

    def record(self, marks: Sequence[Mark], *, now: datetime, on_wire: Sequence[int] = ()) -> int:
        """Write results, and mark `on_wire` the claimed rows whose SMTP transaction began."""

        def record() -> int:
            with self.conn.begin():
                if on_wire:
                    d = t.deliveries.c
                    self.conn.execute(
                        update(t.deliveries)
                        .where(d.id.in_(list(on_wire)), d.status == SENDING, d.worker == self.worker)
                        .values(on_wire=True)
                    )
                return _record(self.conn, marks, worker=self.worker, now=now)

        try:
            return self._again(f"recording {len(marks)} results", record)
        except (SQLAlchemyError, StoreError) as exc:
            raise _not_recorded(exc, len(marks), self._where) from exc

    def subscribers(self, ids: Sequence[int]) -> dict[int, Subscriber]:
        """The subscribers as they are now (status, sections), read just before their messages are made."""

        def read() -> dict[int, Subscriber]:
            rows = self.conn.execute(select(*_SUBSCRIBER_COLUMNS).where(t.subscribers.c.id.in_(list(ids)))).all()
            self.conn.commit()  # end the read transaction: the next read sees changes made since (B5)
            return {r.id: _subscriber(r) for r in rows}

        return self._again("reading subscribers", read)

    def movers(
        self, edition: EditionRecord, near: Neighbours, ids: Sequence[int], *, draft: Collection[int] | None = None
    ) -> dict[int, Moved]:
        """What each of these subscribers who moved zone needs of this edition (`Moved`): the
        items they were sent in an overlapping edition of their former zone, and where the gap
        since the last edition that covered them begins. Absent for everyone who stayed; one
        indexed look-up per chunk of subscribers (on the (edition, subscriber) key), and none on
        a site whose editions are of one zone.

        `draft`: the items of an edition not built yet (`digest preview`, `send --dry-run`), which
        are in no `edition_items` row to compare with."""
        if not near.cutoffs:  # no other zone's edition near this one: nobody moved here, nothing to ask
            return {}
        return self._again("reading what was sent", lambda: self._movers(edition, near, ids, draft))

    def _movers(
        self, edition: EditionRecord, near: Neighbours, ids: Sequence[int], draft: Collection[int] | None
    ) -> dict[int, Moved]:
        d = t.deliveries.c
        # A failed row covered nobody. A skipped one did (nothing in their sections, or not
        # active then), and a pending or claimed one will: its window is theirs already, so a
        # later edition sent first never carries it again.
        rows = self.conn.execute(
            select(d.subscriber_id, d.edition_id, d.status).where(
                d.edition_id.in_(list(near.cutoffs)), d.subscriber_id.in_(list(ids)), d.status != FAILED
            )
        ).all()
        self.conn.commit()  # end the read transaction, as `subscribers` does
        sent: dict[int, set[int]] = {}  # subscriber -> overlapping editions sent them
        last: dict[int, tuple[datetime, str]] = {}  # subscriber -> latest cut-off that covered them, its zone
        former: dict[int, tuple[datetime, str]] = {}  # the same among other zones' editions
        for subscriber, edition_id, status in rows:
            if status == SENT and edition_id in near.overlapping:
                sent.setdefault(subscriber, set()).add(edition_id)
            covered = near.cutoffs[edition_id]
            if subscriber not in last or covered[0] > last[subscriber][0]:
                last[subscriber] = covered
            if covered[1] != edition.timezone and (subscriber not in former or covered[0] > former[subscriber][0]):
                former[subscriber] = covered
        had = self._shared(edition.id, sent, draft)
        moved: dict[int, Moved] = {}
        for subscriber in {*had, *last}:
            since: datetime | None = None
            if subscriber in last and edition.window_start is not None:
                cutoff, zone = last[subscriber]
                # Covered last by another zone's edition that ended before ours begins: the
                # items between were in none of theirs (moved after our zone's cut-off and
                # before their former zone's). Covered by ours: a reader who stayed.
                if zone != edition.timezone and cutoff < edition.window_start:
                    since = cutoff
            if since is not None or subscriber in had:
                # (in `former`: `had` comes from another zone's edition, and `since` too)
                moved[subscriber] = Moved(had.get(subscriber, frozenset()), since, former[subscriber][1])
        return moved

    def _shared(
        self, edition_id: int, sent: dict[int, set[int]], draft: Collection[int] | None
    ) -> dict[int, frozenset[int]]:
        """Per subscriber, this edition's items (`draft`'s, for one not built) that the editions
        `sent` them also carried."""
        had: dict[int, frozenset[int]] = {}
        if not sent:
            return had
        mine, theirs = t.edition_items.alias("mine"), t.edition_items.alias("theirs")
        query = select(theirs.c.edition_id, theirs.c.item_id).where(
            theirs.c.edition_id.in_({e for es in sent.values() for e in es})
        )
        if draft is None:
            query = query.join(mine, mine.c.item_id == theirs.c.item_id).where(mine.c.edition_id == edition_id)
        shared: dict[int, set[int]] = {}
        for other, item in self.conn.execute(query):
            if draft is None or item in draft:
                shared.setdefault(other, set()).add(item)
        self.conn.commit()
        for subscriber, editions in sent.items():
            items = frozenset().union(*(shared.get(e, set()) for e in editions))
            if items:
                had[subscriber] = items
        return had

    def renew(self, *, lease: timedelta) -> set[int]:
        """Extend the lease of every row this sender still holds (a long, slow send) to the
        database's now + `lease`; their ids.

        A row missing from the answer was taken over after our lease ran out (we were stopped
        or frozen for longer than it): its new holder sends it, we must not."""
        d = t.deliveries.c

        def renew() -> set[int]:
            with self.conn.begin():
                return set(
                    self.conn.scalars(
                        update(t.deliveries)
                        .where(d.status == SENDING, d.worker == self.worker)
                        .values(lease_until=database_time(self.conn) + lease)
                        .returning(d.id)
                    )
                )

        return self._again("renewing the lease", renew)

    def release(self, *, now: datetime) -> int:
        """Return to pending every row this sender still holds (never sent: nothing counted)."""

        def release() -> int:
            with self.conn.begin():
                return self.conn.execute(_release(self.worker, now)).rowcount

        return self._again("releasing its claims", release)


def _claim(
    conn: Connection,
    edition_id: int,
    *,
    worker: str,
    now: datetime,
    lease: timedelta,
    limit: int,
    due_only: bool,
    since: datetime | None = None,
    suspects: bool = False,
) -> tuple[list[Delivery], Lapsed]:
    """Claim up to `limit` pending rows; with `suspects`, only rows that crashed before (S8), else
    only others. Claims whose lease ran out are taken over first (`_expire_lapsed`)."""
    d = t.deliveries
    free = d.alias("free")
    lease_now = database_time(conn)  # leases are on the database's clock (issue 15)
    lapsed = _expire_lapsed(
        conn, [d.c.edition_id == edition_id, d.c.status == SENDING, d.c.lease_until < lease_now], now
    )
    ids = (
        select(free.c.id)
        .where(
            free.c.edition_id == edition_id,
            _claimable(free, now, due_only, since, lease_now=lease_now),
            free.c.crashes > 0 if suspects else free.c.crashes == 0,
        )
        .order_by(free.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        ids = ids.with_for_update(skip_locked=True)
    claim = (
        update(d)
        .where(d.c.id.in_(ids.scalar_subquery()), _claimable(d, now, due_only, since, lease_now=lease_now))
        .values(status=SENDING, worker=worker, lease_until=lease_now + lease, updated_at=now, on_wire=False)
        .returning(*d.c)
    )
    return sorted((_delivery(r) for r in conn.execute(claim)), key=lambda r: r.id), lapsed


def _expire_lapsed(conn: Connection, lapsed: list[ColumnElement[bool]], now: datetime) -> Lapsed:
    """Return to pending the rows of `lapsed` (claims whose lease ran out: their sender stopped).

    Only a message being *made* when its sender died is a suspect of having killed it (S8): a
    bug in a C or Rust library met on that subscriber's data. A sender makes its claimed rows'
    messages one at a time in id order, and marks each on the wire before its SMTP transaction;
    so of a dead sender's rows, the first not on the wire is the one it was making (or, when it
    died while every connection was busy, the next it would have made: one bystander at most,
    which is then sent alone and marked on the wire, so cannot count again that way). That row
    counts a crash, and is parked as failed at `MAX_CRASHES` (B3: Mailman parks a message after
    three). A row on the wire counts none: its sender was stopped from outside while a relay held
    the message (a kill, a deploy, a slow relay's long wait), and parking it would lose the
    subscriber's edition; it goes again, and may reach them twice (S2). The other rows were only
    claimed: pending again, nothing counted (a hundred bystanders were suspects before 0012).
    """
    d = t.deliveries.c
    query = select(d.id, d.worker, d.on_wire, d.crashes).where(*lapsed).order_by(d.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    first: dict[str | None, Any] = {}
    for row in conn.execute(query):
        if not row.on_wire and row.worker not in first:
            first[row.worker] = row
    suspects = [r.id for r in first.values() if r.crashes < MAX_CRASHES - 1]
    doomed = [r.id for r in first.values() if r.crashes >= MAX_CRASHES - 1]
    free = {"worker": None, "lease_until": None, "updated_at": now, "on_wire": False}
    parked = (
        conn.execute(
            update(t.deliveries)
            .where(*lapsed, d.id.in_(doomed))
            .values(
                status=FAILED,
                crashes=d.crashes + 1,
                last_error=func.substr(
                    "parked: its sender stopped while making its message "
                    + str(MAX_CRASHES)
                    + " times (killed or crashed); last error: "
                    + func.coalesce(d.last_error, "none"),
                    1,
                    500,
                ),
                **free,
            )
            .returning(d.id, d.subscriber_id)
        ).all()
        if doomed
        else []
    )
    crashed = (
        conn.execute(
            update(t.deliveries)
            .where(*lapsed, d.id.in_(suspects))
            .values(status=PENDING, crashes=d.crashes + 1, **free)
        ).rowcount
        if suspects
        else 0
    )
    on_wire = conn.execute(update(t.deliveries).where(*lapsed, d.on_wire.is_(True)).values(status=PENDING, **free))
    rest = conn.execute(update(t.deliveries).where(*lapsed).values(status=PENDING, **free))
    return Lapsed(
        requeued=crashed + on_wire.rowcount + rest.rowcount,
        on_wire=on_wire.rowcount,
        crashed=crashed,
        parked=tuple((r.id, r.subscriber_id) for r in parked),
    )


def _release(worker: str, now: datetime) -> Update:
    d = t.deliveries.c
    return (
        update(t.deliveries)
        .where(d.status == SENDING, d.worker == worker)
        .values(status=PENDING, worker=None, lease_until=None, updated_at=now, on_wire=False)
    )


def _record_statement() -> Update:
    """Built once: building an UPDATE costs more than running it (about 0.3 ms against 0.06)."""
    d = t.deliveries.c
    # Only rows still claimed by this worker move: a row whose claim ran out and went to another
    # sender, or a late duplicate result, can never demote a sent row.
    return (
        update(t.deliveries)
        .where(d.id == bindparam("b_id"), d.status == SENDING, d.worker == bindparam("b_worker", type_=Text))
        .values(
            status=bindparam("b_status"),
            updated_at=bindparam("b_now", type_=t.UTCDateTime),
            worker=None,
            lease_until=None,
            on_wire=False,
            next_attempt_at=bindparam("b_next", type_=t.UTCDateTime),
            attempts=d.attempts + bindparam("b_tried", type_=Integer),
            crashes=d.crashes + bindparam("b_crashed", type_=Integer),
            message_id=func.coalesce(bindparam("b_mid", type_=Text), d.message_id),
            last_error=func.coalesce(bindparam("b_error", type_=Text), d.last_error),
            sent_at=func.coalesce(bindparam("b_sent", type_=t.UTCDateTime), d.sent_at),
        )
    )


_RECORD = _record_statement()


def _record(conn: Connection, marks: Sequence[Mark], *, worker: str, now: datetime) -> int:
    if not marks:
        return 0
    if sent := [m.delivery_id for m in marks if m.status == SENT]:
        # A message the server took clears the subscriber's strikes: [smtp] suspend_after counts
        # permanent failures in a row, not over a lifetime (a full mailbox last spring and a
        # policy refusal this winter must not suspend a reader who got every edition between).
        s = t.subscribers.c
        conn.execute(
            update(t.subscribers)
            .where(
                s.permanent_failures > 0,
                s.id.in_(select(t.deliveries.c.subscriber_id).where(t.deliveries.c.id.in_(sent))),
            )
            .values(permanent_failures=0)
        )
    params = [
        {
            "b_id": m.delivery_id,
            "b_worker": worker,
            "b_status": m.status,
            "b_now": now,
            "b_next": m.next_attempt_at,
            "b_tried": 1 if m.attempted else 0,
            "b_crashed": 1 if m.crashed else 0,
            "b_mid": m.message_id,
            "b_error": m.error[:500] if m.error is not None else None,
            "b_sent": now if m.status == SENT else None,
        }
        for m in marks
    ]
    return conn.execute(_RECORD, params).rowcount


def _not_recorded(exc: SQLAlchemyError | StoreError, n: int, where: str) -> StoreError:
    return StoreError(
        f"Cannot record the results of {n} messages in {where}: {getattr(exc, 'orig', None) or exc}.",
        hint="Sending stopped; those messages stay claimed and the next `digest send` sends them "
        "again (their recipients may get them twice). Check free space and the database.",
    )


# --------------------------------------------------------------------------- what operators read


_UNFINISHED = (PENDING, SENDING)


def _entry(row: Row[Any]) -> OutboxEntry:
    return OutboxEntry(
        id=row.id,
        day=row.day,
        timezone=row.timezone,
        email=row.email,
        status=row.status,
        attempts=row.attempts,
        crashes=row.crashes,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at,
        updated_at=row.updated_at,
        worker=row.worker,
        lease_until=row.lease_until,
    )


def _entries() -> Any:
    """The outbox rows with their edition's day and zone and the subscriber's address."""
    d, e, s = t.deliveries.c, t.editions.c, t.subscribers.c
    return select(
        d.id,
        e.day,
        e.timezone,
        s.email,
        d.status,
        d.attempts,
        d.crashes,
        d.last_error,
        d.next_attempt_at,
        d.updated_at,
        d.worker,
        d.lease_until,
    ).select_from(t.deliveries.join(t.editions, e.id == d.edition_id).join(t.subscribers, s.id == d.subscriber_id))


class OutboxReads(StoreBase):
    """Read-only questions `digest status`, `digest outbox` and `subscribers show` ask of the editions
    and the outbox. Kept apart from EditionStore, which the send path writes through."""

    def newest_edition(self, timezone: str) -> EditionRecord | None:
        """The zone's edition of the latest day. Not `last_edition` (the latest cut-off): `digest
        send --date` of an earlier day builds an edition after a later one, and the later one is
        still the newest the readers have."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.editions)
                .where(t.editions.c.timezone == timezone)
                .order_by(t.editions.c.day.desc(), t.editions.c.cutoff.desc())
                .limit(1)
            ).first()
        return _edition(row) if row else None

    def editions_on(self, day: date) -> list[EditionRecord]:
        """Every time zone's edition of `day`."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.editions).where(t.editions.c.day == day).order_by(t.editions.c.timezone)).all()
        return [_edition(r) for r in rows]

    def outbox_entries(
        self, edition_id: int, *, statuses: Sequence[str] | None = None, after: int = 0, limit: int = 1000
    ) -> list[OutboxEntry]:
        """The edition's rows in `statuses` (None: all), in id order from after `after`: callers page
        through an edition of millions of rows `limit` at a time."""
        d = t.deliveries.c
        query = _entries().where(d.edition_id == edition_id, d.id > after).order_by(d.id).limit(limit)
        if statuses is not None:
            query = query.where(d.status.in_(tuple(statuses)))
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(query)]

    def next_retry(self, edition_id: int) -> tuple[int, datetime | None]:
        """How many of the edition's rows are pending, and the earliest retry time among them (None
        when one has none: it is due as soon as a sender comes, or when none is pending)."""
        d = t.deliveries.c
        with self.engine.connect() as conn:
            n, unset, earliest = conn.execute(
                select(
                    func.count(),
                    func.count() - func.count(d.next_attempt_at),
                    func.min(d.next_attempt_at),
                ).where(d.edition_id == edition_id, d.status == PENDING)
            ).one()
        return int(n or 0), None if unset else earliest

    def last_delivery_error(self) -> OutboxEntry | None:
        """The newest error recorded on a row still unsent (pending, held, or failed): what the SMTP
        server (or the message's making) last said. A sent row keeps the error of its retry, which
        no longer matters."""
        d = t.deliveries.c
        query = (
            _entries()
            .where(d.last_error.is_not(None), d.status.in_((*_UNFINISHED, FAILED)))
            .order_by(d.updated_at.desc(), d.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _entry(row) if row else None

    def subscriber_outbox(self, subscriber_id: int, *, statuses: Sequence[str], limit: int = 5) -> list[OutboxEntry]:
        """The subscriber's rows in `statuses`, the latest change first."""
        d = t.deliveries.c
        query = (
            _entries()
            .where(d.subscriber_id == subscriber_id, d.status.in_(tuple(statuses)))
            .order_by(d.updated_at.desc(), d.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_entry(r) for r in conn.execute(query)]
