"""`digest send` without --date sends each time zone its own day's edition, as the daemon does.
The real `python -m digest` against a feed server and aiosmtpd on 127.0.0.1, a real SQLite file."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path

from httpservers import FeedServer
from smtpservers import SmtpServer
from test_faults import cli, rss, write_config

# 23:00 UTC on 6 December: 02:00 on the 7th in Moscow, 18:00 on the 6th in New York.
NOW = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)


async def test_each_time_zone_gets_its_own_days_edition(tmp_path: Path) -> None:
    async with FeedServer() as feeds, SmtpServer() as smtp:
        url = feeds.serve("/feed.xml", rss(when=datetime(2026, 12, 6, 21, 0, tzinfo=UTC)))
        config = write_config(
            tmp_path,
            feed_url=url,
            smtp_port=smtp.port,
            subscribers=(),
            tail='[[subscribers]]\nemail = "moscow@example.org"\ntimezone = "Europe/Moscow"\n'
            '[[subscribers]]\nemail = "newyork@example.org"\ntimezone = "America/New_York"\n',
        )
        # (each process's clock starts at its `now`: the poll goes first, as test_faults.poll does)
        assert (await asyncio.to_thread(cli, config, "poll", now=NOW - timedelta(minutes=5))).returncode == 0
        # A preview shows a subscriber the edition they will get: of their own day.
        # (the site's zone is UTC, still the 6th)
        shown = await asyncio.to_thread(cli, config, "preview", "--subscriber", "moscow@example.org", now=NOW)
        assert shown.returncode == 0 and "Subject: Press Review — December 7, 2026" in shown.stdout, shown.stdout
        sent = await asyncio.to_thread(cli, config, "send", now=NOW)
        assert sent.returncode == 0, sent.stderr
        subjects = {
            m.rcpt_tos[0]: str(email.message_from_bytes(m.data, policy=email.policy.default)["Subject"])
            for m in smtp.messages
        }
        # The next morning in New York, the daemon's (or a cron job's `digest send`) edition of the 7th
        # is still to send: the evening's send did not take it.
        later = await asyncio.to_thread(cli, config, "send", now=datetime(2026, 12, 7, 12, 0, tzinfo=UTC))
        assert later.returncode == 0, later.stderr
    assert len(subjects) == 2, (sent.stdout, sent.stderr, later.stdout)
    assert "December 7, 2026" in subjects["moscow@example.org"]
    assert "December 6, 2026" in subjects["newyork@example.org"]
    assert "edition 2026-12-06 America/New_York: 1 sent" in sent.stdout
    assert "edition 2026-12-07 Europe/Moscow: 1 sent" in sent.stdout
    assert "edition 2026-12-07 America/New_York" in later.stdout and "edition 2026-12-07 Europe/Moscow" in later.stdout
