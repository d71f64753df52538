"""An operator's first week (the operator audit's rough edges): the real `python -m digest` against
real SQLite files and a real feed server on loopback, read as an operator reads it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from httpservers import FeedServer
from test_faults import cli, poll, rss, write_config

# --------------------------------------------------------------------------- a feed gone (410)


async def test_H12_a_feed_stopped_by_410_is_named_until_the_operator_removes_it(tmp_path: Path) -> None:
    """Audit bug 3: after one poll line saying 410, `status` counted only the active feeds and named
    no stopped one, `feeds list` left it out, and `feeds list --all` gave it a next poll time."""
    async with FeedServer() as srv:
        live = srv.serve("/news.xml", rss())
        gone = srv.serve("/gone.xml", b"bye", status=410)
        added = srv.serve("/added.xml", b"bye", status=410)
        config = write_config(tmp_path, feed_url=live, tail=f'[[feeds]]\nurl = "{gone}"\n')
        assert cli(config, "feeds", "add", added).returncode == 0
        assert (await asyncio.to_thread(poll, config)).returncode == 0

    out = cli(config, "status").stdout
    assert "feeds: 1 active, 2 stopped (410 Gone)" in out, out
    # What to do depends on where the feed is listed: the config file, or the CLI's list.
    assert f"  stopped: {gone}: the publisher answered 410 Gone on " in out
    assert "delete its [[feeds]] entry from the config" in out
    assert f"`digest feeds remove {added}` (and `digest feeds add NEW-URL` if it moved)" in out

    listing = cli(config, "feeds", "list").stdout
    assert f"{gone}  [rules]  STOPPED: gone (410)  last=410  next=-" in listing, listing
    assert "3 feeds" in listing

    # The operator acts: the CLI's feed is removed, the config's entry deleted. Neither is named again.
    removed = cli(config, "feeds", "remove", added)
    assert removed.returncode == 0, removed.stderr
    config.write_text(config.read_text(encoding="utf-8").replace(f'[[feeds]]\nurl = "{gone}"\n', ""))
    out = cli(config, "status").stdout
    assert "feeds: 1 active, 0 due now" in out and "stopped" not in out, out
    listing = cli(config, "feeds", "list").stdout
    assert "1 feeds" in listing and "gone" not in listing
    every = cli(config, "feeds", "list", "--all").stdout
    assert f"{added}  [rules]  removed  last=410  next=-" in every, every


async def test_a_failing_feed_is_one_tidy_line_in_status(tmp_path: Path) -> None:
    """Audit: "failing: <url> (1x, last status 200): <url>: not a feed (the response body is
    empty).; next try ..." said the URL twice and ended in ".;"."""
    async with FeedServer() as srv:
        empty = srv.serve("/empty.xml", b"")
        config = write_config(tmp_path, feed_url=empty)
        await asyncio.to_thread(poll, config)
    out = cli(config, "status").stdout
    line = next(line for line in out.splitlines() if "failing:" in line)
    why = "not a feed (the response body is empty); next try "
    assert line.startswith(f"  failing: {empty} (1x, last status 200): {why}"), line
    assert line.count(empty) == 1 and ".;" not in line
