"""How a poll writes: many feeds per transaction, each feed's items with its state, one bad write alone."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from digest import config as cfg
from digest.model import FeedSpec, ParsedItem, PollRecord, PollWritten
from digest.pipeline.poll import parser_pool
from digest.store import Store
from digest.store.writers import PollRecorder

T0 = datetime(2026, 2, 9, 6, 0, tzinfo=UTC)


def item(key: str, title: str = "Title") -> ParsedItem:
    return ParsedItem(
        key=key,
        title=title,
        url=f"https://n.example/{key}",
        summary_html="",
        summary_text="",
        published=T0,
        content_hash=f"{key}|{title}",
    )


def polled(feed_id: int, at: datetime, status: int | None, **kw: Any) -> PollRecord:
    return PollRecord(feed_id, at, status=status, failures=0, error=None, next_poll_at=at + timedelta(hours=1), **kw)


def write(store: Store, records: list[PollRecord]) -> list[PollWritten]:
    with store.poll_writer() as writer:
        return writer.record(records)


def feeds(store: Store, *urls: str) -> list[int]:
    store.sync_feeds([FeedSpec(url=u) for u in urls], now=T0)
    by_url = {f.url: f.id for f in store.list_feeds()}
    return [by_url[u] for u in urls]


def test_a_batch_writes_each_feeds_items_with_its_state(store: Store) -> None:
    a, b = feeds(store, "https://a.example/rss", "https://b.example/rss")
    later = T0 + timedelta(minutes=5)
    written = write(
        store,
        [
            polled(a, T0, 200, validators=('"a1"', None), body_hash="h" * 64, items=(item("a1"), item("a2"))),
            polled(b, later, 304),
            polled(a, later, 200, body_hash="i" * 64, items=(item("a1", "Edited"), item("a3"))),
        ],
    )
    assert [(w.new_items, w.updated_items) for w in written] == [(2, 0), (0, 0), (1, 1)]
    stored = {f.id: f for f in store.list_feeds()}
    assert (stored[a].etag, stored[a].body_hash, stored[b].last_status) == ('"a1"', "i" * 64, 304)
    titles = {(i.url, i.title, i.first_seen) for i in store.edition_window("UTC", until=later).items}
    assert titles == {
        ("https://n.example/a1", "Edited", T0),
        ("https://n.example/a2", "Title", T0),
        ("https://n.example/a3", "Title", later),
    }


def test_H11_a_move_onto_another_feeds_url_keeps_the_old_url_and_the_rest_of_the_batch(store: Store) -> None:
    a, b = feeds(store, "https://a.example/rss", "https://b.example/rss")
    c, d = feeds(store, "https://c.example/rss", "https://d.example/rss")
    written = write(
        store,
        [
            polled(a, T0, 200, moved_to="https://b.example/rss"),
            polled(b, T0, 200, moved_to="https://b.example/new"),
            # Two feeds redirected to one new URL in the same poll: the first takes it.
            polled(c, T0, 200, moved_to="https://one.example/feed"),
            polled(d, T0, 200, moved_to="https://one.example/feed"),
        ],
    )
    assert [w.moved for w in written] == [False, True, True, False]
    assert sorted(f.url for f in store.list_feeds()) == [
        "https://a.example/rss",
        "https://b.example/new",
        "https://d.example/rss",
        "https://one.example/feed",
    ]
    assert all(f.last_status == 200 for f in store.list_feeds())


async def test_C10_a_write_that_fails_fails_only_its_own_feed(store: Store) -> None:
    a, b, c = feeds(store, "https://a.example/rss", "https://b.example/rss", "https://c.example/rss")
    missing = a + b + c  # no such feed: its items break the foreign key
    async with PollRecorder(store) as recorder:
        results = await asyncio.gather(
            recorder.write(polled(a, T0, 200, items=(item("a1"),))),
            recorder.write(polled(missing, T0, 200, items=(item("b1"),))),
            recorder.write(polled(c, T0, 304)),
            return_exceptions=True,
        )
    assert isinstance(results[1], Exception)
    assert [r.new_items for r in (results[0], results[2])] == [1, 0]  # type: ignore[union-attr]
    stored = {f.id: f.last_status for f in store.list_feeds()}
    assert stored == {a: 200, b: None, c: 304}


def store_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("digest-store")]


async def test_sqlite_writes_304s_on_the_loop_and_never_holds_it_up_for_another_writers_lock(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'digest.sqlite'}")
    a, b, c = feeds(store, "https://a.example/rss", "https://b.example/rss", "https://c.example/rss")
    async with PollRecorder(store) as recorder:  # outcomes without items: written on the loop's own thread
        await asyncio.gather(recorder.write(polled(a, T0, 304)), recorder.write(polled(b, T0, None)))
        assert store_threads() == []

    # Another process holds SQLite's write lock: the write waits for it on the recorder's thread
    # while the loop keeps running (it never waits on the loop, where it would stop every fetch).
    locker = sqlite3.connect(tmp_path / "digest.sqlite", isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    try:
        async with PollRecorder(store) as recorder:
            pending = asyncio.create_task(recorder.write(polled(c, T0, 304)))
            await asyncio.sleep(0.5)
            assert not pending.done() and ticks >= 20, ticks
            assert store_threads() != []
            locker.execute("COMMIT")
            assert (await asyncio.wait_for(pending, 10)).new_items == 0
    finally:
        ticker.cancel()
        locker.close()
    assert {f.id: f.last_status for f in store.list_feeds()} == {a: 304, b: None, c: 304}


def test_sync_writes_what_changed_and_a_gone_feed_stays_off(store: Store) -> None:
    kept, gone, dropped = feeds(store, "https://k.example/rss", "https://g.example/rss", "https://d.example/rss")
    write(store, [polled(gone, T0, 410, gone=True)])  # what a poll that met a 410 writes
    store.sync_feeds(
        [
            FeedSpec(url="https://k.example/rss", name="Renamed", interval_minutes=30),
            FeedSpec(url="https://g.example/rss", name="Gone"),
            FeedSpec(url="https://n.example/rss"),
            FeedSpec(url="https://n.example/rss", section="World"),
        ],
        now=T0,
    )
    by_url = {f.url: f for f in store.list_feeds()}
    assert (by_url["https://k.example/rss"].name, by_url["https://k.example/rss"].interval_minutes) == ("Renamed", 30)
    assert (by_url["https://g.example/rss"].name, by_url["https://g.example/rss"].active) == ("Gone", False)
    assert not by_url["https://d.example/rss"].active
    assert by_url["https://n.example/rss"].active and by_url["https://n.example/rss"].section == "World"
    assert {kept, gone, dropped} <= {f.id for f in by_url.values()}


def test_parser_processes_and_their_cpu_budget_come_from_fetch_settings() -> None:
    settings = cfg.from_mapping({"fetch": {"parse_workers": 3, "parse_cpu_seconds": 2.5}}, env={})
    with parser_pool(settings) as pool:
        assert (pool.workers, pool.cpu_seconds) == (3, 2.5)
    env = {"DIGEST_FETCH_PARSE_WORKERS": "0"}
    with parser_pool(cfg.from_mapping({}, env=env)) as pool:
        assert pool.workers == len(os.sched_getaffinity(0)) and pool.cpu_seconds == 10.0
