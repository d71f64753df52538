"""`digest worker`: one of any number of identical workers on one database; nobody leads (issue 15).

A worker is the daemon (digest.daemon: the scheduler, the reconciler, the drain on SIGTERM) with
three differences:

- it registers in the `workers` table and heartbeats there; each heartbeat renews the leases of
  what it holds. A worker that stops heartbeating (kill -9, a lost host) loses its claims when
  their lease runs out on the database's clock, on whatever host it ran: nobody reads /proc;
- it polls by claims (pipeline.claims): a rolling window of due feeds, SKIP LOCKED, and the publisher
  hosts' politeness kept in the database for all workers together;
- on PostgreSQL there is no one-daemon lock: editions are built by whichever worker comes first
  (their key is unique; the others find it built) and the outbox is claimed row by row.

SQLite stays the single-worker default: there the worker also takes the one-daemon lock, so a
second worker (or `digest run`) refuses, naming PostgreSQL.

Clocks: the database's decides leases and liveness. On PostgreSQL a worker also runs on the
database's time for what is due and what it stamps: its own clock less the offset measured at start
and at every heartbeat, so the items it polls and the editions it cuts agree with every other
worker's. A worker more than [workers] max_clock_skew off refuses to start (or stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import digest
from digest import schedule
from digest.clock import Clock
from digest.config import Settings, SmtpSettings, mask_url
from digest.daemon import LOCK_NAME, Daemon, Ticks, _install_signals, acquire, lock_clock
from digest.deliver import Envelope, Result, SmtpTransport, Transport
from digest.errors import ConfigError, DigestError, LockHeldError
from digest.model import PollResult
from digest.pipeline.claims import poll_claimed
from digest.pipeline.send import edition_due
from digest.pipeline.sender import STOP_GRACE
from digest.pipeline.workers import TransportFactory
from digest.status import warn_orphaned_choices
from digest.store import Store
from digest.store.workers import STALE_AFTER
from digest.store.writers import set_claimant
from digest.web import WebProcess

log = logging.getLogger(__name__)

# A worker is gone after six missed heartbeats (STALE_AFTER at the default 10 s); its leases,
# renewed by every heartbeat, run nine. Both scale with the heartbeat (DIGEST_DAEMON_TICK in tests).
STALE_BEATS, LEASE_BEATS = 6, 9
POLL_WAIT = timedelta(minutes=5)  # longest a due edition waits for other workers' polls
# A new worker's first rate-limited send pass waits two heartbeats: the running passes of the
# others re-read the live workers every heartbeat (LiveShare) and have cut their shares by then.
JOIN_BEATS = 2


# A worker's name is on every claim, in `digest status` and in each log line: at most this long, so a
# line stays readable (the store's columns are Text and would keep any length; a fully qualified host
# name may have 253 characters).
NAME_CHARS = 64


def default_name() -> str:
    """host:pid, the host name cut so that the whole fits `NAME_CHARS` (a container's host name
    can be 63 characters)."""
    pid = str(os.getpid())
    return f"{socket.gethostname()[: NAME_CHARS - len(pid) - 1]}:{pid}"


def worker_name(name: str | None) -> str:
    """`digest worker --name`, checked, or `default_name()`."""
    if name is None:
        return default_name()
    if not name.strip() or not name.isprintable() or len(name) > NAME_CHARS:
        raise ConfigError(
            f"--name {name!r} is not a worker name: it must be 1 to {NAME_CHARS} printable characters.",
            hint="Give a short name, such as the host's (the default is host:pid).",
        )
    return name


class ClockSkewError(DigestError):
    hint = "Synchronise this host's clock (NTP, e.g. `timedatectl set-ntp true`), or raise [workers] max_clock_skew."


def check_skew(worker_now: datetime, database_now: datetime, *, bound: timedelta, where: str) -> float:
    """The worker's clock minus the database's, in seconds; ClockSkewError beyond `bound`."""
    skew = (worker_now - database_now).total_seconds()
    if abs(skew) > bound.total_seconds():
        raise ClockSkewError(
            f"This worker's clock is {skew:+.1f} s off the clock of the database {where}, more than "
            f"[workers] max_clock_skew ({bound.total_seconds():g} s): leases and editions would disagree."
        )
    return skew


@dataclass(frozen=True)
class SharedRate:
    """The transport factory of a worker's send pass: each sending process's [smtp] (already its
    share of the run) divided again among the live workers. Picklable: the sending processes are
    spawned with it.

    With `database_url`, a transport that has a rate limit follows the live workers while the pass
    runs (LiveShare): a worker joining or leaving mid-pass changes every running limiter within a
    heartbeat."""

    live: int
    make: TransportFactory = SmtpTransport
    database_url: str | None = None
    stale_after: float = 60.0
    refresh: float = 10.0

    def __call__(self, smtp: SmtpSettings) -> Transport:
        inner = self.make(smtp_share(smtp, self.live))
        if self.database_url is None or not smtp.rate_limit or not isinstance(inner, SmtpTransport):
            return inner
        return LiveShare(
            inner,
            rate=smtp.rate_limit,
            live=self.live,
            database_url=self.database_url,
            stale_after=timedelta(seconds=self.stale_after),
            refresh=self.refresh,
        )


class LiveShare:
    """An SMTP transport sending at `rate` / (workers alive), the count re-read every `refresh`
    seconds (the heartbeat) from the database and applied to its running limiter."""

    def __init__(
        self,
        inner: SmtpTransport,
        *,
        rate: float,
        live: int,
        database_url: str,
        stale_after: timedelta,
        refresh: float,
    ) -> None:
        self.inner, self.rate, self.live = inner, rate, max(live, 1)
        self.database_url, self.stale_after, self.refresh = database_url, stale_after, refresh
        self._task: asyncio.Task[None] | None = None

    @property
    def concurrency(self) -> int:
        return self.inner.concurrency

    def ready_in(self) -> float:
        return self.inner.ready_in()

    async def send(self, envelope: Envelope) -> Result:
        return await self.inner.send(envelope)

    async def __aenter__(self) -> LiveShare:
        store = await asyncio.to_thread(Store, self.database_url, check_schema=False)
        try:
            # Counted once before the first send too: a spawned sending process may start a second
            # or more after its worker counted, and a worker that joined meanwhile only waits
            # JOIN_BEATS before it sends at its share.
            await self._recount(store)
            await self.inner.__aenter__()
        except BaseException:
            await asyncio.to_thread(store.close)
            raise
        self._task = asyncio.create_task(self._follow(store))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.inner.__aexit__(*exc)

    async def _recount(self, store: Store) -> None:
        try:
            live = max(await asyncio.to_thread(store.live_worker_count, stale_after=self.stale_after), 1)
        except Exception as exc:  # a busy database: keep the share we have, ask again next beat
            log.warning("smtp rate share: cannot count the live workers: %s", exc)
            return
        if live != self.live:
            log.info("smtp rate share: %d workers alive, sending at %.3g/s", live, self.rate / live)
            self.live = live
            self.inner.set_rate(self.rate / live)

    async def _follow(self, store: Store) -> None:
        try:
            while True:
                await asyncio.sleep(self.refresh)
                await self._recount(store)
        finally:
            await asyncio.to_thread(store.close)


def smtp_share(smtp: SmtpSettings, live: int) -> SmtpSettings:
    """[smtp] for one of `live` workers: rate_limit is for all of them together, so each sends at
    its share (counted at the last heartbeat; LiveShare follows it during a pass)."""
    return replace(smtp, rate_limit=smtp.rate_limit / max(live, 1)) if smtp.rate_limit else smtp


class Worker(Daemon):
    """The daemon, registered as a worker and polling by claims."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        name: str,
        clock: Clock,
        stop: asyncio.Event,
        grace: float,
        ticks: Ticks,
        transport_factory: TransportFactory,
        locked: bool,
        log_setup: Callable[[], None] | None = None,
    ) -> None:
        # On PostgreSQL the worker runs on the database's time: its own clock less the offset
        # measured at each heartbeat. What it stamps (items first seen, next polls, an edition's
        # cut-off) then agrees with what other workers stamp, whatever their clocks: an item a
        # worker 20 s fast polled is not in the future of an edition a worker on time builds.
        self.raw_clock, self.skew = clock, 0.0
        super().__init__(
            settings,
            store,
            clock=self._database_clock if store.many_workers else clock,
            stop=stop,
            grace=grace,
            ticks=ticks,
            holder=name,
            transport_factory=transport_factory,
            log_setup=log_setup,
            worker=name,
        )
        self.name, self.locked = name, locked
        self.make_transport = transport_factory
        self.live = 1  # workers alive, this one included (at the last heartbeat)
        self.joined = time.monotonic()
        self.started = self.clock()  # a catch-up edition waits for the polls due when this worker began
        # Never under 10 s: a busy machine may delay a beat or two, and a live worker taken for
        # gone stops (its claims were handed to others).
        self.stale_after = timedelta(seconds=max(STALE_BEATS * ticks.heartbeat, 10.0))
        self.lease = timedelta(seconds=max(LEASE_BEATS * ticks.heartbeat, 15.0))
        self.where = mask_url(store.url)
        # Monotonic seconds: this worker's last heartbeat that reached the database, its first one that
        # failed since, and when it was back after either a failure or a gap (`_judges`).
        self.last_beat: float | None = None
        self.failed_since: float | None = None
        self.back_since = -math.inf

    def _database_clock(self) -> datetime:
        return self.raw_clock() - timedelta(seconds=self.skew)

    async def _heartbeat(self) -> None:
        if self.locked:  # SQLite: the one-daemon lock too (and the schema check)
            await super()._heartbeat()
            if self.stop.is_set():
                return
        elif not await self._schema_unchanged():
            return
        try:
            before = self.raw_clock()
            db_now, registered = await asyncio.to_thread(
                self.store.worker_heartbeat, self.name, worker_now=before, lease=self.lease
            )
            gone: list[str] = []
            if self._judges(time.monotonic()):
                gone = await asyncio.to_thread(self.store.forget_dead_workers, stale_after=self.stale_after)
            self.live = await asyncio.to_thread(self.store.live_worker_count, stale_after=self.stale_after)
        except Exception as exc:  # a busy or unreachable database: the next beat retries
            log.warning("worker=%s heartbeat failed: %s", self.name, exc)
            if self.failed_since is None:
                self.failed_since = time.monotonic()
            return
        for name in gone:
            log.warning("worker=%s missed its heartbeats: taken for gone, what it held is free again", name)
        if not registered:
            log.error("worker=%s was taken for dead (missed heartbeats) and its claims freed; stopping", self.name)
            self.stop.set()
            return
        if self.store.many_workers:
            try:
                self.skew = check_skew(before, db_now, bound=self.settings.workers.max_clock_skew, where=self.where)
            except ClockSkewError as exc:
                log.error("worker=%s %s Stopping. %s", self.name, exc.message, exc.hint)
                self.stop.set()

    def _judges(self, now: float) -> bool:
        """Whether this beat may take silent workers for gone. Not for `stale_after` after this
        worker's own beats failed or stopped for a while: the database was away (or this process
        stood still), and the other workers were most likely cut off by the same outage. The first
        worker back used to take every other for gone, and they stopped: after a PostgreSQL restart
        of 15 s, two workers were one. Once back that long, a worker still silent is gone."""
        gap = now - self.last_beat if self.last_beat is not None else 0.0
        if self.failed_since is not None or gap > 2 * self.ticks.heartbeat + 1:
            away = now - min(self.failed_since or now, self.last_beat or now)
            self.back_since, self.failed_since = now, None
            log.warning(
                "worker=%s reached the database again after %.0f s; takes no silent worker for gone for %.0f s",
                self.name,
                away,
                self.stale_after.total_seconds(),
            )
        self.last_beat = now
        return now - self.back_since >= self.stale_after.total_seconds()

    async def _reconcile(self) -> None:
        # A worker's own poll may be over while others still poll their share: a due edition waits
        # (up to POLL_WAIT) for every feed that was due at its instant, as the single daemon polls
        # before its first reconcile, so the edition carries the news of that poll.
        try:
            waiting = await asyncio.to_thread(self._edition_waits_for_polls, self.clock())
        except Exception as exc:
            log.warning("worker=%s cannot tell whether polls are still running: %s", self.name, exc)
            waiting = False
        if waiting:
            return
        if self.store.many_workers and self.settings.smtp.rate_limit and self._joining():
            # The workers already sending learn of this one at their next beat (LiveShare): until
            # they have, this one sending at its share would put the total over the limit.
            log.debug("worker=%s waits a beat before its first rate-limited send pass", self.name)
            return
        # [smtp] rate_limit is for all workers together: this pass sends at its share, and
        # follows the live workers while it runs.
        self.reconciler.transport_factory = SharedRate(
            self.live,
            self.make_transport,
            database_url=self.store.url if self.store.many_workers else None,
            stale_after=self.stale_after.total_seconds(),
            refresh=self.ticks.heartbeat,
        )
        await super()._reconcile()

    def _joining(self) -> bool:
        return time.monotonic() - self.joined < JOIN_BEATS * self.ticks.heartbeat

    def _edition_waits_for_polls(self, now: datetime) -> bool:
        self.live = self.store.live_worker_count(stale_after=self.stale_after)  # for this pass's SMTP share
        digest = self.settings.digest
        for tz in self.store.timezones_in_use(digest.timezone):
            last = self.store.last_edition(tz)
            day = edition_due(now, digest, tz, last_day=last.day if last else None)
            if day is None:
                continue
            # The polls due at its instant, or when this worker began if that was later: workers
            # started after send_at (a new site, the fleet back from downtime) built a catch-up
            # edition before any of them had polled, and it went out empty to no one (audit).
            since = max(schedule.edition_instant(day, digest.send_at, tz), self.started)
            if now - since < POLL_WAIT and self.store.poll_lag(now=since)[0]:
                log.debug("edition=%s/%s waits for the feeds due at its time to be polled", day, tz)
                return True
        return False

    async def _poll_round(self) -> list[PollResult]:
        """One round of the poll job by claims: due feeds claimed in a rolling window (pipeline.claims)."""
        return await poll_claimed(
            settings=self.settings,
            store=self.store,
            clock=self.clock,
            worker=self.name,
            parser=self.parser,
            lease=self.lease,
            shared_hosts=self.store.many_workers,
            stop=self.stop,
        )


