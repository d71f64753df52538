"""The store keeps the delivery guarantees: identity per feed, one edition per (day, zone), one row per subscriber."""

from __future__ import annotations

import dataclasses
import random
import string
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from storepaths import claim, new_edition, record, store_items

from digest.config import SubscriberSpec
from digest.errors import LockHeldError
from digest.model import FeedSpec, ParsedItem
from digest.parse import parse_feed
from digest.store import SENT, SKIPPED, UNSUBSCRIBED, Store

T0 = datetime(2026, 1, 16, 6, 0, tzinfo=UTC)


def parsed(
    key: str, *, url: str | None = None, title: str = "A title", published: datetime | None = T0, body: str = ""
) -> ParsedItem:
    return ParsedItem(
        key=key,
        title=title,
        url=url,
        summary_html=body,
        summary_text=body,
        published=published,
        content_hash=f"{title}|{body}|{url}",
    )


def make_feed(store: Store, url: str = "https://news.example/feed") -> int:
    store.sync_feeds([FeedSpec(url=url, name="Example")], now=T0)
    return next(f.id for f in store.list_feeds() if f.url == url)


def test_an_item_seen_again_is_stored_once_and_an_edit_updates_in_place(store: Store) -> None:
    feed = make_feed(store)
    assert store_items(store, feed, [parsed("g1", url="https://n.example/1")], now=T0) == (1, 0)
    assert store_items(store, feed, [parsed("g1", url="https://n.example/1")], now=T0 + timedelta(hours=1)) == (0, 0)
    assert store_items(
        store, feed, [parsed("g1", url="https://n.example/1", title="Edited")], now=T0 + timedelta(hours=2)
    ) == (0, 1)
    items = store.edition_window("UTC", until=T0 + timedelta(days=1)).items
    assert [(i.title, i.first_seen) for i in items] == [("Edited", T0)]


def test_P7_a_new_guid_with_the_same_link_and_duplicate_guids_are_one_item(store: Store) -> None:
    feed = make_feed(store)
    store_items(store, feed, [parsed("guid-a", url="https://n.example/story")], now=T0)
    new, _ = store_items(
        store,
        feed,
        [
            parsed("guid-b", url="https://n.example/story"),
            parsed("dup", url="https://n.example/x"),
            parsed("dup", url="https://n.example/x"),
        ],
        now=T0 + timedelta(hours=1),
    )
    assert new == 1
    assert len(store.edition_window("UTC", until=T0 + timedelta(days=1)).items) == 2


def test_P7_an_item_whose_key_and_link_both_moved_to_another_host_is_the_same_item(store: Store) -> None:
    """A feed without GUIDs is keyed by its links; when the publisher moves to https or to another
    host, every link and so every key changes. Each item was new again, and its feed's recent items
    were all sent a second time (skx/rss2email#137: items re-sent when the link host changed). An
    item the feed gives again under the same title, at the same path of another scheme or host (its
    query and fragment aside), is the same item: edited in place, never new."""
    feed = make_feed(store)
    before = [
        parsed("http://www.n.example/2026/01/16/floods", url="http://www.n.example/2026/01/16/floods", title="Floods"),
        parsed("http://www.n.example/story?id=7", url="http://www.n.example/story?id=7", title="Story seven"),
    ]
    assert store_items(store, feed, before, now=T0) == (2, 0)
    moved = [
        parsed("https://n.example/2026/01/16/floods", url="https://n.example/2026/01/16/floods", title="Floods"),
        parsed("https://n.example/story?id=7&ref=rss", url="https://n.example/story?id=7&ref=rss", title="Story seven"),
    ]
    new, edited = store_items(store, feed, moved, now=T0 + timedelta(hours=1))
    assert (new, edited) == (0, 2)
    items = store.edition_window("UTC", until=T0 + timedelta(days=1)).items
    assert sorted((i.title, i.url, i.first_seen) for i in items) == [
        ("Floods", "https://n.example/2026/01/16/floods", T0),
        ("Story seven", "https://n.example/story?id=7&ref=rss", T0),
    ]
    # Seen again under the new links: found by them, nothing new.
    assert store_items(store, feed, moved, now=T0 + timedelta(hours=2)) == (0, 0)
    # Another story at the same path of another host, or the same title at another path, is new:
    # an aggregator's links lead to many sites, and a feed may reuse a title ("Daily briefing").
    others = [
        parsed("https://o.example/2026/01/16/floods", url="https://o.example/2026/01/16/floods", title="Floods 2"),
        parsed("https://n.example/2026/01/17/floods", url="https://n.example/2026/01/17/floods", title="Floods"),
    ]
    assert store_items(store, feed, others, now=T0 + timedelta(hours=3)) == (2, 0)


