"""The daemon (`digest run`): one process per database that polls feeds and sends each edition on time.

Owns the APScheduler 3.x AsyncIOScheduler (started inside the running loop), the one-daemon lock
and its heartbeat, and signal handling: timers and signals around the two jobs' façades. It holds
no business logic: what is due and how it is sent is `pipeline.send` (`send_due`, with the same
sending processes as `digest send`), what a poll does is `pipeline.poll`.

APScheduler only wakes us up. Its jobs live in a MemoryJobStore: a persistent job store advances
`next_run_time` when a job is handed to the executor, so a job killed mid-run is never re-run
(reliability.md section 0 finding 3, agronholm/apscheduler#429). The editions and the outbox in our
own database are the state; after any crash or downtime the reconciler resumes from them (F4, F5).

    heartbeat   every 10 s    keeps the lock fresh; a lost lock stops the daemon
    poll        every tick    polls the feeds whose next_poll_at has come (each feed has its interval)
    reconcile   every tick    builds and sends a due edition, resumes open editions with due rows
    edition:TZ  at send_at    a one-shot reconcile at the next edition instant of each time zone
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest import schedule, unsubscribes
from digest.clock import Clock
from digest.config import Settings, mask_url
from digest.deliver import SmtpTransport
from digest.errors import (
    ConfigError,
    DatabaseBusyError,
    DeliveryError,
    DigestError,
    LockHeldError,
    OutdatedDatabaseError,
    StoreError,
)
from digest.metrics import Metrics, counters_path
from digest.model import PollResult
from digest.pipeline.poll import parser_pool, poll_once
from digest.pipeline.send import NOTHING_DUE, Plan, SendReport, send_due
from digest.pipeline.sender import STOP_GRACE
from digest.pipeline.workers import TransportFactory
from digest.status import clear_send_failure, record_send_failure, warn_orphaned_choices
from digest.store import Store
from digest.store.writers import holder_alive
from digest.web import WebProcess

log = logging.getLogger(__name__)

LOCK_NAME = "daemon"
STALE_AFTER = timedelta(seconds=60)  # six missed heartbeats: the holder is gone
_HEARTBEAT = 10.0  # seconds between lock heartbeats
TICK_ENV = "DIGEST_DAEMON_TICK"  # seconds between poll and reconcile passes (tests and rehearsals)
_SEND_BACKOFF = (timedelta(minutes=1), timedelta(minutes=30))  # after the SMTP server failed a whole run
ABANDON_WAIT = 2.0  # seconds from a second signal to cancelling what still runs of a send


@dataclass(frozen=True, slots=True)
class Ticks:
    """How often each periodic job runs, in seconds."""

    poll: float = 30.0
    reconcile: float = 20.0
    heartbeat: float = _HEARTBEAT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Ticks:
        raw = env.get(TICK_ENV)
        if not raw:
            return cls()
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0.05 <= value <= 3600:
            raise ConfigError(f"{TICK_ENV} = {raw!r} must be a number of seconds between 0.05 and 3600.")
        return cls(poll=value, reconcile=value, heartbeat=min(value, _HEARTBEAT))


# --------------------------------------------------------------------------- the reconciler


@dataclass
class Reconciler:
    """Runs the send job's `send_due` pass, one at a time (the periodic pass and an edition timer may
    fire together). Safe to run at any moment, any number of times (S7, C3)."""

    settings: Settings
    store: Store
    clock: Clock
    transport_factory: TransportFactory
    log_setup: Callable[[], None] | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _warned_stale: set[int] = field(default_factory=set)

    async def run(
        self, *, stop: asyncio.Event | None = None, abandon: asyncio.Event | None = None
    ) -> tuple[Plan, list[SendReport]]:
        async with self._lock:
            if stop is not None and stop.is_set():  # stopped while waiting for the other pass
                return NOTHING_DUE, []
            return await send_due(
                self.settings,
                self.store,
                clock=self.clock,
                transport=self.transport_factory,
                stop=stop,
                abandon=abandon,
                setup=self.log_setup,
                warned=self._warned_stale,
            )


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _interval(seconds: float) -> str:
    return f"{seconds:g} s" if seconds < 120 else _human(timedelta(seconds=seconds))


# --------------------------------------------------------------------------- the lock


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def lock_clock() -> datetime:
    """The lock's clock: always the real one, never the rehearsal clock (DIGEST_NOW).

    Two daemons compare heartbeats written by each other; a daemon started with DIGEST_NOW a day
    ahead must not see the running daemon's fresh heartbeat as a day old and take over.
    """
    return datetime.now(UTC)


def acquire(store: Store, holder: str, now: datetime) -> None:
    current = store.lock_holder(LOCK_NAME)
    alive = holder_alive(current[0]) if current else None
    if current and alive is False:
        log.warning("lock: the previous daemon %s is gone (no such process); taking over", current[0])
    store.acquire_lock(LOCK_NAME, holder, now=now, stale_after=STALE_AFTER, holder_alive=alive)


# --------------------------------------------------------------------------- the daemon


class Daemon:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock,
        stop: asyncio.Event,
        grace: float,
        ticks: Ticks,
        holder: str,
        transport_factory: TransportFactory,
        log_setup: Callable[[], None] | None = None,
        worker: str | None = None,
    ) -> None:
        """`worker`: the name of the `digest worker` this is, which its counters' file and labels carry."""
        self.settings, self.store, self.clock, self.stop = settings, store, clock, stop
        self.abandon = asyncio.Event()  # a second signal: messages on the wire are given up (S4)
        self.grace, self.ticks, self.holder = grace, ticks, holder
        self.reconciler = Reconciler(settings, store, clock, transport_factory, log_setup)
        self.scheduler = AsyncIOScheduler(
            timezone=UTC,
            # F3: these must be job_defaults; as scheduler kwargs they do nothing.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": max(ticks.poll, 30.0)},
        )
        self.parser = parser_pool(settings)  # [fetch] parse_workers and parse_cpu_seconds
        self.lock_lost = False
        self.schema_moved: OutdatedDatabaseError | None = None  # the schema changed under us: why we stopped
        self._polls: set[asyncio.Task[Any]] = set()
        self._sends: set[asyncio.Task[Any]] = set()
        self._armed: dict[str, datetime] = {}
        self._zones: tuple[str, ...] = ()
        self._send_failures = 0
        self._passes = 0  # reconcile passes completed
        self._send_paused_until: datetime | None = None
        # Served at /metrics by the web process when [web] enabled, through a file beside the database
        # (one per worker: several workers writing one file would each overwrite the others' counts).
        self.metrics = Metrics(
            settings,
            store,
            clock=clock,
            counters_file=counters_path(settings, worker),
            writes_counters=True,
            worker=worker,
        )

    # ---------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        sched = self.scheduler
        sched.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES)
        sched.start()  # inside the running loop: AsyncIOScheduler takes asyncio.get_running_loop()
        try:
            sched.add_job(
                self._beat,
                IntervalTrigger(seconds=self.ticks.heartbeat),
                id="heartbeat",
                misfire_grace_time=int(STALE_AFTER.total_seconds()),
            )
            # Poll before the first reconcile, so a catch-up edition after downtime carries fresh news.
            first = asyncio.ensure_future(self._poll())
            await _until(first, self.stop)
            if not self.stop.is_set():
                sched.add_job(
                    self._poll,
                    IntervalTrigger(seconds=self.ticks.poll),
                    id="poll",
                    misfire_grace_time=max(int(self.ticks.poll), 1),
                )
                sched.add_job(
                    self._reconcile,
                    IntervalTrigger(seconds=self.ticks.reconcile),
                    id="reconcile",
                    next_run_time=datetime.now(UTC),
                    misfire_grace_time=max(int(self.ticks.reconcile), 1),
                )
                log.info(
                    "daemon running: poll every %gs, reconcile every %gs, editions at %s local",
                    self.ticks.poll,
                    self.ticks.reconcile,
                    self.settings.digest.send_at.strftime("%H:%M"),
                )
            await self.stop.wait()
            await self._drain()
        finally:
            if sched.running:
                sched.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler.shutdown runs on the next loop iteration
            await asyncio.to_thread(self.parser.close)

    async def _drain(self) -> None:
        """S4: no new poll or send; messages on the wire finish and are recorded; exit within grace.

        The send itself gives the replies to its messages on the wire WIRE_GRACE seconds, then
        gives them up (pending again), in every sending process (`pipeline.sender.bound_wire`,
        as for `digest send`); cancelling here is the last resort for anything else that hangs."""
        self.scheduler.pause()
        for task in self._polls:
            task.cancel()  # a poll is idempotent: the feed stays due and is polled on the next start
        sends = {t for t in self._sends if not t.done()}
        if sends:
            log.info("stopping: waiting up to %gs for messages in flight", self.grace * 0.8)
            _, late = await asyncio.wait(sends, timeout=self.grace * 0.8)
            for task in late:
                task.cancel()  # logged by _reconcile: its unrecorded messages stay pending
        leftovers = [t for t in self._polls | self._sends if not t.done()]
        if leftovers:
            await asyncio.wait(leftovers, timeout=max(self.grace * 0.1, 0.5))

    # ---------------------------------------------------------------- jobs

    async def _beat(self) -> None:
        """The heartbeat job. A beat still reading the database when the daemon stops is
        cancelled with the loop: expected then, not an error with a traceback."""
        try:
            await self._heartbeat()
        except asyncio.CancelledError:
            if not self.stop.is_set():
                raise

    async def _schema_unchanged(self) -> bool:
        """False, with the daemon stopping, once the schema is no longer the one this code needs: a
        `digest db upgrade` ran while it was paused (SIGSTOP, a frozen VM, a partition), and its
        next writes would be shaped by the old code (audit bug 4). A failing read is the
        heartbeat's own business, not a reason to stop."""
        try:
            await asyncio.to_thread(self.store.check_schema_unchanged)
        except OutdatedDatabaseError as exc:
            log.error("%s Stopping.", exc.message)
            self.schema_moved = exc
            self.stop.set()
            return False
        except Exception:  # busy or unreachable: the heartbeat logs it
            pass
        return True

    async def _heartbeat(self) -> None:
        if not await self._schema_unchanged():
            return
        try:
            ok = await asyncio.to_thread(self.store.heartbeat, LOCK_NAME, self.holder, now=lock_clock())
        except Exception as exc:  # a locked or absent database: the next beat retries (C8)
            log.warning("lock: heartbeat failed: %s", exc)
            return
        if not ok:
            holder = await asyncio.to_thread(self.store.lock_holder, LOCK_NAME)
            log.error("lock: another daemon (%s) took over the database; stopping", holder[0] if holder else "unknown")
            self.lock_lost = True
            self.stop.set()

    async def _poll_round(self) -> list[PollResult]:
        """One round of the poll job: every due feed. A worker polls by claims instead (worker.py)."""
        return await poll_once(
            settings=self.settings, store=self.store, clock=self.clock, due_only=True, parser=self.parser
        )

    async def _poll(self) -> None:
        if self.stop.is_set():
            return
        task = asyncio.current_task()
        assert task is not None
        self._polls.add(task)
        try:
            started = time.monotonic()
            results = await self._poll_round()
            self.metrics.observe_poll(results, time.monotonic() - started)
            if results:
                log.info(
                    "poll: %d feeds, %d new items, %d failed",
                    len(results),
                    sum(r.new_items for r in results),
                    sum(1 for r in results if r.error),
                )
        except asyncio.CancelledError:
            if not self.stop.is_set():
                raise
            # Our own shutdown cancelled it: end the job normally, so APScheduler does not report a failure.
            log.info("poll: interrupted by the stop; unpolled feeds stay due")
        except StoreError as exc:  # the database busy or gone (C8): one line, the next cycle retries
            log.warning("poll: %s The next cycle tries again in %s.", exc.message, _interval(self.ticks.poll))
        except Exception:  # one bad cycle must not end the daemon; the next tick tries again
            log.exception("poll: the cycle failed")
        finally:
            self._polls.discard(task)

    async def _reconcile(self) -> None:
        if self.stop.is_set():
            return
        now = self.clock()
        if self._send_paused_until is not None and now < self._send_paused_until:
            return
        task = asyncio.current_task()
        assert task is not None
        self._sends.add(task)
        try:
            await self._apply_kept_unsubscribes()
            started = time.monotonic()
            todo, reports = await self.reconciler.run(stop=self.stop, abandon=self.abandon)
            self._passes += 1
            if not reports:  # numbered, so the repeat filter lets each through (tests count them)
                log.debug("reconcile pass %d: nothing due", self._passes)
            if reports:
                self.metrics.observe_send(
                    built=sum(1 for r in reports if r.created),
                    sent=sum(r.sent for r in reports),
                    deferred=sum(r.deferred for r in reports),
                    failed=sum(r.failed for r in reports),
                    skipped=sum(r.skipped for r in reports),
                    seconds=time.monotonic() - started,
                )
            self._zones = todo.zones
            if self._send_failures:
                await self._note_send_failure(None)
            self._send_failures, self._send_paused_until = 0, None
        except DeliveryError as exc:  # the SMTP server failed the whole run; rows stay pending
            self._send_failures += 1
            wait = min(_SEND_BACKOFF[0] * 2 ** (self._send_failures - 1), _SEND_BACKOFF[1])
            self._send_paused_until = self.clock() + wait
            log.warning("send: %s %s Next attempt in %s.", exc.message, exc.hint, _human(wait))
            await self._note_send_failure(exc)
        except asyncio.CancelledError:
            if not self.stop.is_set():
                raise
            log.warning("send: interrupted by the stop; unrecorded messages stay pending")
        except StoreError as exc:  # the database busy or gone at the fire time (C8): rows and editions wait
            log.warning(
                "reconcile: %s Nothing is lost: the next pass tries again in %s.%s",
                exc.message,
                _interval(self.ticks.reconcile),
                "" if isinstance(exc, DatabaseBusyError) or not exc.hint else f" {exc.hint}",
            )
        except DigestError as exc:
            log.error("reconcile: %s %s", exc.message, exc.hint)
        except Exception:
            log.exception("reconcile: failed; the next pass retries")
        finally:
            self._sends.discard(task)
        if not self.stop.is_set():
            self._arm_edition_timers()

    async def _note_send_failure(self, exc: DeliveryError | None) -> None:
        """Keep a failed run (or that runs get through again) where `digest status` reads it: the
        failure is on no message, and an operator checking status during an outage saw nothing."""
        try:
            if exc is None:
                await asyncio.to_thread(clear_send_failure, self.store)
            else:
                await asyncio.to_thread(
                    record_send_failure,
                    self.store,
                    at=self.clock(),
                    retry_at=self._send_paused_until,
                    message=f"{exc.message} {exc.hint}",
                )
        except StoreError as err:  # the database busy or gone: the log line has said it all the same
            log.debug("send: the failed run is not recorded for status: %s", err.message)

    async def _apply_kept_unsubscribes(self) -> None:
        """One-click unsubscribes the web app kept while the database was busy: before any send (B5)."""
        try:
            await asyncio.to_thread(
                unsubscribes.apply, self.store, unsubscribes.spool_path(self.settings), now=self.clock()
            )
        except StoreError as exc:
            log.warning("unsubscribes kept by the web app wait for the database: %s", exc.message)

    def _arm_edition_timers(self) -> None:
        """A one-shot reconcile at each zone's next edition instant, so editions go out on time.

        The instant comes from our clock, which may be shifted (DIGEST_NOW); APScheduler runs on the
        system clock, so the timer is set at the same distance from the system's now.
        """
        now, real_now = self.clock(), datetime.now(UTC)
        send_at = self.settings.digest.send_at
        for tz in self._zones:
            day, instant = schedule.next_edition(now, send_at, tz)
            if self._armed.get(tz) == instant:
                continue
            # A little late rather than early: due_edition needs instant <= now on our clock.
            run_at = real_now + (instant - now) + timedelta(milliseconds=200)
            self.scheduler.add_job(
                self._reconcile,
                DateTrigger(run_date=run_at),
                id=f"edition:{tz}",
                replace_existing=True,
                misfire_grace_time=None,
            )
            self._armed[tz] = instant
            log.info("edition=%s/%s next at %s UTC", day, tz, instant.strftime("%Y-%m-%d %H:%M:%S"))
        for tz in set(self._armed) - set(self._zones):  # no active subscriber left in that zone
            with contextlib.suppress(Exception):
                self.scheduler.remove_job(f"edition:{tz}")
            del self._armed[tz]

    # ---------------------------------------------------------------- F6: never skip silently

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES and isinstance(event, JobSubmissionEvent):
            if event.job_id != "poll":  # a long send is normal; the pass after it picks up the rest
                log.info("job=%s skipped: a send is still running", event.job_id)
                return
            log.warning(
                "job=%s still running at %s: this run is skipped (the cycle is longer than its interval)",
                event.job_id,
                ", ".join(t.strftime("%H:%M:%S") for t in event.scheduled_run_times),
            )
        elif event.code == EVENT_JOB_MISSED and isinstance(event, JobExecutionEvent):
            log.warning("job=%s missed its run at %s; the next pass catches up", event.job_id, event.scheduled_run_time)
        elif isinstance(event, JobExecutionEvent) and not isinstance(event.exception, asyncio.CancelledError):
            log.error("job=%s failed: %r", event.job_id, event.exception)