def _register(settings: Settings, store: Store, name: str, clock: Clock, where: str) -> float:
    """Refuse a clock too far off (PostgreSQL), a name in use, a second worker on SQLite; then register.

    On SQLite the worker also takes the one-daemon lock, after registering (so a refused name never
    touches the lock of the live worker that has it), against a `digest run` daemon there."""
    skew = 0.0
    if store.many_workers:
        skew = check_skew(clock(), store.database_now(), bound=settings.workers.max_clock_skew, where=where)
    store.register_worker(
        name,
        host=socket.gethostname(),
        pid=os.getpid(),
        version=digest.__version__,  # the one place it is written, also in a source tree
        worker_now=clock(),
        stale_after=STALE_AFTER,
    )
    if store.many_workers:
        return skew
    try:
        acquire(store, name, lock_clock())
    except LockHeldError as exc:
        store.unregister_worker(name)
        raise LockHeldError(
            f"{exc.message} SQLite takes one worker.",
            hint='For several workers, use PostgreSQL: [digest] database = "postgresql+psycopg://user@host/db".',
        ) from None
    except BaseException:
        store.unregister_worker(name)
        raise
    return skew


async def run_worker(
    settings: Settings,
    store: Store,
    *,
    name: str | None = None,
    clock: Clock,
    web: bool = False,
    stop: asyncio.Event | None = None,
    grace: float = STOP_GRACE,
    ticks: Ticks | None = None,
    transport_factory: TransportFactory | None = None,
    log_setup: Callable[[], None] | None = None,
) -> None:
    """Run one worker until SIGTERM/SIGINT (or `stop`); with `web`, the web app beside it (`digest run`)."""
    name = worker_name(name)
    ticks = ticks or Ticks.from_env(os.environ)
    stop = stop or asyncio.Event()
    where = mask_url(store.url)
    skew = await asyncio.to_thread(_register, settings, store, name, clock, where)
    set_claimant(name)  # outbox claims of this process and its sending processes carry the name
    worker = Worker(
        settings,
        store,
        name=name,
        clock=clock,
        stop=stop,
        grace=grace,
        ticks=ticks,
        transport_factory=transport_factory or SmtpTransport,
        locked=not store.many_workers,
        log_setup=log_setup,
    )
    worker.live = await asyncio.to_thread(store.live_worker_count, stale_after=worker.stale_after)
    worker.skew = skew
    log.info("worker started name=%s database=%s", name, where)
    loop = asyncio.get_running_loop()
    installed = _install_signals(loop, stop, worker)
    app: WebProcess | None = None
    try:
        await asyncio.to_thread(warn_orphaned_choices, settings, store)  # once at start, as `digest status` says it
        if web and settings.web.enabled:
            app = await WebProcess(settings, clock=clock, setup=log_setup).start()
        await worker.run()
    finally:
        if app is not None:
            await app.stop()
        await asyncio.to_thread(worker.parser.close)
        worker.metrics.forget()
        for sig in installed:
            loop.remove_signal_handler(sig)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(store.unregister_worker, name)
        set_claimant(None)
        if worker.locked and not worker.lock_lost:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(store.release_lock, LOCK_NAME, name)
        log.info("worker stopped name=%s", name)
    if worker.schema_moved is not None:
        raise worker.schema_moved
    if worker.lock_lost:
        raise LockHeldError(f"Another digest daemon took over the database {where}; this worker stopped.")
