"""Tests' hands on the store, through its production paths: items written as a poll writes them
(`PollWriter`), an edition made the way the send job makes it (`edition_window`, then
`create_edition` with the chosen items), and one sender's claims and results through the
`OutboxSession` every sender uses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

from digest.model import Delivery, EditionItem, EditionRecord, Item, Mark, ParsedItem, PollRecord
from digest.store import Store


def as_stored(
    parsed: ParsedItem,
    *,
    id: int,  # noqa: A002
    feed_id: int,
    source: str,
    first_seen: datetime,
    language: str | None = None,
) -> Item:
    """The `Item` the store gives back for a parsed item, for tests that compose or cluster
    without a database; `language` is the one its feed declares (`ParsedFeed.language`)."""
    return Item(
        id=id,
        feed_id=feed_id,
        source=source,
        title=parsed.title,
        url=parsed.url,
        summary_html=parsed.summary_html,
        summary_text=parsed.summary_text,
        published=parsed.published,
        first_seen=first_seen,
        categories=parsed.categories,
        image_url=parsed.image_url,
        outlet=parsed.outlet,
        language=language,
    )


def store_items(store: Store, feed_id: int, items: Sequence[ParsedItem], *, now: datetime) -> tuple[int, int]:
    """A poll of the feed at `now` that returned these items (200, next poll a day later): (new, updated)."""
    with store.poll_writer() as writer:
        (written,) = writer.record(
            [PollRecord(feed_id, now, 200, 0, None, now + timedelta(days=1), items=tuple(items))]
        )
    return written.new_items, written.updated_items


def new_edition(
    store: Store,
    *,
    day: date,
    cutoff: datetime,
    now: datetime,
    timezone: str = "UTC",
    default_timezone: str = "UTC",
    section: str = "World",
) -> tuple[EditionRecord, bool]:
    """Every item of the window, in one section (what the rules decide is the send job's test)."""
    window = store.edition_window(timezone, until=cutoff)
    return store.create_edition(
        day=day,
        window=window,
        items=[EditionItem(item.id, section) for item in window.items],
        default_timezone=default_timezone,
        now=now,
    )


def claim(
    store: Store,
    edition_id: int,
    worker: str,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    due_only: bool = False,
    since: datetime | None = None,
    suspects: bool = False,
) -> list[Delivery]:
    session = store.outbox_session(worker)
    try:
        return session.claim(
            edition_id, now=now, lease=lease, limit=limit, due_only=due_only, since=since, suspects=suspects
        )
    finally:
        session.close()


def record(store: Store, marks: Sequence[Mark], worker: str, *, now: datetime, on_wire: Sequence[int] = ()) -> int:
    session = store.outbox_session(worker)
    try:
        return session.record(marks, now=now, on_wire=on_wire)
    finally:
        session.close()


def release(store: Store, worker: str, *, now: datetime) -> int:
    session = store.outbox_session(worker)
    try:
        return session.release(now=now)
    finally:
        session.close()
