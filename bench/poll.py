"""Time the real `digest poll` on 1,000 local feeds: cold, warm (304) and unchanged 200. Prints figures.

    python bench/poll.py                      # 1,000 feeds of 50 items, 100 hosts
    python bench/poll.py --feeds 200 --items 20 --keep /tmp/pollbench

Feeds are generated here (fixed seed, invented text): RSS 2.0 with HTML descriptions (links with
tracking parameters, images, emphasis), categories, dc:creator, ~45 KB each. A separate *process*
serves them with aiohttp on many loopback addresses (127.0.0.1 .. 127.0.0.<hosts>), so the
fetcher's per-host limit behaves as with many publishers and the server does not share the
measured process's event loop. `digest --config X poll` then runs as a subprocess three times
against one fresh SQLite file:

* cold:      every feed is new (200, parse, store 50 items);
* warm:      the server honours If-None-Match and answers 304;
* unchanged: the server ignores conditional headers and sends identical bytes (200).

Wall time is the whole command (interpreter start, config load, feed sync, poll, exit); "poll" is
the poll phase alone, as `digest poll` reports it on its last line. Peak RSS is sampled from /proc
every 10 ms as the sum over the digest process and its parser workers (their whole tree), and
getrusage(RUSAGE_CHILDREN).ru_maxrss gives the largest single process as a cross-check.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import multiprocessing
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from hashlib import sha1
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_VOCABULARY = (
    "government minister bank rates inflation election court police storm earthquake market shares oil "
    "president talks ceasefire strike union football final record budget tax energy climate summit report "
    "city river fire flood vaccine hospital school university airport train crash launch rocket satellite "
    "museum festival award film album company profit loss jobs cuts deal merger sanctions parliament vote "
    "coalition opposition reform pension wages housing prices exports imports harvest drought pipeline "
    "talks delegation treaty border troops drill navy fleet aircraft research telescope orbit probe "
    "league coach transfer season stadium fans playoff medal theatre gallery novel premiere critics"
)
_CITIES = "Paris Berlin Moscow Tokyo Beijing Madrid Rome London Chicago Lagos Delhi Cairo Lima Oslo Kazan"
_WORDS = _VOCABULARY.split()
_PLACES = _CITIES.split()
_CATEGORIES = (
    "World",
    "Politics",
    "Business",
    "Economy",
    "Sport",
    "Football",
    "Science",
    "Space",
    "Culture",
    "Society",
    "Defense",
    "Technology",
    "Health",
    "Opinion",
)
_AUTHORS = ("Anna Petrova", "John Miller", "Li Wei", "Maria Garcia", "Oleg Smirnov", "Sarah Connor")


# --------------------------------------------------------------------------- feeds


def _sentence(rng: random.Random, lo: int = 8, hi: int = 18) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(lo, hi))]
    words.insert(rng.randrange(len(words)), rng.choice(_PLACES))
    return " ".join(words).capitalize() + "."


def _description(rng: random.Random, host: str, n: int) -> str:
    """An item's HTML body as publishers write it: paragraphs, a tracked link, an image, a pixel."""
    paras = []
    for p in range(2):
        text = " ".join(_sentence(rng, 7, 15) for _ in range(1 + (p == 0 and rng.random() < 0.5)))
        if p == 0:
            words = text.split(" ")
            i = rng.randrange(1, len(words))
            words[i] = (
                f'<a href="https://{host}/news/{n}/related?utm_source=rss&amp;utm_medium=feed&amp;id={n}">'
                f"{words[i]}</a>"
            )
            words[0] = f"<strong>{words[0]}</strong>"
            text = " ".join(words)
        paras.append(f"<p>{text}</p>")
    paras.insert(1, f'<p><img src="https://{host}/img/{n}.jpg" width="640" height="360" alt="photo"></p>')
    paras.append(f'<img src="https://counter.{host}/pixel.gif?id={n}" width="1" height="1">')
    return "".join(paras)


def make_feed(index: int, items: int, *, now: datetime) -> bytes:
    rng = random.Random(index)
    host = f"news{index}.example.org"
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>\n',
        f"<title>{html.escape(rng.choice(_PLACES))} Daily {index}</title>\n<link>https://{host}/</link>\n"
        f"<description>News from {host}</description>\n<language>en</language>\n"
        f'<atom:link href="https://{host}/rss.xml" rel="self" type="application/rss+xml"/>\n',
    ]
    for n in range(items):
        when = now - timedelta(minutes=17 * n + rng.randint(0, 16))
        cats = "".join(f"<category>{c}</category>" for c in rng.sample(_CATEGORIES, rng.randint(1, 3)))
        out.append(
            "<item>\n"
            f"<title>{html.escape(_sentence(rng, 6, 12)[:-1])}</title>\n"
            f"<link>https://{host}/news/{index}-{n}.html?utm_source=rss&amp;utm_campaign=feed</link>\n"
            f'<guid isPermaLink="false">{host}-{index}-{n}</guid>\n'
            f"<pubDate>{format_datetime(when)}</pubDate>\n"
            f"<dc:creator>{rng.choice(_AUTHORS)}</dc:creator>\n{cats}\n"
            f"<description><![CDATA[{_description(rng, host, n)}]]></description>\n"
            "</item>\n"
        )
    out.append("</channel>\n</rss>\n")
    return "".join(out).encode("utf-8")


