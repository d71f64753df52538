"""The public archive: a page per sent (day, time zone) edition, an index, an Atom feed read back
with feedparser; ETag and Cache-Control; `[web] archive = false` turns it off."""

from __future__ import annotations

import dataclasses
import gzip
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import feedparser
import pytest
from test_web import DAY, NOW, Clock, add_news, make_settings, mark_sent, open_store

from digest import config as cfg
from digest import tokens
from digest.archive import etag_matches
from digest.pipeline import build_edition, preview
from digest.store import Store
from digest.web import COMPRESS_MIN, accepts_gzip, listening, start_web


@dataclasses.dataclass
class Site:
    settings: cfg.Settings
    store: Store
    http: aiohttp.ClientSession


async def running(settings: cfg.Settings) -> AsyncIterator[Site]:
    store = open_store(settings)
    add_news(store, at=NOW - timedelta(hours=2), prefix="Today")
    mark_sent(store, build_edition(settings, store, day=DAY, timezone="UTC", now=NOW)[0])
    add_news(store, at=NOW + timedelta(days=1) - timedelta(hours=2), prefix="Tomorrow")
    mark_sent(
        store,
        build_edition(settings, store, day=DAY + timedelta(days=1), timezone="UTC", now=NOW + timedelta(days=1))[0],
    )
    runner = await start_web(settings, store, clock=Clock(), host="127.0.0.1", port=0)
    try:
        async with aiohttp.ClientSession(base_url=listening(runner)[0]) as http:
            yield Site(settings, store, http)
    finally:
        await runner.cleanup()
        store.close()


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async for s in running(make_settings(tmp_path)):
        yield s


@pytest.fixture
async def private_site(tmp_path: Path) -> AsyncIterator[Site]:
    base = make_settings(tmp_path)
    async for s in running(dataclasses.replace(base, web=dataclasses.replace(base.web, archive=False))):
        yield s


async def test_the_atom_feed_reads_back_with_feedparser_with_absolute_links_and_no_subscriber(site: Site) -> None:
    async with site.http.get("/editions.atom") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("application/atom+xml")
        body = await resp.read()
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Morning Review"
    assert [e.link for e in parsed.entries] == [
        "https://review.example/editions/UTC/2026-01-17",
        "https://review.example/editions/UTC/2026-01-16",
    ]
    assert [e.id for e in parsed.entries] == [
        "https://review.example/#2026-01-17",
        "https://review.example/#2026-01-16",
    ]
    assert all(e.updated_parsed for e in parsed.entries)
    assert parsed.entries[1].title == "Morning Review — January 16, 2026 (UTC)"
    assert parsed.entries[1].summary == "World: 5; Sport: 1"
    assert any(link.rel == "self" and link.href == "https://review.example/editions.atom" for link in parsed.feed.links)
    text = body.decode()
    assert "@example.org" not in text and "/u/" not in text and "/p/" not in text


async def test_archive_pages_are_cacheable_with_an_etag_and_answer_304(site: Site) -> None:
    for path in ("/editions/UTC/2026-01-16", "/", "/editions.atom"):
        async with site.http.get(path) as resp:
            assert resp.status == 200, path
            etag = resp.headers["ETag"]
            assert re.fullmatch(r'"[0-9a-f]{32}(-gzip)?"', etag)
            assert resp.headers["Cache-Control"] == "public, max-age=300"
            assert resp.headers["Vary"] == "Accept-Encoding"
            body = await resp.text()
        async with site.http.get(path, headers={"If-None-Match": etag}) as again:
            assert again.status == 304 and again.headers["ETag"] == etag and await again.read() == b""
        async with site.http.get(path, headers={"If-None-Match": '"other"'}) as changed:
            assert changed.status == 200 and await changed.text() == body
    assert "@example.org" not in body


