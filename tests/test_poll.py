"""What a poll records on each feed: the pipeline over a real HTTP server and a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from httpservers import FeedServer
from storepaths import store_items

from digest import config as cfg
from digest.model import Feed, ParsedItem
from digest.pipeline import poll_once
from digest.pipeline.poll import next_poll_after
from digest.store import Store

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def feed_body(*titles: str) -> bytes:
    items = "".join(
        f"<item><title>{t}</title><link>https://w.example/{i}</link><guid>g{i}</guid>"
        f"<pubDate>{format_datetime(NOW - timedelta(hours=i))}</pubDate></item>"
        for i, t in enumerate(titles)
    )
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>{items}</channel></rss>').encode()


def make(tmp_path: Path, urls: list[str]) -> tuple[cfg.Settings, Store]:
    settings = cfg.from_mapping(
        {
            "digest": {
                "database": f"sqlite:///{tmp_path / 'p.sqlite'}",
                "allow_private_addresses": True,
                "poll_interval": "15m",
            },
            "fetch": {"timeout": 5.0},
            "feeds": [{"url": u} for u in urls],
        },
        env={},
    )
    store = Store(settings.database_url)
    store.sync_feeds(settings.feeds, now=NOW)
    return settings, store


async def poll(settings: cfg.Settings, store: Store, at: datetime = NOW) -> None:
    await poll_once(settings=settings, store=store, clock=lambda: at)


def only(store: Store) -> Feed:
    (feed,) = store.list_feeds()
    return feed


async def test_H11_a_301_moves_the_feed_for_good_and_a_302_does_not(tmp_path: Path) -> None:
    async with FeedServer() as srv:
        new = srv.serve("/new.xml", feed_body("Moved"))
        old = srv.redirect("/old.xml", new, status=301)
        temp = srv.redirect("/temp.xml", new, status=302)
        settings, store = make(tmp_path, [old, temp])
        await poll(settings, store)
        urls = sorted(f.url for f in store.list_feeds())
        assert urls == sorted([new, temp])
        # Kept across restarts: a new Store on the same file, and the config still naming the old URL.
        store.close()
        again = Store(settings.database_url)
        again.sync_feeds(settings.feeds, now=NOW)
        assert sorted(f.url for f in again.list_feeds()) == sorted([new, temp])
        srv.requests.clear()
        await poll(settings, again, NOW + timedelta(hours=1))
        assert sorted(srv.paths()) == ["/new.xml", "/new.xml", "/temp.xml"]


async def test_H12_a_410_disables_the_feed_and_it_is_never_fetched_again(tmp_path: Path) -> None:
    async with FeedServer() as srv:
        url = srv.serve("/gone.xml", b"", status=410)
        settings, store = make(tmp_path, [url])
        await poll(settings, store)
        feed = only(store)
        assert not feed.active and feed.last_status == 410 and "410" in (feed.last_error or "")
        store.sync_feeds(settings.feeds, now=NOW)  # restart: the config still lists it
        srv.requests.clear()
        await poll(settings, store, NOW + timedelta(days=1))
        assert srv.requests == [] and not only(store).active


async def test_H14_retry_after_pushes_the_next_poll_back(tmp_path: Path) -> None:
    async with FeedServer() as srv:
        url = srv.serve("/busy.xml", b"slow down", status=429, headers={"Retry-After": "7200"})
        settings, store = make(tmp_path, [url])
        await poll(settings, store)
        feed = only(store)
        assert feed.next_poll_at is not None and feed.next_poll_at >= NOW + timedelta(seconds=7200)
        assert feed.consecutive_failures == 1 and feed.last_status == 429


async def test_a_failing_feed_backs_off_exponentially_up_to_a_cap(tmp_path: Path) -> None:
    async with FeedServer() as srv:
        url = srv.serve("/broken.xml", b"oops", status=500)
        settings, store = make(tmp_path, [url])
        delays = []
        at = NOW
        for _ in range(4):
            await poll(settings, store, at)
            feed = only(store)
            assert feed.next_poll_at is not None
            delays.append(feed.next_poll_at - at)
            at = feed.next_poll_at
        assert all(later > earlier * 1.5 for earlier, later in zip(delays, delays[1:], strict=False))
        assert only(store).consecutive_failures == 4
    interval = timedelta(minutes=15)
    assert next_poll_after(interval, 30, None) <= timedelta(hours=24) * 1.1
    assert interval <= next_poll_after(interval, 0, None) <= interval * 1.1


async def test_H13_H16_unchanged_bodies_cost_nothing_and_an_html_page_is_an_error_that_keeps_items(
    tmp_path: Path,
) -> None:
    async with FeedServer() as srv:
        url = srv.serve("/f.xml", feed_body("One", "Two"))  # no ETag: the server ignores conditional GET
        settings, store = make(tmp_path, [url])
        results = await poll_once(settings=settings, store=store, clock=lambda: NOW)
        assert results[0].new_items == 2
        results = await poll_once(settings=settings, store=store, clock=lambda: NOW + timedelta(hours=1))
        assert results[0].not_modified and results[0].new_items == 0
        srv.serve(
            "/f.xml",
            b"<!DOCTYPE html><html><body>Checking your browser...</body></html>",
            headers={"Content-Type": "text/html"},
        )
        results = await poll_once(settings=settings, store=store, clock=lambda: NOW + timedelta(hours=2))
        assert results[0].error and "not a feed" in results[0].error
        assert only(store).last_error is not None
        assert store.count_items() == 2, "previously stored items are untouched"
        srv.serve("/f.xml", feed_body("One", "Two", "Three"))
        results = await poll_once(settings=settings, store=store, clock=lambda: NOW + timedelta(hours=3))
        assert results[0].new_items == 1 and only(store).last_error is None and only(store).consecutive_failures == 0


async def test_P7_a_feed_without_guids_that_moves_to_https_and_another_host_sends_nothing_again(
    tmp_path: Path,
) -> None:
    """A feed keyed by its links (no GUIDs) whose publisher moves from http://www.old.example to
    https://new.example: every key changes at once, and each item was new again (skx/rss2email#137).
    Polled through a real HTTP server into a real SQLite file, the moved items are the stored ones,
    edited in place with their new links; an item really new in the same body is new."""

    def body(base: str, *titles: str) -> bytes:
        items = "".join(
            f"<item><title>{t}</title><link>{base}/2026/03/0{i + 1}/story-{i}.html</link>"
            f"<pubDate>{format_datetime(NOW - timedelta(hours=i))}</pubDate></item>"
            for i, t in enumerate(titles)
        )
        return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Old</title>{items}</channel></rss>'.encode()

    async with FeedServer() as srv:
        url = srv.serve("/f.xml", body("http://www.old.example", "Floods close the valley road", "Budget vote"))
        settings, store = make(tmp_path, [url])
        results = await poll_once(settings=settings, store=store, clock=lambda: NOW)
        assert results[0].new_items == 2
        srv.serve("/f.xml", body("https://new.example", "Floods close the valley road", "Budget vote", "A third"))
        results = await poll_once(settings=settings, store=store, clock=lambda: NOW + timedelta(hours=1))
        assert (results[0].new_items, results[0].updated_items) == (1, 2)
        assert store.count_items() == 3
        links = sorted(i.url or "" for i in store.edition_window("UTC", until=NOW + timedelta(days=1)).items)
        assert links == [f"https://new.example/2026/03/0{i + 1}/story-{i}.html" for i in range(3)]


async def test_P7_links_that_lose_an_analytics_marker_are_the_items_stored_with_it(tmp_path: Path) -> None:
    """An older digest stored heise's links (an RSS 0.90 feed: no GUIDs, so keyed by its links) with
    their Webtrekk marker "?wt_mc=rss.ho.beitrag.rdf"; this one strips it, so every key changes on
    the first poll after an upgrade. The items are the stored ones at the same path, edited in place:
    nothing new, nothing sent twice."""
    links = [f"https://www.heise.example/meldung/item-{i}.html" for i in range(3)]
    items = "".join(
        f"<item><title>Meldung {i}</title><link>{link}?wt_mc=rss.ho.beitrag.rdf</link></item>"
        for i, link in enumerate(links)
    )
    body = f'<?xml version="1.0"?><rss version="0.91"><channel><title>heise</title>{items}</channel></rss>'
    async with FeedServer() as srv:
        url = srv.serve("/f.xml", body.encode())
        settings, store = make(tmp_path, [url])
        stored_before = [
            ParsedItem(
                key=f"{link}?wt_mc=rss.ho.beitrag.rdf",
                title=f"Meldung {i}",
                url=f"{link}?wt_mc=rss.ho.beitrag.rdf",
                summary_html="",
                summary_text="",
                published=None,
                content_hash=f"old-{i}",
            )
            for i, link in enumerate(links)
        ]
        assert store_items(store, only(store).id, stored_before, now=NOW - timedelta(days=1)) == (3, 0)
        results = await poll_once(settings=settings, store=store, clock=lambda: NOW)
        assert (results[0].new_items, results[0].updated_items) == (0, 3)
        assert store.count_items() == 3
        window = store.edition_window("UTC", until=NOW).items  # a first edition: the day before NOW
        assert sorted(i.url or "" for i in window) == links


async def test_P7_nyt_links_stored_with_partner_rss_are_the_same_items_without_it(tmp_path: Path) -> None:
    """An older digest stored NYT's items with "?partner=rss&emc=rss" on their links (the corpus's
    nytimes_homepage.xml has it on all 65); this one strips it. Whether the item is keyed by its
    permalink GUID or, without one, by its link, the first poll after the upgrade finds the stored
    items and edits them in place: nothing new, nothing sent twice, and the links are clean."""
    links = [f"http://www.nyt.example/2017/01/0{i + 1}/us/story-{i}.html" for i in range(4)]
    marked = [f"{link}?partner=rss&amp;emc=rss" for link in links]
    items = "".join(
        f"<item><title>Story {i}</title><link>{m}</link>"
        + (f'<guid isPermaLink="true">{links[i]}</guid>' if i < 2 else "")
        + "</item>"
        for i, m in enumerate(marked)
    )
    body = f'<?xml version="1.0"?><rss version="2.0"><channel><title>NYT</title>{items}</channel></rss>'
    async with FeedServer() as srv:
        url = srv.serve("/f.xml", body.encode())
        settings, store = make(tmp_path, [url])
        stored_before = [
            ParsedItem(
                key=link if i < 2 else f"{link}?partner=rss&emc=rss",
                title=f"Story {i}",
                url=f"{link}?partner=rss&emc=rss",
                summary_html="",
                summary_text="",
                published=None,
                content_hash=f"old-{i}",
            )
            for i, link in enumerate(links)
        ]
        assert store_items(store, only(store).id, stored_before, now=NOW - timedelta(days=1)) == (4, 0)
        results = await poll_once(settings=settings, store=store, clock=lambda: NOW)
        assert (results[0].new_items, results[0].updated_items) == (0, 4)
        assert store.count_items() == 4
        window = store.edition_window("UTC", until=NOW).items
        assert sorted(i.url or "" for i in window) == links
