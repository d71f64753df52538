"""Sending with one process per core: what `digest send` and the daemon run (through `pipeline.send`).

One Python process keeps one core busy at several hundred messages a second (rendering,
splicing each subscriber's parts, aiosmtplib, SQLite). `send_editions` has the editions built
here, then sends from this process and N-1 more (multiprocessing, spawn: nothing
half-initialised is inherited), each with its share of [smtp] connections and rate_limit. They
claim disjoint rows of the outbox a few at a time (pipeline.sender, store claims), so they never
send the same row, and each reports its counts back here. When the caller expects enough rows,
those processes are started before the editions are built, so their start-up overlaps the build.

Stopping: SIGTERM or SIGINT here is passed on to every worker, which finishes and records the
messages on the wire and returns its other claims to pending (S4); a worker whose parent is gone
(kill -9) does the same. Each process gives the replies to its messages on the wire WIRE_GRACE
seconds (`sender.bound_wire`), then gives them up (pending again); `abandon` here (a second
Ctrl-C) is passed on as SIGUSR1, which gives them up at once. A worker killed outright stops
renewing the lease on its claims; the others (or the next run) take them over once it runs out.

With one worker (workers = 1, one core, or a small edition) everything runs in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from digest import errors, migrations
from digest.config import Settings, SmtpSettings
from digest.deliver import Transport
from digest.errors import DeliveryError, DigestError
from digest.model import EditionRecord
from digest.pipeline.sender import Clock, SendReport, bound_wire, send_edition, taken_over
from digest.store import Store
from digest.store.writers import claimant, set_claimant

log = logging.getLogger(__name__)

MIN_ROWS_PER_WORKER = 500  # below this a worker's start-up (~0.5 s of imports) costs more than it saves
PARENT_CHECK = 0.5  # seconds between a worker's checks that `digest send` is still there
QUIT_WAIT = 1.0  # seconds for the connections' QUIT once messages on the wire were given up
ABANDON = signal.SIGUSR1  # parent to sending process: give up the messages on the wire now

TransportFactory = Callable[[SmtpSettings], Transport]
# Builds (or finds) the editions to send, once the first connection is up: (edition, its report).
Prepare = Callable[[], Awaitable[list[tuple[EditionRecord, SendReport]]]]


def plan_workers(requested: int, *, connections: int, rows: int) -> int:
    """How many sending processes: `requested` (0: one per core), at most one per connection, and
    none that would have fewer than MIN_ROWS_PER_WORKER rows."""
    wanted = requested if requested > 0 else (os.cpu_count() or 1)
    return max(1, min(wanted, connections, -(-rows // MIN_ROWS_PER_WORKER)))


def shares(smtp: SmtpSettings, workers: int) -> list[SmtpSettings]:
    """Each worker's [smtp]: the connections dealt out, the rate limit split evenly (B11)."""
    base, extra = divmod(smtp.connections, workers)
    return [
        replace(smtp, connections=base + (1 if i < extra else 0), rate_limit=smtp.rate_limit / workers)
        for i in range(workers)
    ]


@dataclass(frozen=True)
class _Job:
    settings: Settings
    smtp: SmtpSettings  # this worker's share
    editions: tuple[EditionRecord, ...]
    # The parent's clock minus the wall clock (DIGEST_NOW shifts it): every process of a run reads
    # the same time, which leases compare across processes.
    offset: timedelta
    run_started: datetime  # when the run began: no sender retries a row deferred since then
    due_only: bool  # only rows whose retry time has come (the daemon)
    parent: int
    transport: TransportFactory
    setup: Callable[[], None] | None  # e.g. the CLI's logging set-up (a child starts with none)
    claimant: str | None = None  # the worker this run sends for: claims named "<it>/send-N"
    schema: str | None = None  # the schema revision the parent's code needs (migrations.head() there)


