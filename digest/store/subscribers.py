"""Subscribers: who gets which sections, in which time zone, and whether they still want it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Connection, Row, bindparam, delete, func, insert, select, update

from digest.addresses import address_key
from digest.errors import SubscriberError
from digest.model import Subscriber
from digest.schedule import effective_zone, known_zone
from digest.store import schema as t
from digest.store.base import StoreBase, Unreadable

ACTIVE = "active"
UNSUBSCRIBED = "unsubscribed"
SUSPENDED = "suspended"
PAUSED = "paused"  # the subscriber's own choice on the preferences page; they resume it there
REMOVED = "removed"  # was in the config, no longer is
STATUSES = (ACTIVE, PAUSED, UNSUBSCRIBED, SUSPENDED, REMOVED)

# Who set a field last. The config and the CLI are the operator's declarations; what the subscriber
# chose on the web pages is theirs, and neither the config sync nor the CLI ever overwrites it.
CONFIG = "config"
CLI = "cli"
SUBSCRIBER = "subscriber"
DELIVERY = "delivery"  # suspended after permanent failures
FIELDS = ("name", "sections", "timezone", "status")

LISTED_IN_CONFIG = "listed in digest.toml; remove it there"


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One checked line of a subscriber import."""

    email: str
    name: str | None
    sections: tuple[str, ...] | None
    timezone: str | None
    status: str | None = None  # the status an export wrote; None: active for a new address


# What `import_subscribers` counts (its docstring says what each means).
IMPORT_COUNTS = ("added", "updated", "unchanged", "stopped", "kept")


def address_hash(email: str) -> str:
    """What suppression keeps of an erased address: enough to recognise it, nothing to read it back.

    Frozen: migration 0002 computed the same for existing rows; a new scheme needs a new migration.
    """
    return hashlib.sha256(f"digest-suppression-v1:{address_key(email)}".encode()).hexdigest()


def _subscriber(row: Row[Any] | Row[*tuple[Any, ...]]) -> Subscriber:
    sections = row.sections
    damaged = _damaged_sections(sections)
    return Subscriber(
        id=row.id,
        email=row.email,
        name=row.name if isinstance(row.name, str) else None,
        sections=() if damaged else (tuple(sections) if sections is not None else None),
        timezone=row.timezone if isinstance(row.timezone, str) else None,
        status=row.status,
        permanent_failures=row.permanent_failures,
        public_id=row.public_id,
        damaged=damaged,
    )


# What `_subscriber` reads: not the row's timestamps, which no reader of a Subscriber needs (and a
# damaged one would stop the read of every row with it).
_SUBSCRIBER_COLUMNS = (
    t.subscribers.c.id,
    t.subscribers.c.email,
    t.subscribers.c.name,
    t.subscribers.c.sections,
    t.subscribers.c.timezone,
    t.subscribers.c.status,
    t.subscribers.c.permanent_failures,
    t.subscribers.c.public_id,
)


# What the store's own reads of a row take: every column but the timestamps, for the same reason.
_ROW_COLUMNS = tuple(c for c in t.subscribers.c if c.name not in ("created_at", "updated_at", "bounce_score_at"))


def _damaged_sections(value: Any) -> str | None:
    """Why a stored `sections` value is not a subscriber's choice (None: null, or a list of names).

    Only a hand edit or a damaged file makes one, and nobody can tell what the subscriber chose:
    their message fails, reported, rather than carrying sections they did not pick."""
    if value is None or (isinstance(value, list) and all(isinstance(s, str) for s in value)):
        return None
    shown = str(value) if isinstance(value, Unreadable) else json.dumps(value, ensure_ascii=False)
    if len(shown) > 60:
        shown = shown[:59] + "…"
    what = "not JSON" if isinstance(value, Unreadable) else "not a list of section names"
    return f"the sections stored for them are {what} ({shown})"


def _suppressed(conn: Connection, email: str) -> str | None:
    """'unsubscribed' or 'failed' for an address that must never be mailed again; None otherwise."""
    return conn.scalar(select(t.suppressions.c.reason).where(t.suppressions.c.email_hash == address_hash(email)))


