"""Time digest.synopsis.synopsis() per story and for a 300-story day; prints figures, asserts nothing.

    python bench/synopsis.py            # 300 synthetic stories, 2-6 outlets each, fixed seed
    python bench/synopsis.py --corpus   # also the 20 hand-picked corpus stories of tests/data

Targets (issue 13): <= 20 ms per story and <= 2 s for a 300-story day on one core. The process is
pinned to one CPU where the OS allows it, and CPU time is reported beside wall time because the
machine may be shared. The first story pays for building the sentence splitters (pysbd compiles its
rules per language once per process); it is shown apart.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from digest import sentences
from digest.synopsis import synopsis

_WORDS = (
    "government minister bank rates inflation election court police storm earthquake market shares oil "
    "president talks ceasefire strike union football final record budget tax energy climate summit report "
    "city river fire flood vaccine hospital school university airport train crash launch rocket satellite "
    "museum festival award film album company profit loss jobs cuts deal merger sanctions officials said "
    "on friday after weeks of debate the council approved plans while critics warned about costs"
)
_NAMES = "Paris Berlin Moscow Tokyo Madrid Rome London Chicago Lagos Delhi Cairo Lima Oslo Dr. Smith U.S."
WORDS = _WORDS.split()
NAMES = _NAMES.split()


@dataclass(frozen=True)
class BenchItem:
    id: int
    source: str
    title: str
    url: str | None
    summary_html: str
    summary_text: str


def sentence(rng: random.Random, topic: list[str]) -> str:
    words = rng.sample(topic, 3) + rng.sample(WORDS, rng.randint(8, 20)) + [rng.choice(NAMES)]
    rng.shuffle(words)
    return " ".join(words).capitalize() + rng.choice([".", ".", ".", "!", "?"])


def day(stories: int = 300, seed: int = 1) -> list[list[BenchItem]]:
    rng = random.Random(seed)
    out, n = [], 0
    for s in range(stories):
        topic = rng.sample(WORDS, 6)
        members = []
        for o in range(rng.randint(2, 6)):
            n += 1
            body = " ".join(sentence(rng, topic) for _ in range(rng.randint(2, 10)))
            members.append(
                BenchItem(
                    n,
                    f"outlet-{(s + o) % 40}",
                    " ".join(topic[:4]).title(),
                    f"https://o{o}.example/{n}",
                    f"<p>{body}</p>",
                    body[:280],
                )
            )
        out.append(members)
    return out


def corpus_stories() -> list[list[object]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_synopsis_quality import reference_stories

    return [list(members) for _, _, members in reference_stories()]


def measure(label: str, stories: list[list[BenchItem]] | list[list[object]]) -> None:
    wall_ms: list[float] = []
    cpu_ms: list[float] = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for members in stories:
        t, c = time.perf_counter(), time.process_time()
        synopsis(members)  # type: ignore[arg-type]
        wall_ms.append((time.perf_counter() - t) * 1000)
        cpu_ms.append((time.process_time() - c) * 1000)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    items = sum(len(m) for m in stories)
    print(f"{label}: {len(stories)} stories, {items} items")
    print(f"  first story (builds the splitters): {wall_ms[0]:.1f} ms wall")
    for name, values in (("wall", wall_ms[1:]), ("CPU", cpu_ms[1:])):
        p95 = statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]
        print(
            f"  per story after it, {name}: mean {statistics.mean(values):.2f} ms, median "
            f"{statistics.median(values):.2f} ms, p95 {p95:.2f} ms, max {max(values):.2f} ms   (target <= 20 ms)"
        )
    print(f"  whole day: {wall:.2f} s wall, {cpu:.2f} s CPU   (target <= 2 s for 300 stories)")


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    measure("synthetic day", day())
    if "--corpus" in sys.argv:
        stories = corpus_stories()
        measure("corpus (tests/data/synopsis_references.toml)", stories)
        # Again, with each language's splitter and stemmer built but no split remembered: the first pass
        # paid once per language (razdel, pysbd's rules, the Snowball stemmer) inside some story.
        sentences._split.cache_clear()
        measure("corpus again (language set-up paid, split cache cleared)", stories)


if __name__ == "__main__":
    main()
