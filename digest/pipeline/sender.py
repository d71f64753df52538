"""One sender's loop over one edition: claim rows, make each subscriber's message, deliver, record.

A row is marked sent only after the server accepted the message; a crash leaves it claimed by a
sender that is gone, whose lease then runs out, and the next sender sends it again with the same
Message-ID (A8). Each subscriber is read as they are *now*, just before their message is made (an
unsubscribe or a section change that arrives after the edition was built is honoured: B5).

Several senders may work on one edition at once, in one process or many, on one host or many
(`pipeline.workers`): each claims a few rows at a time, records its results a batch at a time
through the store's `OutboxWriter`, and, when nothing is left to claim, waits for the rows others
hold until they are sent or their lease runs out.

Stopping (S4): once `stop` is set no new message starts, and those on the wire get WIRE_GRACE
seconds for the server's reply (`bound_wire`); then, or at once when asked again (`abandon`), they
are given up: their rows go back to pending, no crash counted, and the report names them, since
each may or may not have reached its subscriber. A slow relay once kept `digest send` waiting for
minutes after Ctrl-C (the daemon bounded it; now both do, here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from digest import schedule
from digest.compose import PlacedStory
from digest.config import Settings
from digest.deliver import Envelope, Outcome, Refusal, Result, Transport, deliver, refusal
from digest.errors import CircuitOpenError, DigestError, SubscriberError, is_bug
from digest.model import ClaimHolder, Delivery, EditionRecord, Lapsed, Mark, Moved
from digest.pipeline.mailer import EditionMailer
from digest.store import (
    ACTIVE,
    FAILED,
    MAX_CRASHES,
    PAUSED,
    PENDING,
    REMOVED,
    SENT,
    SKIPPED,
    SUSPENDED,
    UNSUBSCRIBED,
    Store,
)
from digest.store.writers import OutboxWriter, holder_alive

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

CLAIM_ROWS = 100  # rows claimed at once; all of them are sent or released by the same sender
READ_AHEAD = 8  # subscribers read at once, just before their messages are made
HELD_POLL = 0.2  # seconds between looks at rows other senders hold, once nothing is left to claim
STOP_GRACE = 30.0  # seconds from SIGTERM or SIGINT to the exit, for `digest send` and the daemon alike
WIRE_GRACE = 20.0  # of which the replies to the messages on the wire may take this long (S4)
DAEMON_LOCK = "daemon"  # the daemon's lock (daemon.LOCK_NAME: a shell this module does not import)


@dataclass
class SendReport:
    edition_id: int
    day: date
    timezone: str
    created: bool
    sent: int = 0
    skipped: int = 0
    # Why each skipped message was not sent, as "<count> <reason>" reads (`skip_reason`): a
    # cron-run `digest send` said only "N skipped", and an operator had to read the outbox to know.
    skipped_why: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    deferred: int = 0
    complete: bool = False
    errors: list[str] = field(default_factory=list)
    resumed: bool = False  # an earlier edition whose pending messages this run sent (not the run's own day)
    # Addresses whose message was on the wire when the run stopped without its reply: it may or may
    # not have reached them; their rows are pending again.
    abandoned: list[str] = field(default_factory=list)


NOTHING_NEW = "had no story in the sections they chose"
_SKIPPED_STATUS = {  # a subscriber's status now -> why their message of an edition built before was skipped
    None: "were erased since the edition was built",
    PAUSED: "paused their subscription since the edition was built",
    UNSUBSCRIBED: "unsubscribed since the edition was built",
    SUSPENDED: "were suspended since the edition was built (their address bounced or was refused)",
    REMOVED: "were removed from the config since the edition was built",
}


def skip_reason(status: str | None) -> str:
    """Why a subscriber with this status now (None: no row left) got no message of an edition
    built while they were active."""
    return _SKIPPED_STATUS.get(status, f"are {status} now")


def skipped_text(rep: SendReport) -> str:
    """ "3 skipped (2 had no story in the sections they chose, 1 unsubscribed since ...)"."""
    return skipped_words(rep.skipped, rep.skipped_why)


def skipped_words(skipped: int, reasons: dict[str, int]) -> str:
    """`skipped_text` of any count and reasons (`send --dry-run` says its own so)."""
    why = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items(), key=lambda x: (-x[1], x[0])))
    return f"{skipped} skipped" + (f" ({why})" if why else "")


def _skipped(rep: SendReport, reason: str) -> None:
    rep.skipped += 1
    rep.skipped_why[reason] = rep.skipped_why.get(reason, 0) + 1


def gives_up(settings: Settings, edition: EditionRecord, now: datetime) -> bool:
    """Whether a message of `edition` the server deferred again (4xx) is marked failed now:
    `[smtp] give_up_after` after the edition was built, but never while the edition is within
    `[digest] catch_up` (when set): a later `digest send` or the daemon still retries it then, and
    an operator who allows a 30-hour catch-up expects its messages still to be there to catch up.
    Unset, catch_up is the edition's own day, and give_up_after alone decides (as before)."""
    if now - edition.created_at < settings.smtp.give_up_after:
        return False
    digest = settings.digest
    if digest.catch_up is None:
        return True
    return not schedule.within_catch_up(now, edition.day, digest.send_at, edition.timezone, digest.catch_up)