def _id_and_status(conn: Connection, email: str) -> Row[Any, Any] | None:
    """A subscriber's row id and status by their address, in any case (the operator's commands)."""
    return conn.execute(select(t.subscribers.c.id, t.subscribers.c.status).where(_is_address(email))).first()


def _is_address(email: str) -> ColumnElement[bool]:
    """The row of `email` however its letters are cased (`address_key`)."""
    return t.subscribers.c.email_key == address_key(email)


def _new_address(email: str) -> dict[str, str]:
    """A new row's address: as written (RFC 5321: its local part may be case-sensitive), and its key."""
    return {"email": email.strip(), "email_key": address_key(email)}


def _suppress(conn: Connection, email: str, reason: str, now: datetime) -> None:
    """Suppress the address (its first reason and time are kept), and spend every sign-up link
    issued before this stop: only a sign-up made after it brings the address back (U7)."""
    digest = address_hash(email)
    if _suppressed(conn, email) is None:
        conn.execute(
            insert(t.suppressions).values(email_hash=digest, reason=reason, created_at=now, signups_spent_at=now)
        )
    else:
        spend_signups(conn, digest, now)


def spend_signups(conn: Connection, digest: str, now: datetime) -> None:
    """A suppressed address stopped again (an unsubscribe after a failure, an erasure): sign-up
    links issued before `now` are spent."""
    s = t.suppressions.c
    conn.execute(
        update(t.suppressions)
        .where(s.email_hash == digest, (s.signups_spent_at.is_(None)) | (s.signups_spent_at < now))
        .values(signups_spent_at=now)
    )


# Why an address is suppressed (suppressions.reason), as the CLI tells an operator who tries to add it.
ERASED = "erased"  # `digest subscribers remove` of an address that had not unsubscribed or failed (U11, G10)
_WHY = {
    "unsubscribed": "unsubscribed",
    "failed": "failed permanently",
    "bounced": "bounced",
    "complained": "reported a digest as spam",
    ERASED: "was erased",
}


# An import's status that stops the mail of an address -> the suppression it gets, as if it had
# happened here: an export says "suspended" for a failed, bounced or complained address alike.
_STOPPED_AS = {UNSUBSCRIBED: "unsubscribed", SUSPENDED: "failed"}


def _suppressed_status(reason: str) -> dict[str, Any]:
    # An erased address listed again is as one that unsubscribed: the person's to bring back.
    return (
        {"status": UNSUBSCRIBED, "status_origin": SUBSCRIBER}
        if reason in ("unsubscribed", ERASED)
        else {"status": SUSPENDED, "status_origin": DELIVERY}
    )


