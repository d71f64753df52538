"""`digest send --dry-run` writes the due messages of the earlier editions a plain `digest send`
resumes (`plan().resume`), beside today's, each edition's in a folder of its own, and names each
such edition in a line; the real send then sends exactly what it wrote.

The real `python -m digest` against a feed server and aiosmtpd on 127.0.0.1 and a real SQLite file;
each command's clock is set with DIGEST_NOW. One zone (UTC), `catch_up` long enough that the
edition of 1 December is still due on the 2nd, when the next edition goes out at 07:05.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from httpservers import FeedServer
from smtpservers import Scripted, SmtpServer, Turn
from test_faults import channel, cli, pub_date, write_config

DAY1 = datetime(2026, 12, 1, 7, 5, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
_LINK = re.compile(r"https://news\.example\.org/\d+")
# Titles unlike each other: the edition of the 2nd would link the 1st's story as "Read also".
TITLES = ("Harbour ferry timetable changes", "Orchestra names new conductor")

Sent = tuple[str, tuple[str, ...], str]  # recipient, the stories' links, Message-ID


def _feed(days: int) -> bytes:
    items = "".join(
        f"<item><title>{TITLES[n]}</title><link>https://news.example.org/{n}</link>"
        f"<guid>https://news.example.org/{n}</guid>"
        f"<pubDate>{pub_date(DAY1 + timedelta(days=n, hours=-1, minutes=-30))}</pubDate>"
        f"<description>Report {n}.</description></item>"
        for n in range(days)
    )
    return channel("Test news", "https://news.example.org/", items)


def _message(data: bytes) -> tuple[tuple[str, ...], str]:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    body = msg.get_body(("plain",))
    assert body is not None
    return tuple(dict.fromkeys(_LINK.findall(str(body.get_content())))), str(msg["Message-ID"])


def _written(folder: Path) -> dict[str, Sent]:
    """Each .eml file the dry run wrote, by its path under `folder`."""
    out = {}
    for eml in folder.rglob("*.eml"):
        data = eml.read_bytes()
        to = str(email.message_from_bytes(data, policy=email.policy.default)["To"])
        out[eml.relative_to(folder).as_posix()] = (to, *_message(data))
    return out


def _same(written: dict[str, Sent], then: list[Sent]) -> bool:
    """The same messages (recipient and stories), whatever their Message-IDs."""
    return sorted(sent[:2] for sent in written.values()) == sorted(sent[:2] for sent in then)


def _site(tmp_path: Path, url: str, port: int, names: tuple[str, ...]) -> Path:
    return write_config(
        tmp_path,
        feed_url=url,
        smtp_port=port,
        subscribers=tuple(f"{name}@example.org" for name in names),
        extra='catch_up = "30h"',
    )


def _refusing(refuse: dict[str, str]) -> Callable[[Turn], str | None]:
    return lambda turn: refuse.get(turn.address.split("@")[0])


async def test_dry_run_writes_an_earlier_editions_due_retry_beside_todays_and_send_sends_both(
    tmp_path: Path,
) -> None:
    refuse = {"busy": "450 4.2.1 mailbox busy, try later"}
    async with FeedServer() as feeds, SmtpServer(handler=Scripted(rcpt=_refusing(refuse))) as smtp:
        url = feeds.serve("/feed.xml", _feed(1))
        config = _site(tmp_path, url, smtp.port, ("calm", "busy"))
        assert (await asyncio.to_thread(cli, config, "poll", now=DAY1 - timedelta(hours=1))).returncode == 0
        first = await asyncio.to_thread(cli, config, "send", now=DAY1)
        assert first.returncode == 4, first.stdout + first.stderr  # 4: busy's message deferred
        assert [m.rcpt_tos[0] for m in smtp.messages] == ["calm@example.org"]

        refuse.clear()
        feeds.serve("/feed.xml", _feed(2))
        assert (await asyncio.to_thread(cli, config, "poll", now=DAY2 - timedelta(hours=1))).returncode == 0
        folder = tmp_path / "dry"
        dry = await asyncio.to_thread(cli, config, "send", "--dry-run", str(folder), now=DAY2)
        assert dry.returncode == 0, dry.stderr
        written = _written(folder)  # before the send: nothing the send does may change it
        before = len(smtp.messages)
        sent = await asyncio.to_thread(cli, config, "send", now=DAY2)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        then = [(m.rcpt_tos[0], *_message(m.data)) for m in smtp.messages[before:]]

    # Busy's retry of the 1st and their edition of the 2nd, each in a file of its own; the send
    # then sent exactly those messages (the retry with its Message-ID: the 2nd's edition, built
    # by the send, has its id only then).
    assert _same(written, then), (dry.stdout, sent.stdout)
    by_file = {path: (to, links) for path, (to, links, _) in written.items()}
    retry = [path for path in by_file if path.startswith("2026-12-01/UTC/")]
    assert len(retry) == 1 and by_file[retry[0]] == ("busy@example.org", ("https://news.example.org/0",)), by_file
    assert written[retry[0]] in then
    today = sorted(v for path, v in by_file.items() if "/" not in path)
    assert today == [
        ("busy@example.org", ("https://news.example.org/1",)),
        ("calm@example.org", ("https://news.example.org/1",)),
    ], by_file
    lines = dry.stdout.splitlines()
    assert lines[0] == f"wrote 3 messages to {folder} (nothing was sent or recorded)", dry.stdout
    assert f"resumed edition of 1 December (UTC): 1 due retry; in {folder / '2026-12-01' / 'UTC'}" in lines
    assert "edition 2026-12-01 UTC (earlier, messages due for a retry): 1 sent" in sent.stdout, sent.stdout


async def test_retry_now_reaches_an_earlier_editions_deferred_messages_in_the_dry_run_as_in_the_send(
    tmp_path: Path,
) -> None:
    """Of the edition of the 1st, `due`'s retry time has come on the 2nd at 07:05 and `late`'s
    has not (a send at 06:58 deferred it again, then stopped on a refused login before `due`):
    the dry run writes `due`'s, and with --retry-now `late`'s too, as the send with it sends."""
    busy = "450 4.2.1 mailbox busy, try later"
    refuse = {"late": busy, "due": busy}
    # One connection: `late`'s message goes first, then `due`'s. Both are still pending on the 2nd,
    # past give_up_after (20 h), as the edition is within catch_up (30 h).
    env = {"DIGEST_SMTP_CONNECTIONS": "1"}
    async with FeedServer() as feeds, SmtpServer(handler=Scripted(rcpt=_refusing(refuse))) as smtp:
        url = feeds.serve("/feed.xml", _feed(1))
        config = _site(tmp_path, url, smtp.port, ("late", "due"))
        assert (await asyncio.to_thread(cli, config, "poll", env=env, now=DAY1 - timedelta(hours=1))).returncode == 0
        first = await asyncio.to_thread(cli, config, "send", env=env, now=DAY1)
        assert first.returncode == 4 and not smtp.messages, first.stdout + first.stderr

        refuse["due"] = "530 5.7.0 authentication required"  # stops the run: `due`'s row left as it was
        again = await asyncio.to_thread(
            cli, config, "send", "--date", "2026-12-01", env=env, now=DAY2 - timedelta(minutes=7)
        )
        assert again.returncode == 1 and "authentication" in again.stderr, again.stdout + again.stderr
        refuse.clear()
        feeds.serve("/feed.xml", _feed(2))
        assert (await asyncio.to_thread(cli, config, "poll", env=env, now=DAY2 - timedelta(hours=1))).returncode == 0
        due_only, at_once = tmp_path / "due", tmp_path / "now"
        dry = await asyncio.to_thread(cli, config, "send", "--dry-run", str(due_only), env=env, now=DAY2)
        dry_now = await asyncio.to_thread(
            cli, config, "send", "--dry-run", str(at_once), "--retry-now", env=env, now=DAY2
        )
        assert dry.returncode == 0 and dry_now.returncode == 0, dry.stderr + dry_now.stderr
        written = _written(at_once)
        sent = await asyncio.to_thread(cli, config, "send", "--retry-now", env=env, now=DAY2)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        then = [(m.rcpt_tos[0], *_message(m.data)) for m in smtp.messages]

    earlier = due_only / "2026-12-01" / "UTC"
    assert sorted(to for path, (to, _, _) in _written(due_only).items() if "/" in path) == ["due@example.org"]
    assert f"resumed edition of 1 December (UTC): 1 due retry; in {earlier}" in dry.stdout.splitlines(), dry.stdout
    line = (
        "resumed edition of 1 December (UTC): 1 due retry, 1 deferred, retried early (--retry-now); "
        f"in {at_once / '2026-12-01' / 'UTC'}"
    )
    assert line in dry_now.stdout.splitlines(), dry_now.stdout
    assert _same(written, then), (dry_now.stdout, sent.stdout)
    assert all(sent in then for path, sent in written.items() if "/" in path)  # Message-IDs too
    assert len(then) == 4, sent.stdout  # each reader's of the 2nd and of the 1st


async def test_retry_now_resumes_an_earlier_edition_whose_every_deferred_message_still_waits(
    tmp_path: Path,
) -> None:
    """`waits`'s message of the 1st was deferred again at 06:58 on the 2nd, so its retry time
    (07:08) has not come at 07:05: no row of that edition is due. A plain send and its dry run
    leave it; `--retry-now` (the relay mended) sends it, and its dry run writes it first. It is
    still pending on the 2nd, past give_up_after (20 h), as the edition is within catch_up (30 h)."""
    refuse = {"waits": "450 4.2.1 mailbox busy, try later"}
    async with FeedServer() as feeds, SmtpServer(handler=Scripted(rcpt=_refusing(refuse))) as smtp:
        url = feeds.serve("/feed.xml", _feed(1))
        config = _site(tmp_path, url, smtp.port, ("waits",))
        assert (await asyncio.to_thread(cli, config, "poll", now=DAY1 - timedelta(hours=1))).returncode == 0
        first = await asyncio.to_thread(cli, config, "send", now=DAY1)
        assert first.returncode == 4 and not smtp.messages, first.stdout + first.stderr
        again = await asyncio.to_thread(cli, config, "send", "--date", "2026-12-01", now=DAY2 - timedelta(minutes=7))
        assert again.returncode == 4 and not smtp.messages, again.stdout + again.stderr  # retry at 07:08

        refuse.clear()  # the operator mended the relay
        feeds.serve("/feed.xml", _feed(2))
        assert (await asyncio.to_thread(cli, config, "poll", now=DAY2 - timedelta(hours=1))).returncode == 0
        plain, at_once = tmp_path / "plain", tmp_path / "now"
        dry = await asyncio.to_thread(cli, config, "send", "--dry-run", str(plain), now=DAY2)
        dry_now = await asyncio.to_thread(cli, config, "send", "--dry-run", str(at_once), "--retry-now", now=DAY2)
        assert dry.returncode == 0 and dry_now.returncode == 0, dry.stderr + dry_now.stderr
        sent = await asyncio.to_thread(cli, config, "send", now=DAY2)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        today = [(m.rcpt_tos[0], *_message(m.data)) for m in smtp.messages]
        sent_now = await asyncio.to_thread(cli, config, "send", "--retry-now", now=DAY2 + timedelta(minutes=1))
        assert sent_now.returncode == 0, sent_now.stdout + sent_now.stderr
        then = [(m.rcpt_tos[0], *_message(m.data)) for m in smtp.messages[len(today) :]]

    assert sorted(_written(plain)) == ["1.eml"], dry.stdout  # today's alone
    assert [links for _, links, _ in today] == [("https://news.example.org/1",)], sent.stdout
    assert "2026-12-01" not in sent.stdout, sent.stdout
    earlier = at_once / "2026-12-01" / "UTC"
    line = f"resumed edition of 1 December (UTC): 1 deferred, retried early (--retry-now); in {earlier}"
    assert line in dry_now.stdout.splitlines(), dry_now.stdout
    written = _written(at_once)
    assert written["2026-12-01/UTC/1.eml"] in then  # the same message, Message-ID and all
    assert then == [("waits@example.org", ("https://news.example.org/0",), written["2026-12-01/UTC/1.eml"][2])]
    assert "edition 2026-12-01 UTC (earlier, messages due for a retry): 1 sent" in sent_now.stdout, sent_now.stdout
