"""Time the real `digest send` against bench/smtpsink.py, next to a naive per-subscriber baseline.

    python bench/send.py                          # 10,000 subscribers, naive baseline on 2,000
    python bench/send.py --subscribers 100000     # memory stays flat: rows are streamed
    python bench/send.py --workers 1              # one sending process instead of one per core
    python bench/send.py --naive 0                # skip the baseline
    python bench/send.py --mix uniform            # any non-empty subset of 8 sections, 40 feeds x 50 items
    python bench/send.py --top-stories 0          # without a "Top stories" block (digest's default: 5)
    python bench/send.py --shared 0               # no story told by several outlets (default: a fifth by three)
    python bench/send.py --database postgresql+psycopg://postgres:PW@127.0.0.1:5432/postgres \\
        --workers-hosts 1,2,4                     # N `digest worker` processes on PostgreSQL (bench/workers.py)

Everything is real and on 127.0.0.1: a SQLite file, the `digest` command as a process
(`python -m digest --config X send`), and the sink (bench/smtpsink.py) in its own process, so
its CPU is not counted. The store is filled directly (bulk inserts, not `digest subscribers
import`, which commits per row): 8 sections, 8 feeds of 25 items, and subscribers of whom 40%
take every section and 60% choose 1 to 3 of them, spread over 5 time zones (fixed seed). A fifth
of each feed's items are carried alike by three feeds (--shared): stories three outlets tell, which
the "Top stories" block (on, as digest's default; --top-stories 0 for none) lists first.
With --mix uniform (issue 12): 40 feeds of 50 items, 15 stories a section, and every subscriber
takes any non-empty subset of the 8 sections with equal chance (255 sets, so ~1,275 distinct
(time zone, section set) pairs), the mix that defeats rendering once per section set.

Figures printed for each path:
  messages/s      messages the sink accepted / wall time of the process (start-up included)
  CPU/message     user+sys of the process and its children (getrusage RUSAGE_CHILDREN) / messages
  peak RSS        the largest sum of RSS over the process tree (sampled from /proc every 20 ms),
                  the same for PSS (shared library pages shared out), and the largest single
                  process (ru_maxrss)

The naive baseline is what a first version would do (`--naive-run`, also its own process): per
subscriber, compose and render the edition (digest.render.Renderer), build an
email.message.EmailMessage and send it with send_message over one reused aiosmtplib connection.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy import insert

from digest import config as cfg
from digest.model import PLACEHOLDER_PREFERENCES_URL, PLACEHOLDER_UNSUBSCRIBE_URL, ParsedItem, PollRecord
from digest.store import Store
from digest.store import schema as t

HERE = Path(__file__).resolve().parent
NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)  # 07:00 has passed in every zone below
SECTIONS = ("World", "Politics", "Business", "Military", "Science", "Society", "Sport", "Press Review")
ZONES = ("Europe/Moscow", "Europe/Berlin", "Asia/Yekaterinburg", "Europe/London", "Asia/Novosibirsk")
FEEDS = 8
ITEMS_PER_FEED = 25
_WORDS = (
    "minister talks budget court storm market rates election summit energy rocket launch final record "
    "festival museum strike union river flood hospital school university airport train deal sanctions"
)
WORDS = _WORDS.split()


# --------------------------------------------------------------------------- the fixture


# feeds, items per feed, [digest] max_items_per_section
MIXES = {"default": (FEEDS, ITEMS_PER_FEED, None), "uniform": (40, 50, 15)}


def write_config(
    folder: Path,
    *,
    port: int,
    workers: int | None,
    connections: int | None = None,
    mix: str = "default",
    top_stories: int = 0,
) -> Path:
    path = folder / "digest.toml"
    feeds_n, _, per_section = MIXES[mix]
    sections = "".join(f'[[sections]]\nname = "{s}"\ncategories = ["{s}"]\n' for s in SECTIONS)
    feeds = "".join(f'[[feeds]]\nurl = "https://feed{n}.example/rss"\nname = "Source {n}"\n' for n in range(feeds_n))
    cap = f"max_items_per_section = {per_section}\n" if per_section else ""
    smtp_workers = f"workers = {workers}\n" if workers is not None else ""
    if connections is not None:
        smtp_workers += f"connections = {connections}\n"
    path.write_text(
        f"""
