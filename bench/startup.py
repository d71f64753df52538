"""Time `digest poll` and rss2email's `r2e run` on the same unchanged feeds (all 304). Prints figures.

    python bench/startup.py                          # 1,000 feeds; rss2email from PyPI into a throwaway venv
    python bench/startup.py --r2e /tmp/r2e/bin/r2e   # an rss2email already installed
    python bench/startup.py --feeds 200 --runs 9
    git archive OLD digest | tar -x -C /tmp/old && python bench/startup.py --before /tmp/old   # old code too

The feeds are bench/poll.py's (RSS 2.0, 50 items each, fixed seed), served by a separate aiohttp
process on 100 loopback addresses that answers 304 when If-None-Match carries the feed's ETag and
counts what it answered. Both tools poll once to learn the ETags (200s; timed, for the record),
then take turns: `runs` polls each, alternating, so both meet the same machine load (with
--before, the older digest takes its turn too, on a database of its own). Every warm run must
have received exactly one 304 per feed, or the benchmark stops.

Both run without PYTHONDONTWRITEBYTECODE and PYTHONUNBUFFERED (set on some CI machines: digest,
installed editable, would compile its own modules on every start), digest's bytecode compiled
first as pip would. Wall is the whole command, interpreter start to exit; CPU is user+sys of the
command and its children (getrusage(RUSAGE_CHILDREN) before and after). The medians are compared.
Start-up alone (`digest --help`, `r2e --help`, `python -c pass`) is timed the same way. Linux only
(loopback addresses beyond 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import multiprocessing.connection
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from poll import feed_handler, listen_on_loopback  # noqa: E402  (bench/poll.py: the same feeds as the poll benchmark)

ROOT = Path(__file__).resolve().parents[1]
# Both tools run as an installed program would: with bytecode caches (pip compiles rss2email's at
# install; digest's are compiled below), and stdout buffered as usual.
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}


def _serve(feeds: int, items: int, hosts: int, port_out: multiprocessing.connection.Connection, counts: Any) -> None:
    """The feed server (its own process): ETag validators, and a count of 200s and 304s answered."""
    feed, _ = feed_handler(feeds, items, honour_etag=lambda: True, counts=counts)

    async def main() -> None:
        port = await listen_on_loopback(feed, hosts)
        port_out.send(port)
        await asyncio.Event().wait()

    asyncio.run(main())


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], *, cwd: Path, env: dict[str, str] = ENV) -> tuple[float, float, str]:
    """(wall s, CPU s, stdout) of one command run to its end; stops the benchmark if it fails."""
    cpu = _cpu_children()
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return wall, _cpu_children() - cpu, proc.stdout


def rss2email(path: str | None, work: Path, version: str) -> str:
    """The r2e executable: the one given, or rss2email from PyPI in a venv made here."""
    if path:
        return path
    venv = work / "r2e-venv"
    if not (venv / "bin" / "r2e").exists():
        print(f"installing rss2email=={version} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"rss2email=={version}"], check=True)
    return str(venv / "bin" / "r2e")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _summary(label: str, rows: list[tuple[float, float]]) -> tuple[float, float]:
    walls, cpus = [r[0] for r in rows], [r[1] for r in rows]
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(
        f"{label:<24} {wall:>8.3f} {min(walls):>8.3f} {max(walls):>8.3f} {cpu:>8.3f} {min(cpus):>8.3f}",
        flush=True,
    )
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--feeds", type=int, default=1000)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--hosts", type=int, default=100, help="loopback addresses the feeds are spread over")
    ap.add_argument("--runs", type=int, default=7, help="warm polls of each tool (alternating); medians compared")
    ap.add_argument("--r2e", help="path of an installed r2e (default: install rss2email into a venv in the work dir)")
    ap.add_argument("--r2e-version", default="3.14")
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it (configs, databases, the venv)")
    ap.add_argument(
        "--before",
        type=Path,
        help="also run the digest package in this folder (e.g. `git archive OLD digest | tar -x -C DIR`), "
        "taking turns with the others, for before/after figures",
    )
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="digest-startbench-"))
    work.mkdir(parents=True, exist_ok=True)
    r2e = rss2email(args.r2e, work, args.r2e_version)
    old_env = {**ENV, "PYTHONPATH": str(args.before.resolve())} if args.before else ENV
    for source in (ROOT, args.before) if args.before else (ROOT,):
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(source / "digest")], check=True, env=ENV)

    ctx = multiprocessing.get_context("fork")  # before any thread; the child only serves
    counts = ctx.Array("l", 2, lock=False)  # 200s, 304s answered
    recv, send = ctx.Pipe(duplex=False)
    server = ctx.Process(target=_serve, args=(args.feeds, args.items, args.hosts, send, counts), daemon=True)
    server.start()
    port = recv.recv()
    try:
        urls = [f"http://127.0.0.{i % args.hosts + 1}:{port}/feed/{i}.xml" for i in range(args.feeds)]
        for stale in [*work.glob("*.sqlite*"), work / "rss2email.json"]:
            stale.unlink(missing_ok=True)
        feed_lines = "".join(f'[[feeds]]\nurl = "{u}"\n' for u in urls)
        for name in ("digest", "before"):
            (work / f"{name}.toml").write_text(
                f'[digest]\ndatabase = "sqlite:///{work / name}.sqlite"\nallow_private_addresses = true\n\n{feed_lines}'
            )
        r2e_config = work / "rss2email.cfg"
        r2e_config.write_text(
            "[DEFAULT]\nto = reader@example.org\nfrom = r2e@example.org\n\n"
            + "".join(f"[feed.f{i}]\nurl = {u}\n\n" for i, u in enumerate(urls))
        )
        tools = {
            "digest": ([sys.executable, "-m", "digest", "--config", str(work / "digest.toml"), "poll"], ENV),
            "rss2email": ([r2e, "-c", str(r2e_config), "-d", str(work / "rss2email.json"), "run", "--no-send"], ENV),
        }
        if args.before:
            tools["digest before"] = (
                [sys.executable, "-m", "digest", "--config", str(work / "before.toml"), "poll"],
                old_env,
            )
        version = subprocess.run([r2e, "--version"], capture_output=True, text=True).stdout.strip()
        print(
            f"{args.feeds} feeds x {args.items} items on {args.hosts} hosts; {os.cpu_count()} CPUs; "
            f"Python {sys.version.split()[0]}; {version}; load average before: {_load()}",
            flush=True,
        )

        def run(tool: str, expect: tuple[int, int]) -> tuple[float, float]:
            cmd, env = tools[tool]
            before = counts[0], counts[1]
            wall, cpu, _ = timed(cmd, cwd=work, env=env)
            got = counts[0] - before[0], counts[1] - before[1]
            if got != expect:
                sys.exit(f"{tool}: expected (200s, 304s) = {expect}, the server answered {got}")
            return wall, cpu

        print(f"{'run':<24} {'wall s':>8} {'min':>8} {'max':>8} {'CPU s':>8} {'min':>8}   (median, min, max)")
        for tool in tools:
            _summary(f"{tool} cold (200)", [run(tool, (args.feeds, 0))])
        warm: dict[str, list[tuple[float, float]]] = {tool: [] for tool in tools}
        for _ in range(args.runs):
            for tool in tools:
                warm[tool].append(run(tool, (0, args.feeds)))
        medians = {tool: _summary(f"{tool} warm (304)", rows) for tool, rows in warm.items()}

        commands = {
            "python -c pass": ([sys.executable, "-c", "pass"], ENV),
            "digest --help": ([sys.executable, "-m", "digest", "--help"], ENV),
            "r2e --help": ([r2e, "--help"], ENV),
        }
        if args.before:
            commands["digest before --help"] = ([sys.executable, "-m", "digest", "--help"], old_env)
        starts: dict[str, list[tuple[float, float]]] = {label: [] for label in commands}
        for _ in range(args.runs):
            for label, (cmd, env) in commands.items():
                starts[label].append(timed(cmd, cwd=work, env=env)[:2])
        for label, rows in starts.items():
            _summary(label, rows)

        rw, rc = medians["rss2email"]
        for tool in [t for t in tools if t != "rss2email"]:
            dw, dc = medians[tool]
            print(
                f"{tool} / rss2email, warm medians: wall {dw / rw:.3f} (1/{rw / dw:.1f}), "
                f"CPU {dc / rc:.3f} (1/{rc / dc:.1f}); target: wall <= 0.25"
            )
        print(f"load average after: {_load()}")
    finally:
        server.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
