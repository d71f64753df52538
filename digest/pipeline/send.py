"""send: store.read -> compose -> render -> deliver -> store.mark_sent.

An edition is built once per (local day, time zone) and frozen; then each pending outbox row is
turned into a message for its subscriber, as they are *now* (an unsubscribe or a section change
that arrives after the edition was built is honoured: B5), and handed to the transport. A row is
marked sent only after the server accepted the message; a crash leaves it claimed by a process that
is gone, and the next run sends it again with the same Message-ID (A8).

Several senders may work on one edition at once (`digest send` starts one process per core:
pipeline.workers): each claims a few rows at a time and records its results a batch at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import parseaddr
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from digest import message, tokens
from digest.compose import (
    ComposeOptions,
    PlacedStory,
    build_stories,
    compose,
    narrow,
    stories_from_json,
    stories_to_json,
)
from digest.config import Settings
from digest.deliver import Envelope, Outcome, Result, Transport, deliver
from digest.errors import ConfigError, SubscriberError
from digest.model import (
    PLACEHOLDER_PREFERENCES_URL,
    PLACEHOLDER_UNSUBSCRIBE_URL,
    Delivery,
    EditionRecord,
    Item,
    Rendered,
    Subscriber,
)
from digest.render import Renderer, SectionCuts
from digest.sections import Classification, classify
from digest.store import ACTIVE, FAILED, PENDING, SENT, SKIPPED, Store
from digest.store.editions import Mark

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")


@dataclass
class SendReport:
    edition_id: int
    day: date
    timezone: str
    created: bool
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    deferred: int = 0
    complete: bool = False
    errors: list[str] = field(default_factory=list)


def compose_options(settings: Settings) -> ComposeOptions:
    d = settings.digest
    return ComposeOptions(
        title=d.title,
        section_order=settings.section_names,
        max_per_section=d.max_items_per_section,
        top_stories=d.top_stories,
        language=d.language,
        cluster_threshold=d.cluster_threshold,
        read_also_lower=d.read_also_min,
        read_also_max=d.read_also,
        max_per_source=d.max_per_source,
        synopsis_sentences=d.synopsis_sentences,
        subject_style=d.subject,
        plural_outlets=frozenset(f.name for f in settings.feeds if f.plural and f.name),
        press_outlets=tuple(dict.fromkeys(f.name for f in settings.feeds if f.press and f.name)),
        press_section=d.press_section,
    )


def make_renderer(settings: Settings) -> Renderer:
    d = settings.digest
    return Renderer(templates_dir=d.templates_dir, language=d.language, images=d.images, excerpt_chars=d.excerpt_chars)


def classify_item(settings: Settings, item: Item) -> Classification:
    """The section rules applied to a stored item: what the edition stores, and what explain shows."""
    return classify(
        title=item.title,
        url=item.url,
        categories=item.categories,
        feed_section=item.feed_section,
        sections=settings.sections,
        fallback=settings.digest.fallback_section,
        summary=item.summary_text,
        feed_names=(item.source, item.feed_url or ""),
    )


def classifier(settings: Settings) -> Callable[[Item], str]:
    """The section rules as a function of an item, remembered per item for this settings object:
    the editions of one day (one per time zone) mostly hold the same items, and the rules cost
    ~0.1 ms an item (issue 12)."""
    global _classified
    if _classified is None or _classified[0] is not settings:
        _classified = (settings, {})
    seen = _classified[1]
    if len(seen) > 100_000:  # a daemon keeps its settings for days: forget old items now and then
        seen.clear()

    def section_of(item: Item) -> str:
        key = (item.id, item.title, item.url, item.summary_text, item.categories, item.feed_section, item.feed_url)
        section = seen.get(key)
        if section is None:
            section = seen[key] = classify_item(settings, item).section
        return section

    return section_of


_classified: tuple[Settings, dict[tuple[Any, ...], str]] | None = None


def sender_domain(settings: Settings) -> str:
    return parseaddr(settings.smtp.sender)[1].rpartition("@")[2] or "localhost"


def edition_url(settings: Settings, day: date, timezone: str, *, secret: str | None = None) -> str:
    """The edition's web page ("Read this edition online", "N more in <Section>"). With the public
    archive off it carries the edition's key, which only the secret's holder can make."""
    url = f"{settings.digest.base_url}/editions/{timezone.replace('/', '~')}/{day.isoformat()}"
    if not settings.web.archive and secret:
        url += f"?key={tokens.edition_key(secret, day.isoformat(), timezone)}"
    return url


def build_edition(
    settings: Settings, store: Store, *, day: date, timezone: str, now: datetime
) -> tuple[EditionRecord, bool]:
    edition, created = store.create_edition(
        day=day,
        timezone=timezone,
        default_timezone=settings.digest.timezone,
        cutoff=now,
        now=now,
        max_item_age=settings.digest.max_item_age,
        classify=classifier(settings),
    )
    if created:
        items = store.edition_items(edition.id)
        # Clustered once, here, and stored: every sending process and the web page read them (issue 12).
        edition_stories(settings, store, edition, items=items, now=now)
        log.info("edition=%s/%s built items=%d", day, timezone, len(items))
    return edition, created


_clustered: tuple[Settings, tuple[Any, ...], list[PlacedStory]] | None = None  # the last clustering, by its input


def edition_stories(
    settings: Settings,
    store: Store,
    edition: EditionRecord,
    *,
    items: list[tuple[Item, str]] | None = None,
    now: datetime | None = None,
) -> list[PlacedStory]:
    """The edition's stories as stored when it was built; else (an edition built before they were
    stored, or a draft) clustered now, and stored for a real edition."""
    if items is None:
        items = store.edition_items(edition.id)
    history = read_also_history(settings, store, edition)
    body = store.edition_stories(edition.id) if edition.id else None
    if body is not None:
        placed = stories_from_json(body, [item for item, _ in items], history)
        if placed is not None:
            return placed
    global _clustered
    # The editions of one day (one per time zone) usually hold the same items: cluster those once.
    key = (tuple((i.id, i.title, i.summary_text, section) for i, section in items), tuple(h.id for h in history))
    if _clustered is not None and _clustered[0] is settings and _clustered[1] == key:
        placed = _clustered[2]
    else:
        placed = build_stories(items, history=history, options=compose_options(settings))
        _clustered = (settings, key, placed)
    if edition.id and body is None:
        store.save_edition_stories(edition.id, stories_to_json(placed), now=now or datetime.now(UTC))
    return placed


def read_also_history(settings: Settings, store: Store, edition: EditionRecord) -> list[Item]:
    """Items earlier editions of this time zone carried, for "Read also" links."""
    if not settings.digest.read_also:
        return []
    since = edition.created_at - timedelta(days=settings.digest.read_also_days)
    return store.sent_items(since=since, before_edition=edition.id, timezone=edition.timezone)


class EditionMailer:
    """Turns outbox rows of one edition into messages.

    The whole edition is rendered once (once per HTML size budget the clip needs) and cut into
    per-section pieces, each quoted-printable encoded once; a section set's message template is a
    join of its sections' pieces (issue 12), so the cost of a message does not grow with the number
    of distinct section sets. With a top stories block (which picks across the chosen sections) or
    templates without {{ cut }} markers, each section set is rendered whole instead.
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        edition: EditionRecord,
        *,
        renderer: Renderer | None = None,
        items: list[tuple[Item, str]] | None = None,
    ) -> None:
        self.settings, self.store, self.edition = settings, store, edition
        self.renderer = renderer or make_renderer(settings)
        # [digest] secret when the operator set one, else the one generated once and kept in the store.
        self.secret = settings.digest.secret or store.site_secret()  # Message-IDs: stable across rotations
        self.link_key = tokens.key_ring(settings.web.secret_keys, settings.digest.secret, store.site_secret())[0]
        self.domain = sender_domain(settings)
        self._envelope_sender = parseaddr(settings.smtp.sender)[1] or settings.smtp.sender  # once, not per message
        self.options = compose_options(settings)
        self.stories: list[PlacedStory] = edition_stories(settings, store, edition, items=items)
        self._templates: dict[frozenset[str] | None, message.MessageTemplate | None] = {}
        self._cuts: SectionCuts | None = None
        self._whole: Any = None
        self._encoded: dict[str, message.EncodedPiece] = {}
        self.dkim_key: bytes | None = None
        if settings.dkim.enabled:
            try:
                self.dkim_key = Path(settings.dkim.key_file or "").read_bytes()
            except OSError as exc:
                raise ConfigError(f"dkim.key_file = {settings.dkim.key_file!r} cannot be read: {exc}.") from exc

    def render(self, sections: tuple[str, ...] | None) -> Rendered | None:
        """The edition for one section set, or None when it has nothing for them (S11)."""
        ed = compose(
            self.stories,
            day=self.edition.day,
            timezone=self.edition.timezone,
            chosen=sections,
            options=self.options,
            web_url=edition_url(self.settings, self.edition.day, self.edition.timezone, secret=self.secret),
        )
        return None if ed.is_empty else self.renderer.render(ed)

    def _template_args(self) -> dict[str, Any]:
        return {
            "sender": parseaddr(self.settings.smtp.sender)[1] or self.settings.smtp.sender,
            "sender_name": parseaddr(self.settings.smtp.sender)[0] or self.settings.digest.title,
            "list_id": f"digest.{self.domain}",
            "base_url": self.settings.digest.base_url,
            "feedback_id": self.feedback_id,
        }

    def _cut(self) -> SectionCuts | None:
        """The whole edition cut into per-section pieces, made on first use; None when it cannot be cut."""
        if self._whole is None:
            self._whole = compose(
                self.stories,
                day=self.edition.day,
                timezone=self.edition.timezone,
                chosen=None,
                options=self.options,
                web_url=edition_url(self.settings, self.edition.day, self.edition.timezone, secret=self.secret),
            )
            cuts = SectionCuts(self.renderer, self._whole) if not self.options.top_stories else None
            self._cuts = cuts if cuts is not None and cuts.usable else None
        return self._cuts

    def _piece(self, text: str) -> message.EncodedPiece:
        # Keyed by the piece's text: a section's piece is one string object, its hash computed once.
        encoded = self._encoded.get(text)
        if encoded is None:
            encoded = self._encoded[text] = message.encode_piece(text)
        return encoded

    def template(self, sections: tuple[str, ...] | None) -> message.MessageTemplate | None:
        key = frozenset(sections) if sections is not None else None
        if key not in self._templates:
            cuts = self._cut()
            if cuts is not None:
                narrowed = narrow(self._whole, sections)
                if narrowed.is_empty:
                    self._templates[key] = None
                else:
                    subject, _, text, html = cuts.parts(narrowed)
                    self._templates[key] = message.template_from_pieces(
                        subject, [self._piece(p) for p in text], [self._piece(p) for p in html], **self._template_args()
                    )
            else:
                rendered = self.render(sections)
                self._templates[key] = (
                    None if rendered is None else message.build_template(rendered, **self._template_args())
                )
        return self._templates[key]

    @property
    def feedback_id(self) -> str:
        """Gmail's Feedback-ID: edition, day, mail type, sender; the same for every subscriber."""
        return f"{self.edition.id}:{self.edition.day.isoformat()}:edition:{self.domain}"

    def return_path(self, subscriber: Subscriber) -> str:
        """The envelope sender: a signed VERP address under [bounces] domain, else [smtp] sender."""
        domain = self.settings.bounces.domain
        if not domain:
            return self._envelope_sender
        return tokens.verp_address(self.secret, subscriber.public_id, self.edition.id, domain)

    def message_id(self, subscriber_id: int) -> str:
        return tokens.message_id(self.secret, self.edition.id, subscriber_id, self.domain)

    def links(self, subscriber: Subscriber) -> tuple[str, str]:
        """The subscriber's unsubscribe and preferences URLs, signed with the newest key."""
        base = self.settings.digest.base_url
        return (
            f"{base}/u/{tokens.unsubscribe_token(self.link_key, subscriber.public_id)}",
            f"{base}/p/{tokens.preferences_token(self.link_key, subscriber.public_id)}",
        )

    def personalise(self, template: message.MessageTemplate, subscriber: Subscriber, *, now: datetime) -> bytes:
        unsubscribe_url, preferences_url = self.links(subscriber)
        data = message.personalise(
            template,
            to_addr=subscriber.email,
            to_name=subscriber.name,
            message_id=self.message_id(subscriber.id),
            date=now,
            unsubscribe_url=unsubscribe_url,
            preferences_url=preferences_url,
            unsubscribe_mailto=self.settings.smtp.unsubscribe_mailto,
        )
        if self.dkim_key is not None:
            data = message.sign_dkim(
                data,
                domain=self.settings.dkim.domain or "",
                selector=self.settings.dkim.selector or "",
                private_key=self.dkim_key,
            )
        return data