def test_P10_an_item_whose_link_is_longer_than_an_index_entry_is_stored_and_found_by_it(store: Store) -> None:
    """A link of 6,600 characters that do not compress (tracking parameters, an encoded redirect):
    on PostgreSQL, whose B-tree entries hold 2,704 bytes, the index on (feed_id, url) made its insert
    fail, and with it every poll of its feed, the feed's other items lost too. Items are looked up
    by the link's hash: the item is stored beside the others, and found by its link again when its
    publisher changes its guid."""
    rng = random.Random(7)
    link = "https://n.example/story?" + "&".join(
        f"p{i}=" + "".join(rng.choice(string.ascii_letters) for _ in range(50)) for i in range(120)
    )
    long_one = dataclasses.replace(parsed("g1", url=link), content_hash="a" * 64)
    edited = dataclasses.replace(parsed("g1-new-guid", url=link, title="Edited"), content_hash="b" * 64)
    feed = make_feed(store)
    assert store_items(store, feed, [long_one, parsed("g2", url="https://n.example/2")], now=T0) == (2, 0)
    assert store_items(store, feed, [edited], now=T0 + timedelta(hours=1)) == (0, 1)
    items = store.edition_window("UTC", until=T0 + timedelta(days=1)).items
    assert sorted((i.url == link, i.title) for i in items) == [(False, "A title"), (True, "Edited")]
    assert [i.title for i in store.find_items(link)] == ["Edited"]


def test_P10_a_guid_of_a_thousand_cjk_characters_is_keyed_by_its_hash_and_stored(store: Store) -> None:
    """Keys are indexed too (feed_id, key): a guid is kept as the key up to 1,000 bytes of UTF-8,
    not 1,000 characters, which in CJK are 3,000 bytes, more than a PostgreSQL index entry holds."""
    rng = random.Random(3)
    guid = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(1000))
    body = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        f'<item><title>Long guid</title><guid isPermaLink="false">{guid}</guid></item>'
        '<item><title>Short guid</title><guid isPermaLink="false">short</guid></item></channel></rss>'
    ).encode()
    items = parse_feed(body, url="https://n.example/feed", content_type=None, now=T0).items
    assert [i.key.startswith("sha256:") for i in items] == [True, False]
    feed = make_feed(store)
    assert store_items(store, feed, list(items), now=T0) == (2, 0)
    assert store_items(store, feed, list(items), now=T0 + timedelta(hours=1)) == (0, 0)  # the same items


def test_every_item_lands_in_exactly_one_edition_even_when_days_are_skipped(store: Store) -> None:
    feed = make_feed(store)
    store.add_subscriber("a@example.org", name=None, sections=None, timezone=None, now=T0)
    seen: list[int] = []
    for n, day in enumerate([date(2026, 1, 16), date(2026, 1, 17), date(2026, 1, 20)]):
        first_seen = T0 + timedelta(days=n * 2)
        store_items(store, feed, [parsed(f"k{n}-{i}", published=None) for i in range(3)], now=first_seen)
        edition, created = new_edition(
            store,
            day=day,
            timezone="UTC",
            default_timezone="UTC",
            cutoff=first_seen + timedelta(hours=1),
            now=first_seen,
        )
        assert created
        seen += [i.id for i, _ in store.edition_items(edition.id)]
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 9


