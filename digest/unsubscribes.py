"""One-click unsubscribes the database could not take yet, kept in a file until it can.

RFC 8058 asks senders to honour an unsubscribe within two days; a database busy for a minute must
not lose one. When the web app cannot write it, the subscriber id goes into a JSON-lines spool
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

from sqlalchemy.engine.url import make_url

from digest.config import Settings
from digest.store import UNSUBSCRIBED, Store

log = logging.getLogger(__name__)


def spool_path(settings: Settings) -> Path:
    """Beside the SQLite file; for a server database, beside the config file."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).with_name(Path(url.database).name + ".unsubscribes")
    folder = settings.path.parent if settings.path else Path.cwd()
    return folder / "digest-unsubscribes.jsonl"


@contextmanager
def _locked(path: Path, mode: str) -> Iterator[IO[str]]:
    with open(path, mode, encoding="utf-8") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield f
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def keep(path: Path, subscriber_id: int, *, at: datetime) -> None:
    """Record an unsubscribe for later; returns once it is on disk."""
    with _locked(path, "a") as f:
        f.write(json.dumps({"subscriber": subscriber_id, "at": at.isoformat()}) + "\n")
        f.flush()
        os.fsync(f.fileno())


def pending(path: Path) -> list[int]:
    """Subscriber ids waiting in the spool (for status and tests)."""
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
        ids = sorted({json.loads(line)["subscriber"] for line in f if line.strip()})
        for subscriber_id in ids:
            sub = store.get_subscriber(id=subscriber_id)
            if sub is not None and sub.status != UNSUBSCRIBED:
                store.set_subscriber(subscriber_id, now=now, status=UNSUBSCRIBED)
                log.info("subscriber=%d unsubscribed (one-click, kept while the database was busy)",
                         subscriber_id)
        f.seek(0)
        f.truncate()
        f.flush()
        os.fsync(f.fileno())
    return len(ids)
