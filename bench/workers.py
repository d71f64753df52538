"""Several `digest worker` processes on one PostgreSQL database: feeds/s and messages/s for N workers.

    python bench/workers.py --database postgresql+psycopg://postgres:PW@127.0.0.1:5432/postgres \\
        --workers-hosts 1,2,4 --feeds 2000 --subscribers 10000

For each N, a fresh database (created beside the one named, dropped after) and N real workers
(`python -m digest --config X worker --name bN`), each as if on a host of its own:

  poll   every feed due at once; feeds/s = feeds / (last poll - first poll), from feeds.last_polled_at
         (the database's record, so worker start-up is not counted)
  send   then one edition to every subscriber (the feeds are not due again for hours);
         msg/s = messages / (last sent_at - first sent_at)

Feeds are served by a local aiohttp server in its own process on --hosts loopback addresses (one
item in every 20th feed, so the edition stays a normal size); messages go to bench/smtpsink.py in its
own process. Printed per phase: the rate, the rate per worker as a share of one worker's (the
efficiency: they share this machine's cores), each worker's CPU seconds and peak RSS (the worker and
its parser processes), and the database's load: transactions and rows from pg_stat_database, the
most backends seen active in pg_stat_activity, and the CPU the PostgreSQL server processes used
(all of its databases: other work on the server counts too).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from poll import listen_on_loopback, make_feed, process_tree, rss_kib  # noqa: E402 - bench/poll.py, beside this file

from digest.store import Store  # noqa: E402
from digest.store import schema as t  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- servers


def _serve(feeds: int, hosts: int, port_out: Any) -> None:
    import asyncio

    from aiohttp import web

    now = datetime.now(UTC).replace(microsecond=0)
    bodies = [make_feed(i, 1 if i % 20 == 0 else 0, now=now) for i in range(feeds)]

    async def feed(request: web.Request) -> web.StreamResponse:
        return web.Response(body=bodies[int(request.match_info["n"])], content_type="application/rss+xml")

    async def main() -> None:
        port = await listen_on_loopback(feed, hosts)
        port_out.send(port)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_sink() -> tuple[subprocess.Popen[str], int]:
    sink = subprocess.Popen(
        [sys.executable, str(HERE / "smtpsink.py"), "--port", "0", "--every", "3600"], stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None
    return sink, int(sink.stdout.readline().rsplit(":", 1)[1])


# --------------------------------------------------------------------------- /proc


def _cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / CLK  # with reaped children


def _postgres_cpu() -> float:
    """CPU seconds used so far by every process named postgres on this machine (a backend's time
    moves into the postmaster's children's time when its connection ends and it is reaped)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        if "(postgres)" in text:  # live backends, and the postmaster with the backends it reaped
            fields = text.rpartition(")")[2].split()
            total += sum(int(x) for x in fields[11:15]) / CLK
    return total


# --------------------------------------------------------------------------- one run


def local_zone() -> tuple[str, int]:
    """An Etc/GMT zone where it is now about 10:00, and the local hour: send_at can be set just
    before or well after now without crossing midnight."""
    hour = datetime.now(UTC).hour
    offset = (10 - hour + 12) % 24 - 12  # -12..+11 hours from UTC
    name = "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"  # POSIX sign
    return name, (hour + offset) % 24


