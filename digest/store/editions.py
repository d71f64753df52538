"""Editions and the outbox.

An edition is keyed by (local day, time zone) and freezes, when it is built, the items it carries:
those first seen after the previous edition's cut-off up to its own. So every item is in exactly one
edition per time zone, whatever the downtime. The outbox holds one row per (edition, subscriber);
a row becomes `sent` only after the SMTP server accepted the message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from digest.model import Delivery, EditionRecord, Item
from digest.store import schema as t
from digest.store.base import StoreBase
from digest.store.feeds import _ITEM_COLUMNS, _item
from digest.store.subscribers import ACTIVE

PENDING, SENT, FAILED, SKIPPED = "pending", "sent", "failed", "skipped"


def _edition(row: Row[Any]) -> EditionRecord:
    return EditionRecord(id=row.id, day=row.day, timezone=row.timezone, cutoff=row.cutoff,
                         window_start=row.window_start, created_at=row.created_at, status=row.status)


def _delivery(row: Row[Any]) -> Delivery:
    return Delivery(id=row.id, edition_id=row.edition_id, subscriber_id=row.subscriber_id, status=row.status,
                    attempts=row.attempts, last_error=row.last_error, next_attempt_at=row.next_attempt_at,
                    message_id=row.message_id, sent_at=row.sent_at)


class EditionStore(StoreBase):
    def last_edition(self, timezone: str) -> EditionRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.editions).where(t.editions.c.timezone == timezone)
                               .order_by(t.editions.c.cutoff.desc()).limit(1)).first()
        return _edition(row) if row else None

    def get_edition(self, *, day: date | None = None, timezone: str | None = None,
                    id: int | None = None) -> EditionRecord | None:
        query = select(t.editions)
        query = query.where(t.editions.c.id == id) if id is not None else \
            query.where(t.editions.c.day == day, t.editions.c.timezone == timezone)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _edition(row) if row else None

    def list_editions(self, *, status: str | None = None, limit: int = 100) -> list[EditionRecord]:
        query = select(t.editions).order_by(t.editions.c.cutoff.desc()).limit(limit)
        if status:
            query = query.where(t.editions.c.status == status)
        with self.engine.connect() as conn:
            return [_edition(r) for r in conn.execute(query)]

    def create_edition(self, *, day: date, timezone: str, default_timezone: str, cutoff: datetime,
                       now: datetime, max_item_age: timedelta,
                       classify: Callable[[Item], str]) -> tuple[EditionRecord, bool]:
        """Build the edition (day, timezone) once: freeze its items and queue one row per subscriber.

        Returns (edition, created). A second call for the same key, even racing the first from
        another process, returns the existing edition and queues nothing (S7).
        """
        existing = self.get_edition(day=day, timezone=timezone)
        if existing is not None:
            return existing, False
        try:
            with self.engine.begin() as conn:
                prev = conn.execute(select(func.max(t.editions.c.cutoff))
                                    .where(t.editions.c.timezone == timezone)).scalar()
                start = prev  # after a clock step back this window is empty, never doubled
                edition_id = conn.execute(insert(t.editions).values(
                    day=day, timezone=timezone, cutoff=cutoff, window_start=start, created_at=now, status="open")
                ).inserted_primary_key[0]  # type: ignore[index]
                cond = [t.items.c.first_seen <= cutoff]
                if start is not None:
                    cond.append(t.items.c.first_seen > start)
                rows = conn.execute(select(*_ITEM_COLUMNS).select_from(t.items.join(t.feeds))
                                    .where(and_(*cond))).all()
                chosen = [
                    {"edition_id": edition_id, "item_id": item.id, "section": classify(item)}
                    for item in map(_item, rows)
                    # An item already older than max_item_age when we first saw it is not news.
                    if item.published is None or item.first_seen - item.published <= max_item_age
                ]
                if chosen:
                    conn.execute(insert(t.edition_items), chosen)
                tz_of = func.coalesce(t.subscribers.c.timezone, default_timezone)
                conn.execute(insert(t.deliveries).from_select(
                    ["edition_id", "subscriber_id", "status", "attempts", "updated_at"],
                    select(literal(edition_id), t.subscribers.c.id, literal(PENDING), literal(0), literal(now, t.UTCDateTime))
                    .where(t.subscribers.c.status == ACTIVE, tz_of == timezone)
                ))
        except IntegrityError:
            raced = self.get_edition(day=day, timezone=timezone)
            if raced is None:
                raise
            return raced, False
        created = self.get_edition(id=edition_id)
        assert created is not None
        return created, True

    def edition_items(self, edition_id: int) -> list[tuple[Item, str]]:
        query = (select(*_ITEM_COLUMNS, t.edition_items.c.section)
                 .select_from(t.edition_items.join(t.items).join(t.feeds))
                 .where(t.edition_items.c.edition_id == edition_id).order_by(t.items.c.id))
        with self.engine.connect() as conn:
            return [(_item(r), r.section) for r in conn.execute(query)]

    def sent_items(self, *, since: datetime, before_edition: int, timezone: str) -> list[Item]:
        """Items already carried by earlier editions of this time zone (for "Read also")."""
        query = (select(*_ITEM_COLUMNS).select_from(t.edition_items.join(t.items).join(t.feeds)
                                                    .join(t.editions))
                 .where(t.editions.c.timezone == timezone, t.editions.c.id != before_edition,
                        t.editions.c.created_at >= since)
                 .order_by(t.items.c.first_seen))
        with self.engine.connect() as conn:
            return [_item(r) for r in conn.execute(query)]

    # ------------------------------------------------------------------ outbox

    def iter_deliveries(self, edition_id: int, *, now: datetime | None = None,
                        batch: int = 1000) -> Iterator[Delivery]:
        """Pending rows in id order, streamed; with `now`, only those whose retry time has come."""
        last = 0
        while True:
            cond = [t.deliveries.c.edition_id == edition_id, t.deliveries.c.status == PENDING,
                    t.deliveries.c.id > last]
            if now is not None:
                cond.append(or_(t.deliveries.c.next_attempt_at.is_(None), t.deliveries.c.next_attempt_at <= now))
            with self.engine.connect() as conn:
                rows = [_delivery(r) for r in conn.execute(
                    select(t.deliveries).where(*cond).order_by(t.deliveries.c.id).limit(batch))]
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1].id

    def mark_delivery(self, delivery_id: int, *, status: str, now: datetime, message_id: str | None = None,
                      error: str | None = None, next_attempt_at: datetime | None = None,
                      attempted: bool = True) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": now, "next_attempt_at": next_attempt_at}
        if attempted:
            values["attempts"] = t.deliveries.c.attempts + 1
        if message_id is not None:
            values["message_id"] = message_id
        if error is not None:
            values["last_error"] = error[:500]
        if status == SENT:
            values["sent_at"] = now
        with self.engine.begin() as conn:
            # Only a pending row moves: a late duplicate result can never demote a sent one.
            conn.execute(update(t.deliveries).where(t.deliveries.c.id == delivery_id,
                                                    t.deliveries.c.status == PENDING).values(**values))

    def delivery_counts(self, edition_id: int | None = None) -> dict[str, int]:
        query = select(t.deliveries.c.status, func.count()).group_by(t.deliveries.c.status)
        if edition_id is not None:
            query = query.where(t.deliveries.c.edition_id == edition_id)
        with self.engine.connect() as conn:
            return {status: int(n) for status, n in conn.execute(query)}

    def get_delivery(self, edition_id: int, subscriber_id: int) -> Delivery | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.deliveries).where(t.deliveries.c.edition_id == edition_id,
                                                          t.deliveries.c.subscriber_id == subscriber_id)).first()
        return _delivery(row) if row else None

    def close_edition_if_done(self, edition_id: int) -> bool:
        """Mark the edition complete once no row is pending (never before: listmonk#2278)."""
        with self.engine.begin() as conn:
            pending = conn.scalar(select(func.count()).select_from(t.deliveries).where(
                t.deliveries.c.edition_id == edition_id, t.deliveries.c.status == PENDING))
            if pending:
                return False
            conn.execute(update(t.editions).where(t.editions.c.id == edition_id).values(status="complete"))
            return True