# --------------------------------------------------------------------------- server (own process)


def _serve(
    feeds: int,
    items: int,
    hosts: int,
    port_out: multiprocessing.connection.Connection,
    mode: multiprocessing.sharedctypes.Synchronized[int],
) -> None:
    feed, size = feed_handler(feeds, items, honour_etag=lambda: mode.value == 0)

    async def main() -> None:
        port = await listen_on_loopback(feed, hosts)
        port_out.send((port, size))
        await asyncio.Event().wait()

    asyncio.run(main())


def feed_handler(
    feeds: int, items: int, *, honour_etag: Callable[[], bool], counts: Any = None
) -> tuple[Callable[[Any], Awaitable[Any]], int]:
    """The handler of /feed/<n>.xml for the feed servers of the benches, and the feeds' total size.

    Each feed carries an ETag; a request whose If-None-Match has it is answered 304 while
    `honour_etag()` says so. With `counts` (a shared array), counts[0] and counts[1] count the 200s
    and 304s answered."""
    from aiohttp import web

    now = datetime.now(UTC).replace(microsecond=0)
    bodies = [make_feed(i, items, now=now) for i in range(feeds)]
    tags = [f'"{sha1(b).hexdigest()[:16]}"' for b in bodies]

    async def feed(request: web.Request) -> web.StreamResponse:
        i = int(request.match_info["n"])
        headers = {"ETag": tags[i], "Content-Type": "application/rss+xml; charset=utf-8"}
        unchanged = request.headers.get("If-None-Match") == tags[i] and honour_etag()
        if counts is not None:
            counts[1 if unchanged else 0] += 1
        if unchanged:
            return web.Response(status=304, headers=headers)
        return web.Response(body=bodies[i], headers=headers)

    return feed, sum(map(len, bodies))