async def _until(task: asyncio.Future[Any], stop: asyncio.Event) -> None:
    """Wait for `task`, or cancel it when `stop` is set first."""
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _install_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event, daemon: Daemon) -> list[int]:
    installed: list[int] = []

    def cancel_sends() -> None:
        for task in daemon._sends:
            task.cancel()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():  # a second signal: stop waiting for messages in flight
            log.warning("%s again: giving up the messages on the wire (they stay pending)", sig.name)
            daemon.abandon.set()  # as `digest send` does: the sending processes are told, the rows released
            loop.call_later(ABANDON_WAIT, cancel_sends)  # whatever still runs then (a database wait)
            return
        log.info("%s: stopping", sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            log.debug("cannot handle %s here; stop the daemon through its stop event", sig.name)
    return installed


async def run_daemon(
    settings: Settings,
    store: Store,
    *,
    clock: Clock,
    stop: asyncio.Event | None = None,
    grace: float = STOP_GRACE,
    ticks: Ticks | None = None,
    transport_factory: TransportFactory | None = None,
    log_setup: Callable[[], None] | None = None,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop`); raise LockHeldError when another daemon has the database.

    `log_setup` repeats the caller's logging set-up in the web app's process."""
    ticks = ticks or Ticks.from_env(os.environ)
    stop = stop or asyncio.Event()
    holder = holder_name()
    daemon = Daemon(
        settings,
        store,
        clock=clock,
        stop=stop,
        grace=grace,
        ticks=ticks,
        holder=holder,
        transport_factory=transport_factory or SmtpTransport,
        log_setup=log_setup,
    )
    try:
        await asyncio.to_thread(acquire, store, holder, lock_clock())
    except BaseException:
        daemon.parser.close()  # started no process yet; closes its thread pool
        raise
    where = mask_url(store.url)
    log.info("daemon started holder=%s database=%s", holder, where)
    loop = asyncio.get_running_loop()
    installed = _install_signals(loop, stop, daemon)
    web: WebProcess | None = None
    try:
        await asyncio.to_thread(warn_orphaned_choices, settings, store)  # once at start, as `digest status` says it
        if settings.web.enabled:  # in its own process (descriptors); a busy port stops the start
            web = await WebProcess(settings, clock=clock, setup=log_setup).start()
        await daemon.run()
    finally:
        if web is not None:  # after the drain: one-click unsubscribes are answered to the end
            await web.stop()
        await asyncio.to_thread(daemon.parser.close)  # already closed by run(), unless the web app failed
        for sig in installed:
            loop.remove_signal_handler(sig)
        if not daemon.lock_lost:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(store.release_lock, LOCK_NAME, holder)
        log.info("daemon stopped holder=%s", holder)
    if daemon.schema_moved is not None:
        raise daemon.schema_moved
    if daemon.lock_lost:
        raise LockHeldError(f"Another digest daemon took over the database {where}; this one stopped.")