def write_config(folder: Path, *, database: str, port: int, feeds: int, hosts: int, smtp_port: int, due: bool) -> Path:
    zone, hour = local_zone()
    send_at = f"{hour - 1:02d}:00" if due else f"{hour + 3:02d}:00"
    path = folder / "digest.toml"
    lines = [
        "[digest]",
        f'timezone = "{zone}"',
        f'send_at = "{send_at}"',
        f'database = "{database}"',
        "allow_private_addresses = true",
        'poll_interval = "6h"',
        "read_also = 0",
        "[smtp]",
        'host = "127.0.0.1"',
        f"port = {smtp_port}",
        'sender = "Morning Review <review@review.example.org>"',
        "timeout = 30",
        "[fetch]",
        "parse_workers = 1",
    ]
    for i in range(feeds):
        lines += ["[[feeds]]", f'url = "http://127.0.0.{i % hosts + 1}:{port}/feed/{i}.xml"']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def add_subscribers(url: str, n: int) -> None:
    zone, _ = local_zone()
    now = datetime.now(UTC) - timedelta(days=1)
    rows = [
        {
            "email": f"reader{i}@mail{i % 50}.example",
            "email_key": f"reader{i}@mail{i % 50}.example",
            "sections": None,
            "timezone": zone,
            "status": "active",
            "permanent_failures": 0,
            "from_config": False,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(n)
    ]
    store = Store(url)
    with store.engine.begin() as conn:
        for start in range(0, n, 5000):
            conn.execute(sa.insert(t.subscribers), rows[start : start + 5000])
    store.close()


def build(config: Path) -> None:
    """Build today's edition now, its outbox rows held by a claim nobody renews until released."""
    from zoneinfo import ZoneInfo

    from digest import config as cfg
    from digest.pipeline.send import build_edition

    settings = cfg.load(config)
    store = Store(settings.database_url)
    now = datetime.now(UTC)
    day = now.astimezone(ZoneInfo(settings.digest.timezone)).date()
    build_edition(settings, store, day=day, timezone=settings.digest.timezone, now=now)
    store.close()
    parked = {"status": "sending", "worker": "parked", "lease_until": now + timedelta(days=1)}
    execute(settings.database_url, sa.update(t.deliveries).values(**parked))


class Load:
    """The database's work between start() and stop(): pg_stat_database, pg_stat_activity, CPU."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        self.name = sa.engine.make_url(url).database
        self.peak_active = 0
        self._done = threading.Event()

    def _stats(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT xact_commit + xact_rollback AS xacts, tup_inserted + tup_updated + tup_deleted AS written,"
                    " tup_returned + tup_fetched AS read FROM pg_stat_database WHERE datname = :d"
                ),
                {"d": self.name},
            ).one()
        return dict(row._mapping)

    def _sample(self) -> None:
        while not self._done.wait(0.2):
            with self.engine.connect() as conn:
                active = conn.scalar(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d AND state = 'active'"),
                    {"d": self.name},
                )
            self.peak_active = max(self.peak_active, int(active or 0))

    def start(self) -> Load:
        self.before, self.cpu_before = self._stats(), _postgres_cpu()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, float]:
        self._done.set()
        self._thread.join()
        time.sleep(0.6)  # the statistics collector reports at most every 500 ms
        after = self._stats()
        out: dict[str, float] = {k: after[k] - self.before[k] for k in after}
        out["cpu"] = _postgres_cpu() - self.cpu_before
        out["peak_active"] = self.peak_active
        self.engine.dispose()
        return out


def run_workers(
    config: Path, n: int, *, url: str, release: Callable[[], None], done: Callable[[], bool], timeout: float
) -> tuple[list[dict[str, float]], dict[str, float]]:
    """Start n workers; once all have registered (start-up over), release() the work and wait
    until done(); stop them. Per worker: CPU seconds spent on the work and peak RSS in MB; and the
    database's load meanwhile."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DIGEST_DAEMON_TICK": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "digest", "--config", str(config), "worker", "--name", f"b{i + 1}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    peak = [0] * n
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            for i, p in enumerate(procs):
                peak[i] = max(peak[i], sum(rss_kib(q) for q in process_tree(p.pid)))

    def check(deadline: float) -> None:
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"a worker exited {p.returncode}: {p.stderr.read()[-3000:] if p.stderr else ''}")
        time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    deadline = time.monotonic() + timeout
    engine = sa.create_engine(url)
    try:
        while True:
            with engine.connect() as conn:
                if (conn.scalar(sa.select(sa.func.count()).select_from(t.workers)) or 0) >= n:
                    break
            check(deadline)
        time.sleep(3)  # their first (empty) passes
        cpu0 = [sum(_cpu(q) for q in process_tree(p.pid)) for p in procs]
        load = Load(url).start()
        release()
        while not done():
            check(deadline)
        cpu = [sum(_cpu(q) for q in process_tree(p.pid)) - c for p, c in zip(procs, cpu0, strict=True)]
        db = load.stop()
    finally:
        engine.dispose()
        stop.set()
        sampler.join()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
    return [{"cpu": c, "rss_mb": k / 1024} for c, k in zip(cpu, peak, strict=True)], db


def execute(url: str, statement: Any) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(statement)
    engine.dispose()


def span(url: str, query: sa.Select[Any, Any, Any]) -> tuple[int, float]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        count, first, last = conn.execute(query).one()
    engine.dispose()
    if first is None or last is None:
        return int(count), 0.0
    return int(count), (last - first).total_seconds()