def _retry_delay(attempts: int) -> timedelta:
    # B7: back off between attempts to the same destination; a daily digest gives up within a day.
    delay: timedelta = timedelta(minutes=5) * (2 ** max(attempts - 1, 0))
    return min(delay, timedelta(hours=2))


# --------------------------------------------------------------------------- who holds a claim

CLAIM_ROWS = 100  # rows claimed at once; all of them are sent or released by the same sender
READ_AHEAD = 8  # subscribers read at once, just before their messages are made
LEASE = timedelta(minutes=10)  # a claim not renewed for this long is taken by the next sender (B1)
RENEW_EVERY = 120.0  # seconds between renewals of the claims a sender still holds


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks) of a process, from /proc; None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except OSError:
        return None
    return fields[0].decode(), fields[19].decode()


def worker_name(pid: int | None = None) -> str:
    """ "host:pid.start": names this process in the claims it makes; the start time tells a reused pid apart."""
    pid = os.getpid() if pid is None else pid
    stat = _proc_stat(pid)
    return f"{socket.gethostname()}:{pid}" + (f".{stat[1]}" if stat else "")


def worker_alive(name: str) -> bool | None:
    """False when `name` is a process of this host that is gone; True when it runs; None: cannot tell."""
    host, _, proc = name.rpartition(":")
    pid_text, _, start = proc.partition(".")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if os.path.exists("/proc/self/stat"):
        stat = _proc_stat(pid)
        return stat is not None and stat[0] != "Z" and (not start or stat[1] == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def release_orphans(store: Store, edition_id: int, *, now: datetime) -> int:
    """Return to pending the rows of this edition claimed by processes of this host that are gone
    (kill -9, a crash). A claim made on another host waits for its lease to run out."""
    released = 0
    for holder in store.claim_holders(edition_id):
        if worker_alive(holder) is False:
            n = store.release_claims(holder, now=now)
            released += n
            log.warning(
                "edition=%d: %d messages claimed by %s, which stopped, are pending again; those it "
                "had sent but not yet recorded go out twice, with the same Message-ID",
                edition_id,
                n,
                holder,
            )
    return released


# --------------------------------------------------------------------------- recording results


class _Outbox:
    """One sender's claims and results: one database connection on one thread, group commits.

    A commit per message on its own connection cost more than sending the message. Here each
    result still waits for its commit before its worker takes the next message (so a kill -9
    leaves at most the messages in flight unrecorded: S1, S2), but one commit carries every result
    that arrived in the same turn of the event loop (group commit: with N connections, up to N
    rows per transaction), on a connection kept open. A failed commit stops the run (S10): every
    result of that group, and every later one, raises it.
    """

    def __init__(self, store: Store, worker: str, clock: Clock, *, suspend_after: int) -> None:
        self.store, self.worker, self.clock, self.suspend_after = store, worker, clock, suspend_after
        self._session = store.outbox_session(worker)
        # SQLite commits a few rows in under 0.1 ms on a kept connection, less than handing the
        # call to a thread and back costs while this loop is busy (1-2 ms, GIL switching), so
        # there the session runs on the loop's own thread. A server database keeps one thread.
        self._thread = (
            None
            if store.engine.dialect.name == "sqlite"
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        )
        self._marks: list[Mark] = []  # results waiting for the next commit
        self._permanent: list[int] = []  # subscribers to count a 5xx against
        self._group: asyncio.Task[None] | None = None  # the commit the next result will join
        self._closing = asyncio.Event()
        self._error: Exception | None = None
        self._renewer: asyncio.Task[None] | None = None

    async def _run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self._thread is None:
            return fn(*args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._thread, partial(fn, *args, **kwargs))

    async def __aenter__(self) -> _Outbox:
        self._renewer = asyncio.create_task(self._renew())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()
        if self._renewer is not None:
            await self._renewer
        try:
            # What is still claimed was never sent: deliver() finished and recorded every message
            # it started. After a failed commit the claims stay, and the next run takes them over.
            if self._error is None:
                await self._run(self._session.release, now=self.clock())
        finally:
            await self._run(self._session.close)
            if self._thread is not None:
                self._thread.shutdown(wait=False)

    async def subscribers(self, ids: list[int]) -> dict[int, Subscriber]:
        return await self._run(self._session.subscribers, ids)

    async def claim(
        self, edition_id: int, *, limit: int, due_only: bool, since: datetime | None = None
    ) -> list[Delivery]:
        return await self._run(
            self._session.claim, edition_id, now=self.clock(), lease=LEASE, limit=limit, due_only=due_only, since=since
        )

    async def add(self, mark: Mark, *, permanent_failure_of: int | None = None) -> None:
        """Record one result; returns once it is committed (with the others of its group)."""
        if self._error is not None:
            raise self._error
        self._marks.append(mark)
        if permanent_failure_of is not None:
            self._permanent.append(permanent_failure_of)
        if self._group is None:
            self._group = asyncio.create_task(self._commit())
        await asyncio.shield(self._group)  # a cancelled waiter must not cancel the others' commit

    async def _commit(self) -> None:
        await asyncio.sleep(0)  # one turn of the loop: results that arrived with this one join it
        marks, self._marks = self._marks, []
        failures, self._permanent = self._permanent, []
        self._group = None  # results from now on go into the next group
        try:
            await self._run(self._session.record, marks, now=self.clock())
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
            self._error = exc
            raise

    async def _renew(self) -> None:
        """Keep our claims from running out during a long (rate-limited, or slow) send."""
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), RENEW_EVERY)
            if not self._closing.is_set():
                with contextlib.suppress(Exception):  # a failing database shows up in the next commit
                    await self._run(self._session.renew, until=self.clock() + LEASE)