async def listen_on_loopback(feed: Any, hosts: int) -> int:
    """Serve /feed/<n>.xml with `feed` on 127.0.0.1 ... 127.0.0.<hosts>, one port for all; the port.

    Loopback addresses stand for publishers' hosts, so per-host limits see `hosts` hosts."""
    from aiohttp import web

    app = web.Application()
    app.router.add_get("/feed/{n:\\d+}.xml", feed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    first = web.TCPSite(runner, "127.0.0.1", 0)
    await first.start()
    port: int = first._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    for h in range(2, hosts + 1):
        await web.TCPSite(runner, f"127.0.0.{h}", port).start()
    return port


# --------------------------------------------------------------------------- measuring


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants, from /proc/<pid>/task/*/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_of(pid: int) -> float | None:
    """CPU seconds (user + sys) a live process has used so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _busy_seconds() -> float:
    """CPU time the whole machine has spent busy (all CPUs; steal included: the hypervisor's other guests)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def run_poll(config: Path, label: str, feeds: int, server_pid: int) -> dict[str, float]:
    # Other work on the machine (other jobs, the hypervisor's other guests) skews wall times: what
    # the machine was busy with besides digest and the feed server is reported with each run.
    busy, server_cpu = _busy_seconds(), _cpu_of(server_pid) or 0.0
    cpu = _cpu_children()
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "digest", "--config", str(config), "poll"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    peak = [0, 0]  # tree sum, processes
    main_cpu = [0.0]  # the digest process alone, as last seen alive

    def sample() -> None:
        while proc.poll() is None:
            pids = process_tree(proc.pid)
            peak[0] = max(peak[0], sum(rss_kib(p) for p in pids))
            peak[1] = max(peak[1], len(pids))
            main_cpu[0] = _cpu_of(proc.pid) or main_cpu[0]
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    text = out.decode()
    if proc.returncode != 0:
        sys.exit(f"{label}: digest poll exited {proc.returncode}\n{err.decode()[-3000:]}")
    last = text.strip().splitlines()[-1]
    # Releases before the poll line carried its duration count as all wall time.
    m = re.search(r"polled (\d+) feeds: (\d+) new items, (\d+) failed(?:, in ([\d.]+) s)?", last)
    if not m or int(m.group(3)):
        sys.exit(f"{label}: unexpected result: {last}\n{err.decode()[-3000:]}")
    return {
        "wall": wall,
        "poll": float(m.group(4) or wall),
        "new": int(m.group(2)),
        "feeds": feeds,
        "cpu": _cpu_children() - cpu,
        "main_cpu": main_cpu[0],
        "other": _busy_seconds() - busy - (_cpu_of(server_pid) or 0.0) + server_cpu - (_cpu_children() - cpu),
        "rss_mb": peak[0] / 1024,
        "procs": peak[1],
        "maxrss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def _row(label: str, r: dict[str, float], feeds: int) -> str:
    return (
        f"{label:<10} {r['wall']:>7.2f} {feeds / r['wall']:>8.0f} {r['poll']:>7.2f} {feeds / r['poll']:>8.0f} "
        f"{r['new'] / r['poll']:>8.0f} {r['cpu']:>6.1f} {r['main_cpu']:>5.1f} {r['rss_mb']:>11.0f} "
        f"{r['maxrss_mb']:>8.0f} {r['other']:>6.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--hosts", type=int, default=100, help="loopback addresses the feeds are spread over")
    ap.add_argument("--keep", type=Path, help="keep the config and database in this folder")
    ap.add_argument("--repeat", type=int, default=1, help="run the three polls this many times; print the best")
    ap.add_argument(
        "--serve",
        choices=("etag", "ignore"),
        help="only serve the feeds (honouring or ignoring If-None-Match) and write the config, "
        "for profiling `digest poll` by hand; stop with Ctrl-C",
    )
    args = ap.parse_args()

    ctx = multiprocessing.get_context("fork")  # before any thread; the child only serves
    mode = ctx.Value("i", 1 if args.serve == "ignore" else 0, lock=False)
    recv, send = ctx.Pipe(duplex=False)
    server = ctx.Process(target=_serve, args=(args.feeds, args.items, args.hosts, send, mode), daemon=True)
    server.start()
    assert server.pid is not None  # set by start(): the feed server's CPU is read from /proc/<pid>
    port, total_bytes = recv.recv()

    work = args.keep or Path(tempfile.mkdtemp(prefix="digest-pollbench-"))
    work.mkdir(parents=True, exist_ok=True)
    db = work / "poll.sqlite"
    for stale in work.glob("poll.sqlite*"):
        if not args.serve:
            stale.unlink()
    config = work / "digest.toml"
    feed_lines = "".join(
        f'[[feeds]]\nurl = "http://127.0.0.{i % args.hosts + 1}:{port}/feed/{i}.xml"\n' for i in range(args.feeds)
    )
    config.write_text(f'[digest]\ndatabase = "sqlite:///{db}"\nallow_private_addresses = true\n\n{feed_lines}')

    if args.serve:
        print(f"serving; run: {sys.executable} -m digest --config {config} poll", flush=True)
        try:
            server.join()
        except KeyboardInterrupt:
            server.kill()
        return
    print(
        f"{args.feeds} feeds x {args.items} items, {total_bytes / args.feeds / 1024:.1f} KB per feed, "
        f"{args.hosts} hosts; machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    header = (
        f"{'run':<10} {'wall s':>7} {'feeds/s':>8} {'poll s':>7} {'feeds/s':>8} {'items/s':>8} "
        f"{'CPU s':>6} {'main':>5} {'peak RSS MB':>11} {'max1 MB':>8} {'other':>6}"
    )
    print(header)
    best: dict[str, dict[str, float]] = {}
    try:
        for _ in range(args.repeat):
            for stale in work.glob("poll.sqlite*"):
                stale.unlink()
            for label, server_mode in (("cold", 0), ("warm 304", 0), ("same 200", 1)):
                mode.value = server_mode
                r = run_poll(config, label, args.feeds, server.pid)
                print(_row(label, r, args.feeds), flush=True)
                if label not in best or r["wall"] < best[label]["wall"]:
                    best[label] = r
    finally:
        server.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.repeat > 1:
        print(f"best of {args.repeat} (by wall time):")
        print(header)
        for label, r in best.items():
            print(_row(label, r, args.feeds))
    print(
        "CPU: user+sys of the digest process and its parser workers (RUSAGE_CHILDREN difference); "
        "main: the digest process alone (from /proc, last sample before exit)"
    )
    print(
        "peak RSS: sum over the digest process tree sampled from /proc every 10 ms; "
        "max1: getrusage(RUSAGE_CHILDREN).ru_maxrss, the largest single process so far; "
        "other: CPU seconds the machine spent on anything else meanwhile (other jobs, steal)"
    )


if __name__ == "__main__":
    main()
