"""What an operator reads when mail does not go out (audit of the send path, findings 6-8): the real
`python -m digest status`, `outbox`, `subscribers show/list` and `send` against real SQLite files,
a feed server and aiosmtpd on loopback that refuses or defers chosen recipients."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import BACKENDS, postgres_database
from httpservers import FeedServer
from ports import free_port
from smtpservers import Scripted, SmtpServer
from test_faults import NOW, cli, one_error, poll, rss, write_config

from digest.store import Store
from digest.store.workers import STALE_AFTER

GONE, BUSY = "gone@example.org", "busy@example.org"


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The database the site uses: None for SQLite beside the config, else a new PostgreSQL one
    (the operator's reads are plain queries, but ordering and NULL counting differ by dialect)."""
    if request.param == "sqlite":
        yield None
        return
    with postgres_database() as url:
        yield url


def refusing() -> Scripted:
    """550 for GONE (permanent: a strike), 451 for BUSY (deferred), everyone else accepted."""
    replies = {GONE: "550 5.2.1 mailbox disabled", BUSY: "451 4.3.0 try again later"}
    return Scripted(rcpt=lambda turn: replies.get(turn.address))


def status(config: Path, now: datetime) -> str:
    result = cli(config, "status", now=now)
    assert result.returncode == 0, result.stderr
    return result.stdout


# --------------------------------------------------------------------------- status (finding 6)


async def test_status_names_the_edition_an_smtp_outage_keeps_from_being_built(tmp_path: Path) -> None:
    """The sender connects before it builds: during an outage today's edition is never built, and
    status said "next: tomorrow" and "outbox: empty", as if all were well."""
    async with FeedServer() as feeds:
        port = free_port()
        config = write_config(tmp_path, feed_url=feeds.serve("/news.xml", rss()), smtp_port=port)
        assert (await asyncio.to_thread(poll, config)).returncode == 0
    assert "Cannot connect to the SMTP server" in one_error(cli(config, "send"))

    later = NOW + timedelta(minutes=30)  # send_at 07:00 UTC; NOW is 09:00
    out = status(config, later)
    assert "UTC: overdue 2026-03-10: due since 2026-03-10 07:00 UTC (2h ago), not built; no daemon is running" in out
    assert "UTC: next 2026-03-11 at 2026-03-11 07:00 UTC" in out

    # A daemon heartbeating now: it is the one to build it, and its log has the error no row holds.
    store = Store(f"sqlite:///{tmp_path / 'digest.sqlite'}")
    try:
        store.acquire_lock("daemon", "host:1", now=datetime.now(UTC), stale_after=STALE_AFTER)
    finally:
        store.close()
    out = status(config, later)
    assert "not built; the daemon builds and sends it once it reaches the SMTP server" in out
    # The failed run itself, which no message records: kept in the database by the send that met it.
    assert "last failed run: " in out and "Cannot connect to the SMTP server 127.0.0.1:" in out, out
    assert "last delivery error: none recorded on a message" not in out
    # The relay back, a send gets through: the failed run is forgotten.
    async with SmtpServer() as smtp:
        config.write_text(config.read_text(encoding="utf-8").replace(f"port = {port}", f"port = {smtp.port}"))
        assert cli(config, "send", now=later).returncode == 0
    assert "last failed run" not in status(config, later)


async def test_status_shows_the_newest_day_and_every_open_edition_with_its_retries_and_last_error(
    tmp_path: Path, database: str | None
) -> None:
    """Yesterday's edition left open with a deferred message, today's too: status showed only the
    newest, and nothing of the other's pending rows."""
    yesterday = NOW - timedelta(days=1)
    async with FeedServer() as feeds, SmtpServer(refusing()) as smtp:
        url = feeds.serve("/news.xml", rss(3, when=yesterday - timedelta(hours=1)))
        config = write_config(
            tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=("reader0@example.org", BUSY), database=database
        )
        assert (await asyncio.to_thread(cli, config, "poll", now=yesterday - timedelta(minutes=5))).returncode == 0
        earlier = await asyncio.to_thread(cli, config, "send", now=yesterday)
        assert earlier.returncode == 4 and "edition 2026-03-09 UTC: 1 sent" in earlier.stdout, earlier.stderr
        feeds.serve("/news.xml", rss(6))  # three new items for today's edition
        assert (await asyncio.to_thread(poll, config)).returncode == 0
        today = await asyncio.to_thread(cli, config, "send")
        assert today.returncode == 4 and "1 deferred (pending rows remain)" in today.stdout, today.stderr
        assert "2026-03-09" not in today.stdout, "past its catch-up window: left, and said so in the log"

    out = status(config, NOW + timedelta(minutes=3))
    last = next(line for line in out.splitlines() if "UTC: last " in line)
    assert last.startswith("  UTC: last 2026-03-10 (open): 1 pending, 1 sent; next attempt 2026-03-10 09:"), out
    assert (
        "  UTC: open 2026-03-09 (open): 1 pending, 1 sent; past its catch-up window, so the daemon leaves its "
        "pending messages: `digest send --date 2026-03-09` sends them"
    ) in out
    assert "outbox: 2 pending, 2 sent (`digest outbox` names who failed or waits, and why)" in out
    assert "overdue" not in out and "missed" not in out
    error = next(line for line in out.splitlines() if line.startswith("last delivery error: "))
    assert f"{BUSY} (edition 2026-03-10 UTC, pending, 1 attempt): 451 4.3.0 try again later" in error


