"""The data that flows between the stages: frozen, slotted, plain.

Nothing here does I/O or reads a clock. Every datetime is timezone-aware; stored and parsed times
are UTC. Stages exchange these objects and never SQLAlchemy rows, feedparser dicts or HTTP responses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

from digest.outlets import cited_name

# The longest name an operator may give a subscriber (config, CLI, import). The To: header shows 120
# characters of it (message.NAME_CHARS); this only keeps a pasted paragraph out of the database.
NAME_LIMIT = 200


# --------------------------------------------------------------------------- parse output

# A date as publishers write it in their articles' paths: /2017/01/07/ (the day an article is filed).
# A pattern, not compiled at import (polling imports this module and never reads a link's day).
_LINK_DAY = r"/((?:19|20)\d\d)/(0[1-9]|1[0-2])/(0[1-9]|[12]\d|3[01])/"
# The time of day an item dated by its link alone is ordered at: its day's middle, the same day in
# every time zone from UTC-11 to UTC+11 (a day heading reads `Item.day_of_link` itself).
_NOON = time(12)


def day_in_link(url: str | None) -> date | None:
    """The day a link's path carries, or None (no date there, or not a real one: 2017/02/30)."""
    m = re.search(_LINK_DAY, url or "")
    if m is None:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ParsedItem:
    """One entry as parse() normalised it from a feed body."""

    key: str  # stable identity within the feed: guid, else canonical link, else hash(title, date)
    title: str  # plain text, control and bidi-override characters removed, length-capped
    url: str | None  # absolute http(s), tracking parameters removed
    summary_html: str  # sanitised by the allow-list; safe to put in an email as is
    summary_text: str  # plain excerpt cut at a word boundary
    published: datetime | None  # aware UTC; None when absent, unparseable, in the future or pre-epoch
    categories: tuple[str, ...] = ()
    author: str | None = None
    image_url: str | None = None
    guid: str | None = None
    content_hash: str = ""  # changes when the publisher edits the item
    outlet: str | None = None  # who wrote it, when an aggregator's feed names another outlet (<source>)


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str | None
    link: str | None
    items: tuple[ParsedItem, ...]
    warning: str | None = None  # feedparser's bozo exception, when it still recovered entries
    rights: str | None = None  # the feed's copyright line (RSS <copyright>, Atom <rights>), naming its owner
    # The language it declares (RSS <language>, dc:language, Atom xml:lang) as a primary subtag ("en");
    # None where it declares none, or something that names no language (`words.declared_language`).
    language: str | None = None


# --------------------------------------------------------------------------- stored objects


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """A feed as the operator declared it (config or CLI)."""

    url: str
    name: str | None = None
    section: str | None = None
    interval_minutes: int | None = None  # per-feed poll interval override
    press: bool = False  # an outlet of the Press Review section (`name` is how it is cited)
    plural: bool = False  # the outlet's name is grammatically plural ("Ведомости пишут")


@dataclass(frozen=True, slots=True)
class Feed:
    """A feed as the store knows it, with its fetch state."""

    id: int
    url: str
    name: str | None
    section: str | None
    active: bool
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    last_status: int | None = None
    last_error: str | None = None
    last_polled_at: datetime | None = None
    next_poll_at: datetime | None = None
    consecutive_failures: int = 0
    interval_minutes: int | None = None
    title: str | None = None  # the feed's own title, used when no name is configured
    site_url: str | None = None  # the site the feed links to (its channel's <link>), naming its outlet
    rights: str | None = None  # its copyright line, which may spell out the acronym its title names it by
    language: str | None = None  # the language it declares ("en"), as its last body parsed declared it
    from_config: bool = False  # listed in the config file: only an edit there removes it

    @property
    def stopped(self) -> bool:
        """Polling stopped because the publisher answered 410 Gone, and the operator has not yet
        removed the feed: a gone feed keeps its failure count until its config entry is deleted or
        `digest feeds remove` drops it (both zero it), so an overview can say which ones need them."""
        return not self.active and self.last_status == 410 and self.consecutive_failures > 0

    @property
    def display_name(self) -> str:
        """The operator's name for the feed, else the outlet's name in the feed's title, else its URL."""
        return cited_name(self.name, self.title, self.url, self.site_url, self.rights)


