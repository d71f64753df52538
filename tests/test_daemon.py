"""The daemon never misses and never doubles an edition (reliability.md F1-F8, C1-C8, S1, S4, S6).

Most tests run the real `digest run` as a subprocess against a feed server and an aiosmtpd server
on 127.0.0.1 and a real SQLite file. DIGEST_NOW sets the daemon's clock a few seconds before (or
after) send_at; DIGEST_DAEMON_TICK makes its poll and reconcile passes sub-second. The DST tests
call the reconciler in-process with a fake clock, minute by minute over the change.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import signal
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dbfaults import database_that_goes_away
from digestprocess import DigestProcess, slowness
from httpservers import FeedServer
from ports import free_port
from smtpservers import Received, Scripted, SmtpServer

from digest import config as cfg
from digest import schedule
from digest.config import DigestSettings
from digest.daemon import Reconciler, Ticks, run_daemon
from digest.deliver import FileTransport
from digest.errors import LockHeldError
from digest.pipeline.send import edition_due, still_fresh
from digest.status import SEND_FAILURE_META
from digest.store import PENDING, SENT, Store

ROOT = Path(__file__).resolve().parents[1]
DAY = date(2026, 6, 10)
SEND_AT = "07:00"
TICK = "0.3"
NOTHING_DUE = ": nothing due"  # what a reconcile pass that sends nothing logs (at debug, numbered)


def at(day: date, hhmm: str, tz: str = "UTC", seconds: int = 0) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return datetime.combine(day, time(h, m), tzinfo=ZoneInfo(tz)) + timedelta(seconds=seconds)


def rss(now: datetime, n: int = 3) -> bytes:
    stamp = (now - timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    items = "".join(
        f"<item><title>Story {i}</title><link>https://news.example.org/{i}</link>"
        f"<guid>https://news.example.org/{i}</guid><category>World</category>"
        f"<pubDate>{stamp}</pubDate><description>Body {i}</description></item>"
        for i in range(n)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Test news</title>'
        f"<link>https://news.example.org/</link>{items}</channel></rss>"
    ).encode()


def write_config(
    folder: Path,
    *,
    feed_url: str,
    smtp_port: int,
    subscribers: int,
    timezone: str = "UTC",
    poll_interval: str = "15m",
    connections: int = 2,
    database: str | None = None,
    send_at: str = SEND_AT,
) -> Path:
    lines = [
        "[digest]",
        f'timezone = "{timezone}"',
        f'send_at = "{send_at}"',
        f'database = "{database or "sqlite:///" + str(folder / "digest.sqlite")}"',
        "allow_private_addresses = true",
        f'poll_interval = "{poll_interval}"',
        "[smtp]",
        'host = "127.0.0.1"',
        f"port = {smtp_port}",
        'sender = "Press Review <digest@example.org>"',
        f"connections = {connections}",
        "timeout = 10",
        'claim_lease = "2s"',  # a killed daemon's claims are taken over 2 s later, not a minute
        "[[feeds]]",
        f'url = "{feed_url}"',
    ]
    for i in range(subscribers):
        lines += ["[[subscribers]]", f'email = "reader{i:03d}@example.org"']
    path = folder / "digest.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class DaemonProcess(DigestProcess):
    """`python -m digest --config CFG --debug run` with its clock at `now`; stderr is collected line by line."""

    # --debug logs every reconcile pass: tests wait for passes, not for time.
    def __init__(self, config: Path, now: datetime, level: str = "--debug") -> None:
        super().__init__("daemon")
        self.config, self.now, self.level = config, now, level

    async def start(self) -> DaemonProcess:
        env = {"DIGEST_NOW": self.now.isoformat(), "DIGEST_DAEMON_TICK": TICK}
        self.started = datetime.now(UTC)
        await self.spawn(self.config, [self.level, "run"], env)
        return self

    def clock_now(self) -> datetime:
        """Now on the daemon's clock, which started at `now` (DIGEST_NOW) when it was spawned."""
        return self.now + (datetime.now(UTC) - self.started)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        return await super().stop(sig, timeout)


