"""Cluster once per edition (issue 12): the stories are computed when the edition is built, stored
with it (migration 0005), and every sending process and the web page read them back."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from storepaths import store_items

from digest import cluster
from digest import config as cfg
from digest.compose import build_stories, stories_from_json, stories_to_json
from digest.model import FeedSpec, Item, ParsedItem
from digest.pipeline.mailer import EditionMailer, compose_options, edition_stories
from digest.pipeline.send import build_edition
from digest.store import Store
from digest.store import schema as t

NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
SUMMARIES = (
    "The central bank raised its key rate to 21 percent on Friday. Analysts had expected a pause.",
    "Rates rose again, the third increase this year. Banks will review loan rates next week.",
    "The regulator cited persistent inflation. The rouble firmed after the decision.",
)


def settings(**tables: Any) -> cfg.Settings:
    """The test's settings, with `tables` (e.g. outlets={...}) added."""
    return cfg.from_mapping(
        tables
        | {
            "digest": {
                "title": "Morning Review",
                "timezone": "UTC",
                "database": "sqlite:///unused.sqlite",
                "base_url": "https://review.example",
                "read_also": 0,
            },
            "smtp": {"host": "127.0.0.1", "port": 25, "sender": "Morning Review <review@review.example>"},
            "sections": [{"name": "World", "categories": ["World"]}, {"name": "Sport", "categories": ["Sport"]}],
            "subscribers": [{"email": "alice@example.org"}],
        },
        env={},
    )


def add_news(store: Store) -> None:
    """Three outlets with the same story (a cluster with a synopsis), titles with each outlet's
    boilerplate suffix (cleaned by digest.titles), and unrelated items."""
    topics = ["grain harvest", "tram line", "harbour bridge", "city library", "river ferry", "apple orchard"]
    for n, outlet in enumerate(("Harbour Times", "Daily Wire", "Evening Post")):
        feed = store.add_feed(FeedSpec(url=f"https://news{n}.example/rss", name=outlet), now=NOW - timedelta(days=1))
        items = [
            ParsedItem(
                key=f"{n}-rate",
                title=f"Central bank raises key rate to 21 percent | {outlet}",
                url=f"https://news{n}.example/rate",
                summary_html=f"<p>{SUMMARIES[n]}</p>",
                summary_text=SUMMARIES[n],
                published=NOW - timedelta(hours=2, minutes=n),
                categories=("World",),
            )
        ]
        items += [
            ParsedItem(
                key=f"{n}-{k}",
                title=f"{topic.title()} report {n}{k} | {outlet}",
                url=f"https://news{n}.example/{k}",
                summary_html=f"<p>About the {topic}.</p>",
                summary_text=f"About the {topic}.",
                published=NOW - timedelta(hours=3, minutes=k),
                categories=("Sport" if k % 2 else "World",),
            )
            for k, topic in enumerate(topics[n * 2 : n * 2 + 2])
        ]
        store_items(store, feed.id, items, now=NOW - timedelta(hours=1))


def test_stories_survive_the_round_trip_through_json_with_cleaned_titles_and_synopses() -> None:
    def item(n: int, feed: int, title: str, source: str, summary: str) -> Item:
        return Item(
            id=n,
            feed_id=feed,
            source=source,
            title=title,
            url=f"https://e.example/{n}",
            summary_html=f"<p>{summary}</p>",
            summary_text=summary,
            published=NOW - timedelta(minutes=n),
            first_seen=NOW,
        )

    items = [
        (item(k, k + 1, "Central bank raises key rate to 21 percent", src, SUMMARIES[k]), "World")
        for k, src in enumerate(("Harbour Times", "Daily Wire", "Evening Post"))
    ]
    items += [
        (item(10 + k, 9, f"{topic} report {k} | Gazette", "Gazette", "Bridge."), "Sport")
        for k, topic in enumerate(("Bridge", "Tram", "Ferry", "Library", "Orchard"))
    ]
    placed = build_stories(items, options=compose_options(settings()))
    assert any(p.story.synopsis for p in placed) and any(p.story.also for p in placed)
    assert any(p.story.lead.title == "Tram report 1" for p in placed)  # the feed's boilerplate is cleaned
    assert stories_from_json(stories_to_json(placed), [i for i, _ in items]) == placed
    # A quote's cuts are kept; a stored quote with none (an edition stored before them) reads back alike.
    told = next(p for p in placed if p.story.synopsis)
    cut = dataclasses.replace(told.story.synopsis[0], gaps=(1,))
    marked = [dataclasses.replace(told, story=dataclasses.replace(told.story, synopsis=(cut,)))]
    assert stories_from_json(stories_to_json(marked), [i for i, _ in items]) == marked
    assert '"gaps"' not in stories_to_json(placed) and ",[1]]" in stories_to_json(marked)
    # Another format, or an item that is not there, means: cluster again.
    assert stories_from_json('{"format": 99, "stories": []}', [i for i, _ in items]) is None
    assert stories_from_json(stories_to_json(placed), [i for i, _ in items[1:]]) is None