@dataclass(frozen=True)
class _Outcome:
    counts: dict[int, tuple[int, int, int, int]]  # edition id -> sent, skipped, failed, deferred
    error: tuple[str, str, str] | None = None  # a DigestError: class name, message, hint
    abandoned: dict[int, list[str]] = field(default_factory=dict)  # edition id -> addresses given up on the wire
    skipped_why: dict[int, dict[str, int]] = field(default_factory=dict)  # edition id -> reason -> count


async def send_editions(
    settings: Settings,
    store: Store,
    prepare: Prepare,
    *,
    clock: Clock,
    transport: TransportFactory,
    workers: int,
    stop: asyncio.Event | None = None,
    setup: Callable[[], None] | None = None,
    due_only: bool = False,
    expected_rows: int = 0,
    abandon: asyncio.Event | None = None,
) -> list[SendReport]:
    """Send the editions `prepare` returns, from this process and as many more as `workers` and
    the number of rows call for (plan_workers).

    `prepare` runs once the first SMTP connection is up: a wrong host or password stops the run
    before anything is built. `expected_rows`, the caller's estimate of the rows to send, starts
    the processes it calls for before that, so their start-up overlaps the connection and the
    build (those not needed after all are dismissed).

    Once `stop` is set, messages on the wire get WIRE_GRACE seconds for their reply, then are
    given up (`abandon`, which the caller may also set itself: a second Ctrl-C); each report
    names the addresses given up.
    """
    # A long-running caller (the daemon, a worker) learns of an upgrade at its next heartbeat: a pass
    # that began before then would send with code older than the schema (one line, as at start).
    await asyncio.to_thread(store.check_schema_unchanged)
    stop = stop or asyncio.Event()
    abandon = abandon or asyncio.Event()
    early = plan_workers(workers, connections=settings.smtp.connections, rows=expected_rows) - 1
    starting = _Starting(early) if expected_rows > 0 and early > 0 else None
    bound = asyncio.create_task(bound_wire(stop, abandon))
    try:
        return await _send_editions(
            settings,
            store,
            prepare,
            clock=clock,
            transport=transport,
            workers=workers,
            stop=stop,
            abandon=abandon,
            setup=setup,
            due_only=due_only,
            starting=starting,
        )
    finally:
        bound.cancel()
        if starting is not None:
            await starting.dismiss()  # those given no job (all of them if the run stopped early)


@contextlib.asynccontextmanager
async def _connected(factory: TransportFactory, smtp: SmtpSettings, abandon: asyncio.Event) -> AsyncIterator[Transport]:
    """factory(smtp), open; closed with a QUIT on each connection, unless messages on the wire were
    given up (`abandon`): a connection may then still wait for the reply to one, and its QUIT
    would wait with it (up to [smtp] timeout). Then QUIT gets QUIT_WAIT seconds, and what is left
    closes with this process, which is stopping."""
    opened = factory(smtp)
    transport = await opened.__aenter__()
    try:
        yield transport
    finally:
        if abandon.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(QUIT_WAIT):
                    await opened.__aexit__(None, None, None)
        else:
            await opened.__aexit__(None, None, None)


