"""The send job: what is due, building an edition, sending it, and the edition as a web page. The
CLI (`digest send`), the daemon (`digest run`), the web app and the demo call this module, and for
drafts (`send --dry-run`, `preview`) pipeline.drafts, and nothing else of the send job.

    due       plan(): which editions to build and which to resume, from the store (edition policy:
              edition_due, still_fresh)
    build     build_edition(): the window the store computes, classified into sections, minus
              items too old when first seen (choose_items, the one max_item_age rule); stories
              clustered once and stored with it
    send      send_day() (`digest send`) and send_due() (the daemon): the same multi-process
              sender (pipeline.workers) over pipeline.sender's claim loop; both resume the open
              editions `plan` finds with messages due for a retry (with --retry-now, with any
              deferred message), and leave those past catch-up
    draft     pipeline.drafts (preview, dry_run): the same editions and rows, recording nothing
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
from zoneinfo import ZoneInfo

from digest import schedule
from digest.compose import compose
from digest.config import DigestSettings, Settings
from digest.model import (
    EditionItem,
    EditionRecord,
)
from digest.pipeline.mailer import (
    choose_items,
    compose_options,
    edition_path,
    edition_stories,
    edition_url,
    zone_of_path,
)
from digest.pipeline.sender import Clock, SendReport
from digest.pipeline.workers import TransportFactory, send_editions
from digest.render import Renderer
from digest.store import ACTIVE, Store

log = logging.getLogger(__name__)

__all__ = [
    "EditionPages",
    "Plan",
    "SendReport",
    "build_edition",
    "choose_items",
    "edition_due",
    "edition_path",
    "edition_url",
    "plan",
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