async def test_archive_pages_are_gzipped_for_a_client_that_takes_it_with_their_own_etag(site: Site) -> None:
    """Before, a 40 KB edition page went to phones uncompressed. Token pages stay uncompressed (BREACH)."""
    path = "/editions/UTC/2026-01-16"
    bodies, etags = {}, {}
    for accept in ("gzip, deflate", "identity", "gzip;q=0, deflate", "*"):
        async with site.http.get(path, headers={"Accept-Encoding": accept}, auto_decompress=False) as resp:
            assert resp.status == 200
            raw = await resp.read()
            gzipped = resp.headers.get("Content-Encoding") == "gzip"
            assert gzipped == (accept in ("gzip, deflate", "*")), accept
            bodies[accept] = gzip.decompress(raw) if gzipped else raw
            etags[accept] = resp.headers["ETag"]
            if gzipped:
                assert len(raw) < len(bodies[accept]) / 3, (len(raw), len(bodies[accept]))
        async with site.http.get(path, headers={"Accept-Encoding": accept, "If-None-Match": etags[accept]}) as again:
            assert again.status == 304 and again.headers["ETag"] == etags[accept]
    assert len(set(bodies.values())) == 1 and len(bodies["identity"]) > COMPRESS_MIN
    assert etags["gzip, deflate"] == etags["*"] == etags["identity"][:-1] + '-gzip"'
    # A gzipped page's validator does not revalidate the plain one, nor the other way round.
    async with site.http.get(path, headers={"Accept-Encoding": "identity", "If-None-Match": etags["*"]}) as plain:
        assert plain.status == 200
    alice = site.store.get_subscriber(email="alice@example.org")
    assert alice is not None
    token = tokens.preferences_token(site.store.site_secret(), alice.public_id)
    async with site.http.get(f"/p/{token}", headers={"Accept-Encoding": "gzip"}, auto_decompress=False) as resp:
        assert resp.status == 200 and "Content-Encoding" not in resp.headers


def test_accept_encoding_is_read_with_its_weights() -> None:
    assert accepts_gzip("gzip") and accepts_gzip("deflate, GZIP;q=0.5") and accepts_gzip("*") and accepts_gzip("x-gzip")
    assert not accepts_gzip(None) and not accepts_gzip("") and not accepts_gzip("identity")
    assert not accepts_gzip("gzip;q=0") and not accepts_gzip("*;q=0") and not accepts_gzip("br, gzip;q=0.0")
    assert not accepts_gzip("gzip;q=nonsense")


async def test_personal_pages_are_never_stored(site: Site) -> None:
    alice = site.store.get_subscriber(email="alice@example.org")
    assert alice is not None
    secret = site.store.site_secret()
    paths = (
        f"/p/{tokens.preferences_token(secret, alice.public_id)}",
        f"/u/{tokens.unsubscribe_token(secret, alice.public_id)}",
    )
    for path in paths:
        async with site.http.get(path) as resp:
            assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
            assert "ETag" not in resp.headers


def test_if_none_match_compares_weakly_and_takes_lists() -> None:
    assert etag_matches('W/"abc", "def"', '"abc"') and etag_matches("*", '"x"')
    assert not etag_matches(None, '"abc"') and not etag_matches('"abd"', '"abc"')


async def test_with_the_archive_off_pages_need_the_key_in_the_emails_link(private_site: Site) -> None:
    site = private_site
    for path in ("/", "/editions.atom", "/editions/UTC/2026-01-16", "/editions/UTC/2026-01-16?key=0123456789abcdef"):
        async with site.http.get(path) as resp:
            assert resp.status == 404, path
    alice = site.store.get_subscriber(email="alice@example.org")
    assert alice is not None
    mail = preview(site.settings, site.store, subscriber=alice, day=DAY, now=NOW).rendered
    assert mail is not None
    links = set(
        re.findall(
            r'href="https://review\.example(/editions/UTC/2026-01-16\?key=[0-9a-f]+)(?:#[^"]*)?"',
            mail.html.replace("&amp;", "&"),
        )
    )
    assert len(links) == 1, "the email's 'Read online' and 'N more' links carry the edition's key"
    (path,) = links
    async with site.http.get(path) as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "private, max-age=300"
        page = await resp.text()
    assert "@example.org" not in page and "/u/" not in page
    # The key is the edition's own: it does not open another day.
    async with site.http.get(path.replace("2026-01-16", "2026-01-17")) as resp:
        assert resp.status == 404


ZONES = {  # each zone's 07:00 edition of DAY, as UTC instants a little after it
    "Europe/Moscow": datetime(2026, 1, 16, 4, 30, tzinfo=UTC),
    "Europe/Berlin": datetime(2026, 1, 16, 6, 30, tzinfo=UTC),
    "Europe/Paris": datetime(2026, 1, 16, 6, 31, tzinfo=UTC),
    "America/Chicago": datetime(2026, 1, 16, 13, 30, tzinfo=UTC),
}


