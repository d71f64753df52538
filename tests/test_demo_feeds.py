"""The demo's bundled feeds and their server: digest.demo.feeds and digest.demo.server.

The feeds are parsed with feedparser from bytes, the way the parse stage does; the server is a real
aiohttp server on 127.0.0.1 and is asked with a real aiohttp client.
"""

from __future__ import annotations

import calendar
import io
import itertools
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
import feedparser
import pytest

from digest import config
from digest.cluster import DEFAULT_THRESHOLD, Candidate, cluster, similarity
from digest.demo.feeds import DemoItem, demo_feeds, demo_items, demo_sections, feed_bytes
from digest.demo.server import DemoFeedServer
from digest.sanitize import sanitize_html
from digest.sections import classify

NOW = datetime(2026, 3, 14, 6, 30, tzinfo=UTC)
SLUGS = [f.slug for f in demo_feeds()]


def parsed(slug: str, now: datetime = NOW) -> feedparser.FeedParserDict:
    body, content_type = feed_bytes(slug, now=now)
    return feedparser.parse(io.BytesIO(body), response_headers={"content-type": content_type})


def all_items() -> list[tuple[str, DemoItem]]:
    return [(f.name, item) for f in demo_feeds() for item in demo_items(f.slug)]


# --------------------------------------------------------------------------- the content


def test_the_demo_has_six_to_eight_outlets_and_about_seventy_items() -> None:
    feeds = demo_feeds()
    assert 6 <= len(feeds) <= 8
    assert 60 <= len(all_items()) <= 80
    assert len({f.name for f in feeds}) == len(feeds)
    assert sorted(f.format for f in feeds).count("atom") == 1


@pytest.mark.parametrize("slug", SLUGS)
def test_every_demo_feed_parses_cleanly_with_all_its_items(slug: str) -> None:
    feed = next(f for f in demo_feeds() if f.slug == slug)
    doc = parsed(slug)
    assert not doc.bozo, doc.get("bozo_exception")
    assert doc.version == ("atom10" if feed.format == "atom" else "rss20")
    assert doc.feed.title == feed.name
    items = demo_items(slug)
    assert [e.title for e in doc.entries] == [i.title for i in items]
    assert [e.link for e in doc.entries] == [i.link for i in items]
    assert [tuple(t.term for t in e.get("tags", ())) for e in doc.entries] == [i.categories for i in items]


@pytest.mark.parametrize("slug", SLUGS)
def test_item_dates_are_now_minus_their_offsets(slug: str) -> None:
    for entry, item in zip(parsed(slug).entries, demo_items(slug), strict=True):
        if item.age is None:
            assert "published_parsed" not in entry and "updated_parsed" not in entry
            continue
        when = datetime.fromtimestamp(calendar.timegm(entry.published_parsed), UTC)
        assert when == NOW - item.age
        assert NOW - timedelta(days=4) < when < NOW


def test_dates_move_with_now() -> None:
    later = NOW + timedelta(days=1, minutes=7)
    before = [e.published_parsed for e in parsed("baltic-wire").entries if "published_parsed" in e]
    after = [e.published_parsed for e in parsed("baltic-wire", later).entries if "published_parsed" in e]
    shifts = {calendar.timegm(b) - calendar.timegm(a) for a, b in zip(before, after, strict=True)}
    assert shifts == {(later - NOW).total_seconds()}


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        feed_bytes("baltic-wire", now=datetime(2026, 3, 14, 6, 30))


def test_some_rss_items_are_undated_so_first_seen_shows() -> None:
    undated = [(name, item) for name, item in all_items() if item.age is None]
    assert 3 <= len(undated) <= 10
    assert len({name for name, _ in undated}) >= 3


def test_the_windows_1251_feed_declares_its_encoding_and_decodes_to_cyrillic() -> None:
    body, content_type = feed_bytes("nevsky-vestnik", now=NOW)
    assert body.startswith(b"<?xml version='1.0' encoding='windows-1251'?>")
    assert "charset" not in content_type  # the prolog alone names the encoding
    with pytest.raises(UnicodeDecodeError):
        body.decode("utf-8")
    items = demo_items("nevsky-vestnik")
    assert all(i.title.encode("cp1251") in body for i in items)  # real cp1251 bytes, not &#N; references
    doc = parsed("nevsky-vestnik")
    assert doc.encoding.lower() in ("windows-1251", "cp1251")
    assert doc.feed.title == "Невский вестник"
    assert [e.title for e in doc.entries] == [i.title for i in items]
    assert "«партнёр платформы»" in doc.entries[1].summary


def test_links_stay_under_reserved_example_domains() -> None:
    # RFC 2606 reserves .example: the demo can never point a reader at a real publisher.
    for _, item in all_items():
        assert (urlsplit(item.link).hostname or "").endswith(".example"), item.link


