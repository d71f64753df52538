"""Which report leads a story: on the hand-drawn stories of 6-7 January 2017, the lead an edition
shows (`digest.cluster.representative`) against the titles an editor would accept as the story's
headline (tests/data/story_headlines_2017-01-07.tsv, labelled without seeing the rule).

Every story of three reports or more is taken whole, its reports earliest first, as compose gives
them to `representative`; a story of two keeps its first report, so it is not counted. The test
prints each story's lead and whether it is a headline, for the rule and for the earliest report.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from conftest import CORPUS_ABSENT, corpus_dir
from test_cluster_corpus import Labelled, load_days

from digest.cluster import representative

HEADLINES = Path(__file__).parent / "data" / "story_headlines_2017-01-07.tsv"
TARGET = 0.75  # of the stories, led by a title an editor would headline them with (12 of 15 now)


def load_headlines() -> dict[tuple[str, str], bool]:
    """(feed, link) -> whether the title is an acceptable headline for its story."""
    out: dict[tuple[str, str], bool] = {}
    for line in HEADLINES.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            story, feed, url, verdict = line.split("\t")
            assert verdict in ("yes", "no"), line
            out[(feed, url)] = verdict == "yes"
    return out


def stories(items: list[Labelled]) -> dict[str, list[Labelled]]:
    by_story: dict[str, list[Labelled]] = defaultdict(list)
    for x in items:
        if x.story != "-":
            by_story[x.story].append(x)
    return {story: sorted(xs, key=lambda x: (x.item.when, x.item.id)) for story, xs in by_story.items() if len(xs) >= 3}


def test_a_story_is_led_by_a_report_an_editor_would_headline_it_with() -> None:
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    headlines = load_headlines()
    found = stories(load_days(root / "feeds" / "news"))
    assert {key for xs in found.values() for key in ((x.feed, x.item.url or "") for x in xs)} == set(headlines), (
        "the labels must name exactly the reports of the stories of three or more"
    )
    chosen = earliest = 0
    lines = []
    for story, xs in sorted(found.items()):
        lead = xs[representative([x.item for x in xs])]
        ok = headlines[(lead.feed, lead.item.url or "")]
        first_ok = headlines[(xs[0].feed, xs[0].item.url or "")]
        chosen += ok
        earliest += first_ok
        moved = "" if lead is xs[0] else f"  (earliest: {'yes' if first_ok else 'no '} {xs[0].item.title[:60]!r})"
        lines.append(f"  {'yes' if ok else 'no '} {story[:28]:28} {lead.item.title[:70]!r}{moved}")
    n = len(found)
    print(f"\nstories of three reports or more led by a headline: {chosen} of {n} ({chosen / n:.0%});")
    print(f"led by their earliest report: {earliest} of {n} ({earliest / n:.0%})")
    print("\n".join(lines))
    assert chosen >= earliest, "the lead must be a headline at least as often as the earliest report is"
    assert chosen / n >= TARGET, f"{chosen / n:.0%} < {TARGET:.0%}"
