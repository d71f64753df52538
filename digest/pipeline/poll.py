"""The poll job's façade: config -> fetch -> parse -> store. One bad feed never stops the others.

`poll_once` is what the CLI (`digest poll`), the daemon and the demo call. What a poll learnt is
handed to the store as typed `PollRecord`s, written by the store's group-commit `PollRecorder`.

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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from digest.config import Settings
from digest.errors import ParseError
from digest.fetch import Fetcher, FetchResult
from digest.model import Feed, ParsedItem, PollRecord, PollResult
from digest.parsepool import ParserPool
from digest.store import Store
from digest.store.writers import PollRecorder

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


def parser_pool(settings: Settings) -> ParserPool:
    """The parser processes [fetch] asks for: parse_workers of them (0: one per CPU), each parse
    under parse_cpu_seconds of CPU."""
    return ParserPool(workers=settings.fetch.parse_workers or None, cpu_seconds=settings.fetch.parse_cpu_seconds)


async def poll_feed(
    feed: Feed,
    *,
    settings: Settings,
    fetcher: Fetcher,
    parser: ParserPool,
    clock: Clock,
    recorder: PollRecorder,
) -> PollResult:
    result = await fetcher.fetch(feed.url, etag=feed.etag, last_modified=feed.last_modified)
    now = clock()
    outcome, body = await _apply(feed, result, settings=settings, parser=parser, now=now)
    failures = feed.consecutive_failures + 1 if outcome.error else 0
    # The items and the new state (body hash included) commit together: a crash before this
    # leaves the old hash, so the body is parsed again next time.
    record = PollRecord(
        feed.id,
        now,
        status=result.status,
        failures=failures,
        error=outcome.error,
        next_poll_at=now + next_poll_after(_interval(settings, feed), failures, result.retry_after),
        gone=result.gone,
        validators=body.validators,
        body_hash=body.body_hash,
        title=body.title,
        site_url=body.site_url,
        rights=body.rights,
        language=body.language,
        items=body.items,
        moved_to=result.permanent_url if result.permanent_url != feed.url else None,
    )
    written = await recorder.write(record)
    if written.moved:
        log.info("feed=%s moved permanently to %s", feed.url, result.permanent_url)
    elif record.moved_to:
        log.warning("feed=%s moved to %s, which is already another feed", feed.url, result.permanent_url)
    if body.items is not None:
        outcome = replace(outcome, new_items=written.new_items, updated_items=written.updated_items)
    log.info(
        "feed=%s status=%s new=%d updated=%d%s",
        feed.url,
        result.status,
        outcome.new_items,
        outcome.updated_items,
        f" error={outcome.error!r}" if outcome.error else "",
    )
    return outcome


@dataclass(frozen=True, slots=True)
class _Body:
    """What a received body taught us about the feed (nothing, when none arrived)."""

    validators: tuple[str | None, str | None] | None = None
    body_hash: str | None = None
    title: str | None = None
    site_url: str | None = None
    items: tuple[ParsedItem, ...] | None = None
    rights: str | None = None
    language: str | None = None


async def _apply(
    feed: Feed, result: FetchResult, *, settings: Settings, parser: ParserPool, now: datetime
) -> tuple[PollResult, _Body]:
    """What the fetch result means for the feed: the poll's outcome, and what the body taught us."""
    if result.gone:
        return PollResult(
            feed.url, result.status, error="410 Gone: the publisher removed this feed; polling stopped."
        ), _Body()
    if result.error:
        return PollResult(feed.url, result.status, error=result.error), _Body()
    if result.not_modified:
        return PollResult(feed.url, result.status, not_modified=True), _Body()
    body = result.body or b""
    validators = (result.etag, result.last_modified)
    body_hash = hashlib.sha256(body).hexdigest()
    if body_hash == feed.body_hash:  # a server that ignores conditional GET: same bytes, no parse
        return PollResult(feed.url, result.status, not_modified=True), _Body(validators)
    try:
        parsed = await parser.parse(
            body,
            url=result.final_url,
            content_type=result.content_type,
            now=now,
            excerpt_chars=settings.digest.excerpt_chars,
        )
    except ParseError as exc:
        return PollResult(feed.url, result.status, error=exc.message), _Body(validators)
    return PollResult(feed.url, result.status), _Body(
        validators,
        body_hash,
        parsed.title or None,
        parsed.link or None,
        tuple(parsed.items),
        parsed.rights or None,
        parsed.language,
    )


async def poll_feed_safely(
    feed: Feed,
    *,
    settings: Settings,
    fetcher: Fetcher,
    parser: ParserPool,
    clock: Clock,
    recorder: PollRecorder,
) -> PollResult:
    """poll_feed, with a bug in one feed's path turned into that feed's error (C10)."""
    try:
        return await poll_feed(feed, settings=settings, fetcher=fetcher, parser=parser, clock=clock, recorder=recorder)
    except Exception as exc:  # a bug in one feed's path must not stop the poll (C10)
        log.exception("feed=%s failed unexpectedly", feed.url)
        return PollResult(feed.url, None, error=f"internal error: {exc.__class__.__name__}: {exc}")


async def poll_feeds(
    feeds: Sequence[Feed],
    *,
    settings: Settings,
    store: Store,
    clock: Clock,
    fetcher: Fetcher,
    parser: ParserPool,
    on_result: Callable[[PollResult], None] | None = None,
) -> list[PollResult]:
    """Poll the given feeds concurrently (the fetcher bounds concurrency globally and per host)."""
    recorder = PollRecorder(store)

    async def one(feed: Feed) -> PollResult:
        res = await poll_feed_safely(
            feed, settings=settings, fetcher=fetcher, parser=parser, clock=clock, recorder=recorder
        )
        if on_result:
            on_result(res)
        return res

    try:
        return list(await asyncio.gather(*(one(f) for f in feeds)))
    finally:
        await recorder.close()


async def poll_once(
    *,
    settings: Settings,
    store: Store,
    clock: Clock,
    due_only: bool = False,
    parser: ParserPool | None = None,
    on_result: Callable[[PollResult], None] | None = None,
) -> list[PollResult]:
    """Poll every active feed once (or only those due), with a fresh fetcher."""
    feeds = (
        await asyncio.to_thread(store.due_feeds, now=clock())
        if due_only
        else await asyncio.to_thread(store.list_feeds, active_only=True)
    )
    own_parser = parser is None
    pool = parser or parser_pool(settings)
    try:
        async with Fetcher(settings.fetch, allow_private=settings.digest.allow_private_addresses) as fetcher:
            return await poll_feeds(
                feeds, settings=settings, store=store, clock=clock, fetcher=fetcher, parser=pool, on_result=on_result
            )
    finally:
        if own_parser:
            pool.close()