def test_S7_a_second_trigger_of_the_same_edition_queues_nothing(store: Store) -> None:
    make_feed(store)
    for n in range(3):
        store.add_subscriber(f"s{n}@example.org", name=None, sections=None, timezone=None, now=T0)
    results = []

    def trigger() -> None:
        results.append(
            new_edition(store, day=date(2026, 1, 16), timezone="UTC", default_timezone="UTC", cutoff=T0, now=T0)
        )

    threads = [threading.Thread(target=trigger) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(created for _, created in results) == 1
    assert len({e.id for e, _ in results}) == 1
    assert store.delivery_counts(results[0][0].id) == {"pending": 3}


def test_items_too_old_when_first_seen_are_not_sent(store: Store) -> None:
    from digest import config as cfg
    from digest.pipeline.send import build_edition

    feed = make_feed(store)
    store_items(
        store,
        feed,
        [parsed("old", published=T0 - timedelta(days=5)), parsed("fresh"), parsed("undated", published=None)],
        now=T0,
    )
    settings = cfg.from_mapping({"digest": {"max_item_age": "48h", "database": store.url}}, env={})
    edition, _ = build_edition(settings, store, day=date(2026, 1, 16), timezone="UTC", now=T0)
    assert sorted(i.title for i, _ in store.edition_items(edition.id)) == ["A title", "A title"]
    assert len(store.edition_items(edition.id)) == 2


def test_an_undated_item_whose_link_carries_an_old_day_is_not_sent(store: Store) -> None:
    # A feed without dates brings its archive when it is added; the day in an article's link is
    # the only date those items have (T0 is 16 January 2026, 06:00 UTC; max_item_age 48h).
    from digest import config as cfg
    from digest.pipeline.send import build_edition

    feed = make_feed(store)
    links = {
        "archive": "https://n.example/news/2026/01/10/quay-reopens/",  # six days before: the archive
        "yesterday": "https://n.example/news/2026/01/14/ferry-fares/",  # that day ended 30 h before T0: news
        "today": "https://n.example/news/2026/01/16/fish-market/",
        "no-day": "https://n.example/news/fish-market-moves/",
        "no-real-day": "https://n.example/news/2025/02/30/never/",  # not a date: as if there were none
    }
    store_items(
        store,
        feed,
        [parsed(key, url=url, title=key, published=None) for key, url in links.items()],
        now=T0,
    )
    settings = cfg.from_mapping({"digest": {"max_item_age": "48h", "database": store.url}}, env={})
    edition, _ = build_edition(settings, store, day=date(2026, 1, 16), timezone="UTC", now=T0)
    assert sorted(i.title for i, _ in store.edition_items(edition.id)) == [
        "no-day",
        "no-real-day",
        "today",
        "yesterday",
    ]


def test_editions_are_per_time_zone_and_queue_only_their_subscribers(store: Store) -> None:
    make_feed(store)
    store.add_subscriber("moscow@example.org", name=None, sections=None, timezone="Europe/Moscow", now=T0)
    store.add_subscriber("default@example.org", name=None, sections=None, timezone=None, now=T0)
    assert store.timezones_in_use("UTC") == ["Europe/Moscow", "UTC"]
    edition, _ = new_edition(
        store, day=date(2026, 1, 16), timezone="Europe/Moscow", default_timezone="UTC", cutoff=T0, now=T0
    )
    rows = list(store.iter_deliveries(edition.id))
    assert [store.get_subscriber(id=r.subscriber_id).email for r in rows] == ["moscow@example.org"]  # type: ignore[union-attr]


def test_a_sent_row_is_never_demoted_and_the_edition_closes_when_nothing_is_pending(store: Store) -> None:
    from digest.model import Mark

    make_feed(store)
    store.add_subscriber("a@example.org", name=None, sections=None, timezone=None, now=T0)
    store.add_subscriber("b@example.org", name=None, sections=None, timezone=None, now=T0)
    edition, _ = new_edition(store, day=date(2026, 1, 16), timezone="UTC", default_timezone="UTC", cutoff=T0, now=T0)
    a, b = claim(store, edition.id, "w", now=T0, lease=timedelta(minutes=10), limit=10)
    assert record(store, [Mark(a.id, SENT, message_id="<m@x>")], "w", now=T0) == 1
    # A late duplicate result for the same row (or one from another sender) moves nothing.
    assert record(store, [Mark(a.id, "failed", error="late duplicate")], "w", now=T0) == 0
    assert record(store, [Mark(b.id, SKIPPED, attempted=False)], "other", now=T0) == 0
    assert not store.close_edition_if_done(edition.id), "a claimed row keeps the edition open"
    assert record(store, [Mark(b.id, SKIPPED, attempted=False)], "w", now=T0) == 1
    assert store.close_edition_if_done(edition.id)
    assert store.delivery_counts(edition.id) == {"sent": 1, "skipped": 1}


def test_config_sync_never_resubscribes_someone_who_unsubscribed(store: Store) -> None:
    spec = SubscriberSpec(email="Reader@Example.org")
    store.sync_subscribers([spec], now=T0)
    sub = store.get_subscriber(email="reader@example.org")
    assert sub is not None
    store.set_status(sub.id, UNSUBSCRIBED, now=T0)
    store.sync_subscribers([spec], now=T0 + timedelta(hours=1))
    assert store.get_subscriber(email="reader@example.org").status == UNSUBSCRIBED  # type: ignore[union-attr]


def test_a_feed_that_moved_is_still_matched_by_its_configured_url(store: Store) -> None:
    from digest.model import PollRecord

    feed = make_feed(store, "https://old.example/feed")
    with store.poll_writer() as writer:  # what a poll that met a 301 writes
        writer.record([PollRecord(feed, T0, 200, 0, None, T0, moved_to="https://new.example/feed")])
    store.sync_feeds([FeedSpec(url="https://old.example/feed", name="Example")], now=T0)
    assert [f.url for f in store.list_feeds()] == ["https://new.example/feed"]


def test_S6_one_daemon_per_database(store: Store) -> None:
    store.acquire_lock("daemon", "host:1", now=T0, stale_after=timedelta(seconds=60))
    with pytest.raises(LockHeldError, match="host:1"):
        store.acquire_lock("daemon", "host:2", now=T0 + timedelta(seconds=5), stale_after=timedelta(seconds=60))
    # A holder whose heartbeat stopped (kill -9) is taken over.
    store.acquire_lock("daemon", "host:2", now=T0 + timedelta(seconds=120), stale_after=timedelta(seconds=60))
    assert not store.heartbeat("daemon", "host:1", now=T0 + timedelta(seconds=121))
    assert store.heartbeat("daemon", "host:2", now=T0 + timedelta(seconds=121))


def test_the_site_secret_is_generated_once(store: Store) -> None:
    assert store.site_secret() == store.site_secret()
    assert len(store.site_secret()) >= 32


def test_B7_a_run_never_retries_a_row_it_deferred_but_the_next_run_does(store: Store) -> None:
    from digest.model import Mark

    make_feed(store)
    store.add_subscriber("busy@example.org", name=None, sections=None, timezone=None, now=T0)
    edition, _ = new_edition(store, day=date(2026, 1, 16), timezone="UTC", default_timezone="UTC", cutoff=T0, now=T0)
    run1 = T0 + timedelta(minutes=1)
    (row,) = claim(store, edition.id, "w1", now=run1, lease=timedelta(minutes=10), limit=10, since=run1)
    deferred_at = run1 + timedelta(seconds=2)
    record(
        store,
        [Mark(row.id, "pending", error="451 try later", next_attempt_at=deferred_at + timedelta(minutes=5))],
        "w1",
        now=deferred_at,
    )
    later = deferred_at + timedelta(seconds=1)
    assert claim(store, edition.id, "w1", now=later, lease=timedelta(minutes=10), limit=10, since=run1) == [], (
        "the run that deferred it must not retry it"
    )
    assert claim(store, edition.id, "d", now=later, lease=timedelta(minutes=10), limit=10, due_only=True) == [], (
        "the daemon waits for next_attempt_at"
    )
    run2 = later + timedelta(minutes=1)  # an operator runs `digest send` again: retried at once
    assert [
        r.id for r in claim(store, edition.id, "w2", now=run2, lease=timedelta(minutes=10), limit=10, since=run2)
    ] == [row.id]


def test_the_store_takes_typed_objects_not_column_names() -> None:
    """Callers say what they mean (a status, a subscriber's choices, a spec), never a table's columns: a
    public store method with **kwargs, or a dict or Any parameter, would let a caller write any column."""
    import inspect

    loose = []
    for name, method in inspect.getmembers(Store, inspect.isfunction):
        if name.startswith("_"):
            continue
        for p in inspect.signature(method).parameters.values():
            text = str(p.annotation)
            if p.kind is p.VAR_KEYWORD or "Any" in text or "dict[" in text or "Mapping" in text:
                loose.append(f"Store.{name}({p.name}: {text})")
    assert not loose, f"store methods that take column names: {loose}"


def test_a_status_the_store_does_not_know_is_refused(store: Store) -> None:
    store.sync_subscribers([SubscriberSpec(email="alice@example.org")], now=T0)
    alice = store.get_subscriber(email="alice@example.org")
    assert alice is not None
    with pytest.raises(ValueError, match="unknown subscriber status"):
        store.set_status(alice.id, "deleted", now=T0)
    assert store.get_subscriber(email="alice@example.org").status == "active"  # type: ignore[union-attr]


def test_a_renamed_sections_choosers_follow_it_in_one_pass(store: Store) -> None:
    store.sync_subscribers(
        [
            SubscriberSpec(email="a@example.org", sections=("World", "Sport")),
            SubscriberSpec(email="b@example.org", sections=("Sport",)),
            SubscriberSpec(email="c@example.org"),  # every section: nothing to rename
            SubscriberSpec(email="d@example.org", sections=("World news", "International")),
        ],
        now=T0,
    )
    assert store.chosen_sections() == {"World": 1, "Sport": 2, "World news": 1, "International": 1}
    renames = [("World", "International"), ("World news", "International")]
    assert store.rename_chosen_sections(renames, now=T0) == 2
    got = {s.email: s.sections for s in store.list_subscribers()}
    assert got == {
        "a@example.org": ("International", "Sport"),
        "b@example.org": ("Sport",),
        "c@example.org": None,
        "d@example.org": ("International",),  # both its names were the one section: listed once
    }
    assert store.rename_chosen_sections(renames, now=T0) == 0  # nothing left under the old names
    assert store.chosen_sections() == {"International": 2, "Sport": 2}


def test_an_error_the_database_reports_over_several_lines_is_one_line() -> None:
    """PostgreSQL adds DETAIL and HINT lines to its errors; the StoreError a command prints is one line."""
    from types import SimpleNamespace

    from sqlalchemy.exc import OperationalError

    from digest.errors import StoreError
    from digest.store.base import _translate

    server = Exception('index row size 6656 exceeds maximum 2704 for index "ix"\nDETAIL:  Index row\nHINT:  Values')
    ctx = SimpleNamespace(  # the ExceptionContext attributes _translate reads
        original_exception=server, sqlalchemy_exception=OperationalError("INSERT", {}, server), is_disconnect=False
    )
    with pytest.raises(StoreError) as raised:
        _translate("postgresql://db", None)(ctx)  # type: ignore[arg-type]
    assert "\n" not in raised.value.message and "DETAIL: Index row HINT: Values." in raised.value.message


def test_a_polls_error_quoting_a_server_is_stored_as_one_line_without_a_nul(store: Store) -> None:
    """feeds.last_error may quote a remote server; PostgreSQL refuses a NUL in text, and the poll's
    whole record (its back-off, its next poll) failed with it."""
    from digest.model import PollRecord

    feed = make_feed(store)
    with store.poll_writer() as writer:
        writer.record([PollRecord(feed, T0, 500, 1, "HTTP 500 Oops\x00gone\nnext line", T0 + timedelta(minutes=30))])
    (stored,) = store.list_feeds()
    assert (stored.last_error, stored.next_poll_at) == ("HTTP 500 Oops gone next line", T0 + timedelta(minutes=30))
