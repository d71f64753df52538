"""The database schema (SQLAlchemy Core). Works on SQLite and PostgreSQL.

Times are stored as naive UTC and come back aware (UTCDateTime), because SQLite has no time zones.
The UNIQUE keys carry the delivery guarantees: an item is stored once per feed, an edition once per
(local day, time zone), a delivery once per (edition, subscriber).

This is the schema at the newest migration (digest/migrations/versions): a change here goes with a
new revision there, and tests/test_migrations.py checks the two agree.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.types import TypeDecorator

log = logging.getLogger(__name__)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored naive UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; every time must be aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite through some drivers
            value = datetime.fromisoformat(value)
        aware: datetime = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware


class LenientDateTime(UTCDateTime):
    """A time that may be unknown: an item's publication, a feed's last and next poll. A stored value
    that is not a time (a hand edit of a SQLite file; PostgreSQL's typed columns cannot hold one)
    reads as unknown, with a warning, instead of failing every read that meets the row: the item is
    shown undated, at the time digest first saw it; the feed is polled as one never polled, and the
    poll writes a time again. `what` names the value in that warning."""

    cache_ok = True

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        strict = super().result_processor(dialect, coltype)
        if strict is None:
            return None
        what = self.what

        def lenient(value: Any) -> datetime | None:
            try:
                read: datetime | None = strict(value)
            except ValueError:
                shown = str(value)[:80]  # a hand edit: any length
                log.warning("%s stored as %r is not a time: read as unknown", what, shown)
                return None
            return read

        return lenient


metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

feeds = Table(
    "feeds",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("url", Text, nullable=False, unique=True),  # where we fetch it now (301/308 update it)
    Column("origin_url", Text, nullable=False, unique=True),  # as the operator gave it; config sync matches this
    Column("name", Text),
    Column("section", Text),
    Column("active", Boolean, nullable=False, default=True),
    Column("from_config", Boolean, nullable=False, default=False),
    Column("interval_minutes", Integer),
    Column("title", Text),
    Column("site_url", Text),  # the channel's <link>: names the outlet of a feed on a CDN (0008)
    # The channel's copyright line: spells out the acronym a title may name its outlet by (0014).
    Column("rights", Text),
    # The language it declares, as a primary subtag ("en"): the language of an item whose text says
    # too little of its own (0015).
    Column("language", String(8)),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("body_hash", String(64)),
    Column("last_status", Integer),
    Column("last_error", Text),
    Column("last_polled_at", LenientDateTime("a feed's last poll time")),
    Column("next_poll_at", LenientDateTime("a feed's next poll time")),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False),
    # While a worker polls it: who, and until when on the database's clock (issue 15).
    Column("claimed_by", Text),
    Column("lease_until", UTCDateTime),
    Index("ix_feeds_next_poll", "next_poll_at"),
)

items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("feed_id", Integer, ForeignKey("feeds.id", ondelete="CASCADE"), nullable=False),
    Column("key", Text, nullable=False),
    Column("url", Text),
    Column("title", Text, nullable=False),
    Column("summary_html", Text, nullable=False),
    Column("summary_text", Text, nullable=False),
    Column("published", LenientDateTime("an item's publication time")),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("categories", JSON, nullable=False),
    Column("image_url", Text),
    Column("content_hash", String(64), nullable=False),
    # The outlet an aggregator's feed names for the item (RSS/Atom <source>), when not the feed's own.
    Column("outlet", Text),
    # The SHA-256 of `url` (digest.store.feeds.url_hash): what an item is looked up by its link with.
    # The link itself is not indexed: a PostgreSQL B-tree entry holds 2,704 bytes at most, and one
    # item whose link was longer failed its feed's every poll.
    Column("url_hash", String(64)),
    UniqueConstraint("feed_id", "key", name="uq_items_feed_key"),
    Index("ix_items_first_seen", "first_seen"),
    Index("ix_items_feed_url_hash", "feed_id", "url_hash"),
)

subscribers = Table(
    "subscribers",
    metadata,
    Column("id", Integer, primary_key=True),
    # As the subscriber wrote it, domain lower-cased (RFC 5321 section 2.4: a local part may be
    # case-sensitive); stored lower-cased before 0013. `email_key` (digest.addresses.address_key,
    # lower-cased) is what a row is found by, so "Ann@x.org" and "ann@x.org" are one subscriber.
    Column("email", Text, nullable=False, unique=True),
    Column("email_key", Text, nullable=False),
    Column("name", Text),
    Column("sections", JSON),  # null: all sections
    Column("timezone", Text),
    Column("status", String(16), nullable=False, default="active"),
    Column("permanent_failures", Integer, nullable=False, default=0),
    Column("from_config", Boolean, nullable=False, default=False),  # listed in the config at the last sync
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # What links carry: random, never reused, never the row id (a removed subscriber's links die with it).
    Column("public_id", String(32), nullable=False, default=lambda: secrets.token_hex(16)),
    # Who set each field last: config, cli, subscriber (web pages) or delivery (suspended). The
    # config sync overwrites only what nobody but the config set.
    Column("name_origin", String(16), nullable=False, default="cli"),
    Column("sections_origin", String(16), nullable=False, default="cli"),
    Column("timezone_origin", String(16), nullable=False, default="cli"),
    Column("status_origin", String(16), nullable=False, default="cli"),
    # The soft-bounce score (bounces.py kinds), decayed from bounce_score_at when the next one comes.
    Column("bounce_score", Float, nullable=False, default=0.0, server_default="0"),
    Column("bounce_score_at", UTCDateTime),
    # A sign-up confirmation link issued at or before this is spent: the issue time of the newest
    # one applied (single use, and an older request never undoes a newer one) (0011).
    Column("signups_spent_at", UTCDateTime),
    UniqueConstraint("public_id", name="uq_subscribers_public_id"),
    UniqueConstraint("email_key", name="uq_subscribers_email_key"),
    sqlite_autoincrement=True,  # an id is never handed out twice, even after the newest row is deleted
)

suppressions = Table(
    "suppressions",
    metadata,
    # SHA-256 of an address that unsubscribed or failed permanently; outlives the subscriber row.
    Column("email_hash", String(64), primary_key=True),
    Column("reason", String(16), nullable=False),  # unsubscribed, failed, bounced, complained, erased
    Column("created_at", UTCDateTime, nullable=False),
    # When the address last stopped (created_at is the first time): a sign-up confirmation link
    # issued before it is spent, also once an erasure took the subscriber's row (0011).
    Column("signups_spent_at", UTCDateTime),
)

bounces = Table(
    "bounces",
    metadata,
    Column("id", Integer, primary_key=True),
    # One row per outcome however often a report arrives: "<token>:<kind>" hashed when the token
    # verified, the message's hash when it did not.
    Column("dedupe", String(64), nullable=False),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE")),  # null: unverified
    Column("edition_id", Integer),
    Column("kind", String(16), nullable=False),  # hard, soft, complaint
    Column("status", String(16)),  # RFC 3463, e.g. 5.1.1
    Column("diagnostic", Text),  # the remote server's words; only for a verified report
    Column("verified", Boolean, nullable=False),
    Column("via", String(16), nullable=False),  # smtp, imap, file
    Column("received_at", UTCDateTime, nullable=False),
    UniqueConstraint("dedupe", name="uq_bounces_dedupe"),
    Index("ix_bounces_subscriber", "subscriber_id"),
)

confirmation_sends = Table(
    "confirmation_sends",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email_hash", String(64), nullable=False),  # subscribers.address_hash: never the address
    Column("sent_at", UTCDateTime, nullable=False),
    Index("ix_confirmation_sends_hash", "email_hash", "sent_at"),
    Index("ix_confirmation_sends_at", "sent_at"),
)

editions = Table(
    "editions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("day", Date, nullable=False),
    Column("timezone", Text, nullable=False),
    Column("cutoff", UTCDateTime, nullable=False),
    Column("window_start", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False, default="open"),
    UniqueConstraint("day", "timezone", name="uq_editions_day_tz"),
)

edition_items = Table(
    "edition_items",
    metadata,
    Column("edition_id", Integer, ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("section", Text, nullable=False),
)

# The edition's stories, clustered once when the edition is built (issue 12): every sending
# process and the web page read them instead of clustering the items again. `body` is
# digest.compose's own serialisation (item ids, cleaned titles, synopses), opaque to the store.
edition_stories = Table(
    "edition_stories",
    metadata,
    Column("edition_id", Integer, ForeignKey("editions.id", ondelete="CASCADE"), primary_key=True),
    Column("body", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("edition_id", Integer, ForeignKey("editions.id", ondelete="CASCADE"), nullable=False),
    Column("subscriber_id", Integer, ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False, default="pending"),  # pending, sending, sent, failed, skipped
    Column("attempts", Integer, nullable=False, default=0),
    # Times the row's message could not be made for an error the code did not expect, or its sender
    # stopped while holding it (its lease ran out): at `MAX_CRASHES` it is parked as failed (S8).
    Column("crashes", Integer, nullable=False, default=0, server_default="0"),
    # While `sending`: the message is on the wire (its SMTP transaction began). A sender that stops
    # then was stopped from outside (a kill, a deploy) while the relay held it, not by this
    # message: the row is pending again without a crash, and may reach its subscriber twice (0012).
    Column("on_wire", Boolean, nullable=False, default=False, server_default=false()),
    # While `sending`: which process claimed the row ("host:pid.start") and until when (B1). A row
    # whose lease ran out, or whose process is gone, is claimed again by the next run.
    Column("worker", Text),
    Column("lease_until", UTCDateTime),
    Column("last_error", Text),
    Column("next_attempt_at", UTCDateTime),
    Column("message_id", Text),
    Column("sent_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("edition_id", "subscriber_id", name="uq_deliveries_edition_subscriber"),
    Index("ix_deliveries_status", "edition_id", "status"),
)

locks = Table(
    "locks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", Text, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
)

# Issue 15: any number of workers on one database. Each registers here and heartbeats on the
# database's clock; a worker whose heartbeat is older than its lease is gone, and its claims lapse.
workers = Table(
    "workers",
    metadata,
    Column("name", Text, primary_key=True),  # --name, default "host:pid"
    Column("host", Text, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", Text, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("clock_skew", Float, nullable=False, default=0.0, server_default="0"),  # worker - database, s
)

# Politeness across workers: the next time a request may start on a publisher's host (the minimum
# interval), and `per_host` slot rows per host, leased like feeds, that cap fetches in flight.
hosts = Table(
    "hosts",
    metadata,
    Column("host", Text, primary_key=True),
    Column("next_allowed_at", UTCDateTime, nullable=False),
)

host_slots = Table(
    "host_slots",
    metadata,
    Column("host", Text, primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("held_by", Text),
    Column("lease_until", UTCDateTime),
)