def _retry_delay(attempts: int) -> timedelta:
    # B7: back off between attempts to the same destination; a daily digest gives up within a day.
    delay: timedelta = timedelta(minutes=5) * (2 ** max(attempts - 1, 0))
    return min(delay, timedelta(hours=2))


async def send_edition(
    settings: Settings,
    store: Store,
    edition: EditionRecord,
    *,
    transport: Transport,
    clock: Clock,
    stop: asyncio.Event | None = None,
    due_only: bool = False,
    run_started: datetime | None = None,
    report: SendReport | None = None,
    on_result: Callable[[Result], None] | None = None,
    abandon: asyncio.Event | None = None,
) -> SendReport:
    """Send every pending row of the edition (with due_only, only those whose retry time has come).

    Rows are claimed CLAIM_ROWS at a time, so any number of these may run at once, in this
    process or others, each sending different rows. Once `abandon` is set, the messages on the
    wire are given up without their reply (S4: see the module's docstring).
    """
    rep = report or SendReport(edition.id, edition.day, edition.timezone, created=False)
    since = run_started or clock()  # rows this run defers are not retried by this run
    mailer = await asyncio.to_thread(EditionMailer, settings, store, edition)
    taken_over(edition, await asyncio.to_thread(store.expire_claims, edition.id, now=clock()), rep)
    # Other zones' editions near this one: a subscriber who moved here from one of them is not sent
    # again what they were sent there, nor left without what came between (`OutboxSession.movers`).
    near = await asyncio.to_thread(store.neighbours, edition)
    rows: dict[int, tuple[Delivery, str, str]] = {}  # on the wire: the row, its Message-ID and address
    told: dict[str, bool] = {}  # other senders whose held rows we wait for, logged (True: as stopped)
    idle = asyncio.Event()  # set while none of our messages is on the wire
    idle.set()

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    async def envelopes() -> AsyncIterator[Envelope]:
        while not stopped():
            # A row that crashed before (S8) is made alone, nothing else of ours on the wire: if
            # making it kills the process again, no message in flight goes twice for it, and it
            # alone counts the crash (the first of our rows not on the wire: `_expire_lapsed`).
            # Once it is on the wire it holds back no one: a kill from then on counts no crash,
            # so the others are made and sent beside it, over the other connections, however
            # long the relay keeps it (up to the 300 s wait after DATA). Waiting for its answer
            # first held the whole edition behind one slow reply (audit finding 4).
            if idle.is_set():
                suspect, lapsed = await outbox.claim(edition.id, limit=1, due_only=due_only, since=since, suspects=True)
                taken_over(edition, lapsed, rep)
                if suspect:
                    async for envelope in made(suspect):
                        yield envelope
                        # Its on-the-wire mark is in the database before another message is
                        # made, so a crash making that one is not counted against it.
                        await outbox.wire_marked()
                    continue
            batch, lapsed = await outbox.claim(edition.id, limit=CLAIM_ROWS, due_only=due_only, since=since)
            taken_over(edition, lapsed, rep)
            if not batch:
                if not idle.is_set():
                    await idle.wait()  # a suspect waits for a clear wire: ours in flight are recorded first
                    continue
                # Rows another sender holds are its to send; if it stops renewing their lease
                # (killed, its host gone), they are ours once the lease runs out (B1).
                if not await _others_hold(
                    store,
                    edition,
                    outbox.name,
                    clock=clock,
                    stop=stop,
                    report=rep,
                    lease=settings.smtp.claim_lease,
                    told=told,
                ):
                    return
                continue
            for start in range(0, len(batch), READ_AHEAD):
                async for envelope in made(batch[start : start + READ_AHEAD]):
                    yield envelope
                if stopped():
                    return  # the rest of the claim is released when the outbox closes

    async def made(chunk: list[Delivery]) -> AsyncIterator[Envelope]:
        """The chunk's messages, each made just before it goes; the rows that get none are recorded."""
        # Read just before their turn, so a change made while the rows before were being sent is
        # honoured (B5, S9): at most READ_AHEAD messages ahead.
        held = await outbox.still_held([d.id for d in chunk])
        chunk = [d for d in chunk if d.id in held]  # the others were taken over (B1)
        subs = await outbox.subscribers([d.subscriber_id for d in chunk])
        moved = await outbox.movers(edition, near, [d.subscriber_id for d in chunk])
        gaps: dict[int, list[PlacedStory]] = {}
        for subscriber, move in moved.items():
            if move.since is not None:  # clustered off the loop: the other connections keep sending
                gaps[subscriber] = await asyncio.to_thread(mailer.gap_stories, move.since)
        for d in chunk:
            if stopped():
                return  # the rest of the claim is released when the outbox closes
            sub = subs.get(d.subscriber_id)
            if sub is None or sub.status != ACTIVE:  # unsubscribed after the edition was built (S9)
                await outbox.add(Mark(d.id, SKIPPED, error="subscriber no longer active", attempted=False))
                _skipped(rep, skip_reason(None if sub is None else sub.status))
                continue
            if sub.damaged:  # R7: nobody can tell which sections they chose; recorded, not retried
                await failed_alone(d, f"{sub.damaged}; choose them again to receive editions")
                continue
            try:
                # their sections as they are now (B5); a mover's without what they had in their
                # former zone, and with what no edition of either zone brought them
                move = moved.get(d.subscriber_id, Moved())
                template = mailer.template(sub.sections, had=move.had, gap=gaps.get(d.subscriber_id, ()))
                if template is None:  # nothing in their sections: no empty email, not retried (S11)
                    await outbox.add(
                        Mark(d.id, SKIPPED, error="nothing new in the subscriber's sections", attempted=False)
                    )
                    _skipped(rep, NOTHING_NEW)
                    continue
                message_id = mailer.message_id(d.subscriber_id)  # an HMAC: once, for the message and its record
                data = mailer.personalise(template, sub, now=clock(), message_id=message_id)
            except SubscriberError as exc:
                # One subscriber's bad address (CR/LF, NUL... from an old database or a direct
                # insert) fails that row alone, recorded and not retried; the run goes on for
                # everyone after it.
                await failed_alone(d, exc.message)
                continue
            except DigestError:
                raise  # the operator's to fix (a template that does not render): one line, the run stops
            except BaseException as exc:
                # S8: an error the code did not expect, met on this subscriber's data (a bug, or a
                # Rust extension's panic), fails this row alone: tried again later, parked at
                # MAX_CRASHES; the others still go.
                if not is_bug(exc):
                    raise
                await crashed(d, exc)
                continue
            rows[d.id] = (d, message_id, sub.email)
            idle.clear()
            outbox.on_wire(d.id)  # from here a kill finds it with the relay, not being made (S8)
            yield Envelope(key=d.id, sender=mailer.return_path(sub), recipient=sub.email, data=data, crlf=True)

    async def failed_alone(d: Delivery, error: str) -> None:
        await outbox.add(Mark(d.id, FAILED, error=error, attempted=False))
        rep.failed += 1
        rep.errors.append(f"subscriber {d.subscriber_id}: {error}")
        log.warning("edition=%s subscriber=%d failed: %s", edition.day, d.subscriber_id, error)

    async def crashed(d: Delivery, exc: BaseException) -> None:
        crashes = d.crashes + 1
        error = f"making the message failed: {type(exc).__name__}: {exc}"
        log.error(
            "edition=%s subscriber=%d: %s (crash %d of %d)",
            edition.day,
            d.subscriber_id,
            error,
            crashes,
            MAX_CRASHES,
            exc_info=exc,  # a bug: the traceback is what a report needs
        )
        if crashes >= MAX_CRASHES:
            error = f"parked after {crashes} crashes; {error}"
            await outbox.add(Mark(d.id, FAILED, error=error, attempted=False, crashed=True))
            rep.failed += 1
            rep.errors.append(f"subscriber {d.subscriber_id}: {error}")
            return
        retry = clock() + _retry_delay(crashes)
        await outbox.add(Mark(d.id, PENDING, error=error, next_attempt_at=retry, attempted=False, crashed=True))
        rep.deferred += 1

    async def record(result: Result) -> None:
        d, message_id, _ = rows.pop(result.key)
        try:
            await recorded(d, message_id, result)
        finally:
            if not rows:
                idle.set()

    # B12: the permanent refusals of the current run of failures, not yet recorded. A relay that
    # refuses everyone ("554 5.7.1 Relay access denied" at RCPT) is the operator's to fix, and
    # its refusals say nothing of the addresses: they are judged only when the run of failures
    # ends. A message the server takes ends it, and they are recorded (rows failed, strikes
    # counted); the circuit breaker opening leaves them claimed, and the outbox's release puts
    # them back to pending, nobody charged. Nothing is written before that judgement, so a crash
    # meanwhile leaves them claimed too: their lease runs out and they are tried again.
    streak: list[tuple[Delivery, Result]] = []

    async def refused(d: Delivery, result: Result) -> None:
        """Record one permanent refusal: the row failed, and what it says of the address."""
        why = refusal(result)
        mark = Mark(d.id, FAILED, error=result.detail)
        if why is Refusal.MESSAGE:  # the message was refused (content, policy), not the address
            await outbox.add(mark)
        elif why is Refusal.NO_SUCH_USER:
            await outbox.add(mark, no_such_user=(d.subscriber_id, edition.id))
        else:
            await outbox.add(mark, permanent_failure_of=d.subscriber_id)
        rep.failed += 1
        log.warning(
            "edition=%s subscriber=%d failed permanently (%s): %s",
            edition.day,
            d.subscriber_id,
            why.value,
            result.detail,
        )

    async def judged() -> None:
        held, streak[:] = list(streak), []
        await asyncio.gather(*(refused(d, result) for d, result in held))

    too_big: list[Result] = []  # this run's messages the server would not take for their size

    def said_too_big(d: Delivery, result: Result) -> None:
        """Once a run: the edition is too big for the relay. Each row keeps the reply (`digest
        status`, `digest outbox`); the operator needs one line saying which edition and what to
        change, not one per subscriber, and no subscriber is charged."""
        too_big.append(result)
        if len(too_big) == 1:
            log.warning(
                "edition %s %s is too big for the SMTP server: subscriber %d: %s; its messages stay pending "
                "and are charged to no one (the daemon retries them; `digest send --date %s --retry-now` at once)",
                edition.day,
                edition.timezone,
                d.subscriber_id,
                result.detail,
                edition.day,
            )

    async def recorded(d: Delivery, message_id: str, result: Result) -> None:
        now = clock()
        if result.too_big:
            said_too_big(d, result)
        if result.outcome is Outcome.SENT:
            if streak:
                await judged()
            await outbox.add(Mark(d.id, SENT, message_id=message_id))
            rep.sent += 1
        elif result.outcome is Outcome.PERMANENT:
            streak.append((d, result))  # judged when the run of failures ends (B12)
        elif gives_up(settings, edition, now):
            await outbox.add(Mark(d.id, FAILED, error=f"gave up: {result.detail}"))
            rep.failed += 1
        else:
            await outbox.add(
                Mark(d.id, PENDING, error=result.detail, next_attempt_at=now + _retry_delay(d.attempts + 1))
            )
            rep.deferred += 1
        if on_result:
            on_result(result)

    writer = OutboxWriter(
        store,
        clock,
        lease=settings.smtp.claim_lease,
        suspend_after=settings.smtp.suspend_after,
        soft_threshold=settings.bounces.soft_threshold,
        soft_decay=settings.bounces.soft_decay,
    )
    async with writer as outbox:
        try:
            finished = await _unless_abandoned(deliver(transport, envelopes(), record, stop=stop), abandon)
        except CircuitOpenError:
            if streak:
                log.warning(
                    "edition=%s/%s: the circuit breaker opened; %d permanent refusals of the failing run "
                    "(the last: %s) are pending again, charged to no subscriber",
                    edition.day,
                    edition.timezone,
                    len(streak),
                    streak[-1][1].detail,
                )
            raise
        if finished:
            await judged()  # the run ended without the breaker opening: its refusals stand
        else:
            # Given up on the wire: released below with the rest of the claim, pending again with no
            # attempt or crash counted, as the daemon's stop always did. The refusals of an unfinished
            # run of failures go back too, charged to nobody (as when the breaker opens).
            rep.abandoned.extend(sorted(email for _, _, email in rows.values()))
            if rows:
                log.warning(
                    "edition=%s/%s: stopped without the SMTP server's reply to %d message(s) on the wire "
                    "(subscriber %s); each may or may not have reached its subscriber; pending again, the "
                    "next run sends them, with the same Message-ID",
                    edition.day,
                    edition.timezone,
                    len(rows),
                    ", ".join(str(d.subscriber_id) for d, _, _ in sorted(rows.values(), key=lambda r: r[0].id)),
                )
    rep.complete = await asyncio.to_thread(store.close_edition_if_done, edition.id)
    log.info(
        "edition=%s/%s sent=%d skipped=%d failed=%d deferred=%d complete=%s%s",
        edition.day,
        edition.timezone,
        rep.sent,
        rep.skipped,
        rep.failed,
        rep.deferred,
        rep.complete,
        f" ({skipped_text(rep)})" if rep.skipped else "",
    )
    return rep


