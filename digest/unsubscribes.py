"""One-click unsubscribes the database could not take yet, kept in a file until it can.

RFC 8058 asks senders to honour an unsubscribe within two days; a database busy for a minute must
not lose one. When the web app cannot write it, what the link names (the subscription's public
id; a row id for a link from before public ids) goes into a JSON-lines spool
file beside the database (appended and fsynced under an exclusive lock, so nothing in it is torn
or lost), and the web app answers 503 with Retry-After. Whoever next holds the database -- the
web app's own retry loop, the daemon's reconcile pass, any writing `digest` command -- applies the
spool and empties it, under the same lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO

from digest.config import Settings
from digest.store import UNSUBSCRIBED, Store

log = logging.getLogger(__name__)


def spool_path(settings: Settings) -> Path:
    """Beside the SQLite file; for a server database, beside the config file."""
    return settings.beside_database(".unsubscribes")


@contextmanager
def _locked(path: Path, mode: str) -> Iterator[IO[str]]:
    with open(path, mode, encoding="utf-8") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield f
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def keep(path: Path, subscriber: str | int, *, at: datetime) -> None:
    """Record an unsubscribe for later (a public id, or a legacy link's row id); returns once on disk."""
    with _locked(path, "a") as f:
        f.write(json.dumps({"subscriber": subscriber, "at": at.isoformat()}) + "\n")
        f.flush()
        os.fsync(f.fileno())


def pending(path: Path) -> list[str | int]:
    """Subscriptions waiting in the spool (for status and tests)."""
    try:
        with _locked(path, "r") as f:
            return [json.loads(line)["subscriber"] for line in f if line.strip()]
    except FileNotFoundError:
        return []


def apply(store: Store, path: Path, *, now: datetime) -> int:
    """Write the spooled unsubscribes into the database and empty the spool; returns how many.

    A StoreError (the database is still busy) propagates and leaves the spool as it was.
    """
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with _locked(path, "r+") as f:
        refs = sorted({json.loads(line)["subscriber"] for line in f if line.strip()}, key=str)
        for ref in refs:
            sub = store.get_subscriber(public_id=ref) if isinstance(ref, str) else store.get_subscriber(id=ref)
            if sub is not None and sub.status != UNSUBSCRIBED:  # an erased subscriber's link reaches nobody
                store.set_status(sub.id, UNSUBSCRIBED, now=now)
                log.info("subscriber=%d unsubscribed (one-click, kept while the database was busy)", sub.id)
        f.seek(0)
        f.truncate()
        f.flush()
        os.fsync(f.fileno())
    return len(refs)
