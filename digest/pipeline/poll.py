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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from digest.config import Settings
from digest.errors import ParseError
from digest.fetch import Fetcher, FetchResult
from digest.model import Feed, ParsedItem, PollResult
from digest.parsepool import ParserPool
from digest.store import Store
from digest.store.feeds import PollRecord, PollWritten

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


class _Recorder:
    """Writes poll outcomes from one thread, as many feeds per transaction as finished meanwhile.

    SQLite has one writer at a time: writes from several threads only queue on its lock (and
    sleep in its busy handler), and a transaction per feed costs more than the feed's rows. So
    feeds hand their outcome to this recorder; while one transaction commits, the next ones
    gather, and each feed's poll returns once its own outcome is committed (group commit).
    """

    MAX_BATCH = 200

    def __init__(self, store: Store) -> None:
        self._writer = store.poll_writer()  # opened and closed in the executor's one thread
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="digest-store")
        self._pending: list[tuple[PollRecord, asyncio.Future[PollWritten]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def write(self, record: PollRecord) -> PollWritten:
        future: asyncio.Future[PollWritten] = asyncio.get_running_loop().create_future()
        self._pending.append((record, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def close(self) -> None:
        """Let the outcomes already handed over be written, then close the connection and the thread."""
        try:
            if self._drainer is not None:  # else nothing was written and no connection opened
                await self._drainer
                await asyncio.get_running_loop().run_in_executor(self._executor, self._writer.close)
        finally:
            self._executor.shutdown(wait=False)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[: self.MAX_BATCH], self._pending[self.MAX_BATCH :]
            records = [record for record, _ in batch]
            outcomes: list[PollWritten | Exception]
            try:
                outcomes = list(await loop.run_in_executor(self._executor, self._writer.record, records))
            except Exception:  # one feed's bad data must not fail the others': write them one by one
                outcomes = await loop.run_in_executor(self._executor, self._one_by_one, records)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # its poll was cancelled meanwhile
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _one_by_one(self, records: Sequence[PollRecord]) -> list[PollWritten | Exception]:
        out: list[PollWritten | Exception] = []
        for record in records:
            try:
                out.extend(self._writer.record([record]))
            except Exception as exc:
                out.append(exc)
        return out


async def poll_feed(
    feed: Feed,
    *,
    settings: Settings,
    store: Store,
    fetcher: Fetcher,
    parser: ParserPool,
    clock: Clock,
    recorder: _Recorder | None = None,
) -> PollResult:
    result = await fetcher.fetch(feed.url, etag=feed.etag, last_modified=feed.last_modified)
    now = clock()
    update: dict[str, Any] = {"last_polled_at": now, "last_status": result.status}
    outcome, items = await _apply(feed, result, settings=settings, parser=parser, now=now, update=update)
    failures = feed.consecutive_failures + 1 if outcome.error else 0
    update["consecutive_failures"] = failures
    update["last_error"] = outcome.error
    update["next_poll_at"] = now + next_poll_after(_interval(settings, feed), failures, result.retry_after)
    # The items and the new state (body hash included) commit together: a crash before this
    # leaves the old hash, so the body is parsed again next time.
    record = PollRecord(
        feed.id, now, update, items=items, moved_to=result.permanent_url if result.permanent_url != feed.url else None
    )
    if recorder is not None:
        written = await recorder.write(record)
    else:
        (written,) = await asyncio.to_thread(store.record_polls, [record])
    if written.moved:
        log.info("feed=%s moved permanently to %s", feed.url, result.permanent_url)
    elif record.moved_to:
        log.warning("feed=%s moved to %s, which is already another feed", feed.url, result.permanent_url)
    if items is not None:
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


async def _apply(
    feed: Feed, result: FetchResult, *, settings: Settings, parser: ParserPool, now: datetime, update: dict[str, Any]
) -> tuple[PollResult, Sequence[ParsedItem] | None]:
    """What the fetch result means for the feed: the poll's outcome, and the items to store."""
    if result.gone:
        update["active"] = False
        return PollResult(
            feed.url, result.status, error="410 Gone: the publisher removed this feed; polling stopped."
        ), None
    if result.error:
        return PollResult(feed.url, result.status, error=result.error), None
    if result.not_modified:
        return PollResult(feed.url, result.status, not_modified=True), None
    body = result.body or b""
    update["etag"] = result.etag
    update["last_modified"] = result.last_modified
    body_hash = hashlib.sha256(body).hexdigest()
    if body_hash == feed.body_hash:  # a server that ignores conditional GET: same bytes, no parse
        return PollResult(feed.url, result.status, not_modified=True), None
    try:
        parsed = await parser.parse(
            body,
            url=result.final_url,
            content_type=result.content_type,
            now=now,
            excerpt_chars=settings.digest.excerpt_chars,
        )
    except ParseError as exc:
        return PollResult(feed.url, result.status, error=exc.message), None
    update["body_hash"] = body_hash
    if parsed.title:
        update["title"] = parsed.title
    return PollResult(feed.url, result.status), parsed.items


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
    recorder = _Recorder(store)

    async def one(feed: Feed) -> PollResult:
        try:
            res = await poll_feed(
                feed, settings=settings, store=store, fetcher=fetcher, parser=parser, clock=clock, recorder=recorder
            )
        except Exception as exc:  # a bug in one feed's path must not stop the poll (C10)
            log.exception("feed=%s failed unexpectedly", feed.url)
            res = PollResult(feed.url, None, error=f"internal error: {exc.__class__.__name__}: {exc}")
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