def taken_over(edition: EditionRecord, lapsed: Lapsed, report: SendReport | None = None) -> None:
    """Log, once per takeover, the rows of senders that stopped while holding them (S2: a re-send
    is logged); count the rows parked as failed in the run's report (S8)."""
    if lapsed.requeued:
        log.warning(
            "edition=%s/%s: %d messages held by a sender that stopped (its lease ran out) are pending again; "
            "%d of them were on the wire and may reach their subscriber twice, with the same Message-ID; "
            "%d was being made and counts a crash (S8)",
            edition.day,
            edition.timezone,
            lapsed.requeued,
            lapsed.on_wire,
            lapsed.crashed,
        )
    for row, subscriber_id in lapsed.parked:
        error = f"parked: its sender stopped while making its message {MAX_CRASHES} times"
        log.warning("edition=%s/%s row=%d subscriber=%d %s", edition.day, edition.timezone, row, subscriber_id, error)
        if report is not None:
            report.failed += 1
            report.errors.append(f"subscriber {subscriber_id}: {error}")


async def bound_wire(stop: asyncio.Event, abandon: asyncio.Event, grace: float = WIRE_GRACE) -> None:
    """Once `stop` is set, give the SMTP server `grace` seconds to answer the messages on the wire,
    then give them up (`abandon`): one process's bound on a stop, for `digest send`, its sending
    processes and the daemon alike (S4). A relay may hold a reply for 300 s (B8) or more."""
    await stop.wait()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(abandon.wait(), grace)
    abandon.set()