@dataclass(frozen=True, slots=True)
class Item:
    """A stored item, ready for compose."""

    id: int
    feed_id: int
    source: str  # the feed's display name
    title: str
    url: str | None
    summary_html: str
    summary_text: str
    published: datetime | None
    first_seen: datetime
    categories: tuple[str, ...] = ()
    image_url: str | None = None
    feed_section: str | None = None  # the feed-level section, which beats rules
    feed_url: str | None = None  # for section rules naming feeds
    feed_title: str | None = None  # the feed's own title, for section rules naming feeds by it
    outlet: str | None = None  # the outlet an aggregator's feed names for the item (<source>), if any
    # The aggregator's feed an item came through when `source` is the site its link names
    # (digest.outlets; compose sets it, the store never does).
    via: str | None = None
    # The site its feed links to (the channel's <link>): the page an item whose own link is its audio
    # file opens instead (a podcast episode with no <link> of its own), `digest.render`.
    site_url: str | None = None
    # The language its feed declares ("en"): what its text is read in where the text says too little of
    # its own (`words.language_read`: clustering, section rules' `languages` and keywords).
    language: str | None = None

    @property
    def when(self) -> datetime:
        """The time an item is shown and ordered at: its own date; else, when its link carries an
        earlier day than the one we first saw it on, that day's noon (UTC); else when we first saw it."""
        if self.published is not None:
            return self.published
        day = self.day_of_link
        return self.first_seen if day is None else datetime.combine(day, _NOON, UTC)

    @property
    def link_day(self) -> date | None:
        """The day its link carries (".../2017/01/07/..."), the only date an undated item may have."""
        return day_in_link(self.url)

    @property
    def day_of_link(self) -> date | None:
        """An undated item's day when only its link tells it: the link's day, when earlier than the day
        we first saw the item on (the Japan Times' undated items of 3 January, first seen on the 5th,
        are of the 3rd); None otherwise, as when the link tells the day we saw it on (its time is then
        our first sight's)."""
        if self.published is not None:
            return None
        day = self.link_day
        return day if day is not None and day < self.first_seen.astimezone(UTC).date() else None

    @property
    def undated(self) -> bool:
        return self.published is None


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int
    email: str
    name: str | None
    sections: tuple[str, ...] | None  # None means all sections
    timezone: str | None  # None means [digest].timezone
    status: str = "active"  # active | unsubscribed | suspended
    permanent_failures: int = 0
    public_id: str = ""  # what links carry: random, never reused (not the row id)
    # What of the stored row cannot be read (sections that are not a list of names): such a
    # subscriber's message fails, reported, instead of stopping the edition or guessing their choice.
    damaged: str | None = None


# --------------------------------------------------------------------------- compose output / render input


@dataclass(frozen=True, slots=True)
class Quote:
    """Sentences quoted verbatim from one item of a story, attributed to its outlet (digest.synopsis)."""

    source: str  # the outlet's display name
    url: str | None  # the quoted item's link
    item_id: int
    sentences: tuple[str, ...]
    plural: bool = False  # the outlet's name is grammatically plural ("Ведомости пишут")
    # The indices k of the sentences that do not follow sentences[k - 1] in the report: text between
    # them is left out, which the quote marks ("[…]"), as an agency's press review never splices.
    gaps: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Story:
    """One story: the lead item plus the same story from other sources."""

    lead: Item
    also: tuple[Item, ...] = ()
    read_also: tuple[Item, ...] = ()  # earlier items on the same subject, already sent
    synopsis: tuple[Quote, ...] = ()  # the story told across its outlets, when two or more cover it

    @property
    def sources(self) -> int:
        return 1 + len(self.also)

    @property
    def outlets(self) -> int:
        """How many outlets tell the story: one outlet's follow-ups count once."""
        return len({self.lead.source, *(item.source for item in self.also)})


@dataclass(frozen=True, slots=True)
class DayGroup:
    day: date  # in the subscriber's time zone
    stories: tuple[Story, ...]


@dataclass(frozen=True, slots=True)
class SectionGroup:
    name: str
    anchor: str  # HTML id, stable per section name
    days: tuple[DayGroup, ...]
    total: int  # stories in this section before the cap
    shown: int  # stories rendered

    @property
    def hidden(self) -> int:
        return self.total - self.shown


@dataclass(frozen=True, slots=True)
class PressGroup:
    """One outlet in the Press Review section: its leading stories of the day, each quoting it first."""

    outlet: str
    stories: tuple[Story, ...]