[digest]
title = "Morning Review"
timezone = "Europe/Moscow"
database = "sqlite:///{folder / "digest.sqlite"}"
base_url = "https://review.example.org"
read_also = 0
top_stories = {top_stories}
{cap}
[smtp]
host = "127.0.0.1"
port = {port}
sender = "Morning Review <review@review.example.org>"
timeout = 30
{smtp_workers}
{sections}
{feeds}""",
        encoding="utf-8",
    )
    return path


def populate(config: Path, subscribers: int, seed: int = 1, mix: str = "default", shared: float = 0.0) -> int:
    """Fill the store; returns the number of distinct (time zone, section set) pairs.

    `shared`: the share of each feed's items that three feeds carry alike (the same article, as an
    agency's story in three papers): stories told by three outlets, the ones a top stories block lists."""
    rng = random.Random(seed)
    _, items_per_feed, _ = MIXES[mix]
    settings = cfg.load(config)
    store = Store(settings.database_url)
    store.sync_feeds(settings.feeds, now=NOW - timedelta(days=1))
    for n, feed in enumerate(store.list_feeds()):
        items = []
        for i in range(items_per_feed):
            title = " ".join(rng.choice(WORDS) for _ in range(7)).capitalize() + f" ({n}.{i})"
            summary = " ".join(rng.choice(WORDS) for _ in range(40)) + "."
            url, section = f"https://feed{n}.example/{i}", SECTIONS[(n + i) % 8]
            if i < shared * items_per_feed:  # feeds 0-2, 3-5, ... carry these alike
                group = n // 3
                url, section = f"https://wire{group}.example/{i}", SECTIONS[(group + i) % 8]
            items.append(
                ParsedItem(
                    key=f"f{n}i{i}",
                    title=title,
                    url=url,
                    summary_html=f"<p>{summary}</p>",
                    summary_text=summary,
                    published=NOW - timedelta(hours=2, minutes=i),
                    categories=(section,),
                    content_hash=f"h{n}.{i}",
                )
            )
        with store.poll_writer() as writer:  # as a poll writes them
            writer.record([PollRecord(feed.id, NOW - timedelta(hours=1), 200, 0, None, NOW, items=tuple(items))])
    pairs = set()
    batch = []
    for i in range(subscribers):
        sections: list[str] | None
        if mix == "uniform":  # any non-empty subset, each with the same chance
            mask = rng.randint(1, 2 ** len(SECTIONS) - 1)
            sections = [s for k, s in enumerate(SECTIONS) if mask >> k & 1]
        else:
            sections = None if rng.random() < 0.4 else sorted(rng.sample(SECTIONS, rng.randint(1, 3)))
        zone = ZONES[rng.randrange(len(ZONES))]
        pairs.add((zone, tuple(sections) if sections else None))
        batch.append(
            {
                "email": f"reader{i}@mail{i % 50}.example",
                "email_key": f"reader{i}@mail{i % 50}.example",
                "name": f"Reader {i}",
                "sections": sections,
                "timezone": zone,
                "status": "active",
                "permanent_failures": 0,
                "from_config": False,
                "created_at": NOW - timedelta(days=2),
                "updated_at": NOW - timedelta(days=2),
            }
        )
        if len(batch) == 5000:
            with store.engine.begin() as conn:
                conn.execute(insert(t.subscribers), batch)
            batch = []
    if batch:
        with store.engine.begin() as conn:
            conn.execute(insert(t.subscribers), batch)
    store.close()
    return len(pairs)


# --------------------------------------------------------------------------- measuring a process


