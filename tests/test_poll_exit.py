"""`digest poll` exits 1 when every feed failed, so that `digest poll && digest send` stops and says
why; one feed that answers is a poll that did its work (exit 0). The real `python -m digest` against
a feed server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path

from httpservers import FeedServer
from test_faults import channel, one_error, poll, write_config


async def test_a_poll_where_every_feed_failed_exits_1_with_one_line(tmp_path: Path) -> None:
    async with FeedServer() as feeds:
        good = feeds.serve("/feed.xml", channel("Harbour Gazette", "https://gazette.example/", ""))
        gone = good.replace("/feed.xml", "/gone.xml")  # answered 404
        (tmp_path / "one-down").mkdir()
        config = write_config(tmp_path / "one-down", feed_url=gone)
        failed = await asyncio.to_thread(poll, config)
        assert one_error(failed) == "error: Every feed failed this poll (1)."
        assert "404" in failed.stdout  # each feed's own error is listed first

        (tmp_path / "one-up").mkdir()
        config = write_config(tmp_path / "one-up", feed_url=gone, tail=f'[[feeds]]\nurl = "{good}"\n')
        polled = await asyncio.to_thread(poll, config)
        assert polled.returncode == 0, polled.stderr
        assert "2 feeds: 0 new items, 1 failed" in polled.stdout
        assert polled.stderr.startswith("  hint: open a failing URL in a browser")  # what to do, on stderr
