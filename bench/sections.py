"""Time digest.sections.classify() with the rules `digest init` ships; prints figures, asserts nothing.

    python bench/sections.py            # every item of the shared corpus's news feeds (2,586)
    python bench/sections.py --naive    # also with the keyword scan as it was before the indexes

An edition classifies each of its items once (`digest.pipeline.mailer.classifier`), so a newsroom
of a hundred feeds pays this for a few thousand items at every `digest send` that builds an
edition. The shipped rules have ~1,200 keywords over eight sections. The process is pinned to one
CPU where the OS allows it; CPU time is what to read on a shared machine. The first items pay for
stemming each keyword once (digest.words' caches), so a first and a second pass are shown.
`--naive` swaps in the scan every keyword made of every position of the title and summary before
session 12, and looks for every keyword of every rule (session 19's index of the rules' keywords
off); the results are the same, which the run checks, and the times show what the indexes save.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from digest import config as cfg
from digest import sections
from digest.errors import DigestError
from digest.parse import parse_feed


def corpus_items() -> list[dict[str, Any]]:
    root = Path(os.environ.get("DIGEST_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus")
    now = datetime(2030, 1, 1, tzinfo=UTC)
    out = []
    for path in sorted((root / "feeds" / "news").iterdir()):
        url = f"https://feeds.example/{path.name}"
        try:
            feed = parse_feed(path.read_bytes(), url=url, content_type=None, now=now)
        except DigestError:
            continue
        for it in feed.items:
            out.append(
                {
                    "title": it.title,
                    "url": it.url,
                    "categories": it.categories,
                    "summary": it.summary_text,
                    "feed_names": (feed.title or path.name, url),
                }
            )
    return out


@contextmanager
def naive_scan() -> Iterator[None]:
    """The keyword search as it was: every position of the text, for every keyword, every time."""

    def contains(self: sections._Sequence, wanted: tuple[sections._Form, ...]) -> bool:
        forms, n = self.forms, len(wanted)
        return any(all(sections._same(forms[i + j], wanted[j]) for j in range(n)) for i in range(len(forms) - n + 1))

    def where(self: sections._Text, keyword: str) -> str | None:
        wanted = sections._keyword_forms(keyword, self.keyword_lang(keyword))
        if not wanted:
            return None
        return "title" if self.title.contains(wanted) else "summary" if self.summary.contains(wanted) else None

    def possible(self: sections._KeywordIndex, text: sections._Text) -> None:
        return None  # every keyword of every rule is looked for, as before the keyword index

    saved = sections._Sequence.contains, sections._Text.where, sections._KeywordIndex.possible
    sections._Sequence.contains, sections._Text.where = contains, where  # type: ignore[method-assign]
    sections._KeywordIndex.possible = possible  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        sections._Sequence.contains, sections._Text.where, sections._KeywordIndex.possible = saved  # type: ignore[method-assign]


def run(items: list[dict[str, Any]], settings: cfg.Settings) -> tuple[float, list[float], list[str]]:
    times, answers = [], []
    cpu = time.process_time()
    for it in items:
        start = time.perf_counter()
        c = sections.classify(
            title=it["title"],
            url=it["url"],
            categories=it["categories"],
            feed_section=None,
            sections=settings.sections,
            fallback=settings.digest.fallback_section,
            summary=it["summary"],
            feed_names=it["feed_names"],
        )
        times.append(time.perf_counter() - start)
        answers.append(f"{c.section}|{c.rule}|{c.reason}")
    return time.process_time() - cpu, times, answers


def report(label: str, cpu: float, times: list[float], n: int) -> None:
    ms = sorted(t * 1000 for t in times)
    print(
        f"{label}: {n} items in {cpu:.2f} s CPU, {cpu / n * 1000:.2f} ms/item; "
        f"median {statistics.median(ms):.2f} ms, p99 {ms[int(0.99 * (n - 1))]:.2f} ms, max {ms[-1]:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--naive", action="store_true", help="also time the scan the index replaced")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    settings = cfg.from_mapping(tomllib.loads(cfg.example_toml()), env={})
    keywords = sum(
        len(s.keywords) + len(s.not_keywords) + sum(len(r.keywords) + sum(map(len, r.keyword_groups)) for r in s.rules)
        for s in settings.sections
    )
    items = corpus_items()
    print(f"{len(items)} corpus items, {len(settings.sections)} sections, {keywords} keywords in the shipped rules")
    cpu, times, first = run(items, settings)
    report("first pass", cpu, times, len(items))
    cpu, times, again = run(items, settings)
    report("second pass", cpu, times, len(items))
    if args.naive:
        with naive_scan():
            cpu, times, naive = run(items, settings)
        report("naive scan", cpu, times, len(items))
        print("same answers as the index:", naive == first == again)


if __name__ == "__main__":
    main()