@contextlib.asynccontextmanager
async def daemon(config: Path, now: datetime, level: str = "--debug") -> AsyncIterator[DaemonProcess]:
    proc = await DaemonProcess(config, now, level).start()
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.returncode is None:
            proc.proc.kill()
            await proc.proc.wait()


async def until(predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def some_ticks(d: DaemonProcess, n: int = 3, timeout: float = 30.0) -> None:
    """Wait for the daemon to make `n` more reconcile passes that found nothing due: passes in which
    it could have misbehaved (sent again, built another edition). Counted in its debug log."""
    target = d.log.count(NOTHING_DUE) + n
    await until(lambda: d.log.count(NOTHING_DUE) >= target, f"{n} more reconcile passes", timeout)


def by_recipient(messages: list[Received]) -> dict[str, list[str]]:
    """recipient -> the Message-IDs they received, in order."""
    out: dict[str, list[str]] = defaultdict(list)
    for m in messages:
        msg = email.message_from_bytes(m.data)
        out[m.rcpt_tos[0]].append(str(msg["Message-ID"]))
    return out


def open_store(config: Path) -> Store:
    return Store(f"sqlite:///{config.parent / 'digest.sqlite'}")


@pytest.fixture
async def feed() -> AsyncIterator[FeedServer]:
    async with FeedServer() as srv:
        yield srv


# --------------------------------------------------------------------------- editions on time, once


async def test_an_edition_goes_out_at_send_at_and_nothing_more_on_later_ticks(tmp_path: Path, feed: FeedServer) -> None:
    # The daemon's clock starts at `start` when its process starts, and must still be before send_at
    # when the daemon is up and arms the edition's timer: about 3 s on an idle machine, over 6 s at a
    # load of 6 a core, which once left it starting past send_at, sending at its first pass, and never
    # arming that day (the wait for "next at" timed out). The head start grows with the load.
    head_start = 6.0 * slowness()
    start = at(DAY, SEND_AT) - timedelta(seconds=head_start)
    url = feed.serve("/news.xml", rss(start))
    async with (
        SmtpServer() as smtp,
        daemon(write_config(tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=3), start) as d,
    ):
        # armed before send_at: this is the on-time path
        await d.wait_for(f"edition={DAY}/UTC next at", timeout=max(20.0, head_start + 10))
        assert smtp.messages == []
        await until(lambda: len(smtp.messages) >= 3, "three messages", timeout=head_start + 30)
        await d.wait_for(f"edition={DAY + timedelta(days=1)}/UTC next at", timeout=20 * slowness())
        await some_ticks(d)
        assert await d.stop() == 0
        got = by_recipient(smtp.messages)

    assert sorted(got) == [f"reader{i:03d}@example.org" for i in range(3)]
    assert all(len(ids) == 1 for ids in got.values())
    assert f"edition={DAY}/UTC due (send_at 07:00 local, on time)" in d.log
    store = open_store(tmp_path / "digest.toml")
    (edition,) = store.list_editions()
    assert edition.day == DAY and edition.status == "complete"
    assert edition.created_at >= at(DAY, SEND_AT)  # not a moment early
    assert store.lock_holder("daemon") is None  # released on a clean exit


async def test_C1_an_edition_missed_while_down_goes_out_once_on_start_and_not_again(
    tmp_path: Path, feed: FeedServer
) -> None:
    start = at(DAY, "09:10")
    url = feed.serve("/news.xml", rss(start))
    async with SmtpServer() as smtp:
        config = write_config(tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=3)
        async with daemon(config, start) as d:
            await until(lambda: len(smtp.messages) >= 3, "the catch-up edition")
            assert await d.stop() == 0
        assert "catch-up, 2h10m late" in d.log

        async with daemon(config, at(DAY, "11:00")) as again:  # restarted later the same day
            await again.wait_for("daemon running")
            await again.wait_for(f"edition={DAY + timedelta(days=1)}/UTC next at")
            await some_ticks(again)
            assert await again.stop() == 0
        got = by_recipient(smtp.messages)

    assert len(smtp.messages) == 3 and all(len(ids) == 1 for ids in got.values())
    assert [e.day for e in open_store(config).list_editions()] == [DAY]


async def test_a_run_the_smtp_server_fails_is_kept_for_status_while_the_daemon_waits(
    tmp_path: Path, feed: FeedServer
) -> None:
    """Before, an outage was only in the daemon's log: `digest status` said nothing of it."""
    start = at(DAY, "09:10")
    config = write_config(tmp_path, feed_url=feed.serve("/news.xml", rss(start)), smtp_port=free_port(), subscribers=2)
    async with daemon(config, start) as d:
        await d.wait_for("Next attempt in")
        store = open_store(config)
        try:
            await until(lambda: bool(store.get_meta(SEND_FAILURE_META)), "the failed run in the database")
            recorded = store.get_meta(SEND_FAILURE_META) or ""
        finally:
            store.close()
        assert "Cannot connect to the SMTP server 127.0.0.1:" in recorded
        assert await d.stop() == 0


async def test_C2_three_days_down_gives_at_most_one_catch_up_edition(tmp_path: Path, feed: FeedServer) -> None:
    url = feed.serve("/news.xml", rss(at(DAY, "09:10")))
    async with SmtpServer() as smtp:
        config = write_config(tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=2)
        async with daemon(config, at(DAY, "09:10")) as d:
            await until(lambda: len(smtp.messages) >= 2, "the first edition")
            assert await d.stop() == 0

        # Down until three days later, before that day's send_at: the missed days are stale (C1).
        later = DAY + timedelta(days=3)
        feed.serve("/news.xml", rss(at(later, "05:00"), n=5))
        async with daemon(config, at(later, "05:00")) as d:
            await d.wait_for(f"edition={later}/UTC next at")
            await some_ticks(d)
            assert await d.stop() == 0
        assert len(smtp.messages) == 2

        async with daemon(config, at(later, "07:30")) as d:  # past send_at: that day's edition, once
            await until(lambda: len(smtp.messages) >= 4, "the catch-up edition")
            await d.wait_for(f"edition={later + timedelta(days=1)}/UTC next at")
            await some_ticks(d)
            assert await d.stop() == 0

    assert len(smtp.messages) == 4
    assert sorted(e.day for e in open_store(config).list_editions()) == [DAY, later]


# --------------------------------------------------------------------------- one daemon, clean stops, crashes


async def test_S6_a_second_daemon_on_the_same_database_refuses_naming_the_holder(
    tmp_path: Path, feed: FeedServer
) -> None:
    url = feed.serve("/news.xml", rss(at(DAY, "05:00")))
    config = write_config(tmp_path, feed_url=url, smtp_port=9, subscribers=1)  # nothing is due: no SMTP
    async with daemon(config, at(DAY, "05:00")) as first:
        await first.wait_for("daemon running")
        second = await DaemonProcess(config, at(DAY, "05:00"), level="-v").start()  # errors as users see them
        assert second.proc is not None
        rc = await asyncio.wait_for(second.proc.wait(), 30)
        assert second._reader is not None
        await second._reader
        assert first.proc is not None and first.proc.returncode is None  # the first one carries on
        assert await first.stop() == 0

    assert rc == 1
    assert f"{socket.gethostname()}:{first.proc.pid}" in second.log
    assert "error: Another digest daemon" in second.log


async def test_S4_sigterm_during_a_send_records_messages_in_flight_and_a_restart_completes(
    tmp_path: Path, feed: FeedServer
) -> None:
    start = at(DAY, "07:30")
    url = feed.serve("/news.xml", rss(start))
    async with SmtpServer(Scripted(stall=0.05)) as smtp:
        config = write_config(tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=80)
        async with daemon(config, start) as d:
            await until(lambda: len(smtp.messages) >= 10, "the send to start")
            assert await d.stop(signal.SIGTERM, timeout=30) == 0  # within run_daemon's 30 s grace
        received = len(smtp.messages)
        store = open_store(config)
        (edition,) = store.list_editions()
        counts = store.delivery_counts(edition.id)
        # Every message the server took was recorded; the edition is not marked finished (listmonk#2278).
        assert counts.get(SENT) == received
        assert counts.get(PENDING, 0) == 80 - received > 0
        assert edition.status == "open"

        async with daemon(config, start + timedelta(minutes=5)) as d:
            await until(lambda: len(by_recipient(smtp.messages)) >= 80, "the rest of the edition")
            await until(lambda: store.list_editions()[0].status == "complete", "the edition to complete")
            assert await d.stop() == 0
        assert "resuming its pending messages" in d.log

    got = by_recipient(smtp.messages)
    assert len(got) == 80 and all(len(ids) == 1 for ids in got.values())


async def test_the_daemon_sends_with_the_same_sending_processes_as_digest_send(
    tmp_path: Path, feed: FeedServer
) -> None:
    start = at(DAY, "07:05")
    url = feed.serve("/news.xml", rss(start))
    async with SmtpServer() as smtp:
        config = write_config(tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=1000, connections=4)
        config.write_text(config.read_text(encoding="utf-8").replace("[smtp]\n", "[smtp]\nworkers = 2\n"), "utf-8")
        async with daemon(config, start) as d:
            await until(lambda: len(smtp.messages) >= 1000, "every subscriber", timeout=90)
            await some_ticks(d, 1)
            assert await d.stop() == 0
    # pipeline/workers.py announces each sending process: this one and one it started.
    assert d.log.count("sending process") == 2, d.log
    got = by_recipient(smtp.messages)
    assert len(got) == 1000 and all(len(ids) == 1 for ids in got.values())
    assert open_store(config).delivery_counts() == {SENT: 1000}


async def test_S1_kill_9_mid_send_then_restart_reaches_everyone_with_only_same_id_duplicates(
    tmp_path: Path, feed: FeedServer
) -> None:
    start = at(DAY, "07:05")
    url = feed.serve("/news.xml", rss(start))
    async with SmtpServer(Scripted(stall=0.01)) as smtp:
        config = write_config(tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=200, connections=4)
        async with daemon(config, start) as d:
            await until(lambda: len(smtp.messages) >= 40, "the send to be under way")
            assert await d.stop(signal.SIGKILL) == -signal.SIGKILL
        assert len(smtp.messages) < 200, "the kill came too late to test anything"

        # The dead daemon's lock is taken over at once (same host, no such pid).
        async with daemon(config, start + timedelta(seconds=30)) as d:
            await until(lambda: len(by_recipient(smtp.messages)) >= 200, "every subscriber", timeout=40)
            store = open_store(config)
            await until(lambda: store.list_editions()[0].status == "complete", "the edition to complete")
            assert await d.stop() == 0
        assert "is gone (no such process); taking over" in d.log

    got = by_recipient(smtp.messages)
    assert len(got) == 200
    duplicates = sum(len(ids) - 1 for ids in got.values())
    assert duplicates <= 4  # at most the messages in flight on the 4 connections at the kill
    assert all(len(set(ids)) == 1 for ids in got.values())  # a re-send is the same message (A8)
    assert store.delivery_counts() == {SENT: 200}


async def test_C4_a_poll_cycle_longer_than_its_interval_never_overlaps(tmp_path: Path, feed: FeedServer) -> None:
    # The feed is due every second and takes two to answer; the poll job ticks every 0.3 s.
    url = feed.serve("/news.xml", rss(at(DAY, "12:00")), delay=2.0)
    config = write_config(tmp_path, feed_url=url, smtp_port=9, subscribers=0, poll_interval="1s")
    async with daemon(config, at(DAY, "12:00"), level="-v") as d:  # the log as operators read it
        await d.wait_for("daemon running", timeout=30)
        await d.wait_for("job=poll still running", timeout=30)
        await until(lambda: len(feed.requests) >= 2, "a second poll of the slow feed")
        assert await d.stop() == 0
    assert feed.max_in_flight == 1
    # said once, in digest's words: APScheduler's own warning of the same skip wrote it twice
    assert "maximum number of running instances reached" not in d.log


async def test_C5_restarted_ten_times_across_send_at_every_subscriber_gets_one_message(
    tmp_path: Path, feed: FeedServer
) -> None:
    # Jobs live in memory (no persistent job store): each start arms its own timers from the
    # database's state. Ten starts and stops before, at and during the send must add up to one
    # edition built once and one message per subscriber: no job fires twice, none is lost.
    start = at(DAY, SEND_AT, seconds=-8)
    url = feed.serve("/news.xml", rss(start))
    subscribers = 240
    async with SmtpServer(Scripted(stall=0.02)) as smtp:  # ~2.4 s of sending on two connections
        config = write_config(tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=subscribers)
        store = open_store(config)
        logs: list[str] = []
        for k in range(10):
            now = start + timedelta(seconds=4 * k)  # two starts before send_at, then during and after the send
            async with daemon(config, now) as d:
                await d.wait_for("daemon running", timeout=30)
                if now < at(DAY, SEND_AT):
                    await d.wait_for(f"edition={DAY}/UTC next at")  # armed, then stopped before it fires
                elif k == 9:  # the last start finishes whatever is left and arms the next day
                    await d.wait_for(f"edition={DAY + timedelta(days=1)}/UTC next at", timeout=30)
                    await some_ticks(d, 2)
                elif len(smtp.messages) < subscribers:
                    more = min(len(smtp.messages) + 30, subscribers)
                    await until(lambda n=more: len(smtp.messages) >= n, "more of the send")  # type: ignore[misc]
                else:
                    await some_ticks(d, 2)
                assert await d.stop(signal.SIGTERM, timeout=30) == 0
            logs.append(d.log)
        editions = store.list_editions()

    got = by_recipient(smtp.messages)
    assert len(got) == subscribers and all(len(ids) == 1 for ids in got.values()), "a lost or doubled message"
    assert [(e.day, e.status) for e in editions] == [(DAY, "complete")]
    assert sum(log.count(f"edition={DAY}/UTC built") for log in logs) == 1
    assert sum("resuming its pending messages" in log for log in logs) >= 1, "no restart fell within the send"
    for log in logs:  # each start arms each day's timer once, however many passes it made
        armed = [line.split(" next at ")[0] for line in log.splitlines() if " next at " in line]
        assert len(armed) == len(set(armed)), log


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_C8_the_database_unavailable_at_the_fire_time_is_logged_retried_and_sent_once(
    tmp_path: Path, feed: FeedServer, backend: str
) -> None:
    # SQLite: another process holds the write lock; PostgreSQL: the server goes away (connections
    # cut, then refused). On SQLite the daemon's clock is set 5 s before send_at; on PostgreSQL
    # `digest run` is a worker, which checks its clock against the server's, so it runs on the
    # real clock and send_at is the next whole minute (the test waits up to a minute for it).
    if backend == "sqlite":
        fire = at(DAY, SEND_AT)
        start = fire - timedelta(seconds=5)
    else:
        start = datetime.now(UTC)
        fire = (start + timedelta(seconds=70)).replace(second=0, microsecond=0)
    day, send_at = fire.date(), fire.strftime("%H:%M")
    url = feed.serve("/news.xml", rss(start))
    async with SmtpServer() as smtp, database_that_goes_away(backend, tmp_path) as (database, available):
        config = write_config(
            tmp_path, feed_url=url, smtp_port=smtp.port, subscribers=20, database=database, send_at=send_at
        )
        async with daemon(config, start) as d:
            await d.wait_for(f"edition={day}/UTC next at", timeout=30)
            await asyncio.sleep(max(0.0, (fire - timedelta(seconds=3) - d.clock_now()).total_seconds()))
            await available(False)  # from before the fire time ...
            failing = len(d.lines)
            await asyncio.sleep(8)  # ... to well after it
            assert smtp.messages == []
            down = "\n".join(d.lines[failing:])
            await available(True)
            await until(lambda: len(smtp.messages) >= 20, "the edition once the database is back")
            await d.wait_for(f"edition={day + timedelta(days=1)}/UTC next at")
            await some_ticks(d, 3)
            assert await d.stop() == 0

    got = by_recipient(smtp.messages)
    assert len(got) == 20 and all(len(ids) == 1 for ids in got.values())
    assert d.log.count(f"edition={day}/UTC built") == 1
    # Logged as what it is, in one line an operator can act on, and retried: no traceback.
    assert "reconcile: The database" in down and "the next pass tries again" in down, down
    assert "Traceback" not in d.log, d.log


# --------------------------------------------------------------------------- DST and clock steps (in-process)


def settings_for(tz: str, send_at: str, folder: Path, *, catch_up: str | None = None) -> cfg.Settings:
    digest: dict[str, Any] = {"timezone": tz, "send_at": send_at, "database": f"sqlite:///{folder / 'd.sqlite'}"}
    if catch_up:
        digest["catch_up"] = catch_up
    return cfg.from_mapping({"digest": digest, "subscribers": [{"email": "reader@example.org"}]}, env={})


@dataclass
class FakeClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


def make_reconciler(settings: cfg.Settings, folder: Path, clock: FakeClock) -> tuple[Reconciler, Store]:
    store = Store(settings.database_url)
    store.sync_subscribers(settings.subscribers, now=clock.now)
    return Reconciler(settings, store, clock, lambda smtp: FileTransport(folder / "out")), store


DST_DAYS = [
    ("Europe/Paris", date(2026, 3, 29), "02:30"),  # 02:00 -> 03:00: 02:30 does not exist
    ("Europe/Paris", date(2026, 10, 25), "02:30"),  # 03:00 -> 02:00: 02:30 happens twice
    ("America/New_York", date(2026, 3, 8), "02:30"),
    ("America/New_York", date(2026, 11, 1), "01:30"),  # 02:00 -> 01:00: 01:30 happens twice
]


def local(day: date, hhmm: str, tz: str) -> datetime:
    return at(day, hhmm, tz).astimezone(UTC)


@pytest.mark.parametrize(("tz", "day", "send_at"), DST_DAYS, ids=[f"{z}-{d}" for z, d, _ in DST_DAYS])
def test_C6_the_catch_up_rule_gives_one_edition_per_local_date_minute_by_minute(
    tz: str, day: date, send_at: str
) -> None:
    digest = DigestSettings(timezone=tz, send_at=cfg.check_hhmm("send_at", send_at))
    now, end = local(day - timedelta(days=1), "00:00", tz), local(day + timedelta(days=2), "00:00", tz)
    sent: list[tuple[date, datetime]] = []
    while now < end:
        due = edition_due(now, digest, tz, last_day=sent[-1][0] if sent else None)
        if due is not None:
            sent.append((due, now))
        now += timedelta(minutes=1)
    assert [d for d, _ in sent] == [day - timedelta(days=1), day, day + timedelta(days=1)]
    for d, when in sent:  # each in the minute of its one instant (the first one in a repeated hour)
        instant = schedule.edition_instant(d, digest.send_at, tz)
        assert instant <= when < instant + timedelta(minutes=1)


@pytest.mark.parametrize(("tz", "day", "send_at"), DST_DAYS, ids=[f"{z}-{d}" for z, d, _ in DST_DAYS])
async def test_C6_the_reconciler_builds_exactly_one_edition_per_local_date_across_a_dst_change(
    tmp_path: Path, tz: str, day: date, send_at: str
) -> None:
    settings = settings_for(tz, send_at, tmp_path)
    clock = FakeClock(local(day - timedelta(days=1), "00:00", tz))
    reconciler, store = make_reconciler(settings, tmp_path, clock)
    # Minute by minute through the night of the change (skipped or repeated hour and the send time),
    # every 20 minutes elsewhere: a store-backed pass costs a few milliseconds.
    night = (local(day, "00:00", tz), local(day, "05:00", tz))
    end = local(day + timedelta(days=1), "12:00", tz)
    while clock.now < end:
        await reconciler.run()
        clock.now += timedelta(minutes=1 if night[0] <= clock.now < night[1] else 20)

    editions = sorted(store.list_editions(), key=lambda e: e.day)
    assert [e.day for e in editions] == [day - timedelta(days=1), day, day + timedelta(days=1)]
    for e in editions:
        instant = schedule.edition_instant(e.day, settings.digest.send_at, tz)
        assert instant <= e.created_at < instant + timedelta(minutes=1 if e.day == day else 20)


async def test_C7_a_wall_clock_step_back_or_forward_never_doubles_an_edition(tmp_path: Path) -> None:
    settings = settings_for("Europe/Moscow", "07:00", tmp_path)
    clock = FakeClock(at(DAY, "07:00", "Europe/Moscow", seconds=30).astimezone(UTC))
    reconciler, store = make_reconciler(settings, tmp_path, clock)
    await reconciler.run()
    for step in (timedelta(hours=-2), timedelta(hours=2), timedelta(hours=2), timedelta(hours=-2)):
        clock.now += step
        for _ in range(3):
            await reconciler.run()
            clock.now += timedelta(minutes=1)
    assert [e.day for e in store.list_editions()] == [DAY]


async def test_a_daemon_whose_lock_was_taken_over_stops_and_leaves_the_lock_alone(tmp_path: Path) -> None:
    settings = settings_for("UTC", "07:00", tmp_path)
    clock = FakeClock(at(DAY, "05:00"))  # nothing is due
    store = Store(settings.database_url)
    task = asyncio.create_task(
        run_daemon(
            settings,
            store,
            clock=clock,
            ticks=Ticks(0.1, 0.1, 0.1),
            transport_factory=lambda smtp: FileTransport(tmp_path / "out"),
        )
    )
    await until(lambda: store.lock_holder("daemon") is not None, "the daemon to take the lock")
    # Another host decided this daemon was stale (say, the database was unreachable for a minute).
    later = datetime.now(UTC) + timedelta(minutes=2)  # the lock runs on the real clock, not the daemon's
    store.acquire_lock("daemon", "elsewhere:1", now=later, stale_after=timedelta(seconds=60))
    with pytest.raises(LockHeldError, match="took over"):
        await asyncio.wait_for(task, 10)
    assert store.lock_holder("daemon") == ("elsewhere:1", later)


# --------------------------------------------------------------------------- the catch-up rule (pure)


def test_the_default_catch_up_is_the_same_local_day_and_never_a_backlog() -> None:
    digest = DigestSettings(timezone="Europe/Moscow", send_at=time(7, 0))
    msk = "Europe/Moscow"
    assert edition_due(at(DAY, "06:59", msk), digest, msk, last_day=DAY - timedelta(days=1)) is None
    assert edition_due(at(DAY, "07:00", msk), digest, msk, last_day=DAY - timedelta(days=1)) == DAY
    assert edition_due(at(DAY, "23:59", msk), digest, msk, last_day=DAY - timedelta(days=3)) == DAY
    assert edition_due(at(DAY, "23:59", msk), digest, msk, last_day=DAY) is None
    # The next morning before send_at, yesterday's unsent edition is stale.
    assert edition_due(at(DAY + timedelta(days=1), "06:00", msk), digest, msk, last_day=DAY - timedelta(days=1)) is None
    assert still_fresh(at(DAY, "23:59", msk), digest, msk, DAY)
    assert not still_fresh(at(DAY + timedelta(days=1), "00:01", msk), digest, msk, DAY)


def test_an_explicit_catch_up_window_allows_that_much_lateness_and_no_more() -> None:
    digest = DigestSettings(timezone="UTC", send_at=time(22, 0), catch_up=timedelta(hours=6))
    yesterday = DAY - timedelta(days=1)
    assert edition_due(at(DAY, "03:59"), digest, "UTC", last_day=yesterday - timedelta(days=1)) == yesterday
    assert edition_due(at(DAY, "04:01"), digest, "UTC", last_day=yesterday - timedelta(days=1)) is None
    assert still_fresh(at(DAY, "03:59"), digest, "UTC", yesterday)
    assert not still_fresh(at(DAY, "04:01"), digest, "UTC", yesterday)


# --------------------------------------------------------------------------- the lock runs on the real clock


async def run_cli(config: Path, now: datetime, *args: str) -> tuple[int, str]:
    """A one-shot command of the daemon's config: its exit status and its stderr."""
    process = DigestProcess("digest " + " ".join(args))
    await process.spawn(config, args, {"DIGEST_NOW": now.isoformat(), "DIGEST_DAEMON_TICK": TICK})
    return await process.exited(), process.log


async def test_a_second_daemon_with_a_shifted_DIGEST_NOW_refuses_and_never_stops_the_running_one(
    tmp_path: Path, feed: FeedServer
) -> None:
    url = feed.serve("/news.xml", rss(at(DAY, "05:00")))
    port = free_port()
    web = f'[web]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'
    first = tmp_path / "first"
    first.mkdir()
    config = write_config(first, feed_url=url, smtp_port=9, subscribers=1)
    config.write_text(config.read_text(encoding="utf-8") + web, encoding="utf-8")
    other = tmp_path / "other"  # another database, the same web port
    other.mkdir()
    other_config = write_config(other, feed_url=url, smtp_port=9, subscribers=1)
    other_config.write_text(other_config.read_text(encoding="utf-8") + web, encoding="utf-8")

    async with daemon(config, at(DAY, "05:00")) as running:
        await running.wait_for("daemon running", timeout=30)
        store = open_store(config)
        holder = store.lock_holder("daemon")
        assert holder is not None
        # Rehearsal clocks two days ahead and a day behind: the running daemon's heartbeat, written on
        # the real clock, is fresh whatever DIGEST_NOW says.
        for shifted in (at(DAY + timedelta(days=2), "05:00"), at(DAY - timedelta(days=1), "05:00")):
            rc, err = await run_cli(config, shifted, "run")
            assert rc == 1, err
            assert "Another digest daemon" in err and holder[0] in err
        # A daemon on another database starts, then fails on the busy web port: it lets go of its
        # own lock only.
        rc, err = await run_cli(other_config, at(DAY, "05:00"), "run")
        assert rc == 1, err
        assert open_store(other_config).lock_holder("daemon") is None
        await some_ticks(running)
        assert running.proc is not None and running.proc.returncode is None  # still running
        await until(lambda: (store.lock_holder("daemon") or ("", holder[1]))[1] > holder[1], "a heartbeat")
        now_holder = store.lock_holder("daemon")
        assert now_holder is not None and now_holder[0] == holder[0] and now_holder[1] > holder[1]  # beating
        assert "took over" not in running.log
        assert await running.stop() == 0
    assert store.lock_holder("daemon") is None


async def test_the_daemon_says_at_start_which_chosen_sections_no_section_has(tmp_path: Path, feed: FeedServer) -> None:
    start = at(DAY, SEND_AT, seconds=-6)
    config = write_config(tmp_path, feed_url=feed.serve("/news.xml", rss(start)), smtp_port=9, subscribers=0)
    store = Store(f"sqlite:///{tmp_path / 'digest.sqlite'}")
    try:  # a reader who chose "Markets", a section the operator has since renamed without `formerly`
        store.add_subscriber("reader@example.org", name=None, sections=["Markets", "World"], timezone=None, now=start)
    finally:
        store.close()
    async with daemon(config, start) as d:
        await d.wait_for("chosen sections that no section has: 'Markets' (1 subscriber)")
        assert await d.stop() == 0
    assert 'add formerly = ["Markets"] to its [[sections]] entry' in d.log