@dataclass(frozen=True, slots=True)
class Edition:
    """One subscriber-facing edition: what render() turns into an email."""

    title: str
    day: date  # the edition date, local to `timezone`
    timezone: str
    sections: tuple[SectionGroup, ...]
    web_url: str  # the edition's page under base_url
    top_stories: tuple[Story, ...] = ()
    language: str = "en"
    press: tuple[PressGroup, ...] = ()  # the Press Review section, outlet by outlet; () when not chosen
    press_section: str = "Press Review"
    # "headline": '<title> — <date>: <the story most outlets tell>'; "date": '<title> — <date>';
    # "lead": 'Press review: <lead> and <second>'
    subject_style: str = "headline"
    top_sections: tuple[str, ...] = ()  # the section each of `top_stories` comes from, in their order

    @property
    def story_count(self) -> int:
        return sum(s.shown for s in self.sections)

    @property
    def is_empty(self) -> bool:
        # A story in "Top stories" is shown there only, so an edition of top stories alone is not empty.
        return not any(s.total for s in self.sections) and not self.press and not self.top_stories


# Where the subscriber's own links go in a Rendered edition: rendered once per section set, these
# plain-ASCII markers are replaced per subscriber when the message is personalised.
PLACEHOLDER_UNSUBSCRIBE_URL = "__DIGEST_UNSUBSCRIBE_URL__"
PLACEHOLDER_PREFERENCES_URL = "__DIGEST_PREFERENCES_URL__"


@dataclass(frozen=True, slots=True)
class Rendered:
    """An edition rendered for one section set; per-subscriber parts are placeholders."""

    subject: str
    html: str
    text: str
    preheader: str = ""


# --------------------------------------------------------------------------- editions and the outbox


