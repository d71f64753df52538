"""digest.parsepool: parsing in worker processes under a CPU budget (D1, P4)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.errors import ParseError
from digest.parse import parse_feed
from digest.parsepool import ParserPool

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
NOW = datetime(2024, 9, 3, 12, 0, tzinfo=UTC)
URL = "https://gazette.example/feed.xml"
GOOD = (FIXTURES / "basic.rss").read_bytes()


def redos_feed(items: int = 50) -> bytes:
    """feedparser#562: its author regex backtracks quadratically on this value."""
    author = "a@" + "a." * 16000 + "!"
    body = "".join(f"<item><guid>r{n}</guid><title>t{n}</title><author>{author}</author></item>" for n in range(items))
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>slow</title>{body}</channel></rss>'.encode()


@pytest.fixture
def pool() -> Iterator[ParserPool]:
    with ParserPool(workers=2, cpu_seconds=1) as p:
        yield p


async def test_a_feed_parsed_in_a_worker_equals_parsing_in_process(pool: ParserPool) -> None:
    got = await pool.parse(GOOD, url=URL, content_type="application/rss+xml", now=NOW, excerpt_chars=40)
    assert got == parse_feed(GOOD, url=URL, content_type="application/rss+xml", now=NOW, excerpt_chars=40)


async def test_P4_the_author_redos_is_stopped_at_the_cpu_budget_and_the_pool_goes_on(pool: ParserPool) -> None:
    slow = asyncio.ensure_future(pool.parse(redos_feed(), url="https://slow.example/", content_type=None, now=NOW))
    # While one worker burns its budget, the other keeps parsing.
    meanwhile = await pool.parse(GOOD, url=URL, content_type=None, now=NOW)
    assert len(meanwhile.items) == 4
    with pytest.raises(ParseError, match=r"^https://slow.example/: parsing used more than 1 s of CPU") as info:
        await slow
    assert "slow to parse" in info.value.hint
    # The killed worker is replaced: parses right after still work, on both workers.
    after = await asyncio.gather(*(pool.parse(GOOD, url=URL, content_type=None, now=NOW) for _ in range(4)))
    assert all(len(feed.items) == 4 for feed in after)


async def test_P4_a_feed_on_one_line_that_quotes_xml_declarations_parses_within_the_budget(pool: ParserPool) -> None:
    """feedparser looks for the declared encoding with a pattern over the document's whole first
    line, which backtracks over every later `encoding="`: a feed written on one line whose items
    quote XML declarations (a tutorial site's) took seconds per 50 KB and overran the budget. The
    declaration is given a line of its own first, which confines the pattern to it."""
    items = "".join(
        f"<item><guid>tip{n}</guid><title>XML tip {n}</title><description>Start with "
        f'&lt;?xml version="1.0" encoding="utf-8"?&gt; then the root. {"y" * 150}</description></item>'
        for n in range(400)
    )
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>tips</title>{items}</channel></rss>'
    )
    assert b"\n" not in body.encode()
    feed = await pool.parse(body.encode(), url=URL, content_type=None, now=NOW)
    assert len(feed.items) == 400 and feed.items[0].title == "XML tip 0"


async def test_a_parse_error_in_a_worker_keeps_its_message_and_hint(pool: ParserPool) -> None:
    html = (FIXTURES / "not_a_feed.html").read_bytes()
    with pytest.raises(ParseError, match=r"not a feed \(looks like an HTML page\)") as info:
        await pool.parse(html, url=URL, content_type="text/html", now=NOW)
    assert "RSS or Atom link" in info.value.hint


async def test_a_document_feedparser_raises_on_is_that_feeds_error_with_what_to_do(pool: ParserPool) -> None:
    """feedparser 6.0 raises TypeError on a channel image whose <height> opens inside an unclosed
    <description> (it reads no number): that feed's error, one line with a hint; the pool goes on."""
    broken = (
        b'<rss version="2.0"><channel><title>t</title><image><url>https://gazette.example/i.png</url>'
        b"<description><height>32</height></image><item><title>a</title></item></channel></rss>"
    )
    with pytest.raises(ParseError, match=r"^https://gazette.example/feed.xml: the parser failed: TypeError") as info:
        await pool.parse(broken, url=URL, content_type=None, now=NOW)
    assert "\n" not in info.value.message and "feed validator" in (info.value.hint or "")
    assert len((await pool.parse(GOOD, url=URL, content_type=None, now=NOW)).items) == 4


async def test_a_worker_killed_from_outside_is_replaced(pool: ParserPool) -> None:
    await asyncio.gather(*(pool.parse(GOOD, url=URL, content_type=None, now=NOW) for _ in range(4)))
    pids = [w.process.pid for w in pool._all]
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    results = await asyncio.gather(*(pool.parse(GOOD, url=URL, content_type=None, now=NOW) for _ in range(4)))
    assert all(len(feed.items) == 4 for feed in results)
    assert not set(pids) & {w.process.pid for w in pool._all}


async def test_many_parses_share_a_fixed_number_of_workers(pool: ParserPool) -> None:
    results = await asyncio.gather(*(pool.parse(GOOD, url=URL, content_type=None, now=NOW) for _ in range(20)))
    assert len(results) == 20 and len(pool._all) <= 2


async def test_async_with_closes_the_pool_and_stops_its_workers() -> None:
    async with ParserPool(workers=1) as pool:
        await pool.parse(GOOD, url=URL, content_type=None, now=NOW)
        processes = [w.process for w in pool._all]
    assert processes and all(p.poll() is not None for p in processes)
    with pytest.raises(RuntimeError, match="closed"):
        await pool.parse(GOOD, url=URL, content_type=None, now=NOW)
    pool.close()  # a second close is harmless


def test_the_cpu_budget_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ParserPool(cpu_seconds=0)
