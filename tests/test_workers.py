"""Any number of `digest worker` processes on one PostgreSQL database, no leader (issue 15).

The end-to-end tests start real workers (`python -m digest --config CFG worker --name wN`) as
separate processes, as if each ran on a host of its own, against one PostgreSQL database, a real
HTTP feed server and an aiosmtpd server on 127.0.0.1. They need DIGEST_TEST_POSTGRES_URL (CI sets
it; locally they skip without it). The refusals on SQLite run everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import os
import re
import signal
import socket
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web
from conftest import postgres_database
from digestprocess import DigestProcess
from httpservers import FeedServer
from smtpservers import Received, Recorder, SmtpServer

from digest.store import SENT, Store
from digest.store import schema as t

ROOT = Path(__file__).resolve().parents[1]
TICK = "0.5"


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test."""
    with postgres_database() as url:
        yield url


def send_at_now() -> str:
    """A send_at already passed today (UTC), so the edition is due the moment workers start."""
    now = datetime.now(UTC)
    if now.hour == 0 and now.minute < 2:  # just after midnight: yesterday's 23:59 is no use
        time.sleep(120 - now.minute * 60 - now.second)
        now = datetime.now(UTC)
    return (now - timedelta(minutes=1)).strftime("%H:%M")


def rss(n_items: int, tag: str) -> bytes:
    stamp = (datetime.now(UTC) - timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
    items = "".join(
        f"<item><title>Story {tag} {i} about harbour cranes</title><link>https://news.example.org/{tag}/{i}</link>"
        f"<guid>https://news.example.org/{tag}/{i}</guid><category>World</category>"
        f"<pubDate>{stamp}</pubDate><description>Body {tag} {i}</description></item>"
        for i in range(n_items)
    )
    return (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {tag}</title>'
        f"<link>https://news.example.org/{tag}</link>{items}</channel></rss>"
    ).encode()


def write_config(
    folder: Path,
    *,
    database: str,
    feeds: list[str],
    subscribers: int,
    smtp_port: int,
    send_at: str = "07:00",
    fetch: dict[str, str] | None = None,
    smtp: dict[str, str] | None = None,
    timezone: str = "UTC",
) -> Path:
    lines = [
        "[digest]",
        f'timezone = "{timezone}"',
        f'send_at = "{send_at}"',
        f'database = "{database}"',
        "allow_private_addresses = true",
        'poll_interval = "10m"',  # longer than any test: a second poll of a feed is a double
        "[smtp]",
        'host = "127.0.0.1"',
        f"port = {smtp_port}",
        'sender = "Press Review <digest@example.org>"',
        "connections = 4",
        "timeout = 10",
        *(f"{k} = {v}" for k, v in (smtp or {}).items()),
        "[fetch]",
        *(f"{k} = {v}" for k, v in (fetch or {}).items()),
    ]
    for url in feeds:
        lines += ["[[feeds]]", f'url = "{url}"']
    for i in range(subscribers):
        lines += ["[[subscribers]]", f'email = "reader{i:05d}@example.org"']
    path = folder / "digest.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cli(config: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "digest", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )
    return done.returncode, done.stdout, done.stderr


class WorkerProcess(DigestProcess):
    """`python -m digest --config CFG -v worker --name NAME` (`run` for the name "run"), its stderr
    collected line by line."""

    def __init__(self, config: Path, name: str, env: dict[str, str] | None = None) -> None:
        super().__init__(name)
        self.config, self.name, self.env = config, name, env or {}

    async def start(self) -> WorkerProcess:
        args = ["-v", *(["run"] if self.name == "run" else ["worker", "--name", self.name])]
        await self.spawn(self.config, args, {"DIGEST_DAEMON_TICK": TICK, **self.env})
        return self


@contextlib.asynccontextmanager
async def workers(
    config: Path, names: list[str], env: dict[str, str] | None = None, envs: dict[str, dict[str, str]] | None = None
) -> AsyncIterator[list[WorkerProcess]]:
    procs = [WorkerProcess(config, name, {**(env or {}), **(envs or {}).get(name, {})}) for name in names]
    await asyncio.gather(*(p.start() for p in procs))
    try:
        yield procs
    finally:
        for p in procs:
            if p.proc is not None and p.proc.returncode is None:
                p.proc.kill()
                await p.proc.wait()


async def until(
    predicate: Callable[[], bool], what: str, timeout: float = 120.0, logs: Sequence[WorkerProcess] = ()
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {w.name}\n" + "\n".join(w.lines[-30:]) for w in logs)
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        await asyncio.sleep(0.1)


def tree(pid: int) -> list[int]:
    """pid and its descendants (its sending and parser processes), from /proc."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
    return out


def by_recipient(messages: list[Received]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for m in messages:
        out[m.rcpt_tos[0]].append(str(email.message_from_bytes(m.data)["Message-ID"]))
    return out


def delivery_counts(url: str) -> dict[str, int]:
    store = Store(url)
    try:
        return store.delivery_counts()
    finally:
        store.close()


# --------------------------------------------------------------------------- three workers share the work


async def test_three_workers_share_feeds_and_subscribers_and_survive_a_kill_mid_send(
    pg_url: str, tmp_path: Path
) -> None:
    n_feeds, n_subscribers = 2000, 5000
    async with FeedServer() as srv, SmtpServer() as smtp:
        # A few feeds carry news (an edition of 2,000 stories would only test clustering).
        urls = [srv.serve(f"/f{i}.xml", rss(1 if i % 100 == 0 else 0, f"f{i}")) for i in range(n_feeds)]
        config = write_config(
            tmp_path,
            database=pg_url,
            feeds=urls,
            subscribers=n_subscribers,
            smtp_port=smtp.port,
            send_at=send_at_now(),
            fetch={"per_host": "24"},
            smtp={"claim_lease": '"10s"'},  # a killed sender's rows are taken over 10 s after its last renewal
        )
        rc, _, err = await asyncio.to_thread(cli, config, "status")  # creates the database, syncs the config
        assert rc == 0, err
        async with workers(config, ["w1", "w2", "w3"]) as procs:
            # Kill w2 while it sends, with its sending processes, as if its host died: once a fifth
            # of the edition has gone out and it holds rows.
            def w2_tree() -> list[int]:
                assert procs[1].proc is not None
                return tree(procs[1].proc.pid)

            def w2_holds_rows() -> bool:
                pids = w2_tree()
                engine = sa.create_engine(pg_url)
                try:
                    with engine.connect() as conn:
                        holders = conn.scalars(
                            sa.select(t.deliveries.c.worker).where(t.deliveries.c.status == "sending").distinct()
                        ).all()
                    # A worker's senders name their claims "w2:random" and "w2/send-N:random".
                    return bool(pids) and any(h and h.startswith(("w2:", "w2/send-")) for h in holders)
                finally:
                    engine.dispose()

            await until(lambda: len(smtp.messages) >= n_subscribers // 5, "a fifth of the edition sent", logs=procs)
            rc, status, err = await asyncio.to_thread(cli, config, "status")
            assert rc == 0, err
            assert "workers: 3 alive" in status, status
            for name in ("w1", "w2", "w3"):
                assert f"\n  {name} (" in status and "outbox rows; heartbeat" in status, status
            assert "due work: " in status and "messages claimed by" in status, status
            await until(w2_holds_rows, "w2 holding outbox rows", timeout=60, logs=procs)
            at_kill = len(smtp.messages)
            for pid in w2_tree():  # SIGKILL: no drain, its claims stay behind until their lease runs out
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            assert procs[1].proc is not None
            await procs[1].proc.wait()
            assert at_kill < n_subscribers, "the edition was already sent when w2 was killed"

            def all_sent() -> bool:
                return delivery_counts(pg_url).get(SENT, 0) == n_subscribers

            await until(all_sent, "every outbox row sent", timeout=240, logs=procs)
            for p in (procs[0], procs[2]):
                assert await p.stop() == 0, p.log
        logs = {p.name: p.log for p in procs}

    # Every feed polled exactly once in its interval, by one of the workers.
    polls = Counter(srv.paths())
    assert len(polls) == n_feeds, f"{n_feeds - len(polls)} feeds never polled"
    assert max(polls.values()) == 1, f"polled twice: {[p for p, n in polls.items() if n > 1][:5]}"
    pollers = {name for name, text in logs.items() if "poll:" in text and "feeds" in text}
    assert len(pollers) >= 2, f"one worker polled everything: {pollers}"

    # One edition, built once, by one of them.
    built = [name for name, text in logs.items() if " built items=" in text]
    assert len(built) == 1, built
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(t.editions)) == 1
        senders = {
            w
            for (w,) in conn.execute(sa.select(t.deliveries.c.worker).distinct())
            if w is not None  # the worker column is cleared when a result is recorded
        }
    engine.dispose()
    assert not senders  # nothing left claimed

    # Every subscriber got the edition; a duplicate is only a message in flight at the kill,
    # with the same Message-ID as its first copy.
    got = by_recipient(smtp.messages)
    assert len(got) == n_subscribers, f"{n_subscribers - len(got)} subscribers missed the edition"
    doubled = {r: ids for r, ids in got.items() if len(ids) > 1}
    assert all(len(set(ids)) == 1 for ids in doubled.values()), doubled
    assert len(doubled) <= 4, f"{len(doubled)} duplicates; w2 had at most 4 connections in flight"
    print(f"\n3 workers: {n_feeds} feeds polled once each; {n_subscribers} subscribers, {len(doubled)} duplicates")


# --------------------------------------------------------------------------- one edition, built once


async def test_two_workers_started_at_the_editions_time_build_it_once(pg_url: str, tmp_path: Path) -> None:
    n = 300
    async with FeedServer() as srv, SmtpServer() as smtp:
        urls = [srv.serve(f"/n{i}.xml", rss(3, f"n{i}")) for i in range(5)]
        config = write_config(
            tmp_path,
            database=pg_url,
            feeds=urls,
            subscribers=n,
            smtp_port=smtp.port,
            send_at=send_at_now(),
            smtp={"rate_limit": "100"},  # for both workers together: 50 a second each
        )
        # No command ran before: both create the database and sync the config at the same moment.
        # b's clock runs 20 s ahead (within max_clock_skew): it finds the edition due first, yet
        # neither doubles it nor takes a's claims (leases are on the database's clock).
        ahead = {"b": {"DIGEST_NOW": (datetime.now(UTC) + timedelta(seconds=20)).isoformat()}}
        async with workers(config, ["a", "b"], envs=ahead) as procs:
            await until(lambda: len(smtp.messages) >= n, "the edition sent", logs=procs)
            await asyncio.sleep(3 * float(TICK))  # more passes in which to build it again
            for p in procs:
                assert await p.stop() == 0, p.log
    built = [p.name for p in procs if " built items=" in p.log]
    assert len(built) == 1, [p.log for p in procs]
    arrivals = sorted(m.data_at for m in smtp.messages)
    span = arrivals[-1] - arrivals[0]
    senders = {
        p.name: sum(int(line.split("sent=")[1].split()[0]) for line in p.lines if " sent=" in line) for p in procs
    }
    print(f"\n{n} messages from 2 workers with rate_limit 100/s in all: {span:.2f} s; sent {senders}")
    assert span >= (n - 1) / 100 * 0.8, span  # each worker at its share; both at 100/s would take 1.5 s
    store = Store(pg_url)
    try:
        assert store.count_editions() == 1
        assert store.delivery_counts() == {SENT: n}
    finally:
        store.close()
    assert sorted(len(ids) for ids in by_recipient(smtp.messages).values()) == [1] * n


async def test_C1_workers_started_hours_after_send_at_build_the_catch_up_edition_after_their_first_polls(
    pg_url: str, tmp_path: Path
) -> None:
    """A new site's workers (or a fleet back from downtime) start six hours after send_at: one
    claims every feed, the others found nothing to poll and built the catch-up edition at once,
    empty, and every subscriber was skipped that day (an audit's three workers: built items=0,
    300 skipped). The edition waits for the polls due when the workers began."""
    n = 30
    hour = datetime.now(UTC).hour
    offset = 12 - hour  # a zone where it is about noon: send_at 06:00 there was six hours ago
    zone = "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
    async with FeedServer() as srv, SmtpServer() as smtp:
        # slow feeds on one host: polled one after another by whichever worker claimed them
        urls = [srv.serve(f"/n{i}.xml", rss(3, f"n{i}"), delay=1.5) for i in range(5)]
        config = write_config(
            tmp_path, database=pg_url, feeds=urls, subscribers=n, smtp_port=smtp.port, send_at="06:00", timezone=zone
        )
        async with workers(config, ["a", "b", "c"]) as procs:
            await until(lambda: any(" built items=" in p.log for p in procs), "the edition built", logs=procs)
            await until(lambda: len(smtp.messages) >= n, "the edition sent", logs=procs)
            for p in procs:
                assert await p.stop() == 0, p.log
    built = [line for p in procs for line in p.lines if " built items=" in line]
    assert len(built) == 1 and built[0].endswith(" built items=15"), built
    assert sorted(len(ids) for ids in by_recipient(smtp.messages).values()) == [1] * n


# --------------------------------------------------------------------------- politeness across workers


class ArrivalLog:
    """Every request's arrival and departure (monotonic), and the most in flight at once."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def handler(self, body: bytes, hold: float) -> Callable[[web.Request], object]:
        async def handle(request: web.Request) -> web.Response:
            with self._lock:
                self.arrivals.append(time.monotonic())
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                await asyncio.sleep(hold)
                return web.Response(body=body, headers={"Content-Type": "application/rss+xml"})
            finally:
                with self._lock:
                    self.in_flight -= 1

        return handle


async def test_three_workers_keep_per_host_and_the_minimum_interval_on_one_host(pg_url: str, tmp_path: Path) -> None:
    n_feeds, per_host, interval, hold = 200, 2, 0.05, 0.08
    log = ArrivalLog()
    async with FeedServer() as srv, SmtpServer() as smtp:
        urls = [srv.handle(f"/p{i}.xml", log.handler(rss(0, f"p{i}"), hold)) for i in range(n_feeds)]  # type: ignore[arg-type]
        config = write_config(
            tmp_path,
            database=pg_url,
            feeds=urls,
            subscribers=0,
            smtp_port=smtp.port,
            fetch={"per_host": str(per_host), "host_interval": str(interval)},
        )
        rc, _, err = await asyncio.to_thread(cli, config, "status")
        assert rc == 0, err
        async with workers(config, ["p1", "p2", "p3"]) as procs:
            await until(lambda: len(log.arrivals) >= n_feeds, "every feed polled", logs=procs)
            pollers = [p.name for p in procs if "poll:" in p.log]
            for p in procs:
                assert await p.stop() == 0, p.log
    arrivals = sorted(log.arrivals)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    span = arrivals[-1] - arrivals[0]
    print(
        f"\n{n_feeds} feeds, one host, 3 workers: at most {log.max_in_flight} in flight (per_host {per_host}); "
        f"smallest gap {min(gaps) * 1000:.0f} ms, mean {span / len(gaps) * 1000:.0f} ms (host_interval "
        f"{interval * 1000:.0f} ms); pollers {pollers}"
    )
    assert len(pollers) >= 2, pollers
    assert log.max_in_flight <= per_host
    # Start times are handed out `interval` apart on the database's clock; what the server sees
    # also carries each request's own scheduling delay, so a gap may be shorter, never the pace. On a
    # loaded machine one request held up by the scheduler can land next to the following one (a
    # session-11 CI run beside a browser saw 2 of 199 gaps under 5 ms): a few such, never a burst.
    # The span loses what the first request's delay exceeds the last's (it opens the worker's first
    # connection: a clean-clone CI run saw 9.93 s for 9.95 s): one interval of slack, while a host
    # paced by `per_host` and `hold` alone would take (n_feeds / per_host) * hold = 8 s.
    assert span >= (n_feeds - 2) * interval
    assert sorted(gaps)[len(gaps) // 10] >= interval * 0.8, sorted(gaps)[:20]
    assert sum(gap < interval * 0.1 for gap in gaps) <= len(gaps) // 50, sorted(gaps)[:20]


# --------------------------------------------------------------------------- refusals


async def test_a_second_worker_on_sqlite_refuses_naming_postgresql(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'digest.sqlite'}"
    async with SmtpServer() as smtp:
        config = write_config(tmp_path, database=database, feeds=[], subscribers=1, smtp_port=smtp.port)
        async with workers(config, ["first"]) as (first,):
            await until(lambda: any("worker started" in line for line in first.lines), "the first worker", logs=[first])
            rc, _, err = await asyncio.to_thread(cli, config, "worker", "--name", "second")
            assert rc == 1
            lines = [line for line in err.splitlines() if line.startswith(("error:", "  hint:"))]
            assert lines[0].startswith("error: Another digest worker (first)") and "SQLite takes one worker" in lines[0]
            assert "PostgreSQL" in lines[1], err
            assert "Traceback" not in err
            rc, _, err = await asyncio.to_thread(cli, config, "run")  # nor a daemon beside it
            assert rc == 1 and "Another digest daemon (first) holds the database" in err, err
            assert await first.stop() == 0, first.log


async def test_a_worker_whose_clock_is_off_beyond_the_bound_refuses(pg_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, database=pg_url, feeds=[], subscribers=1, smtp_port=2525)
    # Within the bound (10 s fast): it starts, and says how far off it is.
    near = {"DIGEST_NOW": (datetime.now(UTC) + timedelta(seconds=10)).isoformat()}
    async with workers(config, ["near"], env=near) as (ok,):
        await until(lambda: any("worker started" in line for line in ok.lines), "the worker to start", logs=[ok])
        rc, status, _ = await asyncio.to_thread(cli, config, "status")
        assert rc == 0, status
        # DIGEST_NOW starts the clock when the interpreter has started: a little under +10 s.
        skew = float(status.split("clock ", 1)[1].split("s)", 1)[0])
        assert 5 < skew <= 10.5, status
        # On PostgreSQL `digest run` is one more worker, beside it (no one-daemon lock).
        async with workers(config, ["run"]) as (daemon,):
            await until(lambda: "workers: 2 alive" in cli(config, "status")[1], "digest run to join", logs=[daemon])
            assert await daemon.stop() == 0, daemon.log
        # Workers take no lock on PostgreSQL: `db upgrade` finds them in the registry.
        rc, _, err = await asyncio.to_thread(cli, config, "db", "upgrade")
        assert rc == 1 and "digest workers (near) are running" in err, err
        assert await ok.stop() == 0, ok.log
    skewed = (datetime.now(UTC) + timedelta(seconds=45)).isoformat()
    rc, _, err = await asyncio.to_thread(cli, config, "worker", "--name", "fast", env={"DIGEST_NOW": skewed})
    assert rc == 1
    assert "clock is +4" in err and "max_clock_skew (30 s)" in err and "Traceback" not in err, err
    store = Store(pg_url)
    try:
        assert store.workers(stale_after=timedelta(seconds=60)) == []  # it never registered
    finally:
        store.close()


# --------------------------------------------------------------------------- the store's part (both backends)


def _feeds(store: Store, n: int) -> None:
    from digest.model import FeedSpec

    store.sync_feeds([FeedSpec(url=f"https://h{i % 3}.example.org/{i}.xml") for i in range(n)], now=datetime.now(UTC))


def test_claimed_feeds_are_disjoint_and_lapse_with_their_lease(store: Store) -> None:
    _feeds(store, 30)
    store.register_worker(  # claims need no registration; `digest status` lists registered workers only
        "a", host="h", pid=1, version="t", worker_now=datetime.now(UTC), stale_after=timedelta(seconds=60)
    )
    due = datetime.now(UTC) + timedelta(days=1)
    a = store.claim_feeds("a", due_by=due, lease=timedelta(minutes=1), limit=20)
    b = store.claim_feeds("b", due_by=due, lease=timedelta(minutes=1), limit=20)
    assert len(a) == 20 and len(b) == 10 and not {f.id for f in a} & {f.id for f in b}
    assert store.claim_feeds("b", due_by=due, lease=timedelta(minutes=1), limit=20) == []  # a's lease is live
    assert {w.name: w.feeds for w in store.workers(stale_after=timedelta(seconds=60))} == {"a": 20}
    # b's claims lapse (lease 0): a takes them; a's own stay a's.
    assert store.release_feeds("b", [f.id for f in b]) == 10
    short = store.claim_feeds("b", due_by=due, lease=timedelta(0), limit=20)
    assert len(short) == 10
    again = store.claim_feeds("a", due_by=due, lease=timedelta(minutes=1), limit=20)
    assert {f.id for f in again} == {f.id for f in short}
    # A worker that stops frees what it holds at once.
    store.unregister_worker("a")
    assert len(store.claim_feeds("b", due_by=due, lease=timedelta(minutes=1), limit=50)) == 30


def test_a_worker_name_in_use_is_refused_and_sqlite_takes_one_worker(store: Store) -> None:
    from digest.errors import LockHeldError

    now = datetime.now(UTC)
    store.register_worker("w", host="h", pid=1, version="t", worker_now=now, stale_after=timedelta(seconds=60))
    with pytest.raises(LockHeldError, match="already running"):
        store.register_worker("w", host="h", pid=2, version="t", worker_now=now, stale_after=timedelta(seconds=60))
    if store.many_workers:
        store.register_worker("v", host="h", pid=3, version="t", worker_now=now, stale_after=timedelta(seconds=60))
        assert [w.name for w in store.workers(stale_after=timedelta(seconds=60)) if w.alive] == ["v", "w"]
    else:
        with pytest.raises(LockHeldError, match="SQLite takes one worker"):
            store.register_worker("v", host="h", pid=3, version="t", worker_now=now, stale_after=timedelta(seconds=60))
    # A silent worker is gone: a newcomer of the same name replaces it and inherits nothing.
    assert store.forget_dead_workers(stale_after=timedelta(0)) != []
    store.register_worker("w", host="h", pid=4, version="t", worker_now=now, stale_after=timedelta(seconds=60))


def test_the_default_worker_name_fits_the_store_whatever_the_host_name(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's name is at most `NAME_CHARS` (64) characters, which `--name` enforces; the default
    host:pid must keep to it too, whatever the host name (a container's can be 63 characters)."""
    from digest import worker

    monkeypatch.setattr(socket, "gethostname", lambda: "digest-worker-" + "x" * 49)  # 63 characters
    name = worker.default_name()
    assert len(name) <= worker.NAME_CHARS and name.endswith(f":{os.getpid()}")
    now = datetime.now(UTC)
    store.register_worker(
        name, host="h", pid=os.getpid(), version="t", worker_now=now, stale_after=timedelta(seconds=60)
    )
    assert [w.name for w in store.workers(stale_after=timedelta(seconds=60))] == [name]


def test_a_worker_name_the_store_cannot_keep_is_refused_in_one_line(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, database=f"sqlite:///{tmp_path / 'digest.sqlite'}", feeds=[], subscribers=1, smtp_port=2525
    )
    for bad in ("w" * 65, " ", "tab\there"):
        rc, _, err = cli(config, "worker", "--name", bad)
        lines = [line for line in err.splitlines() if line.strip()]
        assert rc == 1 and "Traceback" not in err, err
        assert lines[0].startswith("error: --name") and "1 to 64 printable characters" in lines[0], err


def test_heartbeats_renew_leases_on_the_database_clock_and_report_the_skew(store: Store) -> None:
    _feeds(store, 3)
    store.register_worker(
        "w", host="h", pid=1, version="t", worker_now=datetime.now(UTC), stale_after=timedelta(seconds=60)
    )
    store.claim_feeds("w", due_by=datetime.now(UTC), lease=timedelta(0), limit=10)
    ahead = datetime.now(UTC) + timedelta(seconds=20)  # a worker clock 20 s fast changes no lease
    db_now, registered = store.worker_heartbeat("w", worker_now=ahead, lease=timedelta(minutes=2))
    assert registered
    assert [f.id for f in store.claim_feeds("x", due_by=ahead, lease=timedelta(minutes=1), limit=10)] == []
    (info,) = store.workers(stale_after=timedelta(seconds=60))
    assert info.feeds == 3 and 19 < info.clock_skew < 21
    assert abs((db_now - datetime.now(UTC)).total_seconds()) < 5
    store.forget_dead_workers(stale_after=timedelta(0))
    assert store.worker_heartbeat("w", worker_now=ahead, lease=timedelta(minutes=2))[1] is False


def test_host_slots_cap_requests_in_flight_and_space_their_starts(store: Store) -> None:
    interval, lease = timedelta(milliseconds=200), timedelta(minutes=1)
    tickets = [
        store.take_host_slot("news.example.org", worker=f"w{i}", per_host=2, interval=interval, lease=lease)
        for i in range(3)
    ]
    first, second, third = tickets
    assert first is not None and second is not None and third is None  # two slots, both taken
    assert {first.slot, second.slot} == {0, 1}
    assert (second.start_at - first.start_at) >= interval
    assert store.take_host_slot("other.example.org", worker="w", per_host=2, interval=interval, lease=lease)
    store.release_host_slot(first, worker="w0")
    fourth = store.take_host_slot("news.example.org", worker="w3", per_host=2, interval=interval, lease=lease)
    assert fourth is not None and fourth.slot == first.slot and fourth.start_at - second.start_at >= interval
    # A slot whose holder died is free once its lease ran out.
    gone = store.take_host_slot("slow.example.org", worker="dead", per_host=1, interval=interval, lease=timedelta(0))
    assert gone is not None
    assert store.take_host_slot("slow.example.org", worker="w", per_host=1, interval=interval, lease=lease)


def test_concurrent_claims_on_postgresql_never_overlap(store: Store) -> None:
    if not store.many_workers:
        pytest.skip("SQLite has one writer; SKIP LOCKED is PostgreSQL's")
    from concurrent.futures import ThreadPoolExecutor

    _feeds(store, 300)
    due = datetime.now(UTC) + timedelta(days=1)

    def claim(name: str) -> list[int]:
        got: list[int] = []
        while batch := store.claim_feeds(name, due_by=due, lease=timedelta(minutes=1), limit=7):
            got += [f.id for f in batch]
        return got

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(claim, ["a", "b", "c", "d"]))
    every = [i for r in results for i in r]
    assert len(every) == len(set(every)) == 300
    assert sum(1 for r in results if r) >= 2


def test_the_smtp_rate_limit_is_shared_out_among_live_workers() -> None:
    from digest.config import SmtpSettings
    from digest.worker import smtp_share

    assert smtp_share(SmtpSettings(rate_limit=30.0), 3).rate_limit == 10.0
    assert smtp_share(SmtpSettings(rate_limit=30.0), 0).rate_limit == 30.0
    assert smtp_share(SmtpSettings(rate_limit=0.0), 4).rate_limit == 0.0  # no limit stays no limit


# --------------------------------------------------------------------------- `digest poll` beside workers


class PathLog:
    """Requests per feed path: how many, how many at once at most, and when each one ended."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.arrived: dict[str, float] = {}
        self.ended: dict[str, float] = {}

    def handler(self, path: str, body: bytes, hold: float) -> Callable[[web.Request], object]:
        async def handle(request: web.Request) -> web.Response:
            self.hits[path] += 1
            self.arrived.setdefault(path, time.monotonic())
            self.in_flight[path] += 1
            self.max_in_flight[path] = max(self.max_in_flight[path], self.in_flight[path])
            try:
                await asyncio.sleep(hold)
                return web.Response(body=body, headers={"Content-Type": "application/rss+xml"})
            finally:
                self.in_flight[path] -= 1
                self.ended[path] = time.monotonic()

        return handle


async def test_digest_poll_beside_a_worker_never_fetches_a_feed_the_worker_is_polling(
    pg_url: str, tmp_path: Path
) -> None:
    n_feeds, slow = 30, 4
    log = PathLog()
    async with FeedServer() as srv, SmtpServer() as smtp:
        # The worker's window (concurrency 4) claims the first four feeds first: slow ones, so it
        # still holds them when `digest poll` (a new process, a few seconds to start) claims.
        urls = [
            srv.handle(f"/q{i}.xml", log.handler(f"/q{i}.xml", rss(1, f"q{i}"), 8.0 if i < slow else 0.1))  # type: ignore[arg-type]
            for i in range(n_feeds)
        ]
        config = write_config(
            tmp_path,
            database=pg_url,
            feeds=urls,
            subscribers=0,
            smtp_port=smtp.port,
            fetch={"concurrency": "4", "per_host": "20", "host_interval": "0"},
        )
        rc, _, err = await asyncio.to_thread(cli, config, "status")
        assert rc == 0, err
        async with workers(config, ["w1"]) as (w1,):
            await until(lambda: sum(log.in_flight.values()) > 0, "the worker to start polling", logs=[w1])
            rc, out, err = await asyncio.to_thread(cli, config, "poll")
            assert rc == 0, err
            await until(lambda: all(log.hits[f"/q{i}.xml"] for i in range(n_feeds)), "every feed polled", logs=[w1])
            await until(lambda: "poll: " in w1.log, "the worker's poll to end", logs=[w1])
            assert await w1.stop() == 0, w1.log
    polled = [line for line in out.splitlines() if "/q" in line]
    skipped = int(out.split("skipped ", 1)[1].split()[0]) if "skipped " in out else 0
    print(f"\ndigest poll beside a worker: polled {len(polled)}, skipped {skipped}; hits {sum(log.hits.values())}")
    # Never two fetches of one feed at once, though both poll every feed they can claim.
    assert max(log.max_in_flight.values()) == 1, log.max_in_flight
    # The worker held some feeds while `digest poll` ran: those were skipped, and said so.
    assert skipped == slow and len(polled) + skipped == n_feeds, out
    assert not [line for line in polled if any(f"/q{i}.xml " in line for i in range(slow))], out
    assert f"polled {len(polled)} feeds" in out


async def test_a_slow_feed_holds_one_slot_of_the_claimed_poll_not_a_batch(store: Store, tmp_path: Path) -> None:
    from digest import config as cfg
    from digest.pipeline.claims import poll_claimed
    from digest.pipeline.poll import parser_pool

    log = PathLog()
    async with FeedServer() as srv:
        # The slow feed is added first, so it is claimed first (no poll yet: oldest due).
        urls = [srv.handle("/slow.xml", log.handler("/slow.xml", rss(1, "slow"), 2.0))]  # type: ignore[arg-type]
        urls += [srv.handle(f"/f{i}.xml", log.handler(f"/f{i}.xml", rss(1, f"f{i}"), 0.02)) for i in range(12)]  # type: ignore[arg-type]
        settings = cfg.from_mapping(
            {
                "digest": {"database": store.url, "allow_private_addresses": True},
                "fetch": {"concurrency": 3, "per_host": 3, "host_interval": 0, "parse_workers": 1},
                "feeds": [{"url": u} for u in urls],
            },
            env={},
        )
        store.sync_feeds(settings.feeds, now=datetime.now(UTC))
        pool = parser_pool(settings)
        try:
            results = await poll_claimed(
                settings=settings,
                store=store,
                clock=lambda: datetime.now(UTC),
                worker="w",
                parser=pool,
                lease=timedelta(minutes=1),
                shared_hosts=store.many_workers,
            )
        finally:
            pool.close()
    assert len(results) == 13 and not [r for r in results if r.error], results
    # (The slow feed is in the first window: claims go by id among never-polled feeds.)
    assert all(log.arrived[f"/f{i}.xml"] < log.ended["/slow.xml"] for i in range(12))
    # A batch of 3 would have held the other feeds behind the slow one; a rolling window polls all
    # twelve on the two other slots while it is still in flight.
    late = [p for p in log.ended if p != "/slow.xml" and log.ended[p] > log.ended["/slow.xml"]]
    print(f"\nfast feeds finished after the slow one: {late}")
    assert late == []
    assert store.claim_feeds("x", due_by=datetime.now(UTC), lease=timedelta(minutes=1), limit=20) == []  # all polled
    with store.engine.connect() as conn:  # every claim freed as its feed finished
        assert conn.scalar(sa.select(sa.func.count()).where(t.feeds.c.claimed_by.is_not(None))) == 0


# --------------------------------------------------------------------------- clock drift after start


async def test_a_worker_whose_clock_drifts_beyond_the_bound_after_start_stops(
    pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In process (the clock is a function the test moves), against PostgreSQL: the worker starts
    within the bound, its clock then jumps 45 s ahead; the next heartbeat stops it, saying why,
    and it leaves the registry."""
    from digest import config as cfg
    from digest.daemon import Ticks
    from digest.worker import run_worker

    monkeypatch.chdir(tmp_path)  # the worker writes its metrics file beside it
    settings = cfg.from_mapping({"digest": {"database": pg_url, "timezone": "UTC"}}, env={})
    store = Store(pg_url)
    offset = [timedelta(0)]

    def clock() -> datetime:
        return datetime.now(UTC) + offset[0]

    try:
        task = asyncio.create_task(
            run_worker(settings, store, name="drifter", clock=clock, ticks=Ticks(poll=60, reconcile=60, heartbeat=0.2))
        )
        await until(lambda: [w.name for w in store.workers(stale_after=timedelta(seconds=60))] == ["drifter"], "start")
        await asyncio.sleep(0.5)
        assert not task.done()  # within the bound, heartbeats go on
        offset[0] = timedelta(seconds=45)
        with caplog.at_level("ERROR", logger="digest.worker"):
            await asyncio.wait_for(task, 30)
        message = "\n".join(r.getMessage() for r in caplog.records)
        assert "worker=drifter" in message and "clock is +4" in message, message
        assert "max_clock_skew (30 s)" in message and "Stopping." in message, message
        assert store.workers(stale_after=timedelta(seconds=60)) == []
    finally:
        store.close()


# --------------------------------------------------------------------------- status: a worker's sending processes


async def test_status_gives_a_worker_the_outbox_rows_its_sending_processes_hold(pg_url: str, tmp_path: Path) -> None:
    n_subscribers = 1200  # two sending processes (500 rows each at least): the worker's and one spawned
    async with FeedServer() as srv, SmtpServer() as smtp:
        config = write_config(
            tmp_path,
            database=pg_url,
            feeds=[srv.serve("/news.xml", rss(3, "news"))],
            subscribers=n_subscribers,
            smtp_port=smtp.port,
            send_at=send_at_now(),
            smtp={"workers": "2", "rate_limit": "60"},
        )
        rc, _, err = await asyncio.to_thread(cli, config, "status")
        assert rc == 0, err
        async with workers(config, ["w1"]) as (w1,):

            def claim_names() -> set[str]:
                engine = sa.create_engine(pg_url)
                try:
                    with engine.connect() as conn:
                        d = t.deliveries.c
                        return {str(w) for w in conn.scalars(sa.select(d.worker).where(d.status == "sending"))}
                finally:
                    engine.dispose()

            await until(
                lambda: any(n.startswith("w1/send-1:") for n in claim_names()), "the spawned sender's claims", logs=[w1]
            )
            # Freeze the worker and its sending processes: their claims hold still while status reads them.
            assert w1.proc is not None
            frozen = tree(w1.proc.pid)
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            try:
                names = claim_names()
                rc, status, err = await asyncio.to_thread(cli, config, "status")
            finally:
                for pid in frozen:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGCONT)
            assert rc == 0, err
            assert await w1.stop() == 0, w1.log
    line = next(x for x in status.splitlines() if x.startswith("  w1 ("))
    own = int(line.split("feeds, ", 1)[1].split(" outbox rows", 1)[0])
    total = int(status.split("sending: ", 1)[1].split(" messages", 1)[0])
    print(f"\nclaims {sorted(n.rsplit(':', 1)[0] for n in names)}; status: {line.strip()}; total held {total}")
    assert all(n.startswith(("w1:", "w1/send-")) for n in names), names
    assert {n.rsplit(":", 1)[0] for n in names} >= {"w1/send-1"}
    assert own == total > 0, status


# --------------------------------------------------------------------------- the shared SMTP rate limit


async def test_workers_together_stay_within_the_smtp_rate_limit_when_one_joins_mid_pass(
    pg_url: str, tmp_path: Path
) -> None:
    n_subscribers, rate, window = 700, 40.0, 4.0
    async with FeedServer() as srv, SmtpServer() as smtp:
        config = write_config(
            tmp_path,
            database=pg_url,
            feeds=[srv.serve("/news.xml", rss(3, "news"))],
            subscribers=n_subscribers,
            smtp_port=smtp.port,
            send_at=send_at_now(),
            # Two sending processes per worker pass: the share must reach the spawned ones too.
            smtp={"workers": "2", "rate_limit": str(rate)},
        )
        rc, _, err = await asyncio.to_thread(cli, config, "status")
        assert rc == 0, err
        async with workers(config, ["r1", "r2"]) as procs:
            await until(lambda: len(smtp.messages) >= 150, "the pass under way", logs=procs)
            joined_at = time.monotonic()
            late = await WorkerProcess(config, "r3").start()
            procs.append(late)
            await until(
                lambda: delivery_counts(pg_url).get(SENT, 0) == n_subscribers, "every row sent", timeout=180, logs=procs
            )
            for p in procs:
                assert await p.stop() == 0, p.log
    late_sent = sum(int(n) for n in re.findall(r"edition=\S+ sent=(\d+)", late.log))
    arrivals = sorted(m.mail_at for m in smtp.messages)
    counts = [(sum(1 for b in arrivals[i:] if b < a + window), a) for i, a in enumerate(arrivals)]
    busiest, busiest_at = max(counts)
    after = [a for a in arrivals if a >= joined_at]
    pace = (len(after) - 1) / (after[-1] - after[0])
    print(
        f"\n{len(arrivals)} messages, rate_limit {rate:g}/s: busiest {window:g} s window {busiest} "
        f"({busiest / window:.1f}/s, from {busiest_at - joined_at:+.1f} s of the join), "
        f"{pace:.1f}/s after the third worker joined, which sent {late_sent}"
    )
    assert len({m.rcpt_tos[0] for m in smtp.messages}) == n_subscribers
    assert late_sent > 0, late.log  # the late worker took its share of the pass
    assert "smtp rate share: 3 workers alive" in procs[0].log, procs[0].log
    # Each sending process spaces its starts 1/share apart: a window holds at most one more per
    # process than the limit allows. The server stamps MAIL, not the start: on a loaded machine a
    # process descheduled between the two moves a send or two into the next window. Six sending
    # processes (three workers, two each) at two each: 12. A share not applied costs far more: two
    # workers still at the two-worker share while three send put about 53 more in a 4 s window.
    assert busiest <= rate * window + 12, busiest
    assert pace <= rate * 1.05, pace


# --------------------------------------------------------------------------- the schema moved under a running worker


def stamp(url: str, revision: str) -> None:
    """Set alembic_version, as a `digest db upgrade` run by a newer (or older) digest leaves it."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


async def test_a_running_worker_stops_when_the_schema_is_upgraded_under_it(pg_url: str, tmp_path: Path) -> None:
    """Audit bug 4: a worker paused while `digest db upgrade` ran must not go on writing rows
    shaped by its old code. Its heartbeat reads the revision and it stops, with the line an old
    process started now gets, and exit status 1."""
    async with SmtpServer() as smtp:
        config = write_config(tmp_path, database=pg_url, feeds=[], subscribers=1, smtp_port=smtp.port)
        rc, _, err = await asyncio.to_thread(cli, config, "status")
        assert rc == 0, err
        async with workers(config, ["old1"]) as (old1,):
            await old1.wait_for("worker started")
            await old1.wait_for("daemon running")
            stamp(pg_url, "9999")  # a revision this code has never heard of
            rc = await old1.exited(timeout=60)
        rc_new, _, started_now = await asyncio.to_thread(cli, config, "worker", "--name", "late")
    assert rc == 1, old1.log
    assert "schema revision 9999, which this digest does not know" in old1.log, old1.log
    assert "run that version instead" in old1.log and "worker stopped name=old1" in old1.log, old1.log
    # The same words as a process started after the upgrade.
    assert rc_new == 1 and "schema revision 9999, which this digest does not know" in started_now, started_now
    store_engine = sa.create_engine(pg_url)
    try:
        with store_engine.connect() as conn:
            assert conn.scalar(sa.select(sa.func.count()).select_from(t.workers)) == 0  # it left the registry
    finally:
        store_engine.dispose()


async def test_the_sqlite_daemon_stops_when_the_schema_moves_under_it(tmp_path: Path) -> None:
    """The single daemon (`digest run` on SQLite) checks at its lock heartbeat too; a schema moved
    back (a restored backup of an older release) names `digest db upgrade`."""
    url = f"sqlite:///{tmp_path / 'digest.sqlite'}"
    async with SmtpServer() as smtp:
        config = write_config(tmp_path, database=url, feeds=[], subscribers=1, smtp_port=smtp.port)
        rc, _, err = await asyncio.to_thread(cli, config, "status")
        assert rc == 0, err
        async with workers(config, ["run"]) as (daemon,):
            await daemon.wait_for("daemon running")
            stamp(url, "0011")
            rc = await daemon.exited(timeout=60)
    assert rc == 1, daemon.log
    assert "is at schema revision 0011 and this digest needs 0012" in daemon.log, daemon.log
    assert "run `digest db upgrade`" in daemon.log, daemon.log


# --------------------------------------------------------------------------- the database restarts during a send


class HoldingRecorder(Recorder):
    """Keeps each message in DATA until `release` is set: the relay is slow, and the test may
    restart the database while it holds them."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.held = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.held += 1
        while not self.release.is_set():
            await asyncio.sleep(0.02)
        return await super().handle_DATA(server, session, envelope)


def terminate_connections(url: str) -> int:
    """What a PostgreSQL restart does to every open connection to the database, but ours."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            return len(
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).all()
            )
    finally:
        engine.dispose()


async def test_S2_a_database_restart_while_the_relay_holds_messages_sends_none_twice(
    pg_url: str, tmp_path: Path
) -> None:
    """Audit bug 3: the sender's connection is terminated (as `pg_ctlcluster ... restart` does)
    while the relay holds four messages. Their results are recorded on a new connection: nothing
    goes out twice, no row counts a crash, and the worker goes on sending."""
    n = 12
    handler = HoldingRecorder()
    async with FeedServer() as srv, SmtpServer(handler=handler) as smtp:
        config = write_config(
            tmp_path,
            database=pg_url,
            feeds=[srv.serve("/news.xml", rss(3, "news"))],
            subscribers=n,
            smtp_port=smtp.port,
            send_at=send_at_now(),
            smtp={"claim_lease": '"15s"'},  # without the retry the held rows went again 15 s later
        )
        rc, _, err = await asyncio.to_thread(cli, config, "status")
        assert rc == 0, err
        async with workers(config, ["w1"]) as (w1,):
            await until(lambda: handler.held >= 4, "the relay holding four messages", logs=[w1])
            assert await asyncio.to_thread(terminate_connections, pg_url) > 0
            handler.release.set()
            await until(lambda: delivery_counts(pg_url).get(SENT, 0) == n, "every row sent", timeout=120, logs=[w1])
            # A row sent twice was sent again before it was recorded sent: every copy is in by now.
            assert await w1.stop() == 0, w1.log
    got = by_recipient(smtp.messages)
    assert len(got) == n, w1.log
    assert {r: ids for r, ids in got.items() if len(ids) > 1} == {}, w1.log
    assert "Cannot record" not in w1.log and "counts a crash" not in w1.log, w1.log
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(sa.select(sa.func.sum(t.deliveries.c.crashes))) == 0
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- a database outage


async def test_S13_workers_cut_off_from_postgresql_together_all_go_on_when_it_returns(tmp_path: Path) -> None:
    """Audit (several workers on PostgreSQL): the database went away for longer than a worker's
    silence limit (10 s at this tick) and came back. Every worker had missed its heartbeats, for
    the same reason; the first one back took the others for gone, freed their claims, and they
    stopped ("was taken for dead"): two workers became one after a restart of the database. A
    worker that was itself away judges no other until it has been back for that long."""
    from dbfaults import database_that_goes_away

    async with (
        FeedServer() as srv,
        SmtpServer() as smtp,
        database_that_goes_away("postgresql", tmp_path) as (url, available),
    ):
        config = write_config(
            tmp_path, database=url, feeds=[srv.serve("/news.xml", rss(2, "news"))], subscribers=1, smtp_port=smtp.port
        )
        rc, _, err = await asyncio.to_thread(cli, config, "status")
        assert rc == 0, err
        store = await asyncio.to_thread(Store, url)  # (in a thread: the relay runs on this event loop)
        try:
            async with workers(config, ["w1", "w2"]) as procs:

                async def live() -> list[str]:
                    found = await asyncio.to_thread(store.workers, stale_after=timedelta(seconds=5))
                    return sorted(w.name for w in found)

                for w in procs:  # started: a database lost while starting stops a worker, saying so
                    await w.wait_for("daemon running", timeout=60)
                for _ in range(300):
                    if await live() == ["w1", "w2"]:
                        break
                    await asyncio.sleep(0.1)
                await asyncio.to_thread(store.engine.dispose)  # the test's own connections go with the relay too
                await available(False)
                await asyncio.sleep(14)  # past the 10 s after which a silent worker is gone
                await available(True)
                await until(lambda: all("heartbeat failed" in w.log for w in procs), "the failed beats", logs=procs)
                await asyncio.sleep(12)  # more than the silence limit, back: every judgement made by now
                for w in procs:
                    assert w.proc is not None and w.proc.returncode is None, w.log
                    assert "taken for dead" not in w.log and "taken for gone" not in w.log, w.log
                    assert f"worker={w.name} reached the database again after" in w.log, w.log
                assert await live() == ["w1", "w2"]
                assert [await w.stop() for w in procs] == [0, 0]
        finally:
            await asyncio.to_thread(store.close)
