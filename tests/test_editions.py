"""Editions over several days through the real CLI: retries that give up, and "Read also" links to
what an earlier edition carried. Real HTTP feeds, aiosmtpd and SQLite, `digest` as a process."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import format_datetime
from pathlib import Path

from httpservers import FeedServer
from smtpservers import Scripted, SmtpServer, Turn

DAY1 = datetime(2026, 2, 10, 5, 0, tzinfo=UTC)  # 08:00 in Moscow


def rss(items: list[tuple[str, str, datetime]]) -> bytes:
    body = "".join(
        f"<item><title>{t}</title><link>https://wire.example/{slug}</link><guid>{slug}</guid>"
        f"<category>Economy</category><pubDate>{format_datetime(when)}</pubDate>"
        f"<description>Our own words about {slug}.</description></item>"
        for t, slug, when in items
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Wire</title>{body}</channel></rss>'.encode()


def config(tmp: Path, feed: str, port: int) -> Path:
    path = tmp / "digest.toml"
    path.write_text(
        f"""
[digest]
title = "Daily"
timezone = "Europe/Moscow"
database = "sqlite:///{tmp / "d.sqlite"}"
base_url = "https://daily.example"
allow_private_addresses = true

[smtp]
host = "127.0.0.1"
port = {port}
sender = "review@daily.example"
[[sections]]
name = "Business & Economy"
categories = ["Economy"]
[[feeds]]
url = "{feed}"
[[subscribers]]
email = "reader@example.org"
[[subscribers]]
email = "flaky@example.org"
""",
        encoding="utf-8",
    )
    return path


async def digest(cfg: Path, now: datetime, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "digest",
        "--config",
        str(cfg),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "DIGEST_NOW": now.isoformat()},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def rows(tmp: Path) -> dict[str, tuple[str, int, str | None]]:
    with sqlite3.connect(tmp / "d.sqlite") as conn:
        return {
            email: (status, attempts, error)
            for email, status, attempts, error in conn.execute(
                "SELECT s.email, d.status, d.attempts, d.last_error FROM deliveries d JOIN subscribers s"
                " ON s.id = d.subscriber_id"
            )
        }


async def test_M2_a_recipient_deferred_past_give_up_after_is_failed_and_not_retried(tmp_path: Path) -> None:
    def rcpt(turn: Turn) -> str | None:
        return "451 4.3.0 mailbox busy, try later" if turn.address == "flaky@example.org" else None

    async with FeedServer() as feeds, SmtpServer(handler=Scripted(rcpt=rcpt)) as smtp:
        feed = feeds.serve("/w.xml", rss([("Grain exports reach a record", "grain", DAY1 - timedelta(hours=1))]))
        cfg = config(tmp_path, feed, smtp.port)
        cfg.write_text(
            cfg.read_text().replace(
                'sender = "review@daily.example"', 'sender = "review@daily.example"\ngive_up_after = "2h"'
            )
        )
        assert (await digest(cfg, DAY1, "poll"))[0] == 0
        code, out, _ = await digest(cfg, DAY1 + timedelta(minutes=1), "send")
        assert code == 4 and "1 sent, 0 skipped, 0 failed, 1 deferred (pending rows remain)" in out
        status, attempts, error = rows(tmp_path)["flaky@example.org"]
        assert (status, attempts) == ("pending", 1) and error and error.startswith("451")

        code, out, _ = await digest(cfg, DAY1 + timedelta(minutes=30), "send")  # still within give_up_after
        assert "1 deferred" in out and rows(tmp_path)["flaky@example.org"][:2] == ("pending", 2)

        code, out, _ = await digest(cfg, DAY1 + timedelta(hours=3), "send")  # past it: give up
        assert code == 3 and "0 sent, 0 skipped, 1 failed, 0 deferred (complete)" in out
        status, attempts, error = rows(tmp_path)["flaky@example.org"]
        assert status == "failed" and error and error.startswith("gave up: 451")

        tried = len(smtp.handler.rcpt_seen)
        code, out, _ = await digest(cfg, DAY1 + timedelta(hours=4), "send")
        assert code == 0 and "0 sent" in out and len(smtp.handler.rcpt_seen) == tried, "a failed row is never retried"
    received = [m.rcpt_tos[0] for m in smtp.messages]
    assert received == ["reader@example.org"], "a 4xx never becomes a message"
    # A transient failure is not a bounce: the subscriber is still active, with no bounce counted.
    listed = (await digest(cfg, DAY1 + timedelta(hours=5), "subscribers", "list"))[1]
    assert "flaky@example.org  active" in listed and "bounces=" not in listed


async def test_read_also_links_an_earlier_editions_story_on_the_same_subject(tmp_path: Path) -> None:
    day2 = DAY1 + timedelta(days=1)
    first = ("Central bank raises key rate to 18 percent to fight inflation", "rate-rise", DAY1 - timedelta(hours=2))
    later = ("Central bank governor defends key rate policy before parliament", "governor", day2 - timedelta(hours=2))
    unrelated = ("Ice hockey final goes to overtime", "hockey", day2 - timedelta(hours=1))
    async with FeedServer() as feeds, SmtpServer() as smtp:
        feed = feeds.serve("/w.xml", rss([first]))
        cfg = config(tmp_path, feed, smtp.port)
        assert (await digest(cfg, DAY1, "poll"))[0] == 0
        assert (await digest(cfg, DAY1 + timedelta(minutes=1), "send"))[0] == 0
        feeds.serve("/w.xml", rss([first, later, unrelated]))
        assert (await digest(cfg, day2, "poll"))[0] == 0
        assert (await digest(cfg, day2 + timedelta(minutes=1), "send", "--date", "2026-02-11"))[0] == 0
    second = [m for m in smtp.messages if b"February 11" in m.data][0]
    text = message_from_bytes(second.data, policy=policy.default).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    text = text.replace("\r\n", "\n")
    governor = text.index(later[0])
    block = text[governor : text.index("\n\n", governor)]
    assert "Read also" in block and first[0] in block, block
    assert first[0] not in text[:governor], "the earlier story is only linked, never repeated as news"
    hockey = text.index(unrelated[0])
    assert "Read also" not in text[hockey : text.index("\n\n", hockey)]