def _tree_memory(root: int) -> tuple[int, int]:
    """Bytes of (RSS, PSS) of `root` and all its descendants, from /proc.

    RSS counts the pages of shared libraries once per process; PSS shares them out, so the sum of
    PSS is what the processes together take from the machine."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    rss = pss = 0
    todo = [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith(b"Pss:"):
                        pss += int(line.split()[1]) * 1024
        except OSError:
            pass
    return rss, pss


class Measured:
    def __init__(self, label: str, cmd: list[str], env: dict[str, str]) -> None:
        self.label = label
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        peak = [0, 0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                rss, pss = _tree_memory(proc.pid)
                peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        self.stdout, self.stderr = proc.communicate()
        self.wall = time.perf_counter() - start
        done.set()
        sampler.join()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.returncode = proc.returncode
        self.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        self.peak_rss, self.peak_pss = peak
        self.max_single = after.ru_maxrss * 1024  # kB on Linux; the largest child waited for so far
        if proc.returncode != 0:
            raise SystemExit(f"{label} failed ({proc.returncode}):\n{self.stdout}\n{self.stderr}")

    def line(self, messages: int) -> str:
        rate = messages / self.wall if self.wall else 0.0
        per = self.cpu / messages * 1000 if messages else 0.0
        return (
            f"{self.label:<22} {messages:>7} msgs  {self.wall:7.2f} s  {rate:7.0f} msg/s  "
            f"{per:5.2f} ms CPU/msg  peak RSS {self.peak_rss / 2**20:4.0f} MB (PSS {self.peak_pss / 2**20:4.0f}), "
            f"largest process {self.max_single / 2**20:3.0f} MB"
        )


# --------------------------------------------------------------------------- the naive baseline


async def naive(config: Path, limit: int) -> int:
    import aiosmtplib

    from digest.compose import build_stories, compose
    from digest.pipeline.mailer import compose_options, edition_url, make_renderer

    settings = cfg.load(config)
    store = Store(settings.database_url)
    renderer = make_renderer(settings)
    options = compose_options(settings)
    smtp = aiosmtplib.SMTP(hostname=settings.smtp.host, port=settings.smtp.port, start_tls=False)
    await smtp.connect()
    sent = 0
    day = NOW.date()
    for tz in store.timezones_in_use(settings.digest.timezone):
        edition = store.get_edition(day=day, timezone=tz)
        assert edition is not None, "run the real send first: it builds the editions"
        stories = build_stories(store.edition_items(edition.id), options=options)
        for sub in store.iter_subscribers():
            if sent >= limit:
                break
            if sub.timezone != tz:
                continue
            ed = compose(
                stories,
                day=day,
                timezone=tz,
                chosen=sub.sections,
                options=options,
                web_url=edition_url(settings, day, tz),
            )
            if ed.is_empty:
                continue
            rendered = renderer.render(ed)
            unsubscribe = f"{settings.digest.base_url}/u/{sub.id}"
            msg = EmailMessage()
            msg["From"] = settings.smtp.sender
            msg["To"] = sub.email
            msg["Subject"] = rendered.subject
            msg["Date"] = format_datetime(datetime.now(UTC))
            msg["Message-ID"] = f"<e{edition.id}.s{sub.id}@review.example.org>"
            msg["List-Unsubscribe"] = f"<{unsubscribe}>"
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            msg.set_content(
                rendered.text.replace(PLACEHOLDER_UNSUBSCRIBE_URL, unsubscribe).replace(
                    PLACEHOLDER_PREFERENCES_URL, unsubscribe
                )
            )
            msg.add_alternative(
                rendered.html.replace(PLACEHOLDER_UNSUBSCRIBE_URL, unsubscribe).replace(
                    PLACEHOLDER_PREFERENCES_URL, unsubscribe
                ),
                subtype="html",
            )
            await smtp.send_message(msg)
            sent += 1
    await smtp.quit()
    return sent


# --------------------------------------------------------------------------- the run


def cpu_seconds(pid: int) -> float:
    """user+sys CPU seconds a running process has used so far (/proc/PID/stat utime, stime)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_sink() -> tuple[subprocess.Popen[str], int]:
    sink = subprocess.Popen(
        [sys.executable, str(HERE / "smtpsink.py"), "--port", "0", "--every", "3600"], stdout=subprocess.PIPE, text=True
    )
    assert sink.stdout is not None
    first = sink.stdout.readline()
    return sink, int(first.rsplit(":", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--naive", type=int, default=2_000, help="subscribers for the naive baseline (0: skip)")
    parser.add_argument("--workers", type=int, default=None, help="[smtp] workers (default: the config default)")
    parser.add_argument("--connections", type=int, default=None, help="[smtp] connections (default: the default)")
    parser.add_argument(
        "--mix",
        choices=sorted(MIXES),
        default="default",
        help="default: 40%% all sections, 60%% 1-3; uniform: any non-empty subset (issue 12)",
    )
    parser.add_argument("--top-stories", type=int, default=5, help="[digest] top_stories (default 5, as digest's)")
    parser.add_argument(
        "--shared", type=float, default=0.2, help="share of items three feeds carry alike (default 0.2)"
    )
    parser.add_argument("--keep", metavar="DIR", help="build the fixture in DIR and keep it")
    parser.add_argument("--naive-run", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument(
        "--database",
        metavar="URL",
        help="a PostgreSQL URL: send with `digest worker` processes there instead (bench/workers.py)",
    )
    parser.add_argument("--workers-hosts", default="1,2,4", help="with --database: numbers of workers, comma-separated")
    parser.add_argument("--feeds", type=int, default=200, help="with --database: feeds polled to build the edition")
    args = parser.parse_args()
    if args.database:  # issue 15: several workers on one database; bench/workers.py owns how
        from workers import bench

        bench(
            argparse.Namespace(
                database=args.database,
                workers_hosts=args.workers_hosts,
                feeds=args.feeds,
                hosts=50,
                subscribers=args.subscribers,
                timeout=900.0,
            ),
            phases=("send",),
        )
        return
    if args.naive_run:
        print(asyncio.run(naive(Path(args.naive_run), args.naive)))
        return

    folder = Path(args.keep or tempfile.mkdtemp(prefix="digest-bench-send-"))
    folder.mkdir(parents=True, exist_ok=True)
    sink, port = start_sink()
    try:
        config = write_config(
            folder,
            port=port,
            workers=args.workers,
            connections=args.connections,
            mix=args.mix,
            top_stories=args.top_stories,
        )
        t0 = time.perf_counter()
        pairs = populate(config, args.subscribers, mix=args.mix, shared=args.shared)
        feeds_n, items_n, _ = MIXES[args.mix]
        print(
            f"fixture ({args.mix} mix): {args.subscribers} subscribers, {feeds_n * items_n} items, "
            f"{len(ZONES)} time zones, {pairs} distinct (time zone, section set) pairs, "
            f"top_stories {args.top_stories}, shared {args.shared}; "
            f"built in {time.perf_counter() - t0:.1f} s"
        )
        print(
            f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, {sys.platform}, "
            f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (shared machine)"
        )
        env = {**os.environ, "DIGEST_NOW": NOW.isoformat(), "PYTHONPATH": str(HERE.parent)}
        sink_cpu = cpu_seconds(sink.pid)
        real = Measured(
            "digest send",
            [sys.executable, "-m", "digest", "--config", str(config), "send", "--date", NOW.date().isoformat()],
            env,
        )
        sent = sum(
            int(line.split(": ", 1)[1].split(" sent")[0])
            for line in real.stdout.splitlines()
            if line.startswith("edition ")
        )
        print(real.line(sent))
        print(
            f"{'  (the sink)':<22} {'':>7}       {'':>7}    {'':>7}        "
            f"{(cpu_seconds(sink.pid) - sink_cpu) / max(sent, 1) * 1000:5.2f} ms CPU/msg, on the same cores"
        )
        again = Measured(
            "digest send (again)",
            [sys.executable, "-m", "digest", "--config", str(config), "send", "--date", NOW.date().isoformat()],
            env,
        )
        resent = sum(
            int(line.split(": ", 1)[1].split(" sent")[0])
            for line in again.stdout.splitlines()
            if line.startswith("edition ")
        )
        print(f"{'re-run':<22} {resent:>7} msgs  {again.wall:7.2f} s  (must be 0)")
        if args.naive:
            base = Measured(
                "naive baseline",
                [sys.executable, str(HERE / "send.py"), "--naive-run", str(config), "--naive", str(args.naive)],
                env,
            )
            count = int(base.stdout.strip())
            print(base.line(count))
            real_rate, base_rate = sent / real.wall, count / base.wall
            print(
                f"speed-up: {real_rate / base_rate:.1f}x messages/s, "
                f"{(base.cpu / count) / (real.cpu / sent):.1f}x less CPU per message"
            )
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        sink.terminate()
        sink.wait()
    if not args.keep:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
