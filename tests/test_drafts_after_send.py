"""`digest send --dry-run` and `digest preview` after one zone's edition went out and before the
other's: the dry run writes exactly the messages the send then sends (none for the zone already
sent, and says so), and preview says which edition it shows when a send would not mail it.

The real `python -m digest` against a feed server and aiosmtpd on 127.0.0.1 and a real SQLite file;
each command's clock is set with DIGEST_NOW. Moscow's edition of 1 December goes out at 07:05
there (with New York's of 30 November, its own day then); the dry run, previews and send follow at
07:05 in New York on the 1st, after one more story was polled.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from httpservers import FeedServer
from smtpservers import Scripted, SmtpServer, Turn
from test_faults import channel, cli, pub_date, write_config

NY, MSK = "America/New_York", "Europe/Moscow"
# msk-refused's message of Moscow's 1st fails for good and msk-busy's is deferred (a 4xx: the next
# send retries it, the dry run must write it); ny-sport chose a section none of the stories is in.
READERS = {"msk1": MSK, "msk2": MSK, "msk-refused": MSK, "msk-busy": MSK, "ny": NY, "ny-sport": NY}
TITLES = ("Harbour ferry timetable changes", "Orchestra names new conductor")
MOSCOW_RUN = datetime.combine(datetime(2026, 12, 1), time(7, 5), ZoneInfo(MSK)).astimezone(UTC)
NY_RUN = datetime.combine(datetime(2026, 12, 1), time(7, 5), ZoneInfo(NY)).astimezone(UTC)
_LINK = re.compile(r"https://news\.example\.org/\d+")


def _feed(stories: list[tuple[str, datetime]]) -> bytes:
    items = "".join(
        f"<item><title>{title}</title><link>https://news.example.org/{n}</link>"
        f"<guid>https://news.example.org/{n}</guid><pubDate>{pub_date(when)}</pubDate>"
        f"<description>Report {n}.</description></item>"
        for n, (title, when) in enumerate(stories)
    )
    return channel("Test news", "https://news.example.org/", items)


def _links(data: bytes) -> list[str]:
    body = email.message_from_bytes(data, policy=email.policy.default).get_body(("plain",))
    assert body is not None
    return list(dict.fromkeys(_LINK.findall(str(body.get_content()))))


async def test_dry_run_and_preview_leave_out_an_edition_already_sent(tmp_path: Path) -> None:
    busy = [True]

    def rcpt(turn: Turn) -> str | None:
        if turn.address.startswith("msk-refused@"):
            return "550 5.1.1 no such mailbox"
        return "450 4.2.1 mailbox busy, try later" if turn.address.startswith("msk-busy@") and busy[0] else None

    stories: list[tuple[str, datetime]] = []
    tail = "".join(
        f'[[subscribers]]\nemail = "{name}@example.org"\ntimezone = "{tz}"\n'
        + ('sections = ["Sport"]\n' if name == "ny-sport" else "")
        for name, tz in READERS.items()
    )
    async with FeedServer() as feeds, SmtpServer(handler=Scripted(rcpt=rcpt)) as smtp:
        url = feeds.serve("/feed.xml", _feed(stories))
        config = write_config(tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=(), tail=tail)
        for title, at in zip(TITLES, (MOSCOW_RUN, NY_RUN), strict=True):
            stories.append((title, at - timedelta(hours=1, minutes=30)))
            feeds.serve("/feed.xml", _feed(stories))
            polled = await asyncio.to_thread(cli, config, "poll", now=at - timedelta(hours=1))
            assert polled.returncode == 0, polled.stderr
            if at == MOSCOW_RUN:
                first = await asyncio.to_thread(cli, config, "send", now=at)
                assert first.returncode == 3, first.stderr  # 3: a message failed for good (and one deferred)
                busy[0] = False
                assert sorted(m.rcpt_tos[0] for m in smtp.messages) == [
                    "msk1@example.org",
                    "msk2@example.org",
                    "ny@example.org",
                ]
        folder = tmp_path / "dry"
        dry = await asyncio.to_thread(cli, config, "send", "--dry-run", str(folder), now=NY_RUN)
        assert dry.returncode == 0, dry.stderr
        previews = {
            name: await asyncio.to_thread(cli, config, "preview", "--subscriber", f"{name}@example.org", now=NY_RUN)
            for name in ("msk1", "msk-refused", "ny")
        }
        following = await asyncio.to_thread(
            cli, config, "preview", "--subscriber", "msk1@example.org", "--date", "2026-12-02", now=NY_RUN
        )
        before = len(smtp.messages)
        sent = await asyncio.to_thread(cli, config, "send", now=NY_RUN)
        assert sent.returncode == 0, sent.stderr
        then = {m.rcpt_tos[0]: _links(m.data) for m in smtp.messages[before:]}

    # The dry run wrote what the send then sent: New York's edition of the 1st to its reader, and
    # nothing to Moscow's readers, whose edition of the 1st was out.
    written = {
        str(email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)["To"]): _links(eml.read_bytes())
        for eml in folder.glob("*.eml")
    }
    # The deferred Moscow message goes now, with the edition it was deferred from.
    assert written == then, dry.stdout
    assert then == {
        "ny@example.org": ["https://news.example.org/1"],
        "msk-busy@example.org": ["https://news.example.org/0"],
    }
    assert dry.stdout.splitlines()[0] == f"wrote 2 messages to {folder} (nothing was sent or recorded)"
    skipped = "1 skipped (1 had no story in the sections they chose)"
    assert skipped in dry.stdout.splitlines() and skipped in sent.stdout, (dry.stdout, sent.stdout)
    assert f"already sent: 2 subscribers in {MSK} (edition of 1 December)" in dry.stdout.splitlines(), dry.stdout
    assert f"not sent now: 1 failed for good in {MSK} (edition of 1 December)" in dry.stdout.splitlines()

    # Preview of a Moscow reader shows the edition they got, and says so, with the next one's date.
    shown = previews["msk1"]
    assert shown.returncode == 0, shown.stderr
    head = shown.stdout.split("Subject: ")[0].strip()
    assert head.startswith(f"Edition of 1 December ({MSK}): already sent to them at 07:05;"), head
    assert "their next, of 2 December, goes at 07:00" in head and "--date 2026-12-02" in head, head
    assert "news.example.org/0" in shown.stdout and "news.example.org/1" not in shown.stdout
    refused = previews["msk-refused"].stdout
    assert refused.startswith(f"Edition of 1 December ({MSK}): their message failed for good"), refused
    # A reader whose edition is still to send: their message, with no such line.
    assert previews["ny"].stdout.startswith("Subject: "), previews["ny"].stdout
    assert "news.example.org/1" in previews["ny"].stdout
    # The next Moscow edition, as the line says to see it: the story polled since, no line.
    assert following.returncode == 0 and following.stdout.startswith("Subject: "), following.stdout
    assert "news.example.org/1" in following.stdout and "news.example.org/0" not in following.stdout