async def _unless_abandoned(work: Coroutine[Any, Any, Any], abandon: asyncio.Event | None) -> bool:
    """Run `work` (deliver()) to its end, True; or, once `abandon` is set first, cancel it, False.
    Its messages on the wire are then given up: their rows are still claimed by us, and the
    outbox's close releases them."""
    if abandon is None:
        await work
        return True
    task = asyncio.ensure_future(work)
    given_up = asyncio.ensure_future(abandon.wait())
    try:
        await asyncio.wait({task, given_up}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # we are cancelled ourselves (the daemon's last resort): so is the work
        task.cancel()
        await asyncio.wait({task})
        raise
    finally:
        given_up.cancel()
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
        if task.cancelled():
            return False
    task.result()  # its own error (the breaker, a refused login...) is the caller's
    return True


def _process_of(sender: str) -> str:
    """The process a claim names: a claim is "<process>:<random>" (store.writers.sender_name), and a
    run's sending processes are "<run>/send-N", so this is the run's main process (host:pid) or
    worker, which its sending processes never outlive (`pipeline.workers`)."""
    process = sender.rpartition(":")[0] or sender
    return process.partition("/send-")[0]


def _who(store: Store, process: str) -> tuple[str, bool | None]:
    """A claiming process in words, from what the database records of it, and whether it is known
    to run (False: it was on this host and is gone; None: nobody here can tell)."""
    daemon = store.lock_holder(DAEMON_LOCK)
    workers = {w.name: w for w in store.workers(stale_after=timedelta(minutes=1))}
    if process in workers:
        w = workers[process]
        return f"worker {w.name}, pid {w.pid} on host {w.host}", holder_alive(f"{w.host}:{w.pid}")
    host, _, pid = process.rpartition(":")
    if not (host and pid.isdigit()):
        return process, None
    role = "the daemon (`digest run`)" if daemon is not None and daemon[0] == process else "`digest send`"
    return f"{role}, pid {pid} on host {host}", holder_alive(process)


def _tell_wait(
    store: Store,
    edition: EditionRecord,
    me: str,
    holders: list[ClaimHolder],
    *,
    now: datetime,
    lease: timedelta,
    told: dict[str, bool],
) -> None:
    """Say, once, what this sender waits for: rows another sender holds, which are its to send, or
    ours once its lease runs out. A sender that stopped (killed on this host, or no longer renewing
    its lease) made a re-run sit silent for up to [smtp] claim_lease (audit finding 12)."""
    mine = _process_of(me)
    for holder in holders:
        process = _process_of(holder.sender)
        if process == mine or told.get(holder.sender):
            continue  # our own sending processes are alive; a stopped sender is told once
        left = max((holder.lease_until - now).total_seconds(), 0.0)
        # A live sender renews its lease every third of it: half gone means renewals were missed.
        lapsing = left < lease.total_seconds() / 2
        if holder.sender in told and not lapsing:
            continue
        words, alive = _who(store, process)
        n = f"{holder.rows} message{'s' if holder.rows != 1 else ''}"
        if alive is False or lapsing:
            told[holder.sender] = True
            why = "no longer running" if alive is False else "it stopped renewing its lease"
            log.warning(
                "edition=%s/%s: waiting up to %d s for %s held by a sender that stopped (%s, %s): its lease "
                "([smtp] claim_lease) runs out at %s UTC, and this run then sends %s",
                edition.day,
                edition.timezone,
                math.ceil(left),
                n,
                words,
                why,
                holder.lease_until.strftime("%H:%M:%S"),
                "it" if holder.rows == 1 else "them",
            )
        else:
            told[holder.sender] = False
            log.info(
                "edition=%s/%s: waiting for %s held by another sender (%s%s): it sends them, or this run "
                "does if its lease (renewed while it runs) runs out",
                edition.day,
                edition.timezone,
                n,
                words,
                ", running" if alive else "",
            )


async def _others_hold(
    store: Store,
    edition: EditionRecord,
    me: str,
    *,
    clock: Clock,
    stop: asyncio.Event | None,
    report: SendReport | None = None,
    lease: timedelta,
    told: dict[str, bool],
) -> bool:
    """Whether other senders still hold rows of the edition; waits a little first when they do, so
    the caller's next claim finds what they released or what their lease gave up. Our own rows in
    flight are ours to record, whatever their lease says. Leases are on the database's clock."""
    now, holders = await asyncio.to_thread(store.claim_holders, edition.id, other_than=me)
    if not holders:
        return False
    await asyncio.to_thread(_tell_wait, store, edition, me, holders, now=now, lease=lease, told=told)
    until = holders[0].lease_until
    wait = min(max((until - now).total_seconds(), 0.0), HELD_POLL)
    if stop is None:
        await asyncio.sleep(wait)
    else:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
    if until <= now + timedelta(seconds=wait):
        taken_over(
            edition, await asyncio.to_thread(store.expire_claims, edition.id, now=clock(), other_than=me), report
        )
    return True
