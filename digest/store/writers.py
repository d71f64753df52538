"""The store's two group-commit writers, for async callers: a poll's outcomes and a sender's outbox.

Every other store method opens a short transaction of its own. These two keep one connection for
a whole poll or a whole send, on one thread, and put every result that arrived meanwhile in one
commit (group commit): a transaction per feed or per message costs more than its rows. Each
caller's write still returns only once its own row is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from digest.model import Delivery, EditionRecord, Lapsed, Mark, Moved, Neighbours, PollRecord, PollWritten, Subscriber

if TYPE_CHECKING:
    from digest.store import Store

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]


class PollRecorder:
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
        # SQLite: outcomes without items (a 304, an error, an unchanged body) are a few UPDATEs, so
        # they are written on the loop's own thread, never waiting for a write lock (another
        # process holding it sends the batch to the thread, which waits). From the thread they
        # cost twice as much: sqlite3 releases the GIL around every row, and the busy loop and
        # the thread hand it back and forth row by row (~20 ms of a poll of 1,000 unchanged feeds).
        self._here = store.poll_writer(wait=False) if store.engine.dialect.name == "sqlite" else None
        self._pending: list[tuple[PollRecord, asyncio.Future[PollWritten]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PollRecorder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

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
            if self._here is not None:
                self._here.close()
            self._executor.shutdown(wait=False)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            if self._here is not None:
                await asyncio.sleep(0)  # one turn of the loop: outcomes finishing with these join them
            batch, self._pending = self._pending[: self.MAX_BATCH], self._pending[self.MAX_BATCH :]
            records = [record for record, _ in batch]
            outcomes: list[PollWritten | Exception] | None = self._written_here(records)
            if outcomes is None:
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

    def _written_here(self, records: Sequence[PollRecord]) -> list[PollWritten | Exception] | None:
        """The batch written on the loop's thread, or None: it carries items, or it did not go
        (the write lock was held, or a feed's data failed), and the thread's way writes it."""
        if self._here is None or any(record.items for record in records):
            return None
        try:
            return list(self._here.record(records))
        except Exception:  # rolled back: the thread waits for the lock, or writes feed by feed
            return None

    def _one_by_one(self, records: Sequence[PollRecord]) -> list[PollWritten | Exception]:
        out: list[PollWritten | Exception] = []
        for record in records:
            try:
                out.extend(self._writer.record([record]))
            except Exception as exc:
                out.append(exc)
        return out


_claimant: str | None = None  # this process's name in the claims it makes (set_claimant)


def set_claimant(name: str | None) -> None:
    """Name this process's outbox claims after a worker: "<worker>" in the worker's own process,
    "<worker>/send-N" in its spawned sending processes, so `digest status` gives a worker what
    they hold (issue 15). None: back to "host:pid"."""
    global _claimant
    _claimant = name


def claimant() -> str | None:
    return _claimant


def sender_name() -> str:
    """ "<claimant or host:pid>:random": names one sender's claims; unique even when a pid is reused."""
    return f"{_claimant or f'{socket.gethostname()}:{os.getpid()}'}:{uuid.uuid4().hex[:8]}"


def holder_alive(holder: str) -> bool | None:
    """Whether the process a "host:pid" name (a lock holder, the process in a claim's name) stands
    for still runs: False when it is on this host and no such process exists; else True, or None
    when nobody here can tell (another host, a name without a pid, our own name)."""
    host, _, pid_text = holder.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return None  # our own name: its holder is the caller
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class OutboxWriter:
    """One sender's claims and results: one database connection on one thread, group commits,
    and the lease on its claims renewed while it runs.

    A commit per message on its own connection cost more than sending the message. Here each
    result still waits for its commit before its worker takes the next message (so a kill -9
    leaves at most the messages in flight unrecorded: S1, S2), but one commit carries every result
    that arrived in the same turn of the event loop (group commit: with N connections, up to N
    rows per transaction), on a connection kept open. A failed commit stops the run (S10): every
    result of that group, and every later one, raises it.

    The lease is the sender's heartbeat: renewed every third of it while this writer is open, it
    runs out only when the sender is gone (killed, frozen, its host down); `expire_claims` then
    returns the rows to pending for any sender on any host (B1).
    """

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        lease: timedelta,
        suspend_after: int,
        soft_threshold: float = 5.0,
        soft_decay: timedelta = timedelta(days=7),
    ) -> None:
        self.store, self.clock, self.lease, self.suspend_after = store, clock, lease, suspend_after
        self.soft_threshold, self.soft_decay = soft_threshold, soft_decay  # record_bounce's, unused by hard ones
        self.name = sender_name()
        self._session = store.outbox_session(self.name)
        # SQLite commits a few rows in under 0.1 ms on a kept connection, less than handing the
        # call to a thread and back costs while this loop is busy (1-2 ms, GIL switching), so
        # there the session runs on the loop's own thread. A server database keeps one thread.
        self._thread = (
            None
            if store.engine.dialect.name == "sqlite"
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        )
        self._marks: list[Mark] = []  # results waiting for the next commit
        self._wire: list[int] = []  # rows whose SMTP transaction began, to mark on the wire
        self._permanent: list[int] = []  # subscribers to count a 5xx against
        self._gone: list[tuple[Mark, int, int, str]] = []  # (mark, subscriber, edition, reply): no such user
        self._group: asyncio.Task[None] | None = None  # the commit the next result will join
        self._closing = asyncio.Event()
        self._error: Exception | None = None
        self._unrecorded: list[Mark] = []  # results of the failed commit and after it, tried once more at exit
        self._renewer: asyncio.Task[None] | None = None
        self._renewed: datetime | None = None  # when our lease was last set (a claim or a renewal)

    async def _run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self._thread is None:
            return fn(*args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._thread, partial(fn, *args, **kwargs))

    async def __aenter__(self) -> OutboxWriter:
        self._renewer = asyncio.create_task(self._renew())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()
        if self._renewer is not None:
            await self._renewer
        if self._group is not None:  # on-the-wire marks nobody waited for
            with contextlib.suppress(Exception):  # kept in self._error
                await self._group
        try:
            # What is still claimed was never sent: deliver() finished and recorded every message
            # it started. After a failed commit the claims stay, and run out with their lease.
            if self._error is None:
                await self._run(self._session.release, now=self.clock())
            else:
                await self._record_late()
        finally:
            await self._run(self._session.close)
            if self._thread is not None:
                self._thread.shutdown(wait=False)

    async def _record_late(self) -> None:
        """After a failed commit: the results it carried, and those that came after, once more;
        then the claims left are released. When the database is back by now (a restart that
        outlasted the reconnect pauses), the relay's accepted messages are recorded and not sent
        again, the rows never started go back to pending at once, and no row counts a crash its
        messages did not cause; the worker's next pass need not wait for this sender's lease.
        When it is still down, the claims stay and run out with their lease, as before."""
        marks, self._unrecorded = self._unrecorded, []
        try:
            recorded = await self._run(self._session.record, marks, now=self.clock())
            released = await self._run(self._session.release, now=self.clock())
        except Exception as exc:
            log.warning("outbox: %d results still unrecorded; the claims run out with their lease: %s", len(marks), exc)
            return
        log.warning(
            "outbox: the database is back: %d results recorded late, %d claimed messages pending again",
            recorded,
            released,
        )

    async def subscribers(self, ids: list[int]) -> dict[int, Subscriber]:
        return await self._run(self._session.subscribers, ids)

    async def movers(self, edition: EditionRecord, near: Neighbours, ids: list[int]) -> dict[int, Moved]:
        """`OutboxSession.movers`; no query when no other zone's edition is near this one."""
        return await self._run(self._session.movers, edition, near, ids) if near.cutoffs else {}

    async def claim(
        self, edition_id: int, *, limit: int, due_only: bool, since: datetime | None = None, suspects: bool = False
    ) -> tuple[list[Delivery], Lapsed]:
        """Claim rows; and what taking over the claims of senders that stopped did first."""
        now = self.clock()
        rows = await self._run(
            self._session.claim,
            edition_id,
            now=now,
            lease=self.lease,
            limit=limit,
            due_only=due_only,
            since=since,
            suspects=suspects,
        )
        if self._renewed is None:
            self._renewed = now
        return rows, self._session.lapsed

    def on_wire(self, delivery_id: int) -> None:
        """Mark a claimed row on the wire: its SMTP transaction begins. Not waited for: the mark
        only tells a later takeover that a kill found the message with a relay, not being made
        (`_expire_lapsed`), and rides in the next group commit, long before a slow relay answers."""
        self._wire.append(delivery_id)
        if self._group is None:
            self._group = asyncio.create_task(self._commit())
            # its error is kept in self._error for the next result; nobody need await it here
            self._group.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def wire_marked(self) -> None:
        """Wait until the on-the-wire marks made so far are committed (a suspect's, before the
        sender makes another message beside it)."""
        if self._group is not None:
            with contextlib.suppress(Exception):  # kept in self._error for the next result
                await asyncio.shield(self._group)

    async def still_held(self, ids: Sequence[int]) -> set[int]:
        """Which of these claimed rows are still ours, just before we send them.

        Once a third of the lease has passed since it was last set, it is renewed here and now
        (the background renewal may lag behind a busy loop); a row we no longer hold (our lease
        ran out while we were stopped or frozen, and another sender took it) is left to its new
        holder, so it is not sent twice."""
        now = self.clock()
        if self._renewed is not None and now - self._renewed < self.lease / 3:
            return set(ids)
        held = await self._run(self._session.renew, lease=self.lease)
        self._renewed = now
        return held & set(ids)

    async def add(
        self, mark: Mark, *, permanent_failure_of: int | None = None, no_such_user: tuple[int, int] | None = None
    ) -> None:
        """Record one result; returns once it is committed (with the others of its group).

        `permanent_failure_of`: a subscriber to count one strike against ([smtp] suspend_after);
        `no_such_user`: (subscriber, edition) whose address the server says does not exist, a hard
        bounce as a DSN's would be (suspended and suppressed at once)."""
        if self._error is not None:
            self._unrecorded.append(mark)  # for the last try at exit (`_record_late`)
            raise self._error
        self._marks.append(mark)
        if permanent_failure_of is not None:
            self._permanent.append(permanent_failure_of)
        if no_such_user is not None:
            self._gone.append((mark, *no_such_user, mark.error or ""))
        if self._group is None:
            self._group = asyncio.create_task(self._commit())
        await asyncio.shield(self._group)  # a cancelled waiter must not cancel the others' commit

    async def _commit(self) -> None:
        await asyncio.sleep(0)  # one turn of the loop: results that arrived with this one join it
        marks, self._marks = self._marks, []
        failures, self._permanent = self._permanent, []
        gone, self._gone = self._gone, []
        wire, self._wire = self._wire, []
        self._group = None  # results from now on go into the next group
        try:
            await self._run(self._session.record, marks, now=self.clock(), on_wire=wire)
            for mark, subscriber_id, edition_id, reply in gone:
                await asyncio.to_thread(self._hard_bounce, mark, subscriber_id, edition_id, reply)
            for subscriber_id in failures:
                if await asyncio.to_thread(
                    self.store.count_permanent_failure,
                    subscriber_id,
                    suspend_after=self.suspend_after,
                    now=self.clock(),
                ):
                    log.warning(
                        "subscriber=%d suspended after %d permanent failures", subscriber_id, self.suspend_after
                    )
        except Exception as exc:
            if self._error is None:
                self._unrecorded.extend(marks)
            self._error = exc
            raise

    def _hard_bounce(self, mark: Mark, subscriber_id: int, edition_id: int, reply: str) -> None:
        """A synchronous "550 5.1.1 user unknown" recorded as the hard bounce a DSN would bring (the
        same path, so `subscribers show` and `status` tell it alike); once per outbox row."""
        status = reply.split(" ", 2)[1] if reply.count(" ") >= 1 else None
        outcome = self.store.record_bounce(
            dedupe=hashlib.sha256(f"rcpt:{mark.delivery_id}".encode()).hexdigest(),
            subscriber_id=subscriber_id,
            edition_id=edition_id,
            kind="hard",
            status=status,
            diagnostic=reply,
            via="rcpt",
            now=self.clock(),
            threshold=self.soft_threshold,
            half_life=self.soft_decay,
        )
        if outcome == "suppressed":
            log.warning(
                "subscriber=%d suspended: the SMTP server says the address does not exist (%s)", subscriber_id, reply
            )

    async def _renew(self) -> None:
        """Keep our claims' lease running while this sender lives (a long, rate-limited send)."""
        every = self.lease.total_seconds() / 3
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), every)
            if not self._closing.is_set():
                with contextlib.suppress(Exception):  # a failing database shows up in the next commit
                    now = self.clock()
                    await self._run(self._session.renew, lease=self.lease)
                    self._renewed = now
