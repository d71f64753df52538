"""An edition's content as messages and pages: its stories (clustered once, stored with it), the
compose options and renderer the settings ask for, its web address, and `EditionMailer`, which
turns one subscriber into the bytes of their email.

Nothing here sends or records anything; `pipeline.sender` does, and `pipeline.send` (the send
job's façade) decides what is built and when.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any, TypeVar

from digest import message, tokens
from digest.addresses import ascii_domain
from digest.catalogue import site_title
from digest.cluster import SMALL_BATCH
from digest.compose import (
    ComposeOptions,
    Narrowing,
    PlacedStory,
    build_stories,
    compose,
    stories_from_json,
    stories_to_json,
)
from digest.config import Settings
from digest.errors import ConfigError, SubscriberError
from digest.model import (
    EditionRecord,
    EditionWindow,
    Item,
    Moved,
    Rendered,
    Subscriber,
)
from digest.render import Renderer, SectionCuts
from digest.sections import Classification, classify
from digest.store import Store

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
T = TypeVar("T")


def compose_options(settings: Settings) -> ComposeOptions:
    d = settings.digest
    return ComposeOptions(
        title=d.title,
        section_order=settings.section_names,
        max_per_section=d.max_items_per_section,
        section_limits=tuple((s.name, s.max_items) for s in settings.sections if s.max_items is not None),
        top_stories=d.top_stories,
        language=d.language,
        cluster_threshold=d.cluster_threshold,
        read_also_lower=d.read_also_min,
        read_also_max=d.read_also,
        max_per_source=d.max_per_source,
        synopsis_sentences=d.synopsis_sentences,
        subject_style=d.subject,
        plural_outlets=frozenset(
            [*(f.name for f in settings.feeds if f.plural and f.name), *(o.name for o in settings.outlets if o.plural)]
        ),
        press_outlets=tuple(dict.fromkeys(f.name for f in settings.feeds if f.press and f.name)),
        press_section=d.press_section,
        outlet_names=tuple((o.site, o.name) for o in settings.outlets),
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
        feed_section=settings.filed_section(item.feed_section),
        sections=settings.sections,
        fallback=settings.digest.fallback_section,
        summary=item.summary_text,
        feed_names=(item.source, item.feed_url or "", item.feed_title or ""),
        language=item.language,
    )


def classifier(settings: Settings) -> Callable[[Item], str]:
    """The section rules as a function of an item, remembered per item for this settings object:
    the editions of one day (one per time zone) mostly hold the same items, and the shipped rules
    cost ~0.3 ms an item (bench/sections.py)."""
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


def choose_items(settings: Settings, window: EditionWindow) -> list[tuple[Item, str]]:
    """The window's items an edition carries, each with its section: all but those already older
    than max_item_age when first seen (not news). An edition's and a mover's gap alike."""
    section_of = classifier(settings)
    return [(item, section_of(item)) for item in window.items if is_news(item, settings.digest.max_item_age)]


def is_news(item: Item, age: timedelta) -> bool:
    """Whether an item was at most `age` old when first seen. An undated item is news unless its
    link carries a day that was already older (".../2017/01/07/..." first seen in 2026): the
    archive a feed without dates brings with it when it is added, which is not this edition's."""
    if item.published is not None:
        return item.first_seen - item.published <= age
    day = item.link_day
    # The day's last moment: an article filed that day was at most this old.
    return day is None or item.first_seen - datetime.combine(day + timedelta(days=1), time.min, UTC) <= age


def sender_domain(settings: Settings) -> str:
    """The sender's domain in IDNA A-labels: the List-Id, Feedback-ID and Message-IDs made from it
    are ASCII, as the envelope and the From header are (digest.addresses.ascii_domain)."""
    try:
        address = ascii_domain(parseaddr(settings.smtp.sender)[1])
    except SubscriberError as exc:
        raise ConfigError(f"smtp.sender: {exc.message}", hint="Fix [smtp] sender in your config file.") from None
    return address.rpartition("@")[2] or "localhost"


