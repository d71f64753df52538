"""Feeds and their items: what the poller writes and compose reads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, func, insert, or_, select, update

from digest.errors import FeedError
from digest.model import Feed, FeedSpec, Item, ParsedItem
from digest.store import schema as t
from digest.store.base import StoreBase


def _feed(row: Row[Any]) -> Feed:
    return Feed(
        id=row.id, url=row.url, name=row.name, section=row.section, active=row.active, etag=row.etag,
        last_modified=row.last_modified, body_hash=row.body_hash, last_status=row.last_status,
        last_error=row.last_error, last_polled_at=row.last_polled_at, next_poll_at=row.next_poll_at,
        consecutive_failures=row.consecutive_failures, interval_minutes=row.interval_minutes, title=row.title,
    )


_ITEM_COLUMNS = (
    t.items.c.id, t.items.c.feed_id, t.items.c.title, t.items.c.url, t.items.c.summary_html,
    t.items.c.summary_text, t.items.c.published, t.items.c.first_seen, t.items.c.categories,
    t.items.c.image_url, t.feeds.c.name.label("feed_name"), t.feeds.c.title.label("feed_title"),
    t.feeds.c.url.label("feed_url"), t.feeds.c.section.label("feed_section"),
)


def _item(row: Row[Any]) -> Item:
    return Item(
        id=row.id, feed_id=row.feed_id, source=row.feed_name or row.feed_title or row.feed_url, title=row.title,
        url=row.url, summary_html=row.summary_html, summary_text=row.summary_text, published=row.published,
        first_seen=row.first_seen, categories=tuple(row.categories or ()), image_url=row.image_url,
        feed_section=row.feed_section,
    )


class FeedStore(StoreBase):
    # ------------------------------------------------------------------ feeds

    def sync_feeds(self, specs: Sequence[FeedSpec], *, now: datetime) -> None:
        """Make the config's feeds present and active; config feeds no longer listed stop polling."""
        with self.engine.begin() as conn:
            listed = set()
            for spec in specs:
                listed.add(spec.url)
                values = {"name": spec.name, "section": spec.section, "interval_minutes": spec.interval_minutes,
                          "from_config": True, "active": True}
                row = conn.execute(select(t.feeds.c.id, t.feeds.c.last_status).where(
                    or_(t.feeds.c.origin_url == spec.url, t.feeds.c.url == spec.url))).first()
                if row is None:
                    conn.execute(insert(t.feeds).values(url=spec.url, origin_url=spec.url, created_at=now, **values))
                else:
                    if row.last_status == 410:
                        values["active"] = False  # gone stays gone until the operator removes and re-adds it
                    conn.execute(update(t.feeds).where(t.feeds.c.id == row.id).values(**values))
            stale = select(t.feeds.c.id).where(t.feeds.c.from_config.is_(True), t.feeds.c.origin_url.not_in(listed))
            conn.execute(update(t.feeds).where(t.feeds.c.id.in_(stale)).values(active=False, from_config=False))

    def add_feed(self, spec: FeedSpec, *, now: datetime) -> Feed:
        with self.engine.begin() as conn:
            row = conn.execute(select(t.feeds).where(
                or_(t.feeds.c.origin_url == spec.url, t.feeds.c.url == spec.url))).first()
            if row is not None and row.active:
                raise FeedError(f"The feed {spec.url} is already in the list.", hint="`digest feeds list` shows it.")
            values = {"name": spec.name, "section": spec.section, "interval_minutes": spec.interval_minutes,
                      "active": True, "consecutive_failures": 0, "last_error": None, "next_poll_at": None}
            if row is None:
                conn.execute(insert(t.feeds).values(url=spec.url, origin_url=spec.url, created_at=now, **values))
            else:
                conn.execute(update(t.feeds).where(t.feeds.c.id == row.id).values(**values))
            new = conn.execute(select(t.feeds).where(t.feeds.c.origin_url == (row.origin_url if row else spec.url)))
            return _feed(new.one())

    def remove_feed(self, url: str) -> bool:
        """Stop polling a feed. Its items stay, because open editions may still reference them."""
        with self.engine.begin() as conn:
            return bool(conn.execute(
                update(t.feeds).where(or_(t.feeds.c.url == url, t.feeds.c.origin_url == url),
                                      t.feeds.c.active.is_(True))
                .values(active=False, from_config=False)).rowcount)

    def list_feeds(self, *, active_only: bool = False) -> list[Feed]:
        query = select(t.feeds).order_by(t.feeds.c.id)
        if active_only:
            query = query.where(t.feeds.c.active.is_(True))
        with self.engine.connect() as conn:
            return [_feed(r) for r in conn.execute(query)]

    def get_feed(self, feed_id: int) -> Feed:
        with self.engine.connect() as conn:
            return _feed(conn.execute(select(t.feeds).where(t.feeds.c.id == feed_id)).one())

    def due_feeds(self, *, now: datetime) -> list[Feed]:
        query = (select(t.feeds).where(t.feeds.c.active.is_(True),
                                       or_(t.feeds.c.next_poll_at.is_(None), t.feeds.c.next_poll_at <= now))
                 .order_by(t.feeds.c.next_poll_at.is_not(None), t.feeds.c.next_poll_at, t.feeds.c.id))
        with self.engine.connect() as conn:
            return [_feed(r) for r in conn.execute(query)]

    def update_feed(self, feed_id: int, **values: Any) -> None:
        """Record fetch state (etag, status, error, next poll, a moved URL...)."""
        with self.engine.begin() as conn:
            conn.execute(update(t.feeds).where(t.feeds.c.id == feed_id).values(**values))

    # ------------------------------------------------------------------ items

    def upsert_items(self, feed_id: int, parsed: Sequence[ParsedItem], *, now: datetime) -> tuple[int, int]:
        """Store a poll's items: new ones get first_seen=now; edited ones update in place.

        Identity within a feed is the item key, then the canonical link: a publisher that changes
        an item's GUID but keeps its link (or adds tracking parameters) edits the same item, so it
        is never sent twice. Returns (new, updated).
        """
        if not parsed:
            return 0, 0
        keys = [p.key for p in parsed]
        urls = [p.url for p in parsed if p.url]
        new = updated = 0
        with self.engine.begin() as conn:
            existing = conn.execute(
                select(t.items.c.id, t.items.c.key, t.items.c.url, t.items.c.content_hash).where(
                    t.items.c.feed_id == feed_id, or_(t.items.c.key.in_(keys), t.items.c.url.in_(urls)))
            ).all()
            by_key = {r.key: r for r in existing}
            by_url = {r.url: r for r in existing if r.url}
            seen: set[int] = set()
            for p in parsed:
                row = by_key.get(p.key) or (by_url.get(p.url) if p.url else None)
                fields = {"url": p.url, "title": p.title, "summary_html": p.summary_html,
                          "summary_text": p.summary_text, "published": p.published,
                          "categories": list(p.categories), "image_url": p.image_url,
                          "content_hash": p.content_hash}
                if row is None:
                    result = conn.execute(insert(t.items).values(feed_id=feed_id, key=p.key, first_seen=now,
                                                                 updated_at=now, **fields))
                    pk = result.inserted_primary_key
                    assert pk is not None
                    seen.add(pk[0])
                    by_key[p.key] = by_url[p.url or ""] = _Stub(pk[0], p.key, p.url, p.content_hash)  # type: ignore[assignment]
                    new += 1
                elif row.id in seen:
                    continue  # the same item twice in one body: keep the first
                else:
                    seen.add(row.id)
                    if row.content_hash != p.content_hash:
                        conn.execute(update(t.items).where(t.items.c.id == row.id).values(updated_at=now, **fields))
                        updated += 1
        return new, updated

    def items_first_seen(self, *, after: datetime | None, until: datetime) -> list[Item]:
        """Items first seen in (after, until]: the candidates of one edition."""
        cond = [t.items.c.first_seen <= until]
        if after is not None:
            cond.append(t.items.c.first_seen > after)
        query = (select(*_ITEM_COLUMNS).select_from(t.items.join(t.feeds)).where(and_(*cond))
                 .order_by(t.items.c.first_seen, t.items.c.id))
        with self.engine.connect() as conn:
            return [_item(r) for r in conn.execute(query)]

    def count_items(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(t.items)) or 0)


class _Stub:
    """A just-inserted item, so a duplicate later in the same body matches it."""

    __slots__ = ("id", "key", "url", "content_hash")

    def __init__(self, id: int, key: str, url: str | None, content_hash: str) -> None:
        self.id, self.key, self.url, self.content_hash = id, key, url, content_hash
