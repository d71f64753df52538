"""poll: config -> fetch -> parse -> store. One bad feed never stops the others.

Per-feed outcomes are recorded on the feed (status, error, next poll) as Miniflux and rss2email do:
304 and a byte-identical 200 cost no parse; 301/308 move the feed for good, 302/307 do not;
410 disables it; failures back off exponentially (honouring Retry-After) up to a cap.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from digest.config import Settings
from digest.errors import ParseError
from digest.fetch import Fetcher, FetchResult
from digest.model import Feed, PollResult
from digest.parsepool import ParserPool
from digest.store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAX_BACKOFF = timedelta(hours=24)


def next_poll_after(interval: timedelta, failures: int, retry_after: float | None) -> timedelta:
    """How long until the next poll: the interval, doubled per consecutive failure, capped, jittered.

    Jitter (up to 10%) spreads feeds that were added together so they are not polled in bursts.
    """
    delay = min(interval * (2 ** min(failures, 16)), MAX_BACKOFF) if failures else interval
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    return delay + delay * random.uniform(0, 0.1)


def _interval(settings: Settings, feed: Feed) -> timedelta:
    return timedelta(minutes=feed.interval_minutes) if feed.interval_minutes else settings.digest.poll_interval


async def poll_feed(feed: Feed, *, settings: Settings, store: Store, fetcher: Fetcher, parser: ParserPool,
                    clock: Clock) -> PollResult:
    result = await fetcher.fetch(feed.url, etag=feed.etag, last_modified=feed.last_modified)
    now = clock()
    update: dict[str, Any] = {"last_polled_at": now, "last_status": result.status}
    outcome = await _apply(feed, result, settings=settings, store=store, parser=parser, now=now, update=update)
    failures = feed.consecutive_failures + 1 if outcome.error else 0
    update["consecutive_failures"] = failures
    update["last_error"] = outcome.error
    update["next_poll_at"] = now + next_poll_after(_interval(settings, feed), failures, result.retry_after)
    await asyncio.to_thread(_save_feed_state, store, feed, update, result)
    log.info("feed=%s status=%s new=%d updated=%d%s", feed.url, result.status, outcome.new_items,
             outcome.updated_items, f" error={outcome.error!r}" if outcome.error else "")
    return outcome


def _save_feed_state(store: Store, feed: Feed, update: dict[str, Any], result: FetchResult) -> None:
    if result.permanent_url and result.permanent_url != feed.url:
        try:
            store.update_feed(feed.id, url=result.permanent_url, **update)
            log.info("feed=%s moved permanently to %s", feed.url, result.permanent_url)
            return
        except IntegrityError:  # another feed already has that URL; keep polling the old one
            log.warning("feed=%s moved to %s, which is already another feed", feed.url, result.permanent_url)
    store.update_feed(feed.id, **update)


async def _apply(feed: Feed, result: FetchResult, *, settings: Settings, store: Store, parser: ParserPool,
                 now: datetime, update: dict[str, Any]) -> PollResult:
    if result.gone:
        update["active"] = False
        return PollResult(feed.url, result.status, error="410 Gone: the publisher removed this feed; polling stopped.")
    if result.error:
        return PollResult(feed.url, result.status, error=result.error)
    if result.not_modified:
        return PollResult(feed.url, result.status, not_modified=True)
    body = result.body or b""
    update["etag"] = result.etag
    update["last_modified"] = result.last_modified
    body_hash = hashlib.sha256(body).hexdigest()
    if body_hash == feed.body_hash:  # a server that ignores conditional GET: same bytes, no parse
        return PollResult(feed.url, result.status, not_modified=True)
    try:
        parsed = await parser.parse(body, url=result.final_url, content_type=result.content_type, now=now,
                                    excerpt_chars=settings.digest.excerpt_chars)
    except ParseError as exc:
        return PollResult(feed.url, result.status, error=exc.message)
    new, updated = await asyncio.to_thread(store.upsert_items, feed.id, parsed.items, now=now)
    # Only now that the items are stored: a crash before this re-parses the body next time.
    update["body_hash"] = body_hash
    if parsed.title:
        update["title"] = parsed.title
    return PollResult(feed.url, result.status, new_items=new, updated_items=updated)


async def poll_feeds(feeds: Sequence[Feed], *, settings: Settings, store: Store, clock: Clock,
                     fetcher: Fetcher, parser: ParserPool,
                     on_result: Callable[[PollResult], None] | None = None) -> list[PollResult]:
    """Poll the given feeds concurrently (the fetcher bounds concurrency globally and per host)."""

    async def one(feed: Feed) -> PollResult:
        try:
            res = await poll_feed(feed, settings=settings, store=store, fetcher=fetcher, parser=parser, clock=clock)
        except Exception as exc:  # a bug in one feed's path must not stop the poll (C10)
            log.exception("feed=%s failed unexpectedly", feed.url)
            res = PollResult(feed.url, None, error=f"internal error: {exc.__class__.__name__}: {exc}")
        if on_result:
            on_result(res)
        return res

    return list(await asyncio.gather(*(one(f) for f in feeds)))


async def poll_once(*, settings: Settings, store: Store, clock: Clock, due_only: bool = False,
                    parser: ParserPool | None = None,
                    on_result: Callable[[PollResult], None] | None = None) -> list[PollResult]:
    """Poll every active feed once (or only those due), with a fresh fetcher."""
    feeds = await asyncio.to_thread(store.due_feeds, now=clock()) if due_only else \
        await asyncio.to_thread(store.list_feeds, active_only=True)
    own_parser = parser is None
    pool = parser or ParserPool()
    try:
        async with Fetcher(settings.fetch, allow_private=settings.digest.allow_private_addresses) as fetcher:
            return await poll_feeds(feeds, settings=settings, store=store, clock=clock, fetcher=fetcher,
                                    parser=pool, on_result=on_result)
    finally:
        if own_parser:
            pool.close()
