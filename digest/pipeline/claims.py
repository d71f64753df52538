"""Polling by claims, for any number of workers on one database (issue 15).

Each worker claims a batch of due feeds (earliest first; SKIP LOCKED on PostgreSQL, so workers
claiming together get disjoint batches), polls them, writes their outcome (which moves their next
poll a whole interval on) and frees them. A worker that dies holds its batch only until the lease
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
from digest.model import PollResult
from digest.parsepool import ParserPool
from digest.pipeline.poll import poll_feeds
from digest.store import Store

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
    batch: int | None = None,
    shared_hosts: bool = True,
    stop: asyncio.Event | None = None,
) -> list[PollResult]:
    """Claim due feeds a batch at a time and poll them, until none is due or `stop` is set."""
    size = batch or settings.fetch.concurrency
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
    async with Fetcher(
        settings.fetch, allow_private=settings.digest.allow_private_addresses, host_gate=gate
    ) as fetcher:
        while stop is None or not stop.is_set():
            feeds = await asyncio.to_thread(store.claim_feeds, worker, due_by=clock(), lease=lease, limit=size)
            fresh = [f for f in feeds if f.id not in seen]
            try:
                if fresh:
                    seen.update(f.id for f in fresh)
                    results += await poll_feeds(
                        fresh, settings=settings, store=store, clock=clock, fetcher=fetcher, parser=parser
                    )
            finally:
                await asyncio.shield(asyncio.to_thread(store.release_feeds, worker, [f.id for f in feeds]))
            if len(fresh) < len(feeds) or len(feeds) < size:
                break  # nothing more is due (or only feeds whose outcome could not be written)
    return results