# --------------------------------------------------------------------------- sending one edition


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
) -> SendReport:
    """Send every pending row of the edition (with due_only, only those whose retry time has come).

    Rows are claimed CLAIM_ROWS at a time, so any number of these may run at once, in this
    process or others, each sending different rows.
    """
    rep = report or SendReport(edition.id, edition.day, edition.timezone, created=False)
    since = run_started or clock()  # rows this run defers are not retried by this run
    mailer = await asyncio.to_thread(EditionMailer, settings, store, edition)
    me = worker_name()
    await asyncio.to_thread(release_orphans, store, edition.id, now=clock())
    rows: dict[int, Delivery] = {}

    def stopped() -> bool:
        return stop is not None and stop.is_set()

    async def envelopes() -> AsyncIterator[Envelope]:
        while not stopped():
            batch = await outbox.claim(edition.id, limit=CLAIM_ROWS, due_only=due_only, since=since)
            if not batch:
                return
            for start in range(0, len(batch), READ_AHEAD):
                chunk = batch[start : start + READ_AHEAD]
                # Read just before their turn, so a change made while the rows before were being
                # sent is honoured (B5, S9): at most READ_AHEAD messages ahead.
                subs = await outbox.subscribers([d.subscriber_id for d in chunk])
                for d in chunk:
                    if stopped():
                        return  # the rest of the claim is released when the outbox closes
                    sub = subs.get(d.subscriber_id)
                    if sub is None or sub.status != ACTIVE:  # unsubscribed after the edition was built (S9)
                        await outbox.add(Mark(d.id, SKIPPED, error="subscriber no longer active", attempted=False))
                        rep.skipped += 1
                        continue
                    template = mailer.template(sub.sections)  # their sections as they are now (B5)
                    if template is None:  # nothing in their sections: no empty email, not retried (S11)
                        await outbox.add(
                            Mark(d.id, SKIPPED, error="nothing new in the subscriber's sections", attempted=False)
                        )
                        rep.skipped += 1
                        continue
                    try:
                        data = mailer.personalise(template, sub, now=clock())
                    except SubscriberError as exc:
                        # One subscriber's bad address (CR/LF, NUL... from an old database or a
                        # direct insert) fails that row alone, recorded and not retried; the run
                        # goes on for everyone after it.
                        await outbox.add(Mark(d.id, FAILED, error=exc.message, attempted=False))
                        rep.failed += 1
                        rep.errors.append(f"subscriber {d.subscriber_id}: {exc.message}")
                        log.warning("edition=%s subscriber=%d failed: %s", edition.day, d.subscriber_id, exc.message)
                        continue
                    rows[d.id] = d
                    yield Envelope(key=d.id, sender=mailer.return_path(sub), recipient=sub.email, data=data, crlf=True)

    async def record(result: Result) -> None:
        d = rows.pop(result.key)
        now = clock()
        if result.outcome is Outcome.SENT:
            await outbox.add(Mark(d.id, SENT, message_id=mailer.message_id(d.subscriber_id)))
            rep.sent += 1
        elif result.outcome is Outcome.PERMANENT:
            await outbox.add(Mark(d.id, FAILED, error=result.detail), permanent_failure_of=d.subscriber_id)
            rep.failed += 1
            log.warning("edition=%s subscriber=%d failed permanently: %s", edition.day, d.subscriber_id, result.detail)
        elif now - edition.created_at >= settings.smtp.give_up_after:
            await outbox.add(Mark(d.id, FAILED, error=f"gave up: {result.detail}"))
            rep.failed += 1
        else:
            await outbox.add(
                Mark(d.id, PENDING, error=result.detail, next_attempt_at=now + _retry_delay(d.attempts + 1))
            )
            rep.deferred += 1
        if on_result:
            on_result(result)

    async with _Outbox(store, me, clock, suspend_after=settings.smtp.suspend_after) as outbox:
        await deliver(transport, envelopes(), record, stop=stop)
    rep.complete = await asyncio.to_thread(store.close_edition_if_done, edition.id)
    log.info(
        "edition=%s/%s sent=%d skipped=%d failed=%d deferred=%d complete=%s",
        edition.day,
        edition.timezone,
        rep.sent,
        rep.skipped,
        rep.failed,
        rep.deferred,
        rep.complete,
    )
    return rep


