"""A subscriber who moves time zone gets every item in exactly one edition: none lost in the gap
between their former zone's cut-off and their new zone's, none twice where the two windows overlap.

The real `python -m digest` against a feed server and aiosmtpd on 127.0.0.1 and a real SQLite file;
each command's clock is set with DIGEST_NOW, as the other edition tests do. The editions go out at
07:05 in New York and in Moscow (the runs' own times are the cut-offs), one new story polled
between each two runs; readers move by an edit of the config, between two runs.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import postgres_database
from httpservers import FeedServer
from smtpservers import Scripted, SmtpServer, Turn
from test_faults import channel, cli, pub_date, write_config

NY, MSK, LONDON = "America/New_York", "Europe/Moscow", "Europe/London"

# Unrelated subjects: no two cluster together, and none is another's "Read also".
TITLES = (
    "Harbour ferry timetable changes",
    "Orchestra names new conductor",
    "Glacier survey finds thinning ice",
    "Chess olympiad opens with record entries",
    "Bakery cooperative wins regional prize",
    "Lighthouse keeper retires after forty years",
)

# Who lives where before the first move, after it (A: after Moscow's cut-off, before New York's,
# on the same day) and after the second (B: after New York's cut-off, before Moscow's next).
READERS = {
    "stays-ny": (NY, NY, NY),
    "stays-msk": (MSK, MSK, MSK),
    "west-east": (NY, MSK, MSK),  # the gap: items between NY's last cut-off and Moscow's
    "east-west": (MSK, NY, NY),  # the overlap: Moscow's last edition and NY's next share items
    "east-west-late": (MSK, MSK, NY),  # the gap: items between Moscow's last cut-off and NY's
    "west-east-late": (NY, NY, MSK),  # the overlap again
    "three-zones": (NY, LONDON, MSK),  # a first London edition between two moves
}


def _subscribers(stage: int) -> str:
    return "".join(
        f'[[subscribers]]\nemail = "{name}@example.org"\ntimezone = "{zones[stage]}"\n'
        for name, zones in READERS.items()
    )


def _feed(stories: list[tuple[str, datetime]]) -> bytes:
    items = "".join(
        f"<item><title>{title}</title><link>https://news.example.org/{n}</link>"
        f"<guid>https://news.example.org/{n}</guid><pubDate>{pub_date(when)}</pubDate>"
        f"<description>Report {n}.</description></item>"
        for n, (title, when) in enumerate(stories)
    )
    return channel("Test news", "https://news.example.org/", items)


def _at(zone: str, day: date) -> datetime:
    """07:05 on `day` in `zone`, in UTC: just past `send_at`, when that zone's edition is built."""
    return datetime.combine(day, time(7, 5), ZoneInfo(zone)).astimezone(UTC)


def _runs(first: date) -> list[datetime]:
    """Moscow's 1st, NY's 1st, Moscow's 2nd, (A) NY's 2nd, (B) Moscow's 3rd, NY's 3rd, Moscow's 4th."""
    d = [first + timedelta(days=n) for n in range(4)]
    return [_at(MSK, d[0]), _at(NY, d[0]), _at(MSK, d[1]), _at(NY, d[1]), _at(MSK, d[2]), _at(NY, d[2]), _at(MSK, d[3])]


@contextmanager
def _database(backend: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'digest.sqlite'}"
    else:
        with postgres_database() as url:
            yield url


