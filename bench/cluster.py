"""Time digest.cluster.cluster() on 2,000+ items; prints figures, asserts nothing.

    python bench/cluster.py            # synthetic headlines (2,000 items, 40 sources)
    python bench/cluster.py --corpus   # every item of the shared news corpus (DIGEST_CORPUS or ../shared/corpus)

Synthetic items are built from a fixed vocabulary with a fixed seed, so figures are comparable across
runs; a quarter of them are rewordings of another source's headline, as on a busy news day.
"""

from __future__ import annotations

import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from digest.cluster import Candidate, cluster, title_shingles

_WORDS = (
    "government minister bank rates inflation election court police storm earthquake market shares oil "
    "president talks ceasefire strike union football final record budget tax energy climate summit "
    "report city river fire flood vaccine hospital school university airport train crash launch rocket "
    "satellite museum festival award film album company profit loss jobs cuts deal merger sanctions"
)
_PLACES = "Paris Berlin Moscow Tokyo Beijing Madrid Rome London Chicago Lagos Delhi Cairo Lima Oslo"
# A small vocabulary on purpose: every headline shares words with hundreds of others, the worst case
# for the inverted index. Real feeds share far less (see --corpus).
WORDS = _WORDS.split()
PLACES = _PLACES.split()


def synthetic(n: int, seed: int = 1) -> list[Candidate]:
    rng = random.Random(seed)
    t0 = datetime(2026, 5, 4, tzinfo=UTC)
    items: list[Candidate] = []
    for i in range(n):
        if items and rng.random() < 0.25:
            base = rng.choice(items).title.split()
            rng.shuffle(base)
            title = " ".join(base[:-1] + [rng.choice(WORDS)])
        else:
            title = " ".join([rng.choice(PLACES), *rng.sample(WORDS, rng.randint(5, 10)), str(rng.randint(1, 99))])
        items.append(Candidate(title, f"https://s{i % 40}.example/{i}", f"source-{i % 40}",
                               t0 + timedelta(seconds=rng.randint(0, 86400))))
    return items


def corpus() -> list[Candidate]:
    import feedparser

    root = Path(os.environ.get("DIGEST_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus")
    items = []
    for path in sorted((root / "feeds" / "news").iterdir()):
        for e in feedparser.parse(path.read_bytes()).entries:
            stamp = e.get("published_parsed") or e.get("updated_parsed")
            when = datetime(*stamp[:6], tzinfo=UTC) if stamp else datetime(2000, 1, 1, tzinfo=UTC)
            items.append(Candidate(str(e.get("title") or ""), e.get("link"), path.name, when))
    return items


def main() -> None:
    items = corpus() if "--corpus" in sys.argv else synthetic(2000)
    for label in ("cold", "warm"):
        if label == "cold":
            title_shingles.cache_clear()
        start = time.perf_counter()
        groups = cluster(items)
        elapsed = time.perf_counter() - start
        merged = sum(1 for g in groups if len(g) > 1)
        print(f"{label}: {len(items)} items -> {len(groups)} groups ({merged} with >1 item) in {elapsed * 1000:.0f} ms")


if __name__ == "__main__":
    main()