async def send_day(
    settings: Settings,
    store: Store,
    *,
    day: date,
    transport: Transport,
    clock: Clock,
    stop: asyncio.Event | None = None,
    timezones: list[str] | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[SendReport]:
    """Build (once) and send the edition of `day` for every time zone with active subscribers."""
    zones = (
        timezones
        if timezones is not None
        else await asyncio.to_thread(store.timezones_in_use, settings.digest.timezone)
    )
    reports = []
    for tz in zones:
        edition, created = await asyncio.to_thread(build_edition, settings, store, day=day, timezone=tz, now=clock())
        rep = SendReport(edition.id, day, tz, created=created)
        reports.append(
            await send_edition(
                settings, store, edition, transport=transport, clock=clock, stop=stop, report=rep, on_result=on_result
            )
        )
        if stop is not None and stop.is_set():
            break
    return reports


def draft_mailer(settings: Settings, store: Store, *, day: date, timezone: str, now: datetime) -> EditionMailer:
    """A mailer for the edition (day, timezone) that records nothing: the edition as built when it
    exists, else as it would be built now (for `digest preview` and `digest send --dry-run`)."""
    edition = store.get_edition(day=day, timezone=timezone)
    if edition is not None:
        return EditionMailer(settings, store, edition)
    last = store.last_edition(timezone)
    age = settings.digest.max_item_age
    section_of = classifier(settings)
    items = [
        (i, section_of(i))
        for i in store.items_first_seen(after=last.cutoff if last else None, until=now)
        if i.published is None or i.first_seen - i.published <= age
    ]
    draft = EditionRecord(id=0, day=day, timezone=timezone, cutoff=now, window_start=None, created_at=now)
    return EditionMailer(settings, store, draft, items=items)


def preview(settings: Settings, store: Store, *, subscriber: Subscriber, day: date, now: datetime) -> Rendered | None:
    """The subscriber's edition for `day` without sending or recording anything."""
    tz = subscriber.timezone or settings.digest.timezone
    mailer = draft_mailer(settings, store, day=day, timezone=tz, now=now)
    rendered = mailer.render(subscriber.sections)
    if rendered is None:
        return None
    # The subscriber's own working links, as their email would carry them (not the placeholders).
    unsubscribe_url, preferences_url = mailer.links(subscriber)

    def fill(text: str) -> str:
        return text.replace(PLACEHOLDER_UNSUBSCRIBE_URL, unsubscribe_url).replace(
            PLACEHOLDER_PREFERENCES_URL, preferences_url
        )

    return dataclasses.replace(rendered, html=fill(rendered.html), text=fill(rendered.text))
