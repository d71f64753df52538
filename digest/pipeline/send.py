"""The send job, whole: what is due, building an edition, sending it, drafts and previews, and the
edition as a web page. The CLI (`digest send`, `send --dry-run`, `preview`), the daemon (`digest
run`), the web app and the demo call this module and nothing else of the send job.

    due       plan(): which editions to build and which to resume, from the store (edition policy:
              edition_due, still_fresh)
    build     build_edition(): the window the store computes, classified into sections, minus
              items too old when first seen (choose_items, the one max_item_age rule); stories
              clustered once and stored with it
    send      send_day() (`digest send`) and send_due() (the daemon): the same multi-process
              sender (pipeline.workers) over pipeline.sender's claim loop; both resume the open
              editions `plan` finds with messages due for a retry (with --retry-now, with any
              deferred message), and leave those past catch-up
    draft     draft_mailer(), preview(), dry_run(): the edition as built, else as it would be
              built now, recording nothing; each subscriber's message as the sender makes it,
              a mover's too (draft_movers); of a built edition only the rows a send now claims
              (Store.outbox_standing), the others named (already sent...); without --date, the
              earlier editions plan() resumes too, each in a folder of its own
    web page  EditionPages: each edition's page rendered once per process and kept (bounded)

The store keeps the state and applies no policy; pipeline.mailer turns an edition into messages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from digest import schedule
from digest.compose import compose
from digest.config import DigestSettings, Settings
from digest.deliver import Envelope, FileTransport
from digest.errors import DigestError
from digest.model import (
    DUE_EARLY,
    DUE_LAPSED,
    DUE_RETRY,
    DUE_UNTRIED,
    PLACEHOLDER_PREFERENCES_URL,
    PLACEHOLDER_UNSUBSCRIBE_URL,
    EditionItem,
    EditionRecord,
    Moved,
    Rendered,
    Standing,
    Subscriber,
)
from digest.pipeline.mailer import (
    EditionMailer,
    choose_items,
    compose_options,
    edition_path,
    edition_stories,
    edition_url,
    zone_of_path,
)
from digest.pipeline.sender import NOTHING_NEW, Clock, SendReport, skip_reason
from digest.pipeline.workers import TransportFactory, send_editions
from digest.render import Renderer
from digest.store import ACTIVE, FAILED, PENDING, SENDING, SENT, SKIPPED, Store

log = logging.getLogger(__name__)

__all__ = [
    "EditionPages",
    "DryRun",
    "Plan",
    "Preview",
    "SendReport",
    "build_edition",
    "choose_items",
    "draft_mailer",
    "draft_movers",
    "dry_run",
    "edition_due",
    "edition_path",
    "edition_url",
    "plan",
    "preview",
    "send_day",
    "send_due",
    "still_fresh",
    "zone_day",
    "zone_of_path",
]

# "Same local day" is checked on the date itself; this bound only has to exceed the longest local
# day (25 h on a DST fall-back day) so that due_edition does not rule it out first.
_SAME_DAY_BOUND = timedelta(hours=26)


# --------------------------------------------------------------------------- what is due (policy)


def edition_due(now: datetime, digest: DigestSettings, tz: str, *, last_day: date | None) -> date | None:
    """The edition day to build and send now in `tz`, or None (at most one: never a backlog, C2)."""
    if digest.catch_up is None:  # default: a missed edition goes out only on its own local day (C1)
        day = schedule.due_edition(now, digest.send_at, tz, last_day=last_day, catch_up=_SAME_DAY_BOUND)
        return day if day is not None and day == schedule.local_day(now, tz) else None
    return schedule.due_edition(now, digest.send_at, tz, last_day=last_day, catch_up=digest.catch_up)


def still_fresh(now: datetime, digest: DigestSettings, tz: str, day: date) -> bool:
    """Whether an unfinished edition may still be sent: the same staleness rule as a new one (F4)."""
    if digest.catch_up is None:
        return schedule.local_day(now, tz) == day
    return schedule.within_catch_up(now, day, digest.send_at, tz, digest.catch_up)


@dataclass(frozen=True, slots=True)
class Plan:
    """What is due at one moment, read from the store."""

    zones: tuple[str, ...]
    new: tuple[tuple[str, date], ...]  # (time zone, day) editions to build and send
    resume: tuple[EditionRecord, ...]  # open editions with rows whose (retry) time has come
    stale: tuple[EditionRecord, ...]  # open editions with due rows, past their catch-up window


NOTHING_DUE = Plan((), (), (), ())


def plan(settings: Settings, store: Store, now: datetime, *, retry_now: bool = False) -> Plan:
    """Read what is due from the store (synchronous: call it through asyncio.to_thread).

    `retry_now` (`digest send --retry-now`, and its dry run): a deferred message is due whatever
    its retry time, as that send claims it, so an earlier edition whose every deferred message
    still waits is resumed too (or named stale), not only one with a retry due now."""
    digest = settings.digest
    zones = tuple(store.timezones_in_use(digest.timezone))
    new: list[tuple[str, date]] = []
    for tz in zones:
        last = store.last_edition(tz)
        day = edition_due(now, digest, tz, last_day=last.day if last else None)
        if day is not None:
            new.append((tz, day))
    resume: list[EditionRecord] = []
    stale: list[EditionRecord] = []
    waiting = None if retry_now else now  # None: every pending row, whatever its retry time
    for ed in reversed(store.list_editions(status="open")):  # oldest first
        if next(iter(store.iter_deliveries(ed.id, now=waiting, batch=1)), None) is None:
            continue  # nothing pending, or (without retry_now) every pending row waits for its retry time
        (resume if still_fresh(now, digest, ed.timezone, ed.day) else stale).append(ed)
    return Plan(zones, tuple(new), tuple(resume), tuple(stale))


# --------------------------------------------------------------------------- building an edition


def build_edition(
    settings: Settings, store: Store, *, day: date, timezone: str, now: datetime
) -> tuple[EditionRecord, bool]:
    """Build the edition (day, timezone) once, with `now` as its cut-off; (edition, created)."""
    existing = store.get_edition(day=day, timezone=timezone)
    if existing is not None:
        return existing, False
    window = store.edition_window(timezone, until=now)
    items = choose_items(settings, window)
    edition, created = store.create_edition(
        day=day,
        window=window,
        items=[EditionItem(item.id, section) for item, section in items],
        default_timezone=settings.digest.timezone,
        now=now,
    )
    if created:
        # Clustered once, here, and stored: every sending process and the web page read them (issue 12).
        edition_stories(settings, store, edition, items=items, now=now)
        log.info("edition=%s/%s built items=%d", day, timezone, len(items))
    return edition, created


# --------------------------------------------------------------------------- sending


def zone_day(day: date | None, timezone: str, now: datetime) -> date:
    """The edition day `digest send` means in a time zone: `day` when given (--date), else that zone's
    own date now, as the daemon sends each zone's edition on its own day. The site's date for every
    zone sent New York's readers, at 18:00 on the 6th, the edition of the 7th (Moscow's already),
    and their own of the 7th the next morning found it sent."""
    return day if day is not None else now.astimezone(ZoneInfo(timezone)).date()


async def send_day(
    settings: Settings,
    store: Store,
    *,
    day: date | None,
    clock: Clock,
    transport: TransportFactory,
    workers: int | None = None,
    stop: asyncio.Event | None = None,
    setup: Callable[[], None] | None = None,
    retry_now: bool = True,
    abandon: asyncio.Event | None = None,
) -> list[SendReport]:
    """`digest send`: build (once) and send the edition of `day` (None: each zone's own day,
    `zone_day`) for every time zone with active subscribers, with `workers` processes (None:
    [smtp] workers).

    With `day` None (a plain `digest send`, as cron runs it) it also sends, as the daemon's pass
    does (`plan`), the due messages of earlier editions still open and still fresh (their own day,
    or within [digest] catch_up: `SendReport.resumed`), and logs those past it.

    `retry_now`: messages an earlier run deferred (a 4xx) go at once, whatever their retry time;
    else only those whose time has come, as the daemon sends them. A message this run defers is
    never retried by it (B7)."""

    async def prepare() -> list[tuple[EditionRecord, SendReport]]:
        zones = await asyncio.to_thread(store.timezones_in_use, settings.digest.timezone)
        out = []
        for tz in zones:
            now = clock()
            local = zone_day(day, tz, now)
            edition, created = await asyncio.to_thread(build_edition, settings, store, day=local, timezone=tz, now=now)
            out.append((edition, SendReport(edition.id, local, tz, created=created)))
        if day is None:
            todo = await asyncio.to_thread(partial(plan, retry_now=retry_now), settings, store, clock())
            warn_stale(todo, None)
            own = {edition.id for edition, _ in out}
            for ed in todo.resume:
                if ed.id not in own:
                    log.info("edition=%s/%s resuming its pending messages", ed.day, ed.timezone)
                    out.append((ed, SendReport(ed.id, ed.day, ed.timezone, created=False, resumed=True)))
        return out

    return await send_editions(
        settings,
        store,
        prepare,
        clock=clock,
        transport=transport,
        workers=settings.smtp.workers if workers is None else workers,
        stop=stop,
        abandon=abandon,
        setup=setup,
        due_only=not retry_now,
        expected_rows=await asyncio.to_thread(_rows_to_send, settings, store, day, clock(), due_only=not retry_now),
    )


def _rows_to_send(settings: Settings, store: Store, day: date | None, now: datetime, *, due_only: bool) -> int:
    """About how many messages `digest send --date day` will send, before its editions are built:
    the claimable rows of those already built, every active subscriber if one is still to build.
    Enough to start the sending processes early, or not at all for a run with nothing left."""
    rows, unbuilt = 0, False
    for tz in store.timezones_in_use(settings.digest.timezone):
        edition = store.get_edition(day=zone_day(day, tz, now), timezone=tz)
        if edition is None:
            unbuilt = True
        else:
            rows += store.count_claimable(edition.id, now=now, due_only=due_only)
    return rows + (store.subscriber_counts().get(ACTIVE, 0) if unbuilt else 0)


def warn_stale(todo: Plan, warned: set[int] | None) -> None:
    """Log each open edition `plan` found past its catch-up window, with due messages that nothing
    sends by itself; once per edition into `warned` (the daemon's passes), every time without."""
    for ed in todo.stale:
        if warned is None or ed.id not in warned:
            if warned is not None:
                warned.add(ed.id)
            log.warning(
                "edition=%s/%s has pending messages but is past its catch-up window ([digest] catch_up); not "
                "sent (`digest send --date %s` sends them by hand)",
                ed.day,
                ed.timezone,
                ed.day,
            )


async def send_due(
    settings: Settings,
    store: Store,
    *,
    clock: Clock,
    transport: TransportFactory,
    stop: asyncio.Event | None = None,
    setup: Callable[[], None] | None = None,
    warned: set[int] | None = None,
    abandon: asyncio.Event | None = None,
) -> tuple[Plan, list[SendReport]]:
    """The daemon's pass: build and send what `plan` says is due, and resume open editions whose
    rows' retry time has come. Safe to run at any moment, any number of times (S7, C3).

    `warned`: editions already reported as past their catch-up window (each is reported once)."""
    now = clock()
    todo = await asyncio.to_thread(plan, settings, store, now)
    warn_stale(todo, warned)
    if not todo.new and not todo.resume:
        return todo, []

    async def prepare() -> list[tuple[EditionRecord, SendReport]]:
        out = []
        for ed in todo.resume:
            log.info("edition=%s/%s resuming its pending messages", ed.day, ed.timezone)
            out.append((ed, SendReport(ed.id, ed.day, ed.timezone, created=False, resumed=True)))
        for tz, day in todo.new:
            late = now - schedule.edition_instant(day, settings.digest.send_at, tz)
            log.info(
                "edition=%s/%s due (send_at %s local, %s)",
                day,
                tz,
                settings.digest.send_at.strftime("%H:%M"),
                "on time" if late < timedelta(minutes=1) else f"catch-up, {_human(late)} late",
            )
            edition, created = await asyncio.to_thread(
                build_edition, settings, store, day=day, timezone=tz, now=clock()
            )
            out.append((edition, SendReport(edition.id, day, tz, created=created)))
        return out

    reports = await send_editions(
        settings,
        store,
        prepare,
        clock=clock,
        transport=transport,
        workers=settings.smtp.workers,
        stop=stop,
        abandon=abandon,
        setup=setup,
        due_only=True,
    )
    return todo, reports


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


# --------------------------------------------------------------------------- drafts: nothing recorded


def draft_mailer(settings: Settings, store: Store, *, day: date, timezone: str, now: datetime) -> EditionMailer:
    """A mailer for the edition (day, timezone) that records nothing: the edition as built when it
    exists, else as build_edition would build it now (for `digest preview` and `send --dry-run`)."""
    edition = store.get_edition(day=day, timezone=timezone)
    if edition is not None:
        return EditionMailer(settings, store, edition)
    window = store.edition_window(timezone, until=now)
    draft = EditionRecord(id=0, day=day, timezone=timezone, cutoff=now, window_start=window.start, created_at=now)
    return EditionMailer(settings, store, draft, items=choose_items(settings, window))


def draft_movers(store: Store, mailer: EditionMailer, ids: list[int]) -> dict[int, Moved]:
    """Which of these subscribers moved zone, and what their message leaves out and adds, read
    as the sender reads it (`OutboxSession.movers`, and `OutboxWriter.movers`' shortcut when no
    other zone's edition is near), for an edition built or drafted, recording nothing."""
    near = store.neighbours(mailer.edition)
    if not near.cutoffs:
        return {}
    session = store.outbox_session("preview")
    try:
        # A draft's items are in no edition_items row yet: compare with the mailer's own.
        return session.movers(mailer.edition, near, ids, draft=None if mailer.edition.id else mailer.carried)
    finally:
        session.close()


def _day(day: date) -> str:
    return f"{day.day} {day:%B}"


def _next_edition(settings: Settings, edition: EditionRecord, now: datetime) -> tuple[date, datetime]:
    """The zone's edition after `edition`: its day and when it goes (UTC)."""
    send_at, tz = settings.digest.send_at, edition.timezone
    return schedule.next_edition(max(now, schedule.edition_instant(edition.day, send_at, tz)), send_at, tz)


def _shown_edition(
    settings: Settings, edition: EditionRecord, standing: Standing, subscriber: Subscriber, *, now: datetime
) -> str | None:
    """For `digest preview`: which edition it shows when a send now would not mail it to the
    subscriber (None: it would), read from their row as the send reads it (`outbox_standing`)."""
    if standing.due:
        return None
    tz = ZoneInfo(edition.timezone)
    head = f"Edition of {_day(edition.day)} ({edition.timezone}):"
    nxt, at = _next_edition(settings, edition, now)
    then = (
        f"their next, of {_day(nxt)}, goes at {at.astimezone(tz):%H:%M} "
        f"(`digest preview --subscriber {subscriber.email} --date {nxt}` shows it as it stands)."
    )
    rest = standing.rest
    if rest.get(SENT):
        when = ""
        if standing.sent_at is not None:
            local = standing.sent_at.astimezone(tz)
            when = f" at {local:%H:%M}" + (f" on {_day(local.date())}" if local.date() != edition.day else "")
        return f"{head} already sent to them{when}; shown below as made now. A send mails them nothing more; {then}"
    if rest.get(PENDING):
        when = f" at {standing.retry_at.astimezone(tz):%H:%M}" if standing.retry_at is not None else ""
        return (
            f"{head} deferred by the SMTP server; a send retries it{when} (`digest send --retry-now`: at once). "
            "Shown below as it will be sent."
        )
    if rest.get(SENDING):
        return f"{head} another sender is sending it to them now; shown below as made now."
    if rest.get(FAILED):
        return f"{head} their message failed for good (`digest outbox --failed` says why), not sent again; {then}"
    if rest.get(SKIPPED):
        return f"{head} skipped when it was sent (nothing in their sections, or not active then); {then}"
    return f"{head} built before they subscribed, so no message of it is theirs; {then}"


def _not_sent_now(edition: EditionRecord, standing: Standing) -> list[str]:
    """For `send --dry-run`: a line on the rows of a built edition that a send now leaves alone
    ("already sent: 2 subscribers in Europe/Moscow (edition of 7 January)"), and one on the rest."""
    where = f"in {edition.timezone} (edition of {_day(edition.day)})"
    rest, lines = standing.rest, []
    if sent := rest.get(SENT, 0):
        lines.append(f"already sent: {sent} subscriber{'s' if sent != 1 else ''} {where}")
    states = (
        (FAILED, "failed for good"),
        (SKIPPED, "skipped when it was sent"),
        (PENDING, "waiting for their retry time"),
        (SENDING, "held by another sender"),
    )
    if others := [f"{rest[state]} {what}" for state, what in states if rest.get(state)]:
        lines.append(f"not sent now: {', '.join(others)} {where}")
    return lines


@dataclass(frozen=True, slots=True)
class Preview:
    """A subscriber's message as `digest preview` shows it: `rendered` (None: nothing for them,
    no email would be sent), for a subscriber who moved zone `moved` (`EditionMailer.moved_note`),
    and `edition` when a send now would not mail it them (`_shown_edition`: already sent...)."""

    rendered: Rendered | None
    moved: str | None = None
    edition: str | None = None


def preview(settings: Settings, store: Store, *, subscriber: Subscriber, day: date, now: datetime) -> Preview:
    """The subscriber's edition for `day` without sending or recording anything: what the sender
    would send them now, a mover's gap and all (`draft_movers`, `EditionMailer.gap_stories`); of
    an edition built and sent them already, what it was, saying so."""
    tz = schedule.effective_zone(subscriber.timezone, settings.digest.timezone)
    mailer = draft_mailer(settings, store, day=day, timezone=tz, now=now)
    shown = None
    if mailer.edition.id:  # built: their row says whether a send now would mail it them
        standing = store.outbox_standing(mailer.edition.id, now=now, due_only=True, subscriber_id=subscriber.id)
        shown = _shown_edition(settings, mailer.edition, standing, subscriber, now=now)
    move = draft_movers(store, mailer, [subscriber.id]).get(subscriber.id, Moved())
    gap = mailer.gap_stories(move.since) if move.since is not None else []
    note = mailer.moved_note(subscriber.sections, move, gap)
    rendered = mailer.render(subscriber.sections, had=move.had, gap=gap)
    if rendered is None:
        return Preview(None, note, shown)
    # The subscriber's own working links, as their email would carry them (not the placeholders).
    unsubscribe_url, preferences_url = mailer.links(subscriber)

    def fill(text: str) -> str:
        return text.replace(PLACEHOLDER_UNSUBSCRIBE_URL, unsubscribe_url).replace(
            PLACEHOLDER_PREFERENCES_URL, preferences_url
        )

    return Preview(dataclasses.replace(rendered, html=fill(rendered.html), text=fill(rendered.text)), note, shown)


def _resumed_line(edition: EditionRecord, standing: Standing, where: Path) -> str:
    """For `send --dry-run`: what a send takes of an earlier edition it resumes, and where the
    dry run wrote it ("resumed edition of 6 December (Europe/Moscow): 2 due retries; in DIR/...")."""
    head = f"resumed edition of {_day(edition.day)} ({edition.timezone}):"
    n = standing.why
    parts = [
        f"{count} {what}"
        for count, what in (
            (n.get(DUE_RETRY, 0), "due retry" if n.get(DUE_RETRY) == 1 else "due retries"),
            (n.get(DUE_EARLY, 0), "deferred, retried early (--retry-now)"),
            (n.get(DUE_LAPSED, 0), "held by a sender gone silent"),
            (n.get(DUE_UNTRIED, 0), "left unsent by a stopped run"),
        )
        if count
    ]
    if not parts:  # plan() counts rows a live sender holds: this send would leave them to it
        held = standing.rest.get(SENDING, 0)
        return f"{head} nothing to send now ({held} held by another sender)"
    return f"{head} {', '.join(parts)}; in {where}"


@dataclass(frozen=True, slots=True)
class DryRun:
    """What `digest send --dry-run` wrote: how many messages, a line per mover's message
    (`EditionMailer.moved_note`, after the file and address), why the others got none, as the
    send's report says it (`skipped`), the lines on built editions' rows a send now leaves
    alone (`not_sent`: already sent...), and a line per earlier edition it resumes (`resumed`)."""

    written: int
    moved: tuple[str, ...] = ()
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    not_sent: tuple[str, ...] = ()
    resumed: tuple[str, ...] = ()


# Subscribers whose movers' look-up is one query, as the sender's chunks are.
_DRY_RUN_CHUNK = 500


async def dry_run(
    settings: Settings, store: Store, *, day: date | None, now: datetime, folder: Path, retry_now: bool = False
) -> DryRun:
    """Every message a `digest send` (`--date day`, `--retry-now`) would send now, as .eml files
    in `folder`, touching no outbox row: for an edition not built yet, every active subscriber's of
    its zone, as building it queues them; for one built, those of the rows the send would claim
    (`outbox_standing`), each made as the sender makes it, movers' too. Without `day`, also those
    of the earlier editions the send resumes (`plan().resume`), each edition's in a folder of its
    own, `<day>/<zone>/`: one reader may have a message in several editions."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigestError(
            f"Cannot create the folder {folder}: {exc.strerror or exc}.",
            hint="Pass --dry-run a folder you can write to; nothing was sent or recorded.",
        ) from exc
    written, moved, not_sent, resumed = 0, [], [], []
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    async def write(
        transport: FileTransport, mailer: EditionMailer, chunk: list[Subscriber], where: Path = Path()
    ) -> None:
        nonlocal written
        movers = await asyncio.to_thread(draft_movers, store, mailer, [sub.id for sub in chunk])
        for sub in chunk:
            move = movers.get(sub.id, Moved())
            gap = await asyncio.to_thread(mailer.gap_stories, move.since) if move.since is not None else []
            template = mailer.template(sub.sections, had=move.had, gap=gap)
            if template is None:
                skip(NOTHING_NEW)
                continue
            data = mailer.personalise(template, sub, now=now)
            await transport.send(Envelope(key=sub.id, sender=settings.smtp.sender, recipient=sub.email, data=data))
            written += 1
            if (note := mailer.moved_note(sub.sections, move, gap)) is not None:
                moved.append(f"{where / f'{sub.id}.eml'} to {sub.email}: {note}")

    async def write_due(
        transport: FileTransport, mailer: EditionMailer, due: tuple[int, ...], where: Path = Path()
    ) -> None:
        """The rows of a built edition a send would claim: each subscriber read as the sender
        reads them just before their message, skipped as it skips them when no longer active."""
        session = store.outbox_session("dry-run")
        try:
            for start in range(0, len(due), _DRY_RUN_CHUNK):
                ids = due[start : start + _DRY_RUN_CHUNK]
                subs = await asyncio.to_thread(session.subscribers, ids)
                chunk = []
                for sid in ids:
                    sub = subs.get(sid)
                    if sub is None or sub.status != ACTIVE:
                        skip(skip_reason(None if sub is None else sub.status))
                    else:
                        chunk.append(sub)
                await write(transport, mailer, chunk, where)
        finally:
            session.close()

    own: set[int] = set()
    async with FileTransport(folder) as transport:
        for tz in await asyncio.to_thread(store.timezones_in_use, settings.digest.timezone):
            local = zone_day(day, tz, now)
            mailer = await asyncio.to_thread(draft_mailer, settings, store, day=local, timezone=tz, now=now)
            own.add(mailer.edition.id)
            if mailer.edition.id:  # built: only the rows a send now claims, not those sent already
                standing = await asyncio.to_thread(
                    store.outbox_standing, mailer.edition.id, now=now, due_only=not retry_now
                )
                await write_due(transport, mailer, standing.due)
                not_sent.extend(_not_sent_now(mailer.edition, standing))
                continue
            chunk: list[Subscriber] = []
            for sub in store.iter_subscribers():
                if schedule.effective_zone(sub.timezone, settings.digest.timezone) == tz:
                    chunk.append(sub)
                if len(chunk) == _DRY_RUN_CHUNK:
                    await write(transport, mailer, chunk)
                    chunk = []
            if chunk:
                await write(transport, mailer, chunk)
    if day is None:  # as send_day: the earlier editions plan() resumes, its claim over each
        todo = await asyncio.to_thread(partial(plan, retry_now=retry_now), settings, store, now)
        warn_stale(todo, None)
        for ed in todo.resume:
            if ed.id in own:
                continue
            standing = await asyncio.to_thread(store.outbox_standing, ed.id, now=now, due_only=not retry_now)
            where = Path(ed.day.isoformat(), ed.timezone)  # a zone is Area/City: folders as tzdata's
            mailer = await asyncio.to_thread(EditionMailer, settings, store, ed)
            async with FileTransport(folder / where) as transport:
                await write_due(transport, mailer, standing.due, where)
            resumed.append(_resumed_line(ed, standing, folder / where))
    return DryRun(written, tuple(moved), skipped, tuple(not_sent), tuple(resumed))


# --------------------------------------------------------------------------- the edition as a web page


class EditionPages:
    """Each edition's web page, rendered once per process and kept, the most recently read first.

    An edition is frozen when it is built (its items and stories are stored with it), and the page
    is the same for every reader, so rendering it (about a second of CPU for 1,024 items) once is
    enough: later requests, and requests that arrive while it renders, get the same text. At most
    `keep` pages are kept (bounded memory); the settings are fixed for the life of the process.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        renderer: Renderer,
        secret: str,
        decorate: Callable[[str], str] = lambda html: html,
        keep: int = 32,
    ) -> None:
        self.settings, self.store, self.renderer, self.secret = settings, store, renderer, secret
        self.decorate, self.keep = decorate, keep
        self.rendered = 0  # pages rendered so far (what the cache saves shows here)
        self._pages: OrderedDict[tuple[int, str], str] = OrderedDict()
        self._lock = threading.Lock()  # guards _pages and _rendering
        self._rendering: dict[tuple[int, str], threading.Lock] = {}

    def html(self, edition: EditionRecord) -> str:
        """The edition's page (synchronous: call it through asyncio.to_thread)."""
        key = (edition.id, self.settings.digest.language)
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
                return page
            one = self._rendering.setdefault(key, threading.Lock())
        with one:  # requests that arrive while it renders wait for that rendering
            with self._lock:
                page = self._pages.get(key)
            if page is None:
                page = self.decorate(self._render(edition))
                with self._lock:
                    self.rendered += 1
                    self._pages[key] = page
                    while len(self._pages) > self.keep:
                        self._pages.popitem(last=False)
                    self._rendering.pop(key, None)
        return page

    def _render(self, edition: EditionRecord) -> str:
        """The whole edition: what the email shows, with no section cut short and no clip."""
        settings = self.settings
        options = dataclasses.replace(
            compose_options(settings), max_per_section=sys.maxsize, section_limits=(), max_per_source=sys.maxsize
        )
        stories = edition_stories(settings, self.store, edition)  # clustered once, with the email's "Read also"
        page = compose(
            stories,
            day=edition.day,
            timezone=edition.timezone,
            chosen=None,
            options=options,
            web_url=edition_url(settings, edition.day, edition.timezone, secret=self.secret),
        )
        return self.renderer.render(page, max_html_bytes=sys.maxsize).html
