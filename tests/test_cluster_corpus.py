"""Clustering on real coverage: every corpus item of 6-7 January 2017, against hand-drawn stories.

The labels (tests/data/stories_2017-01-07.tsv) name each item by feed file and parse key, and its
story. This test parses the feeds with digest.parse, clusters the items as compose would, and
prints pairwise precision and recall for pairs of one language and pairs of two languages.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import CORPUS_ABSENT, corpus_dir
from storepaths import as_stored

from digest.cluster import MAX_GAP, SMALL_BATCH, background_counts, cluster
from digest.cluster.features import _profile
from digest.cluster.vectors import _batch, _cosine
from digest.compose import as_written, without_boilerplate
from digest.model import Item, ParsedItem
from digest.outlets import outlet_name
from digest.parse import parse_feed

DATA = Path(__file__).parent / "data"
NOW = datetime(2026, 11, 30, tzinfo=UTC)
# The feeds' languages, for telling same-language pairs from cross-language ones (what the outlet
# publishes in, not a guess from the text).
FEED_LANGUAGE = {
    "20minutos_rss10.xml": "es",
    "hubspot_marketing-blog_large.xml": "en",
    "indian-express_world.xml": "en",
    "japantimes_latest.xml": "en",
    "lemonde_une.xml": "fr",
    "massa-news_curitiba.xml": "pt",
    "nytimes_homepage.xml": "en",
    "romatoday.xml": "it",
    "spiegel_online.xml": "de",
    "theverge_frontpage.atom": "en",
    "yandex-news_moscow_mojibake.xml": "ru",
    "youtube_investmentpunk.atom": "de",
    # 4-6 June 2018: technology, celebrity and environment news, all in English
    "a16z_blog.xml": "en",
    "boingboing.xml": "en",
    "giantbomb_bombcast_podcast_large.rss": "en",
    "hackernews_frontpage.xml": "en",
    "hackernoon_medium.xml": "en",
    "kottke.atom": "en",
    "medium_technology.xml": "en",
    "perezhilton.xml": "en",
    "strava-engineering_medium.xml": "en",
    "tmz.xml": "en",
    "treehugger.xml": "en",
}


@dataclass(frozen=True, slots=True)
class LabelledDays:
    """A labelled file and the days it covers: every corpus item of those days is in it."""

    labels: Path
    days: tuple[str, ...]
    # A feed that dates no item: it was read when the feed says it was built, as a poll would.
    undated_seen: Mapping[str, datetime] = field(default_factory=dict)
    # The day-long windows an edition would cluster: one starting each hour from the first day's 00:00.
    windows: int = 25


# Hard news of two days in six languages: the Fort Lauderdale shooting, the US intelligence report.
JANUARY_2017 = LabelledDays(
    DATA / "stories_2017-01-07.tsv",
    ("2017-01-06", "2017-01-07"),
    {"japantimes_latest.xml": datetime(2017, 1, 7, 15, 10, 21, tzinfo=UTC)},
)
# Another kind of day, in English: technology, celebrity and environment feeds (Kate Spade's death,
# Microsoft buying GitHub, Apple's developer conference), most of whose items no other feed tells.
# Its last items are of 6 June, 10:00 UTC: 35 windows reach them.
JUNE_2018 = LabelledDays(DATA / "stories_2018-06-05.tsv", ("2018-06-04", "2018-06-05", "2018-06-06"), windows=35)


@dataclass(frozen=True, slots=True)
class Labelled:
    feed: str
    story: str  # "-": a story of its own
    item: Item


def load_labels(labelled: LabelledDays = JANUARY_2017) -> dict[tuple[str, str], str]:
    labels = {}
    for line in labelled.labels.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            feed, key, story = line.split("\t")
            labels[(feed, key)] = story
    return labels


def day_of(published: datetime | None, url: str | None) -> str | None:
    if published is not None:
        return published.date().isoformat()
    m = re.search(r"/(\d{4})/(\d\d)/(\d\d)/", url or "")
    return "-".join(m.groups()) if m else None


def load_days(news: Path, labelled: LabelledDays = JANUARY_2017) -> list[Labelled]:
    """The labelled items as compose clusters them: stored items under their feed's name, titles
    without their feed's boilerplate, an aggregator's items under the site that wrote them."""
    labels = load_labels(labelled)
    found = _stored(news, labelled, lambda feed, it: day_of(it.published, it.url) in labelled.days)
    assert set(found) == set(labels), "the labels must name exactly the items of those days"
    return _as_composed(found, labels)


def load_edition(news: Path, labelled: LabelledDays, days: int) -> list[Labelled]:
    """What one edition of the labelled feeds clusters: every item of theirs published in the `days`
    before the last undated feed was read, or undated (first seen then); items the labels do not
    name (older days) are "?"."""
    labels = load_labels(labelled)
    feeds = {feed for feed, _ in labels}
    edition = max(labelled.undated_seen.values())

    def kept(feed: str, it: ParsedItem) -> bool:
        return feed in feeds and (it.published is None or edition - timedelta(days=days) <= it.published <= edition)

    return _as_composed(_stored(news, labelled, kept), labels)


def _stored(
    news: Path, labelled: LabelledDays, wanted: Callable[[str, ParsedItem], bool]
) -> dict[tuple[str, str], Item]:
    found: dict[tuple[str, str], Item] = {}
    feed_ids: dict[str, int] = {}
    for path in sorted(news.iterdir()):
        url = f"https://corpus.invalid/{path.name}"
        try:
            feed = parse_feed(path.read_bytes(), url=url, content_type=None, now=NOW)
        except Exception:  # the hostile and broken files of the corpus: not news of those days
            continue
        source = outlet_name(feed.title, url, feed.link) if feed.title else url  # as Feed.display_name gives it
        for it in feed.items:
            if not wanted(path.name, it):
                continue
            feed_id = feed_ids.setdefault(path.name, len(feed_ids) + 1)
            seen = labelled.undated_seen.get(path.name, NOW)
            found[(path.name, it.key)] = as_stored(
                it, id=len(found) + 1, feed_id=feed_id, source=source, first_seen=seen, language=feed.language
            )
    return found


def _as_composed(found: dict[tuple[str, str], Item], labels: Mapping[tuple[str, str], str]) -> list[Labelled]:
    """The items as compose gives them, each with its label ("?": an item the labels do not name)."""
    prepared = [as_written(item) for item, _ in without_boilerplate([(item, "") for item in found.values()])]
    return [
        Labelled(feed, labels.get((feed, key), "?"), item) for (feed, key), item in zip(found, prepared, strict=True)
    ]


def most_told(labelled: list[Labelled], n: int) -> list[str]:
    """The `n` labelled stories the most outlets told, among as many the one of more reports first."""
    outlets: dict[str, set[str]] = {}
    for x in labelled:
        if x.story != "-":
            outlets.setdefault(x.story, set()).add(x.item.source)
    reports = Counter(x.story for x in labelled)
    return sorted(outlets, key=lambda story: (-len(outlets[story]), -reports[story]))[:n]


def pair_counts(items: list[Labelled], groups: list[list[int]]) -> dict[str, Counter[str]]:
    """tp/fp/fn of item pairs, apart for same-language and cross-language pairs."""
    group_of = {i: g for g, members in enumerate(groups) for i in members}
    counts: dict[str, Counter[str]] = {"same": Counter(), "cross": Counter()}
    for a, b in itertools.combinations(range(len(items)), 2):
        truth = items[a].story != "-" and items[a].story == items[b].story
        merged = group_of[a] == group_of[b]
        kind = "same" if FEED_LANGUAGE[items[a].feed] == FEED_LANGUAGE[items[b].feed] else "cross"
        if truth and merged:
            counts[kind]["tp"] += 1
        elif merged:
            counts[kind]["fp"] += 1
        elif truth:
            counts[kind]["fn"] += 1
    return counts


def scores(c: Counter[str]) -> tuple[float, float]:
    precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
    return precision, recall


def measured(labelled: LabelledDays) -> dict[str, Counter[str]]:
    """Cluster every item of the labelled days at once, print the pairs' precision and recall and how
    each labelled story came out, and give the pair counts."""
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    items = load_days(root / "feeds" / "news", labelled)
    groups = cluster([x.item for x in items])
    counts = pair_counts(items, groups)
    same_p, same_r = scores(counts["same"])
    cross_p, cross_r = scores(counts["cross"])
    print(
        f"\n{labelled.labels.name}: {len(items)} items, {len({x.feed for x in items})} feeds -> {len(groups)} stories "
        f"({sum(len(g) > 1 for g in groups)} with more than one item; "
        f"labelled: {len({x.story for x in items if x.story != '-'})})"
    )
    print(f"same-language pairs:  precision={same_p:.3f} recall={same_r:.3f} ({dict(counts['same'])})")
    if counts["cross"]:
        print(f"cross-language pairs: precision={cross_p:.3f} recall={cross_r:.3f} ({dict(counts['cross'])})")
    group_of = {i: n for n, g in enumerate(groups) for i in g}
    split = {
        story: len({group_of[i] for i, x in enumerate(items) if x.story == story})
        for story in sorted({x.story for x in items} - {"-"})
    }
    print(
        "labelled stories as found (items: groups):",
        ", ".join(f"{story} {sum(x.story == story for x in items)}:{n}" for story, n in split.items()),
    )
    for g in groups:
        stories = Counter(items[i].story for i in g)
        if len(g) > 1 and (len(stories) > 1 or "-" in stories):
            print(
                "  merged apart stories:", [(items[i].feed[:12], items[i].story, items[i].item.title[:60]) for i in g]
            )
    return counts


def test_stories_of_6_and_7_january_2017_cluster_as_an_editor_drew_them() -> None:
    counts = measured(JANUARY_2017)
    same_p, same_r = scores(counts["same"])
    cross_p, cross_r = scores(counts["cross"])
    assert same_p >= 0.95 and cross_p >= 0.95
    assert same_r >= SAME_RECALL_FLOOR
    assert cross_r >= CROSS_RECALL_FLOOR


def test_stories_of_4_to_6_june_2018_cluster_as_an_editor_drew_them() -> None:
    """A day of technology and celebrity feeds, in one language: precision holds there too, and the
    recall it reaches is printed and kept from falling back."""
    counts = measured(JUNE_2018)
    same_p, same_r = scores(counts["same"])
    assert not counts["cross"]
    assert same_p >= 0.95
    assert same_r >= JUNE_RECALL_FLOOR


# What the clustering reaches on these labels, kept from falling back. Issue 11 asks for 0.80
# same-language recall: reached in session 37; docs/performance.md says which stories are still missed
# and why.
# Precision: 1.0 for both since session 9 (a score became one figure and a player's semifinal and
# final, the one false pair, came apart).
# Session 10 (0.594 -> 0.458 same-language, 0.479 -> 0.423 cross-language): the New York Times'
# items are summarised by their own <description>, no longer by their photo's caption (feedparser#53),
# and "President-elect" is a title, no longer the event word "elect" of every election report. Both
# had held the intelligence report's 14 items together (5 groups before, 9 now); both are right,
# the labelled items with the days around them score higher than before (0.552 with a day either
# side, 0.484 before) and the day-long windows an edition clusters keep precision 1.000.
# Session 11 (cross-language 0.423 -> 0.507): a capital after a colon is a name in French, Spanish,
# Italian and Russian, so Le Monde's "... la Russie : Poutine mis en cause" meets the reports on Putin.
# Session 14 (same-language 0.458 -> 0.484; windows' cross-language 0.388 -> 0.429): two outlets that
# share a rare name and four rare words need 0.9 of the bar, joining the Moscow hotel fire's three
# reports and the Antarctic iceberg's two; "$6 million" is one figure, no longer a day's "6", joining
# The Indian Express's two reports of Israel's cut to the UN.
# Session 18: the June 2018 days (0.037 -> 0.074): a whole name another item writes inside a
# sentence is a name in a title-case headline and opening a sentence, so TMZ's report of Kate
# Spade's death and its report of her note share her name and merge as a follow-up. The January
# days (same-language 0.484 -> 0.510, cross-language 0.507 -> 0.535): a story's pair of rare words
# found in several other stories, each headlined with it, takes them all in ("Russia interfered in
# Presidential elections: US intelligence chief" joins the intelligence report). June 0.074 -> 0.111:
# "$7.5B" is the figure "$7.5 Billion" is, so the two posts on Microsoft buying GitHub merge. Then
# 0.111 -> 0.074: Medium's summaries lost their "Continue reading on <publication> »", the words'
# document frequencies moved, and TMZ's two Kate Spade reports scored 0.3749 against the follow-up
# bar of 0.375. The merges of that story sit at its bars, whatever the batch around them.
# Session 19: June 0.074 -> 0.111: a time of day ("12:30 PM PT --", TMZ's live updates) is no
# figure of a story, and those two reports merge at 0.41.
# Session 20 (same-language 0.510 -> 0.667, cross-language 0.535 -> 0.648; the windows' same-language
# 0.475 -> 0.497 at precision 0.987): a language's function words are no features ("do", rare in a
# day's batch, was the heaviest feature of "Report on US election hacking says Russia plans to do
# more"), and the intelligence report's reports merge into one story across outlets and languages.
# In three windows that story also takes in the NYT's "Trump Finds That Attack-Dog Strategy Has Its
# Limits", labelled apart: the windows' 15 false pairs.
# Session 22 (same-language 0.667 -> 0.698): a story takes in another when a third of it has the
# linking pair and one of those reports has three of the story's core words: the Chicago case's
# "friendly encounter" reports and its charges' reports are one story (6 pairs; nothing else moves).
# Session 23: two items read again by the label file's own rule (reactions to the intelligence report
# are the report's story), the NYT's "Attack-Dog Strategy" piece and 20minutos' Obama interview, are
# now labelled with the report: the same groups count 12 more same-language true pairs and 17 more
# cross-language ones, all missed (same-language 0.698 -> 0.657, cross-language 0.648 -> 0.523),
# and the windows' 15 + 7 false pairs become true ones (precision 1.000 / 1.000, recall 0.469 / 0.407).
# Then June 0.111 -> 0.630 (and the windows' 0.469 -> 0.522, 0.407 -> 0.414, June's 0.106 -> 0.488,
# all at precision 1.000): a batch an edition has blocks on all of an item's rare features, not on
# its 12 rarest, once a country alone ties no two languages (a Japan-France pact met a Figaro piece
# on Rome's mayor on "France") and a key a common noun gives is no name ("Pelosi" kept "Police" one).
# Session 24 (same-language 0.657 -> 0.711, cross-language 0.523 -> 0.682; the windows' 0.522 ->
# 0.592 and 0.414 -> 0.475, June's windows 0.488 -> 0.535; all at precision 1.000): two stories that
# share a language but whose member pairs are mostly of two languages are compared as two languages
# are (20minutos' own report on the intelligence report joins the story its Obama interview had
# joined), on the shared language's members' words where an event word is shared; and the stories the
# story-level passes grew are compared again. Of the 59 same-language pairs still missed, 33 are one
# outlet's (The Indian Express's title-only headlines, RomaToday's three on Rome's cold), where one
# outlet's pairs need 2.5 times the bar, and 14 are the six reports of five sites Yandex carries on
# Moscow's frost: one theme told in different words ("мороз", "холод"), 0.0-0.75 of the bar.
# Session 27 (cross-language 0.682 -> 0.841; the windows' 0.477 -> 0.572; precision 1.000): the bar
# two languages' names must reach is 0.32, not 0.35. SPIEGEL's report on the intelligence report
# joins its story (German nouns, all capitalised, had diluted its names), and in some windows its
# Fort Lauderdale report joins the shooting's. The first false pair comes at 0.29 (two outlets'
# CES pieces, in the whole corpus); the labelled days' and windows' first at 0.28.
# Session 36 (same-language 0.711 -> 0.735; the windows' 0.596 -> 0.600; precision 1.000): one report
# that shares a rare name and four rare words with a story three outlets or more tell needs 0.7 of the
# bar (`TOLD_FACTOR`), not 0.9: The Indian Express's report of the four held without bail joins the
# Chicago beating's story (5 pairs).
# Session 37 (same-language 0.735 -> 0.824; the windows' 0.600 -> 0.665; precision 1.000): the
# reports of one kind of weather in one place, every one headlining it, are one story
# (`digest.cluster.weather`): Moscow's frost, six reports of five sites (15 pairs), and RomaToday's three
# on Rome's cold (3 pairs). Over the whole corpus and each two-day window these are the only groups it
# changes; its guards (two places, a week apart, a cold war, Дед Мороз, a service in the frost) are
# tests/test_cluster_weather.py's.
SAME_RECALL_FLOOR = 0.80
JUNE_RECALL_FLOOR = 0.62
CROSS_RECALL_FLOOR = 0.83


def test_a_report_that_corroborates_a_story_three_outlets_tell_joins_it() -> None:
    """The Chicago beating, told by The Indian Express, the Japan Times and the NYT in five reports, and
    The Indian Express's "Chicago: Four ordered held without bail over torture shown on Facebook": a
    title alone, it shares "Chicago", "Facebook", "torture" and "four" with the story but little of
    its centroid's many words (0.74 of the bar). It names the story's who and what, so it joins, and
    the story takes in nothing else."""
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    items = load_days(root / "feeds" / "news")
    groups = cluster([x.item for x in items])
    story = "chicago-facebook-torture"
    holding = [g for g in groups if any(items[i].story == story for i in g)]
    assert len(holding) == 1
    assert {items[i].story for i in holding[0]} == {story}
    assert len(holding[0]) == sum(x.story == story for x in items) == 6


def test_the_clustering_finds_more_than_word_similarity_alone_at_its_precision() -> None:
    """How far the items' words alone go: every same-language pair within `MAX_GAP` called one story
    when the cosine of its two word vectors (the features and weights clustering uses) reaches a bar.
    Printed for a sweep of bars, so the recall target can be read against what word forms can give;
    the clustering's rare-word, follow-up and story-level tests must reach more recall than any bar
    that keeps precision >= 0.95."""
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    items = load_days(root / "feeds" / "news")
    ordered = [x.item for x in items]
    profiles = [_profile(item) for item in ordered]
    batch = _batch(ordered, profiles)
    scored: list[tuple[float, bool]] = []
    for a, b in itertools.combinations(range(len(items)), 2):
        if FEED_LANGUAGE[items[a].feed] != FEED_LANGUAGE[items[b].feed]:
            continue
        if abs(ordered[a].when - ordered[b].when) > MAX_GAP:
            continue
        truth = items[a].story != "-" and items[a].story == items[b].story
        scored.append((_cosine(batch.words[a], batch.words[b]), truth))
    counts = pair_counts(items, cluster(ordered))["same"]
    true_pairs = counts["tp"] + counts["fn"]
    _, recall = scores(counts)
    print(f"\nsame-language pairs by word cosine alone ({true_pairs} true pairs; the clustering: R={recall:.3f}):")
    best_precise = 0.0
    for bar in (0.5, 0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.08):
        tp = sum(1 for s, t in scored if s >= bar and t)
        fp = sum(1 for s, t in scored if s >= bar and not t)
        p, r = (tp / (tp + fp) if tp + fp else 1.0), tp / true_pairs
        print(f"  cosine >= {bar:<4}: precision={p:.3f} recall={r:.3f} (tp {tp}, fp {fp})")
        if p >= 0.95:
            best_precise = max(best_precise, r)
    assert recall > best_precise


def test_an_edition_of_the_labelled_feeds_tells_the_intelligence_report_as_one_story_of_its_own() -> None:
    """The labelled feeds as one edition reads them (their items of the four days up to the Japan
    Times' reading, its undated ones first seen then: the labelled days and older items the labels
    do not name): the intelligence report, 16 reports in the labels, comes out as one story of 15 or
    more of them (13 before session 27, when SPIEGEL's report met it across languages) and nothing
    else. Before session 24 it took in the Japan Times' column "Putin's Russia: the enigma
    continues" on "Putin" and "Russia", the latter an event word only in a title-case headline, and
    left out two of its own reports."""
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    items = load_edition(root / "feeds" / "news", JANUARY_2017, days=4)
    report = "us-intelligence-report-russia-hacking"
    groups = cluster([x.item for x in items])
    largest = max(groups, key=lambda g: sum(items[i].story == report for i in g))
    found = Counter(items[i].story for i in largest)
    others = {story: k for story, k in found.items() if story != report}
    print(
        f"\nan edition of the labelled feeds: {len(items)} items -> {len(groups)} stories; the report's story: "
        f"{found[report]} of its {sum(x.story == report for x in items)} reports, others {others}"
    )
    assert set(found) == {report}
    assert found[report] >= 15


@pytest.mark.parametrize("labelled", [JANUARY_2017, JUNE_2018], ids=["2017-01-07", "2018-06-05"])
def test_day_long_editions_of_those_days_keep_precision(labelled: LabelledDays) -> None:
    """What an edition clusters is one day of items, not two: every 24-hour window of the labelled days
    that starts on the hour (6 January 00:00 to 7 January 00:00 UTC; 4 June 00:00 to 5 June 10:00),
    clustered alone, with the pairs of each window counted. A smaller batch makes more words rare, so
    it is where wrong merges show first (the DEA in China and a "bull in a china shop"; "PM" in
    English and in Portuguese)."""
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    items = load_days(root / "feeds" / "news", labelled)
    total: dict[str, Counter[str]] = {"same": Counter(), "cross": Counter()}
    wrong: Counter[tuple[str, str]] = Counter()
    start = datetime.fromisoformat(labelled.days[0]).replace(tzinfo=UTC)
    for hour in range(labelled.windows):
        begin = start + timedelta(hours=hour)
        # By arrival, as an edition takes its items: a dated item when it was published, an undated one
        # when it was first seen (its link's day orders it, but it came in with that poll).
        window = [x for x in items if begin <= (x.item.published or x.item.first_seen) < begin + timedelta(hours=24)]
        groups = cluster([x.item for x in window])
        for kind, counts in pair_counts(window, groups).items():
            total[kind].update(counts)
        for g in groups:
            for a, b in itertools.combinations(g, 2):
                if window[a].story == "-" or window[a].story != window[b].story:
                    wrong[(window[a].item.title[:50], window[b].item.title[:50])] += 1
    same_p, same_r = scores(total["same"])
    cross_p, cross_r = scores(total["cross"])
    print(f"\n{labelled.labels.name}, {labelled.windows} day-long windows:")
    print(f"  same-language precision={same_p:.3f} recall={same_r:.3f} ({dict(total['same'])})")
    if total["cross"]:
        print(f"  cross-language precision={cross_p:.3f} recall={cross_r:.3f} ({dict(total['cross'])})")
    for (first, second), windows in wrong.most_common():
        print(f"  merged apart stories in {windows} windows: {first!r} + {second!r}")
    assert same_p >= 0.95 and cross_p >= 0.95


# A small site's edition, under SMALL_BATCH items, borrows document frequencies from the week
# before it (`cluster.cluster`'s background). Measured on every one, two or three labelled feeds
# whose items of the labelled days are fewer than that (68 January batches, 145 June ones), with the
# corpus's items of every other day standing for the site's week: the corpus holds too few earlier
# days of those feeds for a week of their own.
SMALL_EDITION_RECALL_FLOOR = {"stories_2017-01-07.tsv": 0.65, "stories_2018-06-05.tsv": 0.30}


@pytest.mark.parametrize("labelled", [JANUARY_2017, JUNE_2018], ids=["january-2017", "june-2018"])
def test_small_editions_weigh_their_words_by_the_week_before(labelled: LabelledDays) -> None:
    root = corpus_dir()
    if root is None:
        pytest.skip(CORPUS_ABSENT)
    news = root / "feeds" / "news"
    items = load_days(news, labelled)
    feeds = sorted({x.feed for x in items})
    others = _stored(news, labelled, lambda feed, it: day_of(it.published, it.url) not in labelled.days)
    week = background_counts([x.item for x in _as_composed(others, {})])
    counts: dict[str, Counter[str]] = {"alone": Counter(), "with the week": Counter()}
    batches = 0
    for k in (1, 2, 3):
        for chosen in itertools.combinations(feeds, k):
            batch = [x for x in items if x.feed in chosen]
            if not 2 <= len(batch) < SMALL_BATCH:
                continue
            batches += 1
            for name, background in (("alone", None), ("with the week", week)):
                groups = cluster([x.item for x in batch], background=background or ())
                for kind in pair_counts(batch, groups).values():
                    counts[name].update(kind)
    print(f"\n{labelled.labels.name}: {batches} batches of one to three feeds under {SMALL_BATCH} items")
    for name, c in counts.items():
        p, r = scores(c)
        print(f"  {name}: pairs precision={p:.3f} recall={r:.3f} ({dict(c)})")
    precision, recall = scores(counts["with the week"])
    assert precision >= 0.95
    assert recall >= SMALL_EDITION_RECALL_FLOOR[labelled.labels.name]