# --------------------------------------------------------------------------- who and why (findings 7, 8)


async def test_outbox_and_subscribers_show_name_who_failed_or_waits_and_what_the_server_said(
    tmp_path: Path, database: str | None
) -> None:
    async with FeedServer() as feeds, SmtpServer(refusing()) as smtp:
        url = feeds.serve("/news.xml", rss())
        config = write_config(
            tmp_path,
            feed_url=url,
            smtp_port=smtp.port,
            subscribers=("reader0@example.org", GONE, BUSY),
            database=database,
        )
        assert (await asyncio.to_thread(poll, config)).returncode == 0
        sent = await asyncio.to_thread(cli, config, "send")
    # Finding 8: the line after the counts says when the deferred row is retried and how; a failure
    # for good exits 3, so that `digest send || alert` alerts.
    assert sent.returncode == 3, sent.stderr
    counts, advice = sent.stdout.splitlines()
    assert counts == "edition 2026-03-10 UTC: 1 sent, 0 skipped, 1 failed, 1 deferred (pending rows remain)"
    assert advice.startswith("  1 message to retry at 2026-03-10 09:"), advice
    assert "the daemon (`digest run`) or any `digest send` from then on sends it while the edition is due" in advice
    assert "after that, `digest send --date 2026-03-10`); `digest send --retry-now` retries it at once" in advice
    assert "`digest outbox --pending` lists them" in advice

    later = NOW + timedelta(minutes=1)
    listed = cli(config, "outbox", now=later)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "edition 2026-03-10 UTC (open): 1 failed, 1 pending, 1 sent"
    assert f"  {GONE}  failed  attempts=1  never retried  reply: 550 5.2.1 mailbox disabled" in lines
    busy = next(line for line in lines if BUSY in line)
    assert busy.startswith(f"  {BUSY}  pending  attempts=1  next=2026-03-10 09:"), busy
    assert busy.endswith("reply: 451 4.3.0 try again later")
    assert "reader0" not in listed.stdout, "a sent row needs no one's attention"
    assert lines[-1] == "2 messages pending/sending/failed"

    failed_only = cli(config, "outbox", "--failed", now=later).stdout
    assert GONE in failed_only and BUSY not in failed_only
    pending_only = cli(config, "outbox", "--pending", "--date", "2026-03-10", now=later).stdout
    assert BUSY in pending_only and GONE not in pending_only
    assert "No edition of 2026-03-09 was built." in one_error(cli(config, "outbox", "--date", "2026-03-09", now=later))

    gone = cli(config, "subscribers", "show", GONE, now=later).stdout
    assert "strikes   1 of 3 (permanent SMTP failures; suspended at [smtp] suspend_after = 3)" in gone
    assert "failed    edition 2026-03-10 UTC at 2026-03-10 09:00 UTC: 550 5.2.1 mailbox disabled" in gone
    waiting = cli(config, "subscribers", "show", BUSY, now=later).stdout
    assert "strikes   0 of 3" in waiting
    deferred = next(line for line in waiting.splitlines() if line.startswith("deferred  "))
    assert deferred.startswith("deferred  edition 2026-03-10 UTC, attempts=1, next 2026-03-10 09:"), deferred
    assert deferred.endswith(": 451 4.3.0 try again later"), deferred

    # A 550 at RCPT is no bounce: none was received. The list says what it counts.
    roster = cli(config, "subscribers", "list", now=later).stdout
    assert "bounces=" not in roster
    assert next(line for line in roster.splitlines() if line.startswith(GONE)).endswith("smtp_failures=1/3")


async def test_an_address_with_a_line_break_is_listed_as_one_quoted_line(tmp_path: Path) -> None:
    """README (H18): a hand-edited address fails its own row and `status` names it; printed raw,
    its CR/LF would forge a line of the listing an operator (or a script) reads."""
    forged = "x@example.org\r\nBcc: evil@example.net"
    async with FeedServer() as feeds, SmtpServer() as smtp:
        config = write_config(tmp_path, feed_url=feeds.serve("/news.xml", rss()), smtp_port=smtp.port)
        assert cli(config, "subscribers", "add", "bad@example.org").returncode == 0
        with sqlite3.connect(tmp_path / "digest.sqlite") as db:
            db.execute("UPDATE subscribers SET email = ? WHERE email = 'bad@example.org'", (forged,))
        assert (await asyncio.to_thread(poll, config)).returncode == 0
        sent = await asyncio.to_thread(cli, config, "send")
        assert sent.returncode == 3 and "1 sent, 0 skipped, 1 failed" in sent.stdout, sent.stderr
    listed = cli(config, "outbox", "--failed").stdout
    assert f"  {forged!r}  failed  attempts=0  never retried  reply: " in listed
    assert "\nBcc:" not in listed and "\r" not in listed
    out = status(config, NOW)
    assert f"last delivery error: 2026-03-10 09:00 UTC, {forged!r} (edition 2026-03-10 UTC, failed" in out
    assert "\nBcc:" not in out


