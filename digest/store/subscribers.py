"""Subscribers: who gets which sections, in which time zone, and whether they still want it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, delete, func, insert, select, update

from digest.errors import SubscriberError
from digest.model import Subscriber
from digest.store import schema as t
from digest.store.base import StoreBase

ACTIVE = "active"
UNSUBSCRIBED = "unsubscribed"
SUSPENDED = "suspended"
REMOVED = "removed"  # was in the config, no longer is


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One checked line of a subscriber import."""

    email: str
    name: str | None
    sections: tuple[str, ...] | None
    timezone: str | None


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _subscriber(row: Row[Any]) -> Subscriber:
    return Subscriber(
        id=row.id, email=row.email, name=row.name,
        sections=tuple(row.sections) if row.sections is not None else None,
        timezone=row.timezone, status=row.status, permanent_failures=row.permanent_failures,
    )


class SubscriberStore(StoreBase):
    def sync_subscribers(self, specs: Sequence[Any], *, now: datetime) -> None:
        """Config subscribers become present; their status is never reset, so an unsubscribe sticks."""
        with self.engine.begin() as conn:
            listed = set()
            for spec in specs:
                email = normalise_email(spec.email)
                listed.add(email)
                values = {"name": spec.name, "sections": list(spec.sections) if spec.sections is not None else None,
                          "timezone": spec.timezone, "from_config": True, "updated_at": now}
                row = conn.execute(select(t.subscribers.c.id, t.subscribers.c.status)
                                   .where(t.subscribers.c.email == email)).first()
                if row is None:
                    conn.execute(insert(t.subscribers).values(email=email, status=ACTIVE, created_at=now, **values))
                else:
                    if row.status == REMOVED:
                        values["status"] = ACTIVE
                    conn.execute(update(t.subscribers).where(t.subscribers.c.id == row.id).values(**values))
            conn.execute(
                update(t.subscribers)
                .where(t.subscribers.c.from_config.is_(True), t.subscribers.c.email.not_in(listed),
                       t.subscribers.c.status == ACTIVE)
                .values(status=REMOVED, updated_at=now)
            )

    def add_subscriber(self, email: str, *, name: str | None, sections: Sequence[str] | None,
                       timezone: str | None, now: datetime) -> Subscriber:
        email = normalise_email(email)
        with self.engine.begin() as conn:
            row = conn.execute(select(t.subscribers).where(t.subscribers.c.email == email)).first()
            values = {"name": name, "sections": list(sections) if sections is not None else None,
                      "timezone": timezone, "updated_at": now}
            if row is not None and row.status == ACTIVE:
                raise SubscriberError(f"{email} is already subscribed.",
                                      hint="`digest subscribers list` shows every subscriber.")
            if row is None:
                conn.execute(insert(t.subscribers).values(email=email, status=ACTIVE, created_at=now, **values))
            else:  # an operator re-adding an address is an explicit re-subscription
                conn.execute(update(t.subscribers).where(t.subscribers.c.id == row.id)
                             .values(status=ACTIVE, permanent_failures=0, **values))
            return _subscriber(conn.execute(select(t.subscribers).where(t.subscribers.c.email == email)).one())

    def import_subscriber(self, email: str, *, name: str | None, sections: Sequence[str] | None,
                          timezone: str | None, now: datetime) -> str:
        """Add or update from an import: 'added', 'updated', or 'unchanged' for an address that
        unsubscribed or was suspended (an import never re-subscribes anyone: G10)."""
        email = normalise_email(email)
        values = {"name": name, "sections": list(sections) if sections is not None else None,
                  "timezone": timezone, "updated_at": now}
        with self.engine.begin() as conn:
            row = conn.execute(select(t.subscribers.c.id, t.subscribers.c.status)
                               .where(t.subscribers.c.email == email)).first()
            if row is None:
                conn.execute(insert(t.subscribers).values(email=email, status=ACTIVE, created_at=now, **values))
                return "added"
            if row.status in (UNSUBSCRIBED, SUSPENDED):
                return "unchanged"
            conn.execute(update(t.subscribers).where(t.subscribers.c.id == row.id).values(**values))
            return "updated"

    def import_subscribers(self, rows: Sequence[ImportRow], *, now: datetime) -> dict[str, int]:
        """A whole CSV import in one transaction: every row or none (a failure or a kill -9 part way
        leaves the table as it was). Counts 'added', 'updated' and 'unchanged', as import_subscriber.

        Bulk statements (one executemany each for inserts and updates) instead of a transaction per
        row: 200,000 rows took minutes the old way (bench/import.py)."""
        latest: dict[str, ImportRow] = {}
        for row in rows:  # an address listed twice: its last line wins
            latest[normalise_email(row.email)] = row
        counts = {"added": 0, "updated": 0, "unchanged": 0}
        s = t.subscribers
        with self.engine.begin() as conn:
            status: dict[str, str] = {}
            emails = list(latest)
            for start in range(0, len(emails), 500):  # stay under every database's bound-parameter cap
                chunk = emails[start:start + 500]
                found = conn.execute(select(s.c.email, s.c.status).where(s.c.email.in_(chunk)))
                status.update((r.email, r.status) for r in found)
            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            for email, row in latest.items():
                values = {"name": row.name, "sections": list(row.sections) if row.sections is not None else None,
                          "timezone": row.timezone, "updated_at": now}
                if email not in status:
                    inserts.append({"email": email, "status": ACTIVE, "created_at": now, **values})
                    counts["added"] += 1
                elif status[email] in (UNSUBSCRIBED, SUSPENDED):  # never re-subscribed by an import (G10)
                    counts["unchanged"] += 1
                else:
                    updates.append({"b_email": email, **values})
                    counts["updated"] += 1
            if inserts:
                conn.execute(insert(s), inserts)
            if updates:
                conn.execute(update(s).where(s.c.email == bindparam("b_email")), updates)
        return counts

    def remove_subscriber(self, email: str) -> bool:
        """Erase a subscriber and their outbox rows (the address is personal data)."""
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(t.subscribers).where(
                t.subscribers.c.email == normalise_email(email))).rowcount)

    def get_subscriber(self, *, email: str | None = None, id: int | None = None) -> Subscriber | None:
        query = select(t.subscribers)
        query = query.where(t.subscribers.c.email == normalise_email(email)) if email is not None \
            else query.where(t.subscribers.c.id == id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _subscriber(row) if row else None

    def list_subscribers(self, *, status: str | None = None) -> list[Subscriber]:
        query = select(t.subscribers).order_by(t.subscribers.c.id)
        if status is not None:
            query = query.where(t.subscribers.c.status == status)
        with self.engine.connect() as conn:
            return [_subscriber(r) for r in conn.execute(query)]

    def iter_subscribers(self, *, status: str = ACTIVE, batch: int = 2000) -> Iterator[Subscriber]:
        """Stream subscribers in id order, a batch at a time, so memory stays flat for 100k."""
        last = 0
        while True:
            query = (select(t.subscribers).where(t.subscribers.c.status == status, t.subscribers.c.id > last)
                     .order_by(t.subscribers.c.id).limit(batch))
            with self.engine.connect() as conn:
                rows = [_subscriber(r) for r in conn.execute(query)]
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1].id

    def timezones_in_use(self, default_timezone: str) -> list[str]:
        """The distinct effective time zones of active subscribers: one edition each per day."""
        tz = func.coalesce(t.subscribers.c.timezone, default_timezone)
        with self.engine.connect() as conn:
            return sorted(conn.scalars(select(tz).where(t.subscribers.c.status == ACTIVE).distinct()))

    def set_subscriber(self, subscriber_id: int, *, now: datetime, **values: Any) -> None:
        """Change status, sections or time zone (from the CLI or the web app)."""
        if "sections" in values and values["sections"] is not None:
            values["sections"] = list(values["sections"])
        with self.engine.begin() as conn:
            conn.execute(update(t.subscribers).where(t.subscribers.c.id == subscriber_id)
                         .values(updated_at=now, **values))

    def count_permanent_failure(self, subscriber_id: int, *, suspend_after: int, now: datetime) -> bool:
        """Count a 5xx against the subscriber; True when that suspended them."""
        with self.engine.begin() as conn:
            conn.execute(update(t.subscribers).where(t.subscribers.c.id == subscriber_id)
                         .values(permanent_failures=t.subscribers.c.permanent_failures + 1, updated_at=now))
            return bool(conn.execute(
                update(t.subscribers)
                .where(t.subscribers.c.id == subscriber_id, t.subscribers.c.status == ACTIVE,
                       t.subscribers.c.permanent_failures >= suspend_after)
                .values(status=SUSPENDED)).rowcount)
