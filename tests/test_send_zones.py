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
from test_faults import channel, cli, pub_date, rss, write_config

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


# One story a day on unrelated subjects (no "Read also" between them).
_STORIES = {
    1: ("Harbour ferry timetable changes", "Ferries leave earlier."),
    2: ("Orchestra names new conductor", "A violinist takes the baton."),
    3: ("Glacier survey finds thinning ice", "Surveyors measured it."),
    4: ("Chess olympiad opens with record entries", "Players from everywhere."),
    5: ("Bakery cooperative wins regional prize", "Bread judged best."),
}


def _feed(days: range) -> bytes:
    """One story a day, each dated its own morning: the feed as a poll on the last day reads it."""
    items = "".join(
        f"<item><title>{_STORIES[d][0]}</title><link>https://news.example.org/{d}</link>"
        f"<guid>https://news.example.org/{d}</guid><pubDate>{pub_date(datetime(2026, 12, d, 5, 0, tzinfo=UTC))}"
        f"</pubDate><description>{_STORIES[d][1]}</description></item>"
        for d in days
    )
    return channel("Test news", "https://news.example.org/", items)


async def test_a_new_time_zones_first_edition_carries_a_day_not_the_whole_database(tmp_path: Path) -> None:
    """A reader who signs up in a zone nobody had gets a day's news: the first edition of a zone
    started where the database began (an audit's Tokyo reader got 928 items back to the week
    before). The readers of the zone that had editions still get each item once."""
    async with FeedServer() as feeds, SmtpServer() as smtp:
        url = feeds.serve("/feed.xml", _feed(range(1, 2)))
        config = write_config(
            tmp_path,
            feed_url=url,
            smtp_port=smtp.port,
            subscribers=(),
            tail='[[subscribers]]\nemail = "moscow@example.org"\ntimezone = "Europe/Moscow"\n',
        )
        for day in range(1, 5):  # a poll every morning, the Moscow edition at 07:00 local (04:00 UTC)
            feeds.serve("/feed.xml", _feed(range(1, day + 1)))
            at = datetime(2026, 12, day, 6, 0, tzinfo=UTC)
            assert (await asyncio.to_thread(cli, config, "poll", now=at)).returncode == 0
            assert (await asyncio.to_thread(cli, config, "send", now=at + timedelta(hours=22))).returncode == 0
        joined = await asyncio.to_thread(
            cli, config, "subscribers", "add", "tokyo@example.org", "--timezone", "Asia/Tokyo", now=at
        )
        assert joined.returncode == 0, joined.stderr
        feeds.serve("/feed.xml", _feed(range(1, 6)))
        at = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
        assert (await asyncio.to_thread(cli, config, "poll", now=at)).returncode == 0
        sent = await asyncio.to_thread(cli, config, "send", now=at + timedelta(hours=1))
        assert sent.returncode == 0, sent.stderr
    got: dict[str, list[str]] = {}  # each story a message names, once per message
    for m in smtp.messages:
        body = email.message_from_bytes(m.data, policy=email.policy.default).get_body(("plain",))
        assert body is not None
        text = body.get_content()
        got.setdefault(m.rcpt_tos[0], []).extend(f"day {d}" for d, (title, _) in _STORIES.items() if title in text)
    assert sorted(got["tokyo@example.org"]) == ["day 5"], sent.stdout
    # Moscow's edition of the 5th went out at 07:00 there, before day 5's story: it is the 6th's.
    assert sorted(got["moscow@example.org"]) == [f"day {d}" for d in range(1, 5)]


async def test_a_subscriber_who_moves_zone_is_not_sent_again_what_the_old_zones_edition_had(tmp_path: Path) -> None:
    """Chicago's edition of the 1st (cut at 14:00 UTC) and Moscow's of the 2nd (04:00 UTC on the
    2nd, window from 04:00 on the 1st) both carry day 2's story, first seen at 10:00: a reader
    moved from Chicago to Moscow in between got it twice. Moscow's other reader still gets it."""

    def subscribers(chicago_zone: str) -> str:
        return (
            '[[subscribers]]\nemail = "stays@example.org"\ntimezone = "Europe/Moscow"\n'
            f'[[subscribers]]\nemail = "moves@example.org"\ntimezone = "{chicago_zone}"\n'
        )

    async with FeedServer() as feeds, SmtpServer() as smtp:
        url = feeds.serve("/feed.xml", _feed(range(1, 2)))
        config = write_config(
            tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=(), tail=subscribers("America/Chicago")
        )
        steps = [  # (what the feed has, poll at, send at), UTC
            (range(1, 2), datetime(2026, 12, 1, 1, 0), datetime(2026, 12, 1, 4, 0)),  # Moscow 1st, Chicago 30th
            (range(1, 3), datetime(2026, 12, 1, 10, 0), datetime(2026, 12, 1, 14, 0)),  # Chicago's 1st
        ]
        for days, poll_at, send_at in steps:
            feeds.serve("/feed.xml", _feed(days))
            assert (await asyncio.to_thread(cli, config, "poll", now=poll_at.replace(tzinfo=UTC))).returncode == 0
            done = await asyncio.to_thread(cli, config, "send", now=send_at.replace(tzinfo=UTC))
            assert done.returncode == 0, done.stderr
        before = len(smtp.messages)
        config.write_text(config.read_text().replace("America/Chicago", "Europe/Moscow"))
        feeds.serve("/feed.xml", _feed(range(1, 4)))
        polled = await asyncio.to_thread(cli, config, "poll", now=datetime(2026, 12, 1, 20, 0, tzinfo=UTC))
        assert polled.returncode == 0
        sent = await asyncio.to_thread(cli, config, "send", now=datetime(2026, 12, 2, 4, 0, tzinfo=UTC))
        assert sent.returncode == 0, sent.stderr
    got: dict[str, set[str]] = {}
    for m in smtp.messages[before:]:
        body = email.message_from_bytes(m.data, policy=email.policy.default).get_body(("plain",))
        assert body is not None
        text = body.get_content()
        got[m.rcpt_tos[0]] = {f"day {d}" for d, (title, _) in _STORIES.items() if title in text}
    assert got == {"stays@example.org": {"day 2", "day 3"}, "moves@example.org": {"day 3"}}, sent.stdout