def edition_path(day: date, timezone: str) -> str:
    """The edition page's path below the site: a zone's "/" becomes "~" so it stays one segment."""
    return f"editions/{timezone.replace('/', '~')}/{day.isoformat()}"


def zone_of_path(segment: str) -> str:
    """The time zone an edition path's segment names (the inverse of edition_path's encoding)."""
    return segment.replace("~", "/")


def edition_url(settings: Settings, day: date, timezone: str, *, secret: str | None = None) -> str:
    """The edition's web page ("Read this edition online", "N more in <Section>"). With the public
    archive off it carries the edition's key, which only the secret's holder can make."""
    url = f"{settings.digest.base_url}/{edition_path(day, timezone)}"
    if not settings.web.archive and secret:
        url += f"?key={tokens.edition_key(secret, day.isoformat(), timezone)}"
    return url


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
    options = compose_options(settings)
    if body is not None:
        placed = stories_from_json(body, [item for item, _ in items], history, options)
        if placed is not None:
            return _under_current_names(settings, placed)
    global _clustered
    # The editions of one day (one per time zone) usually hold the same items: cluster those once.
    background = clustering_background(store, items)
    key = (
        tuple((i.id, i.title, i.summary_text, section) for i, section in items),
        tuple(h.id for h in history),
        tuple(b.id for b in background),
    )
    if _clustered is not None and _clustered[0] is settings and _clustered[1] == key:
        placed = _clustered[2]
    else:
        placed = build_stories(items, history=history, background=background, options=options)
        _clustered = (settings, key, placed)
    if edition.id and body is None:
        store.save_edition_stories(edition.id, stories_to_json(placed), now=now or datetime.now(UTC))
    return _under_current_names(settings, placed)


def _under_current_names(settings: Settings, placed: list[PlacedStory]) -> list[PlacedStory]:
    """An edition built before a section was renamed ([[sections]] formerly) stores the old name;
    its stories go out under the new one, which subscribers' choices now say (a retry or a resumed
    send after the rename, its web page)."""
    renames = settings.section_renames
    if not renames:
        return placed
    return [PlacedStory(p.story, renames.get(p.section, p.section)) for p in placed]


# The week before an edition weighs how common its words are when the edition is too few items to
# (`cluster.cluster`'s background: under `SMALL_BATCH`); the latest items, up to this many.
BACKGROUND_DAYS = 7
BACKGROUND_ITEMS = 5000


def clustering_background(store: Store, items: Sequence[tuple[Item, str]]) -> list[Item]:
    """The items first seen in the week before the edition's first item, latest first; none for an
    edition large enough alone. Read from its items, not its window: the editions of one day in
    several time zones, which hold the same items, are clustered once, on the same background."""
    if not items or len(items) >= SMALL_BATCH:
        return []
    start = min(item.first_seen for item, _ in items)
    return store.items_before(start, since=start - timedelta(days=BACKGROUND_DAYS), limit=BACKGROUND_ITEMS)


def read_also_history(settings: Settings, store: Store, edition: EditionRecord) -> list[Item]:
    """Items earlier editions of this time zone carried, for "Read also" links."""
    if not settings.digest.read_also:
        return []
    since = edition.created_at - timedelta(days=settings.digest.read_also_days)
    return store.sent_items(since=since, before_edition=edition.id, timezone=edition.timezone)