def one(base: str, n: int, args: argparse.Namespace, port: int, smtp_port: int) -> dict[str, Any]:
    name = f"digest_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
    out: dict[str, Any] = {"n": n}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            cfg_args = {"database": url, "port": port, "feeds": args.feeds, "hosts": args.hosts, "smtp_port": smtp_port}
            config = write_config(folder, due=False, **cfg_args)
            subprocess.run(
                [sys.executable, "-m", "digest", "--config", str(config), "status"],
                check=True,
                capture_output=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            f = t.feeds.c
            polled = sa.select(sa.func.count(), sa.func.min(f.last_polled_at), sa.func.max(f.last_polled_at)).where(
                f.last_polled_at.is_not(None)
            )
            # Every feed due at once, released when the workers are up: start-up is not measured.
            execute(url, sa.update(t.feeds).values(next_poll_at=datetime.now(UTC) + timedelta(days=1)))
            out["poll_workers"], out["poll_db"] = run_workers(
                config,
                n,
                url=url,
                release=lambda: execute(url, sa.update(t.feeds).values(next_poll_at=None)),
                done=lambda: span(url, polled)[0] >= args.feeds,
                timeout=args.timeout,
            )
            out["feeds"], out["poll_s"] = span(url, polled)
            # The edition built here, its rows parked under a claim that is then lifted.
            add_subscribers(url, args.subscribers)
            config = write_config(folder, due=True, **cfg_args)
            build(config)
            d = t.deliveries.c
            sent = sa.select(sa.func.count(), sa.func.min(d.sent_at), sa.func.max(d.sent_at)).where(d.status == "sent")
            out["send_workers"], out["send_db"] = run_workers(
                config,
                n,
                url=url,
                release=lambda: execute(
                    url, sa.update(t.deliveries).values(status="pending", worker=None, lease_until=None)
                ),
                done=lambda: span(url, sent)[0] >= args.subscribers,
                timeout=args.timeout,
            )
            out["messages"], out["send_s"] = span(url, sent)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
    return out


def report(results: list[dict[str, Any]], args: argparse.Namespace, phases: tuple[str, ...] = ("poll", "send")) -> None:
    print(
        f"\n{args.feeds} feeds on {args.hosts} hosts, {args.subscribers} subscribers, {os.cpu_count()} CPUs; "
        f"load average before: {os.getloadavg()[0]:.1f}"
    )
    for phase, unit, count, seconds in (
        ("poll", "feeds/s", "feeds", "poll_s"),
        ("send", "msg/s", "messages", "send_s"),
    ):
        if f"{phase}_workers" not in results[0] or phase not in phases:
            continue
        base = None
        print(
            f"\n{phase}: N  {unit:>9}  per worker  efficiency  worker CPU s (each)      peak RSS MB (each)     "
            "db: xacts  rows written  peak active  postgres CPU s"
        )
        for r in results:
            rate = r[count] / r[seconds] if r[seconds] else 0.0
            base = base or rate
            per = rate / r["n"]
            db = r[f"{phase}_db"]
            ws = r[f"{phase}_workers"]
            cpus = " ".join(format(w["cpu"], "5.1f") for w in ws)
            rss = " ".join(format(w["rss_mb"], "5.0f") for w in ws)
            print(
                f"      {r['n']}  {rate:9.0f}  {per:10.0f}  {per / base:10.0%}  {cpus:<24} {rss:<22} "
                f"{db['xacts']:9.0f}  {db['written']:12.0f}  {db['peak_active']:11.0f}  {db['cpu']:14.1f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database", required=True, help="a PostgreSQL URL; bench databases are made beside it")
    ap.add_argument("--workers-hosts", default="1,2,4", help="numbers of workers to run, comma-separated")
    ap.add_argument("--feeds", type=int, default=2000)
    ap.add_argument("--hosts", type=int, default=50, help="loopback addresses the feeds are spread over")
    ap.add_argument("--subscribers", type=int, default=10_000)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds one phase may take")
    bench(ap.parse_args())


def bench(args: argparse.Namespace, phases: tuple[str, ...] = ("poll", "send")) -> None:
    """Run N workers for each N of args.workers_hosts; print the figures of `phases`. Also what
    `bench/send.py --database ... --workers-hosts ...` runs (its polling, which builds the edition,
    is then not printed)."""
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(args.feeds, args.hosts, child), daemon=True)
    server.start()
    port = parent.recv()
    sink, smtp_port = start_sink()
    try:
        results = []
        for n in (int(x) for x in args.workers_hosts.split(",")):
            print(f"running {n} worker(s)...", flush=True)
            results.append(one(args.database, n, args, port, smtp_port))
        report(results, args, phases)
    finally:
        sink.terminate()
        server.terminate()


if __name__ == "__main__":
    main()