def test_a_stored_edition_cites_a_site_by_the_name_outlets_gives_it_since() -> None:
    # Stories stored when the aggregator's sites had no names: read back after the operator names
    # one in [outlets], the lead, the other outlets and the quotes all use the new name.
    def item(n: int, site: str) -> Item:
        return Item(
            id=n,
            feed_id=1,
            source="News Aggregator",
            title="Central bank raises key rate to 21 percent",
            url=f"https://agg.example/story?url={site}%2Fnews%2F{n}",
            summary_html=f"<p>{SUMMARIES[n]}</p>",
            summary_text=SUMMARIES[n],
            published=NOW - timedelta(minutes=10 - n),
            first_seen=NOW,
        )

    items = [(item(k, site), "World") for k, site in enumerate(("ria.example", "iz.example", "tass.example"))]
    before = build_stories(items, options=compose_options(settings()))
    [story] = [p.story for p in before]
    assert {story.lead.source, *(i.source for i in story.also)} == {"ria.example", "iz.example", "tass.example"}
    assert "iz.example" in {q.source for q in story.synopsis}
    named = compose_options(settings(outlets={"iz.example": {"name": "Известия", "plural": True}}))
    stored = stories_from_json(stories_to_json(before), [i for i, _ in items], (), named)
    [after] = [p.story for p in stored or []]
    sources = {after.lead.source, *(i.source for i in after.also)}
    assert sources == {"ria.example", "Известия", "tass.example"}
    quoted = {q.source: q.plural for q in after.synopsis}
    assert quoted["Известия"] is True and "iz.example" not in quoted
    # Built anew with the name, the same stories come out.
    assert build_stories(items, options=named)[0].story == after


def test_the_edition_is_clustered_once_when_built_and_read_back_by_every_mailer(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings()
    store.sync_subscribers(s.subscribers, now=NOW - timedelta(days=1))
    add_news(store)
    edition, created = build_edition(s, store, day=date(2026, 5, 4), timezone="UTC", now=NOW)
    assert created and store.edition_stories(edition.id) is not None
    fresh = build_stories(store.edition_items(edition.id), options=compose_options(s))
    assert any(p.story.also for p in fresh)

    calls: list[Any] = []
    real = cluster.cluster

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(cluster, "cluster", spy)
    mailer = EditionMailer(s, store, edition)  # what each sending process does
    assert mailer.stories == fresh and calls == []  # read back, not clustered again
    assert mailer.template(None) is not None and calls == []


def test_an_edition_built_before_stories_were_stored_is_clustered_once_on_first_read(store: Store) -> None:
    s = settings()
    store.sync_subscribers(s.subscribers, now=NOW - timedelta(days=1))
    add_news(store)
    edition, _ = build_edition(s, store, day=date(2026, 5, 4), timezone="UTC", now=NOW)
    with store.engine.begin() as conn:  # as an edition of a release before migration 0005 has none
        conn.execute(t.edition_stories.delete())
    assert store.edition_stories(edition.id) is None
    first = edition_stories(s, store, edition)
    assert store.edition_stories(edition.id) is not None
    assert edition_stories(s, store, edition) == first


def test_the_editions_of_one_day_with_the_same_items_are_clustered_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings()
    store.sync_subscribers(s.subscribers, now=NOW - timedelta(days=1))
    add_news(store)
    calls: list[Any] = []
    real = cluster.cluster

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(cluster, "cluster", spy)
    first, _ = build_edition(s, store, day=date(2026, 5, 4), timezone="UTC", now=NOW)
    second, _ = build_edition(s, store, day=date(2026, 5, 4), timezone="Europe/Berlin", now=NOW)
    assert len(calls) == 1  # one time zone's edition holds the same items as the other's
    assert store.edition_stories(first.id) == store.edition_stories(second.id) is not None
