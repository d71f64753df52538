"""Polling by claims, for any number of workers on one database (issue 15).

Each worker claims due feeds (earliest first; SKIP LOCKED on PostgreSQL, so workers claiming
together get disjoint sets), polls them, writes their outcome (which moves their next poll a whole
interval on) and frees them; a rolling window of [fetch] concurrency feeds, a new one claimed as
each finishes. `digest poll` claims the same way (every feed, by id), so it never fetches a feed a
worker is polling. A worker that dies holds its claims only until the lease
runs out on the database's clock; then the feeds are due again for everyone.

Politeness holds across workers through the database (`HostGate`): before each request a worker
takes one of the host's `per_host` slots and a start time `host_interval` after the last one
handed out for that host, by any worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

from digest.config import Settings
from digest.fetch import Fetcher
from digest.model import Feed, PollResult
from digest.parsepool import ParserPool
from digest.pipeline.poll import poll_feed_safely
from digest.store import Store
from digest.store.writers import PollRecorder

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SLOT_RETRY = 0.05  # seconds between asks for a busy host's slot (jittered)


class HostGate:
    """Slots and start times of publisher hosts, shared by all workers through the database."""

    def __init__(self, store: Store, worker: str, *, per_host: int, interval: float, lease: timedelta) -> None:
        self.store, self.worker = store, worker
        self.per_host, self.interval, self.lease = per_host, timedelta(seconds=interval), lease

    @contextlib.asynccontextmanager
    async def __call__(self, host: str) -> AsyncIterator[None]:
        while True:
            ticket = await asyncio.to_thread(
                self.store.take_host_slot,
                host,
                worker=self.worker,
                per_host=self.per_host,
                interval=self.interval,
                lease=self.lease,
            )
            if ticket is not None:
                break
            await asyncio.sleep(SLOT_RETRY * random.uniform(1, 2))
        try:
            if ticket.wait:
                await asyncio.sleep(ticket.wait)
            yield
        finally:
            # Shielded: a cancelled poll must still give the slot back, or the host waits a lease.
            await asyncio.shield(asyncio.to_thread(self.store.release_host_slot, ticket, worker=self.worker))


async def poll_claimed(
    *,
    settings: Settings,
    store: Store,
    clock: Clock,
    worker: str,
    parser: ParserPool,
    lease: timedelta,
    window: int | None = None,
    shared_hosts: bool = True,
    stop: asyncio.Event | None = None,
    every_feed: bool = False,
    renew: bool = False,
    on_result: Callable[[PollResult], None] | None = None,
) -> list[PollResult]:
    """Poll due feeds (or, with `every_feed`, every active feed once) by claims, until none is left
    or `stop` is set.

    A rolling window of `window` feeds (default [fetch] concurrency): as soon as one feed's outcome
    is written it is freed and another is claimed, so one slow publisher holds one slot, not a
    batch. `renew`: renew the claims' leases here (a claimer without a worker's heartbeat)."""
    size = window or settings.fetch.concurrency
    # The host slot is held for the whole fetch: its lease must outlast the fetch's deadline.
    gate = (
        HostGate(
            store,
            worker,
            per_host=settings.fetch.per_host,
            interval=settings.fetch.host_interval,
            lease=timedelta(seconds=settings.fetch.timeout + 60),
        )
        if shared_hosts
        else None
    )
    results: list[PollResult] = []
    seen: set[int] = set()
    running: dict[asyncio.Task[PollResult], Feed] = {}
    finished: list[int] = []  # polled, outcome written, not yet freed
    after_id = 0  # every_feed: the cursor over feed ids
    exhausted = False  # nothing more to claim in this pass
    recorder = PollRecorder(store)
    renewer = asyncio.create_task(_renew(store, worker, lease)) if renew else None
    try:
        async with Fetcher(
            settings.fetch, allow_private=settings.digest.allow_private_addresses, host_gate=gate
        ) as fetcher:
            while True:
                if finished:  # freed as soon as their outcome is written, before claiming more
                    await asyncio.shield(asyncio.to_thread(store.release_feeds, worker, finished))
                    finished = []
                free = size - len(running)
                if free > 0 and not exhausted and (stop is None or not stop.is_set()):
                    feeds = await asyncio.to_thread(
                        store.claim_feeds,
                        worker,
                        due_by=None if every_feed else clock(),
                        lease=lease,
                        limit=free,
                        after_id=after_id,
                    )
                    again = [f.id for f in feeds if f.id in seen]
                    if again:  # polled in this pass but still due: its outcome could not be written
                        finished += again
                        exhausted = True
                    for feed in feeds:
                        if feed.id in seen:
                            continue
                        seen.add(feed.id)
                        after_id = max(after_id, feed.id)
                        task = asyncio.create_task(
                            poll_feed_safely(
                                feed, settings=settings, fetcher=fetcher, parser=parser, clock=clock, recorder=recorder
                            )
                        )
                        running[task] = feed
                    # every_feed walks the ids once; due feeds may become due while others run,
                    # so a short claim ends the pass only when nothing is running any more.
                    if len(feeds) < free and (every_feed or not running):
                        exhausted = True
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    feed = running.pop(task)
                    res = task.result()
                    results.append(res)
                    finished.append(feed.id)
                    if on_result:
                        on_result(res)
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        if renewer is not None:
            renewer.cancel()
        # Shielded: a cancelled poll must still free its feeds, or they wait for the lease.
        held = finished + [f.id for f in running.values()]
        await asyncio.shield(_close(store, worker, held, recorder))
    return results


async def _close(store: Store, worker: str, held: list[int], recorder: PollRecorder) -> None:
    try:
        await recorder.close()
    finally:
        await asyncio.to_thread(store.release_feeds, worker, held)


async def _renew(store: Store, worker: str, lease: timedelta) -> None:
    while True:
        await asyncio.sleep(lease.total_seconds() / 3)
        try:
            await asyncio.to_thread(store.renew_feed_claims, worker, lease=lease)
        except Exception as exc:  # a busy database: the next renewal (well within the lease) retries
            log.warning("poll=%s cannot renew its feed claims: %s", worker, exc)