@pytest.mark.parametrize(
    ("first", "backend"),
    [
        pytest.param(date(2026, 12, 1), "sqlite", id="winter"),
        # New York leaves daylight saving time at 02:00 on 1 November: the moves are on that day,
        # its cut-offs at 11:05 UTC before and 12:05 after.
        pytest.param(date(2026, 10, 31), "sqlite", id="dst-day"),
        pytest.param(date(2026, 12, 1), "postgresql", id="winter-postgresql"),
    ],
)
async def test_every_story_reaches_every_reader_once_whichever_way_and_whenever_they_move(
    tmp_path: Path, first: date, backend: str
) -> None:
    runs = _runs(first)
    moves = {3: 1, 4: 2}  # before the run at this index, readers are where this stage says
    stories: list[tuple[str, datetime]] = []
    with _database(backend, tmp_path) as database:
        async with FeedServer() as feeds, SmtpServer() as smtp:
            url = feeds.serve("/feed.xml", _feed(stories))
            config = write_config(
                tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=(), tail=_subscribers(0), database=database
            )
            for n, at in enumerate(runs[:6]):
                if n in moves:
                    config.write_text(config.read_text().split("[[subscribers]]")[0] + _subscribers(moves[n]))
                # A new story an hour before each run, first seen then: after the run before it.
                polled_at = at - timedelta(hours=1)
                stories.append((TITLES[n], polled_at - timedelta(minutes=30)))
                feeds.serve("/feed.xml", _feed(stories))
                polled = await asyncio.to_thread(cli, config, "poll", now=polled_at)
                assert polled.returncode == 0, polled.stderr
                sent = await asyncio.to_thread(cli, config, "send", now=at)
                assert sent.returncode == 0, sent.stderr
            # Moscow's 4th: its readers' last story (New York's readers had it on the 3rd).
            sent = await asyncio.to_thread(cli, config, "send", now=runs[6])
            assert sent.returncode == 0, sent.stderr
    got: dict[str, Counter[str]] = {f"{name}@example.org": Counter() for name in READERS}
    for m in smtp.messages:
        body = email.message_from_bytes(m.data, policy=email.policy.default).get_body(("plain",))
        assert body is not None
        text = body.get_content()
        got[m.rcpt_tos[0]].update(title for title in TITLES if title in text)
    every_once = Counter(TITLES)
    assert {who: dict(seen) for who, seen in got.items() if seen != every_once} == {}, sent.stdout


async def test_a_movers_gap_comes_once_when_their_first_edition_is_retried_after_the_next_one(tmp_path: Path) -> None:
    """The relay defers the west-east reader's first Moscow edition (450) and takes it only after
    Moscow's next edition went out (past its day, the daemon leaves it; `digest send --date` sends
    it; New York's run in between retried it, deferred again). The gap goes with the first, which
    was due to them while the next was made, never with both: a pending row covers its window as a
    sent one does."""
    refused: list[str] = []
    armed = [False]  # in the run of Moscow's first edition after the move and in New York's after it

    def rcpt(turn: Turn) -> str | None:
        if turn.address == "west-east@example.org" and armed[0]:
            refused.append(turn.address)
            return "450 4.2.1 mailbox busy, try later"
        return None

    runs = _runs(date(2026, 12, 1))
    stories: list[tuple[str, datetime]] = []
    async with FeedServer() as feeds, SmtpServer(handler=Scripted(rcpt=rcpt)) as smtp:
        url = feeds.serve("/feed.xml", _feed(stories))
        tail = _subscribers(0)
        config = write_config(tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=(), tail=tail)
        for n, at in enumerate(runs):
            if n == 3:
                config.write_text(config.read_text().replace(f'"{NY}"', f'"{MSK}"'))  # everyone in Moscow now
            armed[0] = n in (4, 5)
            if n < len(TITLES):
                stories.append((TITLES[n], at - timedelta(hours=1, minutes=30)))
                feeds.serve("/feed.xml", _feed(stories))
                polled = await asyncio.to_thread(cli, config, "poll", now=at - timedelta(hours=1))
                assert polled.returncode == 0, polled.stderr
            sent = await asyncio.to_thread(cli, config, "send", now=at)
            assert sent.returncode == (4 if n in (4, 5) else 0), (n, sent.stderr)  # 4: messages deferred
        assert refused, sent.stdout
        retried = await asyncio.to_thread(
            cli, config, "send", "--date", runs[4].date().isoformat(), "--retry-now", now=runs[6] + timedelta(hours=1)
        )
        assert retried.returncode == 0, retried.stderr
        assert "1 sent" in retried.stdout, retried.stdout
    mover = Counter[str]()
    for m in smtp.messages:
        if m.rcpt_tos[0] == "west-east@example.org":
            body = email.message_from_bytes(m.data, policy=email.policy.default).get_body(("plain",))
            assert body is not None
            mover.update(title for title in TITLES if title in body.get_content())
    assert dict(mover) == dict(Counter(TITLES)), sent.stdout
