"""The store: SQLAlchemy Core over SQLite (default) or any SQLAlchemy URL.

Returns model objects, never rows. Synchronous; async code calls it through asyncio.to_thread.
"""

from __future__ import annotations

from digest.store.bounces import BounceStore
from digest.store.editions import FAILED, MAX_CRASHES, PENDING, SENDING, SENT, SKIPPED, EditionStore, OutboxReads
from digest.store.feeds import FeedStore
from digest.store.signups import SignupStore
from digest.store.subscribers import (
    ACTIVE,
    PAUSED,
    REMOVED,
    SUSPENDED,
    UNSUBSCRIBED,
    Choices,
    SubscriberStore,
)
from digest.store.workers import WorkerStore


class Store(FeedStore, SubscriberStore, EditionStore, OutboxReads, BounceStore, SignupStore, WorkerStore):
    """All tables behind one object; each mixin owns one concern."""


__all__ = [
    "ACTIVE",
    "FAILED",
    "MAX_CRASHES",
    "PAUSED",
    "PENDING",
    "REMOVED",
    "SENDING",
    "SENT",
    "SKIPPED",
    "SUSPENDED",
    "UNSUBSCRIBED",
    "Choices",
    "Store",
]
