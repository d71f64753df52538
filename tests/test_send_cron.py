"""`digest send` as an operator's cron job (audit-send findings 8, 11, 12, 15).

Every test runs `python -m digest` as a real process on a real SQLite file, against a real aiosmtpd
relay on 127.0.0.1 that refuses, defers or sits on chosen messages, and a real feed server. What
is judged: the exit status and summary a cron job sees, what the relay received, what the outbox
holds. Waits are for events (a message held by the relay, a log line), never for a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from digestprocess import kill_sessions, launch
from httpservers import FeedServer
from smtpservers import Recorder, SmtpServer

DAY1 = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)  # send_at 07:00 UTC
DAY2 = DAY1 + timedelta(days=1)
GONE, BUSY = "gone@example.org", "busy@example.org"
HOLD_FOR = 600.0  # seconds the relay sits on a held message: far longer than any bound under test


def rss(now: datetime, tag: str) -> bytes:
    stamp = format_datetime(now - timedelta(hours=1))
    items = "".join(
        f"<item><title>Story {i} {tag}</title><link>https://news.example.org/{tag}/{i}</link>"
        f"<guid>https://news.example.org/{tag}/{i}</guid><pubDate>{stamp}</pubDate>"
        f"<description>About story {i}.</description></item>"
        for i in range(3)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Harbour News</title>'
        f"<link>https://news.example.org/</link><description>d</description>{items}</channel></rss>"
    ).encode()


class Relay(Recorder):
    """A relay that refuses chosen recipients at RCPT (`refuse`, changeable between runs) and sits on
    messages (after the DATA terminator, before its reply) while `holding` says so: the recipients in
    `hold`, or every message past the first `hold_after`."""

    def __init__(self, refuse: dict[str, str] | None = None) -> None:
        super().__init__()
        self.refuse = dict(refuse or {})
        self.hold: set[str] = set()
        self.hold_after: int | None = None
        self.holding = True
        self.held: list[str] = []  # recipients whose message the relay sat on
        self._lock = threading.Lock()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            self.rcpt_seen.append(address)
            return self.refuse[address]
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.keep(server, envelope)
        rcpt = envelope.rcpt_tos[0]
        with self._lock:
            sit = self.holding and (
                rcpt in self.hold or (self.hold_after is not None and len(self.messages) > self.hold_after)
            )
            if sit:
                self.held.append(rcpt)
        if sit:
            await asyncio.sleep(HOLD_FOR)
        return "250 2.0.0 OK queued"


@dataclass
class Proc:
    """A running `python -m digest` in a session of its own; stdout and stderr read as they come."""

    proc: asyncio.subprocess.Process
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def _read(self, stream: asyncio.StreamReader | None, into: list[str]) -> None:
        assert stream is not None
        while line := await stream.readline():
            into.append(line.decode(errors="replace").rstrip("\n"))

    def begin(self) -> Proc:
        self.readers = [
            asyncio.create_task(self._read(self.proc.stdout, self.out)),
            asyncio.create_task(self._read(self.proc.stderr, self.err)),
        ]
        return self

    @property
    def stdout(self) -> str:
        return "\n".join(self.out)

    @property
    def stderr(self) -> str:
        return "\n".join(self.err)

    async def exited(self, timeout: float = 120.0) -> int:
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"still running after {timeout} s:\n{self.stdout}\n{self.stderr}") from None
        await asyncio.gather(*self.readers)
        return code

    async def logged(self, text: str, timeout: float = 60.0) -> None:
        await until(lambda: any(text in line for line in self.err), f"the log line {text!r}", timeout, self)


async def until(what: Callable[[], bool], name: str, timeout: float = 60.0, proc: Proc | None = None) -> None:
    async def poll() -> None:
        while not what():
            if proc is not None and proc.proc.returncode is not None:
                raise AssertionError(f"exited ({proc.proc.returncode}) before {name}:\n{proc.stdout}\n{proc.stderr}")
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {name}" + (f":\n{proc.stderr}" if proc else "")) from None


class Site:
    """digest.toml and digest.sqlite in one folder, one feed, one relay."""

    def __init__(self, folder: Path, feed: FeedServer, relay: SmtpServer) -> None:
        self.folder, self.feed, self.relay = folder, feed, relay
        self.config, self.db = folder / "digest.toml", folder / "digest.sqlite"
        self.procs: list[Proc] = []

    def configure(
        self, subscribers: list[str], *, connections: int = 2, workers: int = 1, lease: str = "1m", extra: str = ""
    ) -> None:
        lines = [
            "[digest]",
            'timezone = "UTC"',
            'send_at = "07:00"',
            f'database = "sqlite:///{self.db}"',
            'base_url = "https://review.example"',
            "allow_private_addresses = true",
            'secret = "send-cron-test-secret-send-cron-test"',
            extra,
            "[smtp]",
            'host = "127.0.0.1"',
            f"port = {self.relay.port}",
            'sender = "Morning Review <review@review.example>"',
            "timeout = 10",
            f"connections = {connections}",
            f"workers = {workers}",
            f'claim_lease = "{lease}"',
            "[[feeds]]",
            f'url = "{self.feed.url("/news.xml")}"',
        ]
        for email in subscribers:
            lines += ["[[subscribers]]", f'email = "{email}"']
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")

    async def start(self, *args: str, now: datetime) -> Proc:
        # its own process group: a Ctrl-C or a kill -9 reaches it all
        proc = await launch(self.config, *args, env={"DIGEST_NOW": now.isoformat()}, own_session=True)
        started = Proc(proc).begin()
        self.procs.append(started)
        return started

    async def run(self, *args: str, now: datetime) -> Proc:
        proc = await self.start(*args, now=now)
        await proc.exited()
        return proc

    async def poll(self, now: datetime) -> None:
        done = await self.run("poll", now=now)
        assert done.proc.returncode == 0, done.stdout + done.stderr

    def rows(self) -> dict[tuple[str, str], tuple[str, int, int]]:
        """(edition day, email) -> (status, attempts, crashes) of every outbox row."""
        with contextlib.closing(sqlite3.connect(self.db, timeout=30)) as conn:
            return {
                (day, email): (status, attempts, crashes)
                for day, email, status, attempts, crashes in conn.execute(
                    "SELECT e.day, s.email, d.status, d.attempts, d.crashes FROM deliveries d"
                    " JOIN subscribers s ON s.id = d.subscriber_id JOIN editions e ON e.id = d.edition_id"
                )
            }

    def statuses(self) -> Counter[str]:
        return Counter(status for status, _, _ in self.rows().values())


@pytest.fixture
async def feed() -> AsyncIterator[FeedServer]:
    async with FeedServer() as srv:
        srv.serve("/news.xml", rss(DAY1, "day1"))
        yield srv


@contextlib.asynccontextmanager
async def site(tmp_path: Path, feed: FeedServer, relay: Relay) -> AsyncIterator[Site]:
    async with SmtpServer(relay) as smtp:
        s = Site(tmp_path, feed, smtp)
        try:
            yield s
        finally:
            await kill_sessions(p.proc for p in s.procs)


def readers(n: int) -> list[str]:
    return [f"reader{i:03d}@example.org" for i in range(n)]


def by_recipient(smtp: SmtpServer) -> dict[str, list[str]]:
    """recipient -> the Message-IDs the relay received for them, in order."""
    out: dict[str, list[str]] = {}
    for m in smtp.messages:
        out.setdefault(m.rcpt_tos[0], []).append(str(BytesHeaderParser().parsebytes(m.data)["Message-ID"]))
    return out


# --------------------------------------------------------------------------- exit status (finding 8)


async def test_the_exit_status_tells_a_failure_for_good_from_messages_left_to_retry(
    tmp_path: Path, feed: FeedServer
) -> None:
    relay = Relay(refuse={GONE: "550 5.1.1 <gone@example.org>: no such user", BUSY: "450 4.2.1 mailbox busy"})
    async with site(tmp_path, feed, relay) as s:
        s.configure([*readers(2), GONE, BUSY])
        await s.poll(DAY1)

        first = await s.run("send", now=DAY1 + timedelta(minutes=1))
        assert first.proc.returncode == 3, first.stdout + first.stderr  # a 5xx wins over the 4xx left to retry
        assert "edition 2026-03-10 UTC: 2 sent, 0 skipped, 1 failed, 1 deferred (pending rows remain)" in first.stdout
        assert "1 message to retry at 2026-03-10 07:06 UTC" in first.stdout, first.stdout
        assert "`digest send --retry-now` retries it at once" in first.stdout

        # Again a minute later: the deferred message waits for its retry time, as under the daemon;
        # nothing failed in this run, and a message is still left: 4.
        again = await s.run("send", now=DAY1 + timedelta(minutes=2))
        assert again.proc.returncode == 4, again.stdout + again.stderr
        assert "0 sent, 0 skipped, 0 failed, 0 deferred (pending rows remain)" in again.stdout
        assert relay.rcpt_seen.count(BUSY) == 1, "not retried before its time"

        # After its retry time the mailbox takes it: everything went out or failed before, so 0.
        del relay.refuse[BUSY]
        later = await s.run("send", now=DAY1 + timedelta(minutes=10))
        assert later.proc.returncode == 0, later.stdout + later.stderr
        assert "edition 2026-03-10 UTC: 1 sent, 0 skipped, 0 failed, 0 deferred (complete)" in later.stdout
        nothing = await s.run("send", now=DAY1 + timedelta(minutes=11))
        assert nothing.proc.returncode == 0 and "0 sent, 0 skipped, 0 failed, 0 deferred (complete)" in nothing.stdout

    assert sorted(by_recipient(s.relay)) == sorted([*readers(2), BUSY])
    assert s.rows()[("2026-03-10", GONE)][0] == "failed"


async def test_M2_a_4xx_alone_exits_4_and_retry_now_sends_it_at_once(tmp_path: Path, feed: FeedServer) -> None:
    relay = Relay(refuse={BUSY: "450 4.2.1 mailbox busy"})
    async with site(tmp_path, feed, relay) as s:
        s.configure([*readers(2), BUSY])
        await s.poll(DAY1)
        first = await s.run("send", now=DAY1 + timedelta(minutes=1))
        assert first.proc.returncode == 4, first.stdout + first.stderr
        assert "2 sent, 0 skipped, 0 failed, 1 deferred (pending rows remain)" in first.stdout

        del relay.refuse[BUSY]  # the operator fixed what made it wait, and does not want to
        now = await s.run("send", "--retry-now", now=DAY1 + timedelta(minutes=2))
        assert now.proc.returncode == 0, now.stdout + now.stderr
        assert "1 sent, 0 skipped, 0 failed, 0 deferred (complete)" in now.stdout
    assert len(by_recipient(s.relay)[BUSY]) == 1


async def test_a_5xx_alone_exits_3_once_and_a_rerun_with_nothing_to_do_exits_0(
    tmp_path: Path, feed: FeedServer
) -> None:
    relay = Relay(refuse={GONE: "550 5.1.1 <gone@example.org>: no such user"})
    async with site(tmp_path, feed, relay) as s:
        s.configure([*readers(2), GONE])
        await s.poll(DAY1)
        first = await s.run("send", now=DAY1 + timedelta(minutes=1))
        assert first.proc.returncode == 3, first.stdout + first.stderr
        assert "2 sent, 0 skipped, 1 failed, 0 deferred (complete)" in first.stdout
        again = await s.run("send", now=DAY1 + timedelta(minutes=2))
        assert again.proc.returncode == 0, again.stdout + again.stderr


def test_send_help_states_every_exit_status() -> None:
    from click.testing import CliRunner

    from digest.cli import main

    text = CliRunner().invoke(main, ["send", "--help"]).output
    for line in ("0  every message went out", "1  an error stopped the run", "3  a message failed for good"):
        assert line in text, text
    assert "4  messages are left to send" in text and "--retry-now" in text


# --------------------------------------------------------------------------- earlier editions (finding 8)


async def test_M2_a_plain_send_retries_an_earlier_editions_due_messages_within_catch_up(
    tmp_path: Path, feed: FeedServer
) -> None:
    relay = Relay(refuse={BUSY: "451 4.3.0 try again later"})
    async with site(tmp_path, feed, relay) as s:
        s.configure([*readers(2), BUSY], extra='catch_up = "30h"')
        await s.poll(DAY1)
        first = await s.run("send", now=DAY1 + timedelta(minutes=1))
        assert first.proc.returncode == 4, first.stdout + first.stderr

        del relay.refuse[BUSY]
        feed.serve("/news.xml", rss(DAY2, "day2"))
        await s.poll(DAY2)
        today = await s.run("send", now=DAY2 + timedelta(minutes=1))  # cron's next morning
        assert today.proc.returncode == 0, today.stdout + today.stderr
        lines = today.stdout.splitlines()
        assert "edition 2026-03-11 UTC: 3 sent, 0 skipped, 0 failed, 0 deferred (complete)" in lines
        assert (
            "edition 2026-03-10 UTC (earlier, messages due for a retry): 1 sent, 0 skipped, 0 failed, 0 deferred "
            "(complete)"
        ) in lines, today.stdout
    assert len(by_recipient(s.relay)[BUSY]) == 2, "yesterday's edition and today's"
    assert set(s.statuses()) == {"sent"}


async def test_an_earlier_edition_past_catch_up_is_named_and_left_and_date_sends_it(
    tmp_path: Path, feed: FeedServer
) -> None:
    relay = Relay(refuse={BUSY: "451 4.3.0 try again later"})
    async with site(tmp_path, feed, relay) as s:
        s.configure([*readers(2), BUSY])  # catch_up unset: an edition goes out on its own day only (C1)
        await s.poll(DAY1)
        assert (await s.run("send", now=DAY1 + timedelta(minutes=1))).proc.returncode == 4

        del relay.refuse[BUSY]
        feed.serve("/news.xml", rss(DAY2, "day2"))
        await s.poll(DAY2)
        today = await s.run("send", now=DAY2 + timedelta(minutes=1))
        assert today.proc.returncode == 0, today.stdout + today.stderr  # today's edition went out whole
        assert "2026-03-10" not in today.stdout
        assert (
            "edition=2026-03-10/UTC has pending messages but is past its catch-up window ([digest] catch_up); "
            "not sent (`digest send --date 2026-03-10` sends them by hand)"
        ) in today.stderr
        assert s.rows()[("2026-03-10", BUSY)][0] == "pending"

        # The operator does as told: `--date` sends a built edition's messages, whatever its day.
        by_hand = await s.run("send", "--date", "2026-03-10", now=DAY2 + timedelta(minutes=2))
        assert by_hand.proc.returncode == 0, by_hand.stdout + by_hand.stderr
        assert "edition 2026-03-10 UTC: 1 sent, 0 skipped, 0 failed, 0 deferred (complete)" in by_hand.stdout
    assert set(s.statuses()) == {"sent"}


# --------------------------------------------------------------------------- interrupts (finding 11, S4)


async def test_S4_ctrl_c_while_the_relay_sits_on_messages_stops_within_the_bound_in_every_sending_process(
    tmp_path: Path, feed: FeedServer
) -> None:
    """Two sending processes, the relay sitting on every message past the 150th for ten minutes:
    one Ctrl-C (SIGINT to the whole process group, as a terminal sends it) and the run ends without
    those replies, both processes' messages given up and named; none counts a crash, and a re-run
    sends them again, with their Message-ID."""
    relay = Relay()
    relay.hold_after = 150
    subscribers = readers(600)
    async with site(tmp_path, feed, relay) as s:
        s.configure(subscribers, connections=4, workers=2)
        await s.poll(DAY1)
        run = await s.start("-v", "send", now=DAY1 + timedelta(minutes=1))
        await until(lambda: len(relay.held) == 4, "the relay to sit on a message on each connection", proc=run)
        assert sum("sending process" in line for line in run.err) == 2, run.stderr  # both processes send
        os.killpg(run.proc.pid, signal.SIGINT)
        code = await run.exited()
        assert code == 4, run.stdout + run.stderr
        held = sorted(relay.held)
        assert f"stopped without the SMTP server's reply to 4 messages ({', '.join(held)})" in run.stdout, run.stdout
        rows = s.rows()
        assert {rows[("2026-03-10", email)] for email in held} == {("pending", 0, 0)}, "no attempt, no crash"
        assert Counter(status for status, _, _ in rows.values()) == {
            "sent": len(relay.messages) - 4,
            "pending": 600 - len(relay.messages) + 4,
        }, "every message the relay answered is recorded; nothing is left claimed"

        relay.holding = False
        rerun = await s.run("send", now=DAY1 + timedelta(minutes=2))
        assert rerun.proc.returncode == 0, rerun.stdout + rerun.stderr
        assert "(complete)" in rerun.stdout
    got = by_recipient(s.relay)
    assert sorted(got) == sorted(subscribers)
    assert {email: ids for email, ids in got.items() if len(ids) > 1} == {
        email: [got[email][0]] * 2 for email in held
    }, "only the messages given up went twice, each with its own Message-ID"


async def test_S4_a_second_ctrl_c_stops_at_once_and_names_the_message_it_gave_up(
    tmp_path: Path, feed: FeedServer
) -> None:
    victim = readers(20)[4]
    relay = Relay()
    relay.hold = {victim}
    async with site(tmp_path, feed, relay) as s:
        s.configure(readers(20))
        await s.poll(DAY1)
        run = await s.start("send", now=DAY1 + timedelta(minutes=1))
        await until(lambda: relay.held == [victim], "the relay to sit on one message", proc=run)
        run.proc.send_signal(signal.SIGINT)
        await run.logged("stopping: no new message starts")
        run.proc.send_signal(signal.SIGINT)
        code = await run.exited()
        assert code == 4, run.stdout + run.stderr
        assert "stopping at once" in run.stderr
        assert (
            f"  stopped without the SMTP server's reply to 1 message ({victim}): it may or may not have reached "
            "its subscriber; pending again, the next `digest send` sends it, with the same Message-ID"
        ) in run.out, run.stdout
        assert s.rows()[("2026-03-10", victim)] == ("pending", 0, 0)
        assert "Traceback" not in run.stderr


# --------------------------------------------------------------------------- a dead sender's lease (finding 12)


async def test_a_rerun_after_a_kill_says_it_waits_for_the_dead_senders_lease_and_whose_it_is(
    tmp_path: Path, feed: FeedServer
) -> None:
    victim = readers(10)[3]
    relay = Relay()
    relay.hold = {victim}
    async with site(tmp_path, feed, relay) as s:
        s.configure(readers(10), lease="8s")
        await s.poll(DAY1)
        killed = await s.start("send", now=DAY1 + timedelta(minutes=1))
        await until(lambda: relay.held == [victim], "the relay to sit on one message", proc=killed)
        os.killpg(killed.proc.pid, signal.SIGKILL)
        await killed.exited()  # reaped: a zombie would still answer to its pid

        relay.holding = False
        rerun = await s.run("send", now=DAY1 + timedelta(minutes=2))
        assert rerun.proc.returncode == 0, rerun.stdout + rerun.stderr
    waiting = [i for i, line in enumerate(rerun.err) if "waiting up to" in line]
    assert len(waiting) == 1, rerun.stderr
    line = rerun.err[waiting[0]]
    # The victim's row, and any other the killed run had claimed and not yet recorded.
    assert re.search(r"waiting up to \d+ s for \d+ messages? held by a sender that stopped", line), line
    assert f"(`digest send`, pid {killed.proc.pid} on host {socket.gethostname()}, no longer running)" in line, line
    taken = next(i for i, line in enumerate(rerun.err) if "pending again" in line and "held by a sender" in line)
    assert waiting[0] < taken, "said before the wait, not after it"
    assert "(complete)" in rerun.stdout
    assert len(by_recipient(s.relay)[victim]) == 2