@dataclass(frozen=True, slots=True)
class EditionRecord:
    id: int
    day: date
    timezone: str
    cutoff: datetime  # items first seen up to this instant (UTC) belong here
    window_start: datetime | None  # the previous edition's cutoff, exclusive
    created_at: datetime
    status: str = "open"  # open | complete


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    edition_id: int
    subscriber_id: int
    status: str  # pending | sending | sent | failed | skipped
    attempts: int = 0
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    message_id: str | None = None
    sent_at: datetime | None = None
    crashes: int = 0  # see store.schema.deliveries: a row with any is sent alone (S8)


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll of one feed did: printed by `digest poll`, logged by the daemon."""

    feed_url: str
    status: int | None
    new_items: int = 0
    updated_items: int = 0
    error: str | None = None
    not_modified: bool = False
    extra: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- what the jobs hand the store


@dataclass(frozen=True, slots=True)
class EditionWindow:
    """The items an edition of one time zone would freeze: first seen in (start, until].

    `start` is the previous edition's cut-off; a zone's first edition starts a day before its
    cut-off (`store.editions.FIRST_EDITION_SPAN`): a reader who signs up in a new zone gets a day's
    news, not everything polled since the database began. The store computes it, and
    `create_edition` checks that `previous` (the zone's last cut-off) is still the zone's when the
    edition is inserted.
    """

    timezone: str
    start: datetime
    until: datetime
    items: tuple[Item, ...]
    previous: datetime | None = None  # the zone's last edition's cut-off (None: its first edition)


@dataclass(frozen=True, slots=True)
class Neighbours:
    """The editions of other days and zones that a subscriber who moved zone may have been sent
    before this one (`EditionStore.neighbours`), for `OutboxSession.movers`.

    `overlapping`: other zones' editions whose windows overlap this one's. `cutoffs`: those and
    every edition whose cut-off falls in the span before this one's window start
    (`store.editions.MOVER_GAP_SPAN`), each with its cut-off and zone. Empty when no other zone's
    edition is there: then nobody can have moved here, and nothing is asked per subscriber.
    """

    overlapping: tuple[int, ...] = ()
    cutoffs: dict[int, tuple[datetime, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Standing:
    """A built edition's outbox as a send run now finds it (`EditionStore.outbox_standing`), for
    `digest preview` and `send --dry-run`, which must show what that send does.

    `due`: the subscribers whose rows the send would claim (the sender's own condition), in row
    order. `rest`: how many of the other rows are in each state: sent, failed, skipped, pending
    (deferred; their retry time has not come) and sending (held by another, live sender).
    `sent_at`: when the last of the sent ones went; `retry_at`: the earliest retry time of the
    deferred ones. `why`: how many of `due` are claimable for each reason (`DUE_RETRY`...), which
    `send --dry-run` names for an earlier edition it resumes.
    """

    due: tuple[int, ...] = ()
    rest: dict[str, int] = field(default_factory=dict)
    sent_at: datetime | None = None
    retry_at: datetime | None = None
    why: dict[str, int] = field(default_factory=dict)


# Why a row is claimable (`Standing.why`): never tried (pending, no retry time), deferred and its
# retry time has come, deferred and retried before it (`--retry-now`), or claimed by a sender
# whose lease ran out.
DUE_UNTRIED, DUE_RETRY, DUE_EARLY, DUE_LAPSED = "untried", "retry", "early", "lapsed"


@dataclass(frozen=True, slots=True)
class Moved:
    """What one subscriber who moved zone needs of this edition (`OutboxSession.movers`).

    `had`: this edition's items they were sent in an overlapping edition of another zone (left
    out). `since`: the cut-off of the last edition that covered them, of another zone, when it
    ended before this edition's window begins: the items first seen between (the gap) were in no
    edition they were sent, and their message carries them too (None: no gap). `former`: the zone
    of the last edition of another zone that covered them, for the operator's note in `digest
    preview` and `send --dry-run`.
    """

    had: frozenset[int] = frozenset()
    since: datetime | None = None
    former: str | None = None


@dataclass(frozen=True, slots=True)
class EditionItem:
    """One item an edition carries, in the section the rules gave it when the edition was built."""

    item_id: int
    section: str


@dataclass(frozen=True, slots=True)
class Lapsed:
    """What taking over the rows of a sender that stopped holding them (its lease ran out) did (S2, S8)."""

    requeued: int = 0  # rows pending again
    on_wire: int = 0  # of those, rows whose message was on the wire: it may reach the subscriber twice
    crashed: int = 0  # of those, rows whose message was being made: one more crash each
    parked: tuple[tuple[int, int], ...] = ()  # (row, subscriber) failed at their third crash

    @property
    def count(self) -> int:
        return self.requeued + len(self.parked)

    def __add__(self, other: Lapsed) -> Lapsed:
        return Lapsed(
            self.requeued + other.requeued,
            self.on_wire + other.on_wire,
            self.crashed + other.crashed,
            self.parked + other.parked,
        )


@dataclass(frozen=True, slots=True)
class ClaimHolder:
    """A sender holding claimed outbox rows of an edition, as the rows record it (`Store.claim_holders`)."""

    sender: str  # the claims' name: "<process>:<random>" (store.writers.sender_name)
    rows: int
    lease_until: datetime  # on the database's clock; renewed every third of [smtp] claim_lease while it lives


@dataclass(frozen=True, slots=True)
class Mark:
    """What became of one claimed outbox row; the store writes many in one transaction."""

    delivery_id: int
    status: str  # sent, failed, skipped, or pending to be tried again at next_attempt_at
    message_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    attempted: bool = True  # False: the message never went to the server (skipped, not counted)
    crashed: bool = False  # its message could not be made: one more of the row's crashes (S8)


@dataclass(frozen=True, slots=True)
class PollRecord:
    """What one poll changes on one feed. None in `etag`..`title` keeps what is stored, except
    that `validators` (etag, Last-Modified) are replaced together whenever a body arrived."""

    feed_id: int
    polled_at: datetime
    status: int | None  # the HTTP status; None when nothing answered
    failures: int  # consecutive failed polls, this one included (0 after a success)
    error: str | None
    next_poll_at: datetime
    gone: bool = False  # 410: stop polling it
    validators: tuple[str | None, str | None] | None = None  # (etag, Last-Modified) of a body received
    body_hash: str | None = None  # the hash of a body that was parsed
    title: str | None = None  # the feed's title from that body
    site_url: str | None = None  # the site that body links to (its channel's <link>)
    rights: str | None = None  # that body's copyright line
    language: str | None = None  # the language that body declares (None: none); set whenever `items` is
    items: tuple[ParsedItem, ...] | None = None  # parsed from a new body; new ones are first seen at polled_at
    moved_to: str | None = None  # a permanent redirect's target


@dataclass(frozen=True, slots=True)
class PollWritten:
    new_items: int
    updated_items: int
    moved: bool  # the feed's URL is now PollRecord.moved_to


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One outbox row as an operator reads it (`digest outbox`, `subscribers show`, `status`): whose
    message of which edition, where it stands, and what the SMTP server last said about it."""

    id: int
    day: date  # the edition's local day
    timezone: str  # the edition's time zone
    email: str
    status: str  # pending, sending, sent, failed, skipped
    attempts: int
    crashes: int
    last_error: str | None  # the last SMTP reply or local error recorded for the row (kept after a success)
    next_attempt_at: datetime | None  # a deferred row's retry time; None: due as soon as a sender comes
    updated_at: datetime
    worker: str | None = None  # the sender holding a `sending` row
    lease_until: datetime | None = None  # when that sender's claim runs out unless renewed