# --------------------------------------------------------------------------- what a silent worker holds


async def test_status_names_what_a_silent_worker_still_holds_and_when_it_is_taken_over(tmp_path: Path) -> None:
    """A worker killed outright keeps its feed claims and outbox rows until their leases run out
    and a live process claims them; status showed it only as "gone", and its rows nowhere."""
    async with FeedServer() as feeds, SmtpServer(refusing()) as smtp:
        config = write_config(
            tmp_path, feed_url=feeds.serve("/news.xml", rss()), smtp_port=smtp.port, subscribers=(BUSY,)
        )
        assert (await asyncio.to_thread(poll, config)).returncode == 0
        sent = await asyncio.to_thread(cli, config, "send")
        assert sent.returncode == 4 and "1 deferred" in sent.stdout, sent.stderr  # one pending row left

    store = Store(f"sqlite:///{tmp_path / 'digest.sqlite'}")
    try:
        real_now = store.database_now()
        store.register_worker("w1", host="hostA", pid=4242, version="0", worker_now=real_now, stale_after=STALE_AFTER)
        assert len(store.claim_feeds("w1", due_by=None, lease=timedelta(minutes=30), limit=10)) == 1
        (edition,) = store.list_editions()
        session = store.outbox_session("w1/send-1:abc")
        try:
            claimed = session.claim(edition.id, now=NOW, lease=timedelta(minutes=20), limit=10)
        finally:
            session.close()
        assert len(claimed) == 1
    finally:
        store.close()
    silent_since = (real_now - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(tmp_path / "digest.sqlite") as db:  # its heartbeats stopped five minutes ago
        db.execute("UPDATE workers SET heartbeat_at = ?, started_at = ?", (silent_since, silent_since))

    out = status(config, NOW)
    assert "workers: 0 alive, 1 gone" in out, out
    line = next(x for x in out.splitlines() if x.startswith("    held by w1"))
    until = (real_now + timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M UTC")
    assert line.startswith(
        "    held by w1 (hostA pid 4242), silent for 5m: 1 feeds and 1 outbox rows; "
        f"their lease runs out at {until} (in 2"
    ), line
    assert line.endswith("none is alive now)"), line

    # Leases run out: the rows are still held, now by nobody live, until the next claim.
    with sqlite3.connect(tmp_path / "digest.sqlite") as db:
        db.execute("UPDATE feeds SET lease_until = ?", (silent_since,))
        db.execute("UPDATE deliveries SET lease_until = ? WHERE status = 'sending'", (silent_since,))
    line = next(x for x in status(config, NOW).splitlines() if x.startswith("    held by w1"))
    assert f"their lease ran out at {silent_since[:16]} UTC; they are taken over by the next" in line, line


# --------------------------------------------------------------------------- why messages were skipped


async def test_send_says_why_each_skipped_message_was_skipped(tmp_path: Path) -> None:
    """`digest send` said "N skipped" and no more: an operator running it from cron could not tell
    a sports fan on a day without sport from a subscriber who left."""
    fan = '[[subscribers]]\nemail = "fan@example.org"\nsections = ["Sport"]\n'
    async with FeedServer() as feeds, SmtpServer(refusing()) as smtp:
        config = write_config(
            tmp_path,
            feed_url=feeds.serve("/news.xml", rss()),
            smtp_port=smtp.port,
            subscribers=("reader0@example.org", BUSY),
            tail=fan,
        )
        assert (await asyncio.to_thread(poll, config)).returncode == 0
        first = await asyncio.to_thread(cli, config, "send")
        assert first.returncode == 4, first.stderr
        assert (
            "edition 2026-03-10 UTC: 1 sent, 1 skipped (1 had no story in the sections they chose), 0 failed, "
            "1 deferred"
        ) in first.stdout, first.stdout
        # The deferred reader leaves the config before the next run: their row is skipped, and said why.
        text = config.read_text(encoding="utf-8")
        config.write_text(text.replace(f'[[subscribers]]\nemail = "{BUSY}"\n', ""), encoding="utf-8")
        later = await asyncio.to_thread(cli, config, "send", now=NOW + timedelta(minutes=30))
    assert later.returncode == 0, later.stderr
    assert (
        "edition 2026-03-10 UTC: 0 sent, 1 skipped (1 were removed from the config since the edition was built)"
    ) in later.stdout, later.stdout
