"""send: store.read -> compose -> render -> deliver -> store.mark_sent.

An edition is built once per (local day, time zone) and frozen; then each pending outbox row is
turned into a message for its subscriber, as they are *now* (an unsubscribe or a section change
that arrives after the edition was built is honoured: B5), and handed to the transport. A row is
marked sent only after the server accepted the message; a crash leaves it pending and the next run
sends it again with the same Message-ID (A8).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path

from digest import message, tokens
from digest.compose import ComposeOptions, PlacedStory, build_stories, compose
from digest.config import Settings
from digest.deliver import Envelope, Outcome, Result, Transport, deliver
from digest.errors import ConfigError
from digest.model import Delivery, EditionRecord, Item, Rendered, Subscriber
from digest.render import Renderer
from digest.sections import classify
from digest.store import ACTIVE, FAILED, PENDING, SENT, SKIPPED, Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


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
    return ComposeOptions(title=d.title, section_order=settings.section_names, max_per_section=d.max_items_per_section,
                          top_stories=d.top_stories, language=d.language, cluster_threshold=d.cluster_threshold,
                          read_also_lower=d.read_also_min, read_also_max=d.read_also)


def make_renderer(settings: Settings) -> Renderer:
    d = settings.digest
    return Renderer(templates_dir=d.templates_dir, language=d.language, images=d.images)


def classifier(settings: Settings) -> Callable[[Item], str]:
    def section_of(item: Item) -> str:
        return classify(title=item.title, url=item.url, categories=item.categories, feed_section=item.feed_section,
                        sections=settings.sections, fallback=settings.digest.fallback_section).section
    return section_of


def sender_domain(settings: Settings) -> str:
    return parseaddr(settings.smtp.sender)[1].rpartition("@")[2] or "localhost"


def edition_url(settings: Settings, day: date, timezone: str) -> str:
    return f"{settings.digest.base_url}/editions/{timezone.replace('/', '~')}/{day.isoformat()}"


def build_edition(settings: Settings, store: Store, *, day: date, timezone: str,
                  now: datetime) -> tuple[EditionRecord, bool]:
    edition, created = store.create_edition(
        day=day, timezone=timezone, default_timezone=settings.digest.timezone, cutoff=now, now=now,
        max_item_age=settings.digest.max_item_age, classify=classifier(settings))
    if created:
        log.info("edition=%s/%s built items=%d", day, timezone, len(store.edition_items(edition.id)))
    return edition, created


class EditionMailer:
    """Turns outbox rows of one edition into messages; renders once per distinct section set."""

    def __init__(self, settings: Settings, store: Store, edition: EditionRecord, *,
                 renderer: Renderer | None = None) -> None:
        self.settings, self.store, self.edition = settings, store, edition
        self.renderer = renderer or make_renderer(settings)
        self.secret = store.site_secret()
        self.domain = sender_domain(settings)
        self.options = compose_options(settings)
        lookback = timedelta(days=settings.digest.read_also_days)
        history = store.sent_items(since=edition.created_at - lookback, before_edition=edition.id,
                                   timezone=edition.timezone) if settings.digest.read_also else []
        self.stories: list[PlacedStory] = build_stories(store.edition_items(edition.id), history=history,
                                                        options=self.options)
        self._templates: dict[frozenset[str] | None, message.MessageTemplate | None] = {}
        self.dkim_key: bytes | None = None
        if settings.dkim.enabled:
            try:
                self.dkim_key = Path(settings.dkim.key_file or "").read_bytes()
            except OSError as exc:
                raise ConfigError(f"dkim.key_file = {settings.dkim.key_file!r} cannot be read: {exc}.") from exc

    def render(self, sections: tuple[str, ...] | None) -> Rendered | None:
        """The edition for one section set, or None when it has nothing for them (S11)."""
        ed = compose(self.stories, day=self.edition.day, timezone=self.edition.timezone, chosen=sections,
                     options=self.options, web_url=edition_url(self.settings, self.edition.day, self.edition.timezone))
        return None if ed.is_empty else self.renderer.render(ed)

    def template(self, sections: tuple[str, ...] | None) -> message.MessageTemplate | None:
        key = frozenset(sections) if sections is not None else None
        if key not in self._templates:
            rendered = self.render(sections)
            self._templates[key] = None if rendered is None else message.build_template(
                rendered, sender=parseaddr(self.settings.smtp.sender)[1] or self.settings.smtp.sender,
                sender_name=parseaddr(self.settings.smtp.sender)[0] or self.settings.digest.title,
                list_id=f"digest.{self.domain}", base_url=self.settings.digest.base_url)
        return self._templates[key]

    def message_id(self, subscriber_id: int) -> str:
        return tokens.message_id(self.secret, self.edition.id, subscriber_id, self.domain)

    def personalise(self, template: message.MessageTemplate, subscriber: Subscriber, *, now: datetime) -> bytes:
        base = self.settings.digest.base_url
        data = message.personalise(
            template, to_addr=subscriber.email, to_name=subscriber.name,
            message_id=self.message_id(subscriber.id), date=now,
            unsubscribe_url=f"{base}/u/{tokens.unsubscribe_token(self.secret, subscriber.id)}",
            preferences_url=f"{base}/p/{tokens.preferences_token(self.secret, subscriber.id)}",
            unsubscribe_mailto=self.settings.smtp.unsubscribe_mailto)
        if self.dkim_key is not None:
            data = message.sign_dkim(data, domain=self.settings.dkim.domain or "",
                                     selector=self.settings.dkim.selector or "", private_key=self.dkim_key)
        return data


def _retry_delay(attempts: int) -> timedelta:
    # B7: back off between attempts to the same destination; a daily digest gives up within a day.
    return min(timedelta(minutes=5) * (2 ** max(attempts - 1, 0)), timedelta(hours=2))


async def send_edition(settings: Settings, store: Store, edition: EditionRecord, *, transport: Transport,
                       clock: Clock, stop: asyncio.Event | None = None, due_only: bool = False,
                       report: SendReport | None = None,
                       on_result: Callable[[Result], None] | None = None) -> SendReport:
    """Send every pending row of the edition (with due_only, only those whose retry time has come)."""
    rep = report or SendReport(edition.id, edition.day, edition.timezone, created=False)
    mailer = await asyncio.to_thread(EditionMailer, settings, store, edition)
    rows: dict[int, Delivery] = {}

    async def envelopes() -> AsyncIterator[Envelope]:
        pending = store.iter_deliveries(edition.id, now=clock() if due_only else None)
        while True:
            batch = await asyncio.to_thread(_take, pending, 200)
            if not batch:
                return
            subs = await asyncio.to_thread(store.subscribers_by_id, [d.subscriber_id for d in batch])
            for d in batch:
                if stop is not None and stop.is_set():
                    return
                sub = subs.get(d.subscriber_id)
                if sub is None or sub.status != ACTIVE:  # unsubscribed after the edition was built (S9)
                    await asyncio.to_thread(store.mark_delivery, d.id, status=SKIPPED, now=clock(),
                                            error="subscriber no longer active", attempted=False)
                    rep.skipped += 1
                    continue
                template = mailer.template(sub.sections)
                if template is None:  # nothing in their sections: no empty email, not retried (S11)
                    await asyncio.to_thread(store.mark_delivery, d.id, status=SKIPPED, now=clock(),
                                            error="nothing new in the subscriber's sections", attempted=False)
                    rep.skipped += 1
                    continue
                rows[d.id] = d
                yield Envelope(key=d.id, sender=parseaddr(settings.smtp.sender)[1] or settings.smtp.sender,
                               recipient=sub.email, data=mailer.personalise(template, sub, now=clock()))

    async def record(result: Result) -> None:
        d = rows.pop(result.key)
        now = clock()
        if result.outcome is Outcome.SENT:
            await asyncio.to_thread(store.mark_delivery, d.id, status=SENT, now=now,
                                    message_id=mailer.message_id(d.subscriber_id))
            rep.sent += 1
        elif result.outcome is Outcome.PERMANENT:
            await asyncio.to_thread(store.mark_delivery, d.id, status=FAILED, now=now, error=result.detail)
            suspended = await asyncio.to_thread(store.count_permanent_failure, d.subscriber_id,
                                                suspend_after=settings.smtp.suspend_after, now=now)
            rep.failed += 1
            log.warning("edition=%s subscriber=%d failed permanently: %s%s", edition.day, d.subscriber_id,
                        result.detail, " (suspended)" if suspended else "")
        elif now - edition.created_at >= settings.smtp.give_up_after:
            await asyncio.to_thread(store.mark_delivery, d.id, status=FAILED, now=now,
                                    error=f"gave up: {result.detail}")
            rep.failed += 1
        else:
            await asyncio.to_thread(store.mark_delivery, d.id, status=PENDING, now=now, error=result.detail,
                                    next_attempt_at=now + _retry_delay(d.attempts + 1))
            rep.deferred += 1
        if on_result:
            on_result(result)

    await deliver(transport, envelopes(), record, stop=stop)
    rep.complete = await asyncio.to_thread(store.close_edition_if_done, edition.id)
    log.info("edition=%s/%s sent=%d skipped=%d failed=%d deferred=%d complete=%s", edition.day,
             edition.timezone, rep.sent, rep.skipped, rep.failed, rep.deferred, rep.complete)
    return rep


def _take(it: object, n: int) -> list[Delivery]:
    out: list[Delivery] = []
    for d in it:  # type: ignore[attr-defined]
        out.append(d)
        if len(out) >= n:
            break
    return out


async def send_day(settings: Settings, store: Store, *, day: date, transport: Transport, clock: Clock,
                   stop: asyncio.Event | None = None, timezones: list[str] | None = None,
                   on_result: Callable[[Result], None] | None = None) -> list[SendReport]:
    """Build (once) and send the edition of `day` for every time zone with active subscribers."""
    zones = timezones if timezones is not None else \
        await asyncio.to_thread(store.timezones_in_use, settings.digest.timezone)
    reports = []
    for tz in zones:
        edition, created = await asyncio.to_thread(build_edition, settings, store, day=day, timezone=tz, now=clock())
        rep = SendReport(edition.id, day, tz, created=created)
        reports.append(await send_edition(settings, store, edition, transport=transport, clock=clock, stop=stop,
                                          report=rep, on_result=on_result))
        if stop is not None and stop.is_set():
            break
    return reports


def preview(settings: Settings, store: Store, *, subscriber: Subscriber, day: date, now: datetime) -> Rendered | None:
    """The subscriber's edition for `day` without sending or recording anything.

    When that edition exists it is shown as built; otherwise as it would be built now.
    """
    tz = subscriber.timezone or settings.digest.timezone
    edition = store.get_edition(day=day, timezone=tz)
    if edition is None:
        last = store.last_edition(tz)
        items = store.items_first_seen(after=last.cutoff if last else None, until=now)
        age = settings.digest.max_item_age
        section_of = classifier(settings)
        pairs = [(i, section_of(i)) for i in items if i.published is None or i.first_seen - i.published <= age]
        edition = EditionRecord(id=0, day=day, timezone=tz, cutoff=now, window_start=None, created_at=now)
        stories = build_stories(pairs, options=compose_options(settings))
    else:
        stories = build_stories(store.edition_items(edition.id), options=compose_options(settings))
    ed = compose(stories, day=day, timezone=tz, chosen=subscriber.sections, options=compose_options(settings),
                 web_url=edition_url(settings, day, tz))
    if ed.is_empty:
        return None
    return make_renderer(settings).render(ed)