def _all_had(placed: PlacedStory, had: frozenset[int]) -> bool:
    """Whether a mover was sent every report of a story in their former zone: it is left out."""
    return {placed.story.lead.id, *(i.id for i in placed.story.also)} <= had


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
        self.link_key = tokens.key_ring(
            settings.web.secret_keys,
            settings.digest.secret,
            store.site_secret(),
            only_listed=settings.web.only_listed_keys,
        )[0]
        self.domain = sender_domain(settings)
        self._envelope_sender = parseaddr(settings.smtp.sender)[1] or settings.smtp.sender  # once, not per message
        self._mailto = self._ascii_mailto(settings.smtp.unsubscribe_mailto)
        self.options = compose_options(settings)
        if items is None:
            items = store.edition_items(edition.id)
        self._carried = frozenset(item.id for item, _ in items)
        self.stories: list[PlacedStory] = edition_stories(settings, store, edition, items=items)
        self._gaps: dict[datetime, list[PlacedStory]] = {}  # a mover's gap's stories, by its start
        self._templates: dict[frozenset[str] | None, message.MessageTemplate | None] = {}
        self._cuts: SectionCuts | None = None
        self._narrowing: Narrowing | None = None
        self._encoded: dict[str, message.EncodedPiece] = {}
        self.dkim_key: bytes | None = None
        if settings.dkim.enabled:
            try:
                self.dkim_key = Path(settings.dkim.key_file or "").read_bytes()
            except OSError as exc:
                raise ConfigError(f"dkim.key_file = {settings.dkim.key_file!r} cannot be read: {exc}.") from exc

    @staticmethod
    def _ascii_mailto(address: str | None) -> str | None:
        """[smtp] unsubscribe_mailto with its domain in A-labels: the config keeps the address as
        email-validator normalises it (a Unicode domain), and List-Unsubscribe is ASCII (RFC 2369)."""
        if not address:
            return None
        try:
            return ascii_domain(address)
        except SubscriberError as exc:
            raise ConfigError(f"smtp.unsubscribe_mailto: {exc.message}") from None

    def gap_stories(self, since: datetime) -> list[PlacedStory]:
        """The stories of a mover's gap (`Moved.since`): the items first seen after the last
        edition that covered them, of their former zone, up to this edition's window, which no
        edition they were sent carried. Chosen and sectioned as an edition's items are, clustered
        once per gap (movers from one zone share it); slow, so a sender calls it off its loop.

        Clustered apart from the edition's stories, which stay as stored (every reader's, and the
        web page's): a story told on both sides of the window's start is shown twice, each time
        with other reports, and no report twice."""
        placed = self._gaps.get(since)
        if placed is None:
            start = self.edition.window_start
            assert start is not None  # a gap is only found from a stored window start
            seen = [i for i in self.store.items_seen(after=since, until=start) if i.id not in self._carried]
            chosen = choose_items(self.settings, EditionWindow(self.edition.timezone, since, start, tuple(seen)))
            background = clustering_background(self.store, chosen)
            placed = self._gaps[since] = (
                build_stories(chosen, background=background, options=self.options) if chosen else []
            )
        return placed

    def render(
        self,
        sections: tuple[str, ...] | None,
        *,
        had: frozenset[int] = frozenset(),
        gap: Sequence[PlacedStory] = (),
    ) -> Rendered | None:
        """The edition for one section set (as stored: a former name is read as its section), or
        None when it has nothing for them (S11). Without the stories whose every report is in
        `had`: items the subscriber was sent in another zone's edition before moving here; with
        the stories of their `gap` (`gap_stories`)."""
        sections = self.settings.chosen_now(sections)
        stories = self.stories
        if had:
            stories = [p for p in stories if not _all_had(p, had)]
        if gap:
            stories = [*stories, *gap]
        ed = compose(
            stories,
            day=self.edition.day,
            timezone=self.edition.timezone,
            chosen=sections,
            options=self.options,
            web_url=edition_url(self.settings, self.edition.day, self.edition.timezone, secret=self.secret),
        )
        return None if ed.is_empty else self.renderer.render(ed)

    @property
    def carried(self) -> frozenset[int]:
        """The ids of the items this edition carries (a draft's too: `OutboxSession.movers`)."""
        return self._carried

    def moved_note(self, sections: tuple[str, ...] | None, move: Moved, gap: Sequence[PlacedStory]) -> str | None:
        """For the operator (`digest preview`, `send --dry-run`), one line on how a mover's message
        differs from their zone's others', in their sections: the stories of their `gap` it adds
        and the stories it leaves out, sent them in their former zone (`render`'s `had` and `gap`).
        None when it differs in nothing they would see."""
        chosen = self.settings.chosen_now(sections)
        added = sum(1 for p in gap if chosen is None or p.section in chosen)
        left = 0
        if move.had:
            left = sum(1 for p in self.stories if (chosen is None or p.section in chosen) and _all_had(p, move.had))
        parts = []
        if added:
            parts.append(f"+{added} {'story' if added == 1 else 'stories'} since its last edition")
        if left:
            parts.append(f"{left} left out already sent")
        return f"moved from {move.former or 'another time zone'}: {', '.join(parts)}" if parts else None

    def _template_args(self) -> dict[str, Any]:
        return {
            "sender": parseaddr(self.settings.smtp.sender)[1] or self.settings.smtp.sender,
            "sender_name": parseaddr(self.settings.smtp.sender)[0]
            or site_title(self.renderer.translations(self.settings.digest.language), self.settings.digest.title),
            "list_id": f"digest.{self.domain}",
            "base_url": self.settings.digest.base_url,
            "feedback_id": self.feedback_id,
        }

    def _cut(self) -> SectionCuts | None:
        """The whole edition cut into per-section pieces, made on first use; None when it cannot be cut."""
        if self._narrowing is None:
            self._narrowing = Narrowing(
                self.stories,
                day=self.edition.day,
                timezone=self.edition.timezone,
                options=self.options,
                web_url=edition_url(self.settings, self.edition.day, self.edition.timezone, secret=self.secret),
            )
            cuts = SectionCuts(self.renderer, self._narrowing.whole, taken=self._narrowing.taken)
            self._cuts = cuts if cuts.usable else None
        return self._cuts

    def _piece(self, text: str) -> message.EncodedPiece:
        # Keyed by the piece's text: a section's piece is one string object, its hash computed once.
        encoded = self._encoded.get(text)
        if encoded is None:
            encoded = self._encoded[text] = message.encode_piece(text)
        return encoded

    def template(
        self,
        sections: tuple[str, ...] | None,
        *,
        had: frozenset[int] = frozenset(),
        gap: Sequence[PlacedStory] = (),
    ) -> message.MessageTemplate | None:
        """A section set's message template, made once per set as stored (a former name read as
        its section, [[sections]] formerly), or None when the set has nothing in this edition.

        For a subscriber who moved zone (`OutboxSession.movers`), a template made for them alone
        (rare: only their first edition after the move): `had`, this edition's items they were
        sent in another zone's overlapping edition, whose stories are left out; `gap`, the stories
        of the items no edition they were sent carried (`gap_stories`), added."""
        if had or gap:
            rendered = self.render(sections, had=had, gap=gap)
            return None if rendered is None else message.build_template(rendered, **self._template_args())
        key = frozenset(sections) if sections is not None else None
        if key not in self._templates:
            sections = self.settings.chosen_now(sections)
            cuts = self._cut()
            if cuts is not None:
                assert self._narrowing is not None
                narrowed = self._narrowing.narrow(sections)
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

    def personalise(
        self,
        template: message.MessageTemplate,
        subscriber: Subscriber,
        *,
        now: datetime,
        message_id: str | None = None,
    ) -> bytes:
        """The subscriber's message; `message_id`, when the caller already has it (the sender
        records it after the send), is not computed again."""
        unsubscribe_url, preferences_url = self.links(subscriber)
        data = message.personalise(
            template,
            to_addr=subscriber.email,
            to_name=subscriber.name,
            message_id=message_id or self.message_id(subscriber.id),
            date=now,
            unsubscribe_url=unsubscribe_url,
            preferences_url=preferences_url,
            unsubscribe_mailto=self._mailto,
        )
        if self.dkim_key is not None:
            data = message.sign_dkim(
                data,
                domain=self.settings.dkim.domain or "",
                selector=self.settings.dkim.selector or "",
                private_key=self.dkim_key,
            )
        return data