async def _send_editions(
    settings: Settings,
    store: Store,
    prepare: Prepare,
    *,
    clock: Clock,
    transport: TransportFactory,
    workers: int,
    stop: asyncio.Event,
    abandon: asyncio.Event,
    setup: Callable[[], None] | None,
    due_only: bool,
    starting: _Starting | None,
) -> list[SendReport]:
    async with _connected(transport, settings.smtp, abandon) as first:
        prepared = await prepare()
        editions = [edition for edition, _ in prepared]
        reports = [report for _, report in prepared]
        now = clock()
        rows = 0
        for edition, report in zip(editions, reports, strict=True):
            # S2: a dead sender's claims taken over are logged, with the re-sends they may bring
            taken_over(edition, await asyncio.to_thread(store.expire_claims, edition.id, now=now), report)
            rows += await asyncio.to_thread(store.count_claimable, edition.id, now=now, due_only=due_only)
        n = plan_workers(workers, connections=settings.smtp.connections, rows=rows)
        if n == 1:
            await _send_all(
                settings,
                store,
                editions,
                reports,
                transport=first,
                clock=clock,
                stop=stop,
                abandon=abandon,
                run_started=now,
                due_only=due_only,
            )
            return reports
    if stop.is_set():  # stopped while the editions were being built: nothing was claimed yet
        return reports
    # Each sender starts at a different edition and goes round: an edition's section sets are then
    # rendered mostly by one process, not by all of them (rendering is much of the CPU per message).
    rounds = [editions[i * len(editions) // n :] + editions[: i * len(editions) // n] for i in range(n)]
    parts = shares(settings.smtp, n)
    jobs = [
        _Job(
            settings,
            parts[i],
            tuple(rounds[i]),
            clock() - _wall(),
            now,
            due_only,
            os.getpid(),
            transport,
            setup,
            # Its claims are named after this process ("<this>/send-N"), which it never outlives, so
            # that a later run waiting for them can tell whose they are (sender._who).
            claimant() or f"{socket.gethostname()}:{os.getpid()}",
            migrations.head(),
        )
        for i in range(1, n)
    ]
    by_id = {rep.edition_id: rep for rep in reports}

    async def mine() -> None:
        _announce(parts[0], rounds[0])
        try:
            async with _connected(transport, parts[0], abandon) as own:
                await _send_all(
                    settings,
                    store,
                    rounds[0],
                    [by_id[e.id] for e in rounds[0]],
                    transport=own,
                    clock=clock,
                    stop=stop,
                    abandon=abandon,
                    run_started=now,
                    due_only=due_only,
                )
        except BaseException:
            stop.set()  # the others stop too, finishing what they have on the wire
            raise

    local, remote = await asyncio.gather(mine(), _run(jobs, stop, starting, abandon), return_exceptions=True)
    if isinstance(remote, BaseException):
        raise remote
    for outcome in remote:
        for rep in reports:
            sent, skipped, failed, deferred = outcome.counts.get(rep.edition_id, (0, 0, 0, 0))
            rep.sent, rep.skipped = rep.sent + sent, rep.skipped + skipped
            rep.failed, rep.deferred = rep.failed + failed, rep.deferred + deferred
            rep.abandoned = sorted([*rep.abandoned, *outcome.abandoned.get(rep.edition_id, [])])
            for reason, n in outcome.skipped_why.get(rep.edition_id, {}).items():
                rep.skipped_why[reason] = rep.skipped_why.get(reason, 0) + n
    for rep in reports:
        rep.complete = await asyncio.to_thread(store.close_edition_if_done, rep.edition_id)
    if isinstance(local, BaseException):
        raise local
    for outcome in remote:
        if outcome.error is not None:
            name, message, hint = outcome.error
            kind = getattr(errors, name, DeliveryError)
            raise (
                kind(message, hint=hint)
                if isinstance(kind, type) and issubclass(kind, DigestError)
                else DeliveryError(message, hint=hint)
            )
    return reports


def _announce(smtp: SmtpSettings, editions: Sequence[EditionRecord]) -> None:
    log.info(
        "sending process %d: %d connection(s), editions %s",
        os.getpid(),
        smtp.connections,
        ", ".join(f"{e.day}/{e.timezone}" for e in editions),
    )


async def _send_all(
    settings: Settings,
    store: Store,
    editions: list[EditionRecord],
    reports: list[SendReport],
    *,
    transport: Transport,
    clock: Clock,
    stop: asyncio.Event,
    abandon: asyncio.Event,
    run_started: datetime,
    due_only: bool,
) -> None:
    for edition, rep in zip(editions, reports, strict=True):
        await send_edition(
            settings,
            store,
            edition,
            transport=transport,
            clock=clock,
            stop=stop,
            abandon=abandon,
            run_started=run_started,
            due_only=due_only,
            report=rep,
        )
        if stop.is_set():
            return


class _Starting:
    """Sending processes started before the editions are built: spawning one and importing what it
    sends with takes ~0.8 s, which then overlaps the build instead of following it. Each waits for
    its job on its own queue; `None` (or its parent gone) sends it home."""

    def __init__(self, n: int) -> None:
        self.ctx = multiprocessing.get_context("spawn")
        self.results: multiprocessing.Queue[tuple[int, _Outcome]] = self.ctx.Queue()
        self.inboxes: list[multiprocessing.Queue[_Job | None]] = [self.ctx.Queue() for _ in range(n)]
        self.procs = [
            self.ctx.Process(
                target=_worker_wait, args=(os.getpid(), inbox, i, self.results), name=f"digest-send-{i + 1}"
            )
            for i, inbox in enumerate(self.inboxes)
        ]
        for proc in self.procs:
            proc.start()
        self.given = 0  # processes that have a job; the others are dismissed

    def give(self, jobs: list[_Job]) -> list[multiprocessing.process.BaseProcess]:
        """Hand the jobs to the processes already started, and start more if there are more jobs."""
        procs: list[multiprocessing.process.BaseProcess] = []
        for i, job in enumerate(jobs):
            if i < len(self.procs):
                self.inboxes[i].put(job)
                procs.append(self.procs[i])
            else:
                proc = self.ctx.Process(target=_worker_main, args=(job, i, self.results), name=f"digest-send-{i + 1}")
                proc.start()
                procs.append(proc)
        self.given = len(jobs)
        return procs

    async def dismiss(self) -> None:
        for inbox in self.inboxes[self.given :]:
            inbox.put(None)
        for proc in self.procs[self.given :]:
            await asyncio.to_thread(proc.join)


async def _run(
    jobs: list[_Job], stop: asyncio.Event, starting: _Starting | None = None, abandon: asyncio.Event | None = None
) -> list[_Outcome]:
    """Start one process per job (or hand the jobs to those `starting`); wait for all, passing a
    stop (or the first error), and an abandon, on to the rest."""
    if not jobs:
        return []
    if starting is None:
        starting = _Starting(0)
    results = starting.results
    procs = starting.give(jobs)
    outcomes: dict[int, _Outcome] = {}
    stopping = abandoning = False

    def stop_all(sig: signal.Signals = signal.SIGTERM) -> None:
        for proc in procs:
            if proc.pid is not None and proc.exitcode is None:
                with contextlib.suppress(ProcessLookupError):  # exited since
                    os.kill(proc.pid, sig)

    while len(outcomes) < len(procs):
        if stop.is_set() and not stopping:
            stopping = True
            stop_all()
        if abandon is not None and abandon.is_set() and not abandoning:
            abandoning = True
            stop_all(ABANDON)
        try:
            i, outcome = await asyncio.to_thread(results.get, True, 0.2)
        except queue.Empty:
            for i, proc in enumerate(procs):
                if i not in outcomes and proc.exitcode is not None:
                    outcomes.update(_drain(results))  # a worker puts its outcome before it exits
                    if i not in outcomes:
                        outcomes[i] = _lost(proc, stopping)
            continue
        outcomes[i] = outcome
        if outcome.error is not None and not stopping:
            stopping = True
            stop.set()  # this process's own sending stops too
            stop_all()
    for proc in procs:
        await asyncio.to_thread(proc.join)
    return [outcomes[i] for i in range(len(procs))]


def _lost(proc: multiprocessing.process.BaseProcess, stopping: bool) -> _Outcome:
    """A worker that exited without a report: killed, crashed, or stopped before it had started."""
    detail = f"Sending process {proc.pid} stopped with exit code {proc.exitcode} before it reported."
    if stopping:  # asked to stop while it was still starting (or hit by the same Ctrl-C)
        log.warning("%s Anything it had claimed is sent by the next run.", detail)
        return _Outcome({})
    return _Outcome(
        {},
        (
            "DeliveryError",
            detail,
            "Messages it had not recorded stay claimed by it; the next "
            "`digest send` sends them (some may arrive twice).",
        ),
    )


def _drain(results: multiprocessing.Queue[tuple[int, _Outcome]]) -> dict[int, _Outcome]:
    got: dict[int, _Outcome] = {}
    while True:
        try:
            i, outcome = results.get_nowait()
        except queue.Empty:
            return got
        got[i] = outcome


# --------------------------------------------------------------------------- in the worker process


def _worker_wait(
    parent: int,
    inbox: multiprocessing.Queue[_Job | None],
    index: int,
    results: multiprocessing.Queue[tuple[int, _Outcome]],
) -> None:
    """A process started before its job was known (`_Starting`): it has imported what sending
    needs by the time the job comes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(ABANDON, signal.SIG_IGN)  # until _work listens: nothing is on the wire before
    while True:
        try:
            job = inbox.get(timeout=PARENT_CHECK)
        except queue.Empty:
            if os.getppid() != parent:
                return  # `digest send` was killed before it had a job for us: nothing was claimed
            continue
        if job is not None:
            _worker_main(job, index, results)
        return


def _worker_main(job: _Job, index: int, results: multiprocessing.Queue[tuple[int, _Outcome]]) -> None:
    # Ctrl-C reaches every process of the terminal's group; the parent passes it on as SIGTERM
    # once this process listens (in _work), so until then it is ignored here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(ABANDON, signal.SIG_IGN)
    if job.setup is not None:
        job.setup()
    if job.claimant is not None:
        set_claimant(f"{job.claimant}/send-{index + 1}")
    results.put((index, asyncio.run(_work(job))))


async def _work(job: _Job) -> _Outcome:
    stop, abandon = asyncio.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(ABANDON, abandon.set)
    watcher = asyncio.create_task(_watch_parent(job.parent, stop))
    bound = asyncio.create_task(bound_wire(stop, abandon))

    def clock() -> datetime:
        return _wall() + job.offset

    _announce(job.smtp, job.editions)
    store: Store | None = None
    reports = [SendReport(e.id, e.day, e.timezone, created=False) for e in job.editions]
    error: tuple[str, str, str] | None = None
    try:
        # As its parent checked (at start, at each heartbeat and pass): the schema must be the one
        # this code needs (Store) and the one the parent's needs (the code on disk may be newer),
        # or the run stops with the same one line, reported back rather than as a traceback here.
        store = await asyncio.to_thread(Store, job.settings.database_url)
        await asyncio.to_thread(store.check_schema_unchanged, job.schema)
        async with _connected(job.transport, job.smtp, abandon) as transport:
            for edition, rep in zip(job.editions, reports, strict=True):
                await send_edition(
                    job.settings,
                    store,
                    edition,
                    transport=transport,
                    clock=clock,
                    stop=stop,
                    abandon=abandon,
                    run_started=job.run_started,
                    due_only=job.due_only,
                    report=rep,
                )
                if stop.is_set():
                    break
    except DigestError as exc:
        error = (type(exc).__name__, exc.message, exc.hint)
    finally:
        watcher.cancel()
        bound.cancel()
        if store is not None:
            store.close()
    return _Outcome(
        {r.edition_id: (r.sent, r.skipped, r.failed, r.deferred) for r in reports},
        error,
        {r.edition_id: r.abandoned for r in reports if r.abandoned},
        {r.edition_id: r.skipped_why for r in reports if r.skipped_why},
    )


def _wall() -> datetime:
    return datetime.now(UTC)


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """`digest send` was killed: finish what is on the wire, then stop like on SIGTERM."""
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK)
    stop.set()
