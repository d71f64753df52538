"""Time digest.cluster.cluster() on 50,000 items; prints figures, asserts nothing.

    python bench/cluster.py                  # 50,000 synthetic items (title + summary), one core
    python bench/cluster.py --items 10000
    python bench/cluster.py --corpus         # every item of the shared news corpus (DIGEST_CORPUS or ../shared/corpus)
    python bench/cluster.py --rounds 5       # five fresh processes, one after another: each run, then the median
    python bench/cluster.py --rounds 5 --against /path/to/other   # alternated with the digest importable there

A first run's time on a shared machine moves by half from one hour to the next (docs/performance.md,
Clustering, "Session 41"): one run says little, and two builds are compared only alternated, round by
round, in one loop. `--against` takes a directory to put first on PYTHONPATH (a checkout, or a
compiled wheel installed with `pip install --no-deps --target DIR .`).

Synthetic items are written from a fixed seed, so figures are comparable across runs. They look like a
busy day of 200 outlets: a vocabulary of 40,000 invented words drawn with Zipf frequencies (a few
words in every text, most in few), 5,000 invented names, and 15,000 stories told by 1 to 12 outlets
each, every telling with its own wording around the story's names, figures and key words.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path

from digest.cluster import Candidate, cluster

SOURCES = 200
STORIES_PER_ITEM = 0.3  # 50,000 items -> 15,000 stories


def _word(rng: random.Random, length: int) -> str:
    consonants, vowels = "bcdfghklmnprstvz", "aeiou"
    return "".join(rng.choice(consonants if k % 2 == 0 else vowels) for k in range(length))


def synthetic(n: int, seed: int = 1) -> tuple[list[Candidate], list[int]]:
    """n items and the story each one tells."""
    rng = random.Random(seed)
    vocabulary = sorted({_word(rng, rng.randint(4, 10)) for _ in range(45_000)})[:40_000]  # sorted: no hash order
    names = sorted({_word(rng, rng.randint(4, 8)).capitalize() for _ in range(6_000)})[:5_000]
    weights = list(accumulate(1 / (rank + 1) for rank in range(len(vocabulary))))  # Zipf
    t0 = datetime(2026, 5, 4, tzinfo=UTC)

    def common(k: int) -> list[str]:
        return rng.choices(vocabulary, cum_weights=weights, k=k)

    items: list[Candidate] = []
    labels: list[int] = []
    story = 0
    while len(items) < n:
        story += 1
        key_words = rng.sample(vocabulary[200:], 4)  # a story's own words are not the commonest
        who = rng.sample(names, 2)
        figure = str(rng.randint(2, 999))
        start = t0 + timedelta(seconds=rng.randint(0, 86_400))
        tellings = min(n - len(items), 1 + int(rng.paretovariate(1.6)) % 12)
        for _ in range(tellings):
            title = [*rng.sample(key_words, 3), who[0], *common(4)]
            rng.shuffle(title)
            summary = [who[0], *rng.sample(key_words, 2), who[1], figure, *common(28)]
            rng.shuffle(summary)
            source = rng.randrange(SOURCES)
            items.append(
                Candidate(
                    title=" ".join(title).capitalize(),
                    url=f"https://s{source}.example/{len(items)}",
                    source=f"source-{source}",
                    when=start + timedelta(minutes=rng.randint(0, 600)),
                    summary_text=" ".join(summary) + ".",
                )
            )
            labels.append(story)
    return items, labels


def pair_scores(groups: list[list[int]], labels: list[int]) -> tuple[float, float]:
    """Pairwise precision and recall of `groups` against the stories the items were written from."""
    from collections import Counter
    from math import comb

    found = sum(comb(len(g), 2) for g in groups)
    true = sum(comb(k, 2) for k in Counter(labels).values())
    both = sum(comb(k, 2) for g in groups for k in Counter(labels[i] for i in g).values())
    return (both / found if found else 1.0), (both / true if true else 1.0)


def corpus() -> list[Candidate]:
    from digest.errors import DigestError
    from digest.parse import parse_feed

    root = Path(os.environ.get("DIGEST_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus")
    now = datetime(2026, 11, 30, tzinfo=UTC)
    items = []
    for path in sorted((root / "feeds" / "news").iterdir()):
        try:
            feed = parse_feed(path.read_bytes(), url=f"https://corpus.invalid/{path.name}", content_type=None, now=now)
        except DigestError:
            continue
        for it in feed.items:
            when = it.published or datetime(2000, 1, 1, tzinfo=UTC)
            items.append(
                Candidate(it.title, it.url, it.outlet or path.name, when, summary_text=it.summary_text, via=path.name)
            )
    return items


def rounds(args: argparse.Namespace) -> None:
    """Run the bench `args.rounds` times, each in a fresh process (a first run wants cold caches), this
    digest and `args.against`'s alternated; print each run and each build's median."""
    builds: list[tuple[str, str | None]] = [("this", os.environ.get("PYTHONPATH"))]
    if args.against:
        builds.append((f"against {args.against}", args.against))
    child = [sys.executable, __file__, "--report", *(["--corpus"] if args.corpus else ["--items", str(args.items)])]
    firsts: dict[str, list[float]] = {label: [] for label, _ in builds}
    for round_ in range(1, args.rounds + 1):
        for label, path in builds:
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            if path:
                env["PYTHONPATH"] = path
            done = subprocess.run(child, env=env, capture_output=True, text=True, check=True)
            report = json.loads(done.stdout.splitlines()[-1])
            firsts[label].append(report["first"])
            print(
                f"round {round_}, {label}: first run {report['first']:.2f} s CPU, second {report['second']:.2f} s, "
                f"{report['groups']} stories, {report['clustering']}, load {report['load']:.1f}",
                flush=True,
            )
    for label, times in firsts.items():
        spread = f"min {min(times):.2f}, max {max(times):.2f}"
        print(f"{label}: first runs median {statistics.median(times):.2f} s CPU ({spread})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--corpus", action="store_true")
    parser.add_argument("--rounds", type=int, default=1, help="runs, each in a fresh process")
    parser.add_argument("--against", help="a directory whose digest is run alternately with this one")
    parser.add_argument("--report", action="store_true", help=argparse.SUPPRESS)  # one run, its figures as JSON last
    args = parser.parse_args()
    if args.rounds > 1 or args.against:
        rounds(args)
        return
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    start = time.perf_counter()
    items, labels = (corpus(), None) if args.corpus else synthetic(args.items)
    print(f"built {len(items)} items in {time.perf_counter() - start:.1f} s")
    used_by_run: list[float] = []
    for label in ("first run", "second run"):  # the second has digest.words' caches warm
        cpu = time.process_time()
        start = time.perf_counter()
        groups = cluster(items)
        elapsed, used = time.perf_counter() - start, time.process_time() - cpu
        used_by_run.append(used)
        merged = sum(1 for g in groups if len(g) > 1)
        print(
            f"{label}: {len(items)} items -> {len(groups)} stories ({merged} with more than one item) "
            f"in {elapsed:.2f} s wall, {used:.2f} s CPU"
        )
    if labels is not None:
        precision, recall = pair_scores(groups, labels)
        print(f"written as {len(set(labels))} stories; pairwise precision {precision:.3f}, recall {recall:.3f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    # The interpreter's build moves these figures by ~8%: Debian's python3 against pyenv's
    # (docs/performance.md, Clustering, "Session 26").
    print(f"Python {sys.version.split()[0]} at {os.path.realpath(sys.executable)}")
    # A wheel's clustering is compiled by mypyc (hatch_build.py), an editable install's is not: about a fifth apart.
    from importlib.machinery import EXTENSION_SUFFIXES

    import digest.cluster.grouping

    compiled = (digest.cluster.grouping.__file__ or "").endswith(tuple(EXTENSION_SUFFIXES))
    clustering = "compiled by mypyc" if compiled else "pure Python"
    print(f"clustering: {clustering} ({digest.cluster.grouping.__file__})")
    # On a shared machine CPU time grows with the load (the other jobs share the cores' caches): say it.
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    if args.report:  # for `rounds`, which runs this in a child process
        first, second = used_by_run
        figures = {"first": first, "second": second, "groups": len(groups), "clustering": clustering}
        print(json.dumps({**figures, "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
