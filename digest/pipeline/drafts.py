"""Drafts, recording nothing: an edition's messages as a send now would make them, for `digest
preview` (one subscriber's, `preview`) and `digest send --dry-run` (every message, as .eml files,
with the lines it prints: `dry_run`). The CLI and the demo call these; what is due and what a send
resumes stay pipeline.send's (`plan`, `zone_day`), asked here as the send asks them.

    draft_mailer()   the edition as built, else as build_edition would build it now
    draft_movers()   which subscribers moved zone, read as the sender reads it
    preview()        one subscriber's message, and a line when a send now would not mail it them
    dry_run()        every message a `digest send` would send now; of a built edition only the rows
                     a send now claims (Store.outbox_standing), the others named (already sent...);
                     without --date, the earlier editions plan() resumes too, each in a folder of
                     its own
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from digest import schedule
from digest.config import Settings
from digest.deliver import Envelope, FileTransport
from digest.errors import DigestError
from digest.model import (
    DUE_EARLY,
    DUE_LAPSED,
    DUE_RETRY,
    DUE_UNTRIED,
    PLACEHOLDER_PREFERENCES_URL,
    PLACEHOLDER_UNSUBSCRIBE_URL,
    EditionRecord,
    Moved,
    Rendered,
    Standing,
    Subscriber,
)
from digest.pipeline.mailer import EditionMailer, choose_items
from digest.pipeline.send import plan, warn_stale, zone_day
from digest.pipeline.sender import NOTHING_NEW, skip_reason
from digest.store import ACTIVE, FAILED, PENDING, SENDING, SENT, SKIPPED, Store

__all__ = ["DryRun", "Preview", "draft_mailer", "draft_movers", "dry_run", "preview"]


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
