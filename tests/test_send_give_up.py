"""A message the SMTP server keeps deferring (4xx) is given up `[smtp] give_up_after` after its
edition, but never while the edition is within `[digest] catch_up` when that is set and longer:
a later send still catches that edition up, and would find its messages already failed.

The end-to-end test runs the real `python -m digest` against aiosmtpd on 127.0.0.1 and a feed
server, on a real SQLite file, each command's clock set with DIGEST_NOW.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from httpservers import FeedServer
from smtpservers import Scripted, SmtpServer, Turn
from test_faults import channel, cli, pub_date, write_config

from digest import config as cfg
from digest.model import EditionRecord
from digest.pipeline.sender import gives_up

DAY1 = datetime(2026, 12, 1, 7, 5, tzinfo=UTC)  # five minutes after the edition's send_at, 07:00 UTC
BUSY = "450 4.2.1 mailbox busy, try later"


def _settings(tmp_path: Path, digest: str) -> cfg.Settings:
    path = tmp_path / "digest.toml"
    path.write_text(f'[digest]\ntimezone = "UTC"\n{digest}\n[smtp]\ngive_up_after = "20h"\n', encoding="utf-8")
    return cfg.load(path, env={})


def test_a_catch_up_longer_than_give_up_after_keeps_its_editions_messages_until_it_closes(tmp_path: Path) -> None:
    edition = EditionRecord(1, DAY1.date(), "UTC", cutoff=DAY1, window_start=None, created_at=DAY1)
    longer = _settings(tmp_path, 'catch_up = "30h"')
    assert longer.smtp.give_up_after == timedelta(hours=20) and longer.digest.catch_up == timedelta(hours=30)
    # The window closes at 13:00 on the 2nd (07:00 + 30 h), not at 03:05 (built at 07:05, + 20 h).
    assert not gives_up(longer, edition, DAY1 + timedelta(hours=21))
    assert not gives_up(longer, edition, datetime(2026, 12, 2, 13, 0, tzinfo=UTC))
    assert gives_up(longer, edition, datetime(2026, 12, 2, 13, 1, tzinfo=UTC))
    # A shorter catch-up, or none set (the edition's own day): give_up_after alone decides.
    for digest in ('catch_up = "6h"', ""):
        settings = _settings(tmp_path, digest)
        assert not gives_up(settings, edition, DAY1 + timedelta(hours=19, minutes=59))
        assert gives_up(settings, edition, DAY1 + timedelta(hours=20))


def _row(database: Path) -> tuple[str, int, str]:
    with sqlite3.connect(database) as conn:
        status, attempts, error = conn.execute("SELECT status, attempts, last_error FROM deliveries").fetchone()
    return str(status), int(attempts), str(error)


async def test_a_deferred_message_is_retried_through_catch_up_then_given_up_past_it(tmp_path: Path) -> None:
    """Deferred at 07:05 on the 1st and again at 06:58 on the 2nd (23 h 53 after its edition, past
    the default give_up_after of 20 h, within catch_up = "30h"): still pending, and sent by the 2nd's
    `send --retry-now`. A second reader's, deferred past 13:00 on the 2nd, is given up."""
    refuse = {"one": BUSY, "two": BUSY}
    item = (
        "<item><title>Harbour ferry timetable changes</title><link>https://news.example.org/0</link>"
        f"<guid>https://news.example.org/0</guid><pubDate>{pub_date(DAY1 - timedelta(hours=2))}</pubDate>"
        "<description>Report.</description></item>"
    )

    def rcpt(turn: Turn) -> str | None:
        return refuse.get(turn.address.split("@")[0])

    async with FeedServer() as feeds, SmtpServer(handler=Scripted(rcpt=rcpt)) as smtp:
        url = feeds.serve("/feed.xml", channel("Test news", "https://news.example.org/", item))
        config = write_config(
            tmp_path,
            feed_url=url,
            smtp_port=smtp.port,
            subscribers=("one@example.org",),
            extra='catch_up = "30h"',
        )
        database = tmp_path / "digest.sqlite"
        assert (await asyncio.to_thread(cli, config, "poll", now=DAY1 - timedelta(hours=1))).returncode == 0
        first = await asyncio.to_thread(cli, config, "send", now=DAY1)
        assert first.returncode == 4, first.stdout + first.stderr
        day2 = datetime(2026, 12, 2, 6, 58, tzinfo=UTC)
        again = await asyncio.to_thread(cli, config, "send", "--date", "2026-12-01", now=day2)
        assert again.returncode == 4 and "1 deferred" in again.stdout, again.stdout + again.stderr
        assert _row(database)[:2] == ("pending", 2)

        refuse.pop("one")  # the relay takes it again
        mended = await asyncio.to_thread(
            cli, config, "send", "--date", "2026-12-01", "--retry-now", now=day2 + timedelta(minutes=1)
        )
        assert mended.returncode == 0 and "1 sent" in mended.stdout, mended.stdout + mended.stderr
        assert [m.rcpt_tos[0] for m in smtp.messages] == ["one@example.org"]

    # A reader of another site whose relay still defers them past the catch-up window: given up.
    site2 = tmp_path / "late"
    site2.mkdir()
    async with FeedServer() as feeds, SmtpServer(handler=Scripted(rcpt=rcpt)) as smtp:
        url = feeds.serve("/feed.xml", channel("Test news", "https://news.example.org/", item))
        config = write_config(
            site2, feed_url=url, smtp_port=smtp.port, subscribers=("two@example.org",), extra='catch_up = "30h"'
        )
        assert (await asyncio.to_thread(cli, config, "poll", now=DAY1 - timedelta(hours=1))).returncode == 0
        assert (await asyncio.to_thread(cli, config, "send", now=DAY1)).returncode == 4
        within = await asyncio.to_thread(cli, config, "send", "--date", "2026-12-01", now=DAY1 + timedelta(hours=29))
        assert within.returncode == 4 and _row(site2 / "digest.sqlite")[0] == "pending", within.stdout
        past = await asyncio.to_thread(cli, config, "send", "--date", "2026-12-01", now=DAY1 + timedelta(hours=31))
        assert past.returncode == 3 and "1 failed" in past.stdout, past.stdout + past.stderr
        status, _, error = _row(site2 / "digest.sqlite")
        assert status == "failed" and error.startswith("gave up: 450"), error
        assert not smtp.messages