def _declared(row: Row[Any] | None, values: dict[str, Any], origin: str) -> dict[str, Any]:
    """The operator's values (config, CLI, import) minus the fields the subscriber set themselves."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        # ... but for sections the database can no longer read: nobody can tell what the subscriber
        # chose, and the operator's value is how the row is mended.
        if (
            name in FIELDS
            and row is not None
            and getattr(row, f"{name}_origin") == SUBSCRIBER
            and not (name == "sections" and _damaged_sections(row.sections))
        ):
            continue
        out[name] = value
        if name in FIELDS:
            out[f"{name}_origin"] = origin
    return out


class ListedSubscriber(Protocol):
    """A subscriber the config lists (`config.SubscriberSpec`; the store does not import the config)."""

    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def sections(self) -> tuple[str, ...] | None: ...
    @property
    def timezone(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Choices:
    """What a subscriber picks on the preferences page."""

    sections: tuple[str, ...] | None  # None: all sections, those added later included
    timezone: str | None  # None: the site's zone ([digest].timezone), following it if it changes


@dataclass(frozen=True, slots=True)
class SubscriberOrigins:
    """`digest subscribers show`: the subscriber, who set each field, and whether the config lists them."""

    subscriber: Subscriber
    origins: dict[str, str]
    from_config: bool


class SubscriberStore(StoreBase):
    def sync_subscribers(self, specs: Sequence[ListedSubscriber], *, now: datetime) -> int:
        """Config subscribers become present. The config sets only what the subscriber has not set
        (sections, time zone, unsubscribing); an address that unsubscribed stays suppressed. One
        deleted from the config becomes `removed`, unless their subscription is their own (status
        set by the subscriber: a confirmed sign-up, a resume): returns how many of those stay active."""
        with self.engine.begin() as conn:
            listed = set()
            for spec in specs:
                email = spec.email
                listed.add(address_key(email))
                values = {
                    "name": spec.name,
                    "sections": list(spec.sections) if spec.sections is not None else None,
                    "timezone": spec.timezone,
                }
                row = conn.execute(select(*_ROW_COLUMNS).where(_is_address(email))).first()
                if row is None:
                    reason = _suppressed(conn, email)
                    fields = _declared(None, {**values, "status": ACTIVE}, CONFIG)
                    fields.update(_suppressed_status(reason) if reason else {})
                    conn.execute(
                        insert(t.subscribers).values(
                            **_new_address(email), created_at=now, updated_at=now, from_config=True, **fields
                        )
                    )
                    continue
                changes = _declared(row, values, CONFIG)
                if row.status == REMOVED:  # listed again after the operator had dropped them
                    changes.update(status=ACTIVE, status_origin=CONFIG)
                if any(getattr(row, k) != v for k, v in changes.items()) or not row.from_config:
                    conn.execute(
                        update(t.subscribers)
                        .where(t.subscribers.c.id == row.id)
                        .values(from_config=True, updated_at=now, **changes)
                    )
            dropped = t.subscribers.c.from_config.is_(True) & t.subscribers.c.email_key.not_in(listed)
            # Only those whose subscription is still the operator's word stop. One who signed up and
            # confirmed, or resumed the emails, on the web pages said themselves that they want them:
            # deleting the config line the operator had written for them does not take that back
            # (they are then managed like any other subscriber; `remove` erases them on request).
            theirs = t.subscribers.c.status_origin == SUBSCRIBER
            kept = conn.scalar(select(func.count()).where(dropped, t.subscribers.c.status == ACTIVE, theirs))
            conn.execute(
                update(t.subscribers)
                .where(dropped, t.subscribers.c.status == ACTIVE, ~theirs)
                .values(status=REMOVED, status_origin=CONFIG, updated_at=now)
            )
            conn.execute(update(t.subscribers).where(dropped).values(from_config=False, updated_at=now))
        return int(kept or 0)

    def add_subscriber(
        self, email: str, *, name: str | None, sections: Sequence[str] | None, timezone: str | None, now: datetime
    ) -> Subscriber:
        email = email.strip()
        with self.engine.begin() as conn:
            row = conn.execute(select(*_ROW_COLUMNS).where(_is_address(email))).first()
            values = {
                "name": name,
                "sections": list(sections) if sections is not None else None,
                "timezone": timezone,
                "status": ACTIVE,
            }
            reason = _suppressed(conn, email)
            if reason is not None or (row is not None and row.status in (UNSUBSCRIBED, SUSPENDED)):
                if reason is None:
                    reason = "failed" if row is not None and row.status == SUSPENDED else "unsubscribed"
                why = _WHY.get(reason, reason)
                if reason in ("failed", "bounced") and row is not None and row.status == SUSPENDED:
                    raise SubscriberError(
                        f"{email} {why}; it is suspended, and `add` does not lift that.",
                        hint=f"Once the mailbox works again: `digest subscribers reinstate {email}`.",
                    )
                raise SubscriberError(
                    f"{email} {why}; digest never mails that address again, and the CLI cannot add it back.",
                    hint="Only the subscriber can lift this, by signing up again themselves.",
                )
            if row is not None and row.status == PAUSED:
                raise SubscriberError(
                    f"{email} is subscribed and has paused the emails themselves.",
                    hint="Only the subscriber resumes them, on their preferences page.",
                )
            if row is not None and row.status == ACTIVE:
                raise SubscriberError(
                    f"{email} is already subscribed.", hint="`digest subscribers list` shows every subscriber."
                )
            if row is None:
                conn.execute(
                    insert(t.subscribers).values(
                        **_new_address(email), created_at=now, updated_at=now, **_declared(None, values, CLI)
                    )
                )
            else:  # dropped from the config earlier: the operator takes it up again
                conn.execute(
                    update(t.subscribers)
                    .where(t.subscribers.c.id == row.id)
                    .values(permanent_failures=0, updated_at=now, **_declared(row, values, CLI))
                )
            return _subscriber(conn.execute(select(*_ROW_COLUMNS).where(_is_address(email))).one())

    def import_subscribers(self, rows: Sequence[ImportRow], *, now: datetime) -> dict[str, int]:
        """A whole CSV import in one transaction: every row or none (a failure or a kill -9 part way
        leaves the table as it was). Fields the subscriber set themselves are kept, as with the
        config and the CLI. Counts (`IMPORT_COUNTS`):

        - added: a new address, active, paused or removed as the row says (active when it says nothing);
        - updated: name, sections or time zone changed;
        - unchanged: already as in the row (or as the subscriber set it);
        - stopped: unsubscribed or suspended as the row says, a new address or one that was active,
          paused or removed here: whoever unsubscribed where the list came from is never mailed
          here either (G10), and the address is suppressed as if it had happened here;
        - kept: unsubscribed, suspended or erased here, left as it is whatever the row says: an
          import never re-subscribes anyone (G10), and an erased address stays a hash (U11).

        Bulk statements (executemany for inserts and for updates) instead of a transaction per row:
        200,000 rows took minutes the old way (bench/import.py)."""
        latest: dict[str, ImportRow] = {}
        for row in rows:  # the CLI refuses an address listed twice; here its last line wins
            if row.status is not None and row.status not in STATUSES:
                raise ValueError(f"unknown subscriber status {row.status!r}")
            latest[address_key(row.email)] = row
        counts = dict.fromkeys(IMPORT_COUNTS, 0)
        s = t.subscribers
        with self.engine.begin() as conn:
            existing: dict[str, Row[Any]] = {}
            suppressed: set[str] = set()
            keys = list(latest)
            for start in range(0, len(keys), 500):  # stay under every database's bound-parameter cap
                chunk = keys[start : start + 500]
                existing.update((r.email_key, r) for r in conn.execute(select(s).where(s.c.email_key.in_(chunk))))
                hashes = [address_hash(e) for e in chunk]
                suppressed.update(
                    conn.scalars(select(t.suppressions.c.email_hash).where(t.suppressions.c.email_hash.in_(hashes)))
                )
            inserts: list[dict[str, Any]] = []
            updates: dict[frozenset[str], list[dict[str, Any]]] = {}  # executemany needs one set of keys
            suppressions: list[dict[str, Any]] = []
            for key, row in latest.items():
                email, found = row.email, existing.get(key)
                if (found is None and address_hash(email) in suppressed) or (
                    found is not None and found.status in (UNSUBSCRIBED, SUSPENDED)
                ):
                    counts["kept"] += 1
                    continue
                values = {
                    "name": row.name,
                    "sections": list(row.sections) if row.sections is not None else None,
                    "timezone": row.timezone,
                }
                stop = _STOPPED_AS.get(row.status or ACTIVE)
                if stop is not None and address_hash(email) not in suppressed:
                    suppressions.append(
                        {"email_hash": address_hash(email), "reason": stop, "created_at": now, "signups_spent_at": now}
                    )
                if found is None:
                    fields = _declared(None, {**values, "status": row.status or ACTIVE}, CLI)
                    if stop is not None or row.status == PAUSED:
                        # As it came about where the list was made: the person unsubscribed or
                        # paused (so only they resume), or delivery failed.
                        fields.update(_suppressed_status(stop) if stop else {"status_origin": SUBSCRIBER})
                    inserts.append({**_new_address(email), "created_at": now, "updated_at": now, **fields})
                    counts["stopped" if stop else "added"] += 1
                    continue
                change = _declared(found, values, CLI)
                if stop is not None:  # over a pause too: an unsubscribe or a failing address outweighs it
                    change.update(_suppressed_status(stop))
                    counts["stopped"] += 1
                elif any(getattr(found, k) != v for k, v in change.items() if k in FIELDS):
                    counts["updated"] += 1
                else:
                    counts["unchanged"] += 1
                    continue
                change.update(b_id=found.id, updated_at=now)
                updates.setdefault(frozenset(change), []).append(change)
            if inserts:
                conn.execute(insert(s), inserts)
            for group in updates.values():
                conn.execute(update(s).where(s.c.id == bindparam("b_id")), group)
            if suppressions:
                conn.execute(insert(t.suppressions), suppressions)
        return counts

    def remove_subscriber(self, email: str, *, now: datetime | None = None) -> bool:
        """Erase a subscriber and their outbox rows (the address is personal data); False when absent.

        A subscriber the config lists is refused: the next sync would bring them back. The address
        keeps only its hash in suppressions, whatever its state (unsubscribed, failed, or `ERASED`),
        so no import, config entry or command mails it again; the person may sign up again.
        """
        email = email.strip()
        with self.engine.begin() as conn:
            # updated_at: when an address that unsubscribed did, which its suppression keeps
            row = conn.execute(select(*_ROW_COLUMNS, t.subscribers.c.updated_at).where(_is_address(email))).first()
            if row is None:
                return False
            if row.from_config:
                raise SubscriberError(
                    f"{email} is {LISTED_IN_CONFIG}.",
                    hint="Delete its [[subscribers]] entry from the config; "
                    "then `digest subscribers remove` erases it for good.",
                )
            if row.status in (UNSUBSCRIBED, SUSPENDED):
                _suppress(
                    conn, email, "unsubscribed" if row.status == UNSUBSCRIBED else "failed", now or row.updated_at
                )
            else:
                # Erased at someone's request, or by mistake: either way no import, config entry or
                # command may mail the address again on the operator's word (G10, U11). Only its
                # hash stays; the person comes back by signing up and confirming.
                _suppress(conn, email, ERASED, now or datetime.now(UTC))
            # Every confirmation link issued before the erasure is spent, a used one too: with the
            # row gone, only the suppression can say so (U7). A new sign-up still comes back.
            spend_signups(conn, address_hash(email), now or datetime.now(UTC))
            return bool(conn.execute(delete(t.subscribers).where(t.subscribers.c.id == row.id)).rowcount)

    def unsubscribe_on_request(self, email: str, *, now: datetime) -> str | None:
        """The operator unsubscribes an address because its owner asked (a mail to [smtp]
        unsubscribe_mailto, a letter): as a one-click unsubscribe does, but recorded as the
        operator's act (status set by `cli`). Their sections, time zone and name stay; the address is
        suppressed as one that unsubscribed, so only their own confirmed sign-up mails it again.

        What it found: "unsubscribed" now (active, paused, removed, or
        suspended: a request outweighs a failing mailbox), "already" unsubscribed (nothing changes),
        "erased" (only the suppressed hash is left: nothing is sent to it), None (not here at all)."""
        with self.engine.begin() as conn:
            row = _id_and_status(conn, email)
            if row is None:
                return "erased" if _suppressed(conn, email) is not None else None
            if row.status == UNSUBSCRIBED:
                return "already"
            _suppress(conn, email, "unsubscribed", now)  # a suspended address keeps its first reason
            conn.execute(
                update(t.subscribers)
                .where(t.subscribers.c.id == row.id)
                .values(status=UNSUBSCRIBED, status_origin=CLI, updated_at=now)
            )
            return "unsubscribed"

    def reinstate(self, email: str, *, now: datetime) -> str | None:
        """Lift a suspension that deliveries caused (strikes, a hard or repeated soft bounce), at the
        operator's word that the mailbox works again: the subscriber is active (status set by `cli`),
        their strikes and bounce score are cleared, and the address is no longer suppressed. Never
        what the subscriber chose: an unsubscribe or a spam complaint stays, as does an erasure.

        What it found: "reinstated"; "complained" (a spam report suppresses the address: only their
        own sign-up lifts it); the subscriber's status when it is not a suspension ("active",
        "unsubscribed", ...); "erased"; None (not here at all)."""
        with self.engine.begin() as conn:
            row = _id_and_status(conn, email)
            if row is None:
                return "erased" if _suppressed(conn, email) is not None else None
            if row.status != SUSPENDED:
                return str(row.status)
            reason = _suppressed(conn, email)
            if reason in ("complained", "unsubscribed"):
                return str(reason)
            conn.execute(delete(t.suppressions).where(t.suppressions.c.email_hash == address_hash(email)))
            conn.execute(
                update(t.subscribers)
                .where(t.subscribers.c.id == row.id)
                .values(
                    status=ACTIVE,
                    status_origin=CLI,
                    permanent_failures=0,
                    bounce_score=0.0,
                    bounce_score_at=None,
                    updated_at=now,
                )
            )
            return "reinstated"

    def subscriber_origins(self, email: str) -> SubscriberOrigins | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*_ROW_COLUMNS).where(_is_address(email))).first()
        if row is None:
            return None
        return SubscriberOrigins(
            _subscriber(row), {f: getattr(row, f"{f}_origin") for f in FIELDS}, bool(row.from_config)
        )

    def get_subscriber(
        self, *, email: str | None = None, id: int | None = None, public_id: str | None = None
    ) -> Subscriber | None:
        query = select(*_SUBSCRIBER_COLUMNS)
        if email is not None:
            query = query.where(_is_address(email))
        elif public_id is not None:
            query = query.where(t.subscribers.c.public_id == public_id)
        else:
            query = query.where(t.subscribers.c.id == id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _subscriber(row) if row else None

    def list_subscribers(self, *, status: str | None = None) -> list[Subscriber]:
        query = select(*_SUBSCRIBER_COLUMNS).order_by(t.subscribers.c.id)
        if status is not None:
            query = query.where(t.subscribers.c.status == status)
        with self.engine.connect() as conn:
            return [_subscriber(r) for r in conn.execute(query)]

    def iter_subscribers(self, *, status: str = ACTIVE, batch: int = 2000) -> Iterator[Subscriber]:
        """Stream subscribers in id order, a batch at a time, so memory stays flat for 100k."""
        last = 0
        while True:
            query = (
                select(*_SUBSCRIBER_COLUMNS)
                .where(t.subscribers.c.status == status, t.subscribers.c.id > last)
                .order_by(t.subscribers.c.id)
                .limit(batch)
            )
            with self.engine.connect() as conn:
                rows = [_subscriber(r) for r in conn.execute(query)]
            yield from rows
            if len(rows) < batch:
                return
            last = rows[-1].id

    def subscriber_counts(self) -> dict[str, int]:
        """How many subscribers have each status (for /metrics)."""
        with self.engine.connect() as conn:
            return {
                str(status): int(n)
                for status, n in conn.execute(
                    select(t.subscribers.c.status, func.count()).group_by(t.subscribers.c.status)
                )
            }

    def chosen_sections(self) -> dict[str, int]:
        """Each section name that active or paused subscribers chose -> how many chose it (those
        taking every section, `sections` null, are not counted: they follow whatever is configured)."""
        s = t.subscribers
        counts: dict[str, int] = {}
        query = select(s.c.sections).where(s.c.sections.is_not(None), s.c.status.in_((ACTIVE, PAUSED)))
        with self.engine.connect() as conn:
            for sections in conn.scalars(query.execution_options(yield_per=2000)):
                if _damaged_sections(sections):
                    continue  # `damaged_subscribers` reports them
                for name in set(sections or ()):
                    counts[name] = counts.get(name, 0) + 1
        return counts

    def rename_chosen_sections(self, renames: Sequence[tuple[str, str]], *, now: datetime) -> int:
        """Subscribers' chosen sections under a former name take the section's name now (pairs of
        (former, current), from [[sections]] formerly), whoever set them: the section is the same,
        only its name changed. Returns how many subscribers changed. One transaction: all or none."""
        if not renames:
            return 0
        new_name = dict(renames)
        s = t.subscribers
        changes: list[dict[str, Any]] = []
        with self.engine.begin() as conn:
            for sub_id, sections in conn.execute(select(s.c.id, s.c.sections).where(s.c.sections.is_not(None))):
                if sections and not _damaged_sections(sections) and not new_name.keys().isdisjoint(sections):
                    renamed = list(dict.fromkeys(new_name.get(name, name) for name in sections))
                    changes.append({"row_id": sub_id, "sections": renamed})
            if changes:
                conn.execute(
                    update(s)
                    .where(s.c.id == bindparam("row_id"))
                    .values(sections=bindparam("sections"), updated_at=now),
                    changes,
                )
        return len(changes)

    def timezones_in_use(self, default_timezone: str) -> list[str]:
        """The distinct effective time zones of active subscribers (`schedule.effective_zone`): one
        edition each per day."""
        tz = func.coalesce(t.subscribers.c.timezone, default_timezone)
        with self.engine.connect() as conn:
            zones = conn.scalars(select(tz).where(t.subscribers.c.status == ACTIVE).distinct())
            return sorted({effective_zone(zone, default_timezone) for zone in zones})

    def unknown_timezones(self) -> dict[str, int]:
        """The stored time zones of active subscribers that this machine's tz database does not have
        (`schedule.known_zone`) -> how many subscribers: those get the site zone's edition."""
        zone = t.subscribers.c.timezone
        query = select(zone, func.count()).where(t.subscribers.c.status == ACTIVE, zone.is_not(None)).group_by(zone)
        with self.engine.connect() as conn:
            return {z: int(n) for z, n in conn.execute(query) if not known_zone(z)}

    def damaged_subscribers(self) -> list[tuple[str, str]]:
        """(email, what cannot be read) of the active and paused subscribers whose stored sections
        are not a choice (`_damaged_sections`): their messages fail until the row is mended."""
        s = t.subscribers
        query = select(s.c.email, s.c.sections).where(s.c.sections.is_not(None), s.c.status.in_((ACTIVE, PAUSED)))
        found: list[tuple[str, str]] = []
        with self.engine.connect() as conn:
            for email, sections in conn.execute(query.order_by(s.c.id).execution_options(yield_per=2000)):
                if why := _damaged_sections(sections):
                    found.append((email, why))
        return found

    def set_status(self, subscriber_id: int, status: str, *, now: datetime, origin: str = SUBSCRIBER) -> None:
        """Pause, resume or unsubscribe; by default as the subscriber's own choice (the web app), which
        the config and the CLI then leave alone. Unsubscribing suppresses the address."""
        if status not in (ACTIVE, PAUSED, UNSUBSCRIBED, SUSPENDED):
            raise ValueError(f"unknown subscriber status {status!r}")
        with self.engine.begin() as conn:
            if status == UNSUBSCRIBED:
                email = conn.scalar(select(t.subscribers.c.email).where(t.subscribers.c.id == subscriber_id))
                if email is not None:
                    _suppress(conn, email, "unsubscribed", now)
            conn.execute(
                update(t.subscribers)
                .where(t.subscribers.c.id == subscriber_id)
                .values(updated_at=now, status=status, status_origin=origin)
            )

    def set_choices(
        self,
        subscriber_id: int,
        choices: Choices,
        *,
        now: datetime,
        origin: str = SUBSCRIBER,
        fields: Sequence[str] = ("sections", "timezone"),
    ) -> None:
        """Save the sections and time zone a subscriber chose on the preferences page. Only
        `fields` (those they changed) are written, and those become theirs, so no config sync or
        CLI command puts the operator's values back; a field they left alone stays the operator's."""
        values: dict[str, Any] = {}
        if "sections" in fields:
            sections = None if choices.sections is None else list(choices.sections)
            values.update(sections=sections, sections_origin=origin)
        if "timezone" in fields:
            values.update(timezone=choices.timezone, timezone_origin=origin)
        if not values:
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(t.subscribers).where(t.subscribers.c.id == subscriber_id).values(updated_at=now, **values)
            )

    def count_permanent_failure(self, subscriber_id: int, *, suspend_after: int, now: datetime) -> bool:
        """Count a 5xx against the subscriber; True when that suspended them."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t.subscribers)
                .where(t.subscribers.c.id == subscriber_id)
                .values(permanent_failures=t.subscribers.c.permanent_failures + 1, updated_at=now)
            )
            suspended = bool(
                conn.execute(
                    update(t.subscribers)
                    .where(
                        t.subscribers.c.id == subscriber_id,
                        t.subscribers.c.status == ACTIVE,
                        t.subscribers.c.permanent_failures >= suspend_after,
                    )
                    .values(status=SUSPENDED, status_origin=DELIVERY)
                ).rowcount
            )
            email = conn.scalar(select(t.subscribers.c.email).where(t.subscribers.c.id == subscriber_id))
            if suspended and email is not None:
                _suppress(conn, email, "failed", now)
            return suspended