def _zones_settings(tmp_path: Path) -> cfg.Settings:
    base = make_settings(tmp_path)
    zoned = cfg.from_mapping(
        {
            "digest": {"title": "Morning Review", "timezone": "Europe/Paris", "send_at": "07:00"},
            "sections": [{"name": "World", "categories": ["World"]}, {"name": "Sport", "categories": ["Sport"]}],
            "subscribers": [
                {"email": f"reader{n}@example.org", "timezone": zone} for n, zone in enumerate(sorted(ZONES))
            ],
        },
        env={},
    )
    return dataclasses.replace(
        base, digest=dataclasses.replace(base.digest, timezone="Europe/Paris"), subscribers=zoned.subscribers
    )


async def test_the_archive_lists_each_day_once_with_its_time_zones(tmp_path: Path) -> None:
    """Audit: with readers in Paris, Moscow, Berlin and Chicago, the index showed "Sunday, January
    8, 2017" four times. Through the real web app: one row a day, led by the site's zone's edition
    ([digest] timezone = Europe/Paris), the other zones linked beside it; the Atom feed has one
    entry a day, whose id stays when the site's zone's edition comes after another zone's."""
    settings = _zones_settings(tmp_path)
    store = open_store(settings)
    add_news(store, at=datetime(2026, 1, 16, 2, 0, tzinfo=UTC), prefix="Today")
    runner = await start_web(settings, store, clock=Clock(), host="127.0.0.1", port=0)
    ids = []
    try:
        async with aiohttp.ClientSession(base_url=listening(runner)[0]) as http:

            async def feed() -> feedparser.FeedParserDict:
                async with http.get("/editions.atom") as resp:
                    assert resp.status == 200
                    parsed = feedparser.parse(await resp.read())
                assert not parsed.bozo, parsed.get("bozo_exception")
                return parsed

            for zone, at in sorted(ZONES.items(), key=lambda kv: kv[1]):  # as the daemon makes them
                mark_sent(store, build_edition(settings, store, day=DAY, timezone=zone, now=at)[0])
                entries = (await feed()).entries
                assert len(entries) == 1
                ids.append(entries[0].id)
                if zone == "Europe/Moscow":  # the day's first edition leads it until Paris has one
                    assert entries[0].link == "https://review.example/editions/Europe~Moscow/2026-01-16"
            add_news(store, at=datetime(2026, 1, 17, 2, 0, tzinfo=UTC), prefix="Tomorrow")
            next_day = DAY + timedelta(days=1)
            mark_sent(
                store,
                build_edition(
                    settings,
                    store,
                    day=next_day,
                    timezone="Europe/Paris",
                    now=ZONES["Europe/Paris"] + timedelta(days=1),
                )[0],
            )

            async with http.get("/") as resp:
                assert resp.status == 200
                page = await resp.text()
            assert page.count("Friday, January 16, 2026") == 1 and page.count("Saturday, January 17, 2026") == 1
            row = re.search(r'<li id="2026-01-16">(.*?)</li>', page, re.DOTALL)
            assert row is not None, page
            links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', row.group(1))
            assert links == [
                ("editions/Europe~Paris/2026-01-16", "Friday, January 16, 2026"),
                ("editions/Europe~Paris/2026-01-16", "Europe/Paris"),
                ("editions/Europe~Moscow/2026-01-16", "Europe/Moscow"),
                ("editions/Europe~Berlin/2026-01-16", "Europe/Berlin"),
                ("editions/America~Chicago/2026-01-16", "America/Chicago"),
            ]
            for path, _ in links:
                async with http.get(f"/{path}") as resp:
                    assert resp.status == 200, path
            alone = re.search(r'<li id="2026-01-17">(.*?)</li>', page, re.DOTALL)
            assert alone is not None and '<span class="zone">(Europe/Paris)</span>' in alone.group(1)

            parsed = await feed()
    finally:
        await runner.cleanup()
        store.close()
    assert len(set(ids)) == 1 and ids[0] == "https://review.example/#2026-01-16"
    assert [e.id for e in parsed.entries] == ["https://review.example/#2026-01-17", ids[0]]
    day = parsed.entries[1]
    assert day.link == "https://review.example/editions/Europe~Paris/2026-01-16"
    assert (
        day.title == "Morning Review — January 16, 2026 (Europe/Paris, Europe/Moscow, Europe/Berlin, America/Chicago)"
    )
    related = [(link.title, link.href) for link in day.links if link.rel == "related"]
    assert related == [
        ("Europe/Moscow", "https://review.example/editions/Europe~Moscow/2026-01-16"),
        ("Europe/Berlin", "https://review.example/editions/Europe~Berlin/2026-01-16"),
        ("America/Chicago", "https://review.example/editions/America~Chicago/2026-01-16"),
    ]