def test_a_summary_carries_a_script_and_a_tracking_pixel_that_the_sanitiser_removes() -> None:
    showcase = [item for _, item in all_items() if "<script" in item.summary]
    assert len(showcase) == 1
    item = showcase[0]
    assert 'width="1" height="1"' in item.summary
    clean = sanitize_html(item.summary, base_url=item.link)
    assert "<script" not in clean and "<img" not in clean and "Subscribe now" not in clean
    assert "record crowds" in clean


# --------------------------------------------------------------------------- sections and stories


def test_demo_sections_are_valid_config_for_the_default_section_names() -> None:
    settings = config.from_mapping({"sections": demo_sections()})
    assert tuple(s.name for s in settings.sections) == config.DEFAULT_SECTIONS
    for feed in demo_feeds():
        assert feed.section is None or feed.section in config.DEFAULT_SECTIONS


def test_every_section_gets_at_least_one_item_through_its_categories() -> None:
    hits = {s["name"]: 0 for s in demo_sections()}
    for _, item in all_items():
        mine = {c.casefold() for c in item.categories}
        for section in demo_sections():
            if mine & {c.casefold() for c in section.get("categories", [])}:
                hits[section["name"]] += 1
                break
    assert all(hits.values()), hits


def test_every_item_lands_in_a_section_without_the_fallback() -> None:
    sections = config.from_mapping({"sections": demo_sections()}).sections
    rules = set()
    for _, item in all_items():
        placed = classify(
            title=item.title,
            url=item.link,
            categories=item.categories,
            feed_section=None,
            sections=sections,
            fallback="Other",
        )
        assert placed.section != "Other", item.title
        rules.add(placed.rule)
    assert rules == {"category", "keyword"}  # the keyword path shows too


def test_stories_told_by_several_outlets_cluster_and_nothing_else_does() -> None:
    candidates, stories = [], []
    for name, item in all_items():
        candidates.append(Candidate(item.title, item.link, name, NOW - (item.age or timedelta(0))))
        stories.append(item.story)
    joined = [sorted(stories[i] or "" for i in g) for g in cluster(candidates) if len(g) > 1]
    declared: dict[str, list[int]] = {}
    for i, story in enumerate(stories):
        if story:
            declared.setdefault(story, []).append(i)
    assert sorted(joined) == sorted([key] * len(members) for key, members in declared.items())
    assert len(declared) >= 4
    assert max(len(m) for m in declared.values()) == 3
    for members in declared.values():
        assert len({candidates[i].source for i in members}) == len(members)  # one outlet tells it once
        for a, b in itertools.combinations(members, 2):
            assert similarity(candidates[a].title, candidates[b].title) >= DEFAULT_THRESHOLD


# --------------------------------------------------------------------------- the server


async def test_the_server_serves_every_feed_and_answers_304_to_if_none_match() -> None:
    async with DemoFeedServer(now=NOW) as server, aiohttp.ClientSession() as session:
        assert server.port > 0
        for slug in SLUGS:
            url = server.url_for(slug)
            assert url == f"http://127.0.0.1:{server.port}/{slug}.xml"
            body, content_type = feed_bytes(slug, now=NOW)
            async with session.get(url) as first:
                assert first.status == 200
                assert await first.read() == body
                assert first.headers["Content-Type"] == content_type
                etag = first.headers["ETag"]
                assert first.headers["Last-Modified"].endswith(" GMT")
            async with session.get(url, headers={"If-None-Match": etag}) as again:
                assert again.status == 304
                assert await again.read() == b""
                assert again.headers["ETag"] == etag
            async with session.get(url, headers={"If-None-Match": '"something-else"'}) as changed:
                assert changed.status == 200
        assert server.requests[-3:] == [(f"/{SLUGS[-1]}.xml", s) for s in (200, 304, 200)]


async def test_the_server_answers_304_to_if_modified_since_and_404_to_unknown_feeds() -> None:
    async with DemoFeedServer(now=NOW) as server, aiohttp.ClientSession() as session:
        url = server.url_for("orbital-review")
        async with session.get(url) as first:
            modified = first.headers["Last-Modified"]
        assert modified == "Sat, 14 Mar 2026 00:30:00 GMT"  # the newest entry: 6 hours before NOW
        async with session.get(url, headers={"If-Modified-Since": modified}) as again:
            assert again.status == 304
        async with session.get(url, headers={"If-Modified-Since": "Fri, 13 Mar 2026 00:30:00 GMT"}) as older:
            assert older.status == 200
        async with session.get(f"http://127.0.0.1:{server.port}/no-such-feed.xml") as missing:
            assert missing.status == 404
    with pytest.raises(KeyError):
        server.url_for("no-such-feed")


async def test_the_server_stops_listening_when_the_context_closes() -> None:
    async with DemoFeedServer(now=NOW) as server:
        url = server.url_for("baltic-wire")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(url):
                pass
